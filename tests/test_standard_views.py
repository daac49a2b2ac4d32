"""Standard views: recordings whose images, transforms, points and trajectories carry Foxglove
schemas (read back with the mcap readers' own protobuf decoder), ROS 2 bags that rosbags reads, and
both from a running graph through ``edgerun record``."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import reconstruct_graph
from mcap.reader import make_reader
from mcap.records import Schema as McapSchema
from mcap_protobuf.decoder import DecoderFactory
from rosbags.rosbag2 import Reader
from scipy.spatial.transform import Rotation
from websockets.sync.client import connect

from edgerun.errors import RecordingError
from edgerun.runtime import Node
from edgerun.runtime.foxglove_view import FoxgloveView
from edgerun.runtime.messages import Message
from edgerun.runtime.recording import McapRecorder, read_recording
from edgerun.runtime.ros2_bag import TYPES, Ros2BagRecorder
from edgerun.runtime.views import Image, Json, Points, Trajectory, Transform, views_of

T0 = 1_800_000_000_123_456_789
RNG = np.random.default_rng(0)
CAM_FROM_WORLD = np.eye(4, dtype=np.float32)
CAM_FROM_WORLD[:3, :3] = Rotation.from_euler("xyz", [0.3, -0.2, 1.1]).as_matrix()
CAM_FROM_WORLD[:3, 3] = [0.5, -1.0, 2.0]
POINTS = RNG.normal(size=(3, 50, 3)).astype(np.float32)
TRAJECTORY = np.stack([CAM_FROM_WORLD] * 4)
TRAJECTORY[:, 0, 3] += np.arange(4)

VIEWS = {
    "cam/frames": (Image("image"), Image("mask"), Image("depth", jpeg=False),
                   Transform("cam_from_world", parent="world", child="camera", inverse=True)),
    "rec/reconstruction": (Points("points_world"), Trajectory("trajectory", inverse=True),
                           Json({"reason": "string", "window": "integer", "trajectory": "array"}, title="rec")),
}


def frame_message(seq: int) -> Message:
    image = np.random.default_rng(seq).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    return Message(topic="cam/frames", seq=seq, capture_ns=T0 + seq, send_ns=T0 + seq + 5, sender="cam", fields={"k": seq},
                   arrays={"image": image, "mask": image[..., 0] > 128, "depth": image[..., 1].astype(np.float32) / 10,
                           "cam_from_world": CAM_FROM_WORLD})


def reconstruction_message(seq: int) -> Message:
    return Message(topic="rec/reconstruction", seq=seq, capture_ns=T0 + seq, send_ns=T0 + seq, sender="rec",
                   fields={"reason": "", "window": seq}, arrays={"points_world": POINTS, "trajectory": TRAJECTORY})


def decoded(path: Path) -> dict[str, list]:
    """Every schema'd channel's messages, decoded the way a user's tools would: protobuf through the
    mcap readers' decoder factory, JSON Schema channels as JSON."""
    found: dict[str, list] = {}
    factory = DecoderFactory()
    with open(path, "rb") as stream:
        for schema, channel, message in make_reader(stream).iter_messages(log_time_order=True):
            if schema is None:
                continue  # edgerun's lossless CBOR channels
            if schema.encoding == "protobuf":
                value = factory.decoder_for(channel.message_encoding, schema)(message.data)
            else:
                assert schema.encoding == "jsonschema" and channel.message_encoding == "json"
                value = json.loads(message.data)
            found.setdefault(channel.topic, []).append((schema.name, value))
    return found


