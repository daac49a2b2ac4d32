"""Commands that make data: collect (offline datasets from a gymnasium env), calibrate (camera intrinsics)."""

from __future__ import annotations

import argparse
import sys

from edgerun.calibration.camera import calibrate_chessboard, parse_board
from edgerun.envs.collect import collect_main
from edgerun.errors import CameraCalibrationError


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
    """``edgerun calibrate camera``: calibrate, print a summary, write ``--output``; 0, or 2 on error."""
    images = args.images
    try:
        intrinsics = calibrate_chessboard(images, board=parse_board(args.board), square_m=args.square,
                                          skip_unusable=args.skip_unusable)  # fmt: skip
    except CameraCalibrationError as exc:
        print(f"edgerun calibrate camera: {exc}", file=sys.stderr)
        return 2
    try:
        path = intrinsics.save(args.output)
    except OSError as exc:
        print(f"edgerun calibrate camera: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    width, height = intrinsics.image_size
    k = ", ".join(f"{v:.5f}" for v in intrinsics.distortion)
    print(
        f"calibrated from {len(intrinsics.images_used)} of {len(images)} images ({width}x{height}): "
        f"reprojection RMS {intrinsics.rms_px:.3f} px\n"
        f"  fx {intrinsics.fx:.2f}  fy {intrinsics.fy:.2f}  cx {intrinsics.cx:.2f}  cy {intrinsics.cy:.2f}\n"
        f"  distortion (k1, k2, p1, p2, k3) [{k}]\n"
        f"wrote {path}"
    )
    return 0
