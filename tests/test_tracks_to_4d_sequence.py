"""TracksTo4D on whole clips: windows chained with their depths, ``edgerun reconstruct`` on track
files, folders and a camera, its refusals, the held-out family evaluation and the scene families."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from edgerun.calibration.camera import Intrinsics
from edgerun.cli import main
from edgerun.evaluation.tracks_to_4d.families import FamilyEvalConfig, run_evaluation, scene_metrics
from edgerun.evaluation.tracks_to_4d.metrics import ate, depths
from edgerun.export.onnx_export import export_model
from edgerun.models.tracks_to_4d.geometry import Sim3
from edgerun.cli.reconstruct import read_tracks_file
from edgerun.pipelines.tracks_to_4d.reconstruct import WindowReconstruction, network_input
from edgerun.pipelines.tracks_to_4d.sequence import reconstruct_tracks, window_spans
from edgerun.sim.point_scenes import FAMILIES, HOLDOUT_FAMILIES, TRAIN_FAMILIES, SceneConfig, family_config, generate_scene
from edgerun.training.kit import family_names
from edgerun.training.tracks_to_4d.train import frame_range, training_batch


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TruthInRandomFrames:
    """A perfect network whose every window comes in its own world frame and scale (as the real
    one's do): finds the window in the scene by its tracks and returns the truth moved by a random
    similarity."""

    min_frames = 2

    def __init__(self, scene, tracks: np.ndarray | None = None):
        self.scene, self.rng = scene, np.random.default_rng(0)
        self.tracks = scene.tracks if tracks is None else tracks  # what reconstruct_tracks is given

    def __call__(self, tracks_px: np.ndarray, K: np.ndarray):
        frames = tracks_px.shape[2]
        for start in range(self.tracks.shape[2] - frames + 1):
            window = self.tracks[:, :, start : start + frames]
            rows = [np.flatnonzero((window == track).all(axis=(1, 2))) for track in tracks_px]
            if all(len(r) for r in rows):
                break
        rows = [int(r[0]) for r in rows]
        transform = Sim3(float(self.rng.uniform(0.2, 5.0)), Rotation.random(random_state=self.rng).as_matrix(), self.rng.normal(size=3))
        poses = transform.apply_to_cam_from_world(self.scene.cam_from_world[start : start + frames])
        points = transform.apply(self.scene.points_world[start : start + frames][:, rows].reshape(-1, 3)).reshape(frames, len(rows), 3)
        return WindowReconstruction(poses, points, np.ones(len(rows)), np.ones(frames)), K


def test_window_spans_overlap_by_half_and_end_at_the_last_frame():
    assert window_spans(40, 20) == [(0, 20), (10, 20), (20, 20)]
    assert window_spans(45, 20) == [(0, 20), (10, 20), (20, 20), (25, 20)]
    assert window_spans(15, 20) == [(0, 15)] and window_spans(40, 0) == [(0, 40)]


def test_chained_windows_give_the_true_trajectory_and_depths_in_one_frame_and_scale():
    scene = generate_scene(np.random.default_rng(3), SceneConfig(frames=40, points=80))
    result = reconstruct_tracks(TruthInRandomFrames(scene), scene.tracks, scene.K, window=20)
    assert [w.start for w in result.windows] == [0, 10, 20] and (result.segment == 0).all()
    assert ate(result.cam_from_world, scene.cam_from_world) < 1e-8
    truth = depths(scene.points_world, scene.cam_from_world).T  # (N, T)
    covered = np.isfinite(result.depth)
    ratio = result.depth[covered] / truth[covered]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-8)  # one scale for the whole clip
    assert covered.mean() > 0.9


def test_a_window_that_cannot_be_reconstructed_is_reported_and_starts_a_new_segment():
    scene = generate_scene(np.random.default_rng(4), SceneConfig(frames=40, points=80))
    tracks = scene.tracks.copy()
    tracks[:, 2, 10:30] = 0.0  # every track lost for 20 frames: the middle window sees nothing
    result = reconstruct_tracks(TruthInRandomFrames(scene, tracks), tracks, scene.K, window=20)
    skipped = [w for w in result.windows if w.reason]
    assert [(w.start, w.frames) for w in skipped] == [(10, 20)] and skipped[0].skipped
    assert skipped[0].reason == "frames 10-29: at most 0 tracks visible in a frame (at least 16 needed, in two or more consecutive frames)"
    # the frames that see nothing get no invented pose, and the windows either side do not reach into them
    assert (result.segment[:10] == 0).all() and (result.segment[10:30] == -1).all() and (result.segment[30:] == 1).all()
    assert np.isnan(result.cam_from_world[10:30]).all() and np.isnan(result.depth[:, 10:30]).all()
    assert [(w.start, w.frames, w.skipped) for w in result.windows] == [(0, 10, False), (10, 20, True), (30, 10, False)]


# ------------------------------------------------------------------------------- edgerun reconstruct


def write_clip(path, scene, **extra):
    np.savez(path, tracks=scene.tracks, K=scene.K, **extra)
    return path


@pytest.mark.parametrize("content, message", [
    ({"other": np.zeros(3)}, "no 'tracks' array (keys: other)"),
    ({"tracks": np.zeros((5, 2, 10))}, "'tracks' must be numeric (N, 3, T >= 2)"),
    ({"tracks": np.zeros((10, 5, 3))}, "got float64 (10, 5, 3); frames first, (T, N, 3)? then save tracks.transpose(1, 2, 0)"),
    ({"tracks": np.full((5, 3, 10), np.nan)}, "NaN or infinite values"),
    ({"tracks": np.zeros((5, 3, 10)), "K": np.eye(2)}, "'K' must be a finite 3x3 matrix"),
])
def test_track_files_in_another_layout_are_refused_with_the_reason(tmp_path, content, message):
    np.savez(tmp_path / "clip.npz", **content)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_tracks_file(tmp_path / "clip.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"^not an .npz archive; expected one with tracks \(N, 3, T\)$"):
        read_tracks_file(tmp_path / "broken.npz")


def test_reconstruct_writes_every_good_file_of_a_folder_and_names_the_bad_one(tmp_path, t4d_checkpoint, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    scene = generate_scene(np.random.default_rng(5), SceneConfig(frames=30, points=60))
    write_clip(folder / "good.npz", scene, ignored=np.arange(3))
    np.savez(folder / "bad.npz", tracks=np.zeros((4, 2, 30)))
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", str(folder), "--out", str(tmp_path / "out"), "--refine", "ba", "--checkpoint", str(t4d_checkpoint)])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert f"edgerun reconstruct: {folder / 'bad.npz'}: 'tracks' must be numeric" in captured.err  # the file, named once
    result = np.load(tmp_path / "out" / "good.npz")
    assert result["R"].shape == (30, 3, 3) and result["t"].shape == (30, 3) and result["depth"].shape == (60, 30)
    np.testing.assert_array_equal(result["K"], scene.K)
    np.testing.assert_allclose(np.einsum("tij,tkj->tik", result["R"], result["R"]), np.tile(np.eye(3), (30, 1, 1)), atol=1e-6)
    assert list(result["window_start"]) == [0, 10] and (result["window_feedforward_s"] > 0).all()
    lines = [json.loads(line) for line in (tmp_path / "out" / "reconstruct.jsonl").read_text().splitlines()]
    assert [line["input"] for line in lines] == ["good"] and lines[0]["frames"] == 30 and lines[0]["windows"] == 2
    assert not (tmp_path / "out" / "bad.npz").exists()


def test_reconstruct_tracks_a_camera_with_klt(tmp_path, t4d_checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", "synthetic://scene?width=160&height=120", "--max-frames", "12", "--grid", "8",
              "--out", str(tmp_path), "--checkpoint", str(t4d_checkpoint)])
    assert exit_.value.code == 0
    result = np.load(tmp_path / "scene.npz")
    assert result["R"].shape == (12, 3, 3) and result["depth"].shape[0] == len(result["track_ids"]) > 16
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["frames"] == 12


def test_reconstruct_reports_an_input_with_nothing_to_reconstruct_and_rewrites_its_log_each_run(tmp_path, t4d_checkpoint, capsys):
    scene = generate_scene(np.random.default_rng(5), SceneConfig(frames=20, points=40))
    write_clip(tmp_path / "good.npz", scene)
    blind = scene.tracks.copy()
    blind[:, 2] = 0.0
    np.savez(tmp_path / "blind.npz", tracks=blind, K=scene.K)
    for _ in range(2):
        with pytest.raises(SystemExit) as exit_:
            main(["reconstruct", str(tmp_path), "--out", str(tmp_path / "out"), "--checkpoint", str(t4d_checkpoint)])
        assert exit_.value.code == 2
        assert "blind.npz: no window could be reconstructed (frames 0-19: at most 0 tracks visible" in capsys.readouterr().err
    assert not (tmp_path / "out" / "blind.npz").exists()
    assert [json.loads(line)["input"] for line in (tmp_path / "out" / "reconstruct.jsonl").read_text().splitlines()] == ["good"]


def test_reconstruct_refuses_a_calibration_of_another_image_size_and_fine_tuning_an_engine(tmp_path, t4d_checkpoint, capsys):
    Intrinsics(np.array([[200.0, 0, 80], [0, 200.0, 60], [0, 0, 1]]), np.zeros(5), (160, 120)).save(tmp_path / "small.yaml")
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", "synthetic://scene?width=320&height=240", "--max-frames", "6", "--grid", "6",
              "--intrinsics", str(tmp_path / "small.yaml"), "--out", str(tmp_path / "out"), "--checkpoint", str(t4d_checkpoint)])
    assert exit_.value.code == 2 and "is calibrated for 160x120, the frames are 320x240" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", "synthetic://scene", "--engine", "model.onnx", "--refine", "ft", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "--refine ft fine-tunes the torch network" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", "synthetic://scene", "--window", "3", "--out", str(tmp_path / "out")])  # the shipped network
    assert exit_.value.code == 2 and "--window 3: the network takes windows of at least 4 frames" in capsys.readouterr().err


def test_the_network_sees_visibility_as_0_or_1_whatever_the_tracker_wrote():
    scene = generate_scene(np.random.default_rng(5), SceneConfig(frames=12, points=30))
    probabilities = scene.tracks.copy()
    probabilities[:, 2] = np.where(scene.tracks[:, 2] > 0.5, 0.8, 0.2)
    as_bytes = scene.tracks * np.array([1.0, 1.0, 255.0])[None, :, None]  # 0/255
    for other in (probabilities, as_bytes):
        np.testing.assert_array_equal(network_input(other, scene.K)[0], network_input(scene.tracks, scene.K)[0])


@pytest.mark.parametrize("source", ["clips", "clips/clip.npz", "clips/walk.mp4"])
def test_reconstruct_refuses_the_inputs_folder_as_out(tmp_path, monkeypatch, capsys, source):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clips").mkdir()
    clip = write_clip(tmp_path / "clips" / "clip.npz", generate_scene(np.random.default_rng(5), SceneConfig(frames=12, points=40)))
    (tmp_path / "clips" / "walk.mp4").write_bytes(b"a video whose result, walk.npz, would land among the track files")
    before = clip.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", source, "--out", str(tmp_path / "clips"), "--checkpoint", "does-not-exist.pt"])
    assert exit_.value.code == 2 and "is the folder of the inputs" in capsys.readouterr().err
    assert clip.read_bytes() == before and sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["clip.npz", "walk.mp4"]


@pytest.mark.parametrize("args, message", [
    (["missing.npz"], "no such file or folder"),
    (["notes.txt"], "expected an .npz of tracks"),
    (["empty"], "a folder without .npz track files"),
])
def test_reconstruct_refuses_sources_it_cannot_read_before_loading_the_model(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", *args, "--out", "out", "--checkpoint", "does-not-exist.pt"])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# ----------------------------------------------------------------------------------- held-out families


def test_holdout_family_evaluation_reports_each_method_beside_the_trivial_baselines(t4d_checkpoint):
    summary = run_evaluation(FamilyEvalConfig(checkpoint=str(t4d_checkpoint), scenes=1, window_lengths=(10,), points=120), progress=False)
    assert summary["scenes"] == len(HOLDOUT_FAMILIES)
    for key in ("ate_feedforward", "ate_ba", "ate_classical", "ate_no_motion", "absrel_feedforward", "absrel_ba", "absrel_constant_depth",
                "absrel_static_feedforward", "absrel_static_ba"):
        assert np.isfinite(summary[key]), key
    assert summary["ate_ba"] < summary["ate_no_motion"]  # even from an untrained network's start
    assert set(summary["by_family_frames"]) == {f"{family}/T=10" for family in HOLDOUT_FAMILIES}
    assert summary["ba_seconds_per_window_p50"] is None  # no 20-frame window here
    assert len(summary["bars"]) == 6


def test_static_absrel_scores_the_static_points_alone():
    """True depths on the static points and movers placed 3x too deep: AbsRel over every point is
    not 0, over the static points it is."""
    scene = generate_scene(np.random.default_rng(3), family_config(HOLDOUT_FAMILIES[0], frames=10, points=200))
    assert scene.dynamic.any() and not scene.dynamic.all()
    depth = depths(scene.points_world, scene.cam_from_world).T.copy()  # (N, T)
    depth[scene.dynamic] *= 3.0
    metrics = scene_metrics(scene.cam_from_world, depth, scene)
    assert metrics["ate"] < 1e-6 and metrics["absrel_static"] < 1e-9 < 0.05 < metrics["absrel"]


def test_scene_families_are_valid_and_held_out_ones_differ_from_training():
    assert not set(TRAIN_FAMILIES) & set(HOLDOUT_FAMILIES) and set(TRAIN_FAMILIES) | set(HOLDOUT_FAMILIES) == set(FAMILIES)
    train_paths = {FAMILIES[name].camera_path for name in TRAIN_FAMILIES}
    assert all(FAMILIES[name].camera_path not in train_paths for name in HOLDOUT_FAMILIES)
    for name in FAMILIES:
        scene = generate_scene(np.random.default_rng(1), family_config(name, frames=12, points=50))
        assert scene.tracks.shape == (50, 3, 12) and (scene.tracks[:, 2] > 0.5).mean() > 0.5
        assert (depths(scene.points_world, scene.cam_from_world) > 0).all()
    with pytest.raises(ValueError, match="camera_path: expected one of"):
        SceneConfig(camera_path="crane")
    with pytest.raises(ValueError, match="unknown scene family 'desert'"):
        family_config("desert")


def test_training_on_families_draws_one_window_length_per_step_and_refuses_unknown_families():
    tracks, _ = training_batch(0, 3, 4, SceneConfig(points=30), TRAIN_FAMILIES, (10, 40))
    assert tracks.shape[:3] == (4, 30, 3) and 10 <= tracks.shape[3] <= 40
    lengths = {training_batch(0, step, 2, SceneConfig(points=20), TRAIN_FAMILIES, (10, 40))[0].shape[3] for step in range(6)}
    assert len(lengths) > 1
    assert family_names("train,dolly-box", FAMILIES, TRAIN_FAMILIES) == (*TRAIN_FAMILIES, "dolly-box")
    assert family_names("", FAMILIES, TRAIN_FAMILIES) == ()
    with pytest.raises(ValueError, match="unknown bogus"):
        family_names("train,bogus", FAMILIES, TRAIN_FAMILIES)
    assert frame_range("20") == (20, 20) and frame_range("10,40") == (10, 40)
    with pytest.raises(ValueError, match="need 2 <= LOW <= HIGH"):
        frame_range("40,10")


def test_reconstruct_with_an_exported_engine_refuses_another_window_length(tmp_path, capsys):
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "tracks_to_4d" / "model.pt"
    onnx_path, _ = export_model("tracks-to-4d-small", tmp_path, checkpoint=str(shipped))
    scene = generate_scene(np.random.default_rng(6), SceneConfig(frames=30, points=40))
    clip = write_clip(tmp_path / "clip.npz", scene)
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", str(clip), "--out", str(tmp_path / "out"), "--engine", str(onnx_path), "--window", "0"])
    assert exit_.value.code == 2 and "the engine takes windows of 20 frames; use --window 20" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", str(clip), "--out", str(tmp_path / "out"), "--engine", str(onnx_path)])
    assert exit_.value.code == 0 and np.load(tmp_path / "out" / "clip.npz")["R"].shape == (30, 3, 3)
    many = write_clip(tmp_path / "many.npz", generate_scene(np.random.default_rng(6), SceneConfig(frames=20, points=1100)))
    with pytest.raises(SystemExit) as exit_:  # more tracks than the export's bound (1024)
        main(["reconstruct", str(many), "--out", str(tmp_path / "out"), "--engine", str(onnx_path)])
    assert exit_.value.code == 2 and "the engine was exported for at most 1024" in capsys.readouterr().err


def test_reconstruct_finds_the_shipped_model_from_any_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a user's own folder: no checkpoints/ here
    write_clip(tmp_path / "clip.npz", generate_scene(np.random.default_rng(6), SceneConfig(frames=20, points=40)))
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", "clip.npz", "--out", "out"])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert np.load(tmp_path / "out" / "clip.npz")["depth"].shape == (40, 20)
