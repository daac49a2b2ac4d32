"""Synthetic chessboard views: what a known camera (K, distortion) sees of a chessboard at given poses,
drawn exactly enough (anti-aliased without bias) that calibration recovers the camera to a small
fraction of a pixel. The calibration tests and demos use it in place of photos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

Pose = tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]
"""(rvec, tvec): board frame -> camera frame, Rodrigues vector (rad) and translation (m)."""


def chessboard_pose(
    board: tuple[int, int],
    square_m: float,
    distance_m: float,
    tilt_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
    shift_m: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """(rvec, tvec) putting the board's centre at (shift_x, shift_y, distance) in the camera frame.

    ``tilt_deg`` rotates the board about its own x, y and z axes (applied in that order: R = Rz Ry
    Rx); (0, 0, 0) faces the camera squarely with rows along the image rows.
    """
    rx, ry, rz = (math.radians(a) for a in tilt_deg)
    Rx = cv2.Rodrigues(np.array([rx, 0.0, 0.0]))[0]
    Ry = cv2.Rodrigues(np.array([0.0, ry, 0.0]))[0]
    Rz = cv2.Rodrigues(np.array([0.0, 0.0, rz]))[0]
    R = Rz @ Ry @ Rx
    centre = np.array([(board[0] - 1) * square_m / 2, (board[1] - 1) * square_m / 2, 0.0])
    tvec = np.array([shift_m[0], shift_m[1], distance_m], dtype=np.float64) - R @ centre
    return cv2.Rodrigues(R)[0].reshape(3), tvec


def render_chessboard_views(
    K: np.ndarray,
    image_size: tuple[int, int],
    board: tuple[int, int],
    square_m: float,
    poses: Sequence[Pose],
    distortion: np.ndarray | Sequence[float] | None = None,
    supersample: int = 1,
    margin_squares: float = 1.0,
    background: int = 100,
    blur_px: float = 0.8,
) -> list[np.ndarray]:
    """BGR uint8 images of a chessboard seen by camera (K, distortion) at each (rvec, tvec).

    The board has ``board`` inner corners (cols x rows), so (cols+1) x (rows+1) squares of side
    ``square_m``, with the first inner corner at the board-frame origin (as
    :func:`edgerun.calibration.camera.board_object_points`), a white margin of ``margin_squares`` squares around the squares
    (so the detector finds the outer corners) and a grey ``background`` beyond it.

    Each sample's ray is cast onto the board plane (through OpenCV's distortion model when
    ``distortion`` is given); its shade comes from its distance, in samples, to the nearest square
    edge (a one-pixel linear ramp, the exact box-filtered edge for edges along the pixel grid), and
    ``supersample``² samples are averaged per output pixel. Edges are anti-aliased without a bias,
    so the corners land where ``cv2.projectPoints`` puts them. A Gaussian of ``blur_px`` pixels
    (sigma; 0 for none) stands for the lens: like a real camera's slight blur, it lets
    ``cornerSubPix`` reach ~0.03 px instead of ~0.07 px on perfectly sharp corners.
    """
    K = np.asarray(K, dtype=np.float64)
    width, height = int(image_size[0]), int(image_size[1])
    f = int(supersample)
    if f < 1:
        raise ValueError(f"supersample: expected >= 1, got {supersample}")
    dist = None if distortion is None else np.asarray(distortion, dtype=np.float64).reshape(-1)
    if dist is not None and not np.any(dist):
        dist = None
    cols, rows = int(board[0]), int(board[1])
    s = float(square_m)
    margin = float(margin_squares) * s

    # Sample positions in output-pixel coordinates: output pixel x covers [x - 0.5, x + 0.5].
    offsets = (np.arange(f) + 0.5) / f - 0.5
    xs = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)
    ys = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)
    grid_x, grid_y = np.meshgrid(xs, ys)  # (height*f, width*f)
    if dist is None:
        ny = (grid_y - K[1, 2]) / K[1, 1]
        nx = (grid_x - K[0, 2] - K[0, 1] * ny) / K[0, 0]
    else:
        pixels = np.stack([grid_x, grid_y], axis=-1).reshape(-1, 1, 2)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-10)
        # undistortPointsIter: the iteration-controlled form in every OpenCV 4.x and 5.x
        normalised = cv2.undistortPointsIter(pixels, K, dist, None, None, criteria).reshape(grid_x.shape + (2,))
        nx, ny = normalised[..., 0], normalised[..., 1]
    del grid_x, grid_y

    def coverage(inside: np.ndarray) -> np.ndarray:
        """How much, 0..1, of a sample lies inside an edge its centre is ``inside`` samples within."""
        return np.clip(0.5 + inside, 0.0, 1.0)

    images = []
    for index, (rvec, tvec) in enumerate(poses):
        R = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3))[0]
        t = np.asarray(tvec, dtype=np.float64).reshape(3)
        G = np.column_stack([R[:, 0], R[:, 1], t])  # board plane (X, Y, 1) -> camera ray
        if abs(np.linalg.det(G)) < 1e-12:
            raise ValueError(f"pose {index}: the camera lies in the board plane")
        Ginv = np.linalg.inv(G)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            w = Ginv[2, 0] * nx + Ginv[2, 1] * ny + Ginv[2, 2]
            X = (Ginv[0, 0] * nx + Ginv[0, 1] * ny + Ginv[0, 2]) / w
            Y = (Ginv[1, 0] * nx + Ginv[1, 1] * ny + Ginv[1, 2]) / w
            # Board metres per sample step, to turn distances on the board into distances in samples.
            dXy, dXx = np.gradient(X)
            dYy, dYx = np.gradient(Y)
            mx = np.hypot(dXx, dXy)
            my = np.hypot(dYx, dYy)
            # Coverage, 0..1, of the white card and of the squares on it (rectangles on the board).
            card = coverage(
                np.minimum(
                    np.minimum(X + s + margin, cols * s + margin - X) / mx,
                    np.minimum(Y + s + margin, rows * s + margin - Y) / my,
                )
            )
            squares = coverage(np.minimum(np.minimum(X + s, cols * s - X) / mx, np.minimum(Y + s, rows * s - Y) / my))
            # Checker: +-1 per axis by square parity, ramping through 0 across interior lines only
            # (the outer edge of the squares is the `squares` coverage above).
            px, py = X / s, Y / s
            sign_x = 1.0 - 2.0 * np.mod(np.clip(np.floor(px), -1, cols - 1), 2)
            sign_y = 1.0 - 2.0 * np.mod(np.clip(np.floor(py), -1, rows - 1), 2)
            u = sign_x * (2.0 * coverage(np.abs(px - np.clip(np.rint(px), 0, cols - 1)) * s / mx) - 1.0)
            v = sign_y * (2.0 * coverage(np.abs(py - np.clip(np.rint(py), 0, rows - 1)) * s / my) - 1.0)
            checker = 0.5 - 0.5 * u * v  # black where both parities agree: square (-1, -1) is black
            shade = 255.0 * card * (squares * checker + (1.0 - squares)) + background * (1.0 - card)
            valid = (w > 1e-12) & np.isfinite(shade)
        samples = np.where(valid, shade, float(background))
        gray = samples.reshape(height, f, width, f).mean(axis=(1, 3))
        if blur_px > 0:
            gray = cv2.GaussianBlur(gray, (0, 0), float(blur_px), borderType=cv2.BORDER_REPLICATE)
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        images.append(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    return images
