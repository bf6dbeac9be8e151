"""The file ``sniperbot new-strategy NAME`` writes: a documented strategy that backtests as written."""

from __future__ import annotations

TEMPLATE = '''"""{class_name}: a Donchian-channel breakout (a template: edit the decision, keep the shape).

Long when the close breaks above the highest high of the previous ``entry`` bars; out (or short,
with ``mode = "long-short"``) when it breaks below the lowest low of the previous ``exit`` bars.

Use it:
    sniperbot backtest --data candles.csv --strategy {reference} --param entry=20
    sniperbot optimize --data candles.csv --strategy {reference} --grid entry=10:40:5
    [[strategies]] strategy = "{reference}"     (in a node config)

The contract (``sniperbot.strategies.base``):
- ``params``: every parameter with its default (which fixes its type), range and meaning;
  ``ordered`` pairs must be strictly increasing (e.g. fast < slow).
- ``setup()``: build the streaming state once (parameters are attributes by then).
- ``decide(bar)``: after each closed bar, the target exposure (+1 long, 0 flat, -1 short) or None
  to keep the current one. It must only use this bar and earlier ones (``sniperbot
  check-lookahead`` proves it).
- ``decide_all(...)`` (optional): the same decisions for whole numpy arrays; the backtester's
  fast path. It must agree with ``decide`` bar for bar. Delete it and backtests take the
  per-bar path (slower, same result).
- ``warmup_bars()`` (optional): bars needed before the first decision (default: from params).
- Signals (optional: sentiment, mention counts, any analyser's readings): declare the kinds with
  ``signals = ("sentiment", "mentions_z")`` (about this strategy's subject, ``BTC`` for ``BTC/USDT``;
  other subjects in ``signal_subjects``) and read them in ``decide`` with
  ``self.latest_signal("sentiment", max_age_s=600)``: the newest reading that is not stale and at most
  that old at this bar's close, else None (then do not act on it). Live, the node feeds them from the
  bus; a backtest replays a signal file (``--signals FILE``, or ``<data>.signals.jsonl`` beside the
  candles). A strategy that reads signals takes the per-bar path (``decide_all`` cannot see them).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from sniperbot.strategies import MODE, Param, Strategy


class {class_name}(Strategy):
    """Donchian breakout: long above the ``entry``-bar high, out below the ``exit``-bar low."""

    name = "{name}"
    params = {{
        "entry": Param(20, min=2, max=1000, doc="bars in the breakout (highest high) window"),
        "exit": Param(10, min=2, max=1000, doc="bars in the exit (lowest low) window"),
        "mode": MODE,
    }}

    entry: int
    exit: int
    mode: str

    def setup(self) -> None:
        """The previous bars' highs and lows (the current bar is compared with them, then added)."""
        size = max(self.entry, self.exit)
        self._highs: deque[float] = deque(maxlen=size)
        self._lows: deque[float] = deque(maxlen=size)

    def decide(self, bar: Any) -> float | None:
        """+1 on a breakout above the channel, the short exposure below it, else no change."""
        highs, lows = self._highs, self._lows
        target = None
        if len(lows) >= self.exit and bar.close < min(list(lows)[-self.exit :]):
            target = self.short_exposure
        if len(highs) >= self.entry and bar.close > max(list(highs)[-self.entry :]):
            target = 1.0
        highs.append(bar.high)
        lows.append(bar.low)
        return target

    @classmethod
    def decide_all(
        cls,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        **params: Any,
    ) -> np.ndarray:
        """The same decisions for whole arrays: channels over the previous bars, then hold."""
        n = len(close)
        entry, exit_ = params["entry"], params["exit"]
        short = -1.0 if params["mode"] == "long-short" else 0.0
        upper = np.full(n, np.nan)
        lower = np.full(n, np.nan)
        if n > entry:
            upper[entry:] = np.lib.stride_tricks.sliding_window_view(high, entry).max(axis=1)[: n - entry]
        if n > exit_:
            lower[exit_:] = np.lib.stride_tricks.sliding_window_view(low, exit_).min(axis=1)[: n - exit_]
        signal = np.full(n, np.nan)
        signal[close < lower] = short
        signal[close > upper] = 1.0  # a bar that breaks both ways goes long, as decide() does
        last = np.where(np.isnan(signal), -1, np.arange(n))
        np.maximum.accumulate(last, out=last)
        return np.where(last >= 0, signal[np.maximum(last, 0)], 0.0)
'''
