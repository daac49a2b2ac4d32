"""TracksTo4D model side: network contract, losses, synthetic ground truth, checkpoints, training."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from edgerun.errors import CheckpointError, CheckpointMismatchError
from edgerun.evaluation.tracks_to_4d.evaluate import (
    evaluate_scenes,
)
from edgerun.evaluation.tracks_to_4d.metrics import ate
from edgerun.export.onnx_export import export_model
from edgerun.models.tracks_to_4d.checkpoint import (
    load_any,
    load_checkpoint,
    load_official,
    save_checkpoint,
)
from edgerun.models.tracks_to_4d.config import PAPER, SMALL, TracksTo4DConfig
from edgerun.models.tracks_to_4d.geometry import umeyama
from edgerun.models.tracks_to_4d.intrinsics import guess_intrinsics, normalize_tracks
from edgerun.models.tracks_to_4d.losses import camera_warmup_loss, reconstruction_losses
from edgerun.models.tracks_to_4d.network import TracksTo4D, points_world, project
from edgerun.sim.point_scenes import (
    HELD_OUT_SEED,
    TRAIN_FAMILIES,
    SceneConfig,
    generate_scene,
    generate_split,
    project_points,
)
from edgerun.training.tracks_to_4d.supervision import canonical_ground_truth
from edgerun.training.tracks_to_4d.train import (
    TrainConfig,
    train,
    train_main,
)

TINY = TracksTo4DConfig(octaves=4, d_model=32, heads=2, head_dim=16, mlp=64, blocks=1, basis=4, conv_kernel=3)
TINY_SCENE = SceneConfig(frames=8, points=24)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scene_tracks(seed: int = 0, scene: SceneConfig = TINY_SCENE) -> torch.Tensor:
    s = generate_scene(np.random.default_rng(seed), scene)
    return torch.from_numpy(normalize_tracks(s.tracks, s.K)[0])[None]


def _model(config: TracksTo4DConfig = TINY, seed: int = 0) -> TracksTo4D:
    torch.manual_seed(seed)
    return TracksTo4D(config).eval()


def test_output_shapes_unit_first_coefficient_and_positive_gamma():
    tracks = torch.cat((_scene_tracks(0), _scene_tracks(1)))
    out = _model()(tracks)
    b, n, _, t = tracks.shape
    k = TINY.basis
    assert out.rotations.shape == (b, t, 3, 3) and out.translations.shape == (b, t, 3)
    assert out.focal.shape == (b, t) and torch.all(out.focal == 1)
    assert out.coeffs.shape == (b, t, k) and torch.all(out.coeffs[..., 0] == 1)
    assert out.basis.shape == (b, n, k, 3) and out.gamma.shape == (b, n) and torch.all(out.gamma > 0)
    assert points_world(out).shape == (b, t, n, 3)
    uv, depth = project(points_world(out), out.rotations, out.translations, out.focal)
    assert uv.shape == (b, t, n, 2) and depth.shape == (b, t, n) and torch.all(depth >= 0.01)


def test_rotations_are_proper_orthonormal():
    out = _model()(_scene_tracks(2))
    r = out.rotations.double()
    assert torch.allclose(r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand_as(r), atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(r.shape[:2], dtype=torch.float64), atol=1e-5)


def test_points_world_and_projection_follow_the_definitions():
    out = _model()(_scene_tracks(3))
    expected = out.basis[:, None, :, 0] + torch.einsum("btk,bnkc->btnc", out.coeffs[..., 1:], out.basis[:, :, 1:])
    assert torch.allclose(points_world(out), expected, atol=1e-5)
    x = points_world(out)
    cam = torch.einsum("btij,btnj->btni", out.rotations, x) + out.translations[:, :, None]
    uv, _ = project(x, out.rotations, out.translations, out.focal)
    front = cam[..., 2] > 0.01
    assert torch.allclose(uv[front], (cam[..., :2] / cam[..., 2:])[front], atol=1e-4)


def test_point_order_equivariance():
    tracks = _scene_tracks(4)
    model = _model()
    perm = torch.randperm(tracks.shape[1], generator=torch.Generator().manual_seed(0))
    out, permuted = model(tracks), model(tracks[:, perm])
    for name in ("rotations", "translations", "focal", "coeffs"):
        assert torch.allclose(getattr(out, name), getattr(permuted, name), atol=1e-5), name
    assert torch.allclose(out.basis[:, perm], permuted.basis, atol=1e-5)
    assert torch.allclose(out.gamma[:, perm], permuted.gamma, atol=1e-5)


def test_any_number_of_points_and_too_few_frames_is_refused():
    model = _model()
    assert model(_scene_tracks(5)[:, :1]).basis.shape[1] == 1
    with pytest.raises(ValueError, match="T >= "):
        TracksTo4D(replace(TINY, conv_kernel=9))(_scene_tracks(5)[..., :3])
    with pytest.raises(ValueError, match=r"\(B, N, 3, T\)"):
        model(torch.zeros(1, 5, 2, 8))


def test_losses_decrease_on_a_tiny_overfit():
    tracks = _scene_tracks(6)
    model = _model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(40):  # the released camera warm-up first
        optimizer.zero_grad()
        camera_warmup_loss(model(tracks)).backward()
        optimizer.step()
    first = {k: v.item() for k, v in reconstruction_losses(model(tracks), tracks, TINY).items()}
    for _ in range(80):
        optimizer.zero_grad()
        reconstruction_losses(model(tracks), tracks, TINY)["total"].backward()
        optimizer.step()
    last = {k: v.item() for k, v in reconstruction_losses(model(tracks), tracks, TINY).items()}
    assert set(first) == {"total", "static", "reprojection", "negative_depth", "sparsity"}
    assert last["total"] < 0.3 * first["total"]
    assert last["reprojection"] < 0.3 * first["reprojection"]


def test_static_loss_is_the_robust_gamma_weighted_term():
    out = _model()(_scene_tracks(7))
    tracks = _scene_tracks(7)
    visible = tracks[:, :, 2, :].transpose(1, 2) > 0.5
    static = out.basis[:, None, :, 0].expand(-1, tracks.shape[-1], -1, -1)
    uv, _ = project(static, out.rotations, out.translations, out.focal)
    r2 = ((uv - tracks[:, :, :2].permute(0, 3, 1, 2)) ** 2).sum(-1)
    gamma = out.gamma[:, None].expand_as(r2)
    expected = torch.log(gamma + r2 / gamma)[visible].mean()
    assert torch.allclose(reconstruction_losses(out, tracks, TINY)["static"], expected, rtol=1e-5)


def test_synthetic_ground_truth_reprojects_to_the_tracks():
    scene = generate_scene(np.random.default_rng(11), SceneConfig())
    n, t = SceneConfig().points, SceneConfig().frames
    assert scene.tracks.shape == (n, 3, t) and scene.tracks.dtype == np.float32
    assert scene.points_world.shape == (t, n, 3) and scene.cam_from_world.shape == (t, 4, 4)
    assert 0 < scene.dynamic.sum() < n and set(np.unique(scene.tracks[:, 2])) <= {0.0, 1.0}
    pixels, depth = project_points(scene.points_world, scene.cam_from_world, scene.K)
    assert np.all(depth > 0)
    np.testing.assert_allclose(pixels, scene.clean_tracks.transpose(2, 0, 1), atol=1e-3)
    visible = scene.tracks[:, 2].T > 0.5
    good = visible & ~scene.outlier[None]
    error = np.linalg.norm(pixels - scene.tracks[:, :2].transpose(2, 0, 1), axis=-1)
    assert np.percentile(error[good], 99) < 4.0  # only noise (sigma <= 1 px)
    width, height = scene.image_size
    assert np.all((pixels[visible] >= 0) & (pixels[visible] < [width, height]))
    static = scene.points_world[:, ~scene.dynamic]
    assert np.allclose(static, static[:1]) and not np.allclose(scene.points_world[:, scene.dynamic], scene.points_world[:1, scene.dynamic])


def test_supervision_targets_are_the_same_scene_in_the_warmup_gauge():
    scene = generate_scene(np.random.default_rng(12), SceneConfig())
    rotations, translations, points = canonical_ground_truth(scene)
    np.testing.assert_allclose(rotations[0], np.eye(3), atol=1e-9)
    np.testing.assert_allclose(translations[0], [0.0, 0.0, 15.0], atol=1e-9)
    cam = np.einsum("tij,tnj->tni", rotations, points) + translations[:, None]
    assert np.isclose(np.median(cam[0, :, 2]), 15.0)
    pixels = cam[..., :2] / cam[..., 2:] * [scene.K[0, 0], scene.K[1, 1]] + [scene.K[0, 2], scene.K[1, 2]]
    np.testing.assert_allclose(pixels, scene.clean_tracks.transpose(2, 0, 1), atol=1e-3)


def test_synthetic_splits_are_reproducible_and_disjoint():
    a, b, c = generate_split(3, 2, TINY_SCENE), generate_split(3, 2, TINY_SCENE), generate_split(4, 2, TINY_SCENE)
    assert np.array_equal(a[1].tracks, b[1].tracks) and not np.array_equal(a[0].tracks, a[1].tracks)
    assert not np.array_equal(a[0].tracks, c[0].tracks)


def test_normalize_tracks_applies_k_inverse_and_the_papers_guess():
    tracks = np.array([[[100.0, 300.0], [50.0, 250.0], [1.0, 1.0]], [[500.0, 640.0], [480.0, 10.0], [1.0, 0.0]]], dtype=np.float32)
    K = np.array([[400.0, 0, 320], [0, 400.0, 240], [0, 0, 1]])
    norm, used = normalize_tracks(tracks, K)
    np.testing.assert_allclose(norm[0, 0], [(100 - 320) / 400, (300 - 320) / 400])
    np.testing.assert_allclose(norm[:, 2], tracks[:, 2])
    assert used is not None and np.allclose(used, K)
    guess = guess_intrinsics(tracks)  # largest visible x = 500 (640 is not visible), y = 480
    np.testing.assert_allclose(guess, [[490.0, 0, 250.0], [0, 490.0, 240.0], [0, 0, 1]])
    torch_norm, _ = normalize_tracks(torch.from_numpy(tracks)[None])
    np.testing.assert_allclose(torch_norm[0].numpy(), normalize_tracks(tracks, guess)[0], rtol=1e-6)
    with pytest.raises(ValueError, match="no visible"):
        guess_intrinsics(np.zeros((3, 3, 4)))


def test_umeyama_recovers_a_similarity_and_ate_is_zero_for_transformed_poses():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(20, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    transform = umeyama(source, 2.5 * source @ q.T + [1.0, -2.0, 0.5])
    assert np.isclose(transform.scale, 2.5) and np.allclose(transform.rotation, q)
    assert np.allclose(transform.translation, [1.0, -2.0, 0.5])
    scene = generate_scene(rng, TINY_SCENE)
    world_from_new = np.eye(4)
    world_from_new[:3, :3], world_from_new[:3, 3] = q, [3.0, 1.0, -2.0]
    moved = scene.cam_from_world @ world_from_new  # the same cameras in another world frame
    assert ate(moved, scene.cam_from_world) < 1e-6


# ------------------------------------------------------------------------------------ checkpoints


def _official_names(blocks: int) -> list[str]:
    """The release's ``model_state_dict`` keys, written out from its inference.py / simple_vit_1d."""
    names = [f"transformer_my.to_patch_embedding.{i}.{w}" for i in range(3) for w in ("weight", "bias")]
    for axis in ("frames", "points"):
        for i in range(blocks):
            prefix = f"transformer_my.transformer_{axis}.{i}.layers.0"
            names += [f"{prefix}.0.norm.weight", f"{prefix}.0.norm.bias", f"{prefix}.0.to_qkv.weight", f"{prefix}.0.to_out.weight"]
            names += [f"{prefix}.1.net.{j}.{w}" for j in (0, 1, 3) for w in ("weight", "bias")]
    return names + ["conv_final.weight", "conv_final.bias", "fc1.weight", "fc1.bias"]


