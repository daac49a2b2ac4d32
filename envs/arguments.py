"""Argument checks every edgerun env makes the same way (constructor and ``reset`` options)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_render_arguments(render_mode: str | None, modes: Sequence[str], size: int, min_size: int) -> int:
    """Refuse an unsupported ``render_mode`` or a frame smaller than ``min_size``; returns ``int(size)``."""
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode: expected one of {list(modes)} or None, got {render_mode!r}")
    if int(size) < min_size:
        raise ValueError(f"size: expected at least {min_size} pixels, got {size}")
    return int(size)


def reset_options(options: dict[str, Any] | None, known: Sequence[str]) -> dict[str, Any]:
    """A copy of ``reset``'s ``options``; an unknown key is an error listing the known ones."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"reset options: unknown {unknown}, expected any of {list(known)}")
    return options
