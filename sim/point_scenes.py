"""Synthetic track windows with ground truth, for training and for measuring reconstruction.

A scene is a static background surface seen by a moving camera plus one or two moving, deforming
objects, observed through a pinhole camera for T frames. What a point tracker would return is
simulated on top of the clean projections: visibility (leaving the image, occlusion by the
objects, short random dropouts), pixel noise and a few outlier tracks that jump to a wrong place.

Everything follows the OpenCV camera convention (x right, y down, z forward) and
``x_cam = R X + t`` (``cam_from_world``). Object motion is low-rank by construction, so the
paper's model can represent it exactly with K >= 6: ``X_t(p) = p + d(t) + sum_j a_j(t) A_j (p - c)``
(a 3-D path d(t), rank 3, and two linear deformation fields A_j, rank 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class SceneConfig:
    """What :func:`generate_scene` draws. Ranges are (low, high), drawn uniformly per scene."""

    frames: int = 20
    points: int = 225
    image_size: tuple[int, int] = (640, 480)  # (width, height)
    focal_factor: tuple[float, float] = (0.7, 1.3)  # focal length / image width
    depth: tuple[float, float] = (6.0, 12.0)  # distance from the first camera to the background
    objects: tuple[int, int] = (1, 2)  # moving objects per scene (inclusive)
    dynamic_fraction: tuple[float, float] = (0.15, 0.35)  # share of the points on the objects
    orbit_degrees: tuple[float, float] = (5.0, 25.0)  # total camera rotation about the scene centre
    camera_shift: tuple[float, float] = (0.05, 0.25)  # extra camera translation, as a fraction of the depth
    object_speed: tuple[float, float] = (0.05, 0.25)  # object displacement over the window / depth
    deformation: tuple[float, float] = (0.0, 0.25)  # amplitude of the two linear deformation fields
    noise_px: tuple[float, float] = (0.2, 1.0)  # Gaussian track noise on visible points
    outlier_fraction: float = 0.02  # tracks that jump to a wrong place for the rest of the window
    dropout_fraction: float = 0.05  # tracks losing visibility for a few frames
    camera_path: str = "orbit"  # one of CAMERA_PATHS
    background: str = "surface"  # one of BACKGROUNDS

    def __post_init__(self) -> None:
        if self.camera_path not in CAMERA_PATHS:
            raise ValueError(f"SceneConfig.camera_path: expected one of {CAMERA_PATHS}, got {self.camera_path!r}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"SceneConfig.background: expected one of {BACKGROUNDS}, got {self.background!r}")

    def to_dict(self) -> dict:
        return asdict(self)


CAMERA_PATHS = ("orbit", "strafe", "dolly", "handheld")
"""orbit: an arc about the scene centre, looking at it; strafe: sideways along a smooth path,
looking ahead; dolly: forward into the scene; handheld: a slow walk with a shaking hand."""
BACKGROUNDS = ("surface", "box", "ground")
"""surface: a slanted, bumpy sheet at the scene depth; box: the inside of a room (back wall, side
walls, floor, ceiling); ground: a floor running off to a far backdrop (depths over a wide range)."""


@dataclass
class Scene:
    """One window. ``tracks`` (N, 3, T) float32: pixel x, y (noise, outliers applied; occluded
    points keep a noisy estimate, clipped to the image, as trackers do) and visibility in {0, 1}.
    ``points_world`` (T, N, 3): the clean ground-truth points; ``cam_from_world`` (T, 4, 4);
    ``K`` (3, 3); ``dynamic`` (N,) bool: the point is on a moving object; ``outlier`` (N,) bool:
    the track jumps to a wrong place at some frame; ``clean_tracks`` (N, 2, T): exact projections."""

    tracks: np.ndarray
    K: np.ndarray
    image_size: tuple[int, int]
    cam_from_world: np.ndarray
    points_world: np.ndarray
    dynamic: np.ndarray
    outlier: np.ndarray
    clean_tracks: np.ndarray
    seed: tuple[int, int] | None = None


def look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """cam_from_world (4, 4) of a camera at ``center`` looking at ``target``, image y pointing down (world -y up)."""
    forward = target - center
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, -1.0, 0.0]))
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack((right, down, forward))
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = -rotation @ center
    return pose


def project_points(points: np.ndarray, cam_from_world: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``points`` (T, N, 3) world → (pixels (T, N, 2), depth (T, N))."""
    cam = np.einsum("tij,tnj->tni", cam_from_world[:, :3, :3], points) + cam_from_world[:, None, :3, 3]
    depth = cam[..., 2]
    uv = cam[..., :2] / depth[..., None]
    pixels = uv * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
    return pixels, depth


