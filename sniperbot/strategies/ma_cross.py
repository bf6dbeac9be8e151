"""Moving-average crossover, the shape shared by ``sma_cross`` and ``ema_cross``.

A cross is strict: an up-cross at bar ``i`` is ``fast[i-1] < slow[i-1] and
fast[i] > slow[i]`` (target +1), a down-cross the mirror image (target 0, or -1
in ``long-short`` mode). A subclass names its average: a streaming class for the
per-bar path and the matching vectorised function, which compute bit-identical
values, so both backtest paths and the live actor take the same trades.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from sniperbot.messages import Bar
from sniperbot.strategies.base import Strategy, cross_targets


class MovingAverageCross(Strategy):
    """Fast/slow moving-average crossover on bar closes (abstract: set the averages)."""

    average: ClassVar[Callable[[int], Any]]  # streaming: average(period).update(close)
    averages: ClassVar[Callable[[np.ndarray, int], np.ndarray]]  # vectorised

    fast: int
    slow: int
    mode: str

    def setup(self) -> None:
        """Streaming averages and the previous bar's values."""
        self._fast_average = type(self).average(self.fast)
        self._slow_average = type(self).average(self.slow)
        self._previous_fast = math.nan
        self._previous_slow = math.nan
        self._short = self.short_exposure

    def decide(self, bar: Bar) -> float | None:
        """+1 on an up-cross, the short exposure on a down-cross, else no change."""
        close = bar.close
        fast = self._fast_average.update(close)
        slow = self._slow_average.update(close)
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
        """Exposure after every bar from the strict crosses of the two averages."""
        short = -1.0 if params["mode"] == "long-short" else 0.0
        averages = cls.averages
        return cross_targets(averages(close, params["fast"]), averages(close, params["slow"]), short)
