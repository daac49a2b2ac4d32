"""Commands on graphs and their topics: launch, run, top, topic, call, record, view, replay, keys, demo."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import zmq

from edgerun.errors import GraphError, LaunchError, NoRunError, ParamError, ServiceError
from edgerun.runtime import introspect, services
from edgerun.runtime.deployment import NodeState, RunState, write_run_state
from edgerun.runtime.foxglove_view import FoxgloveView
from edgerun.runtime.graph import load_graph
from edgerun.runtime.host import configure_logging, run_process
from edgerun.runtime.introspect import StatusWatcher, find_run
from edgerun.runtime.launcher import Launcher
from edgerun.runtime.live_view import LiveView
from edgerun.runtime.node import STATUS_OUTPUT
from edgerun.runtime.params import build_params, parse_cli_params
from edgerun.runtime.paths import ipc_endpoint, run_dir
from edgerun.runtime.recording import record, replay
from edgerun.runtime.report import format_table
from edgerun.runtime.runner import import_node_class
from edgerun.runtime.security import generate_keys
from edgerun.runtime.views import views_of
from edgerun.runtime.wiring import InputWiring, Link, NodeWiring, ProcessWiring


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch", help="validate a graph file, start its nodes and supervise them")
    p.add_argument("graph", help="graph YAML file")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--host", help="run this host's part of a multi-host graph")
    p.add_argument("--live-every", type=float, default=2.0, help="seconds between live status lines")
    p.set_defaults(func=launch_graph)

    p = sub.add_parser("run", help="run one node alone, for debugging")
    p.add_argument("node_class", metavar="module:Class")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--input", action="append", default=[], metavar="INPUT=NODE/OUTPUT", help="subscribe to a running graph")
    p.add_argument("--from", metavar="RUN", help="the running graph --input refers to")
    p.add_argument("--name", help="node name (default: the class name)")
    p.add_argument("--duration", type=float)
    p.set_defaults(func=run_node)

    p = sub.add_parser("topic", help="list, echo or measure topics of a running graph")
    p.add_argument("action", choices=["list", "echo", "hz"])
    p.add_argument("topic", nargs="?", help="node/output")
    p.add_argument("--run", help="running graph (default: the only one)")
    p.add_argument("-n", "--count", type=int, help="echo: stop after N messages")
    p.add_argument("--timeout", type=float, help="echo: give up after this many seconds")
    p.add_argument("--duration", type=float, help="hz: measure for this many seconds")
    p.set_defaults(func=inspect_topic, check=lambda a: None if a.action == "list" or a.topic else f"topic {a.action} needs a topic (node/output)")

    p = sub.add_parser("call", help="call a service of a running graph's node and print the reply "
                                    "(edgerun call language/command text='go to the door')")
    p.add_argument("service", metavar="NODE/SERVICE")
    p.add_argument("data", nargs="*", metavar="KEY=VALUE", help="request fields (values read as YAML scalars)")
    p.add_argument("--run", help="running graph (default: the only one)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the reply")
    p.set_defaults(func=call_service)

    p = sub.add_parser("top", help="a running graph's streams live: rate, message age, drops, restarts per stream")
    p.add_argument("run", nargs="?", help="running graph (default: the only one)")
    p.add_argument("--every", type=float, default=1.0, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print the table once every node has reported, then exit")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=show_top)

    p = sub.add_parser("record", help="record topics of a running graph to MCAP")
    p.add_argument("topics", nargs="*", metavar="node/output")
    p.add_argument("-o", "--output", help="the MCAP file (default recording.mcap), or with --ros2 the bag directory (default recording)")
    p.add_argument("--all", action="store_true", help="record every topic")
    p.add_argument("--run", help="running graph (default: the only one)")
    p.add_argument("--duration", type=float)
    p.add_argument("--jpeg-quality", type=int, metavar="Q",
                   help="write the standard image channels as JPEG (foxglove.CompressedImage) of quality Q (1-100)")
    p.add_argument("--ros2", nargs="?", const="sqlite3", choices=("sqlite3", "mcap"), metavar="STORAGE",
                   help="write a ROS 2 bag of the standard views instead (storage sqlite3, the default, or mcap)")
    p.set_defaults(func=record_topics)

    p = sub.add_parser("demo", help="plan, reconstruct and perceive in one graph; summary table, MCAP, Rerun and PNG")
    p.add_argument("--out", default="out/demo", help="where the recordings, the figure and the resolved graph go")
    p.add_argument("--timeout", type=float, default=420.0, help="stop the graph after this many seconds at most")
    p.set_defaults(func=run_demo)

    p = sub.add_parser("view", help="show a running graph live in Rerun (web viewer on localhost, .rrd file, or native viewer), "
                                    "or serve it to Foxglove (--foxglove)")
    p.add_argument("topics", nargs="*", metavar="node/output", help="topics to show (default: all)")
    p.add_argument("--run", help="running graph (default: the only one)")
    p.add_argument("--foxglove", action="store_true",
                   help="serve the graph's standard views over the Foxglove WebSocket protocol instead (ws://HOST:PORT)")
    p.add_argument("--host", default="127.0.0.1", help="with --foxglove: the address to serve on (default: this host only)")
    p.add_argument("--port", type=int, default=8765, help="with --foxglove: the port (default 8765, Foxglove's)")
    p.add_argument("--save", metavar="FILE.rrd", help="write a Rerun recording")
    p.add_argument("--serve", action="store_true", help="serve the web viewer on localhost (the default without --save/--spawn)")
    p.add_argument("--web-port", type=int, default=9090)
    p.add_argument("--grpc-port", type=int, default=9876)
    p.add_argument("--spawn", action="store_true", help="start the native Rerun viewer (needs a display)")
    p.add_argument("--jpeg-quality", type=int, default=85, help="colour frames as JPEG at this quality (0: raw)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=view_graph)

    p = sub.add_parser("replay", help="publish an MCAP recording with its original timing")
    p.add_argument("recording")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor (2 = twice as fast)")
    p.add_argument("--name", help="run name to publish as (default: replay-FILE)")
    p.add_argument("--max-gap", type=float, default=60.0, metavar="SECONDS",
                   help="shorten longer gaps between recorded messages to this (a paused recorder, a broken clock)")
    p.set_defaults(func=replay_recording)

    p = sub.add_parser("keys", help="CURVE keys for graphs that span hosts")
    keys = p.add_subparsers(dest="keys_command", required=True)
    k = keys.add_parser("generate", help="make a key pair per host name")
    k.add_argument("directory")
    k.add_argument("names", nargs="+", metavar="HOST")
    k.set_defaults(func=make_keys)


def running_topics(run: str | None, topics: list[str]) -> tuple[RunState, dict[str, str]]:
    """The running graph ``run`` and the endpoints of ``topics`` in it (all of its topics when none
    are named); NoRunError names any topic it lacks."""
    _, state = find_run(run)
    available = introspect.topics(state, include_status=bool(topics))  # status topics only when named
    missing = [t for t in topics if t not in available]
    if missing:
        names = ", ".join(t for t in available if not t.endswith(STATUS_OUTPUT))
        raise NoRunError(f"graph '{state.name}' has no topic {', '.join(missing)} (topics: {names}, and NODE/{STATUS_OUTPUT})")
    return state, {t: available[t] for t in (topics or available)}


def stop_flag() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, for commands that run until stopped."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def launch_graph(args: argparse.Namespace) -> int:
    try:
        graph = load_graph(args.graph)
        launcher = Launcher(graph, host=args.host, duration_s=args.duration, live_every_s=args.live_every)
    except (GraphError, LaunchError, ValueError, PermissionError) as exc:
        print(f"edgerun launch: {exc}", file=sys.stderr)
        return 2
    return launcher.run().exit_code


def run_node(args: argparse.Namespace) -> int:
    try:
        cls = import_node_class(args.node_class)
        params = parse_cli_params(args.param)
        build_params(cls.params, params, where="--param")
        name = args.name or cls.__name__.lower()
        inputs, segments = [], None
        if args.input:
            _, state = find_run(getattr(args, "from"))
            segments = state.segments
            for pair in args.input:
                input_name, _, topic = pair.partition("=")
                if input_name not in cls.inputs:
                    raise ValueError(f"--input {pair}: {args.node_class} has no input '{input_name}'")
                source = state.nodes.get(topic.partition("/")[0])
                if source is None or topic.partition("/")[2] not in source.outputs:
                    raise ValueError(f"--input {pair}: run '{state.name}' has no topic '{topic}'")
                inputs.append(InputWiring(input_name, topic, Link(source.pub)))
    except (ValueError, TypeError, ParamError, NoRunError) as exc:
        print(f"edgerun run: {exc}", file=sys.stderr)
        return 2
    directory = run_dir(f"run-{name}")
    pub, ctl, srv = (ipc_endpoint(directory, f"{name}.{kind}") for kind in ("pub", "ctl", "srv"))
    wiring = NodeWiring(
        name=name, cls=args.node_class, params=params, pub_binds=(pub,), ctl_binds=(ctl,),
        srv_binds=(srv,) if cls.services else (), inputs=tuple(inputs), segment_dir=segments,
    )
    state = RunState(
        name=f"run-{name}", graph=args.node_class, launcher_pid=os.getpid(), host=None,
        nodes={name: NodeState(args.node_class, cls.outputs, cls.services, name, None, pub, ctl, srv if cls.services else None,
                               views=views_of(cls))},
    )
    write_run_state(directory, state)
    configure_logging()
    stop = threading.Event()
    if args.duration:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True  # a node that ends sooner must not wait for the timer
        timer.start()
    return run_process(ProcessWiring(name=name, run=state.name, nodes=(wiring,)), stop=stop)


def inspect_topic(args: argparse.Namespace) -> int:
    try:
        _, state = introspect.find_run(args.run)
        if args.action == "list":
            for topic, _endpoint in introspect.topics(state).items():
                node = state.nodes[topic.partition("/")[0]]
                print(f"{topic}  ({node.cls}, pid {node.pid}, {introspect.transport(state, topic)})")
            return 0
        if args.action == "echo":
            shown = introspect.echo(state, args.topic, args.count, args.timeout, sys.stdout)
            return 0 if shown or args.timeout is None else 1
        rate = introspect.hz(state, args.topic, args.duration, sys.stdout)
        print(f"{args.topic}: mean {rate:.2f} Hz")
        return 0
    except NoRunError as exc:
        print(f"edgerun topic: {exc}", file=sys.stderr)
        return 2


def call_service(args: argparse.Namespace) -> int:
    """``edgerun call``: 0 with the reply's fields on stdout; 2 with one line when there is no such
    running graph, node or service, a field is malformed, or the node answers with an error or not at all."""
    node_name, sep, service = args.service.partition("/")
    try:
        if not sep or not node_name or not service:
            raise ParamError(f"{args.service!r}: expected NODE/SERVICE")
        data = parse_cli_params(args.data)
        _, state = find_run(args.run)
        node = state.nodes.get(node_name)
        if node is None or service not in node.services or node.srv is None:
            offered = [f"{name}/{s}" for name, n in state.nodes.items() for s in n.services]
            raise ParamError(f"no service {args.service} in '{state.name}' (services: {', '.join(offered) or 'none'})")
        reply = services.call(node.srv, service, timeout_s=args.timeout, **data)
    except (NoRunError, ParamError, ServiceError, TimeoutError) as exc:
        print(f"edgerun call: {exc}", file=sys.stderr)
        return 2
    for name, value in reply.fields.items():
        print(f"{name}: {value}")
    for name, array in reply.arrays.items():
        print(f"{name}: {array.dtype} {tuple(array.shape)} {array.tolist() if array.size <= 16 else ''}".rstrip())
    return 0


ONCE_WAIT_S = 5.0
"""How long ``edgerun top --once`` waits for every node's status (each sends one per second)."""


