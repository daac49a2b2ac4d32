"""TracksTo4D checkpoints: ours and the official release's, both read with ``weights_only=True``.

Ours: ``torch.save`` of ``{"format", "version", "config": TracksTo4DConfig.to_dict(),
"state_dict": TracksTo4D.state_dict(), "extra": primitives}``.

Official (``train.py`` of NVlabs/tracks-to-4d): ``{"epoch", "model_state_dict",
"optimizer_state_dict", "loss"}``, the state dict of ``TracksTo4DNet`` whose transformer layers
are lucidrains' simple-ViT-1D ``Transformer(dim, depth=1, heads=16, dim_head=64, mlp_dim=2048)``.
Its names map one-to-one to ours:

================================================================  =================================
``transformer_my.to_patch_embedding.{0,1,2}`` (LN 76, Linear, LN)  ``embed.{0,1,2}``
``transformer_my.transformer_frames.{i}.layers.0.0.norm``          ``blocks.{i}.time.attn.norm``
``transformer_my.transformer_frames.{i}.layers.0.0.to_qkv``        ``blocks.{i}.time.attn.qkv`` (no bias)
``transformer_my.transformer_frames.{i}.layers.0.0.to_out``        ``blocks.{i}.time.attn.proj`` (no bias)
``transformer_my.transformer_frames.{i}.layers.0.1.net.0``         ``blocks.{i}.time.mlp.norm``
``transformer_my.transformer_frames.{i}.layers.0.1.net.1``         ``blocks.{i}.time.mlp.fc1``
``transformer_my.transformer_frames.{i}.layers.0.1.net.3``         ``blocks.{i}.time.mlp.fc2``
``transformer_my.transformer_points.{i}.…`` (same)                 ``blocks.{i}.points.…``
``conv_final`` (K + 12, width, 31)                                 ``frame_head``
``fc1`` (3K + 1, width)                                            ``point_head``
================================================================  =================================

This is our reading of the released ``inference.py`` and simple-ViT-1D; it is tested on synthetic
checkpoints built with these names and shapes, not on a released file. The released network keeps
its Fourier frequencies as a plain attribute (not in the state dict); so do we (a non-persistent
buffer).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from edgerun.errors import CheckpointError, CheckpointMismatchError
from edgerun.models.state_dicts import mismatch_report
from edgerun.models.torch_files import read_torch_file
from edgerun.models.tracks_to_4d.config import TracksTo4DConfig
from edgerun.models.tracks_to_4d.network import TracksTo4D

FORMAT = "edgerun.tracks_to_4d"
VERSION = 1
OFFICIAL_HEAD_DIM = 64  # hard-coded in the release (Transformer(dim, 1, 16, 64, 2048))

_LAYER = {"0.norm": "attn.norm", "0.to_qkv": "attn.qkv", "0.to_out": "attn.proj", "1.net.0": "mlp.norm", "1.net.1": "mlp.fc1", "1.net.3": "mlp.fc2"}
_AXIS = {"frames": "time", "points": "points"}


def official_key(ours: str) -> str:
    """Our state-dict name → the official one (raises KeyError for a name the release does not have)."""
    if ours.startswith("embed."):
        return "transformer_my.to_patch_embedding." + ours[len("embed.") :]
    if ours.startswith("frame_head."):
        return "conv_final." + ours[len("frame_head.") :]
    if ours.startswith("point_head."):
        return "fc1." + ours[len("point_head.") :]
    match = re.fullmatch(r"blocks\.(\d+)\.(time|points)\.(attn|mlp)\.(\w+)\.(weight|bias)", ours)
    if match:
        block, axis, part, layer, kind = match.groups()
        sub = {v: k for k, v in _LAYER.items()}[f"{part}.{layer}"]
        official_axis = {v: k for k, v in _AXIS.items()}[axis]
        return f"transformer_my.transformer_{official_axis}.{block}.layers.0.{sub}.{kind}"
    raise KeyError(ours)


def official_state_dict(model: TracksTo4D) -> dict[str, Tensor]:
    """``model``'s weights under the official names (what a released ``model_state_dict`` holds)."""
    return {official_key(key): value for key, value in model.state_dict().items()}


