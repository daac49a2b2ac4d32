"""What the launcher tells a process: which nodes it runs and where each socket binds or connects.

Everything here is plain data (msgspec Structs), written as JSON into the run
directory, so a process started by the launcher, by ``edgerun run`` or by a test is
wired the same way.
"""

from __future__ import annotations

from typing import Any

import msgspec

from edgerun.runtime.messages import Limits


class Link(msgspec.Struct, frozen=True):
    """A place to connect: ``curve_host`` names the server's host key when tcp:// is CURVE-secured."""

    endpoint: str
    curve_host: str | None = None


class InputWiring(msgspec.Struct, frozen=True):
    name: str
    topic: str  # "node/output"
    link: Link
    shm_column: int | None = None  # this input's reader column in the producer's slot pool (ipc:// only)


class SharedMemory(msgspec.Struct, frozen=True):
    """A node's shared-memory outputs: arrays of ``threshold_bytes`` or more go through a pool of
    ``slots`` per output; ``readers`` counts each output's registered reader columns."""

    threshold_bytes: int
    slots: int
    readers: dict[str, int] = {}


class NodeWiring(msgspec.Struct, frozen=True):
    name: str
    cls: str  # "module:Class"
    params: dict[str, Any] = {}
    pub_binds: tuple[str, ...] = ()
    ctl_binds: tuple[str, ...] = ()
    srv_binds: tuple[str, ...] = ()
    inputs: tuple[InputWiring, ...] = ()
    services: dict[str, Link] = {}  # node name -> its service endpoint, as seen from here
    status_period_s: float = 1.0
    restarts: int = 0
    segment_dir: str | None = None  # the run's shared-memory directory (this host)
    shm: SharedMemory | None = None  # None: every output travels inline over ZeroMQ


class ProcessWiring(msgspec.Struct, frozen=True):
    name: str
    run: str
    host: str | None = None
    keys_dir: str | None = None
    stop_timeout_s: float = 3.0
    limits: Limits = Limits()
    nodes: tuple[NodeWiring, ...] = ()


def dump(wiring: ProcessWiring) -> bytes:
    return msgspec.json.encode(wiring)


def load(data: bytes) -> ProcessWiring:
    return msgspec.json.decode(data, type=ProcessWiring)
