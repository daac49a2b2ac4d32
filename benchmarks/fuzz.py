"""``edgerun bench fuzz``: the live Wall graph (env, planner, episode report) under a hostile peer and
an outside attacker, measuring whether it keeps running.

The graph is the shipped closed loop with a proxy on each of its two links: ``env → fuzz_planner →
planner`` (observation, goal) and ``planner → fuzz_env → env`` (action). A proxy forwards every
message unchanged, so the loop runs as before; when the driver calls its ``start`` service it also
sends hostile messages on the same topics, round robin over :data:`KINDS`, at ``rate_hz``: what a
faulty or compromised node can put on the wire. Meanwhile the driver, as an outside process on the
same host, sends hostile requests to the env's ``reset`` service (:data:`SERVICE_KINDS`), the one
socket of the graph that accepts messages from anyone who can reach it.

Measured, in this order:

1. the loop rate before (planner plans per second over ``before_s``, once the loop runs) and the
   RSS of every node process;
2. the fuzzing: ``messages`` hostile messages in all; any node process that exits (a crash) or is
   restarted, any node whose status stops for 3 status periods or a loop that makes no plan for
   ``stall_s`` (a stall), and the loop rate meanwhile;
3. RSS again after a short settle, then a clean stop of the graph.

The bars (issue 21): ``crashes`` 0, ``stalls`` 0, ``restarts`` 0, ``rss_growth_mb`` (MiB, summed
over node processes) at most 32, ``loop_rate_ratio`` (during / before) at least 0.5. Exit code of
:func:`main`: 0 when all pass, 1 when one fails, 2 when the benchmark could not run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import msgspec
import numpy as np
import psutil
import zmq

from edgerun.benchmarks.messaging import machine_info
from edgerun.errors import NoRunError, ServiceError
from edgerun.runtime import Message, Node, Queue, messages
from edgerun.runtime.introspect import StatusWatcher, find_run
from edgerun.runtime.services import call_socket

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "checkpoints" / "dino_wm_wall" / "model.pt"
BIG_BYTES = 50 * 1024 * 1024

KINDS = (
    "random_frames",     # a topic and random bytes, sometimes extra frames
    "truncated_header",  # a valid header cut short
    "oversized_header",  # a 128 KiB header frame
    "huge_shape",        # an array that claims 4 TiB
    "negative_shape",
    "object_dtype",      # '|O': pickled objects
    "mismatched_dtype",  # float64 declared over a float32-sized buffer
    "wrong_frame_count",  # the header lists an array whose buffer is missing
    "deep_msgpack",      # fields nested 30,000 deep
    "seq_beyond_int64",  # 2**64 - 1
    "capture_before_1970",  # -2**63 + 1e9
    "capture_an_hour_ahead",
    "prefix_topic",      # our topic, its NUL and '_extra': ZeroMQ's prefix match delivers it
    "impostor_sender",
    "seq_jump",          # 2**62, otherwise the forwarded message itself
    "non_finite",        # the forwarded message with NaN in its float arrays
    "wrong_shape",       # the forwarded message with its arrays reshaped
    "shm_path_escape",   # a shared-memory descriptor naming ../../etc/passwd
    "shm_other_node",    # a descriptor naming another node's slot
    "shm_odd_generation",  # a descriptor of a slot being written
    "big_frame",         # 50 MiB with a header that does not fit it (one per big_every messages)
)
STATUS_SILENCE_S = 3.0
"""A node whose status (sent once a second) is older than this while fuzzing counts as a stall."""
SERVICE_KINDS = ("reset_negative_seed", "reset_nan_start", "reset_garbage_frames", "reset_unknown_service")


def _header(sender: str, *, seq: int = 1, capture_ns: int | None = None, arrays: tuple = (), fields: dict | None = None,
            version: int = messages.WIRE_VERSION, shared: messages.Shared | None = None) -> bytes:
    return msgspec.msgpack.encode(messages.Header(version=version, seq=seq, capture_ns=time.time_ns() if capture_ns is None else capture_ns,
                                                  send_ns=time.time_ns(), sender=sender, arrays=arrays, fields=fields or {},
                                                  shared=shared))


def _descriptor(segment: str, generation: int = 2) -> messages.Shared:
    return messages.Shared(segment, generation, (messages.SharedArray("x", "<f4", (1024,), 0),))


def hostile(kind: str, topic: str, sender: str, last: Message | None, rng: np.random.Generator) -> list[bytes]:
    """The frames of one hostile message of ``kind`` on ``topic``; ``last`` (the latest forwarded
    message, if any) is the base of the kinds that are well formed but wrong."""
    t = messages.subscription(topic)
    spec = lambda dtype, shape: (messages.ArrayField("x", dtype, shape, 0),)  # noqa: E731
    if kind == "random_frames":
        return [t, *(rng.bytes(int(rng.integers(0, 256))) for _ in range(int(rng.integers(1, 5))))]
    if kind == "truncated_header":
        header = _header(sender, arrays=spec("<f4", (4,)))
        return [t, header[: int(rng.integers(1, len(header)))], b"\0" * 16]
    if kind == "oversized_header":
        return [t, b"\x91" + rng.bytes(128 * 1024)]
    if kind == "huge_shape":
        return [t, _header(sender, arrays=spec("<f4", (1 << 40,))), b"\0" * 16]
    if kind == "negative_shape":
        return [t, _header(sender, arrays=spec("<f4", (-4,))), b"\0" * 16]
    if kind == "object_dtype":
        return [t, _header(sender, arrays=spec("|O", (4,))), b"\0" * 32]
    if kind == "mismatched_dtype":
        return [t, _header(sender, arrays=spec("<f8", (4,))), b"\0" * 16]
    if kind == "wrong_frame_count":
        return [t, _header(sender, arrays=spec("<f4", (4,)))]
    if kind == "deep_msgpack":
        return [t, _header(sender)[:-1] + b"\x81\xa1x" + b"\x91" * 30_000 + b"\xc0"]
    if kind == "seq_beyond_int64":
        return [t, _header(sender, seq=(1 << 64) - 1)]
    if kind == "capture_before_1970":
        return [t, _header(sender, capture_ns=-(1 << 63) + 10**9)]
    if kind == "capture_an_hour_ahead":
        return [t, _header(sender, capture_ns=time.time_ns() + 3600 * 10**9)]
    if kind == "prefix_topic":
        return [t + b"_extra", _header(sender)]
    if kind == "impostor_sender":
        return [t, _header("impostor")]
    if kind == "big_frame":
        return [t, _header(sender, arrays=spec("<f4", (16,))), b"\0" * BIG_BYTES]
    node, _, output = topic.partition("/")
    if kind == "shm_path_escape":
        return [t, _header(sender, shared=_descriptor("../../etc/passwd"))]
    if kind == "shm_other_node":
        return [t, _header(sender, shared=_descriptor(f"camera.frames.{os.getpid()}.0.1"))]
    if kind == "shm_odd_generation":
        return [t, _header(sender, shared=_descriptor(f"{node}.{output}.{os.getpid()}.0.1", generation=3))]
    data: dict[str, Any] = dict(last.fields) if last is not None else {}
    arrays = dict(last.arrays) if last is not None else {"x": np.zeros(4, np.float32)}
    if kind == "seq_jump":
        return messages.encode(topic, {**data, **arrays}, seq=1 << 62, capture_ns=time.time_ns(), sender=sender)
    if kind == "non_finite":
        arrays = {k: np.full_like(a, np.nan) if a.dtype.kind == "f" else a for k, a in arrays.items()}
    elif kind == "wrong_shape":
        arrays = {k: np.zeros((3, 7), a.dtype) for k, a in arrays.items()}
    else:
        raise ValueError(f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    return messages.encode(topic, {**data, **arrays}, seq=1, capture_ns=time.time_ns(), sender=sender)


# --- the proxies: nodes of the fuzzed graph ------------------------------------------------------


@dataclass(frozen=True)
class FuzzParams:
    messages: int = 10_000  # hostile messages this proxy sends in all
    rate_hz: float = 5_000.0
    big_every: int = 5_000  # one 50 MiB frame per this many hostile messages
    seed: int = 0


class _FuzzProxy(Node):
    """Forwards each input on the output of the same name and, once ``start`` is called, sends
    ``messages`` hostile messages on those outputs too."""

    params = FuzzParams
    services = ("start",)
    TICK_S = 0.01

    def setup(self) -> None:
        self.sent: Counter[str] = Counter()
        self.last: dict[str, Message] = {}
        self.rng = np.random.default_rng(self.params.seed)
        self.started_at: float | None = None
        self.every(self.TICK_S, self._burst)

    def forward(self, output: str, msg: Message) -> None:
        self.last[output] = msg
        self.publish(output, capture_ns=msg.capture_ns, **msg.fields, **msg.arrays)

    def serve_start(self, msg: Message) -> dict[str, Any]:
        self.started_at = self.started_at or time.monotonic()
        return {"messages": self.params.messages}

    def _burst(self) -> None:
        total = sum(self.sent.values())
        if self.started_at is None or total >= self.params.messages:
            return
        due = int((time.monotonic() - self.started_at) * self.params.rate_hz) + 1
        small = [k for k in KINDS if k != "big_frame"]
        for i in range(total, min(due, self.params.messages)):
            kind = "big_frame" if (i + 1) % self.params.big_every == 0 else small[i % len(small)]
            output = self.outputs[i % len(self.outputs)]
            frames = hostile(kind, f"{self.name}/{output}", self.name, self.last.get(output), self.rng)
            self._runner.send_raw(frames)  # raw frames: what Node.publish exists to prevent
            self.sent[kind] += 1

    def status_fields(self) -> dict[str, Any]:
        sent = getattr(self, "sent", Counter())
        return {"sent": sum(sent.values()), "by_kind": dict(sent), "started": getattr(self, "started_at", None) is not None}


class PlannerSideProxy(_FuzzProxy):
    inputs = {"observation": Queue(8), "goal": Queue(8)}
    outputs = ("observation", "goal")

    def on_observation(self, msg: Message) -> None:
        self.forward("observation", msg)

    def on_goal(self, msg: Message) -> None:
        self.forward("goal", msg)


class EnvSideProxy(_FuzzProxy):
    inputs = {"action": Queue(8)}
    outputs = ("action",)

    def on_action(self, msg: Message) -> None:
        self.forward("action", msg)


# --- the driver ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzConfig:
    messages: int = 100_000
    rate_hz: float = 5_000.0  # both proxies together
    before_s: float = 20.0
    stall_s: float = 15.0  # no plan for this long while fuzzing: a stall
    service_every_s: float = 0.05  # one hostile service request per this many seconds
    samples: int = 64  # a CEM budget that plans several times a second on 2 cores
    iterations: int = 3
    planner_threads: int = max(1, (os.cpu_count() or 2) - 1)
    """One core left to the env, the proxies and the I/O threads: with torch on every core, any
    other work on the machine makes its parallel regions wait on a descheduled thread (2 cores,
    5,000 msg/s: 0.31-0.36 of the plan rate with 2 threads, 0.64-0.79 with 1)."""
    timeout_s: float = 900.0


def graph_yaml(config: FuzzConfig) -> str:
    planner_side = config.messages * 2 // 3  # two topics on that side, one on the other
    env_side = config.messages - planner_side
    proxy = "messages: {m}, rate_hz: {r:.1f}, seed: {s}"
    return f"""
