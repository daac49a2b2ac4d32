"""The node contract: choice parameters are checked before anything starts, inputs declare the fields
they read (a message that does not fit never reaches the handler), and the runtime keeps a node's
last error on its status."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pytest
from conftest import RunningGraph, host_processes, wait_for

from edgerun.errors import GraphError, NodeDefinitionError, ParamError
from edgerun.runtime import Array, Latest, Message, Node, Queue, messages
from edgerun.runtime.fields import mismatch
from edgerun.runtime.graph import load_graph
from edgerun.runtime.params import build_params
from edgerun.runtime.services import ServiceError, call

# --- 1. choice parameters are Literal, refused with the choices before anything starts ----------


@dataclass(frozen=True)
class Inner:
    mode: Literal["fast", "exact"] = "fast"


@dataclass(frozen=True)
class Choices:
    planner: Literal["cem", "gd"] = "cem"
    flag: Literal[1, 2] = 1
    inner: Inner = field(default_factory=Inner)


def test_a_literal_parameter_accepts_its_choices_and_refuses_anything_else_naming_them():
    assert build_params(Choices, {"planner": "gd", "inner": {"mode": "exact"}}) == Choices("gd", inner=Inner("exact"))
    with pytest.raises(ParamError, match=r"^params\.planner: expected one of 'cem', 'gd', got 'cme'$"):
        build_params(Choices, {"planner": "cme"})
    with pytest.raises(ParamError, match=r"^params\.flag: expected one of 1, 2, got True$"):  # True == 1, but not a choice
        build_params(Choices, {"flag": True})
    with pytest.raises(ParamError, match=r"^params\.inner\.mode: expected one of 'fast', 'exact', got 'quick'$"):
        build_params(Choices, {"inner": {"mode": "quick"}})


PLANNER_GRAPH = """
name: plan
nodes:
  - id: env
    class: edgerun.nodes.env:EnvNode
    inputs: {action: planner/action}
  - id: planner
    class: edgerun.nodes.planner:Planner
    params: {checkpoint: model.pt, planner: cme}
    inputs: {observation: env/observation, goal: env/goal}
