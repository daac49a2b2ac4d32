"""Stand-in INT components driven by a scene's ground truth, to test the loop's logic alone.

A scene is a grey, slightly noisy background with flat-coloured squares, one colour per name.
The stand-ins recognise a name by chromaticity (colour / brightness), so the loop's dimming of
the background (X' = w·(X ⊙ M) + (1 − w)·X) does not hide objects from them, while inpainting,
which fills a region with grey, does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edgerun.pipelines.int_seg.components_config import ComponentsConfig
from edgerun.pipelines.int_seg.inpaint import OpenCVInpainter

COLOURS = {"frog": (200, 40, 40), "car": (40, 40, 200), "leaf": (40, 200, 40)}
TASK_PROMPT = "the camouflaged animal"


@dataclass
class Scene:
    image: np.ndarray
    masks: dict[str, np.ndarray]


def make_scene(objects: dict[str, tuple[int, int, int]], size: tuple[int, int] = (120, 160), seed: int = 0) -> Scene:
    """``objects``: name → (left, top, side) of its square."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(128, 4, size=(*size, 1)), 0, 255).repeat(3, axis=2).astype(np.uint8)
    masks = {}
    for name, (left, top, side) in objects.items():
        mask = np.zeros(size, dtype=bool)
        mask[top : top + side, left : left + side] = True
        image[mask] = COLOURS[name]
        masks[name] = mask
    return Scene(image, masks)


def colour_mask(image: np.ndarray, name: str) -> np.ndarray:
    pixels = image.astype(np.float32)
    chroma = pixels / np.maximum(pixels.sum(axis=2, keepdims=True), 1.0)
    target = np.asarray(COLOURS[name], np.float32) / sum(COLOURS[name])
    return (np.abs(chroma - target).max(axis=2) < 0.08) & (pixels.sum(axis=2) > 60)


class StandInTextEncoder:
    """One axis per distinct text; remembers which text each axis is."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), np.float32)
        for row, text in enumerate(texts):
            if text not in self.texts:
                self.texts.append(text)
            out[row, self.texts.index(text)] = 1.0
        return out

    def decode(self, embeddings: np.ndarray) -> list[str]:
        return [self.texts[int(i)] for i in np.argmax(embeddings, axis=1)]


@dataclass
class Detection:
    box: np.ndarray
    score: float
    query: int


@dataclass
class StandInDetector:
    """Finds each queried name by colour, with a fixed confidence per name. Any other text
    (a task prompt) is answered with every object it sees, at the object's confidence: a
    generic prompt does not say which object is meant."""

    text: StandInTextEncoder
    confidence: dict[str, float]
    queries: list[list[str]] = field(default_factory=list)

    def detect(self, image: np.ndarray, text_embeddings: np.ndarray, threshold: float = 0.3) -> list[Detection]:
        texts = self.text.decode(text_embeddings)
        self.queries.append(texts)
        found = []
        for query, text in enumerate(texts):
            for name in COLOURS if text not in COLOURS else [text]:
                count, _, stats, _ = cv2.connectedComponentsWithStats(colour_mask(image, name).astype(np.uint8))
                for left, top, width, height, area in stats[1:]:
                    if area >= 4 and self.confidence[name] >= threshold:
                        box = np.array([left, top, left + width, top + height], np.float32)
                        found.append(Detection(box, self.confidence[name], query))
        return found


@dataclass
class StandInScorer:
    """Softmax over tokens of evidence: a name's evidence is the area of its colour; the task
    prompt's evidence is the area of ``target`` (the oracle knows what the task means)."""

    text: StandInTextEncoder
    target: str
    logit_scale: float = 40.0

    def probs_batch(self, images: list[np.ndarray], text_embeddings: np.ndarray) -> np.ndarray:
        return np.stack([self.probs(image, text_embeddings) for image in images])

    def probs(self, image: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
        area = image.shape[0] * image.shape[1]
        evidence = []
        for text in self.text.decode(text_embeddings):
            name = self.target if text == TASK_PROMPT else text
            evidence.append(np.sqrt(colour_mask(image, name).sum() / area))
        logits = self.logit_scale * np.asarray(evidence)
        e = np.exp(logits - logits.max())
        return e / e.sum()


class StandInSegmenter:
    """The coloured pixels inside the box."""

    def set_image(self, image: np.ndarray) -> None:
        self.image = image

    def segment(self, box: np.ndarray, previous: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        x0, y0, x1, y1 = np.round(box).astype(int)
        inside = np.zeros(self.image.shape[:2], dtype=bool)
        inside[y0:y1, x0:x1] = True
        coloured = np.zeros_like(inside)
        for name in COLOURS:
            coloured |= colour_mask(self.image, name)
        return inside & coloured, 1.0


@dataclass
class StandInComponents:
    text_encoder: StandInTextEncoder
    scorer: StandInScorer
    detector: StandInDetector
    segmenter: StandInSegmenter
    inpainter: OpenCVInpainter
    config: ComponentsConfig = field(default_factory=lambda: ComponentsConfig.from_dict(
        {"scorer": {"onnx": "s.onnx"}, "detector": {"onnx": "d.onnx"}, "segmenter": {"encoder": "e.onnx", "decoder": "m.onnx"}}))


def stand_in_components(target: str, confidence: dict[str, float]) -> StandInComponents:
    text = StandInTextEncoder()
    return StandInComponents(text, StandInScorer(text, target), StandInDetector(text, confidence), StandInSegmenter(),
                             OpenCVInpainter())
