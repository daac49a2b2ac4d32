"""The topic tools, ``edgerun record`` and ``edgerun replay``, run as real CLI processes.

A Ticker (50 Hz, a ``count`` field and a 16-byte uint8 ``payload``) feeds a Sink;
the CLI looks at it from outside, records it to MCAP and replays the recording.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cbor2
import numpy as np
import pytest
import zmq
from conftest import LaunchedGraph, host_processes, wait_for
from mcap.reader import make_reader

from edgerun.runtime import introspect, messages, recording
from edgerun.runtime.messages import Message

RATE_HZ = 50.0
PAYLOAD_BYTES = 16
TOPIC = "ticker/ticks"

GRAPH = f"""
name: tick
nodes:
  - id: ticker
    class: fixture_nodes:Ticker
    params: {{rate_hz: {RATE_HZ}, payload_bytes: {PAYLOAD_BYTES}}}
  - id: sink
    class: fixture_nodes:Sink
    inputs:
      ticks: {TOPIC}
"""

RECORD_KEYS = {"seq", "capture_ns", "send_ns", "sender", "fields", "arrays"}


def cli(*args: str, timeout_s: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgerun.cli", *args], capture_output=True, text=True, timeout=timeout_s
    )


@pytest.fixture
def ticker(launch) -> LaunchedGraph:
    return launch(GRAPH).wait_running()


def read_mcap(path: Path) -> tuple[list, list[tuple]]:
    """``(metadata records, [(channel, message record, decoded CBOR)])`` with the plain ``mcap`` reader."""
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        metadata = list(reader.iter_metadata())
        rows = [(channel, msg, cbor2.loads(msg.data)) for _schema, channel, msg in reader.iter_messages()]
        summary = reader.get_summary()
    assert summary is not None, "the recording has no summary section: was it closed properly?"
    assert summary.statistics.message_count == len(rows)
    return metadata, rows


# --- topic list / echo / hz --------------------------------------------------------------------


def test_topic_list_prints_the_running_graphs_topics(ticker):
    result = cli("topic", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [TOPIC], result.stdout
    assert "fixture_nodes:Ticker" in lines[0]


def test_topic_list_without_a_running_graph_exits_2_saying_so():
    result = cli("topic", "list")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no graph is running" in result.stderr


def test_topic_echo_prints_n_messages_with_fields_and_array_shape(ticker):
    result = cli("topic", "echo", TOPIC, "-n", "3", "--timeout", "10")
    assert result.returncode == 0, result.stderr
    headers = [line for line in result.stdout.splitlines() if line.startswith(TOPIC)]
    assert len(headers) == 3, result.stdout
    seqs = [int(re.search(r"seq (\d+)", line).group(1)) for line in headers]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert all("from ticker" in line for line in headers)
    counts = [int(c) for c in re.findall(r"^\s+count: (\d+)$", result.stdout, re.M)]
    assert len(counts) == 3 and counts == list(range(counts[0], counts[0] + 3)), result.stdout
    payloads = re.findall(r"^\s+payload: (\S+) \((\d+),\)", result.stdout, re.M)
    assert payloads == [("uint8", str(PAYLOAD_BYTES))] * 3, result.stdout


def test_topic_echo_on_an_unknown_topic_exits_2_naming_it(ticker):
    result = cli("topic", "echo", "ticker/nope", "-n", "1", "--timeout", "2")
    assert result.returncode == 2
    assert "ticker/nope" in result.stderr and TOPIC in result.stderr


def test_topic_hz_reports_the_publish_rate(ticker):
    result = cli("topic", "hz", TOPIC, "--duration", "2")
    assert result.returncode == 0, result.stderr
    match = re.search(rf"^{TOPIC}: mean ([\d.]+) Hz$", result.stdout, re.M)
    assert match, result.stdout
    assert abs(float(match.group(1)) - RATE_HZ) <= 0.2 * RATE_HZ, result.stdout


def test_tools_read_frames_that_travel_in_shared_memory(launch, tmp_path):
    """256 KiB payloads lie in the ticker's slots: echo and record copy them out, hz names the path."""
    launch(GRAPH.replace(f"payload_bytes: {PAYLOAD_BYTES}", "payload_bytes: 262144")).wait_running()
    hz = cli("topic", "hz", TOPIC, "--duration", "1")
    assert hz.returncode == 0 and f"{TOPIC}: transport shm (arrays from 65,536 bytes" in hz.stdout, hz.stdout
    assert ", shm (arrays from 65,536 bytes" in cli("topic", "list").stdout
    echo = cli("topic", "echo", TOPIC, "-n", "2", "--timeout", "10")
    assert re.findall(r"^\s+payload: uint8 \((\d+),\)", echo.stdout, re.M) == ["262144"] * 2, echo.stdout + echo.stderr
    out = tmp_path / "big.mcap"
    assert cli("record", TOPIC, "-o", str(out), "--duration", "1").returncode == 0
    recorded = [msg for _, msg in recording.read_recording(out)]
    assert len(recorded) >= 20
    assert all((m["payload"] == m["count"] % 256).all() and m["payload"].shape == (262144,) for m in recorded)


