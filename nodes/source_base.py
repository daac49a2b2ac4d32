"""What every frame source shares: the :class:`FrameSource` protocol, :class:`SourceError`, the
URI query options, and credential redaction. The sources themselves are in :mod:`edgerun.nodes.sources`
(and :mod:`edgerun.nodes.rosbag_source`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import numpy as np

from edgerun.errors import EdgerunError


class SourceError(EdgerunError, RuntimeError):
    """A frame source could not be opened or read; the message names the URI and the cause."""

    def __init__(self, uri: str, cause: str):
        super().__init__(f"camera source '{redact(uri)}': {cause}")
        self.uri = redact(uri)
        self.cause = cause


class FrameSource(Protocol):
    uri: str
    fps: float  # the source's own rate; 0 when it has none (read as fast as asked)
    live: bool  # a device or stream: read() blocks until the next frame
    last_capture_ns: int | None  # the capture time of the frame read last, when the source has one (a bag)

    def read(self) -> np.ndarray | None:
        """The next RGB uint8 frame, or None at the end of a finite source."""

    def close(self) -> None: ...


def redact(uri: str) -> str:
    """The URI with any password replaced, for messages and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class SourceOptions:
    width: int = 0
    height: int = 0
    fps: float = 0.0
    loop: bool = False
    timeout_s: float = 5.0
    seed: int = 0
    topic: str = ""

    @classmethod
    def from_query(cls, uri: str, query: str) -> "SourceOptions":
        known = {"width": int, "height": int, "fps": float, "loop": _flag, "timeout_s": float, "seed": int, "topic": str}
        values: dict[str, Any] = {}
        for key, text in parse_qsl(query, keep_blank_values=True):
            if key not in known:
                raise SourceError(uri, f"unknown option '{key}' (options: {', '.join(known)})")
            try:
                values[key] = known[key](text)
            except ValueError:
                raise SourceError(uri, f"option {key}={text!r} is not a valid {known[key].__name__}") from None
        return cls(**values)


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", ""):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise ValueError(text)
