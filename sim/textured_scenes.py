"""Textured image sequences with ground truth, for the end-to-end (images → KLT → network) evaluation,
the tracker tests and the demo camera.

A scene is a few textured planar rectangles — a back wall, the ground, panels at several depths
(parallax) and panels that move — seen by a moving pinhole camera. Each rectangle is drawn with one
OpenCV homography warp per frame and composited with an exact per-pixel depth buffer, so every
pixel's depth, surface and texture position are known: a tracked feature's 3-D point over time
follows from the surface under its query pixel (:func:`track_ground_truth`).

Frames: the world and cameras follow OpenCV (x right, y down, z forward); poses are
camera-from-world (T, 4, 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class RenderConfig:
    width: int = 640
    height: int = 480
    frames: int = 40
    focal: float = 520.0  # pixels; the principal point is the image centre
    panels: int = 4  # static panels between the camera and the back wall
    moving_panels: int = 1  # panels that translate (the dynamic part)
    camera_step: float = 0.04  # metres per frame along the camera's mean direction
    camera_shake: float = 0.6  # amplitude (metres / ~0.1 rad) of the smooth side-to-side motion
    texture_size: int = 384


@dataclass(frozen=True)
class Surface:
    """A textured rectangle ``|x| <= half_width, |y| <= half_height`` in the z = 0 plane of its own
    frame, placed by ``world_from_surface`` (T, 4, 4) in each frame (constant when static)."""

    texture: np.ndarray  # (S, S, 3) uint8
    half_width: float
    half_height: float
    world_from_surface: np.ndarray  # (T, 4, 4)
    moving: bool

    def texture_to_local(self) -> np.ndarray:
        """(3, 3) homogeneous texture pixel (column, row) → local (x, y) on the rectangle."""
        rows, cols = self.texture.shape[:2]
        sx, sy = 2 * self.half_width / cols, 2 * self.half_height / rows
        return np.array([[sx, 0, -self.half_width + sx / 2], [0, sy, -self.half_height + sy / 2], [0, 0, 1]])


@dataclass(frozen=True)
class RenderedSequence:
    images: np.ndarray  # (T, H, W, 3) uint8 RGB
    depth: np.ndarray  # (T, H, W) float32 metres (camera z); inf where nothing is drawn
    surface_id: np.ndarray  # (T, H, W) int16 index into ``surfaces``; -1 where nothing is drawn
    K: np.ndarray  # (3, 3)
    cam_from_world: np.ndarray  # (T, 4, 4)
    surfaces: tuple[Surface, ...]

    @property
    def image_size(self) -> tuple[int, int]:
        return self.images.shape[2], self.images.shape[1]


def random_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multi-scale blurred colour noise with a few solid shapes: corners everywhere for KLT."""
    texture = np.zeros((size, size, 3), np.float32)
    for sigma, weight in ((1.5, 0.5), (4.0, 1.0), (12.0, 1.0)):
        noise = cv2.GaussianBlur(rng.normal(size=(size, size, 3)).astype(np.float32), (0, 0), sigma)
        texture += weight * noise / (noise.std() + 1e-6)
    texture = np.clip(128 + 40 * texture, 0, 255).astype(np.uint8)
    for _ in range(12):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        extent = int(rng.integers(size // 24, size // 8))
        if rng.random() < 0.5:
            cv2.rectangle(texture, (x, y), (x + extent, y + extent), colour, -1)
        else:
            cv2.circle(texture, (x, y), extent // 2, colour, -1)
    return texture


def pose(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, translation
    return out


def camera_trajectory(rng: np.random.Generator, config: RenderConfig) -> np.ndarray:
    """Smooth camera-from-world poses: a forward drift plus side-to-side and up-down sways and
    small yaw/pitch/roll oscillations of random phase."""
    t = np.arange(config.frames, dtype=np.float64)
    phase = rng.uniform(0, 2 * np.pi, 6)
    period = config.frames * rng.uniform(0.8, 1.6, 6)
    sway = np.sin(2 * np.pi * t[:, None] / period + phase)
    direction = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.1, 0.1), 1.0])
    centres = t[:, None] * config.camera_step * direction / np.linalg.norm(direction)
    centres += config.camera_shake * sway[:, :3] * np.array([1.0, 0.4, 0.3])
    angles = 0.1 * config.camera_shake * sway[:, 3:] * np.array([1.0, 0.6, 0.3])  # yaw (y), pitch (x), roll (z)
    world_from_cam = np.stack(
        [pose(Rotation.from_euler("yxz", a).as_matrix(), c) for a, c in zip(angles, centres)]
    )
    return np.linalg.inv(world_from_cam)


def build_surfaces(rng: np.random.Generator, config: RenderConfig) -> tuple[Surface, ...]:
    frames, size = config.frames, config.texture_size
    still = lambda rotation, centre: np.repeat(pose(rotation, centre)[None], frames, axis=0)
    ground = Rotation.from_euler("x", -90, degrees=True).as_matrix()  # local y → world z, normal up (−y)
    surfaces = [
        Surface(random_texture(rng, 2 * size), 14.0, 10.0, still(np.eye(3), np.array([0.0, 0.0, 11.0])), False),
        Surface(random_texture(rng, 2 * size), 9.0, 5.0, still(ground, np.array([0.0, 2.0, 6.5])), False),
    ]
    for _ in range(config.panels):
        yaw = Rotation.from_euler("y", rng.uniform(-35, 35), degrees=True).as_matrix()
        centre = np.array([rng.uniform(-3.0, 3.0), rng.uniform(-1.2, 0.8), rng.uniform(4.0, 8.5)])
        half = rng.uniform(0.6, 1.3)
        surfaces.append(Surface(random_texture(rng, size // 2), half, half * rng.uniform(0.7, 1.3), still(yaw, centre), False))
    for _ in range(config.moving_panels):
        start = np.array([rng.uniform(-2.5, 2.5), rng.uniform(-1.0, 0.5), rng.uniform(3.5, 6.0)])
        velocity = rng.normal(size=3) * np.array([0.05, 0.02, 0.02])
        spin = rng.normal() * 0.02
        world = np.stack(
            [pose(Rotation.from_euler("y", spin * t).as_matrix(), start + velocity * t) for t in range(frames)]
        )
        half = rng.uniform(0.5, 0.9)
        surfaces.append(Surface(random_texture(rng, size // 2), half, half, world, True))
    return tuple(surfaces)


@dataclass(frozen=True)
class SceneLayout:
    """What a sequence shows, before any pixel is drawn: render frames of it with :func:`render_frame`."""

    K: np.ndarray  # (3, 3)
    cam_from_world: np.ndarray  # (T, 4, 4)
    surfaces: tuple[Surface, ...]
    width: int
    height: int
    rays: np.ndarray  # (H, W, 3) K⁻¹ [u, v, 1] of every pixel centre


def build_scene(seed: int, config: RenderConfig = RenderConfig()) -> SceneLayout:
    """The random scene and camera path drawn from ``seed`` (reproducible)."""
    rng = np.random.default_rng(seed)
    K = np.array([[config.focal, 0, config.width / 2], [0, config.focal, config.height / 2], [0, 0, 1.0]])
    cam_from_world = camera_trajectory(rng, config)
    surfaces = build_surfaces(rng, config)
    return SceneLayout(K, cam_from_world, surfaces, config.width, config.height, _pixel_rays(K, config.width, config.height))


def render_frame(scene: SceneLayout, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``t`` → (RGB uint8 (H, W, 3), depth float32 (H, W), surface id int16 (H, W))."""
    shape = (scene.height, scene.width)
    image = np.zeros((*shape, 3), np.uint8)
    depth = np.full(shape, np.inf, np.float32)
    surface_id = np.full(shape, -1, np.int16)
    for index, surface in enumerate(scene.surfaces):
        _draw(surface, scene.cam_from_world[t] @ surface.world_from_surface[t], scene.K, scene.rays, image, depth, surface_id, index)
    return image, depth, surface_id


def render_sequence(seed: int, config: RenderConfig = RenderConfig()) -> RenderedSequence:
    """Render ``config.frames`` frames of a random scene drawn from ``seed`` (reproducible)."""
    scene = build_scene(seed, config)
    images, depth, surface_id = (np.stack(parts) for parts in zip(*(render_frame(scene, t) for t in range(config.frames))))
    return RenderedSequence(images, depth, surface_id, scene.K, scene.cam_from_world, scene.surfaces)


def _pixel_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) rays K⁻¹ [u, v, 1] of the pixel centres (z = 1)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T.astype(np.float32)


def _draw(surface: Surface, cam_from_surface: np.ndarray, K, rays, image, depth, surface_id, index: int) -> None:
    """Z-buffered warp of one surface into the frame's image, depth and id buffers (in place),
    within the surface's bounding box on the image when it lies wholly in front of the camera."""
    height, width = image.shape[:2]
    corners = np.array([[sx * surface.half_width, sy * surface.half_height, 0, 1] for sx in (-1, 1) for sy in (-1, 1)])
    cam = corners @ cam_from_surface[:3].T
    if (cam[:, 2] <= 0.05).any():
        left, top, right, bottom = 0, 0, width, height
    else:
        pixels = cam[:, :2] / cam[:, 2:] * np.diag(K)[:2] + K[:2, 2]
        left, top = np.clip(np.floor(pixels.min(0)).astype(int) - 1, 0, [width, height])
        right, bottom = np.clip(np.ceil(pixels.max(0)).astype(int) + 2, 0, [width, height])
        if right <= left or bottom <= top:
            return
    normal, origin = cam_from_surface[:3, 2], cam_from_surface[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (normal @ origin) / (rays[top:bottom, left:right] @ normal)
    shift = np.array([[1, 0, -left], [0, 1, -top], [0, 0, 1.0]])
    homography = shift @ K @ cam_from_surface[:3][:, [0, 1, 3]] @ surface.texture_to_local()
    size = (right - left, bottom - top)
    warped = cv2.warpPerspective(surface.texture, homography, size, flags=cv2.INTER_LINEAR)
    rows, cols = surface.texture.shape[:2]
    inside = cv2.warpPerspective(np.ones((rows, cols), np.uint8), homography, size, flags=cv2.INTER_NEAREST)
    region = (slice(top, bottom), slice(left, right))
    front = (inside > 0) & np.isfinite(z) & (z > 0.05) & (z < depth[region])
    image[region][front] = warped[front]
    depth[region][front] = z[front]
    surface_id[region][front] = index


def track_ground_truth(sequence: RenderedSequence, tracks: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The true 3-D points of tracked features: for each track of ``tracks`` (N, 3, T) (pixels +
    visibility, over the sequence frames ``frames`` (T,)), the surface under its first visible
    position is followed through every frame → (points_world (T, N, 3), dynamic (N,) bool). Tracks
    that start off every surface get NaN points."""
    count, window = tracks.shape[0], tracks.shape[2]
    points = np.full((window, count, 3), np.nan)
    dynamic = np.zeros(count, bool)
    height, width = sequence.depth.shape[1:]
    for n in range(count):
        visible = np.flatnonzero(tracks[n, 2] > 0.5)
        if visible.size == 0:
            continue
        first = int(visible[0])
        frame = int(frames[first])
        x, y = tracks[n, 0, first], tracks[n, 1, first]
        col, row = int(np.clip(round(x), 0, width - 1)), int(np.clip(round(y), 0, height - 1))
        index = int(sequence.surface_id[frame, row, col])
        if index < 0:
            continue
        surface = sequence.surfaces[index]
        cam_from_surface = sequence.cam_from_world[frame] @ surface.world_from_surface[frame]
        local = np.linalg.solve(sequence.K @ cam_from_surface[:3][:, [0, 1, 3]], [x, y, 1.0])
        local_point = np.array([local[0] / local[2], local[1] / local[2], 0.0, 1.0])
        world = surface.world_from_surface[np.asarray(frames)] @ local_point
        points[:, n] = world[:, :3]
        dynamic[n] = surface.moving
    return points, dynamic
