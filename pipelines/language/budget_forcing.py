"""Budget forcing (s1, arXiv 2501.19393): a host loop around plain generation that bounds how long
a model thinks, so its latency is bounded too.

* **Maximum**: when thinking reaches ``budget`` tokens, the end-of-thinking delimiter and
  "Final Answer:" are appended, so the model must answer now.
* **Minimum**: when the model ends its thinking before ``min_tokens``, the delimiter is taken back
  out of the sequence and "Wait" appended, so it goes on thinking.

Delimiters are text (none of the small models has thinking tokens). Works with any
:class:`edgerun.engines.language.LanguageModel`; the KV cache carries over every append.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from edgerun.engines.language import LanguageModel

THINK_START = "Thinking:\n"
THINK_END = "</think>"
ANSWER_START = "\nFinal Answer:"
ANSWER_MARK = ANSWER_START.strip()
WAIT = "\nWait,"


@dataclass(frozen=True)
class Budget:
    """``budget`` thinking tokens at most (``None``: unbounded: the model decides), ``min_tokens`` at
    least, then at most ``answer_tokens`` for the answer (one line)."""

    budget: int | None
    min_tokens: int = 0
    answer_tokens: int = 24
    max_waits: int = 8  # give up on "Wait" after this many (a model that insists it is done)

    def __post_init__(self) -> None:
        if self.budget is not None and self.budget < 1:
            raise ValueError(f"a thinking budget must be at least 1 token, got {self.budget}")
        if self.min_tokens < 0 or (self.budget is not None and self.min_tokens > self.budget):
            raise ValueError(f"min_tokens must lie in [0, budget], got {self.min_tokens} with budget {self.budget}")


@dataclass(frozen=True)
class Forced:
    """One budget-forced answer: the thinking and answer text, the thinking tokens generated (the
    appended "Wait"s included), how many times it was told to wait, whether its end was forced."""

    thinking: str
    answer: str
    thinking_tokens: int
    waits: int
    forced_end: bool
    seconds: float
    answer_tokens: int = 0
    halted: bool = False  # the on_text callback stopped it (a streaming guard): the answer is empty


def budget_forced(model: LanguageModel, question: str, budget: Budget, max_length: int | None = None,
                  on_text: Callable[[str], bool | None] | None = None,
                  answer_schema: Mapping[str, Any] | None = None) -> Forced:
    """Think about ``question`` within ``budget``, then answer. The prompt is ``question`` followed by
    :data:`THINK_START`; thinking ends at :data:`THINK_END`, the answer follows :data:`ANSWER_START`.

    ``on_text`` sees every piece of text the model writes (thinking and answer, not the delimiters
    the loop appends); when it returns True the generation stops there (``halted``). With
    ``answer_schema`` the answer is JSON of that schema: it is generated in a second session whose
    prompt is the first one's text so far and a space (the constrained JSON starts with its brace),
    constrained by the schema (a session's constraint holds from its first token, and thinking is
    free text); the schema, not a newline, ends it."""
    started = time.perf_counter()
    session = model.session(question + THINK_START, max_length=max_length)
    thinking, used, waits = "", 0, 0
    ended_by: str | None = None  # the delimiter the model wrote and kept; None: cut off, or it ended
    while True:
        left = (budget.budget - used) if budget.budget is not None else session.max_length
        if left <= 0:
            break
        # a model that skips the delimiter and starts answering has ended its thinking too
        step = session.generate(left, stop=(THINK_END, ANSWER_MARK), on_text=on_text)
        thinking += step.text
        used += step.tokens
        if step.reason == "halted":
            return Forced(thinking, "", used, waits, False, time.perf_counter() - started, halted=True)
        if step.reason == "stop" and used < budget.min_tokens and waits < budget.max_waits:
            session.take_back_stop(step)  # below the minimum: "Wait" replaces the end of thinking
            session.append(WAIT)
            thinking += WAIT
            used += len(model.encode(WAIT))
            waits += 1
            continue
        ended_by = step.stop
        break
    forced_end = ended_by is None and (budget.budget is not None and used >= budget.budget or step.reason == "max_length")
    # what the model wrote stays as it wrote it; the rest of the delimiters is appended
    closing = {THINK_END: THINK_END + ANSWER_START, ANSWER_MARK: ANSWER_MARK}.get(ended_by, "\n" + THINK_END + ANSWER_START)
    if answer_schema is None:
        session.append(closing[len(ended_by or ""):])
        answer = session.generate(budget.answer_tokens, stop=("\n",), on_text=on_text)
    else:
        answer = model.complete(question + THINK_START + thinking + closing + " ", budget.answer_tokens, on_text=on_text,
                                json_schema=answer_schema)
    return Forced(thinking, answer.text.strip(), used, waits, forced_end, time.perf_counter() - started, answer.tokens,
                  halted=answer.reason == "halted")


def control(thinking_tokens: Sequence[int], budget: int | None) -> float:
    """s1's Control: the fraction of runs whose thinking stayed within the budget."""
    if budget is None or not thinking_tokens:
        return 1.0
    return sum(t <= budget for t in thinking_tokens) / len(thinking_tokens)


def scaling(points: Sequence[tuple[float, float]]) -> float:
    """s1's Scaling: the mean slope of accuracy against thinking tokens over every pair of
    ``(mean thinking tokens, accuracy)`` points (accuracy per token)."""
    pairs = [(a, b) for a, b in itertools.combinations(sorted(points), 2) if b[0] > a[0]]
    if not pairs:
        return 0.0
    return sum((b[1] - a[1]) / (b[0] - a[0]) for a, b in pairs) / len(pairs)
