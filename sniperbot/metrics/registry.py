"""A per-actor metrics registry: counters, gauges and fixed-bucket histograms, no locks, no I/O.

Actor code reaches it as ``ctx.metrics``; deep code without a context (journal commits, the
rate limiter, a gateway's asyncio thread) uses :func:`current`, the registry the runtime set for
this thread, or is given one explicitly. Names follow Prometheus conventions (``sniperbot_``
prefix, base units, ``_total`` for counters, ``_seconds`` for durations; see
:mod:`sniperbot.metrics.catalog`); label values must come from a bounded set (venue, status,
reason code), never an order id.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from typing import Final

from sniperbot.messages import MetricsSnapshot

# Upper bounds in seconds of every latency histogram: 50 µs (the tick path's floor) to 2.5 s
# (a slow venue ack); fixed so that histograms of all actors and incarnations aggregate.
BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip

LabelKey = tuple[tuple[str, str], ...]


def _labels(labels: dict[str, str]) -> LabelKey:
    """The series key of ``labels``: sorted by name (one series whatever the call's keyword order)."""
    if not labels:
        return ()
    if len(labels) == 1:
        return tuple(labels.items())  # the common case, without the sort
    return tuple(sorted(labels.items()))


class Registry:
    """Counters, gauges and histograms of one actor incarnation.

    Meant for the actor's own thread; another thread of the same actor may record too
    (:meth:`snapshot` copies first), at the risk of losing an increment raced on one series.
    """

    enabled = True

    def __init__(self) -> None:
        self.counters: dict[tuple[str, LabelKey], float] = {}
        self.gauges: dict[tuple[str, LabelKey], float] = {}
        self.histograms: dict[tuple[str, LabelKey], list[float]] = {}  # bucket counts..., +Inf, sum
        self.seq = 0

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to the counter ``name`` (ends in ``_total``)."""
        key = (name, _labels(labels))
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set the gauge ``name``."""
        self.gauges[(name, _labels(labels))] = value

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        """Count one duration in the histogram ``name`` (ends in ``_seconds``)."""
        key = (name, _labels(labels))
        counts = self.histograms.get(key)
        if counts is None:
            counts = self.histograms[key] = [0.0] * (len(BUCKETS) + 2)
        counts[bisect_left(BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def observe_since(self, name: str, start_ns: int, **labels: str) -> None:
        """Observe the wall-clock time since ``start_ns`` (a message's ``ts_ns``); ignores unset stamps."""
        if start_ns > 0:
            self.observe(name, max(0.0, (time.time_ns() - start_ns) / 1e9), **labels)

    def snapshot(self, actor_id: str, incarnation: int) -> MetricsSnapshot:
        """Everything counted so far, as the message the exporter takes."""
        self.seq += 1
        # dict() copies are atomic under the GIL: another thread of the actor (a ccxt asyncio
        # thread's rate limiter) may add a series meanwhile without breaking the iteration.
        counters, gauges, histograms = dict(self.counters), dict(self.gauges), dict(self.histograms)
        return MetricsSnapshot(
            actor_id=actor_id,
            incarnation=incarnation,
            seq=self.seq,
            ts_ns=time.time_ns(),
            counters=[(n, list(lk), v) for (n, lk), v in counters.items()],
            gauges=[(n, list(lk), v) for (n, lk), v in gauges.items()],
            histograms=[(n, list(lk), [int(c) for c in h[:-1]], h[-1]) for (n, lk), h in histograms.items()],
            buckets=list(BUCKETS) if histograms else [],
        )


class _NullRegistry(Registry):
    """``[metrics] enabled = false``: every call is a no-op (the hot path pays one method call)."""

    enabled = False

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Do nothing."""

    def set(self, name: str, value: float, **labels: str) -> None:
        """Do nothing."""

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        """Do nothing."""

    def observe_since(self, name: str, start_ns: int, **labels: str) -> None:
        """Do nothing."""


NULL_REGISTRY: Final[Registry] = _NullRegistry()
_local = threading.local()
_process_default: Registry = NULL_REGISTRY


def current() -> Registry:
    """The registry of the actor running on this thread, else of this process's only actor, else null.

    An actor in its own process (placement ``process``) owns the process's default, so the
    threads it starts (a ccxt asyncio thread, whose rate limiter counts 429s) report into it;
    threads started by actors placed as threads of the node have none (the null registry).
    """
    registry = getattr(_local, "registry", None)
    return _process_default if registry is None else registry


def set_process_default(registry: Registry) -> None:
    """Make ``registry`` what :func:`current` returns on threads without their own (one actor per process)."""
    global _process_default
    _process_default = registry


def set_current(registry: Registry) -> None:
    """Make ``registry`` this thread's :func:`current` one (the actor runtime does, at open)."""
    _local.registry = registry
