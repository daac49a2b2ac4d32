"""The Engine interface and the input checks every backend shares."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from edgerun.errors import EngineInputError

Dim = int | str  # a fixed size, or the name of a dynamic dimension ("batch")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32", "int64", ...
    shape: tuple[Dim, ...]

    def describe(self) -> str:
        return f"{self.dtype} ({', '.join(map(str, self.shape))}{',' if len(self.shape) == 1 else ''})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TensorSpec":
        return cls(data["name"], data["dtype"], tuple(data["shape"]))


def _got(array: np.ndarray) -> str:
    return f"{array.dtype} {tuple(array.shape)}"


def check_inputs(engine: str, specs: Sequence[TensorSpec], arrays: Mapping[str, Any]) -> dict[str, int]:
    """Check names, dtypes, ranks and sizes; return the value bound to each dynamic dimension.

    A dynamic dimension must take the same value in every input that names it (e.g. the
    batch of ``obs`` and ``actions``).
    """
    expected = {s.name: s for s in specs}
    missing = [name for name in expected if name not in arrays]
    if missing:
        wants = "; ".join(f"{n}: {expected[n].describe()}" for n in missing)
        raise EngineInputError(f"engine '{engine}': missing input{'s' if len(missing) > 1 else ''} {wants}")
    unknown = [name for name in arrays if name not in expected]
    if unknown:
        raise EngineInputError(
            f"engine '{engine}': unknown input {', '.join(map(repr, unknown))} (inputs: {', '.join(expected)})"
        )
    bound: dict[str, int] = {}
    for name, spec in expected.items():
        array = arrays[name]
        if not hasattr(array, "shape") or not hasattr(array, "dtype"):
            raise EngineInputError(f"engine '{engine}': input '{name}' must be an array, got {type(array).__name__}")
        where = f"engine '{engine}': input '{name}': expected {spec.describe()}, got {_dtype_name(array)} {tuple(array.shape)}"
        if _dtype_name(array) != spec.dtype:
            raise EngineInputError(where)
        if len(array.shape) != len(spec.shape):
            raise EngineInputError(f"{where} (rank {len(array.shape)} instead of {len(spec.shape)})")
        for axis, (dim, size) in enumerate(zip(spec.shape, array.shape)):
            if isinstance(dim, str):
                if bound.setdefault(dim, size) != size:
                    raise EngineInputError(f"{where} (dimension '{dim}' is {bound[dim]} in another input)")
            elif dim != size:
                raise EngineInputError(f"{where} (axis {axis} must be {dim})")
    return bound


def _dtype_name(array: Any) -> str:
    dtype = array.dtype
    if isinstance(dtype, np.dtype):
        return dtype.name
    return str(dtype).removeprefix("torch.")  # torch tensors on the device


class Engine(abc.ABC):
    """A loaded model: ``inputs``/``outputs`` specs and ``engine(**arrays) -> {name: array}``."""

    backend: str
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __call__(self, **arrays: Any) -> dict[str, np.ndarray]:
        check_inputs(self.name, self.inputs, arrays)
        return self._run(arrays)

    @abc.abstractmethod
    def _run(self, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]: ...

    def close(self) -> None:
        """Release device memory and sessions; the engine is unusable afterwards."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        ins = ", ".join(f"{s.name}: {s.describe()}" for s in self.inputs)
        outs = ", ".join(f"{s.name}: {s.describe()}" for s in self.outputs)
        return f"<{type(self).__name__} '{self.name}' [{self.backend}] ({ins}) -> ({outs})>"
