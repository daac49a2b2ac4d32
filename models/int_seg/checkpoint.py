"""The INT components checkpoint: one file holding the scorer, detector and SAM encoder/decoder state dicts."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgerun.errors import CheckpointError
from edgerun.models.int_seg.networks import NetworkConfig, build
from edgerun.models.torch_files import read_torch_file

FORMAT = "edgerun.int_seg.components"
KINDS = ("scorer", "detector", "sam_encoder", "sam_decoder")
INIT_SEED = 0


def save_components(path: Path, networks: dict[str, nn.Module], config: NetworkConfig, extra: dict | None = None) -> None:
    payload = {"format": FORMAT, "version": 1, "network": config.to_dict(), **(extra or {})}
    payload.update({kind: networks[kind].state_dict() for kind in KINDS})
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def read_components(checkpoint: str | Path) -> dict:
    """The payload of an INT components checkpoint (tensors and primitives only), its format checked."""
    payload = read_torch_file(checkpoint, "INT components checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        kind = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{checkpoint}: not an INT components checkpoint (format {kind!r})")
    return payload


def load_network(kind: str, checkpoint: str | Path | None = None) -> nn.Module:
    """Component ``kind`` in eval mode: from an INT checkpoint, or a fixed-seed initialisation without one."""
    if checkpoint is None:
        torch.manual_seed(INIT_SEED)
        return build(kind).eval()
    payload = read_components(checkpoint)
    network = build(kind, NetworkConfig(**payload["network"]))
    network.load_state_dict(payload[kind])
    return network.eval()
