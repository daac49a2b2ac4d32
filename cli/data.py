"""Commands that make data: collect (offline datasets from a gymnasium env), calibrate (camera intrinsics)."""

from __future__ import annotations

import argparse

from edgerun.calibration.camera import main as calibrate
from edgerun.envs.collect import collect_main


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="collect an offline data set from a gymnasium environment")
    p.add_argument("env", help="environment id, e.g. edgerun/Wall-v0")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--steps", type=int, default=100, help="steps per episode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output .npz (default: ENV-EPISODESxSTEPS-seedS.npz)")
    p.add_argument("--policy", default="mixed", choices=("random", "scripted", "mixed", "wander"), help="data policy (default mixed)")
    p.set_defaults(func=collect)

    p = sub.add_parser("calibrate", help="calibration")
    calibrate = p.add_subparsers(dest="calibrate_command", required=True)
    c = calibrate.add_parser("camera", help="camera intrinsics from chessboard images")
    c.add_argument("images", nargs="+")
    c.add_argument("--board", default="9x6", help="inner corners, COLSxROWS")
    c.add_argument("--square", type=float, default=0.025, help="square size in metres")
    c.add_argument("-o", "--output", default="intrinsics.yaml")
    c.add_argument("--skip-unusable", action="store_true", help="drop unreadable or board-less images instead of failing")
    c.set_defaults(func=calibrate_camera)


def collect(args: argparse.Namespace) -> int:
    out = args.out or f"{args.env.replace('/', '_')}-{args.episodes}x{args.steps}-seed{args.seed}.npz"
    return collect_main(args.env, args.episodes, args.steps, args.seed, out, policy=args.policy)


def calibrate_camera(args: argparse.Namespace) -> int:
    return calibrate(args.images, args.board, args.square, args.output, skip_unusable=args.skip_unusable)
