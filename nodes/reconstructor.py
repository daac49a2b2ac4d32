"""TracksTo4D as a node: track windows in, per-frame cameras, points and gamma out.

Each window from the tracker node is normalised with the camera's intrinsics (a calibration file
from ``edgerun calibrate camera``, or the paper's guess when none is given) and reconstructed by
the network — torch from an edgerun checkpoint, or an exported engine (``edgerun export
tracks-to-4d-small``: ONNX Runtime / TensorRT) —, optionally refined by bundle adjustment
(``bundle_adjust: true``) when it fits the window period: BA is skipped for a window while the
last one took longer than ``ba_budget_ms`` (default: the time between windows, from the frame
stamps), and re-tried every ``ba_retry_every`` skipped windows. BA never makes a window worse:
when it fails or would (see :func:`~.reconstruct.with_bundle_adjustment`) the feed-forward result
is published with ``refined=False`` and the reason in ``refine_reason`` and on the status. A
refined message also carries the feed-forward cameras (``feedforward_cam_from_world``). The
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
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from edgerun import shipped
from edgerun.calibration.camera import Intrinsics
from edgerun.engines import Backend
from edgerun.pipelines.tracks_to_4d.reconstruct import (
    Refinement,
    WindowModel,
    WindowReconstruction,
    window_problem,
    with_bundle_adjustment,
)
from edgerun.pipelines.tracks_to_4d.windows import TrajectoryChainer
from edgerun.runtime import Array, Message, Node, Queue
from edgerun.runtime.views import Json, Points, Trajectory


@dataclass(frozen=True)
class ReconstructorParams:
    checkpoint: str = shipped("tracks_to_4d/model.pt")  # edgerun TracksTo4D checkpoint (torch path)
    engine: str = ""  # an exported .onnx/.plan instead of the checkpoint (edgerun export tracks-to-4d-small)
    backend: Backend = "auto"  # for engine
    intrinsics: str = ""  # calibration YAML; empty: K guessed from the tracks (the paper's rule)
    min_tracks: int = 16  # fewer tracks visible in >= 2 frames: the window is skipped
    bundle_adjust: bool = False  # refine cameras and static points (Schur-complement Levenberg–Marquardt)
    ba_budget_ms: float = 0.0  # skip BA while the last one took longer than this; 0: the window period
    ba_retry_every: int = 10  # after this many windows skipped for time, try BA again
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
              "reconstruct_ms": "number", "refined": "boolean", "refine_reason": "string", "ba_ms": "number"},
             title="edgerun reconstruction"),
    )}
    params = ReconstructorParams
    setup_failure = "stay_up"  # a checkpoint or engine that does not load fails the same way on every restart

    def setup(self) -> None:
        torch.set_num_threads(self.params.threads)
        threadpool_limits(self.params.threads)  # BLAS (bundle adjustment): see pyproject.toml
        self.network: WindowModel | None = None
        self.intrinsics = None
        self.chainer = TrajectoryChainer()
        self.windows = self.skipped = self.segments = 0
        self.last_skip = ""
        self.times_ms: deque[float] = deque(maxlen=100)  # the last 100 windows: a node runs for days
        self.ba_ms: deque[float] = deque(maxlen=100)
        self.ba_refined = self.ba_kept = self.ba_skipped_for_time = self.skips_in_row = 0
        self.last_ba_reason = ""
        self.last_start: int | None = None
        self.load()

    def load(self) -> None:
        if self.params.intrinsics:
            self.intrinsics = Intrinsics.load(self.params.intrinsics)
        self.network = WindowModel(self.params.checkpoint, self.params.engine, self.params.backend)
        self.log.info("reconstructor: %r, %s", self.network, self.params.engine or self.params.checkpoint)

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
        start = msg["start_frame"]
        reconstruction, K_used = self.network(tracks, K)
        refinement = self.refine(reconstruction, tracks, K_used, start, np.asarray(msg["stamps_ns"], np.int64))
        feedforward = reconstruction
        if refinement is not None and refinement.refined:
            reconstruction = refinement.reconstruction
        if not self.chainer.connects(start, len(reconstruction.cam_from_world)):
            self.segments += 1  # a skipped window (or a lost message) broke the chain: a new trajectory starts here
            self.log.info("reconstructor: trajectory segment %d starts at frame %d", self.segments, start)
            self.chainer.reset()
        trajectory = self.chainer.add(start, reconstruction.cam_from_world)
        self.times_ms.append((time.perf_counter() - started) * 1e3)
        self.windows += 1
        refined = {"refined": False, "refine_reason": "", "ba_ms": 0.0}
        if refinement is not None:
            refined = {"refined": refinement.refined, "refine_reason": refinement.reason, "ba_ms": refinement.seconds * 1e3}
            if refinement.refined:
                refined["feedforward_cam_from_world"] = feedforward.cam_from_world.astype(np.float32)
        elif self.params.bundle_adjust:
            refined["refine_reason"] = self.last_ba_reason
        self.publish(
            "reconstruction", skipped=False, reason="", start_frame=start, segment=self.segments, stamps_ns=msg["stamps_ns"],
            track_ids=msg["track_ids"], cam_from_world=reconstruction.cam_from_world.astype(np.float32),
            trajectory=trajectory.astype(np.float32), points_world=reconstruction.points_world.astype(np.float32),
            gamma=reconstruction.gamma.astype(np.float32), focal=reconstruction.focal.astype(np.float32),
            reconstruct_ms=self.times_ms[-1], **refined,
        )

    def refine(self, reconstruction: WindowReconstruction, tracks: np.ndarray, K: np.ndarray, start: int, stamps_ns: np.ndarray) -> Refinement | None:
        """Bundle adjustment of the window when it is on and fits the window period; None when not run."""
        if not self.params.bundle_adjust:
            return None
        budget_ms = self.params.ba_budget_ms or self.window_period_ms(start, stamps_ns)
        self.last_start = start
        if self.ba_ms and budget_ms and self.ba_ms[-1] > budget_ms and self.skips_in_row < self.params.ba_retry_every:
            self.skips_in_row += 1
            self.ba_skipped_for_time += 1
            self.last_ba_reason = f"bundle adjustment skipped: the last one took {self.ba_ms[-1]:.0f} ms, the budget is {budget_ms:.0f} ms"
            return None
        self.skips_in_row = 0
        refinement = with_bundle_adjustment(reconstruction, tracks, K)
        self.ba_ms.append(refinement.seconds * 1e3)
        if refinement.refined:
            self.ba_refined += 1
        else:
            self.ba_kept += 1
            self.last_ba_reason = f"window at frame {start}: {refinement.reason}"
            self.log.warning("reconstructor: kept the feed-forward result: %s", self.last_ba_reason)
        return refinement

    def window_period_ms(self, start: int, stamps_ns: np.ndarray) -> float:
        """Time between this window and the last (frames between their starts × the frame
        interval of the stamps); 0 when unknown (the first window, or stamps that do not advance)."""
        if self.last_start is None or start <= self.last_start or len(stamps_ns) < 2:
            return 0.0
        interval_ns = float(np.median(np.diff(stamps_ns)))
        return max(interval_ns, 0.0) * (start - self.last_start) / 1e6

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
            **({"ba_refined": self.ba_refined, "ba_kept_feedforward": self.ba_kept, "ba_skipped_for_time": self.ba_skipped_for_time,
                "ba_ms_p50": round(float(np.median(self.ba_ms)), 1) if self.ba_ms else None,
                "last_ba_reason": self.last_ba_reason} if self.params.bundle_adjust else {}),
        }

    def teardown(self) -> None:
        if self.network is not None:
            self.network.close()
