"""``edgerun eval command-goals``: the language node's path (:func:`edgerun.pipelines.language.goals.command_goal`)
on operator commands it never read: goal commands worded with held-out templates and phrases
(:mod:`edgerun.pipelines.language.goal_commands`), and allowed commands that name no place (the
constitution's held-out manipulation and status templates), which must get no goal.

Reported: ``goal_accuracy`` (the goal named is the commanded place), ``no_place_rate`` (commands
with no place answered with none; refused by a guard counts apart), the guards' refusals of these
allowed commands, and seconds per command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgerun.engines.language import load_language_model
from edgerun.export.language_export import exported_language_model
from edgerun.pipelines.language.goal_commands import goal_commands
from edgerun.pipelines.language.goals import GoalConfig, command_goal
from edgerun.pipelines.language.guard import DEFAULT_GUARDS, Guards
from edgerun.pipelines.language.guard_data import requests

NO_PLACE_CATEGORIES = ("manipulation", "status")


def evaluate(model_name: str, guards: Guards, count: int, config: GoalConfig) -> dict[str, Any]:
    model = load_language_model(exported_language_model(model_name))
    commands = goal_commands("test", count, seed=0)
    others = [r.text for r in requests(guards.constitution, "test", 1, seed=2)
              if r.category in NO_PLACE_CATEGORIES and r.obfuscation == "plain"][:count]
    rows = []
    for text, want in tqdm([(c.text, c.goal) for c in commands] + [(t, None) for t in others],
                           desc="[eval] command goals", unit="command", file=sys.stderr):
        outcome = command_goal(model, guards, text, config)
        rows.append({"command": text, "want": want, "stage": outcome.stage, "goal": outcome.goal,
                     "seconds": outcome.seconds, "reason": outcome.reason})
    placed, unplaced = rows[:len(commands)], rows[len(commands):]
    return {"model": model_name, "budget": config.budget, "shots": config.shots,
            "split": "goal commands: held-out templates and phrases; no-place commands: held-out manipulation and "
                     "status templates of the constitution",
            "goal_commands": len(placed), "no_place_commands": len(unplaced),
            "goal_accuracy": float(np.mean([r["goal"] == r["want"] for r in placed])),
            "goal_refused_by_guard": float(np.mean([r["stage"] in ("input_guard", "output_guard") for r in placed])),
            "no_place_rate": float(np.mean([r["stage"] == "no_place" for r in unplaced])) if unplaced else None,
            "no_place_refused_by_guard": float(np.mean([r["stage"] in ("input_guard", "output_guard") for r in unplaced]))
            if unplaced else None,
            "seconds_p50": float(np.median([r["seconds"] for r in rows if r["stage"] not in ("input_guard",)])),
            "rows": rows}


def eval_main(model_name: str, guards_folder: str | None, count: int, budget: int, json_path: str | None) -> int:
    try:
        guards = Guards.load(Path(guards_folder) if guards_folder else DEFAULT_GUARDS)
    except FileNotFoundError as exc:
        print(f"edgerun eval command-goals: {exc}", file=sys.stderr)
        return 2
    result = evaluate(model_name, guards, count, GoalConfig(budget=budget))
    print(f"goal commands: right goal {result['goal_accuracy']:.2f} of {result['goal_commands']} "
          f"(refused by a guard {result['goal_refused_by_guard']:.2f}); commands with no place: no goal "
          f"{result['no_place_rate']:.2f} of {result['no_place_commands']} (refused by a guard "
          f"{result['no_place_refused_by_guard']:.2f}); {result['seconds_p50']:.1f} s per command (p50)")
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    return 0
