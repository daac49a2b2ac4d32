"""PointMaze UMaze for DINO-WM: gymnasium-robotics' point mass, seen from above, goal as an image.

The physics is gymnasium-robotics' ``PointMazeEnv`` on its ``U_MAZE`` map, unchanged: the D4RL
``maze2d`` point mass (a 0.1 m sphere on two slide joints, force-actuated with gear 100, damping 1,
velocity clipped to +-5 m/s, MuJoCo timestep 0.01 s), in a 5 x 5 grid of 1 m cells whose free cells
form a U. What this wrapper adds is what DINO-WM's PointMaze (arXiv 2411.04983, its
``env/pointmaze``) has and gymnasium-robotics does not:

==================  ============================================================================
frame skip          5 MuJoCo steps per env step (0.05 s), as D4RL's maze2d and the official env;
                    gymnasium-robotics steps once (0.01 s)
observation         ``{"pixels": uint8 (S, S, 3), "proprio": float32 (4,)}``: a top-down frame
                    (the whole maze, the goal marker hidden) and ``(x, y, vx, vy)``
starts and goals    both drawn uniformly in the free corridors, 0.3 m either side of their centre
                    lines (the official ``sample_random_init_goal_states``: corridors 0.6 wide),
                    velocities uniform in +-5.2 m/s per axis (its ``STATE_RANGES``)
goal                ``info["goal_pixels"]``, the frame with the ball at the goal, and
                    ``info["goal_proprio"]``: DINO-WM plans toward an observation
success             ``||xy - goal_xy|| < 0.5`` (the official ``eval_state``; gymnasium-robotics
                    uses 0.45), reported in ``info["is_success"]``, never ending the episode
==================  ============================================================================

Coordinates are gymnasium-robotics': metres, the maze centred on the origin, x to the right and y up;
in the frame x runs along columns and y up the rows. Corridor centre lines: the top corridor
``y = 1``, the bottom one ``y = -1`` (both ``x`` in [-1, 1] plus the cell), joined by the right-hand
column ``x = 1``.

Rendering is offscreen with MuJoCo's OpenGL renderer. ``MUJOCO_GL`` (MuJoCo's own switch, read when
``mujoco`` is first imported) defaults to ``egl`` once ``edgerun.envs`` is imported, which on a machine without a GPU is Mesa's software EGL (Debian: ``libegl1``,
``libegl-mesa0``, ``libgl1-mesa-dri``; ``make setup`` installs them); set ``MUJOCO_GL=osmesa`` or
``glfw`` before importing edgerun to choose another. The camera looks straight down from far away
with a narrow field of view, so the walls' sides hardly show: the frame is close to a map.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import mujoco  # edgerun.envs (this package's __init__, run first) has set MUJOCO_GL's default
import numpy as np
from gymnasium import spaces
from mujoco import rollout

from edgerun.envs.arguments import check_render_arguments, reset_options

# gymnasium-robotics prints a notice about its Adroit hand envs (unrelated to the maze) to stderr on
# import; keep it out of the logs of everything that uses PointMaze
with contextlib.redirect_stderr(io.StringIO()):
    from gymnasium_robotics.envs.maze.maps import U_MAZE
    from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv as _RoboticsPointMaze

FRAME_SKIP = 5
SUCCESS_RADIUS = 0.5
CORRIDOR_HALF_WIDTH = 0.3
"""Starts and goals lie within this of a corridor's centre line (the official 0.6-wide bands)."""
SPAWN_SPEED = 5.2
"""Start and goal velocities are uniform in +-SPAWN_SPEED per axis (the official ``STATE_RANGES``)."""
CORRIDOR_END = 1.0 + CORRIDOR_HALF_WIDTH
"""The corridors' centre lines run to +-1 m; the ball keeps CORRIDOR_HALF_WIDTH from the end walls too."""
VIEW_EXTENT = 5.2
"""Metres of the maze across the frame (the maze with its outer walls is 5 m wide)."""
CAMERA_DISTANCE = 40.0
RESET_OPTIONS = ("start", "goal", "start_velocity", "goal_velocity")
PROPRIO_BOUND = np.array([2.5, 2.5, 6.0, 6.0], dtype=np.float32)
"""|x|, |y| inside the 5 m maze; |v| is clipped to 5 before each MuJoCo step, so one step's force
(24 m/s^2 for 0.01 s) can leave it at most about 5.25 after it."""


