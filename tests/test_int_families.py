"""Camouflage image families: the original family unchanged, training families around it, held-out
families whose textures, palette and one category no training family draws, the evaluation on
them beside the empty mask, and the confidence gate's calibration."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from edgerun.evaluation.int_seg.evaluate import MaskMetrics
from edgerun.evaluation.int_seg.families import families_main
from edgerun.evaluation.int_seg.gate import choose_threshold, gated
from edgerun.pipelines.int_seg.algorithm import is_trusted
from edgerun.pipelines.int_seg.components import SHIPPED_CONFIG
from edgerun.sim.camouflage import (
    CATEGORIES,
    FAMILIES,
    HOLDOUT_CATEGORIES,
    HOLDOUT_FAMILIES,
    TEST_SEED,
    TEXTURES,
    TRAIN_FAMILIES,
    SyntheticConfig,
    generate_families,
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


def test_training_families_vary_around_the_original_and_never_draw_a_held_out_texture():
    held_out_textures = {FAMILIES[name].texture for name in HOLDOUT_FAMILIES}
    assert not held_out_textures & {FAMILIES[name].texture for name in TRAIN_FAMILIES} and TRAIN_FAMILIES[0] == "blotches"
    assert set(TEXTURES) == held_out_textures | {FAMILIES[name].texture for name in TRAIN_FAMILIES}
    held_out_palettes = {FAMILIES[name].palette for name in HOLDOUT_FAMILIES} - {"random"}
    assert held_out_palettes and not held_out_palettes & {FAMILIES[name].palette for name in TRAIN_FAMILIES}
    assert not set(HOLDOUT_CATEGORIES) & {category for name in TRAIN_FAMILIES for category in FAMILIES[name].targets}
    samples = generate_families(TEST_SEED, 8, TRAIN_FAMILIES, height=96, width=128)
    assert all(s.image.shape == (96, 128, 3) and s.target_mask.any() for s in samples)
    for i in (0, len(TRAIN_FAMILIES) + 1):  # sample i comes from family i % k and depends on (seed, i) alone
        family = replace(FAMILIES[TRAIN_FAMILIES[i % len(TRAIN_FAMILIES)]], height=96, width=128)
        np.testing.assert_array_equal(samples[i].image, generate_sample(np.random.default_rng([TEST_SEED, i]), family).image)
    with pytest.raises(ValueError, match="unknown plaid"):
        generate_families(0, 2, ("blotches", "plaid"))


def test_holdout_family_evaluation_reports_each_method_beside_the_empty_mask(tmp_path, capsys):
    out = tmp_path / "families.json"
    assert families_main(str(SHIPPED_CONFIG), 1, str(out)) == 0
    result = json.loads(out.read_text())
    assert set(result["by_family"]) == set(HOLDOUT_FAMILIES) and result["images_per_family"] == 1
    for method in ("int", "int_gated", "no_mining", "generic", "all_zero"):
        assert 0.0 <= result[f"s_alpha_{method}"] <= 1.0 and 0.0 <= result[f"mae_{method}"] <= 1.0
    for family in result["by_family"].values():  # one image: the gate published INT's mask or the empty one
        gated_figures = (family["s_alpha_int_gated"], family["mae_int_gated"])
        assert gated_figures in {(family["s_alpha_int"], family["mae_int"]), (family["s_alpha_all_zero"], family["mae_all_zero"])}
    zero = MaskMetrics()  # the empty mask's figures are those of the metrics on empty masks
    for family in HOLDOUT_FAMILIES:
        sample = generate_split(TEST_SEED, 1, replace(FAMILIES[family], height=240, width=320))[0]
        zero.add(np.zeros_like(sample.target_mask), sample.target_mask)
    assert result["mae_all_zero"] == pytest.approx(zero.results()["mae"], abs=1e-4)  # the per-family figures are rounded to 4 places
    assert len(result["bars"]) == 3 and "bar s_alpha_int >= 0.60" in capsys.readouterr().out


def test_the_gate_takes_the_lowest_mae_that_keeps_s_alpha_within_the_tolerance():
    # three masks: a good one (high score), a wrong one (middle score), a fair one (low score)
    rows = [{"mining_score": 0.5, "s_alpha_int": 0.9, "s_alpha_empty": 0.5, "mae_int": 0.01, "mae_empty": 0.03},
            {"mining_score": 0.2, "s_alpha_int": 0.45, "s_alpha_empty": 0.5, "mae_int": 0.06, "mae_empty": 0.02},
            {"mining_score": 0.1, "s_alpha_int": 0.62, "s_alpha_empty": 0.5, "mae_int": 0.02, "mae_empty": 0.025}]
    everything = gated(rows, 0.0)
    assert everything["s_alpha"] == pytest.approx((0.9 + 0.45 + 0.62) / 3) and everything["trusted"] == 1.0
    assert gated(rows, float("inf"))["mae"] == pytest.approx(0.025)
    threshold, table = choose_threshold(rows, tolerance=0.05)  # empty the wrong and the fair mask: Sα -0.023, MAE 0.030 -> 0.018
    assert [row["threshold"] for row in table] == [0.0, 0.1, 0.2, 0.5] and threshold == 0.5
    assert table[3]["mae"] == pytest.approx((0.01 + 0.02 + 0.025) / 3) and table[3]["trusted"] == pytest.approx(1 / 3)
    assert choose_threshold(rows, tolerance=0.01)[0] == 0.0  # nothing lowers MAE within 0.01 of Sα: every mask trusted
    rows[1]["mining_score"] = -0.01  # removing the candidate raised the prompt's probability: D < 0
    assert gated(rows, 0.0)["trusted"] == 1.0  # 0 trusts every mask, whatever its score
    assert is_trusted(-0.01, 0.0) and not is_trusted(-0.01, 0.05) and is_trusted(-0.01, 0.05, negative_mining=False)
