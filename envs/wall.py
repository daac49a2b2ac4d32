"""Wall: DINO-WM's two-room navigation task (arXiv 2411.04983, built on PLDM's ``DotWall``).

A dot moves in the unit square. A vertical wall splits it into two rooms; a door (a gap in the wall)
joins them. Each episode starts the dot in one room and puts the goal in the other, so every
episode needs a crossing through the door. As in DINO-WM's ``wall_single`` setting the layout is
fixed (wall at the centre, door at the official row); ``door_y_range`` / ``wall_x_range`` draw it per
reset instead, which is the paper's layout-generalisation setting (``WallRandom``, registered as
``edgerun/WallRandom-v0`` with the door anywhere in ``RANDOM_DOOR_Y_RANGE``).

Frames of reference: positions are ``(x, y)`` in arena units, ``[0, 1] x [0, 1]``; ``x`` grows to the
right (image column), ``y`` grows downwards (image row), so a position maps to pixel
``(row, col) = (y * S, x * S)`` in an ``S x S`` frame. No display is needed: frames are drawn with
numpy (analytic anti-aliasing), on any host.

Constants (arena units; pixels at the default 64 x 64 in brackets):

==================  =======  ===========================================================
wall thickness      0.05     [3.2 px] PLDM's DotWall: 3 px at 64 px
door height         0.15     [9.6 px] PLDM: ``door_y +- 4`` px, 9 px; leaves the dot's
                             centre a 0.10 gap (0.15 - 2 x radius): crossing needs aim
door centre y       30/64    [30 px] the official env's ``fix_door_location`` 30 (wall at
                             its ``fix_wall_location`` 32, our x = 0.5)
agent radius        0.025    [1.6 px] PLDM's Gaussian dot, std 1.3 px; collisions use it
max speed           0.056/step [3.6 px] the official DINO-WM env moves ``2 * action`` px per
                             step and its data's step norms are at most 1.8 (3.6 px)
starts and goals    x, y in [7.4/64, 1 - 7.4/64], at least 6.4/64 from the wall's centre
                             line: the official ``generate_random_state`` margins
success radius      0.07     [4.5 px] the official ``eval_state``: ``< 4.5`` px
max episode steps   100      (registration) four horizon-5 plans of 25 steps; the
                             scripted expert needs at most 19 (1000 seeded episodes)
==================  =======  ===========================================================

Changed from the first version of this env (which followed PLDM's DotWall, a door drawn in
U(0.2, 0.8) per reset, max speed 0.04, starts anywhere 0.045 from the wall and the border, success
radius 0.05), after reading the official DINO-WM env (``env/wall/envs/wall.py``, ``wall_env_wrapper.py``
of the DINO-WM code): the step size (``_generate_transition``: ``location + 2 * action``), the fixed
layout of its default config, the start/goal margins of ``generate_random_state`` and the success
radius of ``eval_state``. Measured with the env's own dynamics as the model (a perfect model) and the
paper's CEM/MPC (``docs/dino_wm.md``), the first version capped the success rate at 0.66 on 50
episodes: up to 41 steps between start and goal, a horizon of 25. Not followed: the official actions
are unbounded (no clip); here they stay in ``[-1, 1]`` and are clipped to norm 1.

Dynamics: ``position += max_speed * a`` with ``a`` the action clipped to ``[-1, 1]`` per axis and
then to norm 1 (so speed does not depend on direction). The motion is swept against the wall and
the arena border, both inflated by the agent radius (so the dot's centre is tested against
rectangles, with square corners: the dot may stop up to 0.4 radius short of a corner it would
just have grazed): the dot stops at the first contact and slides along the surface for the rest of the
step. The sweep is exact for any step length (no tunnelling) and snaps the contact coordinate onto
the surface, so the centre is never strictly inside an obstacle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces

from edgerun.envs.arguments import check_render_arguments, reset_options

WALL_THICKNESS = 0.05
DOOR_HEIGHT = 0.15
DOOR_Y = 30 / 64
"""The official env's door row (``fix_door_location`` 30 of its 65-px frame), as a fraction of the frame."""
DOOR_Y_RANGE = (DOOR_Y, DOOR_Y)
RANDOM_DOOR_Y_RANGE = (0.2, 0.8)
"""Door centres of the ``WallRandom`` variant (the paper's layout-generalisation setting)."""
WALL_X = 0.5
AGENT_RADIUS = 0.025
MAX_SPEED = 0.056
SUCCESS_RADIUS = 0.07
SPAWN_CLEARANCE = 0.02
"""The scripted expert's waypoints keep this much space (beyond the radius) from the wall."""
SPAWN_BORDER = 7.4 / 64
"""Starts and goals keep this far from the frame's edges: the official env's ``border_wall_loc - 1 +
2 * dot_std`` = 4 + 3.4 px of its 64-px arena (``generate_random_state``)."""
SPAWN_WALL_GAP = 6.4 / 64
"""Starts and goals keep this far from the wall's centre line: the official ``wall_width // 2 + 2 *
dot_std`` = 3 + 3.4 px."""