def save_checkpoint(path: str | Path, model: TracksTo4D, config: TracksTo4DConfig | None = None, extra: dict | None = None) -> Path:
    """Write ``model`` in our format (``extra``: primitives, lists, dicts, tensors); returns the path."""
    config = model.config if config is None else config
    if config != model.config:
        raise CheckpointError(f"save_checkpoint: config {config} is not the model's {model.config}")
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "version": VERSION, "config": config.to_dict(), "state_dict": state, "extra": extra or {}}, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[TracksTo4D, TracksTo4DConfig, dict]:
    """Read our format -> (model in eval mode, config, extra). An official file is pointed to
    :func:`load_official`; weights that do not fit raise :class:`CheckpointMismatchError`."""
    payload = read_torch_file(path)
    if isinstance(payload, dict) and "model_state_dict" in payload:
        raise CheckpointError(f"{path}: an official TracksTo4D checkpoint; read it with load_official(path, config)")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        kind = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not an {FORMAT} checkpoint (format {kind!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: {FORMAT} version {payload.get('version')!r}, this code reads version {VERSION}")
    try:
        config = TracksTo4DConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad config: {error}") from None
    model = TracksTo4D(config)
    report = mismatch_report(model.state_dict(), payload["state_dict"], f"TracksTo4D({config})")
    if report:
        raise CheckpointMismatchError(f"{path}: {report}")
    model.load_state_dict(payload["state_dict"])
    return model.eval(), config, payload.get("extra", {})


def infer_official_config(state: dict[str, Tensor], focal_correction: bool = False) -> TracksTo4DConfig:
    """The config a released ``model_state_dict`` was trained with, read off its shapes (heads of 64)."""
    try:
        features = state["transformer_my.to_patch_embedding.0.weight"].shape[0]
        d_model = state["transformer_my.to_patch_embedding.1.weight"].shape[0]
        inner = state["transformer_my.transformer_frames.0.layers.0.0.to_qkv.weight"].shape[0] // 3
        mlp = state["transformer_my.transformer_frames.0.layers.0.1.net.1.weight"].shape[0]
        conv = state["conv_final.weight"]
        point = state["fc1.weight"].shape[0]
    except KeyError as error:
        raise CheckpointMismatchError(f"not a TracksTo4D model_state_dict: no {error.args[0]}") from None
    blocks = len({key.split(".")[2] for key in state if key.startswith("transformer_my.transformer_frames.")})
    return TracksTo4DConfig(
        octaves=(features - 4) // 6,
        d_model=d_model,
        heads=max(inner // OFFICIAL_HEAD_DIM, 1),
        head_dim=min(OFFICIAL_HEAD_DIM, inner),
        mlp=mlp,
        blocks=blocks,
        basis=(point - 1) // 3,
        conv_kernel=conv.shape[2],
        focal_correction=focal_correction,
    )


def load_official(path: str | Path, config: TracksTo4DConfig | None = None) -> tuple[TracksTo4D, TracksTo4DConfig, dict]:
    """Read an official ``{epoch, model_state_dict, optimizer_state_dict, loss}`` file -> (model in
    eval mode, config, ``{"epoch", "loss"}``), like :func:`load_checkpoint`. ``config`` None: read off the shapes (focal correction off;
    pass a config with ``focal_correction=True`` for a model trained with ``--predict_focal_length``).

    Raises :class:`CheckpointMismatchError` naming every missing, unexpected and misshapen key
    (official names) before anything is copied.
    """
    payload = read_torch_file(path)
    if not isinstance(payload, dict) or "model_state_dict" not in payload:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not an official TracksTo4D checkpoint (expected a dict with 'model_state_dict', got {keys})")
    state = payload["model_state_dict"]
    config = infer_official_config(state) if config is None else config
    model = TracksTo4D(config)
    expected = official_state_dict(model)
    report = mismatch_report(expected, state, f"the official TracksTo4DNet for {config}")
    if report:
        raise CheckpointMismatchError(f"{path}: {report}")
    inverse = {official_key(key): key for key in model.state_dict()}
    model.load_state_dict({inverse[key]: value for key, value in state.items()})
    loss = payload.get("loss")
    return model.eval(), config, {"epoch": payload.get("epoch"), "loss": float(loss) if isinstance(loss, (int, float, Tensor)) else None}


def load_any(path: str | Path, config: TracksTo4DConfig | None = None) -> tuple[TracksTo4D, TracksTo4DConfig, dict]:
    """Ours or the official format, whichever ``path`` holds. ``config`` is used for an official
    file (see :func:`load_official`); for ours, a stored config other than ``config`` is an error."""
    payload = read_torch_file(path)
    if isinstance(payload, dict) and "model_state_dict" in payload:
        return load_official(path, config)
    model, stored, extra = load_checkpoint(path)
    if config is not None and stored != config:
        raise CheckpointError(f"{path}: holds a model with config {stored}, expected {config}")
    return model, stored, extra
