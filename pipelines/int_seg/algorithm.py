"""The INT loop (arXiv 2501.18753): a task-generic prompt → an instance-specific prompt by
negative mining → a mask, over four components (scorer, detector, segmenter, inpainter).

Each of ``config.iterations`` iterations on the current image X:

(a) candidates: the detector, queried with the vocabulary of category names, runs on X and on
    its patches at three scales (the image, halves, quarters); boxes of all names are grouped
    per object, each object named by its best-scoring box; the names are the foreground
    candidates (each with its objects' boxes in X); ``background`` names are scorer tokens only;
(a') the task prompt as a candidate (ours, not the paper's): the detector is queried with the task
    prompt too, and its boxes make one more candidate, so where no name explains the contrast
    better (a detector that misnames the animal, a vocabulary without its name) the instance prompt
    is the task prompt itself (validation: Sα .741 → .751; robot camera validation .675 → .688);
(b) negative mining: each candidate's boxes are inpainted away and the scorer asked again;
    contrast D = max over tokens of (softmax on X − softmax on the inpainted X), tokens being
    the task prompt, the vocabulary and the background names; the candidate with the largest
    (weighted) D is this iteration's instance-specific prompt;
(b') localisation (ours, not the paper's): when that name covers several objects, each is
    removed alone and only those whose own D reaches ``localise`` × the largest go on to (d): the
    instance is the object that carries the contrast (validation: Sα .731 → .741, MAE .0210 → .0181);
(c) progressive mining: D normalised across candidates multiplies each candidate's weight for
    the next iterations' selections;
(d) semantic mask: on the input image, the detector's boxes for the prompt inside the mined
    objects plus the mined boxes, the segmenter's mask per box, weighted by the scorer's
    probability of the prompt on the mask's region: M = Σ s(m_k)·m_k (with ``refine_masks``, from
    the second iteration on the previous iteration's mask goes to the segmenter as SAM's
    ``mask_input``; off by default: it did not help on the validation split); the next image is
    X' = w·(X ⊙ M) + (1 − w)·X with X the input image (not the previous iteration's
    X': compounding the dimming drifts the images away from what the components were trained
    on; on the validation split it cost Sα .550 → .521 at I = 5).

The result is the iteration mask closest to the mean of all iteration masks, with its prompt.
Mining runs on a copy of X downscaled to ``mining_size`` (the scorer sees a small square
anyway), so inpainting costs little. Without negative mining (the paper's ablation; the rest of the
loop, (a') included, unchanged) the candidate the detector is most confident about is taken; :func:`run_generic` is the other
baseline, the task prompt straight to the detector and segmenter.

Components are duck-typed (see ``components.py`` for the Engine-backed ones and their ONNX
contracts): ``text_encoder.encode(texts) -> (n, D)``, ``scorer.probs(image, text_embeddings)
-> (Q,)`` and ``probs_batch(images, text_embeddings) -> (n, Q)``, ``detector.detect(image, text_embeddings, threshold=) -> [Detection(box, score,
query)]``, ``segmenter.set_image(image)`` / ``segment(box, previous=None) -> (mask, score)``,
``inpainter.inpaint(image, mask) -> image``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edgerun.pipelines.int_seg.inpaint import boxes_mask
from edgerun.sim.camouflage import CATEGORIES


@dataclass(frozen=True)
class INTConfig:
    iterations: int = 5  # I (the paper: 5)
    blend_weight: float = 0.3  # w in X' = w·(X ⊙ M) + (1 − w)·X (the paper: 0.3)
    scales: tuple[int, ...] = (1, 2, 4)  # patches per side: the image, halves, quarters
    min_patch_side: int = 48  # patches with a shorter side (pixels) are skipped: upsampled, they show nothing new
    candidate_threshold: float = 0.3  # detector score for a candidate name in (a)
    grounding_threshold: float = 0.3  # detector score for the prompt's boxes in (d)
    max_candidates: int = 6  # the most confident names kept for mining
    max_boxes: int = 3  # boxes per prompt segmented in (d)
    mask_threshold: float = 0.5  # a pixel is in an iteration's mask where M ≥ this × max(M)
    mining_size: int = 256  # long side of the image copy that mining inpaints and scores
    negative_mining: bool = True  # False: the paper's "without negative mining" ablation
    progressive: bool = True  # (c): carry normalised contrasts into the next iterations
    weight_floor: float = 0.05  # the least a normalised contrast scales a weight (no candidate is ruled out forever)
    refine_masks: bool = False  # (d) from the second iteration on, the previous mask as the segmenter's mask_input (validation: Sα .722 → .707)
    localise: float = 0.5  # (b'): ground only the chosen name's objects whose own contrast D ≥ this × the largest (0: all of them)
    task_candidate: bool = True  # (a'): the task prompt's own boxes compete as one more candidate (False: names only, as the paper)
    contrast_tokens: str = "task"  # (b) D over the "task" prompt's token (the paper's tokens answer the task prompt), or "all" scorer tokens
    vocabulary: tuple[str, ...] = ()  # category names the detector is queried with (the foreground names)
    background: tuple[str, ...] = ()  # background names: scorer tokens only, never detected (e.g. "background")

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"INTConfig.iterations: expected at least 1, got {self.iterations}")
        if not 0.0 <= self.blend_weight <= 1.0:
            raise ValueError(f"INTConfig.blend_weight: expected w in [0, 1], got {self.blend_weight}")
        if self.contrast_tokens not in ("all", "task"):
            raise ValueError(f"INTConfig.contrast_tokens: expected 'all' or 'task', got {self.contrast_tokens!r}")
        if not self.scales or min(self.scales) < 1:
            raise ValueError(f"INTConfig.scales: expected patches per side ≥ 1, got {self.scales}")
        seen: set[str] = set()
        for name in (*self.vocabulary, *self.background):  # a name listed twice would take two shares of the scorer's softmax
            if _key(name) in seen:
                raise ValueError(f"INTConfig: {name!r} is listed twice in the vocabulary and background names (letter case and spaces aside)")
            seen.add(_key(name))


def _key(name: str) -> str:
    """A name as compared with the others: letter case and surrounding spaces aside."""
    return name.strip().casefold()


def _without(prompt: str, names: Sequence[str]) -> list[str]:
    """``names`` less ``prompt`` (letter case and spaces aside): a prompt that is one of the names is
    scored once, as the prompt's own token."""
    return [name for name in names if _key(name) != _key(prompt)]


