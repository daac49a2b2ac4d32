"""Closed-loop evaluation of a DINO-WM checkpoint: MPC in the env, beside random actions.

Protocol (the same for every planner, the perfect-model ceiling and the random baseline):

- episodes: seeded resets (:func:`~.episodes.seeded_episodes`) or, with ``official=True``, the
  official evaluation's 50 start/goal pairs (:func:`~.episodes.official_episodes`); the goal is the
  reset's goal observation (``info["goal_pixels"]``, ``info["goal_proprio"]``), encoded once;
- **a finite budget**: the env's registered time limit, 300 env steps (12 plans of the paper's 25
  steps), whatever happens on the way; the loop ends early only if the env itself ends the episode;
- **scored after the episode** from what was recorded at every step (the env's own ``is_success``
  test and distance; nothing of it reaches the planner, which sees observations and costs only):
  ``success`` = within the radius at the end of the budget; ``success_replan`` = within it at any
  replan point of the paper's planner (every :data:`REPLAN_PERIOD` steps): the official score
  (replan until success) with a finite budget; ``steps_to_goal`` = the first step within it;
- every episode plans with its own generator (``SeedSequence([seed, 4, index])``), so results do not
  depend on episode order or on ``workers``.

The official evaluation instead stops CEM iterations and MPC replanning once the simulator reports
success and has no step budget (``docs/dino_wm.md``); neither is copied.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from tqdm import tqdm

from edgerun.engines import load
from edgerun.envs import env_name
from edgerun.errors import EngineError
from edgerun.evaluation.dino_wm.episodes import Episode, official_episodes, seeded_episodes
from edgerun.export.cache import load_exported
from edgerun.export.registry import REGISTRY
from edgerun.models.dino_wm.checkpoint import CheckpointError, load_checkpoint
from edgerun.pipelines.dino_wm.free_space import FILE_NAME as FREE_SPACE_FILE
from edgerun.pipelines.dino_wm.free_space import FreeSpaceMap
from edgerun.pipelines.dino_wm.plan import CEM_PRESETS, FRAMESKIP, GD_PAPER, MPC_PAPER, CEMConfig, GDConfig, MPCConfig
from edgerun.pipelines.dino_wm.policy import PAPER_OBJECTIVE, MPCPolicy, Objective, WorldModelPlanning, cem_for

PLANNERS = ("free-space", "paper", "gd")
"""``free-space`` (default): the paper's CEM and MPC on the free-space objective; ``paper``: the
paper's planner exactly (CEM, last-state latent objective); ``gd``: the paper's gradient descent."""
BACKENDS = ("torch", "onnxruntime")
REPLAN_PERIOD = 5 * FRAMESKIP
"""Env steps per plan of the paper's planner (horizon 5 blocks, all executed): its replan points."""

RESULT_KEYS = ("env", "episodes", "seed", "success_rate", "success_rate_replan", "random_success_rate",
               "plan_time_s_mean", "steps_to_goal_mean")
"""Keys every :func:`evaluate` result has (among others)."""


@dataclass(frozen=True)
class PlannerSettings:
    """A named planner: the planning algorithm, how much of each plan runs, what a plan is scored by."""

    planner: CEMConfig | GDConfig
    mpc: MPCConfig
    objective: Objective


def planner_settings(env_id: str, planner: str = "free-space", exact_model: bool = False) -> PlannerSettings:
    """The settings of a named planner (:data:`PLANNERS`) on ``env_id``: CEM per env as the paper
    (horizon 5, 300 samples, top 30, 10 iterations; 30 for Push-T), the whole plan executed; what
    the free-space planner's CEM keeps depends on whether the model is exact (:func:`cem_for`)."""
    if planner not in PLANNERS:
        raise ValueError(f"planner: expected one of {PLANNERS}, got {planner!r}")
    if planner == "gd":
        return PlannerSettings(GD_PAPER, MPC_PAPER, PAPER_OBJECTIVE)
    cem = CEM_PRESETS.get(env_name(env_id), CEM_PRESETS["wall"])
    objective = PAPER_OBJECTIVE if planner == "paper" else Objective()
    return PlannerSettings(cem_for(objective, cem, exact_model), MPC_PAPER, objective)