def test_each_declared_view_is_written_with_its_schema_and_decoded_by_the_mcap_readers(tmp_path):
    path = tmp_path / "views.mcap"
    recorder = McapRecorder(path, VIEWS)
    sent = [frame_message(1), reconstruction_message(2), frame_message(3)]
    for msg in sent:
        recorder.write(msg, T0 + 1000 * msg.seq)
    recorder.close()
    found = decoded(path)
    with open(path, "rb") as stream:  # the three image channels share one schema record
        assert sorted(s.name for s in make_reader(stream).get_summary().schemas.values()) == [
            "foxglove.FrameTransform", "foxglove.PointCloud", "foxglove.PosesInFrame", "foxglove.RawImage", "rec"]
    assert set(found) == {"/cam/frames/image", "/cam/frames/mask", "/cam/frames/depth", "/cam/frames/cam_from_world",
                          "/rec/reconstruction/points_world", "/rec/reconstruction/trajectory", "/rec/reconstruction/json"}
    name, image = found["/cam/frames/image"][1]
    assert name == "foxglove.RawImage" and image.encoding == "rgb8" and (image.width, image.height, image.step) == (32, 24, 96)
    assert np.array_equal(np.frombuffer(image.data, np.uint8).reshape(24, 32, 3), sent[2]["image"])
    assert image.timestamp.ToNanoseconds() == sent[2].capture_ns and image.frame_id == "camera"
    _, mask = found["/cam/frames/mask"][0]
    assert mask.encoding == "mono8" and np.array_equal(np.frombuffer(mask.data, np.uint8).reshape(24, 32),
                                                        sent[0]["mask"].astype(np.uint8) * 255)
    _, depth = found["/cam/frames/depth"][0]
    assert depth.encoding == "32FC1" and np.array_equal(np.frombuffer(depth.data, np.float32).reshape(24, 32), sent[0]["depth"])
    name, tf = found["/cam/frames/cam_from_world"][0]
    assert name == "foxglove.FrameTransform" and (tf.parent_frame_id, tf.child_frame_id) == ("world", "camera")
    world_from_cam = np.linalg.inv(CAM_FROM_WORLD.astype(np.float64))  # the camera's pose in the world
    np.testing.assert_allclose([tf.translation.x, tf.translation.y, tf.translation.z], world_from_cam[:3, 3], atol=1e-5)
    rotation = Rotation.from_quat([tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w]).as_matrix()
    np.testing.assert_allclose(rotation, world_from_cam[:3, :3], atol=1e-5)
    name, cloud = found["/rec/reconstruction/points_world"][0]
    assert name == "foxglove.PointCloud" and cloud.point_stride == 12 and [f.name for f in cloud.fields] == ["x", "y", "z"]
    assert np.array_equal(np.frombuffer(cloud.data, np.float32).reshape(-1, 3), POINTS[-1])  # the window's last frame
    name, path_ = found["/rec/reconstruction/trajectory"][0]
    assert name == "foxglove.PosesInFrame" and len(path_.poses) == 4
    np.testing.assert_allclose([p.position.x for p in path_.poses], [np.linalg.inv(m)[0, 3] for m in TRAJECTORY.astype(np.float64)],
                               atol=1e-5)
    name, document = found["/rec/reconstruction/json"][0]
    assert name == "rec" and document == {"reason": "", "window": 2, "trajectory": TRAJECTORY.tolist()}
    # replay still reads the lossless channels, exactly as sent
    replayed = [msg for _, msg in read_recording(path)]
    assert [m.topic for m in replayed] == [m.topic for m in sent]
    for got, want in zip(replayed, sent):
        assert got.fields == want.fields and all(np.array_equal(got[k], want[k]) for k in want.arrays)


def test_a_field_a_view_cannot_show_is_skipped_and_said_while_the_recording_goes_on(tmp_path, caplog):
    path, bag = tmp_path / "odd.mcap", tmp_path / "bag"
    recorder, ros = McapRecorder(path, VIEWS), Ros2BagRecorder(bag, VIEWS)
    odd = frame_message(1)
    odd.arrays["image"] = np.zeros((24, 32, 3), np.float64)  # no image encoding for float64 RGB
    for msg in (odd, frame_message(2)):
        recorder.write(msg, T0 + 1000 * msg.seq)
        ros.write(msg, T0 + 1000 * msg.seq)
    recorder.close()
    ros.close()
    found = decoded(path)
    assert len(found["/cam/frames/image"]) == 1 and len(found["/cam/frames/mask"]) == 2
    assert [m.seq for _, m in read_recording(path)] == [1, 2]  # the lossless channel has both
    with Reader(bag) as reader:
        assert {c.topic: c.msgcount for c in reader.connections}["/cam/frames/image"] == 1
    assert "a standard view was not written" in caplog.text and "float64" in caplog.text


