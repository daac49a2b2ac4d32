"""Constitutional command guards (after Constitutional Classifiers, arXiv 2501.18837): an input
guard that refuses a forbidden request before the LM reads it, and a streaming output guard that
scores the prefixes of what the LM writes, keeps the running maximum and halts generation once it
crosses its threshold.

Both are small MLP heads (:mod:`edgerun.pipelines.language.heads`) on MiniLM sentence embeddings.
The input guard also reads the quoted parts of a request joined up (how a request split into parts
hides what it asks), and the constitution's numeric limits are checked as rules, never left to a
classifier. The output guard embeds a prefix at every fourth complete word (its *anchor*), the
same in training and at run time, so scoring costs one embedding per four words.

``edgerun train language-guard`` fits them on requests generated from the constitution and writes
``checkpoints/language/guard``; ``edgerun eval guard`` measures them on held-out templates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgerun import PACKAGE, shipped
from edgerun.pipelines.language.constitution import Constitution
from edgerun.pipelines.language.heads import Weights, head_inputs, head_probability
from edgerun.pipelines.language.text_encoder import Encoder, TextEncoder

ANCHOR_WORDS = 4
# words with which an output declines what it names: a refusal names the forbidden act too, and a
# sentence embedding puts "I will not X" close to "I will X"
REFUSING = re.compile(r"\b(?:not|no|never|can't|cannot|won't|refuse[sd]?|forbidden|decline[sd]?|unsafe)\b", re.IGNORECASE)
QUOTED = re.compile(r"\"([^\"]+)\"|'([^']+)'")
INPUT, OUTPUT, MANIFEST = "input.npz", "output.npz", "manifest.json"
DEFAULT_GUARDS = Path(shipped("language/guard"))


def views(request: str) -> list[str]:
    """What the input guard scores of a request: the request, and its quoted parts joined up."""
    parts = [a or b for a, b in QUOTED.findall(request)]
    return [request, " ".join(parts)] if len(parts) > 1 else [request]


def anchor(prefix: str) -> str:
    """The part of an output prefix the output guard embeds: up to its last complete word whose count
    is a multiple of :data:`ANCHOR_WORDS` (empty before that)."""
    words = prefix.split()
    complete = len(words) if prefix[-1:].isspace() else len(words) - 1
    return " ".join(words[:complete - complete % ANCHOR_WORDS])


def output_features(texts: Sequence[str], encoder: Encoder) -> np.ndarray:
    """The output guard's input per text: its embedding, then whether it declines (anywhere; in its
    first eight words)."""
    declines = np.array([[bool(REFUSING.search(t)), bool(REFUSING.search(" ".join(t.split()[:8])))] for t in texts],
                        np.float32).reshape(len(texts), 2)
    return np.concatenate([encoder.encode(list(texts)), declines], axis=1)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    score: float  # the probability that the text is forbidden
    category: str | None  # the forbidden category it falls in, where refused
    reason: str  # for the operator: what was refused and why


class Guards:
    """The trained input and output guards with their thresholds and the constitution they enforce;
    ``load`` reads a folder written by ``edgerun train language-guard``."""

    def __init__(self, input_weights: Weights, output_weights: Weights, encoder: Encoder, constitution: Constitution,
                 manifest: dict[str, Any]):
        dim = int(manifest["embedding_dim"])
        for name, weights, expected in (("input", input_weights, dim), ("output", output_weights, dim + 2)):
            if head_inputs(weights) != expected:
                raise ValueError(f"{name} guard weights take {head_inputs(weights)} inputs, the features are {expected} "
                                 "(trained with another encoder?)")
        self.input_weights, self.output_weights = input_weights, output_weights
        self.encoder, self.constitution, self.manifest = encoder, constitution, manifest
        self.input_threshold = float(manifest["input_threshold"])
        self.output_threshold = float(manifest["output_threshold"])
        self.forbidden = [c.name for c in constitution.forbidden]

    def input_scores(self, requests: Sequence[str]) -> np.ndarray:
        """Per request, the forbidden probability of its most suspicious view."""
        seen = [views(r) for r in requests]
        scores = head_probability(self.input_weights, self.encoder.encode([v for vs in seen for v in vs]))
        ends = np.cumsum([len(vs) for vs in seen])
        return np.array([scores[end - len(vs):end].max() for vs, end in zip(seen, ends)])

    def check_input(self, request: str) -> Verdict:
        broken = self.constitution.limit_violation(request)
        if broken is not None:
            return Verdict(False, 1.0, "exceed_limits", f"refused: {broken}")
        score = float(self.input_scores([request])[0])
        if score < self.input_threshold:
            return Verdict(True, score, None, "")
        category = self.nearest_category(request)
        return Verdict(False, score, category,
                       f"refused: {category.replace('_', ' ')} ({self.constitution.describe(category)})")

    def nearest_category(self, text: str) -> str:
        """The forbidden category whose training requests' mean embedding is nearest to ``text``."""
        return self.forbidden[int(np.argmax(self.input_weights["centroids"] @ self.encoder.encode([text])[0]))]

    def output_scores(self, texts: Sequence[str]) -> np.ndarray:
        """The unsafe probability of each output text (an anchor of a prefix, or a whole output)."""
        return head_probability(self.output_weights, output_features(texts, self.encoder))

    def stream(self) -> OutputStream:
        return OutputStream(self)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / INPUT, **self.input_weights)
        np.savez(folder / OUTPUT, **self.output_weights)
        (folder / MANIFEST).write_text(json.dumps(self.manifest, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path, encoder: Encoder | None = None, constitution: Constitution | None = None) -> Guards:
        """The guards in ``folder``: MiniLM and the constitution they were trained on unless given."""
        folder = Path(folder)
        if not (folder / MANIFEST).is_file():
            raise FileNotFoundError(f"no command guards in {folder} (edgerun train language-guard writes them)")
        manifest = json.loads((folder / MANIFEST).read_text())
        weights = []
        for name in (INPUT, OUTPUT):
            with np.load(folder / name) as data:
                weights.append({k: data[k] for k in data.files})
        written = Path(manifest["constitution"])  # relative: to the package, as the training wrote it
        return cls(*weights, encoder or TextEncoder.load(),
                   constitution or Constitution.load(written if written.is_absolute() else PACKAGE / written), manifest)


class OutputStream:
    """The streaming output guard over one generation: ``feed`` every new piece of text (a token's);
    each time four more words are complete the prefix is scored, and once the running maximum
    crosses the threshold ``halted`` stays true. ``finish`` scores what is left at the end."""

    def __init__(self, guards: Guards):
        self.guards = guards
        self.text = ""
        self.peak = 0.0
        self.pieces = 0
        self.scored = ""
        self.halted_at: int | None = None  # the piece (token) at which it halted

    @property
    def halted(self) -> bool:
        return self.halted_at is not None

    def feed(self, piece: str) -> bool:
        """Add ``piece``; True when the output must stop here."""
        self.text += piece
        self.pieces += 1
        if not self.halted and anchor(self.text) != self.scored:
            self._score(anchor(self.text))
        return self.halted

    def finish(self) -> bool:
        """Score the whole output (its last words may not have made an anchor); True if halted."""
        if not self.halted and self.text.strip() and " ".join(self.text.split()) != self.scored:
            self._score(" ".join(self.text.split()))
        return self.halted

    def _score(self, text: str) -> None:
        self.scored = text
        self.peak = max(self.peak, float(self.guards.output_scores([text])[0]))
        if self.peak >= self.guards.output_threshold:
            self.halted_at = self.pieces