def _smooth_curve(rng: np.random.Generator, s: np.ndarray, dims: int) -> np.ndarray:
    """A smooth random path over s in [0, 1], (len(s), dims), starting at 0, of order-1 size."""
    linear = rng.normal(size=dims)
    quadratic = rng.normal(size=dims) * 0.5
    wiggle = rng.normal(size=dims) * 0.2
    phase = rng.uniform(0, 2 * np.pi, size=dims)
    freq = rng.uniform(1.0, 3.0, size=dims)
    curve = s[:, None] * linear + s[:, None] ** 2 * quadratic + wiggle * (np.sin(2 * np.pi * freq * s[:, None] + phase) - np.sin(phase))
    return curve / max(np.abs(curve).max(), 1e-9)


def _camera_path(rng: np.random.Generator, config: SceneConfig, frames: int, depth: float) -> np.ndarray:
    """cam_from_world (T, 4, 4) of ``config.camera_path`` (see :data:`CAMERA_PATHS`), starting at
    the origin and looking down +z."""
    if config.camera_path == "orbit":
        return _orbit(rng, config, frames, depth)
    s = np.linspace(0.0, 1.0, frames)
    shift = rng.uniform(*config.camera_shift) * depth
    if config.camera_path == "strafe":
        centres = _smooth_curve(rng, s, 3) * shift * np.array([2.0, 0.5, 0.5])
        angles = _smooth_curve(rng, s, 3) * np.deg2rad(3.0)
    elif config.camera_path == "dolly":
        centres = s[:, None] * np.array([0.0, 0.0, 1.5 * shift]) + _smooth_curve(rng, s, 3) * 0.3 * shift
        angles = _smooth_curve(rng, s, 3) * np.deg2rad(4.0)
    else:  # handheld: a slow walk, and a hand that shakes a little every frame
        centres = _smooth_curve(rng, s, 3) * shift + rng.normal(0.0, 0.004 * depth, (frames, 3))
        angles = _smooth_curve(rng, s, 3) * np.deg2rad(5.0) + rng.normal(0.0, np.deg2rad(0.3), (frames, 3))
    centres -= centres[0]
    angles -= angles[0]
    poses = np.tile(np.eye(4), (frames, 1, 1))
    rotations = Rotation.from_rotvec(angles).as_matrix()  # camera-from-world rotations
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = -np.einsum("tij,tj->ti", rotations, centres)
    return poses


def _orbit(rng: np.random.Generator, config: SceneConfig, frames: int, depth: float) -> np.ndarray:
    """An arc about the scene centre plus a smooth shift; looking at the centre."""
    s = np.linspace(0.0, 1.0, frames)
    target = np.array([0.0, 0.0, depth])
    orbit = np.deg2rad(rng.uniform(*config.orbit_degrees)) * rng.choice([-1.0, 1.0])
    tilt = np.deg2rad(rng.uniform(-5.0, 5.0))
    shift = _smooth_curve(rng, s, 3) * rng.uniform(*config.camera_shift) * depth
    look_drift = _smooth_curve(rng, s, 3) * 0.05 * depth
    poses = []
    for i, si in enumerate(s):
        angle, pitch = orbit * si, tilt * si
        offset = np.array([np.sin(angle) * np.cos(pitch), np.sin(pitch), -np.cos(angle) * np.cos(pitch)]) * depth
        poses.append(look_at(target + offset + shift[i], target + look_drift[i]))
    return np.stack(poses)


def _background(rng: np.random.Generator, count: int, pose0: np.ndarray, K: np.ndarray, size: tuple[int, int], depth: float, kind: str = "surface") -> np.ndarray:
    """(count, 3) world points of the background ``kind`` (see :data:`BACKGROUNDS`) covering the first frame."""
    width, height = size
    pixels = np.stack((rng.uniform(0, width, count), rng.uniform(0, height, count)), axis=1)
    rays = np.stack(((pixels[:, 0] - K[0, 2]) / K[0, 0], (pixels[:, 1] - K[1, 2]) / K[1, 1], np.ones(count)), axis=1)
    if kind == "surface":
        z = _surface_depth(rng, rays, depth)
    else:
        z = _room_depth(rng, rays, depth) if kind == "box" else _ground_depth(rng, rays, depth)
    cam = rays * z[:, None]
    rotation, translation = pose0[:3, :3], pose0[:3, 3]
    return (cam - translation) @ rotation  # R^T (x - t)


def _surface_depth(rng: np.random.Generator, rays: np.ndarray, depth: float) -> np.ndarray:
    slope = rng.uniform(-0.3, 0.3, size=2)
    bumps = rng.uniform(0.0, 0.15)
    freq = rng.uniform(1.0, 4.0, size=2)
    z = depth * (1.0 + slope[0] * rays[:, 0] + slope[1] * rays[:, 1] + bumps * np.sin(freq[0] * np.pi * rays[:, 0]) * np.cos(freq[1] * np.pi * rays[:, 1]))
    return np.clip(z, 0.5 * depth, 2.0 * depth)


