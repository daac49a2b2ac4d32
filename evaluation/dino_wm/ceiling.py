"""The planning protocol's ceiling: :func:`~.evaluate.evaluate`'s CEM/MPC with a perfect model.

The "model" here is the env's own dynamics, batched (``simulate``: Wall's swept motion, PointMaze's
MuJoCo model through ``mujoco.rollout``) and the cost
the objective's without model error: the squared distance between the position a candidate plan
ends at and the goal's (Wall: the proprio term; PointMaze, alpha 0: what its visual latent encodes).
With ``latent_checkpoint`` the cost is instead the objective itself, DINO-WM's planning cost, on that
checkpoint's frozen encoder: the true final states are rendered and encoded, so what remains is the
objective's own limit (a latent distance that says little when the agent is far from the goal),
without the predictor's errors. Everything else is the evaluation's: the same
episodes (:func:`~.evaluate.episode_seeds`), CEM settings, MPC (whole 5-block plan, then a new plan
warm-started), a fixed budget of env steps and success read once, at the end. What a learned model
scores can be compared with this number: the gap between the two is the model's, the gap between
this and 1.0 the protocol's (a last-state cost and a 25-step look-ahead searched by CEM).

``python -m edgerun.evaluation.dino_wm.ceiling [--episodes 50] [--seed 0] [--env edgerun/Wall-v0] [--latent CHECKPOINT]
[--max-steps N] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

import edgerun.envs  # noqa: F401  (registers the edgerun/... env ids)
from edgerun.envs.point_maze import PointMazeEnv
from edgerun.envs.wall import WallEnv
from edgerun.evaluation.dino_wm.evaluate import default_planner, episode_seeds, make_eval_env
from edgerun.models.dino_wm.checkpoint import load_checkpoint
from edgerun.models.dino_wm.world_model import planning_cost
from edgerun.pipelines.dino_wm.plan import (
    FRAMESKIP,
    MPC,
    MPC_PAPER,
    CEMConfig,
    MPCConfig,
    block_to_env_actions,
    denormalise,
)
from edgerun.pipelines.dino_wm.policy import encode_observation, images_to_model

ACTION_STD = {"Wall": (0.58, 0.56), "PointMaze": (0.577, 0.577)}
"""Action normalisation per env: Wall's shipped checkpoint's data (``extra["action_std"]``, rounded);
PointMaze's data are uniform random actions in [-1, 1] (std 1 / sqrt(3))."""


@torch.no_grad()
def _latent_cost(model: Any, alpha: float, frames: np.ndarray, states: np.ndarray, goal: Any) -> torch.Tensor:
    """DINO-WM's planning cost of true final states: their frames and proprio encoded by ``model``."""
    proprio = torch.from_numpy(np.asarray(states, dtype=np.float32))[:, None]
    return planning_cost(model.encode(images_to_model(frames), proprio), goal, alpha)


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
    latent_checkpoint: str | None = None,
) -> dict[str, Any]:
    """Success rate of the evaluation protocol when the model is perfect (see the module docstring)."""
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps: expected >= 1, got {max_steps}")
    planner_config = planner_config or default_planner(env_id, "cem")
    env = make_eval_env(env_id, max_steps)
    world = env.unwrapped
    if not isinstance(world, (WallEnv, PointMazeEnv)):
        raise TypeError(f"{env_id}: a perfect model exists for the Wall and PointMaze envs, got {type(world).__name__}")
    kind = "Wall" if isinstance(world, WallEnv) else "PointMaze"
    budget = env.spec.max_episode_steps or 100
    mean = np.asarray(action_mean, dtype=np.float64)
    std = np.asarray(ACTION_STD[kind] if action_std is None else action_std, dtype=np.float64)
    generator = torch.Generator().manual_seed(seed)
    model = alpha = None
    if latent_checkpoint is not None:
        model, config, extra = load_checkpoint(latent_checkpoint)
        alpha = config.alpha
        if action_std is None:  # sample actions as the evaluation does with this checkpoint
            mean, std = (np.asarray(extra[key], dtype=np.float64) for key in ("action_mean", "action_std"))
    records = []
    for episode_seed in episode_seeds(seed, episodes):
        obs, info = env.reset(seed=episode_seed)
        goal = np.asarray(info["goal_proprio"], dtype=np.float64)[:2]
        goal_latent = None if model is None else encode_observation(model, info["goal_pixels"], info["goal_proprio"])
        start = np.asarray(obs["proprio"], dtype=np.float64)
        mpc = MPC(2 * FRAMESKIP, planner_config, mpc_config, generator=generator)
        steps = 0
        while steps < budget:
            origin = np.asarray(obs["proprio"], dtype=np.float64)

            def cost(plans: torch.Tensor, origin: np.ndarray = origin, goal: np.ndarray = goal) -> torch.Tensor:
                actions = denormalise(plans.numpy().astype(np.float64), mean, std).reshape(len(plans), -1, 2)
                finals = world.simulate(np.repeat(origin[None], len(plans), axis=0), actions)
                if model is not None:
                    return _latent_cost(model, alpha, world.render_states(finals), finals, goal_latent)
                return torch.from_numpy(((finals[:, :2] - goal) ** 2).sum(axis=1))

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
        "cost": "euclidean" if model is None else f"latent objective of {latent_checkpoint}",
        "success_rate": float(np.mean([r["success"] for r in records])),
        "failures": [r for r in records if not r["success"]],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="edgerun/Wall-v0")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latent", metavar="CHECKPOINT", help="score the true final states with this checkpoint's objective")
    parser.add_argument("--max-steps", type=int, metavar="N", help="env steps per episode (default: the env's, 100)")
    parser.add_argument("--json", metavar="FILE", help="also write the result here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = perfect_model_ceiling(args.env, args.episodes, args.seed, max_steps=args.max_steps, latent_checkpoint=args.latent)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
