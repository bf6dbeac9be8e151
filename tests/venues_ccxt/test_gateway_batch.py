"""Reconciling many unfinished orders: one batch of lookups per symbol, every order and trade still exact.

A gateway and an executor start on a run dir whose journal and ledger hold orders the previous incarnation
sent without hearing any answer; at the exchange some filled, some partially filled, some rest, and some
never arrived. The gateway must resolve them from the symbol's order list and trade list (two calls),
look up on its own only what that batch does not list, and the journal must end exactly as the exchange's
own records say. Harness: :mod:`tests.venues_ccxt.test_gateway` (actors in threads, real ZeroMQ, LMDB,
ccxt against :mod:`tests.exchanges.binance`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from sniperbot.journal import Journal
from sniperbot.messages import Order
from sniperbot.venues.ccxt.gateway import _BATCH_MIN, fill_id
from sniperbot.venues.sim.ledger import VenueLedger
from tests.conftest import eventually
from tests.exchanges.binance import BinanceServer, demo_server
from tests.venues_ccxt.test_gateway import (  # noqa: F401  (the actors fixture)
    SYM,
    VENUE,
    Actors,
    actors,
    journal,
    journaled_fills,
    start_executor,
    start_gateway,
)

KINDS = ("filled", "partial", "resting", "never_sent")
EXPECTED = {"filled": "filled", "partial": "accepted", "resting": "accepted", "never_sent": "cancelled"}


class QueryServer(BinanceServer):
    """The demo Binance server, keeping each REST request's query parameters too."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[tuple[str, str, dict[str, list[str]]]] = []

    def rate_limit(self, request: Any) -> Any:
        with self.lock:
            self.queries.append((request.method, request.path, parse_qs(request.rel_url.raw_query_string)))
        return super().rate_limit(request)


@pytest.fixture
def server() -> Iterator[QueryServer]:
    s = QueryServer()
    demo = demo_server()
    for symbol, m in demo.engine.markets.items():
        s.add_market(symbol)
        s.engine.set_levels(symbol, m.bids.items(), m.asks.items())
    s.engine.deposit("USDT", 1_000_000)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def seed(server: QueryServer, run_dir: Path, n: int) -> dict[str, str]:
    """``n`` orders sent by a dead incarnation, a mix of fates at the exchange; cid -> kind."""
    kinds: dict[str, str] = {}
    orders = []
    with server.lock:
        for i in range(n):
            cid, kind = f"s1-b{i}", KINDS[i % len(KINDS)]
            kinds[cid] = kind
            if kind != "never_sent":
                o = server.engine.place(SYM, "buy", "limit", "0.01", price="49000", client_id=cid)
                if kind == "filled":
                    server.engine.fill(o, "0.004")
                    server.engine.fill(o, "0.006")
                elif kind == "partial":
                    server.engine.fill(o, "0.003")
            orders.append(
                Order(
                    client_order_id=cid,
                    intent_id=cid,
                    strategy_id="s1",
                    venue=VENUE,
                    symbol=SYM,
                    side="buy",
                    quantity=0.01,
                    order_type="limit",
                    limit_price=49_000.0,
                    ts_ns=time.time_ns() - 120 * 10**9,  # too old to resend: never-sent ones are cancelled
                )
            )
    with Journal.open(run_dir, durability="process") as j:
        j.append_many(orders)
    with VenueLedger.open(run_dir, VENUE, durability="process") as ledger:
        ledger.record(orders)
    return kinds


def test_many_unfinished_orders_are_reconciled_from_one_batch_per_symbol(
    server: QueryServer,
    actors: Actors,  # noqa: F811  (the imported fixture)
) -> None:
    n = 3 * _BATCH_MIN
    kinds = seed(server, actors.run_dir, n)
    trades = {
        cid: [fill_id(VENUE, SYM, str(f.trade_id)) for f in server.engine.fills if f.order.client_id == cid]
        for cid in kinds
    }
    start_gateway(actors, server, poll_s=120.0, watch=False)  # the start sweep and the queries only
    start_executor(actors)

    def resolved() -> bool:
        j = journal(actors)
        return all(
            j.order_status(cid) == EXPECTED[kind]
            and sorted(journaled_fills(actors, cid)) == sorted(trades[cid])
            for cid, kind in kinds.items()
        )

    eventually(resolved, 60, what="every order's status and trades journaled")
    executor = actors.running["executor.bx"][0].actor
    eventually(lambda: executor.reconciled, 30, what="executor reconciled")  # type: ignore[union-attr]
    # each exchange trade journaled once, and nothing placed
    fills = [f.fill_id for f in journal(actors).fills()]
    assert sorted(fills) == sorted(f for t in trades.values() for f in t)
    assert not [q for q in server.queries if q[0] == "POST"]
    # what the batch listed was never looked up on its own: per-order lookups only for the never-sent ones
    looked_up = {
        q[2]["origClientOrderId"][0]
        for q in server.queries
        if q[:2] == ("GET", "/api/v3/order") and "origClientOrderId" in q[2]
    }
    assert looked_up == {cid for cid, kind in kinds.items() if kind == "never_sent"}
    per_order_trades = [q for q in server.queries if q[1] == "/api/v3/myTrades" and "orderId" in q[2]]
    assert per_order_trades == []
    assert any(q[:2] == ("GET", "/api/v3/allOrders") for q in server.queries)
