"""The Wall robot's body camera: the render against projective geometry, occlusion by the wall slabs,
smooth motion for KLT, the env node publishing it, and bad parameters refused clearly."""

from __future__ import annotations

import dataclasses

import cv2
import gymnasium
import numpy as np
import pytest
from conftest import RunningGraph

import edgerun.envs  # noqa: F401  (registers the Wall envs)
from edgerun.envs.robot_camera import (
    ARENA_M,
    WALL_HEIGHT_M,
    Renderer,
    RobotCamera,
    RobotCameraConfig,
    build_world,
    cam_from_world,
)
from edgerun.envs.wall import WallLayout
from edgerun.nodes.env import EnvNode, EnvParams
from edgerun.runtime.params import ParamError, build_params

SMALL = RobotCameraConfig(width=160, height=120, animals=1, distractors=2)
RED = np.array([255, 0, 0], np.uint8)


def plain_world(config: RobotCameraConfig, marker_m: np.ndarray, walls: bool = True):
    """Seed 0's world with a grey floor and one red 0.3 m square centred at ``marker_m`` (world X, Y)."""
    world = build_world(0, WallLayout(door_y=0.3), np.array([0.2, 0.5]), np.array([0.8, 0.5]), config)
    floor = np.full_like(world.floor, 90)
    centre = (np.asarray(marker_m) - world.origin_m) * world.px_per_m
    half = 0.15 * world.px_per_m
    floor[int(centre[1] - half):int(centre[1] + half), int(centre[0] - half):int(centre[0] + half)] = RED
    return dataclasses.replace(world, floor=floor, walls=world.walls if walls else ())


def project(point_world: np.ndarray, pose: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, float]:
    camera = pose[:3, :3] @ point_world + pose[:3, 3]
    pixel = K @ (camera / camera[2])
    return pixel[:2], float(camera[2])


def test_a_floor_point_lands_where_K_and_the_pose_project_it():
    marker = np.array([1.2, 3.3])  # left room, in front of the camera below
    pose = cam_from_world(np.array([1.2, 4.8]), heading=-np.pi / 2, config=SMALL)  # facing -Y, toward the marker
    view = Renderer(SMALL).render(plain_world(SMALL, marker), pose)
    (u, v), depth = project(np.array([*marker, 0.0]), pose, SMALL.K)
    col, row = int(round(u)), int(round(v))
    assert 0 <= col < SMALL.width and 0 <= row < SMALL.height
    np.testing.assert_array_equal(view.image[row, col], RED)
    ray = np.linalg.inv(pose[:3, :3]) @ np.linalg.solve(SMALL.K, [col, row, 1.0])  # the pixel's ray, camera z = 1
    assert view.depth[row, col] == pytest.approx(SMALL.mount_height_m / ray[2], rel=1e-4)  # where it meets the floor
    assert view.depth[row, col] == pytest.approx(depth, rel=0.02)
    red = np.all(view.image == RED, axis=-1)
    rows, cols = np.nonzero(red)
    assert abs(cols.mean() - u) < 1.0 and abs(rows.mean() - v) < 1.0  # the square's image is centred on the projection
    assert red.mean() < 0.2 and not np.all(view.image[0, 0] == RED)


