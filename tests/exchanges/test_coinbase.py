"""The real ccxt / ccxt.pro Coinbase client against the local Coinbase Advanced Trade server (issue #9)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import ccxt
import ccxt.pro
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sniperbot.venues.ccxt.urls import rebase_urls
from tests.exchanges._base import run_async, until
from tests.exchanges.coinbase import CoinbaseServer, demo_server

SYM = "BTC/USD"


@pytest.fixture
def server() -> Iterator[CoinbaseServer]:
    threads_before = set(threading.enumerate())
    s = demo_server().start()
    try:
        yield s
    finally:
        s.stop()
    assert not [t for t in threading.enumerate() if t not in threads_before and t.name.startswith("coinbase")]


def client(server: CoinbaseServer, secret: str | None = None, **config: Any) -> Any:
    """A ccxt.pro coinbase client pointed at the server (only ``urls`` change)."""
    ex = ccxt.pro.coinbase(
        {
            "apiKey": server.api_key,
            "secret": secret or server.secret,
            "enableRateLimit": False,
            "timeout": 5000,
            **config,
        }
    )
    return rebase_urls(ex, server.rest_url, server.ws_url)


def with_client(server: CoinbaseServer, body: Any, load: bool = True, **kw: Any) -> Any:
    async def main() -> Any:
        ex = client(server, **kw)
        try:
            if load:
                await ex.load_markets()
            return await body(ex)
        finally:
            await ex.close()

    return run_async(main)


def test_markets_book_ticker_and_jwt_verified(server: CoinbaseServer) -> None:
    async def body(ex: Any) -> None:
        m = ex.market(SYM)
        assert m["id"] == "BTC-USD" and m["precision"]["price"] == 0.01
        book = await ex.fetch_order_book(SYM, 5)
        assert book["bids"][0] == [49990.0, 1.0] and book["asks"][0] == [50010.0, 1.0]
        t = await ex.fetch_ticker(SYM)
        assert (t["bid"], t["ask"]) == (49990.0, 50010.0)
        # load_markets called the private transaction_summary: its JWT passed the server's ES256 check
        assert ("GET", "/api/v3/brokerage/transaction_summary") in server.requests

    with_client(server, body)


def test_order_by_client_order_id_partial_fill_trades_balance_cancel(server: CoinbaseServer) -> None:
    async def body(ex: Any) -> None:
        o = await ex.create_order(SYM, "limit", "buy", 1.0, 49000, {"client_order_id": "cb-1"})
        assert o["clientOrderId"] == "cb-1"
        fill = server.fill("cb-1", "0.4")
        q = await ex.fetch_order(o["id"], SYM)
        assert (q["status"], q["filled"], q["clientOrderId"]) == ("open", 0.4, "cb-1")
        opened = await ex.fetch_open_orders(SYM, None, None, {"client_order_id": "cb-1"})
        assert [x["id"] for x in opened] == [o["id"]]
        trades = await ex.fetch_my_trades(SYM)
        assert [(t["id"], t["order"], t["amount"], t["price"]) for t in trades] == [
            (str(fill.trade_id), o["id"], 0.4, 49000.0)
        ]
        bal = await ex.fetch_balance({"v3": True})  # brokerage accounts: available and hold
        assert bal["BTC"]["free"] == 2.4 and bal["USD"]["used"] == pytest.approx(0.6 * 49000 * 1.006)
        bal = await ex.fetch_balance()  # ccxt's default: the v2 wallets, totals only
        assert bal["USD"]["total"] == pytest.approx(100_000 - 0.4 * 49000 * 1.006)
        c = await ex.cancel_order(o["id"], SYM)
        assert c["id"] == o["id"]
        assert (await ex.fetch_order(o["id"], SYM))["status"] == "canceled"
        assert await ex.fetch_open_orders(SYM) == []

    with_client(server, body)


def test_market_sell_and_reused_client_order_id_returns_the_existing_order(server: CoinbaseServer) -> None:
    async def body(ex: Any) -> None:
        o = await ex.create_order(SYM, "market", "sell", 1.5, None, {"client_order_id": "cb-m"})
        q = await ex.fetch_order(o["id"], SYM)
        assert q["status"] == "closed" and q["filled"] == 1.5
        again = await ex.create_order(SYM, "market", "sell", 1.5, None, {"client_order_id": "cb-m"})
        assert again["id"] == o["id"]  # not created twice
        assert len(server.engine.orders) == 1 and len(await ex.fetch_my_trades(SYM)) == 2

    with_client(server, body)


def test_stop_limit_triggers_on_the_market(server: CoinbaseServer) -> None:
    async def body(ex: Any) -> None:
        params = {"stopPrice": 48500, "stop_direction": "STOP_DIRECTION_STOP_DOWN", "client_order_id": "cb-s"}
        o = await ex.create_order(SYM, "limit", "sell", 0.1, 48000, params)
        q = await ex.fetch_order(o["id"], SYM)
        assert q["status"] == "open" and q["info"]["trigger_status"] == "STOP_PENDING"
        server.trade(SYM, 48400, 1, "sell")
        q = await ex.fetch_order(o["id"], SYM)
        assert (q["status"], q["filled"]) == ("closed", 0.1)

    with_client(server, body)


def test_open_only_dedupe_scope_trades_twice() -> None:
    s = demo_server()
    s.dedupe_scope = "open"
    s.start()
    try:

        async def body(ex: Any) -> None:
            await ex.create_order(SYM, "market", "sell", 0.1, None, {"client_order_id": "cb-twice"})
            await ex.create_order(SYM, "market", "sell", 0.1, None, {"client_order_id": "cb-twice"})
            assert [o.status for o in s.engine.orders] == ["filled", "filled"]

        with_client(s, body)
    finally:
        s.stop()


def test_rejections_and_unknown_order(server: CoinbaseServer) -> None:
    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.create_order(SYM, "limit", "buy", 5, 49000, {"client_order_id": "too-big"})
        # Coinbase answers 404 NOT_FOUND; ccxt's rule for it never matches, so it is a plain ExchangeError:
        # an executor must not read it as "the order does not exist".
        with pytest.raises(ccxt.ExchangeError, match="NOT_FOUND") as e:
            await ex.fetch_order("00000000-0000-0000-0000-000000000001", SYM)
        assert not isinstance(e.value, ccxt.OrderNotFound)
        with pytest.raises(ccxt.BadRequest):
            await ex.cancel_order("00000000-0000-0000-0000-000000000001", SYM)
        assert server.engine.orders == []

    with_client(server, body)


def test_foreign_key_is_an_authentication_error(server: CoinbaseServer) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )

    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.AuthenticationError, match="bad signature"):
            await ex.fetch_balance()

    with_client(server, body, load=False, secret=other.decode())


def test_faults_429_5xx_lost_answer() -> None:
    s = demo_server()
    s.start()
    try:

        async def body(ex: Any) -> None:
            s.fail_next(
                "/orders$",
                429,
                {"error": "rate_limit_exceeded", "message": "Too many requests"},
                {"Retry-After": "1"},
            )
            with pytest.raises(ccxt.RateLimitExceeded):
                await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"client_order_id": "cb-f"})
            s.fail_next("/orders$", 503, "<html>503</html>")
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"client_order_id": "cb-f"})
            assert s.engine.orders == []
            s.lose_next_answer("/orders$", method="POST")
            with pytest.raises(ccxt.NetworkError):
                await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"client_order_id": "cb-lost"})
            # resubmitting the same client_order_id returns the order the lost answer was about
            again = await ex.create_order(SYM, "limit", "buy", 0.1, 49000, {"client_order_id": "cb-lost"})
            assert len(s.engine.orders) == 1 and again["id"] == s.order_uuid(s.engine.orders[0])
            # the server's own limit: 30 requests per second
            s.rate.window_s, s.rate.start, s.rate.used, s.rate.limit = 3600, time.time(), 0, 1
            await ex.fetch_balance()
            with pytest.raises(ccxt.RateLimitExceeded):
                await ex.fetch_balance()
            assert s.rate.refused == 1

        with_client(s, body)
    finally:
        s.stop()


def test_ws_trades_book_ticker_and_user_orders(server: CoinbaseServer) -> None:
    async def body(ex: Any) -> None:
        task = asyncio.ensure_future(ex.watch_trades(SYM))
        await until(lambda: server.subscribers("market_trades:BTC-USD"), what="market_trades subscription")
        tid = server.trade(SYM, 50_010, "0.25", "buy")
        trades = await task
        assert [(t["id"], t["price"], t["amount"]) for t in trades] == [(str(tid), 50010.0, 0.25)]

        book = await ex.watch_order_book(SYM)
        assert book["bids"][0] == [49990.0, 1.0]
        server.move_book(SYM, bids=[(49_995, 2)])
        book = await ex.watch_order_book(SYM)
        assert book["bids"][0] == [49995.0, 2.0]

        t = await ex.watch_ticker(SYM)
        assert (t["bid"], t["ask"]) == (49995.0, 50010.0)

        orders = asyncio.ensure_future(ex.watch_orders(SYM))
        await until(lambda: server.subscribers("user:BTC-USD"), what="user subscription")
        sub = [m for _, m in server.ws_messages if m.get("channel") == "user"]
        assert server.verify_jwt(sub[0]["jwt"], None) is None
        o = await ex.create_order(SYM, "limit", "buy", 1.0, 49000, {"client_order_id": "cb-ws"})
        got = await orders
        assert (got[-1]["id"], got[-1]["clientOrderId"], got[-1]["status"]) == (o["id"], "cb-ws", "open")
        server.fill("cb-ws", "0.4")
        got = await ex.watch_orders(SYM)
        assert (got[-1]["filled"], got[-1]["remaining"]) == (0.4, 0.6)

    with_client(server, body)


def test_ws_sequence_gap_drop_and_silence_raw(server: CoinbaseServer) -> None:
    """ccxt does not read ``sequence_num``: a raw client shows the gap a feed has to detect."""

    async def body() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
            await ws.send_str(
                json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"})
            )
            seqs = [json.loads((await ws.receive()).data)["sequence_num"] for _ in range(2)]  # ack, snapshot
            server.move_book(SYM, bids=[(49_991, 1)])
            seqs.append(json.loads((await ws.receive()).data)["sequence_num"])
            server.gap(1)
            server.move_book(SYM, bids=[(49_992, 1)])
            server.move_book(SYM, bids=[(49_993, 1)])
            seqs.append(json.loads((await ws.receive()).data)["sequence_num"])
            assert seqs == [0, 1, 2, 4]
            server.set_silent(True)
            server.move_book(SYM, bids=[(49_994, 1)])
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.receive(), 0.5)
            server.set_silent(False)
            server.drop_websockets()
            msg = await ws.receive()
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)

    run_async(body)


def test_ws_user_channel_bad_jwt_kills_the_stream(server: CoinbaseServer) -> None:
    """Coinbase answers ``type: error``; ccxt's handler raises inside its receive loop.

    The caller only sees the keepalive watchdog's RequestTimeout (research §0.4).
    """

    async def body(ex: Any) -> None:
        ex.apiKey = "organizations/x/apiKeys/y"  # a key the exchange does not know
        with pytest.raises(ccxt.RequestTimeout):
            await ex.watch_orders(SYM)
        assert server.subscribers("user:BTC-USD") == []

    with_client(server, body, streaming={"keepAlive": 1000})
