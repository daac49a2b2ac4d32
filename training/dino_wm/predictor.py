"""Stage 3: the predictor and the action / proprio encoders, on latents of the frozen encoder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from edgerun.models.dino_wm.config import PredictorConfig
from edgerun.models.dino_wm.encoder import DinoV2Encoder
from edgerun.models.dino_wm.world_model import DinoWorldModel, make_tokens, predict_tokens
from edgerun.training.dino_wm.config import STATE_FORMAT, TrainConfig
from edgerun.training.dino_wm.data import TrainingData
from edgerun.training.dino_wm.init_from import InitWeights, renormalise_step_encoders
from edgerun.training.kit import load_state, save_state, set_lr, tail_mean, warmup_cosine


def window_starts(frames_per_episode: int, frameskip: int, length: int) -> int:
    """Valid first frames t of a window of ``length`` frames (t, t + fs, ...): t in [0, T - 1 - (length - 1) fs]."""
    return frames_per_episode - frameskip * (length - 1)


def action_blocks(actions: Tensor, frameskip: int) -> Tensor:
    """(N, T - 1, a) executed env actions -> (N, T - fs, fs * a): block t = actions t .. t + fs - 1, frame-major
    (the layout of ``plan.merge_blocks``)."""
    return actions.unfold(1, frameskip, 1).transpose(-1, -2).flatten(-2)


def latent_losses(model: DinoWorldModel, visual: Tensor, proprio: Tensor, blocks: Tensor) -> dict[str, Tensor]:
    """The predictor's loss on precomputed latents of a window of T >= H + 1 frames.

    visual (B, T, P, D) frozen-encoder tokens, proprio (B, T, p) normalised, blocks (B, T, fs * a)
    normalised (the last frame's block is never used). T = H + 1: :meth:`DinoWorldModel.training_loss`,
    teacher-forced (frames 0..H-1 predict 1..H). T = H + K, K > 1: the first H frames are observed and
    the predictor rolls out K frames open-loop (its predicted visual and proprio tokens fed back with
    the true actions' embeddings, exactly as :func:`~.world_model.rollout` does in planning); MSE on
    the K predicted frames. Targets detached, MSE over the visual and proprio dims.
    """
    H = model.config.predictor.history
    D, E = model.config.predictor.visual_dim, model.config.predictor.emb_dim
    tokens = make_tokens(visual, model.proprio_encoder(proprio), model.action_encoder(blocks))
    if tokens.shape[1] == H + 1:
        predicted = predict_tokens(model.predictor, tokens[:, :-1])
        target = tokens[:, 1:].detach()
    else:
        context, frames = tokens[:, :H], []
        for k in range(tokens.shape[1] - H):
            next_frame = predict_tokens(model.predictor, context)[:, -1:]
            frames.append(next_frame)
            fed_back = torch.cat((next_frame[..., : D + E], tokens[:, H + k : H + k + 1, :, D + E :]), dim=-1)
            context = torch.cat((context, fed_back), dim=1)[:, -H:]
        predicted = torch.cat(frames, dim=1)
        target = tokens[:, H:].detach()
    return {
        "loss": F.mse_loss(predicted[..., : D + E], target[..., : D + E]),
        "visual": F.mse_loss(predicted[..., :D], target[..., :D]),
        "proprio": F.mse_loss(predicted[..., D : D + E], target[..., D : D + E]),
    }


class _Windows:
    """Index -> (visual, proprio, blocks) windows of ``length`` frames spaced by frameskip."""

    def __init__(self, latents: Tensor, proprio: Tensor, blocks: Tensor, episodes: np.ndarray, p: PredictorConfig,
                 length: int) -> None:  # fmt: skip
        self.latents, self.proprio, self.blocks = latents, proprio, blocks
        self.episodes = torch.as_tensor(episodes, dtype=torch.long)
        self.starts = window_starts(latents.shape[1], p.frameskip, length)
        if self.starts < 1:
            raise ValueError(f"episodes of {latents.shape[1]} frames are too short for windows of {length} frames x frameskip {p.frameskip}")
        self.offsets = torch.arange(length) * p.frameskip
        self.count = len(episodes) * self.starts

    def get(self, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        episode = self.episodes[index // self.starts][:, None]
        frame = (index % self.starts)[:, None] + self.offsets  # (B, length)
        visual = self.latents[episode, frame]
        proprio = self.proprio[episode, frame]
        block_frame = frame.clamp(max=self.blocks.shape[1] - 1)  # the last frame's block is unused
        blocks = self.blocks[episode, block_frame]
        blocks[:, -1] = 0.0
        return visual, proprio, blocks


def fold_proprio_normalisation(model: DinoWorldModel, mean: Tensor, std: Tensor) -> None:
    """Make the proprio encoder take raw proprio: W((p - m) / s) + b == (W / s) p + (b - W (m / s))."""
    proj = model.proprio_encoder.proj
    with torch.no_grad():
        weight = proj.weight / std
        proj.bias.sub_((proj.weight * (mean / std)).sum(1))
        proj.weight.copy_(weight)



def _stats(values: np.ndarray) -> tuple[Tensor, Tensor]:
    flat = torch.from_numpy(values.reshape(-1, values.shape[-1])).double()
    return flat.mean(0).float(), flat.std(0).clamp_min(1e-6).float()


def train_predictor(config: TrainConfig, data: TrainingData, encoder: DinoV2Encoder, latents: Tensor, out: Path,
                    progress: bool, init: InitWeights | None = None) -> tuple[DinoWorldModel, dict]:  # fmt: skip
    """Stage 3: the predictor and the action / proprio encoders on precomputed latents. Resumes from
    ``out/ckpt-latest.pt``; a fresh stage starts from ``init`` if given. Returns the model (proprio
    normalisation not yet folded) and its log."""
    p = config.model.predictor
    train_eps, val_eps = data.train_episodes, data.val_episodes
    action_mean, action_std = _stats(data.actions[train_eps])
    proprio_mean, proprio_std = _stats(data.proprio[train_eps])
    blocks = action_blocks((torch.from_numpy(data.actions) - action_mean) / action_std, p.frameskip)
    proprio = (torch.from_numpy(data.proprio) - proprio_mean) / proprio_std
    if config.rollout_blocks < 1:
        raise ValueError(f"rollout_blocks: expected >= 1, got {config.rollout_blocks}")
    length = p.history + config.rollout_blocks
    train_set = _Windows(latents, proprio, blocks, train_eps, p, length)
    val_set = _Windows(latents, proprio, blocks, val_eps, p, length) if len(val_eps) else None

    torch.manual_seed(config.seed)
    model = DinoWorldModel(config.model)
    model.encoder.load_state_dict(encoder.state_dict())
    trainable = [*model.predictor.parameters(), *model.action_encoder.parameters(), *model.proprio_encoder.parameters()]
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    path = out / "ckpt-latest.pt"
    state = load_state(path, STATE_FORMAT, expect={
        "stage": "predictor", "model_config": config.model.to_dict(), "data_arrays_sha256": data.info["arrays_sha256"],
    })  # fmt: skip
    step, seconds = 0, 0.0
    history: dict[str, list[float]] = {"loss": [], "visual": [], "proprio": []}
    val_history: list[list[float]] = []  # [step, loss, visual, proprio]
    if state is not None:
        saved_blocks = state.get("train_config", {}).get("rollout_blocks", 1)
        if saved_blocks != config.rollout_blocks:
            raise ValueError(f"{path}: saved with rollout_blocks={saved_blocks}, this run asks for {config.rollout_blocks}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, seconds = int(state["step"]), float(state["seconds"])
        history = {key: list(values) for key, values in state["history"].items()}
        val_history = [list(row) for row in state["val_history"]]

    elif init is not None:
        model.load_state_dict(init.model.state_dict())
        if init.from_model:
            renormalise_step_encoders(model, (init.action_mean, init.action_std), (action_mean, action_std),
                                      (proprio_mean, proprio_std))  # fmt: skip

    gen_val = torch.Generator().manual_seed(12345)
    val_index = torch.randint(0, val_set.count, (min(1024, val_set.count),), generator=gen_val) if val_set else None

    @torch.no_grad()
    def validate() -> list[float]:
        if val_set is None:
            return []
        model.eval()
        parts = {"loss": 0.0, "visual": 0.0, "proprio": 0.0}
        for chunk in val_index.split(256):
            losses = latent_losses(model, *val_set.get(chunk))
            for key in parts:
                parts[key] += float(losses[key]) * len(chunk) / len(val_index)
        model.train()
        return [float(step), parts["loss"], parts["visual"], parts["proprio"]]

    def save() -> None:
        save_state(path, STATE_FORMAT, {
            "stage": "predictor", "step": step,
            "model_config": config.model.to_dict(), "train_config": config.to_dict(),
            "data_arrays_sha256": data.info["arrays_sha256"], "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "history": history, "val_history": val_history, "seconds": seconds,
            "action_mean": action_mean, "action_std": action_std, "proprio_mean": proprio_mean, "proprio_std": proprio_std,
        })  # fmt: skip

    model.train()
    bar = tqdm(total=config.predictor_steps, initial=step, desc="predictor", unit="step", disable=not progress)
    started = time.perf_counter()
    while step < config.predictor_steps:
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + 7 + step)
        torch.manual_seed(config.seed * 1_000_003 + 11 + step)  # dropout, resume-exact
        index = torch.randint(0, train_set.count, (config.batch,), generator=gen)
        set_lr(optimizer, warmup_cosine(step, config.predictor_steps, config.lr, config.warmup_steps, floor=0.1))
        losses = latent_losses(model, *train_set.get(index))
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        for key in history:
            history[key].append(losses[key].item())
        step += 1
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{tail_mean(history['loss'], 50):.5f}", visual=f"{tail_mean(history['visual'], 50):.5f}",
                            proprio=f"{tail_mean(history['proprio'], 50):.5f}")  # fmt: skip
        if step % config.checkpoint_every == 0 or step == config.predictor_steps:
            if val_set is not None:
                val_history.append(validate())
            seconds += time.perf_counter() - started
            started = time.perf_counter()
            save()
    bar.close()
    model.eval()
    log = {
        "history": history, "val_history": val_history, "seconds": seconds,
        "action_mean": action_mean, "action_std": action_std, "proprio_mean": proprio_mean, "proprio_std": proprio_std,
    }  # fmt: skip
    return model, log

