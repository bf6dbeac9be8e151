"""The real ccxt / ccxt.pro Binance client against the local Binance spot server (issue #9 point 7)."""

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
from tests.exchanges.binance import BinanceServer, demo_server

SYM = "BTC/USDT"


@pytest.fixture
def server() -> Iterator[BinanceServer]:
    threads_before = set(threading.enumerate())
    s = demo_server().start()
    try:
        yield s
    finally:
        s.stop()
    # no thread left behind (the port goes with the loop)
    assert not [t for t in threading.enumerate() if t not in threads_before and t.name.startswith("binance")]


def client(server: BinanceServer, secret: str | None = None, api_key: str | None = None, **opts: Any) -> Any:
    """A ccxt.pro binance client pointed at the server (no monkeypatching: only ``urls`` change)."""
    ex = ccxt.pro.binance(
        {
            "apiKey": api_key or server.api_key,
            "secret": secret or server.secret,
            "enableRateLimit": False,
            "timeout": opts.pop("timeout", 5000),
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                **opts,
            },
        }
    )
    return rebase_urls(ex, server.rest_url, server.ws_url)


def with_client(server: BinanceServer, body: Any, **kw: Any) -> Any:
    async def main() -> Any:
        ex = client(server, **kw)
        try:
            await ex.load_markets()
            return await body(ex)
        finally:
            await ex.close()

    return run_async(main)


# ---- REST


