"""Status tables for people: live lines while a graph runs and the summary when it ends."""

from __future__ import annotations

from typing import Any, Mapping


def _ms(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.1f}"


def status_rows(statuses: Mapping[str, Mapping[str, Any]], rate: str = "rate_hz") -> list[tuple[str, ...]]:
    """One row per input (or per output for source nodes): stream, rate, p50, p99, drops, restarts.
    ``rate`` is ``rate_hz`` (the last seconds: live lines) or ``mean_rate_hz`` (the whole run: summaries)."""
    rows = []
    for node, status in statuses.items():
        streams = [(f"{node}.{name}", s, sum(s.get("drops", {}).values())) for name, s in status["inputs"].items()]
        if not streams:
            streams = [(f"{node}/{name}", s, 0) for name, s in status["outputs"].items()]
        for stream, s, drops in streams:
            rows.append(
                (
                    stream,
                    f"{s.get(rate, s['rate_hz']):7.1f}",
                    _ms(s["latency_p50_ms"]),
                    _ms(s["latency_p99_ms"]),
                    str(drops),
                    str(status["restarts"]),
                )
            )
    return rows


def format_table(statuses: Mapping[str, Mapping[str, Any]]) -> str:
    header = ("stream", "mean Hz", "p50 ms", "p99 ms", "drops", "restarts")
    rows = [header, *status_rows(statuses, rate="mean_rate_hz")]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join(lines)


def format_live(statuses: Mapping[str, Mapping[str, Any]]) -> str:
    return " | ".join(f"{r[0]} {r[1].strip()} Hz p50 {r[2].strip()} ms p99 {r[3].strip()} ms drops {r[4]}" for r in status_rows(statuses))


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
