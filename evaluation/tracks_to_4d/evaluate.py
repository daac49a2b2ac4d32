"""How well a model reconstructs synthetic scenes: reprojection error, camera trajectory error and
depth error against ground truth, each beside a trivial baseline (identity cameras, constant depth).

A small, self-contained check for training and the shipped manifest; the full metrics module
(RPE in the paper's conventions, BA, the classical baseline) lives with the pipeline.
"""

from __future__ import annotations

import numpy as np
import torch

from edgerun.evaluation.tracks_to_4d.metrics import ate
from edgerun.models.tracks_to_4d.intrinsics import normalize_tracks
from edgerun.models.tracks_to_4d.network import TracksTo4D, TracksTo4DOutput, camera_points, points_world, project
from edgerun.sim.point_scenes import Scene


def relative_rotation_error_deg(predicted: np.ndarray, ground_truth: np.ndarray) -> float:
    """Mean angle (degrees) between predicted and true frame-to-frame rotations."""
    def relative(poses: np.ndarray) -> np.ndarray:
        return poses[1:, :3, :3] @ poses[:-1, :3, :3].transpose(0, 2, 1)

    difference = relative(predicted) @ relative(ground_truth).transpose(0, 2, 1)
    cosine = np.clip((np.trace(difference, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cosine)).mean())


def output_poses(out: TracksTo4DOutput, index: int = 0) -> np.ndarray:
    """cam_from_world (T, 4, 4) of batch item ``index``."""
    frames = out.rotations.shape[1]
    poses = np.tile(np.eye(4), (frames, 1, 1))
    poses[:, :3, :3] = out.rotations[index].detach().cpu().numpy()
    poses[:, :3, 3] = out.translations[index].detach().cpu().numpy()
    return poses


def scene_metrics(model: TracksTo4D, scene: Scene) -> dict[str, float]:
    """One scene: reprojection error (px, visible track points), ATE, relative rotation error, depth
    abs-rel (per-frame median scaling, as the paper), each with its trivial baseline."""
    tracks_norm, K = normalize_tracks(scene.tracks, scene.K)
    tracks = torch.from_numpy(tracks_norm)[None]
    with torch.no_grad():
        out = model(tracks)
        points = points_world(out)
        uv, _ = project(points, out.rotations, out.translations, out.focal)
        depth = camera_points(points, out.rotations, out.translations)[0, ..., 2].numpy()
    pixels = uv[0].numpy() * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
    visible = scene.tracks[:, 2, :].T > 0.5
    observed = scene.tracks[:, :2, :].transpose(2, 0, 1)
    reprojection = float(np.linalg.norm(pixels - observed, axis=-1)[visible].mean())

    gt_cam = np.einsum("tij,tnj->tni", scene.cam_from_world[:, :3, :3], scene.points_world) + scene.cam_from_world[:, None, :3, 3]
    gt_depth = gt_cam[..., 2]
    abs_rel, abs_rel_constant = [], []
    for t in range(gt_depth.shape[0]):
        d, g = depth[t][visible[t]], gt_depth[t][visible[t]]
        if len(g) == 0:
            continue
        scaled = d * np.median(g) / max(np.median(d), 1e-9)
        abs_rel.append(np.mean(np.abs(scaled - g) / g))
        abs_rel_constant.append(np.mean(np.abs(np.median(g) - g) / g))

    poses = output_poses(out)
    identity = np.tile(np.eye(4), (len(poses), 1, 1))
    return {
        "reprojection_px": reprojection,
        "ate": ate(poses, scene.cam_from_world),
        "ate_identity": ate(identity, scene.cam_from_world),
        "rotation_error_deg": relative_rotation_error_deg(poses, scene.cam_from_world),
        "rotation_error_identity_deg": relative_rotation_error_deg(identity, scene.cam_from_world),
        "depth_abs_rel": float(np.mean(abs_rel)),
        "depth_abs_rel_constant": float(np.mean(abs_rel_constant)),
    }


def evaluate_scenes(model: TracksTo4D, scenes: list[Scene]) -> dict[str, float]:
    """Means over ``scenes`` of :func:`scene_metrics` (plus ``ate_median``), model in eval mode."""
    was_training = model.training
    model.eval()
    rows = [scene_metrics(model, scene) for scene in scenes]
    model.train(was_training)
    summary = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    summary["ate_median"] = float(np.median([row["ate"] for row in rows]))
    summary["scenes"] = len(rows)
    return summary