@dataclass
class Candidate:
    """A foreground name found in (a) (or the task prompt, (a')), its boxes (xyxy pixels in the iteration's image) and its
    best detector score."""

    name: str
    boxes: list[np.ndarray]
    score: float


@dataclass
class Grounding:
    """(d) for one prompt: the weighted soft mask M in [0, 1], its binary mask, the boxes used
    and the prompt's best image–text probability over them (the confidence)."""

    soft_mask: np.ndarray
    mask: np.ndarray
    boxes: list[np.ndarray]
    confidence: float


@dataclass
class IterationRecord:
    prompt: str
    candidates: list[str]
    detector_scores: list[float]
    contrasts: list[float]  # D per candidate (empty without negative mining)
    selection_scores: list[float]  # what the prompt was chosen by: weighted D, or the detector score
    mask: np.ndarray
    confidence: float


@dataclass
class INTResult:
    mask: np.ndarray  # bool (H, W)
    prompt: str  # the instance-specific prompt of the chosen iteration
    confidence: float
    chosen_iteration: int
    iterations: list[IterationRecord]
    timings_s: dict[str, float] = field(default_factory=dict)  # seconds per stage: text, candidates, mining, mask; total

    @property
    def scores(self) -> dict[str, float]:
        """Candidate → selection score in the chosen iteration."""
        record = self.iterations[self.chosen_iteration]
        return dict(zip(record.candidates, record.selection_scores))

    @property
    def mining_score(self) -> float:
        """The instance prompt's selection score in the chosen iteration (with negative mining its
        weighted contrast D); 0 when nothing was detected. Unlike ``confidence`` it tracks the
        mask's quality (correlation with IoU about +0.5, docs/int_seg.md)."""
        return max(self.scores.values(), default=0.0)


