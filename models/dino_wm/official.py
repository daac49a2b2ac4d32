"""The official DINO-WM checkpoint (``model_latest.pth``): read without running code, mapped to our names.

The official training script saves ``torch.save({"epoch": int, "predictor": ViTPredictor,
"predictor_optimizer": ..., "decoder": VQVAE, "action_encoder": ProprioceptiveEmbedding,
"proprio_encoder": ProprioceptiveEmbedding, ["encoder": DinoV2Encoder]})``: whole pickled modules.
Unpickling that normally imports and runs whatever the file names. :func:`load_official` instead
reads it with :mod:`.official_pickle`'s restricted unpickler: every global the pickle asks for must be
on an explicit allow-list, module classes become inert records, anything else raises
:class:`UnsafeCheckpointError` before it is imported or called.

Name mapping, official -> ours (this layout is our best reading of the official code: lucidrains'
ViT in ``models/vit.py``, ``models/proprio.py``, ``models/vqvae.py``; it is tested on synthetic
checkpoints built with these names and shapes, not on a released file):

======================================================  ============================================
``predictor.pos_embedding``  (1, H*P, W)                 ``predictor.pos_embed``
``predictor.transformer.layers.{i}.0.norm``              ``predictor.blocks.{i}.norm1``
``predictor.transformer.layers.{i}.0.to_qkv`` (no bias)  ``predictor.blocks.{i}.attn.qkv``
``predictor.transformer.layers.{i}.0.to_out.0``          ``predictor.blocks.{i}.attn.proj``
``predictor.transformer.layers.{i}.1.net.0``  (LN)       ``predictor.blocks.{i}.norm2``
``predictor.transformer.layers.{i}.1.net.1``             ``predictor.blocks.{i}.mlp.fc1``
``predictor.transformer.layers.{i}.1.net.4``             ``predictor.blocks.{i}.mlp.fc2``
``predictor.transformer.norm``                           ``predictor.norm``
``{action,proprio}_encoder.patch_embed.weight`` (E,I,1)  ``{action,proprio}_encoder.proj.weight`` (E,I)
``{action,proprio}_encoder.patch_embed.bias``            ``{action,proprio}_encoder.proj.bias``
``encoder.base_model.*`` (DINOv2 hub model)              ``encoder.*`` (same DINOv2 names)
``decoder.upsample_b.*``, ``decoder.dec.*`` (VQVAE)       ``decoder.upsample_b.*``, ``decoder.dec.*``
``decoder.quantize_b.*`` (codebook, unused: quantize off) dropped
======================================================  ============================================

The attention's plain ``bias`` attribute (its mask, not a parameter) is not carried: ours is rebuilt
from the config. The official H and P are not stored: P comes from the encoder (196 for ViT-S/14 at
196 x 196) and H = positional embeddings / P.
"""


from __future__ import annotations

import pickle
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edgerun.errors import CheckpointError, CheckpointMismatchError, UnsafeCheckpointError
from edgerun.models.dino_wm.checkpoint import load_state_dict_checked, save_checkpoint
from edgerun.models.dino_wm.config import (
    VIT_TINY,
    VITS14,
    DecoderConfig,
    EncoderConfig,
    PredictorConfig,
    WorldModelConfig,
)
from edgerun.models.dino_wm.encoder import official_key_shapes
from edgerun.models.dino_wm.official_pickle import StandIn, restricted_pickle_module
from edgerun.models.dino_wm.world_model import DinoWorldModel


@dataclass
class OfficialCheckpoint:
    """What :func:`read_official` found: our state dicts per part, plus what the records tell."""

    state_dicts: dict[str, dict[str, Tensor]]
    epoch: int | None = None
    heads: int | None = None
    dropout: float | None = None
    top_level_keys: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def load_official(path: str | Path) -> dict[str, Any]:
    """The official file's top-level dict, with stand-ins for every module; no code from it runs."""
    source = str(path)
    try:
        # weights_only=True cannot read whole pickled modules; the restricted pickle module is the
        # safe reader instead: every global is checked against an allow-list before it is touched.
        data = torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle_module(source))
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(f"{source}: cannot read as a torch checkpoint: {error}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: expected the official dict of modules, got {type(data).__name__}")
    return data


