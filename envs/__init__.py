"""gymnasium environments (registered on import as ``edgerun/...``) and offline-dataset collection."""

from __future__ import annotations

import gymnasium

from .wall import RANDOM_DOOR_Y_RANGE

WALL_ID = "edgerun/Wall-v0"
WALL_RANDOM_ID = "edgerun/WallRandom-v0"
WALL_MAX_EPISODE_STEPS = 100
"""Four horizon-5 plans of 25 steps; the scripted expert needs at most 19 (1000 seeded episodes)."""

if WALL_ID not in gymnasium.registry:
    gymnasium.register(
        id=WALL_ID,
        entry_point="edgerun.envs.wall:WallEnv",
        max_episode_steps=WALL_MAX_EPISODE_STEPS,
    )
if WALL_RANDOM_ID not in gymnasium.registry:  # the paper's layout generalisation: the door moves per reset
    gymnasium.register(
        id=WALL_RANDOM_ID,
        entry_point="edgerun.envs.wall:WallEnv",
        max_episode_steps=WALL_MAX_EPISODE_STEPS,
        kwargs={"door_y_range": RANDOM_DOOR_Y_RANGE},
    )

__all__ = ["WALL_ID", "WALL_MAX_EPISODE_STEPS", "WALL_RANDOM_ID"]
