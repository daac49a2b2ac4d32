"""Start, watch and stop the processes of a graph.

The launcher starts each process of this host's part of the graph, merges their logs
into one stream (each line prefixed by its process), subscribes to every node's status
(its heartbeat), restarts a process that dies or falls silent according to its
restart policy, with exponential back-off, and on Ctrl-C, SIGTERM or ``--duration``
stops them all: SIGTERM, then SIGKILL for any still alive after ``stop_timeout_s``.
When a process ends, however it ends, its inputs' holds on shared-memory slots are released
(their publishers reuse the slots at once); the run's segments are removed when the launcher
starts (a killed predecessor's) and when it stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import msgspec
import psutil
import zmq

from edgerun.errors import LaunchError
from edgerun.runtime.deployment import RUN_STATE, read_run_state, run_state, wire_processes, write_run_state
from edgerun.runtime.graph import Graph, RestartPolicy
from edgerun.runtime.introspect import StatusWatcher
from edgerun.runtime.live_view import LiveView
from edgerun.runtime.paths import run_dir, segment_dir
from edgerun.runtime.report import format_errors, format_table
from edgerun.runtime.security import load_keys
from edgerun.runtime.shm import release_reader, remove_segments
from edgerun.runtime.wiring import ProcessWiring, dump


@dataclass
class Child:
    wiring: ProcessWiring
    policy: RestartPolicy
    wiring_path: Path
    popen: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float | None = None
    done: bool = False
    failed: bool = False
    log_thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class LaunchResult:
    exit_code: int
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)


def _claim_run_dir(graph: Graph) -> Path:
    directory = run_dir(graph.name)
    if (directory / RUN_STATE).exists():
        try:
            previous = read_run_state(directory)
        except (OSError, msgspec.DecodeError):
            previous = None
        if previous and psutil.pid_exists(previous.launcher_pid) and previous.launcher_pid != os.getpid():
            raise LaunchError(
                f"graph '{graph.name}' is already running (launcher pid {previous.launcher_pid}, {directory}); "
                "stop it first or give the graph another name"
            )
    for stale in directory.iterdir():
        if stale.is_socket() or stale.suffix == ".json":
            stale.unlink()
    remove_segments(segment_dir(directory))
    return directory


class Launcher:
    def __init__(
        self,
        graph: Graph,
        host: str | None = None,
        duration_s: float | None = None,
        live_every_s: float = 2.0,
        stop_timeout_s: float = 5.0,
        out: TextIO = sys.stdout,
    ):
        self.graph = graph
        self.duration_s = duration_s
        self.stop_timeout_s = stop_timeout_s
        self.out = out
        self.view = LiveView(out, live_every_s)
        self.stop_event = threading.Event()
        self.directory = _claim_run_dir(graph)
        self.processes = wire_processes(graph, self.directory, host)
        for wiring in self.processes.values():
            if wiring.keys_dir:
                try:
                    load_keys(Path(wiring.keys_dir), wiring.host)
                except FileNotFoundError as exc:
                    raise LaunchError(str(exc)) from None
        self.state = run_state(graph, self.directory, host, self.processes)
        self.children: dict[str, Child] = {}
        for name, wiring in self.processes.items():
            policy = graph.nodes[wiring.nodes[0].name].spec.restart
            self.children[name] = Child(wiring, policy, self.directory / f"process-{name}.json")
        self.watcher: StatusWatcher | None = None  # while run() runs

    # --- output ----------------------------------------------------------------------
    def say(self, line: str) -> None:
        self.view.say(line)

    def _pump_logs(self, name: str, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            self.say(f"{name:>12} | {raw.decode(errors='replace').rstrip()}")
        stream.close()

    # --- processes -------------------------------------------------------------------
    def _start(self, child: Child) -> None:
        nodes = tuple(msgspec.structs.replace(n, restarts=child.restarts) for n in child.wiring.nodes)
        child.wiring_path.write_bytes(dump(msgspec.structs.replace(child.wiring, nodes=nodes)))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child.popen = subprocess.Popen(
            [sys.executable, "-m", "edgerun.runtime.host", str(child.wiring_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops nodes in order
            env=env,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        for node in child.wiring.nodes:
            self.state.nodes[node.name].pid = child.popen.pid
            self.state.nodes[node.name].restarts = child.restarts
            if self.watcher is not None:
                self.watcher.forget(node.name)
        write_run_state(self.directory, self.state)
        child.log_thread = threading.Thread(target=self._pump_logs, args=(child.wiring.name, child.popen.stdout), daemon=True)
        child.log_thread.start()

    def _release_holds(self, child: Child) -> None:
        """The process is gone: what its inputs held in other nodes' slot pools is free again."""
        for node in child.wiring.nodes:
            for wired in node.inputs:
                if wired.shm_column is not None and node.segment_dir is not None:
                    producer, _, output = wired.topic.partition("/")
                    release_reader(Path(node.segment_dir), producer, output, wired.shm_column)

    def _on_exit(self, child: Child, code: int) -> None:
        self._release_holds(child)
        name, policy = child.wiring.name, child.policy
        how = f"exited with code {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}"
        if code == 0 and policy.policy != "always":
            self.say(f"[edgerun] process '{name}' finished")
            child.done = True
        elif policy.policy == "never" or child.restarts >= policy.max_restarts:
            reason = "restart policy is 'never'" if policy.policy == "never" else f"{child.restarts} restarts used"
            self.say(f"[edgerun] process '{name}' {how}; not restarting ({reason})")
            child.done, child.failed = True, code != 0
        else:
            delay = min(policy.backoff_s * 2**child.restarts, policy.max_backoff_s)
            child.restarts += 1
            child.restart_at = time.monotonic() + delay
            self.say(f"[edgerun] process '{name}' {how}; restart {child.restarts}/{policy.max_restarts} in {delay:.1f} s")
        child.popen = None

    def _kill(self, child: Child, sig: int) -> None:
        if child.alive:
            try:
                os.killpg(child.popen.pid, sig)
            except ProcessLookupError:
                pass

    def _check_heartbeats(self, now: float) -> None:
        timeout = self.graph.spec.heartbeat_timeout_s
        for child in self.children.values():
            if not child.alive or now - child.started_at < timeout:
                continue
            last = max((self.watcher.last_seen.get(n.name, child.started_at) for n in child.wiring.nodes))
            if now - last > timeout:
                self.say(f"[edgerun] process '{child.wiring.name}' sent no heartbeat for {now - last:.1f} s; killing it")
                self._kill(child, signal.SIGKILL)

    def _stop_with_finished(self) -> bool:
        """A node named in the graph's ``stop_with`` has ended cleanly: the graph's work is done."""
        for node in self.graph.spec.stop_with:
            child = self.children.get(self.graph.nodes[node].process)
            if child is not None and child.done and not child.failed:
                self.say(f"[edgerun] '{node}' finished: stopping the graph")
                return True
        return False

    def ordered_statuses(self) -> dict[str, dict[str, Any]]:
        """Latest status per node, in the graph file's order."""
        return self.watcher.ordered() if self.watcher is not None else {}

    # --- main loop -------------------------------------------------------------------
    def run(self, install_signal_handlers: bool = True) -> LaunchResult:
        previous: dict[int, Callable] = {}
        if install_signal_handlers:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, lambda *_: self.stop_event.set())
        context = zmq.Context()
        self.watcher = StatusWatcher(context, self.state)
        started = time.monotonic()
        self.say(
            f"[edgerun] launching '{self.graph.name}': {len(self.state.nodes)} nodes in {len(self.children)} processes"
            + (f" for {self.duration_s:g} s" if self.duration_s else "")
        )
        with self.view:  # on a terminal: the table in place, log lines above it, gone before the summary
            try:
                for child in self.children.values():
                    self._start(child)
                while not self.stop_event.is_set():
                    self.watcher.poll(100)
                    now = time.monotonic()
                    for child in self.children.values():
                        if child.popen is not None and (code := child.popen.poll()) is not None:
                            self._on_exit(child, code)
                        elif child.restart_at is not None and now >= child.restart_at:
                            self._start(child)
                    self._check_heartbeats(now)
                    if all(c.done for c in self.children.values()) or self._stop_with_finished():
                        break
                    if self.duration_s is not None and now - started >= self.duration_s:
                        break
                    self.view.show(self.ordered_statuses(), self._title(now - started))
            finally:
                self._shutdown()
                self.watcher.close()
                context.destroy(linger=0)
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        if self.ordered_statuses():
            self.say("[edgerun] summary\n" + format_table(self.ordered_statuses()))
            if errors := format_errors(self.ordered_statuses()):
                self.say("[edgerun] last errors\n" + errors)
        failed = [c.wiring.name for c in self.children.values() if c.failed]
        if failed:
            self.say(f"[edgerun] failed: {', '.join(failed)}")
        return LaunchResult(
            exit_code=1 if failed else 0,
            statuses=self.ordered_statuses(),
            restarts={name: c.restarts for name, c in self.children.items()},
        )

    def _title(self, elapsed_s: float) -> str:
        alive = sum(c.alive for c in self.children.values())
        return (f"{self.graph.name}: {len(self.state.nodes)} nodes, {alive}/{len(self.children)} processes up, "
                f"{elapsed_s:.0f} s (Ctrl-C to stop)")

    def _shutdown(self) -> None:
        for child in self.children.values():
            self._kill(child, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in self.children.values():
            if child.popen is None:
                continue
            try:
                child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"[edgerun] process '{child.wiring.name}' ignored SIGTERM for {self.stop_timeout_s:g} s; killing it")
                self._kill(child, signal.SIGKILL)
                child.popen.wait()
        for child in self.children.values():
            if child.log_thread is not None:
                child.log_thread.join(timeout=1.0)
        for path in self.directory.iterdir():
            if path.is_socket() or path.suffix == ".json":
                path.unlink(missing_ok=True)
        shutil.rmtree(segment_dir(self.directory), ignore_errors=True)
