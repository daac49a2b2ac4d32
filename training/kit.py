"""What every trainer here shares: torch threads, the learning-rate schedule, resumable state, the
loss-curve plot and the manifest.

A trainer writes its run directory through these, so every run directory looks the same: resumable
state written atomically (a kill mid-save never leaves a torn file) and refused when it belongs to
another trainer or model; ``loss_curve.png``; ``manifest.json`` with the same header (format, command,
seed, checkpoint hash, creation time, library versions) ahead of the trainer's own sections.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from edgerun.engines.trt_cache import sha256_file
from edgerun.errors import CheckpointError, TrainingStateError
from edgerun.models.torch_files import read_torch_file

STATE_VERSION = 1


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block on ``count`` torch threads (None or 0: torch's default), then restore the count.

    On a machine shared with other jobs, 1 thread is often several times faster than oversubscribed cores.
    """
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class TrainResult:
    """Where a finished run left its files, and what it measured."""

    checkpoint: Path
    manifest: Path
    loss_curve: Path
    manifest_data: dict = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    """What else a trainer wrote, by name (INT: ``components``, its YAML)."""


def warmup_cosine(step: int, total: int, peak: float, warmup: int, floor: float) -> float:
    """Every trainer's learning rate: linear warmup to ``peak`` over ``warmup`` steps, then cosine decay to
    ``floor`` x ``peak`` at ``total`` (``floor`` 1: constant after the warmup)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def tail_mean(values: Sequence[float], last: int = 100) -> float:
    """The mean of the last ``last`` values: the "final loss" of progress bars and manifests."""
    tail = values[-last:]
    return float(sum(tail) / max(1, len(tail)))


# ------------------------------------------------------------------------------------- arguments


def family_names(text: str, known: Mapping[str, Any], train: Sequence[str]) -> tuple[str, ...]:
    """A ``--families`` argument: names joined by commas, "train" standing for ``train``; each in
    ``known`` (else ValueError naming them); "" gives ()."""
    names = tuple(dict.fromkeys(n for name in text.split(",") if name for n in (train if name == "train" else (name,))))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"--families: unknown {', '.join(unknown)} (families: {', '.join(known)})")
    return names


# ------------------------------------------------------------------------------- resumable state


def refuse_unless_resuming(out: Path, state_files: Sequence[str], resume: bool) -> None:
    """Without ``--resume``, a run directory that already holds state is refused: nothing is overwritten."""
    existing = [name for name in state_files if (out / name).exists()]
    if existing and not resume:
        raise TrainingStateError(
            f"{out} already holds {', '.join(existing)}; pass --resume to continue it, or choose another --out"
        )


def save_state(path: Path, kind: str, payload: Mapping[str, Any]) -> None:
    """Write resumable state (plain tensors and primitives, readable with ``weights_only=True``) under a
    temporary name, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": kind, "version": STATE_VERSION, **payload}, tmp)
    os.replace(tmp, path)


def load_state(path: Path, kind: str, expect: Mapping[str, Any] | None = None) -> dict | None:
    """The state :func:`save_state` wrote, or None when there is none.

    Raises :class:`TrainingStateError` when the file is another trainer's (``kind``) or when one of
    ``expect``'s entries (the model's config, the data's hash) differs from what the state was saved with.
    """
    if not path.is_file():
        return None
    try:
        state = read_torch_file(path, "training state")
    except CheckpointError as error:
        raise TrainingStateError(f"{error}; move it away or pass another --out") from None
    if not isinstance(state, dict) or state.get("format") != kind or state.get("version") != STATE_VERSION:
        raise TrainingStateError(f"{path}: not an {kind} v{STATE_VERSION} state file; move it away or pass another --out")
    for key, value in (expect or {}).items():
        if state.get(key) != value:
            raise TrainingStateError(f"{path}: saved with {key} {state.get(key)}, asked to resume with {value}; "
                                     "move it away or pass another --out")  # fmt: skip
    return state


# -------------------------------------------------------------------------------------- manifest


def manifest_header(kind: str, command: str, seed: int, checkpoint: Path, loss_curve: Path, **checkpoint_facts: Any) -> dict:
    """The sections every manifest starts with; a trainer adds its data, steps, losses and metrics."""
    return {
        "format": kind,
        "version": 1,
        "command": command,
        "seed": seed,
        "checkpoint": {"path": checkpoint.name, "sha256": sha256_file(checkpoint), "bytes": checkpoint.stat().st_size,
                       **checkpoint_facts},
        "loss_curve": loss_curve.name,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> Path:
    """Indented JSON, written under a temporary name and renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------ loss curve


@dataclass(frozen=True)
class Curve:
    """One line of a panel: ``values`` at ``steps`` (default ``start``, ``start + 1``, ...)."""

    label: str | None
    values: Sequence[float]
    steps: Sequence[float] | None = None
    start: int = 0
    smooth: int = 0
    """Moving-average width (shorter series: their length); 0 draws the values as they are."""
    faint: bool = False
    """Also draw the raw values in light grey beneath the smoothed line."""
    style: str = "-"
    colour: str | None = None
    axis: Literal["left", "right"] = "left"


@dataclass(frozen=True)
class Panel:
    title: str
    curves: Sequence[Curve]
    yscale: Literal["linear", "log", "symlog"] = "log"
    right_label: str | None = None


def plot_curves(path: Path, panels: Sequence[Panel], dpi: int = 100) -> Path:
    """Every trainer's ``loss_curve.png``: panels side by side, x = optimiser step."""
    import matplotlib  # lazy: matplotlib only where a plot is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the backend is chosen

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.4, 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        twin = ax.twinx() if any(c.axis == "right" for c in panel.curves) else None
        drawn = False
        for curve in panel.curves:
            values = np.asarray(curve.values, dtype=np.float64)
            if values.size == 0:
                continue
            target = twin if curve.axis == "right" else ax
            x = np.asarray(curve.steps, dtype=np.float64) if curve.steps is not None else curve.start + np.arange(values.size)
            if curve.faint:
                target.plot(x, values, color="0.8", lw=0.5)
            if curve.smooth:
                width = min(curve.smooth, values.size)
                values, x = np.convolve(values, np.ones(width) / width, mode="valid"), x[width - 1 :]
            target.plot(x, values, curve.style, color=curve.colour, ms=3, lw=1.0, label=curve.label)
            drawn = True
        if drawn:
            ax.set_yscale(panel.yscale, **({"linthresh": 1e-3} if panel.yscale == "symlog" else {}))
            if any(c.label for c in panel.curves if c.axis == "left"):
                ax.legend(loc="upper left" if twin else "best")
        if twin is not None:
            twin.set_ylabel(panel.right_label or "")
            twin.legend(loc="upper right")
        ax.set_title(panel.title)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
