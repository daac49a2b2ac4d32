"""Wall env (DINO-WM's two-room task) and offline-dataset collection."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import edgerun.envs  # registers edgerun/Wall-v0
from edgerun.envs import WALL_RANDOM_ID
from edgerun.envs.collect import LAYOUT_VERSION, collect, collect_main, load_dataset
from edgerun.envs.wall import (
    AGENT_RADIUS,
    DOOR_Y,
    MAX_SPEED,
    RANDOM_DOOR_Y_RANGE,
    SPAWN_BORDER,
    SPAWN_WALL_GAP,
    SUCCESS_RADIUS,
    WALL_THICKNESS,
    WallEnv,
    WallLayout,
    move,
    move_batch,
    success,
)
from edgerun.errors import DatasetError, UnknownEnvError

WALL_ID = "edgerun/Wall-v0"


@pytest.fixture
def env() -> gymnasium.Env:
    env = gymnasium.make(WALL_ID, render_mode="rgb_array")
    yield env
    env.close()


def face_x(layout: WallLayout) -> float:
    """The largest x the dot's centre can reach left of the wall."""
    return layout.wall_x - layout.wall_thickness / 2 - layout.agent_radius


def test_wall_passes_gymnasium_env_checker_without_warnings(env: gymnasium.Env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_registered_env_has_dict_observation_and_unit_action_box(env: gymnasium.Env) -> None:
    assert isinstance(env.unwrapped, WallEnv)
    assert env.spec.max_episode_steps == edgerun.envs.WALL_MAX_EPISODE_STEPS
    assert env.observation_space["pixels"].shape == (64, 64, 3)
    assert env.observation_space["pixels"].dtype == np.uint8
    assert env.observation_space["proprio"].shape == (2,)
    assert env.observation_space["proprio"].dtype == np.float32
    assert env.action_space.shape == (2,)
    assert (env.action_space.low == -1).all() and (env.action_space.high == 1).all()
    _, info = env.reset(seed=0)
    assert set(info) >= {"goal_proprio", "goal_pixels", "is_success", "distance"}
    assert info["goal_pixels"].shape == (64, 64, 3) and info["goal_pixels"].dtype == np.uint8
    assert info["goal_proprio"].shape == (2,) and info["goal_proprio"].dtype == np.float32


@pytest.mark.parametrize("size", [64, 96])
def test_render_returns_square_uint8_frame_that_changes_when_agent_moves(size: int) -> None:
    env = gymnasium.make(WALL_ID, render_mode="rgb_array", size=size)
    obs, _ = env.reset(seed=1, options={"start": (0.2, 0.5), "door_y": 0.5})
    before = env.render()
    assert before.shape == (size, size, 3) and before.dtype == np.uint8
    np.testing.assert_array_equal(before, obs["pixels"])
    obs, *_ = env.step(np.array([1.0, 0.0], dtype=np.float32))
    after = env.render()
    assert after.shape == (size, size, 3) and after.dtype == np.uint8
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, obs["pixels"])
    env.close()


def test_goal_pixels_show_the_dot_at_the_goal(env: gymnasium.Env) -> None:
    _, info = env.reset(seed=2)
    obs, info_at_goal = env.reset(seed=2, options={"start": info["goal_proprio"], "goal": info["goal_proprio"]})
    np.testing.assert_array_equal(obs["pixels"], info["goal_pixels"])
    assert info_at_goal["is_success"] and info_at_goal["distance"] == 0.0


def test_agent_cannot_pass_through_the_wall_away_from_the_door(env: gymnasium.Env) -> None:
    # the door is at y = 0.2 (top); straight at the wall, or sliding along it away from the door
    for direction in ([1.0, 0.0], [1.0, 0.3], [1.0, 1.0]):
        env.reset(seed=0, options={"start": (0.25, 0.75), "door_y": 0.2, "goal": (0.8, 0.8)})
        layout = env.unwrapped.layout
        for _ in range(60):
            obs, *_ = env.step(np.array(direction, dtype=np.float32))
            x, y = obs["proprio"]
            assert x <= face_x(layout) + 1e-6, f"crossed the wall at ({x}, {y}) driving {direction}"
            assert not layout.blocked(env.unwrapped.position)
        assert x == pytest.approx(face_x(layout), abs=1e-6)  # pressed against the wall, not stopped short
    # sliding along the face towards the door finds it and goes through
    env.reset(seed=0, options={"start": (0.25, 0.75), "door_y": 0.2, "goal": (0.8, 0.8)})
    for _ in range(60):
        obs, *_ = env.step(np.array([1.0, -0.3], dtype=np.float32))
    assert env.unwrapped.room_of(obs["proprio"]) == 1


