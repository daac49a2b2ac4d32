"""Any gymnasium environment as a node: observations out (stamped with capture time), actions in.

Observations of a Dict space go out field by field (``pixels``, ``proprio`` …); others as
``observation``. Each message also carries ``episode`` and ``step``. The goal (from the
env's ``info``: ``goal_pixels``, ``goal_proprio``) goes out on ``goal`` at every reset and
once a second, so a planner that starts late still gets it. The end of an episode goes out
on ``episode`` with the env's own success test (``success`` at the end, and ``steps_to_goal`` /
``time_to_goal_s`` when the test first held, -1 if never): that topic is for evaluation and logs;
a planner must not subscribe to it (DINO-WM's planner sees only model costs).

With ``camera: robot`` (Wall envs) the node also publishes the robot's body camera
(:mod:`edgerun.envs.robot_camera`): a perspective view of a 3-D version of the episode's world,
rendered from the unwrapped env's state after reset and ``robot_camera.substeps`` times per env step
(the robot moved along the line between the two states, so consecutive frames are a few pixels apart,
as KLT needs). Frames go out on ``camera`` at ``camera_fps`` frames per second — the env steps at the
camera's pace, as a real robot moves in real time — with ``image``, the true ``cam_from_world`` (4, 4) and ``K`` (3, 3),
the camouflaged animals' ``target_mask`` and ``target`` category, ``frame_index`` (counted over the
node's life), ``episode`` and ``step``; ``camera_pose`` carries the same without the pixels (small enough to record).
The frame after a block's last step carries the observation's capture time. The observations
themselves are untouched: the planner sees exactly what it sees without the camera.

An ``action`` message carries ``action``: one env action ``(action_dim,)`` or a block of
them ``(k, action_dim)`` of a floating type, stepped in order. One without a floating array
``action`` is dropped by the runtime before the handler (counted on the status by reason); a
shape that does not fit the env's action space is refused by the handler with a clear error
in the node's log and status (``last_error``); the node stays up.

A ``target`` message gives the env a new goal mid-run (an operator's command, through the language
node): ``position`` (x, y), or a place in words, ``room`` and ``spot`` (Wall envs, see
:meth:`edgerun.envs.wall.WallEnv.place`), with the ``command`` it came from. The running episode
ends (its report says ``interrupted``) and a new one goes on from the robot's state toward that
goal; its goal goes out on ``goal`` (the planner retargets) and its report carries the ``command``.
An env that cannot take a goal mid-run, or a place it does not know, is refused with a clear error.

With ``control_hz`` > 0 the env steps on a wall-clock timer instead, as a robot's controller
does: every tick it takes the action for the current step from the newest block that covers it (a
block answering the observation of step ``s`` — its ``step`` field — covers steps ``s .. s + k - 1``),
holds still (a zero action) when none does, steps once and publishes the observation. Each
observation is an action request; the time from it to the block answering it is the action latency,
whose per-episode values go out on ``episode`` (``action_latencies_ms``, with ``held_steps``). An
episode starts moving with its first block (until then each tick asks again): ``first_action_s``
is that wait, and the episode's ``duration_s`` and ``time_to_goal_s`` count from the first step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium
import numpy as np

from edgerun.envs import check_env_id  # importing edgerun.envs registers its environments
from edgerun.envs.robot_camera import CameraView, RobotCamera, RobotCameraConfig
from edgerun.errors import InputRefused, ParamError
from edgerun.runtime import Array, Message, Node, Queue
from edgerun.runtime.views import Image, Json, Transform


@dataclass(frozen=True)
class EnvParams:
    env_id: str = "edgerun/Wall-v0"
    seed: int = 0  # episode i is reset with seed + i
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    auto_reset: bool = True  # start the next episode when one ends
    republish_s: float = 0.5  # no action for this long: send the current observation again
    episodes: int = 0  # stop the node after this many episodes; 0 runs until stopped
    camera: Literal["", "robot"] = ""  # "robot": publish the robot's body camera on 'camera' (Wall envs); "": none
    camera_fps: float = 15.0  # camera frames per second: the env steps at this pace (substeps frames per step)
    robot_camera: RobotCameraConfig = field(default_factory=RobotCameraConfig)  # size, optics, mount, substeps, floor
    control_hz: float = 0.0  # > 0: step at this wall-clock rate with the newest actions (the robot does not wait);
    # 0: step when actions arrive (lockstep with the planner)
    episode_list: list[dict[str, Any]] = field(default_factory=list)  # episode i resets with episode_list[i]
    # ({"seed": S, "options": {...}}: an evaluation's episodes); after the list, seed + i


def all_finite(value: Any) -> bool:
    """No NaN or infinity anywhere in a service's numbers (nested lists and dicts included)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())
    if isinstance(value, (list, tuple)):
        return all(map(all_finite, value))
    if isinstance(value, dict):
        return all(map(all_finite, value.values()))
    return True


