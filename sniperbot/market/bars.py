"""Time bars built from trades.

Bars cover ``[start_ns, start_ns + interval)`` with ``start_ns`` a whole multiple of the
interval since the Unix epoch, so every builder with the same interval agrees on bar
boundaries. A bar exists only if at least one trade printed in its interval: an interval
with no trades produces **no bar** (not a flat bar carrying the previous close), so bar
counts measure activity and an SMA over N bars is an SMA over N traded intervals.

A bar is emitted once, when it is known to be complete: either a trade arrives for a
later interval (:meth:`BarBuilder.on_trade`) or the clock passes its end
(:meth:`BarBuilder.on_time`). A trade stamped before the open bar's interval (out of
order, or for a bar already published) is dropped and counted in
:attr:`BarBuilder.late_trades`.
"""

from __future__ import annotations

from sniperbot.messages import Bar, TradeTick


class BarBuilder:
    """Builds interval-aligned OHLCV bars for one symbol on one venue from its trades."""

    def __init__(self, venue: str, symbol: str, interval_s: float) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.venue = venue
        self.symbol = symbol
        self.interval_s = interval_s
        self._interval_ns = round(interval_s * 1e9)
        if self._interval_ns <= 0:
            raise ValueError(f"interval_s must be at least 1 ns, got {interval_s}")
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
        """Close the open bar if the clock has passed its end, even with no new trade."""
        if self._start_ns is None or ts_ns < self._start_ns + self._interval_ns:
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
