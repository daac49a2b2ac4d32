"""Frame sources named by URI, in the style of jetson-inference's ``videoSource``.

=====================================  =================================================
``v4l2:///dev/video0``                 a V4L2 capture device (USB / CSI camera)
``file://clip.mp4``, ``file:///abs/x``  a video file (relative paths from the working dir)
``rtsp://user:pw@host:554/stream``     a network stream (FFmpeg backend, open time-out)
``synthetic://NAME``                   a generated scene: ``pattern`` (moving colour bands),
                                       ``scene`` (a rendered 3-D scene, moving camera),
                                       ``camouflage`` (INT's camouflage scenes)
``gym://ENV_ID``                       a gymnasium env's ``rgb_array`` render, random actions
``rosbag2://PATH?topic=/cam/image``     a ROS 2 bag's Image or CompressedImage topic, at the
                                       bag's pace, with its time stamps
                                       (:mod:`edgerun.nodes.rosbag_source`)
=====================================  =================================================

Query parameters tune a source: ``?width=640&height=480&fps=30`` (a device's capture mode, a
synthetic scene's size and rate), ``?loop=1`` (a file starts again at its end),
``?timeout_s=5`` (rtsp), ``?seed=0`` (synthetic, gym), ``?topic=/camera/image_raw`` (rosbag2). Every source yields RGB uint8 frames
``(height, width, 3)``. A URI that cannot be opened raises :class:`SourceError`, whose message
names the URI (credentials hidden) and the cause.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import numpy as np

import edgerun.envs  # noqa: F401  (registers edgerun's environments)
from edgerun.nodes.rosbag_source import open_rosbag2
from edgerun.nodes.source_base import FrameSource, SourceError, SourceOptions
from edgerun.sim.camouflage import SyntheticConfig, generate_sample
from edgerun.sim.textured_scenes import RenderConfig, build_scene, render_frame


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class OpenCVSource:
    """A device, file or stream read through ``cv2.VideoCapture``."""

    last_capture_ns = None  # no clock of its own: the camera stamps each frame when it reads it

    def __init__(self, uri: str, capture: Any, live: bool, loop: bool):
        import cv2

        self.uri = uri
        self.capture = capture
        self.live = live
        self.loop = loop
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)

    def read(self) -> np.ndarray | None:
        import cv2

        ok, frame = self.capture.read()
        if not ok and self.loop:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.capture.read()
        if not ok:
            if self.live:
                raise SourceError(self.uri, "the device or stream stopped delivering frames")
            return None
        return _bgr_to_rgb(frame)

    def close(self) -> None:
        self.capture.release()


def _open_v4l2(uri: str, location: str, options: SourceOptions) -> FrameSource:
    import cv2

    device = location or "/dev/video0"
    if not os.path.exists(device):
        raise SourceError(uri, f"no such device {device} (is the camera plugged in? `ls /dev/video*`)")
    if not os.access(device, os.R_OK | os.W_OK):
        raise SourceError(uri, f"no permission to open {device} (add the user to the 'video' group)")
    capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
    if not capture.isOpened():
        raise SourceError(uri, f"{device} exists but cannot be opened for capture (busy, or not a capture device)")
    for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, options.width), (cv2.CAP_PROP_FRAME_HEIGHT, options.height), (cv2.CAP_PROP_FPS, options.fps)):
        if value:
            capture.set(prop, value)
    return OpenCVSource(uri, capture, live=True, loop=False)


def _open_file(uri: str, location: str, options: SourceOptions) -> FrameSource:
    import cv2

    path = Path(location)
    if not path.is_file():
        raise SourceError(uri, f"no such file {path.resolve()}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(uri, f"OpenCV cannot decode {path} (not a video, or a codec this OpenCV build lacks)")
    source = OpenCVSource(uri, capture, live=False, loop=options.loop)
    if options.fps:
        source.fps = options.fps
    return source


def _open_rtsp(uri: str, location: str, options: SourceOptions) -> FrameSource:
    import cv2

    timeout_ms = int(options.timeout_s * 1000)
    address = uri.split("?", 1)[0]
    capture = cv2.VideoCapture(
        address, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    )
    if not capture.isOpened():
        raise SourceError(uri, f"cannot open the stream within {options.timeout_s:g} s (unreachable host, wrong path or credentials)")
    return OpenCVSource(uri, capture, live=True, loop=False)


class GeneratedSource:
    """Frames from a function of the frame index, at a fixed rate."""

    last_capture_ns = None  # no clock of its own: the camera stamps each frame when it reads it

    live = False

    def __init__(self, uri: str, render: Callable[[int], np.ndarray], fps: float):
        self.uri = uri
        self.render = render
        self.fps = fps
        self.index = 0

    def read(self) -> np.ndarray:
        frame = self.render(self.index)
        self.index += 1
        return frame

    def close(self) -> None:
        pass


def moving_pattern(y: np.ndarray, x: np.ndarray, index: int) -> np.ndarray:
    """An RGB uint8 frame from pixel grids ``np.mgrid[0:height, 0:width]``: colour bands and a
    white square that move with ``index``."""
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


def _pattern(uri: str, options: SourceOptions) -> FrameSource:
    grid = np.mgrid[0 : options.height or 480, 0 : options.width or 640]
    return GeneratedSource(uri, lambda index: moving_pattern(*grid, index), options.fps or 30.0)


def _rendered_scene(uri: str, options: SourceOptions) -> FrameSource:
    """TracksTo4D's rendered 3-D scene (textured planes, a moving panel, a moving camera), played
    forwards then backwards so that a loop never tears a track."""

    scene = build_scene(options.seed, RenderConfig(width=options.width or 640, height=options.height or 480))
    count = len(scene.cam_from_world)
    period = max(2 * count - 2, 1)

    def frame(index: int) -> np.ndarray:
        phase = index % period
        return render_frame(scene, phase if phase < count else period - phase)[0]

    return GeneratedSource(uri, frame, options.fps or 15.0)


def _camouflage(uri: str, options: SourceOptions) -> FrameSource:
    """INT's camouflage scenes (held-out seed by default), a new scene every 50 frames."""

    config = SyntheticConfig(height=options.height or 480, width=options.width or 640)
    seed = options.seed or 2

    @functools.lru_cache(maxsize=1)
    def scene(number: int) -> np.ndarray:
        return generate_sample(np.random.default_rng([seed, number]), config).image

    return GeneratedSource(uri, lambda index: scene(index // 50), options.fps or 10.0)


# synthetic://NAME → a factory
SYNTHETIC_SCENES: dict[str, Callable[[str, SourceOptions], FrameSource]] = {
    "pattern": _pattern,
    "scene": _rendered_scene,
    "camouflage": _camouflage,
}


def _open_synthetic(uri: str, location: str, options: SourceOptions) -> FrameSource:
    if location not in SYNTHETIC_SCENES:
        raise SourceError(uri, f"unknown synthetic scene '{location}' (scenes: {', '.join(sorted(SYNTHETIC_SCENES))})")
    return SYNTHETIC_SCENES[location](uri, options)


class GymSource:
    """A gymnasium env rendered offscreen under uniformly random actions, reset at episode ends."""

    last_capture_ns = None  # no clock of its own: the camera stamps each frame when it reads it

    live = False

    def __init__(self, uri: str, env: Any, seed: int, fps: float):
        self.uri = uri
        self.env = env
        self.fps = fps
        self.seed = seed
        env.action_space.seed(seed)
        env.reset(seed=seed)

    def read(self) -> np.ndarray:
        _, _, terminated, truncated, _ = self.env.step(self.env.action_space.sample())
        if terminated or truncated:
            self.seed += 1
            self.env.reset(seed=self.seed)
        return np.ascontiguousarray(self.env.render(), dtype=np.uint8)

    def close(self) -> None:
        self.env.close()


def _open_gym(uri: str, location: str, options: SourceOptions) -> FrameSource:
    import gymnasium


    try:
        env = gymnasium.make(location, render_mode="rgb_array")
    except gymnasium.error.Error as exc:
        raise SourceError(uri, f"gymnasium cannot make '{location}': {exc}") from None
    fps = options.fps or float(env.metadata.get("render_fps") or 30.0)
    return GymSource(uri, env, options.seed, fps)


OPENERS: dict[str, Callable[[str, str, SourceOptions], FrameSource]] = {
    "v4l2": _open_v4l2,
    "file": _open_file,
    "rtsp": _open_rtsp,
    "synthetic": _open_synthetic,
    "gym": _open_gym,
    "rosbag2": open_rosbag2,
}


def open_source(uri: str) -> FrameSource:
    """Open the frame source ``uri`` names (see the module docstring), or raise SourceError."""
    parts = urlsplit(uri)
    if parts.scheme not in OPENERS:
        raise SourceError(uri, f"unknown scheme '{parts.scheme}' (expected one of {', '.join(s + '://' for s in OPENERS)})")
    options = SourceOptions.from_query(uri, parts.query)
    if parts.scheme in ("v4l2", "file", "rosbag2"):
        location = parts.netloc + parts.path  # file://clip.mp4 is relative, file:///abs/clip.mp4 absolute
    elif parts.scheme == "rtsp":
        location = parts.netloc
    else:
        location = parts.netloc + parts.path.rstrip("/")
    if not location and parts.scheme != "v4l2":
        raise SourceError(uri, f"{parts.scheme}:// needs a location after the scheme")
    return OPENERS[parts.scheme](uri, location, options)
