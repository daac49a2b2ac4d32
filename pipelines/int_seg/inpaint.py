"""Inpainters: remove an image region so the scorer can be asked what changed (INT's negative mining).

The paper inpaints with Stable Diffusion; here the default is OpenCV's fast-marching (Telea) or
Navier–Stokes inpainting, which fills a region from its border and needs no weights. Any object
with ``inpaint(image, mask) -> image`` plugs in (the ``Inpainter`` protocol); :class:`OnnxInpainter`
adapts a learned one (e.g. a LaMa export) through an Engine.

Images are RGB uint8 (H, W, 3); masks are bool (H, W), True where the region is removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edgerun.engines import load
from edgerun.errors import InpainterError

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}

ONNX_CONTRACT = (
    "inputs 'image' (1,3,H,W) float32 RGB in [0,1] and 'mask' (1,1,H,W) float32 (1 = remove) "
    "-> one output (1,3,H,W) float32 RGB in [0,1]"
)


class Inpainter(Protocol):
    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


def check_image_and_mask(image: np.ndarray, mask: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"inpaint: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"inpaint: expected a mask of shape {image.shape[:2]}, got {mask.dtype} {mask.shape}")


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` grown by ``pixels`` in every direction (an elliptic kernel), so the fill starts
    from clean background rather than from the object's own edge."""
    if pixels <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def boxes_mask(shape: tuple[int, int], boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """A bool (H, W) mask that is True inside any of the xyxy pixel ``boxes`` (clipped to the image)."""
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
        mask[top:bottom, left:right] = True
    return mask


@dataclass(frozen=True)
class OpenCVInpainter:
    """OpenCV inpainting (the default). ``radius`` is the neighbourhood each filled pixel looks at;
    ``dilation`` grows the mask first (pixels)."""

    method: str = "telea"  # telea | ns
    radius: int = 3
    dilation: int = 3

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"inpainting method '{self.method}': expected one of {', '.join(METHODS)}")

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        check_image_and_mask(image, mask)
        region = dilate_mask(mask, self.dilation)
        if not region.any():
            return image.copy()
        return cv2.inpaint(np.ascontiguousarray(image), region.astype(np.uint8) * 255, self.radius, METHODS[self.method])


class OnnxInpainter:
    """A learned inpainter behind an Engine, with the contract :data:`ONNX_CONTRACT`.

    The image is resized to the model's input size when that size is fixed, and only the masked
    pixels of the result are pasted back, so the rest of the image stays exact.
    """

    def __init__(self, path: str | Path, backend: str = "auto", dilation: int = 3):

        self.path = Path(path)
        if not self.path.is_file():
            raise InpainterError(f"inpainter {self.path}: file not found (expected an ONNX model with {ONNX_CONTRACT})")
        self.engine = load(self.path, backend)
        names = {spec.name: spec for spec in self.engine.inputs}
        if set(names) != {"image", "mask"} or len(self.engine.outputs) != 1:
            raise InpainterError(
                f"inpainter {self.path}: inputs {sorted(names)} and {len(self.engine.outputs)} output(s) "
                f"break the contract: {ONNX_CONTRACT}"
            )
        if len(names["image"].shape) != 4 or len(names["mask"].shape) != 4:
            raise InpainterError(f"inpainter {self.path}: inputs of rank other than 4 break the contract: {ONNX_CONTRACT}")
        self.output = self.engine.outputs[0].name
        height, width = names["image"].shape[2:]
        self.size = (width, height) if isinstance(height, int) and isinstance(width, int) else None
        self.dilation = dilation

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        check_image_and_mask(image, mask)
        region = dilate_mask(mask, self.dilation)
        if not region.any():
            return image.copy()
        height, width = image.shape[:2]
        model_image, model_mask = image, region.astype(np.float32)
        if self.size is not None and self.size != (width, height):
            model_image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
            model_mask = cv2.resize(model_mask, self.size, interpolation=cv2.INTER_NEAREST)
        filled = self.engine(
            image=np.ascontiguousarray(model_image.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0,
            mask=np.ascontiguousarray(model_mask[None, None], dtype=np.float32),
        )[self.output]
        if filled.shape[:2] != (1, 3) or filled.ndim != 4:
            raise InpainterError(f"inpainter {self.path}: output of shape {filled.shape} breaks the contract: {ONNX_CONTRACT}")
        result = (np.clip(filled[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if result.shape[:2] != (height, width):
            result = cv2.resize(result, (width, height), interpolation=cv2.INTER_LINEAR)
        out = image.copy()
        out[region] = result[region]
        return out
