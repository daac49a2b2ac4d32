"""The demo's plumbing: its graph resolves and validates, and its summary reads a recording back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from edgerun import PACKAGE
from edgerun.demo import ENGINES, resolve_graph
from edgerun.demo_summary import episode_summary, load_topics, summary_figure
from edgerun.runtime import messages
from edgerun.runtime.graph import load_graph
from edgerun.runtime.recording import McapRecorder
from edgerun.runtime.views import channel_topic, views_of


def test_demo_graph_resolves_and_validates(tmp_path):
    engines = {name: tmp_path / f"{name}.onnx" for name in ENGINES}
    graph = load_graph(resolve_graph(PACKAGE / "graphs" / "demo.yaml", tmp_path, engines))
    assert graph.nodes["planner"].spec.params["anytime"] and graph.nodes["env"].spec.params["control_hz"] == 2.5  # real time
    assert (PACKAGE / "checkpoints" / "dino_wm_wall" / "free_space.npz").is_file()  # the planner's map, shipped
    assert graph.nodes["viewer"].spec.params["save"] == str(tmp_path.resolve() / "demo.rrd")
    assert {"env", "planner", "tracker", "reconstructor", "segmenter", "viewer"} <= set(graph.nodes)
    assert all((PACKAGE / checkpoint).is_file() for checkpoint in ENGINES.values())  # shipped, not downloaded


def test_an_unknown_placeholder_is_named(tmp_path):
    template = tmp_path / "graph.yaml"
    template.write_text("name: x\nnodes:\n  - {id: a, class: 'm:C', params: {p: ${engine:nope}}}\n")
    with pytest.raises(ValueError, match=r"unknown placeholder \$\{engine:nope\} \(known: out, package\)"):
        resolve_graph(template, tmp_path, {})


def write_recording(path: Path) -> None:
    recorder = McapRecorder(path)

    def add(topic: str, capture_ns: int, **data) -> None:
        frames = messages.encode(topic, data, seq=0, capture_ns=capture_ns, sender=topic.split("/")[0])
        recorder.write(messages.decode([bytes(f) for f in frames]), log_time_ns=capture_ns)

    pixels = np.zeros((64, 64, 3), np.uint8)
    add("env/goal", 1, pixels=pixels, proprio=np.array([0.8, 0.5], np.float32), episode=0)
    for i, x in enumerate((0.2, 0.4, 0.6, 0.8)):
        add("env/observation", 10 + 10 * i, pixels=pixels, proprio=np.array([x, 0.5], np.float32), episode=0, step=5 * i)
    add("planner/plan", 11, actions=np.tile([[1.0, 0.0]], (25, 1)).astype(np.float32),
        best_costs=np.array([0.3, 0.1], np.float32), cost=0.1, plan_time_s=2.0)
    cam_from_world = np.tile(np.eye(4, dtype=np.float32), (20, 1, 1))
    cam_from_world[:, 0, 3] = -np.linspace(0, 1, 20)
    stamps = np.arange(100, 120, dtype=np.int64)
    add("reconstructor/reconstruction", 50, skipped=False, cam_from_world=cam_from_world, stamps_ns=stamps,
        points_world=np.random.default_rng(0).normal(size=(20, 30, 3)).astype(np.float32), refined=True,
        feedforward_cam_from_world=np.tile(np.eye(4, dtype=np.float32), (20, 1, 1)))  # the network saw no motion; BA found it
    for stamp, pose in zip(stamps, cam_from_world):  # the true path: the estimate at twice the scale
        true = pose.astype(np.float64)
        true[:3, 3] *= 2.0
        add("env/camera_pose", int(stamp), cam_from_world=true, K=np.eye(3), frame_index=int(stamp) - 100)
    image = np.full((48, 64, 3), 90, np.uint8)
    mask = np.zeros((48, 64), bool)
    mask[10:20, 10:30] = True
    add("env/camera", 60, image=image, target_mask=mask, target="frog", frame_index=0)
    add("segmenter/mask", 60, mask=mask, prompt="frog", task_prompt="the camouflaged animal", trusted=True)
    add("env/camera", 61, image=image, target_mask=mask, target="frog", frame_index=1)
    add("segmenter/mask", 61, mask=np.zeros_like(mask), prompt="the camouflaged animal", task_prompt="the camouflaged animal",
        trusted=False)  # no name explained the object better than the task prompt (INT's (a'))
    add("env/episode", 70, episode=0, seed=1000, steps=100, success=True, duration_s=30.0, steps_to_goal=42, time_to_goal_s=12.5,
        action_latencies_ms=np.linspace(1.0, 10.0, 100), held_steps=3, first_action_s=2.5)
    recorder.close()


def test_summary_reads_the_episode_and_draws_every_panel(tmp_path):
    recording = tmp_path / "demo.mcap"
    write_recording(recording)
    text = episode_summary(recording)
    assert "episode 0 (seed 1000): GOAL REACHED after 100 steps, 30.0 s; first at the goal after 42 steps, 12.5 s" in text
    assert "planner: 1 plans, 2.00 s per plan (mean), final cost 0.1" in text
    assert "real time: action latency p99 9.9 ms over 100 answers, 3 steps held for want of a plan, first plan after 2.5 s" in text
    assert "segmentation: 2 recorded frames show a camouflaged animal; mask IoU with it 0.50 (mean; 1.00 on the 1 trusted), " \
           "instance prompt = its category on 1, the task prompt on 1; 1 of 2 masks published empty (the prompt's mining score too low to trust)" in text
    # the refined estimate is the true path up to scale: ATE 0 after the Sim(3) alignment; the
    # network's (identity cameras) and standing still: the path's RMS spread
    spread = np.sqrt(((2.0 * np.linspace(0, 1, 20) - 1.0) ** 2).mean())
    assert f"reconstruction: 1 windows with motion against the true camera path, ATE median feed-forward {spread:.3f} m, " \
           f"refined by bundle adjustment on 1 of 1 windows, published 0.000 m; a camera that never moved: {spread:.3f} m" in text
    figure = summary_figure(recording, tmp_path / "summary.png")
    pixels = matplotlib.image.imread(figure)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 500
    assert set(load_topics(recording)) == {
        "env/goal", "env/observation", "planner/plan", "reconstructor/reconstruction", "env/camera_pose", "env/camera",
        "segmenter/mask", "env/episode",
    }


def test_summary_says_when_no_episode_ended(tmp_path):
    recording = tmp_path / "empty.mcap"
    McapRecorder(recording).close()
    assert "no episode ended" in episode_summary(recording)
    assert summary_figure(recording, tmp_path / "s.png").is_file()


def test_a_demo_that_cannot_start_says_why_in_one_line(capsys):
    from edgerun.demo import demo_main

    assert demo_main("/proc/no-such-dir/demo", 10.0) == 2
    assert capsys.readouterr().err.strip() == "edgerun demo: [Errno 2] No such file or directory: '/proc/no-such-dir'"


def test_the_recording_keeps_only_the_camera_frames_a_kept_mask_was_computed_on():
    from edgerun.demo import FramesOfResults

    def message(topic: str, capture_ns: int) -> messages.Message:
        frames = messages.encode(topic, {"image": np.zeros((4, 4, 3), np.uint8)} if topic == "env/camera" else {"n": 1},
                                 seq=0, capture_ns=capture_ns, sender=topic.split("/")[0])
        return messages.decode(frames)

    select = FramesOfResults("env/camera", "segmenter/mask", every_s=1.0, keep=3)
    second = 1_000_000_000
    assert select(message("env/camera", 1 * second)) == []  # held back
    for t in (2, 3, 4):
        select(message("env/camera", t * second))
    assert [m.topic for m in select(message("segmenter/mask", 1 * second))] == ["segmenter/mask"]  # frame 1 aged out
    kept = select(message("segmenter/mask", 3 * second))
    assert [(m.topic, m.capture_ns) for m in kept] == [("env/camera", 3 * second), ("segmenter/mask", 3 * second)]
    kept = select(message("segmenter/mask", 3 * second + second // 2))  # half a second later: mask only
    assert [m.topic for m in kept] == ["segmenter/mask"]
    assert [(m.topic, m.capture_ns) for m in select(message("segmenter/mask", 4 * second))][0] == ("env/camera", 4 * second)
    assert [m.topic for m in select(message("env/observation", 5))] == ["env/observation"]  # anything else as it comes


def test_the_demo_records_a_standard_channel_for_every_camera_pose_point_and_mask_and_its_foxglove_layout_fits(tmp_path):
    """The demo's MCAP shows in Foxglove: each camera, pose, point and mask field has a standard view,
    and the layout committed under docs/ names only channels the demo records."""
    engines = {name: tmp_path / f"{name}.onnx" for name in ENGINES}
    graph = load_graph(resolve_graph(PACKAGE / "graphs" / "demo.yaml", tmp_path, engines))
    channels = {}
    for name, node in graph.nodes.items():
        for output, views in views_of(node.cls).items():
            channels.update({channel_topic(f"{name}/{output}", v): type(v).__name__ for v in views})
    assert {"/env/camera/image": "Image", "/env/camera/target_mask": "Image", "/env/camera_pose/cam_from_world": "Transform",
            "/reconstructor/reconstruction/points_world": "Points", "/reconstructor/reconstruction/trajectory": "Trajectory",
            "/segmenter/mask/mask": "Image", "/planner/plan/json": "Json", "/env/episode/json": "Json"}.items() <= channels.items()
    layout = json.loads((PACKAGE / "docs" / "foxglove" / "demo_layout.json").read_text())
    named = set(re.findall(r'"(/[a-z_]+/[a-z_]+/[a-z_]+)', json.dumps(layout)))
    assert named and named <= set(channels), named - set(channels)
