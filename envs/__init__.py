"""gymnasium environments (registered on import as ``edgerun/...``) and offline-dataset collection."""

from __future__ import annotations

import gymnasium

WALL_ID = "edgerun/Wall-v0"
WALL_MAX_EPISODE_STEPS = 100
"""About twice the scripted policy's worst case (41 steps over 3000 episodes with starts and goals anywhere)."""

if WALL_ID not in gymnasium.registry:
    gymnasium.register(
        id=WALL_ID,
        entry_point="edgerun.envs.wall:WallEnv",
        max_episode_steps=WALL_MAX_EPISODE_STEPS,
    )

__all__ = ["WALL_ID", "WALL_MAX_EPISODE_STEPS"]
