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
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import edgerun.envs  # noqa: F401  (registers the edgerun/... env ids)
import gymnasium
import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint
from .plan import (
    CEM_PRESETS,
    GD_PAPER,
    MPC,
    MPC_PAPER,
    CEMConfig,
    GDConfig,
    MPCConfig,
    block_to_env_actions,
)
from .policy import engine_cost, images_to_model, rollout_cost
from .world_model import DinoWorldModel, Latent

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
    name = env_id.split("/")[-1].split("-")[0].lower()
    return CEM_PRESETS.get(name, CEM_PRESETS["wall"])


def encoder_for(model: DinoWorldModel) -> Callable[[np.ndarray, np.ndarray], Latent]:
    """Observation -> :class:`Latent` (batch 1, one frame) with the checkpoint's frozen encoder."""

    @torch.no_grad()
    def encode(pixels: np.ndarray, proprio: np.ndarray) -> Latent:
        state = torch.tensor(np.asarray(proprio, dtype=np.float32)).reshape(1, 1, -1)
        return model.encode(images_to_model(pixels), state)

    return encode


def _budget(env: gymnasium.Env, max_steps: int | None) -> int:
    if max_steps is not None:
        if max_steps < 1:
            raise ValueError(f"max_steps: expected >= 1, got {max_steps}")
        return int(max_steps)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    return int(limit) if limit else 100