def test_a_single_huge_step_does_not_tunnel_through_the_wall() -> None:
    layout = WallLayout(wall_x=0.5, door_y=0.2)
    end = move(np.array([0.3, 0.8]), np.array([5.0, 0.0]), layout)
    assert end[0] == pytest.approx(face_x(layout)) and end[1] == pytest.approx(0.8)
    # diagonal into the wall: stops at the face, slides along it, then stops at the border
    end = move(np.array([0.3, 0.8]), np.array([5.0, 5.0]), layout)
    assert end[0] == pytest.approx(face_x(layout)) and end[1] == pytest.approx(1 - AGENT_RADIUS)
    # along the face towards the door: slides into the doorway and through it only if aimed through
    end = move(np.array([face_x(layout), 0.8]), np.array([0.0, -0.6]), layout)
    assert end[0] == pytest.approx(face_x(layout)) and not layout.blocked(end)


def test_random_moves_never_end_inside_the_wall_or_outside_the_arena() -> None:
    rng = np.random.default_rng(0)
    for _ in range(3000):
        layout = WallLayout(wall_x=rng.uniform(0.3, 0.7), door_y=rng.uniform(0.2, 0.8))
        start = rng.uniform(AGENT_RADIUS, 1 - AGENT_RADIUS, 2)
        if layout.blocked(start):
            continue
        step = rng.normal(0.0, rng.choice([0.01, 0.1, 1.0]), 2)
        end = move(start, step, layout)
        assert not layout.blocked(end), (layout, start, step, end)
        assert (end >= AGENT_RADIUS).all() and (end <= 1 - AGENT_RADIUS).all()
        assert np.linalg.norm(end - start) <= np.linalg.norm(step) + 1e-12


def test_move_batch_matches_move_for_every_row() -> None:
    rng = np.random.default_rng(5)
    for trial in range(10):
        layout = WallLayout(wall_x=rng.uniform(0.3, 0.7), door_y=rng.uniform(0.2, 0.8))
        starts = rng.uniform(0.0, 1.0, (400, 2))
        starts = starts[[not layout.blocked(p) for p in starts]]
        steps = rng.normal(0.0, 0.1, starts.shape)
        steps[::5, 0] = 0.0  # axis-parallel motions too
        steps[::7, 1] = 0.0
        expected = np.array([move(p, d, layout) for p, d in zip(starts, steps)])
        np.testing.assert_allclose(move_batch(starts, steps, layout), expected, atol=1e-12)


def test_agent_passes_through_the_door(env: gymnasium.Env) -> None:
    obs, _ = env.reset(seed=0, options={"start": (0.25, 0.3), "door_y": 0.3, "goal": (0.8, 0.3)})
    layout = env.unwrapped.layout
    for _ in range(20):
        obs, *_ = env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert obs["proprio"][0] > layout.wall_x + WALL_THICKNESS / 2 + AGENT_RADIUS
    assert env.unwrapped.room_of(obs["proprio"]) == 1


def test_success_is_within_the_radius_of_the_goal(env: gymnasium.Env) -> None:
    goal = np.array([0.7, 0.5])
    assert success(goal + np.array([SUCCESS_RADIUS * 0.99, 0.0]), goal)
    assert not success(goal + np.array([SUCCESS_RADIUS * 1.01, 0.0]), goal)
    batch = np.array([[0.7, 0.5], [0.7, 0.5 + 1.1 * SUCCESS_RADIUS], [0.2, 0.5]])
    np.testing.assert_array_equal(success(batch, goal), [True, False, False])

    env.reset(seed=0, options={"start": (0.8, 0.5 + 0.04), "goal": (0.8, 0.5), "door_y": 0.5})
    _, reward, terminated, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert info["is_success"] and reward == 1.0 and info["distance"] == pytest.approx(0.04)
    assert not terminated  # the default keeps fixed-length episodes
    ending = WallEnv(terminate_on_success=True)
    ending.reset(seed=0, options={"start": (0.8, 0.54), "goal": (0.8, 0.5)})
    assert ending.step(np.zeros(2, dtype=np.float32))[2]


