"""Exponential moving-average crossover: long when the fast EMA crosses above the slow one.

The same strict cross rule as ``sma_cross`` (``fast[i-1] < slow[i-1] and fast[i] >
slow[i]``), on TA-Lib EMAs (each seeded with the SMA of its own first ``period``
closes). Target +1 on the up-cross, 0 (or -1 in ``long-short`` mode) on the down-cross.
"""

from __future__ import annotations

from collections.abc import Mapping

from sniperbot.indicators import Ema, ema
from sniperbot.strategies.base import MODE, Param
from sniperbot.strategies.ma_cross import MovingAverageCross


class EmaCross(MovingAverageCross):
    """Fast/slow EMA crossover on bar closes."""

    name = "ema_cross"
    params = {
        "fast": Param(12, min=1, doc="bars in the fast EMA"),
        "slow": Param(26, min=2, doc="bars in the slow EMA"),
        "mode": MODE,
    }
    ordered = (("fast", "slow"),)
    average = Ema
    averages = staticmethod(ema)

    @classmethod
    def warmup_bars_for(cls, params: Mapping[str, object]) -> int:
        """EMAs forget their start slowly: 10 x ``slow`` bars (a start's weight below e^-20)."""
        return 10 * int(cls.validate_params(params)["slow"]) + 1  # type: ignore[call-overload]