def _reached(positions: list[np.ndarray], goal: np.ndarray, radius: float | None) -> bool | None:
    """Whether any recorded position came within ``radius`` of the goal (after the fact; None if unknown)."""
    if radius is None:
        return None
    distances = np.linalg.norm(np.asarray(positions, dtype=np.float64) - np.asarray(goal, dtype=np.float64), axis=-1)
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
) -> dict[str, Any]:
    """Run ``episodes`` closed-loop MPC episodes and the same episodes with uniform random actions.

    ``planner``: ``"cem"`` (default settings: :func:`default_planner`) or ``"gd"``; ``planner_config``
    overrides them. ``mpc_config``: how many blocks of each plan run before replanning (default the
    paper's: the whole horizon-5 plan, 25 env steps, then a new plan). ``backend``: ``"torch"`` (the
    checkpoint's model scores the CEM samples) or ``"onnxruntime"``: ``cost_engine``, an ``edgerun.engines``
    Engine of the exported planning cost (``edgerun export dino-wm-wall-cpu --checkpoint …``;
    :func:`eval_main` exports it), scores them; observations and goals are still encoded by the
    checkpoint's encoder. CEM only. ``make_env`` builds the env (default ``gymnasium.make``).

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
    model, config, extra = load_checkpoint(checkpoint)
    model.eval()
    p = config.predictor
    action_mean = np.asarray(extra.get("action_mean", np.zeros(p.action_dim)), dtype=np.float32)
    action_std = np.asarray(extra.get("action_std", np.ones(p.action_dim)), dtype=np.float32)
    planner_config = planner_config or default_planner(env_id, planner)
    encode = encoder_for(model)
    seeds = episode_seeds(seed, episodes)
    make_env = make_env or gymnasium.make
    env = make_env(env_id)
    try:
        budget = _budget(env, max_steps)
        blocks = math.ceil(budget / p.frameskip)
        low, high = env.action_space.low, env.action_space.high
        radius = getattr(env.unwrapped, "success_radius", None)
        generator = torch.Generator().manual_seed(seed)
        records: list[dict[str, Any]] = []
        plan_times: list[float] = []
        bar = tqdm(seeds, desc=f"eval {planner} {env_id}", unit="ep", disable=not progress)
        for episode_seed in bar:
            mpc = MPC(p.action_input_dim, planner_config, mpc_config, generator=generator, as_numpy=cost_engine is not None)
            obs, info = env.reset(seed=episode_seed)
            goal = encode(info["goal_pixels"], info["goal_proprio"])
            goal_position = np.asarray(info["goal_proprio"], dtype=np.float64)
            positions = [np.asarray(obs["proprio"], dtype=np.float64)]
            steps, done = 0, False
            for _ in range(blocks):
                cost_fn = None
                if mpc.needs_plan and cost_engine is not None:
                    cost_fn = engine_cost(cost_engine, encode(obs["pixels"], obs["proprio"]), goal)
                elif mpc.needs_plan:
                    cost_fn = rollout_cost(model, encode(obs["pixels"], obs["proprio"]), goal, planner == "gd")
                planned = mpc.needs_plan
                block = mpc.act(cost_fn)
                if planned:
                    plan_times.append(mpc.last_plan.time_s)
                for action in block_to_env_actions(block, action_mean, action_std, p.frameskip):
                    obs, _, terminated, truncated, info = env.step(np.clip(action, low, high).astype(np.float32))
                    positions.append(np.asarray(obs["proprio"], dtype=np.float64))
                    steps += 1
                    if terminated or truncated or steps >= budget:
                        done = True
                        break
                if done:
                    break
            # The episode is over: only now is the env's success test read, once, to score it.
            records.append({
                "seed": episode_seed, "steps": steps, "success": bool(info["is_success"]),
                "final_distance": float(info["distance"]) if "distance" in info else None,
                "reached": _reached(positions, goal_position, radius), "plans": mpc.plans,
            })  # fmt: skip
            bar.set_postfix(success=f"{np.mean([r['success'] for r in records]):.2f}")
        bar.close()
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


def exported_cost_engine(checkpoint: str | Path, out_dir: str | Path, backend: str = "onnxruntime") -> Any:
    """Export ``checkpoint``'s planning cost through the export registry (the ``dino-wm-wall*`` entry of
    its size: ``dino-wm-wall-cpu`` for the shipped model) into ``out_dir`` and load it as an
    ``edgerun.engines`` Engine (``onnxruntime`` -> the ``onnxruntime-cpu`` backend). The export checks
    ONNX Runtime against torch on random inputs and refuses on a mismatch."""
    from edgerun.engines import load
    from edgerun.export.onnx_export import export_model
    from edgerun.export.registry import REGISTRY

    _, config, _ = load_checkpoint(checkpoint)
    p = config.predictor
    wanted = {"actions": p.action_input_dim, "visual": (p.num_patches, p.visual_dim), "proprio_emb": p.emb_dim}
    for name, entry in REGISTRY.items():
        shapes = {spec.name: spec.shape for spec in entry.inputs}
        if name.startswith("dino-wm-wall") and set(shapes) >= set(wanted) and (
            shapes["actions"][-1], tuple(shapes["visual"][-2:]), shapes["proprio_emb"][-1]
        ) == (wanted["actions"], wanted["visual"], wanted["proprio_emb"]):
            onnx_path, _ = export_model(name, Path(out_dir), checkpoint=str(checkpoint))
            return load(onnx_path, "onnxruntime-cpu" if backend == "onnxruntime" else backend)
    raise ValueError(f"no dino-wm-wall* entry of the export registry has the size of {checkpoint} ({wanted})")


def eval_main(
    checkpoint: str, env: str, episodes: int, seed: int, json_path: str | None, backend: str = "torch",
    cost_engine: str | None = None,
) -> int:
    """``edgerun eval dino-wm [--checkpoint C] [--env ENV] [--episodes N] [--seed S] [--json PATH]
    [--backend torch|onnxruntime [--cost-engine ONNX]]``.

    With ``--backend onnxruntime`` the CEM samples are scored by the exported planning cost through
    ``edgerun.engines``: ``--cost-engine`` (an ``.onnx`` from ``edgerun export``), or the checkpoint
    exported here into a temporary directory (:func:`exported_cost_engine`).
    Prints a summary; writes the whole result as JSON to ``json_path`` when given. Returns 0, or 2
    after printing ``edgerun eval dino-wm: <error>`` for a missing or unusable checkpoint or bad arguments.
    """
    from edgerun.engines import EngineError, load

    try:
        with tempfile.TemporaryDirectory(prefix="edgerun-eval-dino-wm-") as tmp:
            engine = None
            if backend != "torch":
                engine = load(cost_engine, "onnxruntime-cpu") if cost_engine else exported_cost_engine(checkpoint, tmp, backend)
            result = evaluate(checkpoint, env, episodes, seed, backend=backend, cost_engine=engine, progress=True)
    except (CheckpointError, EngineError, FileNotFoundError, ValueError, gymnasium.error.Error) as error:
        print(f"edgerun eval dino-wm: {error}", file=sys.stderr)
        return 2
    print(summary(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
