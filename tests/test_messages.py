"""The wire format (``runtime/messages.py``): round trips, hostile input and zero copy.

* Round trip (hypothesis): arrays of every allow-listed dtype, any shape (0-d and
  0-size included), C-contiguous or not, little- or big-endian, plus nested scalar
  header fields, go through ``encode`` -> bytes frames -> ``decode`` unchanged; the
  received arrays are read-only.
* Fuzz (hypothesis): random frame lists, valid encodings that were cut, dropped,
  duplicated or bit-flipped, and hand-built headers that lie about shapes, dtypes,
  buffers and versions. ``decode`` must return a valid ``Message`` or raise
  ``Rejected`` (nothing else), and must never allocate what a header claims:
  its tracemalloc peak stays below the size of the input plus 1 MiB.
* A table maps each hostile case to the ``Rejected.reason`` it must produce.
* Zero copy over real ZeroMQ sockets: over inproc:// the received array is the
  sender's memory; over ipc:// it is a view of the received frame, not a copy.

Drop counting in a running NodeRunner is covered by the launched-graph tests.
"""

from __future__ import annotations

import gc
import math
import tracemalloc
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgerun.runtime import messages
from edgerun.runtime.messages import ArrayField, Header, Limits, Message, Rejected

MiB = 1024 * 1024
DEFAULT_LIMITS = Limits()

FUZZ = settings(
    max_examples=200,
    deadline=None,
    # conftest's autouse runtime_dir fixture is function scoped; these tests don't use it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- strategies ----------------------------------------------------------------------

utf8_text = st.text(st.characters(codec="utf-8"), max_size=12)

scalar_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    utf8_text,
    st.binary(max_size=24),
)
field_values = st.recursive(
    scalar_values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(utf8_text, inner, max_size=4),
    max_leaves=12,
)


def _layouts(array: np.ndarray) -> st.SearchStrategy[np.ndarray]:
    """The same values, or a view of them, in memory layouts ``encode`` must cope with."""
    options = [array, np.asfortranarray(array), array.T]
    if array.ndim:
        options += [array[::-1], array[::2]]
    return st.sampled_from(options)


@st.composite
def wire_arrays(draw) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(sorted(messages.ALLOWED_DTYPES))))
    if dtype.itemsize > 1 and draw(st.booleans()):
        dtype = dtype.newbyteorder(">")
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
    array = draw(hnp.arrays(dtype, shape))
    return draw(_layouts(array))


@st.composite
def message_data(draw) -> dict[str, Any]:
    """A ``data`` mapping for ``encode``: names disjoint by construction, values arrays or fields."""
    return draw(st.dictionaries(utf8_text, st.one_of(wire_arrays(), field_values), max_size=6))


def _encode_kwargs() -> st.SearchStrategy[dict[str, Any]]:
    stamp = st.integers(0, 2**63 - 1)  # what decode accepts: non-negative int64
    return st.fixed_dictionaries(
        {"seq": stamp, "capture_ns": stamp, "send_ns": stamp, "sender": utf8_text}
    )


# --- helpers -------------------------------------------------------------------------


def as_zmq_would(frames: Sequence[Any]) -> list[bytes]:
    """What a receiver holds: every frame as flat bytes."""
    return [bytes(frame) for frame in frames]


def same_value(a: Any, b: Any) -> bool:
    """Equality for header values where NaN equals NaN and bool/int/float stay distinct."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return a == b


def wire_form(array: np.ndarray) -> np.ndarray:
    """What the receiver should get for ``array``: same values, little-endian, C order."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def decode_within_budget(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Message | Rejected:
    """``decode`` → the Message or the Rejected it raised; any other exception fails the test.

    Also asserts the tracemalloc peak during decoding (numpy's data allocations are
    traced too) stays below the input size + 1 MiB.
    """
    budget = sum(len(f) for f in frames) + MiB
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            result: Message | Rejected = messages.decode(frames, limits)
        except Rejected as exc:
            result = exc
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        if not was_tracing:
            tracemalloc.stop()
    assert peak < budget, f"decode allocated {peak} bytes for {budget - MiB} bytes of input"
    return result


