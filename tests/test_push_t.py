"""Push-T (gym-pusht's simulation with DINO-WM's relative actions, goals and success)."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from edgerun.envs import PUSH_T_ID
from edgerun.envs.collect import collect, load_dataset
from edgerun.envs.push_t import ACTION_SCALE, SUCCESS_ANGLE, SUCCESS_POSITION_PX, PushTEnv, pose_distance

START = np.array([100.0, 100.0, 300.0, 300.0, 0.5])


@pytest.fixture
def env() -> PushTEnv:
    env = gymnasium.make(PUSH_T_ID)
    yield env.unwrapped
    env.close()


def test_push_t_passes_gymnasium_env_checker_without_warnings(env: PushTEnv) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)


def test_actions_are_relative_pd_targets(env: PushTEnv) -> None:
    env.reset(seed=0, options={"start": START, "goal": START})
    obs, *_ = env.step(np.array([0.5, 0.0]))  # PD target 50 px to the right of the pusher
    assert obs["proprio"][0] > START[0] + 10 and abs(obs["proprio"][1] - START[1]) < 2  # moved right, not down
    assert obs["proprio"][2] > 0  # the proprio carries the pusher's velocity
    env.reset(seed=0, options={"start": START, "goal": START})
    for _ in range(20):
        obs, *_ = env.step(np.zeros(2))
    np.testing.assert_allclose(obs["proprio"][:2], START[:2], atol=1.0)  # a = 0 holds the pusher still
    assert ACTION_SCALE == 100.0  # DINO-WM's action_scale
    # the reference: gym-pusht's own step given the absolute target agent + 100 a reaches the same place
    a = np.array([0.3, -0.2])
    env.reset(seed=0, options={"start": START, "goal": START})
    wrapped, *_ = env.step(a)
    env.reset(seed=0, options={"start": START, "goal": START})
    env._sim.step(START[:2] + ACTION_SCALE * a)
    np.testing.assert_allclose(wrapped["proprio"][:2], np.asarray(env._sim.agent.position), atol=1e-4)
    assert wrapped["proprio"][0] > START[0] + 3 and wrapped["proprio"][1] < START[1] - 2


def test_goal_is_an_image_of_a_pushed_state_and_success_is_dino_wm_s(env: PushTEnv) -> None:
    obs, info = env.reset(seed=3)
    assert info["goal_pixels"].shape == obs["pixels"].shape == (64, 64, 3)
    assert not np.array_equal(info["goal_pixels"], obs["pixels"])
    assert not info["is_success"]
    np.testing.assert_allclose(obs["proprio"][:2], info["state"][:2], atol=1e-3)
    position, _ = pose_distance(info["state"], info["goal_state"])
    assert position == pytest.approx(info["distance"])
    # pinned goal = start, then a step that leaves the block alone: within DINO-WM's thresholds
    obs, info = env.reset(seed=0, options={"start": START, "goal": START})
    np.testing.assert_allclose(info["state"], START, atol=1e-6)  # a pinned state is the state
    _, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert info["is_success"] and reward == 1.0 and not terminated and not truncated
    assert info["distance"] < SUCCESS_POSITION_PX and info["angle_error"] < SUCCESS_ANGLE


def test_pose_distance_wraps_the_angle() -> None:
    a = np.array([0, 0, 0, 0, 0.05])
    b = np.array([3, 4, 0, 0, 2 * np.pi - 0.05])
    position, angle = pose_distance(a, b)
    assert position == pytest.approx(5.0) and angle == pytest.approx(0.1)


def test_reset_is_seeded_and_refuses_bad_options(env: PushTEnv) -> None:
    _, info_a = env.reset(seed=11)
    _, info_b = env.reset(seed=11)
    np.testing.assert_array_equal(info_a["goal_state"], info_b["goal_state"])
    np.testing.assert_array_equal(info_a["goal_pixels"], info_b["goal_pixels"])
    with pytest.raises(ValueError, match="unknown"):
        env.reset(options={"door_y": 0.3})
    with pytest.raises(ValueError, match="on the 512 px table"):
        env.reset(options={"start": [600, 0, 100, 100, 0]})
    with pytest.raises(ValueError, match=r"expected \(agent x, y, block x, y, angle\)"):
        env.reset(options={"goal": [1, 2, 3]})


def test_collect_writes_push_t_episodes(tmp_path: Path) -> None:
    result = collect(PUSH_T_ID, episodes=2, steps=6, seed=0, out_path=tmp_path / "pt", policy="random", progress=False)
    data = load_dataset(result.path)
    assert data.frames.shape == (2, 7, 64, 64, 3) and data.proprio.shape == (2, 7, 4)
    assert data.goal_frames.shape == (2, 64, 64, 3)
