"""edgerun messages into a ROS 2 bag, written with ``rosbags`` (pure Python: no ROS installation),
per the standard views their outputs declare (:mod:`edgerun.runtime.views`):

=============  ==========================  ==========================================
view           ROS 2 message               topic
=============  ==========================  ==========================================
Image          ``sensor_msgs/msg/Image``   ``/node/output/field``
Transform      ``geometry_msgs/msg/PoseStamped`` (the child's pose in the parent)
Points         ``sensor_msgs/msg/PointCloud2`` (float32 x, y, z)
Trajectory     ``nav_msgs/msg/Path``
Json           not written: no standard ROS 2 message holds it
=============  ==========================  ==========================================

Time stamps are the messages' capture times; the bag's own time is when the recorder got them.
``ros2 bag info`` and ``rosbags`` read the result (sqlite3 storage, or MCAP on request).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore

from edgerun.errors import RecordingError
from edgerun.runtime.foxglove_messages import SKIPPED, cloud_points, image_encoding, rigid
from edgerun.runtime.messages import Message
from edgerun.runtime.views import Image, Points, Trajectory, Transform, View, channel_topic

TYPES = get_typestore(Stores.ROS2_HUMBLE)  # these four messages are the same in every ROS 2 distro
BAG_VERSION = 8  # read by Humble and later
_MSGTYPES = {Image: "sensor_msgs/msg/Image", Transform: "geometry_msgs/msg/PoseStamped",
             Points: "sensor_msgs/msg/PointCloud2", Trajectory: "nav_msgs/msg/Path"}


def _header(ns: int, frame_id: str) -> Any:
    stamp = TYPES.types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return TYPES.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def _pose(matrix: np.ndarray, inverse: bool) -> Any:
    t, q = rigid(matrix, inverse)
    types = TYPES.types
    return types["geometry_msgs/msg/Pose"](position=types["geometry_msgs/msg/Point"](x=t[0], y=t[1], z=t[2]),
                                           orientation=types["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]))


def ros_message(msg: Message, view: View) -> Any | None:
    """The ROS 2 message of one view of ``msg``; None when the message lacks the field (or the view is JSON)."""
    types = TYPES.types
    if isinstance(view, Image):
        image = msg.arrays.get(view.array)
        if image is None:
            return None
        encoding, data = image_encoding(np.asarray(image))
        data = np.ascontiguousarray(data)
        return types["sensor_msgs/msg/Image"](header=_header(msg.capture_ns, view.frame_id), height=data.shape[0],
                                              width=data.shape[1], encoding=encoding, is_bigendian=0,
                                              step=data.strides[0], data=data.view(np.uint8).reshape(-1))
    if isinstance(view, Transform):
        matrix = msg.arrays.get(view.matrix)
        if matrix is None:
            return None
        return types["geometry_msgs/msg/PoseStamped"](header=_header(msg.capture_ns, view.parent),
                                                      pose=_pose(matrix, view.inverse))
    if isinstance(view, Points):
        points = msg.arrays.get(view.array)
        if points is None:
            return None
        points = cloud_points(points)
        field = types["sensor_msgs/msg/PointField"]
        fields = [field(name=axis, offset=4 * i, datatype=field.FLOAT32, count=1) for i, axis in enumerate("xyz")]
        return types["sensor_msgs/msg/PointCloud2"](header=_header(msg.capture_ns, view.frame_id), height=1,
                                                    width=len(points), fields=fields, is_bigendian=False, point_step=12,
                                                    row_step=12 * len(points), data=points.view(np.uint8).reshape(-1),
                                                    is_dense=True)
    if isinstance(view, Trajectory):
        matrices = msg.arrays.get(view.matrices)
        if matrices is None:
            return None
        header = _header(msg.capture_ns, view.frame_id)
        poses = [types["geometry_msgs/msg/PoseStamped"](header=header, pose=_pose(m, view.inverse)) for m in matrices]
        return types["nav_msgs/msg/Path"](header=header, poses=poses)
    return None


class Ros2BagRecorder:
    """Writes the standard views of messages to a new ROS 2 bag directory ``path``."""

    def __init__(self, path: Path, views: Mapping[str, tuple[View, ...]], storage: str = "sqlite3"):
        plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
        if storage not in plugins:
            raise ValueError(f"ROS 2 bag storage must be one of {', '.join(plugins)}, got {storage!r}")
        if not any(type(v) in _MSGTYPES for vs in views.values() for v in vs):
            raise RecordingError("none of these topics declares an image, transform, point or trajectory view: "
                                 "nothing would go into the ROS 2 bag")
        self._views = views
        self._writer = Writer(path, version=BAG_VERSION, storage_plugin=plugins[storage])
        try:
            self._writer.open()
        except WriterError as exc:
            raise RecordingError(f"{path}: cannot write a ROS 2 bag there: {exc}") from None
        self._connections: dict[str, list[tuple[Any, View]]] = {}
        self.count = 0

    def write(self, msg: Message, log_time_ns: int) -> None:
        connections = self._connections.get(msg.topic)
        if connections is None:
            connections = self._connections[msg.topic] = [
                (self._writer.add_connection(channel_topic(msg.topic, view), _MSGTYPES[type(view)], typestore=TYPES), view)
                for view in self._views.get(msg.topic, ()) if type(view) in _MSGTYPES
            ]
        for connection, view in connections:
            try:
                ros = ros_message(msg, view)
            except (ValueError, TypeError, IndexError) as exc:  # a field this view cannot show: the bag goes on
                SKIPPED.count(connection.topic, f"{connection.topic}: {exc}")
                continue
            if ros is not None:
                self._writer.write(connection, log_time_ns, TYPES.serialize_cdr(ros, connection.msgtype))
                self.count += 1

    def close(self) -> None:
        self._writer.close()
