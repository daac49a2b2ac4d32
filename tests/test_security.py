"""tcp:// links between hosts are CURVE-secured; ipc:// sockets live in a directory only the user can read.

The multi-host tests run both hosts of a graph on this machine (both at 127.0.0.1):
each ``edgerun launch --host NAME`` gets its own XDG_RUNTIME_DIR, as two machines
would each have their own, so their run directories do not collide. Rogue peers are
real ZeroMQ sockets on the graph's tcp ports.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth
from conftest import host_processes, wait_for
from zmq.utils.monitor import recv_monitor_message

from edgerun.runtime import messages
from edgerun.runtime.deployment import RUN_STATE, RunState, read_run_state
from edgerun.runtime.paths import run_dir, runtime_root
from edgerun.runtime.security import generate_keys

RUN = "sec"
TICKER_PORT_OFFSET = 0  # ticker is node 0: pub on base, srv on base + 1


# --- helpers -----------------------------------------------------------------------------------


def keys_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgerun.cli", "keys", "generate", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int = 6) -> int:
    """An even port with ``count`` free ports from it, picked at random so parallel runs rarely meet."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 2)
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free range of tcp ports")


def two_host_graph(directory: Path, base_port: int) -> Path:
    """Ticker on host a, Relay on host b; keys for a and b generated into ``directory/keys``."""
    generate_keys(directory / "keys", ["a", "b"])
    path = directory / "graph.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: {RUN}
            keys: keys
            tcp_base_port: {base_port}
            status_period_s: 0.2
            hosts:
              a: {{address: 127.0.0.1}}
              b: {{address: 127.0.0.1}}
            nodes:
              - id: ticker
                class: fixture_nodes:Ticker
                params: {{rate_hz: 50}}
                host: a
              - id: relay
                class: fixture_nodes:Relay
                inputs: {{ticks: ticker/ticks}}
                host: b
            """
        )
    )
    return path


def key_pair(keys: Path, host: str) -> tuple[bytes, bytes]:
    return zmq.auth.load_certificate(str(keys / f"{host}.key_secret"))


class HostLaunch:
    """``edgerun launch GRAPH --host NAME`` in a subprocess with its own XDG_RUNTIME_DIR."""

    def __init__(self, graph: Path, host: str, root: Path):
        self.host = host
        self.xdg = root / f"x{host}"
        self.xdg.mkdir(mode=0o700)
        self.log_path = graph.parent / f"launch-{host}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgerun.cli", "launch", str(graph), "--host", host, "--live-every", "60"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "XDG_RUNTIME_DIR": str(self.xdg)},
        )
        self.context = zmq.Context()
        self.statuses: dict[str, dict] = {}
        self._status_socket: zmq.Socket | None = None

    @property
    def run_directory(self) -> Path:
        return self.xdg / "edgerun" / RUN

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _try_state(self) -> RunState | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"launcher for host {self.host} exited with {self.proc.returncode}:\n{self.log}")
        if not (self.run_directory / RUN_STATE).exists():
            return None
        state = read_run_state(self.run_directory)
        return state if all(n.pid for n in state.nodes.values()) else None

    def wait_running(self, timeout_s: float = 20.0) -> RunState:
        """Until every node of this host has published a status."""
        state = wait_for(self._try_state, timeout_s, what=f"run.json of host {self.host}")
        self._status_socket = self.context.socket(zmq.SUB)
        self._status_socket.linger = 0
        self._status_socket.setsockopt(zmq.SUBSCRIBE, b"")
        for node in state.nodes.values():
            self._status_socket.connect(node.ctl)
        wait_for(
            lambda: set(self.poll_status()) >= set(state.nodes), timeout_s, what=f"status of host {self.host}'s nodes"
        )
        self.state = state
        return state

    def poll_status(self) -> dict[str, dict]:
        while self._status_socket.poll(20):
            msg = messages.decode(self._status_socket.recv_multipart(copy=False))
            self.statuses[msg.sender] = msg.fields["status"]
        return self.statuses

    def status(self, node: str, where=lambda s: True, timeout_s: float = 10.0) -> dict:
        """The first status of ``node`` from now on for which ``where`` holds."""
        self.statuses.pop(node, None)
        return wait_for(
            lambda: (s := self.poll_status().get(node)) is not None and where(s) and s,
            timeout_s,
            what=f"status of '{node}' on host {self.host}",
        )

    def stop(self, timeout_s: float = 15.0) -> int | None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError(f"launcher for host {self.host} ignored SIGINT:\n{self.log}")
        finally:
            self.context.destroy(linger=0)
            self._log.close()


@pytest.fixture
def hosts(runtime_dir: Path):
    """``hosts(graph, "a")`` starts host a's part; every launcher is stopped and no node process is left."""
    started: list[HostLaunch] = []

    def start(graph: Path, host: str) -> HostLaunch:
        launched = HostLaunch(graph, host, runtime_dir)
        started.append(launched)
        return launched

    yield start
    codes = {}
    for launched in started:
        codes[launched.host] = launched.stop()
    try:
        wait_for(lambda: not host_processes(runtime_dir), 10, what="every node process to exit")
    finally:
        for proc in host_processes(runtime_dir):  # only ours: their wiring files lie in this test's directory
            proc.kill()
    assert all(code == 0 for code in codes.values()), f"launcher exit codes {codes}"


