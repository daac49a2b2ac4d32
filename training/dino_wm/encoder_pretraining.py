"""Stage 2: the offline encoder, a masked denoising autoencoder on the env's own frames, then frozen
(why this objective: the package docstring of :mod:`edgerun.training.dino_wm.train`)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from edgerun.models.dino_wm.config import EncoderConfig
from edgerun.models.dino_wm.encoder import DinoV2Encoder, load_official_state_dict
from edgerun.models.torch_files import read_torch_file
from edgerun.training.dino_wm.config import STATE_FORMAT, TrainConfig
from edgerun.training.dino_wm.data import TrainingData
from edgerun.training.kit import load_state, save_state, set_lr, tail_mean, warmup_cosine


def images_to_input(frames: Tensor) -> Tensor:
    """uint8 (B, S, S, 3) -> float (B, 3, S, S) in [-1, 1] (DINO-WM's mean 0.5 / std 0.5 normalisation)."""
    return frames.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class PatchDecoder(nn.Module):
    """(B, P, D) tokens -> (B, 3, S, S) image, each token painting only its own patch (a per-token MLP).

    The pretraining head; thrown away once the encoder is frozen. Being per token, it cannot move
    information between patches, so the encoder's token of a patch must describe that patch.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.patch = config.patch_size
        self.grid = config.input_size // config.patch_size
        self.mlp = nn.Sequential(
            nn.Linear(config.embed_dim, 4 * config.embed_dim), nn.GELU(), nn.Linear(4 * config.embed_dim, 3 * self.patch**2)
        )

    def forward(self, tokens: Tensor) -> Tensor:
        B, g, p = tokens.shape[0], self.grid, self.patch
        x = self.mlp(tokens).reshape(B, g, g, p, p, 3)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(B, 3, g * p, g * p)


def encode_masked(encoder: DinoV2Encoder, images: Tensor, mask: Tensor) -> Tensor:
    """The encoder's forward with ``mask`` (B, N) True tokens replaced by ``mask_token``: (B, N, D).

    Uses ``pos_embed`` itself (not the interpolated, gradient-free buffer), so it is learned: the
    pretraining encoder runs at its stored grid (``img_size == input_size``).
    """
    x = encoder.patch_embed(images)
    x = torch.where(mask.unsqueeze(-1), encoder.mask_token.to(x.dtype).unsqueeze(0), x)
    x = torch.cat((encoder.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + encoder.pos_embed
    for block in encoder.blocks:
        x = block(x)
    return encoder.norm(x)[:, 1:]


def colour_weights(frames: np.ndarray, levels: int = 8, max_weight: float = 50.0, max_frames: int = 5000) -> Tensor:
    """Per-colour pixel weights for the reconstruction loss: ``(levels ** 3,)``, indexed by :func:`colour_bins`.

    Inverse square root of each colour bin's frequency over (up to ``max_frames``) training frames,
    scaled so the average pixel weighs 1, capped at ``max_weight``: class balancing for pixels. On Wall
    the black background weighs about 0.7, the wall 4, the dot about 20 and its anti-aliased rim (which
    carries its sub-pixel position) up to the cap. Without it the dot is 0.2 % of the pixels and the
    autoencoder learns the walls long before it learns where the dot is.
    """
    flat = frames.reshape(-1, *frames.shape[-3:])
    step = max(1, len(flat) // max_frames)
    counts = np.bincount(colour_bins(torch.from_numpy(flat[::step]), levels).flatten().numpy(), minlength=levels**3)
    freq = counts / counts.sum()
    weights = np.zeros(levels**3)
    seen = counts > 0
    weights[seen] = freq[seen] ** -0.5
    weights /= (freq * weights).sum()
    return torch.from_numpy(np.minimum(weights, max_weight)).float()


def colour_bins(frames: Tensor, levels: int = 8) -> Tensor:
    """uint8 (..., 3) RGB -> (...) int64 colour bin, ``levels`` per channel."""
    q = frames.long() * levels // 256
    return (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]


def pretrain_encoder(config: TrainConfig, data: TrainingData, out: Path, progress: bool) -> tuple[DinoV2Encoder, dict]:
    """Stage 2: masked denoising autoencoder on the training frames; returns the frozen encoder and
    its log (``losses``, ``seconds``). Resumes from ``out/encoder-latest.pt``."""
    enc_config = config.model.encoder
    encoder = DinoV2Encoder(enc_config)
    if config.encoder_state_dict:
        state = read_torch_file(config.encoder_state_dict, "DINOv2 state dict")
        load_official_state_dict(encoder, state)
        return encoder.requires_grad_(False).eval(), {"losses": [], "seconds": 0.0, "source": str(config.encoder_state_dict)}
    if enc_config.img_size != enc_config.input_size:
        raise ValueError(f"encoder pretraining runs at the stored grid: img_size {enc_config.img_size} != input_size {enc_config.input_size}")
    torch.manual_seed(config.seed)
    decoder = PatchDecoder(enc_config)
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=config.encoder_lr)
    path = out / "encoder-latest.pt"
    state = load_state(path, STATE_FORMAT, expect={"stage": "encoder", "encoder_config": asdict(enc_config)})
    step, losses, seconds = 0, [], 0.0
    if state is not None:
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses, seconds = int(state["step"]), list(state["losses"]), float(state["seconds"])

    frames = torch.from_numpy(data.frames[data.train_episodes].reshape(-1, *data.frames.shape[2:]))
    N = encoder.config.num_patches
    weights = colour_weights(data.frames[data.train_episodes]) if config.colour_balance else None

    def save() -> None:
        save_state(path, STATE_FORMAT, {
            "stage": "encoder", "step": step,
            "encoder_config": asdict(enc_config), "encoder": encoder.state_dict(), "decoder": decoder.state_dict(),
            "optimizer": optimizer.state_dict(), "losses": losses, "seconds": seconds,
        })  # fmt: skip

    encoder.train()
    bar = tqdm(total=config.encoder_steps, initial=step, desc="encoder (masked AE)", unit="step", disable=not progress)
    started = time.perf_counter()
    while step < config.encoder_steps:
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)  # resume-exact batches and masks
        index = torch.randint(0, frames.shape[0], (config.encoder_batch,), generator=gen)
        batch = frames[index]
        images = images_to_input(batch)
        mask = torch.rand(config.encoder_batch, N, generator=gen) < config.mask_ratio
        set_lr(optimizer, warmup_cosine(step, config.encoder_steps, config.encoder_lr, config.warmup_steps, floor=0.1))
        error = (decoder(encode_masked(encoder, images, mask)) - images).square().mean(1)  # (B, S, S)
        loss = (error * weights[colour_bins(batch)]).mean() if weights is not None else error.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{tail_mean(losses, 50):.5f}")
        if step % config.checkpoint_every == 0 or step == config.encoder_steps:
            seconds += time.perf_counter() - started
            started = time.perf_counter()
            save()
    bar.close()
    encoder.set_input_size(enc_config.input_size)  # refresh the buffer from the learned pos_embed
    return encoder.requires_grad_(False).eval(), {"losses": losses, "seconds": seconds}


@torch.no_grad()
def encode_frames(encoder: DinoV2Encoder, frames: np.ndarray, batch: int = 512, progress: bool = False) -> Tensor:
    """uint8 (N, T, S, S, 3) -> float32 (N, T, P, D) latents of the frozen encoder (frames resized to its
    input size as ``DinoWorldModel.encode`` does, e.g. 64 -> 196 for the official ViT-S/14)."""
    N, T = frames.shape[:2]
    flat = frames.reshape(N * T, *frames.shape[2:])
    out = torch.empty(N * T, encoder.num_patches, encoder.config.embed_dim)
    size = encoder.input_size
    for start in tqdm(range(0, N * T, batch), desc="latents", unit="batch", disable=not progress):
        images = images_to_input(torch.from_numpy(flat[start : start + batch]))
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start : start + batch] = encoder(images)
    return out.reshape(N, T, *out.shape[1:])


def probe_position(latents: Tensor, proprio: np.ndarray, train: np.ndarray, val: np.ndarray, max_frames: int = 6000) -> dict:
    """Ridge regression from a frame's flattened latent to ``proprio`` (the position: its x, y), fitted on
    training episodes, scored on held-out ones: how well the frozen latent still tells where the agent is.

    Returns ``rmse`` in proprio units (arena units for Wall, metres for PointMaze) and ``r2``; None when
    there are no held-out episodes.
    """
    if len(val) == 0:
        return {"rmse": None, "r2": None}
    gen = torch.Generator().manual_seed(0)

    def rows(episodes: np.ndarray) -> tuple[Tensor, Tensor]:
        x = latents[episodes].flatten(0, 1).flatten(1)
        y = torch.from_numpy(proprio[episodes].reshape(-1, proprio.shape[-1])).float()
        pick = torch.randperm(x.shape[0], generator=gen)[:max_frames]
        return x[pick].double(), y[pick].double()

    x, y = rows(train)
    x_val, y_val = rows(val)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, x_val = (x - mean) / std, (x_val - mean) / std
    x = torch.cat((x, torch.ones(x.shape[0], 1, dtype=x.dtype)), 1)
    x_val = torch.cat((x_val, torch.ones(x_val.shape[0], 1, dtype=x.dtype)), 1)
    ridge = 1.0 * torch.eye(x.shape[1], dtype=x.dtype)
    weights = torch.linalg.solve(x.T @ x + ridge, x.T @ y)
    error = x_val @ weights - y_val
    rmse = float(error.square().mean().sqrt())
    r2 = float(1 - error.square().sum() / (y_val - y_val.mean(0)).square().sum())
    return {"rmse": rmse, "r2": r2}

