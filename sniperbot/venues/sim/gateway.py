"""The paper gateway actor: a simulated exchange in its own process, with its own books.

Paper trading is a mode, not a venue: this gateway fills against the quotes of
whatever feed publishes its venue's market data (the simulated market, or a real
exchange's book), NautilusTrader's ``SandboxExecutionClient`` pattern. It keeps the
gateway contract of :mod:`sniperbot.venues.base`; it supports ``market`` and
``limit`` orders and rejects other types with ``unsupported_order_type``.

It plays the exchange side of the executor's conversation, so that the executor
can crash without taking the exchange with it (and the other way round), as in
production:

* **Orders** (``Order`` in the inbox): an order whose client order id the venue
  already has is refused as ``rejected``/``duplicate_client_order_id`` and counted,
  never executed again; a new one is matched by the
  :class:`~sniperbot.venues.sim.paper.PaperVenue` fill model against the book the
  venue follows on the bus. What was received and done is committed to the
  venue's :class:`~sniperbot.venues.sim.ledger.VenueLedger` *before* the answer
  (:class:`~sniperbot.messages.venue.VenueEvents`) goes back to the sender.
* **Cancels** (``CancelOrder``): a resting order is cancelled, anything else is
  left alone.
* **Queries** (:class:`~sniperbot.messages.venue.VenueOrderQuery`): answered from
  the ledger with a :class:`~sniperbot.messages.venue.VenueOrderReport`, for the
  executor's reconciliation.
* **Quotes** on the bus fill resting limit orders; those fills are committed, then
  pushed to the venue's executor.

Restart: the ledger is the venue's memory, so a restarted venue still refuses every
client order id it ever received. Resting limit orders are cancelled at restart
(reason ``venue_restart``, recorded in the ledger and sent to the executor), like
an exchange's cancel-on-disconnect: the executor restarts with its venue
(``rest_for_one``), a breaker that tripped over this venue expects its open orders
gone, and an order nobody watched must not fill later. With
``cancel_on_restart=False`` they are put back on the book instead.

Status: like a live gateway it publishes a :class:`~sniperbot.messages.venue.VenueStatus` on
``status.venue.<venue>`` every second, so ``admin status`` looks the same for every venue:
connection ``simulated``, always reconciled (its ledger is the exchange), its resting orders; no
balances (the paper ledger keeps orders and fills, not an account) and so no drift.
"""

from __future__ import annotations

import time
from typing import Literal

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.journal import TERMINAL_STATUSES
from sniperbot.messages import CancelOrder, Envelope, Fill, Order, OrderUpdate, Quote, update_of
from sniperbot.messages import topics as topic
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport, VenueStatus
from sniperbot.venues.base import DUPLICATE, VENUE_RESTART
from sniperbot.venues.sim.ledger import shared_ledger
from sniperbot.venues.sim.paper import PaperVenue

_STATUS_INTERVAL_S = 1.0


