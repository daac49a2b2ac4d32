"""DINO-WM world model: frame-causal predictor, rollout, training loss, checkpoints (ours and the
official pickled-module format, read with a restricted unpickler), ONNX export of the rollout."""

from __future__ import annotations

import os
import sys
import time
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgerun.errors import CheckpointError, CheckpointMismatchError, UnsafeCheckpointError
from edgerun.models.dino_wm.checkpoint import load_checkpoint, save_checkpoint
from edgerun.models.dino_wm.config import (
    PAPER_POINTMAZE,
    PAPER_WALL,
    SMALL_DECODER,
    SMALL_POINTMAZE,
    SMALL_WALL,
    VIT_TINY,
)
from edgerun.models.dino_wm.encoder import synthetic_official_state_dict
from edgerun.models.dino_wm.official import (
    convert_main,
    convert_official,
    infer_config,
    model_state_dict,
    read_official,
)
from edgerun.models.dino_wm.predictor import Predictor, frame_causal_mask
from edgerun.models.dino_wm.world_model import DinoWorldModel, Latent, RolloutModule, planning_cost


def small_model(config=SMALL_POINTMAZE, seed: int = 0) -> DinoWorldModel:
    torch.manual_seed(seed)
    return DinoWorldModel(config).eval()


def random_latent(config, batch: int, frames: int, seed: int = 1) -> Latent:
    g = torch.Generator().manual_seed(seed)
    p = config.predictor
    return Latent(torch.randn(batch, frames, p.num_patches, p.visual_dim, generator=g), torch.randn(batch, frames, p.emb_dim, generator=g))


# ------------------------------------------------------------------------------------ predictor


