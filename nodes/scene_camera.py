"""Frame sources for the reconstruction graph: a rendered 3-D scene (with ground truth) and a video file.

:class:`RenderedSceneCamera` plays a sequence of :mod:`edgerun.models.tracks_to_4d.render`
forwards then backwards (a loop that jumped back to the first frame would tear every track), and
sends with each frame the camera's true pose and K, so a viewer can draw the ground truth beside
the reconstruction. :class:`VideoFileCamera` plays a video file through OpenCV.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from edgerun.models.tracks_to_4d.render import RenderConfig, build_scene, render_frame
from edgerun.runtime import Node


@dataclass(frozen=True)
class RenderedSceneParams:
    seed: int = 0
    frames: int = 60  # rendered frames, then played back and forth
    width: int = 640
    height: int = 480
    fps: float = 15.0
    stop_after: int = 0  # stop after this many frames; 0 runs until stopped


class RenderedSceneCamera(Node):
    outputs = ("frames",)
    params = RenderedSceneParams

    def setup(self) -> None:
        config = RenderConfig(width=self.params.width, height=self.params.height, frames=self.params.frames)
        self.scene = build_scene(self.params.seed, config)  # frames are drawn as they are sent (~50 ms each)
        self.sent = 0
        self.every(1.0 / self.params.fps, self.capture)

    def capture(self) -> None:
        count = len(self.scene.cam_from_world)
        period = max(2 * count - 2, 1)
        phase = self.sent % period
        index = phase if phase < count else period - phase
        capture_ns = time.time_ns()
        self.publish(
            "frames", image=render_frame(self.scene, index)[0], frame_index=self.sent, scene_frame=index,
            K=self.scene.K, cam_from_world=self.scene.cam_from_world[index], capture_ns=capture_ns,
        )
        self.sent += 1
        if self.params.stop_after and self.sent >= self.params.stop_after:
            self.stop()


@dataclass(frozen=True)
class VideoFileParams:
    path: str
    fps: float = 0.0  # 0: the file's own frame rate
    loop: bool = False


class VideoFileCamera(Node):
    outputs = ("frames",)
    params = VideoFileParams

    def setup(self) -> None:
        self.capture_device = cv2.VideoCapture(self.params.path)
        if not self.capture_device.isOpened():
            raise ValueError(f"video file '{self.params.path}': OpenCV cannot open it")
        fps = self.params.fps or self.capture_device.get(cv2.CAP_PROP_FPS) or 30.0
        self.index = 0
        self.every(1.0 / fps, self.capture)

    def capture(self) -> None:
        ok, frame = self.capture_device.read()
        if not ok and self.params.loop and self.index:
            self.capture_device.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.capture_device.read()
        if not ok:
            self.log.info("video file '%s' ended after %d frames", self.params.path, self.index)
            self.stop()
            return
        image = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        self.publish("frames", image=image, frame_index=self.index, capture_ns=time.time_ns())
        self.index += 1

    def teardown(self) -> None:
        if hasattr(self, "capture_device"):
            self.capture_device.release()
