"""The planning protocol's ceiling: :func:`~.evaluate.evaluate`'s episodes and MPC with a perfect model.

The model is the env's own dynamics, batched (``simulate``: Wall's swept motion, PointMaze's MuJoCo
model through ``mujoco.rollout``), as a :class:`SimulatorPlanning` behind the same
:class:`~edgerun.pipelines.dino_wm.policy.MPCPolicy`, episodes (:func:`~.episodes.seeded_episodes`
or the official pairs), per-episode generators, budget and scoring (:func:`~.evaluate.run_episode`)
as the evaluation of a learned model. The objectives without model error:

- ``free_space`` (the default planner's): the true positions after every block, scored through the
  free-space map (``free_space.npz`` of the shipped checkpoint, built from the training data);
- ``paper``: the squared distance between the position a plan ends at and the goal's (Wall: the
  proprio term; PointMaze, alpha 0: what its visual latent encodes), or with ``latent_checkpoint``
  DINO-WM's planning cost itself on that checkpoint's frozen encoder: the true final states are
  rendered and encoded, so what remains is the objective's own limit, without the predictor's errors.

What a learned model scores can be compared with this number: the gap between the two is the
model's, the gap between this and 1.0 the planner's.

``python -m edgerun.evaluation.dino_wm.ceiling [--env edgerun/Wall-v0] [--planner free-space|paper]
[--episodes 50] [--seed 0] [--official-episodes] [--latent CHECKPOINT] [--max-steps N] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from edgerun import shipped
from edgerun.envs import env_name
from edgerun.envs.point_maze import PointMazeEnv
from edgerun.envs.wall import WallEnv
from edgerun.evaluation.dino_wm.episodes import official_episodes, seeded_episodes
from edgerun.evaluation.dino_wm.evaluate import (
    PlannerSettings,
    episode_budget,
    episode_generator,
    make_eval_env,
    planner_settings,
    run_episode,
    scores,
)
from edgerun.models.dino_wm.checkpoint import load_checkpoint
from edgerun.models.dino_wm.world_model import planning_cost
from edgerun.pipelines.dino_wm.free_space import FILE_NAME as FREE_SPACE_FILE
from edgerun.pipelines.dino_wm.free_space import CostToGo, FreeSpaceMap
from edgerun.pipelines.dino_wm.plan import FRAMESKIP, CostFn, denormalise
from edgerun.pipelines.dino_wm.policy import MPCPolicy, Objective, encode_observation, free_space_cost, images_to_model

ACTION_STD = {"Wall": (0.58, 0.56), "PointMaze": (0.577, 0.577)}
"""Action normalisation per env: Wall's shipped checkpoint's data (``extra["action_std"]``, rounded);
PointMaze's data are uniform random actions in [-1, 1] (std 1 / sqrt(3))."""


class SimulatorPlanning:
    """The env's own dynamics as a :class:`~edgerun.pipelines.dino_wm.policy.PlanningModel`: the state
    is the true proprio, a plan's blocks are simulated from it. ``latent_model`` (a DINO-WM model,
    with its ``alpha``) scores the paper objective on rendered true states instead of positions."""

    as_numpy = False
    frameskip = FRAMESKIP

    def __init__(self, world: WallEnv | PointMazeEnv, action_mean: Any, action_std: Any, latent_model: Any = None, alpha: float = 0.0):
        self.world = world
        self.action_mean = np.asarray(action_mean, dtype=np.float64)
        self.action_std = np.asarray(action_std, dtype=np.float64)
        self.block_dim = FRAMESKIP * len(self.action_mean)
        self.latent_model, self.alpha = latent_model, alpha

    def encode(self, pixels: np.ndarray, proprio: np.ndarray) -> Any:
        state = np.asarray(proprio, dtype=np.float64)
        if self.latent_model is None:
            return state
        return state, encode_observation(self.latent_model, pixels, proprio)

    def cost(self, observation: Any, goal: Any, objective: Objective, cost_to_go: CostToGo | None, differentiable: bool) -> CostFn:
        origin = observation if self.latent_model is None else observation[0]
        goal_state = goal if self.latent_model is None else goal[0]

        def cost(plans: torch.Tensor) -> torch.Tensor:
            actions = denormalise(plans.numpy().astype(np.float64), self.action_mean, self.action_std)
            actions = actions.reshape(len(plans), plans.shape[1], FRAMESKIP, -1)
            states, blocks = np.repeat(origin[None], len(plans), axis=0), []
            for block in range(actions.shape[1]):
                states = self.world.simulate(states, actions[:, block])
                blocks.append(states)
            if objective.kind == "free_space":
                return torch.from_numpy(free_space_cost(cost_to_go, np.stack(blocks, axis=1), objective.speed_weight))
            if self.latent_model is not None:
                return self._latent_cost(states, goal[1])
            return torch.from_numpy(((states[:, :2] - goal_state[:2]) ** 2).sum(axis=1))

        return cost

    @torch.no_grad()
    def _latent_cost(self, states: np.ndarray, goal: Any) -> torch.Tensor:
        proprio = torch.from_numpy(np.asarray(states, dtype=np.float32))[:, None]
        latent = self.latent_model.encode(images_to_model(self.world.render_states(states)), proprio)
        return planning_cost(latent, goal, self.alpha)