def in_corridor(xy: np.ndarray, margin: float = CORRIDOR_HALF_WIDTH) -> np.ndarray:
    """Whether each ``(..., 2)`` position is within ``margin`` of a corridor's centre line of the U."""
    x, y = np.asarray(xy, dtype=np.float64)[..., 0], np.asarray(xy, dtype=np.float64)[..., 1]
    margin = margin + 1e-9  # the bands' edges belong to them, whatever the rounding of 1.0 + margin
    end = 1.0 + margin
    along_x = (np.abs(x) <= end) & ((np.abs(y - 1.0) <= margin) | (np.abs(y + 1.0) <= margin))
    along_y = (np.abs(x - 1.0) <= margin) & (np.abs(y) <= end)
    return along_x | along_y


class PointMazeEnv(gymnasium.Env):
    """Drive a point mass from a start to a goal anywhere in the U-shaped maze (see the module).

    Observation: ``{"pixels": uint8 (S, S, 3), "proprio": float32 (4,)}``, proprio ``(x, y, vx, vy)``
    in metres and metres per second. Action: ``Box(-1, 1, (2,))``, the force on the ball as a fraction
    of its actuators' range, held for the 5 MuJoCo steps of one env step.

    Reward: 1.0 on steps within the success radius, else 0.0 (DINO-WM plans without rewards).

    ``info``: ``goal_proprio`` float32 (4,), ``goal_pixels`` uint8 (S, S, 3), ``is_success`` bool,
    ``distance`` float (metres, x-y only).

    ``reset(seed=..., options={"start": (x, y), "goal": (x, y), "start_velocity": (vx, vy),
    "goal_velocity": (vx, vy)})``: any subset; what is not given is drawn from the seeded generator
    (start, then goal, then their velocities). A start or goal outside the free corridors is refused.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, render_mode: str | None = None, size: int = 64) -> None:
        size = check_render_arguments(render_mode, self.metadata["render_modes"], size, 16)
        self.render_mode = render_mode
        self.size = int(size)
        self.success_radius = SUCCESS_RADIUS
        self._maze = _RoboticsPointMaze(maze_map=U_MAZE, continuing_task=True, reset_target=False)
        # gymnasium-robotics writes the maze's MJCF to the system temp directory and never removes
        # it; MuJoCo has compiled the model by now, so the file is no longer needed
        Path(self._maze.tmp_xml_file_path).unlink(missing_ok=True)
        self._point = self._maze.point_env
        self._model, self._data = self._point.model, self._point.data
        self._model.site_rgba[self._maze.target_site_id, 3] = 0.0  # the goal is an image, not a marker
        self._renderer: mujoco.Renderer | None = None
        self._rollout_data: mujoco.MjData | None = None
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._camera.lookat[:] = (0.0, 0.0, 0.0)
        self._camera.distance = CAMERA_DISTANCE
        self._camera.elevation = -90.0
        self._camera.azimuth = 90.0
        self._model.vis.global_.fovy = float(np.degrees(2 * np.arctan(VIEW_EXTENT / 2 / CAMERA_DISTANCE)))

        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (self.size, self.size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-PROPRIO_BOUND, PROPRIO_BOUND, dtype=np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.goal = np.array([1.0, -1.0, 0.0, 0.0])
        self._goal_pixels = np.zeros((self.size, self.size, 3), dtype=np.uint8)

    # -- gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = reset_options(options, RESET_OPTIONS)
        self._maze.reset(seed=None if seed is None else int(seed))
        start, goal = self._sample_position(), self._sample_position()
        start_velocity = self.np_random.uniform(-SPAWN_SPEED, SPAWN_SPEED, 2)
        goal_velocity = self.np_random.uniform(-SPAWN_SPEED, SPAWN_SPEED, 2)
        start = self._option(options, "start", start, position=True)
        goal = self._option(options, "goal", goal, position=True)
        start_velocity = self._option(options, "start_velocity", start_velocity, position=False)
        goal_velocity = self._option(options, "goal_velocity", goal_velocity, position=False)

        self.goal = np.concatenate([goal, goal_velocity])
        self._set_state(goal, goal_velocity)
        self._goal_pixels = self.render()
        self._set_state(start, start_velocity)
        return self._observation(), self._info()

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,) or not np.isfinite(a).all():
            raise ValueError(f"action: expected 2 finite floats (fx, fy), got {a.dtype} {a.shape}: {a}")
        for _ in range(FRAME_SKIP):
            self._point.step(a)  # clips the action to [-1, 1] and the velocity to +-5 m/s
        # mj_step leaves the bodies' world poses at the state before its last integration: bring them up
        # to date so the frame shows the ball where the proprio says (else it lags 0.01 s behind)
        mujoco.mj_forward(self._model, self._data)
        info = self._info()
        return self._observation(), float(info["is_success"]), False, False, info

    def render(self) -> np.ndarray:
        """The current frame, uint8 ``(S, S, 3)``, rendered offscreen."""
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self._model, self.size, self.size)
            except Exception as error:  # MuJoCo raises plain Exceptions for a missing GL
                raise RuntimeError(
                    f"PointMaze: MuJoCo could not render offscreen with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} "
                    f"({error}). MuJoCo reads MUJOCO_GL when it is first imported: set it before anything imports "
                    "mujoco (edgerun.envs defaults it to egl). On Debian/Ubuntu install libegl1 libegl-mesa0 "
                    "libgl1-mesa-dri (make setup does), or set MUJOCO_GL=osmesa with libosmesa6"
                ) from error
        self._renderer.update_scene(self._data, self._camera)
        return self._renderer.render().copy()

    def simulate(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The env's dynamics, batched: ``(N, 4)`` states ``(x, y, vx, vy)`` and ``(N, T, 2)`` actions ->
        the ``(N, 4)`` states after ``T`` env steps, exactly what :meth:`step` would reach (the same
        MuJoCo model, 5 substeps per step, velocity clipped before each; ``mujoco.rollout`` runs the
        batch in C). The env's own state is not touched. A perfect model for planning experiments."""
        states, actions = np.asarray(states, dtype=np.float64), np.clip(np.asarray(actions, dtype=np.float64), -1, 1)
        if states.ndim != 2 or states.shape[1] != 4 or actions.ndim != 3 or actions.shape[::2] != (len(states), 2):
            raise ValueError(f"simulate: expected states (N, 4) and actions (N, T, 2), got {states.shape} and {actions.shape}")
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS  # time, qpos (2), qvel (2)
        full = np.zeros((len(states), mujoco.mj_stateSize(self._model, spec)))
        full[:, 1:5] = states
        if self._rollout_data is None:
            self._rollout_data = mujoco.MjData(self._model)
        for t in range(actions.shape[1]):
            for _ in range(FRAME_SKIP):
                full[:, 3:5] = np.clip(full[:, 3:5], -5.0, 5.0)  # PointEnv._clip_velocity
                full = rollout.rollout(self._model, self._rollout_data, full, actions[:, t : t + 1], nstep=1)[0][:, -1]
        return full[:, 1:5].copy()

    def success_of(self, states: np.ndarray) -> np.ndarray:
        """The env's success test of this episode's goal on recorded ``(N, >= 2)`` states -> (N,) bool."""
        xy = np.asarray(states, dtype=np.float64).reshape(-1, np.shape(states)[-1])[:, :2]
        return np.linalg.norm(xy - self.goal[:2], axis=-1) < self.success_radius

    def render_states(self, states: np.ndarray) -> np.ndarray:
        """Frames ``(N, S, S, 3)`` of ``(N, 4)`` states (only x, y show), the env's own state kept."""
        saved = self._state()
        try:
            frames = []
            for state in np.asarray(states, dtype=np.float64):
                self._set_state(state[:2], state[2:])
                frames.append(self.render())
        finally:
            self._set_state(saved[:2], saved[2:])
        return np.stack(frames)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._maze.close()
        super().close()

    # -- internals ---------------------------------------------------------------------------------

    def _sample_position(self) -> np.ndarray:
        while True:  # rejection sampling in the bounding box; the corridors cover 40 % of it
            xy = self.np_random.uniform(-CORRIDOR_END, CORRIDOR_END, 2)
            if in_corridor(xy):
                return xy

    def _option(self, options: dict[str, Any], name: str, default: np.ndarray, position: bool) -> np.ndarray:
        if options.get(name) is None:
            return default
        value = np.asarray(options[name], dtype=np.float64)
        if value.shape != (2,) or not np.isfinite(value).all():
            raise ValueError(f"reset option {name!r}: expected 2 finite floats, got {value.shape} {value}")
        if position and not in_corridor(value, margin=0.5 - 0.1):
            raise ValueError(f"reset option {name!r}: {value.tolist()} is not in the maze's free corridors "
                             "(centre lines y = 1 and y = -1 for |x| <= 1, x = 1 for |y| <= 1; ball radius 0.1)")  # fmt: skip
        return value

    def _set_state(self, xy: np.ndarray, velocity: np.ndarray) -> None:
        self._point.set_state(np.asarray(xy, dtype=np.float64), np.asarray(velocity, dtype=np.float64))

    def _state(self) -> np.ndarray:
        return np.concatenate([self._data.qpos, self._data.qvel]).astype(np.float64)

    def _observation(self) -> dict[str, np.ndarray]:
        return {"pixels": self.render(), "proprio": self._state().astype(np.float32)}

    def _info(self) -> dict[str, Any]:
        dist = float(np.linalg.norm(self._data.qpos[:2] - self.goal[:2]))
        return {
            "goal_proprio": self.goal.astype(np.float32),
            "goal_pixels": self._goal_pixels.copy(),
            "is_success": bool(self.success_of(self._data.qpos[:2])[0]),
            "distance": dist,
        }
