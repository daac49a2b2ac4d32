"""Reading a torch file the one safe way: ``weights_only=True``, and every way it can fail (no such
file, a directory, 0 bytes, truncated, foreign pickle, a zip of something else) as one
:class:`CheckpointError` line that names the file and the reason."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from edgerun.errors import CheckpointError, cut, first_line


def read_torch_file(path: str | Path, what: str = "torch checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; raises :class:`CheckpointError` for any
    file that is not a readable ``what``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"{path}: not a readable {what} ({_reason(path, exc)})") from None


def _reason(path: Path, exc: Exception) -> str:
    """Why torch could not read ``path``, in words: torch's own messages lead with boilerplate (the
    weights_only story) or an errno that says nothing about the file."""
    if not zipfile.is_zipfile(path):
        return "truncated, or not written by torch.save: no zip directory at its end"
    message = str(exc)
    if "WeightsUnpickler error:" in message:
        detail = message.split("WeightsUnpickler error:", 1)[1].strip().split("\n\n", 1)[0]
        return f"holds objects weights_only loading refuses: {cut(detail)}"
    return f"{type(exc).__name__}: {first_line(exc)}"
