"""Shared fixtures: a private runtime directory per test and real launched graphs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq

from edgerun.runtime import messages
from edgerun.runtime.deployment import wire_processes
from edgerun.runtime.graph import load_graph
from edgerun.runtime.host import run_process
from edgerun.runtime.paths import run_dir, segment_dir
from edgerun.runtime.shm import SharedReader

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # fixture_nodes, importable here and (via PYTHONPATH) in node processes


@pytest.fixture(autouse=True)
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own short XDG_RUNTIME_DIR, so ipc:// paths and run names never collide."""
    directory = Path(tempfile.mkdtemp(prefix="er-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class LaunchedGraph:
    """``edgerun launch`` in a real subprocess, with helpers to read node status and kill nodes."""

    def __init__(self, yaml_text: str, directory: Path, args: tuple[str, ...] = ()):
        self.path = directory / "graph.yaml"
        self.path.write_text(textwrap.dedent(yaml_text))
        self.log_path = directory / "launch.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgerun.cli", "launch", str(self.path), "--live-every", "0.5", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.context = zmq.Context()
        self.statuses: dict[str, dict] = {}

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def state(self):
        from edgerun.runtime.introspect import find_run

        return find_run(None)[1]

    def wait_running(self, timeout_s: float = 20.0) -> "LaunchedGraph":
        """Until every node has published a status."""
        self._status_socket = self.context.socket(zmq.SUB)
        self._status_socket.setsockopt(zmq.SUBSCRIBE, b"")
        state = wait_for(lambda: self._try_state(), timeout_s, what="run.json")
        for node in state.nodes.values():
            self._status_socket.connect(node.ctl)
        wait_for(lambda: self.poll_status() and set(self.statuses) >= set(state.nodes), timeout_s, what="status of all nodes")
        return self

    def _try_state(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"launcher exited with {self.proc.returncode}:\n{self.log}")
        try:
            return self.state()
        except LookupError:
            return None

    def poll_status(self) -> dict[str, dict]:
        while self._status_socket.poll(50):
            msg = messages.decode(self._status_socket.recv_multipart(copy=False))
            self.statuses[msg.sender] = msg.fields["status"]
        return self.statuses

    def status(self, node: str, where=lambda s: True, timeout_s: float = 10.0) -> dict:
        """The first status of ``node`` (from now on) for which ``where`` holds."""
        self.statuses.pop(node, None)
        return wait_for(
            lambda: (s := self.poll_status().get(node)) is not None and where(s) and s,
            timeout_s,
            what=f"status of '{node}'",
        )

    def subscribe(self, topic: str) -> zmq.Socket:
        from edgerun.runtime.introspect import subscribe

        return subscribe(self.context, self.state(), topic)

    def receive(self, socket: zmq.Socket, count: int, timeout_s: float = 10.0) -> list[messages.Message]:
        from edgerun.runtime.introspect import shared_reader

        shared = shared_reader(self.state().segments)  # frames from 64 KiB up lie in shared memory
        got = []
        while len(got) < count and socket.poll(int(timeout_s * 1000)):
            got.append(messages.decode(socket.recv_multipart(), shared=shared))
        assert len(got) == count, f"got {len(got)} of {count} messages"
        return got

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            self.context.destroy(linger=0)
            self._log.close()


def host_processes(run_directory: Path) -> list[psutil.Process]:
    """Node processes whose wiring file lies in ``run_directory`` (alive ones only)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "edgerun.runtime.host" in cmdline and str(run_directory) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@pytest.fixture
def launch(tmp_path: Path, runtime_dir: Path):
    """``launch(yaml_text)`` → a started :class:`LaunchedGraph`; always stopped, and checked to leave no process."""
    graphs: list[LaunchedGraph] = []

    def start(yaml_text: str, *args: str) -> LaunchedGraph:
        graph = LaunchedGraph(yaml_text, tmp_path, args)
        graphs.append(graph)
        return graph

    yield start
    for graph in graphs:
        graph.stop()
    wait_for(lambda: not host_processes(runtime_dir), 10, what="every node process to exit")


class RunningGraph:
    """Every process of a graph run on threads of this test process (no launcher)."""

    def __init__(self, tmp_path: Path, yaml_text: str):
        path = tmp_path / "graph.yaml"
        path.write_text(textwrap.dedent(yaml_text))
        self.graph = load_graph(path)
        self.directory = run_dir(self.graph.name)
        self.processes = wire_processes(self.graph, self.directory)
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=run_process, args=(w, self.stop, False), daemon=True) for w in self.processes.values()
        ]
        self.context = zmq.Context()

    def __enter__(self) -> "RunningGraph":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.context.destroy(linger=0)
        shutil.rmtree(segment_dir(self.directory), ignore_errors=True)  # what the launcher does at exit
        assert not any(t.is_alive() for t in self.threads), "a process did not stop"

    @property
    def shared(self) -> SharedReader:
        """A tool's reader of this run's slots: frames from 64 KiB up lie in shared memory."""
        return SharedReader(segment_dir(self.directory))

    def endpoint(self, node: str, kind: str = "pub") -> str:
        return f"ipc://{self.directory}/{node}.{kind}"

    def subscribe(self, topic: str) -> zmq.Socket:
        socket = self.context.socket(zmq.SUB)
        socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        socket.connect(self.endpoint(topic.split("/")[0]))
        return socket

    def collect(self, topic: str, count: int, timeout_s: float = 10.0, socket: zmq.Socket | None = None) -> list[messages.Message]:
        """The next ``count`` messages on ``topic`` (from ``socket`` if already subscribed)."""
        socket = socket or self.subscribe(topic)
        shared = self.shared
        got = []
        try:
            while len(got) < count and socket.poll(int(timeout_s * 1000)):
                msg = messages.decode(socket.recv_multipart(), shared=shared)
                if msg.topic == topic:  # not a longer topic that shares the prefix (env/camera_pose for env/camera)
                    got.append(msg)
        finally:
            socket.close(linger=0)
        assert len(got) == count, f"got {len(got)} of {count} messages on {topic}"
        return got

    def status(self, node: str, timeout_s: float = 5.0) -> dict:
        """The node's next status message."""
        socket = self.context.socket(zmq.SUB)
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.connect(self.endpoint(node, "ctl"))
        try:
            assert socket.poll(int(timeout_s * 1000)), f"no status from '{node}'"
            return messages.decode(socket.recv_multipart()).fields["status"]
        finally:
            socket.close(linger=0)



@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread is several times faster than two on a busy machine. A module asks for
    it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch  # lazy: the runtime tests never load torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def t4d_checkpoint(tmp_path_factory) -> Path:
    """A tiny, untrained TracksTo4D checkpoint: enough for the reconstructor node's wiring."""
    import torch

    from edgerun.models.tracks_to_4d.checkpoint import save_checkpoint
    from edgerun.models.tracks_to_4d.config import TracksTo4DConfig
    from edgerun.models.tracks_to_4d.network import TracksTo4D

    tiny = TracksTo4DConfig(octaves=4, d_model=32, heads=2, head_dim=16, mlp=64, blocks=1, basis=4, conv_kernel=3)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("t4d") / "tiny.pt"
    save_checkpoint(path, TracksTo4D(tiny), tiny, {})
    return path


def reconstruct_graph(name: str, camera: str, checkpoint: Path) -> str:
    """camera → tracker → reconstructor, ``camera`` being the camera node's ``class`` and ``params`` lines."""
    return f"""
    name: {name}
    heartbeat_timeout_s: 60
    nodes:
      - id: camera
        {camera}
      - id: tracker
        class: edgerun.nodes.tracker:Tracker
        inputs: {{frames: camera/frames}}
      - id: reconstructor
        class: edgerun.nodes.reconstructor:Reconstructor
        params: {{checkpoint: "{checkpoint}"}}
        inputs: {{tracks: tracker/tracks}}
    """


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory, worker_id) -> tuple[Path, Path]:
    """``(transformers folder, onnxruntime-genai folder)`` of a tiny LM trained here on reasoning traces,
    once per test run: pytest-xdist's workers share one build (the first to take the lock trains it)."""
    from filelock import FileLock
    from language_fixtures import build_tiny_lm

    run = tmp_path_factory.getbasetemp()  # a worker's is a folder of the run's
    root = (run if worker_id == "master" else run.parent) / "tiny-lm"
    built = root / "built.json"
    with FileLock(f"{root}.lock"):
        if not built.exists():
            root.mkdir(parents=True, exist_ok=True)
            built.write_text(json.dumps([str(path) for path in build_tiny_lm(root)]))
    hf, onnx = json.loads(built.read_text())
    return Path(hf), Path(onnx)