def test_jpeg_on_request_for_colour_while_depth_stays_exact(tmp_path):
    path = tmp_path / "jpeg.mcap"
    recorder = McapRecorder(path, VIEWS, jpeg_quality=95)
    msg = frame_message(1)
    y, x = np.mgrid[:24, :32]
    msg.arrays["image"] = np.stack([x * 8, y * 10, (x + y) * 4], axis=-1).astype(np.uint8)  # smooth: what JPEG keeps
    recorder.write(msg, msg.send_ns)
    recorder.close()
    found = decoded(path)
    name, jpeg = found["/cam/frames/image"][0]
    assert name == "foxglove.CompressedImage" and jpeg.format == "jpeg"
    back = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg.data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.abs(back.astype(int) - msg["image"]).mean() < 12
    assert found["/cam/frames/depth"][0][0] == "foxglove.RawImage"
    with pytest.raises(ValueError, match="JPEG quality must be 1-100"):
        McapRecorder(tmp_path / "bad.mcap", VIEWS, jpeg_quality=0)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_ros2_bag_of_the_views_reads_back_with_rosbags(tmp_path, storage):
    bag = tmp_path / "bag"
    recorder = Ros2BagRecorder(bag, VIEWS, storage)
    for msg in (frame_message(1), reconstruction_message(2)):
        recorder.write(msg, T0 + 1000 * msg.seq)
    recorder.close()
    with Reader(bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        got = {c.topic: TYPES.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages()}
    assert types == {"/cam/frames/image": "sensor_msgs/msg/Image", "/cam/frames/mask": "sensor_msgs/msg/Image",
                     "/cam/frames/depth": "sensor_msgs/msg/Image", "/cam/frames/cam_from_world": "geometry_msgs/msg/PoseStamped",
                     "/rec/reconstruction/points_world": "sensor_msgs/msg/PointCloud2",
                     "/rec/reconstruction/trajectory": "nav_msgs/msg/Path"}  # JSON has no ROS 2 message
    image = got["/cam/frames/image"]
    assert image.encoding == "rgb8" and image.header.stamp.sec * 10**9 + image.header.stamp.nanosec == T0 + 1
    assert np.array_equal(image.data.reshape(24, 32, 3), frame_message(1)["image"])
    pose = got["/cam/frames/cam_from_world"].pose
    np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z],
                               np.linalg.inv(CAM_FROM_WORLD.astype(np.float64))[:3, 3], atol=1e-5)
    cloud = got["/rec/reconstruction/points_world"]
    assert cloud.width == 50 and np.array_equal(cloud.data.view(np.float32).reshape(-1, 3), POINTS[-1])
    assert len(got["/rec/reconstruction/trajectory"].poses) == 4


def test_a_ros2_bag_with_nothing_to_hold_is_refused_up_front(tmp_path):
    with pytest.raises(RecordingError, match="nothing would go into the ROS 2 bag"):
        Ros2BagRecorder(tmp_path / "bag", {"rec/reconstruction": (Json({"x": "number"}),)})
    assert not (tmp_path / "bag").exists()


def test_views_are_checked_against_the_class_outputs():
    class Bad(Node):
        outputs = ("frames",)
        views = {"frame": (Image("image"),)}

    class Twice(Node):
        outputs = ("frames",)
        views = {"frames": (Image("image"), Image("image"))}

    with pytest.raises(ValueError, match=r"Bad.views names frame, not among its outputs \('frames',\)"):
        views_of(Bad)
    with pytest.raises(ValueError, match="two views of the same field"):
        views_of(Twice)


