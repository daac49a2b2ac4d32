"""``edgerun eval int-seg --calibrate-gate``: the mining score below which INT's mask is not trusted
(``min_mining_score`` in a components YAML; the segmenter node and ``edgerun segment`` then give an
empty mask and say so).

The threshold is chosen on validation images of the *training* families (validation seed, 320 × 240),
never on held-out families or the test seed: among the scores seen, the one with the lowest MAE whose
Sα stays within :data:`TOLERANCE` of trusting every mask. An empty mask saves MAE where the mask was
wrong and costs Sα where it was right; the tolerance says how much Sα a user gives for that. The loop
runs with :data:`~edgerun.sim.camouflage.RUNTIME_VOCABULARY`, the vocabulary the held-out families
are evaluated with (the training categories and one never trained on).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import py_sod_metrics
from tqdm import tqdm

from edgerun.evaluation.int_seg.evaluate import components_or_report
from edgerun.pipelines.int_seg.algorithm import is_trusted, run_int, synthetic_task_config
from edgerun.sim.camouflage import RUNTIME_VOCABULARY, TRAIN_FAMILIES, VAL_SEED, generate_families

TOLERANCE = 0.01  # Sα given up, at most, against trusting every mask


def s_alpha(prediction: np.ndarray, truth: np.ndarray) -> float:
    metric = py_sod_metrics.Smeasure()
    metric.step(pred=prediction.astype(np.uint8) * 255, gt=truth.astype(np.uint8) * 255)
    return float(metric.get_results()["sm"])


def gate_rows(components, images: int, progress: bool = True) -> list[dict]:
    """Per validation image: INT's mining score, and Sα and MAE of its mask and of the empty mask."""
    config = synthetic_task_config(vocabulary=RUNTIME_VOCABULARY)
    rows = []
    samples = generate_families(VAL_SEED, images, TRAIN_FAMILIES, height=240, width=320)
    for sample in tqdm(samples, desc="gate", disable=not progress):
        result = run_int(sample.image, sample.task_prompt, components, config)
        empty = np.zeros_like(sample.target_mask)
        truth = sample.target_mask
        rows.append({"mining_score": result.mining_score, "s_alpha_int": s_alpha(result.mask, truth),
                     "s_alpha_empty": s_alpha(empty, truth), "mae_int": float(np.mean(result.mask != truth)),
                     "mae_empty": float(truth.mean())})
    return rows


def gated(rows: list[dict], threshold: float) -> dict:
    """Sα and MAE over ``rows`` when masks under ``threshold`` are replaced by the empty mask."""
    trusted = np.array([is_trusted(row["mining_score"], threshold) for row in rows])

    def pick(metric: str) -> float:
        return float(np.mean([row[f"{metric}_int"] if keep else row[f"{metric}_empty"] for row, keep in zip(rows, trusted)]))

    return {"threshold": threshold, "s_alpha": pick("s_alpha"), "mae": pick("mae"), "trusted": float(trusted.mean())}


MIN_IMAGES_TO_SET = 30  # below this, the calibration prints its table but does not recommend the threshold


def choose_threshold(rows: list[dict], tolerance: float = TOLERANCE) -> tuple[float, list[dict]]:
    """(the threshold, the table of every candidate): the lowest MAE with Sα ≥ Sα(trust all) − ``tolerance``."""
    table = [gated(rows, t) for t in [0.0, *sorted({row["mining_score"] for row in rows if row["mining_score"] > 0})]]
    floor = table[0]["s_alpha"] - tolerance
    best = min((row for row in table if row["s_alpha"] >= floor), key=lambda row: (row["mae"], row["threshold"]))
    return best["threshold"], table


def calibrate_main(components_path: str, images: int, json_path: str | None, tolerance: float = TOLERANCE) -> int:
    components = components_or_report(components_path)
    if components is None:
        return 2
    rows = gate_rows(components, images)
    threshold, table = choose_threshold(rows, tolerance)
    every, chosen = table[0], gated(rows, threshold)
    print(f"validation images of the training families {', '.join(TRAIN_FAMILIES)} (320x240, seed {VAL_SEED}; "
          f"vocabulary {', '.join(RUNTIME_VOCABULARY)}): {len(rows)}")
    print(f"  trust every mask:       Sα {every['s_alpha']:.3f}  MAE {every['mae']:.4f}")
    print(f"  min_mining_score {threshold:.4f}: Sα {chosen['s_alpha']:.3f}  MAE {chosen['mae']:.4f}  "
          f"(trusted {chosen['trusted']:.0%}; Sα tolerance {tolerance})")
    empty = gated(rows, float("inf"))
    print(f"  the empty mask:         Sα {empty['s_alpha']:.3f}  MAE {empty['mae']:.4f}")
    if len(rows) < MIN_IMAGES_TO_SET:
        print(f"{len(rows)} images are too few to set a threshold from (a few masks decide it): calibrate with "
              f"--images {MIN_IMAGES_TO_SET} or more before setting min_mining_score in {components_path}")
    else:
        print(f"set it in {components_path}: min_mining_score: {threshold:.4f}")
    if json_path:
        Path(json_path).write_text(json.dumps({"components": components_path, "families": TRAIN_FAMILIES, "seed": VAL_SEED,
                                               "vocabulary": RUNTIME_VOCABULARY,
                                               "images": len(rows), "tolerance": tolerance, "min_mining_score": threshold,
                                               "chosen": chosen, "table": table, "rows": rows}, indent=2))
        print(f"wrote {json_path}")
    return 0
