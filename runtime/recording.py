"""Record topics to MCAP and replay them with their original timing.

File layout (any MCAP reader can open it; the layout is also stored in the file's
``edgerun`` metadata record):

- one lossless channel per topic (``node/output``), ``message_encoding = "cbor"``, schemaless: what
  replay reads;
- beside it, one channel per standard view the topic's output declares (:mod:`edgerun.runtime.views`),
  named ``/node/output/field``, with a Foxglove protobuf schema (images, transforms, point clouds,
  trajectories) or a JSON Schema (``json``): what Foxglove, the ``mcap`` readers' decoders and
  other tools show;
- each message is one CBOR map::

      {"seq": int, "capture_ns": int, "send_ns": int, "sender": str,
       "fields": {name: scalar},
       "arrays": {name: {"dtype": "<f4", "shape": [int, ...], "data": bytes}}}

  ``dtype`` is a numpy type string (little-endian), ``data`` the C-order raw bytes;
- ``log_time`` is when the recorder received the message, ``publish_time`` its send time.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import cbor2
import msgspec
import numpy as np
import zmq
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.writer import Writer

from edgerun.errors import RecordingError, cut, first_line
from edgerun.runtime import messages
from edgerun.runtime.deployment import RUN_STATE, NodeState, RunState, write_run_state
from edgerun.runtime.foxglove_messages import StandardChannel, standard_channels
from edgerun.runtime.introspect import listen, running_graphs
from edgerun.runtime.messages import Message
from edgerun.runtime.paths import ipc_endpoint, run_dir
from edgerun.runtime.ros2_bag import Ros2BagRecorder
from edgerun.runtime.views import View

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


class _RecordedArray(msgspec.Struct, forbid_unknown_fields=True):
    dtype: str
    shape: list[int]
    data: bytes


class _Recorded(msgspec.Struct, forbid_unknown_fields=True):
    """The layout above, checked field by field before anything is built from it."""

    seq: int
    capture_ns: int
    send_ns: int
    sender: str
    fields: dict[str, Any]
    arrays: dict[str, _RecordedArray]


def from_cbor(topic: str, data: bytes) -> Message:
    """The message one recorded CBOR map holds; :class:`RecordingError` for anything off the layout
    (garbage, nesting past cbor2's bound, a length past the data, a dtype off the allow-list)."""
    try:
        record = msgspec.convert(cbor2.loads(data), _Recorded, strict=True)
    except (cbor2.CBORError, msgspec.ValidationError) as exc:
        raise RecordingError(f"message on '{cut(topic, 100)}' is off edgerun's layout: {first_line(exc)}") from None
    arrays = {}
    for name, spec in record.arrays.items():
        if spec.dtype not in messages.ALLOWED_DTYPES:
            raise RecordingError(f"recorded array '{cut(name, 100)}' on '{cut(topic, 100)}' has dtype {cut(repr(spec.dtype), 40)}, not allowed")
        itemsize = np.dtype(spec.dtype).itemsize
        if any(d < 0 for d in spec.shape) or int(np.prod(spec.shape, dtype=np.float64)) * itemsize != len(spec.data):
            raise RecordingError(f"recorded array '{cut(name, 100)}' on '{cut(topic, 100)}': shape {cut(str(spec.shape), 80)} "
                                 f"of {spec.dtype} does not fit its {len(spec.data):,} bytes")
        arrays[name] = np.frombuffer(spec.data, dtype=spec.dtype).reshape(spec.shape)
    return Message(topic=topic, seq=record.seq, capture_ns=record.capture_ns, send_ns=record.send_ns,
                   sender=record.sender, arrays=arrays, fields=record.fields)


class McapRecorder:
    """Writes messages to an MCAP file: each topic's lossless channel, and a standard channel per
    view in ``views`` (``{topic: views}``; images as JPEG of ``jpeg_quality`` when given)."""

    def __init__(self, path: Path, views: Mapping[str, tuple[View, ...]] | None = None, jpeg_quality: int | None = None):
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
            raise ValueError(f"JPEG quality must be 1-100, got {jpeg_quality}")
        self._file = open(path, "wb")
        self._writer = Writer(self._file)
        self._writer.start(profile="", library="edgerun")
        self._writer.add_metadata("edgerun", {"layout": LAYOUT, "wire_version": str(messages.WIRE_VERSION)})
        self._views = dict(views or {})
        self._jpeg_quality = jpeg_quality
        self._channels: dict[str, int] = {}
        self._standard: dict[str, list[tuple[int, StandardChannel]]] = {}
        self._schemas: dict[tuple[str, bytes], int] = {}
        self.count = 0

    def write(self, msg: Message, log_time_ns: int | None = None) -> None:
        channel = self._channels.get(msg.topic)
        if channel is None:
            channel = self._channels[msg.topic] = self._writer.register_channel(
                topic=msg.topic, message_encoding=MESSAGE_ENCODING, schema_id=0
            )
            self._standard[msg.topic] = [(self._register(c), c) for c in
                                         standard_channels(msg.topic, self._views.get(msg.topic, ()), self._jpeg_quality)]
        log_time = time.time_ns() if log_time_ns is None else log_time_ns
        sequence = msg.seq & 0xFFFFFFFF
        self._writer.add_message(channel_id=channel, log_time=log_time, publish_time=msg.send_ns, sequence=sequence,
                                 data=to_cbor(msg))
        for channel_id, standard in self._standard[msg.topic]:
            data = standard.encode(msg)
            if data is not None:
                self._writer.add_message(channel_id=channel_id, log_time=log_time, publish_time=msg.send_ns,
                                         sequence=sequence, data=data)
        self.count += 1

    def _register(self, channel: StandardChannel) -> int:
        schema = channel.schema
        key = (schema.name, bytes(schema.data))
        schema_id = self._schemas.get(key)
        if schema_id is None:  # one schema record per schema, however many channels use it
            schema_id = self._schemas[key] = self._writer.register_schema(name=schema.name, encoding=schema.encoding,
                                                                          data=key[1])
        return self._writer.register_channel(topic=channel.topic, message_encoding=channel.message_encoding,
                                             schema_id=schema_id)

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
    segments: str | None = None,
    views: Mapping[str, tuple[View, ...]] | None = None,
    jpeg_quality: int | None = None,
    ros2_storage: str | None = None,
) -> int:
    """Subscribe to ``topics`` (``{topic: endpoint}``) and write them to ``path``; the message count.

    ``select`` (optional) maps each received message to the messages to write: itself, nothing, or
    some it held back (e.g. only the camera frames that a result refers to). ``segments``: the run's
    shared-memory directory; arrays that lie there are recorded like any other. ``views``: the
    standard views per topic (``RunState.topic_views``), written beside the lossless channels.
    ``ros2_storage`` (``sqlite3`` or ``mcap``): write a ROS 2 bag directory of the standard views
    instead (:mod:`edgerun.runtime.ros2_bag`); ``count`` is then the ROS 2 messages written."""
    if ros2_storage is None:
        recorder = McapRecorder(path, views, jpeg_quality)
    else:
        recorder = Ros2BagRecorder(path, views or {}, ros2_storage)
    try:
        for msg in listen(topics, duration_s, should_stop, segments=segments):
            for kept in select(msg) if select else (msg,):
                recorder.write(kept, time.time_ns())
            if on_message:
                on_message(msg)
    finally:
        recorder.close()
    return recorder.count


