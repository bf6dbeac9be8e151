"""Social breakout: a price breakout taken only when the crowd is talking about the asset, and liking it.

Long when the close breaks above the highest high of the previous ``entry`` bars **and** the asset's
mention z-score (signal ``mentions_z``) is at least ``min_z`` **and** its sentiment (signal
``sentiment``, in [-1, 1]) is at least ``min_sentiment``; both signals no older than ``max_age_s`` at
the bar's close, over a ``window_s`` window (the sentiment aggregator's 300 s by default; 0: any), and
not stale. No signal, no entry: a breakout nobody mentions is not this strategy's trade. Out when
sentiment turns negative (a fresh reading below 0) or the close falls below its
``sma``-bar simple moving average. Long only.

It reads signals, so it backtests on the per-bar path with a signal file
(``sniperbot backtest --data btc.csv --strategy social_breakout --signals btc.signals.jsonl``, or
``btc.csv.signals.jsonl`` beside the candles) and trades live on the signals the node's analysers
publish (``sig.<subject>.sentiment.`` and ``sig.<subject>.mentions_z.``, e.g. from the sentiment
aggregator, or a ``signal_replay`` analyser).
"""

from __future__ import annotations

from collections import deque

from sniperbot.messages import Bar
from sniperbot.strategies.base import Param, Strategy


class SocialBreakout(Strategy):
    """Long on an ``entry``-bar breakout with a mention spike and positive sentiment; out on either fading."""

    name = "social_breakout"
    params = {
        "entry": Param(20, min=2, max=10_000, doc="bars in the breakout (highest high) window"),
        "sma": Param(20, min=2, max=10_000, doc="bars in the exit SMA of closes"),
        "min_z": Param(2.0, min=0.0, doc="mentions_z at least this (a spike in mentions)"),
        "min_sentiment": Param(0.2, min=-1.0, max=1.0, doc="sentiment at least this to enter"),
        "max_age_s": Param(900.0, min=0.0, doc="a signal older than this (at the bar's close) is none"),
        "source": Param("", doc="only this analyser's signals ('' = any analyser's newest)"),
        "window_s": Param(300.0, min=0.0, doc="the signals' window, seconds (0 = any window's newest)"),
    }
    signals = ("sentiment", "mentions_z")

    entry: int
    sma: int
    min_z: float
    min_sentiment: float
    max_age_s: float
    source: str
    window_s: float

    def setup(self) -> None:
        """The previous bars' highs, and the closes of the SMA window."""
        self._highs: deque[float] = deque(maxlen=self.entry)
        self._closes: deque[float] = deque(maxlen=self.sma)

    def decide(self, bar: Bar) -> float | None:
        """Enter on breakout + spike + positive sentiment; exit on negative sentiment or close < SMA."""
        close = bar.close
        self._closes.append(close)
        window = self.window_s or None
        sentiment = self.latest_signal("sentiment", self.source, self.max_age_s, window_s=window)
        target = None
        if self.exposure > 0:
            below_sma = len(self._closes) == self.sma and close < sum(self._closes) / self.sma
            if (sentiment is not None and sentiment.value < 0) or below_sma:
                target = 0.0
        elif len(self._highs) == self.entry and close > max(self._highs):
            mentions = self.latest_signal("mentions_z", self.source, self.max_age_s, window_s=window)
            if (
                mentions is not None
                and sentiment is not None
                and mentions.value >= self.min_z
                and sentiment.value >= self.min_sentiment
            ):
                target = 1.0
        self._highs.append(bar.high)
        return target
