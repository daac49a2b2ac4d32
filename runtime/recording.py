"""Record topics to MCAP and replay them with their original timing.

File layout (any MCAP reader can open it; the layout is also stored in the file's
``edgerun`` metadata record):

- one channel per topic (``node/output``), ``message_encoding = "cbor"``, schemaless;
- each message is one CBOR map::

      {"seq": int, "capture_ns": int, "send_ns": int, "sender": str,
       "fields": {name: scalar},
       "arrays": {name: {"dtype": "<f4", "shape": [int, ...], "data": bytes}}}

  ``dtype`` is a numpy type string (little-endian), ``data`` the C-order raw bytes;
- ``log_time`` is when the recorder received the message, ``publish_time`` its send time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import cbor2
import numpy as np
import zmq
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.writer import Writer

from edgerun.runtime import messages
from edgerun.runtime.deployment import RUN_STATE, NodeState, RunState, write_run_state
from edgerun.runtime.introspect import listen, running_graphs
from edgerun.runtime.messages import Message
from edgerun.runtime.paths import ipc_endpoint, run_dir

MESSAGE_ENCODING = "cbor"
LAYOUT = (
    "one CBOR map per message: seq, capture_ns, send_ns, sender, fields{name: scalar}, "
    "arrays{name: {dtype: numpy type string, shape: [int], data: C-order bytes}}"
)


def to_cbor(msg: Message) -> bytes:
    return cbor2.dumps(
        {
            "seq": msg.seq,
            "capture_ns": msg.capture_ns,
            "send_ns": msg.send_ns,
            "sender": msg.sender,
            "fields": dict(msg.fields),
            "arrays": {
                name: {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()} for name, a in msg.arrays.items()
            },
        }
    )


def from_cbor(topic: str, data: bytes) -> Message:
    record = cbor2.loads(data)
    arrays = {}
    for name, spec in record["arrays"].items():
        if spec["dtype"] not in messages.ALLOWED_DTYPES:
            raise ValueError(f"recorded array '{name}' on '{topic}' has dtype {spec['dtype']!r}, not allowed")
        arrays[name] = np.frombuffer(spec["data"], dtype=spec["dtype"]).reshape(spec["shape"])
    return Message(
        topic=topic,
        seq=record["seq"],
        capture_ns=record["capture_ns"],
        send_ns=record["send_ns"],
        sender=record["sender"],
        arrays=arrays,
        fields=record["fields"],
    )


class McapRecorder:
    """Writes messages to an MCAP file, one channel per topic."""

    def __init__(self, path: Path):
        self._file = open(path, "wb")
        self._writer = Writer(self._file)
        self._writer.start(profile="", library="edgerun")
        self._writer.add_metadata("edgerun", {"layout": LAYOUT, "wire_version": str(messages.WIRE_VERSION)})
        self._channels: dict[str, int] = {}
        self.count = 0

    def write(self, msg: Message, log_time_ns: int | None = None) -> None:
        channel = self._channels.get(msg.topic)
        if channel is None:
            channel = self._channels[msg.topic] = self._writer.register_channel(
                topic=msg.topic, message_encoding=MESSAGE_ENCODING, schema_id=0
            )
        self._writer.add_message(
            channel_id=channel,
            log_time=time.time_ns() if log_time_ns is None else log_time_ns,
            publish_time=msg.send_ns,
            sequence=msg.seq & 0xFFFFFFFF,
            data=to_cbor(msg),
        )
        self.count += 1

    def close(self) -> None:
        self._writer.finish()
        self._file.close()


def record(
    topics: dict[str, str],
    path: Path,
    duration_s: float | None,
    should_stop: Callable[[], bool] = lambda: False,
    on_message: Callable[[Message], None] | None = None,
    select: Callable[[Message], Iterable[Message]] | None = None,
) -> int:
    """Subscribe to ``topics`` (``{topic: endpoint}``) and write them to ``path``; the message count.

    ``select`` (optional) maps each received message to the messages to write: itself, nothing, or
    some it held back (e.g. only the camera frames that a result refers to)."""
    recorder = McapRecorder(path)
    try:
        for msg in listen(topics, duration_s, should_stop):
            for kept in select(msg) if select else (msg,):
                recorder.write(kept)
            if on_message:
                on_message(msg)
    finally:
        recorder.close()
    return recorder.count


def read_recording(path: Path, topics: list[str] | None = None) -> Iterator[tuple[int, Message]]:
    """``(log_time_ns, message)`` in log-time order."""
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        for _schema, channel, record_ in reader.iter_messages(topics=topics, log_time_order=True):
            if channel.message_encoding != MESSAGE_ENCODING:
                continue
            yield record_.log_time, from_cbor(channel.topic, record_.data)


def recording_topics(path: Path) -> list[str]:
    try:
        with open(path, "rb") as stream:
            summary = make_reader(stream).get_summary()
    except McapError as exc:
        raise ValueError(f"{path}: not a readable MCAP file ({exc})") from None
    if summary is None:
        raise ValueError(f"{path}: no MCAP summary (was the recording closed properly?)")
    return sorted({c.topic for c in summary.channels.values() if c.message_encoding == MESSAGE_ENCODING})


def replay(
    path: Path,
    run_name: str,
    rate: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
    announce: Callable[[str], None] = lambda line: None,
) -> int:
    """Publish a recording as the run ``run_name`` (each sender as a node), keeping its timing.

    Inter-message gaps are divided by ``rate``. Capture times are shifted by the
    offset between recording and replay, so latencies downstream stay meaningful.
    """
    if rate <= 0:
        raise ValueError(f"--rate must be positive, got {rate}")
    if run_name in running_graphs():
        raise ValueError(f"a graph named '{run_name}' is running; replay under another --name")
    topics = recording_topics(path)
    senders: dict[str, list[str]] = {}
    for topic in topics:
        node, _, output = topic.partition("/")
        senders.setdefault(node, []).append(output)
    directory = run_dir(run_name)
    context = zmq.Context.instance()
    sockets = {}
    state = RunState(name=run_name, graph=str(path), launcher_pid=os.getpid(), host=None, nodes={})
    for node, outputs in senders.items():
        socket = context.socket(zmq.PUB)
        socket.linger = 0
        socket.sndhwm = 1000
        endpoint = ipc_endpoint(directory, f"{node}.pub")
        socket.bind(endpoint)
        sockets[node] = socket
        state.nodes[node] = NodeState(
            cls="recording", outputs=tuple(outputs), services=(), process="replay", host=None,
            pub=endpoint, ctl=ipc_endpoint(directory, f"{node}.ctl"), srv=None,
        )
    write_run_state(directory, state)
    announce(f"replaying {path} as run '{run_name}' at {rate:g}x: {', '.join(topics)}")
    time.sleep(0.3)  # let subscribers that were waiting for the run connect
    sent = 0
    start_wall = time.monotonic()
    first_log: int | None = None
    offset_ns = 0
    try:
        for log_time, msg in read_recording(path):
            if should_stop():
                break
            if first_log is None:
                first_log, offset_ns = log_time, time.time_ns() - log_time
            delay = (log_time - first_log) / 1e9 / rate - (time.monotonic() - start_wall)
            if delay > 0:
                time.sleep(delay)
            data: dict[str, Any] = {**msg.fields, **msg.arrays}
            frames = messages.encode(
                msg.topic, data, seq=msg.seq, capture_ns=msg.capture_ns + offset_ns, sender=msg.sender
            )
            sockets[msg.topic.partition("/")[0]].send_multipart(frames)
            sent += 1
    finally:
        time.sleep(0.1)  # let the last messages leave
        for socket in sockets.values():
            socket.close()
        (directory / RUN_STATE).unlink(missing_ok=True)
    return sent
