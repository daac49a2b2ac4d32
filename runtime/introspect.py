"""Look into a running graph from outside: find it, list its topics, echo them, measure rates."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import msgspec
import numpy as np
import psutil
import zmq

from edgerun.errors import NoRunError
from edgerun.runtime import messages
from edgerun.runtime.deployment import RUN_STATE, RunState, read_run_state
from edgerun.runtime.messages import Message
from edgerun.runtime.node import STATUS_OUTPUT
from edgerun.runtime.paths import runtime_root
from edgerun.runtime.shm import SharedReader
from edgerun.runtime.stats import DropCounter

LOG = logging.getLogger("edgerun.tools")


def running_graphs() -> dict[str, tuple[Path, RunState]]:
    runs = {}
    for state_file in sorted(runtime_root().glob(f"*/{RUN_STATE}")):
        try:
            state = read_run_state(state_file.parent)
        except (OSError, msgspec.DecodeError):
            continue
        if psutil.pid_exists(state.launcher_pid):
            runs[state.name] = (state_file.parent, state)
    return runs


def find_run(name: str | None) -> tuple[Path, RunState]:
    runs = running_graphs()
    if name is not None:
        if name not in runs:
            raise NoRunError(f"no running graph named '{name}' (running: {', '.join(runs) or 'none'})")
        return runs[name]
    if not runs:
        raise NoRunError(f"no graph is running (looked in {runtime_root()})")
    if len(runs) > 1:
        raise NoRunError(f"several graphs are running ({', '.join(runs)}); choose one with --run")
    return next(iter(runs.values()))


def topics(state: RunState, include_status: bool = False) -> dict[str, str]:
    """``{"node/output": endpoint}`` of a run."""
    found = {}
    for name, node in state.nodes.items():
        for output in node.outputs:
            found[f"{name}/{output}"] = node.pub
        if include_status:
            found[f"{name}/{STATUS_OUTPUT}"] = node.ctl
    return found


def subscribe(context: zmq.Context, state: RunState, topic: str) -> zmq.Socket:
    known = topics(state, include_status=True)
    if topic not in known:
        names = ", ".join(t for t in known if not t.endswith(STATUS_OUTPUT))
        raise NoRunError(f"graph '{state.name}' has no topic '{topic}' (topics: {names})")
    socket = context.socket(zmq.SUB)
    socket.linger = 0
    socket.rcvhwm = 64
    socket.setsockopt(zmq.SUBSCRIBE, messages.subscription(topic))
    socket.connect(known[topic])
    return socket


def shared_reader(segments: str | None) -> SharedReader | None:
    """A tool's reader of a run's shared-memory slots: it copies what it reads and holds nothing."""
    return SharedReader(Path(segments)) if segments else None


def transport(state: RunState, topic: str) -> str:
    """How ``topic`` reaches a tool: the words ``topic list`` and ``topic hz`` print."""
    node = state.nodes.get(topic.partition("/")[0])
    if node is None or node.shm_threshold is None:
        return "ipc"
    return f"shm (arrays from {node.shm_threshold:,} bytes; the rest over ipc)"


def receive(socket: zmq.Socket, topic: str, timeout_s: float | None, segments: str | None = None) -> Iterator[Message]:
    """Messages on exactly ``topic`` until ``timeout_s`` passes (forever if None); ``segments``: the
    run's shared-memory directory, for messages whose arrays lie there."""
    shared = shared_reader(segments)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while deadline is None or time.monotonic() < deadline:
        wait_ms = 200 if deadline is None else max(1, int((deadline - time.monotonic()) * 1000))
        if not socket.poll(min(wait_ms, 200), zmq.POLLIN):
            continue
        try:
            msg = messages.decode(socket.recv_multipart(copy=False), shared=shared)
        except messages.Rejected:
            continue
        if msg.topic == topic:
            yield msg


class StatusWatcher:
    """The latest status of every node of a run, read from the nodes' control sockets: what the
    launcher supervises by (a status is also a heartbeat) and what ``edgerun top`` shows."""

    def __init__(self, context: zmq.Context, state: RunState):
        self._order = list(state.nodes)
        self.statuses: dict[str, dict[str, Any]] = {}
        self.last_seen: dict[str, float] = {}  # time.monotonic() of each node's latest status
        self.socket = context.socket(zmq.SUB)
        self.socket.linger = 0
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        for node in state.nodes.values():
            self.socket.connect(node.ctl)

    def poll(self, timeout_ms: int) -> None:
        """Wait up to ``timeout_ms`` for statuses, then take in every one queued."""
        if not self.socket.poll(timeout_ms, zmq.POLLIN):
            return
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                msg = messages.decode(frames)
            except messages.Rejected:
                continue
            status = msg.fields.get("status")
            if isinstance(status, dict) and msg.sender in self._order:
                self.statuses[msg.sender] = status
                self.last_seen[msg.sender] = time.monotonic()

    def forget(self, node: str) -> None:
        """Drop ``node``'s status and heartbeat (its process is being restarted)."""
        self.last_seen.pop(node, None)

    def ordered(self) -> dict[str, dict[str, Any]]:
        """Latest status per node, in the graph file's order."""
        return {name: self.statuses[name] for name in self._order if name in self.statuses}

    def close(self) -> None:
        self.socket.close()