def record_state_dict(record: Any, prefix: str = "") -> dict[str, Tensor]:
    """The ``state_dict()`` a pickled module would give, from its stand-in (persistent buffers included)."""
    if not isinstance(record, StandIn):
        raise CheckpointError(f"{prefix or 'module'}: expected a pickled module, got {type(record).__name__}")
    state: dict[str, Tensor] = {}
    attrs = record.__dict__
    for name, value in (attrs.get("_parameters") or {}).items():
        if value is not None:
            state[prefix + name] = value.detach()
    non_persistent = attrs.get("_non_persistent_buffers_set") or set()
    for name, value in (attrs.get("_buffers") or {}).items():
        if value is not None and name not in non_persistent:
            state[prefix + name] = value.detach()
    for name, child in (attrs.get("_modules") or {}).items():
        if child is not None:
            state.update(record_state_dict(child, f"{prefix}{name}."))
    return state


_PREDICTOR_RULES = [
    (re.compile(r"pos_embedding"), "pos_embed"),
    (re.compile(r"transformer\.layers\.(\d+)\.0\.norm\.(weight|bias)"), r"blocks.\1.norm1.\2"),
    (re.compile(r"transformer\.layers\.(\d+)\.0\.to_qkv\.weight"), r"blocks.\1.attn.qkv.weight"),
    (re.compile(r"transformer\.layers\.(\d+)\.0\.to_out\.0\.(weight|bias)"), r"blocks.\1.attn.proj.\2"),
    (re.compile(r"transformer\.layers\.(\d+)\.1\.net\.0\.(weight|bias)"), r"blocks.\1.norm2.\2"),
    (re.compile(r"transformer\.layers\.(\d+)\.1\.net\.1\.(weight|bias)"), r"blocks.\1.mlp.fc1.\2"),
    (re.compile(r"transformer\.layers\.(\d+)\.1\.net\.4\.(weight|bias)"), r"blocks.\1.mlp.fc2.\2"),
    (re.compile(r"transformer\.norm\.(weight|bias)"), r"norm.\1"),
]


