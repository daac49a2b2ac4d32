"""What every checkpoint loader here says when weights do not fit a model: each key and shape that differs."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor


def mismatch_report(expected: Mapping[str, Tensor], got: Mapping[str, Any], what: str) -> str | None:
    """None if ``got`` has exactly the keys and shapes of ``expected``, else a readable list of differences."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    misshapen = [
        f"{key}: expected {tuple(expected[key].shape)}, got {tuple(getattr(got[key], 'shape', ()))}"
        for key in expected
        if key in got and tuple(getattr(got[key], "shape", ())) != tuple(expected[key].shape)
    ]
    if not (missing or unexpected or misshapen):
        return None
    lines = [f"weights do not fit {what}:"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    if misshapen:
        lines.append(f"  shape mismatches ({len(misshapen)}): " + "; ".join(misshapen))
    return "\n".join(lines)