_CORRUPT = (McapError, ValueError, KeyError, IndexError, TypeError, EOFError, OSError, MemoryError, RecursionError, struct.error)
"""What the mcap reader raises on a corrupt file (it checks little: lengths and records are trusted),
and :func:`from_cbor`'s RecordingError (a ValueError), given the message's index on the way out."""


def read_recording(path: Path, topics: list[str] | None = None) -> Iterator[tuple[int, Message]]:
    """``(log_time_ns, message)`` in log-time order; :class:`RecordingError` naming the file, and the
    message's index, for a corrupt file or message."""
    index = -1
    try:
        with open(path, "rb") as stream:
            reader = make_reader(stream)
            for index, (_schema, channel, record_) in enumerate(reader.iter_messages(topics=topics, log_time_order=True)):
                if channel.message_encoding != MESSAGE_ENCODING:
                    continue
                yield record_.log_time, from_cbor(channel.topic, record_.data)
    except _CORRUPT as exc:
        where = f"message {index + 1}" if index >= 0 else "reading its index"
        raise RecordingError(f"{path}: corrupt recording at {where}: {first_line(exc)}") from None


def recording_topics(path: Path) -> list[str]:
    """The edgerun topics in the recording's summary; :class:`RecordingError` for a file that is not
    a readable, properly closed MCAP file."""
    try:
        with open(path, "rb") as stream:
            summary = make_reader(stream).get_summary()
    except _CORRUPT as exc:
        raise RecordingError(f"{path}: not a readable MCAP file ({type(exc).__name__}: {first_line(exc)})") from None
    if summary is None:
        raise RecordingError(f"{path}: no MCAP summary (was the recording closed properly?)")
    return sorted({c.topic for c in summary.channels.values() if c.message_encoding == MESSAGE_ENCODING})


