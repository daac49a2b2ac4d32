"""Camera intrinsics from chessboard photos, and the YAML file camera and reconstruction nodes read.

``edgerun calibrate camera IMAGES... --board 9x6 --square 0.025 -o camera.yaml`` finds the board in
every image (OpenCV ``findChessboardCorners`` + ``cornerSubPix``), fits a pinhole camera with
OpenCV's distortion model (``calibrateCamera``) and writes :class:`Intrinsics` as YAML::

    # edgerun camera intrinsics: pinhole K (pixels) + OpenCV distortion (k1, k2, p1, p2, k3)
    image_width: 640                  # pixels, the size every calibration image had
    image_height: 480
    camera_matrix:                    # K, row-major: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    - [600.1, 0.0, 319.8]
    - [0.0, 600.0, 240.2]
    - [0.0, 0.0, 1.0]
    distortion_coefficients: [k1, k2, p1, p2, k3]   # OpenCV order; 4, 5, 8, 12 or 14 values
    reprojection_rms_px: 0.04         # RMS corner reprojection error of the fit, pixels
    board: 9x6                        # inner corners, columns x rows (OpenCV patternSize)
    square_m: 0.025                   # chessboard square side, metres
    images_used:                      # the images the board was found in
    - calib/0001.png

Pixel coordinates follow OpenCV: the centre of the top-left pixel is (0, 0). Only ``image_width``,
``image_height``, ``camera_matrix`` and ``distortion_coefficients`` are required when loading, so a
file written by hand or by another tool loads too. :meth:`Intrinsics.load` checks every field and
raises ``ValueError`` naming the file and the field.

:func:`edgerun.sim.chessboard.render_chessboard_views` draws what a known camera sees of a chessboard
at given poses; the tests calibrate from such images and check that the known K comes back.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from edgerun.errors import CameraCalibrationError
from edgerun.runtime.yaml_files import YamlError, load_yaml

log = logging.getLogger(__name__)

MIN_VIEWS = 3
"""``calibrateCamera`` needs at least this many views of a planar board to fix K."""

DISTORTION_LENGTHS = (4, 5, 8, 12, 14)
"""Distortion vector lengths OpenCV accepts (k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4 [tx ty]]]])."""

ProgressCallback = Callable[[int, int, str], None]
"""Called after each image as ``progress(done, total, path)``."""


# --------------------------------------------------------------------------------------------
# Intrinsics and their YAML file
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Intrinsics:
    """A calibrated pinhole camera: ``K`` and OpenCV distortion, for images of ``image_size``.

    ``K`` is 3x3 float64 in pixels, ``distortion`` is 1-D float64 in OpenCV order (k1, k2, p1, p2,
    k3, ...), ``image_size`` is (width, height) in pixels and ``rms_px`` the RMS reprojection error
    of the fit (NaN when unknown). The arrays are read-only. ``board``, ``square_m`` and
    ``images_used`` record how the calibration was made and are optional.
    """

    K: np.ndarray
    distortion: np.ndarray
    image_size: tuple[int, int]
    rms_px: float = math.nan
    board: tuple[int, int] | None = None
    square_m: float | None = None
    images_used: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        K = np.array(self.K, dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)):
            raise ValueError(f"K: expected a finite 3x3 matrix, got shape {K.shape}")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"K: expected fx > 0 and fy > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
        if not np.allclose(K[2], (0.0, 0.0, 1.0)):
            raise ValueError(f"K: expected last row [0, 0, 1], got {K[2].tolist()}")
        distortion = np.array(self.distortion, dtype=np.float64).reshape(-1)
        if distortion.size not in DISTORTION_LENGTHS or not np.all(np.isfinite(distortion)):
            raise ValueError(
                f"distortion: expected {', '.join(map(str, DISTORTION_LENGTHS))} finite values "
                f"(OpenCV order k1, k2, p1, p2, k3, ...), got {distortion.size}"
            )
        width, height = (int(v) for v in self.image_size)
        if width <= 0 or height <= 0:
            raise ValueError(f"image_size: expected positive (width, height), got {self.image_size}")
        K.setflags(write=False)
        distortion.setflags(write=False)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "distortion", distortion)
        object.__setattr__(self, "image_size", (width, height))
        object.__setattr__(self, "rms_px", float(self.rms_px))
        if self.board is not None:
            object.__setattr__(self, "board", (int(self.board[0]), int(self.board[1])))
        if self.square_m is not None:
            object.__setattr__(self, "square_m", float(self.square_m))
        object.__setattr__(self, "images_used", tuple(str(p) for p in self.images_used))

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    def to_dict(self) -> dict[str, Any]:
        """The YAML layout (see the module docstring) as plain Python values."""
        data: dict[str, Any] = {
            "image_width": self.image_size[0],
            "image_height": self.image_size[1],
            "camera_matrix": [[float(v) for v in row] for row in self.K],
            "distortion_coefficients": [float(v) for v in self.distortion],
            "reprojection_rms_px": float(self.rms_px),
        }
        if self.board is not None:
            data["board"] = f"{self.board[0]}x{self.board[1]}"
        if self.square_m is not None:
            data["square_m"] = float(self.square_m)
        if self.images_used:
            data["images_used"] = list(self.images_used)
        return data

    def save(self, path: str | Path) -> Path:
        """Write the YAML file (creating parent folders); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (
            "# edgerun camera intrinsics: pinhole K (pixels) + OpenCV distortion (k1, k2, p1, p2, k3)\n"
            "# camera_matrix is row-major [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]; pixel (0, 0) is the\n"
            "# centre of the top-left pixel; board is inner corners columns x rows; square_m in metres.\n"
        )
        text += yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Intrinsics:
        """Read and check a YAML file written by :meth:`save` (or by hand in the same layout)."""
        path = Path(path)
        try:
            data = load_yaml(path)
        except YamlError as exc:
            raise CameraCalibrationError(f"intrinsics file {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<intrinsics>") -> Intrinsics:
        """Build from the YAML layout; errors name ``source`` and the field at fault."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of intrinsics fields, got {type(data).__name__}")

        def fail(name: str, expected: str) -> ValueError:
            got = data.get(name, "<missing>")
            return ValueError(f"{source}: field '{name}': expected {expected}, got {got!r}")

        def size(name: str) -> int:
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise fail(name, "a positive integer (pixels)")
            return value

        def numbers(value: Any) -> bool:
            return isinstance(value, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
            )

        width, height = size("image_width"), size("image_height")
        K = data.get("camera_matrix")
        if not (isinstance(K, list) and len(K) == 3 and all(numbers(row) and len(row) == 3 for row in K)):
            raise fail("camera_matrix", "3x3 list of lists of numbers [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
        K_arr = np.array(K, dtype=np.float64)
        if K_arr[0, 0] <= 0 or K_arr[1, 1] <= 0 or not np.allclose(K_arr[2], (0.0, 0.0, 1.0)):
            raise fail("camera_matrix", "fx > 0, fy > 0 and last row [0, 0, 1]")
        dist = data.get("distortion_coefficients")
        if not (numbers(dist) and len(dist) in DISTORTION_LENGTHS):
            raise fail(
                "distortion_coefficients",
                f"a list of {', '.join(map(str, DISTORTION_LENGTHS))} numbers (k1, k2, p1, p2, k3, ...)",
            )
        rms = data.get("reprojection_rms_px", math.nan)
        if rms is None:
            rms = math.nan
        if isinstance(rms, bool) or not isinstance(rms, (int, float)) or rms < 0:
            raise fail("reprojection_rms_px", "a non-negative number (pixels)")
        board = data.get("board")
        if board is not None:
            try:
                board = parse_board(board) if isinstance(board, str) else parse_board("x".join(map(str, board)))
            except (CameraCalibrationError, TypeError):
                raise fail("board", "inner corners as 'COLSxROWS', e.g. '9x6'") from None
        square = data.get("square_m")
        if square is not None and (isinstance(square, bool) or not isinstance(square, (int, float)) or square <= 0):
            raise fail("square_m", "a positive number (metres)")
        images = data.get("images_used", [])
        if images is None:
            images = []
        if not (isinstance(images, list) and all(isinstance(p, str) for p in images)):
            raise fail("images_used", "a list of file names")
        return cls(
            K=K_arr,
            distortion=np.array(dist, dtype=np.float64),
            image_size=(width, height),
            rms_px=float(rms),
            board=board,
            square_m=square,
            images_used=tuple(images),
        )

    def __repr__(self) -> str:
        return (
            f"Intrinsics(fx={self.fx:.3f}, fy={self.fy:.3f}, cx={self.cx:.3f}, cy={self.cy:.3f}, "
            f"distortion={np.round(self.distortion, 5).tolist()}, image_size={self.image_size}, "
            f"rms_px={self.rms_px:.4f})"
        )


class _Dumper(yaml.SafeDumper):
    """Lists of numbers on one line (``[fx, 0.0, cx]``), everything else in block style."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(isinstance(v, (int, float)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------

