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

from sniperbot.indicators import Sma, sma
from sniperbot.strategies.base import MODE, Param
from sniperbot.strategies.ma_cross import MovingAverageCross


class SmaCross(MovingAverageCross):
    """Fast/slow SMA crossover on bar closes."""

    name = "sma_cross"
    params = {
        "fast": Param(10, min=1, doc="bars in the fast SMA"),
        "slow": Param(30, min=2, doc="bars in the slow SMA"),
        "mode": MODE,
    }
    ordered = (("fast", "slow"),)
    average = Sma
    averages = staticmethod(sma)