def _first_hit(distances: list[np.ndarray]) -> np.ndarray:
    """Elementwise smallest positive distance along each ray."""
    stacked = np.stack([np.where(d > 0, d, np.inf) for d in distances])
    return stacked.min(0)


def _room_depth(rng: np.random.Generator, rays: np.ndarray, depth: float) -> np.ndarray:
    """Depth along rays (z = 1) inside a room: back wall at ``depth``, side walls, floor and ceiling."""
    half_width, floor, ceiling = rng.uniform(0.4, 0.8) * depth, rng.uniform(0.2, 0.4) * depth, rng.uniform(0.3, 0.5) * depth
    x, y = rays[:, 0], rays[:, 1]
    with np.errstate(divide="ignore"):
        z = _first_hit([np.full(len(rays), depth), half_width / np.abs(x), floor / y, -ceiling / y])
    return np.clip(z, 0.15 * depth, depth)


def _ground_depth(rng: np.random.Generator, rays: np.ndarray, depth: float) -> np.ndarray:
    """Depth along rays over a floor a camera height below, running off to a backdrop at 3 x ``depth``."""
    height = rng.uniform(0.1, 0.25) * depth
    with np.errstate(divide="ignore"):
        z = _first_hit([np.full(len(rays), 3.0 * depth), height / rays[:, 1]])
    return np.clip(z, 0.2 * depth, 3.0 * depth)


