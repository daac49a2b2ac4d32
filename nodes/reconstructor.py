"""TracksTo4D as a node: track windows in, per-frame cameras, points and gamma out.

Each window from the tracker node is normalised with the camera's intrinsics (a calibration file
from ``edgerun calibrate camera``, or the paper's guess when none is given) and reconstructed by
the network — torch from an edgerun checkpoint, or an exported engine (``edgerun export
tracks-to-4d-small``: ONNX Runtime / TensorRT) —, optionally refined by bundle adjustment. The
window's cameras are also chained into one trajectory across windows (``trajectory``); a gap
(a skipped window) starts a new trajectory ``segment``.

A window that cannot be reconstructed — too few visible tracks, NaN coordinates, intrinsics that
do not fit the image — is not run: a message with ``skipped=True`` and the ``reason`` is
published instead, the reason is logged and shown on the status, and the node carries on. A
message that is not a track window at all (fields missing, shapes that disagree) is dropped by
the runtime before the handler. A checkpoint, engine or calibration file that does not load
leaves the node up with the error on its status (``setup_failure = "stay_up"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerun.calibration.camera import Intrinsics
from edgerun.engines import Backend, load
from edgerun.models.tracks_to_4d.checkpoint import load_checkpoint
from edgerun.pipelines.tracks_to_4d.reconstruct import from_outputs, network_input, window_problem, with_bundle_adjustment
from edgerun.pipelines.tracks_to_4d.windows import TrajectoryChainer
from edgerun.runtime import Array, Message, Node, Queue
from edgerun.runtime.views import Json, Points, Trajectory

OUTPUT_ORDER = ("rotations", "translations", "focal", "coeffs", "basis", "gamma")


@dataclass(frozen=True)
class ReconstructorParams:
    checkpoint: str = "checkpoints/tracks_to_4d/model.pt"  # edgerun TracksTo4D checkpoint (torch path)
    engine: str = ""  # an exported .onnx/.plan instead of the checkpoint (edgerun export tracks-to-4d-small)
    backend: Backend = "auto"  # for engine
    intrinsics: str = ""  # calibration YAML; empty: K guessed from the tracks (the paper's rule)
    min_tracks: int = 16  # fewer tracks visible in >= 2 frames: the window is skipped
    bundle_adjust: bool = False  # refine cameras and static points (scipy least_squares)
    threads: int = 1


WINDOW = {  # what the tracker node sends
    "tracks": Array("floating", ("N", 3, "T")),
    "track_ids": Array("integer", ("N",)),
    "stamps_ns": Array("int64", ("T",)),
    "start_frame": int,
    "width": int,
    "height": int,
}


class Reconstructor(Node):
    inputs = {"tracks": Queue(4, fields=WINDOW)}
    outputs = ("reconstruction",)
    views = {"reconstruction": (
        Points("points_world", frame_id="reconstruction"),  # its own frame: the reconstruction is up to scale
        Trajectory("trajectory", frame_id="reconstruction", inverse=True),
        Json({"skipped": "boolean", "reason": "string", "start_frame": "integer", "segment": "integer",
              "reconstruct_ms": "number"}, title="edgerun reconstruction"),
    )}
    params = ReconstructorParams
    setup_failure = "stay_up"  # a checkpoint or engine that does not load fails the same way on every restart

    def setup(self) -> None:
        torch.set_num_threads(self.params.threads)
        self.model = self.engine = None
        self.intrinsics = None
        self.chainer = TrajectoryChainer()
        self.windows = self.skipped = self.segments = 0
        self.last_skip = ""
        self.times_ms: list[float] = []
        self.load()

    def load(self) -> None:
        if self.params.intrinsics:
            self.intrinsics = Intrinsics.load(self.params.intrinsics)
        if self.params.engine:
            self.engine = load(self.params.engine, self.params.backend)
            self.log.info("reconstructor: %r", self.engine)
        else:
            self.model, _, _ = load_checkpoint(Path(self.params.checkpoint))
            self.model.eval()
            self.log.info("reconstructor: torch, %s", self.params.checkpoint)

    def on_tracks(self, msg: Message) -> None:
        tracks = np.asarray(msg["tracks"], np.float32)
        size = (msg["width"], msg["height"])
        K = None if self.intrinsics is None else self.intrinsics.K
        problem = window_problem(tracks, size, K, self.params.min_tracks, min_frames=2)
        if problem is None and self.intrinsics is not None and tuple(self.intrinsics.image_size) != size:
            width, height = self.intrinsics.image_size
            problem = f"intrinsics do not fit the image: calibrated for {width}x{height}, the frames are {size[0]}x{size[1]}"
        if problem is not None:
            return self.skip(msg, problem)
        started = time.perf_counter()
        reconstruction = self.reconstruct(tracks, K, size)
        start = msg["start_frame"]
        if not self.chainer.connects(start, len(reconstruction.cam_from_world)):
            self.segments += 1  # a skipped window (or a lost message) broke the chain: a new trajectory starts here
            self.log.info("reconstructor: trajectory segment %d starts at frame %d", self.segments, start)
            self.chainer.reset()
        trajectory = self.chainer.add(start, reconstruction.cam_from_world)
        self.times_ms.append((time.perf_counter() - started) * 1e3)
        self.windows += 1
        self.publish(
            "reconstruction", skipped=False, reason="", start_frame=start, segment=self.segments, stamps_ns=msg["stamps_ns"],
            track_ids=msg["track_ids"], cam_from_world=reconstruction.cam_from_world.astype(np.float32),
            trajectory=trajectory.astype(np.float32), points_world=reconstruction.points_world.astype(np.float32),
            gamma=reconstruction.gamma.astype(np.float32), focal=reconstruction.focal.astype(np.float32),
            reconstruct_ms=self.times_ms[-1],
        )

    def reconstruct(self, tracks: np.ndarray, K: np.ndarray | None, size: tuple[int, int]):
        tracks_norm, K_used = network_input(tracks, K)
        with torch.no_grad():
            if self.engine is not None:
                outputs = self.engine(tracks=tracks_norm.numpy())
                reconstruction = from_outputs([outputs[name] for name in OUTPUT_ORDER])
            else:
                reconstruction = from_outputs(self.model(tracks_norm))
        if self.params.bundle_adjust:
            try:
                reconstruction = with_bundle_adjustment(reconstruction, tracks, K_used)
            except ValueError as exc:
                self.log.warning("reconstructor: bundle adjustment skipped: %s", exc)
        return reconstruction

    def skip(self, msg: Message, problem: str) -> None:
        self.skipped += 1
        self.last_skip = f"window at frame {msg.get('start_frame')}: {problem}"
        self.log.warning("reconstructor: skipped %s", self.last_skip)
        self.publish("reconstruction", skipped=True, reason=problem, start_frame=msg["start_frame"])

    def status_fields(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "skipped": self.skipped,
            "segments": self.segments + 1 if self.windows else 0,
            "last_skip": self.last_skip,
            "reconstruct_ms_mean": round(float(np.mean(self.times_ms)), 2) if self.times_ms else None,
        }

    def teardown(self) -> None:
        if self.engine is not None:
            self.engine.close()
