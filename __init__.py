"""edgerun: learned planning, reconstruction and perception models as real-time ZeroMQ nodes."""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE = Path(__file__).resolve().parent
"""The package's folder: shipped checkpoints and graphs are found from here, not from the working directory."""


def shipped(relative: str) -> str:
    """The path of a file or folder the package ships under ``checkpoints/`` (``tracks_to_4d/model.pt``),
    so that defaults hold wherever a command runs from."""
    return str(PACKAGE / "checkpoints" / relative)
