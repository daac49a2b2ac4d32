"""The export cache: a hit reuses the file, a changed checkpoint or a corrupted file exports again."""

from __future__ import annotations

import torch

from edgerun.export.cache import cached, exported
from edgerun.models.dino_wm.checkpoint import save_checkpoint
from edgerun.models.dino_wm.config import SMALL_WALL
from edgerun.models.dino_wm.world_model import DinoWorldModel

MODEL = "dino-wm-wall-small"


def test_second_call_reuses_and_a_new_checkpoint_exports_again(tmp_path):
    assert cached(MODEL, None, tmp_path) is None
    first = exported(MODEL, None, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert exported(MODEL, None, tmp_path) == first and first.stat().st_mtime_ns == stamp

    torch.manual_seed(1)
    checkpoint = save_checkpoint(tmp_path / "trained.pt", DinoWorldModel(SMALL_WALL))
    other = exported(MODEL, str(checkpoint), tmp_path)
    assert other != first and other.parent.parent == first.parent.parent  # same model, another key
    assert exported(MODEL, str(checkpoint), tmp_path) == other


def test_a_corrupted_cached_file_is_exported_again(tmp_path):
    first = exported(MODEL, None, tmp_path)
    first.write_bytes(first.read_bytes()[:-10])
    assert cached(MODEL, None, tmp_path) is None
    again = exported(MODEL, None, tmp_path)
    assert again == first and cached(MODEL, None, tmp_path) == first
