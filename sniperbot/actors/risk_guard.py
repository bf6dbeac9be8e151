"""The risk guard actor: every order intent passes here before any executor sees it."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.actors.recent import RecentIds
from sniperbot.journal import keys
from sniperbot.journal.aggregates import DAY_NS
from sniperbot.messages import (
    BreakerChanged,
    Envelope,
    FeedStatus,
    Fill,
    MarketRules,
    Order,
    OrderIntent,
    OrderUpdate,
    PortfolioSnapshot,
    Quote,
    RiskStatus,
    SetTradingState,
)
from sniperbot.messages import topics as topic
from sniperbot.risk.guard import RiskGuard, RiskLimits

_STATUS_INTERVAL_S = 0.5
#: A rejection is logged the first time for its venue and reason, then every this many (quiet, yet a node
#: that rejects every intent says why in its log, not only in ``admin status``'s count).
REJECTION_LOG_EVERY = 100
TRADING_STATE_KEY = keys.TRADING_STATE  # re-exported for tools and tests
_DAY_NS = 86_400 * 10**9


class RiskGuardActor(Actor):
    """Checks intents against the limits and trading state; approved ones become orders.

    The client order id is the intent id, so an intent that arrives twice (a
    resend after a restart) maps to the same order, which the executor's
    journal accepts only once. An approved intent is acknowledged to the
    strategy only when the executor has acknowledged the order. Rejections are journaled and published as
    ``OrderUpdate(status="rejected", reason=...)``.

    A breach of ``daily_loss_limit`` or ``max_drawdown`` sets ``loss_action`` (REDUCING or
    HALTED). Like an operator's halt, the state is journaled and holds across restarts,
    whatever the config then says, until an operator resumes: a loss stop is never lifted
    by a restart or a config edit alone.

    A live venue's market rules (:class:`MarketRules`, from its feed; replayed by the node's last-value
    cache to a restarted guard) are applied before the limits: the quantity is rounded down to the lot
    step and the order sent with it, and an intent below the exchange's minimums is rejected with the
    figures in the reason (:mod:`sniperbot.risk.guard`, 4b). Until a venue's feed has published its rules
    (markets still loading), its intents are checked without them; the gateway still truncates to the
    step and the exchange refuses what is below its minimums.

    **Breakers.** An intent is checked against the ``global`` and its venue's breaker as the journal has
    them when it arrives, not only as last announced on the bus (``BreakerChanged``). The node journals
    every change before announcing it, but an announcement is at-most-once: one published while this
    process's subscription is still joining the bus (a start or restart, slower under load) is lost,
    and a guard that kept the ``open`` it read at start rejected every intent until the node stopped
    (``breaker_open``, while ``admin status`` said closed). An announcement newer than the journal's
    record is still taken (during a storage fault the node announces changes it cannot journal).
    Two LMDB reads per intent.

    **Positions.** For the same reason an intent is checked against the positions and pending orders as
    the journal has them: before deciding, the guard reads the fills and order updates journaled since
    it last looked (the executor journals them before it publishes them) and books those it has not
    heard on the bus. A restarted guard that missed a fill published while it was joining the bus
    refused a strategy's reduce-only exit (``reducing_only``: it thought the position flat) on every
    bar after, and the node never traded again (the chaos session on chain, under load). O(the
    records since the last intent).
    """

    inbox = True

    def __init__(
        self,
        ctx: ActorContext,
        *,
        limits: dict[str, Any],
        trading_state: str,
        executors: dict[str, str],
        daily_loss_limit: float = 0.0,
        max_drawdown: float = 0.0,
        loss_action: str = "HALTED",
    ) -> None:
        super().__init__(ctx)
        self.guard = RiskGuard(RiskLimits(**limits), trading_state)  # type: ignore[arg-type]
        self.executors = executors
        self.daily_loss_limit = daily_loss_limit
        self.max_drawdown = max_drawdown
        self.loss_action = loss_action
        venues = tuple(t for v in executors for t in (topic.quotes(v), topic.market_rules(v)))
        self.topics = (*venues, topic.EVENTS, topic.BREAKERS, topic.STATUS_PORTFOLIO, topic.FEED_STATUS)
        self._prices: dict[tuple[str, str], float] = {}
        self._seen_fills = RecentIds()
        # scope -> (state, changed_ns) of the last BreakerChanged heard (see the class docstring).
        self._breakers: dict[str, tuple[str, int]] = {}
        self._loss = {"day": -1, "day_start": 0.0, "peak": 0.0}
        self._restored_through = 0  # the journal seq the restored positions include
        self._read_through = 0  # the journal seq whose fills and updates are booked (see the class docstring)
        self._rejections: dict[tuple[str, str], int] = {}  # (venue, reason code) -> rejections, for the log

    def on_start(self) -> None:
        """Restore positions, trading state and loss marks from the journal (breakers: read per intent)."""
        journal = self.ctx.journal
        # O(keys): positions and today's spend from the journal's aggregates (sniperbot.journal.aggregates).
        snapshot = journal.snapshot(spend_day=time.time_ns() // DAY_NS)
        self._restored_through = self._read_through = snapshot.through_seq
        self.guard.restore_spend_totals(snapshot.spend_day, snapshot.spend)
        self.guard.restore_positions({key: book.net for key, book in snapshot.books.items()})
        saved = journal.get_state(TRADING_STATE_KEY)
        if saved is not None:
            self._restore_state(saved)
        loss = journal.get_state(keys.LOSS_MARKS)
        if loss is not None:
            self._loss = msgspec.json.decode(loss)
        self.ctx.every(_STATUS_INTERVAL_S, self._publish_status)
        self._publish_status()
        for limit in ("daily_loss", "drawdown"):  # from 0, so that increase() sees the first hit
            self.ctx.metrics.inc("sniperbot_loss_limit_hits_total", 0.0, limit=limit)

    def _restore_state(self, saved: bytes) -> None:
        """The journaled trading state; one that is not valid (an older version wrote it) halts."""
        try:
            self.guard.set_state(msgspec.json.decode(saved)["state"])
        except (msgspec.DecodeError, TypeError, KeyError, ValueError) as e:
            # Fail closed rather than crash-loop: the operator resumes after looking.
            self.ctx.log.error(
                "journaled trading state is not valid; starting HALTED",
                extra={"event": "trading_state_invalid", "saved": saved[:80].decode(errors="replace")},
            )
            self.guard.set_state("HALTED")
            self.ctx.journal.put_state(
                TRADING_STATE_KEY, msgspec.json.encode({"state": "HALTED", "reason": f"invalid saved: {e}"})
            )

    def on_message(self, envelope: Envelope) -> None:
        """Intents and commands from the inbox; prices, events, breakers and P&L from the bus."""
        payload = envelope.payload
        if isinstance(payload, Quote):
            self._prices[(payload.venue, payload.symbol)] = payload.mid
        elif isinstance(payload, OrderIntent):
            # Intents come only through the inbox (whose ack can be held); anywhere else they
            # are not ours to take, even from a strategy.
            if envelope.topic == "to." + self.ctx.actor_id:
                self._on_intent(payload)
        elif isinstance(payload, Fill):
            if self._seen_fills.add(payload.fill_id):
                seq = self.ctx.journal.fill_seq(payload.fill_id)
                if seq is None or seq > self._restored_through:  # else in the restored positions
                    self.guard.on_fill(payload)
        elif isinstance(payload, OrderUpdate):
            self.guard.on_order_update(payload)
        elif isinstance(payload, FeedStatus):
            self.guard.set_prices_stale(payload.venue, payload.stale)
        elif isinstance(payload, MarketRules):
            self.guard.set_market_rules(payload)
        elif isinstance(payload, BreakerChanged):
            self._breakers[payload.scope] = (payload.state, payload.ts_ns)
        elif isinstance(payload, PortfolioSnapshot):
            self._check_losses(payload)
        elif isinstance(payload, SetTradingState):
            self._set_state(payload.state, payload.reason)

    def _set_state(self, state: str, reason: str) -> None:
        if state == self.guard.state:
            return
        self.ctx.log.warning(
            "trading state changed",
            extra={"event": "trading_state", "state": state, "reason": reason},
        )
        self.ctx.journal.put_state(TRADING_STATE_KEY, msgspec.json.encode({"state": state, "reason": reason}))
        self.guard.set_state(state)  # type: ignore[arg-type]
        self._publish_status()

    def _check_losses(self, snapshot: PortfolioSnapshot) -> None:
        """Daily loss limit and max drawdown on net P&L (after fees)."""
        if not (self.daily_loss_limit or self.max_drawdown):
            return
        net = snapshot.realized_pnl + snapshot.unrealized_pnl - snapshot.fees
        day = snapshot.ts_ns // _DAY_NS
        loss = self._loss
        changed = False
        if loss["day"] != day:
            loss.update(day=day, day_start=net)
            changed = True
        if net > loss["peak"]:
            loss["peak"] = net
            changed = True
        if changed:
            self.ctx.journal.put_state(keys.LOSS_MARKS, msgspec.json.encode(loss))
        if self.guard.state == "HALTED":
            return
        breach = ""
        if self.daily_loss_limit and loss["day_start"] - net > self.daily_loss_limit:
            breach = f"daily loss {loss['day_start'] - net:.2f} over limit {self.daily_loss_limit}"
        elif self.max_drawdown and loss["peak"] - net > self.max_drawdown:
            breach = f"drawdown {loss['peak'] - net:.2f} over limit {self.max_drawdown}"
        if breach and self.guard.state != self.loss_action:
            limit = "daily_loss" if breach.startswith("daily") else "drawdown"
            self.ctx.metrics.inc("sniperbot_loss_limit_hits_total", limit=limit)
            self._set_state(self.loss_action, breach)

    def _breaker_blocks(self, intent: OrderIntent) -> str | None:
        """Why a breaker stops this intent: open blocks all, half-open lets only reductions pass."""
        for scope in ("global", f"venue:{intent.venue}"):
            state = self._breaker_state(scope)
            if state == "open":
                return f"breaker_open:{scope}"
            if state == "half_open":
                position = self.guard.positions.get((intent.venue, intent.symbol), 0.0)
                signed = intent.quantity if intent.side == "buy" else -intent.quantity
                if abs(position + signed) >= abs(position) or position * (position + signed) < 0:
                    return f"breaker_half_open:{scope}"
        return None

    def _breaker_state(self, scope: str) -> str:
        """The newer of the journal's record of ``scope`` and the last announcement heard (class doc)."""
        raw = self.ctx.journal.get_state(keys.BREAKER + scope)
        journaled = msgspec.json.decode(raw) if raw is not None else {}
        heard = self._breakers.get(scope)
        if heard is not None and heard[1] > journaled.get("changed_ns", -1):
            return heard[0]
        return str(journaled.get("state", "closed"))

    def _read_journal(self) -> None:
        """Book the fills and order updates journaled since the last look and not heard (class docstring)."""
        records, self._read_through = self.ctx.journal.since(self._read_through, (Fill, OrderUpdate))
        for _, record in records:
            if isinstance(record, Fill):
                if self._seen_fills.add(record.fill_id):
                    self.guard.on_fill(record)
            elif isinstance(record, OrderUpdate):
                self.guard.on_order_update(record)

    def _on_intent(self, intent: OrderIntent) -> None:
        journal = self.ctx.journal
        # One read: an intent decided before a restart has a status (rejected) or an order.
        if journal.order_status(intent.intent_id) or journal.order(intent.intent_id) is not None:
            return
        self._read_journal()
        now = time.time_ns()
        intent = self.guard.conform(intent)  # quantity rounded down to the venue's lot step
        executor = self.executors.get(intent.venue)
        reason = (
            "unknown_venue"
            if executor is None
            else self._breaker_blocks(intent)
            or self.guard.check(intent, self._prices.get((intent.venue, intent.symbol)), now)
        )
        if reason is not None:
            update = OrderUpdate(
                client_order_id=intent.intent_id,
                strategy_id=intent.strategy_id,
                venue=intent.venue,
                symbol=intent.symbol,
                status="rejected",
                reason=reason,
                ts_ns=now,
            )
            journal.append(update)
            self.ctx.publish(topic.order_update(intent.strategy_id), update)
            self._log_rejection(intent, reason)
            # Risk reasons are a closed set of codes (sniperbot.risk.guard): a bounded label.
            self.ctx.metrics.inc("sniperbot_orders_rejected_total", venue=intent.venue, reason=reason)
            return
        assert executor is not None
        # Acknowledge the intent only once the executor has the order: if we die in
        # between, the strategy resends the intent and nothing is lost.
        release = self.ctx.hold_ack()
        order = Order(
            client_order_id=intent.intent_id,
            intent_id=intent.intent_id,
            strategy_id=intent.strategy_id,
            venue=intent.venue,
            symbol=intent.symbol,
            side=intent.side,
            quantity=intent.quantity,
            order_type=intent.order_type,
            limit_price=intent.limit_price,
            stop_price=intent.stop_price,
            reduce_only=intent.reduce_only,
            ts_ns=now,
            decided_ts_ns=intent.ts_ns,
        )
        self.ctx.send(executor, order, on_ack=release)

    def _log_rejection(self, intent: OrderIntent, reason: str) -> None:
        """Log the first rejection of each venue and reason, then every :data:`REJECTION_LOG_EVERY`."""
        # Counted by the reason's code: some reasons carry figures after ": " (below_min_amount: 1 < 2).
        key = (intent.venue, reason.split(": ", 1)[0])
        count = self._rejections[key] = self._rejections.get(key, 0) + 1
        if count == 1 or count % REJECTION_LOG_EVERY == 0:
            self.ctx.log.warning(
                "intent rejected",
                extra={
                    "event": "intent_rejected",
                    "venue": intent.venue,
                    "strategy": intent.strategy_id,
                    "reason": reason,
                    "count": count,
                },
            )

    def _publish_status(self) -> None:
        self.ctx.publish(
            topic.STATUS_RISK,
            RiskStatus(
                trading_state=self.guard.state,
                approved=self.guard.approved,
                rejected=self.guard.rejected,
                ts_ns=time.time_ns(),
            ),
        )
