"""`edgerun run module:Class`: one node alone, for debugging, optionally fed by a running graph."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import zmq
from conftest import wait_for

from edgerun.cli import main as edgerun_main
from edgerun.runtime import introspect


def run_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgerun.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def first_messages(run: str, topic: str, count: int) -> list:
    _, state = wait_for(lambda: introspect.running_graphs().get(run), 20, what=f"run '{run}'")
    socket = introspect.subscribe(zmq.Context.instance(), state, topic)
    try:
        got = []
        for msg in introspect.receive(socket, topic, timeout_s=10):
            got.append(msg)
            if len(got) == count:
                return got
    finally:
        socket.close()
    raise AssertionError(f"only {len(got)} messages on {topic}")


def test_node_runs_alone_with_cli_params_and_stops_on_sigterm():
    proc = run_cli("run", "fixture_nodes:Ticker", "--param", "rate_hz=40", "--param", "payload_bytes=8", "--name", "solo")
    try:
        got = first_messages("run-solo", "solo/ticks", 5)
        assert [m["payload"].shape for m in got] == [(8,)] * 5
        assert [m["count"] for m in got] == list(range(got[0]["count"], got[0]["count"] + 5))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out


def test_node_run_alone_can_subscribe_to_a_running_graph(launch):
    launch("""
    name: upstream
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker", params: {rate_hz: 40}}
    """).wait_running()
    proc = run_cli("run", "fixture_nodes:Relay", "--input", "ticks=ticker/ticks", "--from", "upstream", "--duration", "8")
    try:
        got = first_messages("run-relay", "relay/ticks", 3)
        assert all(m["count"] > 0 for m in got)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def test_bad_param_is_refused_before_starting():
    proc = run_cli("run", "fixture_nodes:Ticker", "--param", "rate_hz=fast")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "--param.rate_hz: Expected `float`, got `str`" in out
    assert not introspect.running_graphs()


def test_a_node_whose_io_thread_keeps_failing_exits_non_zero_at_once():
    """Not a silent stall: the node stops as failed within seconds and `edgerun run` exits 1."""
    proc = run_cli("run", "fixture_nodes:UnencodableStatus", "--name", "broken", "--duration", "60")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert "I/O thread failed 20 times in a row; stopping the node as failed" in out
    assert "TypeError" in out


def test_call_prints_a_service_reply_and_names_what_is_not_there(launch, capsys):
    launch("""
    name: calc
    nodes:
      - {id: calc, class: "fixture_nodes:Adder"}
    """).wait_running()
    proc = run_cli("call", "calc/add", "a=2", "b=3.5", "values=[1, 2]")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "sum: 5.5" in out.splitlines()
    # the refusals in this process (a second interpreter start each would add seconds, not coverage)
    for args, message in ((["calc/multiply"], "no service calc/multiply in 'calc' (services: calc/add)"),
                          (["calc/add", "a=1", "b=2", "values=[]", "fail=1"], "asked to fail")):
        with pytest.raises(SystemExit) as exited:
            edgerun_main(["call", *args])
        captured = capsys.readouterr()
        assert exited.value.code == 2 and message in captured.out + captured.err, captured


def test_call_refuses_a_malformed_service_or_field_before_looking_for_a_graph(capsys):
    for args, message in ((["calc"], "'calc': expected NODE/SERVICE"), (["calc/add", "a"], "expected KEY=VALUE")):
        with pytest.raises(SystemExit) as exited:
            edgerun_main(["call", *args])
        assert exited.value.code == 2 and message in capsys.readouterr().err
