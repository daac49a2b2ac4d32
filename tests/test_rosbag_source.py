"""rosbag2:// camera sources: bags written here with rosbags (sqlite3 and MCAP), read back frame for
frame, at the bag's pace, with the bag's stamps; bad bags and topics refused naming the cause."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import RunningGraph, reconstruct_graph
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from edgerun.nodes.rosbag_source import MAX_GAP_S
from edgerun.nodes.sources import SourceError, open_source

TYPES = get_typestore(Stores.ROS2_HUMBLE)
Image, CompressedImage = TYPES.types["sensor_msgs/msg/Image"], TYPES.types["sensor_msgs/msg/CompressedImage"]
Header, Time = TYPES.types["std_msgs/msg/Header"], TYPES.types["builtin_interfaces/msg/Time"]
T0 = 1_700_000_000 * 10**9  # a bag recorded long ago: receivers would refuse these stamps as they are


def picture(i: int, height: int = 6, width: int = 8) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def header(stamp_ns: int) -> object:
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera")


def raw(rgb: np.ndarray, encoding: str, stamp_ns: int, pad: int = 0) -> object:
    height, width = rgb.shape[:2]
    if encoding == "bgr8":
        pixels = rgb[..., ::-1]
    elif encoding == "mono8":
        pixels = rgb[..., :1]
    elif encoding == "mono16":  # big-endian 16-bit, the top byte the grey value
        pixels = (rgb[..., :1].astype(np.uint16) << 8).astype(">u2").view(np.uint8).reshape(height, width, 2)
    else:
        pixels = rgb
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    rows = np.concatenate([rows, np.zeros((height, pad), np.uint8)], axis=1)
    return Image(header=header(stamp_ns), height=height, width=width, encoding=encoding,
                 is_bigendian=int(encoding == "mono16"), step=rows.shape[1], data=rows.reshape(-1))


def compressed(rgb: np.ndarray, stamp_ns: int) -> object:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return CompressedImage(header=header(stamp_ns), format="png", data=png.reshape(-1))


def write_bag(path: Path, topics: dict[str, list[tuple[int, object]]], storage=StoragePlugin.SQLITE3) -> Path:
    """``topics``: topic -> [(recorded_ns, message)]."""
    with Writer(path, version=8, storage_plugin=storage) as writer:
        for topic, messages in topics.items():
            connection = writer.add_connection(topic, type(messages[0][1]).__msgtype__, typestore=TYPES)
            for recorded_ns, msg in messages:
                writer.write(connection, recorded_ns, TYPES.serialize_cdr(msg, type(msg).__msgtype__))
    return path


def read_all(uri: str) -> tuple[list[np.ndarray], list[int]]:
    source = open_source(uri)
    frames, stamps = [], []
    try:
        while (frame := source.read()) is not None:
            frames.append(frame)
            stamps.append(source.last_capture_ns)
    finally:
        source.close()
    return frames, stamps


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "mono16", "padded rgb8", "png"])
def test_frames_come_out_as_the_camera_took_them(tmp_path, storage, encoding):
    pictures = [picture(i) for i in range(3)]
    stamps = [T0 + i * 20_000_000 for i in range(3)]
    if encoding == "png":
        messages = [compressed(p, s) for p, s in zip(pictures, stamps)]
    else:
        messages = [raw(p, encoding.split()[-1], s, pad=5 if "padded" in encoding else 0) for p, s in zip(pictures, stamps)]
    bag = write_bag(tmp_path / "bag", {"/camera/image_raw": list(zip(stamps, messages))}, storage)
    frames, _ = read_all(f"rosbag2://{bag}")
    expected = [np.repeat(p[..., :1], 3, axis=2) if encoding.startswith("mono") else p for p in pictures]
    assert len(frames) == 3
    for frame, want in zip(frames, expected):
        assert frame.dtype == np.uint8 and frame.shape == (6, 8, 3)
        np.testing.assert_array_equal(frame, want)


def test_capture_times_keep_the_bags_intervals_shifted_to_now_with_long_pauses_shortened(tmp_path):
    offsets_ms = [0, 20, 40, 40 + 30_000, 40 + 30_020]  # a 30 s pause in the recording
    stamps = [T0 + ms * 1_000_000 for ms in offsets_ms]
    messages = [(s + 5_000_000, raw(picture(i), "rgb8", s)) for i, s in enumerate(stamps)]
    messages.append((stamps[-1] + 35_000_000, raw(picture(9), "rgb8", 0)))  # no header stamp: the recording time counts
    bag = write_bag(tmp_path / "bag", {"/cam": messages})
    _, capture = read_all(f"rosbag2://{bag}?topic=/cam")
    gaps_ms = [round((b - a) / 1e6) for a, b in zip(capture, capture[1:])]
    assert gaps_ms == [20, 20, int(MAX_GAP_S * 1000), 20, 35]
    import time

    assert abs(capture[0] - time.time_ns()) < 60 * 10**9  # now, not 2023: receivers accept them


def test_loop_starts_again_after_one_mean_frame_period(tmp_path):
    bag = write_bag(tmp_path / "bag", {"/cam": [(T0 + i * 10_000_000, raw(picture(i), "rgb8", T0 + i * 10_000_000))
                                                for i in range(3)]})
    source = open_source(f"rosbag2://{bag}?loop=1")
    try:
        frames, capture = [], []
        for _ in range(7):
            frames.append(source.read())
            capture.append(source.last_capture_ns)
    finally:
        source.close()
    np.testing.assert_array_equal(frames[3], frames[0])
    assert source.fps == pytest.approx(100.0)
    assert [round((b - a) / 1e6) for a, b in zip(capture, capture[1:])] == [10] * 6


@pytest.mark.parametrize("uri_tail, problem", [
    ("", "name the image topic with ?topic= (image topics: /left, /right)"),
    ("?topic=/depth", "the bag has no image topic '/depth' (image topics: /left, /right)"),
])
def test_a_topic_that_is_not_one_image_stream_is_refused_listing_them(tmp_path, uri_tail, problem):
    bag = write_bag(tmp_path / "bag", {t: [(T0, raw(picture(0), "rgb8", T0))] for t in ("/left", "/right")})
    with pytest.raises(SourceError) as refused:
        open_source(f"rosbag2://{bag}{uri_tail}")
    assert str(refused.value) == f"camera source 'rosbag2://{bag}{uri_tail}': {problem}"


def test_unreadable_bags_and_frames_are_refused_naming_the_cause(tmp_path):
    with pytest.raises(SourceError, match="no such bag"):
        open_source(f"rosbag2://{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="not a readable ROS 2 bag"):
        open_source(f"rosbag2://{tmp_path / 'empty'}")
    bayer = raw(picture(0), "rgb8", T0)
    bayer.encoding = "bayer_rggb8"
    bag = write_bag(tmp_path / "bag", {"/cam": [(T0, bayer)]})
    source = open_source(f"rosbag2://{bag}")
    with pytest.raises(SourceError, match="frame 0 of '/cam': encoding 'bayer_rggb8' is not supported"):
        source.read()
    source.close()


def test_a_camera_node_publishes_a_bag_with_its_stamps(tmp_path):
    stamps = [T0 + i * 50_000_000 for i in range(4)]
    bag = write_bag(tmp_path / "bag", {"/cam": [(s, raw(picture(i), "bgr8", s)) for i, s in enumerate(stamps)]},
                    StoragePlugin.MCAP)
    with RunningGraph(tmp_path, f"""
    name: bagcam
    nodes:
      - {{id: camera, class: "edgerun.nodes.camera:Camera", params: {{uri: "rosbag2://{bag}?loop=1"}}}}
    """) as running:
        got = running.collect("camera/frames", 6)
    indices = [m["frame_index"] for m in got]
    assert indices == list(range(indices[0], indices[0] + 6))
    assert [round((b.capture_ns - a.capture_ns) / 1e6) for a, b in zip(got, got[1:])] == [50] * 5
    for msg in got:
        np.testing.assert_array_equal(msg["image"], picture(msg["frame_index"] % 4))


def test_a_reconstruction_graph_runs_on_a_bag(launch, tmp_path, t4d_checkpoint):
    """The reconstruct graph with its camera replaced by a bag of a moving camera's frames."""
    scene = open_source("synthetic://scene?width=320&height=240&fps=25&seed=1")
    stamps = [T0 + i * 40_000_000 for i in range(30)]
    frames = [scene.read() for _ in stamps]
    scene.close()
    bag = write_bag(tmp_path / "bag", {"/camera/image_raw": [(s, raw(f, "rgb8", s)) for s, f in zip(stamps, frames)]},
                    StoragePlugin.MCAP)
    camera = f"""class: edgerun.nodes.camera:Camera
        params: {{uri: "rosbag2://{bag}?topic=/camera/image_raw&loop=1"}}"""
    graph = launch(reconstruct_graph("bagrecon", camera, t4d_checkpoint)).wait_running(timeout_s=60)
    window = graph.receive(graph.subscribe("reconstructor/reconstruction"), 1, timeout_s=60)[0]
    assert not window["skipped"] and window["cam_from_world"].shape == (20, 4, 4)
    assert np.allclose(np.diff(window["stamps_ns"]), 40_000_000, atol=1_000_000)  # the bag's 25 Hz, across the loop too
