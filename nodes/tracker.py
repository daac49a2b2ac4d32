"""The point tracker as a node: camera frames in, TracksTo4D track windows out.

Every frame goes through the real-time KLT front-end (:mod:`edgerun.pipelines.tracks_to_4d.tracking`);
each completed window (20 frames, a new one every 10) is published with its tracks in the paper's
layout (N, 3, T) (pixels + visibility), the tracker's track ids, the first frame's index and every
frame's capture time; the message's own capture time is that of the window's last frame, so the
graph's end-to-end latency is measured from the newest frame in the window.

Frames must arrive in order and without gaps (a ``Queue`` input): KLT follows points from one
frame to the next. A frame without a uint8 ``image`` is dropped by the runtime before the handler
(counted on the status by reason, with a log line); an image that is neither (H, W, 3) nor
(H, W), or whose size changes, is skipped by the handler with a log line and counted on the
status; a size change restarts the tracks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2

from edgerun.pipelines.tracks_to_4d.tracking import KLTConfig, KLTFrontEnd
from edgerun.pipelines.tracks_to_4d.windows import WindowConfig
from edgerun.runtime import Array, Message, Node, Queue


@dataclass(frozen=True)
class TrackerParams:
    grid: int = 15  # queries on a grid x grid lattice
    window: int = 20  # frames per window
    stride: int = 10  # frames between windows (overlap = window - stride)
    requery_every: int = 20  # frames between re-queries of lost grid cells
    fb_threshold_px: float = 0.5  # forward-backward error that drops a track
    threads: int = 1  # OpenCV threads


class Tracker(Node):
    inputs = {"frames": Queue(32, fields={"image": Array("uint8")})}  # RGB (H, W, 3) or gray (H, W): checked in on_frames
    outputs = ("tracks",)
    params = TrackerParams

    def setup(self) -> None:
        cv2.setNumThreads(self.params.threads)
        self.front_end = KLTFrontEnd(
            KLTConfig(grid=self.params.grid, requery_every=self.params.requery_every, fb_threshold_px=self.params.fb_threshold_px),
            WindowConfig(length=self.params.window, stride=self.params.stride),
        )
        self.size: tuple[int, int] | None = None
        self.frames = self.windows = self.skipped_frames = 0
        self.last_problem = ""

    def on_frames(self, msg: Message) -> None:
        image = msg["image"]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            return self.skip(f"frame from '{msg.sender}': expected a uint8 (H, W, 3) or (H, W) image, got {image.dtype} {image.shape}")
        size = (image.shape[1], image.shape[0])
        if self.size is not None and size != self.size:
            self.skip(f"frame size changed from {self.size[0]}x{self.size[1]} to {size[0]}x{size[1]}: tracks restart")
            self.front_end.reset()
        self.size = size
        self.frames += 1
        window = self.front_end.push(image, msg.capture_ns)
        if window is None:
            return
        self.windows += 1
        self.publish(
            "tracks", tracks=window.tracks, track_ids=window.track_ids, stamps_ns=window.stamps_ns,
            start_frame=window.start, width=size[0], height=size[1],
        )

    def skip(self, problem: str) -> None:
        self.skipped_frames += 1
        self.last_problem = problem
        self.log.warning("tracker: %s", problem)

    def status_fields(self) -> dict[str, Any]:
        return {"frames": self.frames, "windows": self.windows, "skipped_frames": self.skipped_frames, "last_problem": self.last_problem}
