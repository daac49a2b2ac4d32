"""The synthetic camouflage data set INT's small components train and are evaluated on.

Each image holds one camouflaged animal (sometimes two of the same category): its silhouette is
one of :data:`ANIMALS`, its texture is drawn from the background's own texture generator and
palette with a small colour shift, so only its outline and a faint texture seam give it away.
Around it sit one to three *salient* distractors (saturated, high-contrast), animals of other
categories or objects. The generic task prompt ("the camouflaged animal") is therefore genuinely
ambiguous for a detector that grounds "animal" (it sees several animals, the salient ones most
clearly), while the instance-specific prompt ("a frog") names exactly the target: no distractor
ever shares the target's category. That gap is what INT's negative mining exploits.

Conventions (the INT interface): images RGB uint8 (H, W, 3); masks bool (H, W); boxes xyxy float
pixels with x1/y1 one past the last pixel of the mask. Sample ``i`` of ``generate_split(seed, …)``
depends only on (seed, i); :data:`TRAIN_SEED`/:data:`VAL_SEED` are for training and
:data:`TEST_SEED` is held out (never used for training).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np

ANIMALS = ("fish", "bird", "butterfly", "snake", "frog", "crab")
OBJECTS = ("ball", "cup")
CATEGORIES = ANIMALS + OBJECTS
TASK_PROMPT = "the camouflaged animal"
GENERIC_PROMPTS = (TASK_PROMPT, "an animal", "a hidden animal")  # phrasings of the task-generic prompt
TRAIN_SEED, VAL_SEED, TEST_SEED = 0, 1, 2
HOLDOUT_CATEGORIES = ("lizard",)  # drawn only by held-out families; the components never trained on the name
RUNTIME_VOCABULARY = CATEGORIES + HOLDOUT_CATEGORIES  # what the held-out evaluations give INT at run time
TEXTURES = ("blotches", "spots", "grain", "bands", "cells", "stripes")
PALETTES = ("random", "pale", "dusk")


@dataclass(frozen=True)
class SyntheticConfig:
    height: int = 128
    width: int = 128
    min_scale: float = 0.18  # object canvas side as a fraction of min(height, width)
    max_scale: float = 0.45
    distractors: tuple[int, int] = (1, 3)  # inclusive range of salient distractors per image
    animal_distractor_prob: float = 0.7  # a distractor is an animal (of another category) or an object
    second_target_prob: float = 0.15  # a second camouflaged instance of the target's category
    camouflage_shift: tuple[float, float] = (14.0, 26.0)  # colour offset of the target from the background (0-255)
    max_rotation_deg: float = 25.0
    texture: str = "blotches"  # one of TEXTURES: the background's (and the camouflaged skin's) texture family
    palette: str = "random"  # one of PALETTES: "pale" is light and desaturated, "dusk" dark and desaturated
    lighting: float = 0.0  # amplitude of a brightness gradient across the image (fraction of the value)
    sensor_noise: float = 0.0  # Gaussian noise added last (0-255 scale)
    blur: float = 0.6  # Gaussian blur sigma of the finished image, pixels
    targets: tuple[str, ...] = ANIMALS  # categories the camouflaged target is drawn from

    def __post_init__(self) -> None:
        if self.texture not in TEXTURES or self.palette not in PALETTES:
            raise ValueError(f"SyntheticConfig: texture in {TEXTURES}, palette in {PALETTES}; got {self.texture!r}, {self.palette!r}")
        unknown = [t for t in self.targets if t not in ANIMALS + HOLDOUT_CATEGORIES]
        if unknown or not self.targets:
            raise ValueError(f"SyntheticConfig.targets: animals of {ANIMALS + HOLDOUT_CATEGORIES}, got {self.targets}")


class Instance(NamedTuple):
    category: str
    mask: np.ndarray  # bool (H, W), the visible pixels
    box: np.ndarray  # float32 (4,) xyxy pixels
    camouflaged: bool


@dataclass
class Sample:
    image: np.ndarray  # uint8 (H, W, 3) RGB
    target_mask: np.ndarray  # bool (H, W): the camouflaged instance(s), the task's ground truth
    instances: list[Instance] = field(default_factory=list)
    task_prompt: str = TASK_PROMPT

    @property
    def target_category(self) -> str:
        return next(i.category for i in self.instances if i.camouflaged)


# --- silhouettes: each draws a filled mask on a square canvas of side s ------------------------

def _pts(s: int, *xy: tuple[float, float]) -> np.ndarray:
    return np.array([[x * s, y * s] for x, y in xy], np.int32)


def _ellipse(canvas: np.ndarray, s: int, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0) -> None:
    cv2.ellipse(canvas, (int(cx * s), int(cy * s)), (max(1, int(ax * s)), max(1, int(ay * s))), angle, 0, 360, 255, -1)


def _line(canvas: np.ndarray, s: int, a: tuple[float, float], b: tuple[float, float], width: float) -> None:
    cv2.line(canvas, (int(a[0] * s), int(a[1] * s)), (int(b[0] * s), int(b[1] * s)), 255, max(1, int(width * s)))


def _fish(c: np.ndarray, s: int, rng: np.random.Generator) -> None:
    _ellipse(c, s, 0.42, 0.5, 0.32, 0.17)
    cv2.fillPoly(c, [_pts(s, (0.68, 0.5), (0.95, 0.27), (0.95, 0.73))], 255)
    cv2.fillPoly(c, [_pts(s, (0.35, 0.36), (0.5, 0.2), (0.55, 0.36))], 255)  # dorsal fin


def _bird(c: np.ndarray, s: int, rng: np.random.Generator) -> None:
    _ellipse(c, s, 0.47, 0.6, 0.27, 0.15)
    cv2.circle(c, (int(0.75 * s), int(0.4 * s)), max(1, int(0.11 * s)), 255, -1)
    cv2.fillPoly(c, [_pts(s, (0.84, 0.36), (0.98, 0.42), (0.84, 0.46))], 255)  # beak
    cv2.fillPoly(c, [_pts(s, (0.24, 0.58), (0.03, 0.45), (0.06, 0.72))], 255)  # tail
    cv2.fillPoly(c, [_pts(s, (0.35, 0.55), (0.5, 0.12), (0.6, 0.55))], 255)  # raised wing


def _butterfly(c: np.ndarray, s: int, rng: np.random.Generator) -> None:
    _ellipse(c, s, 0.29, 0.32, 0.21, 0.15, -35)
    _ellipse(c, s, 0.71, 0.32, 0.21, 0.15, 35)
    _ellipse(c, s, 0.35, 0.7, 0.14, 0.11, 30)
    _ellipse(c, s, 0.65, 0.7, 0.14, 0.11, -30)
    _ellipse(c, s, 0.5, 0.5, 0.04, 0.3)


def _snake(c: np.ndarray, s: int, rng: np.random.Generator) -> None:
    phase = rng.uniform(0, 2 * np.pi)
    x = np.linspace(0.08, 0.85, 40)
    y = 0.5 + 0.25 * np.sin(2 * np.pi * 1.3 * x + phase)
    cv2.polylines(c, [np.stack([x * s, y * s], 1).astype(np.int32)], False, 255, max(2, int(0.1 * s)))
    cv2.circle(c, (int(0.88 * s), int(y[-1] * s)), max(2, int(0.08 * s)), 255, -1)


def _frog(c: np.ndarray, s: int, rng: np.random.Generator) -> None:
    _ellipse(c, s, 0.5, 0.58, 0.22, 0.25)
    _ellipse(c, s, 0.5, 0.3, 0.17, 0.12)
    for side in (-1, 1):
        _line(c, s, (0.5 + side * 0.15, 0.5), (0.5 + side * 0.38, 0.35), 0.07)  # front legs
        _line(c, s, (0.5 + side * 0.38, 0.35), (0.5 + side * 0.42, 0.22), 0.05)
        _line(c, s, (0.5 + side * 0.15, 0.75), (0.5 + side * 0.42, 0.82), 0.08)  # hind legs
        _line(c, s, (0.5 + side * 0.42, 0.82), (0.5 + side * 0.3, 0.95), 0.06)


def _crab(c: np.ndarray, s: int, rng: np.random.Generator) -> None:
    _ellipse(c, s, 0.5, 0.58, 0.27, 0.16)
    for side in (-1, 1):
        _line(c, s, (0.5 + side * 0.2, 0.5), (0.5 + side * 0.3, 0.28), 0.05)
        cv2.circle(c, (int((0.5 + side * 0.3) * s), int(0.22 * s)), max(1, int(0.1 * s)), 255, -1)
        for k in range(3):
            _line(c, s, (0.5 + side * 0.22, 0.6 + 0.05 * k), (0.5 + side * 0.45, 0.72 + 0.09 * k), 0.035)


def _lizard(c: np.ndarray, s: int, rng: np.random.Generator) -> None:
    _ellipse(c, s, 0.45, 0.5, 0.22, 0.08)  # body
    _ellipse(c, s, 0.72, 0.5, 0.08, 0.06)  # head
    _line(c, s, (0.25, 0.5), (0.05, 0.62), 0.05)  # tail
    for x in (0.33, 0.55):
        for side in (-1, 1):
            _line(c, s, (x, 0.5), (x - 0.06, 0.5 + side * 0.2), 0.04)


def _ball(c: np.ndarray, s: int, rng: np.random.Generator) -> None:
    cv2.circle(c, (s // 2, s // 2), max(1, int(0.4 * s)), 255, -1)


def _cup(c: np.ndarray, s: int, rng: np.random.Generator) -> None:
    cv2.fillPoly(c, [_pts(s, (0.2, 0.18), (0.68, 0.18), (0.62, 0.88), (0.26, 0.88))], 255)
    cv2.ellipse(c, (int(0.7 * s), int(0.5 * s)), (max(1, int(0.14 * s)), max(1, int(0.17 * s))), 0, -90, 90, 255, max(2, int(0.07 * s)))


SILHOUETTES: dict[str, Callable[[np.ndarray, int, np.random.Generator], None]] = {
    "fish": _fish, "bird": _bird, "butterfly": _butterfly, "snake": _snake,
    "frog": _frog, "crab": _crab, "ball": _ball, "cup": _cup, "lizard": _lizard,
}


def silhouette(category: str, side: int, rng: np.random.Generator, max_rotation_deg: float = 0.0) -> np.ndarray:
    """A bool (side, side) mask of ``category``, randomly mirrored and rotated."""
    canvas = np.zeros((side, side), np.uint8)
    SILHOUETTES[category](canvas, side, rng)
    if rng.random() < 0.5:
        canvas = canvas[:, ::-1].copy()
    if max_rotation_deg:
        turn = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(-max_rotation_deg, max_rotation_deg), 1.0)
        canvas = cv2.warpAffine(canvas, turn, (side, side), flags=cv2.INTER_NEAREST)
    return canvas > 127


# --- textures ------------------------------------------------------------------------------

def noise_field(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    field = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
    return field / (field.std() + 1e-6)


def two_colour(rng: np.random.Generator, palette: np.ndarray, mix: np.ndarray, grain: float) -> np.ndarray:
    """float32 RGB: the palette's two colours mixed by ``mix`` (h, w) in [0, 1], plus per-pixel grain of
    std ``grain``. Every texture ends here, grain drawn last: the RNG's order fixes each generated image."""
    mix = mix[..., None]
    return palette[0] * (1 - mix) + palette[1] * mix + rng.normal(0, grain, (*mix.shape[:2], 1)).astype(np.float32)


