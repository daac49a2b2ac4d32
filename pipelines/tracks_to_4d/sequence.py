"""A whole clip of point tracks → one camera trajectory and every track's depth in every frame:
windows of the network, each refined (or not), chained into one trajectory. What
``edgerun reconstruct`` and the held-out evaluation run.

Windows of ``window`` frames overlap by half (the last one ends at the last frame); a window of
0, or one at least as long as the clip, is the whole clip in one call. Frames that see fewer than
``min_tracks`` tracks break the clip: the windows cover each run of frames between them, and the
frames themselves are reported and get no pose. Each window is
reconstructed from the tracks visible in two or more of its frames, refined (``"ba"``: bundle
adjustment, never for the worse; ``"ft"``: test-time fine-tuning, torch only) and mapped onto the
trajectory so far by the similarity of the frames they share (:class:`~.windows.TrajectoryChainer`).
A window that cannot be reconstructed (:func:`~.reconstruct.window_problem`) is reported and
skipped; the next window then starts a new trajectory ``segment`` (each in its own frame and
scale). Frames and depths no window covers are NaN (segment -1).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from edgerun.models.tracks_to_4d.intrinsics import guess_intrinsics
from edgerun.pipelines.tracks_to_4d.reconstruct import WindowModel, window_problem, with_bundle_adjustment
from edgerun.pipelines.tracks_to_4d.windows import TrajectoryChainer

REFINEMENTS = ("none", "ba", "ft")


@dataclass(frozen=True)
class WindowReport:
    start: int  # first frame
    frames: int
    tracks: int  # tracks given to the network (visible in >= 2 of the window's frames)
    feedforward_s: float
    refine_s: float
    refined: bool
    reason: str  # why the window was skipped, or why its refinement was not kept; "" otherwise
    skipped: bool = False  # not reconstructed (see reason)


@dataclass(frozen=True)
class SequenceReconstruction:
    cam_from_world: np.ndarray  # (T, 4, 4) world-to-camera; NaN where no window covers the frame
    depth: np.ndarray  # (N, T) each track's depth in each frame's camera; NaN where no window gave one
    K: np.ndarray  # (3, 3) the intrinsics used
    segment: np.ndarray  # (T,) int: the trajectory segment of each frame, -1 where none
    windows: list[WindowReport]


def window_spans(frames: int, window: int) -> list[tuple[int, int]]:
    """(start, length) of the windows over ``frames`` frames: overlapping by half, the last ending at
    the last frame; one window when ``window`` is 0 or covers the clip."""
    if window <= 0 or window >= frames:
        return [(0, frames)]
    if window < 2:
        raise ValueError(f"window: a window needs at least 2 frames, got {window}")
    starts = list(range(0, frames - window + 1, max(window // 2, 1)))
    if starts[-1] + window < frames:
        starts.append(frames - window)
    return [(start, window) for start in starts]


def _spans_seen(tracks_px: np.ndarray, window: int, min_tracks: int) -> list[tuple[int, int] | WindowReport]:
    """In frame order: :func:`window_spans` (start, length) over each run of frames that see at least
    ``min_tracks`` tracks, and a skipped-window report for each run of frames that see fewer (they
    get no pose: a network given frames without tracks invents their cameras, and BA chains
    through them)."""
    visible = (tracks_px[:, 2] > 0.5).sum(0)
    spans: list[tuple[int, int] | WindowReport] = []
    first = 0
    for seen, run in itertools.groupby(visible >= min_tracks):
        count = len(list(run))
        if seen and count >= 2:
            spans += [(first + start, length) for start, length in window_spans(count, window)]
        else:
            most = int(visible[first : first + count].max())
            spans.append(WindowReport(first, count, most, 0.0, 0.0, False,
                                      f"frames {first}-{first + count - 1}: at most {most} tracks visible in a frame "
                                      f"(at least {min_tracks} needed, in two or more consecutive frames)", skipped=True))
        first += count
    return spans


def reconstruct_tracks(
    network: WindowModel, tracks_px: np.ndarray, K: np.ndarray | None = None, window: int = 20, refine: str = "none",
    min_tracks: int = 16, fine_tune_steps: int = 50, image_size: tuple[int, int] | None = None,
) -> SequenceReconstruction:
    """Reconstruct pixel tracks (N, 3, T) (x, y, visibility) with intrinsics ``K`` (None: the paper's
    guess from the whole clip's tracks) from frames of ``image_size`` (width, height; None: unknown,
    twice the principal point); see the module docstring."""
    tracks_px = np.asarray(tracks_px, np.float32)
    if refine not in REFINEMENTS:
        raise ValueError(f"refine: expected one of {REFINEMENTS}, got {refine!r}")
    if tracks_px.ndim != 3 or tracks_px.shape[1] != 3 or tracks_px.shape[2] < 2:
        raise ValueError(f"expected tracks (N, 3, T >= 2) (x, y, visibility), got {tracks_px.shape}")
    K = guess_intrinsics(tracks_px) if K is None else np.asarray(K, np.float64)
    count, frames = tracks_px.shape[0], tracks_px.shape[2]
    if image_size is None:  # a tracks file does not say: the principal point is taken as the centre
        image_size = (2.0 * K[0, 2], 2.0 * K[1, 2])
    cam_from_world = np.full((frames, 4, 4), np.nan)
    depth = np.full((count, frames), np.nan)
    segment = np.full(frames, -1)
    chainer, segments, reports = TrajectoryChainer(keep=1 << 62), 0, []
    for span in _spans_seen(tracks_px, window, min_tracks):
        if isinstance(span, WindowReport):  # frames without tracks
            reports.append(span)
            continue
        start, length = span
        window_tracks = tracks_px[:, :, start : start + length]
        chosen = np.flatnonzero((window_tracks[:, 2] > 0.5).sum(1) >= 2)
        problem = window_problem(window_tracks[chosen], image_size, K, min_tracks, min_frames=max(2, network.min_frames))
        if problem is not None:
            reports.append(WindowReport(start, length, len(chosen), 0.0, 0.0, False, problem, skipped=True))
            continue
        started = time.perf_counter()
        reconstruction, _ = network(window_tracks[chosen], K)
        feedforward_s, refined, reason, refine_s = time.perf_counter() - started, False, "", 0.0
        if refine == "ba":
            outcome = with_bundle_adjustment(reconstruction, window_tracks[chosen], K)
            reconstruction, refined, reason, refine_s = outcome.reconstruction, outcome.refined, outcome.reason, outcome.seconds
        elif refine == "ft":
            started = time.perf_counter()
            reconstruction, refined = network.fine_tuned(window_tracks[chosen], K, fine_tune_steps), True
            refine_s = time.perf_counter() - started
        if not chainer.connects(start, length):
            chainer.reset()
            segments += 1
        poses = chainer.add(start, reconstruction.cam_from_world)
        frame_depth = reconstruction.points_camera()[..., 2].T * chainer.transform.scale  # (chosen, length)
        new = np.isnan(cam_from_world[start : start + length, 0, 0])  # frames an earlier window already gave keep theirs
        cam_from_world[start : start + length][new] = poses[new]
        segment[start : start + length][new] = segments
        block = depth[chosen, start : start + length]
        depth[chosen, start : start + length] = np.where(np.isnan(block), frame_depth, block)
        reports.append(WindowReport(start, length, len(chosen), feedforward_s, refine_s, refined, reason))
    return SequenceReconstruction(cam_from_world, depth, K, segment, reports)
