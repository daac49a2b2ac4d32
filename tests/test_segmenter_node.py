"""The INT segmenter node in graphs (launched processes; threads for the error cases), on tiny contract-following ONNX components."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import RunningGraph, wait_for
from int_onnx_standins import write_components
from int_standins import make_scene, stand_in_components

from edgerun.nodes.segmenter import Segmenter, SegmenterParams
from edgerun.pipelines.int_seg.algorithm import INTConfig
from edgerun.sim.camouflage import CATEGORIES


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    """``components.yaml`` of working stand-ins, plus configs that break them: name → path."""
    directory = tmp_path_factory.mktemp("int_components")
    good = write_components(directory)
    text = good.read_text()
    missing = directory / "missing.yaml"
    missing.write_text(text.replace("onnx: scorer.onnx", "onnx: no_such_scorer.onnx"))
    broken = directory / "broken.yaml"
    broken.write_text(text.replace("onnx: scorer.onnx", "onnx: detector.onnx"))  # a detector where the scorer goes
    return {"good": good, "missing": missing, "broken": broken}


def test_streaming_mines_once_then_grounds_and_mines_again_every_n_frames_or_on_a_new_prompt(launch, components):
    graph = launch(f"""
    name: segment
    nodes:
      - id: camera
        class: edgerun.nodes.camouflage_camera:CamouflageCamera
        params: {{width: 160, height: 120, fps: 5}}
      - id: prompter
        class: int_fixture_nodes:PromptSender
        params: {{prompt: "a hidden animal", after_s: 4.0}}
      - id: segmenter
        class: edgerun.nodes.segmenter:Segmenter
        params: {{components: "{components['good']}", mode: streaming, remine_every: 3, min_confidence: 0.0, iterations: 2}}
        inputs: {{frames: camera/frames, prompt: prompter/prompt}}
    """).wait_running(timeout_s=40)
    socket = graph.subscribe("segmenter/mask")
    masks = graph.receive(socket, 8, timeout_s=30)
    while sum(m["task_prompt"] == "a hidden animal" for m in masks) < 7 and len(masks) < 60:  # the prompter switches at 4 s
        masks += graph.receive(socket, 1, timeout_s=10)
    status = graph.status("segmenter", where=lambda s: s["details"]["frames"] >= 3)
    assert all(m["mask"].dtype == np.bool_ and m["mask"].shape == (120, 160) for m in masks)
    assert all(m["prompt"] in (*CATEGORIES, m["task_prompt"]) and len(m["candidates"]) == len(m["scores"]) for m in masks if m["mined"])
    # Every frame is answered; mining happens on every third one, and at once on a new task prompt.
    switch = next(i for i, m in enumerate(masks) if m["task_prompt"] == "a hidden animal")
    assert masks[switch]["mined"] and all(m["task_prompt"] == "a hidden animal" for m in masks[switch:])
    for run in (masks[:switch], masks[switch:]):
        mined = [i for i, m in enumerate(run) if m["mined"]]
        assert np.all(np.diff(mined) == 3), [m["mined"] for m in run]
    assert status["last_error"] is None and status["details"]["mined"] >= 1 and status["handler_errors"] == 0


def test_bad_configs_prompts_and_frames_are_reported_and_the_node_stays_up(tmp_path, components, caplog):
    segmenter = "edgerun.nodes.segmenter:Segmenter"
    graph = f"""
    name: segment_errors
    nodes:
      - id: camera
        class: edgerun.nodes.camouflage_camera:CamouflageCamera
        params: {{width: 160, height: 120, fps: 5}}
      - id: gray
        class: int_fixture_nodes:FrameSender
        params: {{shape: [120, 160]}}
      - id: missing
        class: {segmenter}
        params: {{components: "{components['missing']}"}}
        inputs: {{frames: camera/frames}}
      - id: broken
        class: {segmenter}
        params: {{components: "{components['broken']}"}}
        inputs: {{frames: camera/frames}}
      - id: empty
        class: {segmenter}
        params: {{components: "{components['good']}", prompt: ""}}
        inputs: {{frames: camera/frames}}
      - id: shape
        class: {segmenter}
        params: {{components: "{components['good']}"}}
        inputs: {{frames: gray/frames}}
    """
    settled = {  # each node keeps answering status and counting frames: still up
        "missing": lambda s: s["inputs"]["frames"]["drops"].get("setup_failed", 0) >= 2,  # setup failed: frames dropped
        "broken": lambda s: s["inputs"]["frames"]["drops"].get("setup_failed", 0) >= 2,
        "empty": lambda s: s["handler_errors"] >= 2,  # the handler refuses every frame
        "shape": lambda s: s["inputs"]["frames"]["drops"].get("wrong_field", 0) >= 2,  # dropped before the handler
    }
    statuses = {}
    with RunningGraph(tmp_path, graph) as running:
        for node, done in settled.items():
            statuses[node] = wait_for(lambda: done(s := running.status(node, timeout_s=20)) and s, 40, what=f"errors of {node}")
    errors = {node: status["last_error"] for node, status in statuses.items()}
    assert errors["missing"]["where"] == errors["broken"]["where"] == "setup"
    assert "no_such_scorer.onnx: file not found; expected an ONNX model with inputs images float32 (batch, 3, S, S)" in errors["missing"]["message"]
    assert "detector.onnx breaks the scorer contract" in errors["broken"]["message"] and "Expected inputs images" in errors["broken"]["message"]
    assert errors["empty"]["where"] == "input 'frames'"
    assert errors["empty"]["message"] == "empty task prompt: set parameter 'prompt' or send one on input 'prompt'"
    assert errors["shape"] is None and statuses["shape"]["handler_errors"] == 0
    assert "input 'frames': expected uint8 (H, W, 3) in field 'image', got uint8 (120, 160) from node 'gray'" in caplog.text
    assert "no_such_scorer.onnx" in caplog.text and "breaks the scorer contract" in caplog.text


def stand_in_node(params: SegmenterParams) -> tuple[Segmenter, list[dict]]:
    """A streaming segmenter on ground-truth stand-in components, without sockets; and the list
    its published messages go to."""
    node = Segmenter.__new__(Segmenter)
    node.params = params
    node.log = logging.getLogger("test-segmenter")
    components = stand_in_components(target="frog", confidence={"frog": 0.5, "car": 0.9, "leaf": 0.9})
    node.load = lambda: (components, INTConfig(iterations=2, vocabulary=("frog", "car", "leaf")))
    node.setup()
    published: list[dict] = []
    node.publish = lambda output, **data: published.append(data)
    return node, published


def test_streaming_mines_again_when_the_prompts_confidence_drops():
    """The node's logic alone (no sockets), with ground-truth stand-in components."""
    node, published = stand_in_node(SegmenterParams(mode="streaming", remine_every=0, min_confidence=0.5, iterations=2))
    with_frog = make_scene({"frog": (20, 30, 40), "car": (100, 70, 20)}).image
    frog_gone = make_scene({"car": (100, 70, 20)}).image
    for image in (with_frog, with_frog, with_frog, frog_gone, with_frog):
        node.on_frames({"image": image})
    assert [m["mined"] for m in published] == [True, False, False, True, False]
    assert [m["prompt"] for m in published] == ["frog", "frog", "frog", "car", "car"]
    assert published[1]["confidence"] >= 0.5 and node.status_fields()["mined"] == 2


