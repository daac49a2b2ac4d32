"""The small classifier heads of the language components (the process reward model, the command
guards): a two-layer MLP on fixed features, applied with numpy so that no torch is needed at run
time. Its weights are a dict of arrays (``mean``, ``std``, ``w1``, ``b1``, ``w2``, ``b2``), written
by :func:`edgerun.training.language.heads.fit_head` and saved with ``np.savez``."""

from __future__ import annotations

import numpy as np

Weights = dict[str, np.ndarray]


def head_inputs(weights: Weights) -> int:
    return int(weights["w1"].shape[0])


def head_probability(weights: Weights, features: np.ndarray) -> np.ndarray:
    """One probability per row of ``features`` (n, inputs)."""
    x = (features - weights["mean"]) / weights["std"]
    hidden = np.maximum(x @ weights["w1"] + weights["b1"], 0.0)
    logits = np.clip((hidden @ weights["w2"] + weights["b2"])[:, 0], -60.0, 60.0)
    return 1.0 / (1.0 + np.exp(-logits))
