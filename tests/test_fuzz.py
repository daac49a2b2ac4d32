"""The hostile messages of ``edgerun bench fuzz`` are what they claim: each malformed kind is
refused by the wire decoder for its own reason, each well-formed kind decodes to what the
receiving node's own checks refuse."""

from __future__ import annotations

import numpy as np
import pytest

from edgerun.benchmarks.fuzz import KINDS, hostile
from edgerun.runtime import messages
from edgerun.runtime.messages import Message, Rejected
from edgerun.runtime.paths import private_dir
from edgerun.runtime.shm import SharedReader

TOPIC, SENDER = "fuzz/observation", "fuzz"
LAST = Message(topic=TOPIC, seq=7, capture_ns=0, send_ns=0, sender=SENDER,
               arrays={"proprio": np.zeros(2, np.float32), "pixels": np.zeros((4, 4, 3), np.uint8)}, fields={"episode": 0})

REFUSED_BY_DECODE = {
    "truncated_header": {"bad_header"},
    "oversized_header": {"too_large"},
    "huge_shape": {"length"},
    "negative_shape": {"shape"},
    "object_dtype": {"dtype"},
    "mismatched_dtype": {"length"},
    "wrong_frame_count": {"frame_count"},
    "deep_msgpack": {"bad_header"},
    "seq_beyond_int64": {"range", "bad_header"},
    "capture_before_1970": {"range", "bad_header"},
    "big_frame": {"length"},
    "shm_path_escape": {"shm_unexpected"},  # with no shared memory at all
    "shm_other_node": {"shm_unexpected"},
    "shm_odd_generation": {"shm_unexpected"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_hostile_kind_is_refused_by_the_decoder_or_decodes_to_what_a_node_refuses(kind):
    frames = hostile(kind, TOPIC, SENDER, LAST, np.random.default_rng(0))
    if kind == "random_frames":
        with pytest.raises(Rejected):
            messages.decode(frames)
        return
    if kind in REFUSED_BY_DECODE:
        with pytest.raises(Rejected) as refused:
            messages.decode(frames)
        assert refused.value.reason in REFUSED_BY_DECODE[kind], refused.value
        return
    msg = messages.decode(frames)  # well formed: the receiving node's own checks must catch it
    if kind == "prefix_topic":
        assert msg.topic == TOPIC + "\0_extra"
    elif kind == "impostor_sender":
        assert msg.sender == "impostor"
    elif kind == "capture_an_hour_ahead":
        assert msg.capture_ns - msg.send_ns > 3000 * 10**9
    elif kind == "seq_jump":
        assert msg.seq == 1 << 62 and msg.arrays["proprio"].shape == (2,)
    elif kind == "non_finite":
        assert np.isnan(msg.arrays["proprio"]).all()
    elif kind == "wrong_shape":
        assert {a.shape for a in msg.arrays.values()} == {(3, 7)}
    else:
        pytest.fail(f"kind {kind!r} has no expectation here")


@pytest.mark.parametrize("kind", [k for k in KINDS if k.startswith("shm_")])
def test_hostile_descriptors_are_refused_by_a_receiver_with_shared_memory(kind, tmp_path):
    shared = SharedReader(private_dir(tmp_path / "shm"), column=0)
    with pytest.raises(Rejected) as refused:
        messages.decode(hostile(kind, TOPIC, SENDER, LAST, np.random.default_rng(0)), shared=shared)
    assert refused.value.reason == "shm_segment", refused.value
