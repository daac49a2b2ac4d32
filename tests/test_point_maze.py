"""PointMaze (gymnasium-robotics' UMaze point mass as DINO-WM uses it): rendering, dynamics, protocol."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from edgerun.envs import POINT_MAZE_ID
from edgerun.envs.collect import collect, load_dataset
from edgerun.envs.point_maze import (
    CORRIDOR_HALF_WIDTH,
    SPAWN_SPEED,
    SUCCESS_RADIUS,
    VIEW_EXTENT,
    PointMazeEnv,
    in_corridor,
)


@pytest.fixture
def env() -> PointMazeEnv:
    env = gymnasium.make(POINT_MAZE_ID)
    yield env.unwrapped
    env.close()


def pixel_of(xy: np.ndarray, size: int) -> tuple[int, int]:
    """(row, col) of a maze position in a frame: x along columns, y up the rows, VIEW_EXTENT across."""
    col = (xy[0] + VIEW_EXTENT / 2) / VIEW_EXTENT * size
    row = (VIEW_EXTENT / 2 - xy[1]) / VIEW_EXTENT * size
    return int(row), int(col)


def is_ball_green(rgb: np.ndarray) -> bool:
    r, g, b = (int(v) for v in rgb)
    return g > r + 20 and g > b + 20  # the ball's site is (0.3, 0.6, 0.3); walls are orange, the floor blue


def test_point_maze_passes_gymnasium_env_checker_without_warnings(env: PointMazeEnv) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)


def test_frames_are_rendered_offscreen_with_the_ball_where_its_proprio_says(env: PointMazeEnv) -> None:
    obs, info = env.reset(seed=0, options={"start": (-1.0, 1.0), "goal": (1.0, -1.0)})
    size = obs["pixels"].shape[0]
    assert obs["pixels"].shape == (64, 64, 3) and obs["pixels"].dtype == np.uint8
    assert is_ball_green(obs["pixels"][pixel_of(np.array([-1.0, 1.0]), size)])
    assert not is_ball_green(obs["pixels"][pixel_of(np.array([1.0, -1.0]), size)])
    # the goal image is the same maze with the ball at the goal, and nothing marks the goal in frames
    assert is_ball_green(info["goal_pixels"][pixel_of(np.array([1.0, -1.0]), size)])
    assert not is_ball_green(info["goal_pixels"][pixel_of(np.array([-1.0, 1.0]), size)])
    changed = np.abs(obs["pixels"].astype(int) - info["goal_pixels"].astype(int)).sum(-1) > 30
    assert 4 <= changed.sum() <= 200  # two ball-sized blobs, not a marker or a different scene


def test_simulate_is_exactly_what_step_reaches(env: PointMazeEnv) -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.5, 1.5, (4, 12, 2))  # out-of-box actions are clipped the same way
    obs, _ = env.reset(seed=3)
    starts = np.repeat(obs["proprio"].astype(np.float64)[None], 4, axis=0)
    predicted = env.simulate(starts, actions)
    for i in range(4):
        env.reset(seed=3)
        for action in actions[i]:
            obs, *_ = env.step(action)
        np.testing.assert_allclose(obs["proprio"], predicted[i], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"states \(N, 4\) and actions \(N, T, 2\)"):
        env.simulate(starts[:, :2], actions)


def test_walls_stop_the_ball_and_speed_is_capped(env: PointMazeEnv) -> None:
    env.reset(seed=0, options={"start": (-1.0, 1.0), "start_velocity": (0.0, 0.0)})
    for _ in range(40):  # push down into the U's middle wall (cells below y = 0.5)
        obs, *_ = env.step(np.array([0.0, -1.0]))
    assert obs["proprio"][1] == pytest.approx(0.6, abs=0.02)  # the wall's face at y 0.5 + the ball's 0.1 radius
    env.reset(seed=0, options={"start": (-1.0, -1.0), "start_velocity": (0.0, 0.0)})
    for _ in range(6):
        obs, *_ = env.step(np.array([1.0, 0.0]))
    assert 4.9 <= obs["proprio"][2] <= 5.3  # the velocity clip of gymnasium-robotics' PointEnv


def test_starts_and_goals_are_in_the_corridors_with_the_official_spread(env: PointMazeEnv) -> None:
    starts, goals, speeds = [], [], []
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        starts.append(obs["proprio"][:2])
        goals.append(info["goal_proprio"][:2])
        speeds.append(np.abs(obs["proprio"][2:]))
    starts, goals = np.array(starts), np.array(goals)
    assert in_corridor(starts).all() and in_corridor(goals).all()
    assert np.abs(np.array(speeds)).max() <= SPAWN_SPEED
    # every arm of the U is used: the top corridor, the bottom one and the joining column
    assert (starts[:, 1] > 0.7).any() and (starts[:, 1] < -0.7).any() and (np.abs(starts[:, 1]) < 0.4).any()
    obs_a, info_a = env.reset(seed=7)
    obs_b, info_b = env.reset(seed=7)
    np.testing.assert_array_equal(obs_a["proprio"], obs_b["proprio"])
    np.testing.assert_array_equal(info_a["goal_pixels"], info_b["goal_pixels"])


def test_success_is_the_official_half_metre_and_never_ends_the_episode(env: PointMazeEnv) -> None:
    for offset, expected in ((SUCCESS_RADIUS - 0.02, True), (SUCCESS_RADIUS + 0.02, False)):
        env.reset(seed=0, options={"start": (-1.0, 1.0), "goal": (-1.0 + offset, 1.0),
                                   "start_velocity": (0.0, 0.0)})  # fmt: skip
        _, reward, terminated, truncated, info = env.step(np.zeros(2))
        assert info["is_success"] is expected and reward == float(expected)
        assert not terminated and not truncated
        assert info["distance"] == pytest.approx(offset, abs=0.01)


def test_reset_refuses_positions_in_walls_and_unknown_options(env: PointMazeEnv) -> None:
    with pytest.raises(ValueError, match="not in the maze's free corridors"):
        env.reset(options={"start": (-1.0, 0.0)})  # inside the U's middle wall
    with pytest.raises(ValueError, match=r"unknown \['door_y'\]"):
        env.reset(options={"door_y": 0.5})
    with pytest.raises(ValueError, match="expected 2 finite floats"):
        env.reset(options={"goal": (0.0, float("nan"))})
    assert in_corridor(np.array([1.0 + CORRIDOR_HALF_WIDTH, 0.0]))
    assert not in_corridor(np.array([0.0, 0.0]))


def test_collect_writes_point_maze_episodes_with_random_actions(tmp_path: Path) -> None:
    result = collect(POINT_MAZE_ID, episodes=3, steps=10, seed=0, out_path=tmp_path / "pm", policy="random",
                     progress=False)  # fmt: skip
    data = load_dataset(result.path)
    assert data.frames.shape == (3, 11, 64, 64, 3) and data.proprio.shape == (3, 11, 4)
    assert data.goal_frames.shape == (3, 64, 64, 3) and data.goal_proprio.shape == (3, 4)
    assert data.metadata["env_id"] == POINT_MAZE_ID
    moved = np.linalg.norm(data.proprio[:, -1, :2] - data.proprio[:, 0, :2], axis=-1)
    assert (moved > 0.05).all()  # random forces move the ball
    with pytest.raises(ValueError, match="needs an expert"):
        collect(POINT_MAZE_ID, episodes=1, steps=2, seed=0, out_path=tmp_path / "x", policy="mixed", progress=False)


def test_a_missing_opengl_back_end_is_one_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["MUJOCO_GL"] = "glfw"  # an on-screen back end, with no display to open
    code = "import gymnasium, edgerun.envs; gymnasium.make('edgerun/PointMaze-v0').reset(seed=0)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "PointMaze: MuJoCo could not render offscreen with MUJOCO_GL='glfw'" in result.stderr
    assert "libegl1 libegl-mesa0 libgl1-mesa-dri" in result.stderr


def test_render_states_draws_what_the_env_shows_and_keeps_its_state(env: PointMazeEnv) -> None:
    obs, _ = env.reset(seed=4)
    later = [env.step(np.array([0.3, -0.2]))[0] for _ in range(3)]
    frames = env.render_states(np.stack([obs["proprio"], later[-1]["proprio"]]))
    np.testing.assert_array_equal(frames[0], obs["pixels"])
    np.testing.assert_array_equal(frames[1], later[-1]["pixels"])
    np.testing.assert_array_equal(env.render(), later[-1]["pixels"])  # the env is where it was


@pytest.mark.parametrize("objective", ["free_space", "paper"])
def test_perfect_model_ceiling_runs_the_protocol_with_either_objective(objective: str) -> None:
    """The free-space objective with the shipped map of the maze (checkpoints/dino_wm_pointmaze/free_space.npz)."""
    from edgerun.evaluation.dino_wm.ceiling import perfect_model_ceiling
    from edgerun.evaluation.dino_wm.evaluate import PlannerSettings
    from edgerun.pipelines.dino_wm.plan import MPC_PAPER, CEMConfig
    from edgerun.pipelines.dino_wm.policy import Objective

    quick = PlannerSettings(CEMConfig(horizon=5, samples=20, topk=4, iterations=2), MPC_PAPER, Objective(objective))
    result = perfect_model_ceiling(POINT_MAZE_ID, episodes=2, seed=0, settings=quick, max_steps=10)
    assert result["episodes"] == 2 and result["steps_per_episode"] == 10 and result["cost"] == "true states"
    assert result["objective"]["kind"] == objective and result["plans"] == 2 * 1  # 10 steps: one 25-step plan each
    assert 0.0 <= result["success_rate"] <= 1.0
    assert len(result["failures"]) == round((1 - result["success_rate"]) * 2)
