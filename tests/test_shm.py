"""Shared memory between processes: slots and their holds, overwrite detection, hostile descriptors,
private segments, and no segment left behind by a killed publisher or subscriber."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import RunningGraph, wait_for

from edgerun.runtime import messages, paths
from edgerun.runtime.messages import Limits, Rejected, Shared, SharedArray
from edgerun.runtime.paths import private_dir, segment_dir
from edgerun.runtime.shm import SharedReader, SlotPool, release_reader

LIMITS = Limits()
MiB = 1 << 20


@pytest.fixture
def segments(tmp_path: Path) -> Path:
    return private_dir(tmp_path / "shm")


def frame(value: int, n: int = MiB) -> np.ndarray:
    return np.full(n, value % 256, np.uint8)


# --- slots and holds --------------------------------------------------------------------
def test_reader_gets_a_read_only_view_of_the_slot_not_a_copy(segments):
    pool = SlotPool(segments, "cam", "frames", slots=2, readers=1)
    reader = SharedReader(segments, column=0)
    loaned = pool.loan((480, 640, 3), np.uint8)
    loaned[:] = 7
    shared = pool.place(1, {"image": loaned})
    image = reader.resolve(shared, "cam/frames", "cam", 1, LIMITS)["image"]
    assert image.shape == (480, 640, 3) and (image == 7).all()
    assert not image.flags.writeable
    loaned[0, 0, 0] = 9  # the publisher's memory and the reader's view are the same bytes
    assert image[0, 0, 0] == 9


def test_a_held_slot_is_not_reused_and_is_free_once_every_view_is_gone(segments):
    pool = SlotPool(segments, "cam", "frames", slots=2, readers=1)
    reader = SharedReader(segments, column=0)
    first = pool.place(1, {"f": frame(1)})
    held = reader.resolve(first, "cam/frames", "cam", 1, LIMITS)["f"]
    part = held[10:20]  # a view of the view keeps the hold too
    del held
    second = pool.place(2, {"f": frame(2)})
    assert second.segment != first.segment
    reader.resolve(second, "cam/frames", "cam", 2, LIMITS)  # received and dropped at once: released
    third = pool.place(3, {"f": frame(3)})
    assert third.segment == second.segment  # slot 0 still held: slot 1 again
    assert pool.place(4, {"f": frame(4)}) is None and pool.fallbacks == 1  # 0 held, 1 in flight: none free
    assert (part == 1).all()
    del part
    assert pool.place(5, {"f": frame(5)}).segment == first.segment


def test_a_descriptor_in_flight_keeps_its_slot_until_the_reader_has_moved_past_it(segments):
    pool = SlotPool(segments, "cam", "frames", slots=2, readers=1)
    reader = SharedReader(segments, column=0)
    reader.resolve(pool.place(1, {"f": frame(1)}), "cam/frames", "cam", 1, LIMITS)  # the reader is live
    in_flight = pool.place(2, {"f": frame(2)})
    pool.place(3, {"f": frame(3)})
    assert pool.place(4, {"f": frame(4)}) is None  # 2 and 3 not yet received
    arrays = reader.resolve(in_flight, "cam/frames", "cam", 2, LIMITS)
    assert (arrays["f"] == 2).all()  # not overwritten while it travelled


def test_an_inline_message_tells_the_publisher_that_missed_descriptors_are_no_longer_in_flight(segments):
    """A descriptor dropped on the way (the subscriber's queue full) must not keep its slot for ever: once
    the publisher is out of slots every frame goes inline, and the reader must still move past it."""
    pool = SlotPool(segments, "cam", "frames", slots=2, readers=1)
    reader = SharedReader(segments, column=0)
    reader.resolve(pool.place(1, {"f": frame(1)}), "cam/frames", "cam", 1, LIMITS)
    pool.place(2, {"f": frame(2)})  # both lost on the way
    pool.place(3, {"f": frame(3)})
    assert pool.place(4, {"f": frame(4)}) is None  # sent inline instead
    reader.received(4)  # what the runner does with every message it takes in
    assert pool.place(5, {"f": frame(5)}) is not None


def test_a_reader_that_died_is_released_by_the_launcher(segments):
    pool = SlotPool(segments, "cam", "frames", slots=1, readers=1)
    reader = SharedReader(segments, column=0)
    kept = reader.resolve(pool.place(1, {"f": frame(1)}), "cam/frames", "cam", 1, LIMITS)
    assert pool.place(2, {"f": frame(2)}) is None
    release_reader(segments, "cam", "frames", 0)  # what the launcher does when the reader's process ends
    assert pool.place(3, {"f": frame(3)}) is not None
    del kept


def test_a_reader_holds_only_its_share_of_the_pool_and_copies_beyond_it(segments):
    """A slow Queue reader keeping every frame must not take every slot from the output's other readers."""
    pool = SlotPool(segments, "cam", "frames", slots=4, readers=2)
    slow, fast = SharedReader(segments, column=0), SharedReader(segments, column=1)
    kept = []
    for seq in (1, 2, 3):
        shared = pool.place(seq, {"f": frame(seq)})
        kept.append(slow.resolve(shared, "cam/frames", "cam", seq, LIMITS)["f"])
        fast.resolve(shared, "cam/frames", "cam", seq, LIMITS)  # dropped at once
    assert slow.holding == 2 and slow.copied == 1  # 4 slots // 2 readers; the third frame was copied
    assert [int(k[0]) for k in kept] == [1, 2, 3] and not kept[2].flags.writeable
    shared = pool.place(4, {"f": frame(4)})
    assert shared is not None  # 2 slots free: the third frame's slot was let go once copied
    assert fast.resolve(shared, "cam/frames", "cam", 4, LIMITS)["f"].base is not None and fast.copied == 0
    del kept[:2]
    assert slow.holding == 0


def test_a_slot_rewritten_before_it_is_read_is_dropped_as_overwritten_never_delivered(segments):
    pool = SlotPool(segments, "cam", "frames", slots=1, readers=1)  # its reader has taken nothing yet
    tool, registered = SharedReader(segments), SharedReader(segments, column=0)
    stale = pool.place(1, {"f": frame(1)})
    pool.place(2, {"f": frame(2)})
    for reader in (tool, registered):
        with pytest.raises(Rejected) as caught:
            reader.resolve(stale, "cam/frames", "cam", 1, LIMITS)
        assert caught.value.reason == "overwritten"


def test_a_slot_grows_for_a_bigger_frame_and_readers_follow(segments):
    pool = SlotPool(segments, "cam", "frames", slots=1, readers=1)
    reader = SharedReader(segments, column=0)
    small = pool.place(1, {"f": frame(1, MiB)})
    reader.resolve(small, "cam/frames", "cam", 1, LIMITS)
    big = pool.place(2, {"f": frame(2, 3 * MiB), "g": np.arange(100_000, dtype=np.float32)})
    assert big.segment != small.segment and not (segments / small.segment).exists()
    arrays = reader.resolve(big, "cam/frames", "cam", 2, LIMITS)
    assert arrays["f"].nbytes == 3 * MiB and (arrays["g"] == np.arange(100_000, dtype=np.float32)).all()


# --- hostile descriptors -----------------------------------------------------------------
def _hostile(segments: Path, pool: SlotPool) -> dict[str, tuple[Shared, str]]:
    good = pool.place(1, {"f": frame(1)})
    link = segments / f"cam.frames.{pool.epoch}.1.9"
    link.symlink_to(segments / good.segment)
    loose = segments / f"cam.frames.{pool.epoch}.1.5"
    loose.write_bytes(b"x" * 4096)
    loose.chmod(0o644)
    spec = good.arrays[0]

    def with_array(**changes) -> Shared:
        fields = {"name": spec.name, "dtype": spec.dtype, "shape": spec.shape, "offset": spec.offset, **changes}
        return Shared(good.segment, good.generation, (SharedArray(**fields),))

    return {
        "another node's segment": (Shared(good.segment.replace("cam.", "arm.", 1), good.generation, good.arrays), "shm_segment"),
        "a path outside the directory": (Shared("../../etc/passwd", good.generation, good.arrays), "shm_segment"),
        "a planted link": (Shared(link.name, good.generation, good.arrays), "shm_segment"),
        "a file readable by others": (Shared(loose.name, good.generation, good.arrays), "shm_segment"),
        "a slot that does not exist": (Shared(f"cam.frames.{pool.epoch}.3.1", good.generation, good.arrays), "shm_segment"),
        "an odd generation": (Shared(good.segment, good.generation + 1, good.arrays), "shm_segment"),
        "an offset past the end": (with_array(offset=MiB), "shm_bounds"),
        "a negative offset": (with_array(offset=-64), "shm_bounds"),
        "a misaligned offset": (with_array(dtype="<f4", shape=(1000,), offset=2), "shm_bounds"),
        "a shape larger than the slot": (with_array(shape=(1 << 40,)), "shm_bounds"),
        "a negative dimension": (with_array(shape=(-1, 4)), "shape"),
        "an object dtype": (with_array(dtype="|O"), "dtype"),
    }


def test_hostile_descriptors_are_refused_with_a_reason(segments):
    pool = SlotPool(segments, "cam", "frames", slots=2, readers=1)
    reader = SharedReader(segments, column=0)
    for what, (shared, reason) in _hostile(segments, pool).items():
        with pytest.raises(Rejected) as caught:
            reader.resolve(shared, "cam/frames", "cam", 1, LIMITS)
        assert caught.value.reason == reason, what
    assert (reader.resolve(pool.place(2, {"f": frame(2)}), "cam/frames", "cam", 2, LIMITS)["f"] == 2).all()


def test_a_message_naming_a_slot_is_refused_by_a_receiver_without_shared_memory(segments):
    pool = SlotPool(segments, "cam", "frames", slots=1, readers=0)
    frames = messages.encode("cam/frames", {}, seq=1, capture_ns=time.time_ns(), sender="cam",
                             shared=pool.place(1, {"f": frame(1)}))
    with pytest.raises(Rejected) as caught:
        messages.decode(frames)
    assert caught.value.reason == "shm_unexpected"


@pytest.mark.skipif(os.getuid() != 0, reason="switching to a second user needs root")
def test_another_user_cannot_map_a_segment(segments):
    pool = SlotPool(segments, "cam", "frames", slots=1, readers=0)
    path = segments / pool.place(1, {"f": frame(1)}).segment
    assert path.stat().st_mode & 0o777 == 0o600
    for target in (path, path.parent / next(p.name for p in segments.iterdir() if p.suffix == ".ctl")):
        pid = os.fork()
        if pid == 0:  # the child becomes 'nobody' and tries to open the file
            code = 3
            try:
                os.setgid(65534)
                os.setuid(65534)
                try:
                    os.open(target, os.O_RDONLY)
                    code = 1
                except PermissionError:
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, f"uid 65534 could open {target.name}"


# --- real processes ----------------------------------------------------------------------
CHECKED_GRAPH = """
name: {name}
nodes:
  - {{id: camera, class: "shm_fixture_nodes:ChecksumFrames", params: {{size_bytes: 1048576, period_s: 0.002}}}}
  - {{id: latest, class: "shm_fixture_nodes:LatestChecker", inputs: {{frames: camera/frames}}, params: {{hold_s: 0.05}}}}
  - id: queue
    class: "shm_fixture_nodes:QueueChecker"
    inputs: {{frames: camera/frames}}
    params: {{hold_s: 0.03}}
    restart: {{policy: {queue_restart}}}
"""


def test_slow_readers_under_a_fast_publisher_only_ever_accept_intact_frames(launch):
    """1 MiB frames at up to 500 Hz into a slow Latest and a slow Queue reader, each of which checks
    every frame it accepts when it gets it and again after holding it, until each accepted 100."""
    graph = launch(CHECKED_GRAPH.format(name="checked", queue_restart="on-failure")).wait_running()
    for node in ("latest", "queue"):
        graph.status(node, where=lambda s: s["details"]["accepted"] > 100, timeout_s=30)
    camera = graph.status("camera")
    assert camera["outputs"]["frames"]["transport"] == "shm", camera
    assert 0 <= camera["outputs"]["frames"]["shm_in_use"] <= camera["outputs"]["frames"]["shm_slots"] == 4
    for node in ("latest", "queue"):
        status = graph.status(node)
        details, frames = status["details"], status["inputs"]["frames"]
        assert frames["transport"] == "shm" and frames["torn"] == 0, json.dumps([node, status, camera, graph.status("queue" if node == "latest" else "latest")])
        assert details["bad"] == 0 and details["changed"] == 0, details
        assert details["accepted"] > 100, details  # 20-30 Hz for 10 s
    # the Queue reader keeps 5 frames (4 queued, 1 in hand) but holds only its share of the 4 slots (2):
    # it copies the rest out, or found no free slot (an inline frame), and the Latest reader still got slots
    copied = graph.status("queue")["inputs"]["frames"]["shm_copied"]
    assert copied + camera["outputs"]["frames"]["shm_fallbacks"] > 0, camera


def test_killed_publisher_and_subscriber_leave_no_segment_once_the_graph_exits(launch, runtime_dir):
    graph = launch(CHECKED_GRAPH.format(name="killed", queue_restart="never")).wait_running()
    directory = segment_dir(runtime_dir / "edgerun" / "killed")
    wait_for(lambda: directory.is_dir() and any(p.name.startswith("camera.frames.") and p.suffix != ".ctl"
                                                for p in directory.iterdir()), what="a slot file")
    queue_pid = graph.status("queue")["pid"]
    os.kill(queue_pid, signal.SIGKILL)
    wait_for(lambda: "process 'queue' was killed by SIGKILL" in graph.log, what="the launcher to see the reader die")
    # its holds (its share of the pool: 2) are gone with it: only the Latest reader's remain
    wait_for(lambda: graph.status("camera")["outputs"]["frames"]["shm_in_use"] < 4, what="slots freed")
    camera_pid = graph.status("camera")["pid"]
    os.kill(camera_pid, signal.SIGKILL)
    wait_for(lambda: graph.status("camera")["pid"] != camera_pid, timeout_s=15, what="the publisher's restart")
    names = {p.name for p in directory.iterdir()}
    assert not any(f".{camera_pid}." in name for name in names), names  # the restarted publisher removed them
    assert graph.status("latest", where=lambda s: s["details"]["accepted"] > 0)["details"]["bad"] == 0
    assert graph.stop() == 1  # the queue reader stayed dead ('never'): the run ends as failed
    assert not directory.exists() or not any(directory.iterdir())


def test_runs_of_one_name_under_two_runtime_directories_never_share_a_segment_directory(tmp_path, monkeypatch):
    """Where the run directory is on a disk, segments go to /dev/shm: keyed by the name alone, a run's
    cleanup would delete the live segments of a same-named run under another XDG_RUNTIME_DIR."""
    monkeypatch.setattr(paths, "_filesystem", lambda path: "ext4")  # on a disk, whatever this machine's /tmp is
    first, second = (segment_dir(tmp_path / root / "edgerun" / "faults") for root in ("a", "b"))
    assert first != second
    assert segment_dir(tmp_path / "a" / "edgerun" / "faults") == first  # the same run finds it again


def test_in_one_process_and_to_tools_the_arrays_are_the_same(tmp_path):
    """inproc:// peers get the arrays inline, tools copies out of the slot: both equal what was sent."""
    with RunningGraph(tmp_path, """
    name: mixed
    nodes:
      - {id: camera, class: "shm_fixture_nodes:ChecksumFrames", params: {size_bytes: 262144, period_s: 0.02}, process: one}
      - {id: near, class: "shm_fixture_nodes:LatestChecker", inputs: {frames: camera/frames}, params: {hold_s: 0.0}, process: one}
    """) as running:
        import zlib

        got = running.collect("camera/frames", 5)
        assert all(zlib.crc32(m["frame"]) == m["crc"] for m in got)
        near = wait_for(lambda: (s := running.status("near"))["details"]["accepted"] > 5 and s, what="inproc frames")
        assert near["inputs"]["frames"]["transport"] == "inproc" and near["details"]["bad"] == 0
