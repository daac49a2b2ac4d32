"""INT's components: engines behind small wrappers, each with an ONNX input/output contract checked on load.

=================  ===========================================================================
component          ONNX contract (S: input size; C, h, w: embedding; n points; Q text queries)
=================  ===========================================================================
scorer (CLIP)      images f32 (batch,3,S,S) in [0,1] → embeddings f32 (batch,384), unit vectors in the
                   MiniLM text space
detector (OWL-ViT) images f32 (1,3,S,S) in [0,1], text_embeddings f32 (Q,384) → logits f32 (1,P,Q),
                   pred_boxes f32 (1,P,4) normalised (cx, cy, w, h) in the S×S input
segmenter (SAM)    encoder: images f32 (1,3,S,S) → image_embeddings f32 (1,C,h,w);
                   decoder: SAM's ONNX decoder — image_embeddings (1,C,h,w), point_coords (1,n,2) in
                   S×S input pixels, point_labels (1,n), mask_input (1,1,4h,4w), has_mask_input (1,),
                   orig_im_size (2,) → masks (1,k,H,W) logits, iou_predictions (1,k), low_res_masks (1,k,4h,4w)
text encoder       see ``edgerun.pipelines.language.text_encoder``
inpainter          see ``edgerun.pipelines.int_seg.inpaint``
=================  ===========================================================================

Every image enters a model letterboxed as SAM does it: the longest side resized to S, the rest
padded (bottom/right) with zeros, values RGB in [0, 1] then ``(x - mean) / std`` (``normalize`` in
the config; identity for the shipped models, ImageNet/SAM statistics for real exports). Real
exports whose tensor names differ map them with ``names`` (contract name → model name).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import yaml

from edgerun.engines import Engine, TensorSpec
from edgerun.engines import load as load_engine
from edgerun.engines.manifest import default_model_dir
from edgerun.errors import ComponentError, EngineError, ExportError, InpainterError
from edgerun.export.cache import exported
from edgerun.models.language.minilm import EMBED_DIM
from edgerun.models.language.minilm import MODEL_NAME as TEXT_MODEL
from edgerun.pipelines.int_seg.inpaint import Inpainter, OnnxInpainter, OpenCVInpainter
from edgerun.pipelines.language.text_encoder import INPUTS as TEXT_INPUTS
from edgerun.pipelines.language.text_encoder import OUTPUTS as TEXT_OUTPUTS
from edgerun.pipelines.language.text_encoder import TextEncoder

log = logging.getLogger("edgerun.int_seg")

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "checkpoints" / "int_seg" / "components.yaml"


# --- contracts -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Contract:
    """Inputs and outputs a component's ONNX file must have. Integer dims must match where the
    model fixes them; named dims are free but must agree wherever the model fixes them."""

    component: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def describe(self) -> str:
        ins = ", ".join(f"{s.name} {s.describe()}" for s in self.inputs)
        outs = ", ".join(f"{s.name} {s.describe()}" for s in self.outputs)
        return f"inputs {ins} → outputs {outs}"

    def problems(self, engine: Engine, names: Mapping[str, str] | None = None) -> list[str]:
        names = names or {}
        found: list[str] = []
        bound: dict[str, int] = {}
        for kind, wanted, have in (("input", self.inputs, engine.inputs), ("output", self.outputs, engine.outputs)):
            by_name = {s.name: s for s in have}
            for spec in wanted:
                name = names.get(spec.name, spec.name)
                got = by_name.get(name)
                if got is None:
                    found.append(f"no {kind} '{name}' (has {', '.join(by_name) or 'none'})")
                    continue
                if got.dtype != spec.dtype or len(got.shape) != len(spec.shape):
                    found.append(f"{kind} '{name}' is {got.describe()}, expected {spec.describe()}")
                    continue
                for axis, (want, size) in enumerate(zip(spec.shape, got.shape)):
                    if not isinstance(size, int):
                        continue
                    if isinstance(want, int) and want != size:
                        found.append(f"{kind} '{name}' axis {axis} is {size}, expected {want}")
                    elif isinstance(want, str) and bound.setdefault(want, size) != size:
                        found.append(f"{kind} '{name}' axis {axis} is {size}, but {want} = {bound[want]} elsewhere")
        extra = sorted({s.name for s in engine.inputs} - {names.get(s.name, s.name) for s in self.inputs})
        if extra:
            found.append(f"unexpected input{'s' if len(extra) > 1 else ''} {', '.join(extra)} (the caller cannot feed them)")
        return found


def _spec(name: str, *shape: int | str, dtype: str = "float32") -> TensorSpec:
    return TensorSpec(name, dtype, tuple(shape))


SCORER = Contract(
    "scorer",
    (_spec("images", "batch", 3, "S", "S"),),
    (_spec("embeddings", "batch", EMBED_DIM),),
)
DETECTOR = Contract(
    "detector",
    (_spec("images", 1, 3, "S", "S"), _spec("text_embeddings", "queries", EMBED_DIM)),
    (_spec("logits", 1, "P", "queries"), _spec("pred_boxes", 1, "P", 4)),
)
SAM_ENCODER = Contract("segmenter encoder", (_spec("images", 1, 3, "S", "S"),), (_spec("image_embeddings", 1, "C", "h", "w"),))
SAM_DECODER = Contract(
    "segmenter decoder",
    (
        _spec("image_embeddings", 1, "C", "h", "w"),
        _spec("point_coords", 1, "n", 2),
        _spec("point_labels", 1, "n"),
        _spec("mask_input", 1, 1, "4h", "4w"),
        _spec("has_mask_input", 1),
        _spec("orig_im_size", 2),
    ),
    (_spec("masks", 1, "k", "H", "W"), _spec("iou_predictions", 1, "k"), _spec("low_res_masks", 1, "k", "4h", "4w")),
)
TEXT_ENCODER = Contract("text encoder", TEXT_INPUTS, TEXT_OUTPUTS)


def load_checked(path: str | Path, contract: Contract, backend: str = "auto", names: Mapping[str, str] | None = None,
                 **options: Any) -> Engine:
    """An engine for ``path`` that follows ``contract``, or a ComponentError naming the file, component and contract."""
    path = Path(path)
    where = f"{contract.component} model {path}"
    if not path.is_file():
        raise ComponentError(f"{where}: file not found; expected an ONNX model with {contract.describe()}")
    try:
        engine = load_engine(path, backend=backend, **options)
    except (EngineError, ValueError, RuntimeError) as exc:  # ONNX Runtime raises its own errors on bad files
        raise ComponentError(f"{where}: cannot be loaded ({exc}); expected an ONNX model with {contract.describe()}") from exc
    problems = contract.problems(engine, names)
    if problems:
        engine.close()
        raise ComponentError(f"{where} breaks the {contract.component} contract: {'; '.join(problems)}. "
                             f"Expected {contract.describe()}")
    return engine


# --- images in -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Normalize:
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # on RGB in [0, 1]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


def check_image(image: np.ndarray, who: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{who}: expected an RGB uint8 image (H, W, 3), got {got}")


def letterbox_geometry(height: int, width: int, size: int) -> tuple[float, int, int]:
    """SAM's resize + pad: the scale from image to input pixels and the resized (width, height),
    placed at the top left of a size×size canvas."""
    scale = size / max(height, width)
    return scale, int(width * scale + 0.5), int(height * scale + 0.5)


def letterbox(image: np.ndarray, size: int, normalize: Normalize = Normalize()) -> tuple[np.ndarray, float]:
    """(3, size, size) float32 model input and the scale from image pixels to input pixels (SAM's resize + pad)."""
    scale, new_w, new_h = letterbox_geometry(*image.shape[:2], size)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[:new_h, :new_w] = (resized.astype(np.float32) / 255.0 - normalize.mean) / normalize.std
    return canvas.transpose(2, 0, 1), scale


MASK_LOGIT = 10.0  # a previous mask enters the decoder's mask_input as ±MASK_LOGIT (a confident SAM logit map)


def mask_prompt(mask: np.ndarray, size: int, low_res: tuple[int, int] | None = None) -> np.ndarray:
    """A bool (H, W) image mask as SAM's ``mask_input`` (low_res, default size×size) float32 logits:
    letterboxed like the image (resize the long side to ``size``, pad bottom/right), +MASK_LOGIT inside,
    −MASK_LOGIT outside and in the padding."""
    _, new_w, new_h = letterbox_geometry(*mask.shape[:2], size)
    canvas = np.zeros((size, size), np.float32)
    canvas[:new_h, :new_w] = cv2.resize(mask.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_AREA)
    if low_res is not None and tuple(low_res) != (size, size):
        canvas = cv2.resize(canvas, (low_res[1], low_res[0]), interpolation=cv2.INTER_AREA)
    return ((2.0 * canvas - 1.0) * MASK_LOGIT).astype(np.float32)


def _fixed_size(engine: Engine, input_name: str, configured: int, component: str, path: Path) -> int:
    spec = next(s for s in engine.inputs if s.name == input_name)
    fixed = spec.shape[-1]
    if isinstance(fixed, int) and fixed != configured:
        raise ComponentError(f"{component} model {path}: input '{input_name}' is {fixed}x{fixed} but the config says "
                             f"input_size {configured}")
    return configured


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


# --- configuration -------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelFile:
    """One ONNX model: your file ``onnx`` (absolute, relative to the YAML's folder, or a name in the
    model cache), or the registry model ``export`` from ``checkpoint``, exported on first use."""

    onnx: str | None = None
    export: str | None = None
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if not (self.onnx or self.export):
            raise ValueError("a model needs 'onnx' (a file) or 'export' (a registry name), got neither")


@dataclass(frozen=True)
class ScorerConfig:
    model: ModelFile
    input_size: int = 96
    logit_scale: float = 20.0
    normalize: Normalize = Normalize()
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DetectorConfig:
    model: ModelFile
    input_size: int = 128
    threshold: float = 0.3
    nms_iou: float = 0.5
    max_detections: int = 20
    normalize: Normalize = Normalize()
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmenterConfig:
    encoder: ModelFile
    decoder: ModelFile
    input_size: int = 128
    normalize: Normalize = Normalize()
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InpainterConfig:
    method: str = "telea"  # telea | ns | onnx
    radius: int = 3
    dilation: int = 3
    onnx: str | None = None  # with method: onnx


@dataclass(frozen=True)
class ComponentsConfig:
    text_encoder: ModelFile
    scorer: ScorerConfig
    detector: DetectorConfig
    segmenter: SegmenterConfig
    inpainter: InpainterConfig = InpainterConfig()
    backend: str = "auto"
    threads: int | None = None
    source: Path | None = None  # the YAML file, for relative paths

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ComponentsConfig":
        path = Path(path)
        if not path.is_file():
            raise ComponentError(f"components config {path}: file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
            return cls.from_dict(data, source=path.resolve())
        except (yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
            raise ComponentError(f"components config {path}: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | None = None) -> "ComponentsConfig":
        unknown = set(data) - {"text_encoder", "scorer", "detector", "segmenter", "inpainter", "backend", "threads"}
        if unknown:
            raise ValueError(f"unknown keys {', '.join(sorted(unknown))}")

        def model_file(entry: Any, what: str) -> ModelFile:
            if isinstance(entry, str):
                return ModelFile(entry)
            if not isinstance(entry, Mapping) or not ({"onnx", "export"} & set(entry)):
                raise ValueError(f"{what}: expected an ONNX path or {{onnx | export, checkpoint}}, got {entry!r}")
            return ModelFile(**{k: entry[k] for k in ("onnx", "export", "checkpoint") if k in entry})

        def common(entry: Mapping[str, Any]) -> dict[str, Any]:
            rest = {k: v for k, v in entry.items() if k not in ("onnx", "export", "checkpoint", "encoder", "decoder")}
            if "normalize" in rest:
                rest["normalize"] = Normalize(**{k: tuple(v) for k, v in rest["normalize"].items()})
            return rest

        def component(key: str) -> Mapping[str, Any]:
            if key not in data:
                raise ValueError(f"missing '{key}' section")
            return data[key]

        scorer, detector, segmenter = component("scorer"), component("detector"), component("segmenter")
        return cls(
            text_encoder=model_file(data.get("text_encoder", {"export": TEXT_MODEL}), "text_encoder"),
            scorer=ScorerConfig(model_file(scorer, "scorer"), **common(scorer)),
            detector=DetectorConfig(model_file(detector, "detector"), **common(detector)),
            segmenter=SegmenterConfig(model_file(segmenter["encoder"], "segmenter.encoder"),
                                      model_file(segmenter["decoder"], "segmenter.decoder"), **common(segmenter)),
            inpainter=InpainterConfig(**data.get("inpainter", {})),
            backend=data.get("backend", "auto"),
            threads=data.get("threads"),
            source=source,
        )


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
    scorer = ImageTextScorer(scorer_engine, _fixed_size(scorer_engine, s.names.get("images", "images"), s.input_size,
                                                        "scorer", paths[SCORER.component]), s.logit_scale, s.normalize, s.names)
    detector_engine = engine(d.model, DETECTOR, d.names)
    detector = Detector(detector_engine, _fixed_size(detector_engine, d.names.get("images", "images"), d.input_size,
                                                     "detector", paths[DETECTOR.component]),
                        d.threshold, d.nms_iou, d.max_detections, d.normalize, d.names)
    encoder, decoder = engine(g.encoder, SAM_ENCODER, g.names), engine(g.decoder, SAM_DECODER, g.names)
    segmenter = Segmenter(encoder, decoder, _fixed_size(encoder, g.names.get("images", "images"), g.input_size,
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
