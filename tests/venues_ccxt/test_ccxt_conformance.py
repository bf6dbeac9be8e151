"""The live ccxt gateway (``gateway.<venue>``) passes the one gateway conformance suite.

The suite (:mod:`tests.venues.conformance`) joins the real generic executor and the real
:class:`~sniperbot.venues.ccxt.gateway.CcxtGateway` on its in-process wire; the gateway speaks real ccxt to a
local exchange server on 127.0.0.1 (signatures verified, state held server-side), and the witness the
journal is checked against is the **exchange's** own records (its orders and trades), not the gateway's
ledger. The gateway answers from its exchange loop, so after each delivery the wire waits until the
gateway has nothing left in flight and has put its answer on the wire (:meth:`CcxtHarness.settle`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sniperbot.actors.base import Actor
from sniperbot.chaos.invariants import InvariantReport, check
from sniperbot.journal import Journal
from sniperbot.keystore import Credentials
from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.messages.venue import VenueEvents
from sniperbot.venues.ccxt.gateway import DUPLICATE, CcxtGateway, fill_id
from sniperbot.venues.sim.ledger import close_shared_ledgers
from tests.exchanges._base import OPEN_STATUSES, ExchangeServer
from tests.exchanges.binance import BinanceServer
from tests.exchanges.coinbase import CoinbaseServer
from tests.exchanges.kraken import KrakenServer
from tests.venues.conformance import EXECUTOR_ID, SYMBOL, VENUE, Ctx, Desk, GatewayConformance

_SETTLE_TIMEOUT_S = 60.0
# The exchange's order status -> the status the journal must end with.
_FINAL = {"filled": "filled", "canceled": "cancelled", "expired": "cancelled", "rejected": "rejected"}


def exchange_server(exchange: str) -> ExchangeServer:
    """A local exchange with the suite's market: BTC/USDT at 100.0 / 101.0, five deep, a funded account."""
    server_class = {"binance": BinanceServer, "kraken": KrakenServer, "coinbase": CoinbaseServer}[exchange]
    server = server_class()
    server.add_market(SYMBOL)  # type: ignore[attr-defined]
    server.engine.deposit("USDT", 100_000)
    server.engine.deposit("BTC", 100)
    server.engine.set_levels(SYMBOL, [(100, 5)], [(101, 5)])
    return server.start()


async def _busy(gateway: CcxtGateway) -> bool:
    """Whether the gateway's exchange loop still works on something other than its background loops."""
    me = asyncio.current_task()
    return any(t is not me and not t.done() and t not in gateway._tasks for t in asyncio.all_tasks())


class ExchangeLedger:
    """The exchange's own records of our orders, in the shape the chaos checker reads a venue ledger in.

    An exchange keeps no record of an order it refused (nor of one the gateway refused before sending): for
    an order the journal says was ``rejected`` and the exchange has no record of, "rejected" is what the
    exchange says, so it is reported so. Any record the exchange has wins.
    """

    def __init__(self, server: ExchangeServer, journal: Journal, duplicates: dict[str, int]) -> None:
        self.server = server
        self.journal = journal
        self._duplicates = duplicates

    def records(self) -> Iterator[tuple[int, Order | OrderUpdate | Fill]]:
        """Per exchange order: the order (as received), its trades as fills, its last status."""
        seq = 0
        orders = self.server.state_json()["orders"]
        on_record = {o["client_order_id"] for o in orders}
        for mine in self.journal.orders():
            if (
                mine.client_order_id not in on_record
                and self.journal.order_status(mine.client_order_id) == "rejected"
            ):
                seq += 2
                yield seq - 1, mine
                yield seq, OrderUpdate(
                    client_order_id=mine.client_order_id, strategy_id=mine.strategy_id, venue=VENUE,
                    symbol=mine.symbol, status="rejected",
                )  # fmt: skip
        for o in orders:
            cid = o["client_order_id"]
            mine = self.journal.order(cid)
            price = None if o["price"] is None else float(o["price"])
            quantity = float(o["quantity"])
            received = (
                msgspec.structs.replace(mine, side=o["side"], quantity=quantity, limit_price=price)
                if mine is not None
                else Order(
                    client_order_id=cid, intent_id=cid, strategy_id="", venue=VENUE, symbol=o["symbol"],
                    side=o["side"], quantity=quantity, limit_price=price,
                )
            )  # fmt: skip
            seq += 1
            yield seq, received
            base = o["symbol"].split("/")[0]
            for f in o["fills"]:
                price_f = float(f["price"])
                fee = float(f["fee"]) * (price_f if f["fee_asset"] == base else 1.0)
                seq += 1
                yield (
                    seq,
                    Fill(
                        fill_id=fill_id(VENUE, o["symbol"], f["trade_id"]),
                        client_order_id=cid,
                        strategy_id=received.strategy_id,
                        venue=VENUE,
                        symbol=o["symbol"],
                        side=o["side"],
                        quantity=float(f["quantity"]),
                        price=price_f,
                        fee=fee,
                        liquidity="maker" if f["maker"] else "taker",
                    ),
                )
            status = _FINAL.get(o["status"], "accepted")
            seq += 1
            yield seq, OrderUpdate(
                client_order_id=cid, strategy_id=received.strategy_id, venue=VENUE, symbol=o["symbol"],
                status=status,  # type: ignore[arg-type]
            )  # fmt: skip

    def duplicates(self) -> dict[str, int]:
        """Client order id -> resubmissions refused (the gateway's lookup, before the exchange saw them)."""
        return dict(self._duplicates)


