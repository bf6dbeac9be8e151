"""MACD signal-line crossover: long when the MACD line crosses above its signal line.

MACD as TA-Lib computes it (``sniperbot.indicators.macd``); the cross is strict as in
``sma_cross``. Target +1 on the up-cross, 0 (or -1 in ``long-short`` mode) on the
down-cross. Nothing happens before the signal line exists (``slow + signal - 2`` bars).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sniperbot.indicators import Macd, macd
from sniperbot.messages import Bar
from sniperbot.strategies.base import MODE, Param, Strategy, cross_targets


class MacdCross(Strategy):
    """MACD line / signal line crossover on bar closes."""

    name = "macd"
    params = {
        "fast": Param(12, min=1, doc="bars in the fast EMA"),
        "slow": Param(26, min=2, doc="bars in the slow EMA"),
        "signal": Param(9, min=1, doc="bars in the signal-line EMA"),
        "mode": MODE,
    }
    ordered = (("fast", "slow"),)

    fast: int
    slow: int
    signal: int
    mode: str

    @classmethod
    def warmup_bars_for(cls, params: Mapping[str, object]) -> int:
        """EMAs forget their start slowly: 10 x ``slow`` bars (a start's weight below e^-20), + ``signal``."""
        values = cls.validate_params(params)
        return 10 * int(values["slow"]) + int(values["signal"]) + 1  # type: ignore[call-overload]

    def setup(self) -> None:
        """Streaming MACD and the previous bar's lines."""
        self._macd = Macd(self.fast, self.slow, self.signal)
        self._previous_line = math.nan
        self._previous_signal = math.nan
        self._short = self.short_exposure

    def decide(self, bar: Bar) -> float | None:
        """+1 when the MACD line crosses above its signal, the short exposure when below."""
        line, signal, _ = self._macd.update(bar.close)
        previous_line, previous_signal = self._previous_line, self._previous_signal
        self._previous_line, self._previous_signal = line, signal
        if previous_line < previous_signal and line > signal:
            return 1.0
        if previous_line > previous_signal and line < signal:
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
        """Exposure after every bar from the strict crosses of the MACD and signal lines."""
        short = -1.0 if params["mode"] == "long-short" else 0.0
        line, signal, _ = macd(close, params["fast"], params["slow"], params["signal"])
        return cross_targets(line, signal, short)
