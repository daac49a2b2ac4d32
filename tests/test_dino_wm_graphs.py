"""The DINO-WM closed-loop graphs: each resolves, and its planner's shipped checkpoint fits its env."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import pytest

import edgerun.envs  # noqa: F401  (registers the edgerun/... env ids)
from edgerun.envs import env_name
from edgerun.models.dino_wm.checkpoint import load_checkpoint
from edgerun.pipelines.dino_wm.plan import CEM_PRESETS
from edgerun.runtime.graph import load_graph

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["dino_wm_wall", "dino_wm_pointmaze"])
def test_graph_planner_checkpoint_is_shipped_and_fits_the_env(name: str) -> None:
    graph = load_graph(REPO / "graphs" / f"{name}.yaml")
    env_id = graph.nodes["env"].spec.params["env_id"]
    params = graph.nodes["planner"].spec.params
    checkpoint = REPO / params["checkpoint"]
    assert checkpoint.is_file(), f"{checkpoint} is not shipped"
    _, config, extra = load_checkpoint(checkpoint)
    assert extra["env"] == env_id
    assert params["preset"] in CEM_PRESETS and params["preset"] == env_name(env_id)
    env = gymnasium.make(env_id)
    try:
        assert env.observation_space["proprio"].shape == (config.predictor.proprio_dim,)
        assert env.action_space.shape == (config.predictor.action_dim,)
        assert env.observation_space["pixels"].shape[0] == config.encoder.input_size
    finally:
        env.close()
