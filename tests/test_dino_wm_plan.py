"""DINO-WM planners on analytic toy problems whose optimum is known (no world model needed).

Costs used:
- ``quadratic``: mean over the horizon of ||cumsum(actions) - target||^2 (an MSE, like DINO-WM's
  latent objective, so SGD with lr 1 is stable), optimum 0 at a_0 = target, a_t>0 = 0;
- ``reach``: a point mass integrating the (denormalised, clipped) env actions of every block;
  cost = ||final position - goal||^2 ("last" objective), optimum 0 for any plan ending at the goal,
  or the sum over every block's end ("all"), used in closed loop: with "last", a receding horizon
  (execute 1 block) wanders near the goal (measured final distance 0.1-0.4 over 12 seeds), since
  only a plan's end matters; with "all" both MPC settings end within 0.08 on 12 seeds out of 12.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np
import pytest
import torch

from edgerun.pipelines.dino_wm.plan import (
    CEM_PRESETS,
    FRAMESKIP,
    GD_PAPER,
    MPC,
    MPC_PAPER,
    MPC_RECEDING,
    CEMConfig,
    GDConfig,
    MPCConfig,
    block_dim,
    block_to_env_actions,
    cem_plan,
    denormalise,
    gd_plan,
    merge_blocks,
    normalise,
    shift_steps,
    split_block,
)

ACTION_DIM = 2
BLOCK = block_dim(ACTION_DIM)  # 10
DT = 0.1
ACTION_MEAN = np.array([0.1, -0.1])
ACTION_STD = np.array([0.6, 0.6])


def quadratic(target: torch.Tensor):
    def cost(actions: torch.Tensor) -> torch.Tensor:
        return ((actions.cumsum(1) - target) ** 2).mean((1, 2))

    return cost


def reach(start, goal, objective="last"):
    """Perfect model of :class:`PointMass` (without its noise): normalised blocks -> squared distance
    to the goal of the final position (``"last"``) or summed over every block's end (``"all"``)."""
    start = torch.as_tensor(start, dtype=torch.float32)
    goal = torch.as_tensor(goal, dtype=torch.float32)

    def cost(actions: torch.Tensor) -> torch.Tensor:
        env = split_block(denormalise(actions, ACTION_MEAN, ACTION_STD), FRAMESKIP)  # (S, H, 5, 2)
        ends = start + DT * env.clamp(-1, 1).sum(2).cumsum(1)  # (S, H, 2) position after each block
        distances = ((ends - goal) ** 2).sum(-1)
        return distances[:, -1] if objective == "last" else distances.sum(-1)

    return cost


class PointMass:
    """A numpy point mass: pos += dt * clip(action, -1, 1) + noise. Its success test is for the
    test only; it raises while ``planning`` so any leak into the planner would fail loudly."""

    def __init__(self, goal, seed=0, noise=0.005):
        self.pos = np.zeros(2)
        self.goal = np.asarray(goal, dtype=float)
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self.planning = False
        self.steps = 0

    def step(self, action: np.ndarray) -> np.ndarray:
        self.pos = self.pos + DT * np.clip(action, -1, 1) + self.noise * self.rng.standard_normal(2)
        self.steps += 1
        return self.pos.copy()

    def success(self) -> bool:
        assert not self.planning, "the simulator's success test reached the planner"
        return bool(np.linalg.norm(self.pos - self.goal) < 0.2)


class Recorder:
    """Wraps a cost function and keeps every batch it is called with."""

    def __init__(self, cost):
        self.cost = cost
        self.batches: list[torch.Tensor] = []
        self.costs: list[torch.Tensor] = []

    def __call__(self, actions):
        self.batches.append(torch.as_tensor(actions).clone())
        out = self.cost(actions)
        self.costs.append(torch.as_tensor(out).clone())
        return out


# --------------------------------------------------------------------------------------------------
# configs and helpers
# --------------------------------------------------------------------------------------------------


