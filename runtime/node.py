"""The Node base class: a node's whole contract is declared in its first lines.

    class Brightness(Node):
        inputs = {"frames": Latest()}
        outputs = ("brightness",)
        params = BrightnessParams          # a dataclass: typed, defaulted, documented

        def on_frames(self, msg):          # one handler per input: on_<input>
            self.publish("brightness", value=float(msg["image"].mean()))

An input may declare the fields its handler reads (:mod:`edgerun.runtime.fields`):
``Latest(fields={"image": Array("uint8", ("H", "W", 3))})``; the runner drops and counts a
message that does not fit before the handler runs. The launcher reads ``inputs``,
``outputs``, ``services`` and ``params`` to validate a graph before it starts anything.
Handlers, timers and services all run on one thread per node, so a node's own state
needs no locks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Mapping, Union

import numpy as np

from edgerun.errors import NodeDefinitionError
from edgerun.runtime.fields import FieldSpec, check_spec
from edgerun.runtime.messages import Message
from edgerun.runtime.params import NoParams

if TYPE_CHECKING:
    from edgerun.runtime.runner import NodeRunner  # typing only: the runner imports this module


@dataclass(frozen=True)
class Latest:
    """Conflating input for frames and observations: the handler always gets the newest
    message; one that arrives before the previous was handled replaces it (counted as
    ``conflated``). The node's I/O thread drains it continuously, so memory stays bounded
    and nothing stale waits however slow the handler is. ``fields``: what each message must
    carry (see :mod:`edgerun.runtime.fields`); checked before a message can replace the
    pending one, so a malformed message never displaces a good one."""

    fields: Mapping[str, FieldSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class Queue:
    """Ordered input for events and commands: up to ``maxlen`` messages wait; when more
    arrive, the oldest is dropped and counted as ``queue_full``. The node thread reads it
    itself between handlers (no thread hop: the lowest latency). Messages a publisher had
    to drop before they reached the node show as gaps in sequence numbers (``missed``).
    ``fields``: what each message must carry, as for :class:`Latest`."""

    maxlen: int = 16
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.maxlen < 1:
            raise ValueError(f"Queue(maxlen={self.maxlen}): maxlen must be at least 1")


InputPolicy = Union[Latest, Queue]
STATUS_OUTPUT = "_status"


class Node:
    inputs: ClassVar[Mapping[str, InputPolicy]] = {}
    outputs: ClassVar[tuple[str, ...]] = ()
    services: ClassVar[tuple[str, ...]] = ()
    views: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    """Per output, how standard tools show it: ``edgerun.runtime.views`` (Image, Transform, Points,
    Trajectory, Json); used by recordings, ROS 2 bags and the live Foxglove view."""
    params: Any = NoParams  # the dataclass type on the class; its instance on a running node
    setup_failure: ClassVar[Literal["exit", "stay_up"]] = "exit"
    """What an exception in ``setup()`` does. ``"exit"``: the process ends with code 1 and the
    restart policy decides (a camera not plugged in yet may be there on the next try).
    ``"stay_up"``: for a node that would fail the same way on every restart (a checkpoint that
    does not load): it stays up, its status carrying the error as ``last_error``, its input
    dropped (``setup_failed``) and its services answering with the error."""

    name: str
    log: logging.Logger
    _runner: "NodeRunner"

    # --- what a node author overrides -----------------------------------------------
    def setup(self) -> None:
        """Called once before any message is handled: open devices, load engines, add timers."""

    def teardown(self) -> None:
        """Called once on shutdown, after the last handler returned."""

    def status_fields(self) -> dict[str, Any]:
        """Extra node-specific entries for the status topic (e.g. planning time); read from the I/O thread."""
        return {}

    # --- what a node author calls ---------------------------------------------------
    def publish(self, output: str, *, capture_ns: int | None = None, **data: Any) -> None:
        """Send ``data`` on ``output``: numpy arrays as zero-copy buffers, the rest as fields.

        ``capture_ns`` defaults to the capture time of the message being handled, so
        end-to-end latency survives every hop; a source node passes its own. Arrays
        must not be modified after publishing.
        """
        self._runner.publish(output, data, capture_ns)

    def loan(self, output: str, shape: tuple[int, ...], dtype: Any = "uint8") -> np.ndarray:
        """A writable array to fill and then publish on ``output``, with no copy on the way: when
        processes on this host subscribe and the array is at least the shared-memory threshold, it
        lies in one of the output's shared-memory slots (like a ROS 2 loaned message); otherwise it
        is an ordinary new array. Fill it, publish it, and do not touch it afterwards: the slot is
        reused. One loan per output at a time."""
        return self._runner.loan(output, shape, dtype)

    def every(self, period_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` every ``period_s`` seconds on the node's thread."""
        self._runner.add_timer(period_s, callback)

    def call(self, service: str, *, timeout_s: float = 5.0, **data: Any) -> Message:
        """Request/reply with another node's service, named ``node/service``."""
        return self._runner.call(service, data, timeout_s)

    def stop(self) -> None:
        """End this node cleanly after the current handler (exit code 0)."""
        self._runner.request_stop()

    def stopping(self) -> bool:
        """True once this node is asked to stop (a signal, the graph ending, :meth:`stop`): a handler
        doing long work (a plan of many iterations) checks it between steps and returns early, so the
        node stops within its bound instead of being abandoned. A node built without a runner (a unit
        test calling its methods) is never stopping."""
        runner = getattr(self, "_runner", None)
        return runner is not None and runner.stopping()

    # --- contract checks ------------------------------------------------------------
    @classmethod
    def check_definition(cls) -> None:
        """Raise :class:`NodeDefinitionError` if the declarations and handlers disagree."""
        where = f"{cls.__module__}:{cls.__qualname__}"
        for name, policy in cls.inputs.items():
            if not isinstance(policy, (Latest, Queue)):
                raise NodeDefinitionError(f"{where}: input '{name}' must be Latest() or Queue(n), got {policy!r}")
            if not callable(getattr(cls, f"on_{name}", None)):
                raise NodeDefinitionError(f"{where}: input '{name}' has no handler on_{name}(self, msg)")
            for field_name, spec in policy.fields.items():
                try:
                    check_spec(spec)
                except NodeDefinitionError as exc:
                    raise NodeDefinitionError(f"{where}: input '{name}', field '{field_name}': {exc}") from None
        for name in cls.services:
            if not callable(getattr(cls, f"serve_{name}", None)):
                raise NodeDefinitionError(f"{where}: service '{name}' has no handler serve_{name}(self, msg)")
        for name in [*cls.inputs, *cls.outputs, *cls.services]:
            if not name.isidentifier():
                raise NodeDefinitionError(f"{where}: port name {name!r} must be a Python identifier")
        if STATUS_OUTPUT in cls.outputs:
            raise NodeDefinitionError(f"{where}: output name '{STATUS_OUTPUT}' is reserved")
        if cls.setup_failure not in ("exit", "stay_up"):
            raise NodeDefinitionError(f"{where}: setup_failure must be 'exit' or 'stay_up', got {cls.setup_failure!r}")
