"""``edgerun eval rsd``: reward-guided speculative decoding against its two ends, on held-out robot
word problems: the draft alone, the target alone, and RSD at each reward threshold δ.

Every method reads the same few-shot prompt as ``eval budget-forcing`` and thinks within the same
token budget; an answer is right when its first integer is the task's. Reported per method:
accuracy, tokens the target generated (its cost on a robot), tokens the draft generated, wall time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from edgerun.engines.language import load_language_model
from edgerun.evaluation.language.budget_forcing import prompt
from edgerun.export.language_export import exported_language_model
from edgerun.pipelines.language.budget_forcing import Budget, budget_forced
from edgerun.pipelines.language.process_reward import ProcessRewardModel
from edgerun.pipelines.language.reward_guided import RsdConfig, reward_guided
from edgerun.pipelines.language.tasks import parse_answer, task_set


def eval_main(draft_name: str, target_name: str, prm_folder: Path, thresholds: list[float], budget: int, per_family: int,
              json_path: str | None) -> int:
    if any(not 0.0 <= t <= 1.0 for t in thresholds):
        print("edgerun eval rsd: thresholds must lie in [0, 1]", file=sys.stderr)
        return 2
    try:
        prm = ProcessRewardModel.load(prm_folder)
    except FileNotFoundError as exc:
        print(f"edgerun eval rsd: {exc}", file=sys.stderr)
        return 2
    draft = load_language_model(exported_language_model(draft_name))
    target = load_language_model(exported_language_model(target_name))
    tasks = task_set("test", per_family)
    results: dict[str, Any] = {"draft": draft_name, "target": target_name, "prm": str(prm_folder), "budget": budget,
                               "tasks": len(tasks), "split": "test (seeds from 1,000,000; never a train question)"}
    with tqdm(total=len(tasks) * (2 + len(thresholds)), desc="[eval] rsd", unit="task", file=sys.stderr) as bar:
        for name, model in (("draft", draft), ("target", target)):
            bar.set_postfix_str(f"{name} only")
            runs = []
            for task in tasks:
                runs.append(budget_forced(model, prompt(task), Budget(budget)))
                bar.update(1)
            results[f"accuracy_{name}"] = sum(parse_answer(r.answer) == t.answer for r, t in zip(runs, tasks)) / len(tasks)
            results[f"{name}_tokens_{name}_only"] = sum(r.thinking_tokens + r.answer_tokens for r in runs)
            results[f"seconds_{name}_only"] = round(sum(r.seconds for r in runs), 2)
        results["rsd"] = {}
        for threshold in thresholds:
            bar.set_postfix_str(f"rsd δ={threshold}")
            config = RsdConfig(threshold=threshold, budget=budget)
            runs = []
            for task in tasks:
                runs.append(reward_guided(draft, target, prm, task.question, prompt(task), config))
                bar.update(1)
            steps = sum(len(r.steps) for r in runs)
            results["rsd"][str(threshold)] = {
                "accuracy": sum(parse_answer(r.answer) == t.answer for r, t in zip(runs, tasks)) / len(tasks),
                "target_tokens": sum(r.target_tokens for r in runs), "draft_tokens": sum(r.draft_tokens for r in runs),
                "seconds": round(sum(r.seconds for r in runs), 2),
                "target_step_fraction": sum(r.target_steps for r in runs) / max(steps, 1),
            }
    print(f"{'method':14s} {'accuracy':>8s} {'target tok':>10s} {'seconds':>8s}")
    print(f"{'draft only':14s} {results['accuracy_draft']:8.2f} {0:10d} {results['seconds_draft_only']:8.1f}")
    print(f"{'target only':14s} {results['accuracy_target']:8.2f} {results['target_tokens_target_only']:10d} "
          f"{results['seconds_target_only']:8.1f}")
    for threshold, r in results["rsd"].items():
        print(f"{'rsd δ=' + threshold:14s} {r['accuracy']:8.2f} {r['target_tokens']:10d} {r['seconds']:8.1f}")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n")
    return 0
