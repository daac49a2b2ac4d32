"""A classical structure-from-motion baseline on the same tracks as the network (OpenCV only).

Two-view initialisation by the essential matrix (5-point RANSAC) between the first frame and the
frame of largest parallax, triangulation of the inliers, camera resection by PnP-RANSAC for every
other frame, then linear multi-view triangulation of every track from all the frames that see it.
It assumes a static scene: moving points are RANSAC outliers at best. No bundle adjustment (that
is :mod:`.refine`, run from the network's output).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgerun.models.tracks_to_4d.intrinsics import normalize_tracks


@dataclass(frozen=True)
class ClassicalConfig:
    ransac_px: float = 1.5  # RANSAC inlier threshold (pixels)
    min_common: int = 12  # tracks two frames must share for the two-view step
    min_pnp: int = 8  # triangulated points a frame must see for PnP


@dataclass(frozen=True)
class ClassicalResult:
    cam_from_world: np.ndarray  # (T, 4, 4), the first camera at the origin, unit-ish baseline
    points: np.ndarray  # (N, 3) world points; NaN where a track could not be triangulated
    resected: np.ndarray  # (T,) bool: the frame got its own pose (False: copied from its predecessor)


def _pose(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, np.ravel(translation)
    return out


def triangulate(observations: np.ndarray, visible: np.ndarray, cam_from_world: np.ndarray, min_views: int = 2) -> np.ndarray:
    """Linear (DLT) triangulation of each track from every frame that sees it: ``observations``
    (N, 2, T) normalised coordinates, ``visible`` (N, T) → (N, 3), NaN with fewer than
    ``min_views`` views or a point behind the first camera that sees it."""
    count = observations.shape[0]
    points = np.full((count, 3), np.nan)
    projections = cam_from_world[:, :3, :]  # (T, 3, 4)
    for n in range(count):
        frames = np.flatnonzero(visible[n])
        if frames.size < min_views:
            continue
        uv = observations[n, :, frames]  # (V, 2)
        rows = np.concatenate(
            [uv[:, :1] * projections[frames, 2] - projections[frames, 0], uv[:, 1:] * projections[frames, 2] - projections[frames, 1]]
        )
        _, _, vt = np.linalg.svd(rows)
        homogeneous = vt[-1]
        if abs(homogeneous[3]) < 1e-12:
            continue
        point = homogeneous[:3] / homogeneous[3]
        if (projections[frames[0]] @ np.append(point, 1.0))[2] > 0:
            points[n] = point
    return points


def classical_reconstruction(tracks_px: np.ndarray, K: np.ndarray, config: ClassicalConfig = ClassicalConfig()) -> ClassicalResult:
    """Camera poses and static points of one window of pixel tracks (N, 3, T) with intrinsics K."""
    tracks, _ = normalize_tracks(np.asarray(tracks_px, np.float32), K)
    observations = tracks[:, :2].astype(np.float64)
    visible = tracks[:, 2] > 0.5
    frames = tracks.shape[2]
    threshold = config.ransac_px / float(K[0, 0])
    reference, other, inliers, pose_other = _initial_pair(observations, visible, threshold, config)
    cam_from_world = np.tile(np.eye(4), (frames, 1, 1))
    cam_from_world[other] = pose_other
    seed_points = np.full((observations.shape[0], 3), np.nan)
    both = np.flatnonzero(inliers)
    seed_points[both] = triangulate(observations[both][..., [reference, other]], np.ones((both.size, 2), bool), cam_from_world[[reference, other]])
    resected = np.zeros(frames, bool)
    resected[[reference, other]] = True
    for t in range(frames):
        if resected[t]:
            continue
        usable = visible[:, t] & np.isfinite(seed_points[:, 0])
        if usable.sum() >= config.min_pnp:
            ok, rvec, tvec, _ = cv2.solvePnPRansac(
                seed_points[usable], observations[usable, :, t], np.eye(3), None,
                reprojectionError=threshold, iterationsCount=200, flags=cv2.SOLVEPNP_EPNP,
            )
            if ok:
                cam_from_world[t] = _pose(cv2.Rodrigues(rvec)[0], tvec)
                resected[t] = True
                continue
        cam_from_world[t] = cam_from_world[t - 1] if t > 0 else cam_from_world[t]
    points = triangulate(observations, visible, cam_from_world)
    return ClassicalResult(cam_from_world, points, resected)


def _initial_pair(observations, visible, threshold: float, config: ClassicalConfig):
    """(reference frame 0, the frame of largest median parallax with it, the E-RANSAC inliers (N,)
    bool, the pose of that frame relative to frame 0) — falling back to nearer frames when a
    pair's essential matrix fails."""
    frames = observations.shape[2]
    parallax = np.zeros(frames)
    for t in range(1, frames):
        common = visible[:, 0] & visible[:, t]
        if common.sum() >= config.min_common:
            parallax[t] = np.median(np.linalg.norm(observations[common, :, t] - observations[common, :, 0], axis=1))
    for other in np.argsort(-parallax):
        if parallax[other] <= 0:
            break
        common = np.flatnonzero(visible[:, 0] & visible[:, other])
        first, second = observations[common, :, 0], observations[common, :, other]
        essential, mask = cv2.findEssentialMat(first, second, np.eye(3), method=cv2.RANSAC, prob=0.999, threshold=threshold)
        if essential is None or essential.shape != (3, 3):
            continue
        good, rotation, translation, mask = cv2.recoverPose(essential, first, second, np.eye(3), mask=mask)
        if good < config.min_common:
            continue
        inliers = np.zeros(observations.shape[0], bool)
        inliers[common[mask.ravel() > 0]] = True
        return 0, int(other), inliers, _pose(rotation, translation)
    raise ValueError(f"classical_reconstruction: no frame shares {config.min_common} tracks with enough parallax with frame 0")
