"""INT's components: engines behind small wrappers (scorer, detector, segmenter), built from a
components file by :func:`load_components`. Their ONNX contracts are in :mod:`.contracts`, image
preprocessing in :mod:`.images`, the file's layout in :mod:`.components_config`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgerun.engines import Engine
from edgerun.engines.manifest import default_model_dir
from edgerun.errors import ComponentError, ExportError, InpainterError
from edgerun.export.cache import exported
from edgerun.models.language.minilm import EMBED_DIM
from edgerun.pipelines.int_seg.components_config import ComponentsConfig, ModelFile
from edgerun.pipelines.int_seg.contracts import (
    DETECTOR,
    SAM_DECODER,
    SAM_ENCODER,
    SCORER,
    TEXT_ENCODER,
    Contract,
    fixed_size,
    load_checked,
)
from edgerun.pipelines.int_seg.images import Normalize, check_image, letterbox, mask_prompt
from edgerun.pipelines.int_seg.inpaint import Inpainter, OnnxInpainter, OpenCVInpainter
from edgerun.pipelines.language.text_encoder import TextEncoder

log = logging.getLogger("edgerun.int_seg")

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "checkpoints" / "int_seg" / "components.yaml"


# --- wrappers ------------------------------------------------------------------------------

class ImageTextScorer:
    """Image (or region) ↔ text similarity: the VLM/CLIP role of INT's negative mining."""

    def __init__(self, engine: Engine, input_size: int, logit_scale: float, normalize: Normalize = Normalize(),
                 names: Mapping[str, str] | None = None) -> None:
        self.engine, self.input_size, self.logit_scale, self.normalize = engine, input_size, logit_scale, normalize
        self._in = (names or {}).get("images", "images")
        self._out = (names or {}).get("embeddings", "embeddings")

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 384) unit embeddings of RGB uint8 images of any sizes."""
        for image in images:
            check_image(image, "scorer")
        if not len(images):
            return np.zeros((0, EMBED_DIM), np.float32)
        batch = np.stack([letterbox(image, self.input_size, self.normalize)[0] for image in images])
        out = np.asarray(self.engine(**{self._in: batch})[self._out], np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def probs_batch(self, images: Sequence[np.ndarray], text_embeddings: np.ndarray) -> np.ndarray:
        """(n, Q): per image, softmax(logit_scale · image·textᵀ) over the Q texts."""
        text_embeddings = _check_text(text_embeddings, "scorer")
        logits = self.logit_scale * self.embed(images) @ text_embeddings.T
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def probs(self, image: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
        """(Q,): softmax(logit_scale · image·textᵀ) over the Q texts — INT's "tokens" of contrast D."""
        return self.probs_batch([image], text_embeddings)[0]


def _check_text(text_embeddings: np.ndarray, who: str) -> np.ndarray:
    text_embeddings = np.asarray(text_embeddings)
    if text_embeddings.ndim != 2 or text_embeddings.shape[1] != EMBED_DIM or text_embeddings.shape[0] == 0:
        raise ValueError(f"{who}: expected text embeddings (Q, {EMBED_DIM}) with Q ≥ 1, got {text_embeddings.shape}")
    return np.ascontiguousarray(text_embeddings, dtype=np.float32)


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # float32 (4,) xyxy image pixels
    score: float  # sigmoid of the logit, in [0, 1]
    query: int  # index of the text embedding it answers


