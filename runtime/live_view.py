"""Where a running graph's status goes: on a terminal, a table refreshed in place (rich) with the
nodes' log lines scrolling above it; in a log or a pipe, a short line every few seconds."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from edgerun.runtime.report import drops_by_stream, format_pulse, live_table

Statuses = Mapping[str, Mapping[str, Any]]


class LiveView:
    """``say`` a log line, ``show`` the latest statuses (at most every ``every_s``). Use as a context
    manager: on a terminal the table is drawn while inside and removed on exit (unless
    ``keep_on_exit``), so a summary that follows prints cleanly. ``plain`` renders the statuses when
    not on a terminal (default: one :func:`format_pulse` line)."""

    def __init__(self, out: TextIO, every_s: float, interactive: bool | None = None,
                 plain: Callable[[Statuses, Mapping[str, int]], str] | None = None, keep_on_exit: bool = False):
        self.out = out
        self.every_s = every_s
        self.interactive = out.isatty() if interactive is None else interactive
        self._plain = plain or (lambda statuses, drops: f"[edgerun] {format_pulse(statuses, drops)}")
        self._lock = threading.Lock()
        self._next = time.monotonic() + every_s
        self._drops: dict[str, int] = {}
        self._live: Live | None = None
        if self.interactive:
            console = Console(file=out, force_terminal=True)
            self._live = Live(console=console, auto_refresh=False, transient=not keep_on_exit, redirect_stdout=False, redirect_stderr=False)

    def __enter__(self) -> LiveView:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            with self._lock:
                self._live.stop()
                self._live = None

    def say(self, line: str) -> None:
        with self._lock:
            if self._live is not None:
                self._live.console.print(Text(line), soft_wrap=True)  # above the table
            else:
                print(line, file=self.out, flush=True)

    def show(self, statuses: Statuses, title: str, force: bool = False) -> None:
        now = time.monotonic()
        if not statuses or (now < self._next and not force):
            return
        self._next = now + self.every_s
        if self._live is not None:
            with self._lock:
                self._live.update(live_table(statuses, title, self._drops), refresh=True)
        else:
            self.say(self._plain(statuses, self._drops))
        self._drops = drops_by_stream(statuses)