def sub_socket(context: zmq.Context, events: int = 0) -> tuple[zmq.Socket, zmq.Socket | None]:
    sub = context.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    monitor = sub.get_monitor_socket(events) if events else None
    return sub, monitor


def drain_events(monitor: zmq.Socket) -> set[int]:
    seen = set()
    while monitor.poll(0):
        seen.add(recv_monitor_message(monitor)["event"])
    return seen


def count_messages(sock: zmq.Socket) -> int:
    received = 0
    while sock.poll(0):
        sock.recv_multipart()
        received += 1
    return received


HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


# --- keys ----------------------------------------------------------------------------------------


def test_keys_generate_writes_a_private_pair_per_host_and_never_overwrites(tmp_path):
    keys = tmp_path / "keys"
    first = keys_cli(str(keys), "a", "b")
    assert first.returncode == 0, first.stderr
    names = {"a.key", "a.key_secret", "b.key", "b.key_secret"}
    assert {p.name for p in keys.iterdir()} == names
    for host in ("a", "b"):
        secret = keys / f"{host}.key_secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, f"{secret} is readable by others"
        public, secret_key = zmq.auth.load_certificate(str(secret))
        assert len(public) == 40 and len(secret_key) == 40
        assert zmq.auth.load_certificate(str(keys / f"{host}.key"))[0] == public
        assert zmq.curve_public(secret_key) == public
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    before = {name: (keys / name).read_bytes() for name in names}

    again = keys_cli(str(keys), "a", "b", "c")
    assert again.returncode == 0, again.stderr
    assert {(keys / name).read_bytes() for name in names} == set(before.values())
    for name, content in before.items():
        assert (keys / name).read_bytes() == content, f"{name} was overwritten"
    assert {p.name for p in keys.iterdir()} == names | {"c.key", "c.key_secret"}
    assert stat.S_IMODE((keys / "c.key_secret").stat().st_mode) == 0o600

    third = keys_cli(str(keys), "a")
    assert third.returncode == 0
    assert "already exist" in third.stderr
    assert (keys / "a.key_secret").read_bytes() == before["a.key_secret"]


# --- tcp:// between hosts ----------------------------------------------------------------------


def test_data_flows_between_hosts_over_the_curve_link(tmp_path, hosts):
    graph = two_host_graph(tmp_path, free_base_port())
    a = hosts(graph, "a")
    b = hosts(graph, "b")
    state_a, state_b = a.wait_running(), b.wait_running()
    assert set(state_a.nodes) == {"ticker"} and set(state_b.nodes) == {"relay"}

    status = b.status("relay", lambda s: s["inputs"]["ticks"]["received"] >= 10)
    assert status["inputs"]["ticks"]["drops"] == {}

    # What the relay forwards on host b is what host a's ticker sent over tcp://.
    sub, _ = sub_socket(b.context)
    sub.connect(state_b.nodes["relay"].pub)
    assert sub.poll(5000), "relay on host b published nothing"
    msg = messages.decode(sub.recv_multipart(copy=False))
    assert msg.topic == "relay/ticks" and msg["count"] > 0
    assert msg["relay_pid"] == state_b.nodes["relay"].pid != state_a.nodes["ticker"].pid


