"""The DINO-WM planner as a node: observation + goal in, a block of env actions out (MPC).

Each observation is answered with the next ``frameskip`` env actions; a new plan is made
when the previous plan's executed blocks are used up (warm-started from its tail). Planning
time is on the node's status (``details``) and on every action message; each new plan also
goes out whole on ``plan`` (env actions over the horizon, its cost, the cost per iteration). The planner never
subscribes to the env's episode topic: it sees images, proprio and model costs only.

An observation of the wrong shape or dtype, an observation before any goal, or a
checkpoint that does not fit its config is reported clearly (log and status) and the node
stays up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgerun.runtime import Latest, Message, Node


@dataclass(frozen=True)
class PlannerParams:
    checkpoint: str  # an edgerun DINO-WM checkpoint (edgerun train dino-wm, or edgerun convert dino-wm)
    cost_engine: str = ""  # optional exported planning cost (.onnx/.plan, edgerun export dino-wm-wall…)
    backend: str = "auto"  # for cost_engine
    planner: str = "cem"  # cem | gd
    preset: str = "wall"  # CEM budget: wall | pointmaze | pusht (the paper's)
    samples: int = 0  # override the preset's CEM samples (0: keep)
    iterations: int = 0  # override the preset's CEM iterations (0: keep)
    execute_blocks: int = 5  # blocks executed per plan before replanning (the paper: 5)
    seed: int = 0


class Planner(Node):
    inputs = {"observation": Latest(), "goal": Latest()}
    outputs = ("action", "plan")
    params = PlannerParams

    def setup(self) -> None:
        self.policy = None
        self.error = ""
        self.goal_key: tuple | None = None
        self.answered: tuple[Any, Any, int] | None = None  # (episode, step, publish time ns) of the last answer
        try:
            self.policy = self.make_policy()
        except (ValueError, KeyError, OSError, RuntimeError) as exc:  # CheckpointError is a ValueError
            self.error = f"cannot load {self.params.checkpoint}: {exc}"
            self.log.error("%s", self.error)

    def make_policy(self) -> Any:
        from dataclasses import replace

        from edgerun.models.dino_wm.checkpoint import load_checkpoint
        from edgerun.pipelines.dino_wm.plan import CEM_PRESETS, GD_PAPER, MPCConfig
        from edgerun.pipelines.dino_wm.policy import WorldModelPolicy

        if self.params.preset not in CEM_PRESETS:
            raise ValueError(f"unknown preset '{self.params.preset}' (presets: {', '.join(CEM_PRESETS)})")
        model, _config, extra = load_checkpoint(Path(self.params.checkpoint))
        action_dim = model.config.predictor.action_dim
        mean = np.asarray(extra.get("action_mean", np.zeros(action_dim)), dtype=np.float32)
        std = np.asarray(extra.get("action_std", np.ones(action_dim)), dtype=np.float32)
        cem = CEM_PRESETS[self.params.preset]
        cem = replace(
            cem,
            samples=self.params.samples or cem.samples,
            topk=min(cem.topk, self.params.samples or cem.samples),
            iterations=self.params.iterations or cem.iterations,
            seed=self.params.seed,
        )
        planner = cem if self.params.planner == "cem" else GD_PAPER
        engine = None
        if self.params.cost_engine:
            from edgerun.engines import load

            engine = load(self.params.cost_engine, self.params.backend)
        self.log.info("planner: %s %s, execute %d blocks, cost on %s", self.params.planner, planner,
                      self.params.execute_blocks, engine.backend if engine else "torch")
        return WorldModelPolicy(model, mean, std, planner, MPCConfig(execute_blocks=self.params.execute_blocks), engine)

    def on_goal(self, msg: Message) -> None:
        """A new goal resets the plan; the same goal sent again (envs repeat it for late joiners) does not."""
        if self.policy is None:
            raise RuntimeError(self.error)
        key = (msg.get("episode"), np.asarray(msg["pixels"]).tobytes(), np.asarray(msg["proprio"]).tobytes())
        if key == self.goal_key:
            return
        self.policy.set_goal(msg["pixels"], msg["proprio"])
        self.goal_key = key

    def on_observation(self, msg: Message) -> None:
        if self.policy is None:
            raise RuntimeError(self.error)
        if self.policy.goal is None:
            raise RuntimeError("observation before any goal: connect input 'goal' (e.g. env/goal)")
        if self.is_stale_copy(msg):
            return
        replanning = self.policy.needs_plan
        started = time.perf_counter()
        actions = self.policy.act(msg["pixels"], msg["proprio"])
        plan_time_s = time.perf_counter() - started
        self.publish("action", action=actions, replanned=replanning, plan_time_s=plan_time_s)
        self.answered = (msg.get("episode"), msg.get("step"), time.time_ns())
        if replanning:
            self.publish_plan(plan_time_s)

    def is_stale_copy(self, msg: Message) -> bool:
        """An env re-sends its observation while it waits for actions (so a lost message cannot stall
        the loop); copies sent while this node was still planning its answer are not lost messages.
        Answering one would send the env a block it never asked for, and at the end of a plan would
        replan from a state the env has already left. A copy sent after the answer went out means
        the answer was lost: that one is answered again."""
        if self.answered is None or msg.get("step") is None:
            return False
        episode, step, answered_ns = self.answered
        return (msg.get("episode"), msg.get("step")) == (episode, step) and msg.send_ns < answered_ns

    def publish_plan(self, plan_time_s: float) -> None:
        """The whole new plan in env actions, its cost and the planner's cost per iteration."""
        from edgerun.pipelines.dino_wm.plan import block_to_env_actions

        plan = self.policy.mpc.last_plan
        env_actions = np.concatenate(
            [block_to_env_actions(block, self.policy.action_mean, self.policy.action_std, self.policy.frameskip) for block in plan.actions]
        )
        self.publish(
            "plan",
            actions=env_actions.astype(np.float32),
            best_costs=np.asarray(plan.best_costs, dtype=np.float32),
            cost=float(plan.cost),
            plan_time_s=plan_time_s,
        )

    def status_fields(self) -> dict[str, Any]:
        if self.policy is None:
            return {"error": self.error}
        times = self.policy.plan_times_s
        return {
            "plans": len(times),
            "plan_time_s_last": round(times[-1], 4) if times else None,
            "plan_time_s_mean": round(float(np.mean(times)), 4) if times else None,
            "has_goal": self.policy.goal is not None,
        }
