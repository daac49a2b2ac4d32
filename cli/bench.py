"""``edgerun bench NAME``: side-by-side benchmarks, each against a baseline run in the same process."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "messaging": "edgerun vs raw pyzmq: latency and throughput by payload",
    "engines": "torch eager vs each available backend, per exportable model",
    "planning": "time per DINO-WM CEM plan: torch eager vs ONNX Runtime",
    "segmentation": "INT per-frame latency at 640x480, full loop and streaming: torch vs ONNX Runtime",
    "reconstruction": "TracksTo4D per window: KLT tracking and the network, torch vs ONNX Runtime; KLT frames/s",
}


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench_command", required=True)
    for name, text in BENCHMARKS.items():
        b = bench.add_parser(name, help=text)
        b.add_argument("--quick", action="store_true")
        b.add_argument("--json", help="write results to this file")
        b.set_defaults(func=run_benchmark)


def run_benchmark(args: argparse.Namespace) -> int:
    """Each benchmark is ``edgerun.benchmarks.NAME.main``, imported when chosen (most load torch)."""
    module = importlib.import_module(f"edgerun.benchmarks.{args.bench_command}")
    return module.main(quick=args.quick, json_path=args.json)
