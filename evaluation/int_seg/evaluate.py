"""``edgerun eval int-seg``: INT against its ablations on the held-out generated camouflage set.

Methods, each on the same images (``generate_split(TEST_SEED, images)``, never used in training):

- ``int``: the full loop, I = 5; ``int_i1`` … ``int_i5`` are I = 1 … 5. The loop is
  deterministic and iteration k does not depend on I, so I = k is read off the I = 5 run: the
  final mask is chosen among its first k iteration masks;
- ``no_mining``: the loop without negative mining (the detector's most confident name), I = 5;
- ``generic``: the task-generic prompt straight to the detector and segmenter;
- ``all_zero``: an empty mask, the trivial baseline a segmenter must beat;
- ``int_gated``: what the segmenter node publishes: INT's mask, or the empty mask where its mining
  score is under the components' ``min_mining_score`` (``edgerun eval int-seg --calibrate-gate``).

Metrics (py_sod_metrics, on the binary masks as 0/255 maps): MAE, weighted Fβ (Fβʷ), mean Eφ,
Sα; and mIoU (the mean over images of each mask's IoU with the ground truth). Per-image latency
is reported per stage. The paper's CHAMELEON figures are written beside ours.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import py_sod_metrics
from tqdm import tqdm

from edgerun.envs.robot_camera import robot_camera_samples
from edgerun.evaluation.int_seg.component_metrics import mask_iou
from edgerun.pipelines.int_seg.algorithm import INTConfig, INTResult, closest_to_mean, is_trusted, run_generic, run_int, synthetic_task_config
from edgerun.pipelines.int_seg.components import ComponentError, load_components
from edgerun.sim.camouflage import TEST_SEED, generate_split

PAPER = {
    "chameleon": {"mae": 0.039, "f_beta": 0.801, "e_phi": 0.906, "s_alpha": 0.842},
    "camo": {"mae": 0.086, "f_beta": 0.734, "e_phi": 0.853, "s_alpha": 0.772},
    "cod10k": {"mae": 0.037, "f_beta": 0.722, "e_phi": 0.883, "s_alpha": 0.808},
    "chameleon_ablation_s_alpha": {"int_i1": 0.794, "no_mining": 0.746},
}
RESULT_KEYS = ("s_alpha_int", "s_alpha_no_mining", "s_alpha_generic", "mae_int", "mae_no_mining", "mae_generic")


class MaskMetrics:
    """Accumulates MAE, Fβʷ, Eφ (mean), Sα and mIoU over (prediction, ground truth) bool masks."""

    def __init__(self) -> None:
        self.mae, self.f_beta = py_sod_metrics.MAE(), py_sod_metrics.WeightedFmeasure()
        self.e_phi, self.s_alpha = py_sod_metrics.Emeasure(), py_sod_metrics.Smeasure()
        self.ious: list[float] = []

    def add(self, prediction: np.ndarray, truth: np.ndarray) -> None:
        pred, gt = prediction.astype(np.uint8) * 255, truth.astype(np.uint8) * 255
        for metric in (self.mae, self.f_beta, self.e_phi, self.s_alpha):
            metric.step(pred=pred, gt=gt)
        self.ious.append(mask_iou(prediction, truth))

    def results(self) -> dict[str, float]:
        return {
            "mae": float(self.mae.get_results()["mae"]),
            "f_beta": float(self.f_beta.get_results()["wfm"]),
            "e_phi": float(self.e_phi.get_results()["em"]["curve"].mean()),
            "s_alpha": float(self.s_alpha.get_results()["sm"]),
            "miou": float(np.mean(self.ious)),
        }


def first_iterations(result: INTResult, count: int) -> np.ndarray:
    """The final mask INT with I = ``count`` gives: the closest to the mean of the first ``count`` masks."""
    masks = [record.mask for record in result.iterations[:count]]
    return masks[closest_to_mean(masks)]


def evaluate(components: Any, images: int, config: INTConfig, seed: int = TEST_SEED, progress: bool = True,
             figure: str | Path | None = None, samples: list | None = None) -> dict[str, Any]:
    """The metrics of every method (see the module docstring); with ``figure``, a PNG of the first images.
    ``samples`` replaces the generated split (e.g. robot-camera views)."""
    methods = [f"int_i{k}" for k in range(1, config.iterations + 1)] + ["int_gated", "no_mining", "generic", "all_zero"]
    metrics = {name: MaskMetrics() for name in methods}
    stage_s: dict[str, dict[str, float]] = {"int": {}, "no_mining": {}, "generic": {}}
    prompt_hits = task_prompts = 0
    shown: list[tuple[Any, dict[str, INTResult]]] = []
    samples = generate_split(seed, images) if samples is None else samples
    images = len(samples)
    for sample in tqdm(samples, desc="int-seg eval", disable=not progress):
        runs = {
            "int": run_int(sample.image, sample.task_prompt, components, config),
            "no_mining": run_int(sample.image, sample.task_prompt, components, replace(config, negative_mining=False)),
            "generic": run_generic(sample.image, sample.task_prompt, components, config),
        }
        for k in range(1, config.iterations + 1):
            metrics[f"int_i{k}"].add(first_iterations(runs["int"], k), sample.target_mask)
        trusted = is_trusted(runs["int"].mining_score, components.config.min_mining_score)
        metrics["int_gated"].add(runs["int"].mask if trusted else np.zeros_like(sample.target_mask), sample.target_mask)
        metrics["no_mining"].add(runs["no_mining"].mask, sample.target_mask)
        metrics["generic"].add(runs["generic"].mask, sample.target_mask)
        metrics["all_zero"].add(np.zeros_like(sample.target_mask), sample.target_mask)  # the trivial baseline: predict nothing
        prompt_hits += runs["int"].prompt == sample.target_category
        task_prompts += runs["int"].prompt == sample.task_prompt  # (a'): no name explained the contrast better
        if figure and len(shown) < FIGURE_IMAGES:
            shown.append((sample, runs))
        for method, run in runs.items():
            for stage, seconds in run.timings_s.items():
                stage_s[method][stage] = stage_s[method].get(stage, 0.0) + seconds
    scores = {name: m.results() for name, m in metrics.items()}
    scores["int"] = scores[f"int_i{config.iterations}"]
    result: dict[str, Any] = {"images": images, "seed": seed, "config": asdict(config)}
    for method in ("int", "int_gated", "no_mining", "generic", "all_zero"):
        for metric, value in scores[method].items():
            result[f"{metric}_{method}"] = round(value, 4)
    result["by_iterations"] = {name: {k: round(v, 4) for k, v in scores[name].items()} for name in methods[: config.iterations]}
    result["instance_prompt_accuracy_int"] = round(prompt_hits / max(images, 1), 4)
    result["instance_prompt_is_task_prompt_int"] = round(task_prompts / max(images, 1), 4)
    result["latency_ms_per_image"] = {
        method: {stage: round(1e3 * s / max(images, 1), 2) for stage, s in stages.items()} for method, stages in stage_s.items()
    }
    result["bar_int_beats_ablations"] = bool(
        result["s_alpha_int"] > max(result["s_alpha_no_mining"], result["s_alpha_generic"])
        and result["mae_int"] < min(result["mae_no_mining"], result["mae_generic"])
    )
    result["paper"] = PAPER
    if figure:
        draw_examples(shown, figure)
    return result


FIGURE_IMAGES = 6


def draw_examples(shown: list[tuple[Any, dict[str, INTResult]]], path: str | Path) -> None:
    """One row per image: the image, the ground truth, and each method's mask with its prompt."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(shown), 5, figsize=(10, 2.1 * len(shown)), squeeze=False)
    for row, (sample, runs) in zip(axes, shown):
        panels = [(sample.image, "image"), (sample.target_mask, f"truth: {sample.target_category}")]
        panels += [(run.mask, f"{method}: {run.prompt}") for method, run in runs.items()]
        for axis, (picture, title) in zip(row, panels):
            axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1 if picture.ndim == 2 else None)
            axis.set_title(title, fontsize=8)
            axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def print_table(result: dict[str, Any]) -> None:
    print(f"{'method':12} {'MAE':>7} {'Fβw':>7} {'Eφ':>7} {'Sα':>7} {'mIoU':>7} {'ms/image':>9}")
    rows = [(name, result["by_iterations"][name], None) for name in result["by_iterations"]]
    rows += [(m, {k: result[f"{k}_{m}"] for k in ("mae", "f_beta", "e_phi", "s_alpha", "miou")}, m)
             for m in ("int", "int_gated", "no_mining", "generic", "all_zero")]
    for name, row, method in rows:
        latency = result["latency_ms_per_image"].get(method, {}).get("total", float("nan")) if method else float("nan")
        print(f"{name:12} {row['mae']:7.3f} {row['f_beta']:7.3f} {row['e_phi']:7.3f} {row['s_alpha']:7.3f} {row['miou']:7.3f} {latency:9.1f}")
    paper = result["paper"]
    print(f"paper, CHAMELEON: Sα {paper['chameleon']['s_alpha']} (I = 1: {paper['chameleon_ablation_s_alpha']['int_i1']}, "
          f"no mining: {paper['chameleon_ablation_s_alpha']['no_mining']}), MAE {paper['chameleon']['mae']}")
    print(f"instance prompt = target category: {result['instance_prompt_accuracy_int']:.2f}, = the task prompt: "
          f"{result['instance_prompt_is_task_prompt_int']:.2f}; bar (INT beats both ablations on Sα and MAE): {'met' if result['bar_int_beats_ablations'] else 'NOT met'}")


