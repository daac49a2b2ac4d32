"""INT components: the synthetic data set's ground truth, the shipped small components through ONNX Runtime
(exported into the model cache on first use), what they achieve on held-out images, and contract errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from edgerun.engines.manifest import ExportManifest, manifest_for
from edgerun.errors import ComponentError
from edgerun.evaluation.int_seg.component_metrics import measure
from edgerun.export.cache import cached
from edgerun.pipelines.int_seg.components import SHIPPED_CONFIG, Detection, load_components
from edgerun.sim.camouflage import CATEGORIES, TEST_SEED, SyntheticConfig, box_of, generate_sample, generate_split

HELD_OUT_IMAGES = 16
DECODER_IOU_FLOOR = 0.6  # mean mask IoU with ground-truth box prompts (the shipped decoder: 0.74 on 100 images, docs/int_seg.md)


# --- the data set -------------------------------------------------------------------------------

def _ring_colour_distance(image: np.ndarray, mask: np.ndarray) -> float:
    """Distance between an object's mean colour and that of a ring of background around it."""
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~mask
    pixels = image.astype(np.float32)
    return float(np.linalg.norm(pixels[mask].mean(0) - pixels[ring].mean(0)))


def test_synthetic_ground_truth_is_consistent():
    samples = generate_split(TEST_SEED, 24)
    camouflaged_contrast, salient_contrast = [], []
    for sample in samples:
        assert sample.image.dtype == np.uint8 and sample.image.shape == (128, 128, 3)
        assert sample.task_prompt == "the camouflaged animal"
        union = np.zeros(sample.image.shape[:2], bool)
        for instance in sample.instances:
            assert instance.category in CATEGORIES
            assert instance.mask.dtype == bool and instance.mask.any()
            assert not (union & instance.mask).any(), "instances overlap"
            union |= instance.mask
            np.testing.assert_array_equal(instance.box, box_of(instance.mask))
            (camouflaged_contrast if instance.camouflaged else salient_contrast).append(
                _ring_colour_distance(sample.image, instance.mask))
        targets = [i for i in sample.instances if i.camouflaged]
        distractors = [i for i in sample.instances if not i.camouflaged]
        assert targets and distractors
        assert {i.category for i in targets} == {sample.target_category}
        assert sample.target_category not in {i.category for i in distractors}, "a distractor shares the target's category"
        np.testing.assert_array_equal(sample.target_mask, np.logical_or.reduce([i.mask for i in targets]))
    assert np.median(camouflaged_contrast) * 3 < np.median(salient_contrast)
    scales = [max(i.box[2] - i.box[0], i.box[3] - i.box[1]) for s in samples for i in s.instances]
    assert max(scales) > 2 * min(scales), "object scale should vary"


def test_samples_depend_only_on_seed_and_index():
    again = generate_split(TEST_SEED, 3)
    first = generate_split(TEST_SEED, 2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.target_mask, b.target_mask)
    other = generate_sample(np.random.default_rng(5), SyntheticConfig(height=96, width=160))
    assert other.image.shape == (96, 160, 3) and other.target_mask.shape == (96, 160)


# --- the shipped components ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        yield cache / "edgerun" / "models"


@pytest.fixture(scope="module")
def components(model_cache):
    loaded = load_components(SHIPPED_CONFIG, backend="onnxruntime-cpu")
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def held_out_metrics(components):
    return measure(components, generate_split(TEST_SEED, HELD_OUT_IMAGES))


def test_missing_onnx_files_are_exported_into_the_model_cache_with_parity(components, model_cache):
    weights = str(SHIPPED_CONFIG.parent / "int_seg.pt")
    for name, checkpoint in (("minilm-l6-v2", None), ("int-scorer", weights), ("int-detector", weights),
                             ("int-sam-encoder", weights), ("int-sam-decoder", weights)):
        onnx_path = cached(name, checkpoint, model_cache)
        assert onnx_path is not None, name
        manifest = ExportManifest.load(manifest_for(onnx_path))
        assert manifest.parity["random"]["max_abs"] < 1e-3, name
    shipped = json.loads((SHIPPED_CONFIG.parent / "manifest.json").read_text())
    assert manifest.source["checkpoint_sha256"] == shipped["checkpoint"]["sha256"]
    stamp = cached("int-detector", weights, model_cache).stat().st_mtime_ns
    load_components(SHIPPED_CONFIG, backend="onnxruntime-cpu").close()  # the second load only loads
    assert cached("int-detector", weights, model_cache).stat().st_mtime_ns == stamp


