"""Shared memory for big arrays between processes on one host: only a descriptor crosses ZeroMQ.

A publisher owns, per output, a pool of **slots** (one file each, mode 0600, in the run's private
segment directory) and one **control** file. A message's arrays at or above the threshold are
written into a free slot; its header names the slot file, the slot's generation and where each
array lies in it (``messages.Shared``). Subscribers map the slot read-only and get numpy views onto
it: no copy on either side when the publisher wrote the array in place (:meth:`SlotPool.loan`), one
copy (into the slot) otherwise.

The control file holds, as little-endian uint64:

* ``generation[slot]``: odd while the publisher writes the slot, a new even value once written;
* ``owed[slot, reader]``: the sequence number of the message in that slot sent to each of the
  output's *registered* readers (graph inputs on this host, each given a column by the launcher);
* ``held[slot, reader]``: the sequence number a reader holds a view of (0: none), written by it;
* ``last_received[reader]``: the newest sequence number the reader took in, inline or in a slot
  (``NONE`` when it owes nothing: never started, or dead and released by the launcher).

A slot is free when no registered reader holds it (``held == owed``) or may still receive it
(``owed > last_received``: the descriptor is in flight). The publisher never waits: with no free
slot, the message travels inline over ZeroMQ as before (counted on the output's status). A
reader's hold lasts as long as any array of the message is alive (a finalizer on their common
base), so a ``Latest`` input that is handed a newer frame releases the older one at once. A reader
holds at most its fair share of the pool (``slots // readers``, at least one): beyond that it copies
the arrays out and holds nothing, so one slow ``Queue`` input cannot take every slot and push every
other reader of the output back to inline frames.

Readers without a column (``edgerun topic echo``, ``record``) take no hold: they copy the arrays
and check that the generation did not change meanwhile. A registered reader checks it once it
holds the slot. Either way a message whose slot was rewritten is dropped as ``overwritten``,
never delivered torn.

A descriptor is untrusted input like any frame: the slot must be one of the sender's own files
for that output (by name) in this run's directory, a regular file of this user with mode 0600,
and every array must lie inside it with an allowed dtype; anything else is :class:`Rejected`.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import stat
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgerun.runtime.messages import ITEMSIZE, Limits, Rejected, Shared, SharedArray

MAGIC = 0x314D485345474445  # b"EDGESHM1" little-endian
NONE = (1 << 64) - 1
"""``last_received`` of a reader that owes nothing."""
ALIGN = 64  # array offsets in a slot: cache-line (and SIMD) aligned
GROW = 1 << 20  # slot files grow in whole MiB, so a slightly bigger frame does not remap every time
_HEAD = 4  # magic, slots, readers, reserved

SEGMENT_NAME = re.compile(r"^(?P<node>[A-Za-z][A-Za-z0-9_-]{0,47})\.(?P<output>[A-Za-z_][A-Za-z0-9_]{0,63})"
                          r"\.(?P<epoch>[0-9]{1,10})\.(?P<slot>[0-9]{1,4})\.(?P<version>[0-9]{1,9})$")


class Control:
    """A mapped control file of ``slots`` x ``readers``, read and written word by word through a
    memoryview (a Python int per access: several times cheaper than numpy scalars on this path).
    Words are native uint64: little-endian on every platform edgerun targets."""

    def __init__(self, buffer: mmap.mmap | memoryview):
        if len(buffer) % 8:
            raise Rejected("shm_segment", f"control file of {len(buffer)} bytes is not whole words")
        self.words = memoryview(buffer).cast("Q")
        w = self.words
        if len(w) < _HEAD or w[0] != MAGIC:
            raise Rejected("shm_segment", "control file has no edgerun header")
        self.slots, self.readers = s, r = w[1], w[2]
        if not 1 <= s <= 4096 or r > 4096 or self.size_words(s, r) != len(w):
            raise Rejected("shm_segment", f"control file of {len(w)} words does not fit {s} x {r}")
        self._owed, self._held, self._last = _HEAD + s, _HEAD + s + s * r, _HEAD + s + 2 * s * r

    @staticmethod
    def size_words(slots: int, readers: int) -> int:
        return _HEAD + slots * (1 + 2 * readers) + readers

    def generation(self, slot: int) -> int:
        return self.words[_HEAD + slot]

    def set_generation(self, slot: int, value: int) -> None:
        self.words[_HEAD + slot] = value

    def set_owed(self, slot: int, seq: int) -> None:
        """``seq`` went out in ``slot`` to every registered reader."""
        start = self._owed + slot * self.readers
        for i in range(start, start + self.readers):
            self.words[i] = seq

    def held(self, slot: int, reader: int) -> int:
        return self.words[self._held + slot * self.readers + reader]

    def set_held(self, slot: int, reader: int, seq: int) -> None:
        self.words[self._held + slot * self.readers + reader] = seq

    def set_last_received(self, reader: int, seq: int) -> None:
        self.words[self._last + reader] = seq

    def busy(self, slot: int) -> bool:
        """Does a registered reader hold ``slot``, or may it still receive it?"""
        w, r = self.words, self.readers
        owed, held = self._owed + slot * r, self._held + slot * r
        for reader in range(r):
            seq = w[owed + reader]
            if seq and (w[held + reader] == seq or seq > w[self._last + reader]):
                return True
        return False

    def release(self, reader: int) -> None:
        """Forget every hold of ``reader`` and what it may still receive (it is gone)."""
        for slot in range(self.slots):
            self.set_held(slot, reader, 0)
        self.set_last_received(reader, NONE)


def control_name(node: str, output: str, epoch: int | str) -> str:
    return f"{node}.{output}.{epoch}.ctl"


def _create(path: Path, size: int) -> mmap.mmap:
    """A new private file of ``size`` bytes, mapped read-write (never follows a planted link)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _open_checked(path: Path, writable: bool, max_bytes: int) -> mmap.mmap:
    """Map an existing segment only if it is this user's private regular file; ``Rejected`` otherwise."""
    try:
        fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise Rejected("shm_segment", f"cannot open segment '{path.name}': {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise Rejected("shm_segment", f"segment '{path.name}' is not a private file of this user")
        if not 0 < info.st_size <= max_bytes:
            raise Rejected("shm_segment", f"segment '{path.name}' has {info.st_size} bytes")
        access = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        return mmap.mmap(fd, info.st_size, mmap.MAP_SHARED, access)
    finally:
        os.close(fd)


def remove_segments(directory: Path, prefix: str = "") -> None:
    """Unlink every segment of this run (or those whose name starts with ``prefix``)."""
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.startswith(prefix) and path.is_file():
                path.unlink(missing_ok=True)


# --- publisher ------------------------------------------------------------------------
@dataclass
class _Slot:
    index: int
    version: int = 0
    path: Path | None = None
    buffer: mmap.mmap | None = None
    address: int = 0  # of buffer's first byte, to recognise arrays loaned from it

    @property
    def capacity(self) -> int:
        return len(self.buffer) if self.buffer is not None else 0


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


class SlotPool:
    """One output's slots and control file, owned by the publishing node (its node thread only)."""

    def __init__(self, directory: Path, node: str, output: str, slots: int, readers: int, limits: Limits = Limits()):
        if slots < 1:
            raise ValueError(f"output '{output}': shared-memory slots must be at least 1, got {slots}")
        self.directory, self.node, self.output = directory, node, output
        self.limits = limits
        self.epoch = os.getpid()
        self.prefix = f"{node}.{output}."
        remove_segments(directory, self.prefix)  # a killed predecessor's files
        path = directory / control_name(node, output, self.epoch)
        buffer = _create(path, Control.size_words(slots, readers) * 8)
        words = memoryview(buffer).cast("Q")
        words[0], words[1], words[2] = MAGIC, slots, readers
        self.control = Control(buffer)
        for reader in range(readers):
            self.control.set_last_received(reader, NONE)
        self._slots = [_Slot(i) for i in range(slots)]
        self._next = 0
        self._loan: tuple[_Slot, int] | None = None  # slot, bytes
        self.fallbacks = 0  # messages sent inline because no slot was free
        self.placed = 0  # messages sent through a slot

    # --- slots -------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.control.slots

    def in_use(self) -> int:
        return sum(self.control.busy(k) for k in range(self.slots)) + (self._loan is not None)

    def _take(self) -> _Slot | None:
        loaned = self._loan[0].index if self._loan is not None else -1
        n = self.slots
        for step in range(n):
            k = (self._next + step) % n
            if k != loaned and not self.control.busy(k):
                self._next = (k + 1) % n
                return self._slots[k]
        return None

    def _fit(self, slot: _Slot, nbytes: int) -> None:
        """Give ``slot`` a file of at least ``nbytes`` (a new version when it must grow)."""
        if slot.capacity >= nbytes:
            return
        if nbytes > self.limits.max_message_bytes:
            raise ValueError(f"output '{self.output}': {nbytes} bytes of arrays exceed the message limit "
                             f"of {self.limits.max_message_bytes}")
        if slot.path is not None:
            slot.path.unlink(missing_ok=True)  # readers' mappings stay valid until they let go
        slot.version += 1
        slot.path = self.directory / f"{self.prefix}{self.epoch}.{slot.index}.{slot.version}"
        slot.buffer = _create(slot.path, max(GROW, -(-nbytes // GROW) * GROW))
        slot.address = _address(np.frombuffer(slot.buffer, dtype=np.uint8, count=1))

    # --- what the runner calls ------------------------------------------------------------
    def loan(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
        """A writable array in a free slot, for a node to fill and publish without a copy; None when
        every slot is busy. One loan per output at a time: a new one returns the previous slot."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        self._loan = None
        slot = self._take()
        if slot is None:
            return None
        self._fit(slot, nbytes)
        self._loan = (slot, nbytes)
        return np.frombuffer(slot.buffer, dtype=dtype, count=math.prod(shape)).reshape(shape)

    def without_loans(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """``data`` with copies of the arrays that lie in the loaned slot: for a path that sends them
        inline (ZeroMQ may still read them after the slot is reused)."""
        if self._loan is None:
            return data
        return {k: np.array(v) if isinstance(v, np.ndarray) and self._loaned_offset(v) is not None else v
                for k, v in data.items()}

    def end_loan(self) -> None:
        """The message went out (or nowhere): the loaned slot is the pool's again."""
        self._loan = None

    def _loaned_offset(self, array: np.ndarray) -> int | None:
        """Offset of ``array`` in the loaned slot, when it is a C-contiguous view of it."""
        if self._loan is None or not array.flags.c_contiguous:
            return None
        slot, _ = self._loan
        offset = _address(array) - slot.address
        return offset if 0 <= offset and offset + array.nbytes <= slot.capacity else None

    def place(self, seq: int, arrays: Mapping[str, np.ndarray]) -> Shared | None:
        """Write ``arrays`` (little-endian, allowed dtypes) into a slot for message ``seq``; the
        descriptor, or None when no slot is free (the message then goes inline)."""
        in_place = {name: self._loaned_offset(a) for name, a in arrays.items()}
        if self._loan is not None and any(offset is not None for offset in in_place.values()):
            slot = self._loan[0]
        else:
            slot = self._take()
            in_place = dict.fromkeys(arrays)
        self._loan = None
        if slot is None:
            self.fallbacks += 1
            return None
        offsets, end = _arrange(arrays, in_place)
        if end > slot.capacity and any(o is not None for o in in_place.values()):
            in_place = dict.fromkeys(arrays)  # the slot must grow: its new file gets copies of all
            offsets, end = _arrange(arrays, in_place)
        self._fit(slot, end)
        k = slot.index
        generation = self.control.generation(k) + 2
        self.control.set_generation(k, generation - 1)  # odd: being written
        for name, array in arrays.items():
            if in_place[name] is None and array.nbytes:
                target = np.frombuffer(slot.buffer, dtype=np.uint8, count=array.nbytes, offset=offsets[name])
                np.copyto(target, array.reshape(-1).view(np.uint8))
        self.control.set_generation(k, generation)
        self.control.set_owed(k, seq)
        self.placed += 1
        return Shared(
            segment=slot.path.name,
            generation=generation,
            arrays=tuple(SharedArray(n, a.dtype.str, tuple(a.shape), offsets[n]) for n, a in arrays.items()),
        )

    def close(self) -> None:
        """Unlink this output's files; mappings (ours, readers') stay valid until dropped."""
        remove_segments(self.directory, self.prefix)


def _arrange(arrays: Mapping[str, np.ndarray], in_place: Mapping[str, int | None]) -> tuple[dict[str, int], int]:
    """Offsets in a slot: arrays already there keep theirs, the others follow, aligned; and the end."""
    end = max((o + arrays[n].nbytes for n, o in in_place.items() if o is not None), default=0)
    offsets = {}
    for name, array in arrays.items():
        if in_place[name] is None:
            offsets[name] = end = -(-end // ALIGN) * ALIGN
            end += array.nbytes
        else:
            offsets[name] = in_place[name]
    return offsets, end


# --- subscriber -----------------------------------------------------------------------
class SharedReader:
    """Resolves descriptors for one input (``column``: its registered reader index) or for a tool
    (``column=None``: copies, no hold). Mappings are cached; a publisher's new file replaces its old."""

    MAX_MAPPINGS = 64

    def __init__(self, directory: Path, column: int | None = None):
        self.directory = directory
        self.column = column
        self._slots: dict[str, mmap.mmap] = {}
        self._controls: dict[str, Control] = {}
        self._names: dict[str, tuple[str, str, str, int]] = {}  # segment -> node, output, epoch, slot
        self._lock = threading.Lock()  # finalizers run on whichever thread drops a message last
        self.torn = 0  # holds whose slot changed anyway: must stay 0 (a test checks it)
        self.resolved = 0  # messages whose arrays came through a slot
        self.copied = 0  # of those, copied out because this reader held its share of the pool
        self.holding = 0  # slots this reader holds now
        self._current: Control | None = None  # the control file of the publisher's newest descriptor

    def _control(self, node: str, output: str, epoch: str, limits: Limits) -> Control:
        name = control_name(node, output, epoch)
        control = self._controls.get(name)
        if control is None:
            for old in [n for n in self._controls if n.startswith(f"{node}.{output}.")]:
                del self._controls[old]  # the publisher restarted
            control = Control(_open_checked(self.directory / name, writable=self.column is not None,
                                            max_bytes=limits.max_header_bytes * 64))
            self._controls[name] = control
        return control

    def _slot(self, name: str, limits: Limits) -> mmap.mmap:
        buffer = self._slots.get(name)
        if buffer is None:
            stem = name.rsplit(".", 1)[0]
            for old in [n for n in self._slots if n.rsplit(".", 1)[0] == stem]:
                del self._slots[old]  # the slot grew: its older file is gone
            if len(self._slots) >= self.MAX_MAPPINGS:
                del self._slots[next(iter(self._slots))]
            buffer = self._slots[name] = _open_checked(self.directory / name, writable=False,
                                                       max_bytes=limits.max_message_bytes)
        return buffer

    def resolve(self, shared: Shared, topic: str, sender: str, seq: int, limits: Limits) -> dict[str, np.ndarray]:
        """The message's shared arrays, read-only; ``Rejected`` for a descriptor that does not fit."""
        node_name, output, epoch, slot_index = self._parse(shared.segment, sender)
        if f"{node_name}/{output}" != topic or node_name != sender:
            raise Rejected("shm_segment", f"segment {shared.segment!r} is not one of '{topic}''s", sender)
        control = self._current = self._control(node_name, output, epoch, limits)
        if slot_index >= control.slots or shared.generation % 2 or not shared.generation:
            raise Rejected("shm_segment", f"slot {slot_index} generation {shared.generation} is not valid", sender)
        if self.column is not None and self.column >= control.readers:
            raise Rejected("shm_segment", f"reader column {self.column} is not in the control file", sender)
        buffer = self._slot(shared.segment, limits)
        extent, specs = _check_arrays(shared, len(buffer), limits, sender)
        self.resolved += 1
        column = self.column
        if column is None:
            return self._copy(control, slot_index, shared, buffer, specs, sender)
        with self._lock:
            share = max(1, control.slots // max(1, control.readers))
            hold = self.holding < share
            self.holding += hold
        if not hold:  # the slot stays owed to this reader (in flight) until the copy is done
            try:
                arrays = self._copy(control, slot_index, shared, buffer, specs, sender)
            finally:
                control.set_last_received(column, seq)
            self.copied += 1
            return arrays
        control.set_held(slot_index, column, seq)  # the hold first, then the check: see the module docstring
        control.set_last_received(column, seq)
        if control.generation(slot_index) != shared.generation:
            control.set_held(slot_index, column, 0)
            with self._lock:
                self.holding -= 1
            raise Rejected("overwritten", f"slot {slot_index} was rewritten before it was read", sender)
        whole = np.frombuffer(buffer, dtype=np.uint8, count=extent) if extent else np.empty(0, np.uint8)
        weakref.finalize(whole, self._release, control, slot_index, seq, shared.generation)
        return {name: _view(whole, spec) for name, spec in specs.items()}

    def received(self, seq: int) -> None:
        """The input took in message ``seq``, inline or not: every descriptor sent before it has
        arrived or was dropped on the way (a full queue at the publisher), so none is still in flight.
        Without this, slots owed to a reader that only gets inline frames (no free slot) would stay
        in flight for ever, and the output would never use shared memory again."""
        if self.column is not None and self._current is not None:
            self._current.set_last_received(self.column, seq)

    def _parse(self, segment: str, sender: str) -> tuple[str, str, str, int]:
        parsed = self._names.get(segment)
        if parsed is None:
            match = SEGMENT_NAME.match(segment)
            if match is None:
                raise Rejected("shm_segment", f"{segment!r} is not a segment name", sender)
            parsed = (match["node"], match["output"], match["epoch"], int(match["slot"]))
            if len(self._names) >= self.MAX_MAPPINGS:
                self._names.clear()
            self._names[segment] = parsed
        return parsed

    def _release(self, control: Control, slot_index: int, seq: int, generation: int) -> None:
        with self._lock:
            self.holding -= 1
            if control.generation(slot_index) != generation:
                self.torn += 1
            if control.held(slot_index, self.column) == seq:
                control.set_held(slot_index, self.column, 0)

    def _copy(self, control: Control, slot_index: int, shared: Shared, buffer: mmap.mmap,
              specs: dict[str, SharedArray], sender: str) -> dict[str, np.ndarray]:
        if control.generation(slot_index) != shared.generation:
            raise Rejected("overwritten", f"slot {slot_index} was rewritten before it was read", sender)
        whole = np.frombuffer(buffer, dtype=np.uint8)
        arrays = {name: _view(whole, spec).copy() for name, spec in specs.items()}
        if control.generation(slot_index) != shared.generation:
            raise Rejected("overwritten", f"slot {slot_index} was rewritten while it was copied", sender)
        for array in arrays.values():
            array.flags.writeable = False
        return arrays


def _check_arrays(shared: Shared, size: int, limits: Limits, sender: str) -> tuple[int, dict[str, SharedArray]]:
    """Every array's dtype, shape and bounds against the slot's size; the extent they cover."""
    specs: dict[str, SharedArray] = {}
    extent = 0
    for spec in shared.arrays:
        itemsize = ITEMSIZE.get(spec.dtype)
        if itemsize is None:
            raise Rejected("dtype", f"array '{spec.name}' has dtype {spec.dtype!r}, not on the allow-list", sender)
        if len(spec.shape) > limits.max_ndim or any(d < 0 for d in spec.shape):
            raise Rejected("shape", f"array '{spec.name}' has shape {spec.shape}", sender)
        nbytes = itemsize * math.prod(spec.shape)
        if spec.offset < 0 or spec.offset % itemsize or spec.offset + nbytes > size or nbytes > limits.max_message_bytes:
            raise Rejected("shm_bounds", f"array '{spec.name}' {spec.dtype} {spec.shape} at offset {spec.offset} "
                                         f"does not fit a slot of {size} bytes", sender)
        if spec.name in specs:
            raise Rejected("shape", f"field '{spec.name}' appears twice", sender)
        specs[spec.name] = spec
        extent = max(extent, spec.offset + nbytes)
    return extent, specs


def _view(whole: np.ndarray, spec: SharedArray) -> np.ndarray:
    nbytes = ITEMSIZE[spec.dtype] * math.prod(spec.shape)
    if not nbytes:
        return np.empty(spec.shape, dtype=spec.dtype)
    array = whole[spec.offset:spec.offset + nbytes].view(spec.dtype).reshape(spec.shape)
    array.flags.writeable = False
    return array


def release_reader(directory: Path, producer: str, output: str, column: int) -> None:
    """A registered reader died: drop its holds on ``producer/output`` so the publisher reuses them."""
    for path in directory.glob(f"{producer}.{output}.*.ctl"):
        try:
            control = Control(_open_checked(path, writable=True, max_bytes=1 << 30))
        except Rejected:
            continue
        if column < control.readers:
            control.release(column)