DRAIN_S = 2.0


def listen(
    topics: dict[str, str],
    duration_s: float | None,
    should_stop: Callable[[], bool] = lambda: False,
    hwm: int = 1000,
    segments: str | None = None,
) -> Iterator[Message]:
    """Every valid message on ``topics`` (``{topic: endpoint}``) until ``duration_s`` passes or
    ``should_stop()``; malformed ones are skipped. After ``should_stop()`` the queued messages sent
    before it are still delivered (for at most ``DRAIN_S``), so a recorder that lags a busy graph
    keeps the last messages, such as the episode's outcome, that the graph sent before it stopped.
    ``segments``: the run's shared-memory directory (arrays there are copied out)."""
    shared = shared_reader(segments)
    skipped = DropCounter(LOG, "skipped a message")
    context = zmq.Context.instance()
    socket = context.socket(zmq.SUB)
    socket.linger = 0
    socket.rcvhwm = hwm
    for topic, endpoint in topics.items():
        socket.setsockopt(zmq.SUBSCRIBE, messages.subscription(topic))
        socket.connect(endpoint)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    drain_until = stopped_ns = None
    try:
        while deadline is None or time.monotonic() < deadline:
            if drain_until is None and should_stop():
                drain_until, stopped_ns = time.monotonic() + DRAIN_S, time.time_ns()
            if not socket.poll(100 if drain_until is None else 0, zmq.POLLIN):
                if drain_until is not None:
                    break  # nothing more queued
                continue
            if drain_until is not None and time.monotonic() > drain_until:
                break
            try:
                msg = messages.decode(socket.recv_multipart(copy=False), shared=shared)
            except messages.Rejected as exc:  # said, not silent: a recording must not lose a topic unnoticed
                skipped.drop(exc.reason, exc.detail, exc.sender)
                continue
            if stopped_ns is not None and msg.send_ns > stopped_ns:
                break  # sent after the stop: the queue is drained
            if msg.topic in topics:
                yield msg
    finally:
        socket.close()


def describe_message(msg: Message) -> str:
    lines = [f"{msg.topic}  seq {msg.seq}  from {msg.sender}  age {msg.age_ns / 1e6:.1f} ms"]
    for name, array in msg.arrays.items():
        summary = f"  {name}: {array.dtype} {tuple(array.shape)}"
        if array.size and np.issubdtype(array.dtype, np.number):
            summary += f"  min {array.min():.4g}  max {array.max():.4g}  mean {array.mean():.4g}"
        lines.append(summary)
    for name, value in msg.fields.items():
        lines.append(f"  {name}: {value!r}")
    return "\n".join(lines)


def echo(state: RunState, topic: str, count: int | None, timeout_s: float | None, out: TextIO) -> int:
    context = zmq.Context.instance()
    socket = subscribe(context, state, topic)
    shown = 0
    try:
        for msg in receive(socket, topic, timeout_s, state.segments):
            print(describe_message(msg), file=out, flush=True)
            shown += 1
            if count is not None and shown >= count:
                break
    finally:
        socket.close()
    return shown


def hz(state: RunState, topic: str, duration_s: float | None, out: TextIO, window_s: float = 1.0) -> float:
    """Print the rate of ``topic`` every ``window_s``; returns the mean rate over the whole run."""
    context = zmq.Context.instance()
    socket = subscribe(context, state, topic)
    print(f"{topic}: transport {transport(state, topic)}", file=out, flush=True)
    arrivals: list[float] = []
    start = last_print = time.monotonic()
    try:
        for _ in receive_ticks(socket, topic, duration_s, arrivals):
            now = time.monotonic()
            if now - last_print >= window_s:
                recent = [t for t in arrivals if t >= now - window_s]
                print(f"{topic}: {len(recent) / window_s:.1f} Hz ({len(arrivals)} messages)", file=out, flush=True)
                last_print = now
    finally:
        socket.close()
    elapsed = max(time.monotonic() - start, 1e-9)
    return len(arrivals) / elapsed


def receive_ticks(socket: zmq.Socket, topic: str, duration_s: float | None, arrivals: list[float]) -> Iterator[None]:
    """Yield every 100 ms and record each message's arrival time in ``arrivals``."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while deadline is None or time.monotonic() < deadline:
        if socket.poll(100, zmq.POLLIN):
            while True:
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                if bytes(frames[0].buffer) == messages.subscription(topic):
                    arrivals.append(time.monotonic())
        yield
