"""The ccxt.pro feed actor recovers what the stream lost (issue #9 point 2): book gaps on Kraken (CRC32
checksum) and Coinbase (``sequence_num``) repaired by a fresh snapshot, and trades missed during a
websocket outage backfilled from REST, on Binance, Kraken and Coinbase.

One real node (``sniperbot run``, one ``[[venues]] kind = "ccxt"`` dry-run venue per exchange) and
three local exchange servers per module (a node start costs seconds on a loaded machine); each venue's
``feed.<name>`` is the real ``CcxtFeed`` with the real ccxt.pro client. Every test scripts its own fault
on the server and waits for its own evidence on the node's bus.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from sniperbot.messages import FeedStatus, OrderBook, TradeTick, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import Subscriber, split_message
from tests.conftest import RunningNode, eventually, sniperbot
from tests.exchanges import binance, coinbase, kraken
from tests.exchanges._base import ExchangeServer
from tests.venues_ccxt.nodes import venue_toml, write_config

# REST polling (which would also recover trades while the stream is down) stays out of these tests: what
# they see recovered, the reconnect backfill recovered.
POLL_INTERVAL_S = 120.0


@dataclass
class Venue:
    """One exchange under test: its server, the feed's venue name and symbol, and its stream topics."""

    name: str
    exchange: str
    symbol: str
    server: ExchangeServer
    trade_topic: str
    book_topic: str

    def subscribed(self) -> bool:
        """The feed's trade and book subscriptions are live at the server."""
        return bool(self.server.subscribers(self.trade_topic) and self.server.subscribers(self.book_topic))


def _venues() -> dict[str, Venue]:
    bs, ks, cs = binance.demo_server(), kraken.demo_server(), coinbase.demo_server()
    low = bs.market_id("BTC/USDT").lower()
    return {
        "bin": Venue("bin", "binance", "BTC/USDT", bs, f"{low}@trade", f"{low}@depth@100ms"),
        "krk": Venue("krk", "kraken", "BTC/USD", ks, "trade:BTC/USD", "book:BTC/USD"),
        "cb": Venue("cb", "coinbase", "BTC/USD", cs, "market_trades:BTC-USD", "level2:BTC-USD"),
    }


class Bus:
    """Every market and feed-status message of the venues, in arrival order."""

    def __init__(self, zctx: zmq.Context, run_dir: Path, venues: list[str]) -> None:
        topics = tuple(t for v in venues for t in (topic.market(v), topic.feed_status(v)))
        self.sub = Subscriber(zctx, RunDir(run_dir).bus_out, topics)
        self.seen: list[Any] = []

    def pump(self) -> list[Any]:
        """Take what arrived; return everything seen so far."""
        while self.sub.socket.poll(0):
            _, frame = split_message(self.sub.socket.recv())
            self.seen.append(decode_envelope(frame).payload)
        return self.seen

    def mark(self) -> int:
        """Position after what arrived so far."""
        return len(self.pump())

    def wait(self, pred: Callable[[Any], bool], after: int = 0, timeout_s: float = 30, what: str = "") -> Any:
        """The first message after ``after`` matching ``pred``."""

        def found() -> Any:
            return next((m for m in self.pump()[after:] if pred(m)), None)

        return eventually(found, timeout_s, what=what)

    def status(self, venue: str) -> FeedStatus:
        """The venue's latest FeedStatus (waits for the first)."""

        def latest() -> FeedStatus | None:
            statuses = [m for m in self.pump() if isinstance(m, FeedStatus) and m.venue == venue]
            return statuses[-1] if statuses else None

        return eventually(latest, 30, what=f"a FeedStatus of {venue}")  # type: ignore[no-any-return]

    def trades(self, venue: str, after: int = 0) -> list[int]:
        """Trade ids published for ``venue`` after ``after``, in bus order."""
        return [m.trade_id for m in self.pump()[after:] if isinstance(m, TradeTick) and m.venue == venue]

    def book(self, venue: str, pred: Callable[[OrderBook], bool], after: int, what: str) -> OrderBook:
        """The first book of ``venue`` after ``after`` matching ``pred``."""
        return self.wait(lambda m: isinstance(m, OrderBook) and m.venue == venue and pred(m), after, 30, what)


