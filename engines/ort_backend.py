"""ONNX Runtime backend: CPU, CUDA or TensorRT execution provider."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from edgerun.engines.base import Engine, TensorSpec
from edgerun.errors import EngineError

log = logging.getLogger("edgerun.engines")

Provider = Literal["cpu", "cuda", "tensorrt"]
PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _spec(arg: Any) -> TensorSpec:
    dtype = ORT_TYPES.get(arg.type)
    if dtype is None:
        raise EngineError(f"ONNX tensor '{arg.name}' has unsupported type {arg.type}")
    shape = tuple(d if isinstance(d, int) else (d or f"dim{i}") for i, d in enumerate(arg.shape))
    return TensorSpec(arg.name, dtype, shape)


def session_options(threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


class OrtEngine(Engine):
    """An ONNX model in an ONNX Runtime session.

    ``provider`` picks the execution provider; CPU stays as a fallback for nodes a GPU
    provider cannot run. With the TensorRT provider, engines are cached in
    ``trt_cache_dir`` (next to the model by default) so the second start does not
    rebuild. On CUDA, inputs and outputs go through IO binding (one copy each way, no
    per-call allocation by the session).
    """

    def __init__(
        self,
        path: str | Path,
        provider: Provider = "cpu",
        threads: int | None = None,
        trt_cache_dir: str | Path | None = None,
        trt_fp16: bool = True,
    ):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise EngineError(f"no ONNX model at {path}")
        wanted = PROVIDER_NAMES.get(provider)
        if wanted is None:
            raise EngineError(f"unknown provider '{provider}' (choose from {', '.join(PROVIDER_NAMES)})")
        available = ort.get_available_providers()
        if wanted not in available:
            raise EngineError(
                f"ONNX Runtime here has no {wanted} (available: {', '.join(available)}); "
                "install edgerun[gpu] on a CUDA machine, or use provider='cpu'"
            )
        providers: list[Any] = []
        if provider == "tensorrt":
            cache = Path(trt_cache_dir) if trt_cache_dir else path.parent / f"{path.stem}.ort-trt-cache"
            cache.mkdir(parents=True, exist_ok=True)
            providers.append(
                (wanted, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache), "trt_fp16_enable": trt_fp16})
            )
        if provider in ("tensorrt", "cuda"):
            providers.append(PROVIDER_NAMES["cuda"])
        providers.append(PROVIDER_NAMES["cpu"])
        self.session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=providers)
        self.name = path.stem
        self.backend = f"onnxruntime-{provider}"
        self.inputs = tuple(_spec(a) for a in self.session.get_inputs())
        self.outputs = tuple(_spec(a) for a in self.session.get_outputs())
        self._output_names = [s.name for s in self.outputs]
        self._use_io_binding = provider != "cpu"
        log.info("loaded %s with %s", path.name, ", ".join(self.session.get_providers()))

    def _run(self, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not self._use_io_binding:
            values = self.session.run(self._output_names, {k: np.ascontiguousarray(v) for k, v in arrays.items()})
            return dict(zip(self._output_names, values))
        binding = self.session.io_binding()
        for name, value in arrays.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self._output_names:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        return dict(zip(self._output_names, binding.copy_outputs_to_cpu()))

    def close(self) -> None:
        self.session = None
