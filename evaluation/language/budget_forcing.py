"""``edgerun eval budget-forcing``: s1's Control, Scaling and Performance on held-out robot word
problems, per model and thinking budget.

Every model gets the same few-shot prompt (two worked examples from the *train* split, then the
test question) and thinks within each budget by budget forcing; its answer is right when the first
integer of its answer line equals the task's. The test split never repeats a training question
(:mod:`edgerun.pipelines.language.tasks`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from edgerun.engines.language import LanguageModel, load_language_model
from edgerun.export.language_export import exported_language_model
from edgerun.pipelines.language.budget_forcing import (
    ANSWER_START,
    THINK_END,
    THINK_START,
    Budget,
    budget_forced,
    control,
    scaling,
)
from edgerun.pipelines.language.tasks import Task, make_task, parse_answer, task_set

INSTRUCTION = "Solve each robot problem. Think step by step, then give the final answer as a whole number.\n\n"
EXAMPLES = (make_task("distance", 0), make_task("inventory", 1))  # from the train split
DRAFT, DISTILLED = "gemma3-270m", "gemma3-270m-distilled"


def prompt(task: Task) -> str:
    """The few-shot prompt that ends where thinking begins (budget forcing appends :data:`THINK_START`)."""
    return question_prompt(task.question)


def question_prompt(question: str) -> str:
    shots = "".join(f"Q: {e.question}\n{THINK_START}{' '.join(e.steps)}{THINK_END}{ANSWER_START} {e.answer}\n\n"
                    for e in EXAMPLES)
    return f"{INSTRUCTION}{shots}Q: {question}\n"


def evaluate(model: LanguageModel, tasks: list[Task], budgets: list[int], progress: tqdm | None = None) -> dict[str, Any]:
    accuracy, control_by_budget, tokens, seconds = {}, {}, {}, {}
    for budget in budgets:
        runs = []
        for task in tasks:
            runs.append(budget_forced(model, prompt(task), Budget(budget)))
            if progress is not None:
                progress.update(1)
        right = [parse_answer(r.answer) == t.answer for r, t in zip(runs, tasks)]
        accuracy[budget] = sum(right) / len(tasks)
        control_by_budget[budget] = control([r.thinking_tokens for r in runs], budget)
        tokens[budget] = sum(r.thinking_tokens for r in runs) / len(runs)
        seconds[budget] = sum(r.seconds for r in runs) / len(runs)
    return {
        "accuracy": accuracy, "control": control_by_budget, "thinking_tokens": tokens, "seconds_per_task": seconds,
        "scaling": scaling([(tokens[b], accuracy[b]) for b in budgets]), "performance": max(accuracy.values()),
    }


def eval_main(models: list[str], budgets: list[int], per_family: int, json_path: str | None) -> int:
    if not budgets or min(budgets) < 1:
        print("edgerun eval budget-forcing: budgets must be positive token counts", file=sys.stderr)
        return 2
    tasks = task_set("test", per_family)
    results: dict[str, Any] = {"budgets": budgets, "tasks": len(tasks), "split": "test (seeds from 1,000,000; "
                               "questions equal to a train question removed)", "models": {}}
    with tqdm(total=len(models) * len(budgets) * len(tasks), desc="[eval] budget forcing", unit="task", file=sys.stderr) as bar:
        for name in models:
            bar.set_postfix_str(name)
            results["models"][name] = evaluate(load_language_model(exported_language_model(name)), tasks, budgets, bar)
    for key, name in (("accuracy_base_draft", DRAFT), ("accuracy_distilled_draft", DISTILLED)):
        results[key] = results["models"][name]["performance"] if name in results["models"] else None
    print(f"{'model':22s} " + " ".join(f"{b:>7d}" for b in budgets) + "   scaling  control")
    for name, r in results["models"].items():
        print(f"{name:22s} " + " ".join(f"{r['accuracy'][b]:7.2f}" for b in budgets)
              + f"  {r['scaling']:+.5f}  {min(r['control'].values()):.2f}")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n")
    return 0