BACKGROUND_RGB = (0, 0, 0)
WALL_RGB = (200, 200, 200)
AGENT_RGB = (255, 64, 32)

RESET_OPTIONS = ("start", "goal", "door_y", "wall_x")
ROOMS = ("this", "other", "left", "right")
"""Rooms a goal in words names (:meth:`WallEnv.place`): the robot's own, the one across the wall, or by side."""
SPOTS = ("top-left", "top-right", "bottom-left", "bottom-right", "center", "door")
"""Spots of a room a goal in words names: its corners and centre (of the area goals are drawn from),
or in front of the door."""

_FAR = 1e6  # "infinite" extent of the border half-planes and the wall's outer ends; finite, so no inf * 0


@dataclass(frozen=True)
class WallLayout:
    """One episode's geometry, arena units."""

    wall_x: float = WALL_X
    door_y: float = 0.5
    wall_thickness: float = WALL_THICKNESS
    door_height: float = DOOR_HEIGHT
    agent_radius: float = AGENT_RADIUS

    def __post_init__(self) -> None:
        if self.door_height <= 2 * self.agent_radius:
            raise ValueError(
                f"door height {self.door_height} must exceed the agent's diameter {2 * self.agent_radius}"
            )
        half = self.door_height / 2
        if not half <= self.door_y <= 1 - half:
            raise ValueError(f"door_y {self.door_y} puts the door outside the arena: expected [{half}, {1 - half}]")
        reach = SPAWN_BORDER + SPAWN_WALL_GAP + SPAWN_CLEARANCE
        if not reach <= self.wall_x <= 1 - reach:
            raise ValueError(f"wall_x {self.wall_x} leaves a room too small: expected [{reach:.3f}, {1 - reach:.3f}]")

    def wall_rects(self) -> tuple[tuple[float, float, float, float], ...]:
        """The two wall pieces as drawn, ``(x0, y0, x1, y1)``: above and below the door."""
        x0, x1 = self.wall_x - self.wall_thickness / 2, self.wall_x + self.wall_thickness / 2
        return (
            (x0, 0.0, x1, self.door_y - self.door_height / 2),
            (x0, self.door_y + self.door_height / 2, x1, 1.0),
        )

    def obstacles(self) -> tuple[tuple[float, float, float, float], ...]:
        """Where the agent's centre may not go: the wall inflated by the radius, and the border."""
        r = self.agent_radius
        (x0, _, x1, top_end), (_, bottom_start, _, _) = self.wall_rects()
        return (
            (x0 - r, -_FAR, x1 + r, top_end + r),
            (x0 - r, bottom_start - r, x1 + r, _FAR),
            (-_FAR, -_FAR, r, _FAR),
            (1 - r, -_FAR, _FAR, _FAR),
            (-_FAR, -_FAR, _FAR, r),
            (-_FAR, 1 - r, _FAR, _FAR),
        )

    def room_box(self, side: int) -> tuple[float, float, float, float]:
        """Where starts and goals are drawn in the room left (``side=-1``) or right (``+1``) of the wall:
        :data:`SPAWN_BORDER` from the frame's edges, :data:`SPAWN_WALL_GAP` from the wall's centre line."""
        lo, hi = SPAWN_BORDER, 1 - SPAWN_BORDER
        if side < 0:
            return (lo, lo, self.wall_x - SPAWN_WALL_GAP, hi)
        return (self.wall_x + SPAWN_WALL_GAP, lo, hi, hi)

    def blocked(self, position: np.ndarray) -> bool:
        """Whether a centre position is strictly inside the inflated wall or beyond the border."""
        x, y = float(position[0]), float(position[1])
        return any(x0 < x < x1 and y0 < y < y1 for x0, y0, x1, y1 in self.obstacles())


