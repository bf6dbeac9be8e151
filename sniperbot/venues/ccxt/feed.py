"""A live market-data feed actor per venue, on ccxt.pro websockets with a REST fallback.

It publishes the SAME messages as the simulated feed (:class:`Quote`, :class:`TradeTick`, topics from
:mod:`sniperbot.messages.topics`), so strategies, the risk guard and the portfolio do not know which venue
they watch; it adds an :class:`OrderBook` (top ``depth`` levels) per symbol and a :class:`FeedStatus` on
``status.feed.<venue>``.

Decisions (a trader relies on these):
- Threads: ccxt.pro is asyncio, the actor loop is a synchronous zmq loop whose ``ctx.publish`` is not
  thread-safe. The asyncio loop runs in one daemon thread and hands every event to the actor thread through
  a ``queue.SimpleQueue`` drained by a ``ctx.every(DRAIN_INTERVAL_S)`` timer (the runtime's poller only
  dispatches its own sockets, so a PAIR socket would need a runtime change). Added latency: at most
  ``DRAIN_INTERVAL_S`` (2 ms), half that on average; ``bench/ccxt_feed.py`` measures it end to end
  (local Binance server, loaded 2-core machine, 500 samples: ccxt alone p50 0.5 ms; trade -> TradeTick on
  the bus p50 1.9 ms, p99 4.0 ms; book move -> Quote p50 2.2 ms, p99 4.2 ms). 2 ms rather than 1 ms
  (p50 ~0.6 ms lower in a short run) halves the idle wake-ups (500/s).
- Quotes: from the exchange's best bid/ask stream (``watch_bids_asks``: Binance bookTicker, Kraken ticker)
  where ccxt.pro has one; until its first message, and on exchanges without it, from the top of the order
  book. A quote is published only when top of book changed.
- Reconnects: ccxt.pro never resubscribes by itself (a drop rejects the pending ``watch_*`` with a
  ``NetworkError``; the next call reconnects). Every watcher loops and backs off with full jitter
  (``uniform(0, min(cap, base * 2**n))``, base 0.1 s, cap 10 s), reset on the first message. A
  connected->disconnected transition counts one ``reconnects``.
- Book gaps, detected on all three tested exchanges and repaired by a fresh snapshot: Binance spot (ccxt
  checks ``U == previous u + 1``), Kraken (Kraken's CRC32 ``checksum`` of the top 10 levels, verified by
  our subclass of ccxt's class before ccxt applies the message: ccxt 4.5.90's own check crashes on float
  prices) and Coinbase (our subclass reads the connection's ``sequence_num``, which ccxt ignores; a jump
  means a message of any channel was lost, so every book of that connection is resynced). The pending
  ``watch_order_book`` fails with ``ChecksumError``, the book and its subscription are dropped, and the
  next watch resubscribes: Binance takes a REST snapshot, Kraken and Coinbase answer with a snapshot.
  Each gap is counted in ``gaps``, each repaired book in ``snapshots``; a repair is no reconnect.
- Trade backfill: a reconnect or a gap may have lost trades (ccxt.pro never resubscribes by itself and
  replays nothing). The first trades a symbol's stream delivers afterwards are held back, the REST trades
  since the newest one handed over are fetched (``fetch_trades``, up to ``BACKFILL_LIMIT``) and merged in
  ahead of them: fetched after the stream spoke again, so nothing printed in between is missing, and the
  whole batch is published in trade order. A quiet symbol does not wait for its next trade: once the
  stream is fresh again, the REST poller backfills each symbol once (complete up to that fetch; the
  merge covers the rest). Published trades are de-duplicated by trade id (stream and REST overlap), and
  a trade older than the newest published one is never published (strategies see time move forward
  only). Trades published from REST (backfill or polling) are counted in ``backfilled``. One REST call
  per backfill, no paging (each exchange pages differently): if more than ``BACKFILL_LIMIT`` trades
  printed during the outage, some are missing and a ``feed_error`` says so. If REST fails when the
  stream's first trades come back, those are published without the backfill (live data is not held
  for history) and the missed ones stay missing (logged).
- Stale watchdog: a stream that said nothing for ``stale_after_s`` marks the venue stale
  (``FeedStatus.stale``, published at once). "Nothing" means no data message and no pong: a quiet
  connection is pinged every ``stale_after_s / 4``, so a quiet market whose connection answers stays
  fresh, while a dead or silent one does not; a pong counts only once data flowed since the last
  reconnect. While stale the feed forces a reconnect every ``stale_after_s`` and polls REST
  (``fetch_ticker`` -> Quote, ``fetch_trades`` since the newest trade handed over -> TradeTick) every
  ``poll_interval_s``; REST polling also runs while the websocket is down. Prices polled over REST do not
  clear the stale flag: only data on the stream does. The risk guard refuses position-growing intents on
  a stale venue (``stale_prices``). A stopped feed publishes a last status with ``stale=True``.
- Rate limits: every REST call of the feed (markets, book snapshots, the REST fallback) takes from the
  venue's shared budget (``ratelimit.py``), opened under the ``keys`` entry name (``public`` without one):
  Binance counts public and signed weight together per IP. Websocket messages are ccxt's to throttle.
- Trade ids: the exchange's id when it is an integer, else its CRC32 (``TradeTick.trade_id`` is an int).
- Market rules: once the markets are loaded, one :class:`MarketRules` per symbol (lot step, price tick,
  minimum and maximum amount, minimum notional, from ccxt's ``precision`` and ``limits``: Binance
  LOT_SIZE / PRICE_FILTER / (MIN_)NOTIONAL, Kraken lot_decimals / ordermin / costmin, Coinbase
  base_increment / base_min_size / quote_min_size) on ``md.<venue>.rules.<symbol>.``, kept by the node's
  last-value cache; the risk guard sizes and refuses orders by it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import random
import threading
import time
import zlib
from decimal import Decimal
from typing import Any

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import FeedStatus, MarketRules, OrderBook, Quote, TradeTick
from sniperbot.messages import topics as topic
from sniperbot.venues.ccxt.markets import spot_options
from sniperbot.venues.ccxt.ratelimit import PUBLIC_KEY_NAME
from sniperbot.venues.ccxt.urls import rebase_urls

DRAIN_INTERVAL_S = 0.002  # hand-over period from the asyncio thread to the actor loop
STATUS_INTERVAL_S = 1.0
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 10.0
_RECENT_TRADES = 2000  # trade ids remembered per symbol (ws and REST overlap after a reconnect)
BACKFILL_LIMIT = 1000  # trades asked for by one backfill (the most Binance, Kraken and Coinbase return)
POLL_TRADES_LIMIT = 100  # trades asked for by one REST poll while the stream is down
_JOIN_TIMEOUT_S = 10.0


def trade_id_int(raw: Any) -> int:
    """The exchange's trade id as an int: itself when numeric, else a stable CRC32 of it."""
    text = str(raw)
    return int(text) if text.isdigit() else zlib.crc32(text.encode())


