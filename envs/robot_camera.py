"""A body camera on the Wall robot: perspective RGB views of a 3-D version of the Wall world.

Wall's own 64x64 top-down frames (what DINO-WM plans from, left untouched) have no parallax and
none of the objects INT knows. This module gives the same episode a second, perspective view, for
the perception branches (KLT tracker → TracksTo4D, INT segmenter):

* **The world.** The arena's unit square is :data:`ARENA_M` = 6 m on a side; positions map to world
  metres ``X = x · 6``, ``Y = y · 6`` and ``Z`` points *down* into the floor (``Z = 0``), so the world
  frame is right-handed and the top view keeps Wall's image axes (x right, y down). The two wall
  pieces become raised slabs :data:`WALL_HEIGHT_M` high (0.3 m thick; the door is a 0.9 m gap),
  textured with TracksTo4D's corner-rich texture, so tracks on their tops and on the floor lie at
  different depths (real parallax). The floor, wider than the arena by :data:`FLOOR_MARGIN_M` on
  every side, is painted once per episode seed with INT's synthetic generator
  (:mod:`edgerun.sim.camouflage`): its blotchy two-colour camouflage texture, a few
  camouflaged animals of one category lying along the robot's route (start → door → goal) and
  salient distractors (animals of other categories, objects) scattered over the arena.
* **The rig.** A pinhole camera (``K`` known) :attr:`RobotCameraConfig.mount_height_m` above the
  robot's centre, tilted :attr:`~RobotCameraConfig.tilt_deg` from nadir toward the robot's heading.
  The heading follows the direction of motion, smoothed and rate-limited (a real base turns, it
  does not jump), and stays put while the robot stands still; at reset it faces the goal.
* **Smooth video.** A Wall step moves the robot up to 0.34 m, tens of pixels on this camera: too far
  for KLT. :meth:`RobotCamera.advance` therefore renders ``substeps`` frames per env step, the robot
  moved along the straight line between the two states.

Rendering is a per-pixel ray cast in numpy (ray ↔ floor plane and ray ↔ slab boxes) plus two
``cv2.remap`` texture look-ups; it also yields the true depth and the camouflaged animals' mask.
Poses are OpenCV camera-from-world 4x4 matrices (x right, y down, z forward), as in
:mod:`edgerun.models.tracks_to_4d`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import gymnasium
import numpy as np

from edgerun.envs.wall import WallLayout
from edgerun.sim.camouflage import (
    ANIMALS,
    OBJECTS,
    Instance,
    Sample,
    box_of,
    natural_texture,
    noise_field,
    random_palette,
    salient_colour,
    silhouette,
)
from edgerun.sim.textured_scenes import random_texture

ARENA_M = 6.0
"""Metres per arena unit: the unit square is a 6 m x 6 m room (wall 0.3 m thick, door 0.9 m, robot radius 0.15 m,
at most 0.34 m per step)."""
WALL_HEIGHT_M = 0.6
FLOOR_MARGIN_M = 4.0
"""The painted floor reaches this far beyond the arena: farther than the camera sees from the border."""
WALL_PX_PER_M = 160.0
WALL_SHADE = (0.72, 0.58, 1.0)
"""Brightness of the slab faces whose normal is along world X, Y, Z (the top): the edges stay visible."""

MAX_INSTANCES = 255
"""Floor labels are instance ids 1…255 (0 is bare floor); :attr:`RobotWorld.categories` names them."""


@dataclass(frozen=True)
class RobotCameraConfig:
    """The body camera: image size, optics, mount, motion smoothing and what the floor holds."""

    width: int = 480
    height: int = 360
    hfov_deg: float = 70.0  # horizontal field of view; square pixels, principal point at the centre
    mount_height_m: float = 1.5  # above the floor (the wall slabs are 0.6 m high)
    tilt_deg: float = 40.0  # from nadir toward the heading
    substeps: int = 6  # frames rendered per env step (the robot moved along the line between states)
    turn_smoothing: float = 0.25  # fraction of the heading error turned per frame
    max_turn_deg: float = 3.0  # per frame
    floor_px_per_m: float = 120.0  # texels of the rendered floor texture
    paint_px_per_m: float = 60.0  # the scale INT's generator paints at (its blotches, silhouettes)
    animals: int = 3  # camouflaged animals along the route (one category)
    animal_size_m: tuple[float, float] = (0.6, 1.1)  # side of an animal's square canvas
    distractors: int = 10  # salient animals of other categories and objects over the arena

    def __post_init__(self) -> None:
        problems = []
        if not (32 <= self.width <= 4096 and 32 <= self.height <= 4096):
            problems.append(f"width x height: expected 32..4096 pixels each, got {self.width}x{self.height}")
        if not 10.0 <= self.hfov_deg <= 150.0:
            problems.append(f"hfov_deg: expected 10..150 degrees, got {self.hfov_deg}")
        if not WALL_HEIGHT_M < self.mount_height_m <= 10.0:
            problems.append(f"mount_height_m: expected above the {WALL_HEIGHT_M} m walls and at most 10 m, got {self.mount_height_m}")
        if not 0.0 <= self.tilt_deg < 90.0:
            problems.append(f"tilt_deg: expected 0 (straight down) .. 90 (horizontal) degrees, got {self.tilt_deg}")
        if self.substeps < 1:
            problems.append(f"substeps: expected at least 1 frame per env step, got {self.substeps}")
        if not 0.0 < self.turn_smoothing <= 1.0 or self.max_turn_deg <= 0.0:
            problems.append(f"turn_smoothing in (0, 1] and max_turn_deg > 0 expected, got {self.turn_smoothing}, {self.max_turn_deg}")
        if not 0.0 < self.paint_px_per_m <= self.floor_px_per_m:
            problems.append(f"paint_px_per_m: expected (0, floor_px_per_m={self.floor_px_per_m}], got {self.paint_px_per_m}")
        if self.animals < 0 or self.distractors < 0 or not 0.1 <= self.animal_size_m[0] <= self.animal_size_m[1] <= 3.0:
            problems.append(f"animals, distractors >= 0 and animal_size_m within 0.1..3 m expected, got "
                            f"{self.animals}, {self.distractors}, {self.animal_size_m}")
        if not problems:
            top = _steepest_up_ray(self)
            if top >= -math.sin(math.radians(3.0)):
                problems.append(f"tilt_deg {self.tilt_deg} with a vertical field of view of {self.vfov_deg:.1f} degrees puts "
                                f"the horizon in the image: keep tilt_deg + vfov/2 below about 85 degrees")
        if problems:
            raise ValueError("robot camera: " + "; ".join(problems))

    @property
    def focal_px(self) -> float:
        return self.width / 2 / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.height / 2 / self.focal_px))

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsics, pixels; pixel (0, 0) is the centre of the top-left pixel (OpenCV)."""
        f = self.focal_px
        return np.array([[f, 0.0, (self.width - 1) / 2], [0.0, f, (self.height - 1) / 2], [0.0, 0.0, 1.0]])


