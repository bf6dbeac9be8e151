"""The paper gateway (``paper.<venue>``) passes the gateway conformance suite, plus its own options."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sniperbot.actors.base import Actor
from sniperbot.chaos.invariants import InvariantReport, check
from sniperbot.journal import Journal
from sniperbot.messages import Envelope, Fill, OrderUpdate, Quote
from sniperbot.venues.sim.gateway import PaperVenueActor
from sniperbot.venues.sim.ledger import VenueLedger, close_shared_ledgers
from tests.venues.conformance import SYMBOL, VENUE, Ctx, Desk, GatewayConformance, order


def quote(bid: float, ask: float) -> Quote:
    return Quote(
        venue=VENUE, symbol=SYMBOL, bid=bid, bid_size=5.0, ask=ask, ask_size=5.0, ts_ns=time.time_ns()
    )


class SimGateway:
    """The paper gateway under test; its witness is the venue's own durable ledger."""

    gateway_id = f"paper.{VENUE}"
    unsupported_orders = (
        {"order_type": "stop", "stop_price": 99.0, "limit_price": 98.0},  # stop-limit
        {"order_type": "stop", "stop_price": 102.0},  # stop-market
    )

    def __init__(self, cancel_on_restart: bool = True) -> None:
        self.cancel_on_restart = cancel_on_restart
        self.cancels_on_restart = cancel_on_restart
        self.actor: PaperVenueActor | None = None

    def start(self, ctx: Ctx) -> Actor:
        actor = PaperVenueActor(
            ctx,
            venue=VENUE,
            fee_bps=10.0,
            slippage_bps=0.0,
            durability="process",
            cancel_on_restart=self.cancel_on_restart,
        )
        actor.on_start()
        actor.on_message(Envelope("md", f"feed.{VENUE}", 1, 1, 1, quote(100.0, 101.0)))
        self.actor = actor
        return actor

    def move_market(self, gateway: Actor, bid: float, ask: float) -> None:
        gateway.on_message(Envelope("md", f"feed.{VENUE}", 1, 2, 2, quote(bid, ask)))

    def settle(self, gateway: Actor) -> None:
        pass  # the paper venue answers within the delivery

    def kill(self, gateway: Actor) -> None:
        pass  # nothing runs outside its deliveries

    def fill_ids(self, client_order_id: str) -> list[str]:
        entry = self._ledger.order(client_order_id)
        return [] if entry is None else [f.fill_id for f in entry.fills]

    @property
    def _ledger(self) -> VenueLedger:
        assert self.actor is not None
        return self.actor.ledger

    def knows(self, client_order_id: str) -> bool:
        return self._ledger.knows(client_order_id)

    def counts(self) -> dict[str, int]:
        return self._ledger.counts()

    def duplicates(self) -> dict[str, int]:
        return self._ledger.duplicates()

    def order_ids(self) -> list[str]:
        return [o.client_order_id for o in self._ledger.orders()]

    def open_orders(self) -> list[str]:
        assert self.actor is not None
        return self.actor.engine.open_orders()

    def reason(self, client_order_id: str) -> str:
        entry = self._ledger.order(client_order_id)
        assert entry is not None
        return entry.reason

    def check(self, journal: Journal) -> InvariantReport:
        return check(journal, {VENUE: self._ledger})

    def close(self) -> None:
        close_shared_ledgers()


@pytest.fixture(params=["paper"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    """The gateway under test, with a journal and the generic executor (one param per gateway here)."""
    d = Desk(tmp_path, SimGateway())
    try:
        yield d
    finally:
        d.close()


class TestPaperGateway(GatewayConformance):
    """The whole suite against the paper gateway."""


# -- the paper gateway's own options, and the checker it is measured with ----------------------
def test_a_venue_told_to_keep_resting_orders_fills_them_after_its_restart(tmp_path: Path) -> None:
    desk = Desk(tmp_path, SimGateway(cancel_on_restart=False))
    try:
        desk.order_from_risk(order(1, order_type="limit", limit_price=99.0))
        desk.wire.deliver()
        desk.wire.kill(desk.gateway_id)
        desk.venue = desk.start_venue()
        assert desk.gw.open_orders() == ["s1-1"]
        desk.move_market(98.0, 98.5)
        desk.wire.deliver()
        (fill,) = desk.journal_fills()
        assert (fill.fill_id, fill.price, fill.liquidity) == ("s1-1-f1", 99.0, "maker")
        assert desk.journal.order_status("s1-1") == "filled"
        assert desk.check().ok
    finally:
        desk.close()


def test_the_checker_catches_a_lost_fill_and_a_double_execution(desk: Desk) -> None:
    desk.order_from_risk(order(1))
    desk.wire.deliver()
    ledger = desk.venue.ledger  # type: ignore[attr-defined]
    # Forge what a broken executor would leave: the venue filled s1-2, the journal says
    # "filled" without the fill; and the venue executed s1-1 a second time.
    two = order(2)
    desk.journal.append(two)
    ledger.record([two])
    ledger.record(
        [
            OrderUpdate(
                client_order_id="s1-2", strategy_id="s1", venue=VENUE, symbol=SYMBOL, status="filled"
            ),
            Fill(
                fill_id="s1-2-f1",
                client_order_id="s1-2",
                strategy_id="s1",
                venue=VENUE,
                symbol=SYMBOL,
                side="buy",
                quantity=0.5,
                price=101.0,
                fee=0.0,
            ),
            Fill(
                fill_id="s1-1-f2",
                client_order_id="s1-1",
                strategy_id="s1",
                venue=VENUE,
                symbol=SYMBOL,
                side="buy",
                quantity=0.5,
                price=101.0,
                fee=0.0,
            ),
        ]
    )
    desk.journal.append(
        OrderUpdate(client_order_id="s1-2", strategy_id="s1", venue=VENUE, symbol=SYMBOL, status="filled")
    )
    report = desk.check()
    assert not report.ok
    assert report.lost_fills == ["s1-2-f1", "s1-1-f2"]
    assert report.duplicate_orders == ["s1-1"]
