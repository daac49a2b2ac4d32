"""``edgerun eval tracks-to-4d``: the paper's metrics for feed-forward, +BA, +FT and a classical
baseline, on held-out generated scenes and end to end on rendered image sequences.

Held-out scenes (:func:`.synthetic.generate_split` with the training's held-out seed) give one
20-frame window each, with exact ground truth. The rendered sequences (:mod:`.render`) go
through the whole real-time path: images → KLT tracker → windows of 20 frames, overlap 10 → one
reconstruction per window → poses chained across windows → ATE over the whole sequence; their
depth ground truth comes from the surfaces under the tracked points.

Every figure is a mean over scenes (ATE also as a median); times are per window, on this CPU.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from edgerun import shipped
from edgerun.evaluation.tracks_to_4d.metrics import ate, depth_metrics, depths, rpe
from edgerun.models.tracks_to_4d.checkpoint import load_checkpoint
from edgerun.models.tracks_to_4d.geometry import align_trajectory, camera_centres
from edgerun.models.tracks_to_4d.network import TracksTo4D
from edgerun.pipelines.tracks_to_4d.classical import classical_reconstruction
from edgerun.pipelines.tracks_to_4d.reconstruct import (
    WindowReconstruction,
    feed_forward,
    with_bundle_adjustment,
    with_fine_tuning,
)
from edgerun.pipelines.tracks_to_4d.tracking import track_sequence
from edgerun.pipelines.tracks_to_4d.windows import chain_windows
from edgerun.sim.point_scenes import HELD_OUT_SEED, generate_split
from edgerun.sim.textured_scenes import RenderConfig, render_sequence, track_ground_truth

METHODS = ("feedforward", "ba", "ft", "classical")
RENDER_SEED = 7_000_001  # rendered sequences for the end-to-end check (no training ever renders)


@dataclass(frozen=True)
class PipelineEvalConfig:
    checkpoint: str = shipped("tracks_to_4d/model.pt")
    scenes: int = 20
    seed: int = HELD_OUT_SEED
    fine_tune_steps: int = 50
    fine_tune_lr: float = 1e-3  # the training lr (1e-4) moves the small model too little in 50 steps
    rendered: int = 2  # rendered image sequences (0: skip the end-to-end part)
    rendered_frames: int = 40
    plot: str = ""  # PNG of the first rendered sequence's trajectories ("" for none)


def classical_window(tracks_px: np.ndarray, K: np.ndarray) -> WindowReconstruction:
    result = classical_reconstruction(tracks_px, K)
    frames = len(result.cam_from_world)
    points = np.repeat(result.points[None], frames, axis=0)
    return WindowReconstruction(result.cam_from_world, points, np.ones(len(result.points)), np.ones(frames))


def method_runners(model: TracksTo4D, config: PipelineEvalConfig) -> dict[str, Callable[[np.ndarray, np.ndarray], WindowReconstruction]]:
    """Each method as ``run(tracks_px (N, 3, T), K) -> WindowReconstruction``; +BA starts from the
    feed-forward output (and is timed with it)."""

    def ba(tracks: np.ndarray, K: np.ndarray) -> WindowReconstruction:
        return with_bundle_adjustment(feed_forward(model, tracks, K), tracks, K).reconstruction  # the network's answer when BA would not help

    return {
        "feedforward": lambda tracks, K: feed_forward(model, tracks, K),
        "ba": ba,
        "ft": lambda tracks, K: with_fine_tuning(model, tracks, K, config.fine_tune_steps, config.fine_tune_lr),
        "classical": classical_window,
    }


def window_metrics(reconstruction: WindowReconstruction, cam_from_world: np.ndarray, points_world: np.ndarray, visible: np.ndarray) -> dict[str, float]:
    """ATE, RPE and depth metrics of one window against its ground truth (visible points only for depth)."""
    rpe_t, rpe_r = rpe(reconstruction.cam_from_world, cam_from_world)
    reference = depths(points_world, cam_from_world)
    reference = np.where(np.isfinite(reference), reference, -1.0)
    absrel, delta = depth_metrics(reconstruction.points_camera()[..., 2], reference, visible)
    return {"ate": ate(reconstruction.cam_from_world, cam_from_world), "rpe_t": rpe_t, "rpe_r": rpe_r, "absrel": absrel, "delta125": delta}


def evaluate_scenes(model: TracksTo4D, config: PipelineEvalConfig) -> dict[str, list[dict[str, float]]]:
    runners = method_runners(model, config)
    results: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    for scene in tqdm(generate_split(config.seed, config.scenes), desc="held-out scenes", unit="scene"):
        visible = scene.tracks[:, 2].T > 0.5
        for method, run in runners.items():
            started = time.perf_counter()
            try:
                reconstruction = run(scene.tracks, scene.K)
            except ValueError:
                results[method].append({"failed": 1.0})
                continue
            elapsed = time.perf_counter() - started
            results[method].append({**window_metrics(reconstruction, scene.cam_from_world, scene.points_world, visible), "time_s": elapsed})
    return results


def evaluate_rendered(model: TracksTo4D, config: PipelineEvalConfig) -> tuple[dict[str, list[dict[str, float]]], float, dict[str, np.ndarray]]:
    """End to end: rendered frames → KLT → windows → each method → chained trajectory.
    → (per-method, per-sequence metrics; KLT frames per second; the first sequence's true and
    chained (Sim(3)-aligned) camera-from-world trajectories by method, for the plot)."""
    runners = method_runners(model, config)
    results: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    first: dict[str, np.ndarray] = {}
    tracked_frames, tracking_s = 0, 0.0
    for index in tqdm(range(config.rendered), desc="rendered sequences", unit="seq"):
        sequence = render_sequence(RENDER_SEED + index, RenderConfig(frames=config.rendered_frames))
        started = time.perf_counter()
        windows = track_sequence(sequence.images)
        tracking_s += time.perf_counter() - started
        tracked_frames += len(sequence.images)
        truths = [track_ground_truth(sequence, w.tracks, w.frames)[0] for w in windows]
        for method, run in runners.items():
            poses, relative, inliers, elapsed = [], [], [], 0.0
            for window, truth in zip(windows, truths):
                started = time.perf_counter()
                try:
                    reconstruction = run(window.tracks, sequence.K)
                except ValueError:
                    reconstruction = WindowReconstruction(np.tile(np.eye(4), (len(window.frames), 1, 1)), np.zeros((len(window.frames), len(window.tracks), 3)), np.ones(len(window.tracks)), np.ones(len(window.frames)))
                elapsed += time.perf_counter() - started
                poses.append(reconstruction.cam_from_world)
                reference = depths(np.nan_to_num(truth, nan=0.0), sequence.cam_from_world[window.frames])
                valid = (window.tracks[:, 2].T > 0.5) & np.isfinite(truth[..., 0])
                absrel, delta = depth_metrics(reconstruction.points_camera()[..., 2], np.where(valid, reference, -1.0), valid)
                relative.append(absrel)
                inliers.append(delta)
            chained = chain_windows([w.start for w in windows], poses)
            frames = np.arange(windows[0].start, windows[0].start + len(chained))
            reference = sequence.cam_from_world[frames]
            rpe_t, rpe_r = rpe(chained, reference)
            if index == 0:
                first["reference"], first[method] = reference, align_trajectory(chained, reference)[0]
            results[method].append({
                "ate": ate(chained, reference), "rpe_t": rpe_t, "rpe_r": rpe_r,
                "absrel": float(np.mean(relative)), "delta125": float(np.mean(inliers)), "time_s": elapsed / len(windows),
            })
    return results, tracked_frames / max(tracking_s, 1e-9), first


def plot_trajectories(trajectories: dict[str, np.ndarray], path: Path) -> None:
    """Top view (x, z) of the camera centres: the truth and each method, Sim(3)-aligned to it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 5))
    for name, poses in trajectories.items():
        centres = camera_centres(poses)
        axes.plot(centres[:, 0], centres[:, 2], "k-" if name == "reference" else "-", lw=2.5 if name == "reference" else 1.2,
                  label="ground truth" if name == "reference" else name)
    axes.set(xlabel="x (m)", ylabel="z (m)", title="rendered sequence 0: KLT → windows → chained cameras", aspect="equal")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def summarise(results: dict[str, list[dict[str, float]]], prefix: str = "") -> dict[str, float]:
    summary: dict[str, float] = {}
    for method, rows in results.items():
        good = [r for r in rows if "failed" not in r]
        summary[f"{prefix}failures_{method}"] = len(rows) - len(good)
        if not good:
            continue
        for key in ("ate", "rpe_t", "rpe_r", "absrel", "delta125", "time_s"):
            summary[f"{prefix}{key}_{method}"] = float(np.mean([r[key] for r in good]))
        summary[f"{prefix}ate_median_{method}"] = float(np.median([r["ate"] for r in good]))
    return summary


