"""The tracker and reconstructor nodes in real processes: camera → tracker → reconstructor, and
windows that cannot be reconstructed flagged and skipped while the nodes stay up."""

from __future__ import annotations

import numpy as np
from conftest import reconstruct_graph, wait_for

from edgerun.calibration.camera import Intrinsics


def test_camera_tracker_reconstructor_graph_turns_frames_into_chained_cameras(launch, t4d_checkpoint):
    camera = """class: edgerun.nodes.scene_camera:RenderedSceneCamera
        params: {seed: 1, frames: 25, width: 320, height: 240, fps: 25}"""
    graph = launch(reconstruct_graph("reconstruct", camera, t4d_checkpoint)).wait_running(timeout_s=60)
    windows = graph.receive(graph.subscribe("reconstructor/reconstruction"), 2, timeout_s=60)
    status = graph.status("reconstructor", where=lambda s: s["details"].get("windows", 0) >= 2)
    first, second = windows
    assert not first["skipped"] and not second["skipped"]
    assert second["start_frame"] - first["start_frame"] == 10
    tracks = first["track_ids"].shape[0]
    assert first["cam_from_world"].shape == (20, 4, 4) and first["points_world"].shape == (20, tracks, 3)
    assert first["gamma"].shape == (tracks,) and (first["gamma"] > 0).all() and first["focal"].shape == (20,)
    assert first["stamps_ns"].shape == (20,) and first.capture_ns == first["stamps_ns"][-1]
    np.testing.assert_allclose(second["trajectory"][:10], first["trajectory"][10:], atol=1e-5)  # chained: shared frames agree
    assert status["handler_errors"] == 0 and status["details"]["skipped"] == 0


def test_bad_windows_and_frames_are_flagged_and_skipped_while_the_nodes_stay_up(launch, t4d_checkpoint, tmp_path):
    checkpoint = t4d_checkpoint
    calibration = Intrinsics(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), np.zeros(5), (1280, 720)).save(tmp_path / "cam.yaml")
    graph = launch(f"""
    name: faults
    heartbeat_timeout_s: 60
    nodes:
      - id: source
        class: t4d_fixture_nodes:WindowSource
        params: {{kinds: [nan, few, good]}}
      - id: plain
        class: edgerun.nodes.reconstructor:Reconstructor
        params: {{checkpoint: "{checkpoint}"}}
        inputs: {{tracks: source/tracks}}
      - id: calibrated
        class: edgerun.nodes.reconstructor:Reconstructor
        params: {{checkpoint: "{checkpoint}", intrinsics: "{calibration}"}}
        inputs: {{tracks: source/tracks}}
      - id: frames
        class: t4d_fixture_nodes:BadThenGoodFrames
      - id: tracker
        class: edgerun.nodes.tracker:Tracker
        inputs: {{frames: frames/frames}}
    """).wait_running(timeout_s=60)
    plain = graph.subscribe("plain/reconstruction")
    calibrated = graph.subscribe("calibrated/reconstruction")
    got = {m["start_frame"] // 10 % 3: m for m in graph.receive(plain, 6, timeout_s=30)}
    assert got[0]["skipped"] and "1 of 80 tracks have NaN or infinite coordinates" in got[0]["reason"]
    assert got[1]["skipped"] and "only 2 tracks are visible in two or more frames" in got[1]["reason"]
    assert not got[2]["skipped"] and got[2]["cam_from_world"].shape == (20, 4, 4)
    refused = graph.receive(calibrated, 3, timeout_s=30)
    assert any("calibrated for 1280x720, the frames are 640x480" in m["reason"] for m in refused)
    assert all(m["skipped"] for m in refused)
    status = graph.status("plain", where=lambda s: s["details"]["windows"] >= 1 and s["details"]["skipped"] >= 2)
    assert status["handler_errors"] == 0 and "window at frame" in status["details"]["last_skip"]
    tracker = graph.status("tracker", where=lambda s: s["details"]["windows"] >= 1, timeout_s=30)
    assert tracker["inputs"]["frames"]["drops"]["wrong_field"] >= 1  # float frames: dropped before the handler
    assert tracker["handler_errors"] == 0
    assert "input 'frames': expected uint8 array in field 'image', got float32 (240, 320, 3) from node 'frames'" in graph.log
    assert "reconstructor: skipped window at frame" in wait_for(lambda: "skipped window" in graph.log and graph.log, 10)
    assert graph.proc.poll() is None


def test_bundle_adjustment_runs_per_window_within_its_budget_and_says_when_it_does_not(launch, t4d_checkpoint):
    graph = launch(f"""
    name: refine
    heartbeat_timeout_s: 60
    nodes:
      - id: source
        class: t4d_fixture_nodes:WindowSource
        params: {{kinds: [good], rate_hz: 3}}
      - id: refining
        class: edgerun.nodes.reconstructor:Reconstructor
        params: {{checkpoint: "{t4d_checkpoint}", bundle_adjust: true, ba_budget_ms: 60000}}
        inputs: {{tracks: source/tracks}}
      - id: tight
        class: edgerun.nodes.reconstructor:Reconstructor
        params: {{checkpoint: "{t4d_checkpoint}", bundle_adjust: true, ba_budget_ms: 0.001, ba_retry_every: 2}}
        inputs: {{tracks: source/tracks}}
    """).wait_running(timeout_s=60)
    refining, tight = graph.subscribe("refining/reconstruction"), graph.subscribe("tight/reconstruction")
    for window in graph.receive(refining, 2, timeout_s=60):
        assert not window["skipped"] and window["ba_ms"] > 0, window["refine_reason"]
        if window["refined"]:  # the refined cameras, and the network's beside them
            assert window["refine_reason"] == "" and window["feedforward_cam_from_world"].shape == (20, 4, 4)
        else:  # the untrained network's start may leave BA nothing to work with: kept, and why
            assert window["refine_reason"] and "feedforward_cam_from_world" not in window
    # a budget no BA meets: one window adjusted, the next two skipped for time, the next tried again, ...
    windows = graph.receive(tight, 6, timeout_s=60)
    ran = [window["ba_ms"] > 0 for window in windows]
    assert sum(ran) == 2 and ran[:3] == ran[3:], ran
    assert all("the budget is 0 ms" in w["refine_reason"] for w, adjusted in zip(windows, ran) if not adjusted)
    status = graph.status("tight", where=lambda s: s["details"]["windows"] >= 6)
    assert status["details"]["ba_skipped_for_time"] >= 4 and status["handler_errors"] == 0
