"""Exponential moving-average crossover: long when the fast EMA crosses above the slow one.

The same strict cross rule as ``sma_cross`` (``fast[i-1] < slow[i-1] and fast[i] >
slow[i]``), on TA-Lib EMAs (each seeded with the SMA of its own first ``period``
closes). Target +1 on the up-cross, 0 (or -1 in ``long-short`` mode) on the down-cross.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sniperbot.indicators import Ema, ema
from sniperbot.messages import Bar
from sniperbot.strategies.base import MODE, Param, Strategy, cross_targets


class EmaCross(Strategy):
    """Fast/slow EMA crossover on bar closes."""

    name = "ema_cross"
    params = {
        "fast": Param(12, min=1, doc="bars in the fast EMA"),
        "slow": Param(26, min=2, doc="bars in the slow EMA"),
        "mode": MODE,
    }
    ordered = (("fast", "slow"),)

    fast: int
    slow: int
    mode: str

    def setup(self) -> None:
        """Streaming EMAs and the previous bar's values."""
        self._fast_ema = Ema(self.fast)
        self._slow_ema = Ema(self.slow)
        self._previous_fast = math.nan
        self._previous_slow = math.nan
        self._short = self.short_exposure

    def decide(self, bar: Bar) -> float | None:
        """+1 when the fast EMA crosses above, the short exposure when it crosses below."""
        close = bar.close
        fast = self._fast_ema.update(close)
        slow = self._slow_ema.update(close)
        previous_fast, previous_slow = self._previous_fast, self._previous_slow
        self._previous_fast, self._previous_slow = fast, slow
        if previous_fast < previous_slow and fast > slow:
            return 1.0
        if previous_fast > previous_slow and fast < slow:
            return self._short
        return None

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
        """Exposure after every bar from the strict crosses of the two EMAs."""
        short = -1.0 if params["mode"] == "long-short" else 0.0
        return cross_targets(ema(close, params["fast"]), ema(close, params["slow"]), short)
