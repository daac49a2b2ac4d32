"""The wire format: one ZeroMQ multipart message is ``[topic, header, buf0, buf1, ...]``.

``topic`` is the UTF-8 ``node/output`` followed by one NUL byte, so that a subscription to
``topic + NUL`` matches that topic exactly: ZeroMQ matches prefixes, and ``env/camera`` would
otherwise also receive ``env/camera_pose`` (:func:`subscription`).

``header`` is MessagePack (msgspec): format version, sequence number, capture and send
time (ns since the epoch), sender, the array fields (name, dtype, shape, buffer index)
and the small scalar fields themselves. Each array travels as its own raw C-contiguous
little-endian frame: sent without a copy from 64 KiB up and received as a read-only
numpy view of the ZeroMQ frame.

Between processes on one host, arrays from a threshold up may instead lie in a shared-memory
slot of the publisher (:mod:`edgerun.runtime.shm`): the header's ``shared`` block names the slot,
its generation and each array's place in it, and only that descriptor crosses ZeroMQ.

A receiver trusts nothing: :func:`decode` checks the frame count, total size, header
size, version, dtype allow-list and that shape x itemsize equals each frame's length
before it builds a single array, and raises :class:`Rejected` with a reason otherwise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import msgspec
import numpy as np

from edgerun.errors import cut

WIRE_VERSION = 1
ZERO_COPY_MIN_BYTES = 64 * 1024

# Little-endian (or byte-order-free) plain numeric types only: no objects, structs,
# strings or datetimes, whose decoding could run code or mislead about sizes.
ALLOWED_DTYPES = frozenset(
    np.dtype(name).newbyteorder("<").str
    for name in (
        "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
        "float16", "float32", "float64", "complex64", "complex128",
    )
)


class ArrayField(msgspec.Struct, array_like=True, frozen=True):
    name: str
    dtype: str
    shape: tuple[int, ...]
    buffer: int


class SharedArray(msgspec.Struct, array_like=True, frozen=True):
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int  # bytes from the start of the slot


class Shared(msgspec.Struct, array_like=True, frozen=True):
    """Arrays that lie in a publisher's shared-memory slot instead of frames of their own."""

    segment: str  # the slot's file name in the run's segment directory
    generation: int  # the slot's generation when written; a reader that sees another drops the message
    arrays: tuple[SharedArray, ...]


class Header(msgspec.Struct, array_like=True, frozen=True):
    version: int
    seq: int
    capture_ns: int
    send_ns: int
    sender: str
    arrays: tuple[ArrayField, ...] = ()
    fields: dict[str, Any] = {}
    shared: Shared | None = None  # only between processes of one host, when big arrays lie in a slot


TOPIC_END = b"\0"


def subscription(topic: str) -> bytes:
    """What a SUB socket subscribes to for exactly ``topic``."""
    return topic.encode() + TOPIC_END


_encoder = msgspec.msgpack.Encoder()
_header_decoder = msgspec.msgpack.Decoder(Header)


@dataclass(frozen=True)
class Limits:
    """What a receiver accepts; anything beyond is dropped before allocation."""

    max_message_bytes: int = 256 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    max_arrays: int = 64
    max_ndim: int = 16
    max_clock_skew_ns: int = 600 * 10**9
    """How far a message's capture time may lie from the receiving node's clock (either way) before the
    node drops it as ``time_range``: 10 minutes, wide for hosts whose clocks disagree, narrow enough
    that latency statistics stay meaningful."""
    max_seq_gap: int = 1 << 20
    """A forward jump of ``seq`` larger than this is counted once as ``seq_jump``, not as that many
    ``missed`` messages (a hostile or corrupted sequence number, not real loss)."""


INT64_MAX = (1 << 63) - 1