def make_exchange(
    exchange: str,
    rest_url: str | None,
    ws_url: str | None,
    sandbox: bool,
    config: dict[str, Any] | None = None,
    limiter: tuple[str, str, str] | None = None,
) -> Any:
    """A ccxt.pro exchange for public market data, sandboxed then rebased (in that order, see urls.py).

    ``limiter`` = (run dir, venue, key name): its REST calls (markets, book snapshots, the REST fallback)
    take from the venue's budget shared with every other process of the venue (``ratelimit.py``).
    """
    import ccxt.pro

    cls = getattr(ccxt.pro, exchange, None)
    if cls is None:
        raise ValueError(f"exchange = {exchange!r}: not a ccxt.pro exchange")
    cls = _checked_class(exchange, cls)
    options: dict[str, Any] = {}
    if exchange == "binance":
        # A spot feed: load spot markets only (no futures/margin endpoints, which also keeps spot symbols
        # unambiguous for the pro client's stream routing).
        # REST fallback trades from /api/v3/trades carry the same ids as the @trade stream (aggTrades,
        # ccxt's default, would not de-duplicate against it).
        options = {**spot_options(exchange), "fetchTradesMethod": "publicGetTrades"}
    settings = {"enableRateLimit": True, "options": options, **(config or {})}
    if limiter is not None:
        from sniperbot.venues.ccxt.ratelimit import open_limited

        ex = open_limited(cls, *limiter, settings)
    else:
        ex = cls(settings)
    if sandbox:
        ex.set_sandbox_mode(True)
    return rebase_urls(ex, rest_url, ws_url)


def kraken_book_checksum(
    asks: list[tuple[Any, Any]], bids: list[tuple[Any, Any]], price_decimals: int, qty_decimals: int
) -> int:
    """Kraken's book checksum: CRC32 of the top 10 asks then top 10 bids, each price and qty printed at the
    pair's decimals with the '.' and leading zeros removed (Kraken's "Spot WS v2 book checksum" guide).
    """

    def part(x: Any, decimals: int) -> str:
        return f"{Decimal(str(x)):.{decimals}f}".replace(".", "").lstrip("0")

    payload = "".join(part(p, price_decimals) + part(q, qty_decimals) for p, q in list(asks)[:10])
    payload += "".join(part(p, price_decimals) + part(q, qty_decimals) for p, q in list(bids)[:10])
    return zlib.crc32(payload.encode())