def map_predictor(official: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official ``ViTPredictor`` state dict -> our :class:`Predictor`'s (see the module docstring)."""
    ours, unknown = {}, []
    for key, value in official.items():
        for pattern, target in _PREDICTOR_RULES:
            if pattern.fullmatch(key):
                ours[pattern.sub(target, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointMismatchError(f"official predictor: keys with no counterpart here: {', '.join(sorted(unknown))}")
    return ours


def map_step_encoder(official: dict[str, Tensor], part: str) -> dict[str, Tensor]:
    """Official ``ProprioceptiveEmbedding`` (Conv1d, kernel 1) -> our per-step Linear ``proj``."""
    weight, bias = official.get("patch_embed.weight"), official.get("patch_embed.bias")
    extra = sorted(set(official) - {"patch_embed.weight", "patch_embed.bias"})
    if weight is None or bias is None or extra:
        raise CheckpointMismatchError(
            f"official {part}: expected exactly patch_embed.weight (E, in, 1) and patch_embed.bias (E,), got keys {sorted(official)}"
        )
    if weight.ndim != 3 or weight.shape[-1] != 1:
        raise CheckpointMismatchError(
            f"official {part}: patch_embed.weight expected (E, in, 1) (Conv1d kernel 1), got {tuple(weight.shape)}; "
            "tubelet_size > 1 is not supported"
        )
    return {"proj.weight": weight[..., 0].contiguous(), "proj.bias": bias}


def _records_attr(record: Any, attr: str) -> list[Any]:
    """Every value of ``attr`` in ``record`` and its submodules (depth first)."""
    if not isinstance(record, StandIn):
        return []
    found = [record.__dict__[attr]] if attr in record.__dict__ else []
    for child in (record.__dict__.get("_modules") or {}).values():
        found += _records_attr(child, attr)
    return found


def read_official(path: str | Path) -> OfficialCheckpoint:
    """Read an official ``model_latest.pth`` safely and map it to our names."""
    data = load_official(path)
    source = str(path)
    for needed in ("predictor", "action_encoder", "proprio_encoder"):
        if data.get(needed) is None:
            raise CheckpointError(f"{source}: no '{needed}' entry (has {', '.join(map(str, data))})")
    parts: dict[str, dict[str, Tensor]] = {"predictor": map_predictor(record_state_dict(data["predictor"]))}
    for part in ("action_encoder", "proprio_encoder"):
        parts[part] = map_step_encoder(record_state_dict(data[part]), part)
    skipped = [key for key in data if key not in ("epoch", "predictor", "action_encoder", "proprio_encoder", "encoder", "decoder")]
    if data.get("encoder") is not None:
        encoder = data["encoder"]
        base = encoder.__dict__.get("_modules", {}).get("base_model") if isinstance(encoder, StandIn) else None
        if base is None:
            raise CheckpointMismatchError(f"{source}: 'encoder' has no base_model (expected models.dino.DinoV2Encoder)")
        parts["encoder"] = record_state_dict(base)
    if data.get("decoder") is not None:
        decoder = data["decoder"]
        if isinstance(decoder, StandIn) and decoder.__dict__.get("quantize") is True:
            raise CheckpointMismatchError(f"{source}: the decoder is a quantising VQ-VAE (quantize=True); only quantize=False is supported")
        state = record_state_dict(decoder)
        parts["decoder"] = {key: value for key, value in state.items() if not key.startswith("quantize_b.")}
    heads = [h for h in _records_attr(data["predictor"], "heads") if isinstance(h, int)]
    dropouts = [p for p in _records_attr(data["predictor"], "p") if isinstance(p, float)]
    epoch = data.get("epoch")
    return OfficialCheckpoint(
        state_dicts=parts,
        epoch=epoch if isinstance(epoch, int) else None,
        heads=heads[0] if heads else None,
        dropout=max(dropouts) if dropouts else None,
        top_level_keys=[str(key) for key in data],
        skipped=skipped,
    )


def convert_official(path: str | Path) -> dict[str, dict[str, Tensor]]:
    """Official ``model_latest.pth`` -> our state dicts: ``predictor``, ``action_encoder``,
    ``proprio_encoder``, and ``encoder`` / ``decoder`` when the file has them."""
    return read_official(path).state_dicts


def model_state_dict(parts: dict[str, dict[str, Tensor]]) -> dict[str, Tensor]:
    """Our per-part state dicts -> one ``DinoWorldModel`` state dict (``predictor.pos_embed``, ...)."""
    return {f"{part}.{key}": value for part, state in parts.items() for key, value in state.items()}


def _infer_encoder(state: dict[str, Tensor] | None, visual_dim: int) -> EncoderConfig:

    for preset in (VITS14, VIT_TINY):
        if state is None and preset.embed_dim == visual_dim:
            return preset
        if state is not None and {k: tuple(v.shape) for k, v in state.items()} == official_key_shapes(preset):
            return preset
    raise CheckpointMismatchError(
        f"encoder: no known DINOv2 size matches ({'weights given' if state else f'visual width {visual_dim}'}); "
        "known: ViT-S/14 (384) and the tiny test encoder (64); pass a config"
    )


def infer_config(official: OfficialCheckpoint, frameskip: int = 5, alpha: float = 1.0) -> WorldModelConfig:
    """A :class:`WorldModelConfig` that fits the converted shapes.

    Not in the file, so assumed: ``frameskip`` (5 in the paper; 1 if the action width is not a
    multiple of it), ``alpha`` (the planning weight, chosen per environment), ``head_dim`` (64, when
    the pickled attention does not record ``heads``), and the encoder's input size (196 for ViT-S/14).
    """
    parts = official.state_dicts
    predictor = parts["predictor"]
    pos = predictor["pos_embed"]
    depth = len({key.split(".")[1] for key in predictor if key.startswith("blocks.")})
    inner = predictor["blocks.0.attn.qkv.weight"].shape[0] // 3
    heads = official.heads or max(1, inner // 64)
    if inner % heads:
        raise CheckpointMismatchError(f"predictor: attention width {inner} is not divisible by {heads} heads")
    emb = parts["proprio_encoder"]["proj.weight"].shape[0]
    if parts["action_encoder"]["proj.weight"].shape[0] != emb:
        raise CheckpointMismatchError(
            f"action embedding width {parts['action_encoder']['proj.weight'].shape[0]} != proprio embedding width {emb}; "
            "this model uses one emb_dim for both"
        )
    width = pos.shape[-1]
    visual_dim = width - 2 * emb
    encoder = _infer_encoder(parts.get("encoder"), visual_dim)
    patches = encoder.num_patches
    if pos.shape[1] % patches:
        raise CheckpointMismatchError(f"predictor.pos_embed {tuple(pos.shape)}: {pos.shape[1]} tokens is not a whole number of {patches}-patch frames")
    action_in = parts["action_encoder"]["proj.weight"].shape[1]
    if action_in % frameskip:
        frameskip = 1
    predictor_config = PredictorConfig(
        depth=depth, heads=heads, head_dim=inner // heads, mlp_dim=predictor["blocks.0.mlp.fc1.weight"].shape[0],
        dropout=official.dropout if official.dropout is not None else 0.1, num_patches=patches, visual_dim=visual_dim,
        proprio_dim=parts["proprio_encoder"]["proj.weight"].shape[1], action_dim=action_in // frameskip,
        frameskip=frameskip, history=pos.shape[1] // patches, emb_dim=emb,
    )  # fmt: skip
    decoder = None
    if "decoder" in parts:
        state = parts["decoder"]

        def stage(name: str) -> tuple[int, int, int, int]:
            keys = [k for k in state if k.startswith(f"{name}.blocks.")]
            indices = sorted({int(k.split(".")[2]) for k in keys})
            res = sorted({int(k.split(".")[2]) for k in keys if ".conv." in k})
            channel = state[f"{name}.blocks.0.weight"].shape[0]
            res_channel = state[f"{name}.blocks.{res[0]}.conv.1.weight"].shape[0] if res else 8
            transposed = len(indices) - 1 - len(res)  # after the first conv and the res blocks
            return channel, len(res), res_channel, 4 if transposed >= 2 else 2

        c1, r1, rc1, up = stage("upsample_b")
        _, _, _, down = stage("dec")
        decoder = DecoderConfig(channel=c1, res_blocks=r1, res_channel=rc1, upsample_stride=up, decode_stride=down)
    return WorldModelConfig(encoder=encoder, predictor=predictor_config, alpha=alpha, decoder=decoder)


def convert_main(path: str, out: str | None, config: WorldModelConfig | None = None, frameskip: int = 5) -> int:
    """``edgerun convert dino-wm PATH [OUT]``: official file -> our checkpoint (``OUT`` defaults to
    ``PATH`` with ``.edgerun.pt``). Prints what it converted; returns 0, or 2 after printing
    ``edgerun convert dino-wm: <error>`` to stderr for an unsafe, unreadable or mismatched file."""
    if not Path(path).is_file():
        print(f"edgerun convert dino-wm: {path}: no such file", file=sys.stderr)
        return 2
    try:
        official = read_official(path)
        config = config or infer_config(official, frameskip=frameskip)
        if "decoder" not in official.state_dicts and config.decoder is not None:
            config = replace(config, decoder=None)
        model = DinoWorldModel(config)
        load_state_dict_checked(model, model_state_dict(official.state_dicts), _encoder_placeholder(model, official))
        target = Path(out) if out else Path(path).with_suffix(".edgerun.pt")
        save_checkpoint(
            target,
            model,
            config,
            extra={"source": str(path), "official_epoch": official.epoch, "official_keys": official.top_level_keys},
            include_encoder="encoder" in official.state_dicts,
        )
    except (CheckpointError, FileNotFoundError) as error:
        print(f"edgerun convert dino-wm: {error}", file=sys.stderr)
        return 2
    p = config.predictor
    print(f"converted {path} (epoch {official.epoch}) -> {target}")
    for part, state in official.state_dicts.items():
        print(f"  {part:16s} {len(state):4d} tensors  {sum(v.numel() for v in state.values()):>11,d} parameters")
    print(
        f"  predictor: depth {p.depth}, {p.heads} heads x {p.head_dim}, mlp {p.mlp_dim}, H {p.history}, "
        f"P {p.num_patches}, width {p.token_dim} = {p.visual_dim} + 2 x {p.emb_dim}; "
        f"proprio {p.proprio_dim}, action {p.action_dim} x frameskip {p.frameskip}"
    )
    if "encoder" not in official.state_dicts:
        print("  encoder: not in the file (frozen); load with encoder_state_dict= the official DINOv2 weights")
    if official.skipped:
        print(f"  not converted: {', '.join(official.skipped)}")
    return 0


def _encoder_placeholder(model: DinoWorldModel, official: OfficialCheckpoint) -> dict[str, Tensor] | None:
    """For a file without the encoder: the model's own (unsaved) encoder weights, so the check passes."""
    if "encoder" in official.state_dicts:
        return None
    return {key: value for key, value in model.encoder.state_dict().items()}