class Rejected(Exception):
    """A received message failed validation; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str, sender: str = "?"):
        detail, sender = cut(detail, 300), cut(sender, 60)  # both come from the peer and end up in logs
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.sender = sender


class Message(msgspec.Struct, frozen=True):
    """A received (or about to be sent) message: arrays and scalar fields by name.

    A msgspec Struct rather than a dataclass: one is built per received message, and a
    Struct is several times cheaper to create.
    """

    topic: str
    seq: int
    capture_ns: int
    send_ns: int
    sender: str
    arrays: dict[str, np.ndarray] = {}
    fields: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self.arrays:
            return self.arrays[name]
        if name in self.fields:
            return self.fields[name]
        known = sorted([*self.arrays, *self.fields])
        raise KeyError(f"message on '{self.topic}' has no field '{name}' (it has: {', '.join(known) or 'nothing'})")

    def get(self, name: str, default: Any = None) -> Any:
        return self.arrays.get(name, self.fields.get(name, default))

    def __contains__(self, name: str) -> bool:
        return name in self.arrays or name in self.fields

    @property
    def age_ns(self) -> int:
        """Time since capture, by the local wall clock."""
        return time.time_ns() - self.capture_ns


def wire_array(name: str, value: np.ndarray) -> np.ndarray:
    if value.dtype.byteorder == ">":
        value = value.astype(value.dtype.newbyteorder("<"))
    if value.dtype.str not in ALLOWED_DTYPES:
        raise TypeError(
            f"field '{name}': dtype {value.dtype} cannot be sent; "
            f"allowed: {', '.join(sorted(np.dtype(d).name for d in ALLOWED_DTYPES))}"
        )
    return np.asarray(value, order="C")  # not ascontiguousarray: it turns 0-d arrays into shape (1,)


def encode(
    topic: str,
    data: Mapping[str, Any],
    *,
    seq: int,
    capture_ns: int,
    sender: str,
    send_ns: int | None = None,
    shared: Shared | None = None,
) -> list[Any]:
    """Frames for ``socket.send_multipart``: numpy arrays become buffers, the rest header fields;
    ``shared`` describes arrays the caller already placed in shared memory.

    Arrays are passed as they are (no copy when contiguous and little-endian); the
    caller must not modify them after sending. ``seq`` and the time stamps must lie in
    0..2**63-1 (what :func:`decode` accepts); anything else is a ``ValueError`` here.
    """
    send_ns = time.time_ns() if send_ns is None else send_ns
    for name, value in (("seq", seq), ("capture_ns", capture_ns), ("send_ns", send_ns)):
        if not 0 <= value <= INT64_MAX:
            raise ValueError(f"topic '{topic}': {name} {value} is outside 0..2**63-1")
    arrays: list[ArrayField] = []
    buffers: list[np.ndarray] = []
    fields: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, np.ndarray):
            wire = wire_array(name, value)
            arrays.append(ArrayField(name, wire.dtype.str, tuple(wire.shape), len(buffers)))
            buffers.append(wire)
        elif isinstance(value, np.generic):
            fields[name] = value.item()
        else:
            fields[name] = value
    header = Header(
        version=WIRE_VERSION,
        seq=seq,
        capture_ns=capture_ns,
        send_ns=send_ns,
        sender=sender,
        arrays=tuple(arrays),
        fields=fields,
        shared=shared,
    )
    try:
        header_bytes = _encoder.encode(header)
    except TypeError as exc:
        raise TypeError(f"topic '{topic}': a field cannot be sent in the header: {exc}") from None
    # memoryview(ndarray) keeps shape; ZeroMQ wants the flat bytes.
    return [subscription(topic), header_bytes, *(memoryview(b).cast("B") if b.size else b"" for b in buffers)]


ITEMSIZE = {dtype: np.dtype(dtype).itemsize for dtype in ALLOWED_DTYPES}


def _frame_buffer(frame: Any) -> Any:
    """A zmq.Frame's memoryview, or the bytes-like object itself."""
    return getattr(frame, "buffer", frame)


class SharedResolver(Protocol):
    """What turns a ``shared`` block into arrays (:class:`edgerun.runtime.shm.SharedReader`)."""

    def resolve(self, shared: Shared, topic: str, sender: str, seq: int, limits: Limits) -> dict[str, np.ndarray]: ...