def test_a_wall_slab_hides_the_floor_behind_it():
    config = SMALL
    behind = np.array([3.9, 1.2])  # right room, behind the upper wall piece (x 2.85..3.15 m, y 0..1.35 m)
    pose = cam_from_world(np.array([1.5, 1.2]), heading=0.0, config=config)  # left room, facing +X, the wall ahead
    (u, v), depth = project(np.array([*behind, 0.0]), pose, config.K)
    col, row = int(round(u)), int(round(v))
    assert 0 <= col < config.width and 0 <= row < config.height
    open_view = Renderer(config).render(plain_world(config, behind, walls=False), pose)
    walled_view = Renderer(config).render(plain_world(config, behind), pose)
    np.testing.assert_array_equal(open_view.image[row, col], RED)
    assert not np.all(walled_view.image == RED, axis=-1).any()  # the marker is wholly hidden
    wall_depth = walled_view.depth[row, col]
    assert wall_depth < depth
    # the pixel sees the slab: the hit lies on its surface (x 2.85..3.15 m, z from -0.6 to 0 m)
    ray = np.linalg.inv(pose[:3, :3]) @ np.linalg.solve(config.K, [col, row, 1.0])
    hit = np.linalg.inv(pose)[:3, 3] + wall_depth * ray
    assert 0.475 * ARENA_M - 1e-3 <= hit[0] <= 0.525 * ARENA_M + 1e-3 and -WALL_HEIGHT_M - 1e-3 <= hit[2] <= 1e-3


def test_consecutive_frames_move_a_few_pixels_and_klt_follows_the_true_flow():
    env = gymnasium.make("edgerun/Wall-v0")
    env.reset(seed=1000)
    wall = env.unwrapped
    camera = RobotCamera(RobotCameraConfig())
    camera.reset(1000, wall.layout, wall.position, wall.goal)
    toward_goal = (wall.goal - wall.position) / np.linalg.norm(wall.goal - wall.position)
    env.step(toward_goal.astype(np.float32))  # full speed, the way the camera faces
    views = camera.advance(wall.position)
    assert len(views) == camera.config.substeps
    first, second = views[-2], views[-1]
    gray = [cv2.cvtColor(v.image, cv2.COLOR_RGB2GRAY) for v in (first, second)]
    corners = cv2.goodFeaturesToTrack(gray[0], 200, 0.01, 10).reshape(-1, 2)
    # the true flow: each corner's 3-D point (from the rendered depth) seen from the second pose
    K = camera.K
    rays = np.linalg.solve(K, np.c_[corners, np.ones(len(corners))].T).T
    depth = first.depth[corners[:, 1].round().astype(int), corners[:, 0].round().astype(int)]
    world = (np.linalg.inv(first.cam_from_world) @ np.c_[rays * depth[:, None], np.ones(len(rays))].T)[:3].T
    seen = (second.cam_from_world[:3, :3] @ world.T).T + second.cam_from_world[:3, 3]
    true_next = (seen @ K.T)[:, :2] / seen[:, 2:]
    flow = np.linalg.norm(true_next - corners, axis=1)
    assert 1.0 < np.median(flow) < 15.0  # moving, and a few pixels per frame
    tracked, status, _ = cv2.calcOpticalFlowPyrLK(gray[0], gray[1], corners.astype(np.float32), None)
    ok = status.ravel() == 1
    assert ok.mean() > 0.8
    assert np.median(np.linalg.norm(tracked[ok] - true_next[ok], axis=1)) < 0.5


def test_the_camouflaged_animals_lie_on_the_route_and_show_in_the_target_mask():
    layout, start, goal = WallLayout(door_y=30 / 64), np.array([0.25, 0.7]), np.array([0.75, 0.3])
    world = build_world(3, layout, start, goal, RobotCameraConfig())
    assert len(world.animal_centres_m) == 3
    camera = RobotCamera(RobotCameraConfig())
    camera.reset(3, layout, start, goal)
    for centre in world.animal_centres_m:  # stand 1.8 m before each animal, facing it
        camera.position_m, camera.heading = centre - np.array([1.8, 0.0]), 0.0
        assert camera.view().target_mask.sum() > 500


def env_graph(camera: str, extra: str = "") -> str:
    return f"""
    name: robotcam
    nodes:
      - id: env
        class: edgerun.nodes.env:EnvNode
        params: {{env_id: edgerun/Wall-v0, seed: 3, camera: "{camera}", camera_fps: 40,
                  robot_camera: {{width: 160, height: 120, substeps: 2, animals: 1, distractors: 2}}{extra}}}
        inputs: {{action: policy/action}}
      - {{id: policy, class: "fixture_nodes:ActionSender", params: {{shape: [2]}}}}
    """