def test_components_run_through_onnxruntime_on_any_image_size(components):
    assert {components.scorer.engine.backend, components.detector.engine.backend,
            components.segmenter.decoder.backend} == {"onnxruntime-cpu"}
    sample = generate_sample(np.random.default_rng(11), SyntheticConfig(height=120, width=200))
    texts = components.text_encoder.encode(["the camouflaged animal", "a frog", "a ball"])
    probs = components.scorer.probs(sample.image, texts)
    assert probs.shape == (3,) and abs(probs.sum() - 1) < 1e-5
    detections = components.detector.detect(sample.image, texts, threshold=0.05)
    assert detections and all(isinstance(d, Detection) for d in detections)
    for d in detections:
        assert 0 <= d.box[0] <= d.box[2] <= 200 and 0 <= d.box[1] <= d.box[3] <= 120 and d.query in (0, 1, 2)
    components.segmenter.set_image(sample.image)
    mask, score = components.segmenter.segment(sample.instances[0].box)
    assert mask.shape == (120, 200) and mask.dtype == bool and np.isfinite(score)


def test_components_reject_bad_inputs_with_clear_errors(components):
    with pytest.raises(ValueError, match=r"scorer: expected an RGB uint8 image \(H, W, 3\), got float32"):
        components.scorer.probs(np.zeros((32, 32, 3), np.float32), np.ones((1, 384), np.float32))
    with pytest.raises(ValueError, match=r"detector: expected text embeddings \(Q, 384\)"):
        components.detector.detect(np.zeros((32, 32, 3), np.uint8), np.ones((2, 512), np.float32))
    with pytest.raises(ValueError, match="xyxy box"):
        components.segmenter.set_image(np.zeros((32, 32, 3), np.uint8))
        components.segmenter.segment([1, 2, 3])


def test_detector_finds_the_named_target_better_than_chance(held_out_metrics):
    assert held_out_metrics["detector_target_hit"] > held_out_metrics["detector_chance"] + 0.2
    # the task-generic prompt is ambiguous: naming the category is what makes the target findable
    assert held_out_metrics["detector_target_hit"] > held_out_metrics["detector_generic_hit"]


def test_decoder_masks_from_ground_truth_boxes_reach_the_iou_floor(held_out_metrics):
    assert held_out_metrics["segmenter_box_iou"] > DECODER_IOU_FLOOR


# --- contract errors ----------------------------------------------------------------------------

def _config(tmp_path, scorer_onnx: str) -> str:
    """The shipped config with the scorer replaced by ``scorer_onnx`` (no export entry)."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    for section in (config["detector"], config["segmenter"]["encoder"], config["segmenter"]["decoder"]):
        section["checkpoint"] = str(SHIPPED_CONFIG.parent / section["checkpoint"])
    config["scorer"] = {"onnx": scorer_onnx, "input_size": 96}
    path = tmp_path / "components.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_a_missing_onnx_file_names_the_file_the_component_and_the_contract(tmp_path, model_cache):
    missing = tmp_path / "no-such-scorer.onnx"
    with pytest.raises(ComponentError, match=r"scorer model .*no-such-scorer\.onnx: file not found; expected an ONNX model "
                                             r"with inputs images float32 \(batch, 3, S, S\) → outputs embeddings float32 \(batch, 384\)"):
        load_components(_config(tmp_path, str(missing)), backend="onnxruntime-cpu")


class _WrongEmbedding(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean((2, 3)).repeat(1, 171)[:, :512]  # 512-d, not MiniLM's 384


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter, used on purpose
def test_an_onnx_file_that_breaks_the_contract_is_refused_with_the_contract(tmp_path, model_cache):
    wrong = tmp_path / "wrong-scorer.onnx"
    torch.onnx.export(_WrongEmbedding(), (torch.zeros(1, 3, 96, 96),), str(wrong), input_names=["images"],
                      output_names=["embeddings"], dynamic_axes={"images": {0: "batch"}}, dynamo=False)
    with pytest.raises(ComponentError, match=r"scorer model .*wrong-scorer\.onnx breaks the scorer contract: output "
                                             r"'embeddings' axis 1 is 512, expected 384\. Expected inputs images"):
        load_components(_config(tmp_path, str(wrong)), backend="onnxruntime-cpu")
    renamed = tmp_path / "renamed-scorer.onnx"
    torch.onnx.export(_WrongEmbedding(), (torch.zeros(1, 3, 96, 96),), str(renamed), input_names=["pixel_values"],
                      output_names=["embeddings"], dynamo=False)
    with pytest.raises(ComponentError, match=r"no input 'images' \(has pixel_values\)"):
        load_components(_config(tmp_path, str(renamed)), backend="onnxruntime-cpu")


def test_a_config_with_unknown_sections_is_refused(tmp_path):
    path = tmp_path / "components.yaml"
    path.write_text(SHIPPED_CONFIG.read_text() + "\nllava: {onnx: llava.onnx}\n")
    with pytest.raises(ComponentError, match="unknown keys llava"):
        load_components(path)
