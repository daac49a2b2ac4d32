"""TracksTo4D pipeline: KLT tracking on rendered frames, windows and chaining, metrics against evo,
bundle adjustment, fine-tuning, the classical baseline and the checks that refuse a bad window."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch
from scipy.optimize._numdiff import approx_derivative
from scipy.spatial.transform import Rotation

from edgerun.evaluation.tracks_to_4d.metrics import ate, depth_metrics, rpe
from edgerun.models.tracks_to_4d.config import TracksTo4DConfig
from edgerun.models.tracks_to_4d.geometry import Sim3, camera_centres
from edgerun.models.tracks_to_4d.intrinsics import normalize_tracks
from edgerun.models.tracks_to_4d.losses import reconstruction_losses
from edgerun.models.tracks_to_4d.network import TracksTo4D
from edgerun.pipelines.tracks_to_4d.classical import classical_reconstruction
from edgerun.pipelines.tracks_to_4d import reconstruct
from edgerun.pipelines.tracks_to_4d.reconstruct import WindowReconstruction, window_problem, with_bundle_adjustment
from edgerun.pipelines.tracks_to_4d.bundle_adjustment import BundleAdjustConfig, BundleAdjustResult, ReprojectionProblem, bundle_adjust, parallax_degrees, rigid_inliers
from edgerun.pipelines.tracks_to_4d.refine import fine_tune
from edgerun.pipelines.tracks_to_4d.tracking import KLTConfig, KLTFrontEnd, KLTTracker, track_sequence
from edgerun.pipelines.tracks_to_4d.windows import WindowConfig, chain_windows
from edgerun.sim.point_scenes import SceneConfig, generate_scene, project_points
from edgerun.sim.textured_scenes import RenderConfig, random_texture, render_sequence, track_ground_truth

TINY = TracksTo4DConfig(octaves=4, d_model=32, heads=2, head_dim=16, mlp=64, blocks=1, basis=4, conv_kernel=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_trajectory(rng: np.random.Generator, frames: int) -> np.ndarray:
    poses = np.tile(np.eye(4), (frames, 1, 1))
    poses[:, :3, :3] = Rotation.from_rotvec(np.cumsum(rng.normal(0, 0.04, (frames, 3)), 0)).as_matrix()
    poses[:, :3, 3] = np.cumsum(rng.normal(0, 0.2, (frames, 3)), 0)
    return poses


def perturbed(poses: np.ndarray, rng: np.random.Generator, rotation: float, translation: float) -> np.ndarray:
    noisy = poses.copy()
    noisy[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, rotation, (len(poses), 3))).as_matrix() @ poses[:, :3, :3]
    noisy[:, :3, 3] += rng.normal(0, translation, (len(poses), 3))
    return noisy


@pytest.fixture(scope="module")
def rendered():
    return render_sequence(5, RenderConfig(width=320, height=240, frames=20, focal=260.0, texture_size=256))


def test_klt_follows_rendered_scene_points_to_subpixel_accuracy(rendered):
    windows = track_sequence(rendered.images)
    assert len(windows) == 1 and windows[0].tracks.shape[1:] == (3, 20)
    window = windows[0]
    truth, _ = track_ground_truth(rendered, window.tracks, window.frames)
    cam = np.einsum("tij,tnj->tni", rendered.cam_from_world[:, :3, :3], truth) + rendered.cam_from_world[:, None, :3, 3]
    projected = cam @ rendered.K.T
    error = np.linalg.norm(projected[..., :2] / projected[..., 2:] - window.tracks[:, :2].transpose(2, 0, 1), axis=-1)
    visible = window.tracks[:, 2].T > 0.5
    assert visible.mean() > 0.6
    assert np.nanmedian(error[visible]) < 0.5
    assert np.nanmean(error[visible] < 2.0) > 0.85


def test_klt_recovers_a_known_image_translation():
    texture = random_texture(np.random.default_rng(0), 400)
    frames = [cv2.warpAffine(texture, np.float32([[1, 0, -1.3 * t], [0, 1, 0.7 * t]]), (320, 240)) for t in range(6)]
    tracker = KLTTracker(KLTConfig(grid=8))
    first = tracker.push(frames[0])
    for frame in frames[1:]:
        last = tracker.push(frame)
    kept = np.isin(first.ids, last.ids)
    assert kept.mean() > 0.9
    shift = last.points - first.points[kept]
    np.testing.assert_allclose(np.median(shift, axis=0), [-6.5, 3.5], atol=0.05)
    assert np.percentile(np.linalg.norm(shift - [-6.5, 3.5], axis=1), 90) < 0.1


def test_forward_backward_check_drops_tracks_an_occluder_covers():
    rng = np.random.default_rng(1)
    background, occluder = random_texture(rng, 320)[:240], random_texture(rng, 120)
    frames = []
    for t in range(16):
        frame = background.copy()
        left = -120 + 12 * t  # slides in from the left edge, 12 px per frame
        if left + 120 > 0:
            frame[60:180, max(left, 0) : left + 120] = occluder[:, max(-left, 0) :]
        frames.append(frame)
    tracker = KLTTracker(KLTConfig(grid=10))
    first = tracker.push(frames[0])
    for frame in frames[1:]:
        last = tracker.push(frame)
    covered = (first.points[:, 0] < 60) & (first.points[:, 1] > 60) & (first.points[:, 1] < 180)  # under the occluder at the end
    clear = (first.points[:, 1] < 50) | (first.points[:, 1] > 190)
    alive = np.isin(first.ids, last.ids)
    assert covered.sum() >= 6 and not alive[covered].any()
    assert alive[clear].mean() > 0.95
    positions = dict(zip(last.ids, last.points))
    drift = [np.linalg.norm(positions[i] - p) for i, p in zip(first.ids, first.points) if i in positions]
    assert max(drift) < 0.5  # every surviving track still sits on its (static) background point


def test_windows_slide_by_stride_and_requery_lost_tracks():
    texture = random_texture(np.random.default_rng(2), 640)
    front_end = KLTFrontEnd(KLTConfig(grid=6, requery_every=20), WindowConfig(length=20, stride=10))
    windows = []
    for t in range(45):  # the camera pans right: points leave at the left edge and are re-queried
        frame = texture[100:340, 4 * t : 4 * t + 320].copy()
        window = front_end.push(frame, 1000 + t)
        if window is not None:
            windows.append(window)
    assert [w.start for w in windows] == [0, 10, 20]
    assert all(w.tracks.shape[1:] == (3, 20) and w.tracks.dtype == np.float32 for w in windows)
    np.testing.assert_array_equal(windows[1].stamps_ns, 1010 + np.arange(20))
    assert windows[2].track_ids.max() >= 36  # new queries at frame 20 for the cells the pan emptied
    assert np.isfinite(windows[2].tracks).all() and set(np.unique(windows[2].tracks[:, 2])) <= {0.0, 1.0}


def test_chaining_recovers_a_known_trajectory_from_windows_in_their_own_frames():
    rng = np.random.default_rng(3)
    truth = random_trajectory(rng, 40)
    starts = [0, 10, 20]
    windows = [
        Sim3(rng.uniform(0.3, 3.0), Rotation.random(random_state=s).as_matrix(), rng.normal(size=3)).apply_to_cam_from_world(truth[s : s + 20])
        for s in starts
    ]
    chained = chain_windows(starts, windows)
    assert chained.shape == (40, 4, 4)
    assert ate(chained, truth) < 1e-9
    with pytest.raises(ValueError, match="shares no frame"):
        chain_windows([0, 30], [truth[:20], truth[30:40]])


def test_ate_and_rpe_match_evo():
    from evo.core import metrics, trajectory

    rng = np.random.default_rng(4)
    reference = random_trajectory(rng, 30)
    estimate = Sim3(2.5, Rotation.random(random_state=4).as_matrix(), np.array([1.0, 2.0, 3.0])).apply_to_cam_from_world(
        perturbed(reference, rng, 0.02, 0.05)
    )

    def evo_trajectory(cam_from_world):
        return trajectory.PoseTrajectory3D(poses_se3=list(np.linalg.inv(cam_from_world)), timestamps=np.arange(30.0))

    ref, est = evo_trajectory(reference), evo_trajectory(estimate)
    est.align(ref, correct_scale=True)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    evo_rpe = {}
    for relation in (metrics.PoseRelation.translation_part, metrics.PoseRelation.rotation_angle_deg):
        metric = metrics.RPE(relation, delta=1)
        metric.process_data((ref, est))
        evo_rpe[relation] = metric.get_statistic(metrics.StatisticsType.rmse)
    rpe_t, rpe_r = rpe(estimate, reference)
    assert ate(estimate, reference) == pytest.approx(ape.get_statistic(metrics.StatisticsType.rmse), rel=1e-6)
    assert rpe_t == pytest.approx(evo_rpe[metrics.PoseRelation.translation_part], rel=1e-6)
    assert rpe_r == pytest.approx(evo_rpe[metrics.PoseRelation.rotation_angle_deg], rel=1e-6)


def test_depth_metrics_use_per_frame_median_scaling():
    rng = np.random.default_rng(5)
    reference = rng.uniform(2, 10, (4, 50))
    scaled = reference * np.array([0.5, 2.0, 3.0, 7.0])[:, None]
    assert depth_metrics(scaled, reference) == pytest.approx((0.0, 1.0))
    farthest = np.argsort(reference, axis=1)[:, -10:]  # a fifth of the points 50 % too far (the medians stay)
    noisy = scaled.copy()
    np.put_along_axis(noisy, farthest, np.take_along_axis(noisy, farthest, 1) * 1.5, 1)
    absrel, delta = depth_metrics(noisy, reference)
    assert absrel == pytest.approx(0.1) and delta == pytest.approx(0.8)


def static_scene(seed: int):
    return generate_scene(np.random.default_rng(seed), SceneConfig(points=120, outlier_fraction=0.0))


def test_bundle_adjustment_reduces_reprojection_error_and_ate_from_a_perturbed_start():
    scene = static_scene(6)
    rng = np.random.default_rng(6)
    tracks_norm, _ = normalize_tracks(scene.tracks, scene.K)
    start = perturbed(scene.cam_from_world, rng, 0.01, 0.15)
    start[0] = scene.cam_from_world[0]
    points = scene.points_world[0] + rng.normal(0, 0.15, (len(scene.dynamic), 3))
    gamma = np.where(scene.dynamic, 10.0, 1.0)  # the network's uncertainty: large on the moving points
    result = bundle_adjust(tracks_norm, start, points, gamma, focal_px=scene.K[0, 0])
    static = ~scene.dynamic & ((scene.tracks[:, 2] > 0.5).sum(1) >= 2)
    assert not (result.adjusted & ~static).any() and result.adjusted.sum() > 0.8 * static.sum()
    assert result.rms_after * scene.K[0, 0] < 2.0 < result.rms_before * scene.K[0, 0]
    assert ate(result.cam_from_world, scene.cam_from_world) < 0.3 * ate(start, scene.cam_from_world)


def test_rigidity_check_keeps_static_tracks_and_drops_most_moving_ones():
    cv2.setRNGSeed(0)
    scene = generate_scene(np.random.default_rng(12), SceneConfig(points=200, outlier_fraction=0.0))
    tracks_norm, _ = normalize_tracks(scene.tracks, scene.K)
    rigid = rigid_inliers(tracks_norm, 3.0 / scene.K[0, 0])
    assert rigid[~scene.dynamic].mean() > 0.85
    assert rigid[scene.dynamic].mean() < 0.3


def test_bundle_adjustment_refuses_a_window_without_static_points():
    scene = static_scene(7)
    tracks_norm, _ = normalize_tracks(scene.tracks[:4], scene.K)
    with pytest.raises(ValueError, match="too few to adjust"):
        bundle_adjust(tracks_norm, scene.cam_from_world, scene.points_world[0, :4])


def test_bundle_adjustment_jacobian_matches_finite_differences():
    rng = np.random.default_rng(3)
    frames, count = 5, 30
    poses = np.tile(np.eye(4), (frames, 1, 1))
    poses[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.2, (frames, 3))).as_matrix()
    poses[:, :3, 3] = rng.normal(0, 0.3, (frames, 3)) + [0, 0, 5]
    frame_of, point_of = (a.ravel() for a in np.meshgrid(np.arange(frames), np.arange(count), indexing="ij"))
    problem = ReprojectionProblem(poses, frame_of, point_of, rng.normal(0, 0.1, (len(frame_of), 2)))
    cameras = problem.initial_cameras() + rng.normal(0, 0.1, (frames - 1, 6))  # rotation increments away from 0
    points = rng.normal(0, 1, (count, 3))
    by_camera, by_point = problem.jacobians(cameras, points)
    residual = lambda c, p: problem.residuals(c, p).ravel()
    numeric_camera = approx_derivative(lambda x: residual(x.reshape(-1, 6), points), cameras.ravel(), method="3-point")
    numeric_point = approx_derivative(lambda x: residual(cameras, x.reshape(-1, 3)), points.ravel(), method="3-point")
    moving = np.flatnonzero(frame_of > 0)
    for row, m in enumerate(moving):
        camera = frame_of[m] - 1
        np.testing.assert_allclose(by_camera[row], numeric_camera[2 * m : 2 * m + 2, 6 * camera : 6 * camera + 6], atol=1e-7)
    for m in range(len(frame_of)):
        p = point_of[m]
        np.testing.assert_allclose(by_point[m], numeric_point[2 * m : 2 * m + 2, 3 * p : 3 * p + 3], atol=1e-7)
    assert not numeric_camera[2 * np.flatnonzero(frame_of == 0)].any()  # the first camera is held fixed


def test_parallax_is_the_widest_angle_between_the_rays_to_a_point():
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, 0, 3] = [0.0, -1.0, -2.0]  # camera centres at x = 0, 1, 2
    points = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1000.0]])
    visible = np.array([[True, False, True], [True, True, False]])
    np.testing.assert_allclose(parallax_degrees(poses, points, visible), [np.degrees(np.arctan(2.0)), np.degrees(np.arctan(1e-3))], rtol=1e-6)


def test_bundle_adjustment_leaves_points_without_parallax_at_the_networks_depth():
    """Points seen from two neighbouring cameras only (here 1.5°, the rest 5-24°, against a 3° floor):
    their depth is noise, so they are not adjusted."""
    scene = static_scene(11)
    tracks = scene.tracks.copy()
    short = np.flatnonzero(~scene.dynamic)[:20]
    tracks[short, 2, 2:] = 0.0  # seen in frames 0 and 1 only
    tracks_norm, _ = normalize_tracks(tracks, scene.K)
    config = BundleAdjustConfig(min_parallax_deg=3.0)
    result = bundle_adjust(tracks_norm, scene.cam_from_world, scene.points_world[0], np.where(scene.dynamic, 10.0, 1.0), scene.K[0, 0], config)
    low = parallax_degrees(scene.cam_from_world, scene.points_world[0], tracks[:, 2] > 0.5) < 3.0
    assert low[short].all() and not result.adjusted[low].any()
    np.testing.assert_array_equal(result.points[low], scene.points_world[0][low])
    assert result.adjusted[~low & ~scene.dynamic].mean() > 0.8


def window_from_scene(scene) -> WindowReconstruction:
    frames = len(scene.cam_from_world)
    return WindowReconstruction(scene.cam_from_world, scene.points_world, np.where(scene.dynamic, 10.0, 1.0), np.ones(frames))


def test_refinement_keeps_the_input_and_says_why_when_there_is_nothing_to_adjust():
    scene = static_scene(7)
    initial = window_from_scene(scene)
    tracks = scene.tracks.copy()
    tracks[4:, 2] = 0.0  # four tracks visible
    outcome = with_bundle_adjustment(initial, tracks, scene.K)
    assert not outcome.refined and outcome.reconstruction is initial and "too few to adjust" in outcome.reason


@pytest.mark.parametrize("damage, reason", [
    ("nan", "diverged"),
    ("worse", "did not lower the reprojection error"),
    ("behind", "behind their camera"),
    ("spread", "depths run off"),
])
def test_refinement_never_returns_a_result_worse_than_its_input(monkeypatch, damage, reason):
    scene = static_scene(8)
    initial = window_from_scene(scene)
    static = ~scene.dynamic

    def damaged(tracks_norm, cam_from_world, points, gamma, focal_px, config, rigid):
        poses, points, rms_after = np.array(cam_from_world), np.array(points), 1e-5  # normalised units: a hundredth of a pixel
        if damage == "nan":
            poses[3, 0, 3] = np.nan
        elif damage == "worse":
            rms_after = 0.1
        elif damage == "behind":
            points[np.flatnonzero(static)[0]] *= -1.0
        else:  # a tenth of the points run off to 50 times their distance (the first camera sits at the origin)
            points[np.flatnonzero(static)[::10]] *= 50.0
        return BundleAdjustResult(poses, points, static.copy(), 1.0, rms_after, 5)

    monkeypatch.setattr(reconstruct, "bundle_adjust", damaged)
    outcome = with_bundle_adjustment(initial, scene.tracks, scene.K, classical_start=False)
    assert not outcome.refined and reason in outcome.reason
    assert outcome.reconstruction is initial and outcome.iterations == 5


def test_refinement_that_restores_a_wide_depth_range_is_kept(monkeypatch):
    # a floor running off to a far wall (depths 4 to 40) that the network saw nearly flat, its depths
    # compressed towards the median as the shipped model's are on such scenes
    scene = static_scene(8)
    rays = scene.points_world[0] / scene.points_world[0, :, 2:]  # the first camera sits at the origin, looking down +z
    points = rays * np.exp(np.random.default_rng(8).uniform(np.log(4.0), np.log(40.0), len(rays)))[:, None]
    pixels, depth = project_points(np.broadcast_to(points, scene.points_world.shape), scene.cam_from_world, scene.K)
    tracks = np.concatenate((pixels.transpose(1, 2, 0), (depth > 0).T[:, None]), axis=1).astype(np.float32)
    median = np.median(points[:, 2])
    compressed = points * (median * (points[:, 2] / median) ** 0.05 / points[:, 2])[:, None]
    frames, count = len(scene.cam_from_world), len(points)
    initial = WindowReconstruction(scene.cam_from_world, np.broadcast_to(compressed, (frames, count, 3)), np.ones(count), np.ones(frames))

    def exact(tracks_norm, cam_from_world, start_points, gamma, focal_px, config, rigid):
        return BundleAdjustResult(np.array(cam_from_world), points.copy(), np.ones(count, bool), 1.0, 1e-5, 5)

    monkeypatch.setattr(reconstruct, "bundle_adjust", exact)
    outcome = with_bundle_adjustment(initial, tracks, scene.K, classical_start=False)
    spread = lambda z: np.percentile(z, 95) / np.median(z)
    assert spread(compressed[:, 2]) < 1.1 and spread(points[:, 2]) > 2.2  # more than twice the network's spread
    assert outcome.refined, outcome.reason
    np.testing.assert_allclose(outcome.reconstruction.points_world[0], points)


def test_refinement_from_a_poor_network_start_takes_the_classical_start_when_it_explains_more_tracks():
    cv2.setRNGSeed(0)
    scene = static_scene(13)
    rng = np.random.default_rng(13)
    poor = window_from_scene(scene)
    poses = perturbed(scene.cam_from_world, rng, 0.15, 2.0)  # 8° and 2 units of error per camera: no basin to converge from
    poses[0] = scene.cam_from_world[0]
    poor = WindowReconstruction(poses, poor.points_world + rng.normal(0, 2.0, poor.points_world.shape[1:]), poor.gamma, poor.focal)
    network_only = with_bundle_adjustment(poor, scene.tracks, scene.K, classical_start=False)
    both = with_bundle_adjustment(poor, scene.tracks, scene.K)
    assert both.refined and both.start == "classical"
    error = lambda outcome: ate(outcome.reconstruction.cam_from_world, scene.cam_from_world)
    assert error(both) < 0.05 < error(network_only)


def test_refinement_from_the_truth_with_noisy_tracks_stays_near_the_truth():
    scene = static_scene(12)
    outcome = with_bundle_adjustment(window_from_scene(scene), scene.tracks, scene.K)
    assert outcome.refined and outcome.reason == "" and outcome.rms_after_px <= outcome.rms_before_px
    assert ate(outcome.reconstruction.cam_from_world, scene.cam_from_world) < 0.03  # the tracks carry 0.2-1 px of noise; the scene lies 6-12 away


def test_classical_baseline_recovers_a_clean_two_view_pose():
    rng = np.random.default_rng(8)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    points = rng.uniform([-3, -2, 5], [3, 2, 12], (150, 3))
    second = np.eye(4)
    second[:3, :3] = Rotation.from_euler("yx", [6, -3], degrees=True).as_matrix()
    second[:3, 3] = [-0.8, 0.1, 0.2]
    poses = np.stack([np.eye(4), second])
    cam = np.einsum("tij,nj->tni", poses[:, :3, :3], points) + poses[:, None, :3, 3]
    pixels = cam @ K.T
    tracks = np.concatenate([(pixels[..., :2] / pixels[..., 2:]).transpose(1, 2, 0), np.ones((150, 1, 2))], axis=1)
    result = classical_reconstruction(tracks, K)
    rotation_error = Rotation.from_matrix(result.cam_from_world[1, :3, :3] @ second[:3, :3].T).magnitude()
    direction = camera_centres(result.cam_from_world)[1] / np.linalg.norm(camera_centres(result.cam_from_world)[1])
    expected = camera_centres(poses)[1] / np.linalg.norm(camera_centres(poses)[1])
    assert np.degrees(rotation_error) < 0.05
    assert np.degrees(np.arccos(np.clip(direction @ expected, -1, 1))) < 0.2
    scale = np.linalg.norm(camera_centres(poses)[1]) / np.linalg.norm(camera_centres(result.cam_from_world)[1])
    np.testing.assert_allclose(result.points * scale, points, atol=1e-3 * points.max())


def test_classical_baseline_tracks_a_synthetic_window_far_better_than_standing_still():
    scene = static_scene(9)
    result = classical_reconstruction(scene.tracks, scene.K)
    assert result.resected.all()
    assert ate(result.cam_from_world, scene.cam_from_world) < 0.3 * ate(np.tile(np.eye(4), (20, 1, 1)), scene.cam_from_world)


def test_fine_tuning_lowers_the_window_loss_and_leaves_the_model_unchanged():
    torch.manual_seed(0)
    model = TracksTo4D(TINY).eval()
    scene = static_scene(10)
    tracks = torch.from_numpy(normalize_tracks(scene.tracks, scene.K)[0])[None]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        loss_before = reconstruction_losses(model(tracks), tracks, TINY)["total"].item()
    tuned = fine_tune(model, tracks, TINY, steps=15, lr=1e-3)
    assert reconstruction_losses(tuned, tracks, TINY)["total"].item() < loss_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t, K: (np.where(np.arange(len(t))[:, None, None] == 3, np.nan, t), K), "1 of 60 tracks have NaN"),
        (lambda t, K: (np.concatenate([t[:, :2], np.zeros_like(t[:, 2:])], 1), K), "only 0 tracks are visible"),
        (lambda t, K: (t, K @ np.diag([1.0, 1.0, 1.0]) + np.array([[0, 0, 900.0], [0, 0, 0], [0, 0, 0]])), "principal point .* outside 640x480"),
        (lambda t, K: (t[:, :, :1], K), r"expected tracks \(N, 3, T >= 2\)"),
    ],
)
def test_window_problem_names_what_is_wrong(change, message):
    scene = generate_scene(np.random.default_rng(11), SceneConfig(points=60))
    assert window_problem(scene.tracks, scene.image_size, scene.K, min_frames=2) is None
    tracks, K = change(scene.tracks, scene.K)
    assert window_problem(tracks, scene.image_size, K, min_frames=2) is not None
    assert re.search(message, window_problem(tracks, scene.image_size, K, min_frames=2))


def test_evaluation_reports_every_method_under_the_required_keys(tmp_path):
    from edgerun.evaluation.tracks_to_4d.pipeline import PipelineEvalConfig, run_evaluation
    from edgerun.models.tracks_to_4d.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "tiny.pt", TracksTo4D(TINY), TINY, {})
    summary = run_evaluation(PipelineEvalConfig(checkpoint=str(tmp_path / "tiny.pt"), scenes=1, rendered=0, fine_tune_steps=1))
    for key in ("ate_feedforward", "ate_ba", "ate_ft", "ate_classical", "absrel_feedforward", "delta125_ba", "rpe_r_classical", "time_s_ft"):
        assert np.isfinite(summary[key]), key
    assert summary["failures_classical"] == 0 and isinstance(summary["ba_below_classical"], bool)


def test_eval_command_without_a_checkpoint_says_how_to_get_one(tmp_path, capsys):
    from edgerun.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["eval", "tracks-to-4d", "--checkpoint", str(tmp_path / "missing.pt")])
    assert exited.value.code == 2
    assert "train one with `edgerun train tracks-to-4d`" in capsys.readouterr().out
