"""``edgerun bench bundle-adjustment``: what refining one TracksTo4D window costs, and what it buys.

Windows of T = 20 frames and ~1,000 tracks from the held-out scene families (the shipped network's
output as the start), on one thread (torch, OpenCV, BLAS). Three refinements of the same windows:

* the baseline: ``scipy.optimize.least_squares`` (TRF, its iterative LSMR solver) on the same
  residuals with the same analytic sparse Jacobian, from the network's start, every selected point
  adjusted at once (the solver edgerun used before);
* :func:`~edgerun.pipelines.tracks_to_4d.bundle_adjustment.bundle_adjust` alone: Levenberg–Marquardt
  on the Schur complement, from the network's start;
* :func:`~edgerun.pipelines.tracks_to_4d.reconstruct.with_bundle_adjustment`: what the node and
  ``edgerun reconstruct --refine ba`` run (network and classical starts, the safety checks).

Per method: seconds per window (p50, max), ATE (Sim(3)-aligned) against the truth, and the ratio of
times to the baseline.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
from threadpoolctl import threadpool_limits

from edgerun.benchmarks.engines import machine_info
from edgerun.evaluation.tracks_to_4d.metrics import ate
from edgerun.models.tracks_to_4d.intrinsics import normalize_tracks
from edgerun.pipelines.tracks_to_4d.bundle_adjustment import ReprojectionProblem, bundle_adjust, rigid_inliers
from edgerun.pipelines.tracks_to_4d.reconstruct import WindowModel, with_bundle_adjustment
from edgerun.sim.point_scenes import HELD_OUT_SEED, HOLDOUT_FAMILIES, family_config, generate_split


def scipy_trf(tracks_norm: np.ndarray, cam_from_world: np.ndarray, points: np.ndarray, focal_px: float) -> np.ndarray:
    """The baseline: the rigid-looking tracks, TRF with a soft-L1 loss (2 px) and the analytic
    sparse Jacobian; → adjusted cameras (T, 4, 4)."""
    visible = tracks_norm[:, 2] > 0.5
    chosen = np.flatnonzero((visible.sum(1) >= 2) & rigid_inliers(tracks_norm, 3.0 / focal_px))
    point_of, frame_of = np.nonzero(visible[chosen])
    observed = tracks_norm[chosen[point_of], :2, frame_of].astype(np.float64)
    problem = ReprojectionProblem(cam_from_world, frame_of, point_of, observed)
    cameras, count = problem.initial_cameras(), len(chosen)
    moving = problem.moving
    rows_of = np.arange(2 * len(frame_of)).reshape(-1, 2)
    camera_columns = 6 * (frame_of[moving, None] - 1) + np.arange(6)
    point_columns = 6 * len(cameras) + 3 * point_of[:, None] + np.arange(3)
    rows = np.concatenate([np.repeat(rows_of[moving], 6, axis=1).ravel(), np.repeat(rows_of, 3, axis=1).ravel()])
    columns = np.concatenate([np.tile(camera_columns, 2).ravel(), np.tile(point_columns, 2).ravel()])
    split = lambda x: (x[: 6 * len(cameras)].reshape(-1, 6), x[6 * len(cameras) :].reshape(count, 3))

    def jacobian(x: np.ndarray) -> coo_matrix:
        by_camera, by_point = problem.jacobians(*split(x))
        return coo_matrix((np.concatenate([by_camera.ravel(), by_point.ravel()]), (rows, columns)), shape=(2 * len(frame_of), len(x))).tocsr()

    x = least_squares(lambda x: problem.residuals(*split(x)).ravel(), np.concatenate([cameras.ravel(), points[chosen].ravel()]),
                      jac=jacobian, method="trf", x_scale="jac", loss="soft_l1", f_scale=2.0 / focal_px, max_nfev=100).x
    return problem.poses(split(x)[0])


def main(quick: bool = False, json_path: str | None = None) -> int:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    threadpool_limits(1)
    network = WindowModel()
    scenes = [scene for family in HOLDOUT_FAMILIES
              for scene in generate_split(HELD_OUT_SEED, 2 if quick else 8, family_config(family, frames=20, points=1000))]
    methods = {
        "scipy_trf (baseline)": lambda w, s, tn: scipy_trf(tn, w.cam_from_world, w.points_world.mean(0), s.K[0, 0]),
        "schur_lm": lambda w, s, tn: bundle_adjust(tn, w.cam_from_world, w.points_world.mean(0), None, s.K[0, 0]).cam_from_world,
        "with_bundle_adjustment": lambda w, s, tn: with_bundle_adjustment(w, s.tracks, s.K).reconstruction.cam_from_world,
    }
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    feedforward = []
    for scene in scenes:
        cv2.setRNGSeed(0)
        window, _ = network(scene.tracks, scene.K)
        feedforward.append(ate(window.cam_from_world, scene.cam_from_world))
        tracks_norm, _ = normalize_tracks(scene.tracks, scene.K)
        for name, run in methods.items():
            started = time.perf_counter()
            poses = run(window, scene, tracks_norm)
            rows[name].append((time.perf_counter() - started, ate(poses, scene.cam_from_world)))
    baseline = float(np.median([t for t, _ in rows["scipy_trf (baseline)"]]))
    results = []
    print(f"bundle adjustment of {len(scenes)} windows (T = 20, ~1,000 tracks, held-out families {', '.join(HOLDOUT_FAMILIES)}), one thread; "
          f"feed-forward ATE {np.mean(feedforward):.3f}")
    for name, values in rows.items():
        seconds, errors = np.array([t for t, _ in values]), np.array([e for _, e in values])
        row = {"method": name, "seconds_p50": float(np.median(seconds)), "seconds_max": float(seconds.max()),
               "ate_mean": float(errors.mean()), "ate_median": float(np.median(errors)), "ratio_vs_baseline": float(np.median(seconds)) / baseline}
        results.append(row)
        print(f"  {name:24} p50 {row['seconds_p50']:6.3f} s  max {row['seconds_max']:6.3f} s  ATE mean {row['ate_mean']:.4f} "
              f"median {row['ate_median']:.4f}  time x{row['ratio_vs_baseline']:.2f} of the baseline")
    if json_path:
        Path(json_path).write_text(json.dumps({"machine": machine_info(), "windows": len(scenes), "ate_feedforward_mean": float(np.mean(feedforward)),
                                               "methods": results}, indent=2))
        print(f"wrote {json_path}")
    return 0
