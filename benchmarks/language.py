"""``edgerun bench language``: tokens/s and time to first token of the language engine
(onnxruntime-genai, int4) against transformers eager (fp32, the same weights de-quantised from the
same GGUF), in one run, on the same prompts, greedy, the end-of-sequence token banned so that both
write the full count.

The ratio is what the engine buys on this machine: tokens/s on the engine over tokens/s on
transformers. Bar (issue 23): ≥ 5 for Gemma 3 270M.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from edgerun.benchmarks.engines import machine_info
from edgerun.engines.language import LanguageModel, TransformersModel, load_language_model
from edgerun.export.language_export import LANGUAGE_MODELS, exported_language_model, gguf_to_safetensors, source_gguf

PROMPTS = (
    "A robot drives 3 metres per second for 12 seconds, then 2 metres per second for 5 seconds. How far",
    "The warehouse has 4 aisles with 18 shelves each. A robot checks 6 shelves a minute. Write a plan:",
    "Battery at 80 percent; each lap uses 7 percent. Explain step by step how many laps remain:",
)


def measure(lm: LanguageModel, prompts: tuple[str, ...], tokens: int) -> dict[str, Any]:
    """Mean tokens/s over the generated tokens after the first, and the mean time to the first token
    (the prompt's prefill included), with ``lm``'s end-of-sequence banned."""
    ban = {int(i): -1e9 for i in getattr(lm, "eos_ids", ())}
    lm.complete(prompts[0], 4, logit_bias=ban)  # warm-up: allocations, caches
    rates, firsts, texts = [], [], []
    for prompt in prompts:
        started = time.perf_counter()
        session = lm.session(prompt, max_length=len(lm.encode(prompt)) + tokens + 8, logit_bias=ban)
        out = session.generate(tokens)
        total = time.perf_counter() - started
        first = total - out.seconds + (out.first_token_s or 0.0)
        rates.append((out.tokens - 1) / max(total - first, 1e-9))
        firsts.append(first)
        texts.append(out.text)
    return {"tokens_per_s": sum(rates) / len(rates), "first_token_ms": 1e3 * sum(firsts) / len(firsts),
            "tokens": tokens, "prompts": len(prompts), "texts": texts}


def main(quick: bool = False, json_path: str | None = None) -> int:
    tokens, prompts = (32, PROMPTS[:1]) if quick else (128, PROMPTS)
    results = []
    for name in LANGUAGE_MODELS:
        engine = load_language_model(exported_language_model(name))
        row = {"model": name, "backend": engine.backend, **measure(engine, prompts, tokens)}
        del engine
        with tempfile.TemporaryDirectory(prefix="edgerun-bench-") as work:
            print(f"[bench] {name}: de-quantising the GGUF for the transformers reference", flush=True)
            folder = Path(work) / "hf"
            gguf_to_safetensors(source_gguf(LANGUAGE_MODELS[name], Path(work)), folder)
            reference = TransformersModel(folder, add_bos=LANGUAGE_MODELS[name].add_bos)
            base = {"model": name, "backend": reference.backend, **measure(reference, prompts, tokens)}
        row["ratio_vs_transformers"] = row["tokens_per_s"] / base["tokens_per_s"]
        row["same_text_as_transformers"] = sum(a == b for a, b in zip(row["texts"], base["texts"]))
        base["ratio_vs_transformers"] = 1.0
        results += [base, row]
    print(f"{'model':14s} {'backend':18s} {'tokens/s':>9s} {'first token':>12s} {'ratio':>6s}")
    for r in results:
        print(f"{r['model']:14s} {r['backend']:18s} {r['tokens_per_s']:9.1f} {r['first_token_ms']:9.0f} ms "
              f"{r['ratio_vs_transformers']:6.2f}")
    if json_path:
        Path(json_path).write_text(json.dumps({"machine": machine_info(), "quick": quick, "results": results}, indent=2) + "\n")
    return 0
