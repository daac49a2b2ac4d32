"""``edgerun bench engines``: torch eager against every available backend, per exportable model.

For each model of the export registry, at batch 1 and at its planning batch, the p50
latency of torch eager (the baseline) and of ONNX Runtime (CPU, and CUDA / TensorRT EP
where present) and native TensorRT (with a cached engine file) are measured in the same run, and
the ratio backend / torch is printed. Bar on the CPU: ONNX Runtime no slower than torch
eager for the ViT encoder (dinov2-vits14) at batch 1. Exit code 0 when the bar holds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgerun.engines import Engine, load
from edgerun.engines.loader import gpu_machine, ort_cuda_available
from edgerun.errors import EngineError
from edgerun.export.onnx_export import export_model
from edgerun.export.registry import REGISTRY

BAR_MODEL, BAR_BATCH = "dinov2-vits14", 1


def p50_ms(run: Callable[[], Any], repeats: int, warmup: int = 2, budget_s: float = 20.0) -> float:
    """Median of ``repeats`` timed calls, fewer (at least 3) when they would exceed ``budget_s``."""
    for _ in range(warmup):
        run()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1e3)
    return float(np.median(times))


def backends_here() -> list[str]:
    found = ["torch", "onnxruntime-cpu"]
    if ort_cuda_available():
        found.append("onnxruntime-cuda")
    if gpu_machine() is not None:
        found.append("tensorrt")
    return found


def machine_info() -> dict[str, Any]:
    import onnxruntime
    import torch

    gpu = gpu_machine()
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "gpu": None if gpu is None else {"name": gpu.gpu_name, "cc": gpu.compute_capability, "tensorrt": gpu.tensorrt_version},
    }


def main(quick: bool = False, json_path: str | None = None) -> int:
    repeats = 5 if quick else 20
    results: list[dict[str, Any]] = []
    backends = backends_here()
    print(f"backends here: {', '.join(backends)}; {repeats} timed runs each")
    with tempfile.TemporaryDirectory(prefix="edgerun-bench-") as tmp:
        for name, entry in REGISTRY.items():
            onnx_path, _ = export_model(name, Path(tmp))
            batches = sorted({1, entry.planning_batch or 1})
            if quick and name in (BAR_MODEL, "dino-wm-wall"):
                batches = [1]  # a planning batch of a paper-size model takes seconds per call on a CPU
            for batch in batches:
                arrays = entry.sample({d: batch for d in entry.dims}, np.random.default_rng(0))
                baseline = None
                for backend in backends:
                    try:
                        engine: Engine = load(onnx_path, backend)
                    except EngineError as exc:  # e.g. no cached TensorRT engine file
                        print(f"  {name} b{batch} {backend}: skipped ({exc})")
                        continue
                    latency = p50_ms(lambda: engine(**arrays), repeats)
                    engine.close()
                    baseline = latency if backend == "torch" else baseline
                    ratio = latency / baseline if baseline else None
                    results.append({"model": name, "batch": batch, "backend": backend, "p50_ms": round(latency, 3),
                                    "ratio_vs_torch": None if ratio is None else round(ratio, 3)})
                    print(f"  {name:14} batch {batch:3}  {backend:18} p50 {latency:9.2f} ms   x{ratio:.2f} of torch")
    bar = next((r for r in results if (r["model"], r["batch"], r["backend"]) == (BAR_MODEL, BAR_BATCH, "onnxruntime-cpu")), None)
    passed = bar is not None and bar["ratio_vs_torch"] <= 1.0
    print(f"bar: onnxruntime-cpu / torch for {BAR_MODEL} at batch {BAR_BATCH} = "
          f"{bar['ratio_vs_torch'] if bar else 'n/a'} (≤ 1.0): {'PASS' if passed else 'FAIL'}")
    if json_path:
        Path(json_path).write_text(json.dumps({"machine": machine_info(), "results": results,
                                               "bar": {"model": BAR_MODEL, "batch": BAR_BATCH, "passed": passed}}, indent=2))
        print(f"wrote {json_path}")
    return 0 if passed else 1