def test_only_an_authorised_key_can_subscribe_to_a_tcp_output(tmp_path, hosts):
    base = free_base_port()
    graph = two_host_graph(tmp_path, base)
    hosts(graph, "a").wait_running()  # the ticker alone; nothing else subscribes to it
    keys = tmp_path / "keys"
    server_public = zmq.auth.load_certificate(str(keys / "a.key"))[0]
    endpoint = f"tcp://127.0.0.1:{base + TICKER_PORT_OFFSET}"

    context = zmq.Context()
    try:
        plain, plain_events = sub_socket(context, HANDSHAKE_EVENTS)

        rogue, rogue_events = sub_socket(context, HANDSHAKE_EVENTS)
        rogue.curve_publickey, rogue.curve_secretkey = zmq.curve_keypair()  # not in the key directory
        rogue.curve_serverkey = server_public

        friend, friend_events = sub_socket(context, HANDSHAKE_EVENTS)
        friend.curve_publickey, friend.curve_secretkey = key_pair(keys, "b")
        friend.curve_serverkey = server_public

        for sock in (plain, rogue, friend):
            sock.connect(endpoint)

        got = {"plain": 0, "rogue": 0, "friend": 0}
        events = {"plain": set(), "rogue": set(), "friend": set()}
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            time.sleep(0.05)
            for name, sock, monitor in (
                ("plain", plain, plain_events),
                ("rogue", rogue, rogue_events),
                ("friend", friend, friend_events),
            ):
                got[name] += count_messages(sock)
                events[name] |= drain_events(monitor)

        assert got["friend"] >= 20, f"authorised subscriber got {got['friend']} ticks in 2.5 s"
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED in events["friend"]
        assert got["plain"] == 0, "a subscriber without CURVE received ticks over tcp://"
        assert got["rogue"] == 0, "a subscriber with an unauthorised key received ticks over tcp://"
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events["plain"] | events["rogue"]
        assert zmq.EVENT_HANDSHAKE_FAILED_AUTH in events["rogue"], "the authenticator did not refuse the rogue key"
    finally:
        context.destroy(linger=0)


def fan_graph(directory: Path, base_port: int, pairs: int) -> Path:
    """``pairs`` tickers t0.. on host a, each feeding its own relay r0.. on host b (ticker ti on base + 2i)."""
    generate_keys(directory / "keys", ["a", "b"])
    tickers = "".join(
        f"\n  - {{id: t{i}, class: 'fixture_nodes:Ticker', host: a}}" for i in range(pairs)
    )
    relays = "".join(
        f"\n  - {{id: r{i}, class: 'fixture_nodes:Relay', host: b, inputs: {{ticks: t{i}/ticks}}}}"
        for i in range(pairs)
    )
    path = directory / "graph.yaml"
    path.write_text(
        f"name: {RUN}\nkeys: keys\ntcp_base_port: {base_port}\nstatus_period_s: 0.2\n"
        f"hosts:\n  a: {{address: 127.0.0.1}}\n  b: {{address: 127.0.0.1}}\nnodes:{tickers}{relays}\n"
    )
    return path


class Impostor:
    """A PUB bound where a ticker of host a would be, publishing well-formed ``TICKER/ticks``."""

    def __init__(self, context: zmq.Context, endpoint: str, ticker: str, curve: tuple[bytes, bytes] | None):
        self.ticker = ticker
        self.pub = context.socket(zmq.PUB)
        self.pub.linger = 0
        if curve is not None:
            self.pub.curve_publickey, self.pub.curve_secretkey = curve
            self.pub.curve_server = True
        self.monitor = self.pub.get_monitor_socket(zmq.EVENT_ACCEPTED | HANDSHAKE_EVENTS)
        wait_for(lambda: self._bind(endpoint), 2, what=f"binding {endpoint}")  # a closed listener frees it late
        self.events: set[int] = set()
        self.count = 0

    def _bind(self, endpoint: str) -> bool:
        try:
            self.pub.bind(endpoint)
        except zmq.ZMQError:
            return False
        return True

    def send(self) -> None:
        self.count += 1
        frames = messages.encode(
            f"{self.ticker}/ticks",
            {"count": self.count, "payload": np.full(16, self.count % 256, np.uint8), "pid": os.getpid()},
            seq=self.count,
            capture_ns=time.time_ns(),
            sender=self.ticker,
        )
        self.pub.send_multipart(frames)
        self.events |= drain_events(self.monitor)

    def close(self) -> None:
        self.pub.disable_monitor()
        self.monitor.close(linger=0)
        self.pub.close(linger=0)


