"""``edgerun train dino-wm-map``: the free-space map of an env from its training data (``free_space.npz``).

The map (``pipelines/dino_wm/free_space.py``) holds where the training data's agent went. ``edgerun
train dino-wm`` writes one beside every ``model.pt`` it trains; this command builds one for a model
trained before that, or from other data: the given datasets, or the env recipe's own (the files the
trainer collects, ``dataset-POLICY.npz`` in ``--work``, collected there when missing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgerun.envs import env_name
from edgerun.envs.collect import load_dataset
from edgerun.pipelines.dino_wm.free_space import FILE_NAME, FreeSpaceMap
from edgerun.training.dino_wm.config import RECIPES, TrainConfig
from edgerun.training.dino_wm.data import dataset_paths


def free_space_of(env: str, proprio: np.ndarray) -> FreeSpaceMap:
    """The map of ``env`` (its recipe's grid) from the positions in ``proprio`` (..., P >= 2)."""
    if env not in RECIPES:
        raise ValueError(f"no free-space grid for {env!r}; known: {sorted(RECIPES)}")
    recipe = RECIPES[env]
    return FreeSpaceMap.from_positions(np.asarray(proprio)[..., :2], recipe.map_cell, recipe.map_bounds)


def map_main(env: str, data: list[str] | None, out: str | None, work: str | None, seed: int = 0) -> int:
    """Build and save the map; print what it covers. 0, or 2 with one line for bad arguments or data."""
    work_dir = Path(work or f"runs/dino_wm_{env_name(env)}")
    target = Path(out or f"checkpoints/dino_wm_{env_name(env)}/{FILE_NAME}")
    try:
        config = TrainConfig.for_env(env, out=str(work_dir), seed=seed, dataset=list(data) if data else None)
        work_dir.mkdir(parents=True, exist_ok=True)
        paths = [path for path, _ in dataset_paths(config, work_dir, progress=True)]
        free_space = free_space_of(env, np.concatenate([load_dataset(path).proprio[..., :2].reshape(-1, 2) for path in paths]))
    except (OSError, ValueError) as error:
        print(f"edgerun train dino-wm-map: {error}", file=sys.stderr)
        return 2
    target.parent.mkdir(parents=True, exist_ok=True)
    free_space.save(target)
    print(f"wrote {target}: {int(free_space.free.sum())} of {free_space.free.size} cells of {free_space.cell} free, "
          f"from {', '.join(str(p) for p in paths)}")
    return 0