def show_top(args: argparse.Namespace) -> int:
    try:
        _, state = find_run(args.run)
    except NoRunError as exc:
        print(f"edgerun top: {exc}", file=sys.stderr)
        return 2
    context = zmq.Context()
    watcher = StatusWatcher(context, state)

    def plain(statuses: dict, _drops: dict) -> str:  # not on a terminal: the whole table, time-stamped
        return f"{state.name} at {time.strftime('%H:%M:%S')}\n{format_table(statuses, rate='rate_hz')}\n"

    stop = stop_flag()
    started = time.monotonic()
    deadline = started + (args.duration if args.duration else float("inf"))
    try:
        if args.once:  # every node reports once per status period (1 s by default)
            while len(watcher.statuses) < len(state.nodes) and time.monotonic() < started + ONCE_WAIT_S and not stop.is_set():
                watcher.poll(100)
            if not watcher.statuses:
                print(f"edgerun top: no status from graph '{state.name}' within {ONCE_WAIT_S:g} s", file=sys.stderr)
                return 1
            print(plain(watcher.ordered(), {}), end="")
            return 0
        with LiveView(sys.stdout, args.every, plain=plain, keep_on_exit=True) as view:
            while not stop.is_set() and time.monotonic() < deadline:
                if not psutil.pid_exists(state.launcher_pid):
                    view.say(f"graph '{state.name}' has stopped")
                    break
                watcher.poll(100)
                view.show(watcher.ordered(), f"{state.name}: {len(state.nodes)} nodes (Ctrl-C to stop)")
        return 0
    finally:
        watcher.close()
        context.destroy(linger=0)



