"""The paper executor actor: journals each order, fills it on the paper venue, publishes events."""

from __future__ import annotations

import time

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.execution.paper import PaperVenue
from sniperbot.messages import CancelOrder, Envelope, Fill, Order, OrderUpdate, Quote
from sniperbot.messages import topics as topic


class PaperExecutor(Actor):
    """Executes approved orders against the simulated book, journal first.

    Order of effects for each order: journal the order, submit it to the
    venue, journal the venue's updates and fills, then publish them. A
    duplicate client order id (a resend) is acknowledged and ignored.

    Reconciliation at start: the paper venue lives inside this actor, so an
    order journaled but not finished by the previous incarnation never reached
    a venue that still exists; it is journaled as ``cancelled`` with reason
    ``venue_restart`` before any new order is accepted.
    """

    inbox = True

    def __init__(self, ctx: ActorContext, *, venue: str, fee_bps: float, slippage_bps: float) -> None:
        super().__init__(ctx)
        self.venue_name = venue
        self.venue = PaperVenue(venue, fee_bps, slippage_bps)
        self.topics = (topic.market(venue),)

    def on_start(self) -> None:
        """Reconcile orders the previous incarnation left open."""
        journal = self.ctx.journal
        now = time.time_ns()
        for order in journal.open_orders():
            if order.venue != self.venue_name:
                continue
            self._record(
                [
                    OrderUpdate(
                        client_order_id=order.client_order_id,
                        strategy_id=order.strategy_id,
                        venue=order.venue,
                        symbol=order.symbol,
                        status="cancelled",
                        reason="venue_restart",
                        ts_ns=now,
                    )
                ]
            )

    def on_message(self, envelope: Envelope) -> None:
        """Orders and cancels from the inbox; quotes from the bus."""
        payload = envelope.payload
        if isinstance(payload, Quote):
            events = self.venue.on_quote(payload)
            if events:
                self._record(events)
        elif isinstance(payload, Order):
            self._on_order(payload)
        elif isinstance(payload, CancelOrder):
            # Unknown or already finished orders have nothing to cancel: no event.
            events = self.venue.cancel(payload.client_order_id, time.time_ns())
            if events:
                self._record(events)

    def _on_order(self, order: Order) -> None:
        journal = self.ctx.journal
        if journal.order(order.client_order_id) is not None:
            return  # already executed once; the resend is acknowledged by the inbox
        journal.append(order)
        self._record(self.venue.submit(order, time.time_ns()))

    def _record(self, events: list[OrderUpdate | Fill]) -> None:
        self.ctx.journal.append_many(events)
        for event in events:
            if isinstance(event, Fill):
                self.ctx.publish(topic.fill(event.strategy_id), event)
            else:
                self.ctx.publish(topic.order_update(event.strategy_id), event)
