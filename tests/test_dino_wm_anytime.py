"""Anytime planning: a planning thread that never makes the robot wait, and the closed loop in real time."""

from __future__ import annotations

import time

import gymnasium
import numpy as np
import pytest
import torch

from edgerun.envs import WALL_ID
from edgerun.evaluation.dino_wm.ceiling import ACTION_STD, SimulatorPlanning
from edgerun.evaluation.dino_wm.episodes import seeded_episodes
from edgerun.evaluation.dino_wm.realtime import RealtimeConfig, realtime_evaluate
from edgerun.models.dino_wm.checkpoint import save_checkpoint
from edgerun.models.dino_wm.config import SMALL_WALL
from edgerun.models.dino_wm.world_model import DinoWorldModel
from edgerun.pipelines.dino_wm.anytime import AnytimePlanner
from edgerun.pipelines.dino_wm.free_space import FILE_NAME, FreeSpaceMap
from edgerun.pipelines.dino_wm.plan import CEMConfig
from edgerun.pipelines.dino_wm.policy import MPCPolicy, Objective

OPEN = FreeSpaceMap(np.zeros(2), 0.1, np.ones((10, 10), dtype=bool))


def wait_until(condition, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_the_planner_thread_answers_from_the_newest_plan_and_warm_starts_the_next():
    env = gymnasium.make(WALL_ID)
    obs, info = env.reset(seed=0, options={"start": (0.7, 0.3), "goal": (0.8, 0.6)})
    model = SimulatorPlanning(env.unwrapped, np.zeros(2), ACTION_STD["Wall"])
    policy = MPCPolicy(model, CEMConfig(horizon=5, samples=32, topk=4, iterations=2), objective=Objective(), free_space=OPEN,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    planner = AnytimePlanner(policy)
    assert planner.actions_for(0, 0, 5) is None  # nothing planned: the robot holds, nobody waits
    planner.start()
    try:
        planner.set_goal(0, info["goal_pixels"], info["goal_proprio"])
        planner.observe(0, 0, obs["pixels"], obs["proprio"])
        first = wait_until(lambda: planner.newest)
        assert first.step == 0 and first.actions.shape == (25, 2)
        np.testing.assert_array_equal(planner.actions_for(0, 0, 5), first.actions[:5])
        np.testing.assert_array_equal(planner.actions_for(0, 3, 5), first.actions[3:8])  # a later step: its slice
        assert planner.actions_for(0, 25, 5) is None and planner.actions_for(1, 0, 5) is None  # past it, another episode
        assert planner.take_new_plan() is first and planner.take_new_plan() is None  # published once
        planner.observe(0, 10, obs["pixels"], obs["proprio"])
        second = wait_until(lambda: planner.newest if planner.newest.step == 10 else None)
        # warm start: the first plan without the ten steps executed since its observation, padded
        expected = policy_blocks(np.concatenate([first.actions[10:], np.zeros((10, 2), np.float32)]))
        torch.testing.assert_close(policy.mpc.last_init, expected)
        # the last plan took ten steps: this one commits to the two blocks the robot runs meanwhile
        assert second.actions.shape == (25, 2) and policy.mpc.last_frozen == 2
        np.testing.assert_allclose(second.actions[:10], first.actions[10:20], rtol=1e-6)
    finally:
        planner.stop()
    assert not planner._thread.is_alive()


def policy_blocks(actions: np.ndarray) -> torch.Tensor:
    """Env actions (25, 2) back to the normalised (5, 10) blocks they came from."""
    return torch.from_numpy((actions / np.asarray(ACTION_STD["Wall"])).reshape(5, 10).astype(np.float32))


def test_a_failed_plan_is_reported_and_planning_goes_on():
    class Refusing(SimulatorPlanning):
        def cost(self, observation, *args):
            if observation[0] < 0:
                raise RuntimeError("a state the model refuses")
            return super().cost(observation, *args)

    env = gymnasium.make(WALL_ID)
    obs, info = env.reset(seed=0)
    model = Refusing(env.unwrapped, np.zeros(2), ACTION_STD["Wall"])
    policy = MPCPolicy(model, CEMConfig(horizon=5, samples=8, topk=2, iterations=1), objective=Objective(), free_space=OPEN)
    errors = []
    planner = AnytimePlanner(policy, on_error=errors.append)
    planner.start()
    try:
        planner.set_goal(0, info["goal_pixels"], info["goal_proprio"])
        planner.observe(0, 0, obs["pixels"], np.array([-1.0, 0.5], np.float32))
        assert "refuses" in str(wait_until(lambda: errors)[0])
        planner.observe(0, 1, obs["pixels"], obs["proprio"])
        assert wait_until(lambda: planner.newest).step == 1
    finally:
        planner.stop()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("realtime") / "model.pt"
    save_checkpoint(path, DinoWorldModel(SMALL_WALL), SMALL_WALL, {"action_mean": [0.0, 0.0], "action_std": [1.0, 1.0]})
    OPEN.save(path.with_name(FILE_NAME))
    return path


def test_realtime_evaluation_runs_the_graph_in_processes_on_the_robots_clock(tiny_checkpoint):
    config = RealtimeConfig(control_hz=20.0, samples=16, iterations=1, max_steps=30, timeout_s=120.0)
    result = realtime_evaluate(tiny_checkpoint, WALL_ID, episodes=2, seed=0, config=config)
    assert [r["steps"] for r in result["episode_records"]] == [30, 30]
    for record in result["episode_records"]:
        assert record["answers"] > 0  # the env asked every tick and took the answers it got
        assert record["duration_s"] >= 30 / 20 * 0.9  # it stepped on its own clock, not as fast as answers came
    assert result["action_latency_p99_ms"] > 0 and result["replan_hz"] > 0
    assert 0.0 <= result["success_rate"] <= 1.0
    assert [r["seed"] for r in result["episode_records"]] == [e.seed for e in seeded_episodes(0, 2)]  # the offline episodes