def test_a_tool_that_cannot_map_shared_memory_says_so_instead_of_losing_the_topic_silently(launch, caplog):
    launch(GRAPH.replace(f"payload_bytes: {PAYLOAD_BYTES}", "payload_bytes: 262144")).wait_running()
    _, state = introspect.find_run("tick")
    got = list(introspect.listen(introspect.topics(state), 1.0))  # no segments= given: it cannot read the slots
    assert got == []
    assert any("skipped a message (shm_unexpected, 1 so far)" in r.getMessage() for r in caplog.records), caplog.text


# --- record ------------------------------------------------------------------------------------


def test_record_writes_an_mcap_any_reader_can_decode(ticker, tmp_path):
    out = tmp_path / "ticks.mcap"
    result = cli("record", TOPIC, "-o", str(out), "--duration", "2")
    assert result.returncode == 0, result.stderr
    metadata, rows = read_mcap(out)

    assert [m.name for m in metadata] == ["edgerun"]
    layout = metadata[0].metadata["layout"]
    assert all(key in layout for key in RECORD_KEYS | {"dtype", "shape", "data"}), layout
    assert metadata[0].metadata["wire_version"] == str(messages.WIRE_VERSION)

    expected = RATE_HZ * 2
    assert 0.8 * expected <= len(rows) <= 1.05 * expected, f"{len(rows)} messages in 2 s at {RATE_HZ} Hz"
    assert f"wrote {len(rows)} messages" in result.stderr
    assert {channel.topic for channel, _, _ in rows} == {TOPIC}
    assert {channel.message_encoding for channel, _, _ in rows} == {"cbor"}

    seqs, counts, log_times = [], [], []
    for _channel, record, data in rows:
        assert set(data) == RECORD_KEYS
        assert data["sender"] == "ticker"
        assert record.sequence == data["seq"] and record.publish_time == data["send_ns"]
        assert 0 <= record.log_time - data["send_ns"] < 1_000_000_000
        assert data["capture_ns"] <= data["send_ns"]
        count = data["fields"]["count"]
        assert set(data["arrays"]) == {"payload"}
        spec = data["arrays"]["payload"]
        assert spec["dtype"] == "|u1" and spec["shape"] == [PAYLOAD_BYTES]
        payload = np.frombuffer(spec["data"], dtype=spec["dtype"]).reshape(spec["shape"])
        assert (payload == count % 256).all()
        seqs.append(data["seq"])
        counts.append(count)
        log_times.append(record.log_time)
    assert all(b > a for a, b in zip(seqs, seqs[1:])), "sequence numbers must increase"
    assert counts == list(range(counts[0], counts[0] + len(counts))), "no message may be lost at 50 Hz"
    assert log_times == sorted(log_times)
    assert 1.5e9 <= log_times[-1] - log_times[0] <= 2.1e9


