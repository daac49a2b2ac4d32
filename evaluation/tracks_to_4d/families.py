"""``edgerun eval tracks-to-4d --holdout-families``: TracksTo4D on scene families training never
sees, beside the trivial baselines.

The split is by family, not by seed: :data:`~edgerun.sim.point_scenes.HOLDOUT_FAMILIES` have camera
paths (dolly, handheld), backgrounds (a room, a ground plane to a far backdrop), lenses and depth
ranges no training family has, more and faster movers and more outliers; scenes are drawn with the
held-out seed. Each scene is one window of T = 10, 20 or 40 frames and ~1,000 tracks, run through
:func:`~edgerun.pipelines.tracks_to_4d.sequence.reconstruct_tracks` (what ``edgerun reconstruct``
runs) with ``--refine none`` and ``--refine ba``, beside the classical baseline, a camera that never
moves (identity poses: ATE = the true path's spread) and a constant depth (AbsRel of the median).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from edgerun import shipped
from edgerun.evaluation.tracks_to_4d.metrics import ate, depth_metrics, depths
from edgerun.pipelines.tracks_to_4d.classical import classical_reconstruction
from edgerun.pipelines.tracks_to_4d.reconstruct import WindowModel
from edgerun.pipelines.tracks_to_4d.sequence import reconstruct_tracks
from edgerun.sim.point_scenes import HELD_OUT_SEED, HOLDOUT_FAMILIES, Scene, family_config, generate_split

METHODS = ("feedforward", "ba", "classical", "no_motion")


@dataclass(frozen=True)
class FamilyEvalConfig:
    checkpoint: str = shipped("tracks_to_4d/model.pt")
    families: tuple[str, ...] = HOLDOUT_FAMILIES
    window_lengths: tuple[int, ...] = (10, 20, 40)
    scenes: int = 6  # per family and window length
    points: int = 1000
    seed: int = HELD_OUT_SEED


def scene_metrics(cam_from_world: np.ndarray, depth: np.ndarray, scene: Scene) -> dict[str, float]:
    """ATE of ``cam_from_world`` (T, 4, 4), AbsRel of ``depth`` (N, T) on the visible points, and on
    the visible static points alone (``absrel_static``: what bundle adjustment refines; a moving
    object's scale is not observable from its tracks)."""
    visible = scene.tracks[:, 2].T > 0.5
    reference = depths(scene.points_world, scene.cam_from_world)
    reference = np.where(np.isfinite(reference), reference, -1.0)
    absrel, _ = depth_metrics(depth.T, reference, visible)
    absrel_static, _ = depth_metrics(depth.T, reference, visible & ~scene.dynamic[None, :])
    return {"ate": ate(cam_from_world, scene.cam_from_world), "absrel": absrel, "absrel_static": absrel_static}


def evaluate_scene(network: WindowModel, scene: Scene) -> tuple[dict[str, dict[str, float]], dict]:
    """→ (metrics per method, BA's report for this window)."""
    frames = scene.tracks.shape[2]
    results = {}
    for method, refine in (("feedforward", "none"), ("ba", "ba")):
        result = reconstruct_tracks(network, scene.tracks, scene.K, window=0, refine=refine)
        results[method] = scene_metrics(result.cam_from_world, result.depth, scene)
    report = result.windows[0]
    results["no_motion"] = scene_metrics(np.tile(np.eye(4), (frames, 1, 1)), np.ones((len(scene.tracks), frames)), scene)
    try:
        classical = classical_reconstruction(scene.tracks, scene.K)
        rotations, translations = classical.cam_from_world[:, :3, :3], classical.cam_from_world[:, :3, 3]
        classical_depth = (np.einsum("tij,nj->nti", rotations, classical.points) + translations[None])[..., 2]
        results["classical"] = scene_metrics(classical.cam_from_world, classical_depth, scene)
    except ValueError:  # no two-view start: the classical answer is a camera that never moved
        results["classical"] = {**results["no_motion"], "failed": 1.0}
    return results, {"refine_s": report.refine_s, "refined": report.refined, "reason": report.reason}


def run_evaluation(config: FamilyEvalConfig, progress: bool = True) -> dict:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    threadpool_limits(1)  # BLAS: see pyproject.toml
    cv2.setRNGSeed(0)  # RANSAC: the same figures every run
    network = WindowModel(config.checkpoint)
    rows = []
    cells = [(family, length) for family in config.families for length in config.window_lengths]
    bar = tqdm(total=len(cells) * config.scenes, desc="held-out families", unit="scene", disable=not progress)
    for family, length in cells:
        scenes = generate_split(config.seed, config.scenes, family_config(family, frames=length, points=config.points))
        for index, scene in enumerate(scenes):
            metrics, ba = evaluate_scene(network, scene)
            rows.append({"family": family, "frames": length, "scene": index, **{f"{k}_{m}": v[k] for m, v in metrics.items() for k in v},
                         **{f"ba_{k}": v for k, v in ba.items()}})
            bar.update(1)
    bar.close()
    return summarise(rows, config)


def summarise(rows: list[dict], config: FamilyEvalConfig) -> dict:
    mean = lambda key, subset=rows: float(np.mean([r[key] for r in subset]))
    summary: dict = {
        "split": "scene families no training family resembles (sim.point_scenes.HOLDOUT_FAMILIES), drawn with the held-out seed; "
                 "one window per scene, whole; tracks ~1,000 per scene",
        "config": asdict(config), "scenes": len(rows),
        **{f"ate_{m}": mean(f"ate_{m}") for m in METHODS},
        **{f"absrel_{m}": mean(f"absrel_{m}") for m in METHODS if m != "no_motion"},
        "absrel_constant_depth": mean("absrel_no_motion"),
        **{f"absrel_static_{m}": mean(f"absrel_static_{m}") for m in ("feedforward", "ba")},
    }
    twenty = [r["ba_refine_s"] for r in rows if r["frames"] == 20]
    summary["ba_seconds_per_window_p50"] = float(np.median(twenty)) if twenty else None
    summary["ba_seconds_per_window_max"] = float(np.max(twenty)) if twenty else None
    summary["ba_kept_feedforward"] = sum(not r["ba_refined"] for r in rows)
    summary["classical_failures"] = sum(int(r.get("failed_classical", 0)) for r in rows)
    summary["ba_kept_reasons"] = sorted({r["ba_reason"] for r in rows if r["ba_reason"]})
    summary["absrel_ba_worse_scenes"] = sum(r["absrel_ba"] > r["absrel_feedforward"] for r in rows)
    summary["absrel_static_ba_worse_scenes"] = sum(r["absrel_static_ba"] > r["absrel_static_feedforward"] for r in rows)
    summary["by_family_frames"] = {
        f"{family}/T={length}": {key: mean(key, subset) for key in
                                 ("ate_feedforward", "ate_ba", "ate_classical", "ate_no_motion", "absrel_feedforward", "absrel_ba", "absrel_classical", "absrel_no_motion")}
        for family in config.families for length in config.window_lengths
        if (subset := [r for r in rows if r["family"] == family and r["frames"] == length])
    }
    for cell in summary["by_family_frames"].values():
        cell["absrel_constant_depth"] = cell.pop("absrel_no_motion")
    summary["bars"] = {
        "ate_feedforward <= 0.5 x ate_no_motion": summary["ate_feedforward"] <= 0.5 * summary["ate_no_motion"],
        "every family and T: ate_feedforward <= 0.5 x ate_no_motion": all(c["ate_feedforward"] <= 0.5 * c["ate_no_motion"] for c in summary["by_family_frames"].values()),
        "ate_ba <= 0.5 x ate_classical": summary["ate_ba"] <= 0.5 * summary["ate_classical"],
        "absrel_ba <= absrel_feedforward": summary["absrel_ba"] <= summary["absrel_feedforward"],
        "absrel_ba <= absrel_feedforward on every scene": summary["absrel_ba_worse_scenes"] == 0,
        "ba_seconds_per_window_p50 <= 1.0 (T = 20)": summary["ba_seconds_per_window_p50"] is not None and summary["ba_seconds_per_window_p50"] <= 1.0,
    }
    summary["rows"] = rows
    return summary


def print_table(summary: dict) -> None:
    print(f"\nheld-out families ({summary['scenes']} scenes): ATE (scene units) and AbsRel")
    print(f"{'family / T':<24}{'FF':>8}{'+BA':>8}{'classic':>9}{'still':>8} | {'FF':>7}{'+BA':>7}{'classic':>9}{'const':>7}")
    for cell, m in summary["by_family_frames"].items():
        print(f"{cell:<24}{m['ate_feedforward']:8.3f}{m['ate_ba']:8.3f}{m['ate_classical']:9.3f}{m['ate_no_motion']:8.3f} | "
              f"{m['absrel_feedforward']:7.3f}{m['absrel_ba']:7.3f}{m['absrel_classical']:9.3f}{m['absrel_constant_depth']:7.3f}")
    s = summary
    print(f"{'all':<24}{s['ate_feedforward']:8.3f}{s['ate_ba']:8.3f}{s['ate_classical']:9.3f}{s['ate_no_motion']:8.3f} | "
          f"{s['absrel_feedforward']:7.3f}{s['absrel_ba']:7.3f}{s['absrel_classical']:9.3f}{s['absrel_constant_depth']:7.3f}")
    print(f"BA per 20-frame window: p50 {s['ba_seconds_per_window_p50']:.2f} s (max {s['ba_seconds_per_window_max']:.2f}); "
          f"kept the feed-forward result on {s['ba_kept_feedforward']} windows; AbsRel worse after BA on {s['absrel_ba_worse_scenes']} scenes")
    print(f"static points alone: AbsRel FF {s['absrel_static_feedforward']:.3f}, +BA {s['absrel_static_ba']:.3f}; "
          f"worse after BA on {s['absrel_static_ba_worse_scenes']} scenes")
    for bar, met in s["bars"].items():
        print(f"  bar {bar}: {'met' if met else 'MISSED'}")


def families_main(checkpoint: str, scenes: int, json_path: str | None, window_lengths: tuple[int, ...] = (10, 20, 40)) -> int:
    if not Path(checkpoint).is_file():
        print(f"no checkpoint at {checkpoint}: train one with `edgerun train tracks-to-4d` or pass --checkpoint")
        return 2
    started = time.perf_counter()
    summary = run_evaluation(FamilyEvalConfig(checkpoint=checkpoint, scenes=scenes, window_lengths=window_lengths))
    summary["seconds"] = time.perf_counter() - started
    print_table(summary)
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2, default=float))
        print(f"wrote {json_path}")
    return 0
