"""Verifiable reasoning tasks about robots: multi-step arithmetic word problems (distances, speeds,
battery, counts, time) with exact integer answers and their worked steps.

Every task is drawn from its own seeded generator (``Task.seed``), so a set does not depend on
order. Splits are disjoint by construction: ``train`` draws seeds from one range and ``test`` from
another, and the same numbers never make both a train and a test question (checked by
:func:`task_set`). The worked steps give every intermediate value, which is what step-level
rewards are trained on.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Callable, Literal

Split = Literal["train", "test"]
SPLIT_SEEDS = {"train": 0, "test": 1_000_000}  # test seeds start far from train's


def hash_fraction(key: str) -> float:
    """A fixed number in [0, 1) for ``key``: held-out sets chosen by it never depend on order or runs."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32


@dataclass(frozen=True)
class Task:
    family: str
    seed: int
    question: str
    steps: tuple[str, ...]  # worked solution, one computation per step
    answer: int


def _distance(rng: random.Random) -> tuple[str, tuple[str, ...], int]:
    v1, t1, v2, t2 = rng.randint(2, 9), rng.randint(3, 20), rng.randint(2, 9), rng.randint(3, 20)
    first, second = v1 * t1, v2 * t2
    question = (f"A robot drives at {v1} m/s for {t1} s, then at {v2} m/s for {t2} s. "
                "How many metres does it drive in all?")
    return question, (f"First part: {v1} * {t1} = {first} m.", f"Second part: {v2} * {t2} = {second} m.",
                      f"Total: {first} + {second} = {first + second} m."), first + second


def _battery(rng: random.Random) -> tuple[str, tuple[str, ...], int]:
    cost, reserve = rng.randint(3, 12), rng.choice((10, 15, 20, 25))
    laps_possible = rng.randint(2, 8)
    start = reserve + cost * laps_possible + rng.randint(0, cost - 1)
    usable = start - reserve
    question = (f"A robot's battery is at {start}%. Each lap uses {cost}%, and it must keep {reserve}% in reserve. "
                "How many full laps can it drive?")
    return question, (f"Usable charge: {start} - {reserve} = {usable}%.",
                      f"Full laps: {usable} // {cost} = {usable // cost}."), usable // cost


def _boxes(rng: random.Random) -> tuple[str, tuple[str, ...], int]:
    robots, per_trip, trips = rng.randint(2, 9), rng.randint(2, 12), rng.randint(2, 9)
    per_robot = per_trip * trips
    question = (f"{robots} robots each carry {per_trip} boxes per trip and make {trips} trips. "
                "How many boxes do they carry in all?")
    return question, (f"One robot: {per_trip} * {trips} = {per_robot} boxes.",
                      f"All robots: {robots} * {per_robot} = {robots * per_robot} boxes."), robots * per_robot


def _travel_time(rng: random.Random) -> tuple[str, tuple[str, ...], int]:
    speed, seconds = rng.randint(2, 9), rng.randint(5, 30)
    stops, pause = rng.randint(1, 5), rng.randint(2, 10)
    metres = speed * seconds
    times = "once" if stops == 1 else f"{stops} times"
    question = (f"A robot must cover {metres} metres at {speed} m/s and stops {times} for {pause} s each. "
                "How many seconds does the trip take?")
    return question, (f"Driving: {metres} / {speed} = {seconds} s.", f"Stops: {stops} * {pause} = {stops * pause} s.",
                      f"Total: {seconds} + {stops * pause} = {seconds + stops * pause} s."), seconds + stops * pause


def _inventory(rng: random.Random) -> tuple[str, tuple[str, ...], int]:
    bins, items = rng.randint(3, 12), rng.randint(4, 20)
    total = bins * items
    taken = rng.randint(1, total - 1)
    question = (f"A shelf holds {bins} bins of {items} parts each. A robot picks {taken} parts. "
                "How many parts are left on the shelf?")
    return question, (f"On the shelf: {bins} * {items} = {total} parts.",
                      f"Left: {total} - {taken} = {total - taken} parts."), total - taken


def _conveyor(rng: random.Random) -> tuple[str, tuple[str, ...], int]:
    per_minute, hours, rejected = rng.randint(3, 25), rng.randint(1, 4), rng.randint(0, 9)
    minutes = hours * 60
    made = per_minute * minutes
    question = (f"A robot cell makes {per_minute} parts per minute for {hours} hour{'s' if hours > 1 else ''}, "
                f"and {rejected} parts are rejected. "
                "How many good parts does it make?")
    return question, (f"Minutes: {hours} * 60 = {minutes}.", f"Parts: {per_minute} * {minutes} = {made}.",
                      f"Good parts: {made} - {rejected} = {made - rejected}."), made - rejected


FAMILIES: dict[str, Callable[[random.Random], tuple[str, tuple[str, ...], int]]] = {
    "distance": _distance, "battery": _battery, "boxes": _boxes,
    "travel_time": _travel_time, "inventory": _inventory, "conveyor": _conveyor,
}


def make_task(family: str, seed: int) -> Task:
    question, steps, answer = FAMILIES[family](random.Random(f"{family}:{seed}"))
    return Task(family, seed, question, steps, answer)


def task_set(split: Split, per_family: int) -> list[Task]:
    """``per_family`` tasks of every family for ``split``; a test set never repeats a train question."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {', '.join(SPLIT_SEEDS)}, got {split!r}")
    base = SPLIT_SEEDS[split]
    tasks = [make_task(family, base + i) for family in FAMILIES for i in range(per_family)]
    if split == "test":
        seen = {t.question for t in task_set("train", per_family)}
        tasks = [t for t in tasks if t.question not in seen]
    return tasks


ANSWER_NUMBER = re.compile(r"-?\d[\d,]*")


def parse_answer(text: str) -> int | None:
    """The first integer in an answer line (thousands separators allowed), or None."""
    match = ANSWER_NUMBER.search(text)
    return int(match.group().replace(",", "")) if match else None
