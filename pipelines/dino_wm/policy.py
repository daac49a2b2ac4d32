"""DINO-WM as a policy: an observation and a goal in, the next block of env actions out.

Wraps a world model with model-predictive control over CEM (or GD): the goal is encoded once
per goal, the observation once per replan, and every CEM sample of an iteration is evaluated
in one batched call — of the torch model, or of an exported planning-cost engine (ONNX Runtime
or TensorRT, ``edgerun export dino-wm-wall …``). The policy sees images, proprio and model
costs only; nothing of the environment's success test reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from edgerun.errors import PlanningCancelled
from edgerun.models.dino_wm.world_model import DinoWorldModel, Latent
from edgerun.pipelines.dino_wm.plan import (
    FRAMESKIP,
    MPC,
    CEMConfig,
    GDConfig,
    MPCConfig,
    block_to_env_actions,
)


def images_to_model(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) RGB → float (B, 1, 3, H, W) in [-1, 1] (mean 0.5, std 0.5)."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.shape[-1] != 3 or array.ndim not in (3, 4):
        raise ValueError(f"expected uint8 RGB images (H, W, 3) or (B, H, W, 3), got {array.dtype} {array.shape}")
    images = torch.from_numpy(np.array(array if array.ndim == 4 else array[None]))  # a copy: messages are read-only
    return (images.permute(0, 3, 1, 2).float() / 127.5 - 1.0).unsqueeze(1)


@torch.no_grad()
def encode_observation(model: DinoWorldModel, pixels: np.ndarray, proprio: np.ndarray) -> Latent:
    """An observation -> :class:`Latent` (batch 1, one frame) with the model's frozen encoder."""
    proprio_tensor = torch.tensor(np.asarray(proprio, dtype=np.float32)).reshape(1, 1, -1)
    expected = model.config.predictor.proprio_dim
    if proprio_tensor.shape[-1] != expected:
        raise ValueError(f"expected proprio of {expected} values, got {np.asarray(proprio).shape}")
    return model.encode(images_to_model(pixels), proprio_tensor)


class WorldModelPolicy:
    """Observation + goal → env actions, replanning as MPC.

    ``action_mean`` / ``action_std`` (per env action dimension) map the planner's normalised
    action space to the env's; they come from the training data. ``cost_engine`` (optional) is an
    Engine of the exported planning cost; without it the torch model is used. ``generator`` seeds the
    planner's samples (one generator for every plan: a seeded policy is reproducible). The planner node
    and ``edgerun eval dino-wm`` both act through this class, so what is evaluated is what is deployed.
    ``should_stop`` is asked before every cost evaluation of a plan (each CEM iteration, each GD
    step); once it says True the plan is given up with :class:`PlanningCancelled`.
    """

    def __init__(
        self,
        model: DinoWorldModel,
        action_mean: np.ndarray,
        action_std: np.ndarray,
        planner: CEMConfig | GDConfig = CEMConfig(),
        mpc: MPCConfig = MPCConfig(),
        cost_engine: Any = None,
        frameskip: int = FRAMESKIP,
        generator: torch.Generator | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.model = model.eval()
        self.action_mean = np.asarray(action_mean, dtype=np.float32)
        self.action_std = np.asarray(action_std, dtype=np.float32)
        self.frameskip = frameskip
        self.cost_engine = cost_engine
        self.should_stop = should_stop
        block_dim = model.config.predictor.action_input_dim
        self.mpc = MPC(block_dim, planner, mpc, generator=generator, as_numpy=cost_engine is not None)
        self.goal: Latent | None = None
        self.plan_times_s: list[float] = []

    def reset(self) -> None:
        self.mpc.reset()

    def encode(self, pixels: np.ndarray, proprio: np.ndarray) -> Latent:
        return encode_observation(self.model, pixels, proprio)

    def set_goal(self, pixels: np.ndarray, proprio: np.ndarray) -> None:
        self.goal = self.encode(pixels, proprio)
        self.mpc.reset()  # a new goal invalidates the queued plan

    @property
    def needs_plan(self) -> bool:
        return self.mpc.needs_plan

    def act(self, pixels: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """The next ``frameskip`` env actions, (frameskip, action_dim); replans when the queue is empty."""
        if self.goal is None:
            raise RuntimeError("no goal yet: call set_goal() before act()")
        planned = self.mpc.needs_plan
        block = self.mpc.act(self._cost_fn(self.encode(pixels, proprio)) if planned else None)
        if planned:
            self.plan_times_s.append(self.mpc.last_plan.time_s)
        return np.asarray(block_to_env_actions(block, self.action_mean, self.action_std, self.frameskip), dtype=np.float32)

    def _cost_fn(self, observation: Latent) -> Any:
        if self.cost_engine is not None:
            cost = engine_cost(self.cost_engine, observation, self.goal)
        else:
            cost = rollout_cost(self.model, observation, self.goal, differentiable=isinstance(self.mpc.planner, GDConfig))
        if self.should_stop is None:
            return cost
        should_stop = self.should_stop

        def unless_stopping(actions: Any) -> Any:
            if should_stop():
                raise PlanningCancelled("planning given up: the node is stopping")
            return cost(actions)

        return unless_stopping


def engine_cost(engine: Any, observation: Latent, goal: Latent) -> Any:
    """``cost(actions (S, horizon, block_dim) numpy) -> (S,) numpy`` through an Engine of the exported
    planning cost (``edgerun export dino-wm-wall…``): the observation and goal latents are its context."""
    context = {
        "visual": observation.visual.numpy(),
        "proprio_emb": observation.proprio.numpy(),
        "goal_visual": goal.visual[:, -1].numpy(),
        "goal_proprio_emb": goal.proprio[:, -1].numpy(),
    }
    return lambda actions: engine(actions=np.ascontiguousarray(actions, dtype=np.float32), **context)["cost"]


def rollout_cost(model: DinoWorldModel, observation: Latent, goal: Latent, differentiable: bool = False) -> Any:
    """``cost(actions (S, horizon, block_dim)) -> (S,)``: one batched rollout of all S samples from the
    observation, scored against the goal (normalised actions, as the planners produce them)."""

    def cost(actions: torch.Tensor) -> torch.Tensor:
        samples = actions.shape[0]
        start = Latent(observation.visual.expand(samples, -1, -1, -1), observation.proprio.expand(samples, -1, -1))
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            return model.planning_cost(model.rollout(start, actions), goal)

    return cost
