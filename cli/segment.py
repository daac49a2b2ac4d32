"""``edgerun segment`` on a user's images: an image, a folder of images or a camera in, one mask per
image out.

Each image goes through INT (``--method int``), its no-mining ablation (``no-mining``) or the
task-generic prompt alone (``generic``), with the vocabulary given at run time (default: the
synthetic set's categories). Output: ``OUT/<image name>.png`` (0/255, the image's size; images
sharing a name, ``photo.jpg`` and ``photo.png``, keep their suffix: ``photo.jpg.png``) and one
JSON line per image in ``OUT/segment.jsonl`` (written anew by each run; instance prompt,
confidence, mining score, trusted, seconds). The confidence is the instance prompt's image–text
probability over its boxes; it does not predict the mask's quality (correlation with the mask's
IoU −0.35 on validation images). The mining score (the chosen prompt's weighted contrast; 0 for
``generic``, the detector's score with ``no-mining``) does (+0.57, and +0.61 / +0.42 on the
held-out families): with ``--method int``, a mask whose score is under the
components' ``min_mining_score`` (or ``--min-mining-score``) is written empty and ``trusted`` is
false, as the segmenter node does. A camera URI's frames are named ``frame_000000`` … An image that
cannot be read is reported and skipped; the others are still written (exit status 2 when any was
skipped). An ``--out`` that is the images' own folder is refused before anything runs (masks there
would replace images of the same name and be read as images next time).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edgerun.cli.outputs import check_output_folder
from edgerun.errors import ImageSourceError
from edgerun.nodes.sources import open_source
from edgerun.pipelines.int_seg.algorithm import INTResult, is_trusted, run_generic, run_int, synthetic_task_config
from edgerun.pipelines.int_seg.components import SHIPPED_CONFIG, load_components

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def images_of(source: str) -> list[Path] | str:
    """The image files of ``source`` (a file, or a folder's images in name order), or the URI of a camera."""
    if "://" in source:
        return source
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageSourceError(f"{path}: a folder without images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not path.exists():
        raise ImageSourceError(f"{path}: no such file or folder")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageSourceError(f"{path}: expected an image ({', '.join(IMAGE_SUFFIXES)}), a folder of them or a camera URI")
    return [path]


def mask_names(paths: list[Path]) -> list[str]:
    """Each image's mask name, unique even on a case-insensitive disk: its stem, or its whole file
    name where images share a stem (``photo.jpg`` and ``photo.png`` → ``photo.jpg``, ``photo.png``),
    with ``_2``, ``_3`` … after a name still taken (a ``photo.jpg.png`` beside them)."""
    shared = Counter(path.stem.casefold() for path in paths)
    names: list[str] = []
    taken: set[str] = set()
    for path in paths:
        name = base = path.name if shared[path.stem.casefold()] > 1 else path.stem
        copy = 2
        while name.casefold() in taken:
            name, copy = f"{base}_{copy}", copy + 1
        taken.add(name.casefold())
        names.append(name)
    return names


def vocabulary_names(text: str) -> tuple[str, ...]:
    """``--vocabulary``: names joined by commas (a name given twice is refused by :class:`INTConfig`)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ImageSourceError(f"--vocabulary {text!r}: no names (expected names joined by commas, e.g. fish,frog,crab)")
    return names


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3), or raise :class:`ImageSourceError`. A 16-bit image is brought to 8 bits
    from the bit depth its values use (a 12-bit camera's 0-4095 in a 16-bit PNG is not left near
    black, as a plain shift by 8 bits would leave it)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ImageSourceError(f"{path}: not an image OpenCV can read (8- or 16-bit integer samples)")
    if image.dtype == np.uint16:
        bits = max(8, int(image.max()).bit_length())
        image = (image.astype(np.float32) * (255.0 / (2**bits - 1))).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageSourceError(f"{path}: {image.dtype} samples; expected 8- or 16-bit integer samples")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def frames_of(source: str | list[Path], max_frames: int):
    """(name, where it came from, image or the error reading it) per image."""
    if isinstance(source, str):
        camera = open_source(source)
        try:
            for index in range(max_frames):
                image = camera.read()
                if image is None:
                    return
                yield f"frame_{index:06d}", source, image
        finally:
            camera.close()
        return
    for path, name in zip(source, mask_names(source)):
        try:
            yield name, str(path), read_image(path)
        except ImageSourceError as exc:
            yield name, str(path), exc


def segment_main(
    source: str, out: str, prompt: str = "the camouflaged animal", vocabulary: str = "", method: str = "int",
    components: str = "", iterations: int = 5, max_frames: int = 100, min_mining_score: float | None = None,
) -> int:
    images = images_of(source)  # refused before the models load
    out_dir = Path(out)
    check_output_folder(out_dir, [] if isinstance(images, str) else images)
    config = synthetic_task_config(iterations=iterations, negative_mining=method != "no-mining")
    if vocabulary:
        try:
            config = replace(config, vocabulary=vocabulary_names(vocabulary))
        except ValueError as exc:  # a name given twice, or also a background token ("background")
            raise ImageSourceError(f"--vocabulary: {exc}") from None
    models = load_components(components or SHIPPED_CONFIG)
    if min_mining_score is None:
        min_mining_score = models.config.min_mining_score
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    with open(out_dir / "segment.jsonl", "w") as log:  # the masks on disk, this run's
        for name, origin, image in frames_of(images, max_frames):
            if isinstance(image, Exception):
                failures += 1
                print(f"edgerun segment: {image}", file=sys.stderr)
                continue
            started = time.perf_counter()
            result: INTResult = (run_generic if method == "generic" else run_int)(image, prompt, models, config)
            seconds = time.perf_counter() - started
            trusted = is_trusted(result.mining_score, min_mining_score, negative_mining=method == "int")
            mask = result.mask if trusted else np.zeros_like(result.mask)
            if not cv2.imwrite(str(out_dir / f"{name}.png"), mask.astype(np.uint8) * 255):
                failures += 1
                print(f"edgerun segment: {out_dir / f'{name}.png'}: could not write the mask (disk full, read-only, name too long?)",
                      file=sys.stderr)
                continue
            line = {"image": name, "source": origin, "mask": str(out_dir / f"{name}.png"), "method": method,
                    "task_prompt": prompt, "instance_prompt": result.prompt, "confidence": round(float(result.confidence), 4),
                    "mining_score": round(result.mining_score, 4), "trusted": trusted,
                    "mask_pixels": int(mask.sum()), "seconds": round(seconds, 3)}
            log.write(json.dumps(line) + "\n")
            print(json.dumps(line), flush=True)
    return 2 if failures else 0
