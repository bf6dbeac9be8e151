"""The metrics exporter actor: every actor's last snapshot, served on ``/metrics`` for Prometheus.

:class:`MetricsActor` (actor id ``metrics``, under the ``ops`` supervisor) follows
``metrics.`` (every actor's and the node's :class:`~sniperbot.messages.MetricsSnapshot`) and
``status.`` (portfolio, risk guard, feeds), keeps ``{actor -> last snapshot}`` and serves it
through a prometheus-client *custom collector* from an HTTP server thread. A scrape copies
the state under a lock held only for the copy, so a slow or hung scrape client never delays
the actor's loop (and so never its heartbeats); each connection has its own thread.

Series: an actor's samples get an ``actor`` label; the node's carry their own labels. A
restarted actor's counters start again at 0 (Prometheus's ``rate``/``increase`` read that as a
counter reset); an actor that left the tree (a removed strategy) disappears from ``/metrics``
with the node's next snapshot. Where it serves: ``[metrics] address`` (default
``127.0.0.1:0``, any free port), written to ``<run dir>/endpoints.json`` under ``metrics``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import Envelope, FeedStatus, MetricsSnapshot, PortfolioSnapshot, RiskStatus
from sniperbot.messages import topics as topic
from sniperbot.metrics.catalog import CATALOG
from sniperbot.metrics.registry import Registry
from sniperbot.observability.endpoints import remove_endpoints, update_endpoints
from sniperbot.transport.auth import NODE

ENDPOINT_NAME = "metrics"
# A scrape connection that sends nothing for this long is dropped (each has its own thread,
# so it never delays the actor's loop; the timeout keeps hung clients from piling up threads).
CLIENT_TIMEOUT_S = 10.0
_FEED_COUNTERS = (
    "sniperbot_venue_reconnects_total",
    "sniperbot_venue_stale_periods_total",
    "sniperbot_venue_book_gaps_total",
    "sniperbot_venue_rest_polls_total",
    "sniperbot_venue_rate_limited_total",
)
_FAMILIES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}


def _fmt_le(bound: float) -> str:
    return repr(float(bound))


class SnapshotCollector:
    """prometheus-client custom collector over the exporter's last snapshots."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshots: dict[str, MetricsSnapshot] = {}
        self.status = Registry()  # derived from status messages: node-wide, no actor label
        self.gaps: dict[str, float] = {}

    def describe(self) -> list[Metric]:
        """Nothing to describe up front (series come and go with actors)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """One family per metric name, from a copy taken under the lock."""
        with self.lock:
            snapshots = list(self.snapshots.values())
            status = self.status.snapshot("", 0)
            gaps = dict(self.gaps)
        families: dict[str, Metric] = {}

        def family(name: str, kind: str) -> Metric | None:
            base = name.removesuffix("_total") if kind == "counter" else name
            fam = families.get(base)
            if fam is None:
                known = CATALOG.get(name)
                if known is not None and known[0] != kind:
                    return None  # a sample of the wrong type would make the whole scrape invalid
                fam = families[base] = _FAMILIES[kind](base, known[1] if known else name)
            elif fam.type != kind:
                return None
            return fam

        def add(snap: MetricsSnapshot, extra: dict[str, str]) -> None:
            for kind, samples in (("counter", snap.counters), ("gauge", snap.gauges)):
                for name, labels, value in samples:
                    fam = family(name, kind)
                    if fam is not None:
                        sample = name if kind == "gauge" or name.endswith("_total") else name + "_total"
                        fam.add_sample(sample, {**extra, **dict(labels)}, value)
            for name, labels, counts, total in snap.histograms:
                fam = family(name, "histogram")
                if fam is None or len(counts) != len(snap.buckets) + 1:
                    continue
                base = {**extra, **dict(labels)}
                cumulative = 0
                for bound, count in zip([*map(_fmt_le, snap.buckets), "+Inf"], counts, strict=True):
                    cumulative += count
                    fam.add_sample(name + "_bucket", {**base, "le": bound}, cumulative)
                fam.add_sample(name + "_count", base, cumulative)
                fam.add_sample(name + "_sum", base, total)

        for snap in snapshots:
            add(snap, {} if snap.actor_id == NODE else {"actor": snap.actor_id})
            if snap.actor_id != NODE:
                fam = family("sniperbot_metrics_snapshot_timestamp_seconds", "gauge")
                assert fam is not None
                fam.add_sample(fam.name, {"actor": snap.actor_id}, snap.ts_ns / 1e9)
        add(status, {})
        gap_family = family("sniperbot_bus_gaps_total", "counter")
        assert gap_family is not None
        for actor, lost in sorted(gaps.items()):
            gap_family.add_sample("sniperbot_bus_gaps_total", {"actor": actor}, lost)
        yield from families.values()


class _Handler(WSGIRequestHandler):
    """One scrape connection: quiet, and dropped after :data:`CLIENT_TIMEOUT_S` of silence."""

    timeout = CLIENT_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing per request."""


