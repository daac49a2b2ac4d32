"""The generated robot word problems: reproducible per task, exact, worked step by step, and a test
split that never repeats a training question."""

from __future__ import annotations

import re

import pytest

from edgerun.pipelines.language.tasks import FAMILIES, make_task, parse_answer, task_set


def test_every_task_is_reproducible_from_its_family_and_seed_alone():
    assert make_task("battery", 7) == make_task("battery", 7)
    assert make_task("battery", 7) != make_task("battery", 8)
    assert task_set("train", 5)[7] == make_task(task_set("train", 5)[7].family, task_set("train", 5)[7].seed)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_worked_steps_compute_the_answer(family):
    for seed in range(50):
        task = make_task(family, seed)
        for step in task.steps:  # every step is "... a OP b = c ...": check it
            a, op, b, c = re.search(r"(\d+) ([-+*/]{1,2}) (\d+) = (\d+)", step).groups()
            result = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
                      "/": lambda x, y: x / y, "//": lambda x, y: x // y}[op](int(a), int(b))
            assert result == int(c), (task, step)
        assert parse_answer(task.steps[-1].split("=")[-1]) == task.answer >= 0


def test_the_test_split_never_repeats_a_training_question():
    train, test = task_set("train", 100), task_set("test", 100)
    assert {t.question for t in train}.isdisjoint(t.question for t in test)
    assert len(test) > 0.9 * len(FAMILIES) * 100 and {t.family for t in test} == set(FAMILIES)
    with pytest.raises(ValueError, match="split must be one of train, test"):
        task_set("validation", 3)


def test_answers_are_read_as_a_user_writes_them():
    assert parse_answer(" 1,252 parts") == 1252 and parse_answer("It is -3.") == -3 and parse_answer("none") is None