class PaperVenueActor(Actor):
    """A simulated exchange for one venue name; actor id ``paper.<venue>``."""

    inbox = True

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        fee_bps: float,
        slippage_bps: float,
        executor: str = "",
        durability: Literal["fsync", "process"] = "fsync",
        cancel_on_restart: bool = True,
        hold_for_decision_book: bool = False,
    ) -> None:
        super().__init__(ctx)
        self.venue = venue
        self.cancel_on_restart = cancel_on_restart
        self.executor = executor or f"executor.{venue}"
        self.durability = durability
        self.engine = PaperVenue(
            venue, fee_bps, slippage_bps, keep_ledger=False, hold_for_decision_book=hold_for_decision_book
        )
        self.topics = (topic.quotes(venue),)
        self.duplicates = 0

    def on_start(self) -> None:
        """Open the ledger; cancel (or restore) the orders left resting by the last incarnation."""
        self.ledger = shared_ledger(self.ctx.run_dir, self.venue, self.durability)
        resting = self.ledger.resting()
        if self.cancel_on_restart and resting:
            now = time.time_ns()
            cancelled: list[OrderUpdate | Fill] = [
                update_of(e.order, "cancelled", VENUE_RESTART, ts_ns=now) for e in resting
            ]
            self.ledger.record(cancelled)
            self.ctx.send(self.executor, VenueEvents(venue=self.venue, events=cancelled))
        else:
            for entry in resting:
                self.engine.restore_resting(entry.order, len(entry.fills))
        self._started_ns = time.time_ns()
        self.ctx.every(_STATUS_INTERVAL_S, self.publish_status)
        self.publish_status()
        counts = self.ledger.counts()
        self.ctx.log.info(
            "venue ledger open",
            extra={
                "event": "venue_ledger",
                "resting": len(resting),
                "resting_cancelled": len(resting) if self.cancel_on_restart else 0,
                **counts,
            },
        )

    def publish_status(self) -> None:
        """This venue's :class:`VenueStatus` (simulated: reconciled since its start, no balances)."""
        status = VenueStatus(
            venue=self.venue,
            connection="simulated",
            reconciled=True,
            last_reconciliation_ns=self._started_ns,
            open_orders=len(self.engine.open_orders()),
            ts_ns=time.time_ns(),
        )
        self.ctx.publish(topic.venue_status(self.venue), status)

    def on_message(self, envelope: Envelope) -> None:
        """Orders, cancels and queries from the inbox; quotes from the bus."""
        payload = envelope.payload
        if isinstance(payload, Quote):
            events = self.engine.on_quote(payload)
            if events:
                self._commit(events)
                self.ctx.send(self.executor, VenueEvents(venue=self.venue, events=events))
        elif isinstance(payload, Order):
            self._on_order(payload, envelope.sender)
        elif isinstance(payload, CancelOrder):
            events = self.engine.cancel(payload.client_order_id, time.time_ns(), payload.reason)
            if events:
                self._commit(events)
                self.ctx.send(envelope.sender, VenueEvents(venue=self.venue, events=list(events)))
        elif isinstance(payload, VenueOrderQuery):
            self.ctx.send(envelope.sender, self.report(payload.client_order_id))

    def _on_order(self, order: Order, sender: str) -> None:
        if self.ledger.knows(order.client_order_id):
            # Like an exchange: the id is taken, whatever the sender meant. Counted, so a
            # checker can tell that an order travelled twice, and never executed twice.
            self.duplicates = self.ledger.count_duplicate(order.client_order_id)
            self.ctx.log.warning(
                "duplicate client order id refused",
                extra={"event": "duplicate_order", "client_order_id": order.client_order_id},
            )
            refused = update_of(order, "rejected", DUPLICATE)
            self.ctx.send(sender, VenueEvents(venue=self.venue, events=[refused]))
            return
        events = self.engine.submit(order, time.time_ns())
        self._commit([order, *events])
        self.ctx.send(sender, VenueEvents(venue=self.venue, events=events))

    def _commit(self, records: list[Order | OrderUpdate | Fill]) -> None:
        """Make it durable before anyone hears of it; keep only resting orders in memory."""
        self.ledger.record(records)
        for record in records:
            if isinstance(record, OrderUpdate) and record.status in TERMINAL_STATUSES:
                self.engine.forget(record.client_order_id)

    def report(self, client_order_id: str) -> VenueOrderReport:
        """Everything the ledger says about one order."""
        entry = self.ledger.order(client_order_id)
        now = time.time_ns()
        if entry is None:
            return VenueOrderReport(client_order_id=client_order_id, venue=self.venue, known=False, ts_ns=now)
        status = "accepted" if entry.status == "received" else entry.status
        return VenueOrderReport(
            client_order_id=client_order_id,
            venue=self.venue,
            known=True,
            status=status,
            reason=entry.reason,
            fills=entry.fills,
            ts_ns=now,
            exchange_order_id=client_order_id,  # the paper venue's order id is our client order id
        )
