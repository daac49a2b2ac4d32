"""An operator's command → a planner goal, guarded: the input guard reads the command first; a
small LM thinks within a token budget (budget forcing) and answers JSON constrained to the goal
schema; the streaming output guard reads everything the LM writes and halts it when it turns
unsafe; the answer is checked against the schema before it becomes a goal.

The goal is a place in words (:data:`edgerun.envs.wall.ROOMS` × :data:`edgerun.envs.wall.SPOTS`):
the env turns it into a position (:meth:`edgerun.envs.wall.WallEnv.place`), since only the env
knows its layout and which room the robot is in.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema

from edgerun.engines.language import LanguageModel
from edgerun.envs.wall import ROOMS, SPOTS
from edgerun.pipelines.language.budget_forcing import ANSWER_START, THINK_END, THINK_START, Budget, budget_forced
from edgerun.pipelines.language.goal_commands import GoalCommand, goal_commands
from edgerun.pipelines.language.guard import Guards

PLACE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"room": {"enum": list(ROOMS)}, "spot": {"enum": list(SPOTS)}},
    "required": ["room", "spot"],
    "additionalProperties": False,
}
NO_PLACE = {"room": "none", "spot": "none"}
"""The answer to a command that names no place to go: no goal is better than an invented one. Its keys
are a place's (a small model under a schema picks the first key before it has read its own thinking)."""
GOAL_SCHEMA: dict[str, Any] = {"anyOf": [PLACE_SCHEMA, {"type": "object", "properties": {"room": {"const": "none"},
                                                                                        "spot": {"const": "none"}},
                                                        "required": ["room", "spot"], "additionalProperties": False}]}
PREAMBLE = ("A robot drives in two rooms, left and right, split by a wall with a door. Turn the operator's command "
            f"into a goal: the room ({', '.join(ROOMS)}) and the spot ({', '.join(SPOTS)}). North is top, south is "
            "bottom, west is left, east is right; the robot's own room is this, the room across the wall is other; "
            "a doorway or gap in the wall is the door. A command that names no place to go has no goal: "
            f"{json.dumps(NO_PLACE)}.\n\n")
NO_PLACE_EXAMPLE = ("What is your battery level?", "The command names no place to go.\n")
COMMAND = "Command: {command}\n"

Stage = Literal["goal", "input_guard", "output_guard", "schema", "no_place"]


def thinking(command: GoalCommand) -> str:
    """The reasoning a worked example shows (and the tests' tiny LM learns)."""
    return f"\"{command.room_phrase}\" is the {command.room} room. \"{command.spot_phrase}\" is the {command.spot} spot.\n"


def answer(goal: dict[str, str]) -> str:
    return json.dumps(goal)


def worked(command: GoalCommand) -> str:
    """A command with its thinking and answer, in the format budget forcing reads and writes."""
    return worked_text(command.text, thinking(command), command.goal)


def worked_text(command: str, reasoning: str, goal: dict[str, str]) -> str:
    return COMMAND.format(command=command) + THINK_START + reasoning + THINK_END + ANSWER_START + " " + answer(goal) + "\n"


@functools.cache
def examples(count: int) -> tuple[GoalCommand, ...]:
    """``count`` worked train-split commands for the prompt, each naming another room and spot (drawn
    once: every command's prompt shows the same)."""
    picked: list[GoalCommand] = []
    for command in goal_commands("train", 400, seed=1):
        if len(picked) < count and all(command.room != c.room and command.spot != c.spot for c in picked):
            picked.append(command)
    return tuple(picked)


def prompt(command: str, shots: int = 3, instructions: bool = True) -> str:
    """The LM's prompt for ``command``: the task's statement (``instructions``; a model fine-tuned on
    the task goes without), ``shots`` worked examples, the command."""
    shown = [worked(c) + "\n" for c in examples(shots)]
    if shots:  # and one command that names no place, second (not last: a small model copies the last answer)
        shown.insert(1, worked_text(*NO_PLACE_EXAMPLE, NO_PLACE) + "\n")
    return (PREAMBLE if instructions else "") + "".join(shown) + COMMAND.format(command=" ".join(command.split()))


@dataclass(frozen=True)
class Outcome:
    """What became of one command: a goal (``accepted``), or a refusal at ``stage`` with its reason
    (``no_place``: the LM found no place in it)."""

    command: str
    accepted: bool
    stage: Stage
    reason: str
    goal: dict[str, str] | None = None
    category: str | None = None  # the forbidden category, where a guard refused
    thinking: str = ""
    answer: str = ""
    thinking_tokens: int = 0
    input_score: float = 0.0  # the input guard's forbidden probability
    output_peak: float = 0.0  # the output guard's running maximum
    seconds: float = 0.0


@dataclass(frozen=True)
class GoalConfig:
    budget: int = 32  # thinking tokens at most (budget forcing)
    answer_tokens: int = 32
    shots: int = 3  # worked examples in the prompt
    instructions: bool = True  # state the task in the prompt (False: a model fine-tuned on it)


def command_goal(model: LanguageModel, guards: Guards, command: str, config: GoalConfig = GoalConfig()) -> Outcome:
    """The whole guarded path of one command (see the module's docstring)."""
    started = time.perf_counter()
    verdict = guards.check_input(command)
    if not verdict.allowed:
        return Outcome(command, False, "input_guard", verdict.reason, category=verdict.category,
                       input_score=verdict.score, seconds=time.perf_counter() - started)
    stream = guards.stream()
    forced = budget_forced(model, prompt(command, config.shots, config.instructions), Budget(config.budget, answer_tokens=config.answer_tokens),
                           on_text=stream.feed, answer_schema=GOAL_SCHEMA)
    common = dict(thinking=forced.thinking, answer=forced.answer, thinking_tokens=forced.thinking_tokens,
                  input_score=verdict.score)
    if forced.halted or stream.finish():
        category = guards.nearest_category(stream.text)
        return Outcome(command, False, "output_guard", f"halted: the answer turned unsafe ({category.replace('_', ' ')})",
                       category=category, output_peak=stream.peak, seconds=time.perf_counter() - started, **common)
    try:
        goal = json.loads(forced.answer)
        jsonschema.validate(goal, GOAL_SCHEMA)
    except (ValueError, jsonschema.ValidationError) as exc:
        reason = exc.message if isinstance(exc, jsonschema.ValidationError) else f"not JSON ({exc})"
        return Outcome(command, False, "schema", f"the answer is not a goal: {reason}", output_peak=stream.peak,
                       seconds=time.perf_counter() - started, **common)
    if goal == NO_PLACE:
        return Outcome(command, False, "no_place", "the command names no place to go", output_peak=stream.peak,
                       seconds=time.perf_counter() - started, **common)
    return Outcome(command, True, "goal", "", goal=goal, output_peak=stream.peak, seconds=time.perf_counter() - started,
                   **common)
