"""Small nodes the tests launch in real processes."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import msgspec
import numpy as np

from edgerun.errors import CheckpointError
from edgerun.runtime import Array, Latest, Message, Node, Queue, messages


@dataclass(frozen=True)
class TickerParams:
    rate_hz: float = 50.0
    payload_bytes: int = 16


class Ticker(Node):
    """Publishes a counter and a payload of ``payload_bytes`` at ``rate_hz``."""

    outputs = ("ticks",)
    params = TickerParams

    def setup(self) -> None:
        self.count = 0
        self.every(1.0 / self.params.rate_hz, self.tick)

    def tick(self) -> None:
        self.count += 1
        payload = np.full(self.params.payload_bytes, self.count % 256, dtype=np.uint8)
        self.publish("ticks", count=self.count, payload=payload, pid=os.getpid(), capture_ns=time.time_ns())


class Relay(Node):
    """Forwards each tick with its own pid."""

    inputs = {"ticks": Queue(64)}
    outputs = ("ticks",)

    def on_ticks(self, msg: Message) -> None:
        self.publish("ticks", count=msg["count"], relay_pid=os.getpid())


class Sink(Node):
    inputs = {"ticks": Queue(64)}

    def on_ticks(self, msg: Message) -> None:
        pass


@dataclass(frozen=True)
class SlowParams:
    delay_s: float = 0.3


class SlowConsumer(Node):
    """Takes ``delay_s`` per message and reports how old each message was when handling began."""

    inputs = {"ticks": Latest()}
    outputs = ("handled",)
    params = SlowParams

    def on_ticks(self, msg: Message) -> None:
        self.publish("handled", count=msg["count"], age_ms=msg.age_ns / 1e6, handled_ns=time.time_ns())
        time.sleep(self.params.delay_s)


class RoguePublisher(Node):
    """Sends malformed messages on its output, one valid tick after each bad one."""

    outputs = ("ticks",)

    def setup(self) -> None:
        self.count = 0
        self.every(0.02, self.send)

    def bad_messages(self) -> list[list[bytes]]:
        topic = messages.subscription(f"{self.name}/ticks")
        header = lambda **kw: msgspec.msgpack.encode(  # noqa: E731
            messages.Header(version=kw.get("version", 1), seq=kw.get("seq", 1), capture_ns=kw.get("capture_ns", time.time_ns()),
                            send_ns=0, sender=kw.get("sender", "rogue"), arrays=kw.get("arrays", ()), fields={"count": -1})
        )
        spec = lambda dtype, shape: (messages.ArrayField("payload", dtype, shape, 0),)  # noqa: E731
        return [
            [topic],                                                     # frame_count
            [topic, os.urandom(64)],                                     # bad_header
            [topic, header(version=99)],                                 # version
            [topic, header(arrays=spec("|O", (4,))), b"x" * 32],         # dtype
            [topic, header(arrays=spec("<f4", (1 << 40,))), b"x" * 16],  # length: claims 4 TiB
            [topic, header(arrays=spec("<f4", (4,))), b"x" * 15],        # length: truncated
            [topic, header(arrays=spec("<f4", (4,)))],                   # frame_count: buffer missing
            [topic, header(seq=(1 << 64) - 1)],                          # range: seq beyond int64
            [topic, header(capture_ns=-(1 << 63) + 10**9)],              # range: before 1970
            [topic, header(capture_ns=time.time_ns() + 3600 * 10**9)],   # time_range: an hour ahead
            [topic, header(sender="impostor")],                          # wrong_sender
            [topic + b"_extra", header()],                               # other_topic: our topic, NUL and more
            [topic, header(seq=1 << 62)],                                # seq_jump (then delivered)
        ]

    def send(self) -> None:
        for frames in self.bad_messages():
            self._runner.send_raw(frames)
        self.count += 1
        self.publish("ticks", count=self.count, capture_ns=time.time_ns())


class Adder(Node):
    services = ("add",)

    def serve_add(self, msg: Message) -> dict:
        if "fail" in msg:
            raise ValueError("asked to fail")
        return {"sum": msg["a"] + msg["b"], "doubled": msg["values"] * 2}


class CrashOnStart(Node):
    outputs = ("nothing",)

    def setup(self) -> None:
        raise RuntimeError("this node always fails in setup")


class StuckHandler(Node):
    """Never returns from its handler: shutdown must still end the process."""

    inputs = {"ticks": Latest()}

    def on_ticks(self, msg: Message) -> None:
        time.sleep(3600)


class BigSource(Node):
    """Publishes a 256 KiB array with its own memory address, to tell copies from views."""

    outputs = ("big",)

    def setup(self) -> None:
        self.every(0.02, self.send)

    def send(self) -> None:
        payload = np.arange(64 * 1024, dtype=np.float32)
        self.publish("big", payload=payload, address=payload.__array_interface__["data"][0])


class AddressCheck(Node):
    inputs = {"big": Latest()}
    outputs = ("checked",)

    def on_big(self, msg: Message) -> None:
        payload = msg["payload"]
        same = payload.__array_interface__["data"][0] == msg["address"]
        self.publish("checked", same_memory=bool(same), intact=bool(payload[12345] == 12345.0))


class Caller(Node):
    """Calls adder/add from a timer and publishes the answer."""

    outputs = ("answers",)

    def setup(self) -> None:
        self.n = 0
        self.every(0.05, self.ask)

    def ask(self) -> None:
        self.n += 1
        reply = self.call("adder/add", a=self.n, b=100, values=np.arange(3, dtype=np.int64), timeout_s=2.0)
        self.publish("answers", n=self.n, sum=reply["sum"], doubled=reply["doubled"])


def seeded_images(count: int, size: int = 56) -> np.ndarray:
    """The image batch ImageSource publishes as number ``count``, reproducible by tests."""
    return np.random.default_rng(count).uniform(-1, 1, size=(1, 3, size, size)).astype(np.float32)


class ImageSource(Node):
    outputs = ("images",)

    def setup(self) -> None:
        self.count = 0
        self.every(0.05, self.send)

    def send(self) -> None:
        self.count += 1
        self.publish("images", pixels=seeded_images(self.count), count=self.count, capture_ns=time.time_ns())


class SlowQueueConsumer(Node):
    """A slow handler on a small Queue input: publishes the counts it handled, in order."""

    inputs = {"ticks": Queue(4)}
    outputs = ("handled",)

    def on_ticks(self, msg: Message) -> None:
        self.publish("handled", count=msg["count"])
        time.sleep(0.05)


@dataclass(frozen=True)
class ActionParams:
    shape: list[int] = dataclasses.field(default_factory=lambda: [2])
    dtype: str = "float32"
    value: float = 0.5


class ActionSender(Node):
    """Sends constant actions of the given shape and dtype every 20 ms."""

    outputs = ("action",)
    params = ActionParams

    def setup(self) -> None:
        self.every(0.02, self.send)

    def send(self) -> None:
        action = np.full(self.params.shape, self.params.value, dtype=self.params.dtype)
        self.publish("action", action=action, capture_ns=time.time_ns())


@dataclass(frozen=True)
class BurstParams:
    frames: int = 10  # within the publisher's high-water mark (16): nothing is dropped for being late
    frame_bytes: int = 4_000_000
    delay_s: float = 1.0


class BurstThenStop(Node):
    """After ``delay_s`` (subscribers connect), publishes ``frames`` large frames, then one ``end``
    message, and stops at once: what an env node does at the end of its last episode."""

    outputs = ("frames", "end")
    params = BurstParams

    def setup(self) -> None:
        self.every(self.params.delay_s, self.burst)

    def burst(self) -> None:
        payload = np.zeros(self.params.frame_bytes, dtype=np.uint8)
        for i in range(self.params.frames):
            self.publish("frames", index=i, payload=payload)
        self.publish("end", frames=self.params.frames)
        self.stop()


class MixedFrames(Node):
    """Cycles through a float32 channels-first image (wrong dtype and shape), a message without
    ``image`` (missing field) and a good uint8 (24, 32, 3) frame; each says its ``kind``."""

    outputs = ("frames",)

    def setup(self) -> None:
        self.sent = 0
        self.every(0.03, self.send)

    def send(self) -> None:
        kind = ("float", "missing", "good")[self.sent % 3]
        data: dict = {"kind": kind, "frame_index": self.sent}
        if kind == "float":
            data["image"] = np.zeros((3, 24, 32), np.float32)
        elif kind == "good":
            data["image"] = np.zeros((24, 32, 3), np.uint8)
        self.publish("frames", capture_ns=time.time_ns(), **data)
        self.sent += 1


FRAME_FIELDS = {"image": Array("uint8", ("H", "W", 3)), "frame_index": int}


class DeclaredFrames(Node):
    """A Queue input that declares its fields; publishes the kind of every message it handled."""

    inputs = {"frames": Queue(16, fields=FRAME_FIELDS)}
    outputs = ("handled",)

    def setup(self) -> None:
        self.kinds: list[str] = []

    def on_frames(self, msg: Message) -> None:
        self.kinds.append(msg["kind"])
        self.publish("handled", kind=msg["kind"], shape=list(msg["image"].shape))

    def status_fields(self) -> dict:
        return {"handled": len(self.kinds), "kinds": sorted(set(self.kinds))}


class DeclaredLatestFrames(DeclaredFrames):
    """The same on a Latest input (checked on the I/O thread)."""

    inputs = {"frames": Latest(fields=FRAME_FIELDS)}


class FailsOnce(Node):
    """Raises on the first tick, then relays every tick it handles."""

    inputs = {"ticks": Queue(64)}
    outputs = ("handled",)

    def setup(self) -> None:
        self.raised = False

    def on_ticks(self, msg: Message) -> None:
        if not self.raised:
            self.raised = True
            raise ValueError(f"tick {msg['count']} refused: the first one always is")
        self.publish("handled", count=msg["count"])


class RefusesSetup(Node):
    """A node whose setup fails the same way every time, and that says it should stay up."""

    inputs = {"ticks": Latest()}
    services = ("ping",)
    setup_failure = "stay_up"

    def setup(self) -> None:
        raise CheckpointError("model.pt: not a readable checkpoint (a test)")

    def on_ticks(self, msg: Message) -> None:
        raise AssertionError("a node whose setup failed must not handle messages")

    def serve_ping(self, msg: Message) -> dict:
        return {"pong": True}


class UnencodableStatus(Node):
    """Reports a status field no encoder can write: every status its I/O thread publishes raises."""

    outputs = ("ticks",)

    def status_fields(self) -> dict:
        return {"handle": object()}


class ShapeLiar(Node):
    """Sends a good (2,) action, then one of shape (3, 7) claiming seq 1 (a restarted publisher), in turn."""

    outputs = ("action",)

    def setup(self) -> None:
        self.every(0.02, self.send)

    def send(self) -> None:
        self.publish("action", action=np.zeros(2, np.float32))
        self._runner.send_raw(
            messages.encode(f"{self.name}/action", {"action": np.zeros((3, 7), np.float32)}, seq=1,
                            capture_ns=time.time_ns(), sender=self.name))