STOP_POLL_S = 0.05
"""How often a replay waiting for its next message looks at ``should_stop``: it stops within this."""


def _wait(seconds: float, should_stop: Callable[[], bool]) -> bool:
    """Sleep ``seconds`` unless told to stop first; True when told to stop."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if should_stop():
            return True
        time.sleep(min(left, STOP_POLL_S))
    return should_stop()


def replay(
    path: Path,
    run_name: str,
    rate: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
    announce: Callable[[str], None] = lambda line: None,
    max_gap_s: float = 60.0,
) -> int:
    """Publish a recording as the run ``run_name`` (each sender as a node), keeping its timing.

    Inter-message gaps are divided by ``rate``; a gap longer than ``max_gap_s`` (a paused recorder,
    or a log time from a broken clock) is shortened to it, saying so. Capture times are shifted by the
    offset between recording and replay, so latencies downstream stay meaningful; a message whose
    shifted time is outside int64 (an absurd recorded clock) is skipped and counted. Stops within
    :data:`STOP_POLL_S` of ``should_stop`` turning true.
    """
    if rate <= 0:
        raise ValueError(f"--rate must be positive, got {rate}")
    if max_gap_s <= 0:
        raise ValueError(f"--max-gap must be positive, got {max_gap_s}")
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
    sent = skipped = 0
    start_wall = time.monotonic()
    previous_log: int | None = None
    start_ns = 0  # the wall clock when the first message goes out
    elapsed_s = 0.0  # recorded time replayed so far, gaps over max_gap_s shortened
    try:
        for log_time, msg in read_recording(path):
            if previous_log is None:
                previous_log, start_ns = log_time, time.time_ns()
            gap_s = (log_time - previous_log) / 1e9
            if gap_s > max_gap_s:
                announce(f"gap of {gap_s:.3g} s before message {sent + skipped + 1} ({msg.topic}) shortened to {max_gap_s:g} s")
                gap_s = max_gap_s
            elapsed_s, previous_log = elapsed_s + gap_s, log_time
            if _wait(elapsed_s / rate - (time.monotonic() - start_wall), should_stop):
                break
            data: dict[str, Any] = {**msg.fields, **msg.arrays}
            # its capture time on the replay's clock: as long before its (planned) send as it was before
            # its log time, so downstream ages are the recorded ones at any rate and across shortened gaps;
            # messages logged together with one capture time keep sharing it
            capture_ns = start_ns + int(elapsed_s / rate * 1e9) - (log_time - msg.capture_ns)
            try:
                frames = messages.encode(msg.topic, data, seq=msg.seq, capture_ns=capture_ns, sender=msg.sender)
            except ValueError as exc:  # a recorded value the wire format refuses (time stamp out of range, ...)
                skipped += 1
                if skipped == 1 or skipped % 100 == 0:
                    announce(f"skipped message {sent + skipped} ({cut(msg.topic, 100)}): {first_line(exc)} ({skipped} skipped so far)")
                continue
            sockets[msg.topic.partition("/")[0]].send_multipart(frames)
            sent += 1
    finally:
        time.sleep(0.1)  # let the last messages leave
        for socket in sockets.values():
            socket.close()
        (directory / RUN_STATE).unlink(missing_ok=True)
    return sent