def test_frame_causal_mask_is_block_lower_triangular_by_frame():
    mask = frame_causal_mask(history=3, patches=2)
    expected = torch.tensor(
        [[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


def test_later_frame_never_changes_earlier_outputs_and_earlier_frame_changes_later_ones():
    config = SMALL_POINTMAZE.predictor
    torch.manual_seed(0)
    predictor = Predictor(config).eval()
    P, H = config.num_patches, config.history
    tokens = torch.randn(2, H * P, config.token_dim)
    with torch.no_grad():
        base = predictor(tokens).reshape(2, H, P, -1)
        later = tokens.clone()
        later[:, 2 * P :] += torch.randn_like(later[:, 2 * P :])
        out_later = predictor(later).reshape(2, H, P, -1)
        earlier = tokens.clone()
        earlier[:, :P] += torch.randn_like(earlier[:, :P])
        out_earlier = predictor(earlier).reshape(2, H, P, -1)
    torch.testing.assert_close(out_later[:, :2], base[:, :2], rtol=0, atol=1e-6)
    assert (out_later[:, 2] - base[:, 2]).abs().max() > 1e-3
    for frame in range(H):
        assert (out_earlier[:, frame] - base[:, frame]).abs().max() > 1e-3, f"frame {frame} ignored frame 0"


def test_paper_predictor_has_about_20m_parameters():
    counts = {}
    for name, config in (("wall H=1", PAPER_WALL), ("pointmaze H=3", PAPER_POINTMAZE), ("small", SMALL_POINTMAZE)):
        model = DinoWorldModel(config)
        counts[name] = sum(p.numel() for p in model.predictor.parameters())
        counts[name + " action+proprio"] = sum(p.numel() for m in (model.action_encoder, model.proprio_encoder) for p in m.parameters())
    print("predictor parameters:", {k: f"{v:,}" for k, v in counts.items()})
    assert 19.0e6 <= counts["wall H=1"] <= 20.5e6
    assert 19.0e6 <= counts["pointmaze H=3"] <= 20.5e6
    assert PAPER_POINTMAZE.predictor.token_dim == 404
    assert counts["small"] < 200_000


def test_small_predictor_takes_a_planning_batch_of_300():
    model = small_model()
    tokens = torch.randn(300, SMALL_POINTMAZE.predictor.num_tokens, SMALL_POINTMAZE.predictor.token_dim)
    with torch.inference_mode():
        out = model.predictor(tokens)
    assert out.shape == tokens.shape and torch.isfinite(out).all()


# ------------------------------------------------------------------------------- world model


def test_encoder_is_frozen_and_stays_in_eval_mode():
    model = DinoWorldModel(SMALL_WALL).train()
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert not model.encoder.training and model.predictor.training


def test_encode_gives_patch_tokens_and_proprio_embedding_and_resizes_images():
    model = small_model(SMALL_WALL)
    images = torch.rand(2, 3, 3, 64, 64) * 2 - 1  # not the encoder's 56 x 56: resized
    latent = model.encode(images, torch.randn(2, 3, 2))
    assert latent.visual.shape == (2, 3, 16, 64) and latent.proprio.shape == (2, 3, 10)


@pytest.mark.parametrize("config, observed", [(SMALL_WALL, 1), (SMALL_POINTMAZE, 1), (SMALL_POINTMAZE, 3)])
def test_rollout_predicts_one_latent_per_action(config, observed):
    model = small_model(config)
    latent = random_latent(config, batch=6, frames=observed)
    actions = torch.randn(6, 5, config.predictor.action_input_dim)
    past = torch.randn(6, observed - 1, config.predictor.action_input_dim) if observed > 1 else None
    with torch.no_grad():
        out = model.rollout(latent, actions, past)
        first = model.predict(latent, model.encode_actions(torch.cat([past, actions[:, :1]], 1) if past is not None else actions[:, :1]))
    assert out.visual.shape == (6, 5, 16, 64) and out.proprio.shape == (6, 5, 10)
    torch.testing.assert_close(out.visual[:, 0], first.visual[:, -1])
    torch.testing.assert_close(out.proprio[:, 0], first.proprio[:, -1])


def test_rollout_needs_past_actions_for_several_observed_frames():
    model = small_model()
    with pytest.raises(ValueError, match="past_actions"):
        model.rollout(random_latent(SMALL_POINTMAZE, 2, 3), torch.randn(2, 4, 10))


def test_planning_cost_is_visual_mse_plus_alpha_proprio_mse_with_broadcast_goal():
    predicted = random_latent(SMALL_WALL, batch=4, frames=3, seed=2)
    goal = random_latent(SMALL_WALL, batch=1, frames=1, seed=3)
    cost = planning_cost(predicted, goal, alpha=0.5)
    visual = ((predicted.visual[:, -1] - goal.visual[:, 0]) ** 2).mean(dim=(1, 2))
    proprio = ((predicted.proprio[:, -1] - goal.proprio[:, 0]) ** 2).mean(dim=1)
    torch.testing.assert_close(cost, visual + 0.5 * proprio)
    assert torch.allclose(planning_cost(goal, goal, alpha=1.0), torch.zeros(1))


def test_training_loss_decreases_over_30_adam_steps():
    torch.manual_seed(0)
    model = DinoWorldModel(SMALL_POINTMAZE).train()
    H = SMALL_POINTMAZE.predictor.history
    images = torch.rand(4, H + 1, 3, 56, 56) * 2 - 1
    proprio, actions = torch.randn(4, H + 1, 4), torch.randn(4, H + 1, 10)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    start = time.perf_counter()
    for _ in range(30):
        out = model.training_loss(images, proprio, actions)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    print(f"training loss {losses[0]:.4f} -> {losses[-1]:.4f} in {time.perf_counter() - start:.2f} s")
    assert set(out) == {"loss", "visual", "proprio"}
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is None for p in model.encoder.parameters())


def test_decoder_learns_from_detached_latents_and_never_reaches_the_predictor():
    model = small_model(replace(SMALL_WALL, decoder=SMALL_DECODER)).train()
    images = torch.rand(2, 2, 3, 56, 56) * 2 - 1
    out = model.training_loss(images, torch.randn(2, 2, 2), torch.randn(2, 2, 10))
    out["decoder"].backward()
    assert all(p.grad is None for p in model.predictor.parameters())
    assert all(p.grad is None for p in model.proprio_encoder.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())
    assert model.decoder(model.encode(images, torch.randn(2, 2, 2)).visual).shape == (2, 2, 3, 16, 16)


# ------------------------------------------------------------------------------ our checkpoint


def test_our_checkpoint_round_trip_restores_weights_config_and_extra(tmp_path):
    model = small_model(replace(SMALL_POINTMAZE, decoder=SMALL_DECODER), seed=3)
    save_checkpoint(tmp_path / "wm.pt", model, extra={"step": 7, "note": "x", "stats": torch.arange(3)})
    loaded, config, extra = load_checkpoint(tmp_path / "wm.pt")
    assert config == model.config
    assert extra["step"] == 7 and torch.equal(extra["stats"], torch.arange(3))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    latent, actions = random_latent(config, 2, 1), torch.randn(2, 2, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded.rollout(latent, actions).visual, model.rollout(latent, actions).visual)


def test_checkpoint_without_encoder_needs_the_dinov2_weights(tmp_path):
    model = small_model(SMALL_WALL)
    save_checkpoint(tmp_path / "wm.pt", model, include_encoder=False)
    with pytest.raises(CheckpointError, match="no encoder weights"):
        load_checkpoint(tmp_path / "wm.pt")
    dinov2 = synthetic_official_state_dict(VIT_TINY, seed=5)
    loaded, _, _ = load_checkpoint(tmp_path / "wm.pt", encoder_state_dict=dinov2)
    assert torch.equal(loaded.encoder.pos_embed, dinov2["pos_embed"])


def test_mismatched_checkpoint_error_names_the_key_and_both_shapes(tmp_path):
    save_checkpoint(tmp_path / "wm.pt", small_model(SMALL_WALL))
    payload = torch.load(tmp_path / "wm.pt", weights_only=True)
    payload["state_dict"]["predictor.pos_embed"] = torch.zeros(1, 48, 84)
    del payload["state_dict"]["action_encoder.proj.bias"]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(tmp_path / "bad.pt")
    message = str(error.value)
    assert "predictor.pos_embed: expected (1, 16, 84), got (1, 48, 84)" in message
    assert "missing keys (1): action_encoder.proj.bias" in message


# ------------------------------------------------------------------------ official checkpoint
# Stand-ins for the official DINO-WM classes, registered under the official module paths only
# while the file is written: loading it must not import (or find) any of them.


def _official_classes() -> dict[str, dict[str, type]]:
    def block_mask(npatch: int, nframes: int) -> torch.Tensor:
        frame = torch.arange(npatch * nframes) // npatch
        return (frame[:, None] >= frame[None, :]).float()[None, None]

    class Attention(nn.Module):
        def __init__(self, dim, heads, dim_head, dropout, npatch, nframes):
            super().__init__()
            inner = heads * dim_head
            self.heads, self.scale = heads, dim_head**-0.5
            self.norm = nn.LayerNorm(dim)
            self.attend = nn.Softmax(dim=-1)
            self.dropout = nn.Dropout(dropout)
            self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
            self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
            self.bias = block_mask(npatch, nframes)  # a plain tensor attribute, as officially

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = (t.reshape(B, T, self.heads, -1).transpose(1, 2) for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
            dots = (q @ k.transpose(-1, -2) * self.scale).masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            out = self.dropout(self.attend(dots)) @ v
            return self.to_out(out.transpose(1, 2).reshape(B, T, -1))

    class FeedForward(nn.Module):
        def __init__(self, dim, hidden, dropout):
            super().__init__()
            self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))

        def forward(self, x):
            return self.net(x)

    class Transformer(nn.Module):
        def __init__(self, dim, depth, heads, dim_head, mlp_dim, dropout, npatch, nframes):
            super().__init__()
            self.norm = nn.LayerNorm(dim)
            self.layers = nn.ModuleList(
                nn.ModuleList([Attention(dim, heads, dim_head, dropout, npatch, nframes), FeedForward(dim, mlp_dim, dropout)])
                for _ in range(depth)
            )

        def forward(self, x):
            for attn, ff in self.layers:
                x = attn(x) + x
                x = ff(x) + x
            return self.norm(x)

    class ViTPredictor(nn.Module):
        def __init__(self, *, num_patches, num_frames, dim, depth, heads, mlp_dim, dim_head=64, dropout=0.0):
            super().__init__()
            self.pos_embedding = nn.Parameter(torch.randn(1, num_frames * num_patches, dim))
            self.dropout = nn.Dropout(0.0)
            self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim, dropout, num_patches, num_frames)
            self.pool = "cls"

        def forward(self, x):
            return self.transformer(self.dropout(x + self.pos_embedding[:, : x.shape[1]]))

    class ProprioceptiveEmbedding(nn.Module):
        def __init__(self, num_frames=16, tubelet_size=1, in_chans=8, emb_dim=384, use_3d_pos=False):
            super().__init__()
            self.num_frames, self.tubelet_size, self.in_chans, self.emb_dim = num_frames, tubelet_size, in_chans, emb_dim
            self.patch_embed = nn.Conv1d(in_chans, emb_dim, kernel_size=tubelet_size, stride=tubelet_size)

        def forward(self, x):
            return self.patch_embed(x.permute(0, 2, 1)).permute(0, 2, 1)

    class Quantize(nn.Module):
        def __init__(self, dim, n_embed):
            super().__init__()
            self.dim, self.n_embed, self.decay, self.eps = dim, n_embed, 0.99, 1e-5
            self.register_buffer("embed", torch.randn(dim, n_embed))
            self.register_buffer("cluster_size", torch.zeros(n_embed))
            self.register_buffer("embed_avg", torch.randn(dim, n_embed))

    class ResBlock(nn.Module):
        def __init__(self, in_channel, channel):
            super().__init__()
            self.conv = nn.Sequential(nn.ReLU(), nn.Conv2d(in_channel, channel, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(channel, in_channel, 1))

        def forward(self, x):
            return x + self.conv(x)

    class Decoder(nn.Module):
        def __init__(self, in_channel, out_channel, channel, n_res_block, n_res_channel, stride):
            super().__init__()
            blocks = [nn.Conv2d(in_channel, channel, 3, padding=1)] + [ResBlock(channel, n_res_channel) for _ in range(n_res_block)]
            blocks.append(nn.ReLU(inplace=True))
            if stride == 4:
                blocks += [nn.ConvTranspose2d(channel, channel // 2, 4, 2, 1), nn.ReLU(inplace=True), nn.ConvTranspose2d(channel // 2, out_channel, 4, 2, 1)]
            else:
                blocks.append(nn.ConvTranspose2d(channel, out_channel, 4, 2, 1))
            self.blocks = nn.Sequential(*blocks)

        def forward(self, x):
            return self.blocks(x)

    class VQVAE(nn.Module):
        def __init__(self, channel, n_res_block, n_res_channel, emb_dim, n_embed=16, upsample=4, decode=4):
            super().__init__()
            self.quantize = False
            self.quantize_b = Quantize(emb_dim, n_embed)
            self.upsample_b = Decoder(emb_dim, emb_dim, channel, n_res_block, n_res_channel, upsample)
            self.dec = Decoder(emb_dim, 3, channel, n_res_block, n_res_channel, decode)
            self.info = f"channel: {channel}"

    # DINOv2 hub classes (names as facebookresearch/dinov2), for a file that saved the encoder.
    class PatchEmbed(nn.Module):
        def __init__(self, patch, dim):
            super().__init__()
            self.patch_size = (patch, patch)
            self.proj = nn.Conv2d(3, dim, patch, patch)
            self.norm = nn.Identity()

    class LayerScale(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(dim))

    class MemEffAttention(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.num_heads = heads
            self.qkv, self.attn_drop, self.proj, self.proj_drop = nn.Linear(dim, 3 * dim), nn.Dropout(0.0), nn.Linear(dim, dim), nn.Dropout(0.0)

    class Mlp(nn.Module):
        def __init__(self, dim, hidden):
            super().__init__()
            self.fc1, self.act, self.fc2, self.drop = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(0.0)

    class NestedTensorBlock(nn.Module):
        def __init__(self, dim, heads, hidden):
            super().__init__()
            self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-6), MemEffAttention(dim, heads), LayerScale(dim)
            self.norm2, self.mlp, self.ls2 = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, hidden), LayerScale(dim)

    class DinoVisionTransformer(nn.Module):
        def __init__(self, config):
            super().__init__()
            D = config.embed_dim
            self.patch_embed = PatchEmbed(config.patch_size, D)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.checkpoint_grid**2, D))
            self.blocks = nn.ModuleList(NestedTensorBlock(D, config.num_heads, config.mlp_hidden_dim) for _ in range(config.depth))
            self.norm = nn.LayerNorm(D, eps=1e-6)
            self.head = nn.Identity()
            self.mask_token = nn.Parameter(torch.zeros(1, D))

    class DinoV2Encoder(nn.Module):
        def __init__(self, base_model):
            super().__init__()
            self.name, self.feature_key, self.latent_ndim = "dinov2_vits14", "x_norm_patchtokens", 2
            self.base_model = base_model
            self.emb_dim = 64

    return {
        "models.vit": {"ViTPredictor": ViTPredictor, "Transformer": Transformer, "Attention": Attention, "FeedForward": FeedForward},
        "models.proprio": {"ProprioceptiveEmbedding": ProprioceptiveEmbedding},
        "models.vqvae": {"VQVAE": VQVAE, "Decoder": Decoder, "ResBlock": ResBlock, "Quantize": Quantize},
        "models.dino": {"DinoV2Encoder": DinoV2Encoder},
        "dinov2.models.vision_transformer": {"DinoVisionTransformer": DinoVisionTransformer},
        "dinov2.layers.patch_embed": {"PatchEmbed": PatchEmbed},
        "dinov2.layers.block": {"NestedTensorBlock": NestedTensorBlock},
        "dinov2.layers.attention": {"MemEffAttention": MemEffAttention},
        "dinov2.layers.mlp": {"Mlp": Mlp},
        "dinov2.layers.layer_scale": {"LayerScale": LayerScale},
    }


