"""The portfolio actor: positions, realised and unrealised P&L, fees, order counts."""

from __future__ import annotations

import time

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.actors.recent import RecentIds
from sniperbot.messages import Envelope, Fill, Order, OrderUpdate, Quote
from sniperbot.messages import topics as topic
from sniperbot.portfolio.ledger import Ledger, combined_snapshot


class PortfolioActor(Actor):
    """Keeps the ledger from journaled fills and marks it to market.

    The journal is the source of truth: the ledger is restored at start from the journal's
    aggregates (:meth:`~sniperbot.journal.Journal.snapshot`: O(instruments), not O(records))
    and tailed after the snapshot's seq on every snapshot, so a fill missed on the bus (at-most-once) is
    still counted; bus fills only make the view faster. Fills are applied once
    by ``fill_id``. One ledger per venue: positions are keyed by venue and symbol, and
    a quote marks only its own venue's position.
    """

    def __init__(self, ctx: ActorContext, *, snapshot_interval_s: float, venues: list[str]) -> None:
        super().__init__(ctx)
        self.topics = (*(topic.quotes(v) for v in venues), topic.EVENTS)
        self.ledgers: dict[str, Ledger] = {v: Ledger() for v in venues}
        self.snapshot_interval_s = snapshot_interval_s
        self._applied = RecentIds()
        self._last_seq = 0
        self.orders = 0

    def on_start(self) -> None:
        """Restore from the journal's aggregates, tail it, and start publishing snapshots."""
        snapshot = self.ctx.journal.snapshot()
        for (venue, symbol), book in snapshot.books.items():
            self._ledger(venue).restore(symbol, book.quantity, book.avg_price, book.realized_pnl)
        for venue, totals in snapshot.venues.items():
            self._ledger(venue).restore_totals(totals.fees, totals.fills, totals.rejected)
        self.orders = snapshot.orders
        self._last_seq = snapshot.through_seq
        self._catch_up()
        self.ctx.every(self.snapshot_interval_s, self._snapshot)

    def on_message(self, envelope: Envelope) -> None:
        """Marks from quotes; fills and rejections from events."""
        payload = envelope.payload
        if isinstance(payload, Quote):
            self._ledger(payload.venue).mark(payload.symbol, payload.mid)
        elif isinstance(payload, Fill):
            seq = self.ctx.journal.fill_seq(payload.fill_id)
            if seq is None or seq > self._last_seq:  # else in the ledger already (snapshot or tail)
                self._apply(payload)

    def _apply(self, fill: Fill) -> None:
        if self._applied.add(fill.fill_id):
            self._ledger(fill.venue).apply_fill(fill)

    def _catch_up(self) -> None:
        for seq, record in self.ctx.journal.records(after_seq=self._last_seq):
            self._last_seq = seq
            if isinstance(record, Fill):
                self._apply(record)
            elif isinstance(record, Order):
                self.orders += 1
            elif isinstance(record, OrderUpdate):
                self._ledger(record.venue).on_order_update(record)

    def _snapshot(self) -> None:
        self._catch_up()
        snapshot = combined_snapshot(self.ledgers, time.time_ns(), orders=self.orders)
        self.ctx.publish(topic.STATUS_PORTFOLIO, snapshot)

    def _ledger(self, venue: str) -> Ledger:
        """The ledger of ``venue`` (a journaled venue no longer configured keeps its own)."""
        ledger = self.ledgers.get(venue)
        if ledger is None:
            ledger = self.ledgers[venue] = Ledger()
        return ledger