def test_reset_with_the_same_seed_reproduces_and_only_wall_random_moves_the_door(env: gymnasium.Env) -> None:
    first, info1 = env.reset(seed=123)
    actions = [env.action_space.sample() for _ in range(5)]
    trace1 = [env.step(a)[0]["proprio"] for a in actions]
    second, info2 = env.reset(seed=123)
    trace2 = [env.step(a)[0]["proprio"] for a in actions]
    np.testing.assert_array_equal(first["pixels"], second["pixels"])
    np.testing.assert_array_equal(first["proprio"], second["proprio"])
    np.testing.assert_array_equal(info1["goal_pixels"], info2["goal_pixels"])
    np.testing.assert_array_equal(np.stack(trace1), np.stack(trace2))

    doors = {round(env.reset(seed=seed)[1]["door_y"], 6) for seed in range(10)}
    assert doors == {round(DOOR_Y, 6)}  # the official fixed layout
    random_layout = gymnasium.make(WALL_RANDOM_ID)
    doors = [random_layout.reset(seed=seed)[1]["door_y"] for seed in range(10)]
    assert len(set(doors)) == 10 and all(RANDOM_DOOR_Y_RANGE[0] <= d <= RANDOM_DOOR_Y_RANGE[1] for d in doors)
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        assert env.unwrapped.room_of(obs["proprio"]) != env.unwrapped.room_of(info["goal_proprio"])


def test_starts_and_goals_keep_the_official_margins(env: gymnasium.Env) -> None:
    points = []
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        points += [obs["proprio"], info["goal_proprio"]]
    points = np.array(points, dtype=np.float64)
    eps = 1e-6  # float32 observations
    assert (points >= SPAWN_BORDER - eps).all() and (points <= 1 - SPAWN_BORDER + eps).all()
    assert (np.abs(points[:, 0] - 0.5) >= SPAWN_WALL_GAP - eps).all()
    # and they fill those boxes: near each margin somewhere
    assert points.min() < SPAWN_BORDER + 0.02 and np.abs(points[:, 0] - 0.5).min() < SPAWN_WALL_GAP + 0.02


def test_reset_rejects_starts_inside_the_wall_and_unknown_options(env: gymnasium.Env) -> None:
    with pytest.raises(ValueError, match=r"'start'.*overlaps the wall"):
        env.reset(seed=0, options={"start": (0.5, 0.9), "door_y": 0.2})
    with pytest.raises(ValueError, match="unknown \\['star'\\]"):
        env.reset(seed=0, options={"star": (0.2, 0.2)})


def run_episodes(policy, seeds: range, steps: int = 100) -> float:
    env = gymnasium.make(WALL_ID)
    reached = 0
    for seed in seeds:
        env.reset(seed=seed)
        for _ in range(steps):
            *_, info = env.step(policy(env))
            if info["is_success"]:
                reached += 1
                break
    env.close()
    return reached / len(seeds)


def test_scripted_policy_reaches_the_goal_and_random_actions_rarely_do(record_property) -> None:
    rng = np.random.default_rng(0)
    scripted = run_episodes(lambda env: env.unwrapped.expert_action(), range(20))
    random = run_episodes(lambda env: rng.uniform(-1, 1, 2).astype(np.float32), range(20))
    print(f"Wall success over 20 seeded episodes of 100 steps: scripted {scripted:.0%}, random {random:.0%}")
    record_property("scripted_success", scripted)
    record_property("random_success", random)
    assert scripted >= 0.9
    assert random <= 0.2


def test_scripted_policy_reaches_goals_from_starts_pressed_against_the_wall() -> None:
    env = WallEnv(wall_x_range=(0.3, 0.7))
    rng = np.random.default_rng(3)
    episodes = 0
    while episodes < 30:
        env.reset(seed=episodes)
        layout = env.unwrapped.layout
        start = np.array([layout.wall_x + rng.uniform(-0.08, 0.08), rng.uniform(0.03, 0.97)])
        goal = np.array([layout.wall_x + rng.uniform(-0.08, 0.08), rng.uniform(0.03, 0.97)])
        if layout.blocked(start) or layout.blocked(goal):
            continue
        options = {"start": start, "goal": goal, "door_y": layout.door_y, "wall_x": layout.wall_x}
        env.reset(seed=episodes, options=options)
        for _ in range(60):
            *_, info = env.step(env.expert_action())
        assert info["is_success"], options
        episodes += 1


def test_wander_collects_runs_that_push_against_the_wall(tmp_path: Path) -> None:
    result = collect(WALL_ID, episodes=6, steps=60, seed=0, out_path=tmp_path / "wander", policy="wander", progress=False)
    data = load_dataset(result.path)
    assert data.metadata["policy"] == "wander"
    actions = data.actions[:, :-1].astype(np.float64)
    assert (np.abs(actions) <= 1.0).all()
    commanded = np.minimum(np.linalg.norm(actions, axis=-1), 1.0) * MAX_SPEED
    moved = np.linalg.norm(np.diff(data.proprio.astype(np.float64), axis=1), axis=-1)
    assert (commanded > 0.5 * MAX_SPEED).mean() > 0.75  # fast runs (speed U(0.5, 1) plus noise)
    assert (moved < 0.5 * commanded).sum() >= 5  # stopped by the wall or the border, not just random-walking


