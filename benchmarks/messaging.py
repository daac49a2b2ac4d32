"""``edgerun bench messaging``: edgerun's message paths against raw pyzmq and dora-rs, by payload size.

For each payload (1 KiB, 64 KiB, 1 MiB, 4 MiB, 16 MiB of uint8) two processes on one host talk in
the same run, the systems taking turns:

* **edgerun shm** (``edgerun_*``): a :class:`BenchSender` node and a :class:`BenchReceiver` node,
  each in its own ``python -m edgerun.runtime.host WIRING.json`` process, wired as the launcher
  wires two processes of a graph: ipc:// endpoints and a shared-memory slot pool in a private run
  directory. The sender loans each payload from its output (``Node.loan``: the array lies in a
  slot) and publishes it, so from 64 KiB up only a descriptor crosses ZeroMQ and the receiver's
  handler gets a view of the slot. The whole path is measured: encode, XPUB, the receiver's I/O
  thread (decode, descriptor checks, mapping, hold), and the hand-over to the node thread.
* **edgerun shm, copy** (``edgerun_copy_*``): the same, but the sender publishes an ordinary
  array (the unchanged ``publish`` API): one copy into the slot per message.
* **edgerun zmq** (``edgerun_zmq_*``): shared memory off; every array crosses ipc:// as its own
  frame (zero-copy send from 64 KiB up): edgerun before shared memory, and the path of every
  payload below the threshold.
* **raw**: the same two roles in plain pyzmq (``python -m edgerun.benchmarks.messaging
  raw-sender|raw-receiver CONFIG.json``): ``[timestamp frame, payload]``, the payload sent with
  ``copy=False`` from 64 KiB up and received with ``copy=False`` on one thread, with the high-water
  marks of edgerun's sockets.
* **dora** (``dora_*``, when ``dora-rs`` and its CLI are installed: ``pip install -e .[bench]``): a
  two-node dataflow under ``dora run`` using dora's zero-copy Python path (``send_output_raw`` into
  a shared-memory pool sized for the payload, the receiver reading a view), paced by dora's own
  timer at the same period (``benchmarks/dora/``).

Neither the edgerun shm sender nor dora's fills its payload per message (dora's writes a 16-byte
stamp): both measure the transport, not the producer. Every leg runs the same schedule: warm-up
until the receiver answers (ZeroMQ's slow joiner), then **latency**, paced (one message every few
ms, longer for big payloads, so nothing queues), then **throughput**, back-to-back for a fixed time,
counted at the receiver as delivered messages per second. MB/s is 10^6 bytes per second.

The bars (PASS/FAIL printed, ``bars`` in the JSON): edgerun p50 <= dora p50 at 4 MiB and 16 MiB
(when dora ran); edgerun p50 <= 1.0 ms at 16 MiB; edgerun p50 at 1 KiB within 10 % of the zmq
path's (shared memory must not slow what stays below the threshold).

Exit code of :func:`main`: 0 when the bars pass, 1 when one fails, 2 when the benchmark could not
run (a process failed or timed out). Numbers on a loaded or small machine are noisy; the machine
is described in the JSON next to the results.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from edgerun.runtime import messages, runner
from edgerun.runtime.graph import SHM_DEFAULTS
from edgerun.runtime.host import die_with_parent
from edgerun.runtime.node import Latest, Node, Queue
from edgerun.runtime.paths import ipc_endpoint, run_dir, segment_dir
from edgerun.runtime.wiring import InputWiring, Link, NodeWiring, ProcessWiring, SharedMemory, dump

KiB, MiB = 1024, 1024 * 1024
PAYLOADS = (1 * KiB, 64 * KiB, 1 * MiB, 4 * MiB, 16 * MiB)
SYSTEMS = ("shm", "copy", "zmq", "raw")
"""Our legs: edgerun with loaned slots, edgerun publishing ordinary arrays, edgerun with shared memory
off, raw pyzmq; keys in the results: ``edgerun_``, ``edgerun_copy_``, ``edgerun_zmq_``, ``raw_``."""
PREFIX = {"shm": "edgerun", "copy": "edgerun_copy", "zmq": "edgerun_zmq", "raw": "raw"}
BAR_DORA_PAYLOADS = (4 * MiB, 16 * MiB)
BAR_16MIB_P50_US = 1000.0
BAR_SMALL_RATIO = 1.10  # edgerun at 1 KiB against its own zmq path
SHM_SLOTS = 4
# The raw sockets get the high-water marks edgerun's own sockets have (runner._open_sockets):
# PUB sndhwm PUB_HWM, and a Queue(n) input's SUB rcvhwm n + 1. A small queue keeps the
# receivers' memory bounded at 16 MiB (about (2n + 1) x 16 MiB in flight at most).
PUB_HWM = getattr(runner, "PUB_HWM", 16)
RECEIVER_QUEUE = 4
RAW_RCVHWM = RECEIVER_QUEUE + 1

# Phases of a run, carried in every message.
WARMUP, LATENCY, THROUGHPUT, DONE = 0, 1, 2, 3
RAW_HEAD = struct.Struct("<qqB")  # capture_ns, seq, phase


@dataclass(frozen=True)
class Pace:
    """How one payload size is measured: the latency period and samples (full run)."""

    period_s: float
    samples: int


PACE = {
    1 * KiB: Pace(0.002, 1500),
    64 * KiB: Pace(0.002, 1500),
    1 * MiB: Pace(0.005, 1000),
    4 * MiB: Pace(0.012, 500),
    16 * MiB: Pace(0.040, 200),
}


def size_name(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n // KiB} KiB"


# --- the schedule both senders follow, and the tally both receivers keep ---------------
@dataclass(frozen=True)
class SenderParams:
    payload_bytes: int = 1024
    period_s: float = 0.002  # latency phase: one message per period
    samples: int = 100  # latency messages
    warmup: int = 10  # messages after the first ack before latency starts
    throughput_s: float = 0.5  # back-to-back phase
    loan: bool = False  # write each payload into a loaned slot instead of publishing one array


@dataclass(frozen=True)
class ReceiverParams:
    out: str = ""  # where teardown writes the tally (JSON)
    payload_bytes: int = 1024


class Schedule:
    """Warm-up until acknowledged, paced latency messages, one back-to-back burst, then DONE forever."""

    def __init__(self, params: SenderParams):
        self.params = params
        self.phase = WARMUP
        self.count = 0

    def tick(self, acked: bool, send: Callable[[int], None]) -> None:
        p = self.params
        if self.phase == WARMUP:
            send(WARMUP)
            self.count += acked
            if self.count >= p.warmup:
                self.phase, self.count = LATENCY, 0
        elif self.phase == LATENCY:
            send(LATENCY)
            self.count += 1
            if self.count >= p.samples:
                self.phase = THROUGHPUT
        elif self.phase == THROUGHPUT:
            end = time.perf_counter() + p.throughput_s
            while time.perf_counter() < end:
                send(THROUGHPUT)
            self.phase = DONE
        else:
            send(DONE)


class Tally:
    """What a receiver measured: latency samples, and the throughput burst as it arrived."""

    def __init__(self, payload_bytes: int):
        self.payload_bytes = payload_bytes
        self.latency_ns: list[int] = []
        self.burst_count = 0
        self.burst_first_ns = self.burst_last_ns = 0
        self.burst_first_seq = self.burst_last_seq = 0
        self.wrong_size = 0
        self.done = False

    def record(self, now_ns: int, capture_ns: int, seq: int, phase: int, size: int) -> bool:
        """Count one message; True once DONE arrives."""
        if size != self.payload_bytes:
            self.wrong_size += 1
        if phase == LATENCY:
            self.latency_ns.append(now_ns - capture_ns)
        elif phase == THROUGHPUT:
            if not self.burst_count:
                self.burst_first_ns, self.burst_first_seq = now_ns, seq
            self.burst_count += 1
            self.burst_last_ns, self.burst_last_seq = now_ns, seq
        elif phase == DONE:
            self.done = True
        return self.done

    def save(self, path: str) -> None:
        Path(path).write_text(json.dumps({
            "latency_ns": self.latency_ns,
            "burst_count": self.burst_count,
            "burst_span_ns": self.burst_last_ns - self.burst_first_ns,
            "burst_sent": self.burst_last_seq - self.burst_first_seq + 1 if self.burst_count else 0,
            "wrong_size": self.wrong_size,
            "done": self.done,
        }))


# --- edgerun: two nodes --------------------------------------------------------------
class BenchSender(Node):
    """Publishes ``payload`` (uint8, N bytes) with ``capture_ns`` stamped at send, on a timer."""

    inputs = {"ack": Latest()}
    outputs = ("data",)
    params = SenderParams

    def setup(self) -> None:
        self.payload = np.arange(self.params.payload_bytes, dtype=np.uint8)  # never modified: sent zero-copy
        self.acked = False
        self.schedule = Schedule(self.params)
        self.every(self.params.period_s, self.tick)

    def on_ack(self, msg) -> None:
        self.acked = True

    def tick(self) -> None:
        self.schedule.tick(self.acked, self.send)

    def send(self, phase: int) -> None:
        payload = self.loan("data", self.payload.shape, np.uint8) if self.params.loan else self.payload
        self.publish("data", capture_ns=time.time_ns(), payload=payload, phase=phase)


class BenchReceiver(Node):
    """Records one-way latency in its handler; acknowledges warm-up; writes its tally on teardown."""

    inputs = {"data": Queue(maxlen=RECEIVER_QUEUE)}
    outputs = ("ack",)
    params = ReceiverParams

    def setup(self) -> None:
        self.tally = Tally(self.params.payload_bytes)

    def on_data(self, msg) -> None:
        now_ns = time.time_ns()
        phase = msg["phase"]
        if self.tally.record(now_ns, msg.capture_ns, msg.seq, phase, msg["payload"].nbytes):
            self.stop()
        elif phase == WARMUP:
            self.publish("ack", seq=msg.seq)

    def teardown(self) -> None:
        self.tally.save(self.params.out)


# --- raw pyzmq: the same two roles --------------------------------------------------
def raw_sender(config: dict[str, Any]) -> None:
    params = SenderParams(**config["sender"])
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.linger = 0
    pub.sndhwm = PUB_HWM
    pub.copy_threshold = messages.ZERO_COPY_MIN_BYTES
    pub.bind(config["data"])
    ack = context.socket(zmq.SUB)
    ack.linger = 0
    ack.subscribe(b"")
    ack.connect(config["ack"])
    payload = np.arange(params.payload_bytes, dtype=np.uint8)
    seq = 0
    acked = False

    def send(phase: int) -> None:
        nonlocal seq
        seq += 1
        pub.send_multipart([RAW_HEAD.pack(time.time_ns(), seq, phase), payload], copy=False)

    schedule = Schedule(params)
    due = time.monotonic() + params.period_s
    while True:  # until the parent terminates us
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        while not acked and ack.poll(0):
            ack.recv()
            acked = True
        schedule.tick(acked, send)
        now = time.monotonic()
        due = max(due + params.period_s, now)


def raw_receiver(config: dict[str, Any]) -> None:
    tally = Tally(config["payload_bytes"])
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = RAW_RCVHWM
    sub.rcvtimeo = 100
    sub.subscribe(b"")
    sub.connect(config["data"])
    ack = context.socket(zmq.PUB)
    ack.linger = 0
    ack.bind(config["ack"])
    while not tally.done:
        try:
            frames = sub.recv_multipart(copy=False)
        except zmq.Again:
            continue
        now_ns = time.time_ns()
        capture_ns, seq, phase = RAW_HEAD.unpack(frames[0].buffer)
        payload = np.frombuffer(frames[1].buffer, dtype=np.uint8)
        tally.record(now_ns, capture_ns, seq, phase, payload.nbytes)
        if phase == WARMUP:
            ack.send(b"ack")
    tally.save(config["out"])
    context.destroy(linger=0)


# --- orchestration -------------------------------------------------------------------
class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Leg:
    """One measured run of one system at one payload size."""

    system: str
    payload_bytes: int
    period_s: float
    samples: int
    warmup: int
    throughput_s: float


def _sender_params(leg: Leg) -> dict[str, Any]:
    return {
        "payload_bytes": leg.payload_bytes,
        "period_s": leg.period_s,
        "samples": leg.samples,
        "warmup": leg.warmup,
        "throughput_s": leg.throughput_s,
        "loan": leg.system == "shm",
    }


def _commands(leg: Leg, directory: Path, tag: str) -> tuple[list[str], list[str], Path]:
    """(receiver command, sender command, tally path) for one leg."""

    out = directory / f"{tag}.tally.json"
    data, ack = ipc_endpoint(directory, f"{tag}.data"), ipc_endpoint(directory, f"{tag}.ack")
    if leg.system == "raw":
        config = {"data": data, "ack": ack, "out": str(out), "payload_bytes": leg.payload_bytes,
                  "sender": _sender_params(leg)}
        path = directory / f"{tag}.raw.json"
        path.write_text(json.dumps(config))
        base = [sys.executable, "-m", "edgerun.benchmarks.messaging"]
        return [*base, "raw-receiver", str(path)], [*base, "raw-sender", str(path)], out
    module = "edgerun.benchmarks.messaging"
    shared = leg.system != "zmq"  # as the launcher wires two processes: the receiver reads column 0
    segments = str(segment_dir(directory))
    sender = NodeWiring(
        name="tx", cls=f"{module}:BenchSender", params=_sender_params(leg),
        pub_binds=(data,), ctl_binds=(ipc_endpoint(directory, f"{tag}.tx.ctl"),),
        inputs=(InputWiring(name="ack", topic="rx/ack", link=Link(ack)),), segment_dir=segments,
        shm=SharedMemory(SHM_DEFAULTS.threshold_bytes, SHM_SLOTS, readers={"data": 1}) if shared else None,
    )
    receiver = NodeWiring(
        name="rx", cls=f"{module}:BenchReceiver", params={"out": str(out), "payload_bytes": leg.payload_bytes},
        pub_binds=(ack,), ctl_binds=(ipc_endpoint(directory, f"{tag}.rx.ctl"),), segment_dir=segments,
        inputs=(InputWiring(name="data", topic="tx/data", link=Link(data), shm_column=0 if shared else None),),
    )
    commands = []
    for wiring in (receiver, sender):
        path = directory / f"{tag}.{wiring.name}.wiring.json"
        path.write_bytes(dump(ProcessWiring(name=f"{tag}-{wiring.name}", run=directory.name, nodes=(wiring,))))
        commands.append([sys.executable, "-m", "edgerun.runtime.host", str(path)])
    return commands[0], commands[1], out


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_receiver(receiver: subprocess.Popen, sender: subprocess.Popen, timeout_s: float) -> int | str | None:
    """The receiver's exit code; "sender" if the sender ended first (it never does on its own); None on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return receiver.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            if sender.poll() is not None:
                try:
                    return receiver.wait(timeout=1.0)  # it may just have finished too
                except subprocess.TimeoutExpired:
                    return "sender"
    return None


