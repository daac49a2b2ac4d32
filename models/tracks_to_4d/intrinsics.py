"""Pixel tracks → the network's normalised tracks (``K^-1`` applied), with the paper's guess of K
when the camera is not calibrated."""

from __future__ import annotations

import numpy as np
from torch import Tensor

Array = np.ndarray | Tensor


def guess_intrinsics(tracks_px: Array) -> np.ndarray:
    """The paper's K for an uncalibrated video: f = mean of the largest visible x and y, principal
    point = half of each (the image is assumed to start at 0 and the tracks to reach near its far
    edges). ``tracks_px``: (N, 3, T) or (B, N, 3, T); all batch items share the guess."""
    tracks = _as_numpy(tracks_px)
    visible = tracks[..., 2, :] > 0.5
    if not visible.any():
        raise ValueError("guess_intrinsics: no visible track point, cannot guess the focal length")
    max_x = float(tracks[..., 0, :][visible].max())
    max_y = float(tracks[..., 1, :][visible].max())
    if max_x <= 0 or max_y <= 0:
        raise ValueError(f"guess_intrinsics: largest visible x, y = {max_x}, {max_y}; expected positive pixels")
    focal = (max_x + max_y) / 2.0
    return np.array([[focal, 0.0, max_x / 2.0], [0.0, focal, max_y / 2.0], [0.0, 0.0, 1.0]])


def normalize_tracks(tracks_px: Array, K: Array | None = None) -> tuple[Array, np.ndarray]:
    """Apply ``K^-1`` to the x, y channels of ``tracks_px`` (N, 3, T) or (B, N, 3, T) (channels x,
    y in pixels, visibility in {0, 1}) -> (tracks of the same type and shape in normalised image
    coordinates, visibility unchanged; the (3, 3) K used, float64). ``K`` None: :func:`guess_intrinsics`."""
    if tracks_px.ndim not in (3, 4) or tracks_px.shape[-2] != 3:
        raise ValueError(f"normalize_tracks: expected (N, 3, T) or (B, N, 3, T) tracks (x, y, visibility), got {tuple(tracks_px.shape)}")
    K_used = guess_intrinsics(tracks_px) if K is None else np.asarray(_as_numpy(K), dtype=np.float64)
    if K_used.shape != (3, 3):
        raise ValueError(f"normalize_tracks: expected K of shape (3, 3), got {K_used.shape}")
    fx, fy, cx, cy = K_used[0, 0], K_used[1, 1], K_used[0, 2], K_used[1, 2]
    if fx <= 0 or fy <= 0:
        raise ValueError(f"normalize_tracks: focal lengths must be positive, got fx={fx}, fy={fy}")
    skew = K_used[0, 1]
    out = tracks_px.clone() if isinstance(tracks_px, Tensor) else np.array(tracks_px, dtype=np.float32, copy=True)
    y = (tracks_px[..., 1, :] - cy) / fy
    out[..., 0, :] = (tracks_px[..., 0, :] - cx - skew * y) / fx
    out[..., 1, :] = y
    return out, K_used


def _as_numpy(array: Array) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)
