"""Encoder sizes: the official DINOv2 ViT-S/14 (``dinov2_vits14``) and a tiny one for CPU tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncoderConfig:
    """A DINOv2 ViT encoder.

    ``img_size`` is the image size the checkpoint's positional embedding was trained at: the stored
    ``pos_embed`` holds ``1 + (img_size // patch_size) ** 2`` tokens (518 -> 37 x 37 for the official
    hub models), so an official state dict loads unchanged. ``input_size`` is the square size the
    encoder is run at (196 for DINO-WM -> 14 x 14 = 196 patch tokens); the positional embedding is
    interpolated to it once, not per forward.
    """

    patch_size: int = 14
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    img_size: int = 518
    input_size: int = 196
    layerscale_init: float = 1e-5
    ln_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for name in ("img_size", "input_size"):
            size = getattr(self, name)
            if size <= 0 or size % self.patch_size:
                raise ValueError(f"{name} {size} is not a positive multiple of patch_size {self.patch_size}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def checkpoint_grid(self) -> int:
        """Side of the patch grid the stored ``pos_embed`` covers (37 for the official models)."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patch tokens per image at ``input_size`` (196 for DINO-WM)."""
        return (self.input_size // self.patch_size) ** 2


VITS14 = EncoderConfig()
"""Official ``dinov2_vits14`` (about 22 M parameters), run at 196 x 196 as in DINO-WM."""

VIT_TINY = EncoderConfig(embed_dim=64, depth=2, num_heads=2, img_size=98, input_size=56)
"""A few hundred thousand parameters: 7 x 7 stored grid, run at 56 x 56 -> 16 patch tokens."""