_BOARD = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def parse_board(text: str) -> tuple[int, int]:
    """``"9x6"`` -> ``(9, 6)``: inner corners, columns x rows (OpenCV ``patternSize``)."""
    match = _BOARD.match(str(text))
    if not match:
        raise CameraCalibrationError(
            f"board: expected inner corners as COLSxROWS, e.g. '9x6' for a board of 10x7 squares; got {text!r}"
        )
    cols, rows = int(match.group(1)), int(match.group(2))
    if cols < 3 or rows < 3:
        raise CameraCalibrationError(f"board: expected at least 3x3 inner corners, got {text!r}")
    return cols, rows


def board_object_points(board: tuple[int, int], square_m: float) -> np.ndarray:
    """(cols*rows, 3) float32 inner-corner positions on the board plane z=0, in metres.

    Row-major, in the order ``findChessboardCorners`` returns corners: the first corner is the
    origin, x runs along a row of ``cols`` corners, y down the ``rows`` rows.
    """
    cols, rows = board
    points = np.zeros((cols * rows, 3), np.float32)
    points[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square_m
    return points


def _read_gray(path: Path) -> np.ndarray | str:
    """The image as uint8 grayscale, or the reason it cannot be read."""
    try:
        data = np.frombuffer(path.read_bytes(), np.uint8)
    except OSError as exc:
        return f"cannot read image ({exc.strerror or exc})"
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        return "cannot read image (not a format OpenCV can decode)"
    return image


def _find_corners(gray: np.ndarray, board: tuple[int, int]) -> np.ndarray | None:
    """Sub-pixel inner corners, (cols*rows, 1, 2) float32, or None when the board is not found."""
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    found, corners = cv2.findChessboardCorners(gray, board, flags=flags)
    if not found or corners is None or len(corners) != board[0] * board[1]:
        return None
    # The refinement window must stay inside one square: at most ~40 % of the closest corner spacing.
    grid = corners.reshape(board[1], board[0], 2)
    spacing = min(
        np.linalg.norm(np.diff(grid, axis=1), axis=2).min(),
        np.linalg.norm(np.diff(grid, axis=0), axis=2).min(),
    )
    half = int(np.clip(spacing * 0.4, 2, 11))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-4)
    return cv2.cornerSubPix(gray, corners, (half, half), (-1, -1), criteria)


