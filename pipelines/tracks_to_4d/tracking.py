"""A real-time point tracker front-end: pyramidal Lucas–Kanade (OpenCV) on a query grid.

The paper tracks a 15 × 15 grid with CoTracker2, re-queried every 20 frames, at 8.6 s per clip;
a robot needs tracks at camera rate. :class:`KLTTracker` follows each query frame to frame with
``cv2.calcOpticalFlowPyrLK``, keeps a point only while the forward–backward error stays under a threshold and the point
stays inside the image, and every ``requery_every`` frames queries the grid cells that lost their
track again (as new tracks: a track never changes identity). :class:`~.windows.TrackWindower` cuts
the track history into the network's windows.

Any front-end with the :class:`TrackFrontEnd` interface (frames in, windows out) can take its
place, e.g. a learned tracker engine that tracks a whole window of frames at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from edgerun.pipelines.tracks_to_4d.windows import FrameTracks, TrackWindow, TrackWindower, WindowConfig


@dataclass(frozen=True)
class KLTConfig:
    grid: int = 15  # queries on a grid × grid lattice (the paper: 15 × 15 = 225)
    requery_every: int = 20  # frames between re-queries of the grid cells whose track was lost
    window_px: int = 15  # Lucas–Kanade window side (small: less drift at occlusion edges)
    pyramid_levels: int = 3
    fb_threshold_px: float = 0.5  # forward–backward error above which a track is dropped
    border_px: int = 4  # a point nearer the image edge than this is lost
    max_iterations: int = 30
    epsilon: float = 0.01

    def __post_init__(self) -> None:
        if self.grid < 1 or self.requery_every < 1 or self.window_px < 3 or self.pyramid_levels < 0:
            raise ValueError(f"KLTConfig: grid, requery_every >= 1, window_px >= 3, pyramid_levels >= 0; got {self}")


def grid_queries(width: int, height: int, grid: int) -> np.ndarray:
    """(grid², 2) float32 pixel centres of a grid × grid lattice of equal cells over the image."""
    xs = (np.arange(grid) + 0.5) * width / grid
    ys = (np.arange(grid) + 0.5) * height / grid
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 and image.dtype == np.uint8:
        return image
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"tracker: expected a uint8 (H, W, 3) RGB or (H, W) gray image, got {image.dtype} {image.shape}")


class KLTTracker:
    """Frame-to-frame tracker of grid queries; ``push(image)`` → the live tracks in that frame."""

    def __init__(self, config: KLTConfig = KLTConfig()):
        self.config = config
        self.criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, config.max_iterations, config.epsilon)
        self.reset()

    def reset(self) -> None:
        self.frame_index = 0
        self.previous: np.ndarray | None = None
        self.ids = np.zeros(0, np.int64)
        self.points = np.zeros((0, 2), np.float32)
        self.next_id = 0
        self.size: tuple[int, int] | None = None

    def push(self, image: np.ndarray) -> FrameTracks:
        gray = to_gray(image)
        size = (gray.shape[1], gray.shape[0])
        if self.size is not None and size != self.size:
            raise ValueError(f"tracker: frame {self.frame_index} is {size[0]}x{size[1]}, earlier frames {self.size[0]}x{self.size[1]}")
        self.size = size
        if self.previous is not None and len(self.points):
            self._follow(self.previous, gray)
        if self.frame_index % self.config.requery_every == 0:
            self._requery()
        self.previous = gray
        frame = FrameTracks(self.frame_index, self.ids.copy(), self.points.copy())
        self.frame_index += 1
        return frame

    def _follow(self, previous: np.ndarray, current: np.ndarray) -> None:
        """Forward then backward LK; keep points that come back to where they started and stay inside."""
        window = (self.config.window_px, self.config.window_px)
        level = self.config.pyramid_levels
        start = self.points.reshape(-1, 1, 2)
        forward, ok_f, _ = cv2.calcOpticalFlowPyrLK(previous, current, start, None, winSize=window, maxLevel=level, criteria=self.criteria)
        back, ok_b, _ = cv2.calcOpticalFlowPyrLK(current, previous, forward, None, winSize=window, maxLevel=level, criteria=self.criteria)
        forward, back = forward.reshape(-1, 2), back.reshape(-1, 2)
        width, height = self.size
        border = self.config.border_px
        keep = (
            (ok_f.ravel() == 1)
            & (ok_b.ravel() == 1)
            & (np.linalg.norm(back - self.points, axis=1) < self.config.fb_threshold_px)
            & (forward[:, 0] >= border)
            & (forward[:, 0] <= width - 1 - border)
            & (forward[:, 1] >= border)
            & (forward[:, 1] <= height - 1 - border)
        )
        self.ids, self.points = self.ids[keep], forward[keep]

    def _requery(self) -> None:
        """New tracks at the centres of grid cells that hold no live track."""
        width, height = self.size
        grid = self.config.grid
        occupied = np.zeros((grid, grid), bool)
        if len(self.points):
            cols = np.clip((self.points[:, 0] * grid / width).astype(int), 0, grid - 1)
            rows = np.clip((self.points[:, 1] * grid / height).astype(int), 0, grid - 1)
            occupied[rows, cols] = True
        new = grid_queries(width, height, grid)[~occupied.ravel()]
        self.ids = np.concatenate([self.ids, np.arange(self.next_id, self.next_id + len(new))])
        self.points = np.concatenate([self.points, new]).astype(np.float32)
        self.next_id += len(new)


class TrackFrontEnd(Protocol):
    """Frames in, track windows out: what the tracker node runs. A learned tracker (a windowed
    engine such as CoTracker) implements the same two calls by buffering a window of frames."""

    def push(self, image: np.ndarray, stamp_ns: int = 0) -> TrackWindow | None:
        """Take the next frame; → the window this frame completes, if any."""
        ...

    def reset(self) -> None: ...


@dataclass
class KLTFrontEnd:
    """:class:`KLTTracker` + :class:`~.windows.TrackWindower`: the real-time front-end."""

    tracking: KLTConfig = field(default_factory=KLTConfig)
    windows: WindowConfig = field(default_factory=WindowConfig)

    def __post_init__(self) -> None:
        self.tracker = KLTTracker(self.tracking)
        self.windower = TrackWindower(self.windows)

    def push(self, image: np.ndarray, stamp_ns: int = 0) -> TrackWindow | None:
        return self.windower.push(self.tracker.push(image), stamp_ns)

    def reset(self) -> None:
        self.tracker.reset()
        self.windower.reset()


def track_sequence(images: np.ndarray, front_end: TrackFrontEnd | None = None) -> list[TrackWindow]:
    """Every window of a whole (T, H, W[, 3]) sequence (offline use: evaluation, tests)."""
    front_end = front_end or KLTFrontEnd()
    windows = [front_end.push(image, index) for index, image in enumerate(images)]
    return [w for w in windows if w is not None]
