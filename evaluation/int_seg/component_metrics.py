"""How well a set of INT components does its parts of the job, on samples of the synthetic set.

Measured through the component wrappers (so through whatever engines the config names):
- ``detector_target_hit``: the top box for the target's category ("a frog") overlaps a camouflaged
  instance with IoU ≥ 0.5; ``detector_chance``: the same for an instance picked at random;
  ``detector_generic_hit``: the top box for the task-generic prompt does (the ambiguity INT resolves);
- ``segmenter_box_iou`` (``_camouflaged``): mean mask IoU with the ground-truth box as the prompt;
- ``scorer_crop_accuracy``: a crop around an instance is given its own category among all of them;
- ``scorer_mining_accuracy``: removing (inpainting) the camouflaged instance gives a larger contrast
  D = max over tokens of (p_original − p_removed), tokens = [task prompt, "a <category>"…], than
  removing any distractor — negative mining's choice, with the scorer alone.
"""

from __future__ import annotations

import numpy as np

from edgerun.sim.camouflage import CATEGORIES, Sample


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _crop(image: np.ndarray, box: np.ndarray, grow: float = 1.5) -> np.ndarray:
    cx, cy, half = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, max(box[2] - box[0], box[3] - box[1]) * grow / 2 + 2
    h, w = image.shape[:2]
    return np.ascontiguousarray(image[int(max(0, cy - half)):int(min(h, cy + half)), int(max(0, cx - half)):int(min(w, cx + half))])


def measure(components, samples: list[Sample]) -> dict[str, float]:
    category_texts = [f"a {c}" for c in CATEGORIES]
    categories = components.text_encoder.encode(category_texts)
    tokens = components.text_encoder.encode([samples[0].task_prompt, *category_texts])
    hits, chance, generic_hits, ious, camo_ious, crops, mined = [], [], [], [], [], [], []
    for sample in samples:
        targets = [i for i in sample.instances if i.camouflaged]
        chance.append(len(targets) / len(sample.instances))
        for prompt, record in ((categories[CATEGORIES.index(sample.target_category)][None], hits), (tokens[:1], generic_hits)):
            found = components.detector.detect(sample.image, prompt, threshold=0.0)
            record.append(bool(found) and max(box_iou(found[0].box, t.box) for t in targets) >= 0.5)
        components.segmenter.set_image(sample.image)
        for instance in sample.instances:
            mask, _ = components.segmenter.segment(instance.box)
            (camo_ious if instance.camouflaged else ious).append(mask_iou(mask, instance.mask))
            probs = components.scorer.probs(_crop(sample.image, instance.box), categories)
            crops.append(int(np.argmax(probs)) == CATEGORIES.index(instance.category))
        original = components.scorer.probs(sample.image, tokens)
        contrasts = [float(np.max(original - components.scorer.probs(components.inpainter.inpaint(sample.image, i.mask), tokens)))
                     for i in sample.instances]
        best_target = max(c for c, i in zip(contrasts, sample.instances) if i.camouflaged)
        others = [c for c, i in zip(contrasts, sample.instances) if not i.camouflaged]
        mined.append(not others or best_target > max(others))
    return {
        "detector_target_hit": float(np.mean(hits)),
        "detector_chance": float(np.mean(chance)),
        "detector_generic_hit": float(np.mean(generic_hits)),
        "segmenter_box_iou": float(np.mean(ious + camo_ious)),
        "segmenter_box_iou_camouflaged": float(np.mean(camo_ious)),
        "scorer_crop_accuracy": float(np.mean(crops)),
        "scorer_mining_accuracy": float(np.mean(mined)),
        "images": len(samples),
    }
