"""What an input expects of its messages: the fields its handler reads, array dtypes and shapes.

    inputs = {"frames": Latest(fields={"image": Array("uint8", ("H", "W", 3)), "frame_index": int})}

The runner checks every message against its input's declaration before the handler sees it, so
a handler can rely on what it reads instead of testing it (and each node testing it its own way).
A message that does not fit is dropped and counted by reason (``missing_field``, ``wrong_field``)
with a log line saying what was expected and what came. Only declared fields are checked; a
message may carry more, and a field a handler reads with ``msg.get`` stays undeclared. An input
without declarations accepts any message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Union

import numpy as np

from edgerun.errors import NodeDefinitionError
from edgerun.runtime.messages import Message

# dtype kinds an Array may ask for instead of one numpy type
KINDS = {"floating": np.floating, "integer": np.integer, "number": np.number}


@dataclass(frozen=True)
class Array:
    """A numpy array field.

    ``dtype``: a numpy type name (``"uint8"``) or a kind: ``"floating"``, ``"integer"``,
    ``"number"``. ``shape``: fixed sizes (ints) and named sizes (identifiers: any size, but one
    name is one size across all fields of a message, so ``tracks (N, 3, T)`` and ``track_ids
    (N,)`` must agree), or None for any shape. ``finite``: NaN and infinities are refused
    (``non_finite``): for values a node acts on, such as a robot's goal or its next action.
    """

    dtype: str
    shape: tuple[int | str, ...] | None = None
    finite: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in KINDS:
            try:
                object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
            except TypeError:
                raise NodeDefinitionError(
                    f"Array({self.dtype!r}): expected a numpy type name or one of {', '.join(KINDS)}"
                ) from None
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))
            for dim in self.shape:
                fixed = isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0
                if not fixed and not (isinstance(dim, str) and dim.isidentifier()):
                    raise NodeDefinitionError(
                        f"Array({self.dtype!r}, {self.shape!r}): each size must be an int >= 0 or a name, got {dim!r}"
                    )

    def __str__(self) -> str:
        text = f"{self.dtype} array" if self.shape is None else f"{self.dtype} {shape_text(self.shape)}"
        return f"finite {text}" if self.finite else text


FieldSpec = Union[Array, type, tuple[type, ...]]  # a scalar field is declared by its type(s): int, str, (int, float)


def shape_text(shape: tuple[Any, ...]) -> str:
    """``(H, W, 3)``, ``(2,)``: a shape as Python writes a tuple, names unquoted."""
    return f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def check_spec(spec: Any) -> None:
    """Raise :class:`NodeDefinitionError` unless ``spec`` is an Array, a type or a tuple of types."""
    types = spec if isinstance(spec, tuple) else (spec,)
    if not isinstance(spec, Array) and not (types and all(isinstance(t, type) for t in types)):
        raise NodeDefinitionError(f"expected Array(dtype, shape), a type or a tuple of types, got {spec!r}")


def describe(spec: FieldSpec) -> str:
    if isinstance(spec, Array):
        return str(spec)
    return " or ".join(t.__name__ for t in (spec if isinstance(spec, tuple) else (spec,)))


def mismatch(fields: Mapping[str, FieldSpec], msg: Message) -> tuple[str, str] | None:
    """The first declared field ``msg`` lacks or gets wrong, as (reason, "expected …, got …"); None if all fit."""
    sizes: dict[str, tuple[int, str]] = {}  # named size -> (its value, the field that set it)
    for name, spec in fields.items():
        if name not in msg:
            has = ", ".join(sorted([*msg.arrays, *msg.fields])) or "no fields"
            return "missing_field", f"expected {describe(spec)} in field '{name}', got nothing (the message has: {has})"
        value = msg[name]
        problem = _array_problem(spec, value, name, sizes) if isinstance(spec, Array) else _scalar_problem(spec, value)
        if problem is not None:
            return "wrong_field", f"expected {describe(spec)} in field '{name}', got {problem}"
        if isinstance(spec, Array) and spec.finite and value.dtype.kind in "fc":
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
            if bad:
                return "non_finite", f"expected {describe(spec)} in field '{name}', got {bad} NaN or infinite of {value.size}"
    return None


def _array_problem(spec: Array, value: Any, name: str, sizes: dict[str, tuple[int, str]]) -> str | None:
    if not isinstance(value, np.ndarray):
        return f"{type(value).__name__} {_short(value)}"
    got = f"{value.dtype} {shape_text(value.shape)}"
    if not np.issubdtype(value.dtype, KINDS.get(spec.dtype, spec.dtype)):
        return got
    if spec.shape is None:
        return None
    if len(value.shape) != len(spec.shape):
        return got
    for size, dim in zip(value.shape, spec.shape):
        if isinstance(dim, int):
            if size != dim:
                return got
            continue
        bound, where = sizes.setdefault(dim, (size, name))
        if bound != size:
            return f"{got} ({dim} is {bound} in field '{where}')"
    return None


def _scalar_problem(spec: type | tuple[type, ...], value: Any) -> str | None:
    types = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, bool):  # a bool is an int to isinstance, not to a handler that counts
        fits = bool in types
    elif isinstance(value, int) and float in types:  # 2 is a fine float; msgpack keeps 2.0 as 2.0 anyway
        fits = True
    else:
        fits = isinstance(value, types)
    if fits:
        return None
    if isinstance(value, np.ndarray):
        return f"an array {value.dtype} {shape_text(value.shape)}"
    return f"{type(value).__name__} {_short(value)}"


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
