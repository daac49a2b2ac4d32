"""Per-stream statistics a node reports on its status topic: rate, latency, drops."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import numpy as np


class StreamStats:
    """Rate and capture-to-handling latency over a sliding window of recent messages.

    ``record`` is called by the thread that handles messages, ``snapshot`` by the one
    that publishes status; a lock keeps the two consistent.
    """

    def __init__(self, window: int = 1024, rate_window_s: float = 2.0):
        # Python lists, not numpy arrays: record() runs once per message and a list store
        # is several times cheaper than a numpy scalar store.
        self._arrival_ns = [0] * window
        self._latency_ns = [0] * window
        self._window = window
        self._count = 0
        self._first_ns = self._last_ns = 0
        self._rate_window_ns = int(rate_window_s * 1e9)
        self._lock = threading.Lock()

    def record(self, capture_ns: int, now_ns: int | None = None) -> None:
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            i = self._count % self._window
            self._arrival_ns[i] = now_ns
            self._latency_ns[i] = now_ns - capture_ns
            if not self._count:
                self._first_ns = now_ns
            self._last_ns = now_ns
            self._count += 1

    @property
    def count(self) -> int:
        return self._count

    def snapshot(self, now_ns: int | None = None) -> dict[str, float | int | None]:
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            n = min(self._count, self._window)
            arrivals = np.array(self._arrival_ns[:n], dtype=np.float64)
            latencies = np.array(self._latency_ns[:n], dtype=np.float64)  # any int a caller passes: no overflow
            count = self._count
            span_all_ns = self._last_ns - self._first_ns
        recent = now_ns - arrivals <= self._rate_window_ns
        rate_hz = 0.0
        if recent.sum() >= 2:
            span_ns = now_ns - arrivals[recent].min()
            rate_hz = float((recent.sum() - 1) / max(span_ns, 1) * 1e9)
        lat = latencies[recent] if recent.any() else latencies
        p50, p99 = (np.percentile(lat, [50, 99]) / 1e6).tolist() if len(lat) else (None, None)
        mean_rate_hz = (count - 1) / span_all_ns * 1e9 if count >= 2 and span_all_ns > 0 else 0.0
        return {
            "count": count,
            "rate_hz": round(rate_hz, 2),  # over the last rate_window_s
            "mean_rate_hz": round(mean_rate_hz, 2),  # from the first message to the last
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
        }


class ErrorCounter:
    """Counts events by kind and logs the first of each kind, then every 100th.

    A broken handler or a hostile peer can repeat the same failure thousands of times a
    second; the count stays exact while the log stays readable.
    """

    def __init__(self, log: logging.Logger, where: str):
        self.by_reason: Counter[str] = Counter()
        self._log = log
        self._where = where

    def count(self, reason: str, detail: str = "", where: str | None = None) -> None:
        """Count one ``reason``; ``where`` replaces the counter's own prefix in the log line
        (for a ``detail`` that already says where, such as ``input 'obs': expected …``)."""
        self.by_reason[reason] += 1
        n = self.by_reason[reason]
        if n == 1 or n % 100 == 0:
            self._log.warning("%s (%s, %d so far): %s", where or self._where, reason, n, detail)

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


class DropCounter(ErrorCounter):
    """Dropped messages by reason, each logged with the sender that sent it."""

    def drop(self, reason: str, detail: str = "", sender: str = "?") -> None:
        self.count(reason, f"from '{sender}': {detail}")