def test_record_of_an_unknown_topic_exits_2_naming_it(ticker, tmp_path):
    out = tmp_path / "never.mcap"
    result = cli("record", "ticker/nope", "-o", str(out), "--duration", "1")
    assert result.returncode == 2
    assert "ticker/nope" in result.stderr and TOPIC in result.stderr
    assert not out.exists()


def test_record_all_until_ctrl_c_closes_a_valid_file(ticker, tmp_path):
    out = tmp_path / "all.mcap"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerun.cli", "record", "--all", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        started = proc.stderr.readline()  # printed once the Ctrl-C handler is in place
        assert started.startswith(f"recording {TOPIC} from 'tick'"), started
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _metadata, rows = read_mcap(out)
    assert {channel.topic for channel, _, _ in rows} == {TOPIC}  # every topic, and no status channel
    assert 0.7 * RATE_HZ <= len(rows) <= 1.5 * RATE_HZ
    assert f"wrote {len(rows)} messages" in proc.stderr.read()


# --- replay ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """About 1.5 s of the ticker, recorded once for the replay tests (in its own runtime dir)."""
    base = tmp_path_factory.mktemp("recorded")
    runtime = Path(__import__("tempfile").mkdtemp(prefix="er-", dir="/tmp"))
    out = base / "ticks.mcap"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_RUNTIME_DIR", str(runtime))
        env.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))
        graph = LaunchedGraph(GRAPH, base)
        try:
            graph.wait_running()
            result = cli("record", TOPIC, "-o", str(out), "--duration", "1.5")
            assert result.returncode == 0, result.stderr
        finally:
            graph.stop()
            wait_for(lambda: not host_processes(runtime), 10, what="the recording graph to exit")
    __import__("shutil").rmtree(runtime, ignore_errors=True)
    return out


def recorded_messages(path: Path) -> list[tuple[int, int, int, bytes]]:
    """``(log_time_ns, seq, count, payload bytes)`` per recorded message, via the plain reader."""
    _metadata, rows = read_mcap(path)
    return [
        (record.log_time, data["seq"], data["fields"]["count"], data["arrays"]["payload"]["data"])
        for _channel, record, data in rows
    ]


