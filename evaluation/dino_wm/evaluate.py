"""Closed-loop evaluation of a DINO-WM checkpoint: MPC over CEM (or GD) in the env, and a random baseline.

Protocol (one per call, the same for the planner and the baseline):

- episode ``i`` starts with ``env.reset(seed=episode_seeds[i])``, seeds drawn from ``seed`` (and disjoint
  in practice from ``envs.collect``'s training seeds, which come from ``SeedSequence(seed)`` alone);
- the goal is the *goal observation*: ``info["goal_pixels"]`` and ``info["goal_proprio"]`` from the reset,
  encoded once. Nothing else from ``info`` reaches the planner;
- every episode runs a **fixed budget** of env steps (``max_steps``, default the env's registered
  ``max_episode_steps``, 100 for Wall: 20 action blocks of ``frameskip`` 5), whatever happens on the
  way. The loop ends an episode early only if the env itself ends it (``terminated`` / ``truncated``,
  e.g. an env built with ``terminate_on_success``), which stops the episode but never changes a plan;
- success is **scored once, at the end**: ``info["is_success"]`` of the last step, i.e. the dot is
  within the success radius *at the end of the budget*. The loop does not look at ``is_success`` (or
  ``distance``) before the episode is over. The official evaluation instead stops CEM iterations and
  MPC replanning as soon as the simulator reports success, which both leaks the success test into the
  planner and scores "touched the goal once"; :data:`reached` below gives that second number, measured
  after the fact from the recorded positions (``proprio``) and the env's success radius, for comparison.

The planner (:class:`~.plan.MPC` over :func:`~.plan.cem_plan`) sees only a batched cost function:
every sample of a CEM iteration goes through ONE call of the rollout (``RolloutModule`` semantics,
batch = samples), and the cost is DINO-WM's ``MSE(last predicted visual latent, goal latent) + alpha *
MSE(proprio embeddings)`` (``alpha`` from the checkpoint's config, 1 for Wall).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from tqdm import tqdm

import edgerun.envs  # noqa: F401  (registers the edgerun/... env ids)
from edgerun.engines import load
from edgerun.envs import env_name
from edgerun.errors import EngineError
from edgerun.export.cache import load_exported
from edgerun.export.registry import REGISTRY
from edgerun.models.dino_wm.checkpoint import CheckpointError, load_checkpoint
from edgerun.pipelines.dino_wm.plan import (
    CEM_PRESETS,
    GD_PAPER,
    MPC_PAPER,
    CEMConfig,
    GDConfig,
    MPCConfig,
)
from edgerun.pipelines.dino_wm.policy import WorldModelPolicy

PLANNERS = ("cem", "gd")
BACKENDS = ("torch", "onnxruntime")

RESULT_KEYS = ("env", "episodes", "seed", "success_rate", "random_success_rate", "plan_time_s_mean")
"""Keys every :func:`evaluate` result has (among others)."""


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """The reset seeds of an evaluation: ``SeedSequence([seed, 1])``, so not ``collect``'s ``SeedSequence(seed)``."""
    return [int(s) for s in np.random.SeedSequence([seed, 1]).generate_state(episodes, dtype=np.uint32)]


def default_planner(env_id: str, planner: str) -> CEMConfig | GDConfig:
    """The paper's settings: CEM per environment (Wall: horizon 5, 300 samples, top 30, 10 iterations), GD 1000 steps."""
    if planner == "gd":
        return GD_PAPER
    return CEM_PRESETS.get(env_name(env_id), CEM_PRESETS["wall"])


def make_eval_env(env_id: str, max_steps: int | None = None) -> gymnasium.Env:
    """``gymnasium.make``, with the time limit set to ``max_steps`` when a budget is given."""
    return gymnasium.make(env_id) if max_steps is None else gymnasium.make(env_id, max_episode_steps=max_steps)


def _budget(env: gymnasium.Env, max_steps: int | None) -> int:
    if max_steps is not None:
        return int(max_steps)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    return int(limit) if limit else 100


def _reached(positions: list[np.ndarray], goal: np.ndarray, radius: float | None) -> bool | None:
    """Whether any recorded position (the proprio's x, y) came within ``radius`` of the goal's (after the
    fact; None if unknown)."""
    if radius is None:
        return None
    xy, goal_xy = np.asarray(positions, dtype=np.float64)[:, :2], np.asarray(goal, dtype=np.float64)[:2]
    distances = np.linalg.norm(xy - goal_xy, axis=-1)
    return bool((distances <= radius).any())


