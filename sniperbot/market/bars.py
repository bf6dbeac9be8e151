"""Time bars built from trades.

Bars cover ``[start_ns, start_ns + interval)`` with ``start_ns`` a whole multiple of the
interval since the Unix epoch, so every builder with the same interval agrees on bar
boundaries. A bar exists only if at least one trade printed in its interval: an interval
with no trades produces **no bar** (not a flat bar carrying the previous close), so bar
counts measure activity and an SMA over N bars is an SMA over N traded intervals.

A bar is emitted once, when it is known to be complete: either a trade arrives for a
later interval (:meth:`BarBuilder.on_trade`) or the clock passes its end plus the builder's
``close_delay_s`` (:meth:`BarBuilder.on_time`). A trade stamped before the open bar's interval
(out of order, or for a bar already published) is dropped and counted in
:attr:`BarBuilder.late_trades`.

**Why a close delay.** A trade is stamped when it prints (by the exchange, or by the simulated
market) and reaches a strategy's process some milliseconds later. A bar closed by the clock the
instant its interval ends would drop a trade printed just before the end and still in flight,
and two strategies on the same market would then decide on different closes depending on when
their timers happen to fire (a restarted strategy's timer has a new phase). Live strategies
close on the clock :data:`LIVE_CLOSE_DELAY_S` after the end; a trade of the next interval still
closes a bar at once (delivery is in order), so in a traded market the delay costs nothing.
"""

from __future__ import annotations

from typing import Final

from sniperbot.messages import Bar, TradeTick

#: How long after its end a live strategy's bar is closed by the clock (see the module docstring):
#: longer than a trade's delivery from the feed, even on a loaded machine or from an exchange.
LIVE_CLOSE_DELAY_S: Final = 0.1


class BarBuilder:
    """Builds interval-aligned OHLCV bars for one symbol on one venue from its trades."""

    def __init__(self, venue: str, symbol: str, interval_s: float, close_delay_s: float = 0.0) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if not close_delay_s >= 0:
            raise ValueError(f"close_delay_s must be >= 0, got {close_delay_s}")
        self.venue = venue
        self.symbol = symbol
        self.interval_s = interval_s
        self._interval_ns = round(interval_s * 1e9)
        if self._interval_ns <= 0:
            raise ValueError(f"interval_s must be at least 1 ns, got {interval_s}")
        self._close_delay_ns = round(close_delay_s * 1e9)
        self._start_ns: int | None = None
        self._open = self._high = self._low = self._close = 0.0
        self._volume = 0.0
        self._trades = 0
        # Everything before this instant belongs to a bar already emitted (or skipped).
        self._closed_until_ns: int | None = None
        self.late_trades = 0

    def bar_start(self, ts_ns: int) -> int:
        """Start of the interval that contains ``ts_ns``."""
        return ts_ns - ts_ns % self._interval_ns

    def on_trade(self, tick: TradeTick) -> list[Bar]:
        """Add a trade; returns the bar it closed, if it falls in a later interval.

        Trades for another venue or symbol are ignored, so one feed can fan out to
        several builders.
        """
        if tick.venue != self.venue or tick.symbol != self.symbol:
            return []
        start = self.bar_start(tick.ts_ns)
        too_late_for_closed = self._closed_until_ns is not None and tick.ts_ns < self._closed_until_ns
        too_late_for_open = self._start_ns is not None and start < self._start_ns
        if too_late_for_closed or too_late_for_open:
            self.late_trades += 1
            return []
        closed: list[Bar] = []
        if self._start_ns is not None and start > self._start_ns:
            closed.append(self._close_bar())
        if self._start_ns is None:
            self._start_ns = start
            self._open = self._high = self._low = tick.price
            self._volume = 0.0
            self._trades = 0
        self._high = max(self._high, tick.price)
        self._low = min(self._low, tick.price)
        self._close = tick.price
        self._volume += tick.size
        self._trades += 1
        return closed

    def on_time(self, ts_ns: int) -> list[Bar]:
        """Close the open bar once the clock is past its end plus the close delay, even with no new trade."""
        if self._start_ns is None or ts_ns < self._start_ns + self._interval_ns + self._close_delay_ns:
            return []
        return [self._close_bar()]

    def resume_after(self, bar: Bar) -> None:
        """Continue after ``bar`` (the last one a restarted strategy was warmed with): its
        interval and every earlier one are done, so a replayed old trade cannot rebuild them."""
        end = bar.start_ns + self._interval_ns
        if self._closed_until_ns is None or end > self._closed_until_ns:
            self._closed_until_ns = end

    def _close_bar(self) -> Bar:
        """Emit the open bar and remember that its interval is done."""
        assert self._start_ns is not None
        bar = Bar(
            venue=self.venue,
            symbol=self.symbol,
            interval_s=self.interval_s,
            start_ns=self._start_ns,
            open=self._open,
            high=self._high,
            low=self._low,
            close=self._close,
            volume=self._volume,
            trades=self._trades,
        )
        self._closed_until_ns = self._start_ns + self._interval_ns
        self._start_ns = None
        return bar


# -- the replay clock ---------------------------------------------------------------------------
# A replay venue (sniperbot.venues.replay) feeds historical candles through the node. Its bars must
# follow the data's clock, not the wall clock: a 2024 bar would be closed by ``on_time(now)`` right
# after its first trade. The replay feed says so in the journal's state before any strategy starts
# (``replay_key(venue, "clock")``); a strategy actor on that venue then closes bars only by the next
# trade (``on_trade``), never on time, and acknowledges each bar (``replay_key(venue, "ack", id)``)
# so that the feed can pace on it. One home for these keys: here, next to the bar clock.

#: Journal state prefix of everything the replay clock writes.
REPLAY_PREFIX = "replay/"


def replay_key(venue: str, *parts: str) -> str:
    """Journal state key of the replay clock of ``venue``: ``replay/<venue>/<part>/...``."""
    return "/".join((REPLAY_PREFIX + venue, *parts))
