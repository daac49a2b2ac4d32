"""A frame consumer that reports what it sees: mean brightness, frame rate and age."""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgerun.runtime import Array, Latest, Message, Node


@dataclass(frozen=True)
class FrameMonitorParams:
    report_every_s: float = 2.0  # how often to log a line


class FrameMonitor(Node):
    inputs = {"frames": Latest(fields={"image": Array("number"), "frame_index": int})}
    outputs = ("brightness",)
    params = FrameMonitorParams

    def setup(self) -> None:
        self.seen = 0
        self.last_report = time.monotonic()

    def on_frames(self, msg: Message) -> None:
        image = msg["image"]
        self.seen += 1
        brightness = float(image.mean())
        self.publish("brightness", value=brightness, frame_index=msg["frame_index"])
        now = time.monotonic()
        if now - self.last_report >= self.params.report_every_s:
            self.log.info(
                "frame %d %s %s: brightness %.1f, age %.1f ms, %d frames so far",
                msg["frame_index"], image.shape, image.dtype, brightness, msg.age_ns / 1e6, self.seen,
            )
            self.last_report = now
