"""edgerun messages as Foxglove schema messages (protobuf, and JSON Schema for :class:`Json`
views), per the views their output declares (:mod:`edgerun.runtime.views`): for MCAP recordings
and the live Foxglove view alike."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import Callable

import cv2
import foxglove
import foxglove.messages as fg
import numpy as np

from edgerun.runtime.messages import Message
from edgerun.runtime.stats import ErrorCounter
from edgerun.runtime.views import Image, Json, Points, Trajectory, Transform, View, channel_topic

JSON_SCHEMA_ENCODING = "jsonschema"


LOG = logging.getLogger("edgerun.views")
SKIPPED = ErrorCounter(LOG, "a standard view was not written")


@dataclass(frozen=True)
class StandardChannel:
    """One standard channel of an edgerun topic: its name, schema and how a message becomes its
    payload (``None``: this message has nothing for it, e.g. a skipped window has no points)."""

    topic: str
    schema: foxglove.Schema
    message_encoding: str
    encoder: Callable[[Message], bytes | None]

    def encode(self, msg: Message) -> bytes | None:
        """The payload, or None; a field the view cannot show (a float64 image, a (N, 2) point set) is
        logged and skipped: a recording never stops for a view."""
        try:
            return self.encoder(msg)
        except (ValueError, TypeError, IndexError) as exc:
            SKIPPED.count(self.topic, f"{self.topic}: {exc}")
            return None


def standard_channels(topic: str, views: tuple[View, ...], jpeg_quality: int | None = None) -> list[StandardChannel]:
    """The standard channels of ``topic``; images as JPEG of ``jpeg_quality`` (1-100) when given."""
    return [_channel(topic, view, jpeg_quality) for view in views]


def _channel(topic: str, view: View, jpeg_quality: int | None) -> StandardChannel:
    name = channel_topic(topic, view)
    if isinstance(view, Json):
        schema = foxglove.Schema(name=view.title or topic, encoding=JSON_SCHEMA_ENCODING,
                                 data=json.dumps(view.schema(topic)).encode())
        return StandardChannel(name, schema, "json", lambda msg: _json(msg, view))
    if isinstance(view, Image) and jpeg_quality and view.jpeg:
        kind, encode = fg.CompressedImage, lambda msg: _jpeg(msg, view, jpeg_quality)
    else:
        kind, encode = {
            Image: (fg.RawImage, _raw_image),
            Transform: (fg.FrameTransform, _transform),
            Points: (fg.PointCloud, _points),
            Trajectory: (fg.PosesInFrame, _trajectory),
        }[type(view)]
        encode = functools.partial(encode, view=view)
    return StandardChannel(name, kind.get_schema(), "protobuf", encode)


def stamp(ns: int) -> fg.Timestamp:
    return fg.Timestamp(ns // 1_000_000_000, ns % 1_000_000_000)


def image_encoding(image: np.ndarray) -> tuple[str, np.ndarray]:
    """The ROS/Foxglove encoding name of an image array and its bytes as sent (masks as 0/255 mono8)."""
    if image.dtype == np.bool_:
        return "mono8", image.astype(np.uint8) * 255
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return "rgb8", image
    if image.ndim == 2 and image.dtype == np.uint8:
        return "mono8", image
    if image.ndim == 2 and image.dtype == np.float32:
        return "32FC1", image
    raise ValueError(f"an image view takes (H, W, 3) uint8, (H, W) uint8, bool or float32; got {image.shape} {image.dtype}")


def _field(msg: Message, name: str) -> np.ndarray | None:
    value = msg.arrays.get(name)
    return None if value is None else np.asarray(value)


def _raw_image(msg: Message, view: Image) -> bytes | None:
    image = _field(msg, view.array)
    if image is None:
        return None
    encoding, data = image_encoding(image)
    data = np.ascontiguousarray(data)
    return fg.RawImage(timestamp=stamp(msg.capture_ns), frame_id=view.frame_id, width=data.shape[1], height=data.shape[0],
                       encoding=encoding, step=data.strides[0], data=data.tobytes()).encode()


def _jpeg(msg: Message, view: Image, quality: int) -> bytes | None:
    image = _field(msg, view.array)
    if image is None:
        return None
    encoding, data = image_encoding(image)
    if encoding == "32FC1":
        raise ValueError(f"'{view.array}' is a float image: JPEG has no float pixels (declare its view jpeg=False)")
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(data, cv2.COLOR_RGB2BGR) if encoding == "rgb8" else data,
                            (cv2.IMWRITE_JPEG_QUALITY, quality))
    if not ok:
        raise ValueError(f"JPEG encoding of '{view.array}' failed")
    return fg.CompressedImage(timestamp=stamp(msg.capture_ns), frame_id=view.frame_id, data=jpeg.tobytes(),
                              format="jpeg").encode()


def rigid(matrix: np.ndarray, inverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Translation and (x, y, z, w) quaternion of a (4, 4) or (3, 4) transform, inverted if asked."""
    rotation, translation = np.asarray(matrix[:3, :3], np.float64), np.asarray(matrix[:3, 3], np.float64)
    if inverse:
        rotation, translation = rotation.T, -rotation.T @ translation
    rvec = cv2.Rodrigues(rotation)[0].ravel()  # axis * angle (OpenCV: scipy.spatial costs 0.3 s to import)
    angle = float(np.linalg.norm(rvec))
    axis = rvec / angle if angle > 0 else np.zeros(3)
    return translation, np.append(axis * np.sin(angle / 2), np.cos(angle / 2))


