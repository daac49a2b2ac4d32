"""Which episodes a DINO-WM evaluation runs: seeded resets of the env, or the official 50 start/goal pairs.

An :class:`Episode` is a reset seed plus reset options. ``seeded_episodes`` draws the seeds from the
evaluation seed (the env's own start/goal sampler then runs); ``official_episodes`` pins the pairs
of the official evaluation (``plan.py`` of the DINO-WM code: ``n_evals`` 50, ``seed`` 99, episode
``n`` seeded ``99 * n + 1``, ``goal_source: random_state``) by re-running its samplers with those
seeds and passing the states in through ``reset(options=...)``:

- Wall (``generate_random_state`` of its ``env/wall/envs/wall.py``): one ``RandomState(seed)`` draws
  the start's x in the left room, the target's x in the right room, both y, then swaps start and
  target with probability 1/2. Pixels of its 64-px frame (dot std 1.7, border at 5, wall 6 px
  wide at column 32) divided by 64 are this env's arena units;
- PointMaze (``sample_random_init_goal_states`` of its ``point_maze_wrapper.py``): one
  ``RandomState(seed)`` draws the start ``(x, y, vx, vy)`` by rejection inside the U (D4RL's
  maze2d frame), then the goal the same way. D4RL's maze2d U is this env's rotated a quarter turn
  (its rows are our ``y`` from the top, its columns our ``x``): ``x = y_d4rl - 1.8``,
  ``y = 1.8 - x_d4rl``, and the velocity turns with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgerun.envs import env_name

OFFICIAL_EPISODES = 50
OFFICIAL_SEED = 99
_POINT_MAZE_SPEED = 5.2262554  # the official STATE_RANGES for vx, vy


@dataclass(frozen=True)
class Episode:
    """``env.reset(seed=seed, options=options)``."""

    seed: int
    options: dict[str, Any] = field(default_factory=dict)


def seeded_episodes(seed: int, episodes: int) -> list[Episode]:
    """Reset seeds from ``SeedSequence([seed, 1])`` (so not ``envs.collect``'s ``SeedSequence(seed)``)."""
    states = np.random.SeedSequence([seed, 1]).generate_state(episodes, dtype=np.uint32)
    return [Episode(int(s)) for s in states]


def official_episodes(env_id: str, episodes: int = OFFICIAL_EPISODES) -> list[Episode]:
    """The official evaluation's first ``episodes`` start/goal pairs (at most 50) for Wall or PointMaze."""
    if not 1 <= episodes <= OFFICIAL_EPISODES:
        raise ValueError(f"the official evaluation has {OFFICIAL_EPISODES} episodes, asked for {episodes}")
    samplers = {"wall": _official_wall, "pointmaze": _official_point_maze}
    name = env_name(env_id)
    if name not in samplers:
        raise ValueError(f"official episodes exist for Wall and PointMaze, not {env_id}")
    seeds = [OFFICIAL_SEED * n + 1 for n in range(episodes)]
    return [Episode(seed, samplers[name](seed)) for seed in seeds]


def _official_wall(seed: int) -> dict[str, Any]:
    rs = np.random.RandomState(seed)
    border, padding, size = 5 - 1 + 3.4, 3.4, 64
    left_wall, right_wall = 32 - 6 // 2, 32 + 6 // 2
    start_x = rs.uniform(border, left_wall - padding)
    target_x = rs.uniform(right_wall + padding, size - 1 - border)
    start_y = rs.uniform(border, size - 1 - border)
    target_y = rs.uniform(border, size - 1 - border)
    if rs.uniform(0, 1) < 0.5:
        start_x, target_x = target_x, start_x
    return {"start": (start_x / size, start_y / size), "goal": (target_x / size, target_y / size)}


def _official_point_maze(seed: int) -> dict[str, Any]:
    rs = np.random.RandomState(seed)

    def state() -> tuple[tuple[float, float], tuple[float, float]]:
        while True:
            x, y = rs.uniform(0.5, 3.1), rs.uniform(0.5, 3.1)
            if ((0.5 <= x <= 1.1 or 2.5 <= x <= 3.1) and 0.5 <= y <= 3.1) or (1.1 < x < 2.5 and 2.5 <= y <= 3.1):
                break
        vx, vy = rs.uniform(-_POINT_MAZE_SPEED, _POINT_MAZE_SPEED, size=2)
        return (y - 1.8, 1.8 - x), (float(vy), float(-vx))

    (start, start_velocity), (goal, goal_velocity) = state(), state()
    return {"start": start, "goal": goal, "start_velocity": start_velocity, "goal_velocity": goal_velocity}
