"""Nodes in-process: parameters, timers, services, capture-time propagation and shared processes."""

from __future__ import annotations

import time

import msgspec
import numpy as np
import pytest
import zmq
from conftest import RunningGraph

from edgerun.nodes.camera import CameraParams
from edgerun.runtime import Latest, Node, messages
from edgerun.runtime.node import NodeDefinitionError
from edgerun.runtime.params import ParamError, build_params, parse_cli_params
from edgerun.runtime.services import ServiceError, call
from edgerun.runtime.stats import StreamStats


def test_params_are_typed_and_unknown_names_rejected():
    assert build_params(CameraParams, {"fps": 15, "width": 32}) == CameraParams(width=32, fps=15.0)
    with pytest.raises(ParamError, match=r"params.width: Expected `int`, got `float`"):
        build_params(CameraParams, {"width": 3.5})
    with pytest.raises(ParamError, match="unknown parameter colour"):
        build_params(CameraParams, {"colour": "red"})


def test_cli_params_are_read_as_yaml_scalars():
    assert parse_cli_params(["fps=30", "name=cam", "ratio=0.5", "on=true", "sizes=[1, 2]"]) == {
        "fps": 30, "name": "cam", "ratio": 0.5, "on": True, "sizes": [1, 2],
    }
    with pytest.raises(ParamError, match="expected KEY=VALUE"):
        parse_cli_params(["fps"])


def test_node_without_handler_for_its_input_is_refused():
    class Broken(Node):
        inputs = {"frames": Latest()}

    with pytest.raises(NodeDefinitionError, match="input 'frames' has no handler on_frames"):
        Broken.check_definition()


def test_relay_keeps_capture_time_of_the_source(tmp_path):
    graph = """
    name: relay
    nodes:
      - {id: ticker, class: "fixture_nodes:Ticker", params: {rate_hz: 50}}
      - {id: relay, class: "fixture_nodes:Relay", inputs: {ticks: ticker/ticks}}
    """
    with RunningGraph(tmp_path, graph) as running:
        source_socket = running.subscribe("ticker/ticks")
        assert source_socket.poll(10_000)  # the ticks reach this socket before any relayed one is collected
        relayed = running.collect("relay/ticks", 5)
        sources = running.collect("ticker/ticks", 50, socket=source_socket)  # 1 s of ticks from before the relayed ones
    assert all(m.sender == "relay" for m in relayed)
    # a relayed tick carries its source's capture time, not a new one
    source_capture = {m["count"]: m.capture_ns for m in sources}
    matched = [m for m in relayed if m["count"] in source_capture]
    assert matched, ([m["count"] for m in relayed], sorted(source_capture))
    assert all(m.capture_ns == source_capture[m["count"]] for m in matched)
    assert relayed[-1]["count"] > relayed[0]["count"]


def test_nodes_sharing_a_process_pass_arrays_without_copies(tmp_path):
    graph = """
    name: shared
    nodes:
      - {id: source, class: "fixture_nodes:BigSource", process: together}
      - {id: near, class: "fixture_nodes:AddressCheck", inputs: {big: source/big}, process: together}
      - {id: far, class: "fixture_nodes:AddressCheck", inputs: {big: source/big}}
    """
    with RunningGraph(tmp_path, graph) as running:
        assert set(running.processes) == {"together", "far"}
        near = running.collect("near/checked", 3)
        far = running.collect("far/checked", 3)
    assert all(m["same_memory"] and m["intact"] for m in near)  # inproc://: the sender's own buffer
    assert all(not m["same_memory"] and m["intact"] for m in far)  # ipc://: another process, a copy


