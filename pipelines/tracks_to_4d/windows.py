"""Sliding windows over a track history, and the chaining of per-window poses into one trajectory.

The network sees windows of T = 20 frames; consecutive windows overlap by 10 (as NVIDIA's holohub
runs TracksTo4D). Each window is reconstructed in its own world frame and scale, so the windows'
poses are chained: the next window is mapped onto the trajectory so far by the similarity that
best aligns the cameras of the frames they share (rotation from the shared camera orientations,
scale and translation from the shared camera centres — ten centres of a smooth path are often
nearly collinear, which leaves a centre-only Umeyama rotation ill-determined about that line).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edgerun.models.tracks_to_4d.geometry import Sim3, camera_centres


@dataclass(frozen=True)
class FrameTracks:
    """The live tracks of one frame: ids (M,) int64 and pixel positions (M, 2) float32."""

    frame_index: int
    ids: np.ndarray
    points: np.ndarray


@dataclass(frozen=True)
class TrackWindow:
    """Tracks of ``frames`` consecutive frames in the paper's layout: ``tracks`` (N, 3, T) float32
    (x, y in pixels; visibility ∈ {0, 1}; an invisible entry holds the track's nearest visible
    position so that no coordinate is undefined), the tracker's ``track_ids`` (N,), the index of
    the first frame ``start`` and each frame's stamp ``stamps_ns`` (T,) int64 (capture time)."""

    start: int
    tracks: np.ndarray
    track_ids: np.ndarray
    stamps_ns: np.ndarray

    @property
    def frames(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.tracks.shape[2])


@dataclass(frozen=True)
class WindowConfig:
    length: int = 20  # frames per window, T
    stride: int = 10  # frames between window starts (overlap = length - stride)
    min_visible: int = 2  # a track must be visible in at least this many frames of a window

    def __post_init__(self) -> None:
        if not 1 <= self.stride <= self.length or self.min_visible < 1:
            raise ValueError(f"WindowConfig: need 1 <= stride <= length and min_visible >= 1, got {self}")


def window_starts(frames: int, config: WindowConfig = WindowConfig()) -> list[int]:
    """First frames of the windows that fit in ``frames`` frames."""
    return list(range(0, frames - config.length + 1, config.stride))


def assemble_window(history: list[FrameTracks], stamps_ns: list[int], min_visible: int) -> TrackWindow:
    """Tracks of consecutive frames → one :class:`TrackWindow` of the ids seen at least ``min_visible`` times."""
    length = len(history)
    all_ids = np.concatenate([frame.ids for frame in history])
    ids, counts = np.unique(all_ids, return_counts=True)
    ids = ids[counts >= min_visible]
    tracks = np.zeros((len(ids), 3, length), np.float32)
    for t, frame in enumerate(history):
        rows = np.searchsorted(ids, frame.ids)
        present = (rows < len(ids)) & (ids[np.minimum(rows, len(ids) - 1)] == frame.ids) if len(ids) else np.zeros(len(frame.ids), bool)
        tracks[rows[present], :2, t] = frame.points[present]
        tracks[rows[present], 2, t] = 1.0
    fill_invisible(tracks)
    return TrackWindow(history[0].frame_index, tracks, ids, np.asarray(stamps_ns, np.int64))


def fill_invisible(tracks: np.ndarray) -> None:
    """Give each invisible entry of (N, 3, T) tracks the position of the nearest visible frame (in place)."""
    visible = tracks[:, 2] > 0.5
    frames = np.arange(tracks.shape[2])
    for n in np.flatnonzero(~visible.all(1) & visible.any(1)):
        seen = np.flatnonzero(visible[n])
        nearest = seen[np.abs(frames[:, None] - seen[None]).argmin(1)]
        tracks[n, :2] = tracks[n][:2, nearest]


