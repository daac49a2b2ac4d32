"""A synthetic camera of camouflage scenes (INT's generated data set), for demos and tests.

Publishes ``frames``: ``image`` (RGB uint8, height x width x 3), ``frame_index``, and the scene's
ground truth beside it (``target_mask`` bool (H, W), ``target`` category) for viewers and
checks; a segmenter reads only ``image``. A scene is held for ``scene_frames`` frames with fresh
sensor noise on each, then the next scene of the seeded sequence follows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgerun.runtime import Node
from edgerun.runtime.views import Image
from edgerun.sim.camouflage import SyntheticConfig, generate_sample


@dataclass(frozen=True)
class CamouflageCameraParams:
    width: int = 640
    height: int = 480
    fps: float = 10.0
    scene_frames: int = 50  # frames per scene
    seed: int = 2  # scene i is generate_split(seed, …)[i]; 2 is the held-out test seed
    noise: float = 2.0  # per-frame sensor noise (std, 0-255)
    frames: int = 0  # stop after this many frames; 0 runs until stopped


class CamouflageCamera(Node):
    outputs = ("frames",)
    views = {"frames": (Image("image"), Image("target_mask"))}
    params = CamouflageCameraParams

    def setup(self) -> None:

        self.config = SyntheticConfig(height=self.params.height, width=self.params.width)
        self.index = 0
        self.rng = np.random.default_rng(self.params.seed)
        self.every(1.0 / self.params.fps, self.capture)

    def scene(self, number: int):

        if getattr(self, "scene_number", None) != number:
            self.scene_number = number
            self.sample = generate_sample(np.random.default_rng([self.params.seed, number]), self.config)
        return self.sample

    def capture(self) -> None:
        capture_ns = time.time_ns()
        sample = self.scene(self.index // max(1, self.params.scene_frames))
        image = sample.image
        if self.params.noise > 0:
            noise = self.rng.normal(0.0, self.params.noise, image.shape)
            image = np.clip(image + noise, 0, 255).astype(np.uint8)
        self.publish("frames", image=image, frame_index=self.index, target_mask=sample.target_mask,
                     target=sample.target_category, capture_ns=capture_ns)
        self.index += 1
        if self.params.frames and self.index >= self.params.frames:
            self.stop()
