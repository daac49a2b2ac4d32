"""Anytime MPC: plan continuously in a thread of its own, act at once from the newest plan.

A robot's controller cannot wait seconds for a plan. :class:`AnytimePlanner` keeps an
:class:`~.policy.MPCPolicy` replanning from the newest observation in a background thread, while
:meth:`actions_for` answers any action request at once by slicing the newest plan at the requested
step: a request for step ``s`` of a plan made from the observation of step ``p`` gets the plan's env
actions ``s - p`` onwards.

Each plan carries the one before it on (``MPC.replan``): warm-started from its mean and sigma, the
steps executed since dropped, and *committed* to the blocks the robot executes while it is being made.
A plan made from step ``p`` is ready some steps later; until then the robot runs the previous plan's
actions for steps ``p``, ``p + 1``, …, so the new plan starts with exactly those (held fixed, as many
whole blocks as the last plan took steps) and optimises what follows. Without that, each plan
assumed its own first actions had been executed when the robot had run others, and near the goal the
robot kept stepping in and out of it (measured in docs/dino_wm.md). Observations and goals carry the episode they belong to, so nothing of one episode's plan
is executed in the next. The planner node's ``anytime`` mode is this class (``nodes/planner.py``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgerun.errors import PlanningCancelled
from edgerun.pipelines.dino_wm.policy import MPCPolicy


@dataclass(frozen=True)
class TimedPlan:
    """A plan made from the observation of ``step`` in ``episode``: ``actions`` (horizon * frameskip,
    action_dim), env units, the first for that step; ``time_s`` to make it, its ``cost`` and the cost
    per CEM iteration (``best_costs``)."""

    episode: Any
    step: int
    actions: np.ndarray
    time_s: float
    cost: float
    best_costs: tuple[float, ...]


class AnytimePlanner:
    """Replans from the newest observation in a daemon thread; :meth:`actions_for` never waits.

    ``on_error(exception)`` is called (from the planning thread) when a plan fails; planning goes on
    with the next observation. :meth:`stop` ends the thread within one cost evaluation: the policy's
    ``should_stop`` is asked before each, and this planner's stop is added to it.
    """

    def __init__(self, policy: MPCPolicy, on_error: Callable[[BaseException], None] = lambda error: None):
        self.policy = policy
        self.on_error = on_error
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._goal: tuple[Any, np.ndarray, np.ndarray] | None = None  # pending (episode, pixels, proprio)
        self._goal_episode: Any = None
        self._observation: tuple[Any, int, np.ndarray, np.ndarray] | None = None  # newest (episode, step, pixels, proprio)
        self._unpublished = False
        self._finished: deque[float] = deque(maxlen=256)  # monotonic times plans were finished
        self.newest: TimedPlan | None = None
        outer_stop = policy.should_stop
        policy.should_stop = lambda: self._stopped.is_set() or bool(outer_stop and outer_stop())
        self._thread = threading.Thread(target=self._run, name="anytime-planner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def set_goal(self, episode: Any, pixels: np.ndarray, proprio: np.ndarray) -> None:
        """A goal for ``episode``: used from the next plan on (the planning thread encodes it)."""
        with self._lock:
            self._goal = (episode, np.array(pixels), np.array(proprio))
        self._wake.set()

    def observe(self, episode: Any, step: int, pixels: np.ndarray, proprio: np.ndarray) -> None:
        """The newest observation: the next plan starts from it (older unplanned ones are skipped)."""
        with self._lock:
            self._observation = (episode, int(step), np.array(pixels), np.array(proprio))
        self._wake.set()

    def actions_for(self, episode: Any, step: int, count: int) -> np.ndarray | None:
        """Up to ``count`` env actions for ``step`` onwards from the newest plan of ``episode``, or None
        when no plan covers that step (none yet, another episode's, or one it has run past)."""
        plan = self.newest
        if plan is None or plan.episode != episode:
            return None
        offset = int(step) - plan.step
        if not 0 <= offset < len(plan.actions):
            return None
        return plan.actions[offset : offset + count]

    def take_new_plan(self) -> TimedPlan | None:
        """The newest plan if it was not taken before (to publish each plan once)."""
        with self._lock:
            if not self._unpublished:
                return None
            self._unpublished = False
            return self.newest

    def replan_hz(self, window_s: float = 10.0) -> float:
        """Plans finished per second over the last ``window_s``."""
        now = time.monotonic()
        return sum(1 for t in list(self._finished) if now - t <= window_s) / window_s

    def _run(self) -> None:
        planned: tuple[Any, int] | None = None  # the observation the newest plan started from
        while not self._stopped.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            with self._lock:
                goal, self._goal = self._goal, None
                observation = self._observation
            try:
                if goal is not None:
                    self._goal_episode = goal[0]
                    self.policy.set_goal(goal[1], goal[2])  # resets the warm start: a new goal, a new plan
                    planned = None
                if self.policy.goal is None or observation is None or observation[:2] == planned:
                    continue
                episode, step, pixels, proprio = observation
                if self._goal_episode is not None and episode != self._goal_episode:
                    continue  # an observation of an episode whose goal has not come yet
                self._plan(episode, step, pixels, proprio)
                planned = (episode, step)
                self._wake.set()  # straight on from the newest observation: the robot has moved on
            except PlanningCancelled:
                return
            except Exception as error:  # a failed plan is reported; the next observation gets a new try
                self.on_error(error)

    def _plan(self, episode: Any, step: int, pixels: np.ndarray, proprio: np.ndarray) -> None:
        newest, frameskip = self.newest, self.policy.model.frameskip
        elapsed = step - newest.step if newest is not None and newest.episode == episode and step >= newest.step else None
        if elapsed is None:  # no plan of this episode yet: start afresh, nothing committed
            actions = self.policy.replan(pixels, proprio, None)
        else:  # the last plan took about ``elapsed`` steps: this one commits to the blocks executed meanwhile
            actions = self.policy.replan(pixels, proprio, elapsed, commit_blocks=max(1, math.ceil(elapsed / frameskip)))
        result = self.policy.mpc.last_plan
        plan = TimedPlan(episode, step, actions, result.time_s, float(result.cost), tuple(result.best_costs))
        with self._lock:
            self.newest, self._unpublished = plan, True
            self._finished.append(time.monotonic())