OFFICIAL = _official_classes()


def official_save(path: Path, entries: dict) -> None:
    """torch.save with the stand-in classes importable under the official module paths."""
    with pytest.MonkeyPatch.context() as patch:
        for module_path, classes in OFFICIAL.items():
            parts = module_path.split(".")
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                if not isinstance(sys.modules.get(name), types.ModuleType) or not getattr(sys.modules[name], "_fake", False):
                    module = types.ModuleType(name)
                    module._fake = True
                    patch.setitem(sys.modules, name, module)
            for class_name, cls in classes.items():
                cls.__module__, cls.__qualname__ = module_path, class_name
                setattr(sys.modules[module_path], class_name, cls)
        torch.save(entries, path)


def official_entries(config, with_encoder: bool, with_decoder: bool, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    p = config.predictor
    predictor = OFFICIAL["models.vit"]["ViTPredictor"](
        num_patches=p.num_patches, num_frames=p.history, dim=p.token_dim, depth=p.depth, heads=p.heads,
        mlp_dim=p.mlp_dim, dim_head=p.head_dim, dropout=p.dropout,
    )  # fmt: skip
    Proprio = OFFICIAL["models.proprio"]["ProprioceptiveEmbedding"]
    entries = {
        "epoch": 12,
        "predictor": predictor,
        "action_encoder": Proprio(num_frames=p.history, in_chans=p.action_input_dim, emb_dim=p.emb_dim),
        "proprio_encoder": Proprio(num_frames=p.history, in_chans=p.proprio_dim, emb_dim=p.emb_dim),
    }
    if with_decoder:
        d = config.decoder
        entries["decoder"] = OFFICIAL["models.vqvae"]["VQVAE"](d.channel, d.res_blocks, d.res_channel, p.visual_dim, upsample=d.upsample_stride, decode=d.decode_stride)
    if with_encoder:
        base = OFFICIAL["dinov2.models.vision_transformer"]["DinoVisionTransformer"](config.encoder)
        base.load_state_dict(synthetic_official_state_dict(config.encoder, seed=seed))
        entries["encoder"] = OFFICIAL["models.dino"]["DinoV2Encoder"](base)
    with torch.no_grad():
        for name in ("predictor", "action_encoder", "proprio_encoder", "decoder"):
            for param in entries[name].parameters() if name in entries else ():
                param.add_(0.1 * torch.randn_like(param))  # norms and biases not at their init values
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=1e-3)  # saved too, as officially
    predictor(torch.randn(1, p.num_tokens, p.token_dim)).sum().backward()
    optimizer.step()
    entries["predictor_optimizer"] = optimizer
    return entries


