"""Pose and depth metrics of the paper: ATE, RPE-t, RPE-r (after a Umeyama Sim(3) alignment) and
AbsRel, δ < 1.25 (after per-frame median scaling).

Poses are camera-from-world (T, 4, 4) throughout the package (x_cam = R·X + t); the metrics work on
their inverses, world-from-camera, as evo does. ATE and RPE agree with ``evo_ape``/``evo_rpe`` with
``--align --correct_scale`` (checked in the tests).
"""

from __future__ import annotations

import numpy as np

from edgerun.models.tracks_to_4d.geometry import align_trajectory, camera_centres


def ate(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Absolute trajectory error: RMSE of the Sim(3)-aligned camera centres (units of ``reference``)."""
    aligned, _ = align_trajectory(estimate, reference)
    errors = np.linalg.norm(camera_centres(aligned) - camera_centres(reference), axis=1)
    return float(np.sqrt((errors**2).mean()))


def rpe(estimate: np.ndarray, reference: np.ndarray, delta: int = 1) -> tuple[float, float]:
    """Relative pose error between frames ``delta`` apart after Sim(3) alignment → (RMSE of the
    translation error, in reference units; RMSE of the rotation angle, degrees)."""
    if len(estimate) <= delta:
        raise ValueError(f"rpe: need more than delta={delta} frames, got {len(estimate)}")
    aligned, _ = align_trajectory(estimate, reference)
    world_est, world_ref = np.linalg.inv(aligned), np.linalg.inv(reference)
    relative_est = np.linalg.inv(world_est[:-delta]) @ world_est[delta:]
    relative_ref = np.linalg.inv(world_ref[:-delta]) @ world_ref[delta:]
    error = np.linalg.inv(relative_ref) @ relative_est
    translation = np.linalg.norm(error[:, :3, 3], axis=1)
    cos = np.clip((np.trace(error[:, :3, :3], axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    angle = np.degrees(np.arccos(cos))
    return float(np.sqrt((translation**2).mean())), float(np.sqrt((angle**2).mean()))


def depths(points_world: np.ndarray, cam_from_world: np.ndarray) -> np.ndarray:
    """(T, N, 3) world points and (T, 4, 4) poses → (T, N) depth (camera z) of each point in its frame."""
    rotations, translations = cam_from_world[:, :3, :3], cam_from_world[:, :3, 3]
    return np.einsum("tij,tnj->tni", rotations, points_world)[..., 2] + translations[:, None, 2]


def depth_metrics(predicted: np.ndarray, reference: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """AbsRel and δ < 1.25 of (T, N) depths, each frame's prediction scaled by the ratio of medians
    (the paper's protocol); only entries with ``valid`` (default: all) and positive reference count."""
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if predicted.shape != reference.shape:
        raise ValueError(f"depth_metrics: predicted {predicted.shape} and reference {reference.shape} differ")
    mask = (reference > 0) & np.isfinite(predicted) & (predicted > 0)
    if valid is not None:
        mask &= valid.astype(bool)
    relative, inliers = [], []
    for pred, ref, keep in zip(predicted, reference, mask):
        if keep.sum() == 0:
            continue
        pred, ref = pred[keep], ref[keep]
        pred = pred * np.median(ref) / np.median(pred)
        relative.append(np.abs(pred - ref) / ref)
        inliers.append(np.maximum(pred / ref, ref / pred) < 1.25)
    if not relative:
        raise ValueError("depth_metrics: no frame has a valid depth")
    return float(np.concatenate(relative).mean()), float(np.concatenate(inliers).mean())
