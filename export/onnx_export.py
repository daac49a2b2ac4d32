"""torch → ONNX: export, check, optionally simplify, measure parity against torch, write the manifest."""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
import torch

from edgerun import __version__
from edgerun.engines.manifest import ExportManifest, manifest_for
from edgerun.engines.ort_backend import OrtEngine
from edgerun.engines.trt_cache import sha256_file
from edgerun.errors import ExportError
from edgerun.export.registry import INIT_SEED, Exportable, get

log = logging.getLogger("edgerun.export")
DEFAULT_OPSET = 17
PARITY_BATCH = 4  # the largest dynamic-dimension value used for tracing and the random parity check
FACTORY = "edgerun.export.registry:build_model"


def parity_errors(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per output: max absolute error and max error relative to the reference's largest magnitude."""
    errors = {}
    for name, ref in reference.items():
        got = candidate[name]
        if got.shape != ref.shape:
            raise ExportError(f"output '{name}': shape {got.shape} from ONNX Runtime, {ref.shape} from torch")
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        scale = max(float(np.abs(ref).max()), 1e-12) if ref.size else 1.0
        errors[name] = {"max_abs": float(diff.max()) if diff.size else 0.0, "max_rel": float(diff.max() / scale) if diff.size else 0.0}
    return errors


def _worst(errors: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: max(e[k] for e in errors.values()) for k in ("max_abs", "max_rel")}


def recorded_inputs(paths: Iterable[Path], entry: Exportable) -> list[dict[str, np.ndarray]]:
    """Input sets from .npz files (or directories of them) keyed by input name."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.npz")) if path.is_dir() else [path]
    sets = []
    for file in files:
        with np.load(file, allow_pickle=False) as data:
            missing = [s.name for s in entry.inputs if s.name not in data]
            if missing:
                raise ExportError(f"recorded inputs {file}: missing {', '.join(missing)} (has {', '.join(data.files)})")
            sets.append({s.name: data[s.name].astype(s.dtype) for s in entry.inputs})
    return sets


def torch_outputs(module: torch.nn.Module, entry: Exportable, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        result = module(*(torch.from_numpy(arrays[s.name]) for s in entry.inputs))
    result = (result,) if isinstance(result, torch.Tensor) else result
    return {spec.name: value.numpy() for spec, value in zip(entry.outputs, result)}


def export_model(
    name: str,
    out_dir: Path,
    checkpoint: str | None = None,
    opset: int = DEFAULT_OPSET,
    simplify: bool = False,
    recorded: Iterable[Path] = (),
    tolerance: tuple[float, float] | None = None,
    seed: int = 0,
) -> tuple[Path, ExportManifest]:
    """Export registry model ``name`` to ``out_dir/NAME.onnx`` with its manifest ``NAME.json``.

    Raises :class:`ExportError` when ONNX Runtime's outputs differ from torch's by more
    than ``tolerance`` (max abs, max rel) on random or recorded inputs; the files are
    then removed, so a failed export never leaves a model that looks valid.
    """
    if opset < 17:
        raise ExportError(f"opset {opset}: edgerun exports with opset 17 or newer")
    entry = get(name)
    tolerance = tolerance or entry.tolerance
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    module = entry.make(checkpoint)
    rng = np.random.default_rng(seed)
    # Trace and check at a small batch (dynamic axes keep the graph batch-agnostic): a planning
    # batch of a paper-size model would take minutes per forward on a CPU.
    small = {d: min(v[1], PARITY_BATCH) for d, v in entry.dims.items()}
    sample = entry.sample(small, rng)
    dynamic_axes = {
        spec.name: {axis: dim for axis, dim in enumerate(spec.shape) if isinstance(dim, str)}
        for spec in (*entry.inputs, *entry.outputs)
    }
    log.info("exporting %s (opset %d) to %s", name, opset, onnx_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            module,
            tuple(torch.from_numpy(sample[s.name]) for s in entry.inputs),
            str(onnx_path),
            input_names=[s.name for s in entry.inputs],
            output_names=[s.name for s in entry.outputs],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    onnx.checker.check_model(str(onnx_path), full_check=True)
    if simplify:
        try:
            import onnxslim
        except ImportError:
            raise ExportError("--simplify needs onnxslim (pip install onnxslim)") from None
        onnx.save(onnxslim.slim(str(onnx_path)), str(onnx_path))
        onnx.checker.check_model(str(onnx_path), full_check=True)

    engine = OrtEngine(onnx_path, provider="cpu")
    parity = {"tolerance": {"max_abs": tolerance[0], "max_rel": tolerance[1]}}
    checks = {"random": [sample] + ([entry.sample({d: v[0] for d, v in entry.dims.items()}, rng)] if entry.dims else [])}
    checks["recorded"] = recorded_inputs(recorded, entry)
    try:
        for kind, input_sets in checks.items():
            if not input_sets:
                continue
            per_output: dict[str, dict[str, float]] = {}
            for arrays in input_sets:
                for out, err in parity_errors(torch_outputs(module, entry, arrays), engine(**arrays)).items():
                    seen = per_output.setdefault(out, {"max_abs": 0.0, "max_rel": 0.0})
                    seen.update({k: max(seen[k], err[k]) for k in err})
            parity[kind] = {"outputs": per_output, **_worst(per_output), "sets": len(input_sets)}
            worst = _worst(per_output)
            if worst["max_abs"] > tolerance[0] and worst["max_rel"] > tolerance[1]:
                raise ExportError(
                    f"{name}: ONNX Runtime differs from torch on {kind} inputs: max abs error {worst['max_abs']:.3g} "
                    f"(tolerance {tolerance[0]:g}), max rel error {worst['max_rel']:.3g} (tolerance {tolerance[1]:g})"
                )
    except ExportError:
        engine.close()
        onnx_path.unlink(missing_ok=True)
        raise
    engine.close()
    import onnxruntime

    manifest = ExportManifest(
        model=name,
        onnx_sha256=sha256_file(onnx_path),
        opset=opset,
        inputs=list(entry.inputs),
        outputs=list(entry.outputs),
        dims={d: list(v) for d, v in entry.dims.items()},
        source={
            "factory": FACTORY,
            "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
            "checkpoint_sha256": sha256_file(Path(checkpoint)) if checkpoint else None,
            "init": "checkpoint" if checkpoint else f"random (seed {INIT_SEED})",
        },
        parity=parity,
        versions={"edgerun": __version__, "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    manifest.save(manifest_for(onnx_path))
    return onnx_path, manifest
