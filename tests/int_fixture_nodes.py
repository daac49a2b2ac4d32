"""Nodes that feed the segmenter node test: frames of a chosen shape, and a one-off prompt."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from edgerun.runtime import Node


@dataclass(frozen=True)
class FrameParams:
    shape: list[int] = dataclasses.field(default_factory=lambda: [120, 160, 3])
    dtype: str = "uint8"


class FrameSender(Node):
    """Constant frames of the given shape and dtype, 10 per second."""

    outputs = ("frames",)
    params = FrameParams

    def setup(self) -> None:
        self.every(0.1, self.send)

    def send(self) -> None:
        self.publish("frames", image=np.full(self.params.shape, 100, self.params.dtype), capture_ns=time.time_ns())


@dataclass(frozen=True)
class PromptParams:
    prompt: str = "a hidden animal"
    after_s: float = 1.0


class PromptSender(Node):
    """Publishes ``prompt`` once, ``after_s`` seconds after it starts."""

    outputs = ("prompt",)
    params = PromptParams

    def setup(self) -> None:
        self.started = time.monotonic()
        self.sent = False
        self.every(0.1, self.send)

    def send(self) -> None:
        if not self.sent and time.monotonic() - self.started >= self.params.after_s:
            self.publish("prompt", prompt=self.params.prompt, capture_ns=time.time_ns())
            self.sent = True
