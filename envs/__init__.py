"""gymnasium environments (registered on import as ``edgerun/...``) and offline-dataset collection."""

from __future__ import annotations

import os

import gymnasium

# MuJoCo (PointMaze) picks its OpenGL back end from MUJOCO_GL when it is first imported: render
# offscreen through EGL unless the user chose otherwise (osmesa, glfw). Set here, before any env
# module can import mujoco.
os.environ.setdefault("MUJOCO_GL", "egl")

from edgerun.envs.wall import RANDOM_DOOR_Y_RANGE
from edgerun.errors import UnknownEnvError

WALL_ID = "edgerun/Wall-v0"
WALL_RANDOM_ID = "edgerun/WallRandom-v0"
WALL_MAX_EPISODE_STEPS = 300
"""The evaluation's budget: twelve plans of the paper's planner (horizon 5 blocks of 5 steps, all executed),
a finite stand-in for the official replan-until-success; the scripted expert needs at most 19 steps
(1000 seeded episodes)."""
POINT_MAZE_ID = "edgerun/PointMaze-v0"
POINT_MAZE_MAX_EPISODE_STEPS = 300
"""Twelve plans of 25 steps, as Wall (15 s of simulated time at 0.05 s per step)."""

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
if POINT_MAZE_ID not in gymnasium.registry:  # gymnasium-robotics' PointMaze UMaze as DINO-WM uses it
    gymnasium.register(
        id=POINT_MAZE_ID,
        entry_point="edgerun.envs.point_maze:PointMazeEnv",
        max_episode_steps=POINT_MAZE_MAX_EPISODE_STEPS,
    )
PUSH_T_ID = "edgerun/PushT-v0"
PUSH_T_MAX_EPISODE_STEPS = 100
if PUSH_T_ID not in gymnasium.registry:  # gym-pusht's simulation with DINO-WM's actions, goals and success
    gymnasium.register(
        id=PUSH_T_ID,
        entry_point="edgerun.envs.push_t:PushTEnv",
        max_episode_steps=PUSH_T_MAX_EPISODE_STEPS,
    )

__all__ = ["POINT_MAZE_ID", "POINT_MAZE_MAX_EPISODE_STEPS", "PUSH_T_ID", "PUSH_T_MAX_EPISODE_STEPS", "WALL_ID", "WALL_MAX_EPISODE_STEPS", "WALL_RANDOM_ID"]


def check_env_id(env_id: str) -> None:
    """Raise :class:`~edgerun.errors.UnknownEnvError` naming the registered edgerun envs, before
    gymnasium would try to import a module named after an unknown id's namespace."""
    if env_id not in gymnasium.registry:
        ours = sorted(name for name in gymnasium.registry if name.startswith("edgerun/"))
        raise UnknownEnvError(f"unknown env id {env_id!r}: registered edgerun envs are {ours}")


def env_name(env_id: str) -> str:
    """``edgerun/PointMaze-v0`` -> ``pointmaze``: the key of the env's CEM preset, export entry and
    shipped-checkpoint directory (``checkpoints/dino_wm_<name>``)."""
    return env_id.split("/")[-1].split("-")[0].lower()
