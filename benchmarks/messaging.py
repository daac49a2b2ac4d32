"""``edgerun bench messaging``: edgerun's message path against raw pyzmq PUB/SUB, by payload size.

For each payload (1 KiB, 64 KiB, 1 MiB, 4 MiB, 16 MiB of uint8) two processes talk over
ipc:// twice in the same run, the two systems taking turns:

* **edgerun**: a :class:`BenchSender` node and a :class:`BenchReceiver` node, each in its
  own ``python -m edgerun.runtime.host WIRING.json`` process, wired like a two-process
  graph (``ipc://`` endpoints in a private run directory). The sender stamps
  ``capture_ns=time.time_ns()`` in its timer and publishes; the receiver's handler
  records ``time.time_ns() - msg.capture_ns``. The whole path is measured: encode, PUB,
  the receiver's I/O thread (decode, validation, queue) and the hand-over to the node
  thread that runs the handler.
* **raw**: the same two roles in plain pyzmq (``python -m edgerun.benchmarks.messaging
  raw-sender|raw-receiver CONFIG.json``): ``[timestamp frame, payload]``, the payload
  sent with ``copy=False`` from 64 KiB up (as edgerun does) and received with
  ``copy=False`` on one thread, with the same high-water marks as edgerun's sockets.

Both run the same schedule: warm-up messages until the receiver's "ack" comes back
(ZeroMQ's slow joiner: a SUB misses whatever was published before it connected) and a
few more, then **latency**, paced (one message every few ms, longer for big payloads, so
nothing queues) and **throughput**, back-to-back for a fixed time, counted at the
receiver as delivered messages per second (PUB drops what its high-water mark does not
hold, so this is the rate the receiver sustains). MB/s is 10^6 bytes per second.

The bar: edgerun's p50 latency at most 1.3 x raw's at 1 MiB and 4 MiB (PASS/FAIL is
printed). If dora-rs (``import dora`` and the ``dora`` CLI) is installed, its p50 over
the same payloads is added as ``dora_p50_us``.

Exit code of :func:`main`: 0 when the bar passes, 1 when it fails, 2 when the benchmark
could not run (a process failed or timed out). Numbers on a loaded or small machine are
noisy; the machine is described in the JSON next to the results.
"""

from __future__ import annotations

import argparse
import datetime
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
from edgerun.runtime.host import die_with_parent
from edgerun.runtime.node import Latest, Node, Queue
from edgerun.runtime.paths import ipc_endpoint, run_dir
from edgerun.runtime.wiring import InputWiring, Link, NodeWiring, ProcessWiring, dump

