"""The edgerun command line: launch graphs, run single nodes, look at topics, record, replay,
export and build engines, train, evaluate, collect data, calibrate, benchmark.

Each command group sits in its own module beside its handlers and adds its parsers here. Handlers of
the model commands import their torch-backed modules when they run, so ``edgerun topic list`` and
``edgerun --help`` never pay torch's start-up (docs/architecture.md, lazy imports).
"""

from __future__ import annotations

import argparse
import sys

from edgerun.cli import bench, data, evaluate, export, graph, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgerun", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (graph, export, train, evaluate, data, bench):
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = args.check(args) if hasattr(args, "check") else None
    if problem:
        parser.error(problem)
    sys.exit(args.func(args))