@pytest.mark.parametrize("with_encoder", [True, False], ids=["with-encoder-and-decoder", "predictor-only"])
def test_official_checkpoint_converts_to_equal_weights_and_equal_outputs(tmp_path, with_encoder):
    config = replace(SMALL_POINTMAZE, alpha=1.0, decoder=SMALL_DECODER if with_encoder else None)
    entries = official_entries(config, with_encoder=with_encoder, with_decoder=with_encoder)
    official_save(tmp_path / "model_latest.pth", entries)
    assert "models.vit" not in sys.modules  # loading below cannot import the official classes

    official = read_official(tmp_path / "model_latest.pth")
    assert infer_config(official) == config
    assert official.epoch == 12 and "predictor_optimizer" in official.skipped
    model = DinoWorldModel(config).eval()
    state = model_state_dict(convert_official(tmp_path / "model_latest.pth"))
    if not with_encoder:
        state.update({f"encoder.{k}": v for k, v in model.encoder.state_dict().items()})
    model.load_state_dict(state, strict=True)

    ours = model.state_dict()
    torch.testing.assert_close(ours["predictor.pos_embed"], entries["predictor"].pos_embedding, rtol=0, atol=0)
    layer = entries["predictor"].transformer.layers[1]
    assert torch.equal(ours["predictor.blocks.1.attn.qkv.weight"], layer[0].to_qkv.weight)
    assert torch.equal(ours["predictor.blocks.1.mlp.fc2.bias"], layer[1].net[4].bias)
    assert torch.equal(ours["action_encoder.proj.weight"], entries["action_encoder"].patch_embed.weight[..., 0])
    if with_encoder:
        assert torch.equal(ours["encoder.blocks.1.ls2.gamma"], entries["encoder"].base_model.blocks[1].ls2.gamma)
        assert torch.equal(ours["decoder.dec.blocks.1.conv.3.weight"], entries["decoder"].dec.blocks[1].conv[3].weight)

    p = config.predictor
    tokens = torch.randn(3, p.num_tokens, p.token_dim)
    actions, proprio = torch.randn(3, p.history, p.action_input_dim), torch.randn(3, p.history, p.proprio_dim)
    with torch.no_grad():
        entries["predictor"].eval()
        torch.testing.assert_close(model.predictor(tokens), entries["predictor"](tokens), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.action_encoder(actions), entries["action_encoder"](actions), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.proprio_encoder(proprio), entries["proprio_encoder"](proprio), rtol=1e-5, atol=1e-6)
        if with_encoder:
            grid = torch.randn(2, 64, 4, 4)
            official_images = entries["decoder"].dec(entries["decoder"].upsample_b(grid))
            ours_images = model.decoder(grid.permute(0, 2, 3, 1).reshape(2, 1, 16, 64))[:, 0]
            torch.testing.assert_close(ours_images, official_images, rtol=1e-5, atol=1e-5)