def test_markets_book_ticker(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        m = ex.market(SYM)
        assert m["spot"] and m["precision"]["price"] == 0.01 and m["precision"]["amount"] == 0.00001
        assert m["limits"]["cost"]["min"] == 5.0
        book = await ex.fetch_order_book(SYM, 5)
        assert book["bids"][0] == [49990.0, 1.0] and book["asks"][0] == [50010.0, 1.0]
        assert len(book["bids"]) == 5 and book["nonce"] == server.engine.markets[SYM].update_id
        t = await ex.fetch_ticker(SYM)
        assert t["bid"] == 49990.0 and t["ask"] == 50010.0
        assert ("GET", "/api/v3/exchangeInfo") in server.requests

    with_client(server, body)


def test_limit_order_by_client_id_partial_fill_trades_balance_cancel(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        o = await ex.create_order(SYM, "limit", "buy", 1.0, 49000, {"clientOrderId": "sb-1"})
        assert o["clientOrderId"] == "sb-1" and o["status"] == "open"
        bal = await ex.fetch_balance()
        assert bal["USDT"]["used"] == 49000.0 and bal["USDT"]["free"] == 51000.0
        fill = server.fill("sb-1", "0.4")  # a scripted partial fill
        q = await ex.fetch_order(None, SYM, {"clientOrderId": "sb-1"})
        assert (q["id"], q["status"], q["filled"], q["remaining"]) == (o["id"], "open", 0.4, 0.6)
        trades = await ex.fetch_my_trades(SYM)
        assert [(t["id"], t["order"], t["amount"], t["price"]) for t in trades] == [
            (str(fill.trade_id), o["id"], 0.4, 49000.0)
        ]
        assert trades[0]["fee"] == {"cost": 0.0004, "currency": "BTC"}
        opened = await ex.fetch_open_orders(SYM)
        assert [x["clientOrderId"] for x in opened] == ["sb-1"]
        c = await ex.cancel_order(None, SYM, {"clientOrderId": "sb-1"})
        assert c["status"] == "canceled"
        assert await ex.fetch_open_orders(SYM) == []
        bal = await ex.fetch_balance()
        assert bal["USDT"]["used"] == 0.0 and bal["USDT"]["free"] == 100000.0 - 0.4 * 49000
        assert bal["BTC"]["free"] == pytest.approx(2 + 0.4 - 0.0004)

    with_client(server, body)


def test_market_order_walks_the_book_and_stop_limit_triggers(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        o = await ex.create_order(SYM, "market", "buy", 1.5, None, {"clientOrderId": "sb-m"})
        assert o["status"] == "closed" and o["filled"] == 1.5
        assert o["average"] == pytest.approx((50010 + 0.5 * 50020) / 1.5)
        assert len(o["trades"]) == 2
        book = await ex.fetch_order_book(SYM, 5)
        assert book["asks"][0] == [50020.0, 0.5]
        s = await ex.create_order(
            SYM, "limit", "sell", 0.1, 48000, {"stopLossPrice": 48500, "clientOrderId": "sb-s"}
        )
        assert s["status"] == "open"
        assert server.engine.by_client_id("sb-s").status == "untriggered"  # type: ignore[union-attr]
        server.trade(SYM, 48400, 1, "sell")  # the market falls through the stop
        q = await ex.fetch_order(None, SYM, {"clientOrderId": "sb-s"})
        assert q["status"] == "closed" and q["filled"] == 0.1 and q["average"] == 49990.0

    with_client(server, body)


def test_resting_order_partially_filled_by_the_market_and_order_count_header(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        o = await ex.create_order(SYM, "limit", "buy", 1.0, 49000, {"clientOrderId": "rest-1"})
        assert ex.last_response_headers["X-MBX-ORDER-COUNT-10S"] == "1"
        server.trade(SYM, 49050, 5, "sell")  # above our bid: no fill
        server.trade(SYM, 48990, "0.3", "sell")  # through our bid: 0.3 filled at our price, as maker
        q = await ex.fetch_order(o["id"], SYM)
        assert (q["status"], q["filled"], q["average"]) == ("open", 0.3, 49000.0)
        [t] = await ex.fetch_my_trades(SYM)
        assert (t["amount"], t["price"], t["takerOrMaker"]) == (0.3, 49000.0, "maker")

    with_client(server, body)


def test_timestamp_outside_recv_window_is_invalid_nonce(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await ex.fetch_balance()

    with_client(server, body, timeDifference=120_000)  # a client clock two minutes behind


def test_client_id_is_unique_only_among_open_orders(server: BinanceServer) -> None:
    """The hazard the executor must survive: a FILLED order's client id is accepted again and trades twice."""

    async def body(ex: Any) -> None:
        await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"clientOrderId": "dup-1"})
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
            await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"clientOrderId": "dup-1"})
        server.fill("dup-1", "0.1")
        again = await ex.create_order(SYM, "market", "buy", 0.1, None, {"clientOrderId": "dup-1"})
        assert again["status"] == "closed"
        assert [o.status for o in server.engine.orders if o.client_id == "dup-1"] == ["filled", "filled"]

    with_client(server, body)


def test_unknown_orders_and_rejections(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order(None, SYM, {"clientOrderId": "never-sent"})
        with pytest.raises(ccxt.OrderNotFound):
            await ex.cancel_order(None, SYM, {"clientOrderId": "never-sent"})
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.create_order(SYM, "limit", "buy", 5, 49000, {"clientOrderId": "too-big"})
        with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
            await ex.create_order(SYM, "limit", "buy", 0.00001, 49000)
        # a scripted rejection with Binance's real code
        server.fail_next(
            "/api/v3/order$",
            400,
            {"code": -2010, "msg": "Order would immediately match and take."},
            method="POST",
        )
        with pytest.raises(ccxt.InvalidOrder):
            await ex.create_order(SYM, "limit", "buy", 0.1, 49000)
        assert server.engine.orders == []

    with_client(server, body)


def test_bad_signature_and_bad_key_are_authentication_errors(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await ex.fetch_balance()

    with_client(server, body, secret="wrong-secret")

    async def body2(ex: Any) -> None:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await ex.create_order(SYM, "limit", "buy", 0.1, 49000)

    with_client(server, body2, api_key="wrong-key")
    assert server.engine.orders == []


def test_http_faults_surface_as_ccxt_exceptions(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        server.fail_next(
            "/api/v3/account",
            503,
            {
                "code": -1007,
                "msg": "Timeout waiting for response from backend "
                "server. Send status unknown; execution status unknown.",
            },
        )
        with pytest.raises(ccxt.RequestTimeout):
            await ex.fetch_balance()
        server.fail_next("/api/v3/account", 502, "<html>Bad Gateway</html>")
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await ex.fetch_balance()
        server.fail_next(
            "/api/v3/account", 429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "7"}
        )
        with pytest.raises(ccxt.DDoSProtection):
            await ex.fetch_balance()
        assert ex.last_response_headers["Retry-After"] == "7"
        server.delay_next("/api/v3/account", 3)
        ex.timeout = 500
        with pytest.raises(ccxt.RequestTimeout):
            await ex.fetch_balance()

    with_client(server, body)


def test_lost_answer_order_exists_at_the_exchange(server: BinanceServer) -> None:
    """The order is placed, the answer is lost: ccxt raises a NetworkError, a lookup by client id finds it."""

    async def body(ex: Any) -> None:
        server.lose_next_answer("/api/v3/order$", method="POST")
        with pytest.raises(ccxt.NetworkError):
            await ex.create_order(SYM, "market", "buy", 0.2, None, {"clientOrderId": "lost-1"})
        found = await ex.fetch_order(None, SYM, {"clientOrderId": "lost-1"})
        assert found["status"] == "closed" and found["filled"] == 0.2

    with_client(server, body)


def test_rate_limit_accounting_429_then_418_ban() -> None:
    s = demo_server()
    s.weight.limit = 60  # a tiny minute budget: fetch_order_book(limit=5) weighs 5, exchangeInfo 20
    s.ban_after = 2
    s.start()
    try:

        async def body(ex: Any) -> None:
            assert ex.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "20"
            for _ in range(8):
                await ex.fetch_order_book(SYM, 5)
            assert ex.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "60"
            with pytest.raises(ccxt.DDoSProtection, match="-1003"):
                await ex.fetch_order_book(SYM, 5)
            assert int(ex.last_response_headers["Retry-After"]) >= 1
            assert s.weight.peak == 60 and s.weight.refused == 1  # never exceeded: refused instead
            for _ in range(2):  # keep hammering inside the Retry-After window: banned
                with pytest.raises(ccxt.DDoSProtection):
                    await ex.fetch_order_book(SYM, 5)
            with pytest.raises(ccxt.DDoSProtection, match="IP banned until"):
                await ex.fetch_order_book(SYM, 5)

        with_client(s, body)
    finally:
        s.stop()


def test_order_rate_limit_10s() -> None:
    s = demo_server()
    s.order_rate.limit = 2
    s.start()
    try:

        async def body(ex: Any) -> None:
            for i in range(2):
                await ex.create_order(SYM, "limit", "buy", 0.01, 49000, {"clientOrderId": f"r-{i}"})
            assert ex.last_response_headers["X-MBX-ORDER-COUNT-10S"] == "2"
            with pytest.raises(ccxt.DDoSProtection, match="-1015"):
                await ex.create_order(SYM, "limit", "buy", 0.01, 49000, {"clientOrderId": "r-2"})
            assert [o.client_id for o in s.engine.orders] == ["r-0", "r-1"] and s.order_rate.refused == 1

        with_client(s, body)
    finally:
        s.stop()


# ---- websockets


def test_ws_trades_bids_asks_and_order_book_with_update_ids(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        task = asyncio.ensure_future(ex.watch_trades(SYM))
        await until(lambda: server.subscribers("btcusdt@trade"), what="trade subscription")
        tid = server.trade(SYM, 50_010, "0.25", "buy")
        trades = await task
        assert [(t["id"], t["price"], t["amount"], t["side"]) for t in trades] == [
            (str(tid), 50010.0, 0.25, "buy")
        ]

        task = asyncio.ensure_future(ex.watch_order_book(SYM))
        book = await task  # ack -> REST snapshot (limit 1000) -> book
        n0 = book["nonce"]
        assert book["bids"][0] == [49990.0, 1.0]
        u = server.move_book(SYM, bids=[(49_995, 2)])
        book = await ex.watch_order_book(SYM)
        assert book["nonce"] == u == n0 + 1 and book["bids"][0] == [49995.0, 2.0]

        task = asyncio.ensure_future(ex.watch_bids_asks([SYM]))
        await until(lambda: server.subscribers("btcusdt@bookTicker"), what="bookTicker subscription")
        server.move_book(SYM, asks=[(50_005, 3)])
        ba = (await task)[SYM]
        assert (ba["bid"], ba["ask"], ba["askVolume"]) == (49995.0, 50005.0, 3.0)

    with_client(server, body)


def test_ws_book_sequence_gap_raises_checksum_error(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        await ex.watch_order_book(SYM)
        server.gap(SYM)
        server.move_book(SYM, bids=[(49_991, 1)])  # swallowed: U/u jump on the next diff
        server.move_book(SYM, bids=[(49_992, 1)])
        with pytest.raises(ccxt.ChecksumError):
            await ex.watch_order_book(SYM)
        # the next watch resubscribes and takes a fresh snapshot
        book = await ex.watch_order_book(SYM)
        assert book["bids"][0] == [49992.0, 1.0]

    with_client(server, body)


def test_ws_private_orders_and_my_trades(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        orders = asyncio.ensure_future(ex.watch_orders(SYM))
        trades = asyncio.ensure_future(ex.watch_my_trades(SYM))
        await until(lambda: server.subscribers("@user"), what="user data subscription")
        o = await ex.create_order(SYM, "limit", "buy", 1.0, 49000, {"clientOrderId": "ws-1"})
        got = await orders
        assert [(x["id"], x["clientOrderId"], x["status"], x["filled"]) for x in got] == [
            (o["id"], "ws-1", "open", 0)
        ]
        fill = server.fill("ws-1", "0.4")
        mine = await trades
        assert [(t["id"], t["order"], t["amount"], t["price"]) for t in mine] == [
            (str(fill.trade_id), o["id"], 0.4, 49000.0)
        ]
        cancel = asyncio.ensure_future(ex.cancel_order(None, SYM, {"clientOrderId": "ws-1"}))
        got = await ex.watch_orders(SYM)
        await cancel
        assert (got[-1]["clientOrderId"], got[-1]["status"], got[-1]["filled"]) == ("ws-1", "canceled", 0.4)
        sub = [m for _, m in server.ws_messages if m.get("method") == "userDataStream.subscribe.signature"]
        assert len(sub) == 1 and sorted(sub[0]["params"]) == [
            "apiKey",
            "recvWindow",
            "signature",
            "timestamp",
        ]

    with_client(server, body)


def test_ws_private_bad_signature_is_refused(server: BinanceServer) -> None:
    """The server refuses with -1022; ccxt 4.5.90 maps it to AuthenticationError.

    Then ccxt's own cleanup deletes the subscription twice, so the caller gets a KeyError whose context is
    that AuthenticationError (a ccxt bug the live executor must expect).
    """

    async def body(ex: Any) -> None:  # markets load from a public endpoint: only the private stream is signed
        with pytest.raises((ccxt.AuthenticationError, KeyError)) as e:
            await ex.watch_orders(SYM)
        auth = e.value if isinstance(e.value, ccxt.AuthenticationError) else e.value.__context__
        assert isinstance(auth, ccxt.AuthenticationError) and "-1022" in str(auth)
        assert server.subscribers("@user") == []

    with_client(server, body, secret="wrong-secret")


def test_ws_drop_mid_stream_then_resubscribe(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        await_first = asyncio.ensure_future(ex.watch_trades(SYM))
        await until(lambda: server.subscribers("btcusdt@trade"), what="trade subscription")
        server.trade(SYM, 50_010, 1)
        await await_first
        pending = asyncio.ensure_future(ex.watch_trades(SYM))
        await asyncio.sleep(0.05)
        assert server.drop_websockets() >= 1
        with pytest.raises(ccxt.NetworkError):
            await pending
        again = asyncio.ensure_future(ex.watch_trades(SYM))
        await until(lambda: server.subscribers("btcusdt@trade"), what="resubscription")
        server.trade(SYM, 50_020, 1)
        assert (await again)[-1]["price"] == 50020.0
        subs = [m for _, m in server.ws_messages if m.get("method") == "SUBSCRIBE"]
        assert len(subs) == 2

    with_client(server, body)


def test_ws_private_stream_drop_then_resubscribe(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        orders = asyncio.ensure_future(ex.watch_orders(SYM))
        await until(lambda: server.subscribers("@user"), what="user data subscription")
        server.drop_websockets()
        with pytest.raises(ccxt.NetworkError):
            await orders
        again = asyncio.ensure_future(ex.watch_orders(SYM))
        await until(lambda: server.subscribers("@user"), what="second user data subscription")
        await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"clientOrderId": "after-drop"})
        assert (await again)[-1]["clientOrderId"] == "after-drop"
        subs = [m for _, m in server.ws_messages if m.get("method") == "userDataStream.subscribe.signature"]
        assert len(subs) == 2

    with_client(server, body)


def test_ws_silent_stream_delivers_nothing(server: BinanceServer) -> None:
    async def body(ex: Any) -> None:
        first = asyncio.ensure_future(ex.watch_trades(SYM))
        await until(lambda: server.subscribers("btcusdt@trade"), what="trade subscription")
        server.trade(SYM, 50_010, 1)
        await first
        server.set_silent(True)
        server.trade(SYM, 50_020, 1)  # happens at the exchange, never published
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ex.watch_trades(SYM), 1.0)
        server.set_silent(False)
        server.trade(SYM, 50_030, 1)
        assert (await ex.watch_trades(SYM))[-1]["price"] == 50030.0

    with_client(server, body)