def _top(side: Any, deltas: list[dict[str, Any]] | None, best_first_desc: bool) -> list[tuple[float, float]]:
    """The top 10 of a book side after applying Kraken v2 level deltas (qty 0 deletes)."""
    levels = {float(p): float(q) for p, q, *_ in side}
    for d in deltas or []:
        price, qty = float(d["price"]), float(d["qty"])
        if qty == 0:
            levels.pop(price, None)
        else:
            levels[price] = qty
    return sorted(levels.items(), key=lambda kv: -kv[0] if best_first_desc else kv[0])[:10]


_CHECKED_CLASSES: dict[str, Any] = {}


def _checked_class(exchange: str, base: Any) -> Any:
    """Our subclass of a ccxt.pro exchange that detects the book gaps ccxt 4.5.90 does not (else ``base``).

    - kraken: verifies Kraken's CRC32 ``checksum`` of every book message BEFORE ccxt applies it.
      ccxt's own check (``watchOrderBook.checksum``) cannot be used: its ``format_number`` calls
      ``str.split`` on the book's float prices, the AttributeError kills the connection's receive loop
      and the first book never arrives (research §0.4); it also prints floats, not the pair's decimals.
      An update for a book we dropped is ignored (ccxt would raise KeyError in its receive loop).
    - coinbase: reads ``sequence_num`` (per connection, every channel): a jump means a message was lost,
      so every level2 book of that connection is dropped and resubscribed (Coinbase answers a subscribe
      with a fresh snapshot). Decision, Coinbase's scope of the counter being undocumented: a number that
      goes BACK on a connection (impossible with one counter per connection) switches the check to one
      counter per channel, so interleaved channels never pass for lost messages (at most one spurious
      resync before the switch).
    Either way the pending ``watch_order_book`` is rejected with ``ChecksumError``, as ccxt does for a
    Binance gap, and the next call resubscribes.
    """
    if exchange not in ("kraken", "coinbase"):
        return base
    if exchange in _CHECKED_CLASSES:
        return _CHECKED_CLASSES[exchange]
    import ccxt

    def drop_book(ex: Any, client: Any, message_hash: str, symbol: str, why: str) -> None:
        # what ccxt does on a Binance gap: forget the subscription and the book, reject the watcher
        client.subscriptions.pop(message_hash, None)
        ex.orderbooks.pop(symbol, None)
        client.reject(ccxt.ChecksumError(f"{ex.id} {symbol}: {why}"), message_hash)

    class KrakenChecked(base):  # type: ignore[misc, valid-type]
        """ccxt.pro kraken with Kraken's book checksum verified (see ``_checked_class``)."""

        def handle_order_book(self, client: Any, message: dict[str, Any]) -> None:
            data = message.get("data") or [{}]
            first = data[0] if isinstance(data[0], dict) else {}
            symbol, kind, expected = first.get("symbol"), message.get("type"), first.get("checksum")
            if kind == "update" and symbol not in self.orderbooks:
                return  # its book was dropped: a fresh snapshot is on its way
            market = self.markets.get(symbol) if self.markets else None
            if expected is not None and market is not None:
                book = self.orderbooks.get(symbol) if kind == "update" else None
                asks = _top(book["asks"] if book else [], first.get("asks"), best_first_desc=False)
                bids = _top(book["bids"] if book else [], first.get("bids"), best_first_desc=True)
                info = market.get("info") or {}
                local = kraken_book_checksum(
                    asks, bids, int(info.get("pair_decimals", 1)), int(info.get("lot_decimals", 8))
                )
                if local != int(expected):
                    why = f"book checksum {local} != {expected}: an update was lost"
                    drop_book(self, client, self.get_message_hash("orderbook", None, symbol), symbol, why)
                    return
            super().handle_order_book(client, message)

    class CoinbaseChecked(base):  # type: ignore[misc, valid-type]
        """ccxt.pro coinbase with ``sequence_num`` gaps detected (see ``_checked_class``)."""

        def __init__(self, config: dict[str, Any] | None = None) -> None:
            super().__init__(config or {})
            # (ws url, channel or "") -> (its client, last sequence_num)
            self.last_sequence: dict[tuple[str, str], tuple[Any, int]] = {}
            self.per_channel = False  # sequence_num counts per channel, not per connection (see below)
            self.lost_messages = 0  # sequence_num jumps seen (a lost trade message too: the feed backfills)

        def handle_message(self, client: Any, message: Any) -> None:
            seq = message.get("sequence_num") if isinstance(message, dict) else None
            if isinstance(seq, int):
                key = (client.url, str(message.get("channel")) if self.per_channel else "")
                last = self.last_sequence.get(key)
                self.last_sequence[key] = (client, seq)
                if last is not None and last[0] is client and seq <= last[1] and not self.per_channel:
                    # A lost message only ever makes the number jump forward. Going back means the
                    # exchange numbers each channel on its own (Coinbase does not document which, the
                    # research found one counter per connection): from now on, track per channel.
                    self.per_channel = True
                    self.last_sequence = {(client.url, str(message.get("channel"))): (client, seq)}
                # a new connection (a new client object) numbers from 0 again: no gap
                elif last is not None and last[0] is client and seq != last[1] + 1:
                    why = f"sequence_num {last[1]} -> {seq}: a message was lost"
                    self.lost_messages += 1  # before the message is handled: its trades see it
                    for message_hash in [h for h in client.subscriptions if str(h).startswith("level2::")]:
                        for symbol in message_hash[len("level2::") :].split(","):
                            drop_book(self, client, message_hash, symbol, why)
            super().handle_message(client, message)

    cls = KrakenChecked if exchange == "kraken" else CoinbaseChecked
    _CHECKED_CLASSES[exchange] = cls
    return cls


