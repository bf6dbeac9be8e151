"""The alerts actor (``alerts``): turns what happens in the node into alerts, journaled, then sent.

It follows the bus and alerts on:

=====================  ===========================================================  ==========
event                  when                                                         severity
=====================  ===========================================================  ==========
breaker                a circuit breaker opens / goes half-open / closes             critical /
                       (``BreakerChanged``; an open breaker whose reason is an      warning /
                       escalation is a subtree's restart storm)                     info
loss limit             trading state changed by the risk guard's daily loss limit   critical
                       or max drawdown (the journaled reason says which)
trading state          any other change of ``RiskStatus.trading_state``             HALTED critical,
                                                                                    REDUCING warning,
                                                                                    ACTIVE info
restart storm          ``restart_storm_count`` actor restarts (a new incarnation's  warning
                       ``Ready``) within ``restart_storm_window_s``
venue outage / stale   ``FeedStatus``: disconnected; stale (either lasting          critical /
                       ``venue_grace_s``); recovered after one was reported        warning / info
reconciliation         ``VenueStatus`` of a live venue: not reconciled (lasting     critical /
                       ``venue_grace_s``: the venue does not trade), or a balance   warning / info
                       drift between exchange and journal; resolved after one was
                       reported
fill (``fills=true``)  every fill                                                   info
daily summary          once a day at ``daily_summary_utc``: trading state, P&L,     info
                       fees, orders, fills, rejections
=====================  ===========================================================  ==========

Each alert goes to the channels whose ``min_severity`` it meets. It is committed to the outbox
(:mod:`sniperbot.alerts.outbox`, which states the delivery guarantee under kill -9) before it is
handed to the I/O thread (:mod:`sniperbot.alerts.dispatcher`); at start every alert still owed to a
configured channel is sent again. What the actor has already reported (trading state, each venue's
health, each breaker's last change, the last daily summary) is remembered in the outbox too, so a
restart - which replays the last value of every topic - does not report old news again; alert keys
are de-duplicated within ``dedup_window_s`` (a flapping feed alerts once per window and status).
Breakers are also read from the journal once a second: an announcement lost while the actor was
joining the bus is still reported (:meth:`AlertsActor._check_breakers`).
"""

from __future__ import annotations

import collections
import datetime as dt
import time
import zlib
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.alerts.channels import CHANNEL_TYPES, Channel
from sniperbot.alerts.config import ALERTS_ACTOR, ALERTS_ACTOR_ID, AlertsConfig
from sniperbot.alerts.dispatcher import Dispatcher
from sniperbot.alerts.model import Alert, Severity, severity_rank
from sniperbot.alerts.outbox import Outbox, open_outbox
from sniperbot.journal import JournalError, keys
from sniperbot.messages import (
    BreakerChanged,
    Envelope,
    FeedStatus,
    Fill,
    PortfolioSnapshot,
    Ready,
    RiskStatus,
)
from sniperbot.messages import topics as topic
from sniperbot.messages.venue import VenueStatus
from sniperbot.supervision.breaker import Breaker

# The risk guard's reasons for a loss stop start with these (RiskGuardActor._check_losses).
LOSS_REASONS = ("daily loss", "drawdown")
_KEEP_DELIVERED_S = 7 * 86_400.0
_FILL_DEDUP_S = 7 * 86_400.0
_TICK_S = 1.0
__all__ = ["ALERTS_ACTOR", "ALERTS_ACTOR_ID", "AlertsActor"]
_STATE_SEVERITY: dict[str, Severity] = {"HALTED": "critical", "REDUCING": "warning", "ACTIVE": "info"}
_BREAKER_SEVERITY: dict[str, Severity] = {"open": "critical", "half_open": "warning", "closed": "info"}


_DRIFT_EPSILON = 1e-9  # a balance drift smaller than this is float dust, not news