def test_convert_main_writes_our_checkpoint_that_loads(tmp_path, capsys):
    config = replace(SMALL_WALL, alpha=1.0)
    official_save(tmp_path / "model_latest.pth", official_entries(config, with_encoder=False, with_decoder=False))
    assert convert_main(str(tmp_path / "model_latest.pth"), str(tmp_path / "ours.pt")) == 0
    printed = capsys.readouterr().out
    assert "converted" in printed and "H 1" in printed and "encoder: not in the file" in printed
    dinov2 = synthetic_official_state_dict(VIT_TINY, seed=2)
    _, loaded_config, extra = load_checkpoint(tmp_path / "ours.pt", encoder_state_dict=dinov2)
    assert loaded_config == config and extra["official_epoch"] == 12


class Hostile:
    """Unpickling this runs ``os.system`` (or ``eval``) in an unrestricted unpickler."""

    def __init__(self, target: Path, via: str = "system"):
        self.target, self.via = target, via

    def __reduce__(self):
        if self.via == "eval":
            return (eval, (f"__import__('os').system('echo pwned > {self.target}')",))
        return (os.system, (f"echo pwned > {self.target}",))


@pytest.mark.parametrize("where, via", [("top", "system"), ("nested", "system"), ("nested", "eval")])
def test_hostile_reduce_is_refused_and_never_runs(tmp_path, where, via):
    target = tmp_path / "pwned"
    entries = official_entries(replace(SMALL_WALL, alpha=1.0), with_encoder=False, with_decoder=False)
    if where == "top":
        entries["predictor"] = Hostile(target, via)
    else:
        entries["predictor"].transformer.layers[0][0].extra = Hostile(target, via)  # inside a module's __dict__
    official_save(tmp_path / "model_latest.pth", entries)
    with pytest.raises(UnsafeCheckpointError, match="not on the allow-list") as error:
        convert_official(tmp_path / "model_latest.pth")
    refused = "builtins.eval" if via == "eval" else f"{os.system.__module__}.system"
    assert f"refusing to load {refused} from checkpoint {tmp_path / 'model_latest.pth'}" in str(error.value)
    assert not target.exists()
    assert convert_main(str(tmp_path / "model_latest.pth"), str(tmp_path / "ours.pt")) == 2
    assert not target.exists() and not (tmp_path / "ours.pt").exists()


