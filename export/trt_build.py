"""ONNX → TensorRT engine file, cached next to the model and keyed by everything it depends on.

``edgerun build MODEL.onnx --fp16`` reads the export manifest for the optimisation
profiles (min/opt/max of each dynamic dimension), reuses a timing cache, shows the
builder's progress, and writes ``MODEL.fp16.<key>.engine`` with its engine-file manifest. A
second build with the same ONNX, precision, profiles, calibration data, TensorRT
version and GPU is a cache hit and returns at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

from edgerun.calibration.int8 import cache_path_for, data_sha256, entropy_calibrator
from edgerun.calibration.int8 import calibration_batches as load_batches
from edgerun.engines.loader import gpu_machine
from edgerun.engines.manifest import ExportManifest, manifest_for
from edgerun.engines.trt_cache import EngineFileManifest, cache_key, engine_file_path, manifest_path, sha256_file
from edgerun.errors import BuildError

log = logging.getLogger("edgerun.export")


def _progress_monitor(trt: Any) -> Any:
    """Prints TensorRT's build phases with tqdm bars (TensorRT >= 10 reports them)."""
    from tqdm import tqdm

    class Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, Any] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.bars[phase_name] = tqdm(total=num_steps, desc=phase_name, leave=parent_phase is None, position=len(self.bars))

        def step_complete(self, phase_name: str, step: int) -> bool:
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Progress()


def build_engine(
    onnx_path: Path,
    precision: str = "fp16",
    calibration: Path | None = None,
    calibration_topic: str | None = None,
    calibration_batches: int = 32,
    workspace_gib: float = 2.0,
    force: bool = False,
) -> Path:
    """Build (or find in the cache) the engine file of ``onnx_path`` for this GPU; returns its path."""
    machine = gpu_machine()
    if machine is None:
        raise BuildError("building a TensorRT engine file needs TensorRT, cuda-python and a CUDA GPU; none here")
    if precision in ("int8", "best") and calibration is None:
        raise BuildError(f"--{precision} needs calibration data: --calib DIR_OF_NPZ or --calib RECORDING.mcap")
    import tensorrt as trt

    manifest = ExportManifest.load(manifest_for(onnx_path))
    profiles = manifest.profiles()
    batches, calibration_sha, calibration_cache = None, None, None
    if calibration is not None:

        batch = manifest.dims.get("batch", [1, 1, 1])[1]
        batches = load_batches(calibration, manifest.inputs, batch, calibration_topic, calibration_batches)
        calibration_sha = data_sha256(batches)
        calibration_cache = cache_path_for(calibration, manifest.model)
    onnx_sha = sha256_file(onnx_path)
    key = cache_key(onnx_sha, precision, profiles, machine, calibration_sha)
    engine_file = engine_file_path(onnx_path, precision, key)
    if engine_file.is_file() and manifest_path(engine_file).is_file() and not force:
        log.info("cache hit: %s", engine_file.name)
        return engine_file

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision in ("fp16", "best"):
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, shapes in profiles.items():
        profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    if batches is not None:

        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = entropy_calibrator(batches, calibration_cache)
        config.set_calibration_profile(profile)
    timing_path = onnx_path.parent / f"timing-{machine.gpu_name.replace(' ', '_')}-trt{machine.tensorrt_version}.cache"
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    if hasattr(config, "progress_monitor"):
        config.progress_monitor = _progress_monitor(trt)
    log.info("building %s engine file of %s for %s (TensorRT %s)", precision, onnx_path.name, machine.gpu_name, machine.tensorrt_version)
    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT failed to build {onnx_path} at {precision}; see the log above")
    timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    engine_file.write_bytes(bytes(serialized))
    EngineFileManifest(
        onnx_sha256=onnx_sha,
        precision=precision,
        profiles=profiles,
        machine=machine,
        calibration_sha256=calibration_sha,
        inputs=[s.to_json() for s in manifest.inputs],
        outputs=[s.to_json() for s in manifest.outputs],
        build_seconds=round(time.monotonic() - started, 2),
        built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    ).save(manifest_path(engine_file))
    log.info("built %s in %.1f s", engine_file.name, time.monotonic() - started)
    return engine_file