def natural_texture(rng: np.random.Generator, h: int, w: int, palette: np.ndarray) -> np.ndarray:
    """Blotchy two-colour texture (sand, moss, bark…) in float32 RGB: a mottled mix of the palette plus grain."""
    blotch = 0.7 * noise_field(rng, h, w, rng.uniform(3, 7)) + 0.3 * noise_field(rng, h, w, 1.5)
    return two_colour(rng, palette, 1.0 / (1.0 + np.exp(-2.0 * blotch)), grain=6)


def cells_texture(rng: np.random.Generator, h: int, w: int, palette: np.ndarray) -> np.ndarray:
    """Hard-edged patches (pebbles, leaf litter): a smooth field quantised to four levels of the palette's mix."""
    levels = np.floor(np.clip(noise_field(rng, h, w, rng.uniform(4, 9)) * 1.2 + 2.0, 0, 3.99)) / 3.0
    return two_colour(rng, palette, levels, grain=5)


def stripes_texture(rng: np.random.Generator, h: int, w: int, palette: np.ndarray) -> np.ndarray:
    """Wavy stripes (grass, bark, reeds) of the palette's two colours."""
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 14)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period + 2.0 * noise_field(rng, h, w, 8.0)
    return two_colour(rng, palette, 0.5 + 0.5 * np.sin(phase), grain=5)


