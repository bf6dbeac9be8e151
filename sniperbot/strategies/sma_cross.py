"""Simple moving-average crossover: long when the fast SMA crosses above the slow one.

Signals are evaluated on bar closes. A cross is strict, the reference convention
the backtests are compared with other engines on: a golden cross at bar ``i`` is
``fast[i-1] < slow[i-1] and fast[i] > slow[i]`` (target +1), a death cross the mirror
image (target 0, or -1 in ``long-short`` mode). Bars where the averages are equal are
no cross on either side of it, so touching and parting again is not a cross.

SMAs are compared as computed, without a tolerance (the previous version ignored
differences below 1e-12 relative). A window of identical closes has its SMA
exactly equal to that close, so a flat market cannot fake a cross; a bounce whose
averages are equal only in exact arithmetic is decided by float rounding, the same
way in the backtester and live, since both paths compute bit-identical SMAs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sniperbot.indicators import Sma, sma
from sniperbot.messages import Bar
from sniperbot.strategies.base import MODE, Param, Strategy, cross_targets


class SmaCross(Strategy):
    """Fast/slow SMA crossover on bar closes."""

    name = "sma_cross"
    params = {
        "fast": Param(10, min=1, doc="bars in the fast SMA"),
        "slow": Param(30, min=2, doc="bars in the slow SMA"),
        "mode": MODE,
    }
    ordered = (("fast", "slow"),)

    fast: int
    slow: int
    mode: str

    def setup(self) -> None:
        """Streaming SMAs and the previous bar's values."""
        self._fast_sma = Sma(self.fast)
        self._slow_sma = Sma(self.slow)
        self._previous_fast = math.nan
        self._previous_slow = math.nan
        self._short = self.short_exposure

    def decide(self, bar: Bar) -> float | None:
        """+1 on a golden cross, the short exposure on a death cross, else no change."""
        close = bar.close
        fast = self._fast_sma.update(close)
        slow = self._slow_sma.update(close)
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
        """Exposure after every bar from the strict crosses of the two SMAs."""
        short = -1.0 if params["mode"] == "long-short" else 0.0
        return cross_targets(sma(close, params["fast"]), sma(close, params["slow"]), short)
