"""A camera node: frames from any source URI (see :mod:`edgerun.nodes.sources`), stamped with
their capture time.

Publishes ``frames``: ``image`` (RGB uint8, height x width x 3) and ``frame_index``. A source that
cannot be opened stops the node at set-up with an error naming the URI and the cause; a finite
source (a file without ``?loop=1``) stops the node at its end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgerun.nodes.sources import SourceError, open_source
from edgerun.runtime import Node
from edgerun.runtime.views import Image


@dataclass(frozen=True)
class CameraParams:
    uri: str = "synthetic://pattern"  # v4l2:///dev/video0, file://clip.mp4, rtsp://…, synthetic://NAME, gym://ENV_ID, rosbag2://BAG?topic=T
    width: int = 0  # resize frames to this size (0: the source's own)
    height: int = 0
    fps: float = 0.0  # publishing rate (0: the source's own rate; a live source as fast as it delivers)
    frames: int = 0  # stop after this many frames; 0 runs until stopped (or the source ends)


class Camera(Node):
    outputs = ("frames",)
    views = {"frames": (Image("image"),)}
    params = CameraParams

    def setup(self) -> None:
        self.source = open_source(self.params.uri)
        self.index = 0
        rate = self.params.fps or self.source.fps
        # a live source's read() blocks until its next frame, so a short period follows its pace
        self.every(1e-3 if self.source.live and not self.params.fps else 1.0 / (rate or 30.0), self.capture)
        self.log.info("camera %s at %s fps", self.source.uri, f"{rate:g}" if rate else "source")

    def capture(self) -> None:
        try:
            image = self.source.read()
        except SourceError as exc:
            self.log.error("%s", exc)
            self.stop()
            return
        capture_ns = self.source.last_capture_ns or time.time_ns()  # a bag's own stamps, shifted to now
        if image is None:
            self.log.info("camera %s: end of source after %d frames", self.source.uri, self.index)
            self.stop()
            return
        self.publish("frames", image=self.resized(image), frame_index=self.index, capture_ns=capture_ns)
        self.index += 1
        if self.params.frames and self.index >= self.params.frames:
            self.stop()

    def resized(self, image: np.ndarray) -> np.ndarray:
        width, height = self.params.width, self.params.height
        if not width or not height or image.shape[:2] == (height, width):
            return image
        import cv2

        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)

    def teardown(self) -> None:
        if hasattr(self, "source"):
            self.source.close()
