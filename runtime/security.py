"""ZeroMQ CURVE for tcp:// links between hosts.

A key directory holds one key pair per host (``NAME.key`` public, ``NAME.key_secret``
secret, both in ZeroMQ's certificate format). Every process on host NAME serves and
connects with NAME's pair and accepts only peers whose public key has a ``.key`` file
in the directory: a peer without an authorised key can neither subscribe nor publish.
ipc:// and inproc:// links stay inside one machine and a user-private directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


@dataclass(frozen=True)
class CurveKeys:
    public: bytes
    secret: bytes
    directory: Path

    def server_public(self, host: str) -> bytes:
        """The public key a client must expect from ``host``."""
        path = self.directory / f"{host}.key"
        if not path.exists():
            raise FileNotFoundError(f"no public key for host '{host}': {path} is missing")
        public, _ = zmq.auth.load_certificate(str(path))
        return public


def generate_keys(directory: Path, names: list[str]) -> list[Path]:
    """Write a key pair per name; existing pairs are kept, never overwritten."""
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
    written = []
    for name in names:
        secret_path = directory / f"{name}.key_secret"
        if secret_path.exists():
            continue
        public_file, secret_file = zmq.auth.create_certificates(str(directory), name)
        os.chmod(secret_file, 0o600)
        written += [Path(public_file), Path(secret_file)]
    return written


def load_keys(directory: Path, host: str) -> CurveKeys:
    secret_path = Path(directory) / f"{host}.key_secret"
    if not secret_path.exists():
        raise FileNotFoundError(
            f"no secret key for host '{host}' in {directory}; run `edgerun keys generate {directory} {host}`"
        )
    public, secret = zmq.auth.load_certificate(str(secret_path))
    return CurveKeys(public=public, secret=secret, directory=Path(directory))


def start_authenticator(context: zmq.Context, keys: CurveKeys) -> ThreadAuthenticator:
    """Accept CURVE clients whose public key is in the key directory (one per process)."""
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(keys.directory))
    return auth


def serve_curve(socket: zmq.Socket, keys: CurveKeys) -> None:
    """Make the next bind of ``socket`` a CURVE server (options apply to later binds only)."""
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_server = True


def connect_curve(socket: zmq.Socket, keys: CurveKeys, server_host: str) -> None:
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_serverkey = keys.server_public(server_host)
