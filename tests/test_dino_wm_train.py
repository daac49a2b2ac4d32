"""DINO-WM training and evaluation on the Wall env: a few-second run on a tiny collected dataset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

import edgerun.envs  # noqa: F401  (registers edgerun/Wall-v0)
from edgerun.engines.trt_cache import sha256_file
from edgerun.envs.collect import load_dataset
from edgerun.errors import CheckpointError
from edgerun.evaluation.dino_wm.evaluate import RESULT_KEYS, PlannerSettings, evaluate
from edgerun.models.dino_wm.checkpoint import load_checkpoint
from edgerun.models.dino_wm.config import (
    WALL_CPU,
    EncoderConfig,
    PredictorConfig,
    WorldModelConfig,
)
from edgerun.models.dino_wm.world_model import DinoWorldModel, Latent
from edgerun.pipelines.dino_wm.plan import MPC_PAPER, CEMConfig, MPCConfig
from edgerun.pipelines.dino_wm.free_space import FILE_NAME as FREE_SPACE_FILE
from edgerun.pipelines.dino_wm.free_space import FreeSpaceMap
from edgerun.pipelines.dino_wm.policy import PAPER_OBJECTIVE, Objective
from edgerun.training.dino_wm import encoder_pretraining, init_from, predictor
from edgerun.training.dino_wm.config import TrainConfig
from edgerun.training.dino_wm.free_space import free_space_of
from edgerun.training.dino_wm.data import load_training_data
from edgerun.training.dino_wm.predictor import fold_proprio_normalisation, latent_losses
from edgerun.training.dino_wm.train import train, train_main
from edgerun.training.kit import TrainResult

WALL_ID = "edgerun/Wall-v0"
TINY_ENCODER = EncoderConfig(patch_size=16, embed_dim=32, depth=1, num_heads=2, img_size=64, input_size=64, layerscale_init=0.1)
TINY = WorldModelConfig(
    encoder=TINY_ENCODER,
    predictor=PredictorConfig(depth=1, heads=2, head_dim=8, mlp_dim=32, num_patches=16, visual_dim=32,
                              proprio_dim=2, action_dim=2, frameskip=5, history=1, emb_dim=4),
)


def tiny_config(out: Path, **changes) -> TrainConfig:
    config = TrainConfig(
        out=str(out), collect_episodes=6, collect_steps=20, model=TINY, encoder_steps=4, encoder_batch=8,
        predictor_steps=6, batch=8, warmup_steps=2, checkpoint_every=3, threads=1, command="pytest",
    )  # fmt: skip
    return replace(config, **changes)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(tiny_config(tmp_path_factory.mktemp("dino_wm_train")), progress=False)


def test_training_writes_checkpoint_loss_curve_and_manifest(trained: TrainResult) -> None:
    assert trained.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads(trained.manifest.read_text())
    for key in ("command", "seed", "data", "steps", "final_losses", "metrics", "checkpoint", "created_at"):
        assert key in manifest, key
    assert manifest["checkpoint"]["sha256"] == sha256_file(trained.checkpoint)
    assert manifest["data"]["episodes"] == 2 * 6  # collect_episodes per policy: mixed and random
    for data_file in manifest["data"]["files"]:
        assert data_file["sha256"] == sha256_file(data_file["path"]) and data_file["episodes"] == 6
    assert manifest["steps"] == {"encoder": 4, "predictor": 6}
    assert np.isfinite(manifest["final_losses"]["train"]["loss"])

    model, config, extra = load_checkpoint(trained.checkpoint)
    assert config == TINY and len(extra["action_mean"]) == 2 and len(extra["action_std"]) == 2
    assert not any(p.requires_grad for p in model.encoder.parameters())
    state = torch.load(trained.checkpoint.parent / "ckpt-latest.pt", weights_only=True)
    assert state["step"] == 6 and "optimizer" in state and "model" in state
    # the free-space objective's map beside the model: exactly the cells the training data visited
    free_space = FreeSpaceMap.load(trained.checkpoint.with_name(FREE_SPACE_FILE))
    positions = np.concatenate([load_dataset(f["path"]).proprio for f in manifest["data"]["files"]])
    np.testing.assert_array_equal(free_space.free, free_space_of(WALL_ID, positions).free)
    assert 0 < free_space.free.sum() < free_space.free.size


def test_resume_after_an_interruption_continues_from_the_saved_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(tmp_path)
    calls = {"train": 0, "encoder": 0}
    real_losses, real_masked = predictor.latent_losses, encoder_pretraining.encode_masked

    def interrupted(model, *batch):
        if model.training:
            calls["train"] += 1
            if calls["train"] == 5:  # after the save at step 3
                raise KeyboardInterrupt
        return real_losses(model, *batch)

    monkeypatch.setattr(predictor, "latent_losses", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    assert torch.load(tmp_path / "ckpt-latest.pt", weights_only=True)["step"] == 3

    calls["train"] = 0

    def counting(model, *batch):
        calls["train"] += model.training
        return real_losses(model, *batch)

    def counting_masked(*args):
        calls["encoder"] += 1
        return real_masked(*args)

    monkeypatch.setattr(predictor, "latent_losses", counting)
    monkeypatch.setattr(encoder_pretraining, "encode_masked", counting_masked)
    result = train(config, progress=False)
    assert calls == {"train": 3, "encoder": 0}  # steps 4..6 only; the finished encoder is not retrained
    assert torch.load(tmp_path / "ckpt-latest.pt", weights_only=True)["step"] == 6
    assert result.manifest_data["steps"]["predictor"] == 6


def test_train_main_refuses_to_overwrite_a_run_without_resume(trained: TrainResult, capsys) -> None:
    assert train_main(WALL_ID, str(trained.checkpoint.parent), steps=1, resume=False, seed=0) == 2
    assert "--resume" in capsys.readouterr().err


def test_latent_loss_is_the_models_teacher_forced_training_loss() -> None:
    torch.manual_seed(0)
    model = DinoWorldModel(TINY).eval()
    images = torch.rand(3, 2, 3, 64, 64) * 2 - 1
    proprio, actions = torch.randn(3, 2, 2), torch.randn(3, 2, 10)
    expected = model.training_loss(images, proprio, actions)
    visual = model.encoder(images.flatten(0, 1)).reshape(3, 2, 16, 32)
    got = latent_losses(model, visual, proprio, actions)
    for key in ("loss", "visual", "proprio"):
        torch.testing.assert_close(got[key], expected[key])


def test_rollout_loss_scores_the_planners_open_loop_rollout() -> None:
    """rollout_blocks K > 1: the loss is the MSE of exactly what planning predicts (world_model.rollout)."""
    torch.manual_seed(0)
    model = DinoWorldModel(TINY).eval()
    K = 3
    visual, proprio, blocks = torch.randn(2, 1 + K, 16, 32), torch.randn(2, 1 + K, 2), torch.randn(2, 1 + K, 10)
    got = latent_losses(model, visual, proprio, blocks)
    with torch.no_grad():
        predicted = model.rollout(Latent(visual[:, :1], model.proprio_encoder(proprio[:, :1])), blocks[:, :K])
    torch.testing.assert_close(got["visual"], torch.nn.functional.mse_loss(predicted.visual, visual[:, 1:]))
    D, E = 32, 4  # the loss is the MSE over every visual and proprio dim of every predicted patch token
    torch.testing.assert_close(got["loss"], (D * got["visual"] + E * got["proprio"]) / (D + E))


def test_rollout_training_resumes_only_with_the_same_rollout_blocks(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", rollout_blocks=2, predictor_steps=3)
    result = train(config, progress=False)
    assert result.manifest_data["train_config"]["rollout_blocks"] == 2
    with pytest.raises(ValueError, match="rollout_blocks=2"):
        train(replace(config, rollout_blocks=1, predictor_steps=4), progress=False)
    with pytest.raises(ValueError, match="rollout_blocks: expected >= 1"):
        train(replace(config, out=str(tmp_path / "other"), rollout_blocks=0), progress=False)


def test_folded_proprio_normalisation_takes_raw_proprio() -> None:
    torch.manual_seed(0)
    model = DinoWorldModel(TINY)
    mean, std = torch.tensor([0.5, 0.4]), torch.tensor([0.2, 0.3])
    raw = torch.rand(4, 1, 2)
    before = model.proprio_encoder((raw - mean) / std)
    fold_proprio_normalisation(model, mean, std)
    torch.testing.assert_close(model.proprio_encoder(raw), before)



def test_renormalised_step_encoders_give_the_same_embeddings_for_new_statistics() -> None:
    torch.manual_seed(0)
    model = DinoWorldModel(TINY)
    fold_proprio_normalisation(model, torch.tensor([0.5, 0.4]), torch.tensor([0.2, 0.3]))  # as shipped: raw proprio in
    old_action = (torch.tensor([0.1, -0.2]), torch.tensor([0.7, 0.9]))
    new_action, new_proprio = (torch.tensor([-0.3, 0.2]), torch.tensor([1.1, 0.4])), (torch.tensor([0.3, 0.6]), torch.tensor([0.1, 0.5]))
    raw_proprio, raw_actions = torch.rand(4, 3, 2), torch.randn(4, 3, 5, 2)  # 5 steps of 2-d actions per block

    def blocks(stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return ((raw_actions - stats[0]) / stats[1]).flatten(-2)  # frame-major, as action_blocks lays them out

    before = model.proprio_encoder(raw_proprio), model.action_encoder(blocks(old_action))
    init_from.renormalise_step_encoders(model, old_action, new_action, new_proprio)
    torch.testing.assert_close(model.proprio_encoder((raw_proprio - new_proprio[0]) / new_proprio[1]), before[0])
    torch.testing.assert_close(model.action_encoder(blocks(new_action)), before[1])


def test_fine_tuning_a_model_pt_keeps_its_encoder_and_starts_from_its_predictor(
    trained: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--init-from model.pt on other data: no encoder pretraining, the same frozen encoder, the first
    step's loss is the shipped model's loss on that data, and the earlier stage heads the history."""
    shipped, _, _ = load_checkpoint(trained.checkpoint)
    monkeypatch.setattr(encoder_pretraining, "encode_masked", lambda *args: pytest.fail("pretrained the encoder again"))
    first_losses: list[float] = []
    real_losses = predictor.latent_losses

    def recording(model, *batch):
        if model.training and not first_losses:
            with torch.no_grad(), torch.random.fork_rng():  # the same dropout draws as the run's own call
                first_losses.append(float(real_losses(start_model, *batch)["loss"]))
            losses = real_losses(model, *batch)
            first_losses.append(losses["loss"].item())
            return losses
        return real_losses(model, *batch)

    monkeypatch.setattr(predictor, "latent_losses", recording)
    config = tiny_config(tmp_path / "tuned", seed=5, predictor_steps=2, init_from=str(trained.checkpoint))
    data = load_training_data(config, Path(config.out), progress=False)  # seed 5: other episodes, other statistics
    start_model = DinoWorldModel(TINY).train()
    start_model.load_state_dict(shipped.state_dict())
    action_stats = predictor._stats(data.actions[data.train_episodes])
    proprio_stats = predictor._stats(data.proprio[data.train_episodes])
    shipped_extra = load_checkpoint(trained.checkpoint)[2]
    assert not torch.allclose(action_stats[0], torch.tensor(shipped_extra["action_mean"]))
    init_from.renormalise_step_encoders(
        start_model, (torch.tensor(shipped_extra["action_mean"]), torch.tensor(shipped_extra["action_std"])), action_stats, proprio_stats
    )
    result = train(config, progress=False)

    tuned, _, extra = load_checkpoint(result.checkpoint)
    for key, value in shipped.encoder.state_dict().items():
        torch.testing.assert_close(tuned.encoder.state_dict()[key], value)
    assert result.manifest_data["steps"] == {"encoder": 0, "predictor": 2}
    assert "taken from" in extra["encoder_pretraining"] and str(trained.checkpoint) in extra["encoder_pretraining"]
    torch.testing.assert_close(torch.tensor(extra["action_mean"]), action_stats[0])
    assert first_losses[1] == pytest.approx(first_losses[0], rel=1e-5)  # step 1 starts from the shipped weights
    history = result.manifest_data["training_history"]
    assert [entry["checkpoint_sha256"] for entry in history] == [sha256_file(trained.checkpoint), result.manifest_data["checkpoint"]["sha256"]]
    assert history[0]["steps"] == {"encoder": 4, "predictor": 6}


