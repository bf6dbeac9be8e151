"""The real ccxt / ccxt.pro Kraken client against the local Kraken spot server (issue #9 point 7)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import ccxt
import ccxt.pro
import pytest

from sniperbot.venues.ccxt.urls import rebase_urls
from tests.exchanges._base import run_async, until
from tests.exchanges.kraken import KrakenServer, book_checksum, demo_server

SYM = "BTC/USD"


@pytest.fixture
def server() -> Iterator[KrakenServer]:
    threads_before = set(threading.enumerate())
    s = demo_server().start()
    try:
        yield s
    finally:
        s.stop()
    assert not [t for t in threading.enumerate() if t not in threads_before and t.name.startswith("kraken")]


def client(server: KrakenServer, secret: str | None = None, **config: Any) -> Any:
    """A ccxt.pro kraken client pointed at the server (only ``urls`` change)."""
    ex = ccxt.pro.kraken(
        {
            "apiKey": server.api_key,
            "secret": secret or server.secret,
            "enableRateLimit": False,
            "timeout": 5000,
            **config,
        }
    )
    return rebase_urls(ex, server.rest_url, server.ws_url)


def with_client(server: KrakenServer, body: Any, **kw: Any) -> Any:
    async def main() -> Any:
        ex = client(server, **kw)
        try:
            await ex.load_markets()
            return await body(ex)
        finally:
            await ex.close()

    return run_async(main)


def test_markets_book_ticker(server: KrakenServer) -> None:
    async def body(ex: Any) -> None:
        m = ex.market(SYM)
        assert (
            m["id"] == "XXBTZUSD"
            and m["precision"]["price"] == 0.1
            and m["limits"]["amount"]["min"] == 0.0001
        )
        book = await ex.fetch_order_book(SYM, 5)
        assert book["bids"][0][:2] == [49990.0, 1.0] and book["asks"][0][:2] == [50010.0, 1.0]
        t = await ex.fetch_ticker(SYM)
        assert (t["bid"], t["ask"]) == (49990.0, 50010.0)

    with_client(server, body)


def test_order_by_cl_ord_id_partial_fill_trades_balance_cancel(server: KrakenServer) -> None:
    async def body(ex: Any) -> None:
        o = await ex.create_order(SYM, "limit", "buy", 1.0, 49000, {"clientOrderId": "kr-1"})
        assert o["id"].startswith("O")
        opened = await ex.fetch_open_orders(SYM, None, None, {"clientOrderId": "kr-1"})
        assert [(x["id"], x["clientOrderId"], x["status"]) for x in opened] == [(o["id"], "kr-1", "open")]
        fill = server.fill("kr-1", "0.4")
        q = await ex.fetch_order(o["id"], SYM)
        assert (q["status"], q["filled"], q["amount"]) == ("open", 0.4, 1.0)
        trades = await ex.fetch_my_trades(SYM)
        assert [(t["id"], t["order"], t["amount"], t["price"]) for t in trades] == [
            (server.trade_txid(fill), o["id"], 0.4, 49000.0)
        ]
        bal = await ex.fetch_balance()
        assert bal["BTC"]["total"] == 2.4
        assert bal["USD"]["used"] == pytest.approx(0.6 * 49000 * 1.0026)
        await ex.cancel_order(None, SYM, {"clientOrderId": "kr-1"})
        closed = await ex.fetch_closed_orders(SYM, None, None, {"cl_ord_id": "kr-1"})
        assert [(x["id"], x["status"], x["filled"]) for x in closed] == [(o["id"], "canceled", 0.4)]
        assert await ex.fetch_open_orders(SYM) == []
        bal = await ex.fetch_balance()
        assert bal["USD"]["used"] == 0 and bal["USD"]["total"] == pytest.approx(
            100_000 - 0.4 * 49000 * 1.0026
        )

    with_client(server, body)


def test_market_order_walks_the_book(server: KrakenServer) -> None:
    async def body(ex: Any) -> None:
        o = await ex.create_order(SYM, "market", "sell", 1.5, None, {"clientOrderId": "kr-m"})
        q = await ex.fetch_order(o["id"], SYM)
        assert q["status"] == "closed" and q["filled"] == 1.5
        assert q["average"] == pytest.approx((49990 + 0.5 * 49980) / 1.5)
        assert len(await ex.fetch_my_trades(SYM)) == 2

    with_client(server, body)


def test_stop_loss_limit_triggers_on_the_market(server: KrakenServer) -> None:
    async def body(ex: Any) -> None:
        o = await ex.create_order(
            SYM, "limit", "sell", 0.1, 48000, {"stopLossPrice": 48500, "clientOrderId": "kr-s"}
        )
        assert server.engine.by_client_id("kr-s").status == "untriggered"  # type: ignore[union-attr]
        server.trade(SYM, 48400, 1, "sell")
        q = await ex.fetch_order(o["id"], SYM)
        assert (q["status"], q["filled"], q["stopLossPrice"]) == ("closed", 0.1, 48500.0)

    with_client(server, body)


def test_cl_ord_id_unique_only_among_open_orders(server: KrakenServer) -> None:
    async def body(ex: Any) -> None:
        await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"clientOrderId": "kr-dup"})
        with pytest.raises(ccxt.ExchangeError, match="EOrder:Duplicate order"):
            await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"clientOrderId": "kr-dup"})
        server.fill("kr-dup", "0.1")
        await ex.create_order(SYM, "market", "buy", 0.1, None, {"clientOrderId": "kr-dup"})  # trades twice
        assert [o.status for o in server.engine.orders if o.client_id == "kr-dup"] == ["filled", "filled"]

    with_client(server, body)


def test_lookups_and_rejections(server: KrakenServer) -> None:
    async def body(ex: Any) -> None:
        # ccxt sends a string client id as `userref` (an integer field): Kraken refuses the arguments. Not an
        # OrderNotFound: an executor must not read it as "the order does not exist".
        with pytest.raises(ccxt.ExchangeError) as e:
            await ex.fetch_order(None, SYM, {"clientOrderId": "kr-x"})
        assert not isinstance(e.value, ccxt.OrderNotFound) and "userref" in str(e.value)
        with pytest.raises(ccxt.InvalidOrder, match="EOrder:Unknown order"):
            await ex.cancel_order(None, SYM, {"clientOrderId": "never-sent"})
        assert await ex.fetch_open_orders(SYM, None, None, {"clientOrderId": "never-sent"}) == []
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.create_order(SYM, "limit", "buy", 5, 49000)
        with pytest.raises(ccxt.InvalidOrder, match="Order minimum not met"):
            await ex.create_order(SYM, "limit", "buy", 0.0001, 1000)
        assert server.engine.orders == []

    with_client(server, body)


def test_bad_secret_and_stale_nonce(server: KrakenServer) -> None:
    async def bad(ex: Any) -> None:
        with pytest.raises(ccxt.AuthenticationError, match="EAPI:Invalid key"):
            await ex.fetch_balance()

    with_client(server, bad, secret="d3Jvbmctc2VjcmV0")

    async def nonce(ex: Any) -> None:
        await ex.fetch_balance()
        # a second process with the same key whose nonces (ms clock) run behind the first one's
        other = client(server, options={"timeDifference": 60_000})
        try:
            with pytest.raises(ccxt.InvalidNonce):
                await other.fetch_balance()
        finally:
            await other.close()

    with_client(server, nonce)


def test_faults_rate_limit_5xx_lost_answer() -> None:
    s = demo_server()
    s.counter.limit = 3
    s.counter.decay = 0.0  # no decay: the count is exact
    s.start()
    try:

        async def body(ex: Any) -> None:
            for _ in range(3):
                await ex.fetch_balance()
            with pytest.raises(ccxt.DDoSProtection, match="EAPI:Rate limit exceeded"):
                await ex.fetch_balance()
            assert s.counter.peak == 3 and s.counter.refused == 1
            s.fail_next("/0/private/AddOrder", 200, {"error": ["EService:Unavailable"]})
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await ex.create_order(SYM, "limit", "buy", 0.1, 49000)
            s.fail_next("/0/private/AddOrder", 520, "<html>520</html>")
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await ex.create_order(SYM, "limit", "buy", 0.1, 49000)
            assert s.engine.orders == []
            s.lose_next_answer("/0/private/AddOrder")
            with pytest.raises(ccxt.NetworkError):
                await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"clientOrderId": "kr-lost"})
            s.counter.value = 0
            found = await ex.fetch_open_orders(SYM, None, None, {"clientOrderId": "kr-lost"})
            assert [x["clientOrderId"] for x in found] == ["kr-lost"]

        with_client(s, body)
    finally:
        s.stop()


def test_ws_trades_book_bbo_and_gap(server: KrakenServer) -> None:
    async def body(ex: Any) -> None:
        task = asyncio.ensure_future(ex.watch_trades(SYM))
        await until(lambda: server.subscribers(f"trade:{SYM}"), what="trade subscription")
        tid = server.trade(SYM, 50_010, "0.25", "buy")
        trades = await task
        assert [(t["id"], t["price"], t["amount"], t["side"]) for t in trades] == [
            (str(tid), 50010.0, 0.25, "buy")
        ]

        book = await ex.watch_order_book(SYM, 10)
        assert book["bids"][0] == [49990.0, 1.0] and len(book["asks"]) == 10
        server.move_book(SYM, bids=[(49_995, 2)])
        book = await ex.watch_order_book(SYM, 10)
        assert book["bids"][0] == [49995.0, 2.0]

        bbo = asyncio.ensure_future(ex.watch_bids_asks([SYM]))
        await until(lambda: server.subscribers(f"bbo:{SYM}"), what="bbo subscription")
        server.move_book(SYM, asks=[(50_005, 3)])
        ba = (await bbo)[SYM]
        assert (ba["bid"], ba["ask"]) == (49995.0, 50005.0)

        # a swallowed update: ccxt's book silently diverges; Kraken's checksum of the next update says so
        server.gap(SYM)
        server.move_book(SYM, bids=[(49_996, 1)])
        server.move_book(SYM, asks=[(50_004, 1)])
        book = await ex.watch_order_book(SYM, 10)
        assert book["asks"][0] == [50004.0, 1.0] and book["bids"][0] == [49995.0, 2.0]  # 49996 never arrived
        local = book_checksum([lv[:2] for lv in book["asks"]], [lv[:2] for lv in book["bids"]])
        m = server.engine.markets[SYM]
        assert local != book_checksum(m.sorted_asks(10), m.sorted_bids(10))

    with_client(server, body)


def test_ws_executions_orders_and_my_trades(server: KrakenServer) -> None:
    async def body(ex: Any) -> None:
        orders = asyncio.ensure_future(ex.watch_orders(SYM))
        trades = asyncio.ensure_future(ex.watch_my_trades(SYM))
        await until(lambda: server.subscribers("executions"), what="executions subscription")
        sub = [m for _, m in server.ws_messages if (m.get("params") or {}).get("channel") == "executions"]
        assert len(sub) == 1 and sub[0]["params"]["token"] in server.tokens
        o = await ex.create_order(SYM, "limit", "buy", 1.0, 49000, {"clientOrderId": "kr-ws"})
        got = await orders
        assert got[-1]["id"] == o["id"] and got[-1]["info"]["cl_ord_id"] == "kr-ws"
        fill = server.fill("kr-ws", "0.4")
        mine = await trades
        assert [(t["id"], t["order"], t["amount"], t["price"]) for t in mine] == [
            (server.trade_txid(fill), o["id"], 0.4, 49000.0)
        ]
        cancel = asyncio.ensure_future(ex.cancel_order(None, SYM, {"clientOrderId": "kr-ws"}))
        got = await ex.watch_orders(SYM)
        await cancel
        assert (got[-1]["id"], got[-1]["status"]) == (o["id"], "canceled")

    with_client(server, body)


def test_ws_drop_and_silent_stream(server: KrakenServer) -> None:
    async def body(ex: Any) -> None:
        first = asyncio.ensure_future(ex.watch_trades(SYM))
        await until(lambda: server.subscribers(f"trade:{SYM}"), what="trade subscription")
        server.trade(SYM, 50_010, 1)
        await first
        pending = asyncio.ensure_future(ex.watch_trades(SYM))
        await asyncio.sleep(0.05)
        assert server.drop_websockets() >= 1
        with pytest.raises(ccxt.NetworkError):
            await pending
        again = asyncio.ensure_future(ex.watch_trades(SYM))
        await until(lambda: server.subscribers(f"trade:{SYM}"), what="resubscription")
        server.trade(SYM, 50_020, 1)
        assert (await again)[-1]["price"] == 50020.0
        # silent: no data and no text pongs -> ccxt's keepalive watchdog gives up
        server.set_silent(True)
        with pytest.raises(ccxt.RequestTimeout):
            await ex.watch_trades(SYM)

    with_client(server, body, streaming={"keepAlive": 1000})