def assert_valid(result: Message | Rejected, frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> None:
    """A decoded message only holds allow-listed, read-only arrays that fit in its frames."""
    if isinstance(result, Rejected):
        assert isinstance(result.reason, str) and result.reason
        return
    assert isinstance(result, Message)
    assert len(result.arrays) <= limits.max_arrays
    assert sum(a.nbytes for a in result.arrays.values()) <= sum(len(f) for f in frames[2:])
    for array in result.arrays.values():
        assert array.dtype.str in messages.ALLOWED_DTYPES
        assert array.ndim <= limits.max_ndim
        assert not array.flags.writeable


def header_bytes(
    *arrays: ArrayField, version: int = messages.WIRE_VERSION, sender: str = "mallory", fields: dict | None = None
) -> bytes:
    header = Header(
        version=version, seq=1, capture_ns=2, send_ns=3, sender=sender, arrays=tuple(arrays), fields=fields or {}
    )
    return msgspec.msgpack.encode(header)


def header_with_raw_fields(raw_fields: bytes) -> bytes:
    """A valid header whose ``fields`` map is replaced by hand-written msgpack."""
    plain = header_bytes()
    assert plain.endswith(b"\x80\xc0")  # array_like Header: ``fields``, an empty map, then ``shared``: nil
    return plain[:-2] + raw_fields + b"\xc0"


# --- 1. round trip ------------------------------------------------------------------


@FUZZ
@given(data=message_data(), kwargs=_encode_kwargs(), topic=utf8_text)
def test_encode_decode_round_trips_arrays_fields_and_metadata(data, kwargs, topic):
    frames = as_zmq_would(messages.encode(topic, data, **kwargs))
    msg = messages.decode(frames)

    assert (msg.topic, msg.seq, msg.capture_ns, msg.send_ns, msg.sender) == (
        topic, kwargs["seq"], kwargs["capture_ns"], kwargs["send_ns"], kwargs["sender"],
    )
    sent_arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    sent_fields = {k: v for k, v in data.items() if not isinstance(v, np.ndarray)}
    assert msg.arrays.keys() == sent_arrays.keys()
    for name, sent in sent_arrays.items():
        got, expected = msg.arrays[name], wire_form(sent)
        assert got.dtype == expected.dtype and got.dtype.str in messages.ALLOWED_DTYPES
        assert got.shape == sent.shape
        assert got.tobytes() == expected.tobytes()  # bit-exact, NaN payloads and -0.0 included
        assert np.array_equal(got, sent, equal_nan=got.dtype.kind in "fc")
        assert not got.flags.writeable
        if got.size:
            with pytest.raises(ValueError):
                got.flat[0] = got.flat[0]
    assert msg.fields.keys() == sent_fields.keys()
    for name, sent in sent_fields.items():
        assert same_value(msg.fields[name], sent), (name, msg.fields[name], sent)


def test_zero_dimensional_arrays_keep_their_shape():
    frames = as_zmq_would(messages.encode("t", {"gain": np.array(2.5), "n": np.array(3, dtype=">i4")},
                                          seq=0, capture_ns=0, sender="s"))
    msg = messages.decode(frames)
    assert (msg["gain"].shape, msg["gain"][()]) == ((), 2.5)
    assert (msg["n"].shape, msg["n"].dtype.str, msg["n"][()]) == ((), "<i4", 3)


def test_encode_sends_contiguous_little_endian_arrays_without_a_copy():
    image = np.arange(64 * 1024, dtype="<u2").reshape(256, 256)
    frames = messages.encode("cam", {"image": image, "transposed": image.T, "be": image.astype(">u2")},
                             seq=0, capture_ns=0, sender="s")
    as_bytes = [np.frombuffer(f, np.uint8) for f in frames[2:]]
    assert np.shares_memory(as_bytes[0], image)
    assert not np.shares_memory(as_bytes[1], image)  # a transposed view has to be copied to C order
    assert as_bytes[2].tobytes() == image.tobytes()  # big-endian arrives little-endian


def test_numpy_scalars_travel_as_plain_header_values():
    frames = as_zmq_would(messages.encode("t", {"f": np.float32(1.5), "i": np.int64(7), "b": np.bool_(True)},
                                          seq=0, capture_ns=0, sender="s"))
    fields = messages.decode(frames).fields
    assert same_value(dict(fields), {"f": 1.5, "i": 7, "b": True})


@pytest.mark.parametrize("dtype", ["|O", "<M8[ns]", "|V8", "<U4", "|S3"])
def test_encode_refuses_dtypes_off_the_allow_list(dtype):
    with pytest.raises(TypeError, match="cannot be sent"):
        messages.encode("t", {"x": np.zeros(2, dtype=dtype)}, seq=0, capture_ns=0, sender="s")


# --- 2. fuzz -----------------------------------------------------------------------

HOSTILE_DTYPES = ["|O", "<M8[ns]", "|V8", ">f4", ">i8", "<U4", "|S4", "O", "", "not a dtype", "<f8,<f8"]
HOSTILE_DIMS = [2**31, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**31), -(2**63)]