def _first_contact(p: np.ndarray, d: np.ndarray, rect: tuple[float, float, float, float]) -> tuple[float, int] | None:
    """Slab test of the segment ``p + s d, s in [0, 1]`` against an open rectangle.

    Returns ``(s, axis)`` of entry, or None if the segment never enters the interior. Touching or
    sliding along a face is not entering. A start already inside (only by rounding) reports s = 0
    on the axis of the nearest face behind it, so the caller snaps the point back out.
    """
    t_enter, t_exit, axis = -np.inf, np.inf, -1
    for k in (0, 1):
        lo, hi = rect[k], rect[k + 2]
        if d[k] == 0.0:
            if not lo < p[k] < hi:
                return None
            continue
        a, b = (lo - p[k]) / d[k], (hi - p[k]) / d[k]
        if a > b:
            a, b = b, a
        if a > t_enter:
            t_enter, axis = a, k
        t_exit = min(t_exit, b)
    if axis < 0 or t_enter >= t_exit or t_enter >= 1.0 or t_exit <= 0.0:
        return None
    return max(t_enter, 0.0), axis


def move(position: np.ndarray, displacement: np.ndarray, layout: WallLayout) -> np.ndarray:
    """Where the centre ends after trying to move by ``displacement``: stop at contact, then slide."""
    p = np.array(position, dtype=np.float64)
    d = np.array(displacement, dtype=np.float64)
    obstacles = layout.obstacles()
    for _ in range(3):  # each contact removes one axis of the motion: at most two contacts
        if not d.any():
            break
        hit: tuple[float, int, tuple[float, float, float, float]] | None = None
        for rect in obstacles:
            contact = _first_contact(p, d, rect)
            if contact is not None and (hit is None or contact[0] < hit[0]):
                hit = (contact[0], contact[1], rect)
        if hit is None:
            p += d
            break
        s, axis, rect = hit
        p += d * s
        p[axis] = rect[axis] if d[axis] > 0 else rect[axis + 2]  # exactly on the face, never inside
        d *= 1.0 - s
        d[axis] = 0.0
    r = layout.agent_radius
    return np.clip(p, r, 1.0 - r)


