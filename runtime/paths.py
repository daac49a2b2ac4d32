"""Where a running graph keeps its ipc:// sockets and run state: a directory only the user can read."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

IPC_PATH_MAX = 100  # sockaddr_un holds 108 bytes; leave room for the terminator


def private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) or check that an existing one is ours and private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {info.st_uid}, not to this user ({os.getuid()})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    return path


def runtime_root() -> Path:
    """``$XDG_RUNTIME_DIR/edgerun``, or ``/tmp/edgerun-UID`` where there is no XDG runtime dir."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return private_dir(Path(xdg) / "edgerun")
    return private_dir(Path(tempfile.gettempdir()) / f"edgerun-{os.getuid()}")


def run_dir(run_name: str) -> Path:
    return private_dir(runtime_root() / run_name)


MEMORY_FILESYSTEMS = ("tmpfs", "ramfs")


def _filesystem(path: Path) -> str | None:
    """The type of the filesystem ``path`` lies on, from /proc/mounts (None where there is none)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    resolved, best, kind = str(path.resolve()), "", None
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            mount = parts[1].replace("\\040", " ")
            if (resolved == mount or resolved.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, kind = mount, parts[2]
    return kind


def segment_dir(run_directory: Path) -> Path:
    """Where a run keeps its shared-memory segments: ``shm/`` in the run directory when that lies in
    memory (``$XDG_RUNTIME_DIR`` is tmpfs), else ``/dev/shm/edgerun-UID/RUN-HASH``: a file on a disk
    would be written back to it. HASH is of the run directory's path, so runs of the same name under
    two runtime directories (two ``XDG_RUNTIME_DIR``s of one user) never share, or clean up, each
    other's segments. Only named here; the first publisher creates it (:func:`private_segment_dir`)."""
    if _filesystem(run_directory) in MEMORY_FILESYSTEMS or not Path("/dev/shm").is_dir():
        return run_directory / "shm"
    key = hashlib.sha256(str(run_directory.resolve()).encode()).hexdigest()[:8]
    return Path("/dev/shm") / f"edgerun-{os.getuid()}" / f"{run_directory.name}-{key}"


def private_segment_dir(path: Path) -> Path:
    """Create a :func:`segment_dir` and its parent, both 0700 and ours (or check they are)."""
    private_dir(path.parent)
    return private_dir(path)


def ipc_endpoint(directory: Path, name: str) -> str:
    path = str(directory / name)
    if len(path) > IPC_PATH_MAX:
        raise ValueError(
            f"ipc socket path {path!r} is {len(path)} characters, over the limit of {IPC_PATH_MAX}; "
            "set XDG_RUNTIME_DIR to a shorter directory or shorten the graph or node names"
        )
    return f"ipc://{path}"