name: fuzz_wall
nodes:
  - id: env
    class: edgerun.nodes.env:EnvNode
    params: {{env_id: edgerun/Wall-v0, seed: 1000}}
    inputs: {{action: fuzz_env/action}}
  - id: fuzz_env
    class: edgerun.benchmarks.fuzz:EnvSideProxy
    params: {{{proxy.format(m=env_side, r=config.rate_hz / 3, s=1)}}}
    inputs: {{action: planner/action}}
  - id: fuzz_planner
    class: edgerun.benchmarks.fuzz:PlannerSideProxy
    params: {{{proxy.format(m=planner_side, r=config.rate_hz * 2 / 3, s=2)}}}
    inputs: {{observation: env/observation, goal: env/goal}}
  - id: planner
    class: edgerun.nodes.planner:Planner
    params: {{checkpoint: {CHECKPOINT}, preset: wall, samples: {config.samples}, iterations: {config.iterations},
             threads: {config.planner_threads}}}
    inputs: {{observation: fuzz_planner/observation, goal: fuzz_planner/goal}}
  - id: report
    class: edgerun.nodes.episodes:EpisodeReport
    inputs: {{episode: env/episode}}
"""


def process_cpu_s(pids: set[int]) -> dict[int, float]:
    """User + system CPU seconds of each process so far."""
    cpu = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            cpu[pid] = times.user + times.system
        except psutil.Error:
            pass
    return cpu


def process_rss_mb(pids: set[int]) -> dict[int, float]:
    rss = {}
    for pid in pids:
        try:
            rss[pid] = psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            pass
    return rss


class ServiceAttacker:
    """Hostile requests to the env's ``reset`` service from outside the graph (a DEALER socket)."""

    def __init__(self, context: zmq.Context, endpoint: str):
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(endpoint)
        self.sent: Counter[str] = Counter()
        self.accepted = 0  # hostile requests the env carried out: each one a failure
        self._i = 0

    def attack(self) -> None:
        kind = SERVICE_KINDS[self._i % len(SERVICE_KINDS)]
        self._i += 1
        self.sent[kind] += 1
        if kind == "reset_garbage_frames":
            self.socket.send_multipart([b"reset", os.urandom(48)])
            return
        request = {"reset_negative_seed": ("reset", {"seed": -5}),
                   "reset_nan_start": ("reset", {"options": {"start": [float("nan"), 1.0]}}),
                   "reset_unknown_service": ("shutdown", {})}[kind]
        try:
            call_socket(self.socket, request[0], request[1], timeout_s=2.0, sender="attacker")
            self.accepted += 1
        except (ServiceError, TimeoutError):
            pass

    def close(self) -> None:
        self.socket.close()


