"""What the commands that write one file per input (``edgerun segment``, ``edgerun reconstruct``)
share about their outputs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from edgerun.errors import OutputClashError


def refuse_overwriting_inputs(inputs: Iterable[Path], outputs: Iterable[Path]) -> None:
    """Raise :class:`OutputClashError` when an output path is one of the inputs (``--out`` set to the
    input folder, where ``clip.npz`` or ``frame.png`` would be replaced by its result): checked
    before anything is written."""
    inputs = {path.resolve() for path in inputs}
    clashes = sorted(path for path in outputs if path.resolve() in inputs)
    if clashes:
        raise OutputClashError(f"--out: {len(clashes)} input(s) would be replaced by their results ({clashes[0]} first); "
                               "choose an output folder that does not hold the inputs")