def test_presets_follow_the_paper():
    for name, iterations in (("pusht", 30), ("pointmaze", 10), ("wall", 10)):
        c = CEM_PRESETS[name]
        assert (c.horizon, c.samples, c.topk, c.iterations, c.init_std) == (5, 300, 30, iterations, 1.0)
    assert (GD_PAPER.horizon, GD_PAPER.steps, GD_PAPER.lr, GD_PAPER.noise, GD_PAPER.init) == (5, 1000, 1.0, 0.003, "zeros")
    assert MPC_PAPER.execute_blocks == 5 and MPC_RECEDING.execute_blocks == 1
    assert BLOCK == 10 and FRAMESKIP == 5
    with pytest.raises(ValueError):
        CEMConfig(topk=301)
    with pytest.raises(ValueError):
        MPC(BLOCK, CEMConfig(horizon=3), MPCConfig(execute_blocks=4))


def test_normalise_and_blocks_round_trip():
    rng = np.random.default_rng(0)
    env = rng.uniform(-1, 1, size=(3 * FRAMESKIP, ACTION_DIM))  # 15 env actions
    blocks = merge_blocks(normalise(env, ACTION_MEAN, ACTION_STD))  # (3, 10), stats tiled per frame
    assert blocks.shape == (3, BLOCK)
    np.testing.assert_allclose(blocks[1, 2:4], (env[6] - ACTION_MEAN) / ACTION_STD)  # frame-major layout
    np.testing.assert_allclose(split_block(denormalise(blocks, ACTION_MEAN, ACTION_STD)).reshape(-1, 2), env)
    np.testing.assert_allclose(block_to_env_actions(torch.from_numpy(blocks[2]), ACTION_MEAN, ACTION_STD), env[10:])
    t = torch.from_numpy(blocks).float()
    torch.testing.assert_close(denormalise(normalise(t, ACTION_MEAN, ACTION_STD), ACTION_MEAN, ACTION_STD), t)
    assert split_block(t).shape == (3, FRAMESKIP, ACTION_DIM)


# --------------------------------------------------------------------------------------------------
# CEM
# --------------------------------------------------------------------------------------------------


def test_cem_samples_refit_and_one_batched_call_per_iteration():
    """Every call: S samples; sample 0 is the current mean; the rest are mu + sigma * N(0, 1) from
    the seeded generator; the next mean / sigma are the top-k's mean / unbiased std."""
    config = CEMConfig(horizon=5, samples=300, topk=30, iterations=7, seed=3)
    target = torch.linspace(-1, 1, BLOCK)
    rec = Recorder(quadratic(target))
    init = torch.full((2, BLOCK), 0.25)  # warm start for 2 blocks, the rest zeros
    result = cem_plan(rec, BLOCK, config, init_mean=init)

    assert len(rec.batches) == config.iterations == result.calls
    assert result.evaluations == config.iterations * config.samples
    gen = torch.Generator().manual_seed(3)
    mu = torch.cat([init, torch.zeros(3, BLOCK)])
    sigma = torch.ones(5, BLOCK)
    for actions, costs in zip(rec.batches, rec.costs):
        assert actions.shape == (300, 5, BLOCK)
        noise = torch.randn((300, 5, BLOCK), generator=gen)
        torch.testing.assert_close(actions[0], mu, rtol=0, atol=0)  # the first sample IS the mean
        torch.testing.assert_close(actions[1:], mu + sigma * noise[1:])
        elites = actions[torch.argsort(costs, stable=True)[:30]]
        mu, sigma = elites.mean(0), elites.std(0)
    torch.testing.assert_close(result.actions, mu)
    assert not result.cost_exact and result.cost == pytest.approx(float(rec.costs[-1].min()))
    assert result.center_costs[0] == pytest.approx(float(rec.costs[0][0]))
    assert len(result.best_costs) == len(result.mean_costs) == config.iterations


