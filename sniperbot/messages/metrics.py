"""The metrics snapshot every actor (and the node) publishes on ``metrics.<actor id>``."""

from __future__ import annotations

from sniperbot.messages.base import Message

# A sample's labels: (name, value) pairs, sorted by name, of bounded cardinality.
Labels = list[tuple[str, str]]


class MetricsSnapshot(Message, tag="metrics"):
    """One actor's metrics at ``ts_ns``: cumulative counters, gauges and fixed-bucket histograms.

    Values are this incarnation's (counters start at 0 after a restart: Prometheus's
    ``rate()``/``increase()`` treat that as a counter reset). ``seq`` counts this
    incarnation's snapshots, so the exporter sees a snapshot lost on the bus.
    A histogram is ``(name, labels, counts per bucket of buckets + [+Inf], sum)``.
    """

    actor_id: str
    incarnation: int
    seq: int
    ts_ns: int
    counters: list[tuple[str, Labels, float]] = []
    gauges: list[tuple[str, Labels, float]] = []
    histograms: list[tuple[str, Labels, list[int], float]] = []
    buckets: list[float] = []