def move_batch(positions: np.ndarray, displacements: np.ndarray, layout: WallLayout) -> np.ndarray:
    """:func:`move` for a batch: ``(N, 2)`` centres and displacements -> ``(N, 2)`` end positions.

    The same swept test (stop at the first contact, snap onto the face, slide), vectorised over the
    batch with numpy, so the env's own dynamics can score thousands of candidate plans (the
    perfect-model ceiling of ``edgerun.evaluation.dino_wm.ceiling``).
    """
    p = np.array(positions, dtype=np.float64).reshape(-1, 2)
    d = np.array(displacements, dtype=np.float64).reshape(-1, 2)
    rects = np.asarray(layout.obstacles(), dtype=np.float64)
    rows = np.arange(len(p))
    for _ in range(3):  # each contact removes one axis of the motion: at most two contacts
        moving = (d != 0.0).any(axis=1)
        if not moving.any():
            break
        best_s = np.full(len(p), np.inf)
        best_axis = np.zeros(len(p), dtype=np.int64)
        best_rect = np.full(len(p), -1)
        for r, rect in enumerate(rects):
            t_enter, t_exit = np.full(len(p), -np.inf), np.full(len(p), np.inf)
            axis, possible = np.full(len(p), -1), moving.copy()
            for k in (0, 1):
                still = d[:, k] == 0.0
                possible &= ~(still & ~((rect[k] < p[:, k]) & (p[:, k] < rect[k + 2])))
                with np.errstate(divide="ignore", invalid="ignore"):
                    a, b = (rect[k] - p[:, k]) / d[:, k], (rect[k + 2] - p[:, k]) / d[:, k]
                a, b = np.where(still, -np.inf, np.minimum(a, b)), np.where(still, np.inf, np.maximum(a, b))
                later = a > t_enter
                axis, t_enter = np.where(later, k, axis), np.where(later, a, t_enter)
                t_exit = np.minimum(t_exit, b)
            hit = possible & (axis >= 0) & (t_enter < t_exit) & (t_enter < 1.0) & (t_exit > 0.0)
            s = np.maximum(t_enter, 0.0)
            closer = hit & (s < best_s)
            best_s, best_axis, best_rect = np.where(closer, s, best_s), np.where(closer, axis, best_axis), np.where(closer, r, best_rect)
        free = moving & (best_rect < 0)
        p[free] += d[free]
        d[free] = 0.0
        i = rows[best_rect >= 0]
        if len(i):
            s, k, rect = best_s[i], best_axis[i], rects[best_rect[i]]
            p[i] += d[i] * s[:, None]
            p[i, k] = np.where(d[i, k] > 0, rect[np.arange(len(i)), k], rect[np.arange(len(i)), k + 2])
            d[i] *= (1.0 - s)[:, None]
            d[i, k] = 0.0
    r = layout.agent_radius
    return np.clip(p, r, 1.0 - r)


def distance(state: np.ndarray, goal: np.ndarray) -> np.ndarray | float:
    """Euclidean distance between positions ``(..., 2)`` in arena units."""
    dist = np.linalg.norm(np.asarray(state, dtype=np.float64) - np.asarray(goal, dtype=np.float64), axis=-1)
    return float(dist) if np.ndim(dist) == 0 else dist


def success(state: np.ndarray, goal: np.ndarray, radius: float = SUCCESS_RADIUS) -> bool | np.ndarray:
    """Whether positions ``(..., 2)`` are within ``radius`` (arena units) of the goal; batched."""
    close = np.asarray(distance(state, goal)) <= radius
    return bool(close) if close.ndim == 0 else close


def unit_actions(actions: np.ndarray) -> np.ndarray:
    """Actions ``(..., 2)`` as the env applies them: clipped to ``[-1, 1]`` per axis, then to norm 1."""
    actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    norm = np.linalg.norm(actions, axis=-1, keepdims=True)
    return np.where(norm > 1.0, actions / np.maximum(norm, 1e-12), actions)


def scripted_action(
    position: np.ndarray,
    goal: np.ndarray,
    layout: WallLayout,
    max_speed: float = MAX_SPEED,
) -> np.ndarray:
    """A stateless expert: straight to the goal when the wall is not in the way, else via the door.

    Via the door: to the point in front of it on the agent's side, then through it to the point on
    the goal's side, aimed within 0.02 of the door's centre (the centre has a 0.10 gap). From there
    the goal is in sight (rooms are convex). It decelerates onto each waypoint (no overshoot) and
    reaches any free goal from any free start in about 50 steps at most. Returns the action,
    float32 ``(2,)`` in ``[-1, 1]``.
    """
    p = np.asarray(position, dtype=np.float64)
    g = np.asarray(goal, dtype=np.float64)
    wall = layout.obstacles()[:2]
    if all(_first_contact(p, g - p, rect) is None for rect in wall):
        target = g
    else:
        band = layout.wall_thickness / 2 + layout.agent_radius + SPAWN_CLEARANCE
        aim = 0.4 * (layout.door_height / 2 - layout.agent_radius)
        side_p = 1.0 if p[0] >= layout.wall_x else -1.0
        side_g = 1.0 if g[0] >= layout.wall_x else -1.0
        if abs(p[1] - layout.door_y) <= aim:
            target = np.array([layout.wall_x + side_g * band, layout.door_y])  # through the door
        else:
            target = np.array([layout.wall_x + side_p * band, layout.door_y])  # in front of the door
    action = (target - p) / max_speed
    norm = float(np.linalg.norm(action))
    if norm > 1.0:
        action /= norm
    return action.astype(np.float32)