def spots_texture(rng: np.random.Generator, h: int, w: int, palette: np.ndarray) -> np.ndarray:
    """Round spots (gravel, lichen, a leopard's coat) of the palette's second colour, of mixed size
    and strength, on a faintly mottled ground of the first."""
    mix = (0.15 + 0.1 * noise_field(rng, h, w, 6.0)).astype(np.float32)
    for _ in range(h * w // 60):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(mix, centre, int(rng.integers(1, 6)), float(rng.uniform(0.5, 1.0)), -1)
    return two_colour(rng, palette, np.clip(mix, 0, 1), grain=5)


def grain_texture(rng: np.random.Generator, h: int, w: int, palette: np.ndarray) -> np.ndarray:
    """Fibrous grain (straw, wood, dry needles): noise smeared along one random direction."""
    length, angle = int(rng.integers(9, 19)), rng.uniform(0, np.pi)
    kernel = np.zeros((length, length), np.float32)
    half = (length - 1) / 2
    end = np.array([np.cos(angle), np.sin(angle)]) * half
    cv2.line(kernel, (round(half - end[0]), round(half - end[1])), (round(half + end[0]), round(half + end[1])), 1.0, 1)
    field = cv2.filter2D(rng.standard_normal((h, w)).astype(np.float32), -1, kernel / kernel.sum())
    field = 0.8 * field / (field.std() + 1e-6) + 0.4 * noise_field(rng, h, w, 5.0)
    return two_colour(rng, palette, 1.0 / (1.0 + np.exp(-2.0 * field)), grain=4)


def bands_texture(rng: np.random.Generator, h: int, w: int, palette: np.ndarray) -> np.ndarray:
    """Straight hard-edged bands (planks, slats, reed beds, a tabby's coat): a square wave of random
    angle, period and duty cycle with slightly uneven edges; a line texture, where the other
    training textures are all blob- or fibre-like."""
    angle, period, duty = rng.uniform(0, np.pi), rng.uniform(5, 16), rng.uniform(0.3, 0.7)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    position = (x * np.cos(angle) + y * np.sin(angle)) / period + 0.08 * noise_field(rng, h, w, 3.0)
    mix = (np.mod(position, 1.0) < duty).astype(np.float32)
    return two_colour(rng, palette, cv2.GaussianBlur(mix, (0, 0), 0.7), grain=5)


TEXTURE_OF = {"blotches": natural_texture, "spots": spots_texture, "grain": grain_texture, "bands": bands_texture,
              "cells": cells_texture, "stripes": stripes_texture}


def dusk_palette(rng: np.random.Generator) -> np.ndarray:
    """Two dark, desaturated colours of one hue (the same scene at dusk)."""
    hue = rng.uniform(0, 180)
    hsv = np.array([[[hue, rng.uniform(15, 60), rng.uniform(35, 75)], [hue, rng.uniform(15, 60), rng.uniform(70, 110)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def pale_palette(rng: np.random.Generator) -> np.ndarray:
    """Two light, desaturated colours of one hue (an overcast day, a sandy beach)."""
    hue, value = rng.uniform(0, 180), rng.uniform(150, 200)
    hsv = np.array([[[hue, rng.uniform(10, 50), value], [hue, rng.uniform(10, 50), value + rng.uniform(25, 50)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def random_palette(rng: np.random.Generator) -> np.ndarray:
    hue = rng.uniform(0, 180)
    base = np.array([[[hue, rng.uniform(40, 140), rng.uniform(70, 170)]]], np.uint8)
    other = base.astype(np.float32) + [rng.uniform(-12, 12), rng.uniform(-30, 30), rng.uniform(30, 70)]
    hsv = np.concatenate([base.astype(np.float32), np.clip(other, [0, 0, 0], [179, 255, 255])], 1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32)  # (2, 3)


PALETTE_OF = {"random": random_palette, "pale": pale_palette, "dusk": dusk_palette}


def salient_colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A saturated colour far from the background palette's mean."""
    for _ in range(20):
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(170, 255), rng.uniform(170, 255)]]], np.uint8)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
        if np.linalg.norm(rgb - avoid) > 120:
            return rgb
    return rgb


# --- scenes --------------------------------------------------------------------------------

def _place(rng: np.random.Generator, shape: np.ndarray, occupied: np.ndarray, tries: int = 30) -> tuple[int, int] | None:
    """Top-left corner where ``shape`` fits inside the image and barely overlaps what is already there."""
    H, W = occupied.shape
    side = shape.shape[0]
    for _ in range(tries):
        y, x = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
        if (occupied[y:y + side, x:x + side] & shape).sum() <= 0.03 * shape.sum():
            return y, x
    return None


def box_of(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def generate_sample(rng: np.random.Generator, config: SyntheticConfig = SyntheticConfig()) -> Sample:
    H, W = config.height, config.width
    palette = PALETTE_OF[config.palette](rng)
    texture = TEXTURE_OF[config.texture]
    image = texture(rng, H, W, palette)
    occupied = np.zeros((H, W), bool)
    target = str(rng.choice(config.targets))
    plan: list[tuple[str, bool]] = [(target, True)]
    if rng.random() < config.second_target_prob:
        plan.append((target, True))
    others = [a for a in ANIMALS if a != target]
    for _ in range(int(rng.integers(config.distractors[0], config.distractors[1] + 1))):
        pool = others if rng.random() < config.animal_distractor_prob else list(OBJECTS)
        plan.append((str(rng.choice(pool)), False))

    painted: list[tuple[str, np.ndarray, bool]] = []
    short = min(H, W)
    for category, camouflaged in plan:
        side = int(rng.uniform(config.min_scale, config.max_scale) * short)
        shape = silhouette(category, side, rng, config.max_rotation_deg)
        if shape.sum() < 12:
            continue
        corner = _place(rng, shape, occupied)
        if corner is None:
            continue
        mask = np.zeros((H, W), bool)
        mask[corner[0]:corner[0] + side, corner[1]:corner[1] + side] = shape
        mask &= ~occupied
        if camouflaged:
            shift = rng.standard_normal(3)
            shift *= rng.uniform(*config.camouflage_shift) / np.linalg.norm(shift)
            skin = texture(rng, H, W, palette) + shift.astype(np.float32)
        else:
            colour = salient_colour(rng, palette.mean(0))
            shade = 1.0 + 0.12 * noise_field(rng, H, W, 4.0)[..., None]
            skin = colour * shade + rng.normal(0, 4, (H, W, 1)).astype(np.float32)
        image[mask] = skin[mask]
        occupied |= mask
        painted.append((category, mask, camouflaged))

    instances = [Instance(c, m, box_of(m), cam) for c, m, cam in painted if m.any()]
    if not any(i.camouflaged for i in instances):  # the target found no room: try another scene
        return generate_sample(rng, config)
    target_mask = np.zeros((H, W), bool)
    for instance in instances:
        if instance.camouflaged:
            target_mask |= instance.mask
    if config.lighting:
        angle = rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:H, 0:W].astype(np.float32)
        ramp = ((x / W - 0.5) * np.cos(angle) + (y / H - 0.5) * np.sin(angle))[..., None]
        image = image * (1.0 + 2.0 * config.lighting * ramp)
    side = 2 * round(1.5 * config.blur) + 1  # 3 for the default 0.6 (the shipped components' data)
    image = cv2.GaussianBlur(np.clip(image, 0, 255), (side, side), config.blur)  # soften the pasted edges, as a camera would
    if config.sensor_noise:
        image = image + rng.normal(0, config.sensor_noise, image.shape).astype(np.float32)
    return Sample(np.clip(image, 0, 255).astype(np.uint8), target_mask, instances, TASK_PROMPT)


def generate_split(seed: int, count: int, config: SyntheticConfig = SyntheticConfig()) -> list[Sample]:
    """``count`` samples; sample ``i`` depends only on (seed, i), so splits are reproducible and extendable."""
    return [generate_sample(np.random.default_rng([seed, i]), config) for i in range(count)]


FAMILIES = {
    # training: the original set, and domain randomisation around it (other texture families and a
    # palette the held-out families do not use; lighting, blur, noise, scale and clutter as varied)
    "blotches": SyntheticConfig(),
    "spots-pale": SyntheticConfig(texture="spots", palette="pale", lighting=0.2, sensor_noise=2.0, blur=0.9),
    "grain-random": SyntheticConfig(texture="grain", lighting=0.4, sensor_noise=4.0, blur=1.0, min_scale=0.12,
                                    max_scale=0.4, distractors=(1, 4)),
    "blotches-harsh": SyntheticConfig(lighting=0.6, sensor_noise=6.0, blur=1.5, min_scale=0.12, max_scale=0.35,
                                      distractors=(2, 4)),
    "bands-random": SyntheticConfig(texture="bands", lighting=0.3, sensor_noise=3.0, blur=0.8, min_scale=0.1,
                                    max_scale=0.4, distractors=(1, 4)),
    # held out: texture families, palettes, lighting, blur and noise, scales and clutter training never
    # saw, and a category name (lizard) it never saw, given to the vocabulary at run time only
    "cells-dusk": SyntheticConfig(texture="cells", palette="dusk", lighting=0.3, sensor_noise=5.0, blur=1.2,
                                  targets=ANIMALS + HOLDOUT_CATEGORIES),
    "stripes-glare": SyntheticConfig(texture="stripes", lighting=0.5, sensor_noise=3.0, min_scale=0.12, max_scale=0.32,
                                     distractors=(2, 4), targets=ANIMALS + HOLDOUT_CATEGORIES),
}
TRAIN_FAMILIES = ("blotches", "spots-pale", "grain-random", "blotches-harsh", "bands-random")
HOLDOUT_FAMILIES = ("cells-dusk", "stripes-glare")  # texture families (cells, stripes) no training family draws


def generate_families(seed: int, count: int, families: tuple[str, ...], height: int = 128, width: int = 128) -> list[Sample]:
    """``count`` samples drawn in turn from ``families`` (names in :data:`FAMILIES`) at ``height`` ×
    ``width``; sample ``i`` depends only on (seed, i) and comes from ``families[i % len(families)]``."""
    unknown = [name for name in families if name not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"camouflage families: unknown {', '.join(unknown) or '(none given)'} (families: {', '.join(FAMILIES)})")
    configs = [replace(FAMILIES[name], height=height, width=width) for name in families]
    return [generate_sample(np.random.default_rng([seed, i]), configs[i % len(configs)]) for i in range(count)]
