"""Nodes for the shared-memory tests: a fast publisher of big checksummed frames and slow readers
that check every frame they accept, before and after holding it."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from edgerun.runtime import Latest, Node, Queue


@dataclass(frozen=True)
class FramesParams:
    size_bytes: int = 1 << 20
    period_s: float = 0.002
    loan: bool = True  # write each frame into a loaned slot (no copy) or publish a fresh array


class ChecksumFrames(Node):
    """Publishes a new frame every ``period_s``: its bytes differ from frame to frame, its CRC-32 rides along."""

    outputs = ("frames",)
    params = FramesParams

    def setup(self) -> None:
        self.count = 0
        self.every(self.params.period_s, self.send)

    def send(self) -> None:
        self.count += 1
        n = self.params.size_bytes
        frame = self.loan("frames", (n,), np.uint8) if self.params.loan else np.empty(n, np.uint8)
        frame.fill(self.count % 251)
        frame[: min(n, 4096)] = np.random.default_rng(self.count).integers(0, 256, min(n, 4096), dtype=np.uint8)
        self.publish("frames", frame=frame, crc=zlib.crc32(frame), count=self.count)


@dataclass(frozen=True)
class CheckerParams:
    hold_s: float = 0.05  # how long each handler keeps the frame before checking it again


class _Checker(Node):
    """Checks a frame's CRC when its handler starts and again after holding it for ``hold_s``."""

    outputs = ("checked",)
    params = CheckerParams

    def setup(self) -> None:
        self.accepted = self.bad = self.changed = 0

    def on_frames(self, msg) -> None:
        frame = msg["frame"]
        if zlib.crc32(frame) != msg["crc"]:
            self.bad += 1
            return
        self.accepted += 1
        time.sleep(self.params.hold_s)
        if zlib.crc32(frame) != msg["crc"]:
            self.changed += 1  # rewritten while this handler held it
        self.publish("checked", count=msg["count"])

    def status_fields(self) -> dict:
        return {"accepted": self.accepted, "bad": self.bad, "changed": self.changed}


class LatestChecker(_Checker):
    inputs = {"frames": Latest()}


class QueueChecker(_Checker):
    inputs = {"frames": Queue(maxlen=4)}