def test_collect_writes_a_dataset_that_load_dataset_reads_back(tmp_path: Path) -> None:
    result = collect(WALL_ID, episodes=3, steps=12, seed=7, out_path=tmp_path / "wall", progress=False)
    assert result.path == tmp_path / "wall.npz" and result.path.is_file()
    data = load_dataset(result.path)
    n, t = 3, 13
    assert data.frames.shape == (n, t, 64, 64, 3) and data.frames.dtype == np.uint8
    assert data.proprio.shape == (n, t, 2) and data.proprio.dtype == np.float32
    assert data.actions.shape == (n, t, 2) and data.actions.dtype == np.float32
    assert data.goal_frames.shape == (n, 64, 64, 3) and data.goal_proprio.shape == (n, 2)
    assert data.is_success.shape == (n, t) and data.door_y.shape == (n,)
    np.testing.assert_array_equal(data.actions[:, -1], 0.0)  # padding row, never executed
    assert np.abs(data.actions[:, :-1]).max() <= 1.0
    assert data.metadata["layout_version"] == LAYOUT_VERSION
    assert {k: data.metadata[k] for k in ("env_id", "seed", "size", "policy", "steps", "episodes")} == {
        "env_id": WALL_ID, "seed": 7, "size": 64, "policy": "mixed", "steps": 12, "episodes": 3
    }
    assert "created" in data.metadata

    # each episode is rebuilt by its stored seed, and the frames follow the proprio
    env = gymnasium.make(WALL_ID)
    obs, info = env.reset(seed=int(data.episode_seeds[1]))
    np.testing.assert_array_equal(obs["pixels"], data.frames[1, 0])
    np.testing.assert_array_equal(info["goal_pixels"], data.goal_frames[1])
    for step in range(t - 1):
        obs, *_ = env.step(data.actions[1, step])
        np.testing.assert_array_equal(obs["proprio"], data.proprio[1, step + 1])
    env.close()

    again = load_dataset(collect(WALL_ID, 3, 12, 7, tmp_path / "again.npz", progress=False).path)
    np.testing.assert_array_equal(again.frames, data.frames)
    np.testing.assert_array_equal(again.actions, data.actions)


def test_load_dataset_names_the_file_and_the_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    np.savez_compressed(path, frames=np.zeros((1, 2, 8, 8, 3), np.uint8), proprio=np.zeros((1, 2, 2), np.float32))
    with pytest.raises(DatasetError, match=f"{re.escape(str(path))}.*missing key 'actions'"):
        load_dataset(path)
    path = tmp_path / "wrong_dtype.npz"
    result = collect(WALL_ID, 1, 2, 0, tmp_path / "ok", progress=False)
    arrays = dict(np.load(result.path))
    arrays["proprio"] = arrays["proprio"].astype(np.float64)
    np.savez_compressed(path, **arrays)
    with pytest.raises(DatasetError, match="key 'proprio': expected float32"):
        load_dataset(path)


def test_unknown_env_id_is_a_clear_error_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UnknownEnvError, match=r"unknown env id 'edgerun/Nope-v0'.*edgerun/Wall-v0"):
        collect("edgerun/Nope-v0", 1, 1, 0, tmp_path / "x.npz", progress=False)
    assert collect_main("edgerun/Nope-v0", 1, 1, 0, tmp_path / "x.npz") == 2
    assert "unknown env id 'edgerun/Nope-v0'" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
    assert collect_main(WALL_ID, 2, 5, 0, tmp_path / "ok.npz") == 0
    assert "wrote" in capsys.readouterr().out


def test_simulate_is_exactly_what_step_reaches_from_the_same_start(env: gymnasium.Env) -> None:
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1.5, 1.5, (6, 20, 2))  # out-of-box and over-norm actions, as step clips them
    obs, _ = env.reset(seed=5)
    wall = env.unwrapped
    predicted = wall.simulate(np.repeat(obs["proprio"][None].astype(np.float64), 6, axis=0), actions)
    for i in range(6):
        env.reset(seed=5)
        for action in actions[i]:
            obs, *_ = env.step(action)
        np.testing.assert_allclose(obs["proprio"], predicted[i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("env_id", [edgerun.envs.WALL_ID, edgerun.envs.WALL_RANDOM_ID, edgerun.envs.POINT_MAZE_ID, edgerun.envs.PUSH_T_ID])
def test_envs_leave_nothing_in_the_temp_directory(env_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gymnasium-robotics writes each maze's MJCF to the temp directory; a test run used to leave
    hundreds of ant_maze*.xml files there. The temp directory is redirected to an empty one so any
    file an env leaves behind shows."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = gymnasium.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.render()
    env.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