# Exchanges whose REST trades endpoint (as the feed configures it) returns only the latest trades.
_LATEST_TRADES_ONLY = frozenset({"binance"})


def market_rules(venue: str, ex: Any, symbol: str) -> MarketRules:
    """The trading rules of ``symbol`` from a loaded ccxt exchange's market (0 / None: no such rule)."""
    from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

    market = ex.market(symbol)
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}

    def step(value: Any) -> float:
        if value is None:
            return 0.0
        if ex.precisionMode == DECIMAL_PLACES:
            return 10.0 ** -int(value)  # a number of decimals
        if ex.precisionMode == TICK_SIZE:
            return float(value)
        return 0.0  # significant digits: no fixed step to round to

    def limit(kind: str, bound: str) -> float | None:
        value = (limits.get(kind) or {}).get(bound)
        return float(value) if value is not None else None

    return MarketRules(
        venue=venue,
        symbol=symbol,
        amount_step=step(precision.get("amount")),
        price_tick=step(precision.get("price")),
        min_amount=limit("amount", "min") or 0.0,
        min_notional=limit("cost", "min") or 0.0,
        max_amount=limit("amount", "max"),
        ts_ns=time.time_ns(),
    )


# Book depths an exchange's stream accepts (ccxt passes ``limit`` through as the subscription depth).
_BOOK_DEPTHS: dict[str, tuple[int, ...]] = {"kraken": (10, 25, 100, 500, 1000)}


def book_limit(exchange: str, depth: int) -> int | None:
    """The ``limit`` to watch a book of ``depth`` levels with: the smallest depth the stream accepts, or None
    (the exchange's default) where any depth is sliced from the full book (Binance diff stream).
    """
    depths = _BOOK_DEPTHS.get(exchange)
    if not depths:
        return None
    return next((d for d in depths if d >= depth), depths[-1])


