"""DINO-WM's predictor: a pre-LN ViT over H frames of patch tokens with a frame-causal mask.

The input is ``history * num_patches`` tokens in frame-major order (all P patches of frame 0, then
frame 1, ...), each ``token_dim`` wide (visual + proprio embedding + action embedding). Output token
``(t, p)`` is the prediction of patch ``p`` of frame ``t + 1``: a token sees every token of its own
frame and of earlier frames, never a later one, so one forward pass trains all H next-frame
predictions at once (teacher forcing) and a rollout takes the last frame's outputs.

Layout follows the official ``models/vit.py`` (lucidrains' ViT): q, k and v from one bias-free
projection split q | k | v then heads, scale ``head_dim ** -0.5``, exact GELU, LayerNorm eps 1e-5,
a final LayerNorm. Our names follow the module tree (``pos_embed``, ``blocks.{i}.norm1``,
``blocks.{i}.attn.qkv``, ...); ``official.py`` maps the official names onto them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgerun.models.dino_wm.config import PredictorConfig


def frame_causal_mask(history: int, patches: int, device: torch.device | str | None = None) -> Tensor:
    """(N, N) bool, N = history * patches: True where query token i may attend to key token j.

    Token i belongs to frame ``i // patches``; it attends to j iff j's frame is not later than its own
    (block lower-triangular, whole frames at a time: the official ``generate_mask_matrix``).
    """
    frame = torch.arange(history * patches, device=device) // patches
    return frame[:, None] >= frame[None, :]


class Attention(nn.Module):
    """Multi-head self-attention, ``heads * head_dim`` wide inside, with a boolean attention mask."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.token_dim, 3 * config.inner_dim, bias=False)
        self.proj = nn.Linear(config.inner_dim, config.token_dim)
        self.proj_drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, N, token_dim), mask (N, N) bool (True = attend) -> (B, N, token_dim)."""
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, N, self.heads * self.head_dim)))


class MLP(nn.Module):
    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.token_dim, config.mlp_dim)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(config.dropout)
        self.fc2 = nn.Linear(config.mlp_dim, config.token_dim)
        self.drop2 = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-LN block: x + attn(norm1(x), mask), then x + mlp(norm2(x))."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.token_dim)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.token_dim)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class Predictor(nn.Module):
    """(B, T * P, token_dim) tokens of T <= history frames -> the same shape, next-frame predictions.

    T < history is allowed (a rollout that starts from fewer frames than its context, as the official
    planner does): the first ``T * P`` positional embeddings and the top-left of the mask are used.
    """

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_tokens, config.token_dim))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.token_dim)
        self.register_buffer("mask", frame_causal_mask(config.history, config.num_patches), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        # nanoGPT / DINOv2 style; the official code keeps torch defaults and a N(0, 1) pos embedding.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, tokens: Tensor) -> Tensor:
        config = self.config
        if tokens.ndim != 3 or tokens.shape[-1] != config.token_dim:
            raise ValueError(f"Predictor: expected tokens (B, T*{config.num_patches}, {config.token_dim}), got {tuple(tokens.shape)}")
        N = tokens.shape[1]
        if N % config.num_patches or not 0 < N <= config.num_tokens:
            raise ValueError(
                f"Predictor: expected T*{config.num_patches} tokens with 1 <= T <= {config.history} frames, got {N}"
            )
        x = tokens + self.pos_embed[:, :N]
        mask = self.mask[:N, :N]
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)