def mostly(usual: Any, *unusual: Any, weight: int = 6) -> st.SearchStrategy[Any]:
    """``usual`` most of the time, so that lies get past the earlier checks and reach the later ones."""
    return st.sampled_from([usual] * weight + list(unusual))


hostile_shapes = st.one_of(
    st.lists(st.integers(0, 6), max_size=4).map(tuple),  # honest
    st.lists(st.one_of(st.integers(0, 8), st.sampled_from(HOSTILE_DIMS)), max_size=20).map(tuple),
    st.sampled_from([(2**40,), (2**62, 2**62), (0, 2**62, 2**62), (1,) * 100, (0,) * 100, (-1, -8), (-2, -4)]),
)


@st.composite
def hostile_messages(draw) -> list[bytes]:
    """A well-formed msgpack Header that may lie about everything, with frames that may or may not fit."""
    n_arrays = draw(st.integers(0, 4))
    specs = [
        ArrayField(
            name=draw(mostly(f"x{i}", "dup", "k")),
            dtype=draw(st.sampled_from(sorted(messages.ALLOWED_DTYPES) * 3 + HOSTILE_DTYPES)),
            shape=draw(hostile_shapes),
            buffer=draw(mostly(i, 0, -1, n_arrays, 2**40, weight=20)),
        )
        for i in range(n_arrays)
    ]
    n_buffers = draw(mostly(n_arrays, max(n_arrays - 1, 0), n_arrays + 1, weight=12))
    buffers = [draw(st.binary(max_size=64)) for _ in range(n_buffers)]
    for spec in specs:  # make the named frame fit the claim where that is possible and small
        fittable = spec.dtype in messages.ALLOWED_DTYPES and min(spec.shape, default=0) >= 0
        if fittable and 0 <= spec.buffer < len(buffers):
            claimed = np.dtype(spec.dtype).itemsize * math.prod(spec.shape)
            if claimed <= 4096 and draw(mostly(True, False, weight=3)):
                buffers[spec.buffer] = bytes(claimed)
    header = header_bytes(
        *specs,
        version=draw(mostly(messages.WIRE_VERSION, 0, 2, -1, 2**32, weight=30)),
        fields=draw(st.dictionaries(st.sampled_from(["k", "m", "x0"]), field_values, max_size=3)),
    )
    return [draw(mostly(b"t", b"\xff\xfe", weight=20)), header, *buffers]


@FUZZ
@given(frames=st.lists(st.binary(max_size=64), max_size=6))
def test_decode_of_random_frames_returns_message_or_rejected(frames):
    result = decode_within_budget(frames)
    event(result.reason if isinstance(result, Rejected) else "accepted")
    assert_valid(result, frames)


@FUZZ
@given(frames=hostile_messages())
def test_decode_of_lying_headers_never_allocates_the_claim(frames):
    result = decode_within_budget(frames)
    event(result.reason if isinstance(result, Rejected) else "accepted")
    assert_valid(result, frames)