class AlertsActor(Actor):
    """Subscribes to breakers, trading state, feed health, restarts and fills; sends alerts."""

    def __init__(self, ctx: ActorContext, *, settings: dict[str, Any]) -> None:
        super().__init__(ctx)
        self.config = msgspec.convert(settings, AlertsConfig)
        topics = [
            topic.BREAKERS,
            topic.STATUS_RISK,
            topic.FEED_STATUS,
            topic.VENUE_STATUS,
            topic.STATUS_PORTFOLIO,
            topic.READY,
        ]
        if self.config.fills:
            topics.append(topic.EVENTS)
        self.topics = tuple(topics)
        self.outbox: Outbox | None = None
        self._started_ns = 0  # set in on_start: breakers closed before it are old news
        self.dispatcher: Dispatcher | None = None
        self._min_rank: dict[str, int] = {}
        self._incarnations: dict[str, int] = {}
        self._restarts: collections.deque[tuple[float, str]] = collections.deque()
        self._portfolio: PortfolioSnapshot | None = None
        self._trading_state = ""
        self._feeds: dict[str, tuple[str, FeedStatus]] = {}
        self._bad_since: dict[str, float] = {}
        self._recon_since: dict[str, float] = {}  # reconciliation problems not yet reported (grace)

    # -- lifecycle ---------------------------------------------------------------------------
    def on_start(self) -> None:
        """Open the outbox, start the channels, resend what is still owed."""
        self.outbox = outbox = open_outbox(self.ctx.run_dir)
        outbox.prune(_KEEP_DELIVERED_S)
        channels: list[Channel] = []
        for name, cls in CHANNEL_TYPES.items():
            channel_config = getattr(self.config, name)
            if channel_config is not None:
                channels.append(cls(channel_config))
                self._min_rank[name] = severity_rank(channel_config.min_severity)
        self.dispatcher = Dispatcher(outbox, channels, self.ctx.log, self.config.max_age_s)
        self.dispatcher.start()
        owed = outbox.pending(list(self._min_rank))
        for alert, names in owed:
            self.dispatcher.submit(alert, names)
        if owed:
            self.ctx.log.warning(
                "resending alerts not acknowledged before the restart",
                extra={"event": "alerts_resend", "alerts": len(owed)},
            )
        saved = outbox.get_state("trading_state")
        self._trading_state = saved.decode() if saved else ""
        self._started_ns = time.time_ns()
        self.ctx.every(_TICK_S, self._tick)

    def on_stop(self) -> None:
        """Stop the channels; what is in flight stays owed in the outbox."""
        if self.dispatcher is not None:
            self.dispatcher.stop()

    # -- events ------------------------------------------------------------------------------
    def on_message(self, envelope: Envelope) -> None:
        """Turn bus events into alerts."""
        payload = envelope.payload
        if isinstance(payload, BreakerChanged):
            self._on_breaker(payload)
        elif isinstance(payload, RiskStatus):
            self._on_risk(payload)
        elif isinstance(payload, FeedStatus):
            self._on_feed(payload)
        elif isinstance(payload, VenueStatus):
            self._on_venue(payload)
        elif isinstance(payload, Ready):
            self._on_ready(payload)
        elif isinstance(payload, PortfolioSnapshot):
            self._portfolio = payload
        elif isinstance(payload, Fill) and self.config.fills:
            self.alert(
                f"fill:{payload.fill_id}",
                "fill",
                "info",
                f"fill {payload.side} {payload.quantity:g} {payload.symbol} @ {payload.price:g}"
                f" on {payload.venue}",
                f"strategy {payload.strategy_id}, fee {payload.fee:g}, order {payload.client_order_id}",
                window_s=_FILL_DEDUP_S,
            )

    def _on_breaker(self, change: BreakerChanged) -> None:
        assert self.outbox is not None
        memo = f"breaker:{change.scope}"
        seen = self.outbox.get_state(memo)
        if seen is not None and int(seen) >= change.ts_ns:
            return  # the replayed last value, reported before the restart
        storm = change.state == "open" and change.reason.endswith("escalated")
        # Alert first, memo second: an alert whose commit fails (a full disk) is not marked
        # reported; one committed before a crash is de-duplicated by its key on the replay.
        self.alert(
            # The reason is part of the key: a hold for a new cause (a storage fault after a
            # recovery, keeping the trip count) is news, not a duplicate within the window.
            f"breaker:{change.scope}:{change.state}:{change.trips}:{zlib.crc32(change.reason.encode()):08x}",
            "restart_storm" if storm else "breaker",
            _BREAKER_SEVERITY.get(change.state, "warning"),
            f"breaker {change.scope} {change.state.upper().replace('_', '-')}",
            f"{change.reason}; trips {change.trips}"
            + (f", retry in {change.cooldown_s:g} s" if change.state == "open" else ""),
        )
        self.outbox.put_state(memo, str(change.ts_ns).encode())

    def _on_risk(self, status: RiskStatus) -> None:
        assert self.outbox is not None
        state = status.trading_state
        if state == self._trading_state:
            return
        first = not self._trading_state
        self._trading_state = state
        self.outbox.put_state("trading_state", state.encode())
        if first and state == "ACTIVE":
            return  # a first start that trades: nothing to report
        reason = self._state_reason(state)
        loss = reason.startswith(LOSS_REASONS)
        self.alert(
            f"trading_state:{state}:{status.ts_ns}",
            "loss_limit" if loss else "trading_state",
            "critical" if loss else _STATE_SEVERITY.get(state, "warning"),
            f"loss limit hit: trading {state}" if loss else f"trading {state}",
            reason or ("state at start" if first else ""),
        )

    def _state_reason(self, state: str) -> str:
        """The reason the risk guard journaled with ``state`` ("" if it is another one)."""
        raw = self.ctx.journal.get_state(keys.TRADING_STATE)
        if raw is None:
            return ""
        try:
            saved = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return ""
        if not isinstance(saved, dict) or saved.get("state") != state:
            return ""
        return str(saved.get("reason", ""))

    def _on_feed(self, status: FeedStatus) -> None:
        """Venue health: a bad state is reported once it lasted ``venue_grace_s``; recovery after that."""
        health = "down" if not status.connected else "stale" if status.stale else "ok"
        self._feeds[status.venue] = (health, status)
        self._check_feed(status.venue)

    def _check_feed(self, venue: str) -> None:
        assert self.outbox is not None
        health, status = self._feeds[venue]
        memo = f"feed:{venue}"
        seen = self.outbox.get_state(memo)
        reported = seen.decode() if seen is not None else "ok"
        if health == reported or (health != "ok" and reported != "ok"):
            # Unchanged, or still out (stale and down alternate while a feed reconnects): reported.
            if health == "ok":
                self._bad_since.pop(venue, None)
            return
        if health != "ok":
            # A feed is "down" while it connects at start or after a restart: only an outage that
            # lasts is news (like a Prometheus rule's ``for:``).
            since = self._bad_since.setdefault(venue, time.monotonic())
            if time.monotonic() - since < self.config.venue_grace_s:
                return
        self._bad_since.pop(venue, None)
        self.outbox.put_state(memo, health.encode())
        severity: Severity = {"down": "critical", "stale": "warning", "ok": "info"}[health]  # type: ignore[assignment]
        title = {
            "down": f"venue {venue} disconnected",
            "stale": f"venue {venue} stale",
            "ok": f"venue {venue} recovered",
        }[health]
        self.alert(
            f"venue:{venue}:{health}",
            "venue",
            severity,
            title,
            f"reconnects {status.reconnects}, stale periods {status.stale_periods}, gaps {status.gaps}",
        )

    def _on_venue(self, status: VenueStatus) -> None:
        """Reconciliation: a live venue not reconciled (it does not trade) or drifting from the journal."""
        if status.connection == "simulated":
            return
        venue = status.venue
        drift = {a: d for a, d in status.drift.items() if abs(d) > _DRIFT_EPSILON}
        health = "unreconciled" if not status.reconciled else "drift" if drift else "ok"
        assert self.outbox is not None
        memo = f"recon:{venue}"
        seen = self.outbox.get_state(memo)
        reported = seen.decode() if seen is not None else "ok"
        key = f"recon:{venue}"
        if health == reported:
            self._recon_since.pop(key, None)
            return
        if health != "ok":
            # Every gateway starts unreconciled: only a state that lasts is news.
            since = self._recon_since.setdefault(key, time.monotonic())
            if time.monotonic() - since < self.config.venue_grace_s:
                return
        self._recon_since.pop(key, None)
        self.outbox.put_state(memo, health.encode())
        if health == "unreconciled":
            detail = f"connection {status.connection}, last failure {status.last_failure or 'none'}"
            self.alert(
                f"recon:{venue}:{health}",
                "reconciliation",
                "critical",
                f"venue {venue} not reconciled: not trading",
                detail,
            )
        elif health == "drift":
            detail = ", ".join(f"{a} {d:+.8g}" for a, d in sorted(drift.items()))
            self.alert(
                f"recon:{venue}:{health}",
                "reconciliation",
                "warning",
                f"venue {venue}: balances drift from the journal",
                detail,
            )
        else:
            self.alert(f"recon:{venue}:ok", "reconciliation", "info", f"venue {venue} reconciled", "")

    def _on_ready(self, ready: Ready) -> None:
        known = self._incarnations.get(ready.actor_id)
        self._incarnations[ready.actor_id] = max(known or 0, ready.incarnation)
        if known is None or ready.incarnation <= known:
            return  # first sight (a baseline, not a restart) or an old incarnation
        now = time.monotonic()
        self._restarts.append((now, ready.actor_id))
        self._check_storm(now)

    def _check_storm(self, now: float) -> None:
        window = self.config.restart_storm_window_s
        while self._restarts and now - self._restarts[0][0] > window:
            self._restarts.popleft()
        if len(self._restarts) >= self.config.restart_storm_count:
            actors = collections.Counter(actor for _, actor in self._restarts)
            self.alert(
                "restart_storm",
                "restart_storm",
                "warning",
                f"restart storm: {len(self._restarts)} restarts in {window:g} s",
                ", ".join(f"{a} x{n}" for a, n in actors.most_common(10)),
            )

    def _tick(self) -> None:
        self._check_breakers()
        for venue in list(self._bad_since):
            self._check_feed(venue)
        self._daily_summary()

    def _check_breakers(self) -> None:
        """Report a breaker change the journal has and the bus did not bring.

        A ``BreakerChanged`` published while this actor's subscription was still joining the bus
        (its start, a restart) is lost; the node journals every change before announcing it. What
        was reported is remembered per scope (``_on_breaker``), so a change is reported once
        whichever way it came. A breaker that was closed before this actor started is old news.
        A journal that cannot be read (a storage fault, alerted on its own) is skipped: the bus
        still brings what the node announces.
        """
        try:
            items = self.ctx.journal.state_items(keys.BREAKER)
        except JournalError:
            return
        for _, raw in items:
            try:
                breaker = msgspec.json.decode(raw, type=Breaker)
            except msgspec.DecodeError:
                continue  # not ours to judge here: the node refuses a damaged journal at start
            if breaker.state == "closed" and breaker.changed_ns < self._started_ns:
                continue
            self._on_breaker(breaker.announcement())

    def _daily_summary(self) -> None:
        summary_at = self.config.daily_summary_utc
        if not summary_at:
            return
        assert self.outbox is not None
        now = dt.datetime.now(dt.UTC)
        hour, minute = (int(x) for x in summary_at.split(":"))
        if (now.hour, now.minute) < (hour, minute):
            return
        today = now.date().isoformat()
        last = self.outbox.get_state("daily_summary")
        if last is not None and last.decode() >= today:
            return
        self.outbox.put_state("daily_summary", today.encode())
        if last is None:
            return  # the first start ever: the first summary is tomorrow's, not one at start
        self.alert(
            f"daily_summary:{today}", "daily_summary", "info", f"daily summary {today}", self._summary()
        )

    def _summary(self) -> str:
        lines = [f"trading state: {self._trading_state or 'unknown'}"]
        p = self._portfolio
        if p is not None:
            net = p.realized_pnl + p.unrealized_pnl - p.fees
            lines.append(
                f"net P&L {net:.2f} (realised {p.realized_pnl:.2f}, unrealised {p.unrealized_pnl:.2f}, "
                f"fees {p.fees:.2f})"
            )
            lines.append(f"orders {p.orders}, fills {p.fills}, rejected {p.rejected}")
            for pos in p.positions:
                if pos.quantity:
                    lines.append(f"{pos.venue}:{pos.symbol} {pos.quantity:g} @ {pos.avg_price:g}")
        return "\n".join(lines)

    # -- the one way an alert is made ---------------------------------------------------------
    def alert(
        self, key: str, kind: str, severity: Severity, title: str, text: str, window_s: float | None = None
    ) -> Alert | None:
        """Journal an alert for the channels its severity reaches, then hand it to the I/O thread.

        Returns None when it was de-duplicated (same key within the window) or no channel wants it.
        """
        assert self.outbox is not None and self.dispatcher is not None
        rank = severity_rank(severity)
        channels = [name for name, min_rank in self._min_rank.items() if rank >= min_rank]
        if not channels:
            return None
        alert = self.outbox.submit(
            key=key,
            kind=kind,
            severity=severity,
            title=title,
            text=text,
            channels=channels,
            window_s=self.config.dedup_window_s if window_s is None else window_s,
        )
        if alert is None:
            self.ctx.log.info("alert suppressed (duplicate)", extra={"event": "alert_duplicate", "key": key})
            return None
        self.ctx.log.warning(
            "alert",
            extra={"event": "alert", "alert": alert.id, "kind": kind, "severity": severity, "title": title},
        )
        self.dispatcher.submit(alert, channels)
        return alert
