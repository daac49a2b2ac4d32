"""The planner node keeps its plan when the env repeats the goal, and publishes each new plan whole."""

from __future__ import annotations

import logging

import gymnasium
import numpy as np
from conftest import RunningGraph
from test_planner_node import loop_graph, write_small_checkpoint

import edgerun.envs  # noqa: F401  (registers edgerun/Wall-v0)
from edgerun.nodes.planner import Planner, PlannerParams
from edgerun.runtime import messages


def small_checkpoint(tmp_path):
    return write_small_checkpoint(tmp_path / "small.pt")


def message(topic, data):
    return messages.decode([bytes(f) for f in messages.encode(topic, data, seq=0, capture_ns=1, sender="env")])


def test_a_repeated_goal_keeps_the_plan_and_a_new_one_replaces_it(tmp_path):
    node = Planner.__new__(Planner)
    node.params = PlannerParams(checkpoint=str(small_checkpoint(tmp_path)), samples=16, iterations=1)
    node.log = logging.getLogger("test")
    node.setup()
    env = gymnasium.make("edgerun/Wall-v0")
    observation, info = env.reset(seed=0)
    goal = message("env/goal", {"pixels": info["goal_pixels"], "proprio": info["goal_proprio"], "episode": 0})
    node.on_goal(goal)
    node.policy.act(observation["pixels"], observation["proprio"])
    assert not node.policy.needs_plan
    node.on_goal(goal)  # the env sends its goal again every second
    assert not node.policy.needs_plan
    _, info = env.reset(seed=1)
    node.on_goal(message("env/goal", {"pixels": info["goal_pixels"], "proprio": info["goal_proprio"], "episode": 1}))
    assert node.policy.needs_plan


def test_each_new_plan_goes_out_whole(tmp_path):
    with RunningGraph(tmp_path, loop_graph(small_checkpoint(tmp_path))) as running:
        plans = running.collect("planner/plan", 2, timeout_s=30)
    for plan in plans:
        assert plan["actions"].shape == (25, 2) and plan["actions"].dtype == np.float32  # horizon 5 blocks x 5 steps
        assert plan["best_costs"].shape == (2,) and np.isfinite(plan["cost"]) and plan["plan_time_s"] > 0  # 2 iterations
