"""The INT loop's logic with stand-in components driven by a scene's ground truth, and the inpainters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from int_standins import COLOURS, TASK_PROMPT, make_scene, stand_in_components

from edgerun.pipelines.int_seg.algorithm import (
    INTConfig,
    blend,
    closest_to_mean,
    find_candidates,
    ground_prompt,
    group_boxes,
    patch_windows,
    run_generic,
    run_int,
    update_mining_weights,
)
from edgerun.pipelines.int_seg.components import Detection
from edgerun.pipelines.int_seg.inpaint import InpainterError, OnnxInpainter, OpenCVInpainter, boxes_mask, dilate_mask

CONFIG = INTConfig(iterations=3, vocabulary=("frog", "car", "leaf"))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture
def scene():
    """The target (a frog) is large; the distractor (a car) is what the detector is surest of."""
    return make_scene({"frog": (20, 30, 40), "car": (100, 70, 20)})


@pytest.mark.parametrize("tokens", ["task", "all"])
def test_negative_mining_picks_the_instance_whose_removal_changes_the_scores_most(scene, tokens):
    components = stand_in_components(target="frog", confidence={"frog": 0.5, "car": 0.9, "leaf": 0.9})
    result = run_int(scene.image, TASK_PROMPT, components, replace(CONFIG, contrast_tokens=tokens))
    first = result.iterations[0]
    assert first.candidates == ["car", "frog", TASK_PROMPT]  # the detector's order (the car first), then (a')
    contrasts = dict(zip(first.candidates, first.contrasts))
    if tokens == "task":  # the task prompt's probability: removing the car only raises it (the softmax renormalises)
        assert contrasts["frog"] > 0 >= contrasts["car"]
    else:  # the car's own token drops when the car is removed
        assert contrasts["frog"] > contrasts["car"] > 0
    assert result.prompt == "frog" and all(r.prompt == "frog" for r in result.iterations)
    assert iou(result.mask, scene.masks["frog"]) > 0.95
    assert result.scores["frog"] > result.scores["car"]
    assert set(result.timings_s) == {"text", "candidates", "mining", "mask", "total"}


def test_without_negative_mining_the_detectors_favourite_is_taken(scene):
    components = stand_in_components(target="frog", confidence={"frog": 0.5, "car": 0.9, "leaf": 0.9})
    result = run_int(scene.image, TASK_PROMPT, components, replace(CONFIG, negative_mining=False))
    assert result.prompt == "car" and result.iterations[0].contrasts == []
    assert iou(result.mask, scene.masks["car"]) > 0.95


def test_progressive_mining_multiplies_normalised_contrasts_into_later_selections(scene):
    components = stand_in_components(target="frog", confidence={"frog": 0.5, "car": 0.9, "leaf": 0.9})
    first, second = run_int(scene.image, TASK_PROMPT, components, CONFIG).iterations[:2]
    weights = {name: max(d / max(first.contrasts), CONFIG.weight_floor) for name, d in zip(first.candidates, first.contrasts)}
    expected = [d * weights[name] for name, d in zip(second.candidates, second.contrasts)]
    np.testing.assert_allclose(second.selection_scores, expected, rtol=1e-6)
    plain = run_int(scene.image, TASK_PROMPT, components, replace(CONFIG, progressive=False)).iterations[1]
    np.testing.assert_allclose(plain.selection_scores, plain.contrasts)


def test_mining_weights_are_normalised_floored_and_kept_for_unseen_names():
    weights = update_mining_weights({"a": 0.5}, ["a", "b", "c"], [0.2, 0.4, 0.0], floor=0.05)
    assert weights == pytest.approx({"a": 0.25, "b": 1.0, "c": 0.05})
    assert update_mining_weights({"a": 0.5}, ["a"], [0.0], floor=0.05) == {"a": 0.5}  # nothing changed: no evidence


def test_final_mask_is_the_iteration_mask_closest_to_the_mean():
    base = np.zeros((10, 10), bool)
    a, b, c = base.copy(), base.copy(), base.copy()
    a[2:6, 2:6] = True
    b[2:6, 2:7] = True  # nearly a
    c[6:9, 6:9] = True  # an outlier
    assert closest_to_mean([c, a, b]) in (1, 2)
    assert closest_to_mean([a, c, a]) == 0


def test_generic_baseline_sends_the_task_prompt_straight_to_the_detector(scene):
    components = stand_in_components(target="frog", confidence={"frog": 0.5, "car": 0.9, "leaf": 0.9})
    result = run_generic(scene.image, TASK_PROMPT, components, CONFIG)
    assert components.detector.queries == [[TASK_PROMPT]]
    assert result.prompt == TASK_PROMPT
    # The detector answers the generic prompt with both objects; M = Σ s(m_k)·m_k then keeps the
    # one whose region the scorer matches to the prompt.
    assert result.mask[scene.masks["frog"]].mean() > 0.9 and not result.mask[scene.masks["car"]].any()


def test_streaming_grounds_a_known_prompt_without_mining(scene):
    components = stand_in_components(target="frog", confidence={"frog": 0.5, "car": 0.9, "leaf": 0.9})
    grounding = ground_prompt(scene.image, "frog", components, CONFIG)
    assert components.detector.queries == [["frog"]]
    assert iou(grounding.mask, scene.masks["frog"]) > 0.95 and grounding.confidence > 0.5
    # an instance prompt that is the task prompt itself (a') is grounded as the generic baseline grounds it
    task = ground_prompt(scene.image, TASK_PROMPT, components, CONFIG)
    assert components.detector.queries[-1] == [TASK_PROMPT]
    np.testing.assert_array_equal(task.mask, run_generic(scene.image, TASK_PROMPT, components, CONFIG).mask)
    assert iou(task.mask, scene.masks["frog"]) > 0.95


def test_next_image_blends_the_masked_region_back_in():
    image = np.full((4, 4, 3), 100, np.uint8)
    soft = np.zeros((4, 4), np.float32)
    soft[:2] = 1.0
    out = blend(image, soft, 0.3)
    assert (out[:2] == 100).all() and (out[2:] == 70).all()  # X' = w·X⊙M + (1 − w)·X


def test_patches_cover_the_image_at_each_scale_and_partial_boxes_merge():
    windows = patch_windows(480, 640, (1, 2, 4))
    assert len(windows) == 1 + 4 + 16 and windows[0] == (0, 0, 640, 480) and windows[-1] == (480, 360, 640, 480)
    assert len(patch_windows(128, 128, (1, 2, 4), min_side=48)) == 1 + 4  # 32-pixel quarters are left out
    whole, part, other = np.array([0, 0, 40, 40.0]), np.array([20, 20, 40, 40.0]), np.array([60, 60, 80, 80.0])
    merged = group_boxes([part, whole, other], [0.9, 0.8, 0.5])
    assert [members for _, members in merged] == [[0, 1], [2]]  # best first
    np.testing.assert_array_equal(merged[0][0], whole)  # the part grows to the whole object's box
    np.testing.assert_array_equal(merged[1][0], other)


def test_bad_inputs_are_refused_clearly(scene):
    components = stand_in_components(target="frog", confidence={"frog": 0.5, "car": 0.9, "leaf": 0.9})
    with pytest.raises(ValueError, match="non-empty task prompt"):
        run_int(scene.image, "  ", components, CONFIG)
    with pytest.raises(ValueError, match=r"expected an RGB uint8 image \(H, W, 3\), got float32 \(120, 160\)"):
        run_int(scene.image[..., 0].astype(np.float32), TASK_PROMPT, components, CONFIG)
    with pytest.raises(ValueError, match="vocabulary is empty"):
        run_int(scene.image, TASK_PROMPT, components, INTConfig())


# --- inpainting -----------------------------------------------------------------------------
def gradient_with_square() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:64, 0:96].astype(np.float32)
    background = np.stack([x * 2, y * 3, 60 + x + y], axis=2).clip(0, 255).astype(np.uint8)
    image = background.copy()
    square = boxes_mask((64, 96), [(30, 20, 50, 40)])
    image[square] = (255, 0, 0)
    return background, image, square


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_opencv_inpainting_removes_the_region_and_keeps_the_rest(method):
    background, image, square = gradient_with_square()
    out = OpenCVInpainter(method=method, dilation=2).inpaint(image, square)
    assert np.abs(out[square].astype(int) - background[square]).mean() < 12  # the red square is gone
    outside = ~dilate_mask(square, 2)
    assert (out[outside] == image[outside]).all()


def test_inpainter_refuses_a_mask_of_the_wrong_shape():
    _, image, _ = gradient_with_square()
    with pytest.raises(ValueError, match=r"expected a mask of shape \(64, 96\)"):
        OpenCVInpainter().inpaint(image, np.zeros((10, 10), bool))


def export_mean_fill(path, inputs=("image", "mask")) -> None:
    """A tiny learned-inpainter stand-in: fills the masked pixels with the mean of the rest."""
    import torch

    class MeanFill(torch.nn.Module):
        def forward(self, image, mask):
            keep = 1.0 - mask
            mean = (image * keep).sum(dim=(2, 3), keepdim=True) / keep.sum(dim=(2, 3), keepdim=True)
            return image * keep + mean * mask

    torch.onnx.export(MeanFill(), (torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)), str(path),
                      input_names=list(inputs), output_names=["inpainted"], dynamo=False)


def test_onnx_inpainter_fills_only_the_region(tmp_path):
    path = tmp_path / "fill.onnx"
    export_mean_fill(path)
    _, image, square = gradient_with_square()
    out = OnnxInpainter(path, backend="onnxruntime-cpu", dilation=0).inpaint(image, square)
    assert (out[~square] == image[~square]).all()
    assert out[square][:, 0].max() < 200  # no red left: filled from the (resized) rest of the image


def test_onnx_inpainter_names_the_file_and_the_contract(tmp_path):
    with pytest.raises(InpainterError, match=r"missing\.onnx: file not found \(expected an ONNX model with inputs 'image'"):
        OnnxInpainter(tmp_path / "missing.onnx")
    path = tmp_path / "wrong.onnx"
    export_mean_fill(path, inputs=("pixels", "holes"))
    with pytest.raises(InpainterError, match=r"wrong\.onnx: inputs \['holes', 'pixels'\] .* break the contract"):
        OnnxInpainter(path, backend="onnxruntime-cpu")


def test_evaluation_reads_fewer_iterations_off_one_run(scene):
    from edgerun.evaluation.int_seg.evaluate import first_iterations

    components = stand_in_components(target="frog", confidence={"frog": 0.5, "car": 0.9, "leaf": 0.9})
    longer = run_int(scene.image, TASK_PROMPT, components, replace(CONFIG, iterations=3))
    for count in (1, 2):
        shorter = run_int(scene.image, TASK_PROMPT, components, replace(CONFIG, iterations=count))
        np.testing.assert_array_equal(first_iterations(longer, count), shorter.mask)


def test_names_fired_on_one_object_become_one_candidate_named_by_its_best_box():
    class TwoNamesOnOneAnimal:
        """'frog' and 'leaf' both box the animal (frog surer); 'car' boxes another object."""

        def detect(self, image, text_embeddings, threshold=0.3):
            if image.shape[:2] != (64, 64):  # the whole image only
                return []
            return [Detection(np.array([10, 10, 30, 30], np.float32), 0.6, 0), Detection(np.array([12, 11, 30, 29], np.float32), 0.5, 2),
                    Detection(np.array([40, 40, 60, 60], np.float32), 0.9, 1)]

    candidates = find_candidates(np.zeros((64, 64, 3), np.uint8), ["frog", "car", "leaf"], np.zeros((3, 384), np.float32),
                                 TwoNamesOnOneAnimal(), CONFIG)
    assert [c.name for c in candidates] == ["car", "frog"] and [c.score for c in candidates] == [0.9, 0.6]
    np.testing.assert_array_equal(candidates[1].boxes[0], [10, 10, 30, 30])  # the union of the animal's boxes


def test_localisation_grounds_only_the_objects_of_the_mined_name_that_carry_its_contrast():
    """Two frogs: removing the large one empties the task prompt's evidence, removing the small one
    barely moves it. The instance is the large one; without localisation both are masked."""
    scene = make_scene({"frog": (20, 30, 40), "car": (100, 70, 20)})
    small = np.zeros_like(scene.masks["frog"])
    small[8:14, 130:136] = True
    scene.image[small] = COLOURS["frog"]
    components = stand_in_components(target="frog", confidence={"frog": 0.9, "car": 0.9, "leaf": 0.9})
    localised = run_int(scene.image, TASK_PROMPT, components, CONFIG)
    frogs = find_candidates(scene.image, ["frog"], components.text_encoder.encode(["frog"]), components.detector, CONFIG)[0]
    assert localised.prompt == "frog" and [130, 8, 136, 14] in [box.tolist() for box in frogs.boxes]  # one name, both frogs
    assert iou(localised.mask, scene.masks["frog"]) > 0.95 and not (localised.mask & small).any()
    every = run_int(scene.image, TASK_PROMPT, components, replace(CONFIG, localise=0.0))
    assert (every.mask & small).sum() == small.sum() and iou(every.mask, scene.masks["frog"] | small) > 0.95


def test_the_task_prompt_is_the_instance_prompt_when_no_name_explains_the_contrast():
    """(a'): the vocabulary lacks the animal's name, so the names' only candidate is the car, whose
    removal raises the task prompt's probability. The task prompt's own boxes (every object) make
    one more candidate; mining it, then localising it, leaves the frog. Names only: the car."""
    scene = make_scene({"frog": (20, 30, 40), "car": (100, 70, 20)})
    components = stand_in_components(target="frog", confidence={"frog": 0.9, "car": 0.9, "leaf": 0.9})
    config = replace(CONFIG, vocabulary=("car", "leaf"))
    result = run_int(scene.image, TASK_PROMPT, components, config)
    first = result.iterations[0]
    assert first.candidates == ["car", TASK_PROMPT] and first.contrasts[0] <= 0 < first.contrasts[1]
    assert result.prompt == TASK_PROMPT and iou(result.mask, scene.masks["frog"]) > 0.95
    assert result.mining_score == max(first.selection_scores) > 0
    names_only = run_int(scene.image, TASK_PROMPT, components, replace(config, task_candidate=False))
    assert names_only.iterations[0].candidates == ["car"] and names_only.prompt == "car"
    assert iou(names_only.mask, scene.masks["car"]) > 0.95
    # a task prompt that is one of the names competes once, as the task prompt (the same words)
    assert run_int(scene.image, "car", components, config).iterations[0].candidates == ["car"]


def test_a_task_prompt_that_is_one_of_the_names_is_scored_once_and_a_name_listed_twice_is_refused():
    """A token listed twice takes two shares of the scorer's softmax: the mining score of "car" fell
    by half when the vocabulary also held it."""
    scene = make_scene({"frog": (20, 30, 40), "car": (100, 70, 20)})
    components = stand_in_components(target="frog", confidence={"frog": 0.9, "car": 0.9, "leaf": 0.9})
    seen: list[list[str]] = []
    encode = components.text_encoder.encode
    components.text_encoder.encode = lambda texts: seen.append(list(texts)) or encode(texts)
    config = replace(CONFIG, vocabulary=("Car ", "leaf"))
    run_int(scene.image, "car", components, config)
    run_generic(scene.image, "car", components, config)
    ground_prompt(scene.image, "car", components, config)
    assert seen and all(sum(text.strip().casefold() == "car" for text in texts) == 1 for texts in seen)
    with pytest.raises(ValueError, match="'Frog ' is listed twice"):
        replace(CONFIG, vocabulary=("frog", "Frog "))