class CcxtHarness:
    """The ccxt gateway under test on a local exchange server; the witness is the exchange's records."""

    gateway_id = f"gateway.{VENUE}"
    # What each exchange cannot take (ccxt says NotSupported): Coinbase has stop-limit orders only.
    UNSUPPORTED: dict[str, tuple[dict[str, Any], ...]] = {
        "binance": (),
        "kraken": (),
        "coinbase": ({"order_type": "stop", "stop_price": 102.0},),
    }
    cancels_on_restart = False  # an exchange keeps resting orders when our gateway restarts

    def __init__(self, server: ExchangeServer, exchange: str) -> None:
        self.server = server
        self.exchange = exchange
        self.unsupported_orders = self.UNSUPPORTED[exchange]
        self.ctxs: list[Ctx] = []
        self.live: list[CcxtGateway] = []
        self.creds = Credentials("conformance", exchange, "2026-01-01T00:00:00Z", server.credentials())

    def start(self, ctx: Ctx) -> Actor:
        ctx.sealed = self.creds.to_launch()  # the key travels in the launch, as in a node
        self.ctxs.append(ctx)
        gateway = CcxtGateway(
            ctx,
            venue=VENUE,
            exchange=self.exchange,
            symbols=[SYMBOL],
            rest_url=self.server.rest_url,
            ws_url=self.server.ws_url,
            executor=EXECUTOR_ID,
            timeout_ms=5_000,
            poll_s=3_600.0,  # only its start sweep: every answer here comes from the path under test
            watch=False,
            durability="process",
        )
        gateway.on_start()
        self.live.append(gateway)
        return gateway

    def settle(self, gateway: Actor) -> None:
        assert isinstance(gateway, CcxtGateway) and gateway._loop is not None
        deadline = time.monotonic() + _SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            busy = asyncio.run_coroutine_threadsafe(_busy(gateway), gateway._loop).result(_SETTLE_TIMEOUT_S)
            gateway._drain()  # what it handed over goes on the wire now
            if not busy and gateway._out.empty():
                return
            time.sleep(0.005)
        raise AssertionError(f"{self.gateway_id} did not settle within {_SETTLE_TIMEOUT_S} s")

    def kill(self, gateway: Actor) -> None:
        assert isinstance(gateway, CcxtGateway)
        # Its exchange loop stops; what it had not handed over is never drained onto the wire.
        gateway.on_stop()
        self.live.remove(gateway)

    def move_market(self, gateway: Actor, bid: float, ask: float) -> None:
        self.server.seed_book(SYMBOL, [(bid, 5)], [(ask, 5)])
        # Others trade at the new prices: resting buys at or above the ask fill, sells at or below the bid.
        self.server.trade(SYMBOL, ask, 1_000, "sell")
        self.server.trade(SYMBOL, bid, 1_000, "buy")

    def _orders(self) -> list[dict[str, Any]]:
        return list(self.server.state_json()["orders"])

    def knows(self, client_order_id: str) -> bool:
        return any(o["client_order_id"] == client_order_id for o in self._orders())

    def counts(self) -> dict[str, int]:
        orders = self._orders()
        return {
            "orders": len(orders),
            "fills": sum(len(o["fills"]) for o in orders),
            "duplicate_submissions": sum(self.duplicates().values()),
        }

    def duplicates(self) -> dict[str, int]:
        refused = Counter(
            e.client_order_id
            for ctx in self.ctxs
            for _, p in ctx.sent
            if isinstance(p, VenueEvents)
            for e in p.events
            if isinstance(e, OrderUpdate) and e.reason == DUPLICATE
        )
        return dict(refused)

    def order_ids(self) -> list[str]:
        return [o["client_order_id"] for o in self._orders()]

    def open_orders(self) -> list[str]:
        return [o["client_order_id"] for o in self._orders() if o["status"] in OPEN_STATUSES]

    def reason(self, client_order_id: str) -> str:
        return ""  # an exchange gives no reason with a status

    def fill_ids(self, client_order_id: str) -> list[str]:
        return [
            fill_id(VENUE, o["symbol"], f["trade_id"])
            for o in self._orders()
            if o["client_order_id"] == client_order_id
            for f in o["fills"]
        ]

    def check(self, journal: Journal) -> InvariantReport:
        return check(journal, {VENUE: ExchangeLedger(self.server, journal, self.duplicates())})  # type: ignore[dict-item]

    def close(self) -> None:
        for gateway in list(self.live):
            self.kill(gateway)
        close_shared_ledgers()


@pytest.fixture(params=["binance", "kraken", "coinbase"])
def desk(request: pytest.FixtureRequest, short_tmp: Path) -> Iterator[Desk]:
    """The ccxt gateway on a local exchange server, with a journal and the generic executor."""
    server = exchange_server(request.param)
    try:
        d = Desk(short_tmp, CcxtHarness(server, request.param))
        try:
            yield d
        finally:
            d.close()
    finally:
        server.stop()


class TestCcxtGateway(GatewayConformance):
    """The whole suite against the ccxt gateway."""
