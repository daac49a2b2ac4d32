"""The planning protocol's ceiling: :func:`~.evaluate.evaluate`'s CEM/MPC with a perfect model.

The "model" here is the env's own dynamics (Wall: :func:`edgerun.envs.wall.move_batch`; PointMaze:
:meth:`edgerun.envs.point_maze.PointMazeEnv.simulate`, the same MuJoCo model batched) and the cost
the objective's without model error: the squared distance between the position a candidate plan
ends at and the goal's (Wall: the proprio term; PointMaze, alpha 0: what its visual latent encodes). Everything else is the evaluation's: the same
episodes (:func:`~.evaluate.episode_seeds`), CEM settings, MPC (whole 5-block plan, then a new plan
warm-started), a fixed budget of env steps and success read once, at the end. What a learned model
scores can be compared with this number: the gap between the two is the model's, the gap between
this and 1.0 the protocol's (a last-state cost and a 25-step look-ahead searched by CEM).

``python -m edgerun.models.dino_wm.ceiling [--episodes 50] [--seed 0] [--env edgerun/Wall-v0]``
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import edgerun.envs  # noqa: F401  (registers the edgerun/... env ids)
import gymnasium
import numpy as np
import torch
from edgerun.envs.point_maze import PointMazeEnv
from edgerun.envs.wall import WallEnv, move_batch

from .evaluate import default_planner, episode_seeds
from .plan import (
    FRAMESKIP,
    MPC,
    MPC_PAPER,
    CEMConfig,
    MPCConfig,
    block_to_env_actions,
    denormalise,
)

ACTION_STD = {"Wall": (0.58, 0.56), "PointMaze": (0.577, 0.577)}
"""Action normalisation per env: Wall's shipped checkpoint's data (``extra["action_std"]``, rounded);
PointMaze's data are uniform random actions in [-1, 1] (std 1 / sqrt(3))."""


def _env_actions(actions: np.ndarray) -> np.ndarray:
    """As ``WallEnv.step`` applies them: clipped to the box, then to norm 1."""
    actions = np.clip(actions, -1.0, 1.0)
    norm = np.linalg.norm(actions, axis=-1, keepdims=True)
    return np.where(norm > 1.0, actions / np.maximum(norm, 1e-12), actions)


def perfect_model_ceiling(
    env_id: str = "edgerun/Wall-v0",
    episodes: int = 50,
    seed: int = 0,
    *,
    planner_config: CEMConfig | None = None,
    mpc_config: MPCConfig = MPC_PAPER,
    action_mean: Any = (0.0, 0.0),
    action_std: Any = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Success rate of the evaluation protocol when the model is perfect (see the module docstring)."""
    planner_config = planner_config or default_planner(env_id, "cem")
    env = gymnasium.make(env_id)
    world = env.unwrapped
    if not isinstance(world, (WallEnv, PointMazeEnv)):
        raise TypeError(f"{env_id}: a perfect model exists for the Wall and PointMaze envs, got {type(world).__name__}")
    kind = "Wall" if isinstance(world, WallEnv) else "PointMaze"
    budget = max_steps or env.spec.max_episode_steps or 100
    mean = np.asarray(action_mean, dtype=np.float64)
    std = np.asarray(ACTION_STD[kind] if action_std is None else action_std, dtype=np.float64)
    generator = torch.Generator().manual_seed(seed)
    records = []
    for episode_seed in episode_seeds(seed, episodes):
        obs, info = env.reset(seed=episode_seed)
        goal = np.asarray(info["goal_proprio"], dtype=np.float64)[:2]
        start = np.asarray(obs["proprio"], dtype=np.float64)
        mpc = MPC(2 * FRAMESKIP, planner_config, mpc_config, generator=generator)
        steps = 0
        while steps < budget:
            origin = np.asarray(obs["proprio"], dtype=np.float64)

            def cost(plans: torch.Tensor, origin: np.ndarray = origin, goal: np.ndarray = goal) -> torch.Tensor:
                actions = denormalise(plans.numpy().astype(np.float64), mean, std).reshape(len(plans), -1, 2)
                if kind == "PointMaze":
                    positions = world.simulate(np.repeat(origin[None], len(plans), axis=0), actions)[:, :2]
                else:
                    positions = np.repeat(origin[None], len(plans), axis=0)
                    for t in range(actions.shape[1]):
                        positions = move_batch(positions, _env_actions(actions[:, t]) * world.max_speed, world.layout)
                return torch.from_numpy(((positions - goal) ** 2).sum(axis=1))

            for action in block_to_env_actions(mpc.act(cost), mean, std, FRAMESKIP):
                obs, _, terminated, truncated, info = env.step(action.astype(np.float32))
                steps += 1
                if terminated or truncated or steps >= budget:
                    break
            if terminated or truncated:
                break
        records.append({
            "seed": episode_seed, "success": bool(info["is_success"]), "start": start.round(3).tolist(),
            "goal": goal.round(3).tolist(), "final": np.asarray(obs["proprio"]).round(3).tolist(),
        })  # fmt: skip
    env.close()
    return {
        "env": env_id, "episodes": episodes, "seed": seed, "steps_per_episode": budget,
        "success_rate": float(np.mean([r["success"] for r in records])),
        "failures": [r for r in records if not r["success"]],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="edgerun/Wall-v0")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = perfect_model_ceiling(args.env, args.episodes, args.seed)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