@dataclass
class Rig:
    """A real node with one CcxtFeed child per local exchange server, and the bus."""

    node: RunningNode
    venues: dict[str, Venue]
    bus: Bus


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    """``sniperbot run`` with one ``[[venues]] kind = "ccxt"`` dry-run venue per local exchange server."""
    venues = _venues()
    zctx = zmq.Context()
    with tempfile.TemporaryDirectory(prefix="sb-", dir="/tmp") as d:
        node: RunningNode | None = None
        try:
            for v in venues.values():
                v.server.start()
            extra = f"depth = 10\npoll_interval_s = {POLL_INTERVAL_S}\n"
            entries = [
                venue_toml(v.server, name=v.name, symbols=(v.symbol,), extra=extra) for v in venues.values()
            ]
            config = write_config(Path(d) / "venues.toml", *entries, strategies=False)
            node = RunningNode(Path(d) / "run", config)
            RunningNode.live.discard(node)  # lives for the module: stopped in the finally below
            workers = node.wait_ready()
            assert {f"feed.{name}" for name in venues} <= set(workers), sorted(workers)
            bus = Bus(zctx, node.run_dir, list(venues))
            for name in venues:  # each feed's periodic status heard: the subscriptions are live (slow joiner)
                bus.status(name)
            yield Rig(node, venues, bus)
        finally:
            try:
                if node is not None:
                    node.stop()
            finally:
                zctx.destroy(linger=0)
                for v in venues.values():
                    v.server.stop()


