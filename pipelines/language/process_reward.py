"""A process reward model (PRM) for robot word problems: the probability that one reasoning step is
right, given the question and the steps before it.

Inputs per step: the question's and the step's sentence embeddings (MiniLM by default; any encoder
with ``encode(list[str]) -> (n, d)``) and a few checks a reader makes of a step (does its
arithmetic hold, are its operands given, does it repeat a result, does the answer follow from the
last result). A two-layer MLP turns them into a reward in [0, 1]. It runs in numpy: no torch at
decode time. :mod:`edgerun.training.language.prm` trains it on labels the verifiable tasks give
for free (:func:`edgerun.pipelines.language.steps.step_correct`).

Saved as ``prm.npz`` (weights) and ``manifest.json`` (encoder, features, held-out metrics).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgerun.models.language.minilm import MODEL_NAME
from edgerun.pipelines.language.budget_forcing import ANSWER_MARK
from edgerun.pipelines.language.heads import Weights, head_inputs, head_probability
from edgerun.pipelines.language.steps import CONSTANTS, equations, numbers
from edgerun.pipelines.language.tasks import parse_answer
from edgerun.pipelines.language.text_encoder import Encoder, TextEncoder

CHECKS = ("has_equation", "arithmetic_holds", "operands_given", "numbers_given", "repeats_result",
          "is_answer", "answer_is_last_result", "answer_is_a_result", "position", "length")
WEIGHTS = "prm.npz"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class StepContext:
    """One step to score: the question, the steps before it, the step (an answer step starts with
    "Final Answer:")."""

    question: str
    previous: tuple[str, ...]
    step: str


def checks(context: StepContext) -> np.ndarray:
    """The :data:`CHECKS` of one step, as floats."""
    question, previous, step = context.question, context.previous, context.step
    given = set(numbers(question)) | CONSTANTS
    results = [e.result for p in previous for e in equations(p)]
    earlier = given | {n for p in previous for n in numbers(p)}
    stated = equations(step)
    inside = {n for e in stated for n in (*e.operands, e.result)}
    operands = [n for e in stated for n in e.operands]
    others = [n for n in numbers(step) if n not in inside]
    is_answer = step.startswith(ANSWER_MARK)
    answer = parse_answer(step[len(ANSWER_MARK):]) if is_answer else None
    return np.array([
        bool(stated),
        np.mean([e.holds for e in stated]) if stated else 1.0,
        np.mean([n in earlier for n in operands]) if operands else 1.0,
        np.mean([n in earlier for n in others]) if others and not is_answer else 1.0,
        any(e.result in results for e in stated),
        is_answer,
        is_answer and bool(results) and answer == results[-1],
        is_answer and answer in results,
        min(len(previous), 8) / 8,
        min(len(step), 200) / 200,
    ], dtype=np.float32)


def step_features(contexts: Sequence[StepContext], encoder: Encoder | None) -> np.ndarray:
    """The PRM's input per step: its checks, then (with an encoder) the question's and the step's embeddings."""
    rows = np.stack([checks(c) for c in contexts]) if contexts else np.zeros((0, len(CHECKS)), np.float32)
    if encoder is None:
        return rows
    questions = encoder.encode([c.question for c in contexts])
    steps = encoder.encode([c.step for c in contexts])
    return np.concatenate([rows, questions, steps], axis=1).astype(np.float32)


class ProcessRewardModel:
    """``reward(contexts)`` → one probability per step that it is right."""

    def __init__(self, weights: Weights, encoder: Encoder | None, manifest: dict[str, Any]):
        self.weights = weights
        self.encoder = encoder
        self.manifest = manifest
        expected = len(CHECKS) + 2 * int(manifest.get("embedding_dim", 0))
        if head_inputs(weights) != expected:
            raise ValueError(f"PRM weights take {head_inputs(weights)} inputs, the features are {expected} "
                             "(a PRM trained with another encoder?)")

    def reward(self, contexts: Sequence[StepContext]) -> np.ndarray:
        return self.apply(step_features(contexts, self.encoder))

    def apply(self, features: np.ndarray) -> np.ndarray:
        return head_probability(self.weights, features)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / WEIGHTS, **self.weights)
        (folder / MANIFEST).write_text(json.dumps(self.manifest, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path, encoder: Encoder | None = None) -> ProcessRewardModel:
        """The PRM in ``folder``; its encoder is MiniLM when the manifest names it and none is given."""
        if not (folder / MANIFEST).is_file():
            raise FileNotFoundError(f"no process reward model in {folder} (edgerun train language-prm writes one)")
        manifest = json.loads((folder / MANIFEST).read_text())
        with np.load(folder / WEIGHTS) as data:
            weights = {k: data[k] for k in data.files}
        if encoder is None and manifest.get("encoder") == MODEL_NAME:
            encoder = TextEncoder.load()
        return cls(weights, encoder if manifest.get("embedding_dim") else None, manifest)
