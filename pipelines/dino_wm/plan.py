"""DINO-WM planners (arXiv 2411.04983 v2): CEM, gradient descent, and MPC with warm starts.

The planners see the world model only through a *batched cost function*::

    cost_fn(actions) -> costs      # actions (S, horizon, block_dim), costs (S,)

so the same code plans with a torch model, or with the predictor exported with a dynamic batch
and run by ONNX Runtime / TensorRT (``as_numpy=True`` hands the cost function a float32 numpy
array and accepts a numpy result). CEM needs only that; the gradient-descent planner needs a
cost that is differentiable in torch.

Action layout. Planning steps are *action blocks*: DINO-WM predicts one latent every ``frameskip``
(5) env steps, conditioned on the ``frameskip`` env actions concatenated, so one block holds
``frameskip * action_dim`` values laid out frame-major, ``[a_0 (d values), a_1, ..., a_4]`` (the
official ``rearrange(a, "b (t f) d -> b t (f d)")``). :func:`split_block` undoes it.

Normalisation. The planners work in normalised action space (zero mean, unit std per env action
dimension, the dataset statistics), where CEM starts from N(0, 1). The env side converts with
:func:`denormalise` (and :func:`split_block`); :func:`normalise` is its inverse.

The paper's settings (:data:`CEM_PRESETS`):

- CEM: horizon 5, 300 samples, top 30, 30 iterations (Push-T) or 10 (PointMaze, Wall). Each
  iteration draws every sample from N(mu, sigma), replaces the first by mu itself, scores all of
  them in ONE call of the cost function, and refits mu and sigma to the top-k (elites).
- GD: SGD on the actions, lr 1, 1000 steps, Gaussian noise (std 0.003) added to the actions
  after every step, started from zeros (or a warm start).
- MPC: execute the first ``execute_blocks`` blocks of the plan, then replan from the new
  observation, warm-starting from the unused tail of the previous plan (padded with zeros).

Nothing from the simulator's success test reaches these planners: there is no early stopping on
env success in CEM, GD or MPC (the official evaluation stops CEM iterations and MPC replanning
once the simulator reports success, which leaks the evaluation into the planner). The planners
see only the costs the cost function returns; when to stop an episode is the caller's business.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CEM_PRESETS",
    "FRAMESKIP",
    "GD_PAPER",
    "MPC",
    "MPC_PAPER",
    "MPC_RECEDING",
    "CEMConfig",
    "CostFn",
    "GDConfig",
    "MPCConfig",
    "PlanResult",
    "block_dim",
    "block_to_env_actions",
    "cem_plan",
    "denormalise",
    "gd_plan",
    "merge_blocks",
    "normalise",
    "shift_steps",
    "split_block",
]

CostFn = Callable[[Any], Any]
"""``cost_fn(actions (S, horizon, block_dim)) -> costs (S,)``: torch tensors, or numpy arrays with
``as_numpy=True``. Lower is better. Non-finite costs rank last."""

FRAMESKIP = 5
"""Env steps per action block (per predicted latent) in DINO-WM."""


# --------------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CEMConfig:
    """Cross-entropy method in normalised action space.

    ``min_std`` floors sigma after each refit (0 = the paper: no floor). ``seed`` seeds the sample
    generator when :func:`cem_plan` is not given one (None = nondeterministic).
    ``evaluate_final`` spends one more cost call (batch of 1) on the final mean so that
    :attr:`PlanResult.cost` is the exact cost of the returned plan; off by default so a plan costs
    exactly ``iterations`` batched calls. ``keep``: what the plan is, ``"mean"`` (the paper: the
    final mean) or ``"best"`` (the lowest-cost sequence scored, the final mean included when it is
    evaluated). The mean of elites is not itself one of them: where the cost is flat in many
    directions (a ball resting at its goal) it drifts from the best by the elites' spread, while the
    best is exact, so the free-space planner keeps the best.
    """

    horizon: int = 5
    samples: int = 300
    topk: int = 30
    iterations: int = 10
    init_std: float = 1.0
    min_std: float = 0.0
    seed: int | None = None
    evaluate_final: bool = False
    keep: str = "mean"

    def __post_init__(self) -> None:
        if self.keep not in ("mean", "best"):
            raise ValueError(f"CEMConfig.keep must be 'mean' or 'best', got {self.keep!r}")
        for name in ("horizon", "samples", "topk", "iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"CEMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.topk > self.samples:
            raise ValueError(f"CEMConfig.topk ({self.topk}) exceeds samples ({self.samples})")
        if not self.init_std > 0:
            raise ValueError(f"CEMConfig.init_std must be > 0, got {self.init_std}")
        if self.min_std < 0:
            raise ValueError(f"CEMConfig.min_std must be >= 0, got {self.min_std}")


@dataclass(frozen=True)
class GDConfig:
    """Gradient descent on the actions: ``a <- a - lr * dcost/da + noise * N(0, 1)`` each step.

    ``init`` fills the part of the plan a warm start does not cover: ``"zeros"`` (the brief /
    the mean of the normalised action distribution) or ``"randn"`` (N(0, 1) samples, the other
    option of the official code). ``seed`` seeds the noise when :func:`gd_plan` is not given a
    generator. ``evaluate_final`` spends one more (gradient-free) cost call on the returned plan.
    """

    horizon: int = 5
    steps: int = 1000
    lr: float = 1.0
    noise: float = 0.003
    init: str = "zeros"
    seed: int | None = None
    evaluate_final: bool = True

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.steps < 1:
            raise ValueError(f"GDConfig: horizon and steps must be >= 1, got {self.horizon}, {self.steps}")
        if self.lr <= 0 or self.noise < 0:
            raise ValueError(f"GDConfig: lr must be > 0 and noise >= 0, got {self.lr}, {self.noise}")
        if self.init not in ("zeros", "randn"):
            raise ValueError(f"GDConfig.init must be 'zeros' or 'randn', got {self.init!r}")


@dataclass(frozen=True)
class MPCConfig:
    """Model-predictive control around a planner.

    ``execute_blocks``: how many blocks of each plan are executed before replanning.
    The paper / official evaluation executes 5 blocks (25 env steps) with a horizon of 5, i.e. the
    whole plan runs open loop before the next plan, whose warm start is then all zeros
    (:data:`MPC_PAPER`, the default). ``execute_blocks=1`` is the usual receding horizon: one
    block (5 env steps), then replan warm-started from the 4 unused blocks (:data:`MPC_RECEDING`).
    ``warm_start=False`` starts every plan from zeros. ``replan_min_std``: the floor of the sigma an
    anytime replan (:meth:`MPC.replan`) carries over from the plan before it.
    """

    execute_blocks: int = 5
    warm_start: bool = True
    replan_min_std: float = 0.05

    def __post_init__(self) -> None:
        if self.execute_blocks < 1:
            raise ValueError(f"MPCConfig.execute_blocks must be >= 1, got {self.execute_blocks}")
        if self.replan_min_std < 0:
            raise ValueError(f"MPCConfig.replan_min_std must be >= 0, got {self.replan_min_std}")


CEM_PRESETS: dict[str, CEMConfig] = {
    "pusht": CEMConfig(horizon=5, samples=300, topk=30, iterations=30),
    "pointmaze": CEMConfig(horizon=5, samples=300, topk=30, iterations=10),
    "wall": CEMConfig(horizon=5, samples=300, topk=30, iterations=10),
}
"""The paper's CEM settings per environment (all: horizon 5 blocks of ``FRAMESKIP`` env steps)."""

