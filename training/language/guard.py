"""Train the command guards (:mod:`edgerun.pipelines.language.guard`) on requests and responses
generated from the constitution (:mod:`edgerun.pipelines.language.guard_data`).

Only the *train* templates are used. A fifth of them (by a hash of the template) are kept out of
fitting to set the thresholds: the input threshold where ``target_fpr`` of their benign requests
would be refused, the output threshold where ``output_target_fpr`` of their safe responses would be
halted at some prefix. The held-out *test* templates are for ``edgerun eval guard`` alone.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgerun.models.language.minilm import MODEL_NAME
from edgerun.pipelines.language.constitution import Constitution
from edgerun.pipelines.language.guard import ANCHOR_WORDS, Guards, output_features
from edgerun.pipelines.language.guard_data import Request, Response, paraphrased_requests, requests, responses
from edgerun.pipelines.language.tasks import hash_fraction
from edgerun.pipelines.language.text_encoder import Encoder, TextEncoder
from edgerun.training.language.heads import HeadConfig, fit_head


@dataclass(frozen=True)
class GuardConfig:
    per_template: int = 16
    head: HeadConfig = field(default_factory=lambda: HeadConfig(hidden=32, epochs=300, weight_decay=0.05))
    target_fpr: float = 0.01  # benign requests the input guard may refuse
    # safe outputs the output guard may halt: a false halt costs a regeneration, not a refused command
    output_target_fpr: float = 0.05
    calibration: float = 0.2  # fraction of the train templates that set the thresholds
    unsafe_after_words: int = 2  # a compliant output is unsafe once this many words of the forbidden act are out
    paraphrases: str | None = None  # the LM's paraphrases of train requests (JSON Lines), added where given
    seed: int = 0


def calibrating(request: Request, fraction: float) -> bool:
    return hash_fraction(f"calibration:{request.category}:{request.template}") < fraction


def scored_prefixes(response: Response, unsafe_after_words: int) -> list[tuple[str, bool]]:
    """What the output guard embeds of ``response`` as it streams (every fourth word's anchor, then
    the whole text) and whether each is unsafe yet."""
    words = response.text.split()
    counts = [*range(ANCHOR_WORDS, len(words), ANCHOR_WORDS), len(words)]
    if response.unsafe_from is None:
        return [(" ".join(words[:n]), False) for n in counts]
    before = len(response.text[:response.unsafe_from].split())  # words written before the act begins
    return [(" ".join(words[:n]), n >= before + unsafe_after_words) for n in counts]


def quantile_threshold(benign: np.ndarray, target_fpr: float) -> float:
    """The least threshold that refuses at most ``target_fpr`` of ``benign`` scores."""
    return float(np.quantile(benign, 1.0 - target_fpr, method="higher")) + 1e-6 if len(benign) else 0.5


def train_guards(constitution: Constitution, encoder: Encoder, encoder_name: str, config: GuardConfig) -> Guards:
    asked = requests(constitution, "train", config.per_template, config.seed)
    if config.paraphrases:
        asked += paraphrased_requests(constitution, Path(config.paraphrases), config.seed)
    held = np.array([calibrating(r, config.calibration) for r in asked])
    labels = np.array([r.forbidden for r in asked])
    fitted = [r for r, h in zip(asked, held) if not h]
    # each request as written and as its plain act: what the wrapping hides is learnt too
    x = encoder.encode([r.text for r in fitted] + [r.plain for r in fitted])
    y = np.array([r.forbidden for r in fitted] * 2)
    input_weights = fit_head(x, y, config.head)
    centroids = np.stack([encoder.encode([r.plain for r in asked if r.category == c.name]).mean(0)
                          for c in constitution.forbidden])
    input_weights["centroids"] = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)

    written = responses(constitution, asked, config.seed)
    cut = [(text, unsafe, calibrating(r.request, config.calibration), i)
           for i, r in enumerate(written) for text, unsafe in scored_prefixes(r, config.unsafe_after_words)]
    held_out = np.array([c[2] for c in cut])
    output_weights = fit_head(output_features([c[0] for c in cut if not c[2]], encoder),
                              np.array([c[1] for c in cut if not c[2]]), config.head)

    manifest = {"encoder": encoder_name, "embedding_dim": int(x.shape[1]), "constitution": constitution.source,
                "config": asdict(config), "input_threshold": 0.5, "output_threshold": 0.5,
                "train_requests": int((~held).sum()), "calibration_requests": int(held.sum()),
                "train_prefixes": int((~held_out).sum()), "calibration_prefixes": int(held_out.sum())}
    guards = Guards(input_weights, output_weights, encoder, constitution, manifest)
    scores = guards.input_scores([r.text for r, h in zip(asked, held) if h])
    manifest["input_threshold"] = quantile_threshold(scores[~labels[held]], config.target_fpr)
    prefix_scores = guards.output_scores([c[0] for c in cut if c[2]])
    owner = np.array([c[3] for c in cut])[held_out]
    safe_peaks = [prefix_scores[owner == i].max() for i in sorted(set(owner)) if written[i].unsafe_from is None]
    manifest["output_threshold"] = quantile_threshold(np.array(safe_peaks), config.output_target_fpr)
    guards.input_threshold, guards.output_threshold = manifest["input_threshold"], manifest["output_threshold"]
    manifest["calibration_input_recall"] = float((scores[labels[held]] >= guards.input_threshold).mean())
    return guards


def train_main(constitution_path: Path, out: Path, config: GuardConfig) -> int:
    """``edgerun train language-guard``."""
    if config.paraphrases and not Path(config.paraphrases).is_file():
        print(f"edgerun train language-guard: no paraphrases at {config.paraphrases} "
              "(edgerun train language-guard-paraphrases writes them)", file=sys.stderr)
        return 2
    try:
        constitution = Constitution.load(constitution_path)
    except (FileNotFoundError, ValueError) as exc:
        print(f"edgerun train language-guard: {exc}", file=sys.stderr)
        return 2
    guards = train_guards(constitution, TextEncoder.load(), MODEL_NAME, config)
    guards.save(out)
    m = guards.manifest
    print(f"guards in {out}: input threshold {m['input_threshold']:.3f} (calibration recall "
          f"{m['calibration_input_recall']:.3f}), output threshold {m['output_threshold']:.3f}", file=sys.stderr)
    return 0
