"""``edgerun eval dino-wm --realtime --control-hz H``: the closed loop as deployed, in real processes.

The env node and the planner node of ``graphs/dino_wm_<env>.yaml`` run under the launcher, each in
its own process, with the robot's timing: the env node steps at ``control_hz`` on a wall-clock timer
with the newest actions it has (``control_hz``), and the planner node plans continuously (``anytime``)
and answers each observation at once from its newest plan. The episodes are the offline
evaluation's (:mod:`.episodes`, passed to the env node as ``episode_list``), so the two results
compare episode by episode. Reported, from the env node's ``episode`` messages and the planner's
``plan`` messages: ``success_rate`` (within the radius at the end of the budget), ``reached_rate``,
``steps_to_goal_mean``, ``action_latency_p99_ms`` (observation out to its answer in, over every
answered request), ``held_steps_mean`` (steps no plan covered: the robot held still),
``first_action_s_mean`` (an episode's wait for its first plan; the robot stands still until then,
and its steps count from there), ``replan_hz``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edgerun.envs import env_name
from edgerun.errors import EdgerunError
from edgerun.evaluation.dino_wm.episodes import official_episodes, seeded_episodes
from edgerun.runtime.graph import load_graph
from edgerun.runtime.introspect import listen, topics
from edgerun.runtime.launcher import Launcher
from edgerun.runtime.yaml_files import load_yaml

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


@dataclass(frozen=True)
class RealtimeConfig:
    """The loop's timing and the anytime planner's budget per plan (CEM samples x iterations; the
    warm start carries each plan's work into the next)."""

    control_hz: float = 10.0
    samples: int = 100
    iterations: int = 3
    planner_threads: int = 1  # torch threads of the planner process: leave a core to the env node
    max_steps: int | None = None  # env steps per episode (default: the env's time limit)
    timeout_s: float = 3600.0


def realtime_evaluate(checkpoint: str | Path, env_id: str, episodes: int, seed: int, config: RealtimeConfig = RealtimeConfig(),
                      official: bool = False, planner: str = "free-space") -> dict[str, Any]:
    """Run the episodes through the graph's processes; the result dict (module docstring)."""
    if not config.control_hz > 0:
        raise ValueError(f"control_hz: expected a positive rate, got {config.control_hz}")
    if planner not in ("free-space", "paper"):
        raise ValueError(f"planner: the anytime node plans with CEM ('free-space' or 'paper'), got {planner!r}")
    chosen = official_episodes(env_id, episodes) if official else seeded_episodes(seed, episodes)
    with tempfile.TemporaryDirectory(prefix="er-realtime-") as work:
        graph_path = Path(work) / "graph.yaml"
        graph_path.write_text(yaml.safe_dump(_graph(checkpoint, env_id, chosen, config, planner), sort_keys=False))
        graph = load_graph(graph_path)
        launcher = Launcher(graph, duration_s=config.timeout_s, live_every_s=30.0)
        wanted = {topic: endpoint for topic, endpoint in topics(launcher.state).items() if topic in ("env/episode", "planner/plan")}
        records, plans, done = [], [], threading.Event()

        def collect() -> None:
            for msg in listen(wanted, None, done.is_set):
                (records if msg.topic == "env/episode" else plans).append(msg)

        listener = threading.Thread(target=collect, name="realtime-eval", daemon=True)
        listener.start()
        started = time.monotonic()
        result = launcher.run(install_signal_handlers=False)
        done.set()
        listener.join(timeout=10)
    if len(records) < episodes:
        raise RuntimeError(f"the graph ended (exit code {result.exit_code}) after {len(records)} of {episodes} episodes")
    latencies = np.concatenate([np.asarray(r["action_latencies_ms"], dtype=np.float64) for r in records])
    running_s = sum(float(r["duration_s"]) for r in records)

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return {
        "env": env_id, "episodes": episodes, "seed": seed, "official_episodes": official, "checkpoint": str(checkpoint),
        "planner": planner, "realtime": asdict(config),
        "success_rate": mean([bool(r["success"]) for r in records]),
        "reached_rate": mean([r["steps_to_goal"] >= 0 for r in records]),
        "steps_to_goal_mean": mean([r["steps_to_goal"] for r in records if r["steps_to_goal"] >= 0]),
        "action_latency_p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
        "action_latency_median_ms": float(np.median(latencies)) if len(latencies) else None,
        "held_steps_mean": mean([r["held_steps"] for r in records]),
        "first_action_s_mean": mean([float(r["first_action_s"]) for r in records]),
        "replan_hz": len(plans) / running_s if running_s else None,
        "plan_time_s_mean": mean([float(p["plan_time_s"]) for p in plans]),
        "wall_s": time.monotonic() - started,
        "episode_records": [
            {"seed": int(r["seed"]), "steps": int(r["steps"]), "success": bool(r["success"]), "steps_to_goal": int(r["steps_to_goal"]),
             "duration_s": float(r["duration_s"]), "held_steps": int(r["held_steps"]), "answers": len(r["action_latencies_ms"])}
            for r in records
        ],
    }  # fmt: skip


def _graph(checkpoint: str | Path, env_id: str, chosen: list, config: RealtimeConfig, planner: str) -> dict[str, Any]:
    """The env's shipped graph with its env and planner nodes set for real time and these episodes."""
    graph = load_yaml(GRAPHS / f"dino_wm_{env_name(env_id)}.yaml")
    nodes = {node["id"]: node for node in graph["nodes"]}
    env, planner_node = nodes["env"], nodes["planner"]
    env["params"].update(env_id=env_id, control_hz=config.control_hz, episodes=len(chosen),
                         episode_list=[{"seed": e.seed, "options": _plain(e.options)} for e in chosen])  # fmt: skip
    if config.max_steps is not None:
        env["params"]["env_kwargs"] = {"max_episode_steps": config.max_steps}
    planner_node["params"].update(checkpoint=str(checkpoint), anytime=True, samples=config.samples, iterations=config.iterations,
                                  threads=config.planner_threads, objective="free_space" if planner == "free-space" else "paper")  # fmt: skip
    graph["nodes"] = [node for node in graph["nodes"] if node["id"] in ("env", "planner")]
    graph["name"] = f"{graph['name']}_realtime"
    return graph


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return {key: [float(v) for v in value] for key, value in options.items()}


def realtime_main(checkpoint: str, env_id: str, episodes: int, seed: int, config: RealtimeConfig, official: bool,
                  planner: str, json_path: str | None) -> int:
    """CLI entry: run, print a summary, write JSON; 0, or 2 with one line for bad arguments or a failed run."""
    try:
        result = realtime_evaluate(checkpoint, env_id, episodes, seed, config, official, planner)
    except (EdgerunError, ValueError, RuntimeError) as error:
        print(f"edgerun eval dino-wm --realtime: {error}", file=sys.stderr)
        return 2

    def show(value: float | None, unit: str = "", digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}{unit}"

    print(f"{env_id}: {episodes} {'official ' if official else ''}episodes at {config.control_hz:g} Hz, anytime CEM "
          f"{config.samples}x{config.iterations} ({planner})\n"
          f"  success at the end {show(result['success_rate'])}, reached {show(result['reached_rate'])}, steps to the goal "
          f"{show(result['steps_to_goal_mean'], digits=0)}\n"
          f"  action latency p99 {show(result['action_latency_p99_ms'], ' ms', 1)} (median "
          f"{show(result['action_latency_median_ms'], ' ms', 1)}), replans {show(result['replan_hz'], ' Hz')}, "
          f"held {show(result['held_steps_mean'], digits=1)} steps an episode")  # fmt: skip
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
