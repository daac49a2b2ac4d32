"""DINO-WM as a policy: an observation and a goal in, the next block of env actions out.

:class:`MPCPolicy` is the one MPC path of the project: ``edgerun eval dino-wm``, the perfect-model
ceiling and the planner node all act through it, so what is measured is what is deployed. It plans
with any :class:`PlanningModel`:

- :class:`WorldModelPlanning`: a DINO-WM checkpoint. The goal is encoded once per goal, the
  observation once per replan, and every CEM sample of an iteration is evaluated in one batched
  call, of the torch model or of an exported planning-cost engine (ONNX Runtime or TensorRT,
  ``edgerun export dino-wm-wall …``; the paper's objective only);
- ``evaluation.dino_wm.ceiling.SimulatorPlanning``: the env's own dynamics (a perfect model).

What a plan is scored by is the :class:`Objective`: DINO-WM's last-state latent distance
(``paper``) or the distance through free space of every predicted position (``free_space``, the
default, see ``free_space.py``). The policy sees images, proprio and model costs only; nothing of
the environment's success test reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np
import torch

from edgerun.errors import PlanningCancelled
from edgerun.models.dino_wm.world_model import DinoWorldModel, Latent
from edgerun.pipelines.dino_wm.free_space import CostToGo, FreeSpaceMap
from edgerun.pipelines.dino_wm.plan import (
    MPC,
    CEMConfig,
    CostFn,
    GDConfig,
    MPCConfig,
    block_to_env_actions,
)


@dataclass(frozen=True)
class Objective:
    """How a candidate plan is scored.

    ``paper``: DINO-WM's ``MSE(last predicted visual latent, goal's) + alpha * MSE(proprio
    embeddings)``. Its minima include every place next to a wall on the straight line to the goal.
    ``free_space``: the mean, over the plan's predicted blocks, of each predicted position's distance
    to the goal through free space (:class:`~.free_space.FreeSpaceMap`), plus ``speed_weight`` times
    the speed at the last block (when the proprio holds a velocity, ``(x, y, vx, vy)``): a plan that
    gets there early and stays beats one that passes through. Positions come from the predicted
    proprio (the world model's proprio embedding, decoded by its linear proprio encoder's inverse).
    """

    kind: Literal["paper", "free_space"] = "free_space"
    speed_weight: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in ("paper", "free_space"):
            raise ValueError(f"Objective.kind: expected 'paper' or 'free_space', got {self.kind!r}")
        if self.speed_weight < 0:
            raise ValueError(f"Objective.speed_weight must be >= 0, got {self.speed_weight}")


PAPER_OBJECTIVE = Objective("paper")


def cem_for(objective: Objective, cem: CEMConfig, exact_model: bool = False) -> CEMConfig:
    """CEM as each objective's planner runs it: the paper's as given; the free-space planner's with
    its final mean scored, keeping the best sequence scored when the model is exact (the env's own
    dynamics) and the elites' mean when it is learned (``CEMConfig.keep``). With an exact model the
    lowest score is the best plan; a learned model's lowest of 3,000 scores is biased low by its
    errors (the optimiser's curse), and the mean of the elites averages them out (docs/dino_wm.md)."""
    if objective.kind == "paper":
        return cem
    return replace(cem, evaluate_final=True, keep="best" if exact_model else "mean")


def free_space_cost(cost_to_go: CostToGo, states: np.ndarray, speed_weight: float) -> np.ndarray:
    """(S, horizon, P) predicted proprio of S plans -> (S,) :class:`Objective` ``free_space`` costs."""
    states = np.asarray(states, dtype=np.float64)
    cost = cost_to_go(states[..., :2]).mean(axis=1)
    if states.shape[-1] >= 4 and speed_weight:
        cost = cost + speed_weight * np.linalg.norm(states[:, -1, 2:4], axis=-1)
    return cost


class PlanningModel(Protocol):
    """What :class:`MPCPolicy` plans with: a state from an observation, and a batched plan cost."""

    block_dim: int
    frameskip: int
    action_mean: np.ndarray
    action_std: np.ndarray
    as_numpy: bool  # the cost function takes numpy actions (an engine) rather than torch

    def encode(self, pixels: np.ndarray, proprio: np.ndarray) -> Any: ...

    def cost(self, observation: Any, goal: Any, objective: Objective, cost_to_go: CostToGo | None, differentiable: bool) -> CostFn: ...


class MPCPolicy:
    """Observation + goal → env actions, replanning as MPC over CEM (or GD) with a :class:`PlanningModel`.

    ``free_space`` is required by the ``free_space`` objective (one per env, beside its checkpoint).
    ``generator`` seeds the planner's samples (one generator for every plan: a seeded policy is
    reproducible). ``should_stop`` is asked before every cost evaluation of a plan (each CEM iteration,
    each GD step); once it says True the plan is given up with :class:`PlanningCancelled`.
    """

    def __init__(
        self,
        model: PlanningModel,
        planner: CEMConfig | GDConfig = CEMConfig(),
        mpc: MPCConfig = MPCConfig(),
        objective: Objective = Objective(),
        free_space: FreeSpaceMap | None = None,
        generator: torch.Generator | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        if objective.kind == "free_space" and free_space is None:
            raise ValueError("the free_space objective needs the env's free-space map (free_space.npz beside the "
                             "checkpoint: edgerun train dino-wm-map), or use the paper objective")
        if objective.kind == "free_space" and isinstance(planner, GDConfig):
            raise ValueError("gradient descent needs a differentiable objective: use the paper objective with GD")
        if objective.kind == "free_space" and model.as_numpy:
            raise ValueError("an exported planning-cost engine computes the paper objective only: plan with the torch "
                             "model for the free_space objective")
        self.model = model
        self.objective = objective
        self.free_space = free_space
        self.should_stop = should_stop
        self.mpc = MPC(model.block_dim, planner, mpc, generator=generator, as_numpy=model.as_numpy, frameskip=model.frameskip)
        self.goal: Any = None
        self.cost_to_go: CostToGo | None = None
        self.plan_times_s: list[float] = []

    def reset(self) -> None:
        self.mpc.reset()

    def set_goal(self, pixels: np.ndarray, proprio: np.ndarray) -> None:
        self.goal = self.model.encode(pixels, proprio)
        if self.free_space is not None and self.objective.kind == "free_space":
            self.cost_to_go = self.free_space.cost_to_go(np.asarray(proprio, dtype=np.float64))
        self.mpc.reset()  # a new goal invalidates the queued plan

    @property
    def needs_plan(self) -> bool:
        return self.mpc.needs_plan

    def act(self, pixels: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """The next ``frameskip`` env actions, (frameskip, action_dim); replans when the queue is empty."""
        if self.goal is None:
            raise RuntimeError("no goal yet: call set_goal() before act()")
        planned = self.mpc.needs_plan
        block = self.mpc.act(self._cost_fn(self.model.encode(pixels, proprio)) if planned else None)
        if planned:
            self.plan_times_s.append(self.mpc.last_plan.time_s)
        actions = block_to_env_actions(block, self.model.action_mean, self.model.action_std, self.model.frameskip)
        return np.asarray(actions, dtype=np.float32)

    def replan(self, pixels: np.ndarray, proprio: np.ndarray, elapsed_steps: int | None, commit_blocks: int = 0) -> np.ndarray:
        """Anytime MPC: a whole new plan from this observation, ``elapsed_steps`` env steps after the
        latest plan's (None: afresh), warm-started from it, its first ``commit_blocks`` blocks held at the latest
        plan's (:meth:`MPC.replan`) → its env actions, (horizon * frameskip, action_dim). The caller
        executes from the newest plan (the planner node's anytime mode)."""
        if self.goal is None:
            raise RuntimeError("no goal yet: call set_goal() before replan()")
        result = self.mpc.replan(self._cost_fn(self.model.encode(pixels, proprio)), elapsed_steps, commit_blocks)
        self.plan_times_s.append(result.time_s)
        steps = self.model.frameskip * result.actions.shape[0]  # the blocks are frame-major: one row of env actions
        actions = block_to_env_actions(result.actions.reshape(-1), self.model.action_mean, self.model.action_std, steps)
        return np.asarray(actions, dtype=np.float32)

    def _cost_fn(self, observation: Any) -> Any:
        differentiable = isinstance(self.mpc.planner, GDConfig)
        cost = self.model.cost(observation, self.goal, self.objective, self.cost_to_go, differentiable)
        if self.should_stop is None:
            return cost
        should_stop = self.should_stop

        def unless_stopping(actions: Any) -> Any:
            if should_stop():
                raise PlanningCancelled("planning given up: the node is stopping")
            return cost(actions)

        return unless_stopping


class WorldModelPlanning:
    """A DINO-WM checkpoint as a :class:`PlanningModel`.

    ``action_mean`` / ``action_std`` (per env action dimension) map the planner's normalised action
    space to the env's; they come from the training data. ``cost_engine`` (optional) is an Engine of
    the exported planning cost (paper objective); without it the torch model is used.
    """

    def __init__(self, model: DinoWorldModel, action_mean: np.ndarray, action_std: np.ndarray, cost_engine: Any = None):
        self.model = model.eval()
        self.action_mean = np.asarray(action_mean, dtype=np.float32)
        self.action_std = np.asarray(action_std, dtype=np.float32)
        self.frameskip = model.config.predictor.frameskip
        self.block_dim = model.config.predictor.action_input_dim
        self.cost_engine = cost_engine
        self.as_numpy = cost_engine is not None

    def encode(self, pixels: np.ndarray, proprio: np.ndarray) -> Latent:
        return encode_observation(self.model, pixels, proprio)

    def cost(self, observation: Latent, goal: Latent, objective: Objective, cost_to_go: CostToGo | None, differentiable: bool) -> CostFn:
        if objective.kind == "free_space":
            assert cost_to_go is not None, "MPCPolicy computes the cost-to-go with the goal"
            return free_space_rollout_cost(self.model, observation, cost_to_go, objective.speed_weight)
        if self.cost_engine is not None:
            return engine_cost(self.cost_engine, observation, goal)
        return rollout_cost(self.model, observation, goal, differentiable)


def decode_proprio(model: DinoWorldModel, proprio_emb: torch.Tensor) -> torch.Tensor:
    """(..., emb_dim) proprio embeddings -> (..., proprio_dim) raw proprio: the least-squares inverse
    of the model's linear proprio encoder (exact for embeddings it produced; emb_dim >= proprio_dim)."""
    projection = model.proprio_encoder.proj
    return (proprio_emb - projection.bias) @ torch.linalg.pinv(projection.weight).T


def free_space_rollout_cost(model: DinoWorldModel, observation: Latent, cost_to_go: CostToGo, speed_weight: float) -> CostFn:
    """``cost(actions (S, horizon, block_dim)) -> (S,)``: one batched rollout, every predicted block's
    proprio decoded and scored by :func:`free_space_cost`."""

    @torch.no_grad()
    def cost(actions: torch.Tensor) -> torch.Tensor:
        samples = actions.shape[0]
        start = Latent(observation.visual.expand(samples, -1, -1, -1), observation.proprio.expand(samples, -1, -1))
        states = decode_proprio(model, model.rollout(start, actions).proprio)
        return torch.from_numpy(free_space_cost(cost_to_go, states.numpy(), speed_weight))

    return cost


def images_to_model(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) RGB → float (B, 1, 3, H, W) in [-1, 1] (mean 0.5, std 0.5)."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.shape[-1] != 3 or array.ndim not in (3, 4):
        raise ValueError(f"expected uint8 RGB images (H, W, 3) or (B, H, W, 3), got {array.dtype} {array.shape}")
    images = torch.from_numpy(np.array(array if array.ndim == 4 else array[None]))  # a copy: messages are read-only
    return (images.permute(0, 3, 1, 2).float() / 127.5 - 1.0).unsqueeze(1)


@torch.no_grad()
def encode_observation(model: DinoWorldModel, pixels: np.ndarray, proprio: np.ndarray) -> Latent:
    """An observation -> :class:`Latent` (batch 1, one frame) with the model's frozen encoder."""
    proprio_tensor = torch.tensor(np.asarray(proprio, dtype=np.float32)).reshape(1, 1, -1)
    expected = model.config.predictor.proprio_dim
    if proprio_tensor.shape[-1] != expected:
        raise ValueError(f"expected proprio of {expected} values, got {np.asarray(proprio).shape}")
    return model.encode(images_to_model(pixels), proprio_tensor)


def engine_cost(engine: Any, observation: Latent, goal: Latent) -> Any:
    """``cost(actions (S, horizon, block_dim) numpy) -> (S,) numpy`` through an Engine of the exported
    planning cost (``edgerun export dino-wm-wall…``): the observation and goal latents are its context."""
    context = {
        "visual": observation.visual.numpy(),
        "proprio_emb": observation.proprio.numpy(),
        "goal_visual": goal.visual[:, -1].numpy(),
        "goal_proprio_emb": goal.proprio[:, -1].numpy(),
    }
    return lambda actions: engine(actions=np.ascontiguousarray(actions, dtype=np.float32), **context)["cost"]


def rollout_cost(model: DinoWorldModel, observation: Latent, goal: Latent, differentiable: bool = False) -> Any:
    """``cost(actions (S, horizon, block_dim)) -> (S,)``: one batched rollout of all S samples from the
    observation, scored against the goal (normalised actions, as the planners produce them)."""

    def cost(actions: torch.Tensor) -> torch.Tensor:
        samples = actions.shape[0]
        start = Latent(observation.visual.expand(samples, -1, -1, -1), observation.proprio.expand(samples, -1, -1))
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            return model.planning_cost(model.rollout(start, actions), goal)

    return cost
