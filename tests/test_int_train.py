"""INT training pieces: SAM's mask_input from a previous mask, the loop views the scorer and detector
learn from, and fine-tuning from shipped components (--init-from)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerun.models.int_seg.checkpoint import KINDS
from edgerun.models.int_seg.networks import NetworkConfig, build
from edgerun.pipelines.int_seg.algorithm import INTConfig, blend
from edgerun.pipelines.int_seg.components import SHIPPED_CONFIG, load_components
from edgerun.pipelines.int_seg.images import MASK_LOGIT, mask_prompt
from edgerun.sim.camouflage import SyntheticConfig, generate_sample
from edgerun.training.int_seg.train import initialise_from, loop_view, train_main

SHIPPED_WEIGHTS = SHIPPED_CONFIG.parent / "int_seg.pt"


def test_a_previous_mask_becomes_letterboxed_sam_logits():
    mask = np.zeros((60, 120), bool)  # wide: letterboxed into the top half of a 32x32 canvas
    mask[:, 60:] = True
    logits = mask_prompt(mask, 32)
    assert logits.shape == (32, 32) and logits.dtype == np.float32
    np.testing.assert_allclose(logits[:15, 17:], MASK_LOGIT, rtol=1e-5)
    np.testing.assert_allclose(logits[:15, :15], -MASK_LOGIT, rtol=1e-5)
    np.testing.assert_allclose(logits[17:], -MASK_LOGIT, rtol=1e-5)  # padding: outside
    assert mask_prompt(mask, 32, low_res=(8, 8)).shape == (8, 8)


def test_the_shipped_decoder_refines_camouflaged_masks_from_a_previous_mask():
    components = load_components(SHIPPED_CONFIG)
    try:
        plain_ious, refined_ious = [], []
        for seed in range(5):
            sample = generate_sample(np.random.default_rng(seed), SyntheticConfig())
            components.segmenter.set_image(sample.image)
            for instance in (i for i in sample.instances if i.camouflaged):
                plain, _ = components.segmenter.segment(instance.box)
                refined, _ = components.segmenter.segment(instance.box, previous=instance.mask)
                assert refined.shape == plain.shape == instance.mask.shape
                for ious, mask in ((plain_ious, plain), (refined_ious, refined)):
                    ious.append((mask & instance.mask).sum() / max((mask | instance.mask).sum(), 1))
        # fed the true mask as SAM's mask_input, the decoder trained with it gets closer to it
        assert np.mean(refined_ious) > np.mean(plain_ious) + 0.02
        instance = sample.instances[0]
        with pytest.raises(ValueError, match=r"previous mask shape \(10, 10\) is not the image's"):
            components.segmenter.segment(instance.box, previous=np.zeros((10, 10), bool))
    finally:
        components.close()


def test_a_loop_view_is_the_image_as_a_later_int_iteration_sees_it():
    sample = generate_sample(np.random.default_rng(3), SyntheticConfig())
    instances = [(i.category, i.mask, i.box, i.camouflaged) for i in sample.instances]
    view = loop_view(sample.image, instances, np.random.default_rng(0))
    assert view.shape == sample.image.shape and view.dtype == np.uint8
    dimmed = blend(sample.image, np.zeros(sample.image.shape[:2], np.float32), INTConfig().blend_weight)
    outside = ~np.any([i.mask for i in sample.instances], axis=0)
    np.testing.assert_array_equal(view[outside], dimmed[outside])  # away from every instance: X dimmed by (1 - w)
    assert (view.astype(int) - dimmed.astype(int)).sum() > 0  # the chosen instance kept brighter


def test_fine_tuning_starts_from_the_shipped_weights_and_refuses_another_network(tmp_path):
    networks = {kind: build(kind, NetworkConfig()) for kind in KINDS}
    initialise_from(networks, SHIPPED_WEIGHTS, NetworkConfig())
    shipped = torch.load(SHIPPED_WEIGHTS, map_location="cpu", weights_only=True)
    for kind in KINDS:
        for name, value in networks[kind].state_dict().items():
            torch.testing.assert_close(value, shipped[kind][name].to(value.dtype))
    with pytest.raises(ValueError, match="does not match the training config"):
        initialise_from(networks, SHIPPED_WEIGHTS, NetworkConfig(width=16))
    assert train_main(str(tmp_path / "run"), 1, False, 0, init_from=str(tmp_path / "missing.pt")) == 2
    assert train_main(str(tmp_path / "run"), 1, False, 0, families="train,plaid") == 2
    assert train_main(str(tmp_path / "run"), 1, False, 0, families="") == 2
    assert train_main(str(tmp_path / "run"), 1, False, 0, train_images=3) == 2  # fewer than the five families
    assert not (tmp_path / "run").exists()  # nothing started


def test_resuming_on_other_training_data_is_refused_and_the_state_kept(tmp_path, capsys):
    from edgerun.training import kit
    from edgerun.training.int_seg.train import STATE_FILE, STATE_FORMAT

    state = tmp_path / "run" / STATE_FILE
    state.parent.mkdir()
    saved = {"families": ["blotches"], "train_images": 20, "robot_camera_images": 0, "seed": 0}
    kit.save_state(state, STATE_FORMAT, {"network": NetworkConfig().to_dict(), "data": saved, "step": 7})
    before = state.read_bytes()
    assert train_main(str(state.parent), 1, True, 0, families="blotches,grain-random", train_images=20) == 2
    error = capsys.readouterr().err
    assert "saved with data" in error and "grain-random" in error  # what differs, named
    assert state.read_bytes() == before  # nothing overwritten


def test_eval_on_the_robot_camera_scores_its_480x360_views(tmp_path, capsys):
    import json

    from edgerun.envs.robot_camera import robot_camera_samples
    from edgerun.evaluation.int_seg.evaluate import (
        RESULT_KEYS,
        ROBOT_CAMERA_SEED_OFFSET,
        MaskMetrics,
        eval_main,
    )
    from edgerun.pipelines.int_seg.algorithm import run_int, synthetic_task_config

    out = tmp_path / "rc.json"
    assert eval_main(str(SHIPPED_CONFIG), 2, 2, str(out), robot_camera=True) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["data"].startswith("robot camera 480x360")
    assert set(RESULT_KEYS) <= result.keys()
    assert "bar (INT beats both ablations" in capsys.readouterr().out
    # the reported INT figures are those of INT run directly on the same two 480x360 views
    samples = robot_camera_samples(2 + ROBOT_CAMERA_SEED_OFFSET, 2, width=480, height=360, pad=False)
    assert all(sample.image.shape == (360, 480, 3) for sample in samples)
    components, metrics = load_components(SHIPPED_CONFIG), MaskMetrics()
    for sample in samples:
        metrics.add(run_int(sample.image, sample.task_prompt, components, synthetic_task_config()).mask, sample.target_mask)
    direct = metrics.results()
    assert result["mae_int"] == pytest.approx(direct["mae"], abs=1e-4)
    assert result["s_alpha_int"] == pytest.approx(direct["s_alpha"], abs=1e-4)
    assert result["miou_int"] == pytest.approx(direct["miou"], abs=1e-4)


def test_mask_metrics_on_known_masks():
    from edgerun.evaluation.int_seg.evaluate import MaskMetrics

    truth = np.zeros((32, 32), dtype=bool)
    truth[8:24, 8:24] = True
    perfect, inverted, half = MaskMetrics(), MaskMetrics(), MaskMetrics()
    perfect.add(truth, truth)
    inverted.add(~truth, truth)
    left = truth.copy()
    left[:, 16:] = False  # half the object, nothing else
    half.add(left, truth)
    assert perfect.results()["mae"] == 0.0 and perfect.results()["miou"] == 1.0
    assert perfect.results()["s_alpha"] == pytest.approx(1.0)
    assert inverted.results()["mae"] == 1.0 and inverted.results()["miou"] == 0.0
    assert half.results()["mae"] == pytest.approx(128 / 1024) and half.results()["miou"] == pytest.approx(0.5)
    assert inverted.results()["s_alpha"] < half.results()["s_alpha"] < 1.0
