"""What the commands that write one file per input (``edgerun segment``, ``edgerun reconstruct``)
share about their outputs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from edgerun.errors import OutputClashError


def check_output_folder(out_dir: Path, inputs: Iterable[Path]) -> None:
    """Raise :class:`OutputClashError` when ``out_dir`` is a file, or the folder an input file lies in: results
    written there would replace files of the same name (``clip.npz`` by its result, ``field.png``
    by its mask) and be read as inputs by the next run. Compared as files (``os.path.samefile``),
    so another spelling, a symbolic link or letter case on a case-insensitive disk is caught too;
    checked before anything is written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputClashError(f"--out {out_dir}: a file, not a folder; give the folder to write the results in")
    if not out_dir.is_dir():
        return  # a folder that does not exist yet holds no input
    for path in inputs:
        if path.exists() and os.path.samefile(path.parent, out_dir):
            raise OutputClashError(f"--out {out_dir} is the folder of the inputs ({path.name} lies there): results would replace "
                                   "files of the same name and be read as inputs next time; choose another output folder")