"""
MISTYPED_PLANNER = "nodes[1] (planner).params.planner: expected one of 'cem', 'gd', got 'cme'"


def test_a_mistyped_planner_name_is_refused_when_the_graph_is_validated(tmp_path):
    path = tmp_path / "graph.yaml"
    path.write_text(textwrap.dedent(PLANNER_GRAPH))
    with pytest.raises(GraphError) as error:
        load_graph(path)
    assert str(error.value) == f"{path}: {MISTYPED_PLANNER}"


def test_launch_of_a_graph_with_a_mistyped_planner_name_fails_before_starting_anything(tmp_path, runtime_dir):
    path = tmp_path / "graph.yaml"
    path.write_text(textwrap.dedent(PLANNER_GRAPH))
    result = subprocess.run(
        [sys.executable, "-m", "edgerun.cli", "launch", str(path), "--duration", "5"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""  # not even "launching"
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one message
    assert MISTYPED_PLANNER in result.stderr
    assert not host_processes(runtime_dir)
    assert not list(runtime_dir.rglob("run.json"))


def test_the_planner_presets_are_the_pipelines_presets():
    from typing import get_args, get_type_hints

    from edgerun.nodes.planner import PlannerParams
    from edgerun.pipelines.dino_wm.plan import CEM_PRESETS

    assert set(get_args(get_type_hints(PlannerParams)["preset"])) == set(CEM_PRESETS)


# --- 2. inputs declare their fields; the runner checks them before the handler ------------------


def message(**data) -> Message:
    return messages.decode([bytes(f) for f in messages.encode("camera/frames", data, seq=1, capture_ns=1, sender="camera")])


FIELDS = {"tracks": Array("floating", ("N", 3, "T")), "ids": Array("integer", ("N",)), "width": int, "scale": float}


def test_fields_are_checked_by_dtype_shape_named_sizes_and_scalar_type():
    good = dict(tracks=np.zeros((5, 3, 20), np.float32), ids=np.arange(5), width=640, scale=2)  # an int is a fine float
    assert mismatch(FIELDS, message(**good)) is None
    assert mismatch(FIELDS, message(**{**good, "tracks": np.zeros((5, 3, 20), np.uint8)})) == (
        "wrong_field", "expected floating (N, 3, T) in field 'tracks', got uint8 (5, 3, 20)")
    assert mismatch(FIELDS, message(**{**good, "tracks": np.zeros((5, 2, 20), np.float32)}))[1].endswith("got float32 (5, 2, 20)")
    assert mismatch(FIELDS, message(**{**good, "ids": np.arange(4)})) == (
        "wrong_field", "expected integer (N,) in field 'ids', got int64 (4,) (N is 5 in field 'tracks')")
    assert mismatch(FIELDS, message(**{**good, "width": True})) == ("wrong_field", "expected int in field 'width', got bool True")
    assert mismatch(FIELDS, message(**{**good, "width": "640"})) == ("wrong_field", "expected int in field 'width', got str '640'")
    missing = {k: v for k, v in good.items() if k != "ids"}
    assert mismatch(FIELDS, message(**missing)) == (
        "missing_field", "expected integer (N,) in field 'ids', got nothing (the message has: scale, tracks, width)")
    assert mismatch({"image": Array("uint8")}, message(image=np.zeros((2, 2), np.uint8))) is None  # any shape


def test_a_finite_array_refuses_nan_and_infinity_and_the_planner_declares_its_goal_finite():
    from edgerun.nodes.planner import OBSERVATION

    pixels = np.zeros((64, 64, 3), np.uint8)
    assert mismatch(OBSERVATION, message(pixels=pixels, proprio=np.array([0.2, 0.3]))) is None
    for bad in (np.nan, np.inf, -np.inf):
        assert mismatch(OBSERVATION, message(pixels=pixels, proprio=np.array([0.2, bad]))) == (
            "non_finite", "expected finite floating (P,) in field 'proprio', got 1 NaN or infinite of 2")
    assert mismatch({"n": Array("integer", finite=True)}, message(n=np.arange(3))) is None  # integers are always finite
    assert mismatch({"x": Array("floating")}, message(x=np.array([np.nan]))) is None  # only where declared


def test_bad_field_declarations_are_refused_when_the_class_is_checked():
    with pytest.raises(NodeDefinitionError, match="Array\\('pixels'\\): expected a numpy type name or one of floating"):
        Array("pixels")
    with pytest.raises(NodeDefinitionError, match="each size must be an int >= 0 or a name, got -1"):
        Array("uint8", ("H", -1))

    class Loose(Node):
        inputs = {"frames": Latest(fields={"image": "uint8"})}

        def on_frames(self, msg):
            pass

    with pytest.raises(NodeDefinitionError, match="input 'frames', field 'image': expected Array\\(dtype, shape\\), a type"):
        Loose.check_definition()
    assert Queue(4, fields={"n": int}).maxlen == 4


@pytest.mark.parametrize("consumer", ["DeclaredFrames", "DeclaredLatestFrames"])
def test_messages_that_do_not_fit_the_declaration_are_dropped_counted_and_never_handled(tmp_path, caplog, consumer):
    graph = f"""
    name: fields
    nodes:
      - {{id: source, class: "fixture_nodes:MixedFrames"}}
      - {{id: consumer, class: "fixture_nodes:{consumer}", inputs: {{frames: source/frames}}}}
    """
    with RunningGraph(tmp_path, graph) as running:
        status = wait_for(
            lambda: (s := running.status("consumer"))["details"]["handled"] >= 3
            and {"wrong_field", "missing_field"} <= set(s["inputs"]["frames"]["drops"]) and s,
            20, what="good messages handled after bad ones",
        )
        handled = running.collect("consumer/handled", 2)  # still handling good messages after the bad ones
    drops = status["inputs"]["frames"]["drops"]
    assert drops["wrong_field"] >= 1 and drops["missing_field"] >= 1
    assert status["details"]["kinds"] == ["good"]  # the handler never saw a bad message
    assert all(m["kind"] == "good" and m["shape"] == [24, 32, 3] for m in handled)
    assert status["handler_errors"] == 0 and status["last_error"] is None
    log = caplog.text
    assert "input 'frames': expected uint8 (H, W, 3) in field 'image', got float32 (3, 24, 32) from node 'source'" in log
    assert "input 'frames': expected uint8 (H, W, 3) in field 'image', got nothing (the message has: frame_index, kind)" in log
    assert "node 'consumer' dropped a message (wrong_field, 1 so far)" in log


# --- 3. the runtime keeps a node's last error ------------------------------------------------


def test_a_handler_that_raises_once_shows_the_error_on_the_status_and_the_node_keeps_handling(tmp_path):
    graph = """
    name: fails
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker", params: {rate_hz: 50}}
      - {id: node, class: "fixture_nodes:FailsOnce", inputs: {ticks: ticker/ticks}}
    """
    started_ns = time.time_ns()
    with RunningGraph(tmp_path, graph) as running:
        handled = running.collect("node/handled", 3)
        status = running.status("node")
    error = status["last_error"]
    assert error["type"] == "ValueError" and error["where"] == "input 'ticks'"
    assert error["message"].endswith("refused: the first one always is")
    assert started_ns < error["time_ns"] < time.time_ns()
    assert status["handler_errors"] == 1
    counts = [m["count"] for m in handled]
    assert counts == sorted(counts) and f"tick {counts[0]} refused" not in error["message"]


def test_a_stay_up_node_whose_setup_fails_answers_status_with_the_error_and_drops_its_input(tmp_path, caplog):
    graph = """
    name: refuses
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker", params: {rate_hz: 50}}
      - {id: node, class: "fixture_nodes:RefusesSetup", inputs: {ticks: ticker/ticks}}
    """
    with RunningGraph(tmp_path, graph) as running:
        status = wait_for(lambda: (s := running.status("node"))["inputs"]["ticks"]["drops"].get("setup_failed", 0) >= 5 and s,
                          10, what="dropped ticks")
        with pytest.raises(ServiceError, match="node 'node' failed in setup: CheckpointError: model.pt: not a readable"):
            call(running.endpoint("node", "srv"), "ping")
        assert all(thread.is_alive() for thread in running.threads)
    assert status["last_error"]["where"] == "setup" and status["last_error"]["type"] == "CheckpointError"
    assert status["last_error"]["message"] == "model.pt: not a readable checkpoint (a test)"
    assert status["handler_errors"] == 0  # the handler never ran
    assert "node 'node' failed in setup; it stays up" in caplog.text