class Detector:
    """Open-vocabulary boxes for text embeddings: the OWL-ViT/GroundingDINO role."""

    def __init__(self, engine: Engine, input_size: int, threshold: float = 0.3, nms_iou: float = 0.5,
                 max_detections: int = 20, normalize: Normalize = Normalize(), names: Mapping[str, str] | None = None) -> None:
        self.engine, self.input_size, self.threshold = engine, input_size, threshold
        self.nms_iou, self.max_detections, self.normalize = nms_iou, max_detections, normalize
        self._names = {n: (names or {}).get(n, n) for n in ("images", "text_embeddings", "logits", "pred_boxes")}

    def detect(self, image: np.ndarray, text_embeddings: np.ndarray, threshold: float | None = None) -> list[Detection]:
        """Detections with score ≥ threshold, after per-query NMS, best first, boxes in image pixels."""
        check_image(image, "detector")
        text_embeddings = _check_text(text_embeddings, "detector")
        threshold = self.threshold if threshold is None else threshold
        pixels, scale = letterbox(image, self.input_size, self.normalize)
        out = self.engine(**{self._names["images"]: pixels[None], self._names["text_embeddings"]: text_embeddings})
        scores = 1.0 / (1.0 + np.exp(-out[self._names["logits"]][0].astype(np.float64)))  # (P, Q)
        cx, cy, w, h = (out[self._names["pred_boxes"]][0].astype(np.float64) * self.input_size / scale).T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        height, width = image.shape[:2]
        boxes = np.clip(boxes, 0, [width, height, width, height])
        detections: list[Detection] = []
        for query in range(text_embeddings.shape[0]):
            keep = np.nonzero(scores[:, query] >= threshold)[0]
            if not keep.size:
                continue
            xywh = [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in boxes[keep]]
            chosen = cv2.dnn.NMSBoxes(xywh, scores[keep, query].tolist(), threshold, self.nms_iou)
            detections += [Detection(boxes[keep[i]].astype(np.float32), float(scores[keep[i], query]), query)
                           for i in np.asarray(chosen).reshape(-1)]
        detections.sort(key=lambda d: -d.score)
        return detections[: self.max_detections]