def _pixel_rays(config: RobotCameraConfig) -> np.ndarray:
    """(3, H·W) float32 camera-frame rays K⁻¹ [u, v, 1] of every pixel centre, row-major pixels (z = 1,
    so a ray's parameter at a hit is the hit's depth)."""
    v, u = np.mgrid[0:config.height, 0:config.width].astype(np.float32)
    pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size, np.float32)])
    return np.ascontiguousarray(np.linalg.inv(config.K).astype(np.float32) @ pixels)


def _steepest_up_ray(config: RobotCameraConfig) -> float:
    """The largest upward (−Z) component of a unit ray through the image's corners (negative: all point down)."""
    corners = np.array([[u, v, 1.0] for u in (0, config.width - 1) for v in (0, config.height - 1)]) @ np.linalg.inv(config.K).T
    world = corners @ camera_rotation(0.0, config.tilt_deg).T
    return float(-(world[:, 2] / np.linalg.norm(world, axis=1)).min())


def camera_rotation(heading: float, tilt_deg: float) -> np.ndarray:
    """World-from-camera rotation (3, 3) of a camera facing ``heading`` (radians, world XY, from +X
    toward +Y) tilted ``tilt_deg`` from nadir; the image's right is the robot's right."""
    tilt = math.radians(tilt_deg)
    forward = np.array([math.cos(heading), math.sin(heading), 0.0])
    right = np.array([-math.sin(heading), math.cos(heading), 0.0])
    optical = math.cos(tilt) * np.array([0.0, 0.0, 1.0]) + math.sin(tilt) * forward
    down = np.cross(optical, right)
    return np.stack([right, down, optical], axis=1)