def test_a_mask_whose_prompt_mined_too_low_a_score_is_published_empty_and_counted():
    """The node's logic alone: the same frames through nodes whose threshold is just at and just
    over the mined score; streaming frames carry the score of the mining they ground."""
    frog = make_scene({"frog": (20, 30, 40), "car": (100, 70, 20)}).image

    def run(min_mining_score):
        node, published = stand_in_node(SegmenterParams(mode="streaming", remine_every=0, min_confidence=0.0, iterations=2,
                                                        min_mining_score=min_mining_score))
        for _ in range(3):
            node.on_frames({"image": frog})
        return published, node.status_fields()

    trusting, status = run(None)  # the components' threshold: 0, every mask
    score = trusting[0]["mining_score"]
    assert score > 0 and all(m["trusted"] and m["mask"].any() and m["mining_score"] == score for m in trusting)
    assert status["untrusted_frames"] == 0 and status["min_mining_score"] == 0.0
    at, _ = run(score)
    assert all(m["trusted"] and m["mask"].any() for m in at)
    over, status = run(score + 1e-6)
    assert [m["mined"] for m in over] == [True, False, False] and not any(m["trusted"] or m["mask"].any() for m in over)
    assert all(m["prompt"] == "frog" and m["mask"].shape == frog.shape[:2] for m in over)  # said, not hidden
    assert status["untrusted_frames"] == 3 and status["mining_score"] == round(score, 4)