def test_cem_evaluate_final_adds_one_call_for_the_mean():
    rec = Recorder(quadratic(torch.ones(BLOCK)))
    result = cem_plan(rec, BLOCK, CEMConfig(iterations=4, seed=0, evaluate_final=True))
    assert [b.shape[0] for b in rec.batches] == [300] * 4 + [1]
    torch.testing.assert_close(rec.batches[-1][0], result.actions)
    assert result.cost_exact and result.cost == pytest.approx(float(rec.costs[-1][0]))
    assert (result.calls, result.evaluations) == (5, 1201)


def test_cem_can_keep_the_best_sequence_where_the_mean_of_elites_drifts():
    """A cost flat but for one exact optimum, which the first sample (the zero mean) hits: the mean
    of the elites wanders off it, the best sequence scored does not."""

    def zero_or_one(actions):
        return (actions.abs().amax(dim=(1, 2)) > 1e-6).double()  # 0 only for the all-zero plan

    config = CEMConfig(horizon=3, samples=20, topk=5, iterations=3, evaluate_final=True)
    mean = cem_plan(zero_or_one, BLOCK, config, generator=torch.Generator().manual_seed(0))
    best = cem_plan(zero_or_one, BLOCK, replace(config, keep="best"), generator=torch.Generator().manual_seed(0))
    assert mean.actions.abs().max() > 0.1 and mean.best_cost == 0.0  # the mean drifted; the zero plan was scored
    assert torch.equal(best.actions, torch.zeros(3, BLOCK)) and best.cost == 0.0 and best.cost_exact
    with pytest.raises(ValueError, match="keep must be 'mean' or 'best'"):
        CEMConfig(keep="median")


def test_cem_reaches_the_optimum():
    """Measured over seeds 0-19, 30 iterations. Quadratic, 2-d blocks: final-mean cost 4e-5..1.3e-3
    (0.965 for the zero plan), largest action error 0.13. Reach, 10-d blocks: final-mean cost
    2.5e-3..1.3e-2 (2.125 for the zero plan), best sample 4e-7..3e-5."""
    target = torch.tensor([0.7, -1.2])
    cost = quadratic(target)
    zero = float(cost(torch.zeros(1, 5, 2)))
    for seed in range(3):
        result = cem_plan(cost, 2, CEMConfig(iterations=30, seed=seed))
        exact = float(cost(result.actions[None]))
        assert exact < 5e-3 * zero, (seed, exact, zero)
        assert result.best_costs[-1] <= result.best_costs[0]
        expected = torch.zeros(5, 2)
        expected[0] = target
        torch.testing.assert_close(result.actions, expected, atol=0.2, rtol=0)

    reach_cost = reach([0, 0], [1.5, -1.0])
    zero = float(reach_cost(torch.zeros(1, 5, BLOCK)))
    for seed in range(3):
        result = cem_plan(reach_cost, BLOCK, CEM_PRESETS["pusht"], generator=torch.Generator().manual_seed(seed))
        assert float(reach_cost(result.actions[None])) < 0.05 * zero
        assert result.best_cost < 1e-3


