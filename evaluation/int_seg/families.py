"""``edgerun eval int-seg --holdout-families``: INT on camouflage image families its components
never trained on, beside its ablations and the empty mask.

The split is by family: :data:`~edgerun.sim.camouflage.HOLDOUT_FAMILIES` draw their backgrounds and
camouflaged skins from texture families (hard-edged cells, wavy stripes) and a palette (dusk) that no
training family (:data:`~edgerun.sim.camouflage.TRAIN_FAMILIES`) draws, with their own lighting,
noise, blur, object scales and clutter; and their targets include a category (lizard) the components
never saw, named only in the run-time vocabulary. Images are 320 × 240, drawn with the test seed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgerun.evaluation.int_seg.evaluate import components_or_report, evaluate
from edgerun.pipelines.int_seg.algorithm import synthetic_task_config
from edgerun.sim.camouflage import FAMILIES, HOLDOUT_CATEGORIES, HOLDOUT_FAMILIES, RUNTIME_VOCABULARY, TEST_SEED, generate_split

METRICS = ("mae", "f_beta", "e_phi", "s_alpha", "miou")
METHODS = ("int", "int_gated", "no_mining", "generic", "all_zero")


def evaluate_families(components, images: int, families=HOLDOUT_FAMILIES, progress: bool = True) -> dict:
    """Per family and over all (the families' means: every family has ``images`` images)."""
    config = synthetic_task_config(vocabulary=RUNTIME_VOCABULARY)
    by_family = {}
    for family in families:
        samples = generate_split(TEST_SEED, images, replace(FAMILIES[family], height=240, width=320))
        by_family[family] = evaluate(components, images, config, samples=samples, progress=progress)
    summary = {key: float(np.mean([r[key] for r in by_family.values()]))
               for key in [f"{m}_{method}" for method in METHODS for m in METRICS]
               + ["instance_prompt_accuracy_int", "instance_prompt_is_task_prompt_int"]}
    summary["latency_ms_per_image_int"] = float(np.mean([r["latency_ms_per_image"]["int"]["total"] for r in by_family.values()]))
    summary["bars"] = {
        "s_alpha_int >= 0.60": summary["s_alpha_int"] >= 0.60,
        "mae_int < mae_all_zero": summary["mae_int"] < summary["mae_all_zero"],
        "int ahead of generic and no_mining on s_alpha and mae": summary["s_alpha_int"] > max(summary["s_alpha_generic"], summary["s_alpha_no_mining"])
        and summary["mae_int"] < min(summary["mae_generic"], summary["mae_no_mining"]),
    }
    return {"split": f"held-out families {', '.join(families)} (320x240, test seed {TEST_SEED}); run-time vocabulary "
                     f"{', '.join(RUNTIME_VOCABULARY)} ({', '.join(HOLDOUT_CATEGORIES)} never trained on)",
            "images_per_family": images, **summary, "by_family": by_family}


def print_table(result: dict) -> None:
    print(f"\n{result['split']}")
    print(f"{'family':16}{'method':11}{'Sα':>7}{'MAE':>8}{'mIoU':>7}")
    for family, r in [*result["by_family"].items(), ("all", result)]:
        for method in METHODS:
            print(f"{family:16}{method:11}{r[f's_alpha_{method}']:7.3f}{r[f'mae_{method}']:8.4f}{r[f'miou_{method}']:7.3f}")
    print(f"instance prompt = target category: {result['instance_prompt_accuracy_int']:.2f}, = the task prompt: "
          f"{result['instance_prompt_is_task_prompt_int']:.2f}; INT {result['latency_ms_per_image_int']:.0f} ms per image")
    for bar, met in result["bars"].items():
        print(f"  bar {bar}: {'met' if met else 'MISSED'}")


def families_main(components_path: str, images: int, json_path: str | None) -> int:
    components = components_or_report(components_path)
    if components is None:
        return 2
    result = evaluate_families(components, images)
    result["components"] = str(components_path)
    print_table(result)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
        print(f"wrote {json_path}")
    return 0
