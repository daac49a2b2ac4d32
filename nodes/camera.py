"""A synthetic camera: a moving test pattern, for demos and tests without hardware."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgerun.runtime import Node


@dataclass(frozen=True)
class SyntheticCameraParams:
    width: int = 640
    height: int = 480
    fps: float = 30.0
    frames: int = 0  # stop after this many frames; 0 runs until stopped


def moving_pattern(y: np.ndarray, x: np.ndarray, index: int) -> np.ndarray:
    """An RGB uint8 (height, width, 3) frame from pixel grids ``np.mgrid[0:height, 0:width]``:
    colour bands and a white square that move with ``index``."""
    height, width = x.shape
    phase = index * 4
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = ((x + phase) % 256).astype(np.uint8)
    image[..., 1] = ((y + 2 * phase) % 256).astype(np.uint8)
    image[..., 2] = (((x + y) // 2 + phase) % 256).astype(np.uint8)
    size = max(8, min(width, height) // 8)
    left = (index * 7) % max(1, width - size)
    top = (index * 5) % max(1, height - size)
    image[top : top + size, left : left + size] = 255
    return image


class SyntheticCamera(Node):
    outputs = ("frames",)
    params = SyntheticCameraParams

    def setup(self) -> None:
        self.index = 0
        self.grid = np.mgrid[0 : self.params.height, 0 : self.params.width]
        self.every(1.0 / self.params.fps, self.capture)

    def capture(self) -> None:
        capture_ns = time.time_ns()
        image = moving_pattern(*self.grid, self.index)
        self.publish("frames", image=image, frame_index=self.index, capture_ns=capture_ns)
        self.index += 1
        if self.params.frames and self.index >= self.params.frames:
            self.stop()
