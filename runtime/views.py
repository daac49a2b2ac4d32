"""Standard views of an output: which of its fields are an image, a transform, a point cloud, a
trajectory or a JSON document, so that Foxglove, ROS 2 tools and any MCAP reader can show them.

A node class declares them per output (``views = {"frames": (Image("image"),)}``); the launcher
copies them into ``run.json``, so the recorder, the ROS 2 bag writer and the live Foxglove view map
each message the same way without importing node code. A view names fields; it never changes the
edgerun message, which is still recorded losslessly for replay.

Conventions (those of ROS REP 103/105 and Foxglove): a transform field named ``X_from_Y`` maps
points of frame ``Y`` into ``X``; a standard transform gives the child frame's pose in its parent,
so ``cam_from_world`` is declared with ``parent="world", child="camera", inverse=True``.
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec

from edgerun.runtime.node import STATUS_OUTPUT

JsonType = Literal["array", "boolean", "integer", "number", "object", "string"]


class Image(msgspec.Struct, frozen=True, tag="image"):
    """An (H, W, 3) uint8 RGB, (H, W) uint8 or bool (a mask: 0/255), or (H, W) float32 (depth in
    metres) array → ``foxglove.RawImage`` (``foxglove.CompressedImage`` JPEG when the recorder is
    asked for JPEG and ``jpeg`` allows it: declare depth ``jpeg=False``); ``sensor_msgs/Image`` in
    a ROS 2 bag."""

    array: str
    frame_id: str = "camera"
    jpeg: bool = True

    @property
    def channel(self) -> str:
        return self.array


class Transform(msgspec.Struct, frozen=True, tag="transform"):
    """A (4, 4) or (3, 4) rigid transform → ``foxglove.FrameTransform`` (``parent`` → ``child``);
    ``geometry_msgs/PoseStamped`` (the child's pose in ``parent``) in a ROS 2 bag. ``inverse``: the
    field maps parent coordinates into the child's (``cam_from_world``)."""

    matrix: str
    parent: str = "world"
    child: str = "camera"
    inverse: bool = False

    @property
    def channel(self) -> str:
        return self.matrix


class Points(msgspec.Struct, frozen=True, tag="points"):
    """(N, 3) points, or (T, N, 3) of which the last frame's are shown → ``foxglove.PointCloud``
    (float32 x, y, z); ``sensor_msgs/PointCloud2`` in a ROS 2 bag."""

    array: str
    frame_id: str = "world"

    @property
    def channel(self) -> str:
        return self.array


class Trajectory(msgspec.Struct, frozen=True, tag="trajectory"):
    """(T, 4, 4) or (T, 3, 4) camera transforms, a trajectory → ``foxglove.PosesInFrame`` (each
    camera's pose in ``frame_id``); ``nav_msgs/Path`` in a ROS 2 bag. ``inverse`` as for
    :class:`Transform`."""

    matrices: str
    frame_id: str = "world"
    inverse: bool = False

    @property
    def channel(self) -> str:
        return self.matrices


class Json(msgspec.Struct, frozen=True, tag="json"):
    """Chosen fields (arrays as nested lists) as one JSON document, with a JSON Schema built from
    the declared types; not written to ROS 2 bags (no standard ROS message holds it)."""

    fields: dict[str, JsonType]
    title: str = ""

    @property
    def channel(self) -> str:
        return "json"

    def schema(self, topic: str) -> dict:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.title or topic,
            "type": "object",
            "properties": {
                name: {"type": kind, "items": {}} if kind == "array" else {"type": kind}
                for name, kind in self.fields.items()
            },
        }


View = Union[Image, Transform, Points, Trajectory, Json]

STATUS_VIEW = Json({"status": "object"}, title="edgerun node status")
"""Every node's ``_status`` output: the status document (docs/runtime.md)."""


def views_of(cls: type) -> dict[str, tuple[View, ...]]:
    """A node class's declared views, checked: each names one of its outputs."""
    declared = dict(getattr(cls, "views", {}))
    unknown = sorted(set(declared) - set(cls.outputs))
    if unknown:
        raise ValueError(f"{cls.__name__}.views names {', '.join(unknown)}, not among its outputs {cls.outputs}")
    for output, views in declared.items():
        if not isinstance(views, tuple) or not all(isinstance(v, View.__args__) for v in views):
            raise ValueError(f"{cls.__name__}.views['{output}'] must be a tuple of edgerun.runtime.views views")
        channels = [v.channel for v in views]
        if len(set(channels)) != len(channels):
            raise ValueError(f"{cls.__name__}.views['{output}']: two views of the same field {channels}")
    return declared


def topic_views(views: dict[str, tuple[View, ...]], topic: str) -> tuple[View, ...]:
    """The views of ``topic`` (``node/output``) given its node's declared ``views``."""
    output = topic.partition("/")[2]
    return (STATUS_VIEW,) if output == STATUS_OUTPUT else views.get(output, ())


def channel_topic(topic: str, view: View) -> str:
    """The standard channel of ``view`` on edgerun ``topic``: ``/node/output/field``."""
    return f"/{topic}/{view.channel}"
