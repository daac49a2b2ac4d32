"""Turn a validated graph into sockets: where each node binds and where each input connects.

A node binds its outputs on inproc:// (for nodes in its process: no copies), on
ipc:// in the run's private directory (other processes on this host, and the CLI
tools; big arrays in shared memory, see :mod:`edgerun.runtime.shm`) and, when the graph
spans hosts, on a CURVE-secured tcp:// port. Each input connects over the closest of
these; an ipc:// input of a shared-memory output gets a reader column in its pool.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from edgerun.runtime.graph import Graph, GraphNode
from edgerun.runtime.paths import ipc_endpoint, segment_dir
from edgerun.runtime.views import View, topic_views, views_of
from edgerun.runtime.wiring import InputWiring, Link, NodeWiring, ProcessWiring, SharedMemory

RUN_STATE = "run.json"


class Endpoints(msgspec.Struct, frozen=True):
    pub: tuple[str, ...]
    ctl: tuple[str, ...]
    srv: tuple[str, ...]


def effective_host(graph: Graph, node: GraphNode) -> str | None:
    """A node without ``host`` runs on the graph's first host (or the only one)."""
    return node.spec.host or next(iter(graph.spec.hosts), None)


def spans_hosts(graph: Graph) -> bool:
    return len({effective_host(graph, n) for n in graph.nodes.values()}) > 1


def node_endpoints(graph: Graph, node: GraphNode, directory: Path, index: int) -> Endpoints:
    inproc = f"inproc://edgerun/{graph.name}/{node.name}"
    pub = [f"{inproc}/pub", ipc_endpoint(directory, f"{node.name}.pub")]
    srv = [f"{inproc}/srv", ipc_endpoint(directory, f"{node.name}.srv")]
    if spans_hosts(graph):
        address = graph.spec.hosts[effective_host(graph, node)].address
        port = graph.spec.tcp_base_port + 2 * index
        pub.append(f"tcp://{address}:{port}")
        srv.append(f"tcp://{address}:{port + 1}")
    return Endpoints(pub=tuple(pub), ctl=(ipc_endpoint(directory, f"{node.name}.ctl"),), srv=tuple(srv))


def _link(endpoints: Endpoints, kind: str, same_process: bool, same_host: bool, server_host: str | None) -> Link:
    options = getattr(endpoints, kind)
    if same_process:
        return Link(options[0])
    if same_host:
        return Link(options[1])
    return Link(options[2], curve_host=server_host)


def wire_processes(graph: Graph, directory: Path, host: str | None = None) -> dict[str, ProcessWiring]:
    """The wiring of every process that runs on ``host`` (default: the graph's first host)."""
    host = host if host is not None else next(iter(graph.spec.hosts), None)
    if graph.spec.hosts and host not in graph.spec.hosts:
        raise ValueError(f"host '{host}' is not in the graph's hosts ({', '.join(graph.spec.hosts)})")
    endpoints = {name: node_endpoints(graph, node, directory, i) for i, (name, node) in enumerate(graph.nodes.items())}
    hosts = {name: effective_host(graph, node) for name, node in graph.nodes.items()}

    def link(consumer: GraphNode, producer: str, kind: str) -> Link:
        return _link(
            endpoints[producer],
            kind,
            same_process=graph.nodes[producer].process == consumer.process and hosts[producer] == hosts[consumer.name],
            same_host=hosts[producer] == hosts[consumer.name],
            server_host=hosts[producer],
        )

    columns, readers = reader_columns(graph)
    segments = str(segment_dir(directory))
    processes = {}
    for process, members in graph.processes().items():
        if hosts[members[0].name] != host:
            continue
        wired = []
        for node in members:
            ends = endpoints[node.name]
            inputs = tuple(
                InputWiring(name=input_name, topic=source, link=link(node, source.partition("/")[0], "pub"),
                            shm_column=columns.get((node.name, input_name)))
                for input_name, source in node.spec.inputs.items()
            )
            shm = node.shm(graph.spec)
            services = {
                other.name: link(node, other.name, "srv") for other in graph.nodes.values() if other.cls.services
            }
            wired.append(
                NodeWiring(
                    name=node.name,
                    cls=node.spec.class_,
                    params=node.spec.params,
                    pub_binds=ends.pub,
                    ctl_binds=ends.ctl,
                    srv_binds=ends.srv if node.cls.services else (),
                    inputs=inputs,
                    services=services,
                    status_period_s=graph.spec.status_period_s,
                    segment_dir=segments,
                    shm=SharedMemory(
                        threshold_bytes=shm.threshold_bytes,
                        slots=shm.slots,
                        readers={o: readers.get(f"{node.name}/{o}", 0) for o in node.cls.outputs},
                    ) if shm.enabled else None,
                )
            )
        processes[process] = ProcessWiring(
            name=process,
            run=graph.name,
            host=host,
            keys_dir=str(graph.keys_dir) if graph.keys_dir and spans_hosts(graph) else None,
            nodes=tuple(wired),
        )
    return processes