def publish_for(impostors: list[Impostor], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for impostor in impostors:
            impostor.send()
        time.sleep(0.02)


def test_a_publisher_without_the_upstream_hosts_key_cannot_feed_an_input(tmp_path, hosts):
    """Host a is down; impostors bind its tickers' ports. Host b's relays take nothing from them."""
    base = free_base_port(16)
    keys = tmp_path / "keys"
    graph = fan_graph(tmp_path, base, pairs=4)
    b = hosts(graph, "b")
    b.wait_running()
    curves = {
        "no CURVE": None,
        "its own key": zmq.curve_keypair(),
        "host b's key": key_pair(keys, "b"),  # authorised, but not the key of the host the input expects
        "host a's key": key_pair(keys, "a"),  # control: what the real upstream does
    }
    context = zmq.Context()
    impostors = {}
    try:
        for i, (how, curve) in enumerate(curves.items()):
            impostors[how] = Impostor(context, f"tcp://127.0.0.1:{base + 2 * i}", f"t{i}", curve)
        publish_for(list(impostors.values()), 1.5)

        assert zmq.EVENT_HANDSHAKE_SUCCEEDED in impostors["host a's key"].events
        b.status("r3", lambda s: s["inputs"]["ticks"]["received"] > 0, timeout_s=5)
        for i, how in enumerate(list(curves)[:3]):
            events = impostors[how].events
            assert zmq.EVENT_ACCEPTED in events, f"impostor with {how}: the relay never connected; this proves nothing"
            assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events, f"impostor with {how} completed a handshake"
            ticks = b.status(f"r{i}")["inputs"]["ticks"]
            assert ticks["received"] == 0, f"relay r{i} took messages from an impostor with {how}"
            assert ticks["drops"] == {}, f"messages of an impostor with {how} reached relay r{i}"
    finally:
        for impostor in impostors.values():
            impostor.close()
        context.destroy(linger=0)


# A ZMTP 3.0 greeting offering the NULL mechanism: what a peer without CURVE answers.
NULL_GREETING = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\x00" + bytes(31)


def test_an_input_comes_back_to_its_upstream_after_an_impostor_breaks_the_handshake(tmp_path, hosts):
    """Availability, not secrecy: an impostor cannot feed the relay, but must not cut it off for good either."""
    base = free_base_port(4)
    keys = tmp_path / "keys"
    graph = fan_graph(tmp_path, base, pairs=1)
    b = hosts(graph, "b")
    b.wait_running()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", base))
        listener.listen()
        listener.settimeout(5)
        conn, _ = listener.accept()  # the relay, retrying its upstream every 100 ms
        with conn:
            conn.sendall(NULL_GREETING)
            time.sleep(0.3)
    context = zmq.Context()
    upstream = Impostor(context, f"tcp://127.0.0.1:{base}", "t0", key_pair(keys, "a"))  # host a is back
    try:
        publish_for([upstream], 2.5)
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED in upstream.events, "the relay never reconnected to its upstream"
        assert b.status("r0")["inputs"]["ticks"]["received"] > 0
    finally:
        upstream.close()
        context.destroy(linger=0)


# --- ipc:// ------------------------------------------------------------------------------------


def test_ipc_sockets_live_in_a_directory_only_the_user_can_read(launch, runtime_dir):
    runtime_dir.chmod(0o755)  # only edgerun's own directories may keep other users out
    graph = launch(
        """
        name: private
        nodes:
          - id: ticker
            class: fixture_nodes:Ticker
          - id: sink
            class: fixture_nodes:Sink
            inputs: {ticks: ticker/ticks}
        """
    ).wait_running()
    state = graph.state()
    directory = run_dir("private")
    assert directory.parent == runtime_root() == runtime_dir / "edgerun"
    for path in (runtime_root(), directory):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, f"{path} is open to group or others"
        assert path.stat().st_uid == os.getuid()

    endpoints = [e for node in state.nodes.values() for e in (node.pub, node.ctl, node.srv) if e]
    assert endpoints
    for endpoint in endpoints:
        assert endpoint.startswith("ipc://")
        path = Path(endpoint[len("ipc://"):])
        assert path.parent == directory, f"{endpoint} lies outside the private run directory"
        assert path.is_socket()

    if os.geteuid() == 0:  # root can check what another user sees
        assert other_user_can_reach(Path(state.nodes["ticker"].pub[len("ipc://"):])) == "denied"


def other_user_can_reach(socket_path: Path) -> str:
    """As uid/gid 65534 (nobody): list the run directory and connect to a socket in it."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only syscalls, then _exit
        result = b"denied"
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                os.listdir(socket_path.parent)
                result = b"listed"
            except PermissionError:
                pass
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(str(socket_path))
                result = b"connected"
            except PermissionError:
                pass
        except Exception:  # noqa: BLE001 - the forked child must always reach os._exit
            result = b"error"
        finally:
            os.write(write, result)
            os._exit(0)
    os.close(write)
    try:
        return os.read(read, 64).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)


def test_runtime_root_makes_an_open_directory_private(monkeypatch, runtime_dir):
    runtime_dir.chmod(0o755)
    root = runtime_dir / "edgerun"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    (root / "old-run").mkdir()
    (root / "old-run").chmod(0o755)

    assert runtime_root() == root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(run_dir("old-run").stat().st_mode) == 0o700
    assert stat.S_IMODE(run_dir("new-run").stat().st_mode) == 0o700

    # Without XDG_RUNTIME_DIR: a per-user directory under the temp dir, private too.
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(runtime_dir))
    fallback = runtime_root()
    assert fallback == runtime_dir / f"edgerun-{os.getuid()}"
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory owned by another user")
def test_runtime_root_refuses_a_directory_owned_by_another_user(runtime_dir):
    root = runtime_dir / "edgerun"
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)  # e.g. /tmp/edgerun-UID planted by someone else
    with pytest.raises(PermissionError, match="belongs to uid 65534"):
        runtime_root()
