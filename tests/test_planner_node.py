"""The DINO-WM planner node in a closed loop with the env node; clear errors that keep it up."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import RunningGraph, wait_for

from edgerun.models.dino_wm.checkpoint import save_checkpoint
from edgerun.models.dino_wm.config import SMALL_WALL
from edgerun.models.dino_wm.world_model import DinoWorldModel
from edgerun.pipelines.dino_wm.free_space import FILE_NAME, FreeSpaceMap


def write_small_checkpoint(path):
    """An untrained SMALL_WALL model, and beside it the default objective's map with every place free."""
    torch.manual_seed(0)
    save_checkpoint(path, DinoWorldModel(SMALL_WALL), SMALL_WALL, {"action_mean": [0.0, 0.0], "action_std": [1.0, 1.0]})
    FreeSpaceMap(np.zeros(2), 0.1, np.ones((10, 10), dtype=bool)).save(path.with_name(FILE_NAME))
    return path


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    return write_small_checkpoint(tmp_path_factory.mktemp("ckpt") / "small_wall.pt")


def loop_graph(checkpoint) -> str:
    return f"""
    name: loop
    nodes:
      - id: env
        class: edgerun.nodes.env:EnvNode
        params: {{env_id: edgerun/Wall-v0, seed: 1}}
        inputs: {{action: planner/action}}
      - id: planner
        class: edgerun.nodes.planner:Planner
        params: {{checkpoint: "{checkpoint}", samples: 32, iterations: 2, execute_blocks: 2, threads: 1}}
        inputs: {{observation: env/observation, goal: env/goal}}
    """


def test_planner_closes_the_loop_with_the_env(tmp_path, small_checkpoint):
    with RunningGraph(tmp_path, loop_graph(small_checkpoint)) as running:
        actions = running.collect("planner/action", 4, timeout_s=30)
        status = wait_for(lambda: (s := running.status("planner"))["details"].get("plans", 0) >= 2 and s, 30, what="plans")
        observation = running.collect("env/observation", 1)[0]
    assert all(a["action"].shape == (5, 2) and a["action"].dtype == np.float32 for a in actions)
    assert [a["replanned"] for a in actions[:2]] in ([True, False], [False, True])  # 2 blocks per plan
    assert status["details"]["plan_time_s_mean"] > 0 and status["details"]["has_goal"]
    assert status["details"]["torch_threads"] == 1  # the graph's `threads`
    assert (observation["episode"], observation["step"]) >= (0, 10)  # driven, 5 steps per block (maybe into episode 2)


@pytest.mark.parametrize(("content", "reason"), [("not a checkpoint", "not a readable torch checkpoint"), ("", "empty file (0 bytes)")])
def test_unloadable_checkpoint_is_reported_and_node_stays_up(tmp_path, caplog, content, reason):
    broken = tmp_path / "broken.pt"
    broken.write_text(content)
    with RunningGraph(tmp_path, loop_graph(broken)) as running:
        dropped = lambda s: s["inputs"]["observation"]["drops"].get("setup_failed", 0) >= 2  # noqa: E731
        status = wait_for(lambda: dropped(s := running.status("planner")) and s, 15, what="observations dropped")
    error = status["last_error"]
    assert error["where"] == "setup" and error["type"] == "CheckpointError"
    assert f"{broken}: {reason}" in error["message"]
    assert status["handler_errors"] == 0  # no handler runs on a node whose setup failed
    assert "node 'planner' failed in setup; it stays up" in caplog.text and str(broken) in caplog.text


def test_observation_of_wrong_dtype_is_refused_clearly(small_checkpoint):
    from edgerun.pipelines.dino_wm.policy import images_to_model

    with pytest.raises(ValueError, match=r"expected uint8 RGB images \(H, W, 3\) or \(B, H, W, 3\), got float32 \(64, 64\)"):
        images_to_model(np.zeros((64, 64), np.float32))


def test_copies_of_an_observation_sent_while_planning_are_not_answered_again() -> None:
    """The env re-sends its observation while it waits; copies sent before the answer went out are
    stale (answering them would send a block nobody asked for, or replan from a state already left),
    a copy sent after the answer means the answer was lost and is answered."""
    from edgerun.nodes.planner import Planner
    from edgerun.runtime import messages

    def observation(step: int, send_ns: int) -> messages.Message:
        frames = messages.encode("env/observation", {"episode": 0, "step": step}, seq=0, capture_ns=1, sender="env",
                                 send_ns=send_ns)  # fmt: skip
        return messages.decode([bytes(f) for f in frames])

    planner = Planner.__new__(Planner)  # only the bookkeeping: no runner, no model
    planner.answered = None
    assert not planner.is_stale_copy(observation(5, send_ns=100))
    planner.answered = (0, 5, 1_000)  # answered step 5 at t = 1000 ns
    assert planner.is_stale_copy(observation(5, send_ns=900))  # re-sent while the plan was being made
    assert not planner.is_stale_copy(observation(5, send_ns=1_100))  # re-sent after: the answer was lost
    assert not planner.is_stale_copy(observation(10, send_ns=900))  # a new step is always answered


def test_a_plan_in_progress_is_given_up_between_iterations_when_the_node_stops() -> None:
    """So a graph stops within its bound instead of abandoning a planner mid-plan."""
    from edgerun.errors import PlanningCancelled
    from edgerun.pipelines.dino_wm.plan import CEMConfig
    from edgerun.pipelines.dino_wm.policy import MPCPolicy, WorldModelPlanning

    torch.manual_seed(0)
    asked = []
    policy = MPCPolicy(WorldModelPlanning(DinoWorldModel(SMALL_WALL).eval(), np.zeros(2), np.ones(2)),
                       CEMConfig(horizon=5, samples=8, topk=2, iterations=10),
                       free_space=FreeSpaceMap(np.zeros(2), 0.1, np.ones((10, 10), dtype=bool)),
                       should_stop=lambda: asked.append(1) or len(asked) > 3)  # fmt: skip
    pixels, proprio = np.zeros((64, 64, 3), np.uint8), np.array([0.5, 0.5], np.float32)
    policy.set_goal(pixels, proprio)
    with pytest.raises(PlanningCancelled):
        policy.act(pixels, proprio)
    assert len(asked) == 4  # three iterations ran, the fourth was given up
    assert policy.needs_plan and policy.plan_times_s == []  # nothing of the plan was queued
