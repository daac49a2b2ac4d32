"""Fit the language components' classifier heads (:mod:`edgerun.pipelines.language.heads`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgerun.pipelines.language.heads import Weights


@dataclass(frozen=True)
class HeadConfig:
    hidden: int = 64
    epochs: int = 400  # full-batch Adam steps
    lr: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0


def fit_head(features: np.ndarray, labels: np.ndarray, config: HeadConfig) -> Weights:
    """A two-layer MLP by full-batch Adam on class-balanced cross-entropy (both classes weigh the
    same whatever their counts)."""
    torch.manual_seed(config.seed)
    mean, std = features.mean(0), features.std(0) + 1e-6
    x = torch.from_numpy(((features - mean) / std).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.float32))
    head = torch.nn.Sequential(torch.nn.Linear(x.shape[1], config.hidden), torch.nn.ReLU(), torch.nn.Linear(config.hidden, 1))
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    positive = float(labels.mean())
    weight = torch.where(y > 0, 0.5 / max(positive, 1e-6), 0.5 / max(1 - positive, 1e-6))
    for _ in range(config.epochs):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x)[:, 0], y, weight=weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    first, second = head[0], head[2]
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "w1": first.weight.detach().numpy().T.copy(), "b1": first.bias.detach().numpy().copy(),
            "w2": second.weight.detach().numpy().T.copy(), "b2": second.bias.detach().numpy().copy()}