def _coverage_1d(lo: float, hi: float, size: int) -> np.ndarray:
    """Fraction of each pixel ``[i, i + 1)`` covered by the interval ``[lo, hi]`` (pixel units)."""
    edges = np.arange(size, dtype=np.float64)
    return np.clip(np.minimum(edges + 1.0, hi) - np.maximum(edges, lo), 0.0, 1.0)


def render_layout(layout: WallLayout, size: int) -> np.ndarray:
    """The static scene (background and wall), float32 ``(size, size, 3)`` in 0..255."""
    coverage = np.zeros((size, size), dtype=np.float64)
    for x0, y0, x1, y1 in layout.wall_rects():
        coverage += np.outer(_coverage_1d(y0 * size, y1 * size, size), _coverage_1d(x0 * size, x1 * size, size))
    coverage = np.clip(coverage, 0.0, 1.0)[..., None]
    background = np.asarray(BACKGROUND_RGB, dtype=np.float64)
    wall = np.asarray(WALL_RGB, dtype=np.float64)
    return (background * (1.0 - coverage) + wall * coverage).astype(np.float32)


def render_agent(scene: np.ndarray, position: np.ndarray, radius: float) -> np.ndarray:
    """``scene`` with the dot drawn at ``position`` (arena units), uint8 ``(S, S, 3)``.

    Anti-aliased from the signed distance to the disc edge, so a sub-pixel move changes the frame.
    """
    size = scene.shape[0]
    cx, cy = float(position[0]) * size, float(position[1]) * size
    radius_px = max(radius * size, 0.75)  # stays visible at tiny sizes
    reach = int(np.ceil(radius_px + 1.0))
    c0, c1 = max(int(np.floor(cx)) - reach, 0), min(int(np.floor(cx)) + reach + 1, size)
    r0, r1 = max(int(np.floor(cy)) - reach, 0), min(int(np.floor(cy)) + reach + 1, size)
    frame = scene.copy()
    if c0 < c1 and r0 < r1:
        cols = np.arange(c0, c1, dtype=np.float64) + 0.5
        rows = np.arange(r0, r1, dtype=np.float64) + 0.5
        dist = np.hypot(cols[None, :] - cx, rows[:, None] - cy)
        alpha = np.clip(radius_px + 0.5 - dist, 0.0, 1.0)[..., None]
        patch = frame[r0:r1, c0:c1]
        frame[r0:r1, c0:c1] = patch * (1.0 - alpha) + np.asarray(AGENT_RGB, dtype=np.float64) * alpha
    return np.rint(frame).astype(np.uint8)


