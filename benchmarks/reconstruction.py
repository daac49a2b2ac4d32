"""``edgerun bench reconstruction``: what one TracksTo4D window costs on this machine.

* the KLT tracker (:mod:`edgerun.pipelines.tracks_to_4d.tracking`) on rendered 640x480 frames, grid
  15, on one core (``cv2.setNumThreads(1)``): frames per second, and per window the tracking of
  its ``stride`` new frames (what a streaming window costs) — the paper's CoTracker2 takes 8.6 s
  per clip, the goal here is >= 30 frames/s;
* the network on one window (N = 225 tracks, T = 20), torch eager (the baseline) against the
  exported model on ONNX Runtime (``edgerun export tracks-to-4d-small`` / ``tracks-to-4d``), one
  thread each, in the same run, with the ratio; the paper reports 0.16 s per clip on a GPU.

The shipped checkpoint is used for the small model when present (random weights time the same).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from edgerun import shipped
from edgerun.benchmarks.engines import machine_info
from edgerun.engines import load
from edgerun.export.onnx_export import export_model
from edgerun.pipelines.tracks_to_4d.tracking import KLTConfig, KLTFrontEnd, KLTTracker
from edgerun.pipelines.tracks_to_4d.windows import WindowConfig
from edgerun.sim.textured_scenes import RenderConfig, render_sequence

SHIPPED = Path(shipped("tracks_to_4d/model.pt"))
MODELS = {"small": "tracks-to-4d-small", "paper": "tracks-to-4d"}


def median_time(call: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def bench_tracking(frames: int) -> dict[str, float]:
    cv2.setNumThreads(1)
    images = render_sequence(11, RenderConfig(frames=frames)).images
    tracker = KLTTracker(KLTConfig())
    started = time.perf_counter()
    for image in images:
        tracker.push(image)
    tracker_s = time.perf_counter() - started
    front_end, window = KLTFrontEnd(), WindowConfig()
    per_frame, window_s, tracks = [], [], []
    for index, image in enumerate(images):
        started = time.perf_counter()
        emitted = front_end.push(image, index)
        per_frame.append(time.perf_counter() - started)
        if emitted is not None:
            window_s.append(sum(per_frame[-window.stride :]))
            tracks.append(len(emitted.track_ids))
    return {
        "frames": frames,
        "klt_fps": frames / tracker_s,
        "klt_ms_per_frame": 1e3 * tracker_s / frames,
        "front_end_ms_per_frame": 1e3 * float(np.mean(per_frame)),
        "tracking_ms_per_window": 1e3 * float(np.mean(window_s)),  # the stride new frames + assembly
        "tracks_per_window": float(np.mean(tracks)),
    }


def bench_network(name: str, checkpoint: str | None, repeats: int, tmp: Path) -> list[dict[str, Any]]:
    onnx_path, _ = export_model(name, tmp, checkpoint=checkpoint)
    rng = np.random.default_rng(0)
    tracks = np.concatenate([rng.uniform(-0.5, 0.5, (1, 225, 2, 20)), np.ones((1, 225, 1, 20))], axis=2).astype(np.float32)
    rows, baseline = [], None
    for backend in ("torch", "onnxruntime-cpu"):
        engine = load(onnx_path, backend, **({"threads": 1} if backend.startswith("onnxruntime") else {}))  # torch: set_num_threads(1)
        seconds = median_time(lambda engine=engine: engine(tracks=tracks), repeats)
        engine.close()
        baseline = seconds if backend == "torch" else baseline
        rows.append({"model": name, "backend": backend, "points": 225, "frames": 20,
                     "ms_per_window": round(1e3 * seconds, 3), "ratio_vs_torch": round(seconds / baseline, 3)})
    return rows


def main(quick: bool = False, json_path: str | None = None) -> int:
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    tracking = bench_tracking(30 if quick else 80)
    print(f"KLT tracker, 640x480, grid 15, one thread: {tracking['klt_fps']:.0f} frames/s "
          f"({tracking['klt_ms_per_frame']:.2f} ms/frame; with windowing {tracking['front_end_ms_per_frame']:.2f} ms/frame); "
          f"{tracking['tracking_ms_per_window']:.1f} ms of tracking per window (10 new frames), "
          f"{tracking['tracks_per_window']:.0f} tracks per window. Goal >= 30 frames/s; paper (CoTracker2): 8.6 s per clip")
    network: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgerun-bench-reconstruction-") as tmp:
        for size, name in MODELS.items():
            if quick and size == "paper":
                continue
            checkpoint = str(SHIPPED) if size == "small" and SHIPPED.is_file() else None
            for row in bench_network(name, checkpoint, 10 if quick else 30, Path(tmp)):
                network.append(row)
                print(f"  {name:20} {row['backend']:16} {row['ms_per_window']:9.2f} ms/window  x{row['ratio_vs_torch']:.2f} of torch")
    print("paper: network 0.16 s per clip (GPU); tracking 8.6 s per clip")
    if json_path:
        result = {"machine": machine_info(), "tracking": tracking, "network": network}
        Path(json_path).write_text(json.dumps(result, indent=2))
        print(f"wrote {json_path}")
    return 0
