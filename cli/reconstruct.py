"""``edgerun reconstruct`` on a user's data: track files or videos in, one result file per input out.

Inputs: an ``.npz`` in the TracksTo4D layout (``tracks`` (N, 3, T): x, y in pixels and visibility;
optional ``K`` (3, 3); other keys ignored), a folder of them, or a video file / camera URI (any
source :func:`~edgerun.nodes.sources.open_source` opens), tracked with KLT over the whole clip.
Output per input: ``OUT/<name>.npz`` with ``R`` (T, 3, 3) and ``t`` (T, 3) world-to-camera,
``depth`` (N, T), ``K``, ``segment`` (T,) and the windows' ``window_*`` arrays (start, frames,
tracks, feed-forward and refinement seconds, refined, reason); ``track_ids`` for a video; and one
JSON line in ``OUT/reconstruct.jsonl`` (written anew by each run). An input that cannot be read,
or of which no window can be reconstructed (the windows' reasons are given), is reported and
skipped; the others are still written (exit status 2 when any was skipped). An ``--out`` that is the inputs' own
folder is refused before anything runs (``clip.mp4``'s result would replace a ``clip.npz`` there).
"""

from __future__ import annotations

import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from edgerun import shipped
from edgerun.calibration.camera import Intrinsics
from edgerun.cli.outputs import check_output_folder
from edgerun.errors import EdgerunError, TracksFileError
from edgerun.nodes.sources import open_source
from edgerun.pipelines.tracks_to_4d.reconstruct import WindowModel
from edgerun.pipelines.tracks_to_4d.sequence import SequenceReconstruction, reconstruct_tracks
from edgerun.pipelines.tracks_to_4d.tracking import KLTConfig, KLTTracker
from edgerun.pipelines.tracks_to_4d.windows import assemble_window

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def read_tracks_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """→ (tracks (N, 3, T) float32, K (3, 3) or None), or raise :class:`TracksFileError` saying why
    (the caller names the file)."""
    if not zipfile.is_zipfile(path):
        raise TracksFileError("not an .npz archive; expected one with tracks (N, 3, T)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "tracks" not in data:
                raise TracksFileError(f"no 'tracks' array (keys: {', '.join(data.files) or 'none'}); expected tracks (N, 3, T)")
            tracks, K = data["tracks"], data["K"] if "K" in data else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if isinstance(exc, TracksFileError):
            raise
        raise TracksFileError(f"not a readable .npz file ({exc})") from None
    if tracks.ndim != 3 or tracks.shape[1] != 3 or tracks.shape[2] < 2 or not np.issubdtype(tracks.dtype, np.number):
        hint = ("; frames first, (T, N, 3)? then save tracks.transpose(1, 2, 0)"
                if tracks.ndim == 3 and tracks.shape[2] == 3 and tracks.shape[1] != 3 else "")
        raise TracksFileError(f"'tracks' must be numeric (N, 3, T >= 2) (x, y, visibility), "
                              f"got {tracks.dtype} {tracks.shape}{hint}")
    if not np.isfinite(tracks).all():
        raise TracksFileError(f"'tracks' holds NaN or infinite values ({int((~np.isfinite(tracks)).sum())} of {tracks.size})")
    if K is not None:
        K = np.asarray(K, np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise TracksFileError(f"'K' must be a finite 3x3 matrix with positive focal lengths, got {K.tolist()}")
    return tracks.astype(np.float32), K


def track_clip(uri: str, max_frames: int, grid: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """KLT tracks of up to ``max_frames`` frames of ``uri`` → (tracks (N, 3, T), track ids (N,), (width, height))."""
    source = open_source(uri)
    tracker, history = KLTTracker(KLTConfig(grid=grid)), []
    try:
        while len(history) < max_frames:
            image = source.read()
            if image is None:
                break
            history.append(tracker.push(image))
    finally:
        source.close()
    if len(history) < 2:
        raise TracksFileError(f"{len(history)} frame(s) read; at least 2 are needed")
    window = assemble_window(history, list(range(len(history))), min_visible=2)
    return window.tracks, window.track_ids, tracker.size


def inputs_of(source: str) -> list[tuple[str, str]]:
    """(name, what to read) per input: ("clip", "clip.npz") for track files, ("clip", "file://clip.mp4") for videos and cameras."""
    path = Path(source)
    if "://" in source:
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.split("://", 1)[1].split("?")[0]).strip("_.") or "camera"
        return [(name, source)]
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise TracksFileError(f"{path}: a folder without .npz track files")
        return [(f.stem, str(f)) for f in files]
    if not path.exists():
        raise TracksFileError(f"{path}: no such file or folder")
    if path.suffix.lower() == ".npz":
        return [(path.stem, str(path))]
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return [(path.stem, f"file://{path}")]
    raise TracksFileError(f"{path}: expected an .npz of tracks, a folder of them, a video ({', '.join(VIDEO_SUFFIXES)}) or a camera URI")


def write_result(path: Path, result: SequenceReconstruction, **extra: np.ndarray) -> None:
    windows = result.windows
    np.savez_compressed(
        path, R=result.cam_from_world[:, :3, :3], t=result.cam_from_world[:, :3, 3], depth=result.depth, K=result.K,
        segment=result.segment, window_start=np.array([w.start for w in windows]), window_frames=np.array([w.frames for w in windows]),
        window_tracks=np.array([w.tracks for w in windows]), window_feedforward_s=np.array([w.feedforward_s for w in windows]),
        window_refine_s=np.array([w.refine_s for w in windows]), window_refined=np.array([w.refined for w in windows]),
        window_reason=np.array([w.reason for w in windows], dtype=str), window_skipped=np.array([w.skipped for w in windows]), **extra,
    )


def summary_line(name: str, output: Path, result: SequenceReconstruction, seconds: float) -> dict:
    windows = [w for w in result.windows if not w.skipped]
    return {
        "input": name, "output": str(output), "frames": int(result.depth.shape[1]), "tracks": int(result.depth.shape[0]),
        "windows": len(result.windows), "windows_skipped": len(result.windows) - len(windows),
        "windows_refined": sum(w.refined for w in windows), "segments": int(result.segment.max() + 1),
        "frames_without_pose": int((result.segment < 0).sum()),
        "feedforward_s_per_window": float(np.mean([w.feedforward_s for w in windows])) if windows else None,
        "refine_s_per_window_p50": float(np.median([w.refine_s for w in windows])) if windows else None,
        "reasons": sorted({w.reason for w in result.windows if w.reason}), "seconds": round(seconds, 3),
    }


def reconstruct_main(
    source: str, out: str, refine: str = "none", window: int = 20, checkpoint: str = shipped("tracks_to_4d/model.pt"),
    engine: str = "", backend: str = "auto", intrinsics: str = "", max_frames: int = 600, grid: int = 15, threads: int = 1,
) -> int:
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # BLAS (bundle adjustment): see pyproject.toml
    inputs = inputs_of(source)  # refused before the model loads
    out_dir = Path(out)
    files = [Path(location.removeprefix("file://").partition("?")[0])
             for _, location in inputs if "://" not in location or location.startswith("file://")]  # not cameras
    check_output_folder(out_dir, files)
    if engine and refine == "ft":
        raise TracksFileError(f"--refine ft fine-tunes the torch network; {engine} is an exported engine "
                              "(use --checkpoint, or --refine ba)")
    camera = Intrinsics.load(intrinsics) if intrinsics else None
    calibrated = camera.K if camera is not None else None
    if camera is not None and np.any(camera.distortion):
        print(f"edgerun reconstruct: {intrinsics}: its lens distortion is not applied: tracks are taken as from an "
              "undistorted pinhole camera (undistort the video first, cv2.undistort, or the track points, cv2.undistortPoints)",
              file=sys.stderr)
    network = WindowModel(checkpoint, engine, backend)
    if 0 < window < network.min_frames:
        network.close()
        raise TracksFileError(f"--window {window}: the network takes windows of at least {network.min_frames} frames")
    if network.frames is not None and window != network.frames:
        network.close()
        raise TracksFileError(f"{engine}: the engine takes windows of {network.frames} frames; use --window {network.frames} "
                              "(or the torch checkpoint, which takes any)")
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    with open(out_dir / "reconstruct.jsonl", "w") as log:  # the results on disk, this run's
        for name, location in inputs:
            started = time.perf_counter()
            try:
                extra, size = {}, None
                if "://" in location:
                    tracks, ids, size = track_clip(location, max_frames, grid)
                    if camera is not None and tuple(camera.image_size) != tuple(size):
                        width, height = camera.image_size
                        raise TracksFileError(f"--intrinsics {intrinsics} is calibrated for {width}x{height}, "
                                              f"the frames are {size[0]}x{size[1]}")
                    K, extra = calibrated, {"track_ids": ids}
                else:
                    tracks, K = read_tracks_file(Path(location))
                    K = calibrated if calibrated is not None else K
                result = reconstruct_tracks(network, tracks, K, window, refine, image_size=size)
                if (result.segment < 0).all():
                    raise TracksFileError(f"no window could be reconstructed ({'; '.join(sorted({w.reason for w in result.windows}))})")
            except (EdgerunError, ValueError) as exc:
                failures += 1
                print(f"edgerun reconstruct: {location}: {exc}", file=sys.stderr)
                continue
            output = out_dir / f"{name}.npz"
            write_result(output, result, **extra)
            line = summary_line(name, output, result, time.perf_counter() - started)
            log.write(json.dumps(line) + "\n")
            print(json.dumps(line), flush=True)
    network.close()
    return 2 if failures else 0
