"""A node process: runs the nodes of one ``ProcessWiring``, each on its own thread.

Started by the launcher (``python -m edgerun.runtime.host WIRING.json``) or by
``edgerun run``. Nodes of one process share one ZeroMQ context (inproc:// links pass
buffers by reference) and one CUDA context. SIGINT/SIGTERM stop every node; a handler
that does not return within ``stop_timeout_s`` ends the process anyway.
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import zmq

from edgerun.runtime.runner import NodeRunner
from edgerun.runtime.security import load_keys, start_authenticator
from edgerun.runtime.wiring import ProcessWiring, load

EXIT_OK, EXIT_FAILED, EXIT_STUCK = 0, 1, 3


def die_with_parent() -> None:
    """Linux: get SIGTERM when the launcher dies, even by kill -9, so no node is orphaned."""
    if sys.platform.startswith("linux"):
        parent = os.getppid()
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the launcher died before the signal was armed
            os._exit(EXIT_FAILED)


def exit_after(seconds: float, code: int) -> None:
    """A watchdog: end the process after ``seconds`` whatever is still running or stuck."""
    timer = threading.Timer(seconds, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(levelname).1s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def run_process(wiring: ProcessWiring, stop: threading.Event | None = None, handle_signals: bool = True) -> int:
    """Run every node of ``wiring`` until they end or ``stop`` is set; the exit code."""
    stop = stop or threading.Event()
    signalled: list[int] = []
    if handle_signals:
        # A handler runs on the main thread between any two bytecodes, also inside stop.wait() while
        # it holds the event's lock: stop.set() there waits for that lock forever (a node process that
        # outlived its killed launcher). So the handler only notes the signal; the loop below acts.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda number, _frame: signalled.append(number))
    context = zmq.Context()
    keys = load_keys(Path(wiring.keys_dir), wiring.host) if wiring.keys_dir else None
    auth = start_authenticator(context, keys) if keys else None
    log = logging.getLogger(f"edgerun.process.{wiring.name}")
    try:
        runners = [NodeRunner(node, context, stop, keys, wiring.limits) for node in wiring.nodes]
    except Exception as exc:
        log.error("cannot start process '%s': %s", wiring.name, exc)
        context.destroy(linger=0)
        return EXIT_FAILED
    threads = [threading.Thread(target=r.run, name=r.wiring.name, daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    while not signalled and not stop.is_set() and any(t.is_alive() for t in threads):
        time.sleep(0.05)
    stop.set()
    if handle_signals:  # a whole process of its own: shutdown may not outlast its bound
        exit_after(wiring.stop_timeout_s + 2.0, EXIT_STUCK)
    for thread in threads:
        thread.join(timeout=wiring.stop_timeout_s)
    stuck = [t.name for t in threads if t.is_alive()]
    if auth is not None:
        auth.stop()
    if stuck:
        log.error("node(s) %s did not stop within %.1f s; exiting anyway", ", ".join(stuck), wiring.stop_timeout_s)
        return EXIT_STUCK
    context.destroy(linger=0)
    return EXIT_FAILED if any(r.failed for r in runners) else EXIT_OK


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m edgerun.runtime.host WIRING.json")
    die_with_parent()
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 PID prints every thread's stack
    wiring = load(Path(argv[0]).read_bytes())
    configure_logging()
    code = EXIT_FAILED
    try:
        code = run_process(wiring)
        logging.shutdown()
        sys.stdout.flush()
    finally:
        os._exit(code)  # daemon threads stuck in a handler must not keep the process alive


if __name__ == "__main__":
    main()
