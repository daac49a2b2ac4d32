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
