"""One window of pixel tracks → cameras and points, feed-forward or refined: the calls the
evaluation, the benchmark and the reconstructor node share.

A :class:`WindowReconstruction` is plain numpy, whichever engine produced it (torch, or the
exported network's outputs from ONNX Runtime / TensorRT in the order of
:class:`~.network.TracksTo4DOutput`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgerun import shipped
from edgerun.engines import load
from edgerun.engines.manifest import ExportManifest, manifest_for
from edgerun.models.tracks_to_4d.checkpoint import load_checkpoint
from edgerun.models.tracks_to_4d.geometry import align_trajectory
from edgerun.models.tracks_to_4d.intrinsics import normalize_tracks
from edgerun.models.tracks_to_4d.network import TracksTo4D, TracksTo4DOutput
from edgerun.pipelines.tracks_to_4d.bundle_adjustment import BundleAdjustConfig, bundle_adjust, reprojection_residuals, rigid_inliers
from edgerun.pipelines.tracks_to_4d.classical import classical_reconstruction
from edgerun.pipelines.tracks_to_4d.refine import fine_tune


@dataclass(frozen=True)
class WindowReconstruction:
    cam_from_world: np.ndarray  # (T, 4, 4) float64
    points_world: np.ndarray  # (T, N, 3) float64, X_t of every track in every frame
    gamma: np.ndarray  # (N,) the network's uncertainty (large: moving or badly tracked); ones for the baseline
    focal: np.ndarray  # (T,) focal correction factors

    def points_camera(self) -> np.ndarray:
        """(T, N, 3) each frame's points in that frame's camera."""
        rotations, translations = self.cam_from_world[:, :3, :3], self.cam_from_world[:, :3, 3]
        return np.einsum("tij,tnj->tni", rotations, self.points_world) + translations[:, None]


def from_outputs(outputs: TracksTo4DOutput | Sequence[np.ndarray]) -> WindowReconstruction:
    """The first batch item of the network's outputs (tensors or arrays, in
    :class:`~.network.TracksTo4DOutput` order) as a :class:`WindowReconstruction`."""
    rotations, translations, focal, coeffs, basis, gamma = (
        (o.detach().cpu().numpy() if isinstance(o, torch.Tensor) else np.asarray(o)).astype(np.float64)[0] for o in outputs
    )
    frames = len(rotations)
    cam_from_world = np.tile(np.eye(4), (frames, 1, 1))
    cam_from_world[:, :3, :3], cam_from_world[:, :3, 3] = rotations, translations
    return WindowReconstruction(cam_from_world, np.einsum("tk,nkc->tnc", coeffs, basis), gamma, focal)


OUTPUT_ORDER = ("rotations", "translations", "focal", "coeffs", "basis", "gamma")  # the exported engine's outputs


class WindowModel:
    """The network for one window, from an edgerun checkpoint (torch) or an exported engine
    (``edgerun export tracks-to-4d-small``: ONNX Runtime / TensorRT): ``model(tracks_px, K)`` →
    (:class:`WindowReconstruction`, the K used; ``K`` None: guessed, the paper's rule)."""

    def __init__(self, checkpoint: str | Path = shipped("tracks_to_4d/model.pt"), engine: str | Path = "", backend: str = "auto"):
        self.model = self.engine = None
        self.max_tracks: int | None = None  # an engine's export bound on the tracks per window (None: any)
        if engine:
            self.engine = load(engine, backend)
            exported = manifest_for(Path(engine).with_suffix(".onnx"))
            if exported.is_file():
                self.max_tracks = ExportManifest.load(exported).dims.get("points", (None,) * 3)[2]
        else:
            self.model, _, _ = load_checkpoint(Path(checkpoint))
            self.model.eval()

    def __repr__(self) -> str:
        return repr(self.engine) if self.engine is not None else "torch TracksTo4D"

    @property
    def frames(self) -> int | None:
        """The window length an exported engine was built for (T is fixed at export); None: any (torch)."""
        if self.engine is None:
            return None
        frames = next(spec.shape[3] for spec in self.engine.inputs if spec.name == "tracks")
        return frames if isinstance(frames, int) else None

    @property
    def min_frames(self) -> int:
        """The shortest window the network takes: an engine's fixed length, the torch network's
        convolution span (4 frames for the small model, 15 for the paper's)."""
        return self.frames or (self.model.config.min_frames if self.model is not None else 2)

    def __call__(self, tracks_px: np.ndarray, K: np.ndarray | None) -> tuple[WindowReconstruction, np.ndarray]:
        if self.max_tracks is not None and len(tracks_px) > self.max_tracks:
            raise ValueError(f"{len(tracks_px)} tracks in a window: the engine was exported for at most {self.max_tracks} "
                             "(a TensorRT profile refuses more, and ONNX Runtime's memory grows with them: attention across "
                             "the tracks); track fewer points (--grid) or use the torch checkpoint")
        tracks_norm, K_used = network_input(tracks_px, K)
        if self.engine is not None:
            outputs = self.engine(tracks=tracks_norm.numpy())
            return from_outputs([outputs[name] for name in OUTPUT_ORDER]), K_used
        with torch.no_grad():
            return from_outputs(self.model(tracks_norm)), K_used

    def fine_tuned(self, tracks_px: np.ndarray, K: np.ndarray, steps: int = 50, lr: float = 1e-3) -> WindowReconstruction:
        """Test-time fine-tuning (torch only: an engine has no gradients)."""
        if self.model is None:
            raise ValueError("fine-tuning needs the torch checkpoint, not an exported engine")
        return with_fine_tuning(self.model, tracks_px, K, steps, lr)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


def network_input(tracks_px: np.ndarray, K: np.ndarray | None) -> tuple[torch.Tensor, np.ndarray]:
    """(N, 3, T) pixel tracks → ((1, N, 3, T) normalised float32 tensor, the K used). Visibility
    is made 0/1 at 0.5 as everywhere else (a tracker's probabilities, or 0/255, are not what the
    network was trained on)."""
    tracks_norm, K_used = normalize_tracks(np.asarray(tracks_px, np.float32), K)
    tracks_norm[:, 2] = tracks_norm[:, 2] > 0.5
    return torch.from_numpy(np.ascontiguousarray(tracks_norm, np.float32))[None], K_used


@torch.no_grad()
def feed_forward(model: TracksTo4D, tracks_px: np.ndarray, K: np.ndarray | None) -> WindowReconstruction:
    tracks, _ = network_input(tracks_px, K)
    return from_outputs(model(tracks))


@dataclass(frozen=True)
class Refinement:
    """The outcome of refining one window: the refined reconstruction, or the input kept with the
    ``reason`` (when the refinement failed or would have made things worse)."""

    reconstruction: WindowReconstruction
    refined: bool
    reason: str  # why the input was kept; "" when refined
    seconds: float
    rms_before_px: float = float("nan")  # reprojection RMS of the adjusted observations, pixels
    rms_after_px: float = float("nan")
    iterations: int = 0
    start: str = ""  # the start the refinement came from: "network" or "classical"


def with_bundle_adjustment(
    initial: WindowReconstruction, tracks_px: np.ndarray, K: np.ndarray, config: BundleAdjustConfig = BundleAdjustConfig(),
    max_depth_spread: float = 10.0, classical_start: bool = True,
) -> Refinement:
    """``initial``'s cameras and static points refined by :func:`~.bundle_adjustment.bundle_adjust`,
    from the network's start and (``classical_start``) from the classical two-view + PnP
    reconstruction's: from a poor start BA can settle in a wrong minimum, and the start whose
    refinement explains more tracks as static points wins. Never for the worse: ``initial`` is
    kept (``refined=False``, with the reason) when there are too few static points, the result is
    not finite, the reprojection error did not drop, a refined
    point lies behind a camera that sees it, or the depths run off (the 95th percentile of depth
    over the median, across the visible static points, above ``max_depth_spread``: points run off
    towards infinity). That ceiling is absolute, not relative to the network's spread: the network
    compresses depth (95th percentile / median 1.03-1.07 on ground-plane scenes whose truth is
    1.7-2.9), and a refinement that restores the true spread is the one to keep. It is the net
    behind :func:`~.bundle_adjustment.bundle_adjust`'s parallax rule, which keeps most run-offs out
    of the adjusted points (with the rule off, ``min_parallax_deg=0``, it caught a window whose
    spread reached 65.7). Points left out of the adjustment (moving ones,
    unconstrained ones) keep their camera-frame position from ``initial``, re-expressed in the
    refined world."""
    started = time.perf_counter()
    keep = lambda reason, **fields: Refinement(initial, False, reason, time.perf_counter() - started, **fields)
    tracks_norm, _ = normalize_tracks(np.asarray(tracks_px, np.float32), K)
    static = initial.points_world.mean(0)  # a static point's X_t is B_0 in every frame
    focal = float(K[0, 0])
    starts = [("network", initial.cam_from_world, static)]
    if classical_start:
        starts += _classical_start(tracks_px, K, initial.cam_from_world, static)
    results, problems = [], []
    rigid = rigid_inliers(tracks_norm, config.rigid_px / focal) if config.rigid_check else None  # the same for every start
    for name, poses, points in starts:
        try:
            results.append((name, bundle_adjust(tracks_norm, poses, points, initial.gamma, focal, config, rigid)))
        except ValueError as exc:
            problems.append(f"{name} start: {exc}")
    if not results:
        return keep("; ".join(problems))
    # the start whose refinement explains more tracks as static points wins (a wrong local minimum fits fewer)
    start, result = max(results, key=lambda item: (int(item[1].adjusted.sum()), -item[1].rms_after))
    visible_of = tracks_norm[result.adjusted, 2] > 0.5  # (adjusted, T)
    point_of, frame_of = np.nonzero(visible_of)
    observed = tracks_norm[np.flatnonzero(result.adjusted)[point_of], :2, frame_of].astype(np.float64)
    before = reprojection_residuals(initial.cam_from_world, static[result.adjusted], frame_of, point_of, observed)  # the network's error
    errors = {"rms_before_px": float(np.sqrt((before**2).mean())) * focal, "rms_after_px": result.rms_after * focal,
              "iterations": sum(r.iterations for _, r in results), "start": start}
    if not (np.isfinite(result.cam_from_world).all() and np.isfinite(result.points[result.adjusted]).all()):
        return keep("bundle adjustment diverged (non-finite cameras or points)", **errors)
    if not errors["rms_after_px"] < errors["rms_before_px"]:
        return keep(f"bundle adjustment did not lower the reprojection error ({errors['rms_before_px']:.2f} -> {errors['rms_after_px']:.2f} px)", **errors)
    refined = result.cam_from_world
    visible = visible_of.T  # (T, adjusted)
    refined_depth = np.einsum("tj,nj->tn", refined[:, 2, :3], result.points[result.adjusted]) + refined[:, None, 2, 3]
    if (refined_depth[visible] <= 0).any():
        return keep(f"{int((refined_depth[visible] <= 0).sum())} refined observations lie behind their camera", **errors)
    initial_depth = initial.points_camera()[:, result.adjusted, 2]
    spread = _depth_spread(refined_depth[visible])
    if spread > max_depth_spread:
        return keep(f"refined depths run off (95th percentile / median {spread:.1f}, above {max_depth_spread:g})", **errors)
    # the points left out keep their camera-frame position, brought to the adjusted scale frame by
    # frame (the ratio of the adjusted points' median depths; the gauge of BA leaves the scale
    # free). On held-out scenes this beat one ratio for the window and an affine map per frame.
    scales = _frame_scales(initial_depth, refined_depth, visible)
    if not (np.isfinite(scales).all() and (scales > 0).all()):
        return keep("the network's depths of the adjusted points are not positive: the other points cannot be brought to the adjusted scale", **errors)
    moving_camera = initial.points_camera() * scales[:, None, None]
    moving_world = np.einsum("tji,tnj->tni", refined[:, :3, :3], moving_camera - refined[:, None, :3, 3])
    points = np.where(result.adjusted[None, :, None], result.points[None], moving_world)
    reconstruction = WindowReconstruction(refined, points, initial.gamma, initial.focal)
    return Refinement(reconstruction, True, "", time.perf_counter() - started, **errors)


def _classical_start(tracks_px: np.ndarray, K: np.ndarray, network_poses: np.ndarray, network_points: np.ndarray) -> list:
    """[("classical", cameras, points)], or [] when the classical reconstruction finds no start.
    Points it could not triangulate take the network's, moved into its frame."""
    try:
        classical = classical_reconstruction(tracks_px, K)
    except ValueError:
        return []
    if not np.isfinite(classical.cam_from_world).all():
        return []
    _, transform = align_trajectory(network_poses, classical.cam_from_world)
    points = np.where(np.isfinite(classical.points).all(1, keepdims=True), classical.points, transform.apply(network_points))
    return [("classical", classical.cam_from_world, points)]


def _frame_scales(initial: np.ndarray, refined: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(T,) per frame, the ratio of the median ``refined`` to the median ``initial`` depth of the
    adjusted points ((T, M), where ``visible``); the ratio over all frames where a frame sees none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        overall = np.median(refined[visible]) / np.median(initial[visible])
        return np.array([np.median(r[v]) / np.median(i[v]) if v.any() else overall for i, r, v in zip(initial, refined, visible)])


def _depth_spread(depth: np.ndarray) -> float:
    """95th percentile of positive depths over their median."""
    depth = depth[depth > 0]
    return float(np.percentile(depth, 95) / np.median(depth)) if depth.size else float("inf")


def with_fine_tuning(model: TracksTo4D, tracks_px: np.ndarray, K: np.ndarray | None, steps: int = 50, lr: float = 1e-4) -> WindowReconstruction:
    tracks, _ = network_input(tracks_px, K)
    return from_outputs(fine_tune(model, tracks, model.config, steps, lr))


def window_problem(tracks_px: np.ndarray, image_size: tuple[int, int], K: np.ndarray | None, min_tracks: int = 16, min_frames: int = 1) -> str | None:
    """Why a window of pixel tracks (N, 3, T) from frames of ``image_size`` (width, height) cannot
    be reconstructed with ``K`` (None: guessed), or None when it can. Checked: the layout,
    non-finite values, fewer than ``min_tracks`` tracks visible in two or more frames, and
    intrinsics that do not fit the image (principal point outside it, non-positive focal length).
    Visible points outside the image are not refused (trackers have outliers)."""
    tracks = np.asarray(tracks_px)
    if tracks.ndim != 3 or tracks.shape[1] != 3 or tracks.shape[2] < min_frames:
        return f"expected tracks (N, 3, T >= {min_frames}) (x, y, visibility), got {tracks.shape}"
    bad = ~np.isfinite(tracks).all(axis=(1, 2))
    if bad.any():
        return f"{int(bad.sum())} of {len(tracks)} tracks have NaN or infinite coordinates"
    usable = int(((tracks[:, 2] > 0.5).sum(1) >= 2).sum())
    if usable < min_tracks:
        return f"only {usable} tracks are visible in two or more frames (at least {min_tracks} needed)"
    width, height = image_size
    if K is not None:
        K = np.asarray(K, np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            return f"intrinsics: expected a finite 3x3 K with positive focal lengths, got {K.tolist()}"
        if not (0 < K[0, 2] < width and 0 < K[1, 2] < height):
            return f"intrinsics do not fit the image: principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) lies outside {width}x{height}"
    return None
