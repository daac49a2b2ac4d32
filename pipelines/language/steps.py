"""Reasoning steps of the robot word problems: where a step ends, what it computes, and whether it
is right.

A step is one sentence of thinking (the worked solutions state one computation per sentence; RSD's
paper splits on blank lines, which these short traces never write). A step's arithmetic is read
from its equations (``a op b [op c …] = r``); its correctness label comes free from the verifiable
task: every result it states must hold arithmetically and be one of the task's own intermediate
values, and every other number must be given by the question or an earlier step.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass

from edgerun.pipelines.language.tasks import Task, parse_answer

STEP_ENDS = (". ", ".\n")  # a sentence end; "2.5" never matches
NUMBER = r"\d[\d,]*(?:\.\d+)?"
EQUATION = re.compile(rf"((?:{NUMBER}\s*(?://|[-+*/×÷x])\s*)+{NUMBER})\s*=\s*(-?{NUMBER})")
NUMBERS = re.compile(NUMBER)
CONSTANTS = frozenset({1, 2, 60, 100})  # units a step may bring in (minutes per hour, percent)
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.FloorDiv: operator.floordiv}


@dataclass(frozen=True)
class Equation:
    operands: tuple[float, ...]
    value: float | None  # what the left side evaluates to (None: not computable, e.g. a division by 0)
    result: float  # what the step says it is

    @property
    def holds(self) -> bool:
        """The stated result is the left side's value: exactly, to two decimals, or as the whole part
        of a division (word problems ask for whole laps and trips)."""
        if self.value is None:
            return False
        return math.isclose(self.value, self.result, rel_tol=1e-3, abs_tol=0.01) or (
            self.value >= 0 and math.floor(self.value) == self.result)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not arithmetic")


def equations(step: str) -> list[Equation]:
    """Every ``a op b … = r`` in ``step``, evaluated with the usual precedence."""
    found = []
    for left, right in EQUATION.findall(step):
        expression = left.replace(",", "").replace("×", "*").replace("÷", "/").replace("x", "*")
        try:
            value: float | None = _evaluate(ast.parse(expression, mode="eval").body)
        except (ValueError, SyntaxError, ZeroDivisionError):
            value = None
        found.append(Equation(tuple(_number(n) for n in NUMBERS.findall(left)), value, _number(right)))
    return found


def numbers(text: str) -> list[float]:
    return [_number(n) for n in NUMBERS.findall(text)]


def task_values(task: Task) -> set[float]:
    """The task's intermediate values and answer: what a right step may compute."""
    return {e.result for step in task.steps for e in equations(step)} | {float(task.answer)}


def split_steps(thinking: str) -> list[str]:
    """``thinking`` cut into sentences (each keeps its full stop), blank ones dropped."""
    pieces = re.split(r"(?<=\.)\s+", thinking.strip())
    return [p for p in pieces if p]


def step_correct(task: Task, previous: list[str], step: str) -> bool:
    """The label: every equation holds and computes one of the task's values, and every number
    outside an equation is the question's, an earlier step's or one of the task's values."""
    values = task_values(task)
    stated = equations(step)
    if any(not e.holds or e.result not in values for e in stated):
        return False
    known = set(numbers(task.question)) | {n for p in previous for n in numbers(p)} | values | CONSTANTS
    inside = {n for e in stated for n in (*e.operands, e.result)}
    return all(n in known for n in numbers(step) if n not in inside)


def answer_correct(task: Task, answer: str) -> bool:
    return parse_answer(answer) == task.answer