def test_service_answers_requests_and_reports_errors(tmp_path):
    graph = """
    name: services
    nodes:
      - {id: adder, class: "fixture_nodes:Adder"}
      - {id: caller, class: "fixture_nodes:Caller"}
    """
    with RunningGraph(tmp_path, graph) as running:
        endpoint = running.endpoint("adder", "srv")
        reply = call(endpoint, "add", a=2, b=3, values=np.array([1.5, 2.0]))
        assert reply["sum"] == 5
        np.testing.assert_array_equal(reply["doubled"], [3.0, 4.0])
        with pytest.raises(ServiceError, match="ValueError: asked to fail"):
            call(endpoint, "add", a=1, b=1, values=np.zeros(1), fail=True)
        with pytest.raises(ServiceError, match="has no service 'multiply'"):
            call(endpoint, "multiply", a=1)
        answers = running.collect("caller/answers", 3)  # node-to-node calls
    for answer in answers:
        assert answer["sum"] == answer["n"] + 100
        np.testing.assert_array_equal(answer["doubled"], [0, 2, 4])


def test_call_to_a_silent_service_times_out(tmp_path):
    context = zmq.Context.instance()
    silent = context.socket(zmq.ROUTER)
    endpoint = f"ipc://{tmp_path}/silent.srv"
    silent.bind(endpoint)
    try:
        with pytest.raises(TimeoutError, match="service 'add': no reply within 0.2 s"):
            call(endpoint, "add", timeout_s=0.2, a=1)
    finally:
        silent.close(linger=0)


def test_stream_stats_keep_the_whole_run_rate_after_the_stream_stops():
    stats = StreamStats(rate_window_s=2.0)
    start = 1_000_000_000_000
    for i in range(11):  # 10 Hz for one second, each message 5 ms old
        stats.record(capture_ns=start + i * 100_000_000 - 5_000_000, now_ns=start + i * 100_000_000)
    live = stats.snapshot(now_ns=start + 1_000_000_000)
    later = stats.snapshot(now_ns=start + 60_000_000_000)  # a summary, long after the stream ended
    assert live["rate_hz"] == later["mean_rate_hz"] == 10.0
    assert later["rate_hz"] == 0.0 and later["count"] == 11
    assert later["latency_p50_ms"] == 5.0


def test_stream_stats_snapshot_survives_any_capture_time():
    """A status must always go out: no capture time a caller passes makes the snapshot raise."""
    now = 1_700_000_000 * 10**9
    stats = StreamStats()
    for capture_ns in (-(1 << 63), (1 << 63) - 1, (1 << 64) + 5, now - 10**6):
        stats.record(capture_ns, now_ns=now)
    snapshot = stats.snapshot(now_ns=now)
    assert snapshot["count"] == 4 and snapshot["latency_p50_ms"] is not None
    msgspec.msgpack.encode(snapshot)  # and it encodes


def test_a_header_outside_int64_is_rejected_by_reason():
    for field in ("seq", "capture_ns", "send_ns"):
        for value in (-1, 1 << 63, (1 << 64) - 1):
            header = {"version": messages.WIRE_VERSION, "seq": 1, "capture_ns": 2, "send_ns": 3, "sender": "cam", field: value}
            frames = [b"cam/image", msgspec.msgpack.encode(messages.Header(**header))]
            with pytest.raises(messages.Rejected) as caught:
                messages.decode(frames)
            assert caught.value.reason == "range" and field in caught.value.detail


def test_the_last_messages_a_node_publishes_before_it_stops_are_delivered(tmp_path):
    """A node that ends (an env after its last episode) must not take its final messages with it."""
    graph = """
    name: burst
    nodes:
      - {id: burst, class: "fixture_nodes:BurstThenStop"}
    """
    with RunningGraph(tmp_path, graph) as running:
        socket = running.subscribe("burst/")  # both topics: the frames queue up ahead of the end message
        received, deadline = [], time.monotonic() + 20
        end, frames = messages.subscription("burst/end"), messages.subscription("burst/frames")
        while time.monotonic() < deadline and end not in received:
            if socket.poll(200):
                received.append(socket.recv_multipart()[0])  # the topic frame: delivered, whatever a slot holds now
    assert received.count(frames) == 10
    assert end in received
