"""Drives one Node: its sockets, its two threads and its status.

An I/O thread owns the input (SUB) sockets and the status socket. It drains every
input as fast as messages arrive, validates them, and keeps per input either the
newest message (``Latest``) or a bounded queue (``Queue``), so a slow handler never
makes ZeroMQ queue stale frames. It wakes the node thread over an inproc pair.

The node thread owns the output (PUB) and service (ROUTER) sockets and runs every
handler, timer and service of the node, one at a time. With shared memory on, an output's
ipc:// endpoint is an XPUB socket of its own: the node thread reads its subscriptions, and
a message's big arrays go into the output's slot pool (:mod:`edgerun.runtime.shm`) only while
some process on this host subscribes; inproc:// and tcp:// peers get every array inline.

The runner, not each node, keeps what went wrong: the last exception a handler, timer, service
or ``setup()`` raised is on the status (``last_error``), beside the count of handler errors and
of dropped messages by reason.
"""

from __future__ import annotations

import collections
import importlib
import logging
import math
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from edgerun.errors import EdgerunError, InputRefused
from edgerun.runtime import messages
from edgerun.runtime.fields import mismatch
from edgerun.runtime.messages import Limits, Message, Rejected
from edgerun.runtime.node import STATUS_OUTPUT, Latest, Node, Queue
from edgerun.runtime.params import build_params
from edgerun.runtime.paths import private_segment_dir
from edgerun.runtime.security import CurveKeys, connect_curve, serve_curve
from edgerun.runtime.services import call_socket
from edgerun.runtime.shm import SharedReader, SlotPool
from edgerun.runtime.stats import DropCounter, ErrorCounter, StreamStats
from edgerun.runtime.views import views_of
from edgerun.runtime.wiring import Link, NodeWiring

PUB_HWM = 16
PUB_LINGER_MS = 2000
"""How long a stopping node keeps sending what it published last (an env's final ``episode`` message,
queued behind its last camera frames); closed with linger 0 those were silently discarded."""
IO_FAILURES_FATAL = 20  # I/O-thread failures, each within IO_FAILURE_WINDOW_S of the last, that stop the node
IO_FAILURE_WINDOW_S = 5.0
POLL_CAP_MS = 100  # the longest any loop waits before it looks at the stop flag
RECONNECT_AFTER_NS = 500_000_000  # after a failed tcp:// handshake, which libzmq never retries itself
HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
EVENTS, READABLE = int(zmq.EVENTS), int(zmq.POLLIN)  # plain ints: pyzmq's enums cost microseconds per message


def import_node_class(path: str) -> type[Node]:
    """``"package.module:Class"`` → the class, checked to be a well-formed Node."""
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"class {path!r}: expected 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"class {path!r}: cannot import module '{module_name}': {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"class {path!r}: module '{module_name}' has no '{class_name}'")
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise ValueError(f"class {path!r} is not a subclass of edgerun.runtime.Node")
    cls.check_definition()
    views_of(cls)
    return cls


def bind_all(socket: zmq.Socket, endpoints: tuple[str, ...], keys: CurveKeys | None) -> None:
    """Bind local endpoints plain, then tcp:// ones as CURVE servers (options apply to later binds)."""
    for endpoint in sorted(endpoints, key=lambda e: e.startswith("tcp://")):
        if endpoint.startswith("tcp://") and keys is not None:
            serve_curve(socket, keys)
        if endpoint.startswith("ipc://"):
            try:  # a socket file left by a killed predecessor
                os.unlink(endpoint[len("ipc://"):])
            except FileNotFoundError:
                pass
        socket.bind(endpoint)


def connect(socket: zmq.Socket, link: Link, keys: CurveKeys | None) -> None:
    if link.endpoint.startswith("tcp://") and link.curve_host and keys is not None:
        connect_curve(socket, keys, link.curve_host)
    socket.connect(link.endpoint)