def run_leg(leg: Leg, directory: Path, tag: str) -> dict[str, Any]:
    """Start receiver and sender, wait for the receiver to see DONE, return its tally."""
    receiver_cmd, sender_cmd, out = _commands(leg, directory, tag)
    expected_s = 0.5 + (leg.warmup + leg.samples) * leg.period_s + leg.throughput_s
    timeout_s = 20.0 + 4 * expected_s
    logs = [directory / f"{tag}.{role}.log" for role in ("rx", "tx")]
    processes = []
    try:
        for cmd, log in zip((receiver_cmd, sender_cmd), logs):
            with open(log, "wb") as stream:
                processes.append(subprocess.Popen(cmd, stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        code = _wait_receiver(*processes, timeout_s)
    finally:
        for process in reversed(processes):
            _stop(process)
    tally = json.loads(out.read_text()) if out.exists() else None
    if code != 0 or tally is None or not tally["done"]:
        if code is None:
            why = f"timed out after {timeout_s:.0f} s"
        elif code == "sender":
            why = f"the sender exited with {processes[1].returncode} before the receiver was done"
        else:
            why = f"the receiver exited with {code}"
        tails = "\n".join(
            f"--- {log.name}:\n{textwrap.indent(log.read_text(errors='replace')[-2000:], '  ')}" for log in logs
        )
        raise BenchError(f"{leg.system} at {size_name(leg.payload_bytes)}: {why}\n{tails}")
    if tally["wrong_size"]:
        raise BenchError(f"{leg.system} at {size_name(leg.payload_bytes)}: {tally['wrong_size']} payloads had the wrong size")
    return tally


@dataclass
class Measured:
    latency_ns: list[int]
    burst_count: int = 0
    burst_span_ns: int = 0
    burst_sent: int = 0

    def add(self, tally: dict[str, Any]) -> None:
        self.latency_ns += tally["latency_ns"]
        if tally["burst_count"] > 1:
            self.burst_count += tally["burst_count"] - 1  # intervals, not messages
            self.burst_span_ns += tally["burst_span_ns"]
            self.burst_sent += tally["burst_sent"]

    def percentile_us(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latency_ns, dtype=np.float64), q) / 1e3) if self.latency_ns else math.nan

    @property
    def msgs_per_s(self) -> float:
        return self.burst_count / (self.burst_span_ns / 1e9) if self.burst_span_ns else math.nan