def _mutate(frames: list[bytes], draw) -> list[bytes]:
    """One random damage: a frame cut short, dropped, duplicated or moved, or header bytes edited."""
    frames = list(frames)
    op = draw(st.sampled_from(["truncate", "drop", "duplicate", "swap", "flip", "insert", "delete"]))
    if not frames:
        return frames
    i = draw(st.integers(0, len(frames) - 1))
    if op == "truncate":
        frames[i] = frames[i][: draw(st.integers(0, max(len(frames[i]) - 1, 0)))]
    elif op == "drop":
        del frames[i]
    elif op == "duplicate":
        frames.insert(i, frames[i])
    elif op == "swap":
        j = draw(st.integers(0, len(frames) - 1))
        frames[i], frames[j] = frames[j], frames[i]
    elif len(frames) > 1:  # byte-level edits of the header
        header = bytearray(frames[1])
        at = draw(st.integers(0, max(len(header) - 1, 0)))
        if op == "flip" and header:
            header[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            header[at:at] = draw(st.binary(min_size=1, max_size=9))
        elif op == "delete":
            del header[at: at + draw(st.integers(1, 4))]
        frames[1] = bytes(header)
    return frames


@FUZZ
@given(data=message_data(), st_data=st.data())
def test_decode_of_damaged_valid_messages_returns_message_or_rejected(data, st_data):
    frames = as_zmq_would(messages.encode("cam/image", data, seq=1, capture_ns=2, sender="cam"))
    for _ in range(st_data.draw(st.integers(1, 3), label="mutations")):
        frames = _mutate(frames, st_data.draw)
    result = decode_within_budget(frames)
    event(result.reason if isinstance(result, Rejected) else "accepted")
    assert_valid(result, frames)


def test_allocation_budget_check_sees_numpy_allocations(monkeypatch):
    """The tracemalloc guard is not vacuous: a decode that allocated what a header claims would fail it."""
    honest = messages.decode

    def greedy(frames, limits=DEFAULT_LIMITS):
        np.ones(4 * MiB, dtype=np.uint8)
        return honest(frames, limits)

    monkeypatch.setattr(messages, "decode", greedy)
    with pytest.raises(AssertionError, match="decode allocated"):
        decode_within_budget([b"t", header_bytes()])


# --- 3. each hostile case → its reason ----------------------------------------------------


def f8(name: str = "a", shape: tuple[int, ...] = (1,), buffer: int = 0, dtype: str = "<f8") -> ArrayField:
    return ArrayField(name, dtype, shape, buffer)


SMALL = Limits(max_message_bytes=4096, max_header_bytes=1024, max_arrays=4, max_ndim=3)

REJECTIONS = [
    # id, frames, limits, reason, sender
    ("no frames", [], Limits(), "frame_count", "?"),
    ("topic only", [b"t"], Limits(), "frame_count", "?"),
    ("header not msgpack", [b"t", b"\xc1"], Limits(), "bad_header", "?"),
    ("empty header", [b"t", b""], Limits(), "bad_header", "?"),
    ("header is a map", [b"t", msgspec.msgpack.encode({"version": 1})], Limits(), "bad_header", "?"),
    ("header truncated", [b"t", header_bytes(f8())[:-3], bytes(8)], Limits(), "bad_header", "?"),
    ("header field types wrong", [b"t", msgspec.msgpack.encode([1, 2, 3, 4, 5, [["a", "<f8", "x", 0]], {}])],
     Limits(), "bad_header", "?"),
    ("invalid UTF-8 string in header", [b"t", header_with_raw_fields(b"\x81\xa1a\xa2\xff\xfe")],
     Limits(), "bad_header", "?"),
    ("invalid UTF-8 key in header", [b"t", header_with_raw_fields(b"\x81\xa2\xff\xfe\x01")],
     Limits(), "bad_header", "?"),
    ("deeply nested header fields", [b"t", header_with_raw_fields(b"\x81\xa1a" + b"\x91" * 60_000 + b"\x90")],
     Limits(), "bad_header", "?"),
    ("topic not UTF-8", [b"\xff", header_bytes()], Limits(), "bad_topic", "?"),
    ("wrong version", [b"t", header_bytes(version=messages.WIRE_VERSION + 1)], Limits(), "version", "mallory"),
    ("version zero", [b"t", header_bytes(version=0)], Limits(), "version", "mallory"),
    ("header over max_header_bytes", [b"t", header_bytes(fields={"pad": "x" * 2000})], SMALL, "too_large", "?"),
    ("header over default max_header_bytes", [b"t", header_bytes(fields={"pad": "x" * (64 * 1024)})],
     Limits(), "too_large", "?"),
    ("total over max_message_bytes", [b"t", header_bytes(f8(shape=(1024,))), bytes(8192)], SMALL, "too_large", "?"),
    ("more buffers than arrays", [b"t", header_bytes(), bytes(8)], Limits(), "frame_count", "mallory"),
    ("fewer buffers than arrays", [b"t", header_bytes(f8())], Limits(), "frame_count", "mallory"),
    ("more arrays than max_arrays", [b"t", header_bytes(*(f8(f"a{i}", buffer=i) for i in range(5))),
                                     *[bytes(8)] * 5], SMALL, "frame_count", "mallory"),
    ("duplicate buffer index", [b"t", header_bytes(f8("a", buffer=0), f8("b", buffer=0)), bytes(8), bytes(8)],
     Limits(), "frame_count", "mallory"),
    ("buffer index out of range", [b"t", header_bytes(f8(buffer=1)), bytes(8)], Limits(), "frame_count", "mallory"),
    ("negative buffer index", [b"t", header_bytes(f8(buffer=-1)), bytes(8)], Limits(), "frame_count", "mallory"),
    ("huge buffer index", [b"t", header_bytes(f8(buffer=2**40)), bytes(8)], Limits(), "frame_count", "mallory"),
    *[(f"dtype {d!r}", [b"t", header_bytes(f8(dtype=d)), bytes(8)], Limits(), "dtype", "mallory")
      for d in HOSTILE_DTYPES],
    ("huge 1-d shape", [b"t", header_bytes(f8(shape=(2**40,))), bytes(8)], Limits(), "length", "mallory"),
    ("huge 2-d shape", [b"t", header_bytes(f8(shape=(2**62, 2**62))), bytes(8)], Limits(), "length", "mallory"),
    ("shape at uint64 max", [b"t", header_bytes(f8(shape=(2**64 - 1, 2**64 - 1))), bytes(8)],
     Limits(), "length", "mallory"),
    ("huge shape, empty frame", [b"t", header_bytes(f8(shape=(2**40,))), b""], Limits(), "length", "mallory"),
    ("zero-size with huge dims", [b"t", header_bytes(f8(shape=(0, 2**62, 2**62))), b""], Limits(), "shape", "mallory"),
    ("zero-size with dim over int64", [b"t", header_bytes(f8(shape=(0, 2**64 - 1))), b""],
     Limits(), "shape", "mallory"),
    ("negative dim", [b"t", header_bytes(f8(shape=(-1,))), bytes(8)], Limits(), "shape", "mallory"),
    ("negative dims whose product fits", [b"t", header_bytes(f8(shape=(-2, -4))), bytes(64)],
     Limits(), "shape", "mallory"),
    ("most negative dim", [b"t", header_bytes(f8(shape=(-(2**63),))), bytes(8)], Limits(), "shape", "mallory"),
    ("ndim 100", [b"t", header_bytes(f8(shape=(1,) * 100)), bytes(8)], Limits(), "shape", "mallory"),
    ("ndim over max_ndim", [b"t", header_bytes(f8(shape=(1,) * 17)), bytes(8)], Limits(), "shape", "mallory"),
    ("array name twice", [b"t", header_bytes(f8("a", buffer=0), f8("a", buffer=1)), bytes(8), bytes(8)],
     Limits(), "shape", "mallory"),
    ("array name also a field", [b"t", header_bytes(f8("a"), fields={"a": 1}), bytes(8)], Limits(), "shape", "mallory"),
    ("frame shorter than shape", [b"t", header_bytes(f8(shape=(3,))), bytes(16)], Limits(), "length", "mallory"),
    ("frame longer than shape", [b"t", header_bytes(f8(shape=(3,))), bytes(32)], Limits(), "length", "mallory"),
    ("0-d array with empty frame", [b"t", header_bytes(f8(shape=())), b""], Limits(), "length", "mallory"),
]


@pytest.mark.parametrize(
    ("frames", "limits", "reason", "sender"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTIONS],
)
def test_hostile_message_is_rejected_with_its_reason(frames, limits, reason, sender):
    result = decode_within_budget(frames, limits)
    assert isinstance(result, Rejected), f"accepted: {result}"
    assert (result.reason, result.sender) == (reason, sender), str(result)


@pytest.mark.parametrize(
    ("frames", "limits"),
    [
        pytest.param([b"t", header_bytes(f8(shape=(1,) * 16)), bytes(8)], Limits(), id="ndim at max_ndim"),
        pytest.param([b"t", header_bytes(*(f8(f"a{i}", buffer=i) for i in range(4))), *[bytes(8)] * 4], SMALL,
                     id="arrays at max_arrays"),
        pytest.param([b"t", header_bytes(f8(shape=(0, 2**40))), b""], Limits(), id="zero-size with big dim"),
        pytest.param([b"t", header_bytes(f8("a", buffer=1), f8("b", shape=(2,), buffer=0)), bytes(16), bytes(8)],
                     Limits(), id="buffers out of order"),
    ],
)
def test_messages_at_the_limits_are_accepted(frames, limits):
    result = decode_within_budget(frames, limits)
    assert isinstance(result, Message), str(result)
    assert_valid(result, frames, limits)


# --- 4. zero copy over real sockets ------------------------------------------------------


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def pub_sub_pair(context: zmq.Context, endpoint: str) -> tuple[zmq.Socket, zmq.Socket]:
    """A connected PUB/SUB pair on ``endpoint``, subscribed to everything and past the slow-joiner window."""
    pub = context.socket(zmq.PUB)
    pub.linger = 0
    pub.copy_threshold = messages.ZERO_COPY_MIN_BYTES
    pub.bind(endpoint)
    sub = context.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    for _ in range(200):
        pub.send_multipart(messages.encode("probe", {}, seq=0, capture_ns=0, sender="test"))
        if sub.poll(25):
            break
    else:
        raise AssertionError(f"subscription on {endpoint} never arrived")
    while sub.poll(50):  # drain the probes
        sub.recv_multipart()
    return pub, sub


def send_and_receive(pub: zmq.Socket, sub: zmq.Socket, data: dict[str, Any]) -> tuple[Message, list[zmq.Frame]]:
    pub.send_multipart(messages.encode("cam/image", data, seq=7, capture_ns=11, sender="cam"), copy=False)
    assert sub.poll(5000), "message did not arrive"
    frames = sub.recv_multipart(copy=False)
    return messages.decode(frames), frames


def data_pointer(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def test_inproc_delivers_the_senders_buffer_without_a_copy(context):
    image = np.random.default_rng(0).integers(0, 255, (256, 512), dtype=np.uint8)  # 128 KiB
    assert image.nbytes >= messages.ZERO_COPY_MIN_BYTES
    pub, sub = pub_sub_pair(context, "inproc://test-zero-copy")

    msg, _ = send_and_receive(pub, sub, {"image": image, "exposure": 0.5})

    received = msg["image"]
    assert data_pointer(received) == data_pointer(image)
    assert received.shape == image.shape and received.dtype == image.dtype
    assert np.array_equal(received, image)
    assert not received.flags.writeable and msg["exposure"] == 0.5


def test_ipc_decodes_a_view_of_the_received_frame(context, runtime_dir):
    image = np.random.default_rng(1).standard_normal((128, 128))  # 128 KiB of float64
    pub, sub = pub_sub_pair(context, f"ipc://{runtime_dir}/zero-copy.sock")

    msg, frames = send_and_receive(pub, sub, {"image": image})

    received = msg["image"]
    frame = frames[2]
    assert np.shares_memory(received, np.frombuffer(frame.buffer, dtype=np.uint8))
    base = received
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, memoryview) and base.obj is frame  # a view of the zmq.Frame, no bytes copy
    assert data_pointer(received) != data_pointer(image)  # it did cross a process boundary's worth of socket

    # The view keeps the frame alive once the caller lets go of it.
    del frames, frame, base
    gc.collect()
    assert np.array_equal(received, image)
