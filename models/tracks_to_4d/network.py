"""The TracksTo4D network (Kasten et al., NeurIPS 2024, arXiv 2404.07097), pure torch.

Point tracks ``(B, N, 3, T)`` (normalised x, y and visibility) → per frame a camera and K basis
coefficients, per point K 3-D basis vectors and an uncertainty gamma, so that point n sits at
``X_t = B_0 + sum_k c_{t,k} B_k`` in frame t. Each (point, frame) token gets NeRF Fourier
features of its three channels and a constant 1 (76 features at 12 octaves), an embedding
(LayerNorm → Linear → LayerNorm) and a sinusoidal encoding of its frame index; then ``blocks``
pairs of pre-LN transformer layers attend along time (per point) and across points (per
frame). Points carry no positional encoding, so the network is equivariant to their order.

Heads, as released: the per-frame head averages over points and runs a circular Conv1d along
time to ``K + 12`` channels (camera position 3, focal 1, coefficients K with c_0 forced to 1,
6-D rotation turned into a matrix by Gram–Schmidt, 2 unused); the per-point head averages over
frames and a Linear gives ``3K + 1`` (the basis and gamma = ELU + 1). The released model maps a
world point to the camera as ``R^T (X - p)``; :class:`TracksTo4DOutput` gives that as
camera-from-world ``rotations = R^T``, ``translations = -R^T p``.

Module names (``embed``, ``blocks.{i}.time|points.attn|mlp``, ``frame_head``, ``point_head``)
map one-to-one to the official ``model_state_dict`` keys: see :mod:`.checkpoint`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgerun.models.tracks_to_4d.config import TracksTo4DConfig

GAMMA_EPS = 1e-5  # keeps gamma = ELU + 1 strictly positive, as released
FOCAL_SCALE = 0.05  # focal factor = 1 + 0.05 * head output, as released


class TracksTo4DOutput(NamedTuple):
    """One window's reconstruction; B batch, T frames, N points, K basis elements.

    ``rotations`` (B, T, 3, 3) and ``translations`` (B, T, 3): camera-from-world,
    ``x_cam = R_t X + t_t``. ``focal`` (B, T): the focal correction factor (1 when disabled),
    multiplying normalised coordinates. ``coeffs`` (B, T, K), ``coeffs[..., 0] == 1``.
    ``basis`` (B, N, K, 3), ``basis[:, :, 0]`` the static shape B_0. ``gamma`` (B, N) > 0: the
    point's expected static reprojection error (large for moving or badly tracked points).
    """

    rotations: Tensor
    translations: Tensor
    focal: Tensor
    coeffs: Tensor
    basis: Tensor
    gamma: Tensor


def points_world(out: TracksTo4DOutput) -> Tensor:
    """World points (B, T, N, 3): ``X_t = B_0 + sum_{k>=1} c_{t,k} B_k`` (c_0 = 1)."""
    return torch.einsum("btk,bnkc->btnc", out.coeffs, out.basis)


def camera_points(points: Tensor, rotations: Tensor, translations: Tensor) -> Tensor:
    """World points (B, T, N, 3) → camera coordinates (B, T, N, 3), depth unclamped."""
    return torch.einsum("btij,btnj->btni", rotations, points) + translations[:, :, None, :]


def project(points: Tensor, rotations: Tensor, translations: Tensor, focal: Tensor) -> tuple[Tensor, Tensor]:
    """Pinhole projection in normalised coordinates -> (uv (B, T, N, 2), depth (B, T, N)).

    Depth is clamped at >= 0.01 (as released) so points behind the camera do not flip sign;
    use :func:`camera_points` for the unclamped depth.
    """
    cam = camera_points(points, rotations, translations)
    depth = cam[..., 2].clamp(min=0.01)
    uv = focal[:, :, None, None] * cam[..., :2] / depth[..., None]
    return uv, depth


def rotation_from_6d(six: Tensor) -> Tensor:
    """(..., 6) → (..., 3, 3) with rows v1, v2, v3: Gram–Schmidt on the two 3-vectors (Zhou et al. 2019)."""
    v1 = F.normalize(six[..., :3], dim=-1)
    v2 = six[..., 3:]
    v2 = F.normalize(v2 - (v2 * v1).sum(-1, keepdim=True) * v1, dim=-1)
    v3 = torch.cross(v1, v2, dim=-1)
    return torch.stack((v1, v2, v3), dim=-2)


def time_encoding(frames: int, dim: int, device: torch.device, temperature: float = 10000.0) -> Tensor:
    """(frames, dim) sinusoidal encoding of the frame index: sines then cosines (as simple ViT 1-D)."""
    half = dim // 2
    omega = temperature ** -(torch.arange(half, device=device, dtype=torch.float32) / max(half - 1, 1))
    angle = torch.arange(frames, device=device, dtype=torch.float32)[:, None] * omega[None, :]
    return torch.cat((angle.sin(), angle.cos()), dim=1)


class Attention(nn.Module):
    """Pre-LN multi-head self-attention over the middle axis of (S, L, D); no biases, as released."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.proj = nn.Linear(heads * head_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        s, length, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(s, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.proj(attended.transpose(1, 2).reshape(s, length, self.heads * self.head_dim))


