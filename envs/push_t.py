"""Push-T for DINO-WM: gym-pusht's pymunk simulation with DINO-WM's actions, proprio, goals and success.

The physics and drawing are gym-pusht's ``PushTEnv`` (a round pusher under PD control moves a T-shaped
block on a 512 x 512 table; 10 Hz control, 100 Hz physics), unchanged. What the wrapper takes from
DINO-WM's Push-T (arXiv 2411.04983; its ``env/pusht``, which came from Diffusion Policy) instead of
gym-pusht's own task:

==============  ==============================================================================
action          relative, ``Box(-1, 1, (2,))``: the PD target is ``agent + 100 * a`` px (DINO-WM's
                ``relative=True, action_scale=100``); gym-pusht's action is the absolute target
proprio         ``(x, y, vx, vy)`` of the pusher, px and px/s (DINO-WM's ``with_velocity``)
goal            an *observation* of a state the pusher can reach: from the start, 25 steps (five
                blocks of frameskip 5, the paper's ``goal_H`` 5) of a seeded pusher run toward and
                through the block, so that most goals move it; the goal frame and state are in
                ``info``, and the episode then starts from the start state again. (The paper takes
                the goal 25 steps ahead in a held-out expert trajectory; an env has no dataset.)
success         DINO-WM's ``eval_state``: ``||(agent xy, block xy) - goal's|| < 20`` px and the
                block's angle within ``pi / 9`` of the goal's; gym-pusht's 95 %-coverage of its fixed
                green target is not used (the target is still drawn: it is part of the scene)
==============  ==============================================================================

Starts are gym-pusht's (pusher in [50, 450]^2 px, block in [100, 400]^2 px, any angle). Frames are
drawn offscreen with pygame surfaces; no display is used (``SDL_VIDEODRIVER`` defaults to
``dummy``).

gym-pusht pins ``opencv-python``, which clashes with the ``opencv-python-headless`` edgerun and
pysodmetrics use (both own ``cv2``), so ``make setup`` installs it with ``--no-deps`` after its real
dependencies (pymunk, pygame, shapely, in pyproject.toml).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

from edgerun.envs.arguments import check_render_arguments, reset_options  # noqa: E402

try:
    from gym_pusht.envs.pusht import PushTEnv as _GymPushT  # noqa: E402
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "edgerun/PushT-v0 needs gym-pusht: pip install pymunk pygame shapely && pip install --no-deps gym-pusht "
        "(make setup does this)"
    ) from error

ACTION_SCALE = 100.0
GOAL_STEPS = 25
"""Env steps from the start to the goal state (the paper's goal_H 5 blocks x frameskip 5)."""
GOAL_PUSH = 0.25
"""The goal run's actions stay within +-0.25 (a PD target at most 25 px ahead per axis): a steady push
of a few hundred px in 25 steps, not a full-speed shove across the table."""
SUCCESS_POSITION_PX = 20.0
SUCCESS_ANGLE = np.pi / 9
TABLE = 512.0
RESET_OPTIONS = ("start", "goal")


def pose_distance(state: np.ndarray, goal: np.ndarray) -> tuple[float, float]:
    """DINO-WM's Push-T measure between two ``(agent x, y, block x, y, block angle)`` states: the norm of
    the four position coordinates (px) and the wrapped angle difference (rad)."""
    position = float(np.linalg.norm(np.asarray(state[:4]) - np.asarray(goal[:4])))
    angle = abs(float(state[4]) - float(goal[4])) % (2 * np.pi)
    return position, min(angle, 2 * np.pi - angle)


class PushTEnv(gymnasium.Env):
    """Push the T-block (and the pusher) to the pose shown by a goal image (see the module).

    Observation: ``{"pixels": uint8 (S, S, 3), "proprio": float32 (4,)}``. Action: ``Box(-1, 1, (2,))``,
    the PD target's offset from the pusher in units of 100 px.

    ``info``: ``goal_proprio`` float32 (4,) (the goal pusher's position, zero velocity),
    ``goal_pixels`` uint8 (S, S, 3), ``goal_state`` and ``state`` float64 (5,) (pusher x, y, block x, y,
    angle), ``is_success`` bool, ``distance`` (px) and ``angle_error`` (rad).

    ``reset(seed=..., options={"start": state5, "goal": state5})``: pin either; the goal is otherwise
    the state after the seeded 25-step push from the start.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, size: int = 64) -> None:
        size = check_render_arguments(render_mode, self.metadata["render_modes"], size, 16)
        self.render_mode = render_mode
        self.size = int(size)
        self._sim = _GymPushT(obs_type="pixels_agent_pos", render_mode="rgb_array",
                              observation_width=self.size, observation_height=self.size)  # fmt: skip
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (self.size, self.size, 3), dtype=np.uint8),
                "proprio": spaces.Box(np.array([0, 0, -2000, -2000], dtype=np.float32),
                                      np.array([TABLE, TABLE, 2000, 2000], dtype=np.float32), dtype=np.float32),
            }
        )  # fmt: skip
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.goal_state = np.zeros(5)
        self._goal_pixels = np.zeros((self.size, self.size, 3), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = reset_options(options, RESET_OPTIONS)
        self._sim.reset(seed=int(self.np_random.integers(2**31)))
        if options.get("start") is not None:
            self._set(self._checked_state("start", options["start"]))
        start = self.state()
        if options.get("goal") is not None:
            self._set(self._checked_state("goal", options["goal"]))
        else:
            for _ in range(GOAL_STEPS):
                self._push_toward_block()
        self.goal_state = self.state()
        self._goal_pixels = self.render()
        self._set(start)
        return self._observation(), self._info()

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (2,) or not np.isfinite(a).all():
            raise ValueError(f"action: expected 2 finite floats (dx, dy), got {a.dtype} {a.shape}: {a}")
        self._step_relative(a)
        info = self._info()
        return self._observation(), float(info["is_success"]), False, False, info

    def render(self) -> np.ndarray:
        """The current frame, uint8 ``(S, S, 3)``, drawn offscreen."""
        return np.ascontiguousarray(self._sim._render())

    def state(self) -> np.ndarray:
        """``(agent x, y, block x, y, block angle)``, px and rad (angle in [0, 2 pi))."""
        agent, block = self._sim.agent, self._sim.block
        return np.array([*agent.position, *block.position, block.angle % (2 * np.pi)], dtype=np.float64)

    def close(self) -> None:
        self._sim.close()
        super().close()

    def _step_relative(self, a: np.ndarray) -> None:
        target = np.clip(np.asarray(self._sim.agent.position) + ACTION_SCALE * np.clip(a, -1.0, 1.0), 0.0, TABLE)
        self._sim.step(target)

    def _push_toward_block(self) -> None:
        """One step of the goal run: head for a point near the block's centre (so most runs push it)."""
        aim = np.asarray(self._sim.block.position) + self.np_random.normal(0.0, 30.0, 2)
        offset = (aim - np.asarray(self._sim.agent.position)) / ACTION_SCALE
        self._step_relative(np.clip(offset + self.np_random.normal(0.0, 0.1, 2), -GOAL_PUSH, GOAL_PUSH))

    def _set(self, state: np.ndarray) -> None:
        """Put the sim in ``state`` at rest. The angle is set before the position (gym-pusht's
        ``_set_state`` does the opposite for its legacy data, and rotating about the block's centre of
        gravity then moves it), so :meth:`state` reads back exactly what was set."""
        sim, state = self._sim, np.asarray(state, dtype=np.float64)
        sim.agent.velocity = (0.0, 0.0)
        sim.block.velocity = (0.0, 0.0)
        sim.block.angular_velocity = 0.0
        sim.block.angle = float(state[4])
        sim.block.position = (float(state[2]), float(state[3]))
        sim.agent.position = (float(state[0]), float(state[1]))
        sim.space.step(sim.dt)  # as gym-pusht: one physics step for the change to take effect

    def _checked_state(self, name: str, value: Any) -> np.ndarray:
        state = np.asarray(value, dtype=np.float64)
        if state.shape != (5,) or not np.isfinite(state).all():
            raise ValueError(f"reset option {name!r}: expected (agent x, y, block x, y, angle), got {state.shape} {state}")
        if not ((0 <= state[:4]) & (state[:4] <= TABLE)).all():
            raise ValueError(f"reset option {name!r}: positions must lie on the {TABLE:.0f} px table, got {state[:4].tolist()}")
        return state

    def _observation(self) -> dict[str, np.ndarray]:
        velocity = np.asarray(self._sim.agent.velocity)
        proprio = np.concatenate([np.asarray(self._sim.agent.position), velocity]).astype(np.float32)
        return {"pixels": self.render(), "proprio": proprio}

    def _info(self) -> dict[str, Any]:
        state = self.state()
        position, angle = pose_distance(state, self.goal_state)
        return {
            "goal_proprio": np.array([*self.goal_state[:2], 0.0, 0.0], dtype=np.float32),
            "goal_pixels": self._goal_pixels.copy(),
            "goal_state": self.goal_state.copy(),
            "state": state,
            "is_success": bool(position < SUCCESS_POSITION_PX and angle < SUCCESS_ANGLE),
            "distance": position,
            "angle_error": angle,
        }
