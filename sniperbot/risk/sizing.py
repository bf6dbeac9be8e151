"""Position sizers: how much of the base asset a full (exposure 1) position is.

A strategy decides a target exposure in {-1, 0, +1}; its sizer turns that into a
quantity: ``exposure * sizer.quantity(price, equity)``. The same sizer objects run in
the live node and in the backtester.

* :class:`FixedSize` — always ``quantity`` of the base asset (the live node's default).
* :class:`FractionOfEquity` — ``fraction * equity / price``.
* :class:`VolatilityTarget` — the fraction of equity that would have run at
  ``target_vol`` annualised volatility over the last ``lookback`` bars:
  ``min(target_vol / realised_vol, max_leverage) * equity / price``.

Sizers that look at prices (:class:`VolatilityTarget`) are fed every bar close with
``update``; give each strategy its own sizer instance. ``quantities`` is the
vectorised form for backtests: element ``i`` is what ``quantity(price[i], equity[i])``
returns after ``update`` has seen ``close[0..i]``.
"""

from __future__ import annotations

import math

import numpy as np

from sniperbot.indicators import RollingVolatility, rolling_volatility

__all__ = ["FixedSize", "FractionOfEquity", "PositionSizer", "VolatilityTarget"]


def _positive(name: str, value: float) -> float:
    """``value`` as a float if it is a positive finite number, else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_price(price: float) -> None:
    """A price that cannot value an order is a bug upstream, not a reason to trade zero."""
    if not (0 < price < math.inf):
        raise ValueError(f"price must be a positive number, got {price!r}")


class PositionSizer:
    """Base of the sizers: the quantity of a full position, from price, equity and history."""

    #: Whether ``update`` must be fed bar closes (False: it is a no-op).
    uses_prices: bool = False

    def update(self, close: float) -> None:
        """Take note of a bar's close (only volatility-aware sizers need it)."""

    def quantity(self, price: float, equity: float | None = None) -> float:
        """Base-asset quantity of a full (exposure 1) position at ``price``."""
        raise NotImplementedError

    def quantities(
        self,
        close: np.ndarray,
        equity: np.ndarray | float | None = None,
        price: np.ndarray | None = None,
    ) -> np.ndarray:
        """Vectorised ``quantity`` for every bar (``price`` defaults to ``close``)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget any price history (a new backtest run)."""


class FixedSize(PositionSizer):
    """A fixed quantity of the base asset, whatever the price or equity."""

    def __init__(self, quantity: float) -> None:
        self.size = _positive("quantity", quantity)

    def __repr__(self) -> str:
        return f"FixedSize({self.size!r})"

    def quantity(self, price: float, equity: float | None = None) -> float:
        """Always the configured quantity."""
        return self.size

    def quantities(
        self,
        close: np.ndarray,
        equity: np.ndarray | float | None = None,
        price: np.ndarray | None = None,
    ) -> np.ndarray:
        """The configured quantity on every bar."""
        return np.full(len(close), self.size)


def _needs_equity(name: str, equity: float | None) -> float:
    """Equity as a float; sizing off equity without knowing it must fail loudly."""
    if equity is None or not math.isfinite(equity):
        raise ValueError(f"{name} needs the account equity, got {equity!r}")
    return float(equity)


def _equity_quantities(
    name: str,
    fraction: float | np.ndarray,
    close: np.ndarray,
    equity: np.ndarray | float | None,
    price: np.ndarray | None,
) -> np.ndarray:
    """``fraction * equity / price`` on every bar (price defaults to the close); 0 without equity."""
    if equity is None:
        raise ValueError(f"{name} needs the account equity")
    at = np.asarray(close if price is None else price, dtype=np.float64)
    cash = np.broadcast_to(np.asarray(equity, dtype=np.float64), at.shape)
    return np.where(cash > 0, fraction * cash / at, 0.0)


class FractionOfEquity(PositionSizer):
    """``fraction`` of current equity, in base asset at the order's price (0 once equity is gone)."""

    def __init__(self, fraction: float) -> None:
        self.fraction = _positive("fraction", fraction)

    def __repr__(self) -> str:
        return f"FractionOfEquity({self.fraction!r})"

    def quantity(self, price: float, equity: float | None = None) -> float:
        """``fraction * equity / price``; 0 when equity is not positive."""
        _check_price(price)
        equity = _needs_equity("FractionOfEquity", equity)
        return self.fraction * equity / price if equity > 0 else 0.0

    def quantities(
        self,
        close: np.ndarray,
        equity: np.ndarray | float | None = None,
        price: np.ndarray | None = None,
    ) -> np.ndarray:
        """``fraction * equity / price`` on every bar."""
        return _equity_quantities("FractionOfEquity", self.fraction, close, equity, price)


class VolatilityTarget(PositionSizer):
    """Size so the position would have run at ``target_vol`` (annualised) over the last ``lookback`` bars.

    Realised volatility is the sample standard deviation of the last ``lookback`` log
    returns of the bar closes, times ``sqrt(periods_per_year)`` (365 for daily
    crypto bars, 525600 for minute bars). The fraction of equity is capped at
    ``max_leverage`` (also used when the market did not move at all); until
    ``lookback`` returns are known the quantity is 0, so nothing is bought blind.
    """

    uses_prices = True

    def __init__(
        self,
        target_vol: float,
        lookback: int,
        periods_per_year: float = 365.0,
        max_leverage: float = 1.0,
    ) -> None:
        self.target_vol = _positive("target_vol", target_vol)
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 2:
            raise ValueError(f"lookback must be an integer >= 2, got {lookback!r}")
        self.lookback = lookback
        self.periods_per_year = _positive("periods_per_year", periods_per_year)
        self.max_leverage = _positive("max_leverage", max_leverage)
        self._volatility = RollingVolatility(lookback)

    def __repr__(self) -> str:
        return (
            f"VolatilityTarget({self.target_vol!r}, {self.lookback!r}, "
            f"periods_per_year={self.periods_per_year!r}, max_leverage={self.max_leverage!r})"
        )

    def update(self, close: float) -> None:
        """Feed a bar close into the realised-volatility window."""
        self._volatility.update(close)

    def reset(self) -> None:
        """Forget the price history."""
        self._volatility = RollingVolatility(self.lookback)

    @property
    def leverage(self) -> float:
        """Fraction of equity a full position takes now (0 during warm-up)."""
        return float(self._leverage(np.array([self._volatility.value]))[0])

    def _leverage(self, per_bar_vol: np.ndarray) -> np.ndarray:
        """Fraction of equity from per-bar volatility: capped, 0 where volatility is unknown."""
        annual = per_bar_vol * math.sqrt(self.periods_per_year)
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.minimum(self.target_vol / annual, self.max_leverage)
        return np.where(np.isnan(annual), 0.0, fraction)

    def quantity(self, price: float, equity: float | None = None) -> float:
        """``leverage * equity / price``; 0 during warm-up or when equity is not positive."""
        _check_price(price)
        equity = _needs_equity("VolatilityTarget", equity)
        return self.leverage * equity / price if equity > 0 else 0.0

    def quantities(
        self,
        close: np.ndarray,
        equity: np.ndarray | float | None = None,
        price: np.ndarray | None = None,
    ) -> np.ndarray:
        """``leverage * equity / price`` on every bar, volatility from ``close`` up to that bar."""
        close = np.asarray(close, dtype=np.float64)
        fraction = self._leverage(rolling_volatility(close, self.lookback))
        return _equity_quantities("VolatilityTarget", fraction, close, equity, price)
