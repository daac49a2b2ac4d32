"""``edgerun segment`` and ``edgerun reconstruct``: the models on a user's own data, outside any graph."""

from __future__ import annotations

import argparse

from edgerun import shipped
from edgerun.pipelines.tracks_to_4d.sequence import REFINEMENTS


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "segment", help="INT on images, a folder of them or a camera: one 0/255 PNG mask per image",
        description="Segment what a task-generic prompt describes. SOURCE: an image, a folder of images or a camera URI "
                    "(file://, v4l2://, rtsp://, rosbag2://, gym://, synthetic://). Writes OUT/<image name>.png (0/255) "
                    "and one JSON line per image to OUT/segment.jsonl (instance prompt, confidence, mining score, trusted, "
                    "seconds): a mask whose prompt mined too low a score to trust is written empty.")
    s.add_argument("source")
    s.add_argument("--prompt", default="the camouflaged animal", help="the task-generic prompt")
    s.add_argument("--vocabulary", default="", help="category names joined by commas (default: the synthetic set's categories)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--method", default="int", choices=("int", "generic", "no-mining"),
                   help="int: instance prompt by negative mining; generic: the task prompt alone; no-mining: INT without mining")
    s.add_argument("--components", default="", help="a components config (default: the shipped one)")
    s.add_argument("--iterations", type=int, default=5, help="INT iterations")
    s.add_argument("--max-frames", type=int, default=100, help="frames read from a camera")
    s.add_argument("--min-mining-score", type=float, metavar="S",
                   help="with --method int: an empty mask (trusted false) where the instance prompt mined a lower score "
                        "(default: the components'; 0: every mask)")
    s.set_defaults(func=segment, check=check_segment)
    r = sub.add_parser(
        "reconstruct", help="TracksTo4D on a video, a camera or track files: cameras and depths per frame",
        description="Reconstruct camera poses and per-frame depths. SOURCE: a video file or a camera URI (file://, v4l2://, "
                    "rosbag2://, rtsp://, synthetic://; tracked with KLT), an .npz of tracks in the TracksTo4D layout (`tracks` (N, 3, T): "
                    "x, y, visibility; optional `K`; other keys ignored), or a folder of such files. Writes OUT/<name>.npz per "
                    "input (R, t world-to-camera (T, 3, 3) and (T, 3); depth (N, T); K; segment; per-window timing) and one "
                    "JSON line per input to OUT/reconstruct.jsonl.")
    r.add_argument("source")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--refine", default="none", choices=REFINEMENTS, help="none, ba (bundle adjustment) or ft (test-time fine-tuning, torch)")
    r.add_argument("--window", type=int, default=20, help="frames per window, overlapping by half (0: the whole clip at once)")
    r.add_argument("--checkpoint", default=shipped("tracks_to_4d/model.pt"))
    r.add_argument("--engine", default="", help="an exported .onnx/.plan instead of the checkpoint")
    r.add_argument("--backend", default="auto")
    r.add_argument("--intrinsics", default="", help="calibration YAML (edgerun calibrate camera); default: a tracks file's K, else guessed")
    r.add_argument("--max-frames", type=int, default=600, help="frames read from a video or camera")
    r.add_argument("--grid", type=int, default=15, help="KLT query grid (grid x grid) for a video or camera")
    r.add_argument("--threads", type=int, default=1, help="torch threads")
    r.set_defaults(func=reconstruct, check=check_reconstruct)


def check_reconstruct(args: argparse.Namespace) -> str | None:
    if args.window < 0 or args.window == 1:
        return f"--window: 0 (whole clip) or at least 2 frames, got {args.window}"
    if args.max_frames < 2:
        return f"--max-frames: at least 2, got {args.max_frames}"
    return None


def reconstruct(args: argparse.Namespace) -> int:
    from edgerun.cli.reconstruct import reconstruct_main  # lazy: torch

    return reconstruct_main(args.source, args.out, args.refine, args.window, args.checkpoint, args.engine, args.backend,
                            args.intrinsics, args.max_frames, args.grid, args.threads)


def check_segment(args: argparse.Namespace) -> str | None:
    if args.iterations < 1:
        return f"--iterations: at least 1, got {args.iterations}"
    if not args.prompt.strip():
        return "--prompt: an empty task prompt"
    if args.max_frames < 1:
        return f"--max-frames: at least 1, got {args.max_frames}"
    if args.min_mining_score is not None and args.method != "int":
        return f"--min-mining-score: only with --method int (--method {args.method} mines no score and trusts every mask)"
    return None


def segment(args: argparse.Namespace) -> int:
    from edgerun.cli.segment import segment_main  # lazy: torch, onnxruntime

    return segment_main(args.source, args.out, args.prompt, args.vocabulary, args.method, args.components, args.iterations,
                        args.max_frames, args.min_mining_score)