def decode(frames: Sequence[Any], limits: Limits = Limits(), shared: SharedResolver | None = None) -> Message:
    """Validate and unpack a received multipart message; arrays are views of the frames (or of
    shared memory, through ``shared``: a message that names a slot is refused without one).

    Raises :class:`Rejected` for anything malformed; never allocates more than the
    frames already hold.
    """
    if len(frames) < 2:
        raise Rejected("frame_count", f"expected at least 2 frames (topic, header), got {len(frames)}")
    views = [_frame_buffer(f) for f in frames]
    sizes = [len(v) for v in views]
    total = sum(sizes)
    if total > limits.max_message_bytes:
        raise Rejected("too_large", f"{total} bytes exceeds the limit of {limits.max_message_bytes}")
    if sizes[1] > limits.max_header_bytes:
        raise Rejected("too_large", f"header of {sizes[1]} bytes exceeds the limit of {limits.max_header_bytes}")
    raw_topic = bytes(views[0])
    try:
        topic = (raw_topic[:-1] if raw_topic.endswith(TOPIC_END) else raw_topic).decode()
    except UnicodeDecodeError:
        raise Rejected("bad_topic", "topic is not UTF-8") from None
    try:
        header = _header_decoder.decode(views[1])
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
        # msgspec raises the last two for invalid UTF-8 strings and deep nesting
        raise Rejected("bad_header", str(exc)) from None
    sender = header.sender
    for name in ("seq", "capture_ns", "send_ns"):
        value = getattr(header, name)
        if not 0 <= value <= INT64_MAX:
            raise Rejected("range", f"{name} {value} is outside 0..2**63-1", sender)
    if header.version != WIRE_VERSION:
        raise Rejected("version", f"wire version {header.version}, this receiver speaks {WIRE_VERSION}", sender)
    buffers = views[2:]
    if len(header.arrays) != len(buffers) or len(buffers) > limits.max_arrays:
        raise Rejected(
            "frame_count", f"header lists {len(header.arrays)} arrays but {len(buffers)} buffers came", sender
        )
    arrays: dict[str, np.ndarray] = {}
    used: set[int] = set()
    for spec in header.arrays:
        itemsize = ITEMSIZE.get(spec.dtype)
        if itemsize is None:
            raise Rejected("dtype", f"array '{spec.name}' has dtype {spec.dtype!r}, not on the allow-list", sender)
        if not 0 <= spec.buffer < len(buffers) or spec.buffer in used:
            raise Rejected("frame_count", f"array '{spec.name}' names buffer {spec.buffer}", sender)
        if len(spec.shape) > limits.max_ndim or any(d < 0 for d in spec.shape):
            raise Rejected("shape", f"array '{spec.name}' has shape {spec.shape}", sender)
        if spec.name in arrays or spec.name in header.fields:
            raise Rejected("shape", f"field '{spec.name}' appears twice", sender)
        used.add(spec.buffer)
        expected = itemsize * math.prod(spec.shape)
        got = sizes[2 + spec.buffer]
        if expected != got:
            raise Rejected(
                "length",
                f"array '{spec.name}' {spec.dtype} {spec.shape} needs {expected} bytes, its frame has {got}",
                sender,
            )
        try:
            if got:
                array = np.frombuffer(buffers[spec.buffer], dtype=spec.dtype).reshape(spec.shape)
            else:
                array = np.empty(spec.shape, dtype=spec.dtype)
        except (ValueError, OverflowError) as exc:
            raise Rejected("shape", f"array '{spec.name}' has shape {spec.shape}: {exc}", sender) from None
        array.flags.writeable = False
        arrays[spec.name] = array
    if header.shared is not None:
        if shared is None:
            raise Rejected("shm_unexpected", "the message names a shared-memory slot this receiver cannot map", sender)
        if len(header.shared.arrays) + len(arrays) > limits.max_arrays:
            raise Rejected("frame_count", f"{len(header.shared.arrays)} shared arrays", sender)
        for name, array in shared.resolve(header.shared, topic, sender, header.seq, limits).items():
            if name in arrays or name in header.fields:
                raise Rejected("shape", f"field '{name}' appears twice", sender)
            arrays[name] = array
    return Message(
        topic=topic,
        seq=header.seq,
        capture_ns=header.capture_ns,
        send_ns=header.send_ns,
        sender=sender,
        arrays=arrays,
        fields=header.fields,
    )