def is_trusted(mining_score: float, min_mining_score: float, negative_mining: bool = True) -> bool:
    """Whether a mask is worth publishing: its instance prompt mined at least ``min_mining_score`` (a
    components YAML's; 0 or less trusts every mask, even one whose contrast D came out negative).
    Without negative mining every mask is trusted: the threshold is calibrated on the contrasts that
    mining measures."""
    return not negative_mining or min_mining_score <= 0.0 or mining_score >= min_mining_score


# --- (a) candidates ----------------------------------------------------------------------
def patch_windows(height: int, width: int, scales: Sequence[int], min_side: int = 0) -> list[tuple[int, int, int, int]]:
    """xyxy windows tiling the image ``n × n`` for each ``n`` in ``scales`` (1: the image itself),
    leaving out scales whose patches would be shorter than ``min_side`` (never the image itself)."""
    windows = []
    for n in scales:
        if n > 1 and min(height, width) / n < min_side:
            continue
        xs = np.linspace(0, width, n + 1).round().astype(int)
        ys = np.linspace(0, height, n + 1).round().astype(int)
        windows += [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(n) for i in range(n)]
    return windows


def group_boxes(boxes: list[np.ndarray], scores: list[float], containment: float = 0.6) -> list[tuple[np.ndarray, list[int]]]:
    """Boxes from several patches and names grouped into (box, member indices) per object, best first.

    Greedy, best score first: a box joins a kept one when one of the two covers ``containment``
    of the smaller (a patch sees only part of an object, so its box lies inside the whole
    object's box rather than overlapping it by IoU); the kept box grows to the union of those
    it took in.
    """
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    areas = np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)
    taken = np.zeros(len(xyxy), dtype=bool)
    groups: list[tuple[np.ndarray, list[int]]] = []
    for i in np.argsort(scores, kind="stable")[::-1]:
        if taken[i]:
            continue
        width = np.clip(np.minimum(xyxy[i, 2], xyxy[:, 2]) - np.maximum(xyxy[i, 0], xyxy[:, 0]), 0, None)
        height = np.clip(np.minimum(xyxy[i, 3], xyxy[:, 3]) - np.maximum(xyxy[i, 1], xyxy[:, 1]), 0, None)
        group = ~taken & (width * height >= containment * np.maximum(np.minimum(areas[i], areas), 1e-9))
        group[i] = True
        taken |= group
        members = xyxy[group]
        union = np.concatenate([members[:, :2].min(axis=0), members[:, 2:].max(axis=0)])
        groups.append((union.astype(np.float32), [int(k) for k in np.nonzero(group)[0]]))
    return groups


def find_candidates(image: np.ndarray, vocabulary: Sequence[str], vocabulary_embeddings: np.ndarray, detector: Any,
                    config: INTConfig, task: tuple[str, np.ndarray] | None = None) -> list[Candidate]:
    """(a): detected objects over the image and its patches, the most confident first.

    Boxes of *all* names are grouped per object first, and each object takes the name of its
    best-scoring box: a detector unsure of a camouflaged animal's name fires several names on it,
    and as separate candidates removing any of them gives the same contrast D, so mining would
    find the right region but not the right name. A name's candidate holds the boxes of every
    object named so.

    (a') With ``task`` (the task prompt and its embedding), the detector is queried with it as well,
    in the same call, and its objects make one more candidate after the names (never grouped with
    them: a generic prompt fires on every animal, and would name them all)."""
    queries = vocabulary_embeddings if task is None else np.concatenate([vocabulary_embeddings, task[1][None]])
    boxes: list[np.ndarray] = []
    scores: list[float] = []
    names: list[str] = []
    task_boxes: list[np.ndarray] = []
    task_scores: list[float] = []
    for x0, y0, x1, y1 in patch_windows(*image.shape[:2], config.scales, config.min_patch_side):
        patch = np.ascontiguousarray(image[y0:y1, x0:x1])
        for detection in detector.detect(patch, queries, threshold=config.candidate_threshold):
            box = np.asarray(detection.box, dtype=np.float32) + np.array([x0, y0, x0, y0], dtype=np.float32)
            if int(detection.query) == len(vocabulary):  # the task prompt's query
                task_boxes.append(box)
                task_scores.append(float(detection.score))
                continue
            boxes.append(box)
            scores.append(float(detection.score))
            names.append(vocabulary[int(detection.query)])
    candidates: dict[str, Candidate] = {}
    for box, members in group_boxes(boxes, scores):  # best first: a name's score is its best object's
        best = max(members, key=lambda k: scores[k])
        if names[best] in candidates:
            candidates[names[best]].boxes.append(box)
        else:
            candidates[names[best]] = Candidate(names[best], [box], scores[best])
    found = list(candidates.values())[: config.max_candidates]
    if task is not None and task_boxes:
        found.append(Candidate(task[0], [box for box, _ in group_boxes(task_boxes, task_scores)], max(task_scores)))
    return found


