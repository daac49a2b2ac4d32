"""Graph files: which nodes run, with what parameters, wired how, on which host.

    name: demo
    nodes:
      - id: camera
        class: edgerun.nodes.camera:Camera
        params: {fps: 30}
      - id: monitor
        class: edgerun.nodes.monitor:FrameMonitor
        inputs: {frames: camera/frames}      # input: node/output (as in dora-rs)
        process: main                        # optional: share a process (inproc://, one CUDA context)
        host: robot                          # optional: one of `hosts`
        restart: {policy: on-failure, max_restarts: 5, backoff_s: 0.5}
        shm: {slots: 8}                      # optional: overrides the graph's `shm` field by field
    shm: {enabled: true, threshold_bytes: 65536, slots: 4}   # optional: the defaults

:func:`load_graph` checks the whole file before anything starts and raises
:class:`GraphError` naming the file and the field at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import msgspec

from edgerun.errors import GraphError, cut
from edgerun.runtime.node import STATUS_OUTPUT, Node
from edgerun.runtime.params import ParamError, build_params
from edgerun.runtime.runner import import_node_class
from edgerun.runtime.yaml_files import YamlError, load_yaml

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")


RestartPolicyName = Literal["never", "on-failure", "always"]


class RestartPolicy(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    policy: RestartPolicyName = "on-failure"
    max_restarts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0


class SharedMemorySpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``shm:`` of a graph or of one node (a node's fields override the graph's, field by field)."""

    enabled: bool | None = None
    threshold_bytes: int | None = None
    slots: int | None = None

    def over(self, base: SharedMemorySpec) -> SharedMemorySpec:
        return SharedMemorySpec(*(mine if mine is not None else theirs for mine, theirs in
                                  zip(msgspec.structs.astuple(self), msgspec.structs.astuple(base))))


SHM_DEFAULTS = SharedMemorySpec(enabled=True, threshold_bytes=64 * 1024, slots=4)
"""Arrays of 64 KiB and up through shared memory, 4 slots per output: a 1080p RGB stream holds
4 x 6 MiB, a 4K one 4 x 24 MiB (docs/runtime.md)."""
SHM_MAX_SLOTS = 64


class NodeSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, rename={"class_": "class"}):
    id: str
    class_: str
    params: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    process: str | None = None
    host: str | None = None
    restart: RestartPolicy = RestartPolicy()
    shm: SharedMemorySpec = SharedMemorySpec()


class HostSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    address: str


class GraphSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    nodes: list[NodeSpec]
    name: str | None = None
    hosts: dict[str, HostSpec] = {}
    keys: str | None = None  # CURVE key directory, relative to the graph file
    tcp_base_port: int = 47100
    heartbeat_timeout_s: float = 10.0
    status_period_s: float = 1.0
    stop_with: list[str] = []  # nodes whose clean exit ends the whole graph (e.g. an env after N episodes)
    shm: SharedMemorySpec = SharedMemorySpec()


@dataclass(frozen=True)
class GraphNode:
    spec: NodeSpec
    cls: type[Node]

    @property
    def name(self) -> str:
        return self.spec.id

    @property
    def process(self) -> str:
        return self.spec.process or self.spec.id

    def shm(self, graph: GraphSpec) -> SharedMemorySpec:
        """This node's shared-memory settings: its own, then the graph's, then the defaults."""
        return self.spec.shm.over(graph.shm).over(SHM_DEFAULTS)


@dataclass(frozen=True)
class Graph:
    name: str
    path: Path
    spec: GraphSpec
    nodes: dict[str, GraphNode]

    @property
    def keys_dir(self) -> Path | None:
        return (self.path.parent / self.spec.keys).resolve() if self.spec.keys else None

    def processes(self) -> dict[str, list[GraphNode]]:
        groups: dict[str, list[GraphNode]] = {}
        for node in self.nodes.values():
            groups.setdefault(node.process, []).append(node)
        return groups


def _field_path(message: str) -> tuple[str, str]:
    if " - at `$" in message:
        text, path = message.rsplit(" - at `$", 1)
        return path.rstrip("`").lstrip("."), text
    return "", message