ROBOT_CAMERA_SEED_OFFSET = 1000
"""``--robot-camera`` views come from episode seeds (seed + this, i): none of training's."""


def components_or_report(components_path: str) -> Any:
    """The INT components of a YAML, or None after an error line naming what is wrong (exit 2)."""
    try:
        return load_components(components_path)
    except (ComponentError, OSError) as exc:
        print(f"edgerun eval int-seg: {exc}", file=sys.stderr)
        return None


def eval_main(components_path: str, images: int, seed: int | None, json_path: str | None, robot_camera: bool = False) -> int:
    """``edgerun eval int-seg`` (and ``--robot-camera``); ``seed`` None is the test seed."""
    components = components_or_report(components_path)
    if components is None:
        return 2
    seed = TEST_SEED if seed is None else seed
    config = synthetic_task_config()
    figure = Path(json_path).with_suffix(".png") if json_path else None
    samples = None
    if robot_camera:  # the demo's perception input: 480x360 frames of the Wall robot's camera
        samples = robot_camera_samples(seed + ROBOT_CAMERA_SEED_OFFSET, images, width=480, height=360, pad=False)
    result = evaluate(components, images, config, seed, figure=figure, samples=samples)
    result["components"] = str(components_path)
    result["data"] = "robot camera 480x360 (edgerun.envs.robot_camera)" if robot_camera else "generated camouflage set 128x128"
    print_table(result)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
        print(f"wrote {json_path} and {figure}")
    return 0
