"""Prometheus metrics: a tiny registry per actor, snapshots on the bus, one exporter actor.

Why not prometheus-client's multiprocess mode: actors restart (new pids) all day, and that
mode keeps one mmap file per dead pid until the directory is wiped, so scrapes slow down
without bound; custom collectors and Info/Enum do not work there either. Instead every
actor keeps its own counters, gauges and histograms (:mod:`sniperbot.metrics.registry`),
publishes a :class:`~sniperbot.messages.MetricsSnapshot` every ``[metrics] interval_s``,
and :class:`~sniperbot.metrics.exporter.MetricsActor` serves the latest of each on
``/metrics`` through a custom collector.
"""

from sniperbot.metrics.registry import (
    BUCKETS,
    NULL_REGISTRY,
    Registry,
    current,
    set_current,
    set_process_default,
)

__all__ = ["BUCKETS", "NULL_REGISTRY", "Registry", "current", "set_current", "set_process_default"]
