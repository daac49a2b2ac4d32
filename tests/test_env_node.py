"""The env node: a gymnasium env driven by action messages, with reset as a service."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RunningGraph, wait_for

from edgerun.envs.wall import MAX_SPEED
from edgerun.runtime.services import ServiceError, call


def graph(action_shape: str, env_id: str = "edgerun/Wall-v0", value: str = "0.5") -> str:
    return f"""
    name: envnode
    nodes:
      - id: env
        class: edgerun.nodes.env:EnvNode
        params: {{env_id: {env_id}, seed: 3}}
        inputs: {{action: policy/action}}
      - {{id: policy, class: "fixture_nodes:ActionSender", params: {{shape: {action_shape}, value: {value}}}}}
    """


def test_env_node_steps_on_actions_and_publishes_observations_and_goal(tmp_path):
    with RunningGraph(tmp_path, graph("[2]")) as running:
        goal = running.collect("env/goal", 1)[0]
        socket = running.subscribe("env/observation")
        assert socket.poll(5000)  # subscribed: nothing published from now on is missed
        reply = call(running.endpoint("env", "srv"), "reset", seed=11, options={"start": [0.2, 0.3], "goal": [0.8, 0.7]})
        observations = [m for m in running.collect("env/observation", 10, socket=socket) if m["episode"] == 1][:3]
    assert goal["pixels"].shape == (64, 64, 3) and goal["proprio"].shape == (2,)
    assert reply["episode"] == 1 and reply["seed"] == 11
    assert [m["step"] for m in observations] == [0, 1, 2]
    np.testing.assert_allclose(observations[0]["proprio"], [0.2, 0.3])
    positions = np.array([m["proprio"] for m in observations])
    np.testing.assert_allclose(np.diff(positions, axis=0), 0.5 * MAX_SPEED, atol=1e-5)  # (+0.5, +0.5) x max speed per step
    assert observations[0]["pixels"].dtype == np.uint8
    assert not np.array_equal(observations[0]["pixels"], observations[2]["pixels"])


def test_wrong_action_shape_is_refused_clearly_and_env_stays_up(tmp_path, caplog):
    with RunningGraph(tmp_path, graph("[3]")) as running:
        status = wait_for(lambda: (s := running.status("env"))["inputs"]["action"]["drops"].get("shape", 0) >= 3 and s, 10,
                          what="refused actions")
        reply = call(running.endpoint("env", "srv"), "reset")
    assert status["inputs"]["action"]["received"] >= 3
    assert status["handler_errors"] == 0 and status["last_error"] is None  # a refusal, not a failure
    assert reply["episode"] == 1  # still serving
    assert "input 'action': expected float32 (2,) or a block (k, 2), got float32 (3,)" in caplog.text
    assert "from 'policy'" in caplog.text and "Traceback" not in caplog.text


def test_env_node_runs_point_maze_rendered_offscreen_by_mujoco_in_its_process(tmp_path):
    with RunningGraph(tmp_path, graph("[2]", "edgerun/PointMaze-v0")) as running:
        goal = running.collect("env/goal", 1)[0]
        observations = running.collect("env/observation", 3)
    assert goal["pixels"].shape == (64, 64, 3) and goal["proprio"].shape == (4,)  # x, y, vx, vy
    assert all(m["proprio"].shape == (4,) and m["pixels"].dtype == np.uint8 for m in observations)
    assert observations[0]["pixels"].std() > 10  # a rendered maze, not a blank buffer
    assert not np.array_equal(observations[0]["proprio"], observations[-1]["proprio"])  # the policy's actions move it


def test_non_finite_actions_are_dropped_and_out_of_range_ones_clipped(tmp_path):
    """The env executes no action that is not finite and inside its action space."""
    with RunningGraph(tmp_path, graph("[2]", value=".nan")) as running:
        status = wait_for(lambda: (s := running.status("env"))["inputs"]["action"]["drops"].get("non_finite", 0) >= 3 and s,
                          10, what="non-finite actions dropped")  # fmt: skip
    assert status["details"]["step"] == 0 and status["handler_errors"] == 0
    with RunningGraph(tmp_path, graph("[2]", value="50.0")) as running:
        socket = running.subscribe("env/observation")
        assert socket.poll(5000)
        positions = [m["proprio"] for m in running.collect("env/observation", 4, socket=socket) if m["step"] > 0]
        status = wait_for(lambda: (s := running.status("env"))["details"]["clipped_actions"] >= 3 and s, 10, what="clipped")
    steps = np.abs(np.diff(np.array(positions), axis=0))
    assert np.all(steps <= MAX_SPEED + 1e-5), steps  # moved as the largest action allows, not 50x
    assert status["details"]["clipped_actions"] <= status["details"]["step"] + 1


def test_a_refused_reset_changes_nothing(tmp_path):
    with RunningGraph(tmp_path, graph("[2]")) as running:
        endpoint = running.endpoint("env", "srv")
        for bad in ({"seed": -1}, {"options": {"start": [float("nan"), 0.3]}}):
            with pytest.raises(ServiceError, match="ParamError: reset: (seed|options) must"):
                call(endpoint, "reset", **bad)
        with pytest.raises(ServiceError, match=r"reset: unknown field 'sead' \(known: seed, options\)"):
            call(endpoint, "reset", sead=3)
        status = running.status("env")
        assert status["details"]["episode"] == 0 and "Traceback" not in str(status["last_error"])  # one line, not a traceback
        reply = call(endpoint, "reset", seed=4)
    assert (reply["episode"], reply["seed"]) == (1, 4)


def test_refused_actions_with_a_made_up_seq_count_no_missed_messages(tmp_path):
    """Each good action is followed by a wrong-shape one claiming seq 1: the env refuses those, and
    their seq must not turn the next good action into a gap (it used to count one per pair)."""
    text = graph("[2]").replace('"fixture_nodes:ActionSender", params: {shape: [2], value: 0.5}', '"fixture_nodes:ShapeLiar"')
    with RunningGraph(tmp_path, text) as running:
        status = wait_for(lambda: (s := running.status("env"))["inputs"]["action"]["drops"].get("shape", 0) >= 30 and s, 15,
                          what="refused actions")
    drops = status["inputs"]["action"]["drops"]
    assert drops.get("missed", 0) == 0, drops
    assert status["details"]["step"] > 0 or status["details"]["episode"] > 0  # the good ones were executed


def test_an_unknown_env_id_ends_the_node_with_one_clear_line():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "edgerun.cli", "run", "edgerun.nodes.env:EnvNode", "--param",
                             "env_id=gym://edgerun/Wall-v0", "--duration", "5"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "UnknownEnvError: unknown env id 'gym://edgerun/Wall-v0': registered edgerun envs are" in result.stderr
    assert "Traceback" not in result.stderr  # edgerun's own error: its message, not a stack
