"""Camouflage image families: the training family unchanged, held-out families that differ in
texture, palette, lighting, noise, scale, clutter and category, and the evaluation on them beside
the empty mask."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from edgerun.evaluation.int_seg.evaluate import MaskMetrics
from edgerun.evaluation.int_seg.families import families_main
from edgerun.pipelines.int_seg.components import SHIPPED_CONFIG
from edgerun.sim.camouflage import (
    CATEGORIES,
    FAMILIES,
    HOLDOUT_CATEGORIES,
    HOLDOUT_FAMILIES,
    TEST_SEED,
    SyntheticConfig,
    generate_sample,
    generate_split,
)


def test_the_training_family_draws_the_images_the_shipped_components_trained_on():
    sample = generate_sample(np.random.default_rng([2, 0]))  # measured before the families existed
    assert sample.image.mean() == pytest.approx(157.72054036458334, abs=1e-9) and sample.target_category == "butterfly"
    assert FAMILIES["blotches"] == SyntheticConfig()


def test_held_out_families_differ_from_training_and_name_an_unseen_category():
    assert not set(HOLDOUT_CATEGORIES) & set(CATEGORIES) and "blotches" not in HOLDOUT_FAMILIES
    for family in HOLDOUT_FAMILIES:
        config = FAMILIES[family]
        assert (config.texture, config.palette) != ("blotches", "random") and set(HOLDOUT_CATEGORIES) <= set(config.targets)
        samples = generate_split(TEST_SEED, 14, replace(config, height=96, width=128))
        assert all(s.image.shape == (96, 128, 3) and s.target_mask.any() for s in samples)
        assert Counter(s.target_category for s in samples)["lizard"] >= 1
    assert all(s.target_category != "lizard" for s in generate_split(TEST_SEED, 30))
    with pytest.raises(ValueError, match="texture in"):
        SyntheticConfig(texture="plaid")
    with pytest.raises(ValueError, match="targets"):
        SyntheticConfig(targets=("cup",))


def test_holdout_family_evaluation_reports_each_method_beside_the_empty_mask(tmp_path, capsys):
    out = tmp_path / "families.json"
    assert families_main(str(SHIPPED_CONFIG), 1, str(out)) == 0
    result = json.loads(out.read_text())
    assert set(result["by_family"]) == set(HOLDOUT_FAMILIES) and result["images_per_family"] == 1
    for method in ("int", "no_mining", "generic", "all_zero"):
        assert 0.0 <= result[f"s_alpha_{method}"] <= 1.0 and 0.0 <= result[f"mae_{method}"] <= 1.0
    zero = MaskMetrics()  # the empty mask's figures are those of the metrics on empty masks
    for family in HOLDOUT_FAMILIES:
        sample = generate_split(TEST_SEED, 1, replace(FAMILIES[family], height=240, width=320))[0]
        zero.add(np.zeros_like(sample.target_mask), sample.target_mask)
    assert result["mae_all_zero"] == pytest.approx(zero.results()["mae"], abs=1e-4)  # the per-family figures are rounded to 4 places
    assert len(result["bars"]) == 3 and "bar s_alpha_int >= 0.60" in capsys.readouterr().out
