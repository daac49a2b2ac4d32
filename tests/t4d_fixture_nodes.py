"""Nodes the TracksTo4D node tests launch: a source of crafted track windows and of bad frames."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edgerun.runtime import Node
from edgerun.sim.point_scenes import SceneConfig, generate_scene


@dataclass(frozen=True)
class WindowSourceParams:
    kinds: list[str] = field(default_factory=lambda: ["good"])  # per window, cycled: good | nan | few
    rate_hz: float = 4.0


class WindowSource(Node):
    """Track windows as the tracker node sends them (640x480 frames), some of them broken on purpose."""

    outputs = ("tracks",)
    params = WindowSourceParams

    def setup(self) -> None:
        self.scene = generate_scene(np.random.default_rng(0), SceneConfig(points=80))
        self.sent = 0
        self.every(1.0 / self.params.rate_hz, self.send)

    def send(self) -> None:
        kind = self.params.kinds[self.sent % len(self.params.kinds)]
        tracks = self.scene.tracks.astype(np.float32).copy()
        if kind == "nan":
            tracks[5, 0, 3] = np.nan
        elif kind == "few":
            tracks[2:, 2] = 0.0
        stamps = time.time_ns() - (19 - np.arange(20, dtype=np.int64)) * 33_333_333  # 30 fps frames, the last one now
        self.publish(
            "tracks", tracks=tracks, track_ids=np.arange(len(tracks)), stamps_ns=stamps, start_frame=10 * self.sent,
            width=640, height=480, kind=kind, capture_ns=int(stamps[-1]),
        )
        self.sent += 1


class BadThenGoodFrames(Node):
    """uint8 frames of a panning texture, every tenth replaced by a float32 frame."""

    outputs = ("frames",)

    def setup(self) -> None:
        self.texture = np.random.default_rng(0).integers(0, 256, (240, 800, 3), dtype=np.uint8)
        self.sent = 0
        self.every(0.05, self.send)

    def send(self) -> None:
        if self.sent % 10 == 0:
            image = np.zeros((240, 320, 3), np.float32)
        else:
            image = np.ascontiguousarray(self.texture[:, self.sent % 400 : self.sent % 400 + 320])
        self.publish("frames", image=image, frame_index=self.sent, capture_ns=time.time_ns())
        self.sent += 1