def _plans(statuses: dict[str, dict]) -> int:
    return int(statuses.get("planner", {}).get("details", {}).get("plans", 0))


def run_fuzz(config: FuzzConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Launch the fuzzed graph, measure before, during and after; the result dict (see the module doc)."""
    work = Path(tempfile.mkdtemp(prefix="er-fuzz-", dir="/tmp"))
    graph = work / "fuzz_wall.yaml"
    graph.write_text(graph_yaml(config))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(work / "run")}
    (work / "run").mkdir(mode=0o700)
    log = open(work / "launch.log", "w+")
    launcher = subprocess.Popen([sys.executable, "-m", "edgerun.cli", "launch", str(graph)], stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    runtime_before = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]  # find_run looks there
    context = zmq.Context()
    deadline = time.monotonic() + config.timeout_s
    try:
        state = None
        while state is None:
            if launcher.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the graph did not start: {(work / 'launch.log').read_text()[-2000:]}")
            try:
                state = find_run("fuzz_wall")[1]
            except NoRunError:
                time.sleep(0.2)
        watcher = StatusWatcher(context, state)
        say(f"fuzz: graph up ({len(state.nodes)} nodes); waiting for the loop to plan")
        while _plans(watcher.ordered()) < 3:
            watcher.poll(200)
            if launcher.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the loop never planned: {(work / 'launch.log').read_text()[-2000:]}")

        nodes_by_pid = {n.pid: name for name, n in find_run("fuzz_wall")[1].nodes.items() if n.pid}
        pids = set(nodes_by_pid)
        plans0, t0, cpu0 = _plans(watcher.ordered()), time.monotonic(), process_cpu_s(pids)
        while time.monotonic() - t0 < config.before_s:
            watcher.poll(200)
        rate_before = (_plans(watcher.ordered()) - plans0) / (time.monotonic() - t0)
        cpu_before = {nodes_by_pid[p]: (s - cpu0.get(p, s)) / (time.monotonic() - t0) for p, s in process_cpu_s(pids).items()}
        rss_before = process_rss_mb(pids)
        say(f"fuzz: before: {rate_before:.2f} plans/s, RSS {sum(rss_before.values()):.0f} MiB in {len(rss_before)} processes")

        for proxy in ("fuzz_env", "fuzz_planner"):
            sock = context.socket(zmq.DEALER)
            sock.linger = 0
            sock.connect(state.nodes[proxy].srv)
            call_socket(sock, "start", {}, timeout_s=10.0, sender="fuzz")
            sock.close()
        attacker = ServiceAttacker(context, state.nodes["env"].srv)
        plans1, t1, cpu1 = _plans(watcher.ordered()), time.monotonic(), process_cpu_s(pids)
        last_plan_at, last_plans, stalls, next_attack, next_say = t1, plans1, [], t1, t1 + 5
        stalled_nodes: set[str] = set()
        sent = 0
        while sent < config.messages:
            watcher.poll(50)
            now = time.monotonic()
            statuses = watcher.ordered()
            sent = sum(statuses.get(p, {}).get("details", {}).get("sent", 0) for p in ("fuzz_env", "fuzz_planner"))
            if (plans := _plans(statuses)) > last_plans:
                last_plans, last_plan_at = plans, now
            elif now - last_plan_at > config.stall_s and "loop" not in stalled_nodes:
                stalls.append(f"no plan for {now - last_plan_at:.0f} s")
                stalled_nodes.add("loop")
            for node, seen in watcher.last_seen.items():
                if now - seen > STATUS_SILENCE_S and node not in stalled_nodes:
                    stalls.append(f"no status from '{node}' for {now - seen:.1f} s")
                    stalled_nodes.add(node)
            if now >= next_attack:
                attacker.attack()
                next_attack = now + config.service_every_s
            if now >= next_say:
                say(f"fuzz: {sent:,} of {config.messages:,} hostile messages sent, {plans - plans1} plans meanwhile")
                next_say = now + 5
            if launcher.poll() is not None or now > deadline:
                raise RuntimeError(f"the launcher ended or the run timed out while fuzzing: {(work / 'launch.log').read_text()[-2000:]}")
        t2 = time.monotonic()
        rate_during = (_plans(watcher.ordered()) - plans1) / (t2 - t1)
        cpu_during = {nodes_by_pid[p]: (s - cpu1.get(p, s)) / (t2 - t1) for p, s in process_cpu_s(pids).items()}
        settle = time.monotonic()
        while time.monotonic() - settle < 3.0:
            watcher.poll(200)
        statuses = watcher.ordered()
        now_pids = {n.pid for n in find_run("fuzz_wall")[1].nodes.values() if n.pid}
        rss_after = process_rss_mb(pids & now_pids)
        attacker.close()
        watcher.close()
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGINT)
            try:
                launcher.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait()
        context.destroy(linger=0)
        if runtime_before is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = runtime_before
    log.seek(0)
    text = log.read()
    log.close()
    shutil.rmtree(work, ignore_errors=True)  # the graph file, its run directory and the launcher's log
    crashes = [line for line in text.splitlines() if line.startswith("[edgerun] process") and ("exited with code" in line or "was killed by" in line)]
    drops = {f"{node}.{name}": s.get("drops", {}) for node, st in statuses.items() for name, s in st["inputs"].items()}
    by_kind: Counter[str] = Counter()
    for proxy in ("fuzz_env", "fuzz_planner"):
        by_kind.update(statuses.get(proxy, {}).get("details", {}).get("by_kind", {}))
    growth = sum(rss_after.get(pid, 0.0) - mb for pid, mb in rss_before.items() if pid in rss_after)
    return {
        "messages": sent,
        "by_kind": dict(sorted(by_kind.items())),
        "service_requests": dict(attacker.sent),
        "service_requests_carried_out": attacker.accepted,
        "crashes": len(crashes),
        "crash_lines": crashes,
        "restarts": sum(s.get("restarts", 0) for s in statuses.values()),
        "stalls": len(stalls),
        "stall_reasons": stalls,
        "rss_mb_before": round(sum(rss_before.values()), 1),
        "rss_mb_after": round(sum(rss_after.values()), 1),
        "rss_growth_mb": round(growth, 1),
        "loop_rate_before_hz": round(rate_before, 3),
        "loop_rate_during_hz": round(rate_during, 3),
        "loop_rate_ratio": round(rate_during / rate_before, 3) if rate_before > 0 else None,
        "fuzz_seconds": round(t2 - t1, 1),
        "cpu_cores_before": {name: round(v, 2) for name, v in cpu_before.items()},  # CPU seconds per second, per node
        "cpu_cores_during": {name: round(v, 2) for name, v in cpu_during.items()},
        "drops": drops,
        "io_errors": {node: st.get("io_errors", 0) for node, st in statuses.items()},
        "launcher_exit_code": launcher.returncode,
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "machine": machine_info(),
    }


BARS = {
    "crashes": lambda v: v == 0,
    "stalls": lambda v: v == 0,
    "restarts": lambda v: v == 0,
    "rss_growth_mb": lambda v: v <= 32,
    "loop_rate_ratio": lambda v: v is not None and v >= 0.5,
    "service_requests_carried_out": lambda v: v == 0,
}


def main(quick: bool = False, json_path: str | None = None, messages: int | None = None, rate: float | None = None) -> int:
    config = FuzzConfig(messages=messages or (10_000 if quick else 100_000), before_s=10.0 if quick else 20.0,
                        rate_hz=rate or FuzzConfig.rate_hz)
    try:
        result = run_fuzz(config)
    except (RuntimeError, OSError, ServiceError, TimeoutError) as exc:
        print(f"edgerun bench fuzz: could not run: {exc}", file=sys.stderr)
        return 2
    result["bars"] = {key: bool(check(result[key])) for key, check in BARS.items()}
    for key, ok in result["bars"].items():
        print(f"{key:30} {result[key]!s:>10}  {'PASS' if ok else 'FAIL'}")
    print(f"loop: {result['loop_rate_before_hz']:.2f} plans/s before, {result['loop_rate_during_hz']:.2f} during "
          f"{result['messages']:,} hostile messages in {result['fuzz_seconds']} s")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0 if all(result["bars"].values()) else 1
