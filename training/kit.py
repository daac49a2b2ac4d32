"""Small pieces every trainer here shares."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch


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
