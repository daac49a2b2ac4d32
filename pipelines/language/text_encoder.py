"""all-MiniLM-L6-v2 sentence embeddings through an engine.

``TextEncoder`` runs the ONNX export of :class:`edgerun.models.language.minilm.MiniLMEmbedder` with
any edgerun engine and tokenises with the package's ``tokenizer.json``.

ONNX contract (registry entry ``minilm-l6-v2``):
    input_ids, attention_mask, token_type_ids: int64 (batch, seq)  →  embeddings: float32 (batch, 384)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from edgerun.engines import Engine, load
from edgerun.export.cache import load_exported
from edgerun.export.registry import REGISTRY
from edgerun.models.language.minilm import EMBED_DIM, MODEL_NAME, Tokenizer

log = logging.getLogger("edgerun.language")

INPUTS = REGISTRY[MODEL_NAME].inputs
OUTPUTS = REGISTRY[MODEL_NAME].outputs


class Encoder(Protocol):
    """What the language heads (PRM, guards) need of a sentence encoder: texts → (n, d) float32."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class TextEncoder:
    """Texts → (n, 384) float32 unit vectors with a MiniLM engine; each distinct text is encoded once.

    ``engine`` must follow the contract in this module's docstring (a ValueError lists what
    breaks it otherwise).
    """

    def __init__(self, engine: Engine, tokenizer: Tokenizer | None = None, batch_size: int = 32) -> None:
        problems = contract_problems(engine)
        if problems:
            raise ValueError(f"text encoder engine '{engine.name}': {'; '.join(problems)}")
        self.engine = engine
        self.tokenizer = tokenizer or Tokenizer()
        self.batch_size = batch_size
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, onnx_path: str | Path | None = None, backend: str = "onnxruntime-cpu", **options) -> TextEncoder:
        """From an exported ONNX file; by default the package's model, exported into the model cache on first use."""
        if onnx_path is None:
            return cls(load_exported(MODEL_NAME, backend=backend, **options))
        return cls(load(Path(onnx_path), backend=backend, **options))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, got one str")
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start:start + self.batch_size]
            embeddings = self.engine(**self.tokenizer(chunk))["embeddings"]
            self._cache.update(zip(chunk, np.asarray(embeddings, dtype=np.float32)))
        if not texts:
            return np.zeros((0, EMBED_DIM), np.float32)
        return np.stack([self._cache[t] for t in texts])

    def close(self) -> None:
        self.engine.close()


def contract_problems(engine: Engine) -> list[str]:
    """What in ``engine``'s inputs/outputs breaks the MiniLM contract (empty when it follows it)."""
    problems = []
    inputs = {s.name: s for s in engine.inputs}
    for spec in INPUTS:
        got = inputs.get(spec.name)
        if got is None:
            problems.append(f"missing input '{spec.name}' {spec.describe()}")
        elif got.dtype != spec.dtype or len(got.shape) != 2:
            problems.append(f"input '{spec.name}': expected {spec.describe()}, got {got.describe()}")
    outputs = {s.name: s for s in engine.outputs}
    got = outputs.get("embeddings")
    if got is None:
        problems.append(f"missing output 'embeddings' {OUTPUTS[0].describe()}")
    elif got.dtype != "float32" or len(got.shape) != 2 or got.shape[1] != EMBED_DIM:
        problems.append(f"output 'embeddings': expected {OUTPUTS[0].describe()}, got {got.describe()}")
    return problems