def _pose(matrix: np.ndarray, inverse: bool) -> fg.Pose:
    t, q = rigid(matrix, inverse)
    return fg.Pose(position=fg.Vector3(x=t[0], y=t[1], z=t[2]), orientation=fg.Quaternion(x=q[0], y=q[1], z=q[2], w=q[3]))


def _transform(msg: Message, view: Transform) -> bytes | None:
    matrix = _field(msg, view.matrix)
    if matrix is None:
        return None
    t, q = rigid(matrix, view.inverse)
    return fg.FrameTransform(timestamp=stamp(msg.capture_ns), parent_frame_id=view.parent, child_frame_id=view.child,
                             translation=fg.Vector3(x=t[0], y=t[1], z=t[2]),
                             rotation=fg.Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])).encode()


def cloud_points(points: np.ndarray) -> np.ndarray:
    """(N, 3) float32 points of a points view's array ((T, N, 3): the last frame's), finite only."""
    points = np.asarray(points, np.float32)
    points = points[-1] if points.ndim == 3 else points
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"a points view takes (N, 3) or (T, N, 3) points, got {points.shape}")
    return np.ascontiguousarray(points[np.isfinite(points).all(axis=1)])


def _points(msg: Message, view: Points) -> bytes | None:
    points = _field(msg, view.array)
    if points is None:
        return None
    points = cloud_points(points)
    f32 = fg.PackedElementFieldNumericType.Float32
    fields = [fg.PackedElementField(name=axis, offset=4 * i, type=f32) for i, axis in enumerate("xyz")]
    return fg.PointCloud(timestamp=stamp(msg.capture_ns), frame_id=view.frame_id, pose=_pose(np.eye(4), False),
                         point_stride=12, fields=fields, data=points.tobytes()).encode()


def _trajectory(msg: Message, view: Trajectory) -> bytes | None:
    matrices = _field(msg, view.matrices)
    if matrices is None:
        return None
    return fg.PosesInFrame(timestamp=stamp(msg.capture_ns), frame_id=view.frame_id,
                           poses=[_pose(m, view.inverse) for m in matrices]).encode()


def _json(msg: Message, view: Json) -> bytes:
    document = {}
    for name in view.fields:
        value = msg.arrays.get(name, msg.fields.get(name))
        document[name] = value.tolist() if isinstance(value, np.ndarray) else value
    return json.dumps(document, default=str).encode()