def perfect_model_ceiling(
    env_id: str = "edgerun/Wall-v0",
    episodes: int = 50,
    seed: int = 0,
    planner: str = "free-space",
    *,
    official: bool = False,
    settings: PlannerSettings | None = None,
    free_space: FreeSpaceMap | None = None,
    action_std: Any = None,
    max_steps: int | None = None,
    latent_checkpoint: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Success of the evaluation protocol when the model is perfect (see the module docstring).
    ``free_space`` defaults to the shipped checkpoint's map of the env."""
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps: expected >= 1, got {max_steps}")
    settings = settings or planner_settings(env_id, planner, exact_model=True)
    env = make_eval_env(env_id, max_steps)
    world = env.unwrapped
    if not isinstance(world, (WallEnv, PointMazeEnv)):
        raise TypeError(f"{env_id}: a perfect model exists for the Wall and PointMaze envs, got {type(world).__name__}")
    kind = "Wall" if isinstance(world, WallEnv) else "PointMaze"
    mean, std = np.zeros(2), np.asarray(ACTION_STD[kind] if action_std is None else action_std, dtype=np.float64)
    latent_model, alpha = None, 0.0
    if latent_checkpoint is not None:
        latent_model, config, extra = load_checkpoint(latent_checkpoint)
        alpha = config.alpha
        if action_std is None:  # sample actions as the evaluation does with this checkpoint
            mean, std = (np.asarray(extra[key], dtype=np.float64) for key in ("action_mean", "action_std"))
    if settings.objective.kind == "free_space" and free_space is None:
        free_space = FreeSpaceMap.load(Path(shipped(f"dino_wm_{env_name(env_id)}")) / FREE_SPACE_FILE)
    model = SimulatorPlanning(world, mean, std, latent_model, alpha)
    chosen = official_episodes(env_id, episodes) if official else seeded_episodes(seed, episodes)
    budget = episode_budget(env, max_steps)
    records = []
    try:
        for index, episode in enumerate(tqdm(chosen, desc=f"ceiling {planner} {env_id}", unit="ep", disable=not progress)):
            policy = MPCPolicy(model, settings.planner, settings.mpc, settings.objective, free_space,
                               generator=episode_generator(seed, index))  # fmt: skip
            records.append(run_episode(env, episode, budget, policy))
    finally:
        env.close()
    result = {"env": env_id, "episodes": episodes, "seed": seed, "official_episodes": official, "planner": planner,
              "cost": "true states" if latent_model is None else f"latent objective of {latent_checkpoint} on true states",
              **scores(records, [], budget, settings)}  # fmt: skip
    result["failures"] = [r for r in records if not r["success"]]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="edgerun/Wall-v0")
    parser.add_argument("--planner", default="free-space", choices=("free-space", "paper"))
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--official-episodes", action="store_true", help="the official evaluation's 50 start/goal pairs")
    parser.add_argument("--latent", metavar="CHECKPOINT", help="paper planner: score the true final states with this checkpoint's objective")
    parser.add_argument("--max-steps", type=int, metavar="N", help="env steps per episode (default: the env's time limit, 300)")
    parser.add_argument("--json", metavar="FILE", help="also write the result here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = perfect_model_ceiling(args.env, args.episodes, args.seed, args.planner, official=args.official_episodes,
                                   max_steps=args.max_steps, latent_checkpoint=args.latent, progress=True)  # fmt: skip
    text = json.dumps({k: v for k, v in result.items() if k not in ("episode_records", "random_episode_records")}, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
