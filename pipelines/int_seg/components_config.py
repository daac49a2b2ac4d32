"""The INT components file (``components.yaml``): which model file or registry export each component
uses, its input size and thresholds, and the inpainter. Read by :func:`.components.load_components`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgerun.errors import ComponentError, cut
from edgerun.models.language.minilm import MODEL_NAME as TEXT_MODEL
from edgerun.pipelines.int_seg.images import Normalize
from edgerun.runtime.yaml_files import YamlError, load_yaml


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
    min_mining_score: float = 0.0  # masks whose prompt mined less are not trusted (0: every mask is); docs/int_seg.md
    source: Path | None = None  # the YAML file, for relative paths

    @classmethod
    def from_yaml(cls, path: str | Path) -> ComponentsConfig:
        path = Path(path)
        if not path.is_file():
            raise ComponentError(f"components config {path}: file not found")
        try:
            data = load_yaml(path) or {}
        except YamlError as exc:
            raise ComponentError(f"components config {exc}") from None
        if not isinstance(data, dict):
            raise ComponentError(f"components config {path}: expected a mapping of sections, got {type(data).__name__}")
        try:
            return cls.from_dict(data, source=path.resolve())
        except (TypeError, KeyError, ValueError) as exc:
            raise ComponentError(f"components config {path}: {cut(str(exc), 500)}") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | None = None) -> ComponentsConfig:
        known = {"text_encoder", "scorer", "detector", "segmenter", "inpainter", "backend", "threads", "min_mining_score"}
        unknown = set(data) - known
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
            min_mining_score=float(data.get("min_mining_score", 0.0)),
            source=source,
        )
