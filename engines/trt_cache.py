"""TensorRT engine files, their manifests and the cache that keys them, as jetson-inference does.

An engine file is only valid for the TensorRT version, GPU, compute capability, precision and
shape profiles it was built with, and for one ONNX file. Each engine file carries a manifest
(``PLAN.json``) recording all of these; the cache key hashes them, so any change
selects a different file and a hit loads without rebuilding. An engine file whose manifest does
not match this machine is refused with the reason and the command that rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

Precision = Literal["fp32", "fp16", "int8", "best"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass(frozen=True)
class Machine:
    """What an engine file depends on besides its ONNX file."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"


@dataclass(frozen=True)
class EngineFileManifest:
    onnx_sha256: str
    precision: str
    profiles: dict[str, dict[str, list[int]]]  # input -> {"min": [...], "opt": [...], "max": [...]}
    machine: Machine
    calibration_sha256: str | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    build_seconds: float | None = None
    built_at: str | None = None

    def cache_key(self) -> str:
        return cache_key(self.onnx_sha256, self.precision, self.profiles, self.machine, self.calibration_sha256)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> "EngineFileManifest":
        data = json.loads(path.read_text())
        data["machine"] = Machine(**data["machine"])
        return cls(**data)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(
    onnx_sha256: str,
    precision: str,
    profiles: dict[str, dict[str, list[int]]],
    machine: Machine,
    calibration_sha256: str | None = None,
) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    fields = {
        "onnx": onnx_sha256,
        "precision": precision,
        "profiles": profiles,
        "machine": asdict(machine),
        "calibration": calibration_sha256,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def engine_file_path(onnx_path: Path, precision: str, key: str) -> Path:
    """Next to the model: ``model.fp16.<key>.engine`` (and ``….engine.json``)."""
    return onnx_path.with_name(f"{onnx_path.stem}.{precision}.{key[:16]}.engine")


def manifest_path(engine_file: Path) -> Path:
    return engine_file.with_name(engine_file.name + ".json")


def mismatches(manifest: EngineFileManifest, machine: Machine, onnx_sha256: str | None = None) -> list[str]:
    """Why an engine file cannot run here; empty when it can."""
    problems = []
    built = manifest.machine
    if built.tensorrt_version != machine.tensorrt_version:
        problems.append(f"built with TensorRT {built.tensorrt_version}, this machine has {machine.tensorrt_version}")
    if built.gpu_name != machine.gpu_name:
        problems.append(f"built for GPU '{built.gpu_name}', this machine has '{machine.gpu_name}'")
    if built.compute_capability != machine.compute_capability:
        problems.append(
            f"built for compute capability {built.compute_capability}, this GPU is {machine.compute_capability}"
        )
    if onnx_sha256 is not None and manifest.onnx_sha256 != onnx_sha256:
        problems.append("built from a different ONNX file (sha256 differs)")
    return problems


def refusal(engine_file: Path, problems: list[str], precision: str) -> str:
    flag = {"fp32": "", "fp16": " --fp16", "int8": " --int8", "best": " --best"}[precision]
    return (
        f"refusing TensorRT engine file {engine_file}: " + "; ".join(problems)
        + f". Rebuild it on this machine: edgerun build MODEL.onnx{flag}"
    )


def find_engine_file(onnx_path: Path, precision: str, profiles: dict, machine: Machine, calibration_sha256: str | None = None) -> Path | None:
    """The cached engine file for exactly this model, precision, profiles and machine, if built."""
    key = cache_key(sha256_file(onnx_path), precision, profiles, machine, calibration_sha256)
    engine_file = engine_file_path(onnx_path, precision, key)
    return engine_file if engine_file.is_file() and manifest_path(engine_file).is_file() else None
