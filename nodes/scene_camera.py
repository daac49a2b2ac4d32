"""A camera over a rendered 3-D scene, with ground truth, for the reconstruction graph.

:class:`RenderedSceneCamera` plays a sequence of :mod:`edgerun.sim.textured_scenes`
forwards then backwards (a loop that jumped back to the first frame would tear every track), and
sends with each frame the camera's true pose and K, so a viewer can draw the ground truth beside
the reconstruction. (Without the ground truth the same frames come from
``Camera`` with ``uri: synthetic://scene``; a video file is ``uri: file://clip.mp4``.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgerun.runtime import Node
from edgerun.runtime.views import Image, Transform
from edgerun.sim.textured_scenes import RenderConfig, build_scene, render_frame


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
    views = {"frames": (Image("image"), Transform("cam_from_world", parent="world", child="camera", inverse=True))}
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
