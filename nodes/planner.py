"""The DINO-WM planner as a node: observation + goal in, a block of env actions out (MPC).

Each observation is answered with the next ``frameskip`` env actions; a new plan is made
when the previous plan's executed blocks are used up (warm-started from its tail). Planning
time is on the node's status (``details``) and on every action message; each new plan also
goes out whole on ``plan`` (env actions over the horizon, its cost, the cost per iteration). The planner never
subscribes to the env's episode topic: it sees images, proprio and model costs only.

With ``anytime: true`` the robot does not wait for plans (``pipelines/dino_wm/anytime.py``): a thread
replans continuously from the newest observation, each plan carrying the last one's search on and
starting with the actions the robot runs while it is made (``MPC.replan``), and every
observation is answered at once with the newest plan's actions from its step on (``plan_step`` on the
action says which plan's); observations no plan covers yet get no answer, and an env node stepping at
its ``control_hz`` holds still for them. ``replan_hz`` is on the status.

An observation or goal without uint8 (H, W, 3) ``pixels`` and a floating (P,) ``proprio`` is
dropped by the runtime before the handler (counted on the status by reason); an observation
before any goal is an error of its handler (logged, the status's ``last_error``); a checkpoint
or cost engine that does not load leaves the node up, its status carrying the error, since
a restart would fail the same way (``setup_failure = "stay_up"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgerun.engines import Backend, load
from edgerun.errors import PlanningCancelled
from edgerun.runtime import Array, Latest, Message, Node
from edgerun.runtime.stats import ErrorCounter
from edgerun.runtime.views import Json


@dataclass(frozen=True)
class PlannerParams:
    checkpoint: str  # an edgerun DINO-WM checkpoint (edgerun train dino-wm, or edgerun convert dino-wm)
    cost_engine: str = ""  # optional exported planning cost (.onnx/.plan, edgerun export dino-wm-wall…)
    backend: Backend = "auto"  # for cost_engine
    planner: Literal["cem", "gd"] = "cem"  # CEM, or gradient descent (GD_PAPER)
    preset: Literal["wall", "pointmaze", "pusht"] = "wall"  # CEM budget: the paper's, per env (CEM_PRESETS)
    samples: int = 0  # override the preset's CEM samples (0: keep)
    iterations: int = 0  # override the preset's CEM iterations (0: keep)
    execute_blocks: int = 5  # blocks executed per plan before replanning (the paper: 5)
    objective: Literal["free_space", "paper"] = "free_space"  # distance through free space (needs the map), or the paper's
    # last-state latent distance (the only one a cost_engine computes)
    free_space: str = ""  # the free-space map (default: free_space.npz beside the checkpoint)
    anytime: bool = False  # replan continuously in a thread, warm-started, and answer every observation at once from
    # the newest plan (for an env node stepping at its own control_hz); False: plan when the executed blocks run out
    seed: int = 0
    threads: int = 0  # torch intra-op threads of this node's process (0: torch's default, every core); on a
    # small machine leave a core to the other nodes and this node's I/O thread, or planning stalls whenever they run


OBSERVATION = {"pixels": Array("uint8", ("H", "W", 3)), "proprio": Array("floating", ("P",), finite=True)}


class Planner(Node):
    inputs = {"observation": Latest(fields=OBSERVATION), "goal": Latest(fields=OBSERVATION)}
    outputs = ("action", "plan")
    views = {
        "action": (Json({"action": "array", "replanned": "boolean", "plan_time_s": "number"}, title="edgerun action"),),
        "plan": (Json({"actions": "array", "best_costs": "array", "cost": "number", "plan_time_s": "number"},
                      title="edgerun plan"),),
    }
    params = PlannerParams
    setup_failure = "stay_up"  # a checkpoint that does not load fails the same way on every restart

    def setup(self) -> None:
        self.goal_key: tuple | None = None
        self.answered: tuple[Any, Any, int] | None = None  # (episode, step, publish time ns) of the last answer
        self.before_goal = ErrorCounter(self.log, "planner: observation before any goal")
        self.policy = self.make_policy()
        self.anytime = None
        if self.params.anytime:
            from edgerun.pipelines.dino_wm.anytime import AnytimePlanner  # lazy: torch

            self.plan_errors = ErrorCounter(self.log, "planner: an anytime plan failed")
            self.anytime = AnytimePlanner(self.policy, on_error=lambda error: self.plan_errors.count(type(error).__name__, str(error)))
            self.anytime.start()
            self.every(0.02, self.publish_new_plan)

    def make_policy(self) -> Any:
        from dataclasses import replace

        import torch  # lazy

        from edgerun.models.dino_wm.checkpoint import load_checkpoint  # lazy: torch
        from edgerun.pipelines.dino_wm.free_space import FILE_NAME, FreeSpaceMap  # lazy: scipy
        from edgerun.pipelines.dino_wm.plan import CEM_PRESETS, GD_PAPER, MPCConfig  # lazy: torch
        from edgerun.pipelines.dino_wm.policy import MPCPolicy, Objective, WorldModelPlanning, cem_for  # lazy: torch

        if self.params.threads < 0:
            raise ValueError(f"threads must be 0 (torch's default) or positive, got {self.params.threads}")
        if self.params.threads:
            torch.set_num_threads(self.params.threads)
        self.torch_threads = torch.get_num_threads()
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
        objective = Objective(self.params.objective)
        planner = {"cem": cem_for(objective, cem), "gd": GD_PAPER}[self.params.planner]
        engine = None
        if self.params.cost_engine:
            engine = load(self.params.cost_engine, self.params.backend)
        free_space = None
        if self.params.objective == "free_space":
            free_space = FreeSpaceMap.load(self.params.free_space or Path(self.params.checkpoint).with_name(FILE_NAME))
        self.log.info("planner: %s %s on the %s objective, execute %d blocks, cost on %s", self.params.planner, planner,
                      self.params.objective, self.params.execute_blocks, engine.backend if engine else "torch")
        return MPCPolicy(WorldModelPlanning(model, mean, std, engine), planner,
                         MPCConfig(execute_blocks=self.params.execute_blocks), objective, free_space,
                         should_stop=self.stopping)  # fmt: skip

    def on_goal(self, msg: Message) -> None:
        """A new goal resets the plan; the same goal sent again (envs repeat it for late joiners) does not."""
        key = (msg.get("episode"), msg["pixels"].tobytes(), msg["proprio"].tobytes())
        if key == self.goal_key:
            return
        if self.anytime is not None:
            self.anytime.set_goal(msg.get("episode"), msg["pixels"], msg["proprio"])
        else:
            self.policy.set_goal(msg["pixels"], msg["proprio"])
        self.goal_key = key

    def on_observation(self, msg: Message) -> None:
        if self.anytime is not None:
            self.answer_at_once(msg)
            return
        if self.policy.goal is None:  # at start-up the first observation may arrive before the goal
            self.before_goal.count("no_goal_yet", "waiting for input 'goal' (e.g. env/goal)")
            return
        if self.is_stale_copy(msg):
            return
        replanning = self.policy.needs_plan
        started = time.perf_counter()
        try:
            actions = self.policy.act(msg["pixels"], msg["proprio"])
        except PlanningCancelled:
            return  # the graph is stopping: no action, no error

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

    def answer_at_once(self, msg: Message) -> None:
        """Anytime mode: hand the observation to the planning thread and answer it now from the newest
        plan, if one covers its step (otherwise the env holds still until one does)."""
        episode, step = msg.get("episode"), msg.get("step")
        if not isinstance(step, int):
            self.before_goal.count("no_step", "anytime planning needs observations with a step (an env node's)")
            return
        self.anytime.observe(episode, step, msg["pixels"], msg["proprio"])
        actions = self.anytime.actions_for(episode, step, self.policy.model.frameskip)
        if actions is not None:
            plan = self.anytime.newest
            self.publish("action", action=actions, replanned=False, plan_time_s=plan.time_s, plan_step=plan.step,
                         episode=episode, step=step)  # fmt: skip

    def publish_new_plan(self) -> None:
        plan = self.anytime.take_new_plan()
        if plan is not None:
            self.publish("plan", actions=plan.actions, best_costs=np.asarray(plan.best_costs, dtype=np.float32),
                         cost=plan.cost, plan_time_s=plan.time_s, episode=plan.episode, step=plan.step)  # fmt: skip

    def publish_plan(self, plan_time_s: float) -> None:
        """The whole new plan in env actions, its cost and the planner's cost per iteration."""
        from edgerun.pipelines.dino_wm.plan import block_to_env_actions  # lazy: torch

        plan = self.policy.mpc.last_plan
        model = self.policy.model
        env_actions = np.concatenate(
            [block_to_env_actions(block, model.action_mean, model.action_std, model.frameskip) for block in plan.actions]
        )
        self.publish(
            "plan",
            actions=env_actions.astype(np.float32),
            best_costs=np.asarray(plan.best_costs, dtype=np.float32),
            cost=float(plan.cost),
            plan_time_s=plan_time_s,
        )

    def teardown(self) -> None:
        if getattr(self, "anytime", None) is not None:
            self.anytime.stop()

    def status_fields(self) -> dict[str, Any]:
        if not hasattr(self, "policy"):  # setup failed: the runtime's last_error says why
            return {}
        times = self.policy.plan_times_s
        return {
            "plans": len(times),
            "plan_time_s_last": round(times[-1], 4) if times else None,
            "plan_time_s_mean": round(float(np.mean(times)), 4) if times else None,
            "has_goal": self.policy.goal is not None,
            "replan_hz": round(self.anytime.replan_hz(), 3) if self.anytime is not None else None,
            "observations_before_goal": self.before_goal.total,
            "torch_threads": self.torch_threads,
        }