def evaluate(
    checkpoint: str | Path,
    env_id: str,
    episodes: int,
    seed: int,
    planner: str = "cem",
    backend: str = "torch",
    progress: bool = True,
    *,
    max_steps: int | None = None,
    planner_config: CEMConfig | GDConfig | None = None,
    mpc_config: MPCConfig = MPC_PAPER,
    random_baseline: bool = True,
    make_env: Callable[[str], gymnasium.Env] | None = None,
    cost_engine: Any = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Run ``episodes`` closed-loop MPC episodes and the same episodes with uniform random actions.

    ``planner``: ``"cem"`` (default settings: :func:`default_planner`) or ``"gd"``; ``planner_config``
    overrides them. ``mpc_config``: how many blocks of each plan run before replanning (default the
    paper's: the whole horizon-5 plan, 25 env steps, then a new plan). ``backend``: ``"torch"`` (the
    checkpoint's model scores the CEM samples) or ``"onnxruntime"``: ``cost_engine``, an ``edgerun.engines``
    Engine of the exported planning cost (``edgerun export dino-wm-wall-cpu --checkpoint …``;
    :func:`eval_main` exports it), scores them; observations and goals are still encoded by the
    checkpoint's encoder. CEM only. ``make_env`` builds the env (default ``gymnasium.make``).
    ``workers`` > 1 runs the episodes in that many processes (torch backend, one thread each); every
    episode draws its CEM samples from its own generator, so the result does not depend on ``workers``.

    Returns a JSON-able dict with at least :data:`RESULT_KEYS`: ``success_rate`` (success at the end of
    the fixed budget, see the module docstring), ``random_success_rate`` (the same for random actions),
    ``plan_time_s_mean`` (seconds per plan: ``iterations`` batched rollouts of every sample), and the
    details: ``reached_rate`` / ``random_reached_rate`` (within the radius at any step, measured after
    the episode), final distances, the planner and MPC settings, per-episode records.
    """
    if planner not in PLANNERS:
        raise ValueError(f"planner: expected one of {PLANNERS}, got {planner!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend != "torch" and (cost_engine is None or planner != "cem"):
        raise ValueError(
            f"backend {backend!r} plans with CEM through an Engine of the exported planning cost: pass cost_engine "
            "(edgerun export dino-wm-wall-cpu --checkpoint CHECKPOINT, then edgerun.engines.load)"
        )
    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"workers: expected >= 1, got {workers}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps: expected >= 1, got {max_steps}")
    if workers > 1 and (cost_engine is not None or make_env is not None):
        raise ValueError("workers > 1 runs torch episodes in worker processes: it takes neither cost_engine nor make_env")
    planner_config = planner_config or default_planner(env_id, planner)
    seeds = episode_seeds(seed, episodes)
    job = _EpisodeJob(str(checkpoint), env_id, seed, planner, planner_config, mpc_config, max_steps)
    if workers > 1:
        load_checkpoint(checkpoint)  # a bad checkpoint fails here, with its message, not in a worker
        records = _parallel_episodes(job, seeds, workers, progress)
        env = make_eval_env(env_id, max_steps)
    else:
        runner = _EpisodeRunner(job, make_env=make_env, cost_engine=cost_engine)
        env = runner.env
        try:
            bar = tqdm(list(enumerate(seeds)), desc=f"eval {planner} {env_id}", unit="ep", disable=not progress)
            records = []
            for index, episode_seed in bar:
                records.append(runner.run(index, episode_seed))
                bar.set_postfix(success=f"{np.mean([r['success'] for r in records]):.2f}")
            bar.close()
        except BaseException:
            env.close()
            raise
    plan_times = [t for record in records for t in record.pop("plan_times_s")]
    try:
        budget = _budget(env, max_steps)
        radius = getattr(env.unwrapped, "success_radius", None)
        baseline = _random_episodes(env, seeds, budget, seed, radius, progress) if random_baseline else []
    finally:
        env.close()

    def rate(rows: list[dict], key: str) -> float | None:
        values = [row[key] for row in rows if row.get(key) is not None]
        return float(np.mean(values)) if values else None

    return {
        "env": env_id,
        "episodes": episodes,
        "seed": seed,
        "checkpoint": str(checkpoint),
        "planner": planner,
        "backend": backend,
        "success_rate": rate(records, "success"),
        "random_success_rate": rate(baseline, "success"),
        "reached_rate": rate(records, "reached"),
        "random_reached_rate": rate(baseline, "reached"),
        "final_distance_mean": rate(records, "final_distance"),
        "random_final_distance_mean": rate(baseline, "final_distance"),
        "plan_time_s_mean": float(np.mean(plan_times)) if plan_times else None,
        "plans": len(plan_times),
        "steps_per_episode": budget,
        "scoring": f"success = env's is_success after a fixed budget of {budget} env steps (read once, at the end); "
        "reached = within the success radius at any step, computed after the episode from the recorded positions",
        "planner_config": {"kind": type(planner_config).__name__, **asdict(planner_config)},
        "mpc_config": asdict(mpc_config),
        "torch_threads": torch.get_num_threads(),
        "episode_records": records,
        "random_episode_records": baseline,
    }


@dataclass(frozen=True)
class _EpisodeJob:
    """What every episode of one evaluation shares (picklable: worker processes rebuild the rest)."""

    checkpoint: str
    env_id: str
    seed: int
    planner: str
    planner_config: CEMConfig | GDConfig
    mpc_config: MPCConfig
    max_steps: int | None


class _EpisodeRunner:
    """Runs closed-loop MPC episodes of one :class:`_EpisodeJob` in this process."""

    def __init__(self, job: _EpisodeJob, make_env: Callable[[str], gymnasium.Env] | None = None, cost_engine: Any = None) -> None:
        self.job, self.cost_engine = job, cost_engine
        self.model, config, extra = load_checkpoint(job.checkpoint)
        self.p = config.predictor
        self.action_mean = np.asarray(extra.get("action_mean", np.zeros(self.p.action_dim)), dtype=np.float32)
        self.action_std = np.asarray(extra.get("action_std", np.ones(self.p.action_dim)), dtype=np.float32)
        self.env = make_env(job.env_id) if make_env else make_eval_env(job.env_id, job.max_steps)
        self.budget = _budget(self.env, job.max_steps)
        self.radius = getattr(self.env.unwrapped, "success_radius", None)

    def run(self, index: int, episode_seed: int) -> dict[str, Any]:
        """Episode ``index``: its own CEM generator (``SeedSequence([seed, 4, index])``), so an episode's
        outcome does not depend on which episodes ran before it or in which process."""
        job, p, env = self.job, self.p, self.env
        state = np.random.SeedSequence([job.seed, 4, index]).generate_state(2, dtype=np.uint32)
        generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        policy = WorldModelPolicy(self.model, self.action_mean, self.action_std, job.planner_config, job.mpc_config,
                                  self.cost_engine, p.frameskip, generator=generator)  # fmt: skip
        low, high = env.action_space.low, env.action_space.high
        obs, info = env.reset(seed=episode_seed)
        policy.set_goal(info["goal_pixels"], info["goal_proprio"])
        goal_position = np.asarray(info["goal_proprio"], dtype=np.float64)
        positions = [np.asarray(obs["proprio"], dtype=np.float64)]
        steps, done = 0, False
        for _ in range(math.ceil(self.budget / p.frameskip)):
            for action in policy.act(obs["pixels"], obs["proprio"]):
                obs, _, terminated, truncated, info = env.step(np.clip(action, low, high).astype(np.float32))
                positions.append(np.asarray(obs["proprio"], dtype=np.float64))
                steps += 1
                if terminated or truncated or steps >= self.budget:
                    done = True
                    break
            if done:
                break
        # The episode is over: only now is the env's success test read, once, to score it.
        return {
            "seed": episode_seed, "steps": steps, "success": bool(info["is_success"]),
            "final_distance": float(info["distance"]) if "distance" in info else None,
            "reached": _reached(positions, goal_position, self.radius), "plans": policy.mpc.plans,
            "plan_times_s": policy.plan_times_s,
        }  # fmt: skip


_worker_runner: _EpisodeRunner | None = None


def _worker_init(job: _EpisodeJob) -> None:
    global _worker_runner
    torch.set_num_threads(1)
    _worker_runner = _EpisodeRunner(job)


def _worker_episode(task: tuple[int, int]) -> dict[str, Any]:
    assert _worker_runner is not None, "worker used before _worker_init"
    return _worker_runner.run(*task)


def _parallel_episodes(job: _EpisodeJob, seeds: list[int], workers: int, progress: bool) -> list[dict[str, Any]]:
    """The episodes in ``workers`` processes (spawned, one torch thread each), results in episode order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(job,)) as pool:
        results = pool.map(_worker_episode, list(enumerate(seeds)))
        return list(tqdm(results, total=len(seeds), desc=f"eval {job.planner} {job.env_id} x{workers}", unit="ep", disable=not progress))


def _random_episodes(env: gymnasium.Env, seeds: list[int], budget: int, seed: int, radius: float | None, progress: bool) -> list[dict]:
    """The baseline: the same episodes, uniform random actions for the same budget, scored the same way."""
    rng = np.random.default_rng([seed, 2])
    low, high = env.action_space.low, env.action_space.high
    records = []
    for episode_seed in tqdm(seeds, desc="eval random", unit="ep", disable=not progress):
        obs, info = env.reset(seed=episode_seed)
        goal_position = np.asarray(info["goal_proprio"], dtype=np.float64)
        positions = [np.asarray(obs["proprio"], dtype=np.float64)]
        steps = 0
        while steps < budget:
            obs, _, terminated, truncated, info = env.step(rng.uniform(low, high).astype(np.float32))
            positions.append(np.asarray(obs["proprio"], dtype=np.float64))
            steps += 1
            if terminated or truncated:
                break
        records.append({
            "seed": episode_seed, "steps": steps, "success": bool(info["is_success"]),
            "final_distance": float(info["distance"]) if "distance" in info else None,
            "reached": _reached(positions, goal_position, radius),
        })  # fmt: skip
    return records


def summary(result: dict[str, Any]) -> str:
    """Three readable lines of an :func:`evaluate` result."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    cfg = result["planner_config"]
    plan = f"{cfg['kind']}" + (f" {cfg['samples']}x{cfg['iterations']}, horizon {cfg['horizon']}" if "samples" in cfg else "")
    return (
        f"{result['env']}: {result['episodes']} episodes of {result['steps_per_episode']} steps, seed {result['seed']}, "
        f"{plan}, execute {result['mpc_config']['execute_blocks']} blocks per plan\n"
        f"  success at the end: planner {pct(result['success_rate'])}, random {pct(result['random_success_rate'])}"
        f"   (reached at any step: {pct(result['reached_rate'])} / {pct(result['random_reached_rate'])})\n"
        f"  plan time {result['plan_time_s_mean'] or float('nan'):.2f} s mean over {result['plans']} plans "
        f"({result['torch_threads']} torch threads)"
    )


def exported_cost_engine(checkpoint: str | Path, backend: str = "onnxruntime") -> Any:
    """``checkpoint``'s planning cost as an ``edgerun.engines`` Engine: the ``dino-wm-*`` planning entry
    of the export registry with its size (the one named after its env first: ``dino-wm-wall-cpu`` for
    the shipped Wall model, ``dino-wm-pointmaze-cpu`` for PointMaze's), exported from the checkpoint on
    first use into the model cache (``onnxruntime`` -> the ``onnxruntime-cpu`` backend). The export
    checks ONNX Runtime against torch on random inputs and refuses on a mismatch."""
    _, config, extra = load_checkpoint(checkpoint)
    p = config.predictor
    wanted = {"actions": p.action_input_dim, "visual": (p.num_patches, p.visual_dim), "proprio_emb": p.emb_dim}
    name_of_env = env_name(str(extra.get("env", "")))
    names = sorted((n for n in REGISTRY if n.startswith("dino-wm-")), key=lambda n: (name_of_env not in n, n))
    for name in names:
        shapes = {spec.name: spec.shape for spec in REGISTRY[name].inputs}
        if set(shapes) >= set(wanted) and (
            shapes["actions"][-1], tuple(shapes["visual"][-2:]), shapes["proprio_emb"][-1]
        ) == (wanted["actions"], wanted["visual"], wanted["proprio_emb"]):
            return load_exported(name, checkpoint, "onnxruntime-cpu" if backend == "onnxruntime" else backend)
    raise ValueError(f"no dino-wm-* planning entry of the export registry has the size of {checkpoint} ({wanted})")


def eval_main(
    checkpoint: str, env: str, episodes: int, seed: int, json_path: str | None, backend: str = "torch",
    cost_engine: str | None = None, workers: int = 1, max_steps: int | None = None,
) -> int:
    """``edgerun eval dino-wm [--checkpoint C] [--env ENV] [--episodes N] [--seed S] [--json PATH]
    [--backend torch|onnxruntime [--cost-engine ONNX]] [--workers N] [--max-steps N]``.

    With ``--backend onnxruntime`` the CEM samples are scored by the exported planning cost through
    ``edgerun.engines``: ``--cost-engine`` (an ``.onnx`` from ``edgerun export``), or the checkpoint
    exported into the model cache on first use (:func:`exported_cost_engine`).
    Prints a summary; writes the whole result as JSON to ``json_path`` when given. Returns 0, or 2
    after printing ``edgerun eval dino-wm: <error>`` for a missing or unusable checkpoint or bad arguments.
    """

    try:
        engine = None
        if backend != "torch":
            engine = load(cost_engine, "onnxruntime-cpu") if cost_engine else exported_cost_engine(checkpoint, backend)
        result = evaluate(checkpoint, env, episodes, seed, backend=backend, cost_engine=engine, progress=True, workers=workers,
                          max_steps=max_steps)
    except (CheckpointError, EngineError, FileNotFoundError, ValueError, gymnasium.error.Error) as error:
        print(f"edgerun eval dino-wm: {error}", file=sys.stderr)
        return 2
    print(summary(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
