"""The replay feed: a candle file through the real node, on the data's own clock.

Per candle ``k`` (open time ``T``, bar length ``L``) it publishes, in this order:

1. a ``Quote`` with bid = ask = the candle's **open** (sizes :data:`BOOK_SIZE`, so no order walks
   the book): the book the paper gateway fills a market order against is the open of the candle
   after the decision, plus the configured slippage, as in the backtester
   (:mod:`sniperbot.backtest.venue`);
2. four ``TradeTick`` at ``T``, ``T + L/4``, ``T + L/2``, ``T + 3L/4`` priced open, high, low, close
   (the first carries the candle's volume, the others none): a strategy's
   :class:`~sniperbot.market.bars.BarBuilder` rebuilds exactly that candle, and the first trade of
   candle ``k + 1`` closes it. The strategy therefore decides on candle ``k``'s close and its
   order fills at candle ``k + 1``'s open: the backtester's fill convention.

**Replay clock.** The bar clock follows the data, not the wall clock: at start the feed marks the
journal (``replay_key(venue, "clock")``, before any strategy starts: children start in order), and
strategy actors on this venue then close bars only by the next trade
(:class:`~sniperbot.actors.strategy.StrategyActor`). The last candle's bar is never closed (no
trade follows it); in the backtester a decision on the last bar cannot fill either.

**Flow control (decision): pace by acknowledgement, through the journal.** The bus drops messages
past its high-water mark, so "as fast as the node can take it" must never run ahead of the node.
Each paced strategy (``strategies``) writes an acknowledgement to the journal's state after each
bar and whenever an intent of its finishes (filled, rejected, cancelled: it has then seen the fill
too, which precedes the update from the same publisher). The feed publishes candle ``k + 1`` only
once every paced strategy has acknowledged bar ``k - 1`` (closed by candle ``k``) with nothing in
flight. At most one candle is on the bus at a time, so nothing reaches a high-water mark, and the
node's own processing speed sets the rate (``speed = 0``). ``speed = N`` also waits ``L / N`` of
wall time between candles (at most N x real time). Before the first candle the feed publishes the
first open as a quote until every paced strategy has seen two (the second cannot be the node's
last-value snapshot, so its subscription is live). A journal read (LMDB, shared memory) every
:data:`PUMP_S` costs far less than a round trip through the bus.

End of data: ``replay_key(venue, "done")`` holds ``{"candles", "elapsed_s", "bars_per_s"}``
(``sniperbot replay`` waits for it). A restarted feed resumes at the candle after the oldest
acknowledged bar (republishing the candle in progress: same prices, so the same bar).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.data import load_ohlcv
from sniperbot.market.bars import replay_key
from sniperbot.messages import Quote, TradeTick
from sniperbot.messages import topics as topic

#: Size on each side of the replayed book: larger than any order, so a fill never walks the book.
BOOK_SIZE = 1e12
#: How often the feed looks at the acknowledgements (seconds).
PUMP_S = 0.0002
#: How often a probe quote goes out before the first candle (seconds).
PROBE_S = 0.02
#: Before the first candle, how long to wait for the paced strategies before a warning (seconds).
WAIT_WARNING_S = 10.0
#: Probe quotes a strategy must have seen before the first candle (the first may be the snapshot).
PROBES_SEEN = 2


class ReplayFeed(Actor):
    """Publishes one candle file's quotes and trades on the replay clock; actor id ``feed.<venue>``."""

    def __init__(
        self, ctx: ActorContext, *, venue: str, symbol: str, data: str, speed: float, strategies: list[str]
    ) -> None:
        super().__init__(ctx)
        self.venue = venue
        self.symbol = symbol
        self.speed = speed
        self.strategies = list(strategies)
        bars = load_ohlcv(data, symbol=symbol)
        self.time_ns: list[int] = bars.time_ns.tolist()
        self.rows = list(
            zip(
                bars.open.tolist(),
                bars.high.tolist(),
                bars.low.tolist(),
                bars.close.tolist(),
                bars.volume.tolist(),
                strict=True,
            )
        )
        self.interval_ns = bars.timeframe_ns or 60_000_000_000
        self.quote_topic = topic.quote(venue, symbol)
        self.trade_topic = topic.trade(venue, symbol)
        self.next = 0  # the next candle to publish
        self.finished = False
        self._started = 0.0
        self._last_probe = 0.0
        self._due = 0.0
        self._warned = False

    def on_start(self) -> None:
        """Mark the replay clock in the journal (before strategies start), then pump."""
        journal = self.ctx.journal
        self.finished = journal.get_state(replay_key(self.venue, "done")) is not None
        acked = [self._ack(s) for s in self.strategies]
        if not self.finished and all(a is not None and a["bar"] >= 0 for a in acked):
            # A restart mid-replay: resume with the candle in progress of the slowest strategy.
            oldest = min(a["bar"] for a in acked if a is not None)
            self.next = next((k for k, t in enumerate(self.time_ns) if self._start(t) > oldest), 0)
        journal.put_state(
            replay_key(self.venue, "clock"),
            msgspec.json.encode({"symbol": self.symbol, "candles": len(self.time_ns), "speed": self.speed}),
        )
        self._started = time.perf_counter()
        self.ctx.every(PUMP_S, self._pump)

    def _start(self, ts_ns: int) -> int:
        """The bar a strategy builds from a trade at ``ts_ns`` starts here."""
        return ts_ns - ts_ns % self.interval_ns

    def _ack(self, strategy_id: str) -> dict[str, Any] | None:
        raw = self.ctx.journal.get_state(replay_key(self.venue, "ack", strategy_id))
        return None if raw is None else msgspec.json.decode(raw)

    def _caught_up(self) -> bool:
        """Whether every paced strategy has handled what the last published candle set off."""
        k = self.next
        if k == 0:
            acks = [self._ack(s) for s in self.strategies]
            return all(a is not None and (a["quotes"] >= PROBES_SEEN or a["bar"] >= 0) for a in acks)
        if k == 1:
            return True  # candle 0 closed no bar
        closed = self._start(self.time_ns[k - 2])
        for strategy_id in self.strategies:
            ack = self._ack(strategy_id)
            if ack is None or ack["bar"] < closed or ack["in_flight"]:
                return False
        return True

    def _pump(self) -> None:
        if self.finished:
            return
        now = time.perf_counter()
        if not self._caught_up():
            if self.next == 0 and now - self._last_probe >= PROBE_S:
                self._last_probe = now
                self._quote(0)
                if not self._warned and now - self._started > WAIT_WARNING_S:
                    # A paced id that is not a running strategy on this venue would wait forever.
                    self._warned = True
                    missing = [s for s in self.strategies if self._ack(s) is None]
                    self.ctx.log.warning(
                        "replay waits for strategies that have not started",
                        extra={"event": "replay_waiting", "strategies": missing},
                    )
            return
        if self.next >= len(self.time_ns):
            self._finish()
            return
        if self.speed > 0:
            if now < self._due:
                return
            self._due = now + self.interval_ns / 1e9 / self.speed
        if self.next == 0:
            self._started = now
        self._publish(self.next)
        self.next += 1

    def _quote(self, k: int) -> None:
        open_ = self.rows[k][0]
        self.ctx.publish(
            self.quote_topic,
            Quote(self.venue, self.symbol, open_, BOOK_SIZE, open_, BOOK_SIZE, self.time_ns[k]),
        )

    def _publish(self, k: int) -> None:
        """Candle ``k``: the book at its open, then its open, high, low and close as trades."""
        self._quote(k)
        start = self.time_ns[k]
        step = self.interval_ns // 4
        open_, high, low, close, volume = self.rows[k]
        previous = open_
        for j, (price, size) in enumerate(((open_, volume), (high, 0.0), (low, 0.0), (close, 0.0))):
            side = "buy" if price >= previous else "sell"
            previous = price
            tick = TradeTick(self.venue, self.symbol, price, size, side, 4 * k + j, start + j * step)
            self.ctx.publish(self.trade_topic, tick)

    def _finish(self) -> None:
        elapsed = time.perf_counter() - self._started
        candles = len(self.time_ns)
        self.ctx.journal.put_state(
            replay_key(self.venue, "done"),
            msgspec.json.encode(
                {
                    "candles": candles,
                    "elapsed_s": elapsed,
                    "bars_per_s": candles / elapsed if elapsed else 0.0,
                }
            ),
        )
        self.finished = True
        self.ctx.log.info("replay done", extra={"event": "replay_done", "candles": candles})
