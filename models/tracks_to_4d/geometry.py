"""Camera-pose geometry shared by the pipeline and its evaluation: Sim(3) transforms, Umeyama
alignment, camera centres.

Poses are camera-from-world (T, 4, 4) throughout (x_cam = R·X + t).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sim3:
    """x ↦ scale · rotation @ x + translation."""

    scale: float
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * points @ self.rotation.T + self.translation

    def apply_to_cam_from_world(self, cam_from_world: np.ndarray) -> np.ndarray:
        """Camera-from-world poses (T, 4, 4) of a world mapped by this transform: the cameras move
        with the world, and camera-frame distances scale with it."""
        out = np.array(cam_from_world, dtype=np.float64, copy=True)
        rotation = cam_from_world[:, :3, :3] @ self.rotation.T
        out[:, :3, :3] = rotation
        out[:, :3, 3] = self.scale * cam_from_world[:, :3, 3] - rotation @ self.translation
        return out


def umeyama(source: np.ndarray, target: np.ndarray, with_scale: bool = True) -> Sim3:
    """The least-squares similarity (Umeyama 1991) mapping ``source`` (M, 3) onto ``target`` (M, 3)."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3 or len(source) < 2:
        raise ValueError(f"umeyama: expected two (M, 3) point sets with M >= 2, got {source.shape} and {target.shape}")
    mean_s, mean_t = source.mean(0), target.mean(0)
    centred_s, centred_t = source - mean_s, target - mean_t
    covariance = centred_t.T @ centred_s / len(source)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rotation = u @ sign @ vt
    variance_s = (centred_s**2).sum() / len(source)
    scale = float(np.trace(np.diag(d) @ sign) / variance_s) if with_scale and variance_s > 0 else 1.0
    return Sim3(scale, rotation, mean_t - scale * rotation @ mean_s)


def camera_centres(cam_from_world: np.ndarray) -> np.ndarray:
    """(T, 4, 4) camera-from-world → (T, 3) camera centres in the world, −Rᵀt."""
    rotations = cam_from_world[:, :3, :3]
    return -np.einsum("tji,tj->ti", rotations, cam_from_world[:, :3, 3])


def align_trajectory(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, Sim3]:
    """Estimated camera-from-world poses moved onto ``reference`` by the Sim(3) aligning the camera
    centres; → (aligned poses, the transform)."""
    transform = umeyama(camera_centres(estimate), camera_centres(reference))
    return transform.apply_to_cam_from_world(estimate), transform
