"""``edgerun bench planning``: time per CEM plan, torch eager against ONNX Runtime, in one run.

For the paper-size DINO-WM predictor (Wall layout, 196 patches x 404) and the shipped small one
(``WALL_CPU``, export entry ``dino-wm-wall-cpu``),
at the paper's budgets — 300 samples x 30 iterations and the 100 x 10 of its timing table (53 s
on an A6000) — one CEM plan (horizon 5, every sample of an iteration in one batched cost call)
is timed with the cost on torch eager (the baseline) and on ONNX Runtime (the exported planning
cost, ``edgerun export dino-wm-wall``), and the ratio is printed. Where a full plan would take
minutes on a CPU (the paper-size model), a budget-limited number of iterations is timed and the
plan time extrapolated linearly; such rows say ``"extrapolated": true``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerun.benchmarks.engines import machine_info
from edgerun.engines import load
from edgerun.export.onnx_export import export_model
from edgerun.export.registry import REGISTRY
from edgerun.pipelines.dino_wm.plan import CEMConfig, cem_plan

MODELS = {"small": "dino-wm-wall-cpu", "paper": "dino-wm-wall"}
"""``small``: the size of the shipped ``checkpoints/dino_wm_wall`` model (``WALL_CPU``)."""
BUDGETS = ((100, 10), (300, 30))


def time_plan(cost_fn: Any, block_dim: int, samples: int, iterations: int, budget_s: float) -> tuple[float, bool]:
    """Seconds per plan of ``iterations``; measured on fewer iterations (then scaled) when over budget."""
    probe = CEMConfig(horizon=5, samples=samples, topk=min(30, samples), iterations=1, seed=0)
    started = time.perf_counter()
    cem_plan(cost_fn, block_dim, probe, as_numpy=True)
    per_iteration = time.perf_counter() - started
    measured = max(1, min(iterations, int(budget_s / max(per_iteration, 1e-9))))
    config = replace(probe, iterations=measured)
    started = time.perf_counter()
    cem_plan(cost_fn, block_dim, config, as_numpy=True)
    elapsed = time.perf_counter() - started
    return elapsed * iterations / measured, measured < iterations


def main(quick: bool = False, json_path: str | None = None) -> int:
    budget_s = 5.0 if quick else 30.0
    results: list[dict[str, Any]] = []
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory(prefix="edgerun-bench-planning-") as tmp:
        for size, name in MODELS.items():
            entry = REGISTRY[name]
            onnx_path, manifest = export_model(name, Path(tmp))
            rng = np.random.default_rng(0)
            context = {s.name: rng.normal(size=s.shape).astype(np.float32) for s in manifest.inputs[1:]}
            block_dim = entry.inputs[0].shape[2]
            engines = {"torch": load(onnx_path, "torch"), "onnxruntime-cpu": load(onnx_path, "onnxruntime-cpu")}
            for samples, iterations in BUDGETS[:1] if (quick and size == "paper") else BUDGETS:
                baseline = None
                for backend, engine in engines.items():
                    cost_fn = lambda a, engine=engine: engine(actions=np.ascontiguousarray(a), **context)["cost"]  # noqa: E731
                    plan_s, extrapolated = time_plan(cost_fn, block_dim, samples, iterations, budget_s)
                    baseline = plan_s if backend == "torch" else baseline
                    row = {"model": size, "samples": samples, "iterations": iterations, "backend": backend,
                           "plan_s": round(plan_s, 4), "ratio_vs_torch": round(plan_s / baseline, 3), "extrapolated": extrapolated}
                    results.append(row)
                    print(f"  {size:5} {samples:3}x{iterations:<3} {backend:16} {plan_s:10.3f} s/plan  x{row['ratio_vs_torch']:.2f} of torch"
                          + ("  (extrapolated)" if extrapolated else ""))
    print("paper (A6000): 53 s per CEM plan of 100 x 10; goal on a GPU: a 300 x 30 plan of the paper-size model in < 1 s")
    if json_path:
        Path(json_path).write_text(json.dumps({"machine": machine_info(), "results": results}, indent=2))
        print(f"wrote {json_path}")
    return 0
