"""Rerun views: messages land under their topics with the right archetypes, in a .rrd that reads back."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
from conftest import wait_for
from rerun.chunk import RrdReader

from edgerun.nodes.viewer import RerunLog, SinkOptions
from edgerun.runtime import messages


def message(topic: str, data: dict, capture_ns: int = 1_700_000_000_000_000_000):
    frames = messages.encode(topic, data, seq=0, capture_ns=capture_ns, sender="test")
    return messages.decode([bytes(f) for f in frames])


def columns(path: Path) -> dict[str, dict[str, list]]:
    """``{entity: {column: values}}`` of a .rrd's recording."""
    found: dict[str, dict[str, list]] = {}
    for chunk in RrdReader(str(path)).stream():
        table = chunk.to_record_batch().to_pydict()
        entity = found.setdefault(chunk.entity_path, {})
        for column, values in table.items():
            entity.setdefault(column, []).extend(values)
    return found


def test_fields_map_to_archetypes_by_name_and_shape(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    tracks = np.zeros((4, 3, 5), np.float32)
    tracks[:, 0, :] = np.arange(5) * 2.0
    tracks[:, 1, :] = np.arange(4)[:, None]
    tracks[:, 2, :] = 1.0
    tracks[3, 2, -1] = 0.0  # not visible in the last frame
    cam_from_world = np.tile(np.eye(4, dtype=np.float32), (3, 1, 1))
    cam_from_world[:, 0, 3] = [0.0, -1.0, -2.0]  # the camera moves along +x
    rerun = RerunLog("test", SinkOptions(save=str(tmp_path / "view.rrd"), jpeg_quality=0))
    rerun.log(message("camera/frames", {"image": image, "frame_index": 7}))
    rerun.log(message("seg/mask", {"mask": np.eye(12, 16, dtype=bool), "instance_prompt": "frog"}))
    rerun.log(message("tracker/windows", {"tracks": tracks}))
    rerun.log(message("recon/poses", {"cam_from_world": cam_from_world, "points": np.ones((6, 3), np.float32)}))
    rerun.close()
    found = columns(tmp_path / "view.rrd")
    assert bytes(found["/camera/frames/image"]["Image:buffer"][0][0]) == image.tobytes()
    assert found["/camera/frames/frame_index"]["Scalars:scalars"][0] == [7.0]
    assert "SegmentationImage:buffer" in found["/seg/mask/mask"]
    assert len(found["/tracker/windows/tracks/points"]["Points2D:positions"][0]) == 3  # the visible ones
    assert len(found["/tracker/windows/tracks/paths"]["LineStrips2D:strips"][0]) == 4
    path = np.array(found["/recon/poses/cam_from_world/path"]["LineStrips3D:strips"][0][0])
    np.testing.assert_allclose(path[:, 0], [0.0, 1.0, 2.0])  # camera centres, not translations
    assert len(found["/recon/poses/points"]["Points3D:positions"][0]) == 6
    assert "TextLog:text" in found["/seg/mask"]


def test_frames_are_stored_as_jpeg_by_default(tmp_path):
    import cv2

    y, x = np.mgrid[0:48, 0:64]
    image = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)  # smooth: JPEG keeps it close
    rerun = RerunLog("jpeg", SinkOptions(save=str(tmp_path / "jpeg.rrd")))
    rerun.log(message("camera/frames", {"image": image}))
    rerun.close()
    blob = bytes(columns(tmp_path / "jpeg.rrd")["/camera/frames/image"]["EncodedImage:blob"][0][0])
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert len(blob) < image.nbytes and np.abs(decoded.astype(int) - image).mean() < 3


def test_view_command_writes_a_running_graph_to_rrd(tmp_path, launch):
    graph = launch("""
    name: viewme
    nodes:
      - {id: camera, class: edgerun.nodes.camera:Camera, params: {uri: "synthetic://pattern?width=32&height=24", fps: 20}}
    """).wait_running()
    out = tmp_path / "live.rrd"
    result = subprocess.run(
        [sys.executable, "-m", "edgerun.cli", "view", "--run", "viewme", "--save", str(out), "--duration", "4"],
        capture_output=True, text=True, timeout=60,
    )
    graph.stop()
    assert result.returncode == 0, result.stderr
    images = columns(out)["/camera/frames/image"]["EncodedImage:blob"]
    assert len(images) >= 5
    assert all(0 < len(bytes(b[0])) < 32 * 24 * 3 for b in images)  # JPEG by default


def test_view_command_names_a_missing_topic(launch):
    launch("""
    name: viewme2
    nodes:
      - {id: camera, class: edgerun.nodes.camera:Camera, params: {uri: "synthetic://pattern?width=8&height=8"}}
    """).wait_running()
    result = subprocess.run([sys.executable, "-m", "edgerun.cli", "view", "--run", "viewme2", "camera/nope", "--save", "x.rrd"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "has no topic camera/nope (topics: camera/frames, and NODE/_status)" in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_web_viewer_is_served_on_localhost(tmp_path):
    web_port, grpc_port = free_port(), free_port()
    rerun = RerunLog("served", SinkOptions(serve=True, web_port=web_port, grpc_port=grpc_port))
    try:
        assert rerun.url.startswith(f"http://localhost:{web_port}/")
        page = wait_for(lambda: _get(f"http://127.0.0.1:{web_port}/"), timeout_s=20, what="the web viewer page")
        assert "<html" in page.lower()
    finally:
        rerun.close()


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode(errors="replace")
    except OSError:
        return None


def test_viewer_node_records_its_inputs(tmp_path, launch):
    out = tmp_path / "graph.rrd"
    graph = launch(f"""
    name: viewnode
    nodes:
      - {{id: camera, class: edgerun.nodes.camera:Camera, params: {{uri: "synthetic://pattern?width=16&height=16", fps: 30}}}}
      - {{id: viewer, class: edgerun.nodes.viewer:RerunViewer, params: {{save: "{out}"}}, inputs: {{frames: camera/frames}}}}
    """).wait_running()
    graph.status("viewer", where=lambda s: s["details"].get("logged", 0) >= 10, timeout_s=30)
    assert graph.stop() == 0
    assert len(columns(out)["/camera/frames/image"]["EncodedImage:blob"]) >= 10