def _moving_object(rng: np.random.Generator, count: int, pose0: np.ndarray, K: np.ndarray, size: tuple[int, int], depth: float, config: SceneConfig, frames: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(points (T, count, 3), centre path (T, 3), radius): an ellipsoid surface moving and deforming, low rank."""
    width, height = size
    pixel = np.array([rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height])
    z = rng.uniform(0.45, 0.8) * depth
    ray = np.array([(pixel[0] - K[0, 2]) / K[0, 0], (pixel[1] - K[1, 2]) / K[1, 1], 1.0])
    center_cam = ray * z
    center = (center_cam - pose0[:3, 3]) @ pose0[:3, :3]
    radius = rng.uniform(0.06, 0.14) * depth
    axes = radius * rng.uniform(0.5, 1.0, size=3)
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    rest = center + direction * axes
    s = np.linspace(0.0, 1.0, frames)
    path = _smooth_curve(rng, s, 3) * rng.uniform(*config.object_speed) * depth
    amplitude = rng.uniform(*config.deformation)
    fields = rng.normal(size=(2, 3, 3)) * amplitude
    phase = rng.uniform(0, 2 * np.pi, size=2)
    freq = rng.uniform(0.5, 2.0, size=2)
    weights = np.sin(2 * np.pi * freq * s[:, None] + phase) - np.sin(phase)  # (T, 2), 0 at t = 0
    local = rest - center
    deform = np.einsum("tj,jab,nb->tna", weights, fields, local)
    return rest[None] + path[:, None, :] + deform, center + path, float(axes.max())


MAX_ATTEMPTS = 50


def generate_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig()) -> Scene:
    """Draw one window with ground truth (see :class:`Scene`); a draw that brings a point within a
    tenth of the scene depth of a camera is redrawn (from the same generator)."""
    for _ in range(MAX_ATTEMPTS):
        scene = _draw_scene(rng, config)
        if scene is not None:
            return scene
    raise RuntimeError(f"generate_scene: {MAX_ATTEMPTS} draws brought points too close to the camera; check the SceneConfig ranges")


def _draw_scene(rng: np.random.Generator, config: SceneConfig) -> Scene | None:
    frames, count = config.frames, config.points
    width, height = config.image_size
    focal = rng.uniform(*config.focal_factor) * width
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    depth = rng.uniform(*config.depth)
    cam_from_world = _camera_path(rng, config, frames, depth)

    objects = int(rng.integers(config.objects[0], config.objects[1] + 1))
    n_dynamic = round(rng.uniform(*config.dynamic_fraction) * count) if objects else 0
    n_static = count - n_dynamic
    static = _background(rng, n_static, cam_from_world[0], K, config.image_size, depth, config.background)
    points = [np.broadcast_to(static, (frames, n_static, 3))]
    centers, radii = [], []
    for share in np.array_split(np.arange(n_dynamic), objects) if objects else []:
        moving, center, radius = _moving_object(rng, len(share), cam_from_world[0], K, config.image_size, depth, config, frames)
        points.append(moving)
        centers.append(center)
        radii.append(radius)
    points_world = np.concatenate(points, axis=1)
    dynamic = np.arange(count) >= n_static
    order = rng.permutation(count)
    points_world, dynamic = points_world[:, order], dynamic[order]

    pixels, point_depth = project_points(points_world, cam_from_world, K)
    if (point_depth < 0.1 * depth).any():
        return None
    inside = (pixels[..., 0] >= 0) & (pixels[..., 0] < width) & (pixels[..., 1] >= 0) & (pixels[..., 1] < height)
    visible = inside & ~_occluded_by_objects(pixels, point_depth, dynamic, centers, radii, cam_from_world, K)
    visible &= ~_dropouts(rng, count, frames, config.dropout_fraction).T

    noise = rng.normal(size=pixels.shape) * rng.uniform(*config.noise_px)
    observed = pixels + np.where(visible[..., None], noise, 3.0 * noise)
    outlier = rng.random(count) < config.outlier_fraction
    for n in np.flatnonzero(outlier):
        start = int(rng.integers(0, frames - 1))
        observed[start:, n] += rng.uniform(15.0, 60.0) * _unit2(rng)
    observed[~visible] = np.clip(observed[~visible], 0.0, [width - 1.0, height - 1.0])
    tracks = np.concatenate((observed.transpose(1, 2, 0), visible.T[:, None, :].astype(np.float64)), axis=1)
    return Scene(
        tracks=tracks.astype(np.float32),
        K=K,
        image_size=(width, height),
        cam_from_world=cam_from_world,
        points_world=np.ascontiguousarray(points_world),
        dynamic=dynamic,
        outlier=outlier,
        clean_tracks=pixels.transpose(1, 2, 0).astype(np.float32),
    )


def _unit2(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(angle), np.sin(angle)])


def _occluded_by_objects(
    pixels: np.ndarray, depth: np.ndarray, dynamic: np.ndarray, centers: list[np.ndarray], radii: list[float],
    cam_from_world: np.ndarray, K: np.ndarray,
) -> np.ndarray:
    """(T, N) bool: a background point behind an object's projected disc."""
    occluded = np.zeros(depth.shape, dtype=bool)
    for center, radius in zip(centers, radii):
        center_px, center_depth = project_points(center[:, None, :], cam_from_world, K)
        disc = K[0, 0] * radius / center_depth  # (T, 1) projected radius in pixels
        inside = np.linalg.norm(pixels - center_px, axis=-1) < disc
        occluded |= inside & (depth > center_depth + radius) & ~dynamic[None, :]
    return occluded


def _dropouts(rng: np.random.Generator, count: int, frames: int, fraction: float) -> np.ndarray:
    """(N, T) bool: short stretches (2-6 frames) where a tracker loses the point."""
    lost = np.zeros((count, frames), dtype=bool)
    for n in np.flatnonzero(rng.random(count) < fraction):
        length = int(rng.integers(2, 7))
        start = int(rng.integers(0, max(frames - length, 1)))
        lost[n, start : start + length] = True
    return lost


HELD_OUT_SEED = 1_000_003
"""The seed of the held-out split: training draws its scenes from other seeds."""


def generate_split(seed: int, count: int, config: SceneConfig = SceneConfig()) -> list[Scene]:
    """``count`` scenes, scene i drawn from ``np.random.default_rng([seed, i])``: reproducible, and a
    split with another ``seed`` shares no scene with it."""
    scenes = []
    for i in range(count):
        scene = generate_scene(np.random.default_rng([seed, i]), config)
        scene.seed = (seed, i)
        scenes.append(scene)
    return scenes


FAMILIES = {
    # what the shipped model trained on
    "orbit-surface": SceneConfig(),
    # more training variety (domain randomisation)
    "strafe-surface": SceneConfig(camera_path="strafe", noise_px=(0.2, 1.5)),
    "orbit-box": SceneConfig(background="box", focal_factor=(0.5, 1.0), depth=(4.0, 8.0)),
    # held out: camera paths, backgrounds, lenses and depth ranges no training family has, more
    # and faster movers, more outliers
    "dolly-box": SceneConfig(camera_path="dolly", background="box", focal_factor=(0.4, 0.6), depth=(3.0, 6.0),
                             objects=(1, 3), object_speed=(0.1, 0.35), noise_px=(0.3, 1.5), outlier_fraction=0.03),
    "handheld-ground": SceneConfig(camera_path="handheld", background="ground", focal_factor=(1.3, 1.8), depth=(8.0, 20.0),
                                   objects=(1, 3), object_speed=(0.1, 0.35), noise_px=(0.3, 1.5), outlier_fraction=0.03),
}
TRAIN_FAMILIES = ("orbit-surface", "strafe-surface", "orbit-box")
HOLDOUT_FAMILIES = ("dolly-box", "handheld-ground")


def family_config(name: str, **overrides) -> SceneConfig:
    """The :class:`SceneConfig` of a family in :data:`FAMILIES`, with ``overrides`` (frames, points, ...)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown scene family {name!r} (families: {', '.join(FAMILIES)})")
    return replace(FAMILIES[name], **overrides)
