"""Train the process reward model (:mod:`edgerun.pipelines.language.process_reward`) on step labels
the verifiable tasks give for free.

Steps come from three sources, all on the *train* split's tasks:

* reasoning traces of real models (JSON Lines from ``edgerun train language-traces``: the target's,
  and the draft's own, whose mistakes are the ones RSD must catch), every sentence labelled by
  :func:`edgerun.pipelines.language.steps.step_correct` and the answer line by the task's answer;
* the tasks' worked solutions (right by construction);
* the worked solutions corrupted the ways small models err: a wrong result, a wrong operand, a
  wrong operation, a wrong final answer.

Validation holds out whole tasks (a fifth of them, chosen by a hash of family and seed), so no step
of a validation task was seen in training; its metrics go into the manifest.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgerun.models.language.minilm import MODEL_NAME
from edgerun.pipelines.language.budget_forcing import ANSWER_MARK
from edgerun.pipelines.language.process_reward import CHECKS, ProcessRewardModel, StepContext, step_features
from edgerun.pipelines.language.steps import equations, split_steps, step_correct
from edgerun.pipelines.language.tasks import Task, hash_fraction, make_task, parse_answer, task_set
from edgerun.pipelines.language.text_encoder import Encoder, TextEncoder
from edgerun.training.language.heads import HeadConfig, fit_head


@dataclass(frozen=True)
class PrmConfig:
    head: HeadConfig = field(default_factory=HeadConfig)
    validation: float = 0.2  # fraction of tasks held out
    gold_per_family: int = 200  # worked solutions (and their corruptions) per family
    seed: int = 0


@dataclass(frozen=True)
class Example:
    context: StepContext
    label: bool
    source: str  # "trace:<file stem>", "gold" or "corrupted"
    task: tuple[str, int]


def held_out(task: tuple[str, int], fraction: float) -> bool:
    return hash_fraction(f"{task[0]}:{task[1]}") < fraction


def trace_examples(task: Task, thinking: str, answer_text: str, source: str) -> list[Example]:
    """Every sentence of one trace and its answer line, labelled."""
    out, previous = [], []
    for step in split_steps(thinking):
        out.append(Example(StepContext(task.question, tuple(previous), step), step_correct(task, previous, step),
                           source, (task.family, task.seed)))
        previous.append(step)
    answer = f"{ANSWER_MARK} {answer_text.strip()}"
    out.append(Example(StepContext(task.question, tuple(previous), answer), parse_answer(answer_text) == task.answer,
                       source, (task.family, task.seed)))
    return out


def _corrupt(step: str, rng: random.Random, question_numbers: list[str]) -> str | None:
    """``step`` with one mistake a small model makes, or None when it has no equation to spoil."""
    stated = equations(step)
    if not stated:
        return None
    result = f"{stated[-1].result:g}"
    kind = rng.choice(("result", "operand", "operation"))
    head, _, tail = step.rpartition(result)
    if kind == "result":
        return f"{head}{int(stated[-1].result) + rng.choice((-10, -2, -1, 1, 2, 10))}{tail}"
    left = step.split("=")[0]
    if kind == "operand" and question_numbers:
        operand = f"{stated[-1].operands[0]:g}"
        return step.replace(operand, rng.choice([n for n in question_numbers if n != operand] or [str(int(operand) + 1)]), 1)
    for old, new in ((" * ", " + "), (" + ", " * "), (" - ", " + "), (" // ", " - "), (" / ", " * ")):
        if old in left:
            return step.replace(old, new, 1)
    return None


def gold_examples(tasks: list[Task], seed: int) -> list[Example]:
    """Worked solutions (right) and one corruption of each step and answer (wrong)."""
    rng = random.Random(seed)
    out = []
    for task in tasks:
        key = (task.family, task.seed)
        question_numbers = [n for n in task.question.replace(",", "").split() if n.isdigit()]
        previous: list[str] = []
        for step in task.steps:
            out.append(Example(StepContext(task.question, tuple(previous), step), True, "gold", key))
            spoilt = _corrupt(step, rng, question_numbers)
            if spoilt is not None:
                out.append(Example(StepContext(task.question, tuple(previous), spoilt),
                                   step_correct(task, previous, spoilt), "corrupted", key))
            previous.append(step)
        out.append(Example(StepContext(task.question, tuple(previous), f"{ANSWER_MARK} {task.answer}"), True, "gold", key))
        wrong = task.answer + rng.choice((-10, -1, 1, 10))
        out.append(Example(StepContext(task.question, tuple(previous), f"{ANSWER_MARK} {wrong}"), False, "corrupted", key))
    return out


def load_traces(paths: list[Path]) -> list[Example]:
    out = []
    for path in paths:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            task = make_task(record["family"], record["seed"])
            if task.question != record["question"]:
                raise ValueError(f"{path}: the trace of {record['family']}:{record['seed']} does not match the task "
                                 "generator (traces from another version of the tasks?)")
            out.extend(trace_examples(task, record["thinking"], record["answer_text"], f"trace:{path.stem}"))
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the probability a right step outscores a wrong one)."""
    positive, negative = scores[labels], scores[~labels]
    if not len(positive) or not len(negative):
        return float("nan")
    ranks = np.argsort(np.argsort(np.concatenate([positive, negative]))) + 1
    return float((ranks[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def metrics(rewards: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {"steps": int(len(labels)), "right_fraction": float(labels.mean()) if len(labels) else 0.0,
                             "auc": auc(rewards, labels)}
    for threshold in (0.5, 0.7, 0.9):
        kept = rewards >= threshold
        out[f"precision_at_{threshold}"] = float(labels[kept].mean()) if kept.any() else float("nan")
        out[f"recall_at_{threshold}"] = float(kept[labels].mean()) if labels.any() else float("nan")
    return out


def train_prm(examples: list[Example], encoder: Encoder | None, encoder_name: str, config: PrmConfig) -> ProcessRewardModel:
    """Fit on the training tasks' steps; the manifest carries the held-out tasks' metrics."""
    validation = np.array([held_out(e.task, config.validation) for e in examples])
    labels = np.array([e.label for e in examples])
    embedding_dim = int(encoder.encode(["a"]).shape[1]) if encoder is not None else 0
    features = step_features([e.context for e in examples], encoder)
    weights = fit_head(features[~validation], labels[~validation], config.head)
    manifest = {"encoder": encoder_name, "embedding_dim": embedding_dim, "checks": list(CHECKS), "config": asdict(config),
                "train_steps": int((~validation).sum()), "validation_steps": int(validation.sum()),
                "validation": "whole tasks held out by a hash of family and seed"}
    model = ProcessRewardModel(weights, encoder, manifest)
    rewards = model.apply(features)
    manifest["validation_metrics"] = metrics(rewards[validation], labels[validation])
    traced = validation & np.array([e.source.startswith("trace:") for e in examples])
    manifest["validation_metrics_model_steps"] = metrics(rewards[traced], labels[traced])
    manifest["sources"] = {s: int(sum(e.source == s for e in examples)) for s in sorted({e.source for e in examples})}
    return model


def train_main(traces: list[Path], out: Path, config: PrmConfig, embedding: bool) -> int:
    """``edgerun train language-prm``."""
    missing = [str(p) for p in traces if not p.is_file()]
    if missing:
        print(f"edgerun train language-prm: no traces at {', '.join(missing)} (edgerun train language-traces writes them)",
              file=sys.stderr)
        return 2
    examples = load_traces(traces) + gold_examples(task_set("train", config.gold_per_family), config.seed)
    encoder = TextEncoder.load() if embedding else None
    model = train_prm(examples, encoder, MODEL_NAME if embedding else "none", config)
    model.save(out)
    shown = {k: round(v, 3) for k, v in model.manifest["validation_metrics_model_steps"].items()}
    print(f"PRM in {out}; held-out model steps: {shown}", file=sys.stderr)
    return 0
