"""RSI mean reversion: buy oversold, sell overbought, get out when RSI is back to neutral.

On each bar's close, with Wilder's RSI (TA-Lib's):

* RSI < ``oversold``: target +1 (enter long, or flip a short to long);
* RSI > ``overbought``: target -1 in ``long-short`` mode, 0 in ``long`` mode;
* a long is closed (target 0) once RSI > ``exit_level``, a short once RSI < ``exit_level``;
* otherwise the target is unchanged.

``oversold < exit_level < overbought``, so the four zones never overlap. RSI is 0 on a
perfectly flat window (TA-Lib's convention), which counts as oversold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sniperbot.indicators import Rsi, rsi
from sniperbot.messages import Bar
from sniperbot.strategies.base import MODE, Param, Strategy, step_zone, zone_targets


class RsiReversion(Strategy):
    """Fade RSI extremes; exit at the neutral level."""

    name = "rsi_reversion"
    params = {
        "period": Param(14, min=2, doc="bars in Wilder's RSI"),
        "oversold": Param(30.0, min=0.0, max=100.0, doc="buy below this RSI"),
        "exit_level": Param(50.0, min=0.0, max=100.0, doc="close a long above / a short below this RSI"),
        "overbought": Param(70.0, min=0.0, max=100.0, doc="sell (short, or flat) above this RSI"),
        "mode": MODE,
    }
    ordered = (("oversold", "exit_level"), ("exit_level", "overbought"))

    @classmethod
    def warmup_bars_for(cls, params: Mapping[str, object]) -> int:
        """Wilder's smoothing forgets its start slowly: 10 x ``period`` bars (weight below e^-10)."""
        return 10 * int(cls.validate_params(params)["period"]) + 1  # type: ignore[call-overload]

    period: int
    oversold: float
    exit_level: float
    overbought: float
    mode: str

    def setup(self) -> None:
        """The streaming RSI."""
        self._rsi = Rsi(self.period)
        self._short = self.short_exposure

    def decide(self, bar: Bar) -> float | None:
        """The zone machine's next state for this bar's RSI."""
        value = self._rsi.update(bar.close)
        if value != value:
            return None
        return step_zone(
            self.exposure,
            enter_long=value < self.oversold,
            exit_short=value < self.exit_level,
            exit_long=value > self.exit_level,
            enter_short=value > self.overbought,
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
        """Exposure after every bar from the RSI zones."""
        short = -1.0 if params["mode"] == "long-short" else 0.0
        value = rsi(close, params["period"])
        return zone_targets(
            enter_long=value < params["oversold"],
            exit_short=value < params["exit_level"],
            exit_long=value > params["exit_level"],
            enter_short=value > params["overbought"],
            short=short,
        )