class TrackWindower:
    """Collects per-frame tracks; every ``stride`` frames (once ``length`` are in) emits a window."""

    def __init__(self, config: WindowConfig = WindowConfig()):
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.history: deque[FrameTracks] = deque(maxlen=self.config.length)
        self.stamps: deque[int] = deque(maxlen=self.config.length)
        self.seen = 0

    def push(self, frame: FrameTracks, stamp_ns: int = 0) -> TrackWindow | None:
        self.history.append(frame)
        self.stamps.append(int(stamp_ns))
        self.seen += 1
        surplus = self.seen - self.config.length
        if surplus < 0 or surplus % self.config.stride:
            return None
        return assemble_window(list(self.history), list(self.stamps), self.config.min_visible)


def alignment_between(shared_reference: np.ndarray, shared_window: np.ndarray) -> Sim3:
    """The similarity S (world of the window → world of the reference) for camera-from-world poses
    (M, 4, 4) of the same frames: rotation = chordal mean of R_refᵀ·R_win, then scale and translation
    by least squares on the camera centres (scale 1 when the shared centres barely spread)."""
    mean = np.einsum("mji,mjk->ik", shared_reference[:, :3, :3], shared_window[:, :3, :3])
    u, _, vt = np.linalg.svd(mean)
    rotation = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    target = camera_centres(shared_reference)
    source = camera_centres(shared_window) @ rotation.T
    centred_source, centred_target = source - source.mean(0), target - target.mean(0)
    spread = (centred_source**2).sum()
    scale = float((centred_source * centred_target).sum() / spread) if spread > 1e-12 else 1.0
    if scale <= 0:
        scale = 1.0
    return Sim3(scale, rotation, target.mean(0) - scale * source.mean(0))


class TrajectoryChainer:
    """Incremental :func:`chain_windows` for a stream of windows: ``add(start, poses)`` → the
    trajectory at that window's frames (frames shared with earlier windows keep their earlier
    pose); ``transform`` is the similarity that took the last window into the trajectory's frame
    (its scale also scales that window's depths). Only the last ``keep`` frames are remembered."""

    def __init__(self, keep: int = 64):
        self.keep = keep
        self.poses: dict[int, np.ndarray] = {}
        self.transform = Sim3(1.0, np.eye(3), np.zeros(3))

    def connects(self, start: int, length: int) -> bool:
        """Whether a window of ``length`` frames from ``start`` can be chained (shares a frame, or is the first)."""
        return not self.poses or any(start + i in self.poses for i in range(length))

    def reset(self) -> None:
        self.poses.clear()
        self.transform = Sim3(1.0, np.eye(3), np.zeros(3))

    def add(self, start: int, poses: np.ndarray) -> np.ndarray:
        poses = np.asarray(poses, np.float64)
        shared = [start + i for i in range(len(poses)) if start + i in self.poses]
        if self.poses and not shared:
            raise ValueError(f"chain_windows: the window at frame {start} shares no frame with the earlier windows")
        self.transform = Sim3(1.0, np.eye(3), np.zeros(3))
        if shared:
            reference = np.stack([self.poses[f] for f in shared])
            self.transform = alignment_between(reference, poses[[f - start for f in shared]])
            poses = self.transform.apply_to_cam_from_world(poses)
        for i, pose in enumerate(poses):
            self.poses.setdefault(start + i, pose)
        chained = np.stack([self.poses[start + i] for i in range(len(poses))])
        for frame in [f for f in self.poses if f < start + len(poses) - self.keep]:
            del self.poses[frame]
        return chained


def chain_windows(starts: list[int], poses: list[np.ndarray]) -> np.ndarray:
    """Per-window camera-from-world poses (each (T_w, 4, 4), window w starting at frame
    ``starts[w]``) → one (F, 4, 4) trajectory in the first window's frame and scale. Each window
    must share at least one frame with the one before; a shared frame keeps the earlier window's pose."""
    if len(starts) != len(poses) or not poses:
        raise ValueError(f"chain_windows: {len(starts)} starts for {len(poses)} pose windows")
    chainer = TrajectoryChainer(keep=1 << 62)
    for start, window in zip(starts, poses):
        chainer.add(start, window)
    frames = sorted(chainer.poses)
    if frames != list(range(frames[0], frames[-1] + 1)):
        raise ValueError("chain_windows: the windows leave gaps between frames")
    return np.stack([chainer.poses[f] for f in frames])
