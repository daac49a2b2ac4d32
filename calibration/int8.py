"""INT8 calibration data for TensorRT: batches of a model's real inputs, and the entropy calibrator.

A calibration set is a directory of ``.npz`` files (arrays named like the model's
inputs), or an MCAP recording (``edgerun record``) of the topic that feeds the model,
whose messages carry arrays named like its inputs. The calibrator writes TensorRT's
calibration cache next to the set; later builds reuse it instead of recalibrating.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgerun.engines import TensorSpec
from edgerun.errors import Int8CalibrationError
from edgerun.runtime.recording import read_recording, recording_topics


def _samples_from_npz(directory: Path, specs: Sequence[TensorSpec]) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    files = sorted(directory.glob("*.npz")) if directory.is_dir() else [directory]
    if not files:
        raise Int8CalibrationError(f"{directory}: no .npz files")
    for file in files:
        with np.load(file, allow_pickle=False) as data:
            missing = [s.name for s in specs if s.name not in data.files]
            if missing:
                raise Int8CalibrationError(f"{file}: missing input {', '.join(missing)} (has {', '.join(data.files)})")
            yield str(file), {s.name: data[s.name] for s in specs}


def _samples_from_mcap(
    path: Path, specs: Sequence[TensorSpec], topic: str | None
) -> Iterator[tuple[str, dict[str, np.ndarray]]]:

    topics = recording_topics(path)
    if topic is None:
        if len(topics) != 1:
            raise Int8CalibrationError(f"{path} holds topics {', '.join(topics)}; choose one with --topic")
        topic = topics[0]
    elif topic not in topics:
        raise Int8CalibrationError(f"{path} has no topic '{topic}' (topics: {', '.join(topics)})")
    for _, msg in read_recording(path, [topic]):
        missing = [s.name for s in specs if s.name not in msg.arrays]
        if missing:
            raise Int8CalibrationError(f"{path} topic '{topic}': messages lack {', '.join(missing)} (have {', '.join(msg.arrays)})")
        yield f"{path} ({topic} seq {msg.seq})", {s.name: msg.arrays[s.name] for s in specs}


def calibration_batches(
    source: Path, specs: Sequence[TensorSpec], batch_size: int, topic: str | None = None, max_batches: int | None = None
) -> list[dict[str, np.ndarray]]:
    """Stack samples into batches along axis 0; each sample may already hold a batch.

    Every sample is checked against ``specs`` (dtype and the non-batch dimensions).
    """
    samples = _samples_from_mcap(source, specs, topic) if source.suffix == ".mcap" else _samples_from_npz(source, specs)
    pending: dict[str, list[np.ndarray]] = {s.name: [] for s in specs}
    batches: list[dict[str, np.ndarray]] = []
    for origin, sample in samples:
        for spec in specs:
            value = np.asarray(sample[spec.name], dtype=spec.dtype)
            if value.ndim == len(spec.shape) - 1:
                value = value[None]
            fixed = [(i, d) for i, d in enumerate(spec.shape) if isinstance(d, int)]
            if value.ndim != len(spec.shape) or any(value.shape[i] != d for i, d in fixed):
                raise Int8CalibrationError(f"{origin}: input '{spec.name}' has shape {value.shape}, the model wants {spec.shape}")
            pending[spec.name].extend(value)
        while len(next(iter(pending.values()))) >= batch_size:
            batches.append({name: np.stack(rows[:batch_size]) for name, rows in pending.items()})
            for rows in pending.values():
                del rows[:batch_size]
            if max_batches is not None and len(batches) >= max_batches:
                return batches
    if not batches:
        raise Int8CalibrationError(f"{source}: fewer samples than one batch of {batch_size}")
    return batches


def cache_path_for(source: Path, model_name: str) -> Path:
    base = source if source.is_dir() else source.parent
    return base / f"{model_name}.int8-calibration.cache"


def data_sha256(batches: Sequence[dict[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for batch in batches:
        for name in sorted(batch):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(batch[name]).tobytes())
    return digest.hexdigest()


def entropy_calibrator(batches: Sequence[dict[str, np.ndarray]], cache_path: Path) -> Any:
    """A ``trt.IInt8EntropyCalibrator2`` feeding ``batches`` and keeping its cache in ``cache_path``."""
    import tensorrt as trt

    from edgerun.engines.trt_backend import check, cudart  # lazy: TensorRT, cuda-python (optional)

    rt = cudart()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.device = {name: check(rt.cudaMalloc(array.nbytes)) for name, array in batches[0].items()}

        def get_batch_size(self) -> int:
            return len(next(iter(batches[0].values())))

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= len(batches):
                return None
            batch = batches[self.index]
            self.index += 1
            for name in names:
                host = np.ascontiguousarray(batch[name])
                check(rt.cudaMemcpy(self.device[name], host.ctypes.data, host.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice))
            return [self.device[name] for name in names]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            cache_path.write_bytes(bytes(cache))

    return EntropyCalibrator()