def record_topics(args: argparse.Namespace) -> int:
    try:
        if not (args.all or args.topics):
            raise NoRunError("name topics to record, or give --all")
        state, chosen = running_topics(args.run, [] if args.all else args.topics)
    except NoRunError as exc:
        print(f"edgerun record: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output or ("recording" if args.ros2 else "recording.mcap"))
    views = {topic: state.topic_views(topic) for topic in chosen}
    stop = stop_flag()
    what = f"a ROS 2 bag ({args.ros2})" if args.ros2 else "MCAP"
    print(f"recording {', '.join(chosen)} from '{state.name}' to {output}, {what} (Ctrl-C to stop)", file=sys.stderr)
    try:
        count = record(chosen, output, args.duration, stop.is_set, segments=state.segments, views=views,
                       jpeg_quality=args.jpeg_quality, ros2_storage=args.ros2)
    except ValueError as exc:  # RecordingError among them
        print(f"edgerun record: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {count} messages to {output}", file=sys.stderr)
    return 0


def view_graph(args: argparse.Namespace) -> int:
    try:
        state, chosen = running_topics(args.run, args.topics)
    except NoRunError as exc:
        print(f"edgerun view: {exc}", file=sys.stderr)
        return 2
    if args.foxglove:
        return serve_foxglove(args, state, chosen)
    from edgerun.nodes.viewer import RerunLog, SinkOptions  # lazy: rerun-sdk

    serve = args.serve or not (args.save or args.spawn)
    viewer = RerunLog(f"edgerun/{state.name}", SinkOptions(args.save or "", serve, args.web_port, args.grpc_port, args.spawn, args.jpeg_quality))
    where = [f"web viewer {viewer.url}" if viewer.url else "", f"file {args.save}" if args.save else "", "native viewer" if args.spawn else ""]
    print(f"viewing {len(chosen)} topics of '{state.name}' in {', '.join(w for w in where if w)} (Ctrl-C to stop)", file=sys.stderr)
    feed(viewer, state, chosen, args.duration)
    print(f"logged {viewer.logged} messages", file=sys.stderr)
    return 0


def serve_foxglove(args: argparse.Namespace, state: RunState, chosen: dict[str, str]) -> int:
    quality = args.jpeg_quality or None
    try:
        view = FoxgloveView(f"edgerun/{state.name}", {t: state.topic_views(t) for t in chosen}, args.host, args.port, quality)
    except RuntimeError as exc:  # the port is taken, the address is not this host's
        print(f"edgerun view: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    print(f"serving {len(chosen)} topics of '{state.name}' to Foxglove at ws://{args.host}:{view.port} (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    feed(view, state, chosen, args.duration)
    print(f"sent {view.logged} messages", file=sys.stderr)
    return 0


def feed(viewer: Any, state: RunState, chosen: dict[str, str], duration: float | None) -> None:
    """Log every message of ``chosen`` into ``viewer`` (a RerunLog or a FoxgloveView: ``log``, ``close``)
    until Ctrl-C, SIGTERM or ``duration``; then close it."""
    stop = stop_flag()
    try:
        for msg in introspect.listen(chosen, duration, stop.is_set, hwm=64, segments=state.segments):
            viewer.log(msg)
    finally:
        viewer.close()


def replay_recording(args: argparse.Namespace) -> int:
    path = Path(args.recording)
    if not path.is_file():
        print(f"edgerun replay: {path}: no such file", file=sys.stderr)
        return 2
    stop = stop_flag()
    announce = lambda line: print(line, file=sys.stderr, flush=True)
    try:
        sent = replay(path, args.name or f"replay-{path.stem}", args.rate, stop.is_set, announce, args.max_gap)
    except ValueError as exc:
        print(f"edgerun replay: {exc}", file=sys.stderr)
        return 2
    if stop.is_set():
        print("stopped", file=sys.stderr)
    print(f"replayed {sent} messages", file=sys.stderr)
    return 0


def make_keys(args: argparse.Namespace) -> int:
    written = generate_keys(Path(args.directory), args.names)
    for path in written:
        print(path)
    if not written:
        print(f"keys for {', '.join(args.names)} already exist in {args.directory}", file=sys.stderr)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from edgerun.demo import demo_main  # lazy: torch and every model

    return demo_main(args.out, args.timeout)