def serve(host: str, port: int, registry: CollectorRegistry) -> ThreadingWSGIServer:
    """Serve ``registry`` on ``host:port`` (port 0: any free one) from a daemon thread per connection."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
    server = make_server(host, port, make_wsgi_app(registry), server_class, handler_class=_Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server  # type: ignore[no-any-return]


class MetricsActor(Actor):
    """Serves ``/metrics`` with every actor's latest snapshot and the node's trading status."""

    topics = (topic.METRICS, topic.STATUS)

    def __init__(
        self, ctx: ActorContext, *, address: str = "127.0.0.1:0", venues: list[str] | None = None
    ) -> None:
        super().__init__(ctx)
        self.venues = list(venues or [])
        self._feeds_heard: set[str] = set()
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.collector = SnapshotCollector()
        self._server: Any = None
        self._seen: dict[str, tuple[int, int]] = {}  # actor -> (incarnation, last snapshot seq)

    def on_start(self) -> None:
        """Bind the HTTP server (its own daemon thread) and publish its address in endpoints.json."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        try:
            self._server = serve(self.host, self.port, registry)
        except OSError as e:
            # A crash: the ops supervisor retries, then opens the ops breaker; trading goes on.
            raise RuntimeError(
                f"cannot serve /metrics on {self.host}:{self.port} ([metrics] address): {e}"
            ) from e
        bound_host, bound_port = self._server.server_address[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        update_endpoints(self.ctx.run_dir, **{ENDPOINT_NAME: self.url})
        self.ctx.log.info("serving metrics", extra={"event": "metrics_serving", "url": self.url})

    def on_stop(self) -> None:
        """Stop serving and withdraw the address."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            remove_endpoints(self.ctx.run_dir, ENDPOINT_NAME)

    def on_message(self, envelope: Envelope) -> None:
        """Keep the last snapshot of each actor; turn status messages into node-wide series."""
        payload = envelope.payload
        collector = self.collector
        if isinstance(payload, MetricsSnapshot):
            self._count_gaps(payload)
            with collector.lock:
                collector.snapshots[payload.actor_id] = payload
                if payload.actor_id == NODE:
                    self._forget_removed(payload)
                    self._silent_feeds(payload)
        elif isinstance(payload, PortfolioSnapshot):
            self._on_portfolio(payload)
        elif isinstance(payload, RiskStatus):
            with collector.lock:
                status = collector.status
                status.counters[("sniperbot_risk_intents_total", (("result", "approved"),))] = (
                    payload.approved
                )
                status.counters[("sniperbot_risk_intents_total", (("result", "rejected"),))] = (
                    payload.rejected
                )
        elif isinstance(payload, FeedStatus):
            self._on_feed(payload)

    def _count_gaps(self, snap: MetricsSnapshot) -> None:
        """A jump in an incarnation's snapshot seq is snapshots the bus dropped on the way here."""
        incarnation, last = self._seen.get(snap.actor_id, (-1, 0))
        if snap.incarnation == incarnation and snap.seq > last + 1:
            with self.collector.lock:
                gaps = self.collector.gaps
                gaps[snap.actor_id] = gaps.get(snap.actor_id, 0.0) + snap.seq - last - 1
        self._seen[snap.actor_id] = (snap.incarnation, snap.seq)

    def _forget_removed(self, node: MetricsSnapshot) -> None:
        """Drop actors the node no longer supervises (lock held)."""
        current = {
            dict(labels).get("actor") for name, labels, _ in node.gauges if name == "sniperbot_actor_up"
        }
        for actor in [a for a in self.collector.snapshots if a != NODE and a not in current]:
            del self.collector.snapshots[actor]
            self.collector.gaps.pop(actor, None)

    def _silent_feeds(self, node: MetricsSnapshot) -> None:
        """Venues whose feed sends no FeedStatus (the simulated market: no connection to lose).

        Their venue series exist all the same (zeros, so dashboards and alerts never see a
        missing series): connected while the feed actor runs. Lock held.
        """
        up = {dict(labels).get("actor"): v for name, labels, v in node.gauges if name == "sniperbot_actor_up"}
        status = self.collector.status
        for venue in self.venues:
            if venue in self._feeds_heard:
                continue
            labels = (("venue", venue),)
            status.gauges[("sniperbot_venue_connected", labels)] = up.get(f"feed.{venue}", 0.0)
            status.gauges[("sniperbot_venue_stale", labels)] = 0.0
            status.gauges[("sniperbot_venue_rate_limit_used_ratio", labels)] = 0.0  # no rate limiter
            for name in _FEED_COUNTERS:
                status.counters.setdefault((name, labels), 0.0)

    def _on_portfolio(self, snap: PortfolioSnapshot) -> None:
        status = Registry()
        exposure = 0.0
        for p in snap.positions:
            labels = {"venue": p.venue, "symbol": p.symbol}
            notional = abs(p.quantity * p.avg_price)
            exposure += notional
            status.set("sniperbot_position_quantity", p.quantity, **labels)
            status.set("sniperbot_position_notional_quote", notional, **labels)
        status.set("sniperbot_exposure_quote", exposure)
        status.set("sniperbot_pnl_realized_quote", snap.realized_pnl)
        status.set("sniperbot_pnl_unrealized_quote", snap.unrealized_pnl)
        status.set("sniperbot_fees_quote", snap.fees)
        status.set("sniperbot_pnl_net_quote", snap.realized_pnl + snap.unrealized_pnl - snap.fees)
        with self.collector.lock:
            gauges = self.collector.status.gauges
            for key in [k for k in gauges if k[0].startswith(("sniperbot_position_", "sniperbot_pnl_"))]:
                del gauges[key]
            gauges.update(status.gauges)

    def _on_feed(self, feed: FeedStatus) -> None:
        self._feeds_heard.add(feed.venue)
        venue = (("venue", feed.venue),)
        with self.collector.lock:
            status = self.collector.status
            status.gauges[("sniperbot_venue_connected", venue)] = float(feed.connected)
            status.gauges[("sniperbot_venue_stale", venue)] = float(feed.stale)
            if feed.last_message_ns:
                status.gauges[("sniperbot_venue_last_message_timestamp_seconds", venue)] = (
                    feed.last_message_ns / 1e9
                )
            status.counters[("sniperbot_venue_reconnects_total", venue)] = float(feed.reconnects)
            status.counters[("sniperbot_venue_stale_periods_total", venue)] = float(feed.stale_periods)
            status.counters[("sniperbot_venue_book_gaps_total", venue)] = float(feed.gaps)
            status.counters[("sniperbot_venue_rest_polls_total", venue)] = float(feed.rest_polls)