def test_convert_main_reports_unsafe_file_on_stderr(tmp_path, capsys):
    target = tmp_path / "pwned"
    torch.save({"predictor": Hostile(target)}, tmp_path / "bad.pth")
    assert convert_main(str(tmp_path / "bad.pth"), None) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgerun convert dino-wm: refusing to load") and "system" in err
    assert not target.exists()


# ------------------------------------------------------------------------------------------ ONNX


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_rollout_exports_to_onnx_with_dynamic_batch_and_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    config = SMALL_POINTMAZE
    p = config.predictor
    model = small_model(config, seed=4)
    module = RolloutModule(model).eval()

    def inputs(batch: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        return (
            torch.randn(batch, p.history, p.num_patches, p.visual_dim, generator=g),
            torch.randn(batch, p.history, p.emb_dim, generator=g),
            torch.randn(batch, 4, p.action_input_dim, generator=g),
            torch.randn(batch, p.history - 1, p.action_input_dim, generator=g),
        )

    names = ["visual", "proprio_emb", "actions", "past_actions"]
    start = time.perf_counter()
    torch.onnx.export(
        module, inputs(2, 0), str(tmp_path / "rollout.onnx"), dynamo=False, opset_version=17,
        input_names=names, output_names=["visual_pred", "proprio_pred"],
        dynamic_axes={name: {0: "batch"} for name in names + ["visual_pred", "proprio_pred"]},
    )  # fmt: skip
    session = ort.InferenceSession(str(tmp_path / "rollout.onnx"), providers=["CPUExecutionProvider"])
    print(f"ONNX export + session: {time.perf_counter() - start:.2f} s")
    for batch in (5, 300):
        arrays = inputs(batch, batch)
        with torch.no_grad():
            expected = module(*arrays)
        got = session.run(None, {name: a.numpy() for name, a in zip(names, arrays)})
        assert got[0].shape == (batch, 4, p.num_patches, p.visual_dim) and got[1].shape == (batch, 4, p.emb_dim)
        for g_out, e_out in zip(got, expected):
            np.testing.assert_allclose(g_out, e_out.numpy(), rtol=0, atol=1e-4)