# --- (b) and (c) negative mining -----------------------------------------------------------
def contrast(probs_original: np.ndarray, probs_removed: np.ndarray) -> float:
    """D = max over tokens of (softmax on the original − softmax with the candidate removed)."""
    return float(np.max(probs_original - probs_removed))


def downscale(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """``image`` resized so its long side is at most ``long_side``, and the factor applied."""
    factor = min(1.0, long_side / max(image.shape[:2]))
    if factor == 1.0:
        return image, 1.0
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


def mine_contrasts(image: np.ndarray, candidates: Sequence[Candidate], token_embeddings: np.ndarray, scorer: Any,
                   inpainter: Any, config: INTConfig) -> list[float]:
    """(b): D for each candidate, on a copy of ``image`` downscaled to ``config.mining_size``."""
    small, factor = downscale(image, config.mining_size)
    removed = [inpainter.inpaint(small, boxes_mask(small.shape[:2], [b * factor for b in c.boxes])) for c in candidates]
    probs = scorer.probs_batch([small, *removed], token_embeddings)  # one scorer call for all
    if config.contrast_tokens == "task":  # token 0 is the task prompt
        probs = probs[:, :1]
    return [contrast(probs[0], p) for p in probs[1:]]


def update_mining_weights(weights: dict[str, float], names: Sequence[str], contrasts: Sequence[float],
                          floor: float) -> dict[str, float]:
    """(c): each candidate's weight times its contrast normalised by the largest (at least ``floor``).
    Names never mined keep weight 1."""
    top = max(contrasts, default=0.0)
    if top <= 0.0:
        return dict(weights)
    updated = dict(weights)
    for name, value in zip(names, contrasts):
        updated[name] = weights.get(name, 1.0) * max(value / top, floor)
    return updated


def localise(image: np.ndarray, candidate: Candidate, token_embeddings: np.ndarray, components: Any,
             config: INTConfig) -> Candidate:
    """(b'): the candidate with only the objects that carry its contrast. A name's candidate holds every
    object named so, and (b) removes them together: on a view whose detector misnames the camouflaged
    animal, its name's other objects are real instances of that name, which (d) would weight highest.
    Each object is removed alone and kept when its own D reaches ``config.localise`` × the largest."""
    if len(candidate.boxes) < 2:
        return candidate
    singles = [Candidate(candidate.name, [box], candidate.score) for box in candidate.boxes]
    own = mine_contrasts(image, singles, token_embeddings, components.scorer, components.inpainter, config)
    top = max(own)
    if top <= 0.0:
        return candidate
    return Candidate(candidate.name, [box for box, d in zip(candidate.boxes, own) if d >= config.localise * top], candidate.score)


# --- (d) semantic mask ---------------------------------------------------------------------
def region_of(mask: np.ndarray, fallback: np.ndarray) -> tuple[int, int, int, int]:
    """The mask's bounding box (xyxy, integer, end-exclusive), or ``fallback`` if it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs):
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    x0, y0, x1, y1 = fallback
    return int(x0), int(y0), max(int(np.ceil(x1)), int(x0) + 1), max(int(np.ceil(y1)), int(y0) + 1)


def ground(image: np.ndarray, prompt_index: int, token_embeddings: np.ndarray, components: Any, config: INTConfig,
           mined_boxes: Sequence[np.ndarray] = (), previous: np.ndarray | None = None) -> Grounding:
    """(d): the detector's boxes for token ``prompt_index``, one segmenter mask per box,
    M = Σ s(m_k)·m_k with s the scorer's probability of the prompt on the mask's region.

    ``previous`` (a bool mask of an earlier iteration) goes to the segmenter with every box as
    SAM's ``mask_input``: the shipped decoder was trained to refine its own earlier mask with it,
    and to follow the box where the earlier mask lies elsewhere.

    With ``mined_boxes`` (the objects negative mining chose), only the prompt's boxes at least
    half inside them are kept, and the mined boxes join them: the instance prompt means *that*
    instance, and a detector unsure of camouflaged names may box a distractor for it."""
    height, width = image.shape[:2]
    detections = components.detector.detect(image, token_embeddings[prompt_index : prompt_index + 1],
                                            threshold=config.grounding_threshold)
    detections = sorted(detections, key=lambda d: d.score, reverse=True)[: config.max_boxes]
    boxes = [np.asarray(d.box, dtype=np.float32) for d in detections]
    if len(mined_boxes):
        mined = boxes_mask((height, width), mined_boxes)
        boxes = [box for box in boxes if mined[boxes_mask((height, width), [box])].mean() >= 0.5]
        boxes += [np.asarray(box, dtype=np.float32) for box in mined_boxes]
    soft = np.zeros((height, width), dtype=np.float32)
    confidence = 0.0
    if boxes:
        components.segmenter.set_image(image)
        masks, regions = [], []
        for box in boxes:
            box = np.clip(box, 0, [width, height, width, height])
            masks.append(components.segmenter.segment(box, previous)[0])
            x0, y0, x1, y1 = region_of(masks[-1], box)
            regions.append(np.ascontiguousarray(image[y0:y1, x0:x1]))
        similarities = components.scorer.probs_batch(regions, token_embeddings)[:, prompt_index]
        for similarity, mask in zip(similarities, masks):
            soft += float(similarity) * mask
        confidence = float(similarities.max())
    soft = np.clip(soft, 0.0, 1.0)
    top = float(soft.max())
    binary = soft >= config.mask_threshold * top if top > 0 else np.zeros((height, width), dtype=bool)
    return Grounding(soft, binary, boxes, confidence)


def blend(image: np.ndarray, soft_mask: np.ndarray, weight: float) -> np.ndarray:
    """X' = w·(X ⊙ M) + (1 − w)·X: the next iteration sees the masked region as it is and the
    rest dimmed by w·(1 − M)."""
    factor = weight * soft_mask[..., None] + (1.0 - weight)
    return (image.astype(np.float32) * factor + 0.5).astype(np.uint8)


def closest_to_mean(masks: Sequence[np.ndarray]) -> int:
    """Index of the mask with the least L1 distance to the mean of ``masks``."""
    stack = np.stack([m.astype(np.float32) for m in masks])
    return int(np.argmin(np.abs(stack - stack.mean(axis=0)).sum(axis=(1, 2))))


# --- the loop and the baseline ----------------------------------------------------------------
def check_inputs(image: Any, task_prompt: Any, config: INTConfig) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"INT: expected an RGB uint8 image (H, W, 3), got {got}")
    if not isinstance(task_prompt, str) or not task_prompt.strip():
        raise ValueError(f"INT: expected a non-empty task prompt (e.g. 'the camouflaged animal'), got {task_prompt!r}")
    if not config.vocabulary:
        raise ValueError("INT: INTConfig.vocabulary is empty: give the category names the detector is queried with")


class _Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - started
        return now


def run_int(image: np.ndarray, task_prompt: str, components: Any, config: INTConfig = INTConfig()) -> INTResult:
    """The INT loop on one RGB uint8 image (see the module docstring)."""
    check_inputs(image, task_prompt, config)
    clock = _Stopwatch()
    started = first = time.perf_counter()
    # (a'): a task prompt that is one of the names competes once, as the task prompt's own candidate
    # (the same words); names only (the paper), it stays a name and the scorer sees it twice
    vocabulary = _without(task_prompt, config.vocabulary) if config.task_candidate else list(config.vocabulary)
    tokens = [task_prompt, *vocabulary, *config.background]  # the scorer's tokens
    token_embeddings = components.text_encoder.encode(tokens)
    vocabulary_embeddings = token_embeddings[1 : 1 + len(vocabulary)]
    started = clock.add("text", started)
    weights: dict[str, float] = {}
    records: list[IterationRecord] = []
    current = image
    task = (task_prompt, token_embeddings[0]) if config.task_candidate else None
    for _ in range(config.iterations):
        candidates = find_candidates(current, vocabulary, vocabulary_embeddings, components.detector, config, task)
        started = clock.add("candidates", started)
        names = [c.name for c in candidates]
        contrasts: list[float] = []
        if not candidates:
            selection: list[float] = []
        elif config.negative_mining:
            contrasts = mine_contrasts(current, candidates, token_embeddings, components.scorer, components.inpainter, config)
            selection = [d * weights.get(n, 1.0) for n, d in zip(names, contrasts)]
            if config.progressive:
                weights = update_mining_weights(weights, names, contrasts, config.weight_floor)
        else:
            selection = [c.score for c in candidates]
        started = clock.add("mining", started)
        if candidates:
            best = candidates[int(np.argmax(selection))]
            if config.negative_mining and config.localise > 0:
                best = localise(current, best, token_embeddings, components, config)
            # s(m_k) of a name among the names alone (as in streaming), so the task prompt does not compete with its
            # instance; masks from the input image X: X' only steers the next iteration's candidates and mining
            previous = records[-1].mask if records and config.refine_masks and records[-1].mask.any() else None
            if best.name in vocabulary:
                grounding = ground(image, vocabulary.index(best.name), token_embeddings[1:], components, config,
                                   best.boxes, previous)
            else:  # (a'): the task prompt, scored among every token as the generic baseline is
                grounding = ground(image, 0, token_embeddings, components, config, best.boxes, previous)
            prompt = best.name
        else:  # nothing detected: the task prompt itself is the best prompt there is (grounded on X, as any mask)
            grounding = ground(image, 0, token_embeddings, components, config)
            prompt = task_prompt
        records.append(IterationRecord(prompt, names, [c.score for c in candidates], contrasts, selection,
                                       grounding.mask, grounding.confidence))
        current = blend(image, grounding.soft_mask, config.blend_weight)
        started = clock.add("mask", started)
    chosen = closest_to_mean([r.mask for r in records])
    clock.seconds["total"] = time.perf_counter() - first
    record = records[chosen]
    return INTResult(record.mask, record.prompt, record.confidence, chosen, records, dict(clock.seconds))


def run_generic(image: np.ndarray, task_prompt: str, components: Any, config: INTConfig = INTConfig()) -> INTResult:
    """The baseline: the task-generic prompt straight to the detector and segmenter (one pass of (d))."""
    check_inputs(image, task_prompt, config)
    started = time.perf_counter()
    token_embeddings = components.text_encoder.encode([task_prompt, *_without(task_prompt, config.vocabulary), *config.background])
    grounding = ground(image, 0, token_embeddings, components, config)
    record = IterationRecord(task_prompt, [], [], [], [], grounding.mask, grounding.confidence)
    elapsed = time.perf_counter() - started
    return INTResult(grounding.mask, task_prompt, grounding.confidence, 0, [record], {"mask": elapsed, "total": elapsed})


def ground_prompt(image: np.ndarray, prompt: str, components: Any, config: INTConfig = INTConfig()) -> Grounding:
    """Streaming step: (d) alone for a known instance prompt (scored against the vocabulary)."""
    check_inputs(image, prompt, config)
    tokens = [prompt, *_without(prompt, config.vocabulary), *config.background]
    return ground(image, 0, components.text_encoder.encode(tokens), components, config)


def synthetic_task_config(**overrides: Any) -> INTConfig:
    """INTConfig for the generated camouflage set: its categories, and "background" as the background token."""
    return INTConfig(**{"vocabulary": CATEGORIES, "background": ("background",), **overrides})
