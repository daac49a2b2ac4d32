"""How images and masks enter INT's models: letterboxed as SAM does it.

The longest side is resized to S, the rest padded (bottom/right) with zeros, values RGB in [0, 1] then
``(x - mean) / std`` (``normalize`` in the components config; identity for the shipped models,
ImageNet/SAM statistics for real exports). A previous mask enters SAM's decoder as a logit map.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


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
