"""Train DINO-WM (arXiv 2411.04983) on a CPU: an offline-pretrained encoder, frozen, then the predictor.

Three stages, each resumable from files in ``out/``:

1. **Data.** An offline dataset in the ``envs.collect`` layout (v1): given, or collected here with the
   ``mixed`` policy (the expert plus noise plus random steps, so door crossings and off-expert actions
   are both in it).
2. **Encoder.** DINO-WM freezes a pretrained DINOv2 ViT-S/14. Those weights cannot be downloaded here,
   so this stage builds an encoder that can be had offline: a small ViT with exactly the DINOv2
   architecture and parameter names (:class:`~.encoder.DinoV2Encoder`, :data:`WALL_CPU_ENCODER`: patch 8
   at 64 x 64, so 8 x 8 = 64 patch tokens of 64 channels), pretrained *self-supervised* on the env's own
   frames as a **masked denoising autoencoder**: 25 % of the patch tokens are replaced by DINOv2's
   ``mask_token`` (iBOT-style masking, which is what that parameter is for) and every patch of the clean
   image is reconstructed from its own output token by a small per-token MLP. Why this objective:

   - it needs no labels, no proprio and no rewards (the latent stays a property of the pixels, as DINO's);
   - the per-token decoder makes each token describe *its own* patch, so the 3-pixel dot's sub-patch
     position survives in the token that holds it; the planning cost compares latents patch by patch,
     which is exactly what that needs. An MAE (loss on masked patches only) would teach the encoder to
     ignore the dot: its position in a masked patch cannot be inferred from the others;
   - the masked tokens force some context into the features (the wall continues, where the door is),
     DINO-like, without the multi-crop / teacher machinery a 64 x 64 toy does not need.

   After pretraining the encoder is frozen (``requires_grad_(False)``, eval mode) and never changes again.
   Users with the official ``dinov2_vits14`` weights keep the paper's path: build the model from
   :data:`~.config.PAPER_WALL` and load the hub state dict with ``encoder.load_official_state_dict`` (or
   convert an official DINO-WM checkpoint with ``edgerun convert dino-wm``); stage 2 is then skipped by
   passing ``TrainConfig(encoder_state_dict=...)``.
3. **Predictor.** Latents of every frame are computed once with the frozen encoder (the encoder is the
   expensive part and never changes). The predictor, the action encoder and the proprio encoder are then
   trained with DINO-WM's objective: teacher-forced latent MSE over windows of ``H + 1`` frames spaced by
   ``frameskip`` (5) env steps, each frame's action being its ``frameskip`` env actions concatenated;
   targets detached; the loss covers the visual and proprio dims, not the action dims
   (:meth:`~.world_model.DinoWorldModel.training_loss`, here on precomputed latents).

Normalisation: actions are normalised per dimension with the dataset's mean and std (the planner works
in that space; the statistics go into the checkpoint's ``extra``). Proprio is normalised the same way
for training, and the normalisation is then folded into the proprio encoder's linear map, so the
shipped model takes the env's raw proprio (the dot's ``(x, y)``).

Outputs, beside the final checkpoint ``out/model.pt`` (``checkpoint.save_checkpoint``, encoder included):
``loss_curve.png`` and ``manifest.json`` (command, seed, data path + sha256 + episodes, steps, final losses,
metrics, the checkpoint's sha256, created_at). Resumable state: ``out/encoder-latest.pt`` and
``out/ckpt-latest.pt`` (model + optimizer + step + loss history, plain tensors and primitives, readable
with ``torch.load(weights_only=True)``), written every ``checkpoint_every`` steps and at the end of a stage.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import pickle
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from edgerun.engines.trt_cache import sha256_file
from edgerun.envs.collect import collect, load_dataset
from edgerun.evaluation.dino_wm.evaluate import evaluate
from edgerun.models.dino_wm.checkpoint import FORMAT as CHECKPOINT_FORMAT
from edgerun.models.dino_wm.checkpoint import load_checkpoint, save_checkpoint
from edgerun.models.dino_wm.config import (
    POINT_MAZE_CPU,
    WALL_CPU,
    EncoderConfig,
    PredictorConfig,
    WorldModelConfig,
)
from edgerun.models.dino_wm.encoder import DinoV2Encoder, load_official_state_dict
from edgerun.models.dino_wm.world_model import DinoWorldModel, make_tokens, predict_tokens
from edgerun.training.kit import TrainResult, set_lr, torch_threads, warmup_cosine

STATE_FORMAT = "edgerun.dino_wm.train_state"
STATE_VERSION = 1
MANIFEST_FORMAT = "edgerun.dino_wm.manifest"

@dataclass(frozen=True)
class EnvRecipe:
    """What ``edgerun train dino-wm --env ENV`` trains by default for a registered env."""

    model: WorldModelConfig
    collect_policies: tuple[str, ...]
    collect_episodes: int
    frame_extent: float
    """Proprio position units across one frame (Wall: 1, the unit arena; PointMaze: 5.2 m): turns
    the encoder probe's error into pixels."""


RECIPES: dict[str, EnvRecipe] = {
    "edgerun/Wall-v0": EnvRecipe(WALL_CPU, ("mixed", "wander"), 400, 1.0),
    "edgerun/PointMaze-v0": EnvRecipe(POINT_MAZE_CPU, ("random",), 1000, 5.2),
}
"""PointMaze's data are uniform random actions, as the paper's (2000 episodes of 100 steps there)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on (stored in the manifest and the resumable state).

    Data: ``dataset`` (one ``.npz`` in the ``envs.collect`` layout, or a list of them) or, when None,
    ``collect_episodes`` x ``collect_steps`` episodes of ``env`` per policy of ``collect_policies``,
    collected into ``out/dataset-POLICY.npz`` (seeded ``seed``, ``seed + 1``, ...): ``envs.collect``'s
    policies (``wander``: :class:`edgerun.envs.collect.Wander`). The default is ``mixed`` (door crossings: the
    expert with noise and random steps) plus ``wander`` (full-speed runs into and along the wall).
    The expert almost never pushes against the wall (4 of 8000 five-step blocks of a ``mixed`` set
    have three or more blocked steps; i.i.d. ``random`` actions barely move the dot), so a model
    trained without ``wander`` has not seen that the wall stops the dot, and CEM finds and exploits
    plans that walk through it (measured: the planned path crosses the wall, the dot stops at it).
    ``val_fraction`` of each file's episodes (its last ones) are held out.

    Encoder: ``encoder_steps`` Adam steps of the masked denoising autoencoder (batch ``encoder_batch``
    frames, lr ``encoder_lr`` with warmup and cosine decay, ``mask_ratio`` of the tokens masked;
    ``colour_balance``: pixels weighted by :func:`colour_weights`, so the rare dot counts).
    ``encoder_state_dict``: a path to official DINOv2 weights (``torch.load``-able state dict) to use
    instead; pretraining is then skipped (the model config must then be a ViT-S/14 one).

    Predictor: ``predictor_steps`` Adam steps on batches of ``batch`` windows. ``lr`` 5e-4 is the paper's
    predictor (and action-encoder) learning rate; here with 100 warmup steps and a cosine decay to 10 %,
    which reaches a lower loss in a short CPU budget than the paper's constant rate. Extending
    ``predictor_steps`` on resume stretches the schedule from the saved step on.
    ``rollout_blocks`` K: 1 is the paper's teacher-forced loss (windows of H + 1 frames); K > 1 trains
    on windows of H + K frames, the predictor rolled out open-loop over K action blocks from the first
    H frames (its own predictions fed back, as CEM uses it), MSE on every predicted frame. Measured on
    the first shipped Wall model (teacher-forced, H = 1): the position decoded from its predicted
    proprio was off by 0.02 arena units after one block and 0.25 after five (the planning horizon),
    and CEM chose plans whose later blocks crossed the wall.
    ``init_from``: weights that start the predictor stage (fine-tuning; the optimizer and schedule start
    afresh), of the same model config: a predictor-stage state (``ckpt-latest.pt``) of an earlier run,
    which must share this run's data and encoder, or a trained ``model.pt`` (a shipped checkpoint), whose
    frozen encoder is then used as is (stage 2 is skipped) and whose action / proprio encoders are
    re-expressed exactly for this run's data normalisation (:func:`renormalise_step_encoders`). The
    earlier stages (a ``manifest.json`` beside the ``model.pt``) head the new manifest's ``training_history``.

    ``threads``: ``torch.set_num_threads`` for the run (None: torch's default). On a machine shared
    with other jobs 1 is often several times faster than oversubscribed cores.
    ``checkpoint_every``: steps between resumable saves (both stages). ``eval_episodes`` > 0 runs
    :func:`~.evaluate.evaluate` on the final checkpoint and puts the result in the manifest's metrics.
    """

    env: str = "edgerun/Wall-v0"
    out: str = "runs/dino_wm_wall"
    dataset: str | list[str] | None = None
    collect_episodes: int = 400
    collect_steps: int = 100
    collect_policies: tuple[str, ...] = ("mixed", "wander")
    model: WorldModelConfig = WALL_CPU
    encoder_state_dict: str | None = None
    encoder_steps: int = 2500
    encoder_batch: int = 64
    encoder_lr: float = 1e-3
    mask_ratio: float = 0.25
    colour_balance: bool = True
    predictor_steps: int = 9000
    rollout_blocks: int = 1
    init_from: str | None = None
    batch: int = 64
    lr: float = 5e-4
    warmup_steps: int = 100
    val_fraction: float = 0.05
    seed: int = 0
    checkpoint_every: int = 500
    eval_episodes: int = 0
    threads: int | None = None
    command: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_env(cls, env: str, **overrides: Any) -> TrainConfig:
        """The defaults of :data:`RECIPES` for ``env`` (model, data policies, episodes), then ``overrides``."""
        recipe = RECIPES.get(env)
        if recipe is None:
            raise ValueError(f"no DINO-WM training recipe for {env!r}; known: {sorted(RECIPES)}")
        return cls(env=env, model=recipe.model, collect_policies=recipe.collect_policies,
                   collect_episodes=recipe.collect_episodes, **overrides)  # fmt: skip


# --------------------------------------------------------------------------------------- helpers


def _arrays_sha256(*arrays: np.ndarray) -> str:
    """Hash of the arrays' bytes: reproducible where the file's hash is not (collect stamps a time)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _atomic_save(payload: dict, path: Path) -> None:
    """torch.save to a temporary name, then rename: a kill mid-save never leaves a torn state file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_state(path: Path) -> dict | None:
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: not an {STATE_FORMAT} v{STATE_VERSION} state file; move it away or pass another --out")
    return state


def images_to_input(frames: Tensor) -> Tensor:
    """uint8 (B, S, S, 3) -> float (B, 3, S, S) in [-1, 1] (DINO-WM's mean 0.5 / std 0.5 normalisation)."""
    return frames.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _ema(values: list[float], last: int = 100) -> float:
    tail = values[-last:]
    return float(sum(tail) / max(1, len(tail)))


# --------------------------------------------------------------------------------------- data


@dataclass
class _Data:
    frames: np.ndarray  # uint8 (N, T, S, S, 3)
    proprio: np.ndarray  # float32 (N, T, p)
    actions: np.ndarray  # float32 (N, T - 1, a): the executed ones
    train_episodes: np.ndarray
    val_episodes: np.ndarray
    info: dict


def _dataset_paths(config: TrainConfig, out: Path, progress: bool) -> list[tuple[Path, bool]]:
    """The dataset files, collecting the missing ones: (path, collected by this call)."""

    if config.dataset:
        given = [config.dataset] if isinstance(config.dataset, str) else list(config.dataset)
        return [(Path(path), False) for path in given]
    paths = []
    for i, policy in enumerate(config.collect_policies):
        path = out / f"dataset-{policy}.npz"
        collected = not path.is_file()
        if collected:  # seeds seed, seed + 1, ...: independent episode streams per policy
            collect(config.env, config.collect_episodes, config.collect_steps, config.seed + i, path,
                    policy=policy, progress=progress)  # fmt: skip
        paths.append((path, collected))
    if not paths:
        raise ValueError("no dataset: give TrainConfig.dataset or at least one policy in collect_policies")
    return paths


def _dataset(config: TrainConfig, out: Path, progress: bool) -> _Data:
    """Load (collecting if needed) every dataset, check it fits the model, hold out the last
    ``val_fraction`` of each file's episodes, and concatenate."""

    p = config.model.predictor
    size = config.model.encoder.input_size
    frames, proprio, actions, train_eps, val_eps, files = [], [], [], [], [], []
    offset = 0
    for path, collected in _dataset_paths(config, out, progress):
        data = load_dataset(path)
        if data.metadata.get("env_id") not in (None, config.env):
            raise ValueError(f"dataset {path} was collected on {data.metadata.get('env_id')!r}, training is for {config.env!r}")
        if data.proprio.shape[-1] != p.proprio_dim or data.actions.shape[-1] != p.action_dim:
            raise ValueError(
                f"dataset {path}: proprio {data.proprio.shape[-1]}-d and actions {data.actions.shape[-1]}-d, the model "
                f"expects proprio_dim {p.proprio_dim} and action_dim {p.action_dim}"
            )
        if data.frames.shape[2] != size and not config.encoder_state_dict:
            raise ValueError(
                f"dataset {path}: frames are {data.frames.shape[2]} px, the encoder to pretrain runs at {size} px; "
                "collect at that size or change the encoder's input_size"
            )
        N, T = data.frames.shape[:2]
        if frames and (T, *data.frames.shape[2:]) != frames[0].shape[1:]:
            raise ValueError(f"dataset {path}: episodes of {T} frames of {data.frames.shape[2:]}, the first file has {frames[0].shape[1:]}")
        need = p.frameskip * p.history + 1
        if T < need:
            raise ValueError(f"dataset {path}: episodes of {T} frames, a window of H + 1 frames spaced by {p.frameskip} needs {need}")
        n_val = round(N * config.val_fraction) if N > 1 else 0
        n_val = min(max(n_val, 1 if N > 1 and config.val_fraction > 0 else 0), N - 1)
        frames.append(data.frames)
        proprio.append(data.proprio)
        actions.append(data.actions[:, :-1])
        train_eps.append(offset + np.arange(N - n_val))
        val_eps.append(offset + np.arange(N - n_val, N))
        offset += N
        files.append({
            "path": str(path),
            "sha256": sha256_file(path),
            "arrays_sha256": _arrays_sha256(data.frames, data.proprio, data.actions),
            "episodes": int(N),
            "frames_per_episode": int(T),
            "val_episodes": int(n_val),
            "policy": data.metadata.get("policy"),
            "collect_seed": data.metadata.get("seed"),
            "collected_by_this_run": collected,
        })  # fmt: skip
    train_eps_all, val_eps_all = np.concatenate(train_eps), np.concatenate(val_eps)
    info = {
        "files": files,
        "episodes": offset,
        "train_episodes": len(train_eps_all),
        "val_episodes": len(val_eps_all),
        "arrays_sha256": hashlib.sha256("".join(f["arrays_sha256"] for f in files).encode()).hexdigest(),
    }
    cat = (lambda arrays: arrays[0] if len(arrays) == 1 else np.concatenate(arrays))
    return _Data(cat(frames), cat(proprio), cat(actions), train_eps_all, val_eps_all, info)


# --------------------------------------------------------------------------------------- encoder


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


def pretrain_encoder(config: TrainConfig, data: _Data, out: Path, progress: bool) -> tuple[DinoV2Encoder, dict]:
    """Stage 2: masked denoising autoencoder on the training frames; returns the frozen encoder and
    its log (``losses``, ``seconds``). Resumes from ``out/encoder-latest.pt``."""
    enc_config = config.model.encoder
    encoder = DinoV2Encoder(enc_config)
    if config.encoder_state_dict:
        state = torch.load(config.encoder_state_dict, map_location="cpu", weights_only=True)
        load_official_state_dict(encoder, state)
        return encoder.requires_grad_(False).eval(), {"losses": [], "seconds": 0.0, "source": str(config.encoder_state_dict)}
    if enc_config.img_size != enc_config.input_size:
        raise ValueError(f"encoder pretraining runs at the stored grid: img_size {enc_config.img_size} != input_size {enc_config.input_size}")
    torch.manual_seed(config.seed)
    decoder = PatchDecoder(enc_config)
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=config.encoder_lr)
    path = out / "encoder-latest.pt"
    state = _load_state(path)
    step, losses, seconds = 0, [], 0.0
    if state is not None:
        if state.get("stage") != "encoder" or state.get("encoder_config") != asdict(enc_config):
            raise ValueError(f"{path}: saved for another encoder ({state.get('encoder_config')}); move it away or pass another --out")
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses, seconds = int(state["step"]), list(state["losses"]), float(state["seconds"])

    frames = torch.from_numpy(data.frames[data.train_episodes].reshape(-1, *data.frames.shape[2:]))
    N = encoder.config.num_patches
    weights = colour_weights(data.frames[data.train_episodes]) if config.colour_balance else None

    def save() -> None:
        _atomic_save({
            "format": STATE_FORMAT, "version": STATE_VERSION, "stage": "encoder", "step": step,
            "encoder_config": asdict(enc_config), "encoder": encoder.state_dict(), "decoder": decoder.state_dict(),
            "optimizer": optimizer.state_dict(), "losses": losses, "seconds": seconds,
        }, path)  # fmt: skip

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
            bar.set_postfix(loss=f"{_ema(losses, 50):.5f}")
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


# --------------------------------------------------------------------------------------- predictor


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


@dataclass(frozen=True)
class InitWeights:
    """``TrainConfig.init_from``, read: the model whose weights start the predictor stage.

    From a predictor state, ``model`` is in this run's normalised input space and the statistics are
    None; from a ``model.pt`` its proprio encoder takes raw proprio and its action encoder actions
    normalised with ``action_mean`` / ``action_std`` (the checkpoint's ``extra``).
    """

    path: Path
    model: DinoWorldModel
    action_mean: Tensor | None = None
    action_std: Tensor | None = None
    encoder_pretraining: str | None = None
    history: tuple[dict, ...] = ()

    @property
    def from_model(self) -> bool:
        """A ``model.pt``: its frozen encoder is used, its step encoders are re-expressed."""
        return self.action_mean is not None


def read_init(config: TrainConfig) -> InitWeights | None:
    """Read ``config.init_from`` (a ``ckpt-latest.pt`` or a ``model.pt``), checking it fits ``config.model``."""
    if config.init_from is None:
        return None
    path = Path(config.init_from)
    if not path.is_file():
        raise FileNotFoundError(f"init_from: {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(f"init_from: {path} is not a readable torch file ({str(error).splitlines()[0]})") from None
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind == CHECKPOINT_FORMAT:
        model, model_config, extra = load_checkpoint(path)
        if model_config != config.model:
            raise ValueError(f"init_from: {path} holds a model of another config ({model_config}); this run trains {config.model}")
        if config.encoder_state_dict:
            raise ValueError(f"init_from: {path} brings its own frozen encoder; leave out encoder_state_dict")
        if extra.get("env") not in (None, config.env):
            raise ValueError(f"init_from: {path} was trained on {extra.get('env')!r}, this run is for {config.env!r}")
        beside = path.with_name("manifest.json")
        earlier = json.loads(beside.read_text()) if beside.is_file() else None
        history = () if earlier is None else (*earlier.get("training_history", [])[:-1], stage_summary(earlier))
        return InitWeights(path, model, torch.tensor(extra["action_mean"]), torch.tensor(extra["action_std"]),
                           extra.get("encoder_pretraining"), history)  # fmt: skip
    if kind != STATE_FORMAT or payload.get("stage") != "predictor" or payload.get("model_config") != config.model.to_dict():
        raise ValueError(f"init_from: {path} is neither a predictor state (ckpt-latest.pt) nor a model.pt of this model config")
    model = DinoWorldModel(config.model)
    model.load_state_dict(payload["model"])
    return InitWeights(path, model)


def renormalise_step_encoders(model: DinoWorldModel, action_from: tuple[Tensor, Tensor], action_to: tuple[Tensor, Tensor],
                              proprio_to: tuple[Tensor, Tensor]) -> None:  # fmt: skip
    """Re-express a trained model's step encoders for another data normalisation, exactly.

    Proprio encoder, raw in (normalisation folded) -> normalised with ``proprio_to`` (m, s) in:
    W p + b = (W s) x + (b + W m) for p = s x + m. Action encoder, blocks normalised with
    ``action_from`` (m0, s0) -> with ``action_to`` (m, s): W (a - m0) / s0 + b = W (s / s0) x + b + W (m - m0) / s0
    for a = s x + m, the per-dimension statistics tiled over the block's ``frameskip`` steps.
    """
    fs = model.config.predictor.frameskip
    (m0, s0), (m, s) = ((t.repeat(fs) for t in pair) for pair in (action_from, action_to))
    pm, ps = proprio_to
    with torch.no_grad():
        action, proprio = model.action_encoder.proj, model.proprio_encoder.proj
        action.bias.add_(action.weight @ ((m - m0) / s0))
        action.weight.mul_(s / s0)
        proprio.bias.add_(proprio.weight @ pm)
        proprio.weight.mul_(ps)


def _stats(values: np.ndarray) -> tuple[Tensor, Tensor]:
    flat = torch.from_numpy(values.reshape(-1, values.shape[-1])).double()
    return flat.mean(0).float(), flat.std(0).clamp_min(1e-6).float()


def train_predictor(config: TrainConfig, data: _Data, encoder: DinoV2Encoder, latents: Tensor, out: Path,
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
    state = _load_state(path)
    step, seconds = 0, 0.0
    history: dict[str, list[float]] = {"loss": [], "visual": [], "proprio": []}
    val_history: list[list[float]] = []  # [step, loss, visual, proprio]
    if state is not None:
        if state.get("stage") != "predictor" or state.get("model_config") != config.model.to_dict():
            raise ValueError(f"{path}: saved for another model config; move it away or pass another --out")
        if state.get("data_arrays_sha256") != data.info["arrays_sha256"]:
            raise ValueError(f"{path}: saved for another dataset (arrays sha256 {state.get('data_arrays_sha256')}); move it away")
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
        _atomic_save({
            "format": STATE_FORMAT, "version": STATE_VERSION, "stage": "predictor", "step": step,
            "model_config": config.model.to_dict(), "train_config": config.to_dict(),
            "data_arrays_sha256": data.info["arrays_sha256"], "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "history": history, "val_history": val_history, "seconds": seconds,
            "action_mean": action_mean, "action_std": action_std, "proprio_mean": proprio_mean, "proprio_std": proprio_std,
        }, path)  # fmt: skip

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
            bar.set_postfix(loss=f"{_ema(history['loss'], 50):.5f}", visual=f"{_ema(history['visual'], 50):.5f}",
                            proprio=f"{_ema(history['proprio'], 50):.5f}")  # fmt: skip
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


# --------------------------------------------------------------------------------------- outputs


def plot_losses(
    path: Path, encoder_losses: list[float], history: dict[str, list[float]], val_history: list[list[float]],
    rollout_blocks: int = 1,
) -> Path:
    """Two panels, log scale: the encoder's reconstruction loss, the predictor's losses (train and val)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def smooth(values: list[float], width: int = 50) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        if len(v) < width:
            return v
        kernel = np.ones(width) / width
        return np.convolve(v, kernel, mode="valid")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    if encoder_losses:
        ax.plot(np.arange(len(encoder_losses)), encoder_losses, color="0.8", lw=0.5)
        s = smooth(encoder_losses)
        ax.plot(np.arange(len(encoder_losses) - len(s), len(encoder_losses)), s, color="C0", label="pixel MSE (50-step mean)")
        ax.set_yscale("log")
        ax.legend()
    ax.set_title("encoder: masked denoising autoencoder")
    ax.set_xlabel("step")
    ax = axes[1]
    for key, color in (("loss", "C0"), ("visual", "C1"), ("proprio", "C2")):
        values = history.get(key, [])
        if values:
            s = smooth(values)
            ax.plot(np.arange(len(values) - len(s), len(values)), s, color=color, label=f"train {key}")
    if val_history:
        rows = np.asarray(val_history)
        ax.plot(rows[:, 0], rows[:, 1], "o--", color="C3", ms=3, label="val loss")
    ax.set_yscale("log")
    loss_kind = "teacher-forced" if rollout_blocks == 1 else f"{rollout_blocks}-block open-loop rollout"
    ax.set_title(f"predictor: {loss_kind} latent MSE")
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _encoder_source(config: TrainConfig, init: InitWeights | None) -> str:
    if init is not None and init.from_model:
        return f"{init.encoder_pretraining or 'frozen encoder'} (taken from {init.path})"
    if config.encoder_state_dict:
        return f"official weights {config.encoder_state_dict}"
    return "masked denoising autoencoder on the env's frames (self-supervised), then frozen"


def stage_summary(manifest: dict) -> dict:
    """One ``training_history`` entry: what a training call ran and what its model measured."""
    evaluation = manifest.get("metrics", {}).get("eval")
    keys = ("episodes", "seed", "steps_per_episode", "success_rate", "random_success_rate", "reached_rate", "plan_time_s_mean")
    return {
        "command": manifest.get("command"),
        "created_at": manifest.get("created_at"),
        "data_arrays_sha256": manifest.get("data", {}).get("arrays_sha256"),
        "steps": manifest.get("steps"),
        "rollout_blocks": manifest.get("train_config", {}).get("rollout_blocks"),
        "final_losses": manifest.get("final_losses"),
        "timings_s": manifest.get("timings_s"),
        "checkpoint_sha256": manifest.get("checkpoint", {}).get("sha256"),
        "eval": None if evaluation is None else {key: evaluation.get(key) for key in keys},
    }


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Run (or resume) all stages; write ``model.pt``, ``loss_curve.png`` and ``manifest.json`` in ``config.out``."""
    with torch_threads(config.threads):
        return _train(config, progress)


def _train(config: TrainConfig, progress: bool) -> TrainResult:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    run_started = time.perf_counter()

    started = time.perf_counter()
    data = _dataset(config, out, progress)
    timings["data_s"] = time.perf_counter() - started

    init = read_init(config)
    if init is not None and init.from_model:  # its frozen encoder, as is
        encoder, encoder_log = init.model.encoder.requires_grad_(False).eval(), {"losses": [], "seconds": 0.0}
    else:
        encoder, encoder_log = pretrain_encoder(config, data, out, progress)
    timings["encoder_s"] = encoder_log["seconds"]

    started = time.perf_counter()
    latents = encode_frames(encoder, data.frames, progress=progress)
    timings["latents_s"] = time.perf_counter() - started
    extent = RECIPES[config.env].frame_extent if config.env in RECIPES else 1.0
    probe = probe_position(latents, data.proprio[..., :2], data.train_episodes, data.val_episodes)

    model, log = train_predictor(config, data, encoder, latents, out, progress, init)
    timings["predictor_s"] = log["seconds"]
    fold_proprio_normalisation(model, log["proprio_mean"], log["proprio_std"])

    steps = {"encoder": len(encoder_log["losses"]), "predictor": len(log["history"]["loss"])}
    extra = {
        "env": config.env,
        "frameskip": config.model.predictor.frameskip,
        "action_mean": log["action_mean"].tolist(),
        "action_std": log["action_std"].tolist(),
        "proprio_input": "raw (dataset normalisation folded into proprio_encoder)",
        "encoder_pretraining": _encoder_source(config, init),
        "steps": steps,
        "seed": config.seed,
        "data_sha256": [f["sha256"] for f in data.info["files"]],
    }  # fmt: skip
    checkpoint = save_checkpoint(out / "model.pt", model, extra=extra, include_encoder=True)
    curve = plot_losses(out / "loss_curve.png", encoder_log["losses"], log["history"], log["val_history"], config.rollout_blocks)

    val = log["val_history"][-1] if log["val_history"] else None
    timings["this_call_s"] = time.perf_counter() - run_started  # all stages run by this call (not resumed parts)
    metrics: dict[str, Any] = {
        "encoder_probe_rmse": probe["rmse"],
        "encoder_probe_rmse_px": None if probe["rmse"] is None else probe["rmse"] * data.frames.shape[2] / extent,
        "encoder_probe_r2": probe["r2"],
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "command": config.command or " ".join(sys.argv),
        "env": config.env,
        "seed": config.seed,
        "data": data.info,
        "steps": steps,
        "final_losses": {
            "encoder_pixel_mse": _ema(encoder_log["losses"]) if encoder_log["losses"] else None,
            "train": {key: _ema(values) for key, values in log["history"].items()},
            "val": None if val is None else {"loss": val[1], "visual": val[2], "proprio": val[3]},
        },
        "metrics": metrics,
        "timings_s": timings,
        "checkpoint": {
            "path": checkpoint.name,
            "sha256": sha256_file(checkpoint),
            "bytes": checkpoint.stat().st_size,
            "parameters": {
                part: sum(t.numel() for t in getattr(model, part).parameters())
                for part in ("encoder", "predictor", "action_encoder", "proprio_encoder")
            },
        },
        "loss_curve": curve.name,
        "model_config": config.model.to_dict(),
        "train_config": config.to_dict(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    if config.eval_episodes > 0:

        metrics["eval"] = evaluate(checkpoint, config.env, config.eval_episodes, config.seed, progress=progress)
    manifest["training_history"] = [*(init.history if init else ()), stage_summary(manifest)]
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return TrainResult(checkpoint=checkpoint, manifest=manifest_path, loss_curve=curve, manifest_data=manifest)


def train_main(env: str, out: str, steps: int | None, resume: bool, seed: int, rollout_blocks: int = 1,
               init_from: str | None = None) -> int:  # fmt: skip
    """``edgerun train dino-wm --env ENV [--out DIR] [--steps N] [--resume] [--seed S] [--rollout-blocks K]
    [--init-from STATE]``.

    ``steps`` sets the predictor's steps (the encoder's stay at the default). Without ``resume`` an
    ``out`` that already holds resumable state is refused (nothing is overwritten). Returns 0, or 2
    after printing ``edgerun train dino-wm: <error>``.
    """
    try:
        config = TrainConfig.for_env(env, out=out, seed=seed, rollout_blocks=rollout_blocks, init_from=init_from,
                                     command=" ".join(["edgerun", *sys.argv[1:]]))  # fmt: skip
    except ValueError as error:
        print(f"edgerun train dino-wm: {error}", file=sys.stderr)
        return 2
    if steps is not None:
        if steps < 1:
            print(f"edgerun train dino-wm: --steps must be >= 1, got {steps}", file=sys.stderr)
            return 2
        config = replace(config, predictor_steps=steps)
    existing = [name for name in ("encoder-latest.pt", "ckpt-latest.pt") if (Path(out) / name).exists()]
    if existing and not resume:
        print(f"edgerun train dino-wm: {out} already holds {', '.join(existing)}; pass --resume to continue it, "
              "or choose another --out", file=sys.stderr)  # fmt: skip
        return 2
    try:
        result = train(config, progress=True)
    except (ValueError, FileNotFoundError) as error:
        print(f"edgerun train dino-wm: {error}", file=sys.stderr)
        return 2
    m = result.manifest_data
    print(f"wrote {result.checkpoint} ({m['checkpoint']['bytes'] / 2**20:.1f} MiB), {result.loss_curve}, {result.manifest}")
    print(f"  steps: encoder {m['steps']['encoder']}, predictor {m['steps']['predictor']}; final train loss "
          f"{m['final_losses']['train']['loss']:.5f}; position from the frozen latent: "
          f"{m['metrics']['encoder_probe_rmse_px'] or float('nan'):.2f} px RMSE")  # fmt: skip
    return 0