def plan_legs(quick: bool, payloads: tuple[int, ...]) -> list[list[Leg]]:
    """Rounds of legs; each round measures every payload on every system, rotating who goes first."""
    rounds = 3 if quick else 4
    scale = 0.15 if quick else 1.0
    throughput_s = 0.6 if quick else 2.0  # in all, over the rounds
    plan = []
    for r in range(rounds):
        legs = []
        for i, payload in enumerate(payloads):
            pace = PACE.get(payload, Pace(max(0.002, payload / 400e6), 200))
            samples = max(20, int(pace.samples * scale / rounds))
            warmup = max(5, min(30, int(0.15 / pace.period_s)))
            shift = (r + i) % len(SYSTEMS)
            order = SYSTEMS[shift:] + SYSTEMS[:shift]
            legs += [Leg(system, payload, pace.period_s, samples, warmup, throughput_s / rounds) for system in order]
        plan.append(legs)
    return plan


def machine_info() -> dict[str, Any]:
    import msgspec

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "numpy": np.__version__,
        "msgspec": msgspec.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# --- dora-rs, when installed ---------------------------------------------------------
DORA_NODES = Path(__file__).resolve().parent / "dora"
"""The sender and receiver node scripts ``dora run`` starts (they import dora, not edgerun)."""


def dora_available() -> bool:
    return importlib.util.find_spec("dora") is not None