@dataclass
class InputState:
    name: str
    topic: str  # "node/output"
    policy: Latest | Queue
    socket: zmq.Socket
    sender: str
    pending: Message | None = None  # Latest inputs: the newest message not yet handled
    queue: collections.deque = field(default_factory=collections.deque)  # Queue inputs, node thread only
    last_seq: int = 0
    seq_before: int = 0  # last_seq before the latest accepted message: restored if its handler refuses it
    stats: StreamStats = field(default_factory=StreamStats)
    drops: DropCounter | None = None
    handshake_failures: ErrorCounter | None = None
    handler: Callable[[Message], None] | None = None
    received: int = 0
    endpoint: str = ""
    monitor: zmq.Socket | None = None  # tcp:// only: handshake failures, to reconnect
    reconnect_at_ns: int | None = None
    shared: SharedReader | None = None  # ipc:// inputs: maps the publisher's shared-memory slots

    @property
    def transport(self) -> str:
        """How its messages came: ``shm`` once one brought arrays in shared memory, else the endpoint's scheme."""
        if self.shared is not None and self.shared.resolved:
            return "shm"
        return self.endpoint.partition("://")[0]


@dataclass
class Timer:
    period_ns: int
    due_ns: int
    callback: Callable[[], None]


class NodeRunner:
    def __init__(
        self,
        wiring: NodeWiring,
        context: zmq.Context,
        process_stop: threading.Event,
        keys: CurveKeys | None = None,
        limits: Limits = Limits(),
    ):
        self.wiring = wiring
        self.context = context
        self.keys = keys
        self.limits = limits
        self.log = logging.getLogger(f"edgerun.{wiring.name}")
        self._process_stop = process_stop
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._timers: list[Timer] = []
        self._seq: dict[str, int] = {}
        self._output_stats: dict[str, StreamStats] = {}
        self._current_capture_ns: int | None = None
        self._busy_since_ns: int | None = None
        self._busy_total_ns = 0
        self._handler_errors = ErrorCounter(self.log, f"handler of node '{wiring.name}' raised")
        self._service_drops = DropCounter(self.log, f"node '{wiring.name}' dropped a service request")
        self._io_errors = ErrorCounter(self.log, f"I/O thread of node '{wiring.name}' raised")
        self._clients: dict[str, zmq.Socket] = {}
        self._started_ns = time.time_ns()
        self._node_thread_id: int | None = None
        self._last_error: dict[str, Any] | None = None  # replaced whole, never changed: read by the I/O thread
        self._setup_error: str | None = None  # set when setup() failed and the node stays up
        self.failed = False

        cls = import_node_class(wiring.cls)
        self.node = cls.__new__(cls)
        self.node.name = wiring.name
        self.node.log = self.log
        self.node._runner = self
        self.node.params = build_params(cls.params, wiring.params, where=f"node '{wiring.name}' params")
        self.cls = cls
        self._output_stats = {name: StreamStats() for name in cls.outputs}
        self._seq = {name: 0 for name in cls.outputs}

    # --- lifecycle ---------------------------------------------------------------------
    def stopping(self) -> bool:
        return self._stop.is_set() or self._process_stop.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Run the node until stopped; on the calling thread (the node thread)."""
        self._node_thread_id = threading.get_ident()
        self._open_sockets()
        io_thread = threading.Thread(target=self._io_loop, name=f"{self.wiring.name}-io", daemon=True)
        try:
            try:
                self.node.setup()
            except Exception as exc:
                if self.cls.setup_failure != "stay_up":
                    raise
                self._stay_up_after_failed_setup(exc)
            io_thread.start()
            self._node_loop()
        except Exception as exc:
            self.failed = True
            # edgerun's own errors say what is wrong and how to fix it: their message, not a traceback
            detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, EdgerunError) else traceback.format_exc().rstrip()
            self.log.error("node '%s' failed:\n%s", self.wiring.name, detail)
        finally:
            self._stop.set()
            try:
                self.node.teardown()
            except Exception:
                self.log.error("teardown of '%s' failed:\n%s", self.wiring.name, traceback.format_exc().rstrip())
            if io_thread.is_alive():
                io_thread.join(timeout=1.0)
            self._close_sockets()

    def _stay_up_after_failed_setup(self, exc: Exception) -> None:
        """A ``stay_up`` node whose setup failed: no handler, timer or service of it runs (its
        state is half built), but it answers status with the error until it is stopped."""
        self._record_error(exc, "setup")
        self._setup_error = f"{type(exc).__name__}: {exc}"
        self._timers.clear()
        detail = self._setup_error if isinstance(exc, EdgerunError) else traceback.format_exc().rstrip()
        self.log.error("node '%s' failed in setup; it stays up, dropping its input, with the error on its status: %s",
                       self.wiring.name, detail)

    def _record_error(self, exc: BaseException, where: str) -> None:
        self._last_error = {"type": type(exc).__name__, "message": str(exc), "where": where, "time_ns": time.time_ns()}

    # --- sockets ---------------------------------------------------------------------
    def _socket(self, kind: int) -> zmq.Socket:
        socket = self.context.socket(kind)
        socket.linger = 0
        return socket

    def _publisher(self, kind: int) -> zmq.Socket:
        socket = self._socket(kind)
        socket.sndhwm = PUB_HWM
        socket.copy_threshold = messages.ZERO_COPY_MIN_BYTES
        return socket

    def _open_sockets(self) -> None:
        w = self.wiring
        local = tuple(e for e in w.pub_binds if e.startswith("ipc://"))
        shared = w.shm is not None and w.segment_dir is not None and bool(local)
        # Shared memory on: the ipc:// endpoint gets an XPUB socket of its own (descriptors), the
        # others another (inline arrays), and each message goes only where someone subscribes.
        self.pub = self._publisher(zmq.XPUB if shared else zmq.PUB)
        self.local_pub = self._publisher(zmq.XPUB) if shared else None
        self._remote, self._local = _Subscriptions(self.pub), _Subscriptions(self.local_pub)
        self._pools: dict[str, SlotPool] = {}
        if shared:
            bind_all(self.local_pub, local, self.keys)
            directory = private_segment_dir(Path(w.segment_dir))
            for output in self.cls.outputs:
                self._pools[output] = SlotPool(directory, w.name, output, w.shm.slots, w.shm.readers.get(output, 0),
                                               self.limits)
        bind_all(self.pub, tuple(e for e in w.pub_binds if not (shared and e in local)), self.keys)
        self.ctl = self._socket(zmq.PUB)
        bind_all(self.ctl, w.ctl_binds, self.keys)
        self.srv = None
        if self.cls.services:
            self.srv = self._socket(zmq.ROUTER)
            self.srv.maxmsgsize = self.limits.max_message_bytes
            bind_all(self.srv, w.srv_binds, self.keys)
        # The I/O thread wakes the node thread through a pipe: cheaper than an inproc socket pair.
        self._wake_rx, self._wake_tx = os.pipe()
        os.set_blocking(self._wake_rx, False)
        self.inputs: dict[str, InputState] = {}
        for wired in w.inputs:
            policy = self.cls.inputs[wired.name]
            socket = self._socket(zmq.SUB)
            socket.rcvhwm = 2 if isinstance(policy, Latest) else policy.maxlen
            socket.maxmsgsize = self.limits.max_message_bytes
            socket.setsockopt(zmq.SUBSCRIBE, messages.subscription(wired.topic))
            connect(socket, wired.link, self.keys)
            state = InputState(wired.name, wired.topic, policy, socket, sender=wired.topic.split("/")[0])
            state.endpoint = wired.link.endpoint
            if state.endpoint.startswith("tcp://"):
                state.monitor = socket.get_monitor_socket(HANDSHAKE_FAILED)
            if state.endpoint.startswith("ipc://") and w.segment_dir is not None:
                state.shared = SharedReader(Path(w.segment_dir), wired.shm_column)
            state.handler = getattr(self.node, f"on_{wired.name}")
            state.drops = DropCounter(self.log, f"node '{w.name}' dropped a message on input '{wired.name}'")
            state.handshake_failures = ErrorCounter(self.log, f"input '{wired.name}' of '{w.name}': handshake failed")
            self.inputs[wired.name] = state

    def _close_sockets(self) -> None:
        os.close(self._wake_rx)
        os.close(self._wake_tx)
        self.pub.close(linger=PUB_LINGER_MS)  # bounded: a subscriber that stopped reading cannot hold the exit
        if self.local_pub is not None:
            self.local_pub.close(linger=PUB_LINGER_MS)
        for pool in self._pools.values():
            pool.close()
        sockets = [self.ctl, self.srv, *self._clients.values()]
        sockets += [s.socket for s in self.inputs.values()] + [s.monitor for s in self.inputs.values()]
        for socket in sockets:
            if socket is not None:
                socket.close(linger=0)

    # --- I/O thread: receive, validate, conflate or queue; publish status ---------------
    def _io_loop(self) -> None:
        """Run :meth:`_io_turns`, surviving what one turn raises (counted as ``io_errors`` on the status,
        the last one as ``last_error``). A thread that keeps failing stops the node as failed, so the
        process exits non-zero at once and its supervisor restarts it: never a silent stall."""
        consecutive, last_failure = 0, 0.0
        while not self.stopping():
            try:
                self._io_turns()
                return
            except Exception as exc:
                now = time.monotonic()
                consecutive = consecutive + 1 if now - last_failure < IO_FAILURE_WINDOW_S else 1
                last_failure = now
                self._io_errors.count(type(exc).__name__, f"{exc}")
                self._record_error(exc, "I/O thread")
                if consecutive >= IO_FAILURES_FATAL:
                    self.log.error("node '%s': its I/O thread failed %d times in a row; stopping the node as failed:\n%s",
                                   self.wiring.name, consecutive, traceback.format_exc().rstrip())  # fmt: skip
                    self.failed = True
                    self._stop.set()
                    self._wake()
                    return
                time.sleep(0.01 * consecutive)

    def _io_turns(self) -> None:
        """Drain ``Latest`` inputs continuously and publish status (Queue inputs are the node thread's)."""
        latest = [s for s in self.inputs.values() if isinstance(s.policy, Latest)]
        poller = zmq.Poller()
        by_socket = {state.socket: state for state in latest}
        for socket in by_socket:
            poller.register(socket, zmq.POLLIN)
        monitors = self._register_monitors(poller, latest)
        period_ns = int(self.wiring.status_period_s * 1e9)
        next_status_ns = time.time_ns()
        while not self.stopping():
            now_ns = time.time_ns()
            if now_ns >= next_status_ns:
                self._publish_status(now_ns)
                next_status_ns = now_ns + period_ns
            timeout_ms = min(POLL_CAP_MS, max(0, (next_status_ns - now_ns) // 1_000_000))
            if not by_socket:  # nothing to conflate: only status to publish
                self._stop.wait(timeout_ms / 1000)
                continue
            ready = dict(poller.poll(timeout_ms))
            delivered = False
            for socket in ready:
                if socket in by_socket:
                    delivered |= self._drain_latest(by_socket[socket])
            self._service_monitors(monitors, ready)
            if delivered:
                self._wake()

    def _register_monitors(self, poller: zmq.Poller, states: list[InputState]) -> dict[zmq.Socket, InputState]:
        monitors = {s.monitor: s for s in states if s.monitor is not None}
        for monitor in monitors:
            poller.register(monitor, zmq.POLLIN)
        return monitors

    def _service_monitors(self, monitors: dict[zmq.Socket, InputState], ready: dict) -> None:
        """libzmq drops a tcp:// endpoint for good after a protocol or auth failure: connect again later.

        Runs on the thread that owns the input's socket.
        """
        now_ns = time.time_ns()
        for monitor, state in monitors.items():
            if monitor in ready:
                while monitor.poll(0):
                    event = recv_monitor_message(monitor)
                    state.handshake_failures.count(event["event"].name, f"{state.endpoint}; reconnecting")
                if state.reconnect_at_ns is None:
                    state.reconnect_at_ns = now_ns + RECONNECT_AFTER_NS
            if state.reconnect_at_ns is not None and now_ns >= state.reconnect_at_ns:
                state.reconnect_at_ns = None
                try:
                    state.socket.disconnect(state.endpoint)
                except zmq.ZMQError:
                    pass  # libzmq already forgot the endpoint
                state.socket.connect(state.endpoint)

    def _receive(self, state: InputState) -> Message | None:
        """One message from the input's socket, validated; None if it was dropped (and counted)."""
        frames = state.socket.recv_multipart(copy=False)
        try:
            msg = messages.decode(frames, self.limits, state.shared)
        except Rejected as exc:
            state.drops.drop(exc.reason, exc.detail, exc.sender if exc.sender != "?" else state.sender)
            return None
        if msg.topic != state.topic:  # a forged topic frame that starts with ours and its NUL
            state.drops.drop("other_topic", f"topic '{msg.topic}' on input '{state.name}' ('{state.topic}')", msg.sender)
            return None
        if msg.sender != state.sender:
            state.drops.drop("wrong_sender", f"topic '{msg.topic}' is published by '{state.sender}'", msg.sender)
            return None
        if state.shared is not None:
            state.shared.received(msg.seq)
        skew_ns = msg.capture_ns - time.time_ns()
        if abs(skew_ns) > self.limits.max_clock_skew_ns:
            state.drops.drop("time_range", f"capture time {skew_ns / 1e9:+.0f} s from this host's clock", msg.sender)
            return None
        state.received += 1
        if state.policy.fields:
            found = mismatch(state.policy.fields, msg)
            if found is not None:
                reason, detail = found
                state.drops.count(reason, f"input '{state.name}': {detail} from node '{msg.sender}'",
                                  where=f"node '{self.wiring.name}' dropped a message")
                return None
        # sequence gaps are counted between messages that passed every check, so a dropped message
        # with a made-up seq cannot make the next good one look like a gap
        gap = msg.seq - state.last_seq - 1
        if state.last_seq and 0 < gap <= self.limits.max_seq_gap:  # dropped on the way: a full queue upstream
            state.drops.by_reason["missed"] += gap
        elif state.last_seq and gap > self.limits.max_seq_gap:
            state.drops.drop("seq_jump", f"seq {msg.seq} after {state.last_seq}", msg.sender)
        state.seq_before, state.last_seq = state.last_seq, msg.seq  # a restarted publisher starts again at 1: no gap
        return msg

    def _drain_latest(self, state: InputState) -> bool:
        """Read everything waiting; keep only the newest message (older ones count as ``conflated``)."""
        newest = None
        while state.socket.get(EVENTS) & READABLE:
            msg = self._receive(state)
            if msg is None:
                continue
            if newest is not None:
                state.drops.by_reason["conflated"] += 1
            newest = msg
        if newest is None:
            return False
        with self._lock:
            if state.pending is not None:
                state.drops.by_reason["conflated"] += 1
            state.pending = newest
        return True

    def _wake(self) -> None:
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        os.write(self._wake_tx, b"\0")

    def status(self, now_ns: int | None = None) -> dict[str, Any]:
        now_ns = time.time_ns() if now_ns is None else now_ns
        uptime_s = (now_ns - self._started_ns) / 1e9
        busy_since = self._busy_since_ns
        inputs = {}
        for name, state in self.inputs.items():
            inputs[name] = {
                **state.stats.snapshot(now_ns),
                "received": state.received,
                "drops": dict(state.drops.by_reason),
                "handshake_failures": state.handshake_failures.total,
                "transport": state.transport,
                "torn": state.shared.torn if state.shared is not None else 0,  # must stay 0
                "shm_copied": state.shared.copied if state.shared is not None else 0,
            }
        return {
            "node": self.wiring.name,
            "pid": os.getpid(),
            "uptime_s": round(uptime_s, 3),
            "restarts": self.wiring.restarts,
            "busy_s": round((now_ns - busy_since) / 1e9, 3) if busy_since else 0.0,
            "load": round(self._busy_total_ns / max(now_ns - self._started_ns, 1), 4),
            "handler_errors": self._handler_errors.total,
            "io_errors": self._io_errors.total,
            "last_error": self._last_error,  # {type, message, where, time_ns} or None
            "service_drops": dict(self._service_drops.by_reason),
            "inputs": inputs,
            "outputs": {name: {**stats.snapshot(now_ns), **self._output_transport(name)}
                        for name, stats in self._output_stats.items()},
            "details": self._node_status_fields(),
        }

    def _output_transport(self, output: str) -> dict[str, Any]:
        pool = self._pools.get(output)
        if pool is None or not pool.placed:
            return {"transport": "zmq"}
        return {"transport": "shm", "shm_slots": pool.slots, "shm_in_use": pool.in_use(),
                "shm_fallbacks": pool.fallbacks, "shm_threshold": self.wiring.shm.threshold_bytes}

    def _node_status_fields(self) -> dict[str, Any]:
        try:
            return dict(self.node.status_fields())
        except Exception as exc:  # a status must go out even when the node's own fields fail
            return {"status_fields_error": f"{type(exc).__name__}: {exc}"}

    def _publish_status(self, now_ns: int) -> None:
        frames = messages.encode(
            f"{self.wiring.name}/{STATUS_OUTPUT}",
            {"status": self.status(now_ns)},
            seq=int((now_ns - self._started_ns) // max(int(self.wiring.status_period_s * 1e9), 1)),
            capture_ns=now_ns,
            sender=self.wiring.name,
        )
        self.ctl.send_multipart(frames)

    # --- node thread: handlers, timers, services -------------------------------------
    def _node_loop(self) -> None:
        queues = [s for s in self.inputs.values() if isinstance(s.policy, Queue)]
        poller = zmq.Poller()
        poller.register(self._wake_rx, zmq.POLLIN)
        if self.srv is not None:
            poller.register(self.srv, zmq.POLLIN)
        for state in queues:
            poller.register(state.socket, zmq.POLLIN)
        subscriptions = {s.socket: s for s in (self._remote, self._local) if s.socket is not None}
        for socket in subscriptions:
            poller.register(socket, zmq.POLLIN)
        monitors = self._register_monitors(poller, queues)
        more_queued = False
        while not self.stopping():
            now_ns = time.time_ns()
            timeout_ms = 0 if more_queued else POLL_CAP_MS
            if self._timers:
                next_due = min(t.due_ns for t in self._timers)
                timeout_ms = min(timeout_ms, max(0, -(-(next_due - now_ns) // 1_000_000)))  # round up: no spinning
            ready = dict(poller.poll(timeout_ms))
            if self._wake_rx in ready:
                os.read(self._wake_rx, 4096)
                with self._lock:
                    self._wake_pending = False
            self._dispatch_latest()
            more_queued = self._dispatch_queues(queues)
            if self.srv is not None and self.srv in ready:
                self._serve()
            for socket in ready.keys() & subscriptions.keys():
                subscriptions[socket].update()
            self._service_monitors(monitors, ready)
            self._run_timers()

    def _dispatch_latest(self) -> None:
        for state in self.inputs.values():
            if state.pending is None:
                continue
            with self._lock:
                msg, state.pending = state.pending, None
            if msg is not None:
                self._dispatch(state, msg)

    def _dispatch_queues(self, queues: list[InputState]) -> bool:
        """Handle one message per Queue input (fair between inputs and timers); are more waiting?

        Each turn first reads everything that has arrived into the input's queue, dropping
        the oldest beyond ``maxlen`` (``queue_full``): the bound is exact, and what waits
        is the newest.
        """
        more = False
        for state in queues:
            if self.stopping():
                break
            while state.socket.get(EVENTS) & READABLE:
                msg = self._receive(state)
                if msg is None:
                    continue
                if len(state.queue) >= state.policy.maxlen:
                    state.queue.popleft()
                    state.drops.by_reason["queue_full"] += 1
                state.queue.append(msg)
            if state.queue:
                self._dispatch(state, state.queue.popleft())
            more |= bool(state.queue)
        return more

    def _dispatch(self, state: InputState, msg: Message) -> None:
        if self._setup_error is not None:
            state.drops.drop("setup_failed", f"setup failed: {self._setup_error}", msg.sender)
            return
        state.stats.record(msg.capture_ns)
        self._handle(state.handler, msg, where=f"input '{state.name}'", refused=state)

    def _handle(
        self,
        handler: Callable[..., Any],
        msg: Message | None = None,
        *,
        where: str,
        capture_ns: int | None = None,
        reraise=False,
        refused: InputState | None = None,
    ) -> Any:
        """Run one handler; an exception is logged, counted and kept as the status's ``last_error``
        (``where`` says which input, timer or service), and the node keeps running. An input
        handler's :class:`InputRefused` is a drop of that input (``refused``), not an error, and
        its sequence number no longer counts: a refused message cannot fake a gap either."""
        self._current_capture_ns = msg.capture_ns if msg is not None else capture_ns
        self._busy_since_ns = start = time.time_ns()
        try:
            return handler() if msg is None else handler(msg)
        except Exception as exc:
            if isinstance(exc, InputRefused) and refused is not None and msg is not None:
                refused.drops.drop(exc.reason, f"{where}: {exc}", msg.sender)
                if refused.last_seq == msg.seq:  # nothing newer accepted since
                    refused.last_seq = refused.seq_before
                return None
            self._record_error(exc, where)
            # a deliberate edgerun error says what and where in its message; a traceback only adds noise
            detail = f"{exc}" if isinstance(exc, EdgerunError) else traceback.format_exc().rstrip()
            self._handler_errors.count(type(exc).__name__, f"{where}: {detail}")
            if reraise:
                raise _HandlerFailed(exc) from exc
            return None
        finally:
            self._busy_total_ns += time.time_ns() - start
            self._busy_since_ns = None
            self._current_capture_ns = None

    def _run_timers(self) -> None:
        now_ns = time.time_ns()
        for timer in self._timers:
            if now_ns >= timer.due_ns:
                timer.due_ns += timer.period_ns
                if timer.due_ns < now_ns:  # fell behind: skip, do not burst
                    timer.due_ns = now_ns + timer.period_ns
                name = getattr(timer.callback, "__name__", repr(timer.callback))
                self._handle(timer.callback, where=f"timer '{name}'", capture_ns=now_ns)

    def _serve(self) -> None:
        while True:
            try:
                frames = self.srv.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity, rest = frames[0].bytes, frames[1:]
            try:
                request = messages.decode(rest, self.limits)
            except Rejected as exc:
                self._service_drops.drop(exc.reason, exc.detail, exc.sender)
                continue
            service = request.topic
            if service not in self.cls.services:
                reply: Mapping[str, Any] = {"error": f"node '{self.wiring.name}' has no service '{service}'"}
            elif self._setup_error is not None:
                reply = {"error": f"node '{self.wiring.name}' failed in setup: {self._setup_error}"}
            else:
                try:
                    handler = getattr(self.node, f"serve_{service}")
                    reply = self._handle(handler, request, where=f"service '{service}'", reraise=True) or {}
                except _HandlerFailed as failed:
                    reply = {"error": f"{type(failed.cause).__name__}: {failed.cause}"}
            out = messages.encode(
                service, reply, seq=request.seq, capture_ns=request.capture_ns, sender=self.wiring.name
            )
            self.srv.send_multipart([identity, *out], copy=False)

    # --- called by the node ---------------------------------------------------------
    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self._node_thread_id:
            raise RuntimeError(f"node '{self.wiring.name}': {what}() must be called from the node's own handlers")

    def _check_output(self, what: str, output: str) -> None:
        self._check_thread(what)
        if output not in self._seq:
            raise KeyError(
                f"node '{self.wiring.name}' has no output '{output}' (declared: {', '.join(self.cls.outputs) or 'none'})"
            )

    def publish(self, output: str, data: Mapping[str, Any], capture_ns: int | None) -> None:
        self._check_output("publish", output)
        if capture_ns is None:
            capture_ns = self._current_capture_ns if self._current_capture_ns is not None else time.time_ns()
        self._seq[output] += 1
        seq, topic, name = self._seq[output], f"{self.wiring.name}/{output}", self.wiring.name
        pool = self._pools.get(output)
        if pool is None:
            frames = messages.encode(topic, data, seq=seq, capture_ns=capture_ns, sender=name)
            self.pub.send_multipart(frames, copy=False)
        else:
            send_ns = time.time_ns()
            if self._remote.wanted(topic):  # arrays of a loaned slot are the pool's again once sent: copies
                inline = pool.without_loans(data)
                self.pub.send_multipart(messages.encode(topic, inline, seq=seq, capture_ns=capture_ns, sender=name,
                                                        send_ns=send_ns), copy=False)
            if self._local.wanted(topic):
                self.local_pub.send_multipart(self._local_frames(pool, topic, data, seq, capture_ns, send_ns), copy=False)
            pool.end_loan()
        self._output_stats[output].record(capture_ns)

    def send_raw(self, frames: list[Any]) -> None:
        """Send ``frames`` as they are, to every subscriber: for tests and the fuzz bench, which forge
        what :meth:`publish` exists to prevent."""
        for socket in (self.pub, self.local_pub):
            if socket is not None:
                socket.send_multipart(frames, copy=False)

    def _local_frames(self, pool: SlotPool, topic: str, data: Mapping[str, Any], seq: int, capture_ns: int,
                      send_ns: int) -> list[Any]:
        """Frames for this host's other processes: arrays from the threshold up in a slot, or all inline
        when there are none or no slot is free."""
        threshold = self.wiring.shm.threshold_bytes
        big = {k: v for k, v in data.items() if isinstance(v, np.ndarray) and v.nbytes >= threshold}
        shared = pool.place(seq, {k: messages.wire_array(k, v) for k, v in big.items()}) if big else None
        data = pool.without_loans(data) if shared is None else {k: v for k, v in data.items() if k not in big}
        return messages.encode(topic, data, seq=seq, capture_ns=capture_ns, sender=self.wiring.name,
                               send_ns=send_ns, shared=shared)

    def loan(self, output: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A writable array to fill and publish on ``output``: in a free shared-memory slot when this
        host's other processes subscribe (no copy on publish), else an ordinary new array."""
        self._check_output("loan", output)
        shape, dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        pool = self._pools.get(output)
        array = None
        if (pool is not None and math.prod(shape) * dtype.itemsize >= self.wiring.shm.threshold_bytes
                and self._local.wanted(f"{self.wiring.name}/{output}")):
            array = pool.loan(shape, dtype)
        return array if array is not None else np.empty(shape, dtype)

    def add_timer(self, period_s: float, callback: Callable[[], None]) -> None:
        if period_s <= 0:
            raise ValueError(f"timer period must be positive, got {period_s}")
        period_ns = int(period_s * 1e9)
        self._timers.append(Timer(period_ns, time.time_ns() + period_ns, callback))

    def call(self, service: str, data: Mapping[str, Any], timeout_s: float) -> Message:

        self._check_thread("call")
        node_name, sep, service_name = service.partition("/")
        link = self.wiring.services.get(node_name)
        if not sep or link is None:
            raise KeyError(f"service '{service}': no node '{node_name}' with services in this graph")
        socket = self._clients.get(node_name)
        if socket is None:
            socket = self._clients[node_name] = self._socket(zmq.DEALER)
            connect(socket, link, self.keys)
        try:
            return call_socket(socket, service_name, data, timeout_s, self.limits, sender=self.wiring.name)
        except TimeoutError:
            self._clients.pop(node_name).close(linger=0)  # a late reply must not answer the next call
            raise


class _Subscriptions:
    """The topic prefixes an XPUB socket's peers want: libzmq passes on the first subscription to
    each prefix and the last one's end (also when a peer disconnects or dies). The node thread
    reads them as they come (:meth:`update`, from its poll loop), so a publish asks a dict.
    ``socket=None``: a plain PUB, which sends everything."""

    def __init__(self, socket: zmq.Socket | None):
        self.socket = socket if socket is not None and socket.type == zmq.XPUB else None
        self.prefixes: set[bytes] = set()
        self._wanted: dict[str, bool] = {}

    def update(self) -> None:
        while self.socket.get(EVENTS) & READABLE:
            event = self.socket.recv()
            if event[:1] == b"\x01":
                self.prefixes.add(event[1:])
            elif event[:1] == b"\x00":
                self.prefixes.discard(event[1:])
            self._wanted.clear()

    def wanted(self, topic: str) -> bool:
        if self.socket is None:
            return True
        found = self._wanted.get(topic)
        if not found:  # nobody yet, as far as we know: a subscription may be waiting (setup, a long handler)
            self.update()
            encoded = messages.subscription(topic)
            found = self._wanted[topic] = any(encoded.startswith(prefix) for prefix in self.prefixes)
        return found


class _HandlerFailed(Exception):
    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause
