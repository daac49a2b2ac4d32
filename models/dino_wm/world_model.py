"""DINO-WM (arXiv 2411.04983): plan in the patch-token space of a frozen DINOv2 encoder.

A frame's latent is the encoder's P patch tokens (D wide) plus a ``emb_dim`` embedding of the
proprioceptive state. The predictor sees, for each of the last H frames, every patch token with the
frame's proprio embedding and action embedding tiled onto it (width D + 2 * emb_dim) and predicts
the next frame's tokens. Training is teacher-forced MSE in that latent space; planning rolls the
predictor forward over candidate action sequences and compares the last predicted frame with the
goal's latent (:func:`planning_cost`).

Conventions (as the official ``VWorldModel``):
- a frame's action is the one taken *at* that frame (its ``frameskip`` env steps concatenated):
  frames ``<= t`` with their actions predict frame ``t + 1``;
- a predicted frame is fed back whole (visual and proprio dims as predicted, per patch); only its
  action dims are replaced by the next action's embedding;
- a predicted frame's proprio embedding is read from its first patch token (``separate_emb``).

Images are float (B, T, 3, H, W) in [-1, 1] (``encoder.normalise`` makes them from uint8); they are
resized to the encoder's input size here if needed, as the official model does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgerun.models.dino_wm.config import DecoderConfig, PredictorConfig, WorldModelConfig
from edgerun.models.dino_wm.encoder import DinoV2Encoder
from edgerun.models.dino_wm.predictor import Predictor


@dataclass
class Latent:
    """Frames in latent space: ``visual`` (B, T, P, D) patch tokens, ``proprio`` (B, T, emb_dim)."""

    visual: Tensor
    proprio: Tensor

    def __getitem__(self, frames: slice | int) -> Latent:
        """Select frames (the T axis), keeping it: ``latent[-1]`` is (B, 1, ...)."""
        if isinstance(frames, int):
            frames = slice(frames, frames + 1 if frames != -1 else None)
        return Latent(self.visual[:, frames], self.proprio[:, frames])

    def detach(self) -> Latent:
        return Latent(self.visual.detach(), self.proprio.detach())


class StepEncoder(nn.Module):
    """Per-frame linear map (B, T, in_dim) -> (B, T, emb_dim).

    The official code uses ``Conv1d(in_dim, emb_dim, kernel_size=1)`` over time: the same map.
    """

    def __init__(self, in_dim: int, emb_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, emb_dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != self.proj.in_features:
            raise ValueError(
                f"{type(self).__name__}: expected (B, T, {self.proj.in_features}), got {tuple(x.shape)}"
            )
        return self.proj(x)


class ActionEncoder(StepEncoder):
    """(B, T, action_dim * frameskip) actions, ``frameskip`` env steps concatenated -> (B, T, emb_dim)."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__(config.action_input_dim, config.emb_dim)


class ProprioEncoder(StepEncoder):
    """(B, T, proprio_dim) raw proprioceptive state -> (B, T, emb_dim)."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__(config.proprio_dim, config.emb_dim)


class ResBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), the official VQ-VAE residual block (names ``conv.1``, ``conv.3``)."""

    def __init__(self, channel: int, hidden: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channel, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, channel, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x)


class UpsampleStage(nn.Module):
    """(B, in, h, w) -> (B, out, h * stride, w * stride): conv, residual blocks, transposed convs.

    The official VQ-VAE's ``Decoder`` module; ``blocks`` indices match it.
    """

    def __init__(self, in_channel: int, out_channel: int, config: DecoderConfig, stride: int) -> None:
        super().__init__()
        c = config.channel
        layers: list[nn.Module] = [nn.Conv2d(in_channel, c, 3, padding=1)]
        layers += [ResBlock(c, config.res_channel) for _ in range(config.res_blocks)]
        layers.append(nn.ReLU())
        if stride == 4:
            layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.ReLU(),
                       nn.ConvTranspose2d(c // 2, out_channel, 4, stride=2, padding=1)]  # fmt: skip
        else:
            layers.append(nn.ConvTranspose2d(c, out_channel, 4, stride=2, padding=1))
        self.blocks = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class Decoder(nn.Module):
    """(B, T, P, D) patch tokens -> (B, T, 3, S, S) images in [-1, 1] space, S = sqrt(P) * scale.

    For looking at latents only: it is trained on detached latents and never shapes the predictor.
    """

    def __init__(self, config: DecoderConfig, visual_dim: int) -> None:
        super().__init__()
        self.upsample_b = UpsampleStage(visual_dim, visual_dim, config, config.upsample_stride)
        self.dec = UpsampleStage(visual_dim, 3, config, config.decode_stride)

    def forward(self, visual: Tensor) -> Tensor:
        B, T, P, D = visual.shape
        side = round(P**0.5)
        if side * side != P:
            raise ValueError(f"Decoder: expected a square number of patches, got {P}")
        grid = visual.reshape(B * T, side, side, D).permute(0, 3, 1, 2)
        images = self.dec(self.upsample_b(grid))
        return images.reshape(B, T, *images.shape[1:])


def make_tokens(visual: Tensor, proprio_emb: Tensor, action_emb: Tensor) -> Tensor:
    """(B, T, P, D), (B, T, E), (B, T, E) -> (B, T, P, D + 2E): embeddings tiled onto every patch."""
    P = visual.shape[2]
    proprio = proprio_emb.unsqueeze(2).expand(-1, -1, P, -1)
    action = action_emb.unsqueeze(2).expand(-1, -1, P, -1)
    return torch.cat((visual, proprio, action), dim=-1)


def predict_tokens(predictor: Predictor, tokens: Tensor) -> Tensor:
    """(B, T, P, W) tokens of T <= H frames -> (B, T, P, W): entry t predicts frame t + 1."""
    B, T, P, W = tokens.shape
    return predictor(tokens.reshape(B, T * P, W)).reshape(B, T, P, W)


def rollout(
    predictor: Predictor,
    action_encoder: ActionEncoder,
    visual: Tensor,
    proprio_emb: Tensor,
    actions: Tensor,
    past_actions: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Autoregressive prediction of ``horizon`` frames after T0 observed ones, as a pure function.

    Args:
        visual: (B, T0, P, D) observed patch tokens, 1 <= T0 <= H (the last T0 frames, oldest first).
        proprio_emb: (B, T0, E) their proprio embeddings.
        actions: (B, horizon, action_dim * frameskip): ``actions[:, 0]`` is taken at the last observed
            frame, ``actions[:, k]`` at the k-th predicted one.
        past_actions: (B, T0 - 1, action_dim * frameskip), the actions already taken at the earlier
            observed frames; required when T0 > 1.

    Returns:
        (B, horizon, P, D) predicted patch tokens and (B, horizon, E) predicted proprio embeddings of
        frames T0 .. T0 + horizon - 1. The context is the last H frames (observed, then predicted).

    Control flow depends only on shapes (the horizon loop is unrolled when traced), so this exports
    to ONNX with a dynamic batch; every CEM sample goes in one batch.
    """
    config = predictor.config
    H, D, E = config.history, config.visual_dim, config.emb_dim
    T0, horizon = visual.shape[1], actions.shape[1]
    if not 1 <= T0 <= H:
        raise ValueError(f"rollout: expected 1 <= T0 <= history={H} observed frames, got visual {tuple(visual.shape)}")
    if horizon < 1:
        raise ValueError(f"rollout: expected actions (B, horizon >= 1, {config.action_input_dim}), got {tuple(actions.shape)}")
    if T0 > 1:
        if past_actions is None or past_actions.shape[1] != T0 - 1:
            got = None if past_actions is None else tuple(past_actions.shape)
            raise ValueError(f"rollout: {T0} observed frames need past_actions (B, {T0 - 1}, {config.action_input_dim}), got {got}")
        context_actions = torch.cat((past_actions, actions[:, :1]), dim=1)
    else:
        context_actions = actions[:, :1]
    action_emb = action_encoder(actions)  # (B, horizon, E)
    tokens = make_tokens(visual, proprio_emb, action_encoder(context_actions))  # (B, T0, P, W)
    predicted = []
    for k in range(horizon):
        next_frame = predict_tokens(predictor, tokens)[:, -1:]  # (B, 1, P, W)
        predicted.append(next_frame)
        if k + 1 < horizon:
            P = next_frame.shape[2]
            next_action = action_emb[:, k + 1 : k + 2].unsqueeze(2).expand(-1, -1, P, -1)
            new_frame = torch.cat((next_frame[..., : D + E], next_action), dim=-1)
            tokens = torch.cat((tokens, new_frame), dim=1)[:, -H:]
    frames = torch.cat(predicted, dim=1)  # (B, horizon, P, W)
    return frames[..., :D], frames[:, :, 0, D : D + E]


class RolloutModule(nn.Module):
    """:func:`rollout` as a module for export: (visual, proprio_emb, actions[, past_actions]) -> (visual, proprio).

    Holds only the predictor and the action encoder (the image encoder runs once per observation,
    outside the planning loop). Shapes other than the batch are fixed at export.
    """

    def __init__(self, model: DinoWorldModel) -> None:
        super().__init__()
        self.predictor = model.predictor
        self.action_encoder = model.action_encoder

    def forward(self, visual: Tensor, proprio_emb: Tensor, actions: Tensor, past_actions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return rollout(self.predictor, self.action_encoder, visual, proprio_emb, actions, past_actions)


class PlanningCostModule(nn.Module):
    """What one CEM iteration asks of the model, as one exportable call.

    (actions (S, horizon, action_dim * frameskip), visual (1, 1, P, D), proprio_emb (1, 1, E),
    goal_visual (1, P, D), goal_proprio_emb (1, E)) -> cost (S,). The observation and goal are
    encoded once per replan outside; every sample of an iteration goes in one batch.
    """

    def __init__(self, model: DinoWorldModel, alpha: float | None = None) -> None:
        super().__init__()
        self.predictor = model.predictor
        self.action_encoder = model.action_encoder
        self.alpha = model.config.alpha if alpha is None else alpha

    def forward(self, actions: Tensor, visual: Tensor, proprio_emb: Tensor, goal_visual: Tensor, goal_proprio_emb: Tensor) -> Tensor:
        samples = actions.shape[0]
        predicted_visual, predicted_proprio = rollout(
            self.predictor,
            self.action_encoder,
            visual.expand(samples, -1, -1, -1),
            proprio_emb.expand(samples, -1, -1),
            actions,
        )
        goal = Latent(goal_visual.unsqueeze(1), goal_proprio_emb.unsqueeze(1))
        return planning_cost(Latent(predicted_visual, predicted_proprio), goal, self.alpha)


def planning_cost(predicted: Latent, goal: Latent, alpha: float) -> Tensor:
    """(B,) cost: MSE(last predicted visual, goal visual) + alpha * MSE(last predicted proprio, goal proprio).

    Means over patches and channels, per sample, as the official ``objective_fn_last``. The goal's
    last frame is used; a goal batch of 1 broadcasts over all B candidates.
    """
    visual = (predicted.visual[:, -1] - goal.visual[:, -1]).square().mean(dim=(1, 2))
    proprio = (predicted.proprio[:, -1] - goal.proprio[:, -1]).square().mean(dim=1)
    return visual + alpha * proprio


class DinoWorldModel(nn.Module):
    """Frozen DINOv2 encoder + action / proprio encoders + frame-causal predictor (+ optional decoder)."""

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = DinoV2Encoder(config.encoder)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.predictor = Predictor(config.predictor)
        self.action_encoder = ActionEncoder(config.predictor)
        self.proprio_encoder = ProprioEncoder(config.predictor)
        self.decoder = Decoder(config.decoder, config.predictor.visual_dim) if config.decoder is not None else None

    def train(self, mode: bool = True) -> DinoWorldModel:
        """As nn.Module.train, but the frozen encoder always stays in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    def encode(self, images: Tensor, proprio: Tensor) -> Latent:
        """images (B, T, 3, H, W) in [-1, 1], proprio (B, T, proprio_dim) -> Latent (B, T, P, D), (B, T, E).

        The encoder runs without gradient (it is frozen); the proprio embedding keeps its gradient.
        """
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"encode: expected images (B, T, 3, H, W), got {tuple(images.shape)}")
        B, T = images.shape[:2]
        if proprio.shape[:2] != (B, T):
            raise ValueError(f"encode: images {tuple(images.shape)} and proprio {tuple(proprio.shape)} differ in (B, T)")
        frames = images.flatten(0, 1)
        size = self.encoder.input_size
        if frames.shape[-2:] != (size, size):
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            visual = self.encoder(frames)
        return Latent(visual.reshape(B, T, *visual.shape[1:]), self.proprio_encoder(proprio))

    def encode_actions(self, actions: Tensor) -> Tensor:
        """(B, T, action_dim * frameskip) -> (B, T, emb_dim)."""
        return self.action_encoder(actions)

    def predict(self, latent_history: Latent, action_emb: Tensor) -> Latent:
        """Frames t = 0..T-1 (T <= H) with their action embeddings (B, T, E) -> predictions of frames 1..T."""
        tokens = make_tokens(latent_history.visual, latent_history.proprio, action_emb)
        out = predict_tokens(self.predictor, tokens)
        D, E = self.config.predictor.visual_dim, self.config.predictor.emb_dim
        return Latent(out[..., :D], out[:, :, 0, D : D + E])

    def rollout(self, obs_latent: Latent, actions: Tensor, past_actions: Tensor | None = None) -> Latent:
        """Latent (B, T0 <= H, ...) + actions (B, horizon, action_dim * frameskip) -> Latent (B, horizon, ...).

        See :func:`rollout` for the action convention; the result holds the predicted frames only.
        """
        visual, proprio = rollout(self.predictor, self.action_encoder, obs_latent.visual, obs_latent.proprio, actions, past_actions)
        return Latent(visual, proprio)

    def training_loss(self, images: Tensor, proprio: Tensor, actions: Tensor) -> dict[str, Tensor]:
        """Teacher-forced latent MSE over a window of T = H + 1 frames (2 <= T <= H + 1 accepted).

        images (B, T, 3, H, W) in [-1, 1], proprio (B, T, proprio_dim), actions (B, T, action_dim *
        frameskip). Frames 0..T-2 predict frames 1..T-1; targets are detached; the loss covers the
        visual and proprio dims, not the action dims. Returns ``loss`` (what to minimise), ``visual``
        and ``proprio`` (its parts, for logging) and, with a decoder, ``decoder``: reconstruction MSE
        of the images from detached latents, included in ``loss`` but reaching only the decoder.
        """
        T, H = images.shape[1], self.config.predictor.history
        if not 2 <= T <= H + 1:
            raise ValueError(f"training_loss: expected 2 <= T <= history + 1 = {H + 1} frames, got images {tuple(images.shape)}")
        if actions.shape[:2] != images.shape[:2]:
            raise ValueError(f"training_loss: images {tuple(images.shape)} and actions {tuple(actions.shape)} differ in (B, T)")
        latent = self.encode(images, proprio)
        tokens = make_tokens(latent.visual, latent.proprio, self.action_encoder(actions))
        predicted = predict_tokens(self.predictor, tokens[:, :-1])
        target = tokens[:, 1:].detach()
        D, E = self.config.predictor.visual_dim, self.config.predictor.emb_dim
        losses = {
            "loss": F.mse_loss(predicted[..., : D + E], target[..., : D + E]),
            "visual": F.mse_loss(predicted[..., :D], target[..., :D]),
            "proprio": F.mse_loss(predicted[..., D : D + E], target[..., D : D + E]),
        }
        if self.decoder is not None:
            reconstructed = self.decoder(latent.visual.detach())
            wanted = images.flatten(0, 1)
            if wanted.shape[-2:] != reconstructed.shape[-2:]:
                wanted = F.interpolate(wanted, size=reconstructed.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
            losses["decoder"] = F.mse_loss(reconstructed, wanted.reshape(reconstructed.shape))
            losses["loss"] = losses["loss"] + losses["decoder"]
        return losses

    def planning_cost(self, predicted_last: Latent, goal_latent: Latent, alpha: float | None = None) -> Tensor:
        """(B,) :func:`planning_cost` with ``alpha`` defaulting to the config's."""
        return planning_cost(predicted_last, goal_latent, self.config.alpha if alpha is None else alpha)

    def rollout_module(self) -> RolloutModule:
        """The exportable rollout (shares this model's predictor and action encoder)."""
        return RolloutModule(self)