def control(server: ExchangeServer, method: str, *args: Any) -> Any:
    """``POST /__control__/<method>``: script the server over HTTP, as another process does."""
    request = urllib.request.Request(
        f"{server.rest_url}/__control__/{method}",
        data=json.dumps({"args": list(args)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["result"]


def _synced(rig: Rig, v: Venue, ask: float) -> None:
    """Subscriptions live and the feed's book in step with the exchange (an ask level it just changed)."""
    eventually(v.subscribed, 60, what=f"{v.name} trade and book subscriptions")
    mark = rig.bus.mark()
    v.server.move_book(v.symbol, asks=[(ask, 0.77)])
    rig.bus.book(v.name, lambda b: (ask, 0.77) in b.asks, mark, f"{v.name} book with ask {ask}")


@pytest.mark.parametrize("name", ["krk", "cb"])
def test_book_gap_is_detected_and_repaired_by_a_fresh_snapshot(rig: Rig, name: str) -> None:
    """Kraken: the next update's CRC32 checksum no longer matches the feed's book. Coinbase: the
    connection's ``sequence_num`` jumps. Either way: one gap, one fresh snapshot, a book equal to the
    exchange's again.
    """
    v, bus = rig.venues[name], rig.bus
    _synced(rig, v, 50_009)
    # Ordinary traffic is no gap: an 11th bid (outside the 10-level window Kraken streams), the top bid
    # deleted (the 11th enters the window), a new top bid (pushes it out again).
    before = bus.status(name)
    mark = bus.mark()
    v.server.move_book(v.symbol, bids=[(49_890, 1)])
    v.server.move_book(v.symbol, bids=[(49_990, 0)])
    book = bus.book(name, lambda b: b.bids[0] == (49980.0, 1.0), mark, "book without its top bid")
    assert len(book.bids) == 10 and book.bids[-1] == (49890.0, 1.0)
    mark = bus.mark()
    v.server.move_book(v.symbol, bids=[(49_994, 2)])
    book = bus.book(name, lambda b: b.bids[0] == (49994.0, 2.0), mark, "book with a new top bid")
    assert len(book.bids) == 10 and book.bids[-1] == (49900.0, 1.0)
    subscribes = len(v.server.ws_messages)
    control(v.server, "gap", v.symbol)  # as another process scripts it (the chaos tool)
    v.server.move_book(v.symbol, bids=[(49_996, 1)])  # lost on the wire
    v.server.move_book(v.symbol, asks=[(50_004, 1)])  # the checksum / sequence_num tells
    v.server.move_book(v.symbol, asks=[(50_005, 1)])  # on the wire before the resubscription: ignored
    status = eventually(
        lambda: (s := bus.status(name)).gaps == before.gaps + 1 and s.snapshots == before.snapshots + 1 and s,
        30,
        what=f"{name}: one gap and one snapshot counted",
    )
    # the repair is a resubscription (the exchange answers it with a snapshot), not a reconnect
    assert status.reconnects == before.reconnects
    resubscribed = [m for _, m in v.server.ws_messages[subscribes:] if "subscribe" in json.dumps(m)]
    assert resubscribed, "no book resubscription reached the server"
    # the repaired book holds the level whose update was lost
    mark = bus.mark()
    v.server.move_book(v.symbol, asks=[(50_003, 1)])
    book = bus.book(name, lambda b: b.asks[0][0] == 50003.0, mark, "the repaired book")
    assert book.bids[0] == (49996.0, 1.0) and book.asks[1:3] == [(50004.0, 1.0), (50005.0, 1.0)]
    assert bus.status(name).gaps == before.gaps + 1  # and it stays in step


def test_a_trade_message_lost_on_coinbase_is_backfilled_ahead_of_the_next_one(rig: Rig) -> None:
    """``sequence_num`` jumps on the message after a lost trade: the lost trade comes from REST, first."""
    v, bus = rig.venues["cb"], rig.bus
    _synced(rig, v, 50_006)
    before = bus.status("cb")
    mark = bus.mark()
    control(v.server, "gap", v.symbol)
    lost = v.server.trade(v.symbol, 50_006, "0.03", "buy")  # its market_trades message is lost
    after = v.server.trade(v.symbol, 50_006, "0.04", "buy")  # sequence_num jumps here
    eventually(lambda: bus.trades("cb", mark) == [lost, after], 30, what="the lost trade, then the next")
    status = eventually(lambda: (s := bus.status("cb")).gaps > before.gaps and s, 30, what="gap counted")
    assert status.reconnects == before.reconnects


@pytest.mark.parametrize("name", ["bin", "krk", "cb"])
def test_trades_missed_while_the_stream_was_down_are_backfilled_from_rest_once_in_order(
    rig: Rig, name: str
) -> None:
    """The exchange trades while the feed's websocket is down; after the reconnect the bus has every trade
    exactly once, in trade-id order, the missed ones fetched over REST and counted in ``backfilled``.
    """
    v, bus = rig.venues[name], rig.bus
    _synced(rig, v, 50_008)
    price = 50_008
    mark = bus.mark()
    seen = v.server.trade(v.symbol, price, "0.1", "buy")
    bus.wait(lambda m: isinstance(m, TradeTick) and m.trade_id == seen, mark, what="a streamed trade")
    before = bus.status(name)
    # The outage: the connection is dropped and, while the server stays silent, nothing it says (a new
    # connection's subscriptions included) is heard; the market trades on meanwhile.
    v.server.set_silent(True)
    try:
        v.server.drop_websockets()
        missed = [v.server.trade(v.symbol, price + i, "0.01", "sell" if i % 2 else "buy") for i in range(5)]
    finally:
        v.server.set_silent(False)
    # the feed notices (drop, or its watchdog on the silent connection) and subscribes again
    eventually(lambda: bus.status(name).reconnects > before.reconnects, 60, what="reconnect counted")
    eventually(v.subscribed, 60, what="subscribed again")
    after = [v.server.trade(v.symbol, price, "0.02", "buy") for _ in range(2)]
    eventually(lambda: set(missed + after) <= set(bus.trades(name, mark)), 60, what="every trade on the bus")
    # every trade exactly once, in trade-id order: the backfill came ahead of the stream's newer trades
    assert bus.trades(name, mark) == [seen, *missed, *after]
    # counted: the missed ones, and those of ``after`` that printed before the backfill's REST call (the
    # stream's later copy of them is the duplicate)
    counted = lambda: bus.status(name).backfilled - before.backfilled  # noqa: E731
    eventually(lambda: counted() >= len(missed), 10, what="backfilled trades counted")
    assert len(missed) <= counted() <= len(missed) + len(after)


def test_a_feed_status_frame_from_before_the_backfilled_counter_still_decodes() -> None:
    """A node (or a recorded bus) from before ``backfilled`` existed: its FeedStatus decodes, counter 0."""
    old = {
        "t": "feed_status", "venue": "bin", "connected": True, "stale": False, "reconnects": 1, "gaps": 2,
        "snapshots": 2, "stale_periods": 0, "rest_polls": 3, "last_message_ns": 5, "ts_ns": 6,
    }  # fmt: skip
    frame = msgspec.msgpack.encode([topic.feed_status("bin"), "feed.bin", 1, 1, 6, old])
    status = decode_envelope(frame).payload
    assert isinstance(status, FeedStatus) and (status.gaps, status.backfilled) == (2, 0)


def test_a_quiet_symbols_missed_trades_are_backfilled_without_waiting_for_its_next_trade(rig: Rig) -> None:
    """No trade prints after the reconnect: the backfill still comes, once the stream is fresh again.

    REST trades fail during the outage (so REST polling cannot be what recovers them) and work again
    once the feed is fresh. Its own server and feed child, with fast REST polling.
    """
    server = kraken.demo_server().start()
    name, symbol = "krq", "BTC/USD"
    bus = Bus(rig.bus.sub.socket.context, rig.node.run_dir, [name])
    spec = {
        "id": f"feed.{name}",
        "actor": "sniperbot.venues.ccxt.feed:CcxtFeed",
        "args": {
            "venue": name,
            "exchange": "kraken",
            "symbols": [symbol],
            "stale_after_s": 3.0,
            "rest_url": server.rest_url,
            "ws_url": server.ws_url,
            "poll_interval_s": 0.3,
        },
    }
    v = Venue(name, "kraken", symbol, server, f"trade:{symbol}", f"book:{symbol}")
    try:
        result = sniperbot(
            "admin", "--run-dir", str(rig.node.run_dir), "start-child", "--sup", "root",
            "--spec", json.dumps(spec), "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        eventually(v.subscribed, 60, what="subscriptions")
        mark = bus.mark()
        seen = server.trade(symbol, 50_010, "0.1", "buy")
        bus.wait(lambda m: isinstance(m, TradeTick) and m.trade_id == seen, mark, what="a streamed trade")
        bus.wait(lambda m: isinstance(m, FeedStatus) and not m.stale, mark, what="fresh")
        before = bus.status(name)
        server.fail_next("/0/public/Trades", 500, times=10_000)
        server.set_silent(True)
        try:
            server.drop_websockets()
            missed = [server.trade(symbol, 50_011 + i, "0.01", "buy") for i in range(3)]
        finally:
            server.set_silent(False)
        eventually(lambda: bus.status(name).reconnects > before.reconnects, 60, what="reconnect counted")
        eventually(v.subscribed, 60, what="subscribed again")
        mark_fresh = bus.mark()
        bus.wait(lambda m: isinstance(m, FeedStatus) and not m.stale, mark_fresh, 60, what="fresh again")
        assert bus.trades(name, mark) == [seen]  # nothing came over REST while it failed
        with server.lock:
            server.faults.clear()  # REST trades work again; the market stays quiet
        eventually(lambda: bus.trades(name, mark) == [seen, *missed], 30, what="the missed trades")
        counted = lambda: bus.status(name).backfilled - before.backfilled  # noqa: E731
        eventually(lambda: counted() == len(missed), 10, what="backfilled trades counted")
    finally:
        sniperbot(
            "admin", "--run-dir", str(rig.node.run_dir), "terminate-child", "--sup", "root",
            "--id", f"feed.{name}", "--json",
        )  # fmt: skip
        bus.sub.close()
        server.stop()


def test_coinbase_numbering_each_channel_on_its_own_is_no_gap_and_a_real_gap_still_is(rig: Rig) -> None:
    """Coinbase does not document whether ``sequence_num`` counts per connection or per channel: a server
    numbering per channel interleaves trades and book updates without one gap counted, and a lost book
    update is still one gap, repaired.
    """
    server = coinbase.CoinbaseServer(sequence_scope="channel")
    server.add_market("BTC/USD")
    server.engine.set_levels(
        "BTC/USD", [(49_990 - 10 * i, 1) for i in range(10)], [(50_010 + 10 * i, 1) for i in range(10)]
    )
    server.start()
    name, symbol = "cbc", "BTC/USD"
    v = Venue(name, "coinbase", symbol, server, "market_trades:BTC-USD", "level2:BTC-USD")
    bus = Bus(rig.bus.sub.socket.context, rig.node.run_dir, [name])
    spec = {
        "id": f"feed.{name}",
        "actor": "sniperbot.venues.ccxt.feed:CcxtFeed",
        "args": {
            "venue": name,
            "exchange": "coinbase",
            "symbols": [symbol],
            "rest_url": server.rest_url,
            "ws_url": server.ws_url,
            "poll_interval_s": POLL_INTERVAL_S,
        },
    }
    try:
        result = sniperbot(
            "admin", "--run-dir", str(rig.node.run_dir), "start-child", "--sup", "root",
            "--spec", json.dumps(spec), "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        eventually(v.subscribed, 60, what="subscriptions")
        mark = bus.mark()
        tids = []
        for i in range(5):
            tids.append(server.trade(symbol, 50_010, "0.01", "buy"))
            server.move_book(symbol, bids=[(49_991 + i, 1)])
        bus.book(name, lambda b: b.bids[0] == (49995.0, 1.0), mark, "the last book update")
        eventually(lambda: bus.trades(name, mark) == tids, 30, what="every trade")
        quiet = bus.status(name)
        assert (quiet.gaps, quiet.snapshots) == (0, 0)
        control(server, "gap", symbol)
        server.move_book(symbol, bids=[(49_996, 1)])  # lost
        server.move_book(symbol, bids=[(49_997, 1)])  # the level2 channel's number jumps
        eventually(
            lambda: (s := bus.status(name)).gaps == 1 and s.snapshots == 1, 30, what="one gap repaired"
        )
        mark = bus.mark()
        server.move_book(symbol, asks=[(50_001, 1)])
        book = bus.book(name, lambda b: b.asks[0] == (50001.0, 1.0), mark, "the repaired book")
        assert book.bids[:2] == [(49997.0, 1.0), (49996.0, 1.0)]
    finally:
        sniperbot(
            "admin", "--run-dir", str(rig.node.run_dir), "terminate-child", "--sup", "root",
            "--id", f"feed.{name}", "--json",
        )  # fmt: skip
        bus.sub.close()
        server.stop()
