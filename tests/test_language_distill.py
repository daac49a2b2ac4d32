"""Distillation on the tiny LM: a LoRA adapter trained on the right traces only (loss on the
completion), resumable, merged into the base weights and built into an engine."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from language_fixtures import trace

from edgerun.engines.language import load_language_model
from edgerun.export.language_export import export_hf_folder, merge_adapter
from edgerun.evaluation.language.budget_forcing import EXAMPLES, question_prompt
from edgerun.pipelines.language.tasks import parse_answer, task_set
from edgerun.training.language.distill import ADAPTER_MANIFEST, DistillConfig, distill, examples, worked_examples


def write_traces(path, n: int) -> None:
    rng = random.Random(7)
    with open(path, "w") as stream:
        for i in range(n):
            text = trace(rng)
            question, rest = text.split("\nThinking:\n")
            thinking, answer = rest.split("</think>\nFinal Answer: ")
            stream.write(json.dumps({"family": "add", "seed": i, "question": question[3:], "thinking": thinking,
                                     "answer_text": answer.strip(), "answer": int(answer), "correct": i % 4 != 0,
                                     "thinking_tokens": 10, "forced_end": False, "seconds": 0.1}) + "\n")


def test_only_right_traces_become_examples_in_the_drafts_format(tmp_path):
    write_traces(tmp_path / "t.jsonl", 8)
    pairs = examples(tmp_path / "t.jsonl")
    assert len(pairs) == 6  # seeds 0 and 4 were wrong
    prompt, completion = pairs[0]
    assert prompt.endswith("\nThinking:\n") and "Q: " in prompt
    assert completion.endswith("</think>\nFinal Answer: " + completion.rsplit(" ", 1)[1]) and completion.endswith("\n")
    question = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[1])["question"]
    assert prompt == question_prompt(question) + "Thinking:\n"  # what the draft is asked at evaluation


def test_worked_solutions_are_right_and_leave_out_the_prompts_own_examples():
    worked = worked_examples(3)
    tasks = [t for t in task_set("train", 3) if t not in EXAMPLES]
    assert len(worked) == len(tasks) == 6 * 3 - 2
    for (prompt, completion), task in zip(worked, tasks):
        assert prompt == question_prompt(task.question) + "Thinking:\n"
        assert parse_answer(completion.rsplit("Final Answer:", 1)[1]) == task.answer


def test_a_lora_adapter_trains_resumes_merges_and_builds(tiny_lm, tmp_path):
    hf, _ = tiny_lm
    traces, run = tmp_path / "t.jsonl", tmp_path / "run"
    write_traces(traces, 24)  # 18 right
    config = DistillConfig(rank=4, alpha=8, epochs=1, batch=6, max_tokens=2048)
    adapter = distill(hf, traces, run, config, add_bos=False)
    manifest = json.loads((adapter / ADAPTER_MANIFEST).read_text())
    assert manifest["examples"] == 18 and manifest["steps"] == 3 and (adapter / "adapter_model.safetensors").is_file()
    resumed = distill(hf, traces, run, DistillConfig(rank=4, alpha=8, epochs=2, batch=6, max_tokens=2048), add_bos=False, resume=True)
    assert len(json.loads((run / "loss.json").read_text())) == 6  # 3 more steps, not 6 from scratch
    merged = merge_adapter(hf, resumed, tmp_path / "merged")
    base, adapted = load_language_model(hf, "transformers"), load_language_model(merged, "transformers")
    assert not np.allclose(base.session("Q: 3 + 4 = ?\n")._logits.numpy(), adapted.session("Q: 3 + 4 = ?\n")._logits.numpy())
    engine = load_language_model(export_hf_folder(merged, tmp_path / "engine", "tiny-distilled", "1" * 64, "fp32"))
    assert engine.complete("Q: 3 + 4 = ?\nThinking:\n", 8).tokens == 8


def test_no_right_trace_is_a_clear_error(tiny_lm, tmp_path):
    (tmp_path / "t.jsonl").write_text(json.dumps({"question": "x", "thinking": "y", "answer": 1, "correct": False}) + "\n")
    with pytest.raises(ValueError, match="no right traces"):
        distill(tiny_lm[0], tmp_path / "t.jsonl", tmp_path / "run", DistillConfig(), add_bos=False)
