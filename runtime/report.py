"""Status for people: the live table while a graph runs (refreshed in place on a terminal, a short
periodic line in logs), the summary when it ends, and the last errors.

Every view is built from the same rows, one per stream: each input of a node (or each output of a
node without inputs, a source), with its rate, the age of its messages when handled (capture to
handling: p50 and p99), its drops (lost or refused messages; a ``Latest`` input's conflation is not
one), how it travels (inproc, shm, ipc or tcp; a source's shared-memory output with its slots in use)
and its node's restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rich.table import Table
from rich.text import Text

IDLE_HZ = 0.05
"""Below this rate a stream is shown as idle rather than as a rate."""


@dataclass(frozen=True)
class StreamRow:
    stream: str  # node.input, or node/output for a source
    rate_hz: float
    p50_ms: float | None
    p99_ms: float | None
    drops: int
    restarts: int
    via: str = "-"

    @property
    def idle(self) -> bool:
        return self.rate_hz < IDLE_HZ


EXPECTED_DISCARDS = frozenset({"conflated"})
"""Drop reasons that are an input policy doing its job (a ``Latest`` input keeping only the newest
message), left out of the tables' drops: those count what was lost or refused."""


def _losses(stream: Mapping[str, Any]) -> int:
    return sum(n for reason, n in stream.get("drops", {}).items() if reason not in EXPECTED_DISCARDS)


def stream_rows(statuses: Mapping[str, Mapping[str, Any]], rate: str = "rate_hz") -> list[StreamRow]:
    """One row per input (per output for source nodes), in the order of ``statuses``. ``rate`` is
    ``rate_hz`` (the last seconds: live views) or ``mean_rate_hz`` (the whole run: summaries)."""
    rows = []
    for node, status in statuses.items():
        streams = [(f"{node}.{name}", s, _losses(s)) for name, s in status["inputs"].items()]
        if not streams:
            streams = [(f"{node}/{name}", s, 0) for name, s in status["outputs"].items()]
        for stream, s, drops in streams:
            rows.append(StreamRow(stream, s.get(rate, s["rate_hz"]), s["latency_p50_ms"], s["latency_p99_ms"], drops,
                                  status["restarts"], _via(s)))
    return rows


def _via(stream: Mapping[str, Any]) -> str:
    via = stream.get("transport", "-")
    if "shm_slots" in stream:  # an output: its pool
        via += f" {stream['shm_in_use']}/{stream['shm_slots']}"
    return via


def format_age(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def format_rate(row: StreamRow) -> str:
    return "idle" if row.idle else f"{row.rate_hz:.1f}"


HEADER = ("stream", "via", "Hz", "age p50", "age p99", "drops", "restarts")


def _cells(row: StreamRow) -> tuple[str, ...]:
    return (row.stream, row.via, format_rate(row), format_age(row.p50_ms), format_age(row.p99_ms), str(row.drops),
            str(row.restarts))


def format_table(statuses: Mapping[str, Mapping[str, Any]], rate: str = "mean_rate_hz") -> str:
    """Plain text, aligned: the summary at the end of a run (mean rates) and ``edgerun top`` in a log."""
    rows = [HEADER, *(_cells(r) for r in stream_rows(statuses, rate=rate))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                     for row in rows)


def live_table(statuses: Mapping[str, Mapping[str, Any]], title: str, previous_drops: Mapping[str, int] | None = None) -> Table:
    """The rich table a terminal shows, refreshed in place: idle streams dimmed, drops that grew
    since ``previous_drops`` in red, ages over a second in yellow, nodes with an error listed below."""
    table = Table(title=title, title_justify="left", expand=False, box=None, header_style="bold", pad_edge=False)
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for row in stream_rows(statuses):
        cells = [Text(c) for c in _cells(row)]
        if row.idle:
            cells[0].stylize("dim")
            cells[2].stylize("dim")
        for cell, ms in ((cells[3], row.p50_ms), (cells[4], row.p99_ms)):
            if ms is not None and ms >= 1000:
                cell.stylize("yellow")
        if row.drops > (previous_drops or {}).get(row.stream, row.drops):
            cells[5].stylize("bold red")
        if row.restarts:
            cells[6].stylize("yellow")
        table.add_row(*cells)
    if errors := format_errors(statuses):
        table.caption = errors
        table.caption_style = "red"
        table.caption_justify = "left"
    return table


def format_pulse(statuses: Mapping[str, Mapping[str, Any]], previous_drops: Mapping[str, int] | None = None) -> str:
    """One short line for logs: how many streams flow, the slowest and the oldest, new drops, restarts."""
    rows = stream_rows(statuses)
    if not rows:
        return "no streams yet"
    flowing = [r for r in rows if not r.idle]
    parts = [f"{len(flowing)}/{len(rows)} streams flowing"]
    if flowing:
        slowest = min(flowing, key=lambda r: r.rate_hz)
        parts.append(f"slowest {slowest.stream} {slowest.rate_hz:.1f} Hz")
    aged = [r for r in flowing if r.p99_ms is not None]
    if aged:
        oldest = max(aged, key=lambda r: r.p99_ms)
        parts.append(f"oldest {oldest.stream} p99 {format_age(oldest.p99_ms)}")
    grew = {r.stream: r.drops - (previous_drops or {}).get(r.stream, 0) for r in rows}
    new = {s: n for s, n in grew.items() if n > 0}
    parts.append(f"drops {sum(r.drops for r in rows)}" + (f" (+{sum(new.values())}: {', '.join(sorted(new))})" if new else ""))
    parts.append(f"restarts {sum(s['restarts'] for s in statuses.values())}")
    return " · ".join(parts)


def drops_by_stream(statuses: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    return {r.stream: r.drops for r in stream_rows(statuses)}


def format_errors(statuses: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per node that raised: its last error, where (setup, which input, timer or service)
    and how many handler errors in all; empty when none did."""
    lines = []
    for node, status in statuses.items():
        error = status.get("last_error")
        if error:
            count = status.get("handler_errors", 0)
            lines.append(f"{node}: {error['type']} in {error['where']}: {error['message']}"
                         + (f" ({count} handler error{'s' if count != 1 else ''} in all)" if count else ""))
    return "\n".join(lines)
