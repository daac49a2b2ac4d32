"""Rerun views of edgerun messages: a node for graphs, and the logger ``edgerun view`` uses.

Every message is logged under its topic (``node/output``) on the ``capture`` timeline (the
capture time that travels with it), so frames, masks, tracks and plans of one instant line up.
Fields map to Rerun archetypes by name first, then by shape:

=========================================  ===============================================
``image`` / ``pixels``: (H, W, 3|4) uint8  ``Image`` (JPEG-compressed unless ``jpeg_quality=0``)
``mask``: (H, W) bool or uint8             ``SegmentationImage`` (and over the frames)
``tracks``: (N, 3, T) x, y, visibility     ``Points2D`` (last frame) + ``LineStrips2D`` (paths)
``cam_from_world``, ``trajectory``:        ``LineStrips3D`` camera path + ``Transform3D`` camera
(T, 4, 4) camera-from-world
``points…``: (N, 3) or (T, N, 3)           ``Points3D`` (the last frame)
``*trajectory*`` / ``plan*``: (K, 2|3)      ``LineStrips2D`` / ``LineStrips3D``
other 1-D numeric arrays of ≤ 64 values    ``BarChart``
numbers and booleans                       ``Scalars`` at ``topic/field``
strings                                    ``TextLog`` at ``topic``
=========================================  ===============================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgerun.runtime import Latest, Message, Node

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkOptions:
    save: str = ""  # write a .rrd file
    serve: bool = False  # serve a web viewer on localhost
    web_port: int = 9090
    grpc_port: int = 9876
    spawn: bool = False  # start the native Rerun viewer (needs a display)
    jpeg_quality: int = 85  # colour frames are stored as JPEG at this quality; 0 keeps them raw


class RerunLog:
    """A Rerun recording stream with edgerun's message conventions (see the module docstring)."""

    def __init__(self, application: str, options: SinkOptions):
        import rerun as rr

        self.rr = rr
        self.jpeg_quality = options.jpeg_quality
        self.stream = rr.RecordingStream(application)
        self.url = ""
        if options.save:
            self.stream.save(options.save)
        if options.serve:
            grpc_url = self.stream.serve_grpc(grpc_port=options.grpc_port)
            rr.serve_web_viewer(web_port=options.web_port, open_browser=False, connect_to=grpc_url)
            self.url = f"http://localhost:{options.web_port}/?url={grpc_url}"
        if options.spawn:
            self.stream.spawn()
        self.logged = 0

    def log(self, msg: Message) -> None:
        rr, stream = self.rr, self.stream
        stream.set_time("capture", timestamp=msg.capture_ns / 1e9)
        for name, array in msg.arrays.items():
            self._log_array(f"{msg.topic}/{name}", name, np.asarray(array))
        for name, value in msg.fields.items():
            if isinstance(value, bool) or isinstance(value, (int, float)):
                stream.log(f"{msg.topic}/{name}", rr.Scalars(float(value)))
            elif isinstance(value, str) and value:
                stream.log(msg.topic, rr.TextLog(f"{name}: {value}"))
        self.logged += 1

    def _log_array(self, path: str, name: str, array: np.ndarray) -> None:
        rr, stream = self.rr, self.stream
        lowered = name.lower()
        if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] in (3, 4):
            image = rr.Image(array)
            stream.log(path, image.compress(jpeg_quality=self.jpeg_quality) if self.jpeg_quality and array.shape[2] == 3 else image)
        elif lowered.startswith("mask") and array.ndim == 2:
            stream.log(path, rr.SegmentationImage(array.astype(np.uint8)))
        elif lowered == "tracks" and array.ndim == 3 and array.shape[1] == 3:
            self._log_tracks(path, array)
        elif lowered in ("cam_from_world", "trajectory") and array.ndim == 3 and array.shape[1:] == (4, 4):
            self._log_cameras(path, array)
        elif lowered.startswith("points") and array.ndim in (2, 3) and array.shape[-1] == 3:
            points = array[-1] if array.ndim == 3 else array
            stream.log(path, rr.Points3D(points[np.isfinite(points).all(axis=1)]))
        elif ("trajectory" in lowered or lowered.startswith("plan")) and array.ndim == 2 and array.shape[1] in (2, 3):
            strip = rr.LineStrips2D([array]) if array.shape[1] == 2 else rr.LineStrips3D([array])
            stream.log(path, strip)
        elif array.ndim == 1 and 0 < array.size <= 64 and np.issubdtype(array.dtype, np.number):
            stream.log(path, rr.BarChart(array.astype(np.float64)))

    def _log_tracks(self, path: str, tracks: np.ndarray) -> None:
        """``(N, 3, T)``: the visible points of the last frame and each track's visible path."""
        rr = self.rr
        xy, visible = tracks[:, :2, :], tracks[:, 2, :] > 0.5
        self.stream.log(f"{path}/points", rr.Points2D(xy[visible[:, -1], :, -1], radii=2.0))
        strips = [xy[i, :, visible[i]] for i in range(len(tracks)) if visible[i].sum() >= 2]
        self.stream.log(f"{path}/paths", rr.LineStrips2D(strips) if strips else rr.Clear(recursive=False))

    def _log_cameras(self, path: str, cam_from_world: np.ndarray) -> None:
        rr = self.rr
        world_from_cam = np.linalg.inv(cam_from_world.astype(np.float64))
        self.stream.log(f"{path}/path", rr.LineStrips3D([world_from_cam[:, :3, 3]]))
        self.stream.log(f"{path}/camera", rr.Transform3D(translation=world_from_cam[-1, :3, 3], mat3x3=world_from_cam[-1, :3, :3]))

    def close(self) -> None:
        self.stream.flush()
        self.stream.disconnect()


@dataclass(frozen=True)
class RerunViewerParams:
    save: str = ""  # .rrd file to write ("" for none)
    serve: bool = False  # serve the web viewer on localhost:web_port
    web_port: int = 9090
    grpc_port: int = 9876
    spawn: bool = False
    jpeg_quality: int = 85  # colour frames as JPEG (0: raw; a raw 640x480 frame is 0.9 MB)


class RerunViewer(Node):
    """Logs whatever it is wired to; each slot takes any topic (the slot names only read well
    in a graph file: ``frames: camera/frames``, ``mask: segmenter/mask`` …)."""

    inputs = {slot: Latest() for slot in ("frames", "scene", "observation", "goal", "action", "plan", "tracks", "reconstruction", "segmentation", "episode")}
    params = RerunViewerParams

    def setup(self) -> None:
        p = self.params
        self.rerun = RerunLog(f"edgerun/{self.name}", SinkOptions(p.save, p.serve, p.web_port, p.grpc_port, p.spawn, p.jpeg_quality))
        if self.rerun.url:
            self.log.info("Rerun web viewer: %s", self.rerun.url)

    def log_message(self, msg: Message) -> None:
        self.rerun.log(msg)

    on_frames = on_scene = on_observation = on_goal = on_action = on_plan = log_message
    on_tracks = on_reconstruction = on_segmentation = on_episode = log_message

    def status_fields(self) -> dict[str, Any]:
        return {"logged": self.rerun.logged}

    def teardown(self) -> None:
        self.rerun.close()
