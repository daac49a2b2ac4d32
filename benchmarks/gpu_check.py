"""The GPU check, for a lent GPU machine (run through ``benchmarks/gpu_check.sh``).

For every exportable model: export ONNX, build TensorRT engine files at fp32, fp16 and int8
(int8 calibrated on the model's own sample inputs), check each engine file's parity against
torch, and time torch eager, ONNX Runtime CUDA, ONNX Runtime's TensorRT provider and
native TensorRT (plain and with CUDA graphs) side by side. Writes JSON. Backends that are
missing are reported as skipped, so the script also runs (uselessly but cleanly) on a CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from edgerun.benchmarks.engines import machine_info, p50_ms
from edgerun.engines import load
from edgerun.engines.loader import gpu_machine
from edgerun.export.onnx_export import export_model, parity_errors
from edgerun.export.registry import REGISTRY
from edgerun.export.trt_build import build_engine


def time_backend(onnx_path: Path, backend: str, arrays: dict, reference: dict, repeats: int, **options: Any) -> dict:
    try:
        engine = load(onnx_path, backend, **options)
        outputs = engine(**arrays)
        errors = parity_errors(reference, outputs)
        latency = p50_ms(lambda: engine(**arrays), repeats)
        engine.close()
    except Exception as exc:  # noqa: BLE001 - one backend failing must not stop the check
        return {"backend": backend, "skipped": f"{type(exc).__name__}: {exc}"}
    worst = max(e["max_abs"] for e in errors.values())
    return {"backend": backend, **{k: v for k, v in options.items() if k != "cuda_graph"},
            "cuda_graph": options.get("cuda_graph", False), "p50_ms": round(latency, 4), "max_abs_vs_torch": worst}


def check_model(name: str, workdir: Path, repeats: int) -> list[dict]:
    entry = REGISTRY[name]
    onnx_path, _ = export_model(name, workdir)
    calib_dir = workdir / f"{name}-calib"
    calib_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(64):
        np.savez(calib_dir / f"{i}.npz", **entry.sample({d: 1 for d in entry.dims}, rng))
    engine_files = {}
    if gpu_machine() is not None:
        for precision in ("fp32", "fp16", "int8"):
            try:
                engine_files[precision] = str(build_engine(onnx_path, precision, calibration=calib_dir if precision == "int8" else None))
            except Exception as exc:  # noqa: BLE001
                engine_files[precision] = f"failed: {exc}"
    rows = []
    for batch in sorted({1, entry.planning_batch or 1}):
        arrays = entry.sample({d: batch for d in entry.dims}, np.random.default_rng(0))
        reference = load(onnx_path, "torch")(**arrays)
        runs = [time_backend(onnx_path, "torch", arrays, reference, repeats),
                time_backend(onnx_path, "onnxruntime-cuda", arrays, reference, repeats),
                time_backend(onnx_path, "onnxruntime-tensorrt", arrays, reference, repeats)]
        for precision in ("fp32", "fp16", "int8"):
            for graph in (False, True):
                runs.append(time_backend(onnx_path, "tensorrt", arrays, reference, repeats, precision=precision, cuda_graph=graph))
        torch_ms = runs[0].get("p50_ms")
        for run in runs:
            if torch_ms and "p50_ms" in run:
                run["speedup_vs_torch"] = round(torch_ms / run["p50_ms"], 2)
            rows.append({"model": name, "batch": batch, **run})
            print(json.dumps(rows[-1]))
    rows.append({"model": name, "engine_files": engine_files})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", default="gpu_check.json")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--models", nargs="*", default=list(REGISTRY))
    args = parser.parse_args()
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgerun-gpu-check-") as tmp:
        for name in args.models:
            try:
                results += check_model(name, Path(tmp), args.repeats)
            except Exception:  # noqa: BLE001
                results.append({"model": name, "error": traceback.format_exc()})
                print(results[-1]["error"])
    Path(args.json).write_text(json.dumps({"machine": machine_info(), "results": results}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
