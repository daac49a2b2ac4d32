"""``edgerun eval guard``: the command guards on requests and responses from held-out templates of
the constitution (templates, role-play and split wrappers and response frames the training never
saw; see :mod:`edgerun.pipelines.language.guard_data`).

Reported: the input guard's recall on forbidden requests and false positives on benign ones (also
per obfuscation); the output guard's halt rate on unsafe responses (halted before token N, tokens
of the LM named, else words), false halts on safe ones; and, with an LM, the time the output guard
adds to generation, measured in the same streaming loop as the generation it guards.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgerun.engines.language import LanguageModel, load_language_model
from edgerun.export.language_export import exported_language_model
from edgerun.pipelines.language.guard import Guards
from edgerun.pipelines.language.guard_data import OBFUSCATIONS, Response, requests, responses

OVERHEAD_PROMPT = "An operator tells the warehouse robot: \"{request}\"\nThe robot answers in one sentence:"


def pieces(text: str, model: LanguageModel | None) -> list[str]:
    """``text`` as the LM would stream it, token by token (word by word without an LM)."""
    if model is None:
        words = text.split(" ")
        return [w + " " for w in words[:-1]] + words[-1:]
    ids, shown, out = model.encode(text), "", []
    for k in range(1, len(ids) + 1):
        decoded = model.decode(ids[:k])
        out.append(decoded[len(shown):])
        shown = decoded
    return out


def stream_halt(guards: Guards, response: Response, model: LanguageModel | None) -> int | None:
    """The token at which the output guard halts ``response`` (None: never)."""
    stream = guards.stream()
    for piece in pieces(response.text, model):
        if stream.feed(piece):
            return stream.halted_at
    return stream.pieces if stream.finish() else None


def overhead(guards: Guards, model: LanguageModel, prompts: list[str], tokens: int) -> dict[str, float]:
    """Generation with the output guard fed every token: the guard's share of the time."""
    guard_s = total_s = 0.0
    generated = 0
    for prompt in prompts:
        stream = guards.stream()

        def feed(piece: str) -> None:
            nonlocal guard_s
            started = time.perf_counter()
            stream.feed(piece)
            guard_s += time.perf_counter() - started

        started = time.perf_counter()
        out = model.session(prompt).generate(tokens, on_text=feed)
        started_finish = time.perf_counter()
        stream.finish()
        guard_s += time.perf_counter() - started_finish
        total_s += time.perf_counter() - started
        generated += out.tokens
    return {"overhead_pct": 100.0 * guard_s / max(total_s - guard_s, 1e-9), "guard_ms_per_token": 1000 * guard_s / max(generated, 1),
            "generation_ms_per_token": 1000 * (total_s - guard_s) / max(generated, 1), "overhead_tokens": generated}


def eval_main(folder: Path, model_name: str | None, per_template: int, halt_before: int, overhead_prompts: int,
              json_path: str | None) -> int:
    try:
        guards = Guards.load(folder)
    except FileNotFoundError as exc:
        print(f"edgerun eval guard: {exc}", file=sys.stderr)
        return 2
    model = load_language_model(exported_language_model(model_name)) if model_name else None
    asked = requests(guards.constitution, "test", per_template, seed=1)
    written = responses(guards.constitution, asked, seed=1)
    results: dict[str, Any] = {"guards": str(folder), "constitution": guards.constitution.source, "model": model_name,
                               "split": "held-out templates, wrappers and response frames of the constitution",
                               "forbidden_requests": sum(r.forbidden for r in asked),
                               "benign_requests": sum(not r.forbidden for r in asked), "halt_before": halt_before}
    with tqdm(total=len(asked) + len(written), desc="[eval] guard", unit="text", file=sys.stderr) as bar:
        refused = []
        for request in asked:
            refused.append(not guards.check_input(request.text).allowed)
            bar.update(1)
        halts = []
        for response in written:
            halts.append(stream_halt(guards, response, model))
            bar.update(1)
    refused_a, forbidden = np.array(refused), np.array([r.forbidden for r in asked])
    results["input_recall"] = float(refused_a[forbidden].mean())
    results["input_false_positive_rate"] = float(refused_a[~forbidden].mean())
    results["input_by_obfuscation"] = {
        kind: {"recall": float(refused_a[forbidden & m].mean()), "false_positive_rate": float(refused_a[~forbidden & m].mean())}
        for kind in OBFUSCATIONS if (m := np.array([r.obfuscation == kind for r in asked])).any()}
    unsafe = [h for h, r in zip(halts, written) if r.unsafe_from is not None]
    safe = [h for h, r in zip(halts, written) if r.unsafe_from is None]
    results["output_halt_rate"] = float(np.mean([h is not None and h <= halt_before for h in unsafe]))
    results["output_false_halt_rate"] = float(np.mean([h is not None for h in safe]))
    results["unsafe_responses"], results["safe_responses"] = len(unsafe), len(safe)
    if model is not None:
        benign = [r for r in asked if not r.forbidden][:overhead_prompts]
        results.update(overhead(guards, model, [OVERHEAD_PROMPT.format(request=r.text) for r in benign], 48))
    print(f"input guard:  recall {results['input_recall']:.3f}, false positives {results['input_false_positive_rate']:.3f}")
    print(f"output guard: halted before token {halt_before} {results['output_halt_rate']:.3f}, "
          f"false halts {results['output_false_halt_rate']:.3f}")
    if "overhead_pct" in results:
        print(f"output guard overhead: {results['overhead_pct']:.1f} % of generation "
              f"({results['guard_ms_per_token']:.2f} ms per token against {results['generation_ms_per_token']:.1f} ms)")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n")
    return 0