DORA_POOL_MIN = 64 * MiB
"""dora's shared-memory pool per sender: its 8 MB default cannot hold a 16 MiB sample, and dora then
falls back to a heap copy (~30 ms per send on 2 cores): at least this, and 8 payloads."""
DORA_QUEUE = 64
DORA_WARMUP_S = 1.0


def run_dora(payload: int, samples: int, period_s: float, directory: Path) -> list[int]:
    """dora-rs one-way latencies (ns) for one payload: a two-node dataflow under ``dora run``."""
    dora = shutil.which("dora") or str(Path(sys.executable).with_name("dora"))
    if not Path(dora).exists():
        raise BenchError("the dora CLI is not on PATH")
    work = directory / f"dora-{payload}"
    work.mkdir(exist_ok=True)
    out = work / "latency.json"
    millis = max(1, round(period_s * 1000))
    env = {"BENCH_BYTES": payload, "BENCH_TOTAL": samples, "BENCH_WARMUP": 20, "BENCH_WARMUP_S": DORA_WARMUP_S,
           "BENCH_OUT": str(out)}
    env_yaml = "\n".join(f"      {k}: \"{v}\"" for k, v in env.items())
    (work / "dataflow.yml").write_text(
        f"nodes:\n"
        f"  - id: sender\n    path: {DORA_NODES / 'sender.py'}\n    inputs:\n      tick: dora/timer/millis/{millis}\n"
        f"    outputs:\n      - data\n    shared_memory_pool_size: {max(DORA_POOL_MIN, 8 * payload)}\n    env:\n{env_yaml}\n"
        f"  - id: receiver\n    path: {DORA_NODES / 'receiver.py'}\n    inputs:\n      data:\n        source: sender/data\n"
        f"        queue_size: {DORA_QUEUE}\n    env:\n{env_yaml}\n"
    )
    timeout_s = 60 + DORA_WARMUP_S + 4 * (20 + samples) * millis / 1000
    result = subprocess.run(
        [dora, "run", "dataflow.yml"], check=False, cwd=work, capture_output=True, text=True, timeout=timeout_s,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    if not out.exists():
        raise BenchError(f"dora run exited with {result.returncode}: {(result.stderr or result.stdout)[-1000:]}")
    tally = json.loads(out.read_text())
    if tally["missing"] or len(tally["latency_ns"]) < samples:
        raise BenchError(f"dora lost {len(tally['missing'])} of {samples} samples: the figure would be biased")
    return tally["latency_ns"]


# --- report ----------------------------------------------------------------------------
def _fmt(x: float, digits: int = 0) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def print_table(results: list[dict[str, Any]], with_dora: bool) -> None:
    systems = ["edgerun", "edgerun_copy", "edgerun_zmq", "raw"] + (["dora"] if with_dora else [])
    header = ["payload"] + [f"{name} p50" for name in systems]
    header += ["p99 edgerun", "p99 dora"] if with_dora else ["p99 edgerun"]
    header += ["edgerun msg/s", "zmq msg/s", "samples"]
    rows = []
    for r in results:
        row = [size_name(r["payload_bytes"]), *(_fmt(r.get(f"{name}_p50_us", math.nan)) for name in systems),
               _fmt(r["edgerun_p99_us"])]
        if with_dora:
            row.append(_fmt(r.get("dora_p99_us", math.nan)))
        row += [_fmt(r["edgerun_msgs_per_s"]), _fmt(r["edgerun_zmq_msgs_per_s"]), str(r["samples"])]
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("one-way latency in µs (paced), throughput back-to-back (delivered at the receiver)")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


def _round(x: float, digits: int) -> float | None:
    return None if math.isnan(x) else round(x, digits)


def summarize(payload: int, measured: dict[str, Measured], dora_ns: list[int] | None) -> dict[str, Any]:
    """One row of the results: every system's latency percentiles and throughput, and the ratios."""
    row: dict[str, Any] = {"payload_bytes": payload}
    for system, prefix in PREFIX.items():
        m = measured[system]
        row[f"{prefix}_p50_us"] = _round(m.percentile_us(50), 1)
        row[f"{prefix}_p99_us"] = _round(m.percentile_us(99), 1)
        row[f"{prefix}_msgs_per_s"] = _round(m.msgs_per_s, 1)
        row[f"{prefix}_MBps"] = _round(m.msgs_per_s * payload / 1e6, 1)
    if dora_ns:
        row["dora_p50_us"] = round(float(np.percentile(dora_ns, 50)) / 1e3, 1)
        row["dora_p99_us"] = round(float(np.percentile(dora_ns, 99)) / 1e3, 1)
    ours = measured["shm"].percentile_us(50)
    for other, key in (("raw", "ratio_p50_raw"), ("zmq", "ratio_p50_zmq")):
        row[key] = _round(ours / measured[other].percentile_us(50), 3)
    if dora_ns:
        row["ratio_p50_dora"] = round(ours / row["dora_p50_us"], 3)
    row["samples"] = min(len(m.latency_ns) for m in measured.values())
    return row


def check_bars(results: list[dict[str, Any]]) -> dict[str, bool | None]:
    """Each bar's verdict; None where it could not be checked (dora not installed)."""
    by_size = {r["payload_bytes"]: r for r in results}
    bars: dict[str, bool | None] = {}
    for payload in BAR_DORA_PAYLOADS:
        r = by_size.get(payload)
        if r is not None:
            dora = r.get("dora_p50_us")
            bars[f"edgerun_p50 <= dora_p50 at {size_name(payload)}"] = None if dora is None else r["edgerun_p50_us"] <= dora
    if 16 * MiB in by_size:
        bars[f"edgerun_p50 <= {BAR_16MIB_P50_US:g} us at 16 MiB"] = by_size[16 * MiB]["edgerun_p50_us"] <= BAR_16MIB_P50_US
    if 1 * KiB in by_size:
        r = by_size[1 * KiB]
        bars[f"edgerun_p50 <= {BAR_SMALL_RATIO} x edgerun_zmq_p50 at 1 KiB"] = (
            r["edgerun_p50_us"] <= BAR_SMALL_RATIO * r["edgerun_zmq_p50_us"])
    return bars


def measure(quick: bool, payloads: tuple[int, ...], directory: Path) -> tuple[dict[tuple[str, int], Measured], int]:
    """Run every leg of the plan (rounds, payloads, both systems); the pooled measurements and the round count."""
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety
        tqdm = None
    measured = {(system, p): Measured([]) for system in SYSTEMS for p in payloads}
    plan = plan_legs(quick, payloads)
    legs = [(r, leg) for r, legs in enumerate(plan) for leg in legs]
    progress = tqdm(legs, unit="run", file=sys.stderr, leave=False, disable=not sys.stderr.isatty()) if tqdm else legs
    for r, leg in progress:
        if tqdm:
            progress.set_description(f"{leg.system} {size_name(leg.payload_bytes)}")
        tag = f"r{r}-{leg.system}{leg.payload_bytes // KiB}k"
        measured[leg.system, leg.payload_bytes].add(run_leg(leg, directory, tag))
    return measured, len(plan)


def measure_dora(quick: bool, payloads: tuple[int, ...], directory: Path) -> dict[int, list[int]]:
    """dora-rs latencies (ns) by payload, where it is installed and runs; a note for each payload it does not."""
    if not dora_available():
        print("dora-rs is not installed (no `dora` module; `pip install -e .[bench]`): dora_p50_us is left out")
        return {}
    latencies = {}
    for payload in payloads:
        pace = PACE.get(payload, Pace(0.01, 200))
        try:
            latencies[payload] = run_dora(payload, max(50, pace.samples // (5 if quick else 2)), pace.period_s, directory)
        except Exception as exc:  # noqa: BLE001 - dora is an optional extra; its failure is reported, not fatal
            print(f"dora-rs at {size_name(payload)}: left out ({(str(exc) or type(exc).__name__).splitlines()[0]})")
    return latencies


def main(quick: bool = False, json_path: str | None = None) -> int:
    payloads = PAYLOADS
    machine = machine_info()
    print(
        f"edgerun bench messaging{' --quick' if quick else ''}: {len(payloads)} payloads x "
        f"{'/'.join(PREFIX.values())}{'/dora' if dora_available() else ''}, "
        f"{machine['cpus_usable']} CPUs, load {machine['load_average']}",
        flush=True,
    )
    directory = None
    try:
        directory = run_dir(f"bench-{os.getpid()}")
        measured, rounds = measure(quick, payloads, directory)
        dora = measure_dora(quick, payloads, directory)
    except (BenchError, OSError, ValueError) as exc:
        print(f"edgerun bench messaging: {exc}", file=sys.stderr)
        return 2
    finally:
        if directory is not None:
            shutil.rmtree(segment_dir(directory), ignore_errors=True)
            shutil.rmtree(directory, ignore_errors=True)

    results = [summarize(p, {system: measured[system, p] for system in SYSTEMS}, dora.get(p)) for p in payloads]
    print_table(results, with_dora=bool(dora))
    bars = check_bars(results)
    for name, ok in bars.items():
        print(f"bar {name}: {'not checked (no dora)' if ok is None else 'PASS' if ok else 'FAIL'}")
    passed = all(ok is not False for ok in bars.values())
    print(f"bars: {'PASS' if passed else 'FAIL'}")

    if json_path:
        document = {
            "machine": machine,
            "config": {
                "quick": quick,
                "rounds": rounds,
                "systems": {**{PREFIX[s]: s for s in SYSTEMS}, **({"dora": "dora-rs send_output_raw"} if dora else {})},
                "receiver_queue": RECEIVER_QUEUE,
                "pub_hwm": PUB_HWM,
                "shm_slots": SHM_SLOTS,
                "shm_threshold_bytes": SHM_DEFAULTS.threshold_bytes,
                "dora": _dora_version() if dora else None,
                "latency_period_s": {str(p): PACE[p].period_s for p in payloads if p in PACE},
            },
            "bars": {name: ok for name, ok in bars.items()},
            "passed": passed,
            "results": results,
        }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0 if passed else 1


def _dora_version() -> str | None:
    try:
        return importlib.metadata.version("dora-rs")
    except importlib.metadata.PackageNotFoundError:
        return None


def _entry(argv: list[str] | None = None) -> None:
    """``python -m edgerun.benchmarks.messaging raw-sender|raw-receiver CONFIG.json`` (the raw legs)."""
    parser = argparse.ArgumentParser(prog="python -m edgerun.benchmarks.messaging")
    parser.add_argument("role", choices=["raw-sender", "raw-receiver"])
    parser.add_argument("config")
    args = parser.parse_args(argv)

    die_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    config = json.loads(Path(args.config).read_text())
    (raw_sender if args.role == "raw-sender" else raw_receiver)(config)


if __name__ == "__main__":
    _entry()
