"""The paper's unsupervised losses: tracks explain themselves through the predicted cameras and points.

All reprojection terms are in normalised image coordinates and only over visible track points:

- ``static``: each point's static shape B_0, seen by every camera, with a per-point learned
  uncertainty gamma: ``mean(log(gamma + r^2 / gamma))`` (a robust, Cauchy-like loss; moving or
  mistracked points pay little for a large gamma);
- ``reprojection``: the mean distance between the tracks and the dynamic points X_t. Its gradient
  reaches neither the cameras nor B_0 (both detached, as released): the static term fixes those,
  the coefficients and the other basis elements explain the rest;
- ``negative_depth``: the summed negative camera depth of the dynamic points;
- ``sparsity``: ``mean(|B_{1..K-1}| / gamma)`` with gamma detached: points the static term trusts
  (small gamma) should not move.

``total = static + w_dyn * reprojection + negative_depth + w_sparse * sparsity`` (50 and 0.001).
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgerun.models.tracks_to_4d.config import TracksTo4DConfig
from edgerun.models.tracks_to_4d.network import TracksTo4DOutput, camera_points, points_world, project

WARMUP_DEPTH = 15.0  # the released warm-up puts every camera at the origin looking at points 15 units away


def visibility_mask(tracks_norm: Tensor) -> Tensor:
    """(B, N, 3, T) tracks → (B, T, N) bool: the visible track points."""
    return tracks_norm[:, :, 2, :].transpose(1, 2) > 0.5


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, values, 0.0).sum() / mask.sum().clamp(min=1)


def reconstruction_losses(out: TracksTo4DOutput, tracks_norm: Tensor, config: TracksTo4DConfig) -> dict[str, Tensor]:
    """The loss terms (scalars) and their weighted ``"total"`` for ``out`` against ``tracks_norm`` (B, N, 3, T)."""
    if tracks_norm.ndim != 4 or tracks_norm.shape[2] != 3:
        raise ValueError(f"reconstruction_losses: expected tracks (B, N, 3, T), got {tuple(tracks_norm.shape)}")
    b, n, _, t = tracks_norm.shape
    if out.basis.shape[:2] != (b, n) or out.coeffs.shape[:2] != (b, t):
        raise ValueError(
            f"reconstruction_losses: output for B={out.basis.shape[0]}, N={out.basis.shape[1]}, T={out.coeffs.shape[1]} "
            f"does not match tracks B={b}, N={n}, T={t}"
        )
    visible = visibility_mask(tracks_norm)
    observed = tracks_norm[:, :, :2, :].permute(0, 3, 1, 2)  # (B, T, N, 2)

    static_points = out.basis[:, None, :, 0].expand(b, t, n, 3)
    uv_static, _ = project(static_points, out.rotations, out.translations, out.focal)
    squared_static = ((uv_static - observed) ** 2).sum(-1)
    gamma = out.gamma[:, None, :]
    static = _masked_mean(torch.log(gamma + squared_static / gamma), visible)

    moving = points_world(out._replace(basis=torch.cat((out.basis[:, :, :1].detach(), out.basis[:, :, 1:]), dim=2)))
    rotations, translations = out.rotations.detach(), out.translations.detach()
    uv, _ = project(moving, rotations, translations, out.focal)
    reprojection = _masked_mean(((uv - observed) ** 2).sum(-1).clamp(min=1e-12).sqrt(), visible)
    depth = camera_points(moving, rotations, translations)[..., 2]
    negative_depth = -torch.where(visible, depth.clamp(max=0.0), 0.0).sum()

    sparsity = (out.basis[:, :, 1:].abs() / out.gamma.detach()[:, :, None, None]).mean()
    total = static + config.dynamic_reprojection_weight * reprojection + negative_depth + config.sparsity_weight * sparsity
    return {
        "total": total,
        "static": static,
        "reprojection": reprojection,
        "negative_depth": negative_depth,
        "sparsity": sparsity,
    }


def camera_warmup_loss(out: TracksTo4DOutput) -> Tensor:
    """The released warm-up before the reconstruction losses: every camera to the identity rotation
    at the origin-facing pose ``t = (0, 0, 15)`` (camera-from-world), so training starts with the
    points in front of the cameras."""
    target = torch.tensor([0.0, 0.0, WARMUP_DEPTH], dtype=out.translations.dtype, device=out.translations.device)
    eye = torch.eye(3, dtype=out.rotations.dtype, device=out.rotations.device)
    position = ((out.translations - target) ** 2).sum(-1).mean()
    rotation = ((out.rotations - eye) ** 2).mean() * 100.0
    return (position + rotation) / 100.0
