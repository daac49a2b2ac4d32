"""``edgerun bench NAME``: side-by-side benchmarks, each against a baseline run in the same process."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "messaging": "edgerun (shared memory, zmq) vs raw pyzmq and dora-rs: latency and throughput by payload",
    "engines": "torch eager vs each available backend, per exportable model",
    "planning": "time per DINO-WM CEM plan: torch eager vs ONNX Runtime",
    "segmentation": "INT per-frame latency at 640x480, full loop and streaming: torch vs ONNX Runtime",
    "reconstruction": "TracksTo4D per window: KLT tracking and the network, torch vs ONNX Runtime; KLT frames/s",
    "bundle-adjustment": "TracksTo4D refinement per 20-frame window of 1,000 tracks: Schur-complement LM vs scipy least_squares",
    "fuzz": "the live Wall graph under hostile messages and service requests: crashes, stalls, restarts, RSS, loop rate",
    "language": "small LMs: tokens/s and time to first token, onnxruntime-genai int4 vs transformers eager",
}
OPTIONS = {  # benchmark-specific options, passed to its main() by name
    "fuzz": [("--messages", {"type": int, "help": "hostile messages in all (default 100,000; 10,000 with --quick)"}),
             ("--rate", {"type": float, "help": "hostile messages per second, both links together (default 5,000)"})],
}


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench_command", required=True)
    for name, text in BENCHMARKS.items():
        b = bench.add_parser(name, help=text)
        b.add_argument("--quick", action="store_true")
        b.add_argument("--json", help="write results to this file")
        for flag, options in OPTIONS.get(name, []):
            b.add_argument(flag, **options)
        b.set_defaults(func=run_benchmark)


def run_benchmark(args: argparse.Namespace) -> int:
    """Each benchmark is ``edgerun.benchmarks.NAME.main``, imported when chosen (most load torch)."""
    module = importlib.import_module(f"edgerun.benchmarks.{args.bench_command.replace('-', '_')}")
    names = [flag.lstrip("-").replace("-", "_") for flag, _ in OPTIONS.get(args.bench_command, [])]
    return module.main(quick=args.quick, json_path=args.json, **{name: getattr(args, name) for name in names})
