"""DINOv2 ViT encoder: DINO-WM's frozen visual latent, into which the official hub checkpoints load.

Module and parameter names follow facebookresearch/dinov2 (``cls_token``, ``pos_embed``,
``mask_token``, ``patch_embed.proj``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,ls1,norm2,mlp.fc1,
mlp.fc2,ls2}``, ``norm``), so ``dinov2_vits14`` loads unchanged with ``strict=True``.

Differences from the official model, both for export (ONNX / TensorRT):
- the encoder runs at one square ``input_size``; the positional embedding for it is interpolated
  once (:meth:`DinoV2Encoder.set_input_size`) into a non-persistent buffer instead of per forward,
  with the official formula (bicubic, ``scale_factor = (grid + 0.1) / M``, no antialias);
- ``forward`` returns only the normalised patch tokens (B, N, D), DINO-WM's latent;
  :meth:`DinoV2Encoder.forward_features` returns the official dict (cls and patch tokens).

``mask_token`` is kept only so the official state dict loads; it is unused (no masked inputs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgerun.errors import CheckpointMismatchError
from edgerun.models.dino_wm.config import VITS14, EncoderConfig
from edgerun.models.state_dicts import mismatch_report


class PatchEmbed(nn.Module):
    """(B, 3, H, W) -> (B, H/p * W/p, D): one strided convolution, patches in row-major order."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.proj = nn.Conv2d(3, config.embed_dim, kernel_size=config.patch_size, stride=config.patch_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (the official layout: q, k, v, then heads)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.embed_dim, 3 * config.embed_dim, bias=True)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        x = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim), as the official model
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.embed_dim, config.mlp_hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.mlp_hidden_dim, config.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch (CaiT), stored as ``gamma`` like the official model."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((config.embed_dim,), config.layerscale_init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.embed_dim, eps=config.ln_eps)
        self.attn = Attention(config)
        self.ls1 = LayerScale(config)
        self.norm2 = nn.LayerNorm(config.embed_dim, eps=config.ln_eps)
        self.mlp = Mlp(config)
        self.ls2 = LayerScale(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def interpolate_pos_embed(pos_embed: Tensor, grid_h: int, grid_w: int) -> Tensor:
    """Resample a (1, 1 + M*M, D) positional embedding to a grid_h x grid_w patch grid.

    The official DINOv2 formula: the cls entry is kept, the M x M patch entries are resized
    bicubically (no antialias) with ``scale_factor = ((grid_h + 0.1) / M, (grid_w + 0.1) / M)``,
    computed in float32; when the grid already is M x M the embedding is returned unchanged.
    Returns (1, 1 + grid_h * grid_w, D) in the input's dtype.
    """
    num_stored = pos_embed.shape[1] - 1
    M = round(num_stored**0.5)
    if M * M != num_stored:
        raise ValueError(f"pos_embed: expected 1 + M*M tokens, got {pos_embed.shape[1]} (shape {tuple(pos_embed.shape)})")
    if grid_h == M and grid_w == M:
        return pos_embed
    dim = pos_embed.shape[-1]
    pos = pos_embed.float()
    patch_pos = pos[:, 1:].reshape(1, M, M, dim).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(
        patch_pos,
        scale_factor=((grid_h + 0.1) / M, (grid_w + 0.1) / M),
        mode="bicubic",
        antialias=False,
    )
    if patch_pos.shape[-2:] != (grid_h, grid_w):
        raise RuntimeError(f"pos_embed interpolation gave grid {tuple(patch_pos.shape[-2:])}, expected {(grid_h, grid_w)}")
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
    return torch.cat((pos[:, :1], patch_pos), dim=1).to(pos_embed.dtype)


class DinoV2Encoder(nn.Module):
    """DINOv2 ViT: (B, 3, S, S) normalised images -> (B, (S/p)^2, D) normalised patch tokens.

    S is ``input_size`` (``config.input_size`` until :meth:`set_input_size` changes it). Images are
    expected already normalised as DINO-WM does (see :func:`normalise`: RGB in [-1, 1]).
    """

    def __init__(self, config: EncoderConfig = VITS14) -> None:
        super().__init__()
        self.config = config
        D = config.embed_dim
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.checkpoint_grid**2, D))  # checkpoint's grid
        self.mask_token = nn.Parameter(torch.zeros(1, D))  # unused; present so official weights load strict
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(D, eps=config.ln_eps)
        self.register_buffer("pos_embed_at_input", torch.zeros(0), persistent=False)
        self.input_size = config.input_size
        self._init_weights()
        self.set_input_size(config.input_size)
        # Any load_state_dict (not only load_official_state_dict) refreshes the interpolated buffer.
        self.register_load_state_dict_post_hook(lambda module, incompatible: module.set_input_size(module.input_size))

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @torch.no_grad()
    def set_input_size(self, size: int) -> None:
        """Run at (size, size) from now on: interpolate ``pos_embed`` once into ``pos_embed_at_input``.

        The stored ``pos_embed`` stays at the checkpoint's grid. The buffer is computed without
        gradient (the encoder is frozen in DINO-WM); call again after changing ``pos_embed``.
        """
        p = self.config.patch_size
        if size <= 0 or size % p:
            raise ValueError(f"input size {size} is not a positive multiple of the patch size {p}")
        grid = size // p
        self.pos_embed_at_input = interpolate_pos_embed(self.pos_embed.detach(), grid, grid).clone()
        self.input_size = size

    @property
    def num_patches(self) -> int:
        return (self.input_size // self.config.patch_size) ** 2

    def _tokens(self, images: Tensor) -> Tensor:
        """Patch-embed, prepend cls, add positions, run the blocks, apply the final norm: (B, 1+N, D)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"DinoV2Encoder: expected images (B, 3, H, W), got {tuple(images.shape)}")
        S = self.input_size
        if images.shape[-2:] != (S, S):
            raise ValueError(
                f"DinoV2Encoder: expected images of {S}x{S} (the configured input size), got "
                f"{images.shape[-2]}x{images.shape[-1]}; resize with normalise() or call set_input_size()"
            )
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos_embed_at_input.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, S, S) normalised images -> (B, (S/p)^2, D) patch tokens after the final norm."""
        return self._tokens(images)[:, 1:]

    def forward_features(self, images: Tensor) -> dict[str, Tensor]:
        """The official output names: ``x_norm_clstoken`` (B, D) and ``x_norm_patchtokens`` (B, N, D)."""
        x = self._tokens(images)
        return {"x_norm_clstoken": x[:, 0], "x_norm_patchtokens": x[:, 1:]}


def normalise(images: Tensor, size: int = VITS14.input_size, antialias: bool = True) -> Tensor:
    """uint8 RGB (B, H, W, 3) -> float32 (B, 3, size, size) in [-1, 1] (mean 0.5, std 0.5).

    Resized bilinearly (stretched, not cropped, if not square) with antialias, as DINO-WM's
    torchvision ``Resize`` does; no resize when H == W == size. Runs on the images' device.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"normalise: expected uint8 RGB (B, H, W, 3), got {images.dtype} {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5).div_(0.5)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
    return x


def load_official_state_dict(model: DinoV2Encoder, state_dict: dict[str, Tensor]) -> DinoV2Encoder:
    """Load an official DINOv2 state dict (e.g. ``dinov2_vits14``) strictly, then refresh the pos-embed.

    Raises :class:`~edgerun.errors.CheckpointMismatchError` listing missing keys, unexpected keys and shape mismatches
    (expected vs got) before anything is copied, so a failed load leaves the model untouched.
    """
    expected = model.state_dict()
    report = mismatch_report(expected, state_dict, f"DinoV2Encoder({model.config})")
    if report is not None:
        lines = [report]
        unexpected = sorted(set(state_dict) - set(expected))
        missing = set(expected) - set(state_dict)
        if any(key.startswith("register_tokens") for key in unexpected):
            lines.append("  hint: 'register_tokens' comes from a *_reg checkpoint; this encoder has no registers")
        prefixes = {key.split(".", 1)[0] for key in unexpected if "." in key}
        if missing and len(prefixes) == 1 and len(unexpected) == len(state_dict):
            lines.append(f"  hint: every key starts with '{prefixes.pop()}.'; strip that prefix first")
        raise CheckpointMismatchError("\n".join(lines))
    model.load_state_dict(state_dict, strict=True)
    model.set_input_size(model.input_size)
    return model


def official_key_shapes(config: EncoderConfig = VITS14) -> dict[str, tuple[int, ...]]:
    """Every key of the official DINOv2 (no registers) state dict with its shape, written out by hand."""
    D, H, p = config.embed_dim, config.mlp_hidden_dim, config.patch_size
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, D),
        "pos_embed": (1, 1 + config.checkpoint_grid**2, D),
        "mask_token": (1, D),
        "patch_embed.proj.weight": (D, 3, p, p),
        "patch_embed.proj.bias": (D,),
    }
    for i in range(config.depth):
        b = f"blocks.{i}."
        shapes.update({
            b + "norm1.weight": (D,), b + "norm1.bias": (D,),
            b + "attn.qkv.weight": (3 * D, D), b + "attn.qkv.bias": (3 * D,),
            b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,),
            b + "ls1.gamma": (D,),
            b + "norm2.weight": (D,), b + "norm2.bias": (D,),
            b + "mlp.fc1.weight": (H, D), b + "mlp.fc1.bias": (H,),
            b + "mlp.fc2.weight": (D, H), b + "mlp.fc2.bias": (D,),
            b + "ls2.gamma": (D,),
        })  # fmt: skip
    shapes.update({"norm.weight": (D,), "norm.bias": (D,)})
    return shapes


def synthetic_official_state_dict(config: EncoderConfig = VITS14, seed: int = 0) -> dict[str, Tensor]:
    """Random tensors under exactly the official key names and shapes (tests; no download).

    Values are scaled so every part matters numerically: weights ~ N(0, 0.02), norm weights near 1,
    layer-scale gammas ~ U(0, 0.2) (larger than the official 1e-5 init, so the blocks change the output).
    """
    generator = torch.Generator().manual_seed(seed)
    state_dict: dict[str, Tensor] = {}
    for key, shape in official_key_shapes(config).items():
        noise = torch.randn(shape, generator=generator)
        if key.endswith(".gamma"):
            value = torch.rand(shape, generator=generator) * 0.2
        elif key.startswith("norm") or ".norm" in key:
            value = 1.0 + 0.1 * noise if key.endswith("weight") else 0.1 * noise
        elif key in ("cls_token", "pos_embed", "mask_token"):
            value = 0.5 * noise
        else:
            value = 0.02 * noise
        state_dict[key] = value
    return state_dict
