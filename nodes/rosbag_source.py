"""``rosbag2://PATH?topic=/camera/image_raw``: camera frames from a ROS 2 bag, read with ``rosbags``
(pure Python: no ROS installation), so a robot's recorded cameras feed any edgerun graph.

* Storage: sqlite3 or MCAP (``PATH`` is the bag directory, or its ``.db3``/``.mcap`` file).
* Messages: ``sensor_msgs/msg/Image`` (``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``, ``mono16``
  and their ``8UC*``/``16UC1`` spellings; padded rows and big-endian 16-bit data are handled) and
  ``sensor_msgs/msg/CompressedImage`` (JPEG, PNG). Frames come out RGB uint8, like every source.
* ``?topic=`` names the image topic; without it the bag must hold exactly one.
* Timing: each frame's time is its ``header.stamp`` (the camera's capture time, by ROS convention),
  or the time the bag recorded it when the stamp is zero. ``read()`` waits until the frame is due,
  so the graph sees the bag's own pace, and ``last_capture_ns`` is that time shifted by the replay's
  start: receivers drop capture times far from their clock, and a bag is usually older than that.
  A gap longer than ``MAX_GAP_S`` (a paused recording) is shortened to it; ``?loop=1`` starts again
  at the end, one mean frame period after the last frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgerun.nodes.source_base import SourceError, SourceOptions

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
MAX_GAP_S = 1.0
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3, "8UC4": 4,
            "mono16": 1, "16UC1": 1}
"""Raw encodings read (``8UC3`` is taken as BGR, OpenCV's order, as cv_bridge does)."""


def _to_rgb(msg: Any, msgtype: str) -> np.ndarray:
    import cv2

    if msgtype == COMPRESSED:
        image = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"compressed frame ({msg.format!r}) does not decode as JPEG or PNG")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    encoding = msg.encoding
    if encoding not in CHANNELS:
        raise ValueError(f"encoding {encoding!r} is not supported (supported: {', '.join(CHANNELS)})")
    channels, deep = CHANNELS[encoding], encoding in ("mono16", "16UC1")
    itemsize = 2 if deep else 1
    row = msg.width * channels * itemsize
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ValueError(f"{msg.width}x{msg.height} {encoding} needs rows of {row} bytes; "
                         f"step is {msg.step}, data {len(msg.data)} bytes")
    rows = np.asarray(msg.data, dtype=np.uint8)[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row]
    if deep:
        values = rows.copy().view(">u2" if msg.is_bigendian else "<u2").reshape(msg.height, msg.width)
        return np.repeat((values >> 8).astype(np.uint8)[..., None], 3, axis=2)
    pixels = rows.reshape(msg.height, msg.width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if encoding in ("bgr8", "bgra8", "8UC3", "8UC4"):
        return np.ascontiguousarray(pixels[..., 2::-1])
    return np.ascontiguousarray(pixels[..., :3])


class RosbagSource:
    """Image messages of one topic of a ROS 2 bag, at the bag's own pace."""

    live = True  # read() waits for each frame's time, as a device does

    def __init__(self, uri: str, path: Path, topic: str, loop: bool):
        from rosbags.rosbag2 import Reader, ReaderError
        from rosbags.typesys import Stores, get_typestore

        self.uri = uri
        self.loop = loop
        self.last_capture_ns: int | None = None
        self._typestore = get_typestore(Stores.ROS2_HUMBLE)  # Image and CompressedImage are the same in every distro
        try:
            self._reader = Reader(path)
            self._reader.open()
        except (ReaderError, OSError) as exc:
            raise SourceError(uri, f"not a readable ROS 2 bag: {exc}") from None
        images = {c.topic: c for c in self._reader.connections if c.msgtype in (IMAGE, COMPRESSED)}
        if topic and topic not in images:
            self._reader.close()
            raise SourceError(uri, f"the bag has no image topic '{topic}' (image topics: {', '.join(images) or 'none'})")
        if not topic and len(images) != 1:
            self._reader.close()
            raise SourceError(uri, f"name the image topic with ?topic= (image topics: {', '.join(images) or 'none'})")
        self._connection = images[topic or next(iter(images))]
        count = self._connection.msgcount
        duration_s = self._reader.duration / 1e9
        self.fps = (count - 1) / duration_s if count > 1 and duration_s > 0 else 0.0
        self._period_ns = int(1e9 / self.fps) if self.fps else 0
        self._messages = self._open_messages()
        self._index = 0
        self._previous_stamp: int | None = None
        self._due_ns = 0  # wall-clock time of the previous frame

    def _open_messages(self) -> Any:
        return self._reader.messages(connections=[self._connection])

    def read(self) -> np.ndarray | None:
        try:
            connection, recorded_ns, raw = next(self._messages)
        except StopIteration:
            if not self.loop or not self._index:
                return None
            self._messages, self._previous_stamp = self._open_messages(), None
            self._due_ns += self._period_ns
            return self.read()
        try:
            msg = self._typestore.deserialize_cdr(raw, connection.msgtype)
            image = _to_rgb(msg, connection.msgtype)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise SourceError(self.uri, f"frame {self._index} of '{connection.topic}': {exc}") from None
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec or recorded_ns
        if self._previous_stamp is None:
            self._due_ns = max(self._due_ns, time.time_ns())
        else:
            self._due_ns += min(max(stamp - self._previous_stamp, 0), int(MAX_GAP_S * 1e9))
        self._previous_stamp = stamp
        wait_s = (self._due_ns - time.time_ns()) / 1e9
        if wait_s > 0:
            time.sleep(wait_s)
        self.last_capture_ns = self._due_ns
        self._index += 1
        return image

    def close(self) -> None:
        self._reader.close()


def open_rosbag2(uri: str, location: str, options: SourceOptions) -> RosbagSource:
    path = Path(location)
    if path.suffix in (".db3", ".mcap"):
        path = path.parent
    if not path.exists():
        raise SourceError(uri, f"no such bag: {path}")
    return RosbagSource(uri, path, options.topic, options.loop)
