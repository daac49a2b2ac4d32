"""Reasoning traces for distillation (the s1 recipe, small): the target model thinks through the
*train* split's robot word problems by budget forcing, and each trace is kept with whether its
answer was right. Distillation fine-tunes the draft on the right ones.

The output is JSON Lines, one trace per line, appended and flushed as each is written: a run that
stops (Ctrl-C, a lost session) resumes where it stopped, skipping the tasks already there.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from edgerun.engines.language import LanguageModel, load_language_model
from edgerun.evaluation.language.budget_forcing import EXAMPLES, prompt
from edgerun.export.language_export import exported_language_model
from edgerun.pipelines.language.budget_forcing import Budget, budget_forced
from edgerun.pipelines.language.tasks import Task, parse_answer, task_set


@dataclass(frozen=True)
class Trace:
    family: str
    seed: int
    question: str
    thinking: str
    answer_text: str
    answer: int  # the task's
    correct: bool
    thinking_tokens: int
    forced_end: bool
    seconds: float


def done_tasks(path: Path) -> set[tuple[str, int]]:
    """The (family, seed) pairs already in ``path``; a torn last line (a killed run) is dropped."""
    if not path.is_file():
        return set()
    lines = path.read_text().splitlines()
    done = set()
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise ValueError(f"{path}: line {i + 1} is not JSON (only a torn last line is expected)") from None
            path.write_text("".join(f"{kept}\n" for kept in lines[:-1]))
            break
        done.add((record["family"], record["seed"]))
    return done


def collect_traces(model: LanguageModel, tasks: list[Task], out: Path, budget: int) -> tuple[int, int]:
    """Append a trace of each of ``tasks`` not yet in ``out`` → ``(new traces, right ones among them)``."""
    skip = {(e.family, e.seed) for e in EXAMPLES} | done_tasks(out)
    todo = [t for t in tasks if (t.family, t.seed) not in skip]
    out.parent.mkdir(parents=True, exist_ok=True)
    right = 0
    with open(out, "a") as stream, tqdm(todo, desc=f"[traces] {model.name}", unit="task", file=sys.stderr) as bar:
        for task in bar:
            forced = budget_forced(model, prompt(task), Budget(budget))
            correct = parse_answer(forced.answer) == task.answer
            right += correct
            trace = Trace(task.family, task.seed, task.question, forced.thinking, forced.answer, task.answer, correct,
                          forced.thinking_tokens, forced.forced_end, round(forced.seconds, 3))
            stream.write(json.dumps(asdict(trace)) + "\n")
            stream.flush()
            bar.set_postfix_str(f"right {right}/{bar.n + 1}")
    return len(todo), right


def collect(target: str, per_family: int, out: Path, budget: int) -> int:
    """``edgerun train language-traces``."""
    model = load_language_model(exported_language_model(target))
    new, right = collect_traces(model, task_set("train", per_family), out, budget)
    print(f"{out}: {len(done_tasks(out))} traces ({new} new this run, {right} of them right)", file=sys.stderr)
    return 0