GD_PAPER = GDConfig(horizon=5, steps=1000, lr=1.0, noise=0.003)
MPC_PAPER = MPCConfig(execute_blocks=5)
MPC_RECEDING = MPCConfig(execute_blocks=1)


# --------------------------------------------------------------------------------------------------
# Action helpers
# --------------------------------------------------------------------------------------------------


def block_dim(action_dim: int, frameskip: int = FRAMESKIP) -> int:
    """Values per planning step: ``frameskip`` env actions of ``action_dim`` each."""
    return action_dim * frameskip


def _stat_like(stat: Any, actions: Any) -> Any:
    """``stat`` (action_dim,) as the array type of ``actions``, tiled over a block's frames if needed."""
    if isinstance(actions, Tensor):
        stat = torch.as_tensor(stat, dtype=actions.dtype, device=actions.device)
        reps = (lambda s, n: s.repeat(n))
    else:
        actions = np.asarray(actions)
        stat = np.asarray(stat, dtype=actions.dtype if actions.dtype.kind == "f" else np.float64)
        reps = np.tile
    if stat.ndim == 0:
        return stat
    last, width = actions.shape[-1], stat.shape[-1]
    if stat.ndim != 1 or last % width:
        raise ValueError(f"action statistics of shape {tuple(stat.shape)} do not fit actions of last dim {last}")
    return reps(stat, last // width)


def normalise(actions: Any, mean: Any, std: Any) -> Any:
    """``(actions - mean) / std`` per env action dimension; ``mean``/``std`` (action_dim,) are tiled
    over the frames of a block when ``actions`` are blocks. numpy or torch, returns the same type."""
    return (actions - _stat_like(mean, actions)) / _stat_like(std, actions)


def denormalise(actions: Any, mean: Any, std: Any) -> Any:
    """Inverse of :func:`normalise`: planner space -> env action units."""
    return actions * _stat_like(std, actions) + _stat_like(mean, actions)


def split_block(block: Any, frameskip: int = FRAMESKIP) -> Any:
    """(..., frameskip * action_dim) -> (..., frameskip, action_dim): a block's env actions in order."""
    last = block.shape[-1]
    if last % frameskip:
        raise ValueError(f"block of {last} values is not a multiple of frameskip {frameskip}")
    return block.reshape(*block.shape[:-1], frameskip, last // frameskip)


def merge_blocks(env_actions: Any, frameskip: int = FRAMESKIP) -> Any:
    """(..., T * frameskip, action_dim) env actions -> (..., T, frameskip * action_dim) blocks."""
    steps, width = env_actions.shape[-2:]
    if steps % frameskip:
        raise ValueError(f"{steps} env actions do not fill blocks of frameskip {frameskip}")
    return env_actions.reshape(*env_actions.shape[:-2], steps // frameskip, frameskip * width)


def shift_steps(blocks: Tensor, steps: int, frameskip: int, fill: float) -> Tensor:
    """(horizon, block_dim) blocks with their first ``steps`` env steps dropped and ``fill`` after
    the rest, re-blocked: a plan as seen ``steps`` env steps later (any number, not whole blocks)."""
    horizon, dim = blocks.shape
    per_step = blocks.reshape(horizon * frameskip, dim // frameskip)
    tail = torch.full((min(steps, horizon * frameskip), per_step.shape[1]), fill, dtype=blocks.dtype, device=blocks.device)
    return torch.cat([per_step[steps:], tail]).reshape(horizon, dim)


def block_to_env_actions(block: Any, mean: Any, std: Any, frameskip: int = FRAMESKIP) -> np.ndarray:
    """A planner block (normalised, (block_dim,)) -> (frameskip, action_dim) env actions (numpy)."""
    if isinstance(block, Tensor):
        block = block.detach().cpu().numpy()
    return split_block(denormalise(np.asarray(block), mean, std), frameskip)


# --------------------------------------------------------------------------------------------------
# Results and shared plumbing
# --------------------------------------------------------------------------------------------------


@dataclass
class PlanResult:
    """One plan.

    ``actions`` (horizon, block_dim): the plan, normalised (CEM: the final mean; GD: the final
    actions). ``cost``: the cost of ``actions`` when ``cost_exact``; otherwise (CEM without
    ``evaluate_final``) the lowest cost sampled in the last iteration, an estimate from the
    elites the final mean was fitted to. ``best_actions``/``best_cost``: the lowest-cost sequence
    evaluated at all. Histories, one entry per iteration (GD: per step): ``best_costs`` (lowest
    sampled cost), ``mean_costs`` (average over the batch), ``center_costs`` (cost of the mean,
    i.e. of the first sample; for GD, of the current actions). ``evaluations``: action sequences
    scored; ``calls``: cost-function calls. ``std``: CEM's final sigma, the spread around the final
    mean (None for GD); with ``keep="best"`` ``actions`` is the best sample, not that mean.
    """

    actions: Tensor
    cost: float
    cost_exact: bool
    best_actions: Tensor
    best_cost: float
    best_costs: list[float] = field(default_factory=list)
    mean_costs: list[float] = field(default_factory=list)
    center_costs: list[float] = field(default_factory=list)
    time_s: float = 0.0
    evaluations: int = 0
    calls: int = 0
    std: Tensor | None = None


def _evaluate(cost_fn: CostFn, actions: Tensor, as_numpy: bool) -> Tensor:
    """Call ``cost_fn`` once on the batch; return finite-ranked float costs (S,) on the actions' device."""
    batch = actions.shape[0]
    arg = np.ascontiguousarray(actions.detach().cpu().numpy(), dtype=np.float32) if as_numpy else actions
    out = cost_fn(arg)
    costs = out if isinstance(out, Tensor) else torch.as_tensor(np.asarray(out))
    costs = costs.to(actions.device)
    if costs.shape not in ((batch,), (batch, 1)):
        raise ValueError(f"cost_fn returned shape {tuple(costs.shape)} for {batch} action sequences; expected ({batch},)")
    costs = costs.reshape(batch)
    if not costs.is_floating_point():
        costs = costs.double()
    return costs


def _rankable(costs: Tensor) -> Tensor:
    """NaN and -inf would otherwise rank as elites; make every non-finite cost +inf."""
    return torch.where(torch.isfinite(costs), costs, torch.full_like(costs, float("inf")))


def _initial(init: Any, horizon: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(horizon, dim) start: ``init`` (t <= horizon blocks) followed by zeros."""
    start = torch.zeros(horizon, dim, device=device, dtype=dtype)
    if init is None:
        return start
    init = torch.as_tensor(init, dtype=dtype).to(device)
    if init.ndim != 2 or init.shape[1] != dim or init.shape[0] > horizon:
        raise ValueError(f"initial plan of shape {tuple(init.shape)} does not fit (<= {horizon}, {dim})")
    start[: init.shape[0]] = init
    return start


def _covered(init: Any) -> int:
    """Blocks an initial plan gives (its rows; 0 without one)."""
    return 0 if init is None else torch.as_tensor(init).shape[0]


def _check_frozen(frozen_blocks: int, init: Any) -> None:
    """Only blocks the warm start gives can be held: 0 <= ``frozen_blocks`` <= its rows."""
    covered = _covered(init)
    if not 0 <= frozen_blocks <= covered:
        raise ValueError(f"frozen_blocks {frozen_blocks}: expected 0 to {covered}, the blocks the initial plan gives")


def _device_of(init: Any, device: Any) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(init, Tensor):
        return init.device
    return torch.device("cpu")


def _generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator:
    if generator is not None:
        return generator
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def _randn(shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> Tensor:
    # Drawn on the generator's device (CPU by default, so a seed gives the same samples whatever
    # device the cost runs on), then moved: 300 x 5 x 10 floats per iteration, negligible.
    return torch.randn(shape, generator=gen, device=gen.device, dtype=dtype).to(device)


# --------------------------------------------------------------------------------------------------
# CEM
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def cem_plan(
    cost_fn: CostFn,
    block_dim: int,
    config: CEMConfig = CEMConfig(),
    init_mean: Any = None,
    generator: torch.Generator | None = None,
    *,
    device: Any = None,
    dtype: torch.dtype = torch.float32,
    as_numpy: bool = False,
    init_std: Any = None,
    frozen_blocks: int = 0,
) -> PlanResult:
    """Plan with the cross-entropy method.

    ``init_mean`` (t <= horizon, block_dim): warm start for the first t blocks, the rest start at
    0; sigma starts at ``config.init_std`` everywhere (as the official planner, which resets sigma
    on every plan) unless ``init_std`` (horizon, block_dim) is given (an anytime replan carrying on
    the last plan's search). The first ``frozen_blocks`` blocks are held at ``init_mean`` (sigma 0):
    actions already committed to, which the plan must start with. Each iteration: ``samples`` sequences ~ N(mu, sigma), the first
    replaced by mu, all scored in one ``cost_fn`` call, mu and sigma refit to the ``topk`` lowest
    (sigma: the elites' unbiased std, as ``torch.std``, floored at ``min_std``). Ties rank by
    sample index. Runs on ``device`` (default: ``init_mean``'s, else CPU); samples come from
    ``generator`` (default: a CPU generator seeded with ``config.seed``).
    """
    started = time.perf_counter()
    _check_frozen(frozen_blocks, init_mean)
    device = _device_of(init_mean, device)
    gen = _generator(generator, config.seed)
    H, D, S, K = config.horizon, block_dim, config.samples, config.topk
    mu = _initial(init_mean, H, D, device, dtype)
    sigma = torch.full_like(mu, config.init_std) if init_std is None else torch.as_tensor(init_std, dtype=dtype).to(device).clone()
    if sigma.shape != mu.shape:
        raise ValueError(f"init_std of shape {tuple(sigma.shape)}: expected {tuple(mu.shape)}")
    sigma[:frozen_blocks] = 0.0
    committed = mu[:frozen_blocks].clone()
    best_costs, mean_costs, center_costs = [], [], []
    best_cost = torch.tensor(float("inf"), device=device, dtype=torch.float64)
    best_actions = mu.clone()
    last_best = best_cost
    calls = evaluations = 0
    for _ in range(config.iterations):
        actions = mu + sigma * _randn((S, H, D), gen, device, dtype)
        actions[0] = mu
        costs = _evaluate(cost_fn, actions, as_numpy)
        calls += 1
        evaluations += S
        ranked = _rankable(costs)
        order = torch.sort(ranked, stable=True).indices
        elites = actions[order[:K]]
        last_best = ranked[order[0]].double()
        better = last_best < best_cost
        best_actions = torch.where(better, actions[order[0]], best_actions)
        best_cost = torch.where(better, last_best, best_cost)
        best_costs.append(last_best)
        mean_costs.append(ranked.double().mean())
        center_costs.append(ranked[0].double())
        mu = elites.mean(dim=0)
        mu[:frozen_blocks] = committed  # exactly: the mean of equal values can differ in the last bit
        sigma = elites.std(dim=0, correction=1 if K > 1 else 0).clamp_min(config.min_std)
        sigma[:frozen_blocks] = 0.0
    cost, exact = last_best, False
    if config.evaluate_final:
        cost = _rankable(_evaluate(cost_fn, mu.unsqueeze(0), as_numpy))[0].double()
        calls += 1
        evaluations += 1
        exact = True
        if cost < best_cost:
            best_cost, best_actions = cost, mu.clone()
    history = torch.stack([torch.stack(h) for h in (best_costs, mean_costs, center_costs)]).cpu().tolist()
    if config.keep == "best":
        mu, cost, exact = best_actions, best_cost, True
    return PlanResult(
        actions=mu,
        cost=float(cost),
        cost_exact=exact,
        best_actions=best_actions,
        best_cost=float(best_cost),
        best_costs=history[0],
        mean_costs=history[1],
        center_costs=history[2],
        time_s=time.perf_counter() - started,
        evaluations=evaluations,
        calls=calls,
        std=sigma,
    )


# --------------------------------------------------------------------------------------------------
# Gradient descent
# --------------------------------------------------------------------------------------------------


def gd_plan(
    cost_fn: Callable[[Tensor], Tensor],
    block_dim: int,
    config: GDConfig = GDConfig(),
    init: Any = None,
    generator: torch.Generator | None = None,
    *,
    device: Any = None,
    dtype: torch.dtype = torch.float32,
    frozen_blocks: int = 0,
) -> PlanResult:
    """Plan by SGD on the actions through a differentiable torch cost (batch of 1).

    Each step: ``a <- a - lr * grad(cost)(a)``, then ``a += noise * N(0, 1)`` (as the official
    planner, the noise is added after every step, the last included). ``init`` (t <= horizon,
    block_dim) warm-starts the first t blocks; the rest start per ``config.init``. The first
    ``frozen_blocks`` blocks stay at ``init`` (actions already committed to).
    """
    started = time.perf_counter()
    _check_frozen(frozen_blocks, init)
    device = _device_of(init, device)
    gen = _generator(generator, config.seed)
    H, D = config.horizon, block_dim
    actions = _initial(init, H, D, device, dtype)
    if config.init == "randn":
        covered = _covered(init)
        actions[covered:] = _randn((H - covered, D), gen, device, dtype)
    committed = actions[:frozen_blocks].clone()
    history: list[Tensor] = []
    best_cost = torch.tensor(float("inf"), device=device, dtype=torch.float64)
    best_actions = actions.clone()
    with torch.inference_mode(False), torch.enable_grad():
        for _ in range(config.steps):
            leaf = actions.detach().clone().requires_grad_(True)
            cost = cost_fn(leaf.unsqueeze(0))
            if not isinstance(cost, Tensor) or cost.numel() != 1:
                raise ValueError("gd_plan needs cost_fn to return a torch tensor with one cost for a batch of 1")
            (grad,) = torch.autograd.grad(cost.sum(), leaf, allow_unused=True)
            if grad is None:
                raise ValueError("the cost does not depend on the actions (no gradient reaches them)")
            value = _rankable(cost.detach().reshape(1).double())[0]
            history.append(value)
            better = value < best_cost
            best_actions = torch.where(better, leaf.detach(), best_actions)
            best_cost = torch.where(better, value, best_cost)
            with torch.no_grad():
                actions = leaf.detach() - config.lr * grad
                if config.noise:
                    actions = actions + config.noise * _randn((H, D), gen, device, dtype)
                actions[:frozen_blocks] = committed
    calls = evaluations = config.steps
    cost_value, exact = history[-1], False
    if config.evaluate_final:
        with torch.no_grad():
            cost_value = _rankable(_evaluate(cost_fn, actions.unsqueeze(0), False))[0].double()
        calls += 1
        evaluations += 1
        exact = True
        if cost_value < best_cost:
            best_cost, best_actions = cost_value, actions.clone()
    steps = torch.stack(history).cpu().tolist()
    return PlanResult(
        actions=actions.detach(),
        cost=float(cost_value),
        cost_exact=exact,
        best_actions=best_actions.detach(),
        best_cost=float(best_cost),
        best_costs=steps,
        mean_costs=list(steps),
        center_costs=list(steps),
        time_s=time.perf_counter() - started,
        evaluations=evaluations,
        calls=calls,
    )


# --------------------------------------------------------------------------------------------------
# MPC
# --------------------------------------------------------------------------------------------------


class MPC:
    """Model-predictive control: plan, execute ``execute_blocks`` blocks, replan warm-started.

    ``act(cost_fn)`` returns the next normalised block (block_dim,). When the queue of planned
    blocks is empty it first plans with ``cost_fn`` (the cost for the *current* observation),
    starting from the previous plan's unused tail shifted to the front and padded with zeros
    (sigma reset to ``init_std``), and queues the plan's first ``execute_blocks`` blocks. When
    the queue is not empty ``cost_fn`` is not called; callers with an expensive observation
    encoding can check :attr:`needs_plan` first and pass anything otherwise.

    The controller never stops on success and sees nothing but costs: ending the episode is the
    caller's decision. One generator serves every plan, so a seeded MPC is reproducible while
    consecutive plans still draw fresh samples.
    """

    def __init__(
        self,
        block_dim: int,
        planner: CEMConfig | GDConfig = CEMConfig(),
        config: MPCConfig = MPCConfig(),
        *,
        generator: torch.Generator | None = None,
        device: Any = None,
        dtype: torch.dtype = torch.float32,
        as_numpy: bool = False,
        frameskip: int = FRAMESKIP,
    ) -> None:
        if not isinstance(planner, (CEMConfig, GDConfig)):
            raise TypeError(f"planner must be a CEMConfig or GDConfig, got {type(planner).__name__}")
        if isinstance(planner, GDConfig) and as_numpy:
            raise ValueError("the gradient-descent planner needs a differentiable torch cost, not numpy")
        if config.execute_blocks > planner.horizon:
            raise ValueError(f"execute_blocks ({config.execute_blocks}) exceeds the horizon ({planner.horizon})")
        if block_dim % frameskip:
            raise ValueError(f"block_dim {block_dim} is not a whole number of env actions of frameskip {frameskip}")
        self.block_dim = block_dim
        self.frameskip = frameskip
        self.planner = planner
        self.config = config
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.as_numpy = as_numpy
        self.generator = _generator(generator, planner.seed)
        self.reset()

    def reset(self) -> None:
        """Forget the queue and the warm start (a new episode). The generator carries on."""
        self._queue: list[Tensor] = []
        self.warm_start: Tensor | None = None  # (horizon, block_dim): the next plan's start
        self.last_init: Tensor | None = None  # the start the latest plan was given (None: zeros)
        self.last_plan: PlanResult | None = None
        self.last_frozen = 0  # blocks the latest anytime replan held at the plan before it
        self.plans = 0

    @property
    def needs_plan(self) -> bool:
        """True when the next :meth:`act` will plan (and so call its cost function)."""
        return not self._queue

    @property
    def queued(self) -> int:
        return len(self._queue)

    def plan(self, cost_fn: CostFn) -> PlanResult:
        """Replan now (dropping any queued blocks) and queue the first ``execute_blocks`` blocks."""
        init = self.warm_start if self.config.warm_start else None
        self.last_init = None if init is None else init.clone()
        result = self._plan(cost_fn, init)
        n = self.config.execute_blocks
        actions = result.actions.detach()
        self._queue = list(actions[:n].clone())
        tail = actions[n:]
        self.warm_start = torch.cat([tail, torch.zeros(n, self.block_dim, device=tail.device, dtype=tail.dtype)])
        self.last_plan = result
        self.plans += 1
        return result

    def replan(self, cost_fn: CostFn, elapsed_steps: int | None, commit_blocks: int = 0) -> PlanResult:
        """Anytime replanning: a whole new plan from the current observation, ``elapsed_steps`` env
        steps after the latest plan's. The queue is not used: the caller executes from the newest plan.

        The latest plan, its first ``elapsed_steps`` env actions dropped, is the warm start: CEM's mean
        and, floored at :attr:`MPCConfig.replan_min_std`, its sigma (a replan carries the search on
        rather than restarting it; the uncovered tail starts at zeros and ``init_std``). The first
        ``commit_blocks`` blocks are held at the latest plan's actions: the robot executes those while
        this plan is made, so this plan starts from them (where the latest plan covers them). It starts
        afresh, nothing committed, with ``elapsed_steps`` None (a new episode), at or beyond the latest
        plan's end, with no plan yet, or with :attr:`MPCConfig.warm_start` off (no plan to hold blocks at)."""
        if (elapsed_steps is not None and elapsed_steps < 0) or commit_blocks < 0:
            raise ValueError(f"elapsed_steps and commit_blocks must be >= 0, got {elapsed_steps}, {commit_blocks}")
        steps = self.planner.horizon * self.frameskip
        init = init_std = None
        frozen = 0
        if self.config.warm_start and self.last_plan is not None and elapsed_steps is not None and elapsed_steps < steps:
            last = self.last_plan
            init = shift_steps(last.actions.detach(), elapsed_steps, self.frameskip, 0.0)
            if last.std is not None:
                init_std = shift_steps(last.std.clamp_min(self.config.replan_min_std), elapsed_steps, self.frameskip,
                                       self.planner.init_std)
            frozen = commit_blocks if elapsed_steps + commit_blocks * self.frameskip <= steps else 0
        self.last_init = init
        self.last_frozen = frozen
        result = self._plan(cost_fn, init, init_std, frozen)
        self.last_plan = result
        self.plans += 1
        return result

    def _plan(self, cost_fn: CostFn, init: Tensor | None, init_std: Tensor | None = None, frozen: int = 0) -> PlanResult:
        if isinstance(self.planner, CEMConfig):
            return cem_plan(cost_fn, self.block_dim, self.planner, init, self.generator, device=self.device, dtype=self.dtype,
                            as_numpy=self.as_numpy, init_std=init_std, frozen_blocks=frozen)  # fmt: skip
        return gd_plan(cost_fn, self.block_dim, self.planner, init, self.generator, device=self.device, dtype=self.dtype,
                       frozen_blocks=frozen)  # fmt: skip

    def act(self, cost_fn: CostFn) -> Tensor:
        """The next block to execute (block_dim,), normalised; plans first if the queue is empty."""
        if not self._queue:
            self.plan(cost_fn)
        return self._queue.pop(0)