def cam_from_world(position_m: np.ndarray, heading: float, config: RobotCameraConfig) -> np.ndarray:
    """(4, 4) camera-from-world pose of the camera above ``position_m`` (world X, Y metres)."""
    world_from_cam = np.eye(4)
    world_from_cam[:3, :3] = camera_rotation(heading, config.tilt_deg)
    world_from_cam[:3, 3] = (position_m[0], position_m[1], -config.mount_height_m)
    return np.linalg.inv(world_from_cam)


@dataclass(frozen=True)
class RobotWorld:
    """One episode's 3-D world: the painted floor, its labels and the wall slabs."""

    floor: np.ndarray  # (F, F, 3) uint8 RGB, texel (i, j) centred at origin + ((j, i) + 0.5) / floor_px_per_m
    labels: np.ndarray  # (F, F) uint8: 0 floor, else the instance id k (1-based) of categories[k - 1]
    origin_m: float  # world X = Y of the floor texture's outer corner (−FLOOR_MARGIN_M)
    px_per_m: float
    walls: tuple[tuple[np.ndarray, np.ndarray], ...]  # slab boxes (low corner, high corner), world metres
    wall_texture: np.ndarray  # (S, S, 3) uint8, wrapped over every face
    target: str  # the camouflaged animals' category
    animal_centres_m: np.ndarray  # (A, 2) world X, Y of the camouflaged animals
    categories: tuple[str, ...] = ()  # instance k's category is categories[k - 1]
    camouflaged: tuple[bool, ...] = ()  # … and whether it is a camouflaged animal (INT's target)

    @cached_property  # read for every rendered frame
    def target_ids(self) -> np.ndarray:
        """The instance ids (label values) of the camouflaged animals."""
        return np.array([k + 1 for k, c in enumerate(self.camouflaged) if c], np.uint8)


