"""Distillation traces: one per train task, with its correctness, appended as written, and a run
that was killed resumes without redoing or losing a trace."""

from __future__ import annotations

import json

import pytest

from edgerun.engines.language import load_language_model
from edgerun.pipelines.language.tasks import task_set
from edgerun.training.language.traces import collect_traces, done_tasks


def test_traces_are_appended_with_correctness_and_a_killed_run_resumes(tiny_lm, tmp_path):
    model = load_language_model(tiny_lm[1])
    tasks = task_set("train", 2)[1:4]  # not the prompt's worked examples (distance 0, inventory 1): those are skipped
    out = tmp_path / "traces.jsonl"
    assert collect_traces(model, tasks, out, budget=8)[0] == 3
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["family"], r["seed"]) for r in records] == [(t.family, t.seed) for t in tasks]
    assert all(r["thinking_tokens"] <= 8 for r in records)
    assert all(isinstance(r["correct"], bool) and r["answer"] == t.answer for r, t in zip(records, tasks))
    assert collect_traces(model, tasks, out, budget=8) == (0, 0)  # all there: nothing redone
    out.write_text(out.read_text() + '{"family": "boxes", "se')  # a run killed mid-line
    assert done_tasks(out) == {(t.family, t.seed) for t in tasks} and out.read_text().endswith("}\n")
    out.write_text('not json\n' + out.read_text())
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        done_tasks(out)
