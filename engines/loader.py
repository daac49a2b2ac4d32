"""``load(path, backend)``: the one way nodes and tools get an Engine."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Literal, get_args

from edgerun.engines.base import Engine, TensorSpec
from edgerun.engines.manifest import ExportManifest, manifest_for
from edgerun.engines.trt_cache import (
    EngineFileManifest,
    Machine,
    find_engine_file,
    manifest_path,
    mismatches,
    refusal,
    sha256_file,
)
from edgerun.errors import EngineError

log = logging.getLogger("edgerun.engines")

Backend = Literal["auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "torch"]
BACKENDS: tuple[str, ...] = get_args(Backend)  # a node parameter typed Backend is checked against these before it starts
TRUSTED_FACTORY_PREFIX = "edgerun."  # a manifest may only name edgerun's own model factories


def gpu_machine() -> Machine | None:
    """This machine's TensorRT version and first GPU, or None without TensorRT, cuda-python or a GPU."""
    try:
        import tensorrt as trt

        from edgerun.engines.trt_backend import check, cudart  # lazy: TensorRT, cuda-python (optional)

        rt = cudart()
        if check(rt.cudaGetDeviceCount()) < 1:
            return None
        props = check(rt.cudaGetDeviceProperties(0))
    except Exception:  # noqa: BLE001 - any failure here means "no usable TensorRT GPU"
        return None
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return Machine(trt.__version__, name.strip("\x00"), f"{props.major}.{props.minor}")


def ort_cuda_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def auto_backend() -> str:
    """TensorRT when importable with a GPU, else ONNX Runtime on CUDA, else on the CPU."""
    if gpu_machine() is not None:
        return "tensorrt"
    return "onnxruntime-cuda" if ort_cuda_available() else "onnxruntime-cpu"


def load_engine_file(engine_file: Path, onnx_sha256: str | None = None, **options: Any) -> Engine:
    """A TensorRT engine file, after checking its manifest against this machine."""
    from edgerun.engines.trt_backend import TrtEngine  # lazy: TensorRT, cuda-python (optional)

    machine = gpu_machine()
    if machine is None:
        raise EngineError(f"cannot run TensorRT engine file {engine_file}: TensorRT, cuda-python or a CUDA GPU is missing here")
    meta_path = manifest_path(engine_file)
    if not meta_path.is_file():
        raise EngineError(f"refusing TensorRT engine file {engine_file}: it has no manifest {meta_path.name}, so what it was built for is unknown")
    manifest = EngineFileManifest.load(meta_path)
    problems = mismatches(manifest, machine, onnx_sha256)
    if problems:
        raise EngineError(refusal(engine_file, problems, manifest.precision))
    specs = ([TensorSpec.from_json(s) for s in manifest.inputs], [TensorSpec.from_json(s) for s in manifest.outputs])
    return TrtEngine(engine_file, specs=specs, **options)


def torch_reference(onnx_path: Path, manifest: ExportManifest, **options: Any) -> Engine:
    """Rebuild the torch module an ONNX file was exported from, using its manifest."""
    from edgerun.engines.torch_backend import TorchEngine  # lazy: torch

    factory_path = manifest.source.get("factory", "")
    if not factory_path.startswith(TRUSTED_FACTORY_PREFIX):
        raise EngineError(f"manifest of {onnx_path} names factory {factory_path!r}; only edgerun's own factories load")
    module_name, _, attr = factory_path.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    module = factory(manifest.model, manifest.source.get("checkpoint"))
    return TorchEngine(module, manifest.inputs, manifest.outputs, name=onnx_path.stem, **options)


def cached_engine_file(onnx_path: Path, precision: str) -> Path | None:
    machine = gpu_machine()
    if machine is None:
        return None
    return find_engine_file(onnx_path, precision, ExportManifest.load(manifest_for(onnx_path)).profiles(), machine)


def load(path: str | Path, backend: str = "auto", precision: str = "fp16", **options: Any) -> Engine:
    """Load a model file as an Engine.

    ``path`` is an exported ``.onnx`` (with its manifest) or a TensorRT ``.engine``.
    ``backend``: one of :data:`BACKENDS`. For TensorRT from an ONNX file, the engine file of
    ``precision`` cached next to it for this machine is used (``edgerun build`` makes it).
    Other keyword options go to the backend (``threads``, ``cuda_graph``, ``compile`` …).
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    if not path.is_file():
        raise EngineError(f"no model file at {path}")
    if path.suffix in (".engine", ".engine"):
        if backend not in ("auto", "tensorrt"):
            raise EngineError(f"{path} is a TensorRT engine file; only the tensorrt backend runs it")
        return load_engine_file(path, **options)
    if path.suffix != ".onnx":
        raise EngineError(f"{path}: expected an .onnx model or a TensorRT .engine")
    if backend == "auto":
        backend = auto_backend()
        if backend == "tensorrt" and cached_engine_file(path, precision) is None:
            log.warning("no TensorRT %s engine file of %s for this GPU yet (edgerun build %s --%s); using ONNX Runtime",
                        precision, path.name, path, precision)
            backend = "onnxruntime-cuda" if ort_cuda_available() else "onnxruntime-cpu"
        log.info("backend for %s: %s (auto)", path.name, backend)
    if backend == "torch":
        return torch_reference(path, ExportManifest.load(manifest_for(path)), **options)
    if backend == "tensorrt":
        machine = gpu_machine()
        if machine is None:
            raise EngineError("the tensorrt backend needs TensorRT, cuda-python and a CUDA GPU; none here")
        engine_file = cached_engine_file(path, precision)
        if engine_file is None:
            raise EngineError(
                f"no TensorRT {precision} engine file of {path.name} for this machine ({machine.gpu_name}, "
                f"TensorRT {machine.tensorrt_version}); build it: edgerun build {path} --{precision}"
            )
        return load_engine_file(engine_file, onnx_sha256=sha256_file(path), **options)
    from edgerun.engines.ort_backend import OrtEngine  # lazy: onnxruntime

    provider = backend.partition("-")[2] or ("cuda" if ort_cuda_available() else "cpu")
    return OrtEngine(path, provider=provider, **options)
