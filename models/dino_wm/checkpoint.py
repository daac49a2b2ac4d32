"""DINO-WM checkpoints of this project: tensors + JSON-able config, loaded with ``weights_only=True``.

``torch.save`` of a plain dict: ``format``, ``version``, ``config`` (:meth:`WorldModelConfig.to_dict`),
``state_dict`` (``DinoWorldModel.state_dict()`` names, CPU tensors) and ``extra`` (the caller's
primitives / tensors). The encoder's weights may be left out (they are the public DINOv2 ones);
:func:`load_checkpoint` then needs them passed in. The official ``model_latest.pth`` is read by
:mod:`.official` and converted to this format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edgerun.errors import CheckpointError, CheckpointMismatchError
from edgerun.models.dino_wm.config import (
    WorldModelConfig,
)
from edgerun.models.dino_wm.encoder import load_official_state_dict
from edgerun.models.dino_wm.world_model import DinoWorldModel
from edgerun.models.state_dicts import mismatch_report
from edgerun.models.torch_files import read_torch_file

FORMAT = "edgerun.dino_wm"
VERSION = 1


# --------------------------------------------------------------------------------------------- ours


def _check_extra(value: Any, where: str = "extra") -> None:
    """Only what ``torch.load(weights_only=True)`` reads back: primitives, containers, tensors."""
    if value is None or isinstance(value, (bool, int, float, str, Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_extra(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"{where}: keys must be str or int, got {type(key).__name__}")
            _check_extra(item, f"{where}[{key!r}]")
        return
    raise CheckpointError(f"{where}: {type(value).__name__} cannot be stored (use primitives, lists, dicts, tensors)")


def save_checkpoint(
    path: str | Path,
    model: DinoWorldModel,
    config: WorldModelConfig | None = None,
    extra: dict | None = None,
    include_encoder: bool = True,
) -> Path:
    """Write ``model`` (its config defaults to ``model.config``) in our format; returns the path.

    ``include_encoder=False`` leaves out the frozen DINOv2 weights (about 88 MB at paper size).
    """
    config = model.config if config is None else config
    if config != model.config:
        raise CheckpointError(f"save_checkpoint: config {config} is not the model's {model.config}")
    extra = {} if extra is None else extra
    _check_extra(extra)
    state = {
        key: value.detach().cpu().contiguous()
        for key, value in model.state_dict().items()
        if include_encoder or not key.startswith("encoder.")
    }
    path = Path(path)
    torch.save({"format": FORMAT, "version": VERSION, "config": config.to_dict(), "state_dict": state, "extra": extra}, path)
    return path


def load_state_dict_checked(model: DinoWorldModel, state: dict[str, Tensor], encoder_state_dict: dict[str, Tensor] | None = None) -> DinoWorldModel:
    """Load ``state`` (all of ``model.state_dict()``'s keys, the ``encoder.`` ones optional when
    ``encoder_state_dict`` gives official DINOv2 weights) strictly; nothing is copied on a mismatch."""
    expected = model.state_dict()
    has_encoder = any(key.startswith("encoder.") for key in state)
    if not has_encoder:
        if encoder_state_dict is None:
            raise CheckpointError(
                "checkpoint has no encoder weights (the frozen DINOv2 was left out); pass encoder_state_dict= "
                "the official DINOv2 state dict (e.g. dinov2_vits14)"
            )
        expected = {key: value for key, value in expected.items() if not key.startswith("encoder.")}
    report = mismatch_report(expected, state, f"DinoWorldModel({model.config})")
    if report:
        raise CheckpointMismatchError(report)
    if not has_encoder:
        load_official_state_dict(model.encoder, encoder_state_dict)
    model.load_state_dict(state, strict=has_encoder)
    return model


def load_checkpoint(
    path: str | Path, encoder_state_dict: dict[str, Tensor] | None = None
) -> tuple[DinoWorldModel, WorldModelConfig, dict]:
    """Read our format with ``weights_only=True`` -> (model in eval mode, config, extra).

    Raises :class:`CheckpointError` for another format and :class:`CheckpointMismatchError`, naming
    the keys and expected vs got shapes, for weights that do not fit the stored config.
    """
    payload = read_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        kind = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path}: not an {FORMAT} checkpoint (format {kind!r}); convert an official DINO-WM file with "
            "`edgerun convert dino-wm`"
        )
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: {FORMAT} version {payload.get('version')!r}, this code reads version {VERSION}")
    try:
        config = WorldModelConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad config: {error}") from None
    model = DinoWorldModel(config)
    try:
        load_state_dict_checked(model, payload["state_dict"], encoder_state_dict)
    except CheckpointMismatchError as error:
        raise CheckpointMismatchError(f"{path}: {error}") from None
    return model.eval(), config, payload.get("extra", {})