def replay_and_collect(path: Path, run: str, *extra: str) -> tuple[subprocess.CompletedProcess, list[tuple]]:
    """``edgerun replay`` in a subprocess; ``(arrival s, seq, count, payload bytes, capture_ns, arrival wall ns)`` of what it sent."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerun.cli", "replay", str(path), "--name", run, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    context = zmq.Context()
    got = []
    try:
        def run_state():
            if proc.poll() is not None:
                raise AssertionError(f"replay exited early ({proc.returncode}): {proc.stderr.read()}")
            try:
                return introspect.find_run(run)[1]
            except introspect.NoRunError:
                return None

        state = wait_for(run_state, 15, interval_s=0.005, what=f"run.json of '{run}'")
        assert set(introspect.topics(state)) == {TOPIC}
        socket = introspect.subscribe(context, state, TOPIC)
        quiet_since = None
        while True:
            if socket.poll(50, zmq.POLLIN):
                now, wall_ns = time.monotonic(), time.time_ns()
                msg = messages.decode(socket.recv_multipart(copy=False))
                if msg.topic == TOPIC:
                    got.append((now, msg.seq, msg["count"], msg["payload"].tobytes(), msg.capture_ns, wall_ns))
                quiet_since = None
            elif proc.poll() is not None:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.2:
                    break
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        context.destroy(linger=0)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), got


def check_replay(recorded_path: Path, result, got, rate: float) -> None:
    assert result.returncode == 0, result.stderr
    sent = recorded_messages(recorded_path)
    assert len(sent) >= 50, f"only {len(sent)} messages recorded"
    assert f"replayed {len(sent)} messages" in result.stderr
    # Everything arrives (a subscriber that connects right after run.json appears misses nothing),
    # in order, with the recorded sequence numbers, counts and payload bytes.
    assert len(got) >= len(sent) - 2, f"received {len(got)} of {len(sent)} replayed messages"
    start = [s[1] for s in sent].index(got[0][1])
    assert start <= 2
    assert [g[1:4] for g in got] == [s[1:4] for s in sent[start : start + len(got)]]
    # Timing: the span of arrivals matches the recorded span (divided by the rate).
    recorded_span = (sent[start + len(got) - 1][0] - sent[start][0]) / 1e9
    replayed_span = got[-1][0] - got[0][0]
    expected = recorded_span / rate
    assert abs(replayed_span - expected) <= 0.25 * expected, (
        f"replay span {replayed_span:.3f} s, expected {expected:.3f} s (recorded {recorded_span:.3f} s at {rate}x)"
    )
    # And it is not all bunched up: the gaps follow the recording's, not a burst at the end.
    halfway = got[0][0] + replayed_span / 2
    early = sum(1 for g in got if g[0] < halfway)
    assert 0.3 * len(got) <= early <= 0.7 * len(got)
    # Capture times are shifted to the replay's clock, so downstream ages stay the recorded ones at any rate
    # (the ticker's are a few ms): not growing or shrinking with the time replayed.
    ages_s = [(g[5] - g[4]) / 1e9 for g in got]
    assert max(abs(age) for age in ages_s) < 0.25, f"ages from {min(ages_s):.3f} to {max(ages_s):.3f} s at {rate}x"


def test_replay_publishes_the_recording_with_its_original_timing(recorded):
    result, got = replay_and_collect(recorded, "rp")
    check_replay(recorded, result, got, rate=1.0)
    assert "as run 'rp' at 1x" in result.stderr
    assert "rp" not in introspect.running_graphs(), "run.json must go when the replay ends"


def test_replay_at_rate_2_takes_half_the_time(recorded):
    result, got = replay_and_collect(recorded, "rp", "--rate", "2")
    check_replay(recorded, result, got, rate=2.0)


def test_replay_of_a_missing_file_or_bad_rate_exits_2(recorded, tmp_path):
    missing = cli("replay", str(tmp_path / "nothing.mcap"))
    assert missing.returncode == 2 and "nothing.mcap" in missing.stderr
    bad_rate = cli("replay", str(recorded), "--rate", "0")
    assert bad_rate.returncode == 2 and "--rate" in bad_rate.stderr


def test_replay_of_a_file_that_is_not_mcap_exits_2_saying_so(recorded, tmp_path):
    garbage = tmp_path / "garbage.mcap"
    garbage.write_text("not an mcap file\n")
    truncated = tmp_path / "truncated.mcap"
    truncated.write_bytes(recorded.read_bytes()[:3000])  # as if the recorder had been killed
    short = tmp_path / "short.mcap"
    short.write_text("hello\n")  # shorter than the magic and footer the reader unpacks
    for path in (garbage, truncated, short):
        result = cli("replay", str(path), "--name", "rp")
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"edgerun replay: {path}") and "Traceback" not in result.stderr


def test_replay_refuses_the_name_of_a_running_graph(ticker, recorded):
    before = introspect.find_run("tick")[1]
    result = cli("replay", str(recorded), "--name", "tick")
    assert result.returncode == 2
    assert "'tick' is running" in result.stderr
    # The live graph is untouched: same run.json, and its topic still answers.
    assert introspect.find_run("tick")[1] == before
    echo = cli("topic", "echo", TOPIC, "--run", "tick", "-n", "1", "--timeout", "5")
    assert echo.returncode == 0 and "from ticker" in echo.stdout, echo.stderr


# --- the CBOR layout, in-process -----------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
              "float16", "float32", "float64", "complex64", "complex128"],
)
def test_cbor_round_trip_keeps_dtype_shape_and_values(dtype):
    rng = np.random.default_rng(7)
    grid = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    arrays = {
        "grid": grid,
        "strided": grid[:, ::2, 1].T,  # not contiguous: stored in C order
        "scalar": np.array(grid.flat[3]),
        "empty": np.zeros((0, 3), dtype=dtype),
    }
    fields = {"count": 7, "ratio": 0.25, "label": "cam0", "ok": True, "none": None, "big": 2**62}
    msg = Message(topic=TOPIC, seq=42, capture_ns=1_700_000_000_000_000_000, send_ns=1_700_000_000_000_500_000,
                  sender="ticker", arrays=arrays, fields=fields)
    data = recording.to_cbor(msg)

    raw = cbor2.loads(data)  # the documented layout, readable without edgerun
    assert set(raw) == RECORD_KEYS
    assert raw["arrays"]["grid"] == {"dtype": np.dtype(dtype).str, "shape": [3, 4, 5], "data": grid.tobytes()}

    back = recording.from_cbor(TOPIC, data)
    assert (back.topic, back.seq, back.capture_ns, back.send_ns, back.sender) == (
        TOPIC, 42, msg.capture_ns, msg.send_ns, "ticker")
    assert dict(back.fields) == fields
    assert set(back.arrays) == set(arrays)
    for name, original in arrays.items():
        assert back.arrays[name].dtype == original.dtype, name
        assert back.arrays[name].shape == original.shape, name
        np.testing.assert_array_equal(back.arrays[name], original, err_msg=name)


def test_from_cbor_refuses_a_dtype_off_the_allow_list():
    data = cbor2.dumps({"seq": 1, "capture_ns": 0, "send_ns": 0, "sender": "x", "fields": {},
                        "arrays": {"evil": {"dtype": "|O", "shape": [1], "data": b"\0" * 8}}})
    with pytest.raises(ValueError, match="evil"):
        recording.from_cbor(TOPIC, data)


def test_listen_still_delivers_what_was_sent_before_the_stop_and_nothing_after(tmp_path):
    """A lagging listener (0.1 s per message, as a recorder under load) must not lose the graph's last
    messages when told to stop, nor take in what comes after."""
    endpoint = f"ipc://{tmp_path}/pub"
    publisher = zmq.Context.instance().socket(zmq.PUB)
    publisher.bind(endpoint)
    stop, live, got = threading.Event(), threading.Event(), []

    def consume() -> None:
        for msg in introspect.listen({"env/episode": endpoint}, duration_s=10.0, should_stop=stop.is_set):
            live.set()
            got.append(msg["n"])
            time.sleep(0.1)

    def send(n: int) -> None:
        publisher.send_multipart(messages.encode("env/episode", {"n": n}, seq=0, capture_ns=1, sender="env"))

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        while not live.wait(0.02):  # until the subscription is live (ZeroMQ's slow joiner)
            send(-1)
        time.sleep(0.15)
        for n in range(5):
            send(n)
        stop.set()  # all five are still queued behind the slow consumer
        time.sleep(0.3)  # the consumer has seen the stop by now
        send(99)
        consumer.join(timeout=10)
    finally:
        publisher.close(linger=0)
    assert not consumer.is_alive()
    assert [n for n in got if n >= 0] == [0, 1, 2, 3, 4]  # all five, and not the one sent after the stop


# --- hostile recordings ------------------------------------------------------------------------


def write_recording(path: Path, log_times: list[int], capture_ns: int | None = None, raw: dict[int, bytes] | None = None) -> Path:
    """A recording of ``len(log_times)`` ticks at those log times; ``raw`` replaces message i's CBOR."""
    recorder = recording.McapRecorder(path)
    for i, log_time in enumerate(log_times):
        msg = Message(topic=TOPIC, seq=i, capture_ns=capture_ns or log_time, send_ns=log_time, sender="ticker",
                      arrays={"payload": np.zeros(PAYLOAD_BYTES, np.uint8)}, fields={"count": i})
        if raw and i in raw:
            channel = recorder._channels.get(TOPIC) or recorder._writer.register_channel(topic=TOPIC, message_encoding="cbor", schema_id=0)
            recorder._channels[TOPIC] = channel
            recorder._writer.add_message(channel_id=channel, log_time=log_time, publish_time=log_time, sequence=i, data=raw[i])
        else:
            recorder.write(msg, log_time_ns=log_time)
    recorder.close()
    return path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_replay_stops_on_a_signal_while_waiting_out_a_far_future_log_time(tmp_path, runtime_dir, signum):
    """A recording whose last log time is 2⁶² ns (146 years) after the first: replay used to sleep
    through it, deaf to SIGINT and SIGTERM, for 20 minutes and more. Now the gap is shortened to 60 s
    and a signal ends the wait: the exit comes well inside that (under 1 s on a quiet machine, 1.1-1.2 s
    seen on 2 cores running three other jobs: the bound leaves room for load)."""
    now = time.time_ns()
    path = write_recording(tmp_path / "future.mcap", [now, now + 10_000_000, now + 2**62])
    proc = subprocess.Popen([sys.executable, "-m", "edgerun.cli", "replay", str(path), "--name", "rp"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith(f"replaying {path}")
        shortened = proc.stderr.readline()
        assert "gap of 4.61e+09 s before message 3 (ticker/ticks) shortened to 60 s" in shortened, shortened
        time.sleep(0.5)
        signalled = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(timeout=10)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0 and took < 5.0, f"exit {code} {took:.2f} s after the signal"
    assert "replayed 2 messages" in proc.stderr.read()
    assert "rp" not in introspect.running_graphs()


def test_replay_shortens_long_gaps_and_skips_what_the_wire_refuses(tmp_path, runtime_dir):
    now = time.time_ns()
    path = write_recording(tmp_path / "gaps.mcap", [now, now + 30 * 10**9, now + 2**62], capture_ns=now)
    result, got = replay_and_collect(path, "rp", "--max-gap", "0.3")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("shortened to 0.3 s") == 2
    # the third message's capture time, moved back with the 146 years cut from its gap, is negative
    assert "skipped message 3 (ticker/ticks): " in result.stderr and "replayed 2 messages" in result.stderr
    assert [g[1] for g in got] == [0, 1]
    assert 0.2 < got[1][0] - got[0][0] < 0.6  # the 30 s gap took 0.3 s


def _patched_summary_start(recorded: Path, offset: int) -> bytes:
    """The recording with its footer's summary offset set to ``offset``: 2⁶² points past the end,
    100 into the middle of a record, where the reader finds a length of exabytes."""
    data = bytearray(recorded.read_bytes())
    at = len(data) - 8 - 20  # the footer (opcode, length, summary_start, summary_offset_start, crc), then the magic
    data[at : at + 8] = offset.to_bytes(8, "little")
    return bytes(data)


CORRUPT_MESSAGES = {
    "garbage_cbor": b"\xff\xfe\xfd not cbor",
    "missing_keys": cbor2.dumps({"seq": 1, "fields": {}}),
    "deep_nesting": b"\x81" * 100_000 + b"\x00",
    "huge_cbor_length": b"\x5b\xff\xff\xff\xff\xff\xff\xff\xf0abc",
    "shape_past_data": cbor2.dumps({"seq": 1, "capture_ns": 1, "send_ns": 1, "sender": "x", "fields": {},
                                    "arrays": {"a": {"dtype": "<f4", "shape": [10**9, 10**9], "data": b"\0" * 8}}}),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_MESSAGES) + ["summary_past_the_end", "huge_record_length"])
def test_corrupt_recording_gets_one_line_naming_the_file_and_exit_2(recorded, tmp_path, runtime_dir, case):
    path = tmp_path / f"{case}.mcap"
    if case in ("summary_past_the_end", "huge_record_length"):
        path.write_bytes(_patched_summary_start(recorded, 2**62 if case == "summary_past_the_end" else 100))
    else:
        now = time.time_ns()
        write_recording(path, [now, now + 1_000_000, now + 2_000_000], raw={1: CORRUPT_MESSAGES[case]})
    result = cli("replay", str(path), "--name", "rp")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if not line.startswith("replaying ")]
    assert len(lines) == 1 and len(lines[0]) < 600, result.stderr[-2000:]
    assert lines[0].startswith(f"edgerun replay: {path}: ")
    assert "rp" not in introspect.running_graphs()