class Segmenter:
    """Box-prompted masks with SAM's ONNX contract: ``set_image`` once, then ``segment(box)`` per box."""

    def __init__(self, encoder: Engine, decoder: Engine, input_size: int, normalize: Normalize = Normalize(),
                 names: Mapping[str, str] | None = None) -> None:
        self.encoder, self.decoder, self.input_size, self.normalize = encoder, decoder, input_size, normalize
        self._names = {n: (names or {}).get(n, n) for n in (*(s.name for s in SAM_DECODER.inputs),
                                                            *(s.name for s in SAM_DECODER.outputs), "images")}
        mask_spec = next(s for s in decoder.inputs if s.name == self._names["mask_input"])
        self._mask_hw = tuple(mask_spec.shape[2:])
        self._embeddings: np.ndarray | None = None
        self._scale = 1.0
        self._image_hw: tuple[int, int] = (0, 0)

    def set_image(self, image: np.ndarray) -> None:
        check_image(image, "segmenter")
        pixels, self._scale = letterbox(image, self.input_size, self.normalize)
        out = self.encoder(**{self._names["images"]: pixels[None]})
        self._embeddings = np.asarray(next(iter(out.values())), np.float32)
        self._image_hw = image.shape[:2]
        if not all(isinstance(d, int) for d in self._mask_hw):  # a dynamic mask_input: 4x the embedding grid
            self._mask_hw = (4 * self._embeddings.shape[2], 4 * self._embeddings.shape[3])

    def segment(self, box: Sequence[float], previous: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The bool (H, W) mask for an xyxy pixel box on the last ``set_image``, and its predicted IoU.

        ``previous``: a bool (H, W) mask of an earlier prediction, fed back as SAM's ``mask_input``
        (see ``mask_prompt``) with ``has_mask_input`` = 1, as in SAM's iterative refinement."""
        if self._embeddings is None:
            raise RuntimeError("segmenter: call set_image(image) before segment(box)")
        box = np.asarray(box, np.float32)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise ValueError(f"segmenter: expected an xyxy box of 4 finite numbers, got {box!r}")
        n = self._names
        if previous is not None and np.shape(previous) != tuple(self._image_hw):
            raise ValueError(f"segmenter: previous mask shape {np.shape(previous)} is not the image's {self._image_hw}")
        out = self.decoder(**{
            n["image_embeddings"]: self._embeddings,
            n["point_coords"]: (box.reshape(1, 2, 2) * self._scale).astype(np.float32),
            n["point_labels"]: np.array([[2, 3]], np.float32),
            n["mask_input"]: (np.zeros(self._mask_hw, np.float32) if previous is None
                              else mask_prompt(np.asarray(previous, bool), self.input_size, self._mask_hw))[None, None],
            n["has_mask_input"]: np.full(1, previous is not None, np.float32),
            n["orig_im_size"]: np.array(self._image_hw, np.float32),
        })
        masks, ious = out[n["masks"]][0], out[n["iou_predictions"]][0]
        best = int(np.argmax(ious))
        return masks[best] > 0.0, float(ious[best])


@dataclass
class Components:
    text_encoder: TextEncoder
    scorer: ImageTextScorer
    detector: Detector
    segmenter: Segmenter
    inpainter: Inpainter
    config: ComponentsConfig

    def close(self) -> None:
        for engine in (self.text_encoder.engine, self.scorer.engine, self.detector.engine,
                       self.segmenter.encoder, self.segmenter.decoder):
            engine.close()


def resolve_model(model: ModelFile, component: str, contract: Contract, source: Path | None) -> Path:
    """The ONNX file to load: ``onnx`` when that file exists (absolute, next to the config, or in the
    model cache), else the registry model ``export`` from ``checkpoint``, exported on first use
    (:func:`edgerun.export.cache.exported`: cached by the checkpoint's hash, so a changed checkpoint
    is exported again)."""
    base = source.parent if source else Path.cwd()
    if model.onnx:
        path = Path(model.onnx).expanduser()
        if not path.is_absolute():
            path = base / path if (base / path).is_file() else default_model_dir() / path
        if path.is_file() or not model.export:
            return path
    checkpoint = Path(model.checkpoint).expanduser() if model.checkpoint else None
    if checkpoint is not None and not checkpoint.is_absolute():
        checkpoint = base / checkpoint
    if checkpoint is not None and not checkpoint.is_file():
        raise ComponentError(f"{component}: checkpoint {checkpoint} not found (needed to export {model.export}, "
                             f"an ONNX model with {contract.describe()})")
    try:
        return exported(model.export, str(checkpoint) if checkpoint else None)
    except (ExportError, KeyError) as exc:
        raise ComponentError(f"{component}: exporting {model.export} failed: {exc}") from exc


def load_components(config_path: str | Path = SHIPPED_CONFIG, backend: str | None = None) -> Components:
    """Every INT component from a YAML config (the shipped small ones by default), contracts checked."""
    config = ComponentsConfig.from_yaml(config_path)
    backend = backend or config.backend
    options = {"threads": config.threads} if config.threads else {}

    paths: dict[str, Path] = {}

    def engine(model: ModelFile, contract: Contract, names: Mapping[str, str] | None = None) -> Engine:
        paths[contract.component] = resolve_model(model, contract.component, contract, config.source)
        return load_checked(paths[contract.component], contract, backend, names, **options)

    text = TextEncoder(engine(config.text_encoder, TEXT_ENCODER))
    s, d, g = config.scorer, config.detector, config.segmenter
    scorer_engine = engine(s.model, SCORER, s.names)
    scorer = ImageTextScorer(scorer_engine, fixed_size(scorer_engine, s.names.get("images", "images"), s.input_size,
                                                        "scorer", paths[SCORER.component]), s.logit_scale, s.normalize, s.names)
    detector_engine = engine(d.model, DETECTOR, d.names)
    detector = Detector(detector_engine, fixed_size(detector_engine, d.names.get("images", "images"), d.input_size,
                                                     "detector", paths[DETECTOR.component]),
                        d.threshold, d.nms_iou, d.max_detections, d.normalize, d.names)
    encoder, decoder = engine(g.encoder, SAM_ENCODER, g.names), engine(g.decoder, SAM_DECODER, g.names)
    segmenter = Segmenter(encoder, decoder, fixed_size(encoder, g.names.get("images", "images"), g.input_size,
                                                        "segmenter encoder", paths[SAM_ENCODER.component]), g.normalize, g.names)
    return Components(text, scorer, detector, segmenter, _inpainter(config), config)


def _inpainter(config: ComponentsConfig) -> Inpainter:
    settings = config.inpainter
    try:
        if settings.method == "onnx":
            if not settings.onnx:
                raise InpainterError("inpainter: method 'onnx' needs an 'onnx' file")
            path = Path(settings.onnx).expanduser()
            if not path.is_absolute() and config.source is not None:
                path = config.source.parent / path
            return OnnxInpainter(path, backend=config.backend, dilation=settings.dilation)
        return OpenCVInpainter(settings.method, settings.radius, settings.dilation)
    except (InpainterError, ValueError) as exc:
        raise ComponentError(f"inpainter: {exc}") from exc
