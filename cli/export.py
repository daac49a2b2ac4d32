"""Commands that turn models into engines: export (torch → ONNX), build (ONNX → TensorRT), convert
(official checkpoints → edgerun's format)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edgerun.engines.manifest import default_model_dir
from edgerun.errors import BuildError, EngineError, ExportError, Int8CalibrationError
from edgerun.export.language_export import LANGUAGE_MODELS, exported_language_model


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX with a parity check and a manifest")
    p.add_argument("model", nargs="?", help="registry name (edgerun export --list)")
    p.add_argument("--checkpoint", help="weights to load (default: fixed-seed random init)")
    p.add_argument("--out", help="output directory (default: $XDG_CACHE_HOME/edgerun/models)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim")
    p.add_argument("--recorded", action="append", default=[], metavar="NPZ", help="recorded inputs for the parity check")
    p.add_argument("--list", action="store_true", help="list exportable models")
    p.add_argument("--precision", choices=("int4", "fp32"), help="language models: the weights' precision "
                   "(default: the model's own, int4 but for the distilled draft)")
    p.set_defaults(func=export_onnx)

    p = sub.add_parser("build", help="build (or find cached) the TensorRT engine file of an exported ONNX model")
    p.add_argument("onnx")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fp16", action="store_true")
    group.add_argument("--int8", action="store_true")
    group.add_argument("--best", action="store_true", help="let TensorRT mix fp32, fp16 and int8")
    p.add_argument("--calib", help="INT8 calibration data: a directory of .npz or an MCAP recording")
    p.add_argument("--topic", help="topic of the MCAP recording that carries the model's inputs")
    p.add_argument("--force", action="store_true", help="rebuild even on a cache hit")
    p.set_defaults(func=build_tensorrt)

    p = sub.add_parser("convert", help="convert an official checkpoint to edgerun's format (no code runs)")
    convert = p.add_subparsers(dest="convert_command", required=True)
    c = convert.add_parser("dino-wm", help="DINO-WM model_latest.pth (whole pickled modules) → state dicts")
    c.add_argument("path")
    c.add_argument("--out", help="output (default: PATH.edgerun.pt)")
    c.set_defaults(func=convert_checkpoint)


def export_onnx(args: argparse.Namespace) -> int:
    from edgerun.export.onnx_export import export_model  # lazy: torch
    from edgerun.export.registry import REGISTRY  # lazy: torch

    if args.list or not args.model:
        for name, entry in REGISTRY.items():
            print(f"{name:16} {entry.description}")
        for name, source in LANGUAGE_MODELS.items():
            print(f"{name:16} {source.description} (onnxruntime-genai; pip install {source.pip})")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.model in LANGUAGE_MODELS:
        try:
            folder = exported_language_model(args.model, args.precision, Path(args.out) if args.out else None)
        except EngineError as exc:
            print(f"edgerun export: {exc}", file=sys.stderr)
            return 2
        print(folder)
        return 0
    if args.model not in REGISTRY:
        print(f"edgerun export: unknown model {args.model!r} (exportable: {', '.join([*REGISTRY, *LANGUAGE_MODELS])})",
              file=sys.stderr)
        return 2
    missing = [name for name in args.recorded if not Path(name).is_file()]
    if missing:  # before the export, which would otherwise run first and leave a model without its manifest
        print(f"edgerun export: --recorded {missing[0]}: no such file", file=sys.stderr)
        return 2
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

def build_tensorrt(args: argparse.Namespace) -> int:
    from edgerun.export.trt_build import build_engine  # lazy: torch, TensorRT

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

def convert_checkpoint(args: argparse.Namespace) -> int:
    from edgerun.models.dino_wm.official import convert_main  # lazy: torch

    return convert_main(args.path, args.out)
