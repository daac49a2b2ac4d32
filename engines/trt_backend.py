"""Native TensorRT backend: a deserialised engine file, device buffers allocated once, one CUDA stream.

Inputs may be numpy arrays (copied to the device) or device arrays exposing
``__cuda_array_interface__`` (torch CUDA tensors, CuPy arrays, this module's
:class:`DeviceArray`), which are used in place. :meth:`TrtEngine.run_device` leaves the
outputs on the device, so a caller such as a planner loop keeps its data on the GPU
between calls. With ``cuda_graph=True`` the enqueue for each input shape is captured once
and replayed, which removes most launch overhead for small batches.

Needs the ``gpu`` extra (tensorrt, cuda-python) and a CUDA device.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgerun.engines.base import Engine, TensorSpec, check_inputs
from edgerun.errors import EngineError

log = logging.getLogger("edgerun.engines")


def cudart() -> Any:
    """The CUDA runtime bindings of cuda-python (module path changed in 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime
    return runtime


def check(result: Any) -> Any:
    """cuda-python returns ``(error, value...)``; raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EngineError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else tuple(values) if values else None


@dataclass
class DeviceArray:
    """A device buffer with a shape and dtype; torch/CuPy wrap it without a copy."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "version": 3}

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


class TrtEngine(Engine):
    def __init__(
        self,
        engine_file_path: str | Path,
        specs: tuple[Sequence[TensorSpec], Sequence[TensorSpec]] | None = None,
        cuda_graph: bool = False,
    ):
        import tensorrt as trt

        self._rt = cudart()
        self._trt = trt
        engine_file_path = Path(engine_file_path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(engine_file_path.read_bytes())
        if self.engine is None:
            raise EngineError(f"TensorRT could not deserialise {engine_file_path} (built by another TensorRT version?)")
        self.context = self.engine.create_execution_context()
        self.stream = check(self._rt.cudaStreamCreate())
        self.name = engine_file_path.stem
        self.backend = "tensorrt"
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        named = {s.name: s for group in (specs or ((), ())) for s in group}

        def spec(name: str) -> TensorSpec:
            if name in named:
                return named[name]
            shape = tuple(d if d >= 0 else f"dim{i}" for i, d in enumerate(self.engine.get_tensor_shape(name)))
            return TensorSpec(name, self._dtypes[name].name, shape)

        self.inputs = tuple(spec(n) for n in names if is_input[n])
        self.outputs = tuple(spec(n) for n in names if not is_input[n])
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (pointer, capacity in bytes)
        for name in names:
            self._allocate(name, self._max_bytes(name, is_input[name]))
        self._cuda_graph = cuda_graph
        self._graphs: dict[tuple, Any] = {}
        log.info("loaded TensorRT engine file %s (%d inputs, %d outputs)", engine_file_path.name, len(self.inputs), len(self.outputs))

    def _max_bytes(self, name: str, is_input: bool) -> int:
        if is_input:
            shape = self.engine.get_tensor_profile_shape(name, 0)[2]  # (min, opt, max)
        else:
            shape = self.context.get_tensor_shape(name)
            if any(d < 0 for d in shape):  # sized after the first set_input_shape
                return 0
        return int(np.prod(shape)) * self._dtypes[name].itemsize

    def _allocate(self, name: str, nbytes: int) -> int:
        ptr, capacity = self._buffers.get(name, (0, 0))
        if nbytes > capacity:
            if ptr:
                check(self._rt.cudaFree(ptr))
            ptr = check(self._rt.cudaMalloc(max(nbytes, 1)))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def _enqueue(self, arrays: Mapping[str, Any]) -> dict[str, DeviceArray]:
        rt = self._rt
        for spec in self.inputs:
            value = arrays[spec.name]
            self.context.set_input_shape(spec.name, tuple(value.shape))
            if hasattr(value, "__cuda_array_interface__"):
                ptr = value.__cuda_array_interface__["data"][0]
            else:
                host = np.ascontiguousarray(value)
                ptr = self._allocate(spec.name, host.nbytes)
                check(rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
            self.context.set_tensor_address(spec.name, ptr)
        outputs = {}
        for spec in self.outputs:
            shape = tuple(self.context.get_tensor_shape(spec.name))
            out = DeviceArray(0, shape, self._dtypes[spec.name])
            out.ptr = self._allocate(spec.name, out.nbytes)
            self.context.set_tensor_address(spec.name, out.ptr)
            outputs[spec.name] = out
        key = tuple((s.name, tuple(arrays[s.name].shape)) for s in self.inputs)
        if self._cuda_graph and key in self._graphs:
            check(rt.cudaGraphLaunch(self._graphs[key], self.stream))
        elif self._cuda_graph:
            check(rt.cudaStreamBeginCapture(self.stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
            self.context.execute_async_v3(self.stream)
            graph = check(rt.cudaStreamEndCapture(self.stream))
            self._graphs[key] = check(rt.cudaGraphInstantiate(graph, 0))
            check(rt.cudaGraphLaunch(self._graphs[key], self.stream))
        elif not self.context.execute_async_v3(self.stream):
            raise EngineError(f"TensorRT engine '{self.name}' failed to enqueue")
        return outputs

    def run_device(self, **arrays: Any) -> dict[str, DeviceArray]:
        """Run and keep the outputs on the device (valid until the next call)."""
        check_inputs(self.name, self.inputs, arrays)
        outputs = self._enqueue(arrays)
        check(self._rt.cudaStreamSynchronize(self.stream))
        return outputs

    def _run(self, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        rt = self._rt
        results = {}
        for name, device in self._enqueue(arrays).items():
            host = np.empty(device.shape, dtype=device.dtype)
            check(rt.cudaMemcpyAsync(host.ctypes.data, device.ptr, host.nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
            results[name] = host
        check(rt.cudaStreamSynchronize(self.stream))
        return results

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            check(self._rt.cudaFree(ptr))
        self._buffers.clear()
        for graph_exec in self._graphs.values():
            self._rt.cudaGraphExecDestroy(graph_exec)
        self._graphs.clear()
        if self.stream is not None:
            check(self._rt.cudaStreamDestroy(self.stream))
            self.stream = None