def test_env_node_publishes_the_robot_camera_beside_unchanged_observations(tmp_path):
    with RunningGraph(tmp_path, env_graph("robot")) as running:
        cameras = running.subscribe("env/camera")
        poses = running.subscribe("env/camera_pose")
        observations = running.collect("env/observation", 4)
        frames = running.collect("env/camera", 6, socket=cameras)
        pose_messages = running.collect("env/camera_pose", 6, socket=poses)
    config = RobotCameraConfig(width=160, height=120, substeps=2, animals=1, distractors=2)
    frame = frames[0]
    assert frame["image"].shape == (120, 160, 3) and frame["image"].dtype == np.uint8
    assert frame["target_mask"].shape == (120, 160) and frame["cam_from_world"].shape == (4, 4)
    np.testing.assert_allclose(frame["K"], config.K)
    indices = [m["frame_index"] for m in frames]
    assert indices == list(range(indices[0], indices[0] + 6))  # paced, none dropped
    assert [m["frame_index"] for m in pose_messages] == list(range(pose_messages[0]["frame_index"], pose_messages[0]["frame_index"] + 6))
    assert "image" not in pose_messages[0].arrays
    # the frame that shows a block's final state carries its observation's capture time
    by_capture = {m.capture_ns: m for m in frames}
    shared = [o for o in observations if o.capture_ns in by_capture]
    assert shared and all(by_capture[o.capture_ns]["step"] == o["step"] for o in shared)
    # observations are Wall's own: 64x64 top-down frames, as without the camera
    reference = gymnasium.make("edgerun/Wall-v0")
    pixels, _ = reference.reset(seed=3)
    step0 = next((o for o in observations if o["step"] == 0), None)
    if step0 is not None:
        np.testing.assert_array_equal(step0["pixels"], pixels["pixels"])
    assert observations[-1]["pixels"].shape == (64, 64, 3)


def test_bad_camera_parameters_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="puts the horizon in the image"):
        RobotCameraConfig(tilt_deg=70.0)
    with pytest.raises(ValueError, match="substeps: expected at least 1 frame per env step, got 0"):
        RobotCameraConfig(substeps=0)
    with pytest.raises(ValueError, match="mount_height_m: expected above the 0.6 m walls"):
        RobotCameraConfig(mount_height_m=0.5)
    with pytest.raises(ParamError, match=r"params.camera: expected one of '', 'robot', got 'fisheye'"):
        build_params(EnvParams, {"camera": "fisheye"})  # a Literal: refused before the node starts
    node = EnvNode()
    node.params, node.env = EnvParams(env_id="Pendulum-v1", camera="robot"), gymnasium.make("Pendulum-v1")
    with pytest.raises(ValueError, match="camera 'robot' rides a Wall robot .* env 'Pendulum-v1' has no layout"):
        node.make_camera()


def test_robot_camera_samples_are_int_training_views_with_consistent_ground_truth():
    from edgerun.envs.robot_camera import robot_camera_samples

    samples = robot_camera_samples(5, 3)
    assert len(samples) == 3
    for sample in samples:
        assert sample.image.shape == (128, 128, 3) and sample.image.dtype == np.uint8
        assert not sample.image[96:].any() and not sample.target_mask[96:].any()  # letterbox padding, as the components pad
        camouflaged = [i for i in sample.instances if i.camouflaged]
        assert camouflaged and sample.target_category == camouflaged[0].category
        for instance in sample.instances:
            assert instance.mask.sum() >= 0.0025 * 128 * 96
            assert np.all(sample.target_mask[instance.mask]) == instance.camouflaged  # inside iff camouflaged
            ys, xs = np.nonzero(instance.mask)
            np.testing.assert_array_equal(instance.box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    frame = robot_camera_samples(5, 1, width=160, height=120, pad=False)[0]
    assert frame.image.shape == (120, 160, 3)
