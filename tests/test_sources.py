"""Camera sources by URI: frames from each kind of source, and errors that name the URI and the cause."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgerun.nodes.source_base import redact
from edgerun.nodes.sources import SourceError, open_source


def write_video(path: Path, frames: list[np.ndarray], fps: float = 20.0) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def test_file_source_gives_the_frames_back_in_rgb_then_ends(tmp_path):
    frames = [np.full((48, 64, 3), (200, 40 + 20 * i, 10), dtype=np.uint8) for i in range(5)]
    write_video(tmp_path / "clip.avi", frames, fps=20)
    source = open_source(f"file://{tmp_path / 'clip.avi'}")
    assert source.fps == pytest.approx(20)
    got = [source.read() for _ in range(5)]
    for want, frame in zip(frames, got):
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert np.abs(frame.astype(int) - want.astype(int)).mean() < 4  # MJPG is lossy; channel order is RGB
    assert source.read() is None


def test_file_source_loops_when_asked(tmp_path, monkeypatch):
    frames = [np.full((16, 16, 3), 30 * i, dtype=np.uint8) for i in range(3)]
    write_video(tmp_path / "clip.avi", frames)
    monkeypatch.chdir(tmp_path)
    source = open_source("file://clip.avi?loop=1")  # relative to the working directory
    got = [int(source.read().mean()) for _ in range(6)]
    assert got[3:] == got[:3] and got[0] < got[1] < got[2]


def test_synthetic_pattern_has_the_asked_size_and_moves():
    source = open_source("synthetic://pattern?width=80&height=60&fps=15")
    first, second = source.read(), source.read()
    assert first.shape == (60, 80, 3) and first.dtype == np.uint8 and source.fps == 15
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("name", ["scene", "camouflage"])
def test_model_scenes_are_sources_too(name):
    source = open_source(f"synthetic://{name}?width=160&height=120")
    frames = [source.read() for _ in range(2)]
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    assert frames[0].std() > 5  # textured, not blank


def test_gym_source_renders_the_env():
    source = open_source("gym://edgerun/Wall-v0?seed=3")
    frames = [source.read() for _ in range(3)]
    assert frames[0].ndim == 3 and frames[0].shape[2] == 3 and frames[0].dtype == np.uint8
    source.close()


@pytest.mark.parametrize(
    "uri, cause",
    [
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("file:///no/such/clip.mp4", "no such file /no/such/clip.mp4"),
        ("v4l2:///dev/video97", "no such device /dev/video97"),
        ("synthetic://nope", "unknown synthetic scene 'nope' (scenes: camouflage, pattern, scene)"),
        ("gym://NoSuchEnv-v9", "gymnasium cannot make 'NoSuchEnv-v9'"),
        ("synthetic://pattern?colour=red", "unknown option 'colour'"),
        ("synthetic://pattern?width=wide", "option width='wide' is not a valid int"),
        ("rtsp://127.0.0.1:9/stream?timeout_s=2", "cannot open the stream within 2 s"),
    ],
)
def test_bad_sources_name_the_uri_and_the_cause(uri, cause):
    with pytest.raises(SourceError) as error:
        open_source(uri)
    assert f"camera source '{uri}'" in str(error.value)
    assert cause in str(error.value)


def test_a_file_that_is_not_a_video_is_refused(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(SourceError, match="OpenCV cannot decode"):
        open_source(f"file://{tmp_path / 'notes.mp4'}")


def test_credentials_never_reach_a_message():
    assert redact("rtsp://admin:secret@127.0.0.1:554/live") == "rtsp://admin:***@127.0.0.1:554/live"
    with pytest.raises(SourceError) as error:
        open_source("rtsp://admin:secret@127.0.0.1:9/live?timeout_s=1")
    assert "secret" not in str(error.value) and "admin:***@" in str(error.value)


def test_camera_node_publishes_a_file_then_stops_the_graph(tmp_path, launch):
    frames = [np.full((24, 32, 3), 10 * i, dtype=np.uint8) for i in range(12)]
    write_video(tmp_path / "clip.avi", frames, fps=50)
    graph = launch(f"""
    name: clip
    stop_with: [camera]
    nodes:
      - {{id: camera, class: edgerun.nodes.camera:Camera, params: {{uri: "file://{tmp_path / 'clip.avi'}"}}}}
      - {{id: monitor, class: edgerun.nodes.monitor:FrameMonitor, inputs: {{frames: camera/frames}}}}
    """)
    assert graph.proc.wait(timeout=30) == 0
    assert "end of source after 12 frames" in graph.log


def test_camera_node_with_a_bad_uri_says_which_and_why(tmp_path, launch):
    graph = launch("""
    name: badcam
    stop_with: [camera]
    nodes:
      - {id: camera, class: edgerun.nodes.camera:Camera, params: {uri: "v4l2:///dev/video97"}, restart: {policy: never}}
    """)
    graph.proc.wait(timeout=30)
    assert "camera source 'v4l2:///dev/video97': no such device /dev/video97" in graph.log
