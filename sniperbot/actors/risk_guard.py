"""The risk guard actor: every order intent passes here before any executor sees it."""

from __future__ import annotations

import time
from typing import Any

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import (
    Envelope,
    Fill,
    Order,
    OrderIntent,
    OrderUpdate,
    Quote,
    RiskStatus,
    SetTradingState,
)
from sniperbot.messages import topics as topic
from sniperbot.risk.guard import RiskGuard, RiskLimits

_STATUS_INTERVAL_S = 0.5


class RiskGuardActor(Actor):
    """Checks intents against the limits and trading state; approved ones become orders.

    The client order id is the intent id, so an intent that arrives twice (a
    resend after a restart) maps to the same order, which the executor's
    journal accepts only once. An approved intent is acknowledged to the
    strategy only when the executor has acknowledged the order. Rejections are journaled and published as
    ``OrderUpdate(status="rejected", reason=...)``.
    """

    inbox = True

    def __init__(
        self,
        ctx: ActorContext,
        *,
        limits: dict[str, Any],
        trading_state: str,
        executors: dict[str, str],
    ) -> None:
        super().__init__(ctx)
        self.guard = RiskGuard(RiskLimits(**limits), trading_state)  # type: ignore[arg-type]
        self.executors = executors
        self.topics = ("md.", topic.EVENTS)
        self._prices: dict[tuple[str, str], float] = {}
        self._seen_fills: set[str] = set()

    def on_start(self) -> None:
        """Restore positions from journaled fills; publish status periodically."""
        positions: dict[str, float] = {}
        for fill in self.ctx.journal.fills():
            self._seen_fills.add(fill.fill_id)
            signed = fill.quantity if fill.side == "buy" else -fill.quantity
            positions[fill.symbol] = positions.get(fill.symbol, 0.0) + signed
        self.guard.restore_positions(positions)
        self.ctx.every(_STATUS_INTERVAL_S, self._publish_status)

    def on_message(self, envelope: Envelope) -> None:
        """Intents and commands from the inbox; prices and order events from the bus."""
        payload = envelope.payload
        if isinstance(payload, Quote):
            self._prices[(payload.venue, payload.symbol)] = payload.mid
        elif isinstance(payload, OrderIntent):
            self._on_intent(payload)
        elif isinstance(payload, Fill):
            if payload.fill_id not in self._seen_fills:
                self._seen_fills.add(payload.fill_id)
                self.guard.on_fill(payload)
        elif isinstance(payload, OrderUpdate):
            self.guard.on_order_update(payload)
        elif isinstance(payload, SetTradingState):
            self.ctx.log.warning(
                "trading state changed",
                extra={"event": "trading_state", "state": payload.state, "reason": payload.reason},
            )
            self.guard.set_state(payload.state)  # type: ignore[arg-type]
            self._publish_status()

    def _on_intent(self, intent: OrderIntent) -> None:
        journal = self.ctx.journal
        if journal.order(intent.intent_id) is not None or journal.order_status(intent.intent_id):
            return  # decided before a restart: the executor or journal already has it
        now = time.time_ns()
        executor = self.executors.get(intent.venue)
        reason = (
            "unknown_venue"
            if executor is None
            else self.guard.check(intent, self._prices.get((intent.venue, intent.symbol)), now)
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
            reduce_only=intent.reduce_only,
            ts_ns=now,
        )
        self.ctx.send(executor, order, on_ack=release)

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