def _official_file(path, config: TracksTo4DConfig, seed: int = 0) -> dict:
    """A synthetic official checkpoint: the released names and shapes, random values."""
    g = torch.Generator().manual_seed(seed)
    d, inner, k = config.d_model, config.heads * config.head_dim, config.basis
    shapes = {
        "transformer_my.to_patch_embedding.0": (config.token_features,),
        "transformer_my.to_patch_embedding.1.weight": (d, config.token_features),
        "conv_final.weight": (k + 12, d, config.conv_kernel),
        "conv_final.bias": (k + 12,),
        "fc1.weight": (3 * k + 1, d),
        "fc1.bias": (3 * k + 1,),
        "to_qkv.weight": (3 * inner, d),
        "to_out.weight": (d, inner),
        "net.1.weight": (config.mlp, d),
        "net.1.bias": (config.mlp,),
        "net.3.weight": (d, config.mlp),
    }
    state = {}
    for name in _official_names(config.blocks):
        shape = next((s for key, s in shapes.items() if name.startswith(key) or name.endswith(key)), (d,))
        state[name] = torch.randn(*shape, generator=g) * 0.05
    torch.save({"epoch": 7, "model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-4, "params": []}]}, "loss": 0.25}, path)
    return state


def test_official_checkpoint_loads_with_the_released_names_and_shapes(tmp_path):
    path = tmp_path / "official.pt"
    state = _official_file(path, TINY)
    model, config, meta = load_official(path, TINY)
    assert config == TINY and meta == {"epoch": 7, "loss": 0.25}
    ours = model.state_dict()
    assert torch.equal(ours["blocks.0.time.attn.qkv.weight"], state["transformer_my.transformer_frames.0.layers.0.0.to_qkv.weight"])
    assert torch.equal(ours["blocks.0.points.mlp.fc2.bias"], state["transformer_my.transformer_points.0.layers.0.1.net.3.bias"])
    assert torch.equal(ours["frame_head.weight"], state["conv_final.weight"])
    assert load_any(path, TINY)[1] == TINY
    released_heads = replace(TINY, heads=1, head_dim=64)  # the release's heads are 64 wide
    _official_file(path, released_heads)
    inferred, inferred_config, _ = load_official(path)  # config read off the shapes
    assert inferred_config == released_heads
    tracks = _scene_tracks(8)
    assert torch.equal(load_official(path, released_heads)[0](tracks).basis, inferred(tracks).basis)


def test_paper_size_has_the_released_parameter_shapes():
    names = {k: tuple(v.shape) for k, v in TracksTo4D(PAPER).state_dict().items()}
    assert len(names) == len(_official_names(3)) == 70
    assert names["embed.0.weight"] == (76,) and names["embed.1.weight"] == (256, 76)
    assert names["frame_head.weight"] == (24, 256, 31) and names["point_head.weight"] == (37, 256)
    assert names["blocks.2.points.attn.qkv.weight"] == (3 * 16 * 64, 256) and names["blocks.2.time.mlp.fc1.weight"] == (2048, 256)


def test_bad_official_checkpoint_names_every_problem(tmp_path):
    path = tmp_path / "bad.pt"
    state = _official_file(path, TINY)
    del state["fc1.bias"]
    state["transformer_my.transformer_frames.0.norm.weight"] = torch.zeros(32)
    state["conv_final.weight"] = torch.zeros(16, 32, 5)
    torch.save({"epoch": 1, "model_state_dict": state, "optimizer_state_dict": {}, "loss": 1.0}, path)
    with pytest.raises(CheckpointMismatchError) as error:
        load_official(path, TINY)
    message = str(error.value)
    assert "missing keys (1): fc1.bias" in message
    assert "unexpected keys (1): transformer_my.transformer_frames.0.norm.weight" in message
    assert "conv_final.weight: expected (16, 32, 3), got (16, 32, 5)" in message
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="model_state_dict"):
        load_official(tmp_path / "other.pt", TINY)


def test_our_checkpoint_round_trip_and_wrong_format(tmp_path):
    model = _model(seed=3)
    path = save_checkpoint(tmp_path / "m.pt", model, extra={"steps": 5})
    loaded, config, extra = load_checkpoint(path)
    assert config == TINY and extra == {"steps": 5}
    tracks = _scene_tracks(9)
    assert torch.equal(model(tracks).translations, loaded(tracks).translations)
    _official_file(tmp_path / "official.pt", TINY)
    with pytest.raises(CheckpointError, match="load_official"):
        load_checkpoint(tmp_path / "official.pt")
    with pytest.raises(CheckpointError, match="expected"):
        load_any(path, replace(TINY, basis=5))


# --------------------------------------------------------------------------------------- training


def _tiny_train(out, steps: int) -> TrainConfig:
    return TrainConfig(out=str(out), model=TINY, scene=TINY_SCENE, steps=steps, batch=1, camera_warmup_steps=2,
                       checkpoint_every=1, eval_every=100, eval_scenes=1, final_eval_scenes=1)


def test_resumed_training_matches_uninterrupted_training(tmp_path):
    train(_tiny_train(tmp_path / "resumed", 2), progress=False)
    resumed = train(_tiny_train(tmp_path / "resumed", 4), progress=False, resume=True)
    straight = train(_tiny_train(tmp_path / "straight", 4), progress=False)
    a, _, _ = load_checkpoint(resumed.checkpoint)
    b, _, _ = load_checkpoint(straight.checkpoint)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    manifest = json.loads(resumed.manifest.read_text())
    assert manifest["steps"] == 4 and len(manifest["checkpoint"]["sha256"]) == 64
    assert {"reprojection_px", "ate", "ate_identity"} <= set(manifest["metrics"]["held_out"])
    assert resumed.loss_curve.stat().st_size > 0
    history = torch.load(tmp_path / "resumed" / "train_state.pt", weights_only=True)["history"]
    assert [r["step"] for r in history] == [0, 1, 2, 3] and history[0]["phase"] == "camera_warmup"
    assert history[-1]["phase"] == "reconstruction" and "supervised" in history[-1]


def test_train_cli_refuses_to_overwrite_without_resume(tmp_path, capsys):
    (tmp_path / "train_state.pt").write_bytes(b"")
    assert train_main(str(tmp_path), 2, False, 0) == 2
    assert "--resume" in capsys.readouterr().err
    assert train_main(str(tmp_path), 0, False, 0) == 2


# ------------------------------------------------------------------------- shipped model, export

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "tracks_to_4d"


def test_shipped_model_matches_its_manifest_and_beats_trivial_baselines():
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    assert hashlib.sha256((SHIPPED / "model.pt").read_bytes()).hexdigest() == manifest["checkpoint"]["sha256"]
    model, config, _ = load_checkpoint(SHIPPED / "model.pt")
    assert config == SMALL
    metrics = evaluate_scenes(model, generate_split(HELD_OUT_SEED, 6, SceneConfig()))
    assert metrics["ate"] < metrics["ate_identity"]
    assert metrics["depth_abs_rel"] < metrics["depth_abs_rel_constant"]
    assert metrics["reprojection_px"] < 40.0


def test_small_model_exports_to_onnx_with_parity(tmp_path):
    onnx_path, manifest = export_model("tracks-to-4d-small", tmp_path, checkpoint=str(SHIPPED / "model.pt"))
    assert onnx_path.exists() and manifest.dims == {"points": [1, 225, 1024]}
    assert manifest.parity["random"]["max_abs"] < 1e-3
    assert [spec.name for spec in manifest.outputs] == ["rotations", "translations", "focal", "coeffs", "basis", "gamma"]


def test_training_from_a_checkpoint_starts_at_its_weights_on_the_families(tmp_path):
    first = train(_tiny_train(tmp_path / "first", 2), progress=False)
    start, _, _ = load_checkpoint(first.checkpoint)
    config = replace(_tiny_train(tmp_path / "tuned", 1), init_from=str(first.checkpoint), families=TRAIN_FAMILIES, frames=(6, 8), lr=1e-12)
    tuned = train(config, progress=False)
    after, _, _ = load_checkpoint(tuned.checkpoint)
    for key, value in start.state_dict().items():  # one step at a negligible rate: still the checkpoint's weights
        torch.testing.assert_close(after.state_dict()[key], value, atol=1e-6, rtol=0), key
    history = torch.load(tmp_path / "tuned" / "train_state.pt", weights_only=True)["history"]
    assert history[0]["phase"] == "reconstruction"  # its camera warm-up is not run again
    manifest = json.loads(tuned.manifest.read_text())
    assert manifest["data"]["initialised_from"] == str(first.checkpoint) and set(manifest["data"]["train_families"]) == set(TRAIN_FAMILIES)
    with pytest.raises(ValueError, match="model config differs"):
        train(replace(config, out=str(tmp_path / "other"), model=replace(TINY, d_model=16, head_dim=8)), progress=False)
