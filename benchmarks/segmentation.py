"""``edgerun bench segmentation``: per-frame latency of INT at 640x480, torch vs ONNX Runtime, in one run.

The shipped components (``checkpoints/int_seg/components.yaml``) are loaded twice, once with
every engine on torch (the reference: the modules rebuilt from the export manifests) and once on
ONNX Runtime, and timed on the same held-out camouflage frames at 640x480:

- ``full``: the whole INT loop per frame (I = 5: candidates at three scales, negative mining,
  semantic mask), with the time of each stage;
- ``streaming``: grounding + segmentation of the instance prompt mined on the first frame (what
  the segmenter node does between minings), and ``streaming_remine30``: the same with one full
  loop every 30 frames amortised over them (the node's default).

Each row gives ms/frame, frames/s and the ratio to torch. Goal: streaming ≥ 2 frames/s on the CPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerun.benchmarks.engines import machine_info
from edgerun.pipelines.int_seg.algorithm import INTConfig, ground_prompt, run_int, synthetic_task_config
from edgerun.pipelines.int_seg.components import SHIPPED_CONFIG, load_components
from edgerun.sim.camouflage import TEST_SEED, SyntheticConfig, generate_split

BACKENDS = ("torch", "onnxruntime-cpu")
REMINE_EVERY = 30
STREAMING_GOAL_FPS = 2.0


def time_backend(backend: str, frames: list[np.ndarray], full_frames: int, config: INTConfig,
                 components_path: str | Path = SHIPPED_CONFIG) -> dict[str, Any]:
    components = load_components(components_path, backend=backend)
    task_prompt = "the camouflaged animal"
    run_int(frames[0], task_prompt, components, replace(config, iterations=1))  # warm-up: caches, allocations
    stages: dict[str, float] = {}
    started = time.perf_counter()
    for frame in frames[:full_frames]:
        result = run_int(frame, task_prompt, components, config)
        for stage, seconds in result.timings_s.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    full_ms = (time.perf_counter() - started) * 1e3 / full_frames
    prompt = run_int(frames[0], task_prompt, components, config).prompt
    started = time.perf_counter()
    for frame in frames:
        ground_prompt(frame, prompt, components, config)
    streaming_ms = (time.perf_counter() - started) * 1e3 / len(frames)
    components.close()
    return {
        "full_ms": full_ms,
        "full_stage_ms": {stage: 1e3 * s / full_frames for stage, s in stages.items()},
        "streaming_ms": streaming_ms,
        "streaming_remine30_ms": (full_ms + (REMINE_EVERY - 1) * streaming_ms) / REMINE_EVERY,
    }


def main(quick: bool = False, json_path: str | None = None) -> int:
    torch.set_grad_enabled(False)
    full_frames, stream_frames = (2, 10) if quick else (5, 30)
    samples = generate_split(TEST_SEED, max(full_frames, stream_frames), SyntheticConfig(height=480, width=640))
    frames = [sample.image for sample in samples]
    config = synthetic_task_config()
    print(f"INT at 640x480, I = {config.iterations}: {full_frames} frames full loop, {len(frames)} frames streaming "
          f"(torch threads: {torch.get_num_threads()})")
    timings = {backend: time_backend(backend, frames, full_frames, config) for backend in BACKENDS}
    results = []
    for mode in ("full", "streaming", "streaming_remine30"):
        baseline = timings["torch"][f"{mode}_ms"]
        for backend in BACKENDS:
            ms = timings[backend][f"{mode}_ms"]
            row = {"mode": mode, "backend": backend, "ms_per_frame": round(ms, 2), "fps": round(1e3 / ms, 3),
                   "ratio_vs_torch": round(ms / baseline, 3)}
            if mode == "full":
                row["stage_ms"] = {k: round(v, 2) for k, v in timings[backend]["full_stage_ms"].items()}
            results.append(row)
            print(f"  {mode:19} {backend:16} {ms:9.1f} ms/frame {row['fps']:7.2f} frames/s  x{row['ratio_vs_torch']:.2f} of torch")
    best_streaming = max(r["fps"] for r in results if r["mode"] == "streaming")
    print(f"goal: streaming ≥ {STREAMING_GOAL_FPS:g} frames/s on the CPU: {best_streaming:.2f} "
          f"({'met' if best_streaming >= STREAMING_GOAL_FPS else 'NOT met'}); "
          "the paper's chain (LLaVA, SD inpainting, GroundingDINO, SAM, CLIP) takes seconds to minutes per image")
    if json_path:
        summary = {"streaming_goal_fps": STREAMING_GOAL_FPS, "streaming_fps_best": best_streaming,
                   "frames": {"full": full_frames, "streaming": len(frames)}, "resolution": [640, 480]}
        Path(json_path).write_text(json.dumps({"machine": machine_info(), "summary": summary, "results": results}, indent=2))
        print(f"wrote {json_path}")
    return 0