def test_init_from_refuses_a_model_of_another_config(trained: TrainResult, tmp_path: Path) -> None:
    from edgerun.models.dino_wm.config import SMALL_WALL

    config = tiny_config(tmp_path / "other", model=SMALL_WALL, init_from=str(trained.checkpoint))
    with pytest.raises(ValueError, match="holds a model of another config"):
        init_from.read_init(config)
    with pytest.raises(CheckpointError, match="missing.pt: no such file"):
        init_from.read_init(replace(config, init_from=str(tmp_path / "missing.pt")))
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pt: not a readable"):
        init_from.read_init(replace(config, init_from=str(tmp_path / "notes.pt")))
    (tmp_path / "empty.pt").touch()
    with pytest.raises(CheckpointError, match=r"empty.pt: empty file \(0 bytes\)"):
        init_from.read_init(replace(config, init_from=str(tmp_path / "empty.pt")))
    assert not (tmp_path / "other").exists()


class WatchedInfo(dict):
    """An info dict that reports every read of ``is_success`` to its wrapper."""

    def __init__(self, data: dict, watch: SuccessWatch) -> None:
        super().__init__(data)
        self.watch = watch

    def __getitem__(self, key):
        if key == "is_success":
            self.watch.read()
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key == "is_success":
            self.watch.read()
        return super().get(key, default)


