"""Bollinger breakout: go with a close outside the bands, get out at the middle band.

On each bar's close, with TA-Lib's Bollinger bands (SMA ± ``k`` population standard
deviations over ``period`` closes):

* close > upper band: target +1 (enter long, or flip a short to long);
* close < lower band: target -1 in ``long-short`` mode, 0 in ``long`` mode;
* a long is closed (target 0) once the close is below the middle band, a short once
  it is above;
* otherwise the target is unchanged.

All comparisons are strict, so a close exactly on a band does nothing. On a flat
market the bands collapse exactly onto the close, so nothing fires.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sniperbot.indicators import Bollinger, bollinger
from sniperbot.messages import Bar
from sniperbot.strategies.base import MODE, Param, Strategy, step_zone, zone_targets


class BollingerBreakout(Strategy):
    """Trade closes outside the Bollinger bands; exit at the middle band."""

    name = "bollinger_breakout"
    params = {
        "period": Param(20, min=2, doc="bars in the bands' SMA and standard deviation"),
        "k": Param(2.0, min=0.0, doc="band width in standard deviations"),
        "mode": MODE,
    }

    period: int
    k: float
    mode: str

    def setup(self) -> None:
        """The streaming bands."""
        self._bands = Bollinger(self.period, self.k)
        self._short = self.short_exposure

    def decide(self, bar: Bar) -> float | None:
        """The entry/exit machine's next state for this close against the bands."""
        close = bar.close
        upper, middle, lower = self._bands.update(close)
        if middle != middle:
            return None
        return step_zone(
            self.exposure,
            enter_long=close > upper,
            exit_short=close > middle,
            exit_long=close < middle,
            enter_short=close < lower,
            short=self._short,
        )

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
        """Exposure after every bar from the closes against the bands."""
        short = -1.0 if params["mode"] == "long-short" else 0.0
        upper, middle, lower = bollinger(close, params["period"], params["k"])
        return zone_targets(
            enter_long=close > upper,
            exit_short=close > middle,
            exit_long=close < middle,
            enter_short=close < lower,
            short=short,
        )
