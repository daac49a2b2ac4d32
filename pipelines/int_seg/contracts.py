"""The ONNX input/output contract of each INT component, checked when its engine is loaded.

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

Real exports whose tensor names differ map them with ``names`` (contract name → model name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgerun.engines import Engine, TensorSpec
from edgerun.engines import load as load_engine
from edgerun.errors import ComponentError, EngineError
from edgerun.models.language.minilm import EMBED_DIM
from edgerun.pipelines.language.text_encoder import INPUTS as TEXT_INPUTS
from edgerun.pipelines.language.text_encoder import OUTPUTS as TEXT_OUTPUTS


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


def fixed_size(engine: Engine, input_name: str, configured: int, component: str, path: Path) -> int:
    spec = next(s for s in engine.inputs if s.name == input_name)
    fixed = spec.shape[-1]
    if isinstance(fixed, int) and fixed != configured:
        raise ComponentError(f"{component} model {path}: input '{input_name}' is {fixed}x{fixed} but the config says "
                             f"input_size {configured}")
    return configured
