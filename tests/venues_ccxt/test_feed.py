"""The ccxt.pro feed actor in a real node against the local Binance server (issue #9 point 2).

One node and one server per module (a node start costs seconds on a loaded machine); the tests run in
file order and each one scripts its own fault and waits for its own evidence on the bus.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from sniperbot.messages import FeedStatus, OrderBook, OrderIntent, Quote, TradeTick, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.risk.guard import RiskGuard, RiskLimits
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import Subscriber, split_message
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot
from tests.exchanges.binance import BinanceServer, demo_server

VENUE = "bin"
SYM = "BTC/USDT"
STALE_AFTER_S = 2.0


class BusWatch:
    """Every message of the feed's topics seen on the node's bus, in arrival order."""

    def __init__(self, zctx: zmq.Context, run_dir: Path) -> None:
        self.sub = Subscriber(zctx, RunDir(run_dir).bus_out, (topic.market(VENUE), topic.feed_status(VENUE)))
        self.seen: list[Any] = []

    def pump(self) -> list[Any]:
        """Take what arrived; return everything seen so far."""
        while self.sub.socket.poll(0):
            _, frame = split_message(self.sub.socket.recv())
            self.seen.append(decode_envelope(frame).payload)
        return self.seen

    def mark(self) -> int:
        """Position after what arrived so far (later waits look only after it)."""
        return len(self.pump())

    def wait(self, pred: Any, after: int = 0, timeout_s: float = 30.0, what: str = "") -> Any:
        """The first message after ``after`` matching ``pred``."""

        def found() -> Any:
            return next((m for m in self.pump()[after:] if pred(m)), None)

        return eventually(found, timeout_s, what=what)

    def status(self) -> FeedStatus:
        """The latest FeedStatus."""
        return [m for m in self.pump() if isinstance(m, FeedStatus)][-1]


class Rig:
    """A local Binance server, a real node with a CcxtFeed child, and a bus watcher."""

    def __init__(self, server: BinanceServer, node: RunningNode, bus: BusWatch) -> None:
        self.server = server
        self.node = node
        self.bus = bus


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    import tempfile

    server = demo_server().start()
    zctx = zmq.Context()
    with tempfile.TemporaryDirectory(prefix="sb-", dir="/tmp") as d:
        config = Path(d) / "fast.toml"
        config.write_text(FAST_CONFIG)
        node = RunningNode(Path(d) / "run", config)
        # conftest stops every live node after each test; this one lives for the module and is stopped
        # in the finally below.
        RunningNode.live.discard(node)
        try:
            node.wait_ready()
            bus = BusWatch(zctx, node.run_dir)
            spec = {
                "id": "feed.bin",
                "actor": "sniperbot.venues.ccxt.feed:CcxtFeed",
                "args": {
                    "venue": VENUE,
                    "exchange": "binance",
                    "symbols": [SYM],
                    "depth": 5,
                    "stale_after_s": STALE_AFTER_S,
                    "rest_url": server.rest_url,
                    "ws_url": server.ws_url,
                    "poll_interval_s": 0.3,
                },
            }
            result = sniperbot(
                "admin", "--run-dir", str(node.run_dir), "start-child", "--sup", "root",
                "--spec", json.dumps(spec), "--json",
            )  # fmt: skip
            assert result.returncode == 0, result.stdout + result.stderr
            yield Rig(server, node, bus)
        finally:
            try:
                node.stop()
            finally:
                zctx.destroy(linger=0)
                server.stop()


def _subscribed(server: BinanceServer) -> bool:
    low = server.market_id(SYM).lower()
    return all(server.subscribers(f"{low}@{s}") for s in ("trade", "depth@100ms", "bookTicker"))


def test_trades_quotes_and_book_of_the_exchange_arrive_as_bus_messages(rig: Rig) -> None:
    server, bus = rig.server, rig.bus
    # the first book comes from the REST snapshot: a quote and a book before any change
    first = bus.wait(lambda m: isinstance(m, Quote), what="first quote")
    assert (first.venue, first.symbol, first.bid, first.ask) == (VENUE, SYM, 49990.0, 50010.0)
    book = bus.wait(lambda m: isinstance(m, OrderBook), what="first book")
    assert book.bids[:2] == [(49990.0, 1.0), (49980.0, 1.0)] and len(book.asks) == 5
    eventually(lambda: _subscribed(server), 30, what="trade, depth and bookTicker subscriptions")
    mark = bus.mark()
    tid = server.trade(SYM, 50_010, "0.25", "buy")
    tick = bus.wait(lambda m: isinstance(m, TradeTick), mark, what="trade tick")
    assert (tick.venue, tick.symbol, tick.price, tick.size, tick.side, tick.trade_id) == (
        VENUE, SYM, 50010.0, 0.25, "buy", tid,
    )  # fmt: skip
    server.move_book(SYM, bids=[(49_995, 2)])
    quote = bus.wait(lambda m: isinstance(m, Quote) and m.bid == 49995.0, mark, what="moved quote")
    assert (quote.bid_size, quote.ask) == (2.0, 50010.0)
    status = bus.wait(lambda m: isinstance(m, FeedStatus) and not m.stale, what="fresh status")
    assert status.connected and status.venue == VENUE


def test_websocket_drop_is_counted_and_data_flows_again(rig: Rig) -> None:
    server, bus = rig.server, rig.bus
    eventually(lambda: _subscribed(server), 30, what="subscriptions")
    before = bus.status().reconnects
    assert server.drop_websockets() >= 1
    eventually(lambda: bus.status().reconnects == before + 1, 30, what="reconnect counted")
    eventually(lambda: _subscribed(server), 30, what="resubscribed after the drop")
    mark = bus.mark()
    tid = server.trade(SYM, 50_020, "0.5", "sell")
    tick = bus.wait(lambda m: isinstance(m, TradeTick) and m.trade_id == tid, mark, what="trade after drop")
    assert (tick.price, tick.side) == (50020.0, "sell")


def test_book_gap_is_repaired_by_a_fresh_snapshot(rig: Rig) -> None:
    server, bus = rig.server, rig.bus
    eventually(lambda: _subscribed(server), 30, what="subscriptions")
    # the book is in sync (snapshot taken, diffs applied) before the gap: a diff swallowed while the
    # snapshot is still pending would be covered by the snapshot and be no gap at all
    mark = bus.mark()
    server.move_book(SYM, asks=[(50_009, 1)])
    bus.wait(lambda m: isinstance(m, OrderBook) and m.asks[0] == (50009.0, 1.0), mark, what="synced book")
    before = bus.status()
    snapshots_requested = server.requests.count(("GET", "/api/v3/depth"))
    server.gap(SYM)
    server.move_book(SYM, bids=[(49_996, 1)])  # swallowed: the next diff jumps the sequence
    server.move_book(SYM, bids=[(49_997, 3)])
    status = eventually(
        lambda: (s := bus.status()).gaps == before.gaps + 1 and s.snapshots == before.snapshots + 1 and s,
        30,
        what="gap and snapshot counted",
    )
    assert server.requests.count(("GET", "/api/v3/depth")) > snapshots_requested
    # the repaired book holds the level whose diff was swallowed
    mark = bus.mark()
    server.move_book(SYM, asks=[(50_008, 1)])
    book = bus.wait(lambda m: isinstance(m, OrderBook) and m.asks[0][0] == 50008.0, mark, what="book")
    assert (49996.0, 1.0) in book.bids and book.bids[0] == (49997.0, 3.0)
    assert status.stale is False


def test_silent_stream_goes_stale_rest_keeps_quotes_then_recovers(rig: Rig) -> None:
    server, bus = rig.server, rig.bus
    eventually(lambda: _subscribed(server), 30, what="subscriptions")
    bus.wait(lambda m: isinstance(m, FeedStatus) and not m.stale, what="fresh before the silence")
    before = bus.status()
    mark = bus.mark()
    server.set_silent(True)
    silent_at = time.monotonic()
    stale = bus.wait(lambda m: isinstance(m, FeedStatus) and m.stale, mark, what="stale=True")
    # within stale_after_s of the last message, plus the watchdog period and slack for a loaded machine
    assert time.monotonic() - silent_at < STALE_AFTER_S + 5
    assert stale.stale_periods == before.stale_periods + 1
    # REST polling keeps prices coming while the stream says nothing
    server.move_book(SYM, bids=[(49_998, 4)])
    polled = bus.wait(lambda m: isinstance(m, Quote) and m.bid == 49998.0, mark, what="REST-polled quote")
    assert polled.bid_size == 4.0
    eventually(lambda: bus.status().rest_polls > before.rest_polls, 10, what="REST polls counted")
    rest_tid = server.trade(SYM, 50_025, "0.7", "sell")  # printed at the exchange, not on the silent stream
    rest_tick = bus.wait(
        lambda m: isinstance(m, TradeTick) and m.trade_id == rest_tid, mark, what="REST-polled trade"
    )
    assert (rest_tick.price, rest_tick.size, rest_tick.side) == (50025.0, 0.7, "sell")
    assert bus.status().stale  # REST data does not make the stream fresh
    mark = bus.mark()
    server.set_silent(False)
    fresh = bus.wait(lambda m: isinstance(m, FeedStatus) and not m.stale, mark, 40, what="stale=False")
    assert fresh.reconnects > before.reconnects  # the watchdog forced a reconnect
    # "fresh" may come from the book stream before the trade stream has subscribed again; a trade
    # printed in between is not on the stream (a REST backfill after reconnects is not built yet)
    eventually(lambda: _subscribed(server), 30, what="subscriptions again")
    tid = server.trade(SYM, 50_030, 1, "buy")
    bus.wait(lambda m: isinstance(m, TradeTick) and m.trade_id == tid, mark, what="stream trades again")
    ids = [m.trade_id for m in bus.pump() if isinstance(m, TradeTick)]
    assert len(ids) == len(set(ids)), ids  # REST and stream overlap: each trade published once


def _intent(side: str, quantity: float, venue: str = VENUE, n: int = 0) -> OrderIntent:
    return OrderIntent(
        intent_id=f"i-{side}-{n}",
        strategy_id="s",
        intent_seq=n,
        venue=venue,
        symbol=SYM,
        side=side,  # type: ignore[arg-type]
        quantity=quantity,
        order_type="market",
        ts_ns=0,
    )


def test_risk_guard_refuses_new_exposure_on_a_stale_venue_but_lets_reductions_pass() -> None:
    guard = RiskGuard(RiskLimits(max_order_notional=1e9, max_position=10, max_orders_per_second=1e6))
    guard.restore_positions({(VENUE, SYM): 1.0})  # positions are kept per (venue, symbol)
    guard.set_prices_stale(VENUE, True)
    assert guard.check(_intent("buy", 0.5), 50_000.0, 1) == "stale_prices"
    assert guard.check(_intent("sell", 3.0), 50_000.0, 2) == "stale_prices"  # flips: new exposure
    assert guard.check(_intent("buy", 0.5, venue="other"), 50_000.0, 3) is None  # other venues trade
    assert guard.check(_intent("sell", 0.5, n=1), 50_000.0, 4) is None  # a reduction passes
    guard.set_prices_stale(VENUE, False)
    assert guard.check(_intent("buy", 0.5, n=2), 50_000.0, 5) is None


def test_real_node_risk_guard_refuses_new_exposure_while_the_venue_feed_is_stale(rig: Rig) -> None:
    """A CcxtFeed for the node's venue ("sim", the one its risk guard has an executor for) goes stale."""
    from tests.test_breakers import Trader

    server = demo_server()
    server.add_market("SOL/USDT")  # a symbol the simulated market does not have: its quotes disturb nothing
    server.engine.set_levels("SOL/USDT", [(149, 10)], [(151, 10)])
    server.start()
    bus_out = RunDir(rig.node.run_dir).bus_out
    status = Subscriber(rig.bus.sub.socket.context, bus_out, (topic.feed_status("sim"),))
    statuses: list[FeedStatus] = []

    def latest() -> FeedStatus | None:
        while status.socket.poll(0):
            statuses.append(decode_envelope(split_message(status.socket.recv())[1]).payload)
        return statuses[-1] if statuses else None

    try:
        spec = {
            "id": "feed.simwatch",
            "actor": "sniperbot.venues.ccxt.feed:CcxtFeed",
            "args": {
                "venue": "sim",
                "exchange": "binance",
                "symbols": ["SOL/USDT"],
                "stale_after_s": STALE_AFTER_S,
                "rest_url": server.rest_url,
                "ws_url": server.ws_url,
            },
        }
        result = sniperbot(
            "admin", "--run-dir", str(rig.node.run_dir), "start-child", "--sup", "root",
            "--spec", json.dumps(spec), "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        trader = Trader(rig.node)
        eventually(lambda: (s := latest()) and not s.stale, 60, what="sim feed fresh")
        status_before, reason = trader.outcome(trader.send("buy", 0.001))
        assert reason != "stale_prices", (status_before, reason)
        server.set_silent(True)
        eventually(lambda: (s := latest()) and s.stale, 30, what="sim feed stale")
        # the guard hears the same bus; an intent sent from now on meets the stale flag
        assert trader.outcome(trader.send("buy", 0.001)) == ("rejected", "stale_prices")
        server.set_silent(False)
        eventually(lambda: (s := latest()) and not s.stale, 60, what="sim feed fresh again")
        _, reason = trader.outcome(trader.send("buy", 0.001))
        assert reason != "stale_prices"
    finally:
        status.close()
        sniperbot(
            "admin", "--run-dir", str(rig.node.run_dir), "terminate-child", "--sup", "root", "--id",
            "feed.simwatch", "--json",
        )  # fmt: skip
        server.stop()


def test_kraken_trades_and_quotes_arrive_as_the_same_messages(rig: Rig) -> None:
    """The same actor on another exchange: the local Kraken server's BTC/USD as venue "krk"."""
    from tests.exchanges.kraken import demo_server as kraken_server

    server = kraken_server().start()
    topics = (topic.market("krk"), topic.feed_status("krk"))
    sub = Subscriber(rig.bus.sub.socket.context, RunDir(rig.node.run_dir).bus_out, topics)
    seen: list[Any] = []

    def first(pred: Any) -> Any:
        while sub.socket.poll(0):
            seen.append(decode_envelope(split_message(sub.socket.recv())[1]).payload)
        return next((m for m in seen if pred(m)), None)

    try:
        spec = {
            "id": "feed.krk",
            "actor": "sniperbot.venues.ccxt.feed:CcxtFeed",
            "args": {
                "venue": "krk",
                "exchange": "kraken",
                "symbols": ["BTC/USD"],
                "rest_url": server.rest_url,
                "ws_url": server.ws_url,
            },
        }
        result = sniperbot(
            "admin", "--run-dir", str(rig.node.run_dir), "start-child", "--sup", "root",
            "--spec", json.dumps(spec), "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        quote = eventually(lambda: first(lambda m: isinstance(m, Quote)), 60, what="kraken quote")
        assert (quote.venue, quote.symbol, quote.bid, quote.ask) == ("krk", "BTC/USD", 49990.0, 50010.0)
        eventually(lambda: server.subscribers("trade:BTC/USD"), 30, what="kraken trade subscription")
        tid = server.trade("BTC/USD", 50_010, "0.25", "buy")
        tick = eventually(
            lambda: first(lambda m: isinstance(m, TradeTick) and m.trade_id == tid), 30, what="kraken trade"
        )
        assert (tick.venue, tick.price, tick.size, tick.side) == ("krk", 50010.0, 0.25, "buy")
        server.move_book("BTC/USD", bids=[(49_995, 2)])
        moved = eventually(lambda: first(lambda m: isinstance(m, Quote) and m.bid == 49995.0), 30, what="bbo")
        assert moved.bid_size == 2.0
        book = eventually(lambda: first(lambda m: isinstance(m, OrderBook) and m.bids[0][0] == 49995.0), 30)
        assert len(book.bids) == 10 and book.venue == "krk"
        # once the best bid/ask stream spoke, quotes come from it (sizes included)
        eventually(lambda: server.subscribers("bbo:BTC/USD"), 30, what="kraken bbo subscription")
        server.move_book("BTC/USD", asks=[(50_005, 3)])
        bbo = eventually(lambda: first(lambda m: isinstance(m, Quote) and m.ask == 50005.0), 30, what="bbo")
        assert (bbo.bid, bbo.bid_size, bbo.ask_size) == (49995.0, 2.0, 3.0)
        # an orderly stop: thread joined and exchange closed within the grace period (no kill), and a last
        # status saying the venue's prices are stale from now on
        mark = len(seen)
        stop = sniperbot(
            "admin", "--run-dir", str(rig.node.run_dir), "terminate-child", "--sup", "root",
            "--id", "feed.krk", "--json",
        )  # fmt: skip
        assert stop.returncode == 0, stop.stdout + stop.stderr
        eventually(lambda: rig.node.workers()["feed.krk"]["state"] == "stopped", 30, what="feed.krk stopped")

        def final() -> Any:
            first(lambda m: False)  # take what arrived
            gone = (m for m in seen[mark:] if isinstance(m, FeedStatus) and m.stale and not m.connected)
            return next(gone, None)

        last = eventually(final, 30, what="final stale status")
        assert last.venue == "krk"
        kills = [ln for ln in rig.node.log().splitlines() if "killing child" in ln and "feed.krk" in ln]
        assert kills == []
    finally:
        sub.close()
        sniperbot(
            "admin", "--run-dir", str(rig.node.run_dir), "terminate-child", "--sup", "root",
            "--id", "feed.krk", "--json",
        )  # fmt: skip
        server.stop()


def test_bad_arguments_are_refused_naming_the_field(rig: Rig) -> None:
    """An unknown exchange or depth fails at construction; a symbol the exchange does not list (known only
    after load_markets) crashes the incarnation with the symbol named, instead of a feed that never speaks.
    """
    from sniperbot.venues.ccxt.feed import CcxtFeed

    with pytest.raises(ValueError, match="exchange = 'nope'"):
        CcxtFeed(None, venue="x", exchange="nope", symbols=[SYM])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth = 0"):
        CcxtFeed(None, venue="x", exchange="binance", symbols=[SYM], depth=0)  # type: ignore[arg-type]
    spec = {
        "id": "feed.nosym",
        "actor": "sniperbot.venues.ccxt.feed:CcxtFeed",
        "restart": "temporary",
        "args": {
            "venue": "nosym",
            "exchange": "binance",
            "symbols": ["NOPE/USDT"],
            "rest_url": rig.server.rest_url,
            "ws_url": rig.server.ws_url,
        },
    }
    result = sniperbot(
        "admin", "--run-dir", str(rig.node.run_dir), "start-child", "--sup", "root",
        "--spec", json.dumps(spec), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    line = eventually(
        lambda: next((ln for ln in rig.node.log().splitlines() if "are not listed by binance" in ln), None),
        60,
        what="the crash naming the symbol",
    )
    assert "NOPE/USDT" in line and "feed.nosym" in line
