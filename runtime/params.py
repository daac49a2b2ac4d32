"""Typed node parameters: a dataclass per node class, filled from the graph file or the CLI."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Literal, TypeVar, get_args, get_origin, get_type_hints

import msgspec
import yaml

from edgerun.errors import ParamError, cut

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class NoParams:
    """For nodes that take no parameters."""


def build_params(params_type: type[T], values: dict[str, Any] | None, where: str = "params") -> T:
    """Check ``values`` against the dataclass ``params_type`` and build it.

    Unknown names, wrong types and a value outside a ``Literal`` field's choices raise
    :class:`ParamError` naming the field, e.g. ``params.fps: Expected `float`, got `str```,
    ``params.planner: expected one of 'cem', 'gd', got 'cme'``.
    """
    values = dict(values or {})
    if not dataclasses.is_dataclass(params_type):
        raise TypeError(f"{params_type!r} is not a dataclass")
    known = {f.name for f in dataclasses.fields(params_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ParamError(
            f"{where}: unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    check_choices(params_type, values, where)
    try:
        return msgspec.convert(values, type=params_type, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        # msgspec says "... - at `$.fps`"; say it in the graph's terms.
        if " - at `$." in message:
            text, path = message.rsplit(" - at `$.", 1)
            raise ParamError(f"{where}.{path.rstrip('`')}: {text}") from None
        raise ParamError(f"{where}: {message}") from None


def check_choices(params_type: type, values: dict[str, Any], where: str) -> None:
    """Refuse a value outside a ``Literal`` field's choices, naming them: a choice parameter
    (a planner, a backend, a mode) must never fall through to some default branch, and msgspec
    alone would only say "Invalid enum value". Nested parameter dataclasses are checked too."""
    hints = get_type_hints(params_type)
    for field in dataclasses.fields(params_type):
        if field.name not in values:
            continue
        kind, value = hints[field.name], values[field.name]
        if get_origin(kind) is Literal:
            choices = get_args(kind)
            if not any(value == c and type(value) is type(c) for c in choices):  # True is not 1 here
                raise ParamError(f"{where}.{field.name}: expected one of {', '.join(map(repr, choices))}, got {cut(repr(value), 80)}")
        elif dataclasses.is_dataclass(kind) and isinstance(value, dict):
            check_choices(kind, value, f"{where}.{field.name}")


def parse_cli_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``["fps=30", "name=cam"]`` → ``{"fps": 30, "name": "cam"}``; values are read as YAML scalars."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ParamError(f"--param {pair!r}: expected KEY=VALUE")
        values[key.strip()] = yaml.safe_load(raw) if raw else ""
    return values


def params_as_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}