class SuccessWatch(gymnasium.Wrapper):
    """Counts reads of ``info["is_success"]`` made while an episode is still running."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.running = False
        self.early_reads = 0
        self.final_reads = 0
        self.episodes = 0

    def read(self) -> None:
        if self.running:
            self.early_reads += 1
        else:
            self.final_reads += 1

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.running = True
        self.episodes += 1
        return obs, WatchedInfo(info, self)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.running = not (terminated or truncated)
        return obs, reward, terminated, truncated, WatchedInfo(info, self)


def test_evaluate_scores_at_the_end_and_the_planner_never_sees_success(trained: TrainResult) -> None:
    watches: list[SuccessWatch] = []

    def make_env(env_id: str) -> gymnasium.Env:
        watches.append(SuccessWatch(gymnasium.make(env_id, max_episode_steps=10)))
        return watches[-1]

    result = evaluate(
        trained.checkpoint, WALL_ID, episodes=2, seed=0, progress=False, make_env=make_env,
        settings=PlannerSettings(CEMConfig(horizon=2, samples=8, topk=2, iterations=2), MPCConfig(execute_blocks=1), Objective()),
    )  # fmt: skip
    for key in RESULT_KEYS:
        assert key in result, key
    assert result["env"] == WALL_ID and result["episodes"] == 2 and result["seed"] == 0
    assert 0.0 <= result["success_rate"] <= 1.0 and 0.0 <= result["random_success_rate"] <= 1.0
    assert result["plan_time_s_mean"] > 0 and result["plans"] == 4  # 10 steps = 2 blocks, replanned each block
    assert all(record["steps"] == 10 for record in result["episode_records"])  # the fixed budget, always
    (watch,) = watches
    assert watch.episodes == 4  # 2 planned + 2 random baseline
    assert watch.early_reads == 0, "is_success was read while an episode was running"
    assert watch.final_reads == 4  # each episode scored once, after it ended
    json.dumps(result)  # JSON-able


def test_a_budget_other_than_the_registered_time_limit_runs_to_the_budget(trained: TrainResult) -> None:
    assert gymnasium.make(WALL_ID).spec.max_episode_steps == 300  # 12 plans of the paper's 25 steps
    result = evaluate(
        trained.checkpoint, WALL_ID, episodes=1, seed=0, progress=False, max_steps=105,
        settings=PlannerSettings(CEMConfig(horizon=2, samples=8, topk=2, iterations=1), MPCConfig(execute_blocks=2), PAPER_OBJECTIVE),
    )  # fmt: skip
    assert result["steps_per_episode"] == 105
    assert [r["steps"] for r in result["episode_records"] + result["random_episode_records"]] == [105, 105]
    assert result["plans"] == 11  # 21 blocks of 5 steps, 2 blocks a plan


def test_eval_command_takes_a_step_budget_and_writes_json(trained: TrainResult, tmp_path: Path, capsys) -> None:
    from edgerun.cli import main

    out = tmp_path / "eval.json"
    with pytest.raises(SystemExit) as done:
        main(["eval", "dino-wm", "--checkpoint", str(trained.checkpoint), "--episodes", "1", "--max-steps", "5",
              "--json", str(out)])  # fmt: skip
    assert done.value.code == 0
    result = json.loads(out.read_text())
    assert result["steps_per_episode"] == 5 and result["episode_records"][0]["steps"] == 5
    assert result["objective"]["kind"] == "free_space" and not result["official_episodes"]
    with pytest.raises(SystemExit) as done:
        main(["eval", "dino-wm", "--checkpoint", str(trained.checkpoint), "--episodes", "2", "--max-steps", "5",
              "--official-episodes", "--planner", "paper", "--json", str(out)])  # fmt: skip
    assert done.value.code == 0
    result = json.loads(out.read_text())
    assert [r["seed"] for r in result["episode_records"]] == [1, 100]  # the official seeds 99 n + 1
    assert result["objective"]["kind"] == "paper" and result["official_episodes"]
    with pytest.raises(SystemExit) as done:
        main(["eval", "dino-wm", "--checkpoint", str(trained.checkpoint), "--episodes", "1", "--max-steps", "0"])
    assert done.value.code == 2
    assert "max_steps: expected >= 1, got 0" in capsys.readouterr().err


def test_evaluate_in_worker_processes_gives_the_sequential_result(trained: TrainResult) -> None:
    settings = dict(
        episodes=3, seed=5, progress=False, max_steps=10, random_baseline=False,
        settings=PlannerSettings(CEMConfig(horizon=2, samples=8, topk=2, iterations=2), MPCConfig(execute_blocks=1), Objective()),
    )  # fmt: skip
    sequential = evaluate(trained.checkpoint, WALL_ID, **settings)
    parallel = evaluate(trained.checkpoint, WALL_ID, workers=2, **settings)

    def outcome(result: dict) -> list[tuple]:
        return [(r["seed"], r["steps"], r["success"], r["final_distance"]) for r in result["episode_records"]]

    assert outcome(parallel) == outcome(sequential)
    assert len({r["final_distance"] for r in sequential["episode_records"]}) == 3  # three different episodes
    with pytest.raises(ValueError, match="workers: expected >= 1"):
        evaluate(trained.checkpoint, WALL_ID, workers=0, **settings)


def test_official_encoder_weights_skip_pretraining_and_frames_are_resized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgerun.models.dino_wm.config import SMALL_WALL, VIT_TINY
    from edgerun.models.dino_wm.encoder import synthetic_official_state_dict

    weights = synthetic_official_state_dict(VIT_TINY, seed=3)
    torch.save(weights, tmp_path / "dinov2.pth")
    monkeypatch.setattr(encoder_pretraining, "encode_masked", lambda *args: pytest.fail("pretrained an official encoder"))
    config = tiny_config(tmp_path / "run", model=SMALL_WALL, encoder_state_dict=str(tmp_path / "dinov2.pth"), predictor_steps=2)
    result = train(config, progress=False)  # 64 px frames, encoder at 56 px
    model, _, _ = load_checkpoint(result.checkpoint)
    for key, value in weights.items():
        torch.testing.assert_close(model.encoder.state_dict()[key], value)


def test_onnxruntime_backend_scores_like_torch_and_needs_an_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgerun.evaluation.dino_wm.evaluate import exported_cost_engine
    from edgerun.export.cache import cached
    from edgerun.models.dino_wm.checkpoint import save_checkpoint
    from edgerun.pipelines.dino_wm.policy import encode_observation, engine_cost, rollout_cost

    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "wall_cpu.pt", DinoWorldModel(WALL_CPU).eval(), include_encoder=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine = exported_cost_engine(checkpoint)  # a dino-wm-*-cpu entry of this size, checked against torch on export
    assert cached(engine.name, str(checkpoint), tmp_path / "cache" / "edgerun" / "models") is not None  # in the model cache
    model, _, _ = load_checkpoint(checkpoint)
    env = gymnasium.make(WALL_ID)
    obs, info = env.reset(seed=0)
    start = encode_observation(model.eval(), obs["pixels"], obs["proprio"])
    goal = encode_observation(model, info["goal_pixels"], info["goal_proprio"])
    actions = torch.randn(300, 5, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = rollout_cost(model, start, goal)(actions).numpy()
    np.testing.assert_allclose(engine_cost(engine, start, goal)(actions.numpy()), expected, rtol=1e-4, atol=1e-5)

    with pytest.raises(ValueError, match="exported planning cost: pass cost_engine"):
        evaluate(checkpoint, WALL_ID, episodes=1, seed=0, backend="onnxruntime", progress=False)
    with pytest.raises(ValueError, match="on the paper objective"):
        evaluate(checkpoint, WALL_ID, episodes=1, seed=0, backend="onnxruntime", cost_engine=engine, progress=False)
    small = PlannerSettings(CEMConfig(horizon=5, samples=16, topk=4, iterations=2), MPC_PAPER, PAPER_OBJECTIVE)
    runs = [
        evaluate(checkpoint, WALL_ID, episodes=1, seed=0, backend=backend, cost_engine=cost_engine, progress=False,
                 settings=small, max_steps=10, random_baseline=False)
        for backend, cost_engine in (("torch", None), ("onnxruntime", engine))
    ]  # fmt: skip
    assert runs[1]["backend"] == "onnxruntime" and runs[1]["plans"] == runs[0]["plans"] == 1
    assert runs[1]["episode_records"][0]["final_distance"] == pytest.approx(runs[0]["episode_records"][0]["final_distance"], abs=1e-3)
