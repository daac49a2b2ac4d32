"""Every error edgerun raises on purpose, in one place, under one base class.

Catch :class:`EdgerunError` to handle anything edgerun refuses (a bad graph, a stale engine file, a
checkpoint that does not fit); catch a subclass for one cause. Each also subclasses the built-in
exception its cause is closest to (``ValueError`` for bad input, ``RuntimeError`` for a failed
operation), so code written against the built-ins keeps working. Messages say what was expected,
what came, and where.

This module imports nothing, so every layer may use it (docs/architecture.md).
"""

from __future__ import annotations


class EdgerunError(Exception):
    """Base of every error edgerun raises on purpose."""


def cut(text: str, limit: int = 200) -> str:
    """``text`` whole when short, else its start and how long it was: values that come from a file or
    a message go into errors and logs through this, so a 10 MB string never fills a terminal."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def first_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s message, cut; its type name when the message is empty
    (some library errors are, others span pages)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return cut(lines[0]) if lines else type(exc).__name__


# ----------------------------------------------------------------------------------------- runtime
class GraphError(EdgerunError, ValueError):
    """The graph file is wrong; the message says where and why."""


class NodeDefinitionError(EdgerunError, TypeError):
    """A Node subclass declares something inconsistent (e.g. an input without handler)."""


class ParamError(EdgerunError, ValueError):
    """A parameter is unknown or has the wrong type; the message names it."""


class InputRefused(EdgerunError, ValueError):
    """Raised by an input handler for a message it will not act on (a check the input's field
    contract cannot express, e.g. a shape that depends on the env): the runtime counts it as a drop
    under ``reason`` on the input's status and logs it (first, then every 100th), not as a handler
    error."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class LaunchError(EdgerunError, RuntimeError):
    """The graph cannot be started (e.g. it is already running)."""


class NoRunError(EdgerunError, LookupError):
    """No running graph matches."""


class RecordingError(EdgerunError, ValueError):
    """An MCAP recording that cannot be read: not MCAP, truncated, or a message off edgerun's layout;
    the message names the file and, where it applies, the message."""


class ServiceError(EdgerunError, RuntimeError):
    """The service answered with an error."""


# ----------------------------------------------------------------------------------------- engines
class EngineError(EdgerunError, RuntimeError):
    """An engine cannot be loaded or run (missing backend, stale TensorRT engine file, bad file)."""


class EngineInputError(EdgerunError, ValueError):
    """The arrays passed to an engine do not match its inputs; the message says which and how."""


# ------------------------------------------------------------------------------------------ models
class CheckpointError(EdgerunError, ValueError):
    """A file that is not a usable checkpoint of the model asked for: wrong format or version."""


class CheckpointMismatchError(CheckpointError):
    """Weights that do not fit the model: names every missing, unexpected and misshapen key."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that asks for a global not on the allow-list; nothing from it was imported or run."""


class PlanningCancelled(EdgerunError, RuntimeError):
    """A plan given up between iterations because its node is stopping; nothing of it is queued."""


class TrainingStateError(EdgerunError, ValueError):
    """A run directory whose resumable state belongs to another trainer or configuration, or one that
    holds state when ``--resume`` was not asked for; nothing in it was changed."""


# ------------------------------------------------------------------------------------- calibration
class CameraCalibrationError(EdgerunError, ValueError):
    """Camera calibration cannot go on; the message names every image at fault and why."""


class Int8CalibrationError(EdgerunError, ValueError):
    """INT8 calibration data cannot be used; the message names the file and the problem."""


# -------------------------------------------------------------------------------------------- envs
class UnknownEnvError(EdgerunError, ValueError):
    """The env id is not registered with gymnasium."""


class DatasetError(EdgerunError, ValueError):
    """A dataset file is missing a key or holds arrays of the wrong dtype or shape."""


class TracksFileError(EdgerunError, ValueError):
    """A file of point tracks (``edgerun reconstruct``) that is not in the TracksTo4D layout."""


class ImageSourceError(EdgerunError, ValueError):
    """An image, folder or option ``edgerun segment`` cannot take."""


class OutputClashError(EdgerunError, ValueError):
    """An ``--out`` a command cannot write its results into: a file, or the folder of its inputs (the
    results would replace inputs of the same name)."""


# ------------------------------------------------------------------------------------------ export
class ExportError(EdgerunError, RuntimeError):
    """Export failed or its result does not match torch within tolerance."""


class BuildError(EdgerunError, RuntimeError):
    """The TensorRT engine file cannot be built here or TensorRT rejected the network."""


# --------------------------------------------------------------------------------------- pipelines
class ComponentError(EdgerunError, RuntimeError):
    """An INT component's file is missing or its inputs/outputs break the component's contract."""


class InpainterError(EdgerunError, ValueError):
    """An inpainter file is missing or breaks its contract; the message names the file and the contract."""