class WallEnv(gymnasium.Env):
    """Go from a start in one room to a goal in the other, through the door.

    Observation: a Dict ``{"pixels": uint8 (S, S, 3), "proprio": float32 (2,)}``. A Dict because
    DINO-WM consumes the two separately (DINOv2 patch tokens of the image, plus a proprio
    embedding concatenated to them), they have different dtypes and ranges, and named parts let a
    pixels-only planner or a state-based baseline take just one (e.g. ``FilterObservation``).
    ``proprio`` is the dot's position ``(x, y)`` in arena units.

    Action: ``Box(-1, 1, (2,))``, a velocity as a fraction of ``max_speed`` per step (see module).

    Reward: 1.0 on steps within the success radius of the goal, else 0.0 (DINO-WM plans without
    rewards; this is for RL use). Reaching the goal does not end the episode unless
    ``terminate_on_success``: DINO-WM judges the state at the end of a fixed planning horizon, and
    offline trajectories keep a fixed length.

    ``info``: ``goal_proprio`` float32 (2,), ``goal_pixels`` uint8 (S, S, 3) (the frame with the dot at
    the goal: DINO-WM plans toward the goal observation), ``is_success`` bool, ``distance`` float
    (to the goal), ``door_y`` and ``wall_x`` floats.

    ``reset(seed=..., options={"start": (x, y), "goal": (x, y), "door_y": y, "wall_x": x})``: any
    subset; what is not given is drawn from the seeded generator (door first, then start, then the
    goal in the other room), so evaluation episodes are reproducible and can be pinned.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        render_mode: str | None = None,
        size: int = 64,
        door_y_range: tuple[float, float] = DOOR_Y_RANGE,
        wall_x_range: tuple[float, float] = (WALL_X, WALL_X),
        terminate_on_success: bool = False,
    ) -> None:
        size = check_render_arguments(render_mode, self.metadata["render_modes"], size, 8)
        for name, (lo, hi) in (("door_y_range", door_y_range), ("wall_x_range", wall_x_range)):
            if not lo <= hi:
                raise ValueError(f"{name}: expected (low, high) with low <= high, got {(lo, hi)}")
        WallLayout(wall_x=wall_x_range[0], door_y=door_y_range[0])  # validates both ends of the ranges
        WallLayout(wall_x=wall_x_range[1], door_y=door_y_range[1])
        self.render_mode = render_mode
        self.size = int(size)
        self.door_y_range = (float(door_y_range[0]), float(door_y_range[1]))
        self.wall_x_range = (float(wall_x_range[0]), float(wall_x_range[1]))
        self.terminate_on_success = bool(terminate_on_success)
        self.max_speed = MAX_SPEED
        self.success_radius = SUCCESS_RADIUS

        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (self.size, self.size, 3), dtype=np.uint8),
                "proprio": spaces.Box(0.0, 1.0, (2,), dtype=np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

        self.layout = WallLayout(wall_x=self.wall_x_range[0], door_y=self.door_y_range[0])
        self.position = np.array(self.layout.room_box(-1)[:2], dtype=np.float64)
        self.goal = np.array(self.layout.room_box(1)[:2], dtype=np.float64)
        self._scene = render_layout(self.layout, self.size)
        self._goal_pixels = render_agent(self._scene, self.goal, self.layout.agent_radius)

    # -- gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = reset_options(options, RESET_OPTIONS)
        rng = self.np_random
        door_y = rng.uniform(*self.door_y_range)
        wall_x = rng.uniform(*self.wall_x_range)
        if options.get("door_y") is not None:
            door_y = float(options["door_y"])
        if options.get("wall_x") is not None:
            wall_x = float(options["wall_x"])
        self.layout = WallLayout(wall_x=wall_x, door_y=door_y)

        side = -1 if rng.integers(2) == 0 else 1
        start = self._sample_in_room(side)
        if options.get("start") is not None:
            start = self._checked_position("start", options["start"])
            side = -1 if start[0] < self.layout.wall_x else 1
        goal = self._sample_in_room(-side)
        if options.get("goal") is not None:
            goal = self._checked_position("goal", options["goal"])

        self.position, self.goal = start, goal
        self._scene = render_layout(self.layout, self.size)
        self._goal_pixels = render_agent(self._scene, self.goal, self.layout.agent_radius)
        return self._observation(), self._info()

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,) or not np.isfinite(a).all():
            raise ValueError(f"action: expected 2 finite floats (vx, vy), got {a.dtype} {a.shape}: {a}")
        self.position = move(self.position, unit_actions(a) * self.max_speed, self.layout)
        reached = success(self.position, self.goal, self.success_radius)
        terminated = bool(reached and self.terminate_on_success)
        return self._observation(), float(reached), terminated, False, self._info()

    def render(self) -> np.ndarray:
        """The current frame, uint8 ``(S, S, 3)``, drawn offscreen (the only mode is ``rgb_array``)."""
        return render_agent(self._scene, self.position, self.layout.agent_radius)

    # -- helpers for planners and data collection ------------------------------------------------

    def simulate(self, positions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The env's dynamics, batched: ``(N, 2)`` positions and ``(N, T, 2)`` actions -> the ``(N, 2)``
        positions after ``T`` steps in this episode's layout (:func:`move_batch`); the env is not touched."""
        positions, actions = np.asarray(positions, dtype=np.float64), unit_actions(actions)
        for t in range(actions.shape[1]):
            positions = move_batch(positions, actions[:, t] * self.max_speed, self.layout)
        return positions

    def success_of(self, states: np.ndarray) -> np.ndarray:
        """The env's success test of this episode's goal on recorded ``(N, 2)`` positions -> (N,) bool."""
        return np.atleast_1d(success(np.asarray(states, dtype=np.float64)[..., :2], self.goal, self.success_radius))

    def render_states(self, positions: np.ndarray) -> np.ndarray:
        """Frames ``(N, S, S, 3)`` of the dot at ``(N, 2)`` positions in this episode's layout."""
        return np.stack([render_agent(self._scene, p, self.layout.agent_radius) for p in np.asarray(positions)])

    def expert_action(self) -> np.ndarray:
        """The scripted policy's action from the current state (it knows the door and the goal)."""
        return scripted_action(self.position, self.goal, self.layout, self.max_speed)

    def room_of(self, position: np.ndarray) -> int:
        """-1 for the room left of the wall, +1 for the right one."""
        return -1 if float(position[0]) < self.layout.wall_x else 1

    def place(self, room: str, spot: str) -> np.ndarray:
        """The position of a place named in words (an operator's goal): ``room`` one of :data:`ROOMS`
        (``this`` and ``other`` relative to the robot now), ``spot`` one of :data:`SPOTS`. Corners
        and centre are those of the room's start/goal area; ``door`` is in front of the door."""
        if room not in ROOMS or spot not in SPOTS:
            raise ValueError(f"place: room must be one of {list(ROOMS)} and spot one of {list(SPOTS)}, got {room!r}, {spot!r}")
        here = self.room_of(self.position)
        side = {"this": here, "other": -here, "left": -1, "right": 1}[room]
        x0, y0, x1, y1 = self.layout.room_box(side)
        if spot == "door":
            return np.array([self.layout.wall_x + side * SPAWN_WALL_GAP, self.layout.door_y])
        if spot == "center":
            return np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        vertical, horizontal = spot.split("-")
        return np.array([x0 if horizontal == "left" else x1, y0 if vertical == "top" else y1])

    def retarget_options(self, goal: np.ndarray) -> dict[str, Any]:
        """``reset`` options for an episode that goes on from here (the robot where it is, the same
        layout) toward a new ``goal``: how a goal given mid-run becomes the env's goal."""
        return {"start": self.position.copy(), "goal": np.asarray(goal, dtype=np.float64),
                "door_y": self.layout.door_y, "wall_x": self.layout.wall_x}

    # -- internals ---------------------------------------------------------------------------------

    def _sample_in_room(self, side: int) -> np.ndarray:
        x0, y0, x1, y1 = self.layout.room_box(side)
        return np.array([self.np_random.uniform(x0, x1), self.np_random.uniform(y0, y1)], dtype=np.float64)

    def _checked_position(self, name: str, value: Any) -> np.ndarray:
        p = np.asarray(value, dtype=np.float64)
        if p.shape != (2,) or not np.isfinite(p).all():
            raise ValueError(f"reset option {name!r}: expected a finite (x, y), got {p.shape} {p}")
        r = self.layout.agent_radius
        if not (r <= p[0] <= 1 - r and r <= p[1] <= 1 - r):
            raise ValueError(
                f"reset option {name!r}: {p.tolist()} is outside the arena [{r}, {1 - r}] (agent radius {r})"
            )
        if self.layout.blocked(p):
            raise ValueError(
                f"reset option {name!r}: {p.tolist()} overlaps the wall at x={self.layout.wall_x:.3f} "
                f"(door y={self.layout.door_y:.3f} +- {self.layout.door_height / 2})"
            )
        return p

    def _observation(self) -> dict[str, np.ndarray]:
        return {"pixels": self.render(), "proprio": self.position.astype(np.float32)}

    def _info(self) -> dict[str, Any]:
        dist = float(distance(self.position, self.goal))
        return {
            "goal_proprio": self.goal.astype(np.float32),
            "goal_pixels": self._goal_pixels.copy(),
            "is_success": bool(self.success_of(self.position)[0]),
            "distance": dist,
            "door_y": float(self.layout.door_y),
            "wall_x": float(self.layout.wall_x),
        }
