"""The edgerun command line: launch graphs, run single nodes, look at topics, record, replay,
run a model on your own data, export and build engines, train, evaluate, collect data, calibrate,
benchmark.

Every command answers input it refuses (an :class:`~edgerun.errors.EdgerunError`: a corrupt file, a
bad config; or a file it cannot open) with one message naming the file and the reason, and exit
status 2; tracebacks are left for bugs.

Each command group sits in its own module beside its handlers and adds its parsers here. Handlers of
the model commands import their torch-backed modules when they run, so ``edgerun topic list`` and
``edgerun --help`` never pay torch's start-up (docs/architecture.md, lazy imports).
"""

from __future__ import annotations

import argparse
import sys

from edgerun.cli import bench, data, evaluate, export, graph, infer, train
from edgerun.errors import EdgerunError, cut


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgerun", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (graph, infer, export, train, evaluate, data, bench):
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = args.check(args) if hasattr(args, "check") else None
    if problem:
        parser.error(problem)
    try:
        code = args.func(args)
    except EdgerunError as exc:  # refused input (a corrupt file, a bad config): what and where, no traceback
        print(f"edgerun {args.command}: {cut(str(exc), 2000)}", file=sys.stderr)
        code = 2
    except OSError as exc:
        if exc.filename is None:
            raise
        print(f"edgerun {args.command}: {exc.filename}: {exc.strerror}", file=sys.stderr)
        code = 2
    sys.exit(code)