def route(layout: WallLayout, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """(P, 2) arena-unit waypoints start → in front of the door → through it → goal (start and goal
    in different rooms), or start → goal in one room: where the robot is going to look."""
    start, goal = np.asarray(start, np.float64), np.asarray(goal, np.float64)
    if (start[0] < layout.wall_x) == (goal[0] < layout.wall_x):
        return np.stack([start, goal])
    side = 1.0 if start[0] >= layout.wall_x else -1.0
    band = layout.wall_thickness / 2 + 2 * layout.agent_radius
    return np.stack([start, [layout.wall_x + side * band, layout.door_y], [layout.wall_x - side * band, layout.door_y], goal])


def _along(points: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Points at ``fractions`` of a polyline's length."""
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    at = fractions * cumulative[-1]
    return np.stack([np.interp(at, cumulative, points[:, k]) for k in (0, 1)], axis=1)


def build_world(seed: int, layout: WallLayout, start: np.ndarray, goal: np.ndarray,
                config: RobotCameraConfig = RobotCameraConfig()) -> RobotWorld:
    """Paint the floor of one episode (reproducible from ``seed`` and the episode's layout, start and goal).

    The floor is painted at ``paint_px_per_m`` — the scale at which a 0.6–1.1 m animal seen from
    the camera spans the same share of a frame as INT's training objects do of their images, and the
    camouflage blotches keep their training size relative to it — then enlarged to ``floor_px_per_m``
    with a fine static grain on top, which gives KLT corners near the camera.
    """
    rng = np.random.default_rng([seed, 7])
    extent_m = ARENA_M + 2 * FLOOR_MARGIN_M
    side = int(round(extent_m * config.paint_px_per_m))
    palette = random_palette(rng)
    image = natural_texture(rng, side, side, palette)
    labels = np.zeros((side, side), np.uint8)
    target = str(rng.choice(ANIMALS))

    def to_paint_px(world_xy: np.ndarray) -> np.ndarray:
        return (np.asarray(world_xy) + FLOOR_MARGIN_M) * config.paint_px_per_m

    categories: list[str] = []
    flags: list[bool] = []

    def paint(category: str, centre_m: np.ndarray, camouflaged: bool) -> bool:
        if len(categories) >= MAX_INSTANCES:
            return False
        canvas = int(rng.uniform(*config.animal_size_m) * config.paint_px_per_m)
        shape = silhouette(category, canvas, rng, max_rotation_deg=180.0)
        col, row = (to_paint_px(centre_m) - canvas / 2).astype(int)
        if not (0 <= row and 0 <= col and row + canvas <= side and col + canvas <= side):
            return False
        window = (slice(row, row + canvas), slice(col, col + canvas))
        if (labels[window][shape] > 0).mean() > 0.03:
            return False
        if camouflaged:
            shift = rng.standard_normal(3)
            shift *= rng.uniform(14.0, 26.0) / np.linalg.norm(shift)  # INT's camouflage_shift
            skin = natural_texture(rng, canvas, canvas, palette) + shift.astype(np.float32)
        else:
            colour = salient_colour(rng, palette.mean(0))
            skin = colour * (1.0 + 0.12 * noise_field(rng, canvas, canvas, 4.0)[..., None]) + rng.normal(0, 4, (canvas, canvas, 1))
        free = shape & (labels[window] == 0)
        image[window][free] = skin[free]
        categories.append(category)
        flags.append(camouflaged)
        labels[window][free] = len(categories)
        return True

    waypoints = route(layout, start, goal) * ARENA_M
    centres = []
    for fraction in np.linspace(0.2, 0.9, config.animals) if config.animals else []:
        for _ in range(20):
            centre = _along(waypoints, np.array([fraction]))[0] + rng.normal(0.0, 0.3, 2)
            if paint(target, centre, camouflaged=True):
                centres.append(centre)
                break
    others = [a for a in ANIMALS if a != target]
    placed = tries = 0
    while placed < config.distractors and tries < 50 * max(config.distractors, 1):
        tries += 1
        category = str(rng.choice(others if rng.random() < 0.7 else list(OBJECTS)))
        placed += paint(category, rng.uniform(0.3, ARENA_M - 0.3, 2), camouflaged=False)

    image = cv2.GaussianBlur(np.clip(image, 0, 255), (3, 3), 0.6)  # as INT's generator softens its edges
    size = int(round(extent_m * config.floor_px_per_m))
    floor = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
    floor += rng.normal(0.0, 5.0, (size, size, 1)).astype(np.float32)
    labels = cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)

    walls = []
    for x0, y0, x1, y1 in layout.wall_rects():
        low = np.array([x0 * ARENA_M, y0 * ARENA_M, -WALL_HEIGHT_M])
        high = np.array([x1 * ARENA_M, y1 * ARENA_M, 0.0])
        walls.append((low, high))
    return RobotWorld(
        floor=np.clip(floor, 0, 255).astype(np.uint8), labels=labels, origin_m=-FLOOR_MARGIN_M,
        px_per_m=config.floor_px_per_m, walls=tuple(walls), wall_texture=random_texture(rng, 512),
        target=target, animal_centres_m=np.array(centres, np.float64).reshape(-1, 2),
        categories=tuple(categories), camouflaged=tuple(flags),
    )


@dataclass(frozen=True)
class CameraView:
    """One rendered frame and its ground truth."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres along the optical axis
    target_mask: np.ndarray  # (H, W) bool: pixels showing a camouflaged animal
    cam_from_world: np.ndarray  # (4, 4)
    instance_ids: np.ndarray | None = None  # (H, W) uint8: the floor instance each pixel shows (0: none)


class Renderer:
    """Ray casts views of a :class:`RobotWorld` from any pose (the pixel rays are computed once).

    Arrays are kept per component, (H, W) each, and a slab is tested only on the pixels of its
    projected bounding box: the cost is a few dozen float32 passes over the image and three remaps.
    """

    def __init__(self, config: RobotCameraConfig = RobotCameraConfig()):
        self.config = config
        self.rays = _pixel_rays(config).reshape(3, config.height, config.width)  # camera frame, z = 1

    def render(self, world: RobotWorld, cam_from_world: np.ndarray) -> CameraView:
        h, w = self.config.height, self.config.width
        world_from_cam = np.linalg.inv(cam_from_world)
        centre = world_from_cam[:3, 3].astype(np.float32)
        R = world_from_cam[:3, :3].astype(np.float32)
        rays = [R[k, 0] * self.rays[0] + R[k, 1] * self.rays[1] + R[k, 2] for k in range(3)]  # world directions
        down = rays[2] > 1e-6
        depth = np.full((h, w), np.inf, np.float32)
        np.divide(-centre[2], rays[2], out=depth, where=down)
        on_wall = np.zeros((h, w), bool)
        wall_u, wall_v = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        wall_shade = np.zeros((h, w), np.float32)
        for low, high in world.walls:
            box = self._image_box(low, high, cam_from_world)
            if box is None:
                continue
            region = (slice(box[1], box[3]), slice(box[0], box[2]))
            directions = [r[region] for r in rays]
            with np.errstate(divide="ignore", invalid="ignore"):
                spans = [((low[k] - centre[k]) / directions[k], (high[k] - centre[k]) / directions[k]) for k in range(3)]
            near = [np.minimum(a, b) for a, b in spans]
            entry = np.maximum(np.maximum(near[0], near[1]), near[2])
            leave = np.minimum(np.minimum(*(np.maximum(a, b) for a, b in spans[:2])), np.maximum(*spans[2]))
            hit = (entry <= leave) & (entry > 0) & (entry < depth[region])
            if not hit.any():
                continue
            t = entry[hit]
            axis = np.where(near[0][hit] == t, 0, np.where(near[1][hit] == t, 1, 2))
            x, y, z = (centre[k] + t * directions[k][hit] for k in range(3))
            wall_u[region][hit] = np.where(axis == 0, y, x) * WALL_PX_PER_M  # X faces: (Y, Z); Y faces: (X, Z); top: (X, Y)
            wall_v[region][hit] = np.where(axis == 2, y, z) * WALL_PX_PER_M
            wall_shade[region][hit] = np.asarray(WALL_SHADE, np.float32)[axis]
            depth[region][hit] = t
            on_wall[region] |= hit
        scale, origin = np.float32(world.px_per_m), np.float32(world.origin_m)
        texel_x = (centre[0] - origin + depth * rays[0]) * scale - np.float32(0.5)
        texel_y = (centre[1] - origin + depth * rays[1]) * scale - np.float32(0.5)
        image = cv2.remap(world.floor, texel_x, texel_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        labels = cv2.remap(world.labels, texel_x, texel_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        if on_wall.any():
            wall = cv2.remap(world.wall_texture, wall_u, wall_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
            image[on_wall] = (wall[on_wall] * wall_shade[on_wall, None]).astype(np.uint8)
            labels[on_wall] = 0
        return CameraView(image, depth, np.isin(labels, world.target_ids), cam_from_world, labels)

    def _image_box(self, low: np.ndarray, high: np.ndarray, cam_from_world: np.ndarray) -> tuple[int, int, int, int] | None:
        """The pixel rectangle (x0, y0, x1, y1) that holds a box's image; the whole image when part of the
        box is behind the camera; None when the box is out of view."""
        corners = np.array([[x, y, z, 1.0] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
        camera = corners @ cam_from_world[:3].T
        w, h = self.config.width, self.config.height
        if (camera[:, 2] <= 1e-3).any():
            return None if (camera[:, 2] <= 1e-3).all() else (0, 0, w, h)
        pixels = camera[:, :2] / camera[:, 2:] @ self.config.K[:2, :2].T + self.config.K[:2, 2]
        x0, y0 = np.clip(np.floor(pixels.min(0)).astype(int) - 1, 0, [w, h])
        x1, y1 = np.clip(np.ceil(pixels.max(0)).astype(int) + 2, 0, [w, h])
        return None if x1 <= x0 or y1 <= y0 else (int(x0), int(y0), int(x1), int(y1))


@dataclass
class RobotCamera:
    """The camera riding a Wall robot through an episode: :meth:`reset` at the episode's start,
    :meth:`advance` after each env step; both return the rendered frames."""

    config: RobotCameraConfig = field(default_factory=RobotCameraConfig)

    def __post_init__(self) -> None:
        self.renderer = Renderer(self.config)
        self.world: RobotWorld | None = None
        self.position_m = np.zeros(2)
        self.heading = 0.0

    @property
    def K(self) -> np.ndarray:
        return self.config.K

    def reset(self, seed: int, layout: WallLayout, start: np.ndarray, goal: np.ndarray) -> CameraView:
        """A new episode: its world, the robot at ``start`` (arena units) facing ``goal``; → the first view."""
        self.world = build_world(seed, layout, start, goal, self.config)
        self.position_m = np.asarray(start, np.float64) * ARENA_M
        toward = np.asarray(goal, np.float64) * ARENA_M - self.position_m
        self.heading = math.atan2(toward[1], toward[0])
        return self.view()

    def advance(self, position: np.ndarray) -> list[CameraView]:
        """The robot moved to ``position`` (arena units) in one env step → ``substeps`` views along the way."""
        if self.world is None:
            raise RuntimeError("robot camera: advance() before reset()")
        previous, target = self.position_m, np.asarray(position, np.float64) * ARENA_M
        views = []
        for k in range(1, self.config.substeps + 1):
            self.turn_toward(previous + (target - previous) * k / self.config.substeps)
            views.append(self.view())
        return views

    def turn_toward(self, position_m: np.ndarray) -> None:
        """Move to ``position_m``, turning the heading part of the way toward the direction of motion."""
        motion = position_m - self.position_m
        self.position_m = position_m
        if np.linalg.norm(motion) < 1e-6:
            return  # standing still: keep looking where it looked
        error = math.remainder(math.atan2(motion[1], motion[0]) - self.heading, 2 * math.pi)
        limit = math.radians(self.config.max_turn_deg)
        self.heading += float(np.clip(error * self.config.turn_smoothing, -limit, limit))

    def pose(self) -> np.ndarray:
        return cam_from_world(self.position_m, self.heading, self.config)

    def view(self) -> CameraView:
        return self.renderer.render(self.world, self.pose())


def robot_camera_samples(seed: int, count: int, width: int = 128, height: int = 96, pad: bool = True) -> list:
    """``count`` INT training samples (:class:`edgerun.sim.camouflage.Sample`) seen by the robot
    camera, so INT's small components also learn this view: perspective, the floor texture enlarged
    with its grain, wall slabs. Each comes from its own Wall episode (``edgerun/Wall-v0`` reset with
    seed (seed, i)): 70 % of the time the camera stands 1.3–2.6 m from one of the camouflaged animals
    and looks toward it (±15°), else at a random point of the route looking along it. Instances are
    the floor objects covering at least 0.25 % of the frame; a view without a camouflaged one
    is drawn again (at most 8 times, then the camera faces an animal). With ``pad``, images are padded
    with black at the bottom/right to a square of side max(width, height), as the components letterbox
    the camera's 4:3 frames: at the default 128×96 a sample is a 480×360 frame as the 128-pixel
    components see it (training batches need square images); without, the frame as rendered."""
    config = RobotCameraConfig(width=width, height=height)
    renderer = Renderer(config)
    env = gymnasium.make("edgerun/Wall-v0")
    min_pixels = 0.0025 * width * height
    samples = []
    for index in range(count):
        rng = np.random.default_rng([seed, index, 11])
        env.reset(seed=int(rng.integers(2**31)))
        wall = env.unwrapped
        world = build_world(int(rng.integers(2**31)), wall.layout, wall.position, wall.goal, config)
        waypoints = route(wall.layout, wall.position, wall.goal) * ARENA_M
        for attempt in range(9):
            if (rng.random() < 0.7 or attempt == 8) and len(world.animal_centres_m):
                animal = world.animal_centres_m[int(rng.integers(len(world.animal_centres_m)))]
                bearing = rng.uniform(-np.pi, np.pi)
                position = animal - rng.uniform(1.3, 2.6) * np.array([math.cos(bearing), math.sin(bearing)])
                heading = bearing + math.radians(rng.uniform(-15.0, 15.0))
            else:
                here, ahead = _along(waypoints, np.array([u := rng.uniform(0.0, 0.9), min(u + 0.1, 1.0)]))
                position = here + rng.normal(0.0, 0.2, 2)
                heading = math.atan2(*(ahead - here)[::-1]) + math.radians(rng.uniform(-20.0, 20.0))
            view = renderer.render(world, cam_from_world(position, heading, config))
            instances = []
            for k in np.unique(view.instance_ids):
                mask = view.instance_ids == k
                if k and mask.sum() >= min_pixels:
                    instances.append(Instance(world.categories[k - 1], mask, box_of(mask), world.camouflaged[k - 1]))
            if any(i.camouflaged for i in instances):
                break
        else:
            continue  # no camouflaged animal in view even facing one (hidden by a wall): skip this episode
        side = max(width, height)

        def square(array: np.ndarray) -> np.ndarray:
            if not pad:
                return array
            out = np.zeros((side, side, *array.shape[2:]), array.dtype)
            out[:height, :width] = array
            return out

        instances = [i._replace(mask=square(i.mask)) for i in instances]
        samples.append(Sample(square(view.image), square(view.target_mask), instances))
    return samples