KiB, MiB = 1024, 1024 * 1024
PAYLOADS = (1 * KiB, 64 * KiB, 1 * MiB, 4 * MiB, 16 * MiB)
BAR_PAYLOADS = (1 * MiB, 4 * MiB)
BAR_RATIO_P50 = 1.3
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
        self.publish("data", capture_ns=time.time_ns(), payload=self.payload, phase=phase)


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
    sender = NodeWiring(
        name="tx", cls=f"{module}:BenchSender", params=_sender_params(leg),
        pub_binds=(data,), ctl_binds=(ipc_endpoint(directory, f"{tag}.tx.ctl"),),
        inputs=(InputWiring(name="ack", topic="rx/ack", link=Link(ack)),),
    )
    receiver = NodeWiring(
        name="rx", cls=f"{module}:BenchReceiver", params={"out": str(out), "payload_bytes": leg.payload_bytes},
        pub_binds=(ack,), ctl_binds=(ipc_endpoint(directory, f"{tag}.rx.ctl"),),
        inputs=(InputWiring(name="data", topic="tx/data", link=Link(data)),),
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
    """Rounds of legs; each round measures every payload on both systems, alternating who goes first."""
    rounds = 3 if quick else 4
    scale = 0.15 if quick else 1.0
    throughput_s = 0.6 if quick else 2.0  # in all, over the rounds
    plan = []
    for r in range(rounds):
        legs = []
        for payload in payloads:
            pace = PACE.get(payload, Pace(max(0.002, payload / 400e6), 200))
            samples = max(20, int(pace.samples * scale / rounds))
            warmup = max(5, min(30, int(0.15 / pace.period_s)))
            order = ("raw", "edgerun") if (r + payloads.index(payload)) % 2 == 0 else ("edgerun", "raw")
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


def run_dora(payload: int, samples: int, period_s: float, directory: Path) -> float:
    """dora-rs p50 one-way latency (µs) for one payload: a two-node dataflow under ``dora run``."""
    dora = shutil.which("dora") or str(Path(sys.executable).with_name("dora"))
    if not Path(dora).exists():
        raise BenchError("the dora CLI is not on PATH")
    work = directory / f"dora-{payload}"
    work.mkdir(exist_ok=True)
    out = work / "latency.json"
    warmup = 20
    millis = max(1, round(period_s * 1000))
    env = {"BENCH_BYTES": payload, "BENCH_TOTAL": warmup + samples, "BENCH_WARMUP": warmup, "BENCH_OUT": str(out)}
    env_yaml = "\n".join(f"      {k}: \"{v}\"" for k, v in env.items())
    (work / "dataflow.yml").write_text(
        f"nodes:\n"
        f"  - id: sender\n    path: {DORA_NODES / 'sender.py'}\n    inputs:\n      tick: dora/timer/millis/{millis}\n"
        f"    outputs:\n      - data\n    env:\n{env_yaml}\n"
        f"  - id: receiver\n    path: {DORA_NODES / 'receiver.py'}\n    inputs:\n      data: sender/data\n    env:\n{env_yaml}\n"
    )
    timeout_s = 60 + 4 * (warmup + samples) * millis / 1000
    result = subprocess.run(
        [dora, "run", "dataflow.yml"], check=False, cwd=work, capture_output=True, text=True, timeout=timeout_s,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    if not out.exists():
        raise BenchError(f"dora run exited with {result.returncode}: {(result.stderr or result.stdout)[-1000:]}")
    latency_ns = json.loads(out.read_text())
    if not latency_ns:
        raise BenchError("dora receiver recorded no samples")
    return float(np.percentile(latency_ns, 50) / 1e3)


# --- report ----------------------------------------------------------------------------
def _fmt(x: float, digits: int = 0) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def print_table(results: list[dict[str, Any]], with_dora: bool) -> None:
    header = ["payload", "edgerun p50", "p99", "raw p50", "p99", "ratio p50", "p99",
              "edgerun msg/s", "MB/s", "raw msg/s", "MB/s", "samples"]
    if with_dora:
        header.append("dora p50")
    rows = []
    for r in results:
        row = [
            size_name(r["payload_bytes"]),
            _fmt(r["edgerun_p50_us"]), _fmt(r["edgerun_p99_us"]),
            _fmt(r["raw_p50_us"]), _fmt(r["raw_p99_us"]),
            _fmt(r["ratio_p50"], 2), _fmt(r["ratio_p99"], 2),
            _fmt(r["edgerun_msgs_per_s"]), _fmt(r["edgerun_MBps"]),
            _fmt(r["raw_msgs_per_s"]), _fmt(r["raw_MBps"]),
            str(r["samples"]),
        ]
        if with_dora:
            row.append(_fmt(r.get("dora_p50_us", math.nan)))
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("one-way latency in µs (paced), throughput back-to-back (delivered at the receiver)")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


def _round(x: float, digits: int) -> float | None:
    return None if math.isnan(x) else round(x, digits)


def summarize(payload: int, ours: Measured, raw: Measured) -> dict[str, Any]:
    """One row of the results: latency percentiles, ratios and throughput of both systems."""
    e50, e99 = ours.percentile_us(50), ours.percentile_us(99)
    r50, r99 = raw.percentile_us(50), raw.percentile_us(99)
    return {
        "payload_bytes": payload,
        "edgerun_p50_us": _round(e50, 1),
        "edgerun_p99_us": _round(e99, 1),
        "raw_p50_us": _round(r50, 1),
        "raw_p99_us": _round(r99, 1),
        "ratio_p50": _round(e50 / r50, 3),
        "ratio_p99": _round(e99 / r99, 3),
        "edgerun_msgs_per_s": _round(ours.msgs_per_s, 1),
        "raw_msgs_per_s": _round(raw.msgs_per_s, 1),
        "edgerun_MBps": _round(ours.msgs_per_s * payload / 1e6, 1),
        "raw_MBps": _round(raw.msgs_per_s * payload / 1e6, 1),
        "samples": min(len(ours.latency_ns), len(raw.latency_ns)),
    }


def measure(quick: bool, payloads: tuple[int, ...], directory: Path) -> tuple[dict[tuple[str, int], Measured], int]:
    """Run every leg of the plan (rounds, payloads, both systems); the pooled measurements and the round count."""
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety
        tqdm = None
    measured = {(system, p): Measured([]) for system in ("edgerun", "raw") for p in payloads}
    plan = plan_legs(quick, payloads)
    legs = [(r, leg) for r, legs in enumerate(plan) for leg in legs]
    progress = tqdm(legs, unit="run", file=sys.stderr, leave=False, disable=not sys.stderr.isatty()) if tqdm else legs
    for r, leg in progress:
        if tqdm:
            progress.set_description(f"{leg.system} {size_name(leg.payload_bytes)}")
        tag = f"r{r}-{leg.system[0]}{leg.payload_bytes // KiB}k"
        measured[leg.system, leg.payload_bytes].add(run_leg(leg, directory, tag))
    return measured, len(plan)


def measure_dora(quick: bool, payloads: tuple[int, ...], directory: Path) -> dict[int, float]:
    """dora-rs p50 by payload, where it is installed and runs; a note for each payload it does not."""
    if not dora_available():
        print("dora-rs is not installed (no `dora` module): dora_p50_us is left out")
        return {}
    p50 = {}
    for payload in payloads:
        pace = PACE.get(payload, Pace(0.01, 200))
        try:
            p50[payload] = run_dora(payload, max(50, pace.samples // (5 if quick else 1)), pace.period_s, directory)
        except Exception as exc:  # noqa: BLE001 - dora is an optional extra; its failure is reported, not fatal
            print(f"dora-rs at {size_name(payload)}: left out ({(str(exc) or type(exc).__name__).splitlines()[0]})")
    return p50


def main(quick: bool = False, json_path: str | None = None) -> int:

    payloads = PAYLOADS
    machine = machine_info()
    print(
        f"edgerun bench messaging{' --quick' if quick else ''}: {len(payloads)} payloads x edgerun/raw, "
        f"{machine['cpus_usable']} CPUs, load {machine['load_average']}",
        flush=True,
    )
    directory = None
    try:
        directory = run_dir(f"bench-{os.getpid()}")
        measured, rounds = measure(quick, payloads, directory)
        dora_p50 = measure_dora(quick, payloads, directory)
    except (BenchError, OSError, ValueError) as exc:
        print(f"edgerun bench messaging: {exc}", file=sys.stderr)
        return 2
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    results = []
    for payload in payloads:
        entry = summarize(payload, measured["edgerun", payload], measured["raw", payload])
        if payload in dora_p50:
            entry["dora_p50_us"] = round(dora_p50[payload], 1)
        results.append(entry)

    print_table(results, with_dora=bool(dora_p50))
    verdicts = []
    for r in results:
        if r["payload_bytes"] in BAR_PAYLOADS:
            ok = r["ratio_p50"] is not None and r["ratio_p50"] <= BAR_RATIO_P50
            verdicts.append(ok)
            print(f"bar ratio_p50 <= {BAR_RATIO_P50} at {size_name(r['payload_bytes'])}: "
                  f"{_fmt(r['ratio_p50'], 2)} {'PASS' if ok else 'FAIL'}")
    passed = bool(verdicts) and all(verdicts)
    print(f"bar: {'PASS' if passed else 'FAIL'}")

    if json_path:
        document = {
            "machine": machine,
            "config": {
                "quick": quick,
                "rounds": rounds,
                "transport": "ipc",
                "receiver_queue": RECEIVER_QUEUE,
                "pub_hwm": PUB_HWM,
                "latency_period_s": {str(p): PACE[p].period_s for p in payloads if p in PACE},
                "bar": {"ratio_p50_max": BAR_RATIO_P50, "payload_bytes": list(BAR_PAYLOADS), "passed": passed},
            },
            "results": results,
        }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0 if passed else 1


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
