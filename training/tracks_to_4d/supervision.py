"""An auxiliary supervised term for training on synthetic scenes, where ground truth exists.

The paper trains without 3-D supervision, for days on GPUs. On this project's CPU budget (tens of
minutes) the unsupervised losses alone teach a small model cameras only slowly (see
docs/tracks_to_4d.md), so training may add a direct term on the synthetic ground truth. The
reconstruction is defined up to a similarity, so the ground truth is first put in the gauge the
released camera warm-up starts from: the first camera at the identity rotation with
``t = (0, 0, 15)``, scaled so that the median first-frame depth of the points is 15.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edgerun.models.tracks_to_4d.losses import WARMUP_DEPTH
from edgerun.models.tracks_to_4d.network import TracksTo4DOutput, points_world
from edgerun.sim.point_scenes import Scene


class Targets(NamedTuple):
    """Ground truth in the warm-up gauge: ``rotations`` (B, T, 3, 3), ``translations`` (B, T, 3)
    (camera-from-world), ``points`` (B, T, N, 3)."""

    rotations: Tensor
    translations: Tensor
    points: Tensor


def canonical_ground_truth(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rotations (T, 3, 3), translations (T, 3), points (T, N, 3)) of ``scene`` in the warm-up gauge."""
    r0, t0 = scene.cam_from_world[0, :3, :3], scene.cam_from_world[0, :3, 3]
    first = scene.points_world[0] @ r0.T + t0
    scale = WARMUP_DEPTH / float(np.median(first[:, 2]))
    offset = np.array([0.0, 0.0, WARMUP_DEPTH])
    # new world X' = scale * (R0 X + t0) - offset; camera t sees scale * (R_t X + t_t).
    points = scale * (scene.points_world @ r0.T + t0) - offset
    rotations = scene.cam_from_world[:, :3, :3] @ r0.T
    origin = r0.T @ (offset / scale - t0)  # the old-world point that becomes X' = 0
    translations = scale * (np.einsum("tij,j->ti", scene.cam_from_world[:, :3, :3], origin) + scene.cam_from_world[:, :3, 3])
    return rotations, translations, points


def batch_targets(scenes: list[Scene]) -> Targets:
    parts = [canonical_ground_truth(scene) for scene in scenes]
    return Targets(*(torch.from_numpy(np.stack([p[i] for p in parts])).float() for i in range(3)))


def supervised_loss(out: TracksTo4DOutput, targets: Targets) -> Tensor:
    """``10 * MSE(R) + smooth-L1(t) + smooth-L1(X_t)`` against ``targets`` (scene units of the gauge)."""
    rotation = ((out.rotations - targets.rotations) ** 2).mean()
    translation = F.smooth_l1_loss(out.translations, targets.translations)
    points = F.smooth_l1_loss(points_world(out), targets.points)
    return 10.0 * rotation + translation + points