def make_eval_env(env_id: str, max_steps: int | None = None) -> gymnasium.Env:
    """``gymnasium.make``, with the time limit set to ``max_steps`` when a budget is given."""
    return gymnasium.make(env_id) if max_steps is None else gymnasium.make(env_id, max_episode_steps=max_steps)


def episode_budget(env: gymnasium.Env, max_steps: int | None = None) -> int:
    """``max_steps``, else the env's registered time limit."""
    if max_steps is not None:
        return int(max_steps)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    if not limit:
        raise ValueError(f"{env.spec.id if env.spec else env}: no registered time limit; give max_steps")
    return int(limit)


def episode_generator(seed: int, index: int) -> torch.Generator:
    """Episode ``index``'s own planner generator (``SeedSequence([seed, 4, index])``)."""
    state = np.random.SeedSequence([seed, 4, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def run_episode(env: gymnasium.Env, episode: Episode, budget: int, policy: MPCPolicy | None = None,
                rng: np.random.Generator | None = None) -> dict[str, Any]:
    """One episode of ``budget`` env steps, acting with ``policy`` (or uniform random actions from
    ``rng``), scored after it ends (the module docstring): the env's success test on the recorded
    proprio, and its ``is_success`` of the last step, read once."""
    low, high = env.action_space.low, env.action_space.high
    obs, info = env.reset(seed=episode.seed, options=episode.options or None)
    if policy is not None:
        policy.reset()
        policy.set_goal(info["goal_pixels"], info["goal_proprio"])
    states, steps, done = [], 0, False
    while not done:
        if policy is not None:
            block = policy.act(obs["pixels"], obs["proprio"])
        else:
            block = rng.uniform(low, high, size=(1, *low.shape))
        for action in block:
            obs, _, terminated, truncated, info = env.step(np.clip(action, low, high).astype(np.float32))
            states.append(obs["proprio"])
            steps += 1
            done = terminated or truncated or steps >= budget
            if done:
                break
    # The episode is over: only now is anything of the env's success test computed or read.
    within = env.unwrapped.success_of(np.stack(states))
    first = int(np.argmax(within)) + 1 if within.any() else None
    record = {
        "seed": episode.seed, "steps": steps, "success": bool(info["is_success"]),
        "success_replan": bool(within[REPLAN_PERIOD - 1 :: REPLAN_PERIOD].any()),
        "reached": first is not None, "steps_to_goal": first,
        "final_distance": float(info["distance"]) if "distance" in info else None,
    }  # fmt: skip
    if policy is not None:
        record.update(plans=policy.mpc.plans, plan_times_s=list(policy.plan_times_s))
    return record


def load_free_space(checkpoint: str | Path) -> FreeSpaceMap | None:
    """The free-space map beside ``checkpoint`` (``free_space.npz``), or None if there is none."""
    path = Path(checkpoint).with_name(FREE_SPACE_FILE)
    return FreeSpaceMap.load(path) if path.exists() else None


def evaluate(
    checkpoint: str | Path,
    env_id: str,
    episodes: int,
    seed: int,
    planner: str = "free-space",
    backend: str = "torch",
    progress: bool = True,
    *,
    official: bool = False,
    max_steps: int | None = None,
    settings: PlannerSettings | None = None,
    random_baseline: bool = True,
    make_env: Callable[[str], gymnasium.Env] | None = None,
    cost_engine: Any = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Run ``episodes`` closed-loop MPC episodes and the same episodes with uniform random actions.

    ``planner``: a name of :data:`PLANNERS` (:func:`planner_settings`); ``settings`` overrides it.
    ``official``: the official 50 start/goal pairs (the first ``episodes``) instead of seeded resets.
    ``backend``: ``"torch"`` or ``"onnxruntime"``: ``cost_engine``, an ``edgerun.engines`` Engine of the
    exported planning cost (paper objective, CEM), scores the samples. ``make_env`` builds the env
    (default ``gymnasium.make``). ``workers`` > 1 runs the episodes in that many processes (torch
    backend, one thread each); the result does not depend on it.

    Returns a JSON-able dict with at least :data:`RESULT_KEYS` and the details: ``reached_rate``
    (within the radius at any step), final distances, the settings, per-episode records.
    """
    settings = settings or planner_settings(env_id, planner)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend != "torch" and (cost_engine is None or settings.objective.kind != "paper" or not isinstance(settings.planner, CEMConfig)):
        raise ValueError(
            f"backend {backend!r} plans with CEM on the paper objective through an Engine of the exported planning cost: "
            "pass cost_engine (edgerun export dino-wm-wall-cpu --checkpoint CHECKPOINT, then edgerun.engines.load) "
            "and planner 'paper'"
        )
    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"workers: expected >= 1, got {workers}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps: expected >= 1, got {max_steps}")
    if workers > 1 and (cost_engine is not None or make_env is not None):
        raise ValueError("workers > 1 runs torch episodes in worker processes: it takes neither cost_engine nor make_env")
    chosen = official_episodes(env_id, episodes) if official else seeded_episodes(seed, episodes)
    job = _EpisodeJob(str(checkpoint), env_id, seed, settings, max_steps)
    if workers > 1:
        _EpisodeRunner(job)  # a bad checkpoint or a missing map fails here, with its message, not in a worker
        records = _parallel_episodes(job, chosen, workers, progress)
        env = make_eval_env(env_id, max_steps)
    else:
        runner = _EpisodeRunner(job, make_env=make_env, cost_engine=cost_engine)
        env = runner.env
        try:
            bar = tqdm(list(enumerate(chosen)), desc=f"eval {planner} {env_id}", unit="ep", disable=not progress)
            records = []
            for index, episode in bar:
                records.append(runner.run(index, episode))
                bar.set_postfix(success=f"{np.mean([r['success'] for r in records]):.2f}")
            bar.close()
        except BaseException:
            env.close()
            raise
    try:
        budget = episode_budget(env, max_steps)
        rng = np.random.default_rng([seed, 2])
        baseline = [run_episode(env, episode, budget, rng=rng)
                    for episode in tqdm(chosen if random_baseline else [], desc="eval random", unit="ep", disable=not progress)]
    finally:
        env.close()
    return {"env": env_id, "episodes": episodes, "seed": seed, "official_episodes": official, "checkpoint": str(checkpoint),
            "planner": planner, "backend": backend, **scores(records, baseline, budget, settings)}  # fmt: skip


def scores(records: list[dict], baseline: list[dict], budget: int, settings: PlannerSettings) -> dict[str, Any]:
    """The protocol's numbers from per-episode records (planner and random)."""

    def rate(rows: list[dict], key: str) -> float | None:
        values = [row[key] for row in rows if row.get(key) is not None]
        return float(np.mean(values)) if values else None

    plan_times = [t for record in records for t in record.pop("plan_times_s")]
    return {
        "success_rate": rate(records, "success"),
        "success_rate_replan": rate(records, "success_replan"),
        "random_success_rate": rate(baseline, "success"),
        "random_success_rate_replan": rate(baseline, "success_replan"),
        "reached_rate": rate(records, "reached"),
        "random_reached_rate": rate(baseline, "reached"),
        "steps_to_goal_mean": rate(records, "steps_to_goal"),
        "final_distance_mean": rate(records, "final_distance"),
        "random_final_distance_mean": rate(baseline, "final_distance"),
        "plan_time_s_mean": float(np.mean(plan_times)) if plan_times else None,
        "plans": len(plan_times),
        "steps_per_episode": budget,
        "scoring": f"after the episode, from the env's is_success recorded at every step: success = at the end of "
        f"{budget} steps; success_replan = at any replan point (every {REPLAN_PERIOD} steps); reached = at any step; "
        "steps_to_goal = first step within the radius (episodes that reach it)",
        "planner_config": {"kind": type(settings.planner).__name__, **asdict(settings.planner)},
        "mpc_config": asdict(settings.mpc),
        "objective": asdict(settings.objective),
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
    settings: PlannerSettings
    max_steps: int | None


class _EpisodeRunner:
    """Runs closed-loop MPC episodes of one :class:`_EpisodeJob` in this process."""

    def __init__(self, job: _EpisodeJob, make_env: Callable[[str], gymnasium.Env] | None = None, cost_engine: Any = None) -> None:
        self.job = job
        model, config, extra = load_checkpoint(job.checkpoint)
        action_dim = config.predictor.action_dim
        mean = np.asarray(extra.get("action_mean", np.zeros(action_dim)), dtype=np.float32)
        std = np.asarray(extra.get("action_std", np.ones(action_dim)), dtype=np.float32)
        self.model = WorldModelPlanning(model, mean, std, cost_engine)
        self.free_space = load_free_space(job.checkpoint) if job.settings.objective.kind == "free_space" else None
        MPCPolicy(self.model, job.settings.planner, job.settings.mpc, job.settings.objective, self.free_space)  # refuse early
        self.env = make_env(job.env_id) if make_env else make_eval_env(job.env_id, job.max_steps)
        self.budget = episode_budget(self.env, job.max_steps)

    def run(self, index: int, episode: Episode) -> dict[str, Any]:
        settings = self.job.settings
        policy = MPCPolicy(self.model, settings.planner, settings.mpc, settings.objective, self.free_space,
                           generator=episode_generator(self.job.seed, index))  # fmt: skip
        return run_episode(self.env, episode, self.budget, policy)


_worker_runner: _EpisodeRunner | None = None


def _worker_init(job: _EpisodeJob) -> None:
    global _worker_runner
    torch.set_num_threads(1)
    _worker_runner = _EpisodeRunner(job)


def _worker_episode(task: tuple[int, Episode]) -> dict[str, Any]:
    assert _worker_runner is not None, "worker used before _worker_init"
    return _worker_runner.run(*task)


def _parallel_episodes(job: _EpisodeJob, chosen: list[Episode], workers: int, progress: bool) -> list[dict[str, Any]]:
    """The episodes in ``workers`` processes (spawned, one torch thread each), results in episode order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(job,)) as pool:
        results = pool.map(_worker_episode, list(enumerate(chosen)))
        return list(tqdm(results, total=len(chosen), desc=f"eval {job.env_id} x{workers}", unit="ep", disable=not progress))


def summary(result: dict[str, Any]) -> str:
    """Three readable lines of an :func:`evaluate` result (or of the ceiling's)."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    cfg = result["planner_config"]
    plan = f"{cfg['kind']}" + (f" {cfg['samples']}x{cfg['iterations']}, horizon {cfg['horizon']}" if "samples" in cfg else "")
    steps = result["steps_to_goal_mean"]
    plan_time = result.get("plan_time_s_mean")
    return (
        f"{result['env']}: {result['episodes']} {'official ' if result.get('official_episodes') else ''}episodes of "
        f"{result['steps_per_episode']} steps, {plan} on the {result['objective']['kind']} objective, execute "
        f"{result['mpc_config']['execute_blocks']} blocks per plan\n"
        f"  success at the end: planner {pct(result['success_rate'])}, random {pct(result['random_success_rate'])}"
        f"   at a replan point: {pct(result['success_rate_replan'])} / {pct(result['random_success_rate_replan'])}\n"
        f"  steps to the goal {'n/a' if steps is None else f'{steps:.0f}'} mean; plan time "
        f"{'n/a' if plan_time is None else f'{plan_time:.2f} s'} mean over {result.get('plans', 0)} plans ({result['torch_threads']} torch threads)"
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
    cost_engine: str | None = None, workers: int = 1, max_steps: int | None = None, planner: str = "free-space",
    official: bool = False,
) -> int:
    """``edgerun eval dino-wm [--checkpoint C] [--env ENV] [--episodes N] [--seed S] [--official-episodes]
    [--planner free-space|paper|gd] [--json PATH] [--backend torch|onnxruntime [--cost-engine ONNX]] [--workers N]
    [--max-steps N]``.

    With ``--backend onnxruntime`` the CEM samples are scored by the exported planning cost through
    ``edgerun.engines`` (the paper's planner): ``--cost-engine`` (an ``.onnx`` from ``edgerun export``),
    or the checkpoint exported into the model cache on first use (:func:`exported_cost_engine`).
    Prints a summary; writes the whole result as JSON to ``json_path`` when given. Returns 0, or 2
    after printing ``edgerun eval dino-wm: <error>`` for a missing or unusable checkpoint or bad arguments.
    """

    try:
        engine = None
        if backend != "torch":
            engine = load(cost_engine, "onnxruntime-cpu") if cost_engine else exported_cost_engine(checkpoint, backend)
        result = evaluate(checkpoint, env, episodes, seed, planner, backend=backend, cost_engine=engine, progress=True,
                          workers=workers, max_steps=max_steps, official=official)  # fmt: skip
    except (CheckpointError, EngineError, FileNotFoundError, ValueError, gymnasium.error.Error) as error:
        print(f"edgerun eval dino-wm: {error}", file=sys.stderr)
        return 2
    print(summary(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
