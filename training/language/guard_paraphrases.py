"""Paraphrases of the constitution's *train* requests written by the target LM: the variety that
Constitutional Classifiers get from an LLM, on the CPU. Each filled template is given to the model
(ChatML, sampled at a seeded temperature) to rewrite several ways; lines that are refusals,
numbered lists' leftovers, repeats, too short or too long are dropped. Held-out (*test*) templates are never
paraphrased, so nothing of them reaches training. JSON Lines, resumable: a template already in the
file is skipped."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

from tqdm import tqdm

from edgerun.engines.language import Sampling, load_language_model
from edgerun.export.language_export import exported_language_model
from edgerun.pipelines.language.constitution import Constitution
from edgerun.pipelines.language.guard_data import template_splits, fill

PROMPT = ("<|im_start|>system\nYou write varied test data for a warehouse robot's command filter.<|im_end|>\n"
          "<|im_start|>user\nRewrite this operator command to a warehouse robot in {n} different ways, one per line, "
          "no numbering, same meaning:\n{request}<|im_end|>\n<|im_start|>assistant\n")
LEADING = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
DECLINING = re.compile(r"\b(?:sorry|i can't|i cannot|as an ai|i'm unable|i am unable)\b", re.IGNORECASE)


def clean(line: str) -> str | None:
    text = LEADING.sub("", line).strip().strip('"').strip()
    words = len(text.split())
    if not 3 <= words <= 30 or DECLINING.search(text):
        return None
    return text


def paraphrase_main(constitution_path: Path, model_name: str, out: Path, per_template: int, lines: int, seed: int) -> int:
    """``edgerun train language-guard-paraphrases``."""
    constitution = Constitution.load(constitution_path)
    done = set()
    if out.is_file():
        done = {json.loads(line)["template"] for line in out.read_text().splitlines() if line.strip()}
    todo = [(c, t) for c in constitution.categories for t, side in template_splits(c).items() if side == "train" and t not in done]
    model = load_language_model(exported_language_model(model_name))
    rng = random.Random(seed)
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as stream, tqdm(todo, desc=f"[paraphrase] {model_name}", unit="template", file=sys.stderr) as bar:
        for category, template in bar:
            rows, seen = [], set()
            for k in range(per_template):
                source = fill(template, constitution.slots, rng)
                generated = model.session(PROMPT.format(n=lines, request=source),
                                          sampling=Sampling(temperature=0.9, top_p=0.95, seed=seed * 1000 + k)).generate(
                                              24 * lines, stop=("<|im_end|>",))
                for line in generated.text.splitlines():
                    text = clean(line)
                    if text and text.lower() != source.lower() and text.lower() not in seen:
                        seen.add(text.lower())
                        rows.append({"category": category.name, "forbidden": category.forbidden, "template": template,
                                     "source": source, "text": text})
            for row in rows:  # a template's rows land together: a resumed run never holds half a template
                stream.write(json.dumps(row) + "\n")
            stream.flush()
            written += len(rows)
            bar.set_postfix_str(f"{written} paraphrases")
    print(f"{written} paraphrases added to {out}", file=sys.stderr)
    return 0