def reader_columns(graph: Graph) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """``(node, input) -> column`` for every input that reads a shared-memory output of another
    process on its host (its place in that output's pool, from 0 per output), and the number of
    columns of each ``node/output``."""
    hosts = {name: effective_host(graph, node) for name, node in graph.nodes.items()}
    taken: dict[str, int] = {}
    columns = {}
    for consumer in graph.nodes.values():
        for input_name, source in consumer.spec.inputs.items():
            producer = graph.nodes[source.partition("/")[0]]
            if (producer.process != consumer.process and hosts[producer.name] == hosts[consumer.name]
                    and producer.shm(graph.spec).enabled):
                columns[consumer.name, input_name] = taken.get(source, 0)
                taken[source] = columns[consumer.name, input_name] + 1
    return columns, taken


class NodeState(msgspec.Struct):
    cls: str
    outputs: tuple[str, ...]
    services: tuple[str, ...]
    process: str
    host: str | None
    pub: str
    ctl: str
    srv: str | None
    pid: int | None = None
    restarts: int = 0
    shm_threshold: int | None = None  # arrays from this size up travel in shared memory over ipc://
    views: dict[str, tuple[View, ...]] = {}  # standard views per output (edgerun.runtime.views)


class RunState(msgspec.Struct):
    """``run.json`` in the run directory: how the CLI tools find a running graph."""

    name: str
    graph: str
    launcher_pid: int
    host: str | None
    nodes: dict[str, NodeState]
    segments: str | None = None  # the run's shared-memory directory

    def topic_views(self, topic: str) -> tuple[View, ...]:
        """The standard views of ``topic`` (``node/output``), as its node's class declares them."""
        node = self.nodes.get(topic.partition("/")[0])
        return topic_views(node.views, topic) if node is not None else ()


def run_state(graph: Graph, directory: Path, host: str | None, processes: dict[str, ProcessWiring]) -> RunState:
    nodes, segments = {}, None
    for process in processes.values():
        for wiring in process.nodes:
            node = graph.nodes[wiring.name]
            nodes[wiring.name] = NodeState(
                cls=wiring.cls,
                outputs=node.cls.outputs,
                services=node.cls.services,
                process=process.name,
                host=host,
                pub=wiring.pub_binds[1],
                ctl=wiring.ctl_binds[0],
                srv=wiring.srv_binds[1] if wiring.srv_binds else None,
                shm_threshold=wiring.shm.threshold_bytes if wiring.shm else None,
                views=views_of(node.cls),
            )
            segments = wiring.segment_dir
    return RunState(name=graph.name, graph=str(graph.path), launcher_pid=os.getpid(), host=host, nodes=nodes,
                    segments=segments)


def write_run_state(directory: Path, state: RunState) -> None:
    tmp = directory / f".{RUN_STATE}.tmp"
    tmp.write_bytes(msgspec.json.encode(state))
    tmp.replace(directory / RUN_STATE)


def read_run_state(directory: Path) -> RunState:
    return msgspec.json.decode((directory / RUN_STATE).read_bytes(), type=RunState)
