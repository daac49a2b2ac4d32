"""One window of pixel tracks → cameras and points, feed-forward or refined: the calls the
evaluation, the benchmark and the reconstructor node share.

A :class:`WindowReconstruction` is plain numpy, whichever engine produced it (torch, or the
exported network's outputs from ONNX Runtime / TensorRT in the order of
:class:`~.network.TracksTo4DOutput`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from edgerun.models.tracks_to_4d.intrinsics import normalize_tracks
from edgerun.models.tracks_to_4d.network import TracksTo4D, TracksTo4DOutput
from edgerun.pipelines.tracks_to_4d.refine import BundleAdjustConfig, bundle_adjust, fine_tune


@dataclass(frozen=True)
class WindowReconstruction:
    cam_from_world: np.ndarray  # (T, 4, 4) float64
    points_world: np.ndarray  # (T, N, 3) float64, X_t of every track in every frame
    gamma: np.ndarray  # (N,) the network's uncertainty (large: moving or badly tracked); ones for the baseline
    focal: np.ndarray  # (T,) focal correction factors

    def points_camera(self) -> np.ndarray:
        """(T, N, 3) each frame's points in that frame's camera."""
        rotations, translations = self.cam_from_world[:, :3, :3], self.cam_from_world[:, :3, 3]
        return np.einsum("tij,tnj->tni", rotations, self.points_world) + translations[:, None]


def from_outputs(outputs: TracksTo4DOutput | Sequence[np.ndarray]) -> WindowReconstruction:
    """The first batch item of the network's outputs (tensors or arrays, in
    :class:`~.network.TracksTo4DOutput` order) as a :class:`WindowReconstruction`."""
    rotations, translations, focal, coeffs, basis, gamma = (
        (o.detach().cpu().numpy() if isinstance(o, torch.Tensor) else np.asarray(o)).astype(np.float64)[0] for o in outputs
    )
    frames = len(rotations)
    cam_from_world = np.tile(np.eye(4), (frames, 1, 1))
    cam_from_world[:, :3, :3], cam_from_world[:, :3, 3] = rotations, translations
    return WindowReconstruction(cam_from_world, np.einsum("tk,nkc->tnc", coeffs, basis), gamma, focal)


def network_input(tracks_px: np.ndarray, K: np.ndarray | None) -> tuple[torch.Tensor, np.ndarray]:
    """(N, 3, T) pixel tracks → ((1, N, 3, T) normalised float32 tensor, the K used)."""
    tracks_norm, K_used = normalize_tracks(np.asarray(tracks_px, np.float32), K)
    return torch.from_numpy(np.ascontiguousarray(tracks_norm, np.float32))[None], K_used


@torch.no_grad()
def feed_forward(model: TracksTo4D, tracks_px: np.ndarray, K: np.ndarray | None) -> WindowReconstruction:
    tracks, _ = network_input(tracks_px, K)
    return from_outputs(model(tracks))


def with_bundle_adjustment(
    initial: WindowReconstruction, tracks_px: np.ndarray, K: np.ndarray, config: BundleAdjustConfig = BundleAdjustConfig()
) -> WindowReconstruction:
    """``initial``'s cameras and static points refined by :func:`~.refine.bundle_adjust`. Points
    left out (moving ones) keep their camera-frame position from ``initial``, re-expressed in the
    refined world."""
    tracks_norm, _ = normalize_tracks(np.asarray(tracks_px, np.float32), K)
    static = initial.points_world.mean(0)  # a static point's X_t is B_0 in every frame
    result = bundle_adjust(tracks_norm, initial.cam_from_world, static, initial.gamma, float(K[0, 0]), config)
    refined = result.cam_from_world
    # the points left out keep their camera-frame position, brought to the adjusted scale (the
    # gauge of BA leaves the scale free): the ratio of the adjusted points' median depths
    adjusted = initial.points_camera()[:, result.adjusted, 2]
    refined_depth = np.einsum("tj,nj->tn", refined[:, 2, :3], result.points[result.adjusted]) + refined[:, None, 2, 3]
    scale = float(np.median(refined_depth) / np.median(adjusted)) if adjusted.size and np.median(adjusted) > 0 else 1.0
    moving_camera = initial.points_camera() * scale
    moving_world = np.einsum("tji,tnj->tni", refined[:, :3, :3], moving_camera - refined[:, None, :3, 3])
    points = np.where(result.adjusted[None, :, None], result.points[None], moving_world)
    return WindowReconstruction(refined, points, initial.gamma, initial.focal)


def with_fine_tuning(model: TracksTo4D, tracks_px: np.ndarray, K: np.ndarray | None, steps: int = 50, lr: float = 1e-4) -> WindowReconstruction:
    tracks, _ = network_input(tracks_px, K)
    return from_outputs(fine_tune(model, tracks, model.config, steps, lr))


def window_problem(tracks_px: np.ndarray, image_size: tuple[int, int], K: np.ndarray | None, min_tracks: int = 16, min_frames: int = 1) -> str | None:
    """Why a window of pixel tracks (N, 3, T) from frames of ``image_size`` (width, height) cannot
    be reconstructed with ``K`` (None: guessed), or None when it can. Checked: the layout,
    non-finite values, fewer than ``min_tracks`` tracks visible in two or more frames, and
    intrinsics that do not fit the image (principal point outside it, non-positive focal length).
    Visible points outside the image are not refused (trackers have outliers)."""
    tracks = np.asarray(tracks_px)
    if tracks.ndim != 3 or tracks.shape[1] != 3 or tracks.shape[2] < min_frames:
        return f"expected tracks (N, 3, T >= {min_frames}) (x, y, visibility), got {tracks.shape}"
    bad = ~np.isfinite(tracks).all(axis=(1, 2))
    if bad.any():
        return f"{int(bad.sum())} of {len(tracks)} tracks have NaN or infinite coordinates"
    usable = int(((tracks[:, 2] > 0.5).sum(1) >= 2).sum())
    if usable < min_tracks:
        return f"only {usable} tracks are visible in two or more frames (at least {min_tracks} needed)"
    width, height = image_size
    if K is not None:
        K = np.asarray(K, np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            return f"intrinsics: expected a finite 3x3 K with positive focal lengths, got {K.tolist()}"
        if not (0 < K[0, 2] < width and 0 < K[1, 2] < height):
            return f"intrinsics do not fit the image: principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) lies outside {width}x{height}"
    return None