class EnvNode(Node):
    inputs = {"action": Queue(8, fields={"action": Array("floating", finite=True)}),  # the shape depends on the env: checked in on_action
              "target": Queue(4)}  # position, or room and spot: checked in on_target
    outputs = ("observation", "goal", "episode", "camera", "camera_pose")
    views = {
        "camera": (Image("image"), Image("target_mask")),
        "camera_pose": (Transform("cam_from_world", parent="world", child="camera", inverse=True),),
        "episode": (Json({"episode": "integer", "seed": "integer", "steps": "integer", "success": "boolean",
                          "terminated": "boolean", "episode_return": "number", "duration_s": "number",
                          "steps_to_goal": "integer", "time_to_goal_s": "number", "action_latencies_ms": "array",
                          "held_steps": "integer", "first_action_s": "number", "interrupted": "boolean",
                          "command": "string"}, title="edgerun episode"),),
    }
    services = ("reset",)
    params = EnvParams

    def setup(self) -> None:
        check_env_id(self.params.env_id)
        self.env = gymnasium.make(self.params.env_id, **self.params.env_kwargs)
        space = self.env.action_space
        if not isinstance(space, gymnasium.spaces.Box):
            raise TypeError(f"env '{self.params.env_id}': only Box action spaces are supported, got {space}")
        self.action_shape = space.shape
        self.action_dtype = space.dtype
        self.camera = self.make_camera()
        self.frame_index = 0
        self.next_frame_at = time.monotonic()
        self.episode = -1
        self.clipped_actions = 0
        self.block: tuple[int, np.ndarray] | None = None  # control_hz: (first step, actions) of this episode's newest block
        self.requested: dict[int, float] = {}  # control_hz: step -> when its observation went out (monotonic)
        self.reset_env()
        self.every(1.0, self.publish_goal)
        if self.params.control_hz > 0:
            if self.camera is not None and self.params.robot_camera.substeps / self.params.camera_fps > 1 / self.params.control_hz:
                raise ValueError(f"control_hz {self.params.control_hz}: the robot camera's {self.params.robot_camera.substeps} "
                                 f"frames per step at {self.params.camera_fps} frames/s allow at most "
                                 f"{self.params.camera_fps / self.params.robot_camera.substeps:g} steps a second")
            self.every(1.0 / self.params.control_hz, self.control_tick)
        elif self.params.control_hz < 0:
            raise ValueError(f"control_hz: expected 0 (lockstep) or a positive rate, got {self.params.control_hz}")
        else:
            self.every(self.params.republish_s, self.republish_if_idle)

    def make_camera(self) -> RobotCamera | None:
        p = self.params
        if not p.camera:
            return None
        if not p.camera_fps > 0:
            raise ValueError(f"camera_fps: expected a positive rate, got {p.camera_fps}")
        unwrapped = self.env.unwrapped
        if not all(hasattr(unwrapped, name) for name in ("layout", "position", "goal")):
            raise ValueError(f"camera 'robot' rides a Wall robot (edgerun/Wall-v0, edgerun/WallRandom-v0); "
                             f"env '{p.env_id}' has no layout, position and goal")
        return RobotCamera(p.robot_camera)

    def reset_env(self, seed: int | None = None, options: dict[str, Any] | None = None, command: str = "") -> None:
        """Start the next episode. A reset the env refuses (or a seed or option that is not a finite
        number where one is expected) raises before any of the node's episode state changes."""
        episode = self.episode + 1
        if seed is None and options is None and episode < len(self.params.episode_list):
            listed = self.params.episode_list[episode]
            seed, options = listed.get("seed"), listed.get("options")
        seed = self.params.seed + episode if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ParamError(f"reset: seed must be an int >= 0, got {seed!r}")
        if options is not None and not all_finite(options):
            raise ParamError(f"reset: options must hold finite numbers, got {options!r}"[:300])
        observation, info = self.env.reset(seed=seed, options=options)
        self.episode, self.info, self.episode_seed, self.command = episode, info, seed, command
        self.step = 0
        self.episode_return = 0.0
        self.started = time.monotonic()
        self.reached: tuple[int, float] | None = None  # (step, seconds) the success test first held
        self.block, self.requested, self.latencies_ms, self.held_steps = None, {}, [], 0
        self.waited_s: float | None = None  # control_hz: from the reset to the episode's first block
        self.publish_goal()
        capture_ns = None
        if self.camera is not None:
            unwrapped = self.env.unwrapped
            capture_ns = self.publish_frames([self.camera.reset(seed, unwrapped.layout, unwrapped.position, unwrapped.goal)])
        self.publish_observation(observation, capture_ns)

    def publish_observation(self, observation: Any, capture_ns: int | None = None) -> None:
        data = dict(observation) if isinstance(observation, dict) else {"observation": np.asarray(observation)}
        self.last_observation = (observation, capture_ns or time.time_ns())
        self.last_published = time.monotonic()
        self.publish("observation", capture_ns=self.last_observation[1], episode=self.episode, step=self.step, **data)
        if self.params.control_hz > 0:
            self.requested[self.step] = self.last_published
            if len(self.requested) > 64:  # requests nobody answered: keep the newest
                self.requested.pop(min(self.requested))

    def publish_frames(self, views: list[CameraView]) -> int:
        """Send camera frames at ``camera_fps``, each when its turn comes → the last one's capture time."""
        period = 1.0 / self.params.camera_fps
        capture_ns = time.time_ns()
        for view in views:
            delay = self.next_frame_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.next_frame_at = max(self.next_frame_at, time.monotonic() - period) + period
            capture_ns = time.time_ns()
            pose = dict(K=self.camera.K, cam_from_world=view.cam_from_world, frame_index=self.frame_index,
                        episode=self.episode, step=self.step)
            self.publish("camera", capture_ns=capture_ns, image=view.image, target_mask=view.target_mask,
                         target=self.camera.world.target, **pose)
            self.publish("camera_pose", capture_ns=capture_ns, **pose)
            self.frame_index += 1
        return capture_ns

    def republish_if_idle(self) -> None:
        """In a lockstep loop a lost observation (a late subscriber, a restarted planner) would stall
        both sides; re-sending it, with its original capture time, restarts the loop."""
        if time.monotonic() - self.last_published >= self.params.republish_s:
            self.publish_observation(*self.last_observation)

    def publish_goal(self) -> None:
        goal = {key.removeprefix("goal_"): value for key, value in self.info.items() if key.startswith("goal_")}
        if goal:
            self.publish("goal", capture_ns=time.time_ns(), episode=self.episode, **goal)

    def on_action(self, msg: Message) -> None:
        actions = msg["action"]
        if actions.shape == self.action_shape:
            actions = actions[None]
        if actions.ndim != len(self.action_shape) + 1 or actions.shape[1:] != self.action_shape:
            raise InputRefused(
                "shape", f"expected {self.action_dtype} {self.action_shape} or a block "
                f"(k, {', '.join(map(str, self.action_shape))}), got {actions.dtype} {actions.shape}"
            )
        space = self.env.action_space
        inside = np.clip(actions, space.low, space.high)  # the evaluation's clip: a plan may overshoot the bounds
        self.clipped_actions += int(np.count_nonzero(np.any(inside != actions, axis=tuple(range(1, actions.ndim)))))
        inside = inside.astype(self.action_dtype)
        if self.params.control_hz > 0:
            self.keep_block(msg, inside)
            return
        for action in inside:
            if self.advance(action):
                return
        self.publish_observation(*self.last_step)

    def advance(self, action: np.ndarray) -> bool:
        """One env step (and its camera frames); True when it ended the episode."""
        observation, reward, terminated, truncated, self.info = self.env.step(action)
        self.step += 1
        capture_ns = None  # the observation's: that of the camera frame showing the same state, if any
        if self.camera is not None:
            capture_ns = self.publish_frames(self.camera.advance(self.env.unwrapped.position))
        self.last_step = (observation, capture_ns)
        self.episode_return += float(reward)
        if self.reached is None and self.info.get("is_success"):
            self.reached = (self.step, time.monotonic() - self.started)
        if terminated or truncated:
            self.end_episode(terminated)
            return True
        return False

    def keep_block(self, msg: Message, actions: np.ndarray) -> None:
        """control_hz: keep a block answering this episode's observation of step ``msg["step"]``."""
        step = msg.get("step")
        if msg.get("episode") != self.episode or not isinstance(step, int) or step not in self.requested:
            return  # an answer to another episode, or to nothing this node asked: nothing to execute
        self.latencies_ms.append((time.monotonic() - self.requested.pop(step)) * 1000.0)
        self.requested = {s: t for s, t in self.requested.items() if s > step}
        if self.block is None or step >= self.block[0]:
            self.block = (step, actions)

    def control_tick(self) -> None:
        """control_hz: one step with the newest block's action for this step (zero if none covers it).
        An episode starts moving with its first block: until then each tick asks again."""
        if self.step == 0 and self.block is None:
            self.publish_observation(*self.last_observation)
            return
        if self.waited_s is None:  # the first block came: the episode's clock starts now
            self.waited_s = time.monotonic() - self.started
            self.started = time.monotonic()
        first, block = self.block
        if 0 <= self.step - first < len(block):
            action = block[self.step - first]
        else:  # the newest block is used up: hold still until an answer covers this step
            action = np.zeros(self.action_shape, dtype=self.action_dtype)
            self.held_steps += 1
        if not self.advance(action):
            self.publish_observation(*self.last_step)

    def on_target(self, msg: Message) -> None:
        """A new goal mid-run: the episode ends here and the next goes on from this state toward it."""
        unwrapped = self.env.unwrapped
        if not hasattr(unwrapped, "retarget_options"):
            raise InputRefused("target", f"env '{self.params.env_id}' cannot take a new goal mid-run (no retarget_options)")
        try:
            if msg.get("position") is not None:
                goal = np.asarray(msg["position"], dtype=np.float64)
            elif hasattr(unwrapped, "place"):
                goal = unwrapped.place(msg.get("room"), msg.get("spot"))
            else:
                raise ValueError(f"env '{self.params.env_id}' knows no places by name: send a position")
            options = unwrapped.retarget_options(goal)
            if not all_finite(options):
                raise ValueError(f"goal {goal.tolist()} is not finite")
        except (TypeError, ValueError) as exc:
            raise InputRefused("target", str(exc)) from None
        self.report_episode(terminated=False, interrupted=True)
        command = msg.get("command")
        self.reset_env(options=options, command=command if isinstance(command, str) else "")

    def end_episode(self, terminated: bool) -> None:
        self.report_episode(terminated)
        if self.params.episodes and self.episode + 1 >= self.params.episodes:
            self.stop()
        elif self.params.auto_reset:
            self.reset_env()

    def report_episode(self, terminated: bool, interrupted: bool = False) -> None:
        self.publish(
            "episode",
            capture_ns=time.time_ns(),
            episode=self.episode,
            seed=self.episode_seed,
            steps=self.step,
            success=bool(self.info.get("is_success", False)),
            terminated=terminated,
            episode_return=self.episode_return,
            duration_s=time.monotonic() - self.started,
            steps_to_goal=self.reached[0] if self.reached else -1,
            time_to_goal_s=self.reached[1] if self.reached else -1.0,
            action_latencies_ms=np.asarray(self.latencies_ms, dtype=np.float64),
            held_steps=self.held_steps,
            first_action_s=-1.0 if self.waited_s is None else self.waited_s,
            interrupted=interrupted,
            command=self.command,
        )

    def serve_reset(self, msg: Message) -> dict[str, Any]:
        """Start a new episode now: optional ``seed`` and env ``options`` (e.g. ``start``, ``goal``);
        any other field is refused (a misspelt ``sead`` would otherwise reset with the default seed)."""
        unknown = sorted({*msg.fields, *msg.arrays} - {"seed", "options"})
        if unknown:
            raise ParamError(f"reset: unknown field {', '.join(map(repr, unknown))} (known: seed, options)")
        self.reset_env(seed=msg.get("seed"), options=msg.get("options"))
        return {"episode": self.episode, "seed": self.episode_seed}

    def status_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name, None) for name in ("episode", "step", "clipped_actions")}  # None before setup

    def teardown(self) -> None:
        if hasattr(self, "env"):
            self.env.close()