def calibrate_chessboard(
    image_paths: Sequence[str | Path],
    board: tuple[int, int] | str = (9, 6),
    square_m: float = 0.025,
    progress: ProgressCallback | bool | None = None,
    skip_unusable: bool = False,
) -> Intrinsics:
    """Fit K and OpenCV distortion (k1, k2, p1, p2, k3) to chessboard photos.

    ``board`` counts inner corners, columns x rows, as OpenCV's ``patternSize`` (a board of 10x7
    squares is ``(9, 6)``); ``square_m`` is a square's side in metres (it sets the scale of the
    poses, not of K). All images must have one size.

    Every image that cannot be read, shows no complete board or has another size is collected and
    all of them are named in one :class:`CameraCalibrationError`, unless ``skip_unusable`` is set, in
    which case they are left out (each logged as a warning) as long as at least 3 usable views
    remain. ``progress``: a callback ``(done, total, path)``, ``True`` for
    a tqdm bar, ``None`` for a tqdm bar only when stderr is a terminal, ``False`` for nothing.
    """
    if isinstance(board, str):
        board = parse_board(board)
    board = (int(board[0]), int(board[1]))
    if board[0] < 3 or board[1] < 3:
        raise CameraCalibrationError(f"board: expected at least 3x3 inner corners, got {board[0]}x{board[1]}")
    try:
        square_m = float(square_m)
    except (TypeError, ValueError):
        square_m = math.nan
    if not (square_m > 0 and math.isfinite(square_m)):
        raise CameraCalibrationError(f"square: expected a positive square size in metres, got {square_m!r}")
    paths = [Path(p) for p in image_paths]
    if not paths:
        raise CameraCalibrationError("no images given")

    board_name = f"{board[0]}x{board[1]}"
    bar = None
    if progress is None or progress is True:
        try:
            from tqdm import tqdm

            bar = tqdm(
                total=len(paths), unit="image", desc="finding chessboard", file=sys.stderr, leave=False,
                disable=progress is None and not sys.stderr.isatty(),
            )
        except ImportError:
            bar = None

    object_points = board_object_points(board, square_m)
    image_size: tuple[int, int] | None = None
    size_source: Path | None = None
    views: list[np.ndarray] = []
    used: list[Path] = []
    problems: list[str] = []
    try:
        for index, path in enumerate(paths, start=1):
            gray = _read_gray(path)
            if isinstance(gray, str):
                problems.append(f"{path}: {gray}")
            else:
                size = (gray.shape[1], gray.shape[0])
                if image_size is None:
                    image_size, size_source = size, path
                if size != image_size:
                    problems.append(
                        f"{path}: image is {size[0]}x{size[1]} but {size_source} is "
                        f"{image_size[0]}x{image_size[1]}; all images must come from one camera mode"
                    )
                else:
                    corners = _find_corners(gray, board)
                    if corners is None:
                        problems.append(f"{path}: chessboard with {board_name} inner corners not found")
                    else:
                        views.append(corners)
                        used.append(path)
            if bar is not None:
                bar.update(1)
            if callable(progress):
                progress(index, len(paths), str(path))
    finally:
        if bar is not None:
            bar.close()

    if problems and not skip_unusable:
        hint = ""
        if not views and any("not found" in line for line in problems):
            hint = (
                f"\n(the board is found in none of them: --board counts inner corners, columns x rows, "
                f"so a board of {board[0] + 1}x{board[1] + 1} squares is {board_name})"
            )
        raise CameraCalibrationError(
            f"{len(problems)} of {len(paths)} images unusable for calibration:\n  "
            + "\n  ".join(problems)
            + hint
        )
    if problems:
        for line in problems:
            log.warning("skipping %s", line)
    if len(views) < MIN_VIEWS:
        raise CameraCalibrationError(
            f"need at least {MIN_VIEWS} images with the {board_name} chessboard found, got {len(views)} of "
            f"{len(paths)}; take more photos with the whole board in view, at varied tilts"
        )

    assert image_size is not None
    try:
        rms, K, distortion, _, _ = cv2.calibrateCamera(
            [object_points] * len(views), views, image_size, None, None,
            criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-12),
        )
    except cv2.error as exc:
        raise CameraCalibrationError(
            f"cv2.calibrateCamera failed on {len(views)} views: {exc.err or exc}; "
            "the views may be too alike: tilt the board in different directions"
        ) from None
    if not (math.isfinite(rms) and np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0):
        raise CameraCalibrationError(
            f"calibration from {len(views)} views did not converge (RMS {rms}, K {K.tolist()}); "
            "tilt the board in different directions and fill more of the image"
        )
    return Intrinsics(
        K=K,
        distortion=distortion.reshape(-1),
        image_size=image_size,
        rms_px=float(rms),
        board=board,
        square_m=float(square_m),
        images_used=tuple(str(p) for p in used),
    )
