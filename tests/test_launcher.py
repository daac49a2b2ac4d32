"""The launcher with real processes: supervision, restarts, faults and clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from conftest import host_processes, wait_for

REPO = Path(__file__).resolve().parents[1]


def test_demo_graph_prints_rates_and_exits_zero_on_its_own(runtime_dir):
    result = subprocess.run(
        [sys.executable, "-m", "edgerun.cli", "launch", str(REPO / "graphs/camera.yaml"), "--duration", "4", "--live-every", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # not on a terminal: one short line per period, not every stream
    live = [line for line in result.stdout.splitlines() if line.startswith("[edgerun] 2/2 streams flowing · slowest ")]
    assert live, result.stdout
    rate = float(live[-1].split(" · slowest ")[1].split()[1])
    assert 20 < rate < 40, live[-1]  # the camera runs at 30 Hz
    assert live[-1].endswith(" · drops 0 · restarts 0"), live[-1]
    assert "monitor | I edgerun.monitor: frame" in result.stdout  # node logs, prefixed by process
    summary = result.stdout.split("[edgerun] summary\n")[1].splitlines()
    assert summary[0].split() == ["stream", "via", "Hz", "age", "p50", "age", "p99", "drops", "restarts"]
    rows = [row.split() for row in summary[1:3]]
    assert [row[0] for row in rows] == ["camera/frames", "monitor.frames"]  # the graph's order
    # the monitor runs in a process of its own: the camera's frames reach it through shared memory
    assert rows[0][1] == "shm" and rows[1][1] == "shm", summary
    assert not host_processes(runtime_dir)


def test_killed_node_is_restarted_and_downstream_resumes(launch):
    graph = launch("""
    name: faults
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker", params: {rate_hz: 50}}
      - id: relay
        class: "fixture_nodes:Relay"
        inputs: {ticks: ticker/ticks}
        restart: {policy: on-failure, max_restarts: 3, backoff_s: 0.2}
      - {id: sink, class: "fixture_nodes:Sink", inputs: {ticks: relay/ticks}}
    """).wait_running()
    before = {name: graph.status(name) for name in ("ticker", "relay", "sink")}
    assert before["sink"]["inputs"]["ticks"]["received"] > 0
    os.kill(before["relay"]["pid"], signal.SIGKILL)

    relay = graph.status("relay", where=lambda s: s["restarts"] == 1)
    assert relay["pid"] != before["relay"]["pid"]
    received = graph.status("sink")["inputs"]["ticks"]["received"]
    sink = graph.status("sink", where=lambda s: s["inputs"]["ticks"]["received"] > received + 20)
    assert sink["restarts"] == 0 and sink["pid"] == before["sink"]["pid"]
    ticker = graph.status("ticker")
    assert ticker["restarts"] == 0 and ticker["pid"] == before["ticker"]["pid"]
    assert "process 'relay' was killed by SIGKILL; restart 1/3" in graph.log


def test_slow_consumer_on_latest_input_gets_newest_message_with_bounded_memory(launch):
    graph = launch("""
    name: slow
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker", params: {rate_hz: 100, payload_bytes: 1048576}}
      - {id: slow, class: "fixture_nodes:SlowConsumer", params: {delay_s: 0.3}, inputs: {ticks: ticker/ticks}}
    """).wait_running()
    process = psutil.Process(graph.status("slow")["pid"])
    time.sleep(2.0)
    rss_early = process.memory_info().rss
    time.sleep(4.0)  # 400 MiB published meanwhile
    rss_late = process.memory_info().rss
    status = graph.status("slow")
    assert rss_late - rss_early < 32 * 1024 * 1024, (rss_early, rss_late)
    assert status["inputs"]["ticks"]["drops"]["conflated"] > 200
    # the age of each message when its handling began: the newest available, not a backlog, which
    # would age by seconds here (100 Hz in, 3.3 Hz out); the bound is loose for a loaded machine
    assert status["inputs"]["ticks"]["latency_p99_ms"] < 500, status["inputs"]["ticks"]
    assert status["inputs"]["ticks"]["rate_hz"] < 4  # ~3.3 Hz, the handler's pace


def test_slow_consumer_on_queue_input_keeps_order_and_counts_what_it_missed(launch):
    graph = launch("""
    name: slowq
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker", params: {rate_hz: 100}}
      - {id: slow, class: "fixture_nodes:SlowQueueConsumer", inputs: {ticks: ticker/ticks}}
    """).wait_running()
    handled = graph.subscribe("slow/handled")
    status = graph.status("slow", where=lambda s: s["inputs"]["ticks"]["received"] >= 300)
    ticks = status["inputs"]["ticks"]
    assert ticks["drops"]["queue_full"] > 150  # 100 Hz in, 20 Hz handled: the oldest go
    assert ticks["rate_hz"] < 25
    # what waits is the newest: at most 4 queued x 50 ms each, however long it has run
    assert ticks["latency_p99_ms"] < 400, ticks
    counts = [m["count"] for m in graph.receive(handled, 10)]
    assert counts == sorted(counts) and len(set(counts)) == 10  # in order, none twice


def test_malformed_messages_are_dropped_counted_and_node_lives(launch):
    graph = launch("""
    name: rogue
    nodes:
      - {id: rogue, class: "fixture_nodes:RoguePublisher"}
      - {id: sink, class: "fixture_nodes:Sink", inputs: {ticks: rogue/ticks}}
    """).wait_running()
    first = graph.status("sink")
    status = graph.status("sink", where=lambda s: s["inputs"]["ticks"]["received"] >= 20)
    drops = status["inputs"]["ticks"]["drops"]
    reasons = ("frame_count", "bad_header", "version", "dtype", "length", "range", "time_range", "wrong_sender", "other_topic",
               "seq_jump")  # fmt: skip
    for reason in reasons:
        assert drops.get(reason, 0) > 0, drops
    assert drops.get("missed", 0) < 10**6, drops  # a jump of 2**62 is one seq_jump, not 2**62 missed messages
    ticks = status["inputs"]["ticks"]
    assert 0 <= ticks["latency_p50_ms"] < 1000 and 0 <= ticks["latency_p99_ms"] < 1000, ticks
    assert status["pid"] == first["pid"] and status["restarts"] == 0
    assert "dropped a message on input 'ticks'" in graph.log and "from 'rogue'" in graph.log


def test_failing_node_is_restarted_with_backoff_until_its_limit(launch):
    graph = launch("""
    name: crashy
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker"}
      - id: crash
        class: "fixture_nodes:CrashOnStart"
        restart: {policy: on-failure, max_restarts: 2, backoff_s: 0.1}
    """, "--duration", "6")
    wait_for(lambda: "not restarting (2 restarts used)" in graph.log, 20, what="restarts to run out")
    assert graph.proc.wait(timeout=20) == 1  # the graph ran to its end, then reported the failure
    log = graph.log
    assert "restart 1/2 in 0.1 s" in log and "restart 2/2 in 0.2 s" in log
    assert "this node always fails in setup" in log
    assert "failed: crash" in log


def test_ctrl_c_stops_every_node_even_a_stuck_one(launch, runtime_dir):
    graph = launch("""
    name: stuck
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker"}
      - {id: stuck, class: "fixture_nodes:StuckHandler", inputs: {ticks: ticker/ticks}}
    """).wait_running()
    graph.status("stuck", where=lambda s: s["busy_s"] > 0)
    started = time.monotonic()
    assert graph.stop(signal.SIGINT) == 0
    assert time.monotonic() - started < 8  # stop_timeout_s of the node process (3 s) + margin
    assert not host_processes(runtime_dir)


def test_nodes_die_with_a_killed_launcher(launch, runtime_dir):
    graph = launch("""
    name: orphans
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker"}
      - {id: sink, class: "fixture_nodes:Sink", inputs: {ticks: ticker/ticks}}
    """).wait_running()
    assert len(host_processes(runtime_dir)) == 2
    graph.proc.send_signal(signal.SIGKILL)
    wait_for(lambda: not host_processes(runtime_dir), 10, what="node processes to follow the launcher")


def test_second_launch_of_a_running_graph_is_refused(launch, tmp_path):
    graph = launch("""
    name: once
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker"}
    """).wait_running()
    result = subprocess.run(
        [sys.executable, "-m", "edgerun.cli", "launch", str(graph.path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"graph 'once' is already running (launcher pid {graph.proc.pid}" in result.stderr


def test_graph_stops_when_a_stop_with_node_finishes(launch):
    graph = launch("""
    name: finite
    stop_with: [camera]
    nodes:
      - {id: camera, class: edgerun.nodes.camera:Camera, params: {uri: "synthetic://pattern?width=32&height=24", fps: 50, frames: 60}}
      - {id: monitor, class: edgerun.nodes.monitor:FrameMonitor, inputs: {frames: camera/frames}}
    """)
    assert graph.proc.wait(timeout=30) == 0
    assert "'camera' finished: stopping the graph" in graph.log


def test_top_prints_every_stream_of_a_running_graph_and_exits(launch):
    launch("""
    name: top
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker", params: {rate_hz: 50}}
      - {id: sink, class: "fixture_nodes:Sink", inputs: {ticks: ticker/ticks}}
    """).wait_running()
    time.sleep(1.5)  # a full rate window
    result = subprocess.run([sys.executable, "-m", "edgerun.cli", "top", "top", "--once"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("top at ") and lines[1].split()[:3] == ["stream", "via", "Hz"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"ticker/ticks", "sink.ticks"}
    assert 35 < float(rows["sink.ticks"][2]) < 65, rows  # 50 Hz
    assert rows["sink.ticks"][-2:] == ["0", "0"]  # no drops, no restarts
    missing = subprocess.run([sys.executable, "-m", "edgerun.cli", "top", "nope", "--once"], capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "no running graph named 'nope'" in missing.stderr


def test_live_view_on_a_terminal_redraws_one_table_with_log_lines_above_it():
    import io

    from edgerun.runtime.live_view import LiveView

    def status(rate: float, drops: int) -> dict:
        stream = {"rate_hz": rate, "mean_rate_hz": rate, "latency_p50_ms": 2.0, "latency_p99_ms": 1500.0, "drops": {"missed": drops, "conflated": 40}}
        return {"inputs": {"ticks": stream}, "outputs": {}, "restarts": 0}

    out = io.StringIO()
    with LiveView(out, every_s=1.0, interactive=True) as view:
        view.show({"sink": status(50.0, 0)}, "run: 1 node", force=True)
        view.say("sink | a log line")
        view.show({"sink": status(0.0, 3)}, "run: 1 node", force=True)
    text = out.getvalue()
    assert text.count("run: 1 node") >= 3  # drawn, redrawn below the log line, redrawn with new values
    assert "sink | a log line" in text
    assert "50.0" in text and "idle" in text and "1.5 s" in text and "2.0 ms" in text
    assert "\x1b[1;31m3" in text  # drops that grew since the last refresh, in bold red
    assert text.endswith("\x1b[2K")  # the table is erased on exit, leaving the terminal to the summary
