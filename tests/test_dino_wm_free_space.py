"""The free-space objective, the evaluation protocol's episodes and scoring, with the env's own dynamics."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium
import numpy as np
import pytest
import torch

from edgerun.envs import POINT_MAZE_ID, WALL_ID
from edgerun.envs.point_maze import in_corridor
from edgerun.errors import CheckpointError
from edgerun.evaluation.dino_wm.ceiling import ACTION_STD, SimulatorPlanning, perfect_model_ceiling
from edgerun.evaluation.dino_wm.episodes import Episode, official_episodes
from edgerun.evaluation.dino_wm.evaluate import PlannerSettings, planner_settings, run_episode
from edgerun.pipelines.dino_wm.free_space import FreeSpaceMap
from edgerun.pipelines.dino_wm.plan import MPC_PAPER, CEMConfig
from edgerun.pipelines.dino_wm.policy import MPCPolicy, Objective
from edgerun.training.dino_wm.free_space import free_space_of


@pytest.fixture(scope="module")
def wall_map() -> FreeSpaceMap:
    """Every free place of the Wall layout visited, as plenty of data would (the map never sees the layout)."""
    world = gymnasium.make(WALL_ID).unwrapped
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 201), np.linspace(0, 1, 201)), axis=-1).reshape(-1, 2)
    free = [p for p in grid if world.layout.agent_radius <= p.min() and p.max() <= 1 - world.layout.agent_radius
            and not world.layout.blocked(p)]  # fmt: skip
    return free_space_of(WALL_ID, np.array(free))


def test_the_cost_to_go_leads_through_the_door_and_meets_the_straight_line_at_the_goal(wall_map):
    world = gymnasium.make(WALL_ID).unwrapped
    goal = np.array([0.8, 0.2])
    cost_to_go = wall_map.cost_to_go(goal)
    behind_the_wall = np.array([0.44, 0.2])  # the dot pressed against the wall, at the goal's height
    # the shortest way: to the door's near corner, across (0.10), then to the goal
    corner_y = world.layout.door_y - world.layout.door_height / 2 + world.layout.agent_radius
    left, right = np.array([0.45, corner_y]), np.array([0.55, corner_y])
    shortest = np.linalg.norm(left - behind_the_wall) + 0.10 + np.linalg.norm(goal - right)
    geodesic = float(cost_to_go(behind_the_wall))
    assert shortest - 0.02 <= geodesic <= shortest * 1.1, (geodesic, shortest)  # 8-neighbour grid: at most ~8 % over
    assert geodesic > np.linalg.norm(goal - behind_the_wall) + 0.3
    near = goal + np.array([0.013, -0.007])
    assert float(cost_to_go(near)) == pytest.approx(np.linalg.norm(near - goal))  # exact where it matters
    samples = np.random.default_rng(0).uniform(0, 1, size=(500, 2))
    assert (cost_to_go(samples) >= np.linalg.norm(samples - goal, axis=-1) - 1e-12).all()


def test_a_map_is_saved_and_read_back_and_a_bad_file_is_named(wall_map, tmp_path):
    wall_map.save(tmp_path / "free_space.npz")
    again = FreeSpaceMap.load(tmp_path / "free_space.npz")
    np.testing.assert_array_equal(again.free, wall_map.free)
    assert again.cell == wall_map.cell and (again.origin == wall_map.origin).all()
    (tmp_path / "bad.npz").write_bytes(b"not a map")
    with pytest.raises(CheckpointError, match="bad.npz: not a free-space map"):
        FreeSpaceMap.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="boolean occupancy grid with a free cell"):
        FreeSpaceMap(np.zeros(2), 0.1, np.zeros((3, 3), dtype=bool))


def wall_policy(free_space, objective: Objective, seed: int = 0) -> tuple[gymnasium.Env, MPCPolicy]:
    env = gymnasium.make(WALL_ID)
    model = SimulatorPlanning(env.unwrapped, np.zeros(2), ACTION_STD["Wall"])
    settings = planner_settings(WALL_ID, "free-space", exact_model=True)
    return env, MPCPolicy(model, settings.planner, settings.mpc, objective, free_space, generator=torch.Generator().manual_seed(seed))


def test_with_a_perfect_model_the_free_space_objective_crosses_where_the_paper_objective_is_pinned(wall_map):
    """Start and goal at the same height either side of the wall, the door 0.33 away: the last-state
    distance is least with the dot pressed against the wall; the distance through free space is not."""
    episode = Episode(seed=3, options={"start": (0.40, 0.80), "goal": (0.62, 0.80)})
    records = {}
    for kind in ("paper", "free_space"):
        env, policy = wall_policy(wall_map, Objective(kind))
        records[kind] = run_episode(env, episode, 100, policy)
    assert not records["paper"]["reached"] and records["paper"]["final_distance"] > 0.15  # pinned at the wall
    assert records["free_space"]["success"] and records["free_space"]["steps_to_goal"] <= 50, records["free_space"]


def test_scores_are_read_from_the_record_after_the_episode():
    """A policy that goes to the goal, stays for a while, then leaves: reached, within the radius at
    the first replan point (step 25), not at the end."""

    class ThereAndAway:
        def __init__(self, world):
            self.world, self.mpc, self.plan_times_s, self.blocks = world, SimpleNamespace(plans=0), [], 0

        def reset(self):
            self.blocks = 0

        def set_goal(self, pixels, proprio):
            self.goal = np.asarray(proprio, dtype=np.float64)

        def act(self, pixels, proprio):  # one env step at a time
            self.blocks += 1
            if self.blocks > 40:  # leave
                return np.array([[0.0, 1.0]])
            step = (self.goal - np.asarray(proprio)) / self.world.max_speed
            return (step / max(1.0, np.linalg.norm(step)))[None]  # straight at it, then still

    env = gymnasium.make(WALL_ID)
    record = run_episode(env, Episode(seed=0, options={"start": (0.70, 0.20), "goal": (0.70, 0.40)}), 100,
                         ThereAndAway(env.unwrapped))  # fmt: skip
    assert record["reached"] and record["success_replan"] and not record["success"]
    assert record["steps_to_goal"] == 3  # 0.2 away at 0.056 a step, radius 0.07: 0.2 - 3 x 0.056 = 0.032
    assert record["steps"] == 100


def test_official_episodes_are_the_official_pairs_and_the_envs_take_them():
    wall = official_episodes(WALL_ID)
    assert [e.seed for e in wall[:3]] == [1, 100, 199] and len(wall) == 50
    # episode 0 of the official sampler (RandomState(1): start x, target x, start y, target y, swap 0.147 < 0.5)
    assert wall[0].options["start"] == pytest.approx((0.7936, 0.1157), abs=1e-4)
    assert wall[0].options["goal"] == pytest.approx((0.2342, 0.3433), abs=1e-4)
    env = gymnasium.make(WALL_ID).unwrapped
    for episode in wall:
        obs, info = env.reset(seed=episode.seed, options=episode.options)
        np.testing.assert_allclose(obs["proprio"], episode.options["start"], atol=1e-6)
        assert env.room_of(np.array(episode.options["start"])) != env.room_of(np.array(episode.options["goal"]))
    maze = official_episodes(POINT_MAZE_ID)
    starts = np.array([e.options["start"] for e in maze])
    assert in_corridor(starts).all() and in_corridor(np.array([e.options["goal"] for e in maze])).all()
    assert (starts[:, 1] > 0.7).any() and (starts[:, 1] < -0.7).any() and (np.abs(starts[:, 1]) < 0.6).any()  # all three arms
    env = gymnasium.make(POINT_MAZE_ID).unwrapped
    obs, _ = env.reset(seed=maze[0].seed, options=maze[0].options)
    np.testing.assert_allclose(obs["proprio"], [*maze[0].options["start"], *maze[0].options["start_velocity"]], atol=1e-5)
    with pytest.raises(ValueError, match="official evaluation has 50 episodes"):
        official_episodes(WALL_ID, 51)


def test_ceiling_episodes_do_not_depend_on_which_ran_before(wall_map):
    quick = PlannerSettings(CEMConfig(horizon=5, samples=24, topk=4, iterations=2), MPC_PAPER, Objective())
    two = perfect_model_ceiling(WALL_ID, 2, seed=7, settings=quick, free_space=wall_map, max_steps=25)
    three = perfect_model_ceiling(WALL_ID, 3, seed=7, settings=quick, free_space=wall_map, max_steps=25)
    assert two["episode_records"] == three["episode_records"][:2]
    official = perfect_model_ceiling(WALL_ID, 1, settings=quick, free_space=wall_map, max_steps=25, official=True)
    assert official["episode_records"][0]["seed"] == 1 and official["official_episodes"]