class MLP(nn.Module):
    """Pre-LN feed-forward: LayerNorm → Linear → GELU → Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TransformerLayer(nn.Module):
    def __init__(self, config: TracksTo4DConfig) -> None:
        super().__init__()
        self.attn = Attention(config.d_model, config.heads, config.head_dim)
        self.mlp = MLP(config.d_model, config.mlp)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Block(nn.Module):
    """One layer along time (each point's T tokens), then one across points (each frame's N tokens)."""

    def __init__(self, config: TracksTo4DConfig) -> None:
        super().__init__()
        self.time = TransformerLayer(config)
        self.points = TransformerLayer(config)

    def forward(self, x: Tensor) -> Tensor:
        b, n, t, d = x.shape
        x = self.time(x.reshape(b * n, t, d)).reshape(b, n, t, d)
        x = self.points(x.transpose(1, 2).reshape(b * t, n, d)).reshape(b, t, n, d)
        return x.transpose(1, 2)


class TracksTo4D(nn.Module):
    def __init__(self, config: TracksTo4DConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer(
            "frequencies", (2.0 ** torch.arange(config.octaves, dtype=torch.float32)) * math.pi, persistent=False
        )
        self.embed = nn.Sequential(
            nn.LayerNorm(config.token_features),
            nn.Linear(config.token_features, config.d_model),
            nn.LayerNorm(config.d_model),
        )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.blocks))
        self.frame_head = nn.Conv1d(config.d_model, config.frame_channels, config.conv_kernel)
        self.point_head = nn.Linear(config.d_model, config.point_channels)
        nn.init.xavier_uniform_(self.frame_head.weight)
        nn.init.xavier_uniform_(self.point_head.weight)

    def tokens(self, tracks: Tensor) -> Tensor:
        """(B, N, 3, T) → (B, N, T, 3 + 6 * octaves + 1): x, y, v; per octave sin x, y, v, cos x, y, v; 1."""
        x = tracks.transpose(2, 3)
        angles = x[..., None] * self.frequencies  # (B, N, T, 3, octaves)
        fourier = torch.cat((angles.sin(), angles.cos()), dim=-2).transpose(-1, -2).flatten(-2)
        return torch.cat((x, fourier, torch.ones_like(x[..., :1])), dim=-1)

    def forward(self, tracks: Tensor) -> TracksTo4DOutput:
        """``tracks`` (B, N, 3, T) float32: x, y in normalised image coordinates, visibility in {0, 1}."""
        if tracks.ndim != 4 or tracks.shape[2] != 3:
            raise ValueError(f"TracksTo4D: expected tracks (B, N, 3, T) (x, y, visibility), got {tuple(tracks.shape)}")
        _, n, _, t = tracks.shape
        pad = self.config.conv_kernel // 2
        if n < 1 or t < max(pad, 1):
            raise ValueError(f"TracksTo4D: need N >= 1 points and T >= {max(pad, 1)} frames (conv kernel {self.config.conv_kernel}), got N={n}, T={t}")
        x = self.embed(self.tokens(tracks))
        x = x + time_encoding(t, self.config.d_model, x.device)
        for block in self.blocks:
            x = block(x)
        return self.decode(self.frame_features(x.mean(dim=1)), self.point_head(x.mean(dim=2)))

    def frame_features(self, per_frame: Tensor) -> Tensor:
        """(B, T, D) → (B, T, K + 12): circular Conv1d along time (padding written as a wrap-around
        concatenation, which every ONNX opset exports)."""
        x = per_frame.transpose(1, 2)
        pad, t = self.config.conv_kernel // 2, x.shape[-1]
        if pad:
            x = torch.cat((x[..., t - pad :], x, x[..., :pad]), dim=-1)
        return self.frame_head(x).transpose(1, 2)

    def decode(self, frame: Tensor, point: Tensor) -> TracksTo4DOutput:
        k = self.config.basis
        position = frame[..., 0:3]
        if self.config.focal_correction:
            focal = 1.0 + FOCAL_SCALE * frame[..., 3]
        else:
            focal = torch.ones_like(frame[..., 3])
        coeffs = torch.cat((torch.ones_like(frame[..., 4:5]), frame[..., 5 : 4 + k]), dim=-1)
        world_from_camera = rotation_from_6d(frame[..., 4 + k : 10 + k])
        rotations = world_from_camera.transpose(-1, -2)
        translations = -(rotations @ position[..., None])[..., 0]
        b, n, _ = point.shape
        basis = point[..., : 3 * k].reshape(b, n, 3, k).transpose(-1, -2)
        gamma = F.elu(point[..., 3 * k]) + 1.0 + GAMMA_EPS
        return TracksTo4DOutput(rotations, translations, focal, coeffs, basis, gamma)


class TracksTo4DTensors(nn.Module):
    """Export wrapper: the same forward, returning the output fields as a plain tuple."""

    def __init__(self, model: TracksTo4D) -> None:
        super().__init__()
        self.model = model

    def forward(self, tracks: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model(tracks))