# --- from a running graph ---------------------------------------------------------------------
def cli(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgerun.cli", *args], capture_output=True, text=True, timeout=timeout_s)


def test_edgerun_record_writes_schema_channels_and_a_ros2_bag_from_a_running_graph(launch, t4d_checkpoint, tmp_path):
    camera = """class: edgerun.nodes.scene_camera:RenderedSceneCamera
        params: {seed: 1, frames: 500, width: 320, height: 240, fps: 25}"""
    graph = launch(reconstruct_graph("standard", camera, t4d_checkpoint)).wait_running(timeout_s=60)
    graph.receive(graph.subscribe("reconstructor/reconstruction"), 1, timeout_s=60)
    mcap_path, bag = tmp_path / "rec.mcap", tmp_path / "bag"
    topics = ("camera/frames", "reconstructor/reconstruction", "reconstructor/_status")
    recorded = cli("record", *topics, "-o", str(mcap_path), "--duration", "4", "--run", "standard")
    assert recorded.returncode == 0, recorded.stderr
    found = decoded(mcap_path)
    assert {name for values in found.values() for name, _ in values} >= {
        "foxglove.RawImage", "foxglove.FrameTransform", "foxglove.PointCloud", "foxglove.PosesInFrame",
        "edgerun reconstruction", "edgerun node status"}
    assert found["/reconstructor/_status/json"][0][1]["status"]["node"] == "reconstructor"
    started = time.monotonic()
    bagged = cli("record", "--all", "--ros2", "-o", str(bag), "--duration", "4", "--run", "standard")
    assert bagged.returncode == 0 and time.monotonic() - started < 30, bagged.stderr
    with Reader(bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        counts = {c.topic: c.msgcount for c in reader.connections}
        for connection, _, raw in reader.messages():
            TYPES.deserialize_cdr(raw, connection.msgtype)  # every message decodes
    assert types["/camera/frames/image"] == "sensor_msgs/msg/Image" and counts["/camera/frames/image"] > 10
    assert types["/camera/frames/cam_from_world"] == "geometry_msgs/msg/PoseStamped"
    assert types["/reconstructor/reconstruction/points_world"] == "sensor_msgs/msg/PointCloud2"


# --- the live Foxglove view ------------------------------------------------------------------
class FoxgloveClient:
    """What the Foxglove app does on "Open connection": read the advertised channels, subscribe,
    decode the binary message frames (opcode 1: subscription id, log time, payload)."""

    def __init__(self, port: int):
        self.port = port
        self.channels: dict[str, dict] = {}

    def __enter__(self) -> FoxgloveClient:
        self._connection = connect(f"ws://127.0.0.1:{self.port}", subprotocols=["foxglove.sdk.v1"], open_timeout=10)
        self.ws = self._connection.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._connection.__exit__(*exc)

    def wait_for_channels(self, topics: set[str], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not topics <= set(self.channels):
            frame = self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
            message = json.loads(frame) if isinstance(frame, str) else {}
            for channel in message.get("channels", []) if message.get("op") == "advertise" else []:
                self.channels[channel["topic"]] = channel

    def subscribe(self, topics: list[str]) -> None:
        subscriptions = [{"id": i, "channelId": self.channels[t]["id"]} for i, t in enumerate(topics)]
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))
        self.subscribed = topics

    def receive(self, count_per_topic: int, timeout_s: float = 20.0) -> dict[str, list]:
        got: dict[str, list] = {t: [] for t in self.subscribed}
        factory = DecoderFactory()
        deadline = time.monotonic() + timeout_s
        while any(len(v) < count_per_topic for v in got.values()):
            frame = self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
            if isinstance(frame, str) or frame[0] != 1:
                continue
            subscription, log_time = struct.unpack_from("<IQ", frame, 1)
            topic = self.subscribed[subscription]
            channel = self.channels[topic]
            schema = McapSchema(id=channel["id"], name=channel["schemaName"], encoding=channel["schemaEncoding"],
                                data=base64.b64decode(channel["schema"]))
            got[topic].append((log_time, factory.decoder_for(channel["encoding"], schema)(frame[13:])))
        return got


def test_the_foxglove_view_serves_what_a_client_subscribes_to_and_encodes_only_that():
    view = FoxgloveView("test", VIEWS, port=0, jpeg_quality=None)
    try:
        with FoxgloveClient(view.port) as client:
            client.wait_for_channels({"/cam/frames/image", "/cam/frames/cam_from_world", "/rec/reconstruction/json"})
            assert client.channels["/rec/reconstruction/json"]["schemaEncoding"] == "jsonschema"
            view.log(frame_message(1))
            assert view.logged == 0  # nobody subscribed yet: nothing encoded
            client.subscribe(["/cam/frames/image", "/cam/frames/cam_from_world"])
            sent = []
            deadline = time.monotonic() + 10
            while view.logged < 4 and time.monotonic() < deadline:  # until the subscription reaches the server
                sent.append(frame_message(len(sent) + 2))
                view.log(sent[-1])
                time.sleep(0.05)
            got = client.receive(1)
    finally:
        view.close()
    log_time, image = got["/cam/frames/image"][0]
    original = next(m for m in sent if m.capture_ns == log_time)
    assert np.array_equal(np.frombuffer(image.data, np.uint8).reshape(24, 32, 3), original["image"])
    _, tf = got["/cam/frames/cam_from_world"][0]
    np.testing.assert_allclose([tf.translation.x, tf.translation.y, tf.translation.z],
                               np.linalg.inv(CAM_FROM_WORLD.astype(np.float64))[:3, 3], atol=1e-5)


def test_edgerun_view_foxglove_serves_a_running_graph(launch, tmp_path):
    graph = launch("""
    name: live
    nodes:
      - id: camera
        class: edgerun.nodes.scene_camera:RenderedSceneCamera
        params: {seed: 2, frames: 500, width: 160, height: 120, fps: 25}
    """).wait_running(timeout_s=60)
    proc = subprocess.Popen([sys.executable, "-m", "edgerun.cli", "view", "--foxglove", "--port", "0", "--duration", "30",
                             "--run", "live"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "to Foxglove at ws://127.0.0.1:" in line, line
        with FoxgloveClient(int(line.rsplit(":", 1)[1].split()[0])) as client:
            client.wait_for_channels({"/camera/frames/image", "/camera/frames/cam_from_world"})
            client.subscribe(["/camera/frames/image", "/camera/frames/cam_from_world"])
            got = client.receive(2)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    _, jpeg = got["/camera/frames/image"][0]  # the view's default: JPEG of quality 85
    assert jpeg.format == "jpeg" and cv2.imdecode(np.frombuffer(jpeg.data, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    _, tf = got["/camera/frames/cam_from_world"][0]
    assert (tf.parent_frame_id, tf.child_frame_id) == ("world", "camera")
    assert graph.status("camera")["handler_errors"] == 0