def run_evaluation(config: PipelineEvalConfig) -> dict:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    threadpool_limits(1)  # BLAS: see pyproject.toml
    cv2.setRNGSeed(0)  # RANSAC (classical baseline, BA's rigidity check): the same figures every run
    model, _, meta = load_checkpoint(config.checkpoint)
    model.eval()
    summary: dict = {"config": asdict(config), "checkpoint_steps": meta.get("steps") if isinstance(meta, dict) else None}
    summary.update(summarise(evaluate_scenes(model, config)))
    if config.rendered:
        rendered, fps, trajectories = evaluate_rendered(model, config)
        summary.update(summarise(rendered, "e2e_"))
        summary["e2e_klt_fps"] = fps
        if config.plot:
            plot_trajectories(trajectories, Path(config.plot))
    summary["ba_below_classical"] = summary.get("ate_ba", np.inf) < summary.get("ate_classical", -np.inf)
    summary["ba_below_half_feedforward"] = summary.get("ate_ba", np.inf) < 0.5 * summary.get("ate_feedforward", -np.inf)
    return summary


def print_table(summary: dict) -> None:
    for prefix, title in (("", "held-out generated scenes (one 20-frame window each)"), ("e2e_", "rendered sequences through the KLT tracker (windows chained)")):
        if f"{prefix}ate_feedforward" not in summary:
            continue
        print(f"\n{title}")
        print(f"{'method':<12}{'ATE':>9}{'ATE med':>9}{'RPE-t':>9}{'RPE-r°':>9}{'AbsRel':>9}{'δ<1.25':>9}{'ms/win':>9}{'failed':>8}")
        for method in METHODS:
            if f"{prefix}ate_{method}" not in summary:
                print(f"{method:<12}  (every window failed)")
                continue
            get = lambda key, method=method, prefix=prefix: summary[f"{prefix}{key}_{method}"]
            print(f"{method:<12}{get('ate'):9.4f}{get('ate_median'):9.4f}{get('rpe_t'):9.4f}{get('rpe_r'):9.3f}"
                  f"{get('absrel'):9.4f}{get('delta125'):9.3f}{1e3 * get('time_s'):9.1f}{get('failures'):8d}")
    if "e2e_klt_fps" in summary:
        print(f"\nKLT tracker: {summary['e2e_klt_fps']:.0f} frames/s (640x480, grid 15, one thread)")
    print(f"bar: ATE with BA below classical: {summary['ba_below_classical']}; below half of feed-forward: {summary['ba_below_half_feedforward']}")


def eval_main(checkpoint: str, scenes: int, json_path: str | None, rendered: int = 2, fine_tune_steps: int = 50) -> int:
    if not Path(checkpoint).is_file():
        print(f"no checkpoint at {checkpoint}: train one with `edgerun train tracks-to-4d` or pass --checkpoint")
        return 2
    plot = str(Path(json_path).with_suffix(".png")) if json_path and rendered else ""
    summary = run_evaluation(PipelineEvalConfig(checkpoint=checkpoint, scenes=scenes, rendered=rendered, fine_tune_steps=fine_tune_steps, plot=plot))
    print_table(summary)
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2, default=float))
        print(f"wrote {json_path}" + (f" and {plot}" if plot else ""))
    return 0
