"""DINOv2 encoder: official ViT-S/14 weights load unchanged and the forward matches a hand-written ViT."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgerun.errors import CheckpointMismatchError
from edgerun.models.dino_wm.config import VIT_TINY, VITS14, EncoderConfig
from edgerun.models.dino_wm.encoder import (
    DinoV2Encoder,
    interpolate_pos_embed,
    load_official_state_dict,
    normalise,
    synthetic_official_state_dict,
)


@pytest.fixture(scope="module")
def vits14() -> DinoV2Encoder:
    model = DinoV2Encoder(VITS14).eval()
    return load_official_state_dict(model, synthetic_official_state_dict(VITS14, seed=0))


def tiny_model(seed: int = 1, dtype: torch.dtype = torch.float32) -> tuple[DinoV2Encoder, dict[str, torch.Tensor]]:
    state_dict = synthetic_official_state_dict(VIT_TINY, seed=seed)
    model = load_official_state_dict(DinoV2Encoder(VIT_TINY).eval(), state_dict).to(dtype)
    return model, {key: value.to(dtype) for key, value in state_dict.items()}


def official_pos_embed(pos_embed: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """facebookresearch/dinov2 ``interpolate_pos_encoding``, written out for one (height, width) image."""
    N = pos_embed.shape[1] - 1
    M = int(math.sqrt(N))
    h0, w0 = height // patch, width // patch
    if h0 * w0 == N and height == width:
        return pos_embed
    dim = pos_embed.shape[-1]
    patch_pos = F.interpolate(
        pos_embed[:, 1:].float().reshape(1, M, M, dim).permute(0, 3, 1, 2),
        scale_factor=((h0 + 0.1) / M, (w0 + 0.1) / M),
        mode="bicubic",
        antialias=False,
    )
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat((pos_embed[:, :1], patch_pos), dim=1).to(pos_embed.dtype)


def manual_attention(x: torch.Tensor, sd: dict[str, torch.Tensor], prefix: str, num_heads: int) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V with the official fused qkv layout, no SDPA."""
    B, N, C = x.shape
    qkv = x @ sd[prefix + "qkv.weight"].T + sd[prefix + "qkv.bias"]
    q, k, v = qkv.reshape(B, N, 3, num_heads, C // num_heads).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(C // num_heads), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(B, N, C)
    return out @ sd[prefix + "proj.weight"].T + sd[prefix + "proj.bias"]


def manual_forward(images: torch.Tensor, sd: dict[str, torch.Tensor], config: EncoderConfig) -> torch.Tensor:
    """The official DINOv2 forward_features()["x_norm_patchtokens"], from the state dict alone."""
    D, eps = config.embed_dim, config.ln_eps
    x = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=config.patch_size)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat((sd["cls_token"].expand(len(x), -1, -1), x), dim=1)
    x = x + official_pos_embed(sd["pos_embed"], images.shape[-2], images.shape[-1], config.patch_size)
    for i in range(config.depth):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (D,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps)
        x = x + sd[b + "ls1.gamma"] * manual_attention(h, sd, b + "attn.", config.num_heads)
        h = F.layer_norm(x, (D,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps)
        h = F.gelu(h @ sd[b + "mlp.fc1.weight"].T + sd[b + "mlp.fc1.bias"])
        x = x + sd[b + "ls2.gamma"] * (h @ sd[b + "mlp.fc2.weight"].T + sd[b + "mlp.fc2.bias"])
    x = F.layer_norm(x, (D,), sd["norm.weight"], sd["norm.bias"], eps)
    return x[:, 1:]


def test_official_vits14_state_dict_loads_strict_and_gives_196_tokens_of_384(vits14: DinoV2Encoder) -> None:
    assert sum(p.numel() for p in vits14.parameters()) == 22_056_576  # dinov2_vits14's count
    assert vits14.pos_embed.shape == (1, 1 + 37 * 37, 384)  # stored at the checkpoint's 518 / 14 grid
    with torch.no_grad():
        tokens = vits14(torch.randn(2, 3, 196, 196, generator=torch.Generator().manual_seed(0)))
    assert tokens.shape == (2, 196, 384)
    assert torch.isfinite(tokens).all()


def test_state_dict_round_trips_without_the_interpolated_buffer(vits14: DinoV2Encoder) -> None:
    assert set(vits14.state_dict()) == set(synthetic_official_state_dict(VITS14))
    assert "pos_embed_at_input" not in vits14.state_dict()


def test_pos_embed_interpolation_matches_the_official_formula(vits14: DinoV2Encoder) -> None:
    expected = official_pos_embed(vits14.pos_embed.detach(), 196, 196, 14)
    assert vits14.pos_embed_at_input.shape == (1, 1 + 14 * 14, 384)
    torch.testing.assert_close(vits14.pos_embed_at_input, expected, rtol=0, atol=0)
    torch.testing.assert_close(vits14.pos_embed_at_input[:, 0], vits14.pos_embed[:, 0].detach(), rtol=0, atol=0)
    # At the checkpoint's own grid the stored embedding is used as is, like the official model.
    same_grid = interpolate_pos_embed(vits14.pos_embed.detach(), 37, 37)
    assert torch.equal(same_grid, vits14.pos_embed.detach())


def test_attention_matches_manual_softmax_qk_v() -> None:
    model, sd = tiny_model(seed=2, dtype=torch.float64)
    x = torch.randn(3, 17, VIT_TINY.embed_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = model.blocks[1].attn(x)
    torch.testing.assert_close(got, manual_attention(x, sd, "blocks.1.attn.", VIT_TINY.num_heads))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tiny_encoder_matches_a_hand_written_vit(dtype: torch.dtype) -> None:
    model, sd = tiny_model(seed=4, dtype=dtype)
    images = torch.randn(2, 3, 56, 56, dtype=dtype, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = model(images)
        features = model.forward_features(images)
    expected = manual_forward(images, sd, VIT_TINY)
    assert got.shape == (2, 16, VIT_TINY.embed_dim)
    tolerance = {} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(got, expected, **tolerance)
    torch.testing.assert_close(features["x_norm_patchtokens"], got, rtol=0, atol=0)
    assert features["x_norm_clstoken"].shape == (2, VIT_TINY.embed_dim)


def test_set_input_size_changes_the_token_grid_and_matches_the_official_forward() -> None:
    model, sd = tiny_model(seed=6, dtype=torch.float64)
    for size, tokens in ((98, 49), (70, 25), (28, 4)):
        model.set_input_size(size)
        images = torch.randn(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            got = model(images)
        assert got.shape == (1, tokens, VIT_TINY.embed_dim)
        torch.testing.assert_close(got, manual_forward(images, sd, VIT_TINY))


def test_plain_load_state_dict_also_refreshes_the_interpolated_pos_embed() -> None:
    model = DinoV2Encoder(VIT_TINY)
    state_dict = synthetic_official_state_dict(VIT_TINY, seed=7)
    model.load_state_dict(state_dict, strict=True)
    torch.testing.assert_close(model.pos_embed_at_input, official_pos_embed(state_dict["pos_embed"], 56, 56, 14))


def test_missing_key_error_names_the_key() -> None:
    state_dict = synthetic_official_state_dict(VIT_TINY)
    del state_dict["blocks.1.ls2.gamma"]
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): blocks\.1\.ls2\.gamma"):
        load_official_state_dict(DinoV2Encoder(VIT_TINY), state_dict)


def test_renamed_key_error_names_both_names() -> None:
    state_dict = synthetic_official_state_dict(VIT_TINY)
    state_dict["blocks.0.attn.in_proj_weight"] = state_dict.pop("blocks.0.attn.qkv.weight")
    with pytest.raises(CheckpointMismatchError) as error:
        load_official_state_dict(DinoV2Encoder(VIT_TINY), state_dict)
    assert "missing keys (1): blocks.0.attn.qkv.weight" in str(error.value)
    assert "unexpected keys (1): blocks.0.attn.in_proj_weight" in str(error.value)


def test_shape_mismatch_error_names_key_and_both_shapes() -> None:
    state_dict = synthetic_official_state_dict(VITS14)  # a 37 x 37 pos_embed into a 7 x 7 model
    with pytest.raises(CheckpointMismatchError, match=r"pos_embed: expected \(1, 50, 64\), got \(1, 1370, 384\)"):
        load_official_state_dict(DinoV2Encoder(VIT_TINY), state_dict)


def test_register_checkpoint_and_prefixed_keys_get_hints() -> None:
    state_dict = synthetic_official_state_dict(VIT_TINY)
    with pytest.raises(CheckpointMismatchError, match="register_tokens.*no registers"):
        load_official_state_dict(DinoV2Encoder(VIT_TINY), {**state_dict, "register_tokens": torch.zeros(1, 4, 64)})
    with pytest.raises(CheckpointMismatchError, match="strip that prefix"):
        load_official_state_dict(DinoV2Encoder(VIT_TINY), {f"backbone.{k}": v for k, v in state_dict.items()})


def test_wrong_input_size_gives_a_clear_error() -> None:
    model = DinoV2Encoder(VIT_TINY)
    with pytest.raises(ValueError, match=r"expected images of 56x56 .* got 224x224"):
        model(torch.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match=r"expected images \(B, 3, H, W\), got \(1, 56, 56, 3\)"):
        model(torch.zeros(1, 56, 56, 3))
    with pytest.raises(ValueError, match="not a positive multiple of the patch size 14"):
        model.set_input_size(50)


def test_normalise_maps_uint8_rgb_to_minus_one_one_at_the_input_size() -> None:
    images = torch.zeros(2, 224, 224, 3, dtype=torch.uint8)
    images[1] = 255
    images[0, :, :, 1] = 255  # green
    x = normalise(images, size=196)
    assert x.shape == (2, 3, 196, 196) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, 0], torch.full((196, 196), -1.0))
    torch.testing.assert_close(x[0, 1], torch.full((196, 196), 1.0))
    torch.testing.assert_close(x[1], torch.ones(3, 196, 196))
    same_size = normalise(torch.full((1, 56, 56, 3), 128, dtype=torch.uint8), size=56)
    torch.testing.assert_close(same_size, torch.full((1, 3, 56, 56), 128 / 255 * 2 - 1))
    with pytest.raises(ValueError, match=r"expected uint8 RGB \(B, H, W, 3\), got torch.float32"):
        normalise(torch.zeros(1, 3, 56, 56))


def test_tiny_config_encodes_uint8_frames_to_patch_tokens() -> None:
    model, _ = tiny_model()
    images = normalise(torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8), size=VIT_TINY.input_size)
    with torch.no_grad():
        tokens = model(images)
    assert tokens.shape == (4, 16, 64) and torch.isfinite(tokens).all()
