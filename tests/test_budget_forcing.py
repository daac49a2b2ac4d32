"""Budget forcing on a tiny model trained here: the maximum cuts thinking off and makes it answer,
the minimum makes it wait, and with more budget it answers more questions right (s1's Control and
Scaling, measured on questions it may not have seen in this order)."""

from __future__ import annotations

import random

import pytest
from language_fixtures import trace

from edgerun.engines.language import load_language_model
from edgerun.pipelines.language.budget_forcing import WAIT, Budget, budget_forced, control, scaling


@pytest.fixture(scope="module")
def lm(tiny_lm):
    return load_language_model(tiny_lm[1])


def questions(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        text = trace(rng)
        question, _, rest = text.partition("Thinking:\n")
        pairs.append((question, rest.rsplit("Final Answer:", 1)[1].strip()))
    return pairs


def test_the_maximum_ends_thinking_at_the_budget_and_the_model_answers(lm):
    forced = budget_forced(lm, "Q: 6 + 5 = ?\n", Budget(6))
    assert forced.forced_end and forced.thinking_tokens == 6 and forced.answer.isdigit()
    free = budget_forced(lm, "Q: 6 + 5 = ?\n", Budget(None))
    assert not free.forced_end and free.answer == "11" and free.thinking_tokens > 6


def test_the_minimum_suppresses_the_end_of_thinking_and_appends_wait(lm):
    free = budget_forced(lm, "Q: 2 + 1 = ?\n", Budget(None))
    assert free.thinking_tokens < 30 and free.waits == 0
    forced = budget_forced(lm, "Q: 2 + 1 = ?\n", Budget(80, min_tokens=30))
    assert forced.waits >= 1 and forced.thinking_tokens >= 30 and WAIT in forced.thinking
    assert "</think>" not in forced.thinking


def test_control_is_one_at_every_budget_and_accuracy_grows_with_the_budget(lm):
    held_out = questions(16, seed=99)
    budgets = [4, 12, 24, 48]
    points = []
    for budget in budgets:
        runs = [budget_forced(lm, q, Budget(budget)) for q, _ in held_out]
        assert control([r.thinking_tokens for r in runs], budget) == 1.0
        accuracy = sum(r.answer == a for r, (_, a) in zip(runs, held_out)) / len(held_out)
        points.append((sum(r.thinking_tokens for r in runs) / len(runs), accuracy))
    assert points[-1][1] >= 0.75 and points[0][1] <= 0.4, points  # enough budget: mostly right; cut short: mostly wrong
    assert scaling(points) > 0


def test_the_metrics_follow_their_definitions():
    assert control([3, 5, 9], 5) == pytest.approx(2 / 3) and control([100], None) == 1.0
    assert scaling([(10, 0.2), (20, 0.4), (40, 0.4)]) == pytest.approx((0.02 + 0.2 / 30 + 0.0) / 3)
    assert scaling([(10, 0.5)]) == 0.0
    with pytest.raises(ValueError, match="at least 1 token"):
        Budget(0)
    with pytest.raises(ValueError, match=r"min_tokens must lie in \[0, budget\]"):
        Budget(10, min_tokens=20)


def test_the_evaluation_reports_control_and_accuracy_per_budget_on_held_out_tasks(lm):
    from edgerun.evaluation.language.budget_forcing import evaluate, prompt
    from edgerun.pipelines.language.tasks import task_set

    tasks = task_set("test", 1)
    assert all(t.question in prompt(t) and prompt(t).count("Final Answer:") == 2 for t in tasks)  # two worked examples
    result = evaluate(lm, tasks, [8, 16])
    assert result["control"] == {8: 1.0, 16: 1.0}
    assert set(result["accuracy"]) == {8, 16} and all(0 <= a <= 1 for a in result["accuracy"].values())
    assert result["thinking_tokens"][8] <= 8 and result["performance"] == max(result["accuracy"].values())