def parse_graph(data: Any, path: Path) -> Graph:
    where = str(path)

    def fail(field: str, problem: str) -> GraphError:
        return GraphError(cut(f"{where}: {field}: {problem}" if field else f"{where}: {problem}", 1000))

    if not isinstance(data, dict):
        raise fail("", "expected a mapping with a 'nodes' list")
    try:
        spec = msgspec.convert(data, GraphSpec, strict=True)
    except msgspec.ValidationError as exc:
        field, problem = _field_path(str(exc))
        if field.endswith("restart.policy"):
            problem += f" (expected one of: {', '.join(get_args(RestartPolicyName))})"
        raise fail(field, problem) from None
    name = spec.name or path.stem
    if not NAME.match(name):
        raise fail("name", f"{cut(repr(name), 60)} must be letters, digits, '-' or '_' (at most 48)")
    for host in spec.hosts:
        if not NAME.match(host):
            raise fail(f"hosts.{host}", "host names must be letters, digits, '-' or '_' (at most 48)")
    if not spec.nodes:
        raise fail("nodes", "a graph needs at least one node")

    def check_shm(shm: SharedMemorySpec, field: str) -> None:
        if shm.threshold_bytes is not None and shm.threshold_bytes < 1:
            raise fail(f"{field}.threshold_bytes", f"must be at least 1, got {shm.threshold_bytes}")
        if shm.slots is not None and not 1 <= shm.slots <= SHM_MAX_SLOTS:
            raise fail(f"{field}.slots", f"must be 1..{SHM_MAX_SLOTS}, got {shm.slots}")

    check_shm(spec.shm, "shm")

    nodes: dict[str, GraphNode] = {}
    for i, node in enumerate(spec.nodes):
        at = f"nodes[{i}]"
        if not NAME.match(node.id):
            raise fail(f"{at}.id", f"{cut(repr(node.id), 60)} must be letters, digits, '-' or '_' (at most 48)")
        if node.id in nodes:
            raise fail(f"{at}.id", f"duplicate node id '{node.id}'")
        try:
            cls = import_node_class(node.class_)
        except (ValueError, TypeError) as exc:
            raise fail(f"{at} ({node.id}).class", str(exc)) from None
        try:
            build_params(cls.params, node.params, where=f"{at} ({node.id}).params")
        except ParamError as exc:
            raise fail("", str(exc)) from None
        if node.host is not None and node.host not in spec.hosts:
            raise fail(f"{at} ({node.id}).host", f"unknown host '{node.host}' (hosts: {', '.join(spec.hosts) or 'none'})")
        if node.restart.max_restarts < 0 or node.restart.backoff_s < 0:
            raise fail(f"{at} ({node.id}).restart", "max_restarts and backoff_s must not be negative")
        check_shm(node.shm, f"{at} ({node.id}).shm")
        nodes[node.id] = GraphNode(node, cls)

    for i, node in enumerate(spec.nodes):
        at = f"nodes[{i}] ({node.id}).inputs"
        cls = nodes[node.id].cls
        for input_name, source in node.inputs.items():
            if input_name not in cls.inputs:
                raise fail(
                    f"{at}.{input_name}",
                    f"{node.class_} has no input '{input_name}' (inputs: {', '.join(cls.inputs) or 'none'})",
                )
            source_node, sep, output = source.partition("/")
            if not sep:
                raise fail(f"{at}.{input_name}", f"{cut(repr(source), 60)} must be 'node/output'")
            if source_node not in nodes:
                raise fail(
                    f"{at}.{input_name}", f"unknown node '{source_node}' (nodes: {', '.join(nodes)})"
                )
            outputs = nodes[source_node].cls.outputs
            if output not in outputs and output != STATUS_OUTPUT:
                raise fail(
                    f"{at}.{input_name}",
                    f"node '{source_node}' has no output '{output}' (outputs: {', '.join(outputs) or 'none'})",
                )

    for i, node_name in enumerate(spec.stop_with):
        if node_name not in nodes:
            raise fail(f"stop_with[{i}]", f"unknown node '{node_name}' (nodes: {', '.join(nodes)})")
    graph = Graph(name=name, path=path, spec=spec, nodes=nodes)
    for process, members in graph.processes().items():
        hosts = {m.spec.host for m in members}
        if len(hosts) > 1:
            raise fail("nodes", f"process '{process}' spans hosts {sorted(map(str, hosts))}; one process runs on one host")
    if len({n.spec.host for n in nodes.values()}) > 1 and graph.keys_dir is None:
        raise fail("keys", "a graph on several hosts needs a CURVE key directory (`edgerun keys generate DIR`)")
    return graph


def load_graph(path: str | Path) -> Graph:
    """The checked graph in ``path``; :class:`GraphError` (one line: the file, the field, why) for a
    file that cannot be read, is not YAML, is outside the YAML bounds or describes no valid graph."""
    path = Path(path)
    try:
        data = load_yaml(path)
    except YamlError as exc:
        raise GraphError(str(exc)) from None
    return parse_graph(data, path)