class _Worker:
    """The asyncio side: watchers, REST fallback and forced reconnects; talks to the actor via ``out``."""

    def __init__(self, feed: CcxtFeed) -> None:
        self.feed = feed
        self.out: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=f"ccxtfeed-{feed.venue}", daemon=True)
        self.ex: Any = None
        self.running = True
        self.connected = False
        self.last_ws_ns = 0  # monotonic ns of the last websocket message (0: none yet)
        self.last_pong_ns = 0  # monotonic ns of the last pong seen (written by the asyncio thread only)
        self.reconnects = 0
        self.gaps = 0
        self.snapshots = 0
        self.rest_polls = 0
        self._resync: set[str] = set()  # symbols whose book must come back from a fresh snapshot
        self._tasks: list[asyncio.Task[Any]] = []
        # newest trade handed over per symbol (exchange ms): where a backfill starts (history before the
        # start is not ticks, as in the actor)
        self.last_trade_ms = {s: time.time_ns() // 1_000_000 - 1000 for s in feed.symbols}
        # reconnects + gaps when each symbol's trades were last backfilled (merged with the stream) and
        # last promptly backfilled by the poller
        self._merged_epoch = dict.fromkeys(feed.symbols, 0)
        self._prompt_epoch = dict.fromkeys(feed.symbols, 0)

    # -- thread entry and stop ----------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as e:  # the actor must not live on with a dead feed thread: it crashes
            self.out.put(("fatal", f"{type(e).__name__}: {e}"))
        finally:
            self.loop.close()

    async def _main(self) -> None:
        f = self.feed
        limiter = (str(f.ctx.run_dir), f.venue, f.keys or PUBLIC_KEY_NAME)
        self.ex = make_exchange(f.exchange, f.rest_url, f.ws_url, f.sandbox, limiter=limiter)
        try:
            while self.running:
                try:
                    await self.ex.load_markets()
                    break
                except Exception as e:  # no markets yet: retry with backoff, never crash-loop
                    self.out.put(("error", f"load_markets: {type(e).__name__}: {e}"))
                    await asyncio.sleep(BACKOFF_CAP_S * random.random())
            missing = [s for s in f.symbols if s not in self.ex.markets]
            if missing and self.running:
                raise ValueError(f"feed {f.venue!r}: symbols {missing} are not listed by {f.exchange}")
            self.out.put(("rules", [market_rules(f.venue, self.ex, s) for s in f.symbols]))
            for symbol in f.symbols:
                self._tasks.append(asyncio.ensure_future(self._watch(symbol, "trades")))
                self._tasks.append(asyncio.ensure_future(self._watch(symbol, "book")))
            if self.ex.has.get("watchBidsAsks"):
                self._tasks.append(asyncio.ensure_future(self._watch(None, "bids_asks")))
            self._tasks.append(asyncio.ensure_future(self._poll_rest()))
            self._tasks.append(asyncio.ensure_future(self._probe()))
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            with contextlib.suppress(Exception):
                await self.ex.close()

    def stop(self) -> None:
        """Cancel the watchers, close the exchange and join the thread (from the actor thread)."""
        self.running = False
        if self.thread.is_alive():

            def cancel() -> None:
                for task in self._tasks:
                    task.cancel()

            with contextlib.suppress(RuntimeError):  # loop already closed
                self.loop.call_soon_threadsafe(cancel)
            self.thread.join(_JOIN_TIMEOUT_S)

    # -- websockets ----------------------------------------------------------------------
    def _seen(self) -> None:
        self.last_ws_ns = time.monotonic_ns()
        self.connected = True

    def _lost(self) -> None:
        self.last_pong_ns = 0
        if self.connected:
            self.connected = False
            self.reconnects += 1

    async def _watch(self, symbol: str | None, kind: str) -> None:
        import ccxt

        ex = self.ex
        failures = 0
        while self.running:
            try:
                if kind == "trades":
                    assert symbol is not None
                    batch = [dict(t) for t in await ex.watch_trades(symbol)]
                    self._seen()
                    epoch = self.epoch()
                    if self._merged_epoch[symbol] != epoch:
                        # the first trades after a reconnect or a gap: what printed meanwhile comes from
                        # REST, merged in ahead of them (fetched after they arrived: nothing in between)
                        self._merged_epoch[symbol] = epoch
                        batch = await self._backfill(symbol, batch)
                    self._hand_trades(symbol, batch)
                elif kind == "book":
                    book = await ex.watch_order_book(symbol, book_limit(self.feed.exchange, self.feed.depth))
                    self._seen()
                    if symbol in self._resync:
                        self._resync.discard(symbol)
                        self.snapshots += 1
                    depth = self.feed.depth
                    self.out.put(
                        (
                            "book",
                            (
                                symbol,
                                [(float(p), float(q)) for p, q, *_ in book["bids"][:depth]],
                                [(float(p), float(q)) for p, q, *_ in book["asks"][:depth]],
                                int(book.get("nonce") or 0),
                                book.get("timestamp"),
                            ),
                        )
                    )
                else:
                    tickers = await ex.watch_bids_asks(self.feed.symbols)
                    self._seen()
                    self.out.put(("bids_asks", [dict(t) for t in tickers.values()]))
                failures = 0
            except asyncio.CancelledError:
                raise
            except ccxt.ChecksumError as e:
                # ccxt dropped the book; the next watch resubscribes and snapshots it afresh.
                self.gaps += 1
                if symbol is not None:
                    self._resync.add(symbol)
                self.out.put(("gap", f"{symbol}: {e}"))
            except Exception as e:  # any failure: back off and watch again
                if isinstance(e, ccxt.NetworkError):
                    self._lost()
                else:
                    self.out.put(("error", f"watch {kind} {symbol}: {type(e).__name__}: {e}"))
                delay = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**failures))
                failures += 1
                await asyncio.sleep(delay)

    def force_reconnect(self) -> None:
        """Drop every websocket (watchdog): pending watches fail with NetworkError and reconnect."""
        self.loop.call_soon_threadsafe(self._drop_clients)

    def _drop_clients(self) -> None:
        import ccxt

        self._lost()
        for client in list(self.ex.clients.values()):
            # ccxt's own error path: rejects every pending watch with this error, removes the client from
            # exchange.clients (so the next watch dials afresh) and closes the socket with 1006.
            client.on_error(ccxt.NetworkError("stale stream: reconnect forced by the feed watchdog"))

    # -- trades from REST ----------------------------------------------------------------
    def epoch(self) -> int:
        """Changes whenever the stream may have lost trades: a reconnect, a book gap, a lost message."""
        return self.reconnects + self.gaps + int(getattr(self.ex, "lost_messages", 0))

    def _hand_trades(self, symbol: str, trades: list[dict[str, Any]]) -> None:
        if not trades:
            return
        newest = max(int(t.get("timestamp") or 0) for t in trades)
        self.last_trade_ms[symbol] = max(self.last_trade_ms[symbol], newest)
        self.out.put(("trades", (symbol, trades)))

    async def _trades_since(self, symbol: str, limit: int) -> list[dict[str, Any]]:
        """REST trades from the newest one handed over (inclusive), oldest first, each marked ``sb_rest``."""
        import ccxt

        ex = self.ex
        since = self.last_trade_ms[symbol]
        # Binance's recent-trades endpoint (the one whose ids match the stream) takes no time filter
        # (ccxt would send startTime/endTime): ask for the latest ``limit``; the actor drops older ones.
        asked = None if self.feed.exchange in _LATEST_TRADES_ONLY else since
        try:
            trades = await ex.fetch_trades(symbol, asked, limit)
        except ccxt.ArgumentsRequired:  # Coinbase: a ``since`` needs an ``until``
            trades = await ex.fetch_trades(symbol, asked, limit, {"until": ex.milliseconds() + 60_000})
        self.rest_polls += 1
        out = [dict(t, sb_rest=True) for t in trades]
        if len(out) >= limit:  # a full page: more printed since ``since`` than one call returns
            self.out.put(("error", f"trades of {symbol} since {since} ms may be missing: more than {limit}"))
        return out

    async def _backfill(self, symbol: str, streamed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``streamed`` with the REST trades since the last one handed over merged in, in trade order."""
        try:
            rest = await self._trades_since(symbol, BACKFILL_LIMIT)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # REST down too: the stream goes on; what it missed stays missing
            self.out.put(("error", f"trade backfill {symbol}: {type(e).__name__}: {e}"))
            return streamed
        merged = {str(t.get("id")): t for t in rest}
        merged.update({str(t.get("id")): t for t in streamed})  # the stream's copy wins: not backfilled
        return sorted(
            merged.values(), key=lambda t: (int(t.get("timestamp") or 0), trade_id_int(t.get("id")))
        )

    # -- REST fallback -------------------------------------------------------------------
    def last_heard_ns(self) -> int:
        """Monotonic ns of the last sign of life of the stream: a data message or a pong (0: none).

        A pong counts only once data flowed since the last (re)connect: a connection that answers pings
        but lost its subscriptions (resubscribed while the server ignored us) is not alive for us.
        """
        return max(self.last_ws_ns, self.last_pong_ns if self.connected else 0)

    def ws_fresh(self) -> bool:
        """Whether the stream delivered data since it (re)connected and was heard within ``stale_after_s``."""
        heard = self.last_heard_ns()
        return self.connected and heard > 0 and time.monotonic_ns() - heard < self.feed.stale_after_s * 1e9

    async def _probe(self) -> None:
        """Ping quiet connections: a quiet market answers, a dead or silent stream does not."""
        period = self.feed.stale_after_s / 4
        while self.running:
            await asyncio.sleep(period)
            pongs = [c.lastPong for c in self.ex.clients.values() if c.lastPong]
            if pongs:  # ccxt records pongs in wall-clock ms; keep them as monotonic ns
                age_ns = (time.time_ns() // 1_000_000 - max(pongs)) * 1_000_000
                self.last_pong_ns = max(self.last_pong_ns, time.monotonic_ns() - age_ns)
            if time.monotonic_ns() - self.last_ws_ns < period * 1e9:
                continue  # data is flowing: no need to ask
            for client in list(self.ex.clients.values()):
                if client.closed():
                    continue
                with contextlib.suppress(Exception):  # a failing send shows up as a watch error
                    ping = getattr(self.ex, "ping", None)  # None on most exchanges
                    message = ping(client) if callable(ping) else None
                    if message:
                        await client.send(message)  # the exchange's text ping (Kraken); its pong handler
                    else:
                        await client.connection.ping()  # a protocol PING; ccxt records the PONG

    async def _poll_rest(self) -> None:
        ex = self.ex
        while self.running:
            await asyncio.sleep(self.feed.poll_interval_s)
            if self.ws_fresh():
                await self._prompt_backfill()
                continue
            for symbol in self.feed.symbols:
                try:
                    ticker = await ex.fetch_ticker(symbol)
                    self.rest_polls += 1
                    self.out.put(("rest_ticker", [dict(ticker)]))
                    if ex.has.get("fetchTrades"):
                        self._hand_trades(symbol, await self._trades_since(symbol, POLL_TRADES_LIMIT))
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # REST down too: try again next period
                    self.out.put(("error", f"rest poll {symbol}: {type(e).__name__}: {e}"))

    async def _prompt_backfill(self) -> None:
        """Once per reconnect or gap, as soon as the stream is back: a quiet symbol's missed trades do not
        wait for its next live trade. Complete up to the fetch; the merge with the first streamed batch
        later covers what printed before the trade subscription was live again.
        """
        if not self.ex.has.get("fetchTrades"):
            return
        epoch = self.epoch()
        for symbol in self.feed.symbols:
            if self._merged_epoch[symbol] == epoch or self._prompt_epoch[symbol] == epoch:
                continue
            try:
                self._hand_trades(symbol, await self._trades_since(symbol, BACKFILL_LIMIT))
                self._prompt_epoch[symbol] = epoch
            except asyncio.CancelledError:
                raise
            except Exception as e:  # REST down: again next period (and the merge with the stream)
                self.out.put(("error", f"trade backfill {symbol}: {type(e).__name__}: {e}"))


class CcxtFeed(Actor):
    """One ccxt venue's market data on the bus: Quote, TradeTick, OrderBook, FeedStatus (see module doc)."""

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        exchange: str,
        symbols: list[str],
        depth: int = 10,
        stale_after_s: float = 10.0,
        rest_url: str | None = None,
        ws_url: str | None = None,
        sandbox: bool = False,
        poll_interval_s: float = 1.0,
        keys: str = "",
    ) -> None:
        super().__init__(ctx)
        if not symbols:
            raise ValueError(f"feed {venue!r}: symbols must not be empty")
        if depth < 1:
            raise ValueError(f"feed {venue!r}: depth = {depth!r} must be at least 1")
        if not stale_after_s > 0:
            raise ValueError(f"feed {venue!r}: stale_after_s = {stale_after_s!r} must be positive")
        import ccxt.pro

        if exchange not in ccxt.pro.exchanges:
            raise ValueError(f"feed {venue!r}: exchange = {exchange!r} is not a ccxt.pro exchange")
        self.venue = venue
        self.exchange = exchange
        self.symbols = list(symbols)
        self.depth = depth
        self.stale_after_s = float(stale_after_s)
        self.rest_url = rest_url
        self.ws_url = ws_url
        self.sandbox = sandbox
        self.poll_interval_s = float(poll_interval_s)
        self.keys = keys  # the venue's keystore entry NAME: only names the shared rate budget
        self.stale = True  # no prices yet: nothing to trade on
        self.stale_periods = 0
        self.backfilled = 0  # trades published from REST rather than the stream
        self._started_ns = time.monotonic_ns()
        self._last_forced_ns = 0
        self._last_quote: dict[str, tuple[float, float, float, float]] = {}
        self._ticker_quotes: set[str] = set()  # symbols whose quotes come from the bids/asks stream
        self._recent: dict[str, tuple[set[int], collections.deque[int]]] = {}
        # Trades printed before this time are history (a REST poll returns the last 100): not ticks.
        self._last_trade_ns: dict[str, int] = {s: time.time_ns() - 1_000_000_000 for s in self.symbols}
        self._worker: _Worker | None = None
        self._last_error: Any = None

    def on_start(self) -> None:
        """Start the asyncio thread, the hand-over timer and the watchdog/status timer."""
        self._worker = _Worker(self)
        self._worker.thread.start()
        self.ctx.every(DRAIN_INTERVAL_S, self._drain)
        self.ctx.every(min(STATUS_INTERVAL_S, self.stale_after_s / 4), self._watchdog)
        self._publish_status()

    def on_stop(self) -> None:
        """Close the exchange, join the thread, and say the venue's prices are stale from now on."""
        if self._worker is not None:
            self._worker.stop()
        self.stale = True
        self._publish_status(connected=False)

    # -- actor thread ----------------------------------------------------------------------
    def _drain(self) -> None:
        worker = self._worker
        assert worker is not None
        out = worker.out
        while True:
            try:
                kind, item = out.get_nowait()
            except queue.Empty:
                break
            if kind == "trades":
                self._on_trades(*item)
            elif kind == "book":
                self._on_book(*item)
            elif kind in ("bids_asks", "rest_ticker"):
                for ticker in item:
                    self._on_ticker(ticker, streamed=kind == "bids_asks")
            elif kind == "rules":
                for rules in item:
                    self.ctx.publish(topic.market_rules(self.venue, rules.symbol), rules)
            elif kind == "fatal":
                raise RuntimeError(f"feed {self.venue!r} stopped: {item}")
            elif kind == "gap":
                self.ctx.log.warning("order book gap", extra={"event": "book_gap", "detail": item[:300]})
            elif item != self._last_error:  # a failure repeated every poll is logged once
                self._last_error = item
                self.ctx.log.warning("feed error", extra={"event": "feed_error", "detail": str(item)[:300]})
        if self.stale and worker.ws_fresh():
            self.stale = False
            self._publish_status()

    def _on_trades(self, symbol: str, trades: list[dict[str, Any]]) -> None:
        ids, order = self._recent.setdefault(symbol, (set(), collections.deque()))
        trade_topic = topic.trade(self.venue, symbol)
        for t in trades:
            if t.get("price") is None or t.get("amount") is None:
                continue
            tid = trade_id_int(t.get("id"))
            ts = t.get("timestamp")
            ts_ns = int(ts) * 1_000_000 if ts else time.time_ns()
            if tid in ids or ts_ns < self._last_trade_ns[symbol]:
                continue  # seen on the websocket and again by a REST poll, or older than what we published
            self._last_trade_ns[symbol] = ts_ns
            self.backfilled += bool(t.get("sb_rest"))
            ids.add(tid)
            order.append(tid)
            if len(order) > _RECENT_TRADES:
                ids.discard(order.popleft())
            self.ctx.publish(
                trade_topic,
                TradeTick(
                    venue=self.venue,
                    symbol=symbol,
                    price=float(t["price"]),
                    size=float(t["amount"]),
                    side="sell" if t.get("side") == "sell" else "buy",
                    trade_id=tid,
                    ts_ns=ts_ns,
                ),
            )

    def _on_book(
        self,
        symbol: str,
        bids: list[tuple[float, float]],
        asks: list[tuple[float, float]],
        seq: int,
        ts: int | None,
    ) -> None:
        ts_ns = int(ts) * 1_000_000 if ts else time.time_ns()
        self.ctx.publish(
            topic.book(self.venue, symbol),
            OrderBook(venue=self.venue, symbol=symbol, bids=bids, asks=asks, seq=seq, ts_ns=ts_ns),
        )
        if symbol not in self._ticker_quotes and bids and asks:
            self._quote(symbol, bids[0][0], bids[0][1], asks[0][0], asks[0][1], ts_ns)

    def _on_ticker(self, t: dict[str, Any], streamed: bool) -> None:
        symbol = t.get("symbol")
        if symbol not in self.symbols or t.get("bid") is None or t.get("ask") is None:
            return
        if streamed:  # from now on the stream's best bid/ask, not the book's top, makes the quotes
            self._ticker_quotes.add(symbol)
        ts = t.get("timestamp")
        self._quote(
            symbol,
            float(t["bid"]),
            float(t.get("bidVolume") or 0.0),
            float(t["ask"]),
            float(t.get("askVolume") or 0.0),
            int(ts) * 1_000_000 if ts else time.time_ns(),
        )

    def _quote(
        self, symbol: str, bid: float, bid_size: float, ask: float, ask_size: float, ts_ns: int
    ) -> None:
        top = (bid, bid_size, ask, ask_size)
        if self._last_quote.get(symbol) == top:
            return
        self._last_quote[symbol] = top
        self.ctx.publish(
            topic.quote(self.venue, symbol),
            Quote(
                venue=self.venue,
                symbol=symbol,
                bid=bid,
                bid_size=bid_size,
                ask=ask,
                ask_size=ask_size,
                ts_ns=ts_ns,
            ),
        )

    def _watchdog(self) -> None:
        """Mark the venue stale when the stream went quiet, force reconnects while it stays so."""
        worker = self._worker
        assert worker is not None
        now = time.monotonic_ns()
        stale_ns = self.stale_after_s * 1e9
        quiet_since = worker.last_heard_ns() or self._started_ns
        if now - quiet_since >= stale_ns:
            if not self.stale:
                self.stale = True
                self.stale_periods += 1
                self.ctx.log.warning("market data stale", extra={"event": "feed_stale", "venue": self.venue})
            if now - max(self._last_forced_ns, quiet_since) >= stale_ns:
                self._last_forced_ns = now
                worker.force_reconnect()
        self._publish_status()

    def _publish_status(self, connected: bool | None = None) -> None:
        worker = self._worker
        last = worker.last_ws_ns if worker else 0
        self.ctx.publish(
            topic.feed_status(self.venue),
            FeedStatus(
                venue=self.venue,
                connected=worker.connected if connected is None and worker else bool(connected),
                stale=self.stale,
                reconnects=worker.reconnects if worker else 0,
                gaps=worker.gaps if worker else 0,
                snapshots=worker.snapshots if worker else 0,
                stale_periods=self.stale_periods,
                rest_polls=worker.rest_polls if worker else 0,
                backfilled=self.backfilled,
                last_message_ns=time.time_ns() - (time.monotonic_ns() - last) if last else 0,
                ts_ns=time.time_ns(),
            ),
        )
