"""Stage 1: the offline dataset (given, or collected here), checked against the model and split by episode."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerun.engines.trt_cache import sha256_file
from edgerun.envs.collect import collect, load_dataset
from edgerun.training.dino_wm.config import TrainConfig


def _arrays_sha256(*arrays: np.ndarray) -> str:
    """Hash of the arrays' bytes: reproducible where the file's hash is not (collect stamps a time)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass
class TrainingData:
    frames: np.ndarray  # uint8 (N, T, S, S, 3)
    proprio: np.ndarray  # float32 (N, T, p)
    actions: np.ndarray  # float32 (N, T - 1, a): the executed ones
    train_episodes: np.ndarray
    val_episodes: np.ndarray
    info: dict


def dataset_paths(config: TrainConfig, out: Path, progress: bool) -> list[tuple[Path, bool]]:
    """The dataset files, collecting the missing ones: (path, collected by this call)."""

    if config.dataset:
        given = [config.dataset] if isinstance(config.dataset, str) else list(config.dataset)
        return [(Path(path), False) for path in given]
    paths = []
    for i, policy in enumerate(config.collect_policies):
        path = out / f"dataset-{policy}.npz"
        collected = not path.is_file()
        if collected:  # seeds seed, seed + 1, ...: independent episode streams per policy
            collect(config.env, config.collect_episodes, config.collect_steps, config.seed + i, path,
                    policy=policy, progress=progress)  # fmt: skip
        paths.append((path, collected))
    if not paths:
        raise ValueError("no dataset: give TrainConfig.dataset or at least one policy in collect_policies")
    return paths


def load_training_data(config: TrainConfig, out: Path, progress: bool) -> TrainingData:
    """Load (collecting if needed) every dataset, check it fits the model, hold out the last
    ``val_fraction`` of each file's episodes, and concatenate."""

    p = config.model.predictor
    size = config.model.encoder.input_size
    frames, proprio, actions, train_eps, val_eps, files = [], [], [], [], [], []
    offset = 0
    for path, collected in dataset_paths(config, out, progress):
        data = load_dataset(path)
        if data.metadata.get("env_id") not in (None, config.env):
            raise ValueError(f"dataset {path} was collected on {data.metadata.get('env_id')!r}, training is for {config.env!r}")
        if data.proprio.shape[-1] != p.proprio_dim or data.actions.shape[-1] != p.action_dim:
            raise ValueError(
                f"dataset {path}: proprio {data.proprio.shape[-1]}-d and actions {data.actions.shape[-1]}-d, the model "
                f"expects proprio_dim {p.proprio_dim} and action_dim {p.action_dim}"
            )
        if data.frames.shape[2] != size and not config.encoder_state_dict:
            raise ValueError(
                f"dataset {path}: frames are {data.frames.shape[2]} px, the encoder to pretrain runs at {size} px; "
                "collect at that size or change the encoder's input_size"
            )
        N, T = data.frames.shape[:2]
        if frames and (T, *data.frames.shape[2:]) != frames[0].shape[1:]:
            raise ValueError(f"dataset {path}: episodes of {T} frames of {data.frames.shape[2:]}, the first file has {frames[0].shape[1:]}")
        need = p.frameskip * p.history + 1
        if T < need:
            raise ValueError(f"dataset {path}: episodes of {T} frames, a window of H + 1 frames spaced by {p.frameskip} needs {need}")
        n_val = round(N * config.val_fraction) if N > 1 else 0
        n_val = min(max(n_val, 1 if N > 1 and config.val_fraction > 0 else 0), N - 1)
        frames.append(data.frames)
        proprio.append(data.proprio)
        actions.append(data.actions[:, :-1])
        train_eps.append(offset + np.arange(N - n_val))
        val_eps.append(offset + np.arange(N - n_val, N))
        offset += N
        files.append({
            "path": str(path),
            "sha256": sha256_file(path),
            "arrays_sha256": _arrays_sha256(data.frames, data.proprio, data.actions),
            "episodes": int(N),
            "frames_per_episode": int(T),
            "val_episodes": int(n_val),
            "policy": data.metadata.get("policy"),
            "collect_seed": data.metadata.get("seed"),
            "collected_by_this_run": collected,
        })  # fmt: skip
    train_eps_all, val_eps_all = np.concatenate(train_eps), np.concatenate(val_eps)
    info = {
        "files": files,
        "episodes": offset,
        "train_episodes": len(train_eps_all),
        "val_episodes": len(val_eps_all),
        "arrays_sha256": hashlib.sha256("".join(f["arrays_sha256"] for f in files).encode()).hexdigest(),
    }
    cat = (lambda arrays: arrays[0] if len(arrays) == 1 else np.concatenate(arrays))
    return TrainingData(cat(frames), cat(proprio), cat(actions), train_eps_all, val_eps_all, info)

