"""Offline datasets for world-model training: collect episodes from an env, save, load and validate.

Layout, version 1 (what ``edgerun train dino-wm`` reads). One compressed ``.npz`` per dataset,
written with ``numpy.savez_compressed`` and read with ``allow_pickle=False``. ``N`` episodes of
``T = steps + 1`` observations (the reset observation, then one after each of ``steps`` actions):

=================  ==============================  ==================================================
key                dtype, shape                    meaning
=================  ==============================  ==================================================
``frames``         uint8 (N, T, S, S, 3)           RGB observations (``obs["pixels"]``), row-major
``proprio``        float32 (N, T, P)               proprioception (``obs["proprio"]``); Wall: P = 2,
                                                   the dot's (x, y) in arena units
``actions``        float32 (N, T, A)               ``actions[:, t]`` was taken at ``frames[:, t]`` and
                                                   led to ``frames[:, t + 1]``; the last row,
                                                   ``actions[:, T - 1]``, is zero padding, never run:
                                                   train on ``actions[:, :-1]``
``metadata``       0-d unicode string              JSON object, see below
``is_success``     bool (N, T)                     optional: ``info["is_success"]`` per observation
``goal_frames``    uint8 (N, S, S, 3)              optional: ``info["goal_pixels"]`` (goal image)
``goal_proprio``   float32 (N, P)                  optional: ``info["goal_proprio"]``
``door_y``         float32 (N,)                    optional: the episode's layout (Wall)
``wall_x``         float32 (N,)                    optional: the episode's layout (Wall)
``episode_seeds``  int64 (N,)                      ``env.reset(seed=episode_seeds[i])`` rebuilds
                                                   episode i's layout, start and goal
=================  ==============================  ==================================================

``metadata`` keys: ``layout_version`` (1), ``env_id``, ``seed``, ``episodes``, ``steps``, ``size``
(S), ``policy``, ``created`` (ISO-8601 UTC), ``edgerun_version``, ``gymnasium_version``.

Policies: ``random`` (uniform in the action box, i.i.d.: a random walk that rarely leaves its
room), ``scripted`` (the env's ``expert_action``: door, then goal), ``mixed`` (per step: with
probability 0.3 a uniform random action, otherwise the expert's action plus Gaussian noise of
std 0.3, clipped), ``wander`` (:class:`Wander`: full-speed runs toward random waypoints that ignore
the wall, so the dot pushes against it and slides along it). ``mixed`` is the default: the data
must hold door crossings for a world model to learn them, and random actions for it to learn what
off-expert actions do; DINO-WM training adds ``wander`` (see ``training/dino_wm/config.py``).

Memory: the whole dataset is built in RAM before saving, 12 KiB per 64 x 64 frame (1000 episodes
of 100 steps: about 1.2 GiB).
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from tqdm import tqdm

import edgerun
from edgerun.envs import check_env_id  # importing edgerun.envs registers the edgerun/... ids
from edgerun.errors import DatasetError

LAYOUT_VERSION = 1
POLICIES = ("random", "scripted", "mixed", "wander")
EXPERT_POLICIES = ("scripted", "mixed")
MIXED_RANDOM_PROB = 0.3
MIXED_NOISE_STD = 0.3

REQUIRED_KEYS = ("frames", "proprio", "actions", "metadata")
OPTIONAL_KEYS = ("is_success", "goal_frames", "goal_proprio", "door_y", "wall_x", "episode_seeds")


@dataclass(frozen=True)
class CollectResult:
    """What ``collect`` wrote, with the numbers worth a glance."""

    path: Path
    episodes: int
    steps: int
    size: int
    policy: str
    success_rate: float | None
    """Episodes within the success radius at the last step (None if the env reports no success)."""
    crossing_rate: float | None
    """Episodes whose dot changed room at least once (None for envs without a wall)."""
    seconds: float
    file_bytes: int


@dataclass(frozen=True)
class OfflineDataset:
    """A loaded dataset; see the module docstring for the layout. Optional arrays may be None."""

    path: Path
    frames: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    metadata: dict[str, Any]
    is_success: np.ndarray | None = None
    goal_frames: np.ndarray | None = None
    goal_proprio: np.ndarray | None = None
    door_y: np.ndarray | None = None
    wall_x: np.ndarray | None = None
    episode_seeds: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def episodes(self) -> int:
        return int(self.frames.shape[0])

    @property
    def length(self) -> int:
        """Observations per episode, T."""
        return int(self.frames.shape[1])


class Wander:
    """The ``wander`` policy: straight runs toward random waypoints anywhere in the arena, ignoring the wall.

    A new waypoint on arrival (within 0.03) or every 10-30 steps; speed U(0.5, 1) of the maximum,
    Gaussian noise of std 0.2 per axis, clipped to the action box. It pushes against the wall and
    slides along it for whole action blocks, at full speed: what a planner like CEM proposes all
    the time and what neither the expert nor i.i.d. random actions show (4 of 8000 five-step blocks
    of a ``mixed`` set have three or more blocked steps), so a world model trained without it
    predicts the dot walking through the wall. Needs an env whose ``proprio`` starts with a
    position in the unit square (Wall's dot).
    """

    def __init__(self, rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> None:
        self.rng, self.low, self.high = rng, low, high
        self.target, self.until, self.t = np.zeros(2), 0, 0

    def reset(self) -> None:
        """A new episode: a first waypoint and when to give up on it."""
        self.target, self.until, self.t = self.rng.uniform(0.0, 1.0, 2), int(self.rng.integers(10, 31)), 0

    def __call__(self, proprio: np.ndarray) -> np.ndarray:
        position = np.asarray(proprio[:2], dtype=np.float64)
        if self.t >= self.until or np.linalg.norm(self.target - position) < 0.03:
            self.target, self.until = self.rng.uniform(0.0, 1.0, 2), self.t + int(self.rng.integers(10, 31))
        self.t += 1
        heading = (self.target - position) / max(np.linalg.norm(self.target - position), 1e-9)
        action = heading * self.rng.uniform(0.5, 1.0) + self.rng.normal(0.0, 0.2, 2)
        return np.clip(action, self.low, self.high).astype(np.float32)


def _policy_action(policy: str, env: gymnasium.Env, rng: np.random.Generator) -> np.ndarray:
    space = env.action_space
    if policy == "random":
        return rng.uniform(space.low, space.high).astype(np.float32)
    expert = np.asarray(env.unwrapped.expert_action(), dtype=np.float32)
    if policy == "scripted":
        return expert
    if rng.random() < MIXED_RANDOM_PROB:
        return rng.uniform(space.low, space.high).astype(np.float32)
    noisy = expert + rng.normal(0.0, MIXED_NOISE_STD, size=expert.shape)
    return np.clip(noisy, space.low, space.high).astype(np.float32)


def collect(
    env_id: str,
    episodes: int,
    steps: int,
    seed: int,
    out_path: str | Path,
    policy: str = "mixed",
    progress: bool = True,
) -> CollectResult:
    """Run ``episodes`` episodes of ``steps`` actions each and save them to ``out_path`` (``.npz``).

    Reproducible: the same arguments write the same arrays (only ``created`` differs). Raises
    ``UnknownEnvError`` for an unregistered id, ``ValueError`` for bad arguments.
    """
    check_env_id(env_id)
    if episodes < 1 or steps < 1:
        raise ValueError(f"episodes and steps: expected >= 1, got episodes={episodes}, steps={steps}")
    if policy not in POLICIES:
        raise ValueError(f"policy: expected one of {POLICIES}, got {policy!r}")
    path = Path(out_path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")

    env = gymnasium.make(env_id, max_episode_steps=steps)
    try:
        if policy in EXPERT_POLICIES and not callable(getattr(env.unwrapped, "expert_action", None)):
            raise ValueError(f"policy {policy!r} needs an expert: {env_id} has no expert_action()")
        pixels_space = env.observation_space["pixels"]
        proprio_space = env.observation_space["proprio"]
        size = int(pixels_space.shape[0])
        length = steps + 1
        frames = np.zeros((episodes, length, *pixels_space.shape), dtype=np.uint8)
        proprio = np.zeros((episodes, length, *proprio_space.shape), dtype=np.float32)
        actions = np.zeros((episodes, length, *env.action_space.shape), dtype=np.float32)
        infos: dict[str, list[Any]] = {
            key: [] for key in ("is_success", "goal_pixels", "goal_proprio", "door_y", "wall_x")
        }
        episode_seeds = np.random.SeedSequence(seed).generate_state(episodes, dtype=np.uint32).astype(np.int64)
        # the policy's noise, separate from the env's stream ([seed, 3] for wander: its stream since v1)
        rng = np.random.default_rng([seed, 3] if policy == "wander" else [seed, 1])
        wander = Wander(rng, env.action_space.low, env.action_space.high) if policy == "wander" else None

        started = time.perf_counter()
        bar = tqdm(range(episodes), desc=f"collect {env_id}", unit="ep", disable=not progress)
        successes = 0
        for i in bar:
            obs, info = env.reset(seed=int(episode_seeds[i]))
            frames[i, 0], proprio[i, 0] = obs["pixels"], obs["proprio"]
            success_row = [bool(info.get("is_success", False))]
            if wander is not None:
                wander.reset()
            for t in range(steps):
                action = wander(obs["proprio"]) if wander is not None else _policy_action(policy, env, rng)
                actions[i, t] = action
                obs, _, terminated, truncated, info = env.step(action)
                frames[i, t + 1], proprio[i, t + 1] = obs["pixels"], obs["proprio"]
                success_row.append(bool(info.get("is_success", False)))
                if (terminated or truncated) and t < steps - 1:
                    raise RuntimeError(
                        f"{env_id}: episode {i} ended after {t + 1} of {steps} steps; collect needs fixed-length "
                        "episodes (an env that does not terminate on success)"
                    )
            infos["is_success"].append(success_row)
            for key in ("goal_pixels", "goal_proprio", "door_y", "wall_x"):
                infos[key].append(info.get(key))
            successes += success_row[-1]
            bar.set_postfix(success=f"{successes / (i + 1):.2f}")
        seconds = time.perf_counter() - started
    finally:
        env.close()

    metadata = {
        "layout_version": LAYOUT_VERSION,
        "env_id": env_id,
        "seed": int(seed),
        "episodes": int(episodes),
        "steps": int(steps),
        "size": size,
        "policy": policy,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgerun_version": edgerun.__version__,
        "gymnasium_version": gymnasium.__version__,
    }
    arrays: dict[str, np.ndarray] = {
        "frames": frames,
        "proprio": proprio,
        "actions": actions,
        "metadata": np.array(json.dumps(metadata)),
        "is_success": np.asarray(infos["is_success"], dtype=bool),
        "episode_seeds": episode_seeds,
    }
    if all(g is not None for g in infos["goal_pixels"]):
        arrays["goal_frames"] = np.stack(infos["goal_pixels"]).astype(np.uint8)
    if all(g is not None for g in infos["goal_proprio"]):
        arrays["goal_proprio"] = np.stack(infos["goal_proprio"]).astype(np.float32)
    crossing_rate = None
    if all(v is not None for v in infos["door_y"] + infos["wall_x"]):
        arrays["door_y"] = np.asarray(infos["door_y"], dtype=np.float32)
        arrays["wall_x"] = np.asarray(infos["wall_x"], dtype=np.float32)
        side = np.sign(proprio[..., 0] - arrays["wall_x"][:, None])
        crossing_rate = float(np.mean((side != side[:, :1]).any(axis=1)))

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    reports_success = "is_success" in info
    return CollectResult(
        path=path,
        episodes=episodes,
        steps=steps,
        size=size,
        policy=policy,
        success_rate=float(arrays["is_success"][:, -1].mean()) if reports_success else None,
        crossing_rate=crossing_rate,
        seconds=seconds,
        file_bytes=path.stat().st_size,
    )


def _require(path: Path, name: str, array: np.ndarray, dtype: type, shape: tuple[int | None, ...]) -> None:
    """``shape`` entries of None match any size."""
    ok = array.dtype == np.dtype(dtype) and array.ndim == len(shape)
    ok = ok and all(want is None or got == want for got, want in zip(array.shape, shape, strict=True))
    if not ok:
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise DatasetError(f"{path}: key {name!r}: expected {np.dtype(dtype)} {want}, got {array.dtype} {array.shape}")


def load_dataset(path: str | Path) -> OfflineDataset:
    """Read and validate a dataset written by ``collect`` (layout version 1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise DatasetError(f"{path}: not a readable .npz dataset ({error})") from error

    for name in REQUIRED_KEYS:
        if name not in arrays:
            raise DatasetError(
                f"{path}: missing key {name!r} (layout v{LAYOUT_VERSION} needs {list(REQUIRED_KEYS)}, "
                f"found {sorted(arrays)})"
            )
    raw = arrays.pop("metadata")
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise DatasetError(f"{path}: key 'metadata': expected a 0-d unicode JSON string, got {raw.dtype} {raw.shape}")
    try:
        metadata = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: key 'metadata': not valid JSON ({error})") from error
    if not isinstance(metadata, dict):
        raise DatasetError(f"{path}: key 'metadata': expected a JSON object, got {type(metadata).__name__}")
    version = metadata.get("layout_version")
    if version != LAYOUT_VERSION:
        raise DatasetError(f"{path}: layout_version {version!r}, this edgerun reads version {LAYOUT_VERSION}")

    frames, proprio, actions = arrays.pop("frames"), arrays.pop("proprio"), arrays.pop("actions")
    _require(path, "frames", frames, np.uint8, (None, None, None, None, 3))
    n, t, height, width = frames.shape[:4]
    if height != width:
        raise DatasetError(f"{path}: key 'frames': expected square frames, got {height} x {width}")
    _require(path, "proprio", proprio, np.float32, (n, t, None))
    _require(path, "actions", actions, np.float32, (n, t, None))
    expected: dict[str, tuple[type, tuple[int | None, ...]]] = {
        "is_success": (np.bool_, (n, t)),
        "goal_frames": (np.uint8, (n, height, width, 3)),
        "goal_proprio": (np.float32, (n, proprio.shape[2])),
        "door_y": (np.float32, (n,)),
        "wall_x": (np.float32, (n,)),
        "episode_seeds": (np.int64, (n,)),
    }
    optional: dict[str, np.ndarray | None] = {}
    for name, (dtype, shape) in expected.items():
        array = arrays.pop(name, None)
        if array is not None:
            _require(path, name, array, dtype, shape)
        optional[name] = array
    return OfflineDataset(
        path=path, frames=frames, proprio=proprio, actions=actions, metadata=metadata, extra=arrays, **optional
    )


def collect_main(env_id: str, episodes: int, steps: int, seed: int, out: str | Path, policy: str = "mixed") -> int:
    """CLI entry: collect, print a summary; 0 on success, 2 for an unknown env id or bad arguments."""
    try:
        result = collect(env_id, episodes, steps, seed, out, policy=policy, progress=True)
    except ValueError as error:  # UnknownEnvError included
        print(f"edgerun collect: {error}", file=sys.stderr)
        return 2
    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    print(
        f"wrote {result.path} ({result.file_bytes / 2**20:.1f} MiB, layout v{LAYOUT_VERSION})\n"
        f"  {result.episodes} episodes x {result.steps} steps of {env_id}, {result.size}x{result.size} RGB, "
        f"policy {result.policy}, seed {seed}\n"
        f"  success at the last step {rate(result.success_rate)}, crossed the wall {rate(result.crossing_rate)}, "
        f"{result.seconds:.1f} s ({result.episodes * result.steps / max(result.seconds, 1e-9):.0f} steps/s)"
    )
    return 0
