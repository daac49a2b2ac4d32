"""Camera calibration: chessboard views rendered with a known camera give that camera back.

The views are drawn by ``edgerun.sim.chessboard.render_chessboard_views`` (exact ray casting onto the board plane, anti-
aliased, 0.8 px lens blur) for K = [[600, 0, 320], [0, 600, 240], [0, 0, 1]] at 640x480 and 13
board poses, written as PNGs and calibrated through the same path as ``edgerun calibrate camera``.

Tolerances (measured on this setup: fx, fy off by < 0.1 %, cx, cy by < 0.15 px, RMS 0.026 px):
fx and fy within 0.3 %, cx and cy within 1 px, reprojection RMS below 0.1 px.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edgerun.calibration.camera import Intrinsics, calibrate_chessboard, parse_board
from edgerun.cli import build_parser
from edgerun.errors import CameraCalibrationError
from edgerun.sim.chessboard import chessboard_pose, render_chessboard_views

K_TRUE = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
SIZE = (640, 480)
BOARD = (9, 6)
SQUARE_M = 0.025

FOCAL_TOLERANCE = 0.003  # relative
CENTRE_TOLERANCE_PX = 1.0
RMS_LIMIT_PX = 0.1

# (tilt about the board's x, y, z axes in degrees, distance of its centre in metres, shift (x, y) in
# metres): frontal, tilted up/down/left/right, and off-centre views reaching towards the corners.
VIEWS = [
    ((0, 0, 0), 0.45, (0.0, 0.0)),
    ((25, 0, 0), 0.42, (0.0, 0.0)),
    ((-25, 0, 5), 0.42, (0.0, 0.0)),
    ((0, 30, 0), 0.45, (0.0, 0.0)),
    ((0, -30, -5), 0.45, (0.0, 0.0)),
    ((10, -20, 10), 0.47, (-0.04, -0.02)),
    ((10, 20, -10), 0.47, (0.04, -0.02)),
    ((-10, -20, -10), 0.47, (-0.04, 0.02)),
    ((-10, 20, 10), 0.47, (0.04, 0.02)),
    ((20, 0, 0), 0.42, (0.0, -0.03)),
    ((-20, 0, 0), 0.42, (0.0, 0.03)),
    ((0, 25, 20), 0.45, (-0.05, 0.0)),
    ((0, -25, -20), 0.45, (0.05, 0.0)),
]
POSES = [chessboard_pose(BOARD, SQUARE_M, distance, tilt, shift) for tilt, distance, shift in VIEWS]


def write_views(folder: Path, distortion: np.ndarray | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(render_chessboard_views(K_TRUE, SIZE, BOARD, SQUARE_M, POSES, distortion)):
        path = folder / f"view_{index:02d}.png"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def view_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_views(tmp_path_factory.mktemp("views"))


@pytest.fixture(scope="module")
def calibrated(view_paths: list[Path]) -> Intrinsics:
    return calibrate_chessboard(view_paths, board=BOARD, square_m=SQUARE_M, progress=False)


def assert_recovers_k(intrinsics: Intrinsics) -> None:
    assert intrinsics.image_size == SIZE
    assert abs(intrinsics.fx / 600.0 - 1) < FOCAL_TOLERANCE, intrinsics
    assert abs(intrinsics.fy / 600.0 - 1) < FOCAL_TOLERANCE, intrinsics
    assert abs(intrinsics.cx - 320.0) < CENTRE_TOLERANCE_PX, intrinsics
    assert abs(intrinsics.cy - 240.0) < CENTRE_TOLERANCE_PX, intrinsics
    assert intrinsics.rms_px < RMS_LIMIT_PX, intrinsics


def test_calibration_recovers_the_known_camera_from_rendered_views(calibrated: Intrinsics, view_paths) -> None:
    assert_recovers_k(calibrated)
    assert abs(calibrated.distortion[0]) < 0.02, calibrated  # the views were rendered without distortion
    assert calibrated.distortion.shape == (5,)
    assert calibrated.K.dtype == np.float64 and calibrated.K.shape == (3, 3)
    assert calibrated.images_used == tuple(str(p) for p in view_paths)
    assert calibrated.board == BOARD and calibrated.square_m == SQUARE_M


def test_calibration_recovers_radial_distortion(tmp_path: Path) -> None:
    distortion = np.array([-0.2, 0.05, 0.001, -0.0005, 0.0])
    intrinsics = calibrate_chessboard(write_views(tmp_path, distortion), BOARD, SQUARE_M, progress=False)
    assert_recovers_k(intrinsics)
    assert abs(intrinsics.distortion[0] - distortion[0]) < 0.02, intrinsics
    assert np.allclose(intrinsics.distortion[2:4], distortion[2:4], atol=5e-4), intrinsics


def test_intrinsics_yaml_round_trips_in_the_documented_plain_layout(calibrated: Intrinsics, tmp_path: Path) -> None:
    path = calibrated.save(tmp_path / "sub" / "camera.yaml")
    loaded = Intrinsics.load(path)
    np.testing.assert_array_equal(loaded.K, calibrated.K)
    np.testing.assert_array_equal(loaded.distortion, calibrated.distortion)
    assert loaded.image_size == calibrated.image_size
    assert loaded.rms_px == calibrated.rms_px
    assert (loaded.board, loaded.square_m, loaded.images_used) == (BOARD, SQUARE_M, calibrated.images_used)

    raw = yaml.safe_load(path.read_text())  # what any other tool sees
    assert list(raw) == [
        "image_width", "image_height", "camera_matrix", "distortion_coefficients",
        "reprojection_rms_px", "board", "square_m", "images_used",
    ]
    assert (raw["image_width"], raw["image_height"]) == SIZE
    assert np.array(raw["camera_matrix"]).shape == (3, 3) and raw["camera_matrix"][2] == [0.0, 0.0, 1.0]
    assert len(raw["distortion_coefficients"]) == 5
    assert raw["board"] == "9x6" and raw["square_m"] == SQUARE_M
    assert path.read_text().startswith("# edgerun camera intrinsics")


def test_intrinsics_written_by_hand_load_with_only_the_required_fields(tmp_path: Path) -> None:
    path = tmp_path / "hand.yaml"
    path.write_text(
        "image_width: 1280\nimage_height: 720\n"
        "camera_matrix: [[900, 0, 640], [0, 900, 360], [0, 0, 1]]\n"
        "distortion_coefficients: [0.1, -0.2, 0, 0]\n"
    )
    loaded = Intrinsics.load(path)
    assert (loaded.fx, loaded.cy, loaded.image_size) == (900.0, 360.0, (1280, 720))
    assert loaded.distortion.tolist() == [0.1, -0.2, 0.0, 0.0] and math.isnan(loaded.rms_px)
    assert not loaded.K.flags.writeable


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("camera_matrix", [[600, 0, 320], [0, 600, 240]]),
        ("camera_matrix", [[600, 0, 320], [0, 600, 240], [0, 1, 1]]),
        ("camera_matrix", "K"),
        ("distortion_coefficients", [0.1, 0.2, 0.3]),
        ("distortion_coefficients", ["a", 0, 0, 0, 0]),
        ("image_width", -640),
        ("image_height", None),
        ("reprojection_rms_px", "small"),
        ("board", "nine by six"),
        ("square_m", 0),
    ],
)
def test_load_rejects_a_bad_field_naming_the_file_and_the_field(
    calibrated: Intrinsics, tmp_path: Path, field: str, value: object
) -> None:
    data = calibrated.to_dict()
    data[field] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=rf"bad\.yaml: field '{field}': expected"):
        Intrinsics.load(path)


def test_load_names_a_missing_or_non_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"intrinsics file .*nothere\.yaml: cannot read"):
        Intrinsics.load(tmp_path / "nothere.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"list\.yaml: expected a mapping"):
        Intrinsics.load(tmp_path / "list.yaml")


def test_unreadable_and_boardless_images_are_all_named_in_one_error(view_paths, tmp_path: Path) -> None:
    text = tmp_path / "x.png"
    text.write_text("not an image")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((SIZE[1], SIZE[0], 3), 255, np.uint8))
    missing = tmp_path / "missing.png"
    with pytest.raises(CameraCalibrationError) as info:
        calibrate_chessboard([*view_paths[:4], text, blank, missing], BOARD, SQUARE_M, progress=False)
    message = str(info.value)
    assert "3 of 7 images unusable" in message
    assert f"{text}: cannot read image" in message
    assert f"{missing}: cannot read image" in message
    assert f"{blank}: chessboard with 9x6 inner corners not found" in message
    assert str(view_paths[0]) not in message


def test_wrong_board_size_hints_at_counting_inner_corners(view_paths) -> None:
    with pytest.raises(CameraCalibrationError, match=r"board of 9x7 squares is 8x6") as info:
        calibrate_chessboard(view_paths[:3], (8, 6), SQUARE_M, progress=False)
    assert all(str(p) in str(info.value) for p in view_paths[:3])


def test_skip_unusable_leaves_bad_images_out(view_paths, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((SIZE[1], SIZE[0]), 255, np.uint8))
    intrinsics = calibrate_chessboard([blank, *view_paths], BOARD, SQUARE_M, progress=False, skip_unusable=True)
    assert intrinsics.images_used == tuple(str(p) for p in view_paths)


def test_an_image_of_another_size_is_named(view_paths, tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(view_paths[0])), (320, 240)))
    with pytest.raises(CameraCalibrationError, match=rf"{re.escape(str(small))}: image is 320x240 but .*view_00\.png is 640x480"):
        calibrate_chessboard([*view_paths[:3], small], BOARD, SQUARE_M, progress=False)


def test_fewer_than_three_views_is_a_clear_error(view_paths) -> None:
    with pytest.raises(CameraCalibrationError, match=r"need at least 3 images with the 9x6 chessboard found, got 2"):
        calibrate_chessboard(view_paths[:2], BOARD, SQUARE_M, progress=False)
    with pytest.raises(CameraCalibrationError, match="no images given"):
        calibrate_chessboard([], BOARD, SQUARE_M)


@pytest.mark.parametrize("text", ["9-6", "9x", "x6", "ax6", "9x6x2", "", "2x6"])
def test_bad_board_strings_are_rejected(text: str) -> None:
    with pytest.raises(CameraCalibrationError, match="board: expected"):
        parse_board(text)


def test_board_strings_parse_as_columns_by_rows() -> None:
    assert parse_board("9x6") == (9, 6)
    assert parse_board(" 7 X 5 ") == (7, 5)


def test_progress_callback_sees_every_image(view_paths) -> None:
    seen = []
    calibrate_chessboard(view_paths[:5], BOARD, SQUARE_M, progress=lambda done, total, path: seen.append((done, total, path)))
    assert seen == [(i + 1, 5, str(p)) for i, p in enumerate(view_paths[:5])]


def main(images: list[str], board: str, square: float, output: str) -> int:
    """``edgerun calibrate camera IMAGES --board B --square S -o OUTPUT``, as the command line runs it."""
    args = build_parser().parse_args(["calibrate", "camera", *images, "--board", board, "--square", str(square), "-o", output])
    return args.func(args)


def test_main_writes_the_yaml_and_prints_a_summary(view_paths, tmp_path: Path, capsys) -> None:
    output = tmp_path / "camera.yaml"
    assert main([str(p) for p in view_paths], "9x6", SQUARE_M, str(output)) == 0
    out = capsys.readouterr().out
    assert re.search(r"reprojection RMS 0\.0\d\d px", out), out
    assert re.search(r"fx (599|600)\.\d\d +fy (599|600)\.\d\d +cx 3(19|20)\.\d\d +cy 2(39|40)\.\d\d", out), out
    assert f"wrote {output}" in out
    assert_recovers_k(Intrinsics.load(output))


def test_main_reports_calibration_errors_on_stderr_with_exit_code_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "x.png"
    bad.write_text("text")
    assert main([str(bad)], "9x6", SQUARE_M, str(tmp_path / "camera.yaml")) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgerun calibrate camera: ") and f"{bad}: cannot read image" in err
    assert main([str(bad)], "9by6", SQUARE_M, str(tmp_path / "camera.yaml")) == 2
    assert "board: expected" in capsys.readouterr().err
    assert not (tmp_path / "camera.yaml").exists()
