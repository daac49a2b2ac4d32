"""The ``edgerun`` command line: launch graphs, run single nodes, look at topics, record, replay."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path


def _stop_flag() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, for commands that run until stopped."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def cmd_launch(args: argparse.Namespace) -> int:
    from edgerun.errors import GraphError, LaunchError
    from edgerun.runtime.graph import load_graph
    from edgerun.runtime.launcher import Launcher

    try:
        graph = load_graph(args.graph)
        launcher = Launcher(graph, host=args.host, duration_s=args.duration, live_every_s=args.live_every)
    except (GraphError, LaunchError, ValueError, PermissionError) as exc:
        print(f"edgerun launch: {exc}", file=sys.stderr)
        return 2
    return launcher.run().exit_code


def cmd_run(args: argparse.Namespace) -> int:
    from edgerun.runtime.deployment import NodeState, RunState, write_run_state
    from edgerun.runtime.host import configure_logging, run_process
    from edgerun.runtime.introspect import NoRunError, find_run
    from edgerun.runtime.params import ParamError, build_params, parse_cli_params
    from edgerun.runtime.paths import ipc_endpoint, run_dir
    from edgerun.runtime.runner import import_node_class
    from edgerun.runtime.wiring import InputWiring, Link, NodeWiring, ProcessWiring

    try:
        cls = import_node_class(args.node_class)
        params = parse_cli_params(args.param)
        build_params(cls.params, params, where="--param")
        name = args.name or cls.__name__.lower()
        inputs = []
        if args.input:
            _, state = find_run(getattr(args, "from"))
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
        srv_binds=(srv,) if cls.services else (), inputs=tuple(inputs),
    )
    state = RunState(
        name=f"run-{name}", graph=args.node_class, launcher_pid=os.getpid(), host=None,
        nodes={name: NodeState(args.node_class, cls.outputs, cls.services, name, None, pub, ctl, srv if cls.services else None)},
    )
    write_run_state(directory, state)
    configure_logging()
    stop = threading.Event()
    if args.duration:
        threading.Timer(args.duration, stop.set).start()
    return run_process(ProcessWiring(name=name, run=state.name, nodes=(wiring,)), stop=stop)


def cmd_topic(args: argparse.Namespace) -> int:
    from edgerun.runtime import introspect

    try:
        _, state = introspect.find_run(args.run)
        if args.action == "list":
            for topic, _endpoint in introspect.topics(state).items():
                node = state.nodes[topic.partition("/")[0]]
                print(f"{topic}  ({node.cls}, pid {node.pid})")
            return 0
        if args.action == "echo":
            shown = introspect.echo(state, args.topic, args.count, args.timeout, sys.stdout)
            return 0 if shown or args.timeout is None else 1
        rate = introspect.hz(state, args.topic, args.duration, sys.stdout)
        print(f"{args.topic}: mean {rate:.2f} Hz")
        return 0
    except introspect.NoRunError as exc:
        print(f"edgerun topic: {exc}", file=sys.stderr)
        return 2


def cmd_record(args: argparse.Namespace) -> int:
    from edgerun.runtime import introspect
    from edgerun.runtime.recording import record

    try:
        _, state = introspect.find_run(args.run)
        available = introspect.topics(state)
        chosen = list(available) if args.all else args.topics
        if not chosen:
            raise introspect.NoRunError("name topics to record, or give --all")
        missing = [t for t in chosen if t not in available]
        if missing:
            raise introspect.NoRunError(f"graph '{state.name}' has no topic {', '.join(missing)} (topics: {', '.join(available)})")
    except introspect.NoRunError as exc:
        print(f"edgerun record: {exc}", file=sys.stderr)
        return 2
    stop = _stop_flag()
    print(f"recording {', '.join(chosen)} from '{state.name}' to {args.output} (Ctrl-C to stop)", file=sys.stderr)
    count = record({t: available[t] for t in chosen}, Path(args.output), args.duration, stop.is_set)
    print(f"wrote {count} messages to {args.output}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgerun.demo import demo_main

    return demo_main(args.out, args.timeout)


def cmd_view(args: argparse.Namespace) -> int:
    from edgerun.nodes.viewer import RerunLog, SinkOptions
    from edgerun.runtime import introspect

    try:
        _, state = introspect.find_run(args.run)
        available = introspect.topics(state)
        missing = [t for t in args.topics if t not in available]
        if missing:
            raise introspect.NoRunError(f"graph '{state.name}' has no topic {', '.join(missing)} (topics: {', '.join(available)})")
    except introspect.NoRunError as exc:
        print(f"edgerun view: {exc}", file=sys.stderr)
        return 2
    chosen = {t: available[t] for t in (args.topics or available)}
    serve = args.serve or not (args.save or args.spawn)
    viewer = RerunLog(f"edgerun/{state.name}", SinkOptions(args.save or "", serve, args.web_port, args.grpc_port, args.spawn, args.jpeg_quality))
    where = [f"web viewer {viewer.url}" if viewer.url else "", f"file {args.save}" if args.save else "", "native viewer" if args.spawn else ""]
    print(f"viewing {len(chosen)} topics of '{state.name}' in {', '.join(w for w in where if w)} (Ctrl-C to stop)", file=sys.stderr)
    stop = _stop_flag()
    try:
        for msg in introspect.listen(chosen, args.duration, stop.is_set, hwm=64):
            viewer.log(msg)
    finally:
        viewer.close()
    print(f"logged {viewer.logged} messages", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from edgerun.runtime.recording import replay

    path = Path(args.recording)
    if not path.is_file():
        print(f"edgerun replay: {path}: no such file", file=sys.stderr)
        return 2
    stop = _stop_flag()
    announce = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        sent = replay(path, args.name or f"replay-{path.stem}", args.rate, stop.is_set, announce)
    except ValueError as exc:
        print(f"edgerun replay: {exc}", file=sys.stderr)
        return 2
    print(f"replayed {sent} messages", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from edgerun.runtime.security import generate_keys

    written = generate_keys(Path(args.directory), args.names)
    for path in written:
        print(path)
    if not written:
        print(f"keys for {', '.join(args.names)} already exist in {args.directory}", file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_command == "segmentation":
        from edgerun.benchmarks.segmentation import main as bench_segmentation

        return bench_segmentation(quick=args.quick, json_path=args.json)
    if args.bench_command == "reconstruction":
        from edgerun.benchmarks.reconstruction import main as bench_reconstruction

        return bench_reconstruction(quick=args.quick, json_path=args.json)
    if args.bench_command == "planning":
        from edgerun.benchmarks.planning import main as bench_planning

        return bench_planning(quick=args.quick, json_path=args.json)
    if args.bench_command == "engines":
        from edgerun.benchmarks.engines import main as bench_engines

        return bench_engines(quick=args.quick, json_path=args.json)
    from edgerun.benchmarks.messaging import main as bench_messaging

    return bench_messaging(quick=args.quick, json_path=args.json)


def cmd_export(args: argparse.Namespace) -> int:
    import logging

    from edgerun.engines.manifest import default_model_dir
    from edgerun.export.onnx_export import ExportError, export_model
    from edgerun.export.registry import REGISTRY

    if args.list or not args.model:
        for name, entry in REGISTRY.items():
            print(f"{name:16} {entry.description}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path, manifest = export_model(
            args.model, Path(args.out) if args.out else default_model_dir(), checkpoint=args.checkpoint, opset=args.opset,
            simplify=args.simplify, recorded=[Path(p) for p in args.recorded],
        )
    except (ExportError, KeyError, FileNotFoundError) as exc:
        print(f"edgerun export: {exc}", file=sys.stderr)
        return 2
    random = manifest.parity["random"]
    print(f"wrote {path} and {path.with_suffix('.json').name}: parity vs torch max abs {random['max_abs']:.2e}, "
          f"max rel {random['max_rel']:.2e}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    import logging

    from edgerun.calibration.int8 import Int8CalibrationError
    from edgerun.engines import EngineError
    from edgerun.export.trt_build import BuildError, build_engine

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    precision = "best" if args.best else "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    try:
        engine_file = build_engine(
            Path(args.onnx), precision, calibration=Path(args.calib) if args.calib else None,
            calibration_topic=args.topic, force=args.force,
        )
    except (BuildError, EngineError, Int8CalibrationError) as exc:
        print(f"edgerun build: {exc}", file=sys.stderr)
        return 2
    print(engine_file)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from edgerun.models.dino_wm.checkpoint import convert_main

    return convert_main(args.path, args.out)


def cmd_train(args: argparse.Namespace) -> int:
    from edgerun.evaluation.dino_wm.evaluate import env_name
    from edgerun.training.dino_wm.train import train_main

    out = args.out or f"runs/dino_wm_{env_name(args.env)}"
    return train_main(args.env, out, args.steps, args.resume, args.seed, args.rollout_blocks, args.init_from)


def cmd_train_tracks_to_4d(args: argparse.Namespace) -> int:
    from edgerun.training.tracks_to_4d.train import train_main

    return train_main(args.out, args.steps, args.resume, args.seed)


def cmd_train_int_seg(args: argparse.Namespace) -> int:
    from edgerun.training.int_seg.train import train_main

    return train_main(args.out, args.steps, args.resume, args.seed, args.init_from, args.lr, args.robot_camera_images)


def cmd_eval(args: argparse.Namespace) -> int:
    from edgerun.evaluation.dino_wm.evaluate import env_name, eval_main

    checkpoint = args.checkpoint or f"checkpoints/dino_wm_{env_name(args.env)}/model.pt"
    return eval_main(checkpoint, args.env, args.episodes, args.seed, args.json, args.backend, args.cost_engine, args.workers,
                     args.max_steps)


def cmd_eval_tracks_to_4d(args: argparse.Namespace) -> int:
    from edgerun.evaluation.tracks_to_4d.pipeline import eval_main

    return eval_main(args.checkpoint, args.scenes, args.json, args.rendered, args.fine_tune_steps)


def cmd_eval_int_seg(args: argparse.Namespace) -> int:
    from edgerun.evaluation.int_seg.evaluate import eval_main

    return eval_main(args.components, args.images, args.seed, args.json, args.robot_camera)


def cmd_collect(args: argparse.Namespace) -> int:
    from edgerun.envs.collect import collect_main

    out = args.out or f"{args.env.replace('/', '_')}-{args.episodes}x{args.steps}-seed{args.seed}.npz"
    return collect_main(args.env, args.episodes, args.steps, args.seed, out, policy=args.policy)


def cmd_calibrate_camera(args: argparse.Namespace) -> int:
    from edgerun.calibration.camera import main as calibrate_camera

    return calibrate_camera(args.images, args.board, args.square, args.output, skip_unusable=args.skip_unusable)


def _training_arguments(parser: argparse.ArgumentParser, out: str | None, holds: str, steps: str = "training steps") -> None:
    """What every ``edgerun train MODEL`` takes: a run directory, steps, resume, seed."""
    parser.add_argument("--out", default=out, help=f"run directory {holds}")
    parser.add_argument("--steps", type=int, help=f"{steps} (default: the config's)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's latest state")
    parser.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgerun", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("launch", help="validate a graph file, start its nodes and supervise them")
    p.add_argument("graph", help="graph YAML file")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--host", help="run this host's part of a multi-host graph")
    p.add_argument("--live-every", type=float, default=2.0, help="seconds between live status lines")
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("run", help="run one node alone, for debugging")
    p.add_argument("node_class", metavar="module:Class")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--input", action="append", default=[], metavar="INPUT=NODE/OUTPUT", help="subscribe to a running graph")
    p.add_argument("--from", metavar="RUN", help="the running graph --input refers to")
    p.add_argument("--name", help="node name (default: the class name)")
    p.add_argument("--duration", type=float)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("topic", help="list, echo or measure topics of a running graph")
    p.add_argument("action", choices=["list", "echo", "hz"])
    p.add_argument("topic", nargs="?", help="node/output")
    p.add_argument("--run", help="running graph (default: the only one)")
    p.add_argument("-n", "--count", type=int, help="echo: stop after N messages")
    p.add_argument("--timeout", type=float, help="echo: give up after this many seconds")
    p.add_argument("--duration", type=float, help="hz: measure for this many seconds")
    p.set_defaults(func=cmd_topic)

    p = sub.add_parser("record", help="record topics of a running graph to MCAP")
    p.add_argument("topics", nargs="*", metavar="node/output")
    p.add_argument("-o", "--output", default="recording.mcap")
    p.add_argument("--all", action="store_true", help="record every topic")
    p.add_argument("--run", help="running graph (default: the only one)")
    p.add_argument("--duration", type=float)
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("demo", help="plan, reconstruct and perceive in one graph; summary table, MCAP, Rerun and PNG")
    p.add_argument("--out", default="out/demo", help="where the recordings, the figure and the resolved graph go")
    p.add_argument("--timeout", type=float, default=420.0, help="stop the graph after this many seconds at most")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("view", help="show a running graph live in Rerun (web viewer on localhost, .rrd file, or native viewer)")
    p.add_argument("topics", nargs="*", metavar="node/output", help="topics to show (default: all)")
    p.add_argument("--run", help="running graph (default: the only one)")
    p.add_argument("--save", metavar="FILE.rrd", help="write a Rerun recording")
    p.add_argument("--serve", action="store_true", help="serve the web viewer on localhost (the default without --save/--spawn)")
    p.add_argument("--web-port", type=int, default=9090)
    p.add_argument("--grpc-port", type=int, default=9876)
    p.add_argument("--spawn", action="store_true", help="start the native Rerun viewer (needs a display)")
    p.add_argument("--jpeg-quality", type=int, default=85, help="colour frames as JPEG at this quality (0: raw)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("replay", help="publish an MCAP recording with its original timing")
    p.add_argument("recording")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor (2 = twice as fast)")
    p.add_argument("--name", help="run name to publish as (default: replay-FILE)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("keys", help="CURVE keys for graphs that span hosts")
    keys = p.add_subparsers(dest="keys_command", required=True)
    k = keys.add_parser("generate", help="make a key pair per host name")
    k.add_argument("directory")
    k.add_argument("names", nargs="+", metavar="HOST")
    k.set_defaults(func=cmd_keys)

    p = sub.add_parser("export", help="export a model to ONNX with a parity check and a manifest")
    p.add_argument("model", nargs="?", help="registry name (edgerun export --list)")
    p.add_argument("--checkpoint", help="weights to load (default: fixed-seed random init)")
    p.add_argument("--out", help="output directory (default: $XDG_CACHE_HOME/edgerun/models)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim")
    p.add_argument("--recorded", action="append", default=[], metavar="NPZ", help="recorded inputs for the parity check")
    p.add_argument("--list", action="store_true", help="list exportable models")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("build", help="build (or find cached) the TensorRT engine file of an exported ONNX model")
    p.add_argument("onnx")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fp16", action="store_true")
    group.add_argument("--int8", action="store_true")
    group.add_argument("--best", action="store_true", help="let TensorRT mix fp32, fp16 and int8")
    p.add_argument("--calib", help="INT8 calibration data: a directory of .npz or an MCAP recording")
    p.add_argument("--topic", help="topic of the MCAP recording that carries the model's inputs")
    p.add_argument("--force", action="store_true", help="rebuild even on a cache hit")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("convert", help="convert an official checkpoint to edgerun's format (no code runs)")
    convert = p.add_subparsers(dest="convert_command", required=True)
    c = convert.add_parser("dino-wm", help="DINO-WM model_latest.pth (whole pickled modules) → state dicts")
    c.add_argument("path")
    c.add_argument("--out", help="output (default: PATH.edgerun.pt)")
    c.set_defaults(func=cmd_convert)

    p = sub.add_parser("train", help="train a model on data this project generates")
    train = p.add_subparsers(dest="train_command", required=True)
    t = train.add_parser("dino-wm", help="DINO-WM: offline encoder, then the predictor (resumable)")
    t.add_argument("--env", default="edgerun/Wall-v0", help="edgerun/Wall-v0 or edgerun/PointMaze-v0")
    _training_arguments(t, None, "(default runs/dino_wm_<env>: checkpoints, loss curve, manifest)", "predictor training steps")
    t.add_argument("--rollout-blocks", type=int, default=1, metavar="K",
                   help="1: the paper's teacher-forced loss; K > 1: open-loop rollouts of K action blocks")
    t.add_argument("--init-from", metavar="PATH", help="fine-tune: a model.pt of the same config (e.g. checkpoints/dino_wm_wall/model.pt: its frozen encoder is kept) or a predictor state (ckpt-latest.pt) of a run on the same data")
    t.set_defaults(func=cmd_train)
    t = train.add_parser("int-seg", help="INT's small components (scorer, detector, SAM-contract decoder) on synthetic camouflage")
    _training_arguments(t, "runs/int_seg", "(state, checkpoint, ONNX, loss curve, manifest)")
    t.add_argument("--init-from", metavar="INT_SEG_PT", help="fine-tune these components (e.g. checkpoints/int_seg/int_seg.pt)")
    t.add_argument("--lr", type=float, help="peak learning rate (default: the config's; lower it to fine-tune)")
    t.add_argument("--robot-camera-images", type=int, default=0, metavar="N",
                   help="also train on N views of the Wall robot's camera (the demo's perception input)")
    t.set_defaults(func=cmd_train_int_seg)
    t = train.add_parser("tracks-to-4d", help="TracksTo4D (small) on synthetic scenes: the paper's losses plus a ground-truth term (resumable)")
    _training_arguments(t, "runs/tracks_to_4d", "(training state, model.pt, loss curve, manifest)")
    t.set_defaults(func=cmd_train_tracks_to_4d)

    p = sub.add_parser("eval", help="evaluate a trained model in closed loop")
    evaluate = p.add_subparsers(dest="eval_command", required=True)
    e = evaluate.add_parser("dino-wm", help="MPC success rate, plan time, random-action baseline")
    e.add_argument("--checkpoint", help="default: checkpoints/dino_wm_<env>/model.pt, the shipped model")
    e.add_argument("--env", default="edgerun/Wall-v0", help="edgerun/Wall-v0 or edgerun/PointMaze-v0")
    e.add_argument("--episodes", type=int, default=50)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", help="write the result here")
    e.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"),
                   help="what scores the CEM samples: the torch model, or the exported planning cost on ONNX Runtime")
    e.add_argument("--cost-engine", help="with --backend onnxruntime: an exported planning cost .onnx (default: export the checkpoint's)")
    e.add_argument("--workers", type=int, default=1, help="torch backend: episodes in N processes of one thread (same result)")
    e.add_argument("--max-steps", type=int, metavar="N",
                   help="env steps per episode, success read once after them (default: the env's max_episode_steps, 100)")
    e.set_defaults(func=cmd_eval)
    e = evaluate.add_parser("int-seg", help="INT vs no negative mining vs generic prompt: MAE, Fβ, Eφ, Sα, mIoU, latency")
    e.add_argument("--components", default="checkpoints/int_seg/components.yaml")
    e.add_argument("--images", "--episodes", type=int, default=100, help="held-out generated images")
    e.add_argument("--seed", type=int, default=2, help="generated split (2: the held-out test seed)")
    e.add_argument("--json", help="write the result here")
    e.add_argument("--robot-camera", action="store_true",
                   help="on 480x360 views of the Wall robot's camera (the demo's perception input) instead")
    e.set_defaults(func=cmd_eval_int_seg)
    e = evaluate.add_parser("tracks-to-4d", help="ATE, RPE, AbsRel, δ<1.25: feed-forward, +BA, +FT, classical; end to end through KLT")
    e.add_argument("--checkpoint", default="checkpoints/tracks_to_4d/model.pt")
    e.add_argument("--scenes", type=int, default=20, help="held-out generated scenes")
    e.add_argument("--rendered", type=int, default=2, help="rendered image sequences for the end-to-end check (0: skip)")
    e.add_argument("--fine-tune-steps", type=int, default=50, help="Adam steps (lr 1e-3) of test-time fine-tuning per window")
    e.add_argument("--json", help="write the result here")
    e.set_defaults(func=cmd_eval_tracks_to_4d)

    p = sub.add_parser("collect", help="collect an offline data set from a gymnasium environment")
    p.add_argument("env", help="environment id, e.g. edgerun/Wall-v0")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--steps", type=int, default=100, help="steps per episode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output .npz (default: ENV-EPISODESxSTEPS-seedS.npz)")
    p.add_argument("--policy", default="mixed", choices=("random", "scripted", "mixed", "wander"), help="data policy (default mixed)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("calibrate", help="calibration")
    calibrate = p.add_subparsers(dest="calibrate_command", required=True)
    c = calibrate.add_parser("camera", help="camera intrinsics from chessboard images")
    c.add_argument("images", nargs="+")
    c.add_argument("--board", default="9x6", help="inner corners, COLSxROWS")
    c.add_argument("--square", type=float, default=0.025, help="square size in metres")
    c.add_argument("-o", "--output", default="intrinsics.yaml")
    c.add_argument("--skip-unusable", action="store_true", help="drop unreadable or board-less images instead of failing")
    c.set_defaults(func=cmd_calibrate_camera)

    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench_command", required=True)
    for name, text in (
        ("messaging", "edgerun vs raw pyzmq: latency and throughput by payload"),
        ("engines", "torch eager vs each available backend, per exportable model"),
        ("planning", "time per DINO-WM CEM plan: torch eager vs ONNX Runtime"),
        ("segmentation", "INT per-frame latency at 640x480, full loop and streaming: torch vs ONNX Runtime"),
        ("reconstruction", "TracksTo4D per window: KLT tracking and the network, torch vs ONNX Runtime; KLT frames/s"),
    ):
        b = bench.add_parser(name, help=text)
        b.add_argument("--quick", action="store_true")
        b.add_argument("--json", help="write results to this file")
        b.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "topic" and args.action != "list" and not args.topic:
        build_parser().error(f"topic {args.action} needs a topic (node/output)")
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