def test_cem_is_deterministic_with_a_seed():
    cost = quadratic(torch.linspace(-1, 1, BLOCK))
    a = cem_plan(cost, BLOCK, CEMConfig(seed=11))
    b = cem_plan(cost, BLOCK, CEMConfig(seed=11))
    c = cem_plan(cost, BLOCK, CEMConfig(seed=12))
    torch.testing.assert_close(a.actions, b.actions, rtol=0, atol=0)
    assert a.best_costs == b.best_costs and a.mean_costs == b.mean_costs
    assert not torch.equal(a.actions, c.actions)
    d = cem_plan(cost, BLOCK, CEMConfig(), generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(a.actions, d.actions, rtol=0, atol=0)


def test_cem_numpy_cost_and_nonfinite_costs():
    """An engine-style cost (numpy float32 in, numpy out) gives the same plan as torch; NaN ranks last."""
    torch_cost = quadratic(torch.linspace(-1, 1, BLOCK))
    seen = []

    def numpy_cost(actions):
        assert isinstance(actions, np.ndarray) and actions.dtype == np.float32 and actions.flags.c_contiguous
        seen.append(actions.shape)
        costs = torch_cost(torch.from_numpy(actions)).numpy()
        costs[5] = np.nan  # a diverged rollout
        return costs

    def nan_torch_cost(actions):
        costs = torch_cost(actions)
        costs[5] = float("nan")
        return costs

    a = cem_plan(numpy_cost, BLOCK, CEMConfig(seed=0), as_numpy=True)
    b = cem_plan(nan_torch_cost, BLOCK, CEMConfig(seed=0))
    assert seen == [(300, 5, BLOCK)] * 10
    torch.testing.assert_close(a.actions, b.actions)
    assert np.isfinite(a.cost) and np.isfinite(a.best_cost)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_cem_through_onnx_runtime_with_a_dynamic_batch(tmp_path):
    """The cost exported to ONNX with a dynamic batch and run by ONNX Runtime plans like torch."""
    ort = pytest.importorskip("onnxruntime")
    reach_cost = reach([0, 0], [1.5, -1.0])

    class Cost(torch.nn.Module):
        def forward(self, actions):
            return reach_cost(actions)

    path = tmp_path / "cost.onnx"
    torch.onnx.export(
        Cost(), (torch.zeros(3, 5, BLOCK),), str(path), input_names=["actions"], output_names=["cost"],
        dynamic_axes={"actions": {0: "batch"}, "cost": {0: "batch"}}, opset_version=17, dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    engine_cost = lambda actions: session.run(["cost"], {"actions": actions})[0]
    config = CEMConfig(iterations=10, seed=5, evaluate_final=True)  # batches of 300 and 1
    via_ort = cem_plan(engine_cost, BLOCK, config, as_numpy=True)
    via_torch = cem_plan(reach_cost, BLOCK, config)
    torch.testing.assert_close(via_ort.actions, via_torch.actions, atol=1e-4, rtol=0)
    assert via_ort.cost == pytest.approx(via_torch.cost, abs=1e-5)


def test_paper_budget_evaluates_every_sample_in_one_call_per_iteration():
    """300 samples x 30 iterations, horizon 5, block 10 (timing is `edgerun bench planning`'s job)."""
    cost = reach([0, 0], [1.5, -1.0])
    result = cem_plan(cost, BLOCK, CEM_PRESETS["pusht"], generator=torch.Generator().manual_seed(0))
    assert result.evaluations == 9000 and result.calls == 30


# --------------------------------------------------------------------------------------------------
# GD
# --------------------------------------------------------------------------------------------------


def test_gd_update_rule():
    """One step from zeros on a linear cost: a = -lr * c + noise * N(0, 1) from the seeded generator."""
    c = torch.randn(5, BLOCK, generator=torch.Generator().manual_seed(1))
    linear = lambda actions: (actions * c).sum((1, 2))
    result = gd_plan(linear, BLOCK, GDConfig(steps=1, lr=0.5, noise=0.003, seed=9))
    noise = torch.randn((5, BLOCK), generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(result.actions, -0.5 * c + 0.003 * noise)
    assert result.calls == 2 and result.best_costs == [0.0]
    with pytest.raises(ValueError, match="does not depend"):
        gd_plan(lambda a: torch.zeros(a.shape[0], requires_grad=True), BLOCK, GDConfig(steps=1))


def test_gd_converges_on_a_differentiable_quadratic():
    """Paper settings (lr 1, 1000 steps, noise 0.003) from zeros. Measured cost 7e-5..1.6e-4 over
    20 seeds (0.33 at zero), about 0.2 s."""
    target = torch.linspace(-1, 1, BLOCK)
    cost = quadratic(target)
    result = gd_plan(cost, BLOCK, GD_PAPER, generator=torch.Generator().manual_seed(0))
    print(f"GD 1000 steps: cost {result.cost:.2e} in {result.time_s * 1e3:.0f} ms")
    assert result.cost_exact and result.cost < 1e-3 and result.best_costs[0] == pytest.approx(float(cost(torch.zeros(1, 5, BLOCK))))
    expected = torch.zeros(5, BLOCK)
    expected[0] = target
    torch.testing.assert_close(result.actions, expected, atol=0.05, rtol=0)
    # warm start from the optimum: stays there (only the noise moves it)
    warm = gd_plan(cost, BLOCK, GDConfig(steps=50, seed=0), init=expected[:1])
    assert warm.best_costs[0] == pytest.approx(0.0, abs=1e-12) and warm.cost < 1e-4


# --------------------------------------------------------------------------------------------------
# MPC
# --------------------------------------------------------------------------------------------------


def test_mpc_executes_blocks_and_warm_starts_from_the_tail():
    target = torch.linspace(-1, 1, BLOCK)
    rec = Recorder(quadratic(target))
    mpc = MPC(BLOCK, CEMConfig(iterations=3, seed=0), MPCConfig(execute_blocks=2))
    first = [mpc.act(rec) for _ in range(2)]
    assert len(rec.batches) == 3 and mpc.plans == 1 and mpc.needs_plan and mpc.last_init is None
    plan1 = mpc.last_plan.actions.clone()
    torch.testing.assert_close(torch.stack(first), plan1[:2])

    third = mpc.act(rec)  # queue ran out: replan, warm-started
    assert len(rec.batches) == 6 and mpc.plans == 2 and mpc.queued == 1
    expected_init = torch.cat([plan1[2:], torch.zeros(2, BLOCK)])  # unused tail shifted, zero padded
    torch.testing.assert_close(mpc.last_init, expected_init, rtol=0, atol=0)
    torch.testing.assert_close(rec.batches[3][0], expected_init, rtol=0, atol=0)  # mu starts there
    spread = (rec.batches[3][1:] - expected_init).std(0)  # sigma reset to init_std = 1 everywhere
    assert torch.allclose(spread, torch.ones_like(spread), atol=0.15)
    torch.testing.assert_close(third, mpc.last_plan.actions[0])

    mpc.reset()
    mpc.act(rec)
    assert mpc.last_init is None and mpc.plans == 1

    # the paper's setting: the whole 5-block plan runs before replanning, whose start is all zeros
    paper = MPC(BLOCK, CEMConfig(iterations=2, seed=0), MPC_PAPER)
    for _ in range(6):
        paper.act(rec)
    assert paper.plans == 2
    torch.testing.assert_close(paper.last_init, torch.zeros(5, BLOCK), rtol=0, atol=0)

    gd = MPC(BLOCK, GDConfig(steps=5, seed=0), MPCConfig(execute_blocks=1))
    gd.act(quadratic(target))
    tail = gd.last_plan.actions[1:].clone()
    gd.act(quadratic(target))
    torch.testing.assert_close(gd.last_init, torch.cat([tail, torch.zeros(1, BLOCK)]))


def test_shift_steps_drops_env_steps_not_whole_blocks():
    blocks = torch.arange(5 * BLOCK, dtype=torch.float32).reshape(5, BLOCK)  # env step i holds 2i, 2i + 1
    shifted = shift_steps(blocks, 3, FRAMESKIP, -1.0)
    steps = shifted.reshape(25, ACTION_DIM)
    torch.testing.assert_close(steps[:22], blocks.reshape(25, ACTION_DIM)[3:])
    assert (steps[22:] == -1).all()
    assert (shift_steps(blocks, 40, FRAMESKIP, 0.0) == 0).all()  # past the plan: all fill


def test_anytime_replan_carries_the_search_on_and_commits_to_the_executed_blocks():
    """A replan 7 env steps after the last plan: its mean and sigma shifted by 7 steps (not rounded to
    blocks), sigma floored at replan_min_std, and its first 2 blocks (the 10 steps the robot executes
    while it is made) held at the last plan's, in every sample and in the result."""
    target = torch.linspace(-1, 1, BLOCK)
    rec = Recorder(quadratic(target))
    mpc = MPC(BLOCK, CEMConfig(iterations=3, samples=400, topk=40, seed=0), MPCConfig(replan_min_std=0.3))
    first = mpc.replan(rec, elapsed_steps=0)
    assert mpc.last_init is None and mpc.last_frozen == 0 and first.std.shape == (5, BLOCK)
    second = mpc.replan(rec, elapsed_steps=7, commit_blocks=2)
    init = shift_steps(first.actions, 7, FRAMESKIP, 0.0)
    torch.testing.assert_close(mpc.last_init, init, rtol=0, atol=0)
    assert mpc.last_frozen == 2
    batch = rec.batches[3]
    torch.testing.assert_close(batch[:, :2], init[:2].expand(400, -1, -1), rtol=0, atol=0)  # committed: no noise
    torch.testing.assert_close(second.actions[:2], init[:2], rtol=0, atol=0)
    spread = (batch[1:, 2:] - init[2:]).std(0)
    expected = shift_steps(first.std.clamp_min(0.3), 7, FRAMESKIP, 1.0)[2:]  # carried, floored; the new tail at init_std
    torch.testing.assert_close(spread, expected, rtol=0.2, atol=0.02)
    # past the last plan's end: afresh, nothing committed; commits beyond what the last plan covers: none
    mpc.replan(rec, elapsed_steps=25, commit_blocks=1)
    assert mpc.last_init is None and mpc.last_frozen == 0
    mpc.replan(rec, elapsed_steps=20, commit_blocks=2)
    assert mpc.last_frozen == 0
    mpc.replan(rec, elapsed_steps=0)
    mpc.replan(rec, elapsed_steps=None, commit_blocks=2)  # a new episode: afresh
    assert mpc.last_init is None and mpc.last_frozen == 0
    with pytest.raises(ValueError, match="elapsed_steps"):
        mpc.replan(rec, elapsed_steps=-1)
    for frozen in (-1, 3):  # only blocks the initial plan gives can be held
        with pytest.raises(ValueError, match=f"frozen_blocks {frozen}: expected 0 to 2"):
            cem_plan(rec, BLOCK, CEMConfig(iterations=1, samples=8, topk=2), init[:2], frozen_blocks=frozen)

    gd = MPC(BLOCK, GDConfig(steps=5, seed=0))
    plan = gd.replan(quadratic(target), 0).actions.clone()
    torch.testing.assert_close(gd.replan(quadratic(target), 5, commit_blocks=1).actions[0], plan[1], rtol=0, atol=0)


def test_no_success_signal_reaches_the_planners():
    for fn in (cem_plan, gd_plan, MPC.__init__, MPC.act, MPC.plan):
        names = " ".join(inspect.signature(fn).parameters)
        for word in ("success", "env", "evaluator", "done", "terminate"):
            assert word not in names, (fn.__name__, word)


@pytest.mark.parametrize(("config", "plans"), [(MPC_PAPER, 4), (MPC_RECEDING, 20)])
def test_mpc_closed_loop_reaches_the_goal(config, plans):
    """100 env steps (20 blocks) from (0, 0) to a goal beyond one plan's reach (2.5 per axis).
    Measured final distance over 12 seeds: 0.02-0.07 (paper), 0.02-0.08 (receding); threshold 0.2."""
    goal = np.array([3.0, -2.0])
    env = PointMass(goal, seed=1)
    mpc = MPC(BLOCK, CEM_PRESETS["pointmaze"], config, generator=torch.Generator().manual_seed(0))
    distances = []
    for _ in range(20):
        env.planning = True
        block = mpc.act(reach(env.pos.copy(), goal, "all"))  # the model's cost for the current observation
        env.planning = False
        for action in block_to_env_actions(block, ACTION_MEAN, ACTION_STD):
            env.step(action)
        distances.append(float(np.linalg.norm(env.pos - goal)))
    print(f"execute_blocks={config.execute_blocks}: distance per block {np.round(distances, 3).tolist()}")
    assert mpc.plans == plans and env.steps == 100
    assert env.success(), distances  # checked by the test, after the episode
    assert max(distances[-3:]) < 0.2
