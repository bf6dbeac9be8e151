"""A backtest's settings: costs, latency, brackets, sizing and risk limits, checked once.

:class:`BacktestConfig` holds everything but the data and the strategy. Its defaults are
the reference convention other engines are compared on: no slippage, no latency, the
fee charged on each fill's notional, 99.99 % of equity per position sized at the fill
(``sizer="fraction:0.9999"``, ``size_at="fill"``), an open position closed at the last
bar's close.

Sizers are named by a short spec, since each run needs a fresh (stateful) instance:

* ``fraction:F`` — :class:`~sniperbot.risk.sizing.FractionOfEquity` (F of equity);
* ``fixed:Q`` — :class:`~sniperbot.risk.sizing.FixedSize` (Q of the base asset);
* ``voltarget:VOL:LOOKBACK[:MAX_LEVERAGE]`` —
  :class:`~sniperbot.risk.sizing.VolatilityTarget`, annualised with the data's bar
  length (525,600 one-minute bars a year).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from sniperbot.risk.guard import RiskLimits
from sniperbot.risk.sizing import FixedSize, FractionOfEquity, PositionSizer, VolatilityTarget

__all__ = ["BacktestConfig", "make_sizer", "parse_sizer"]

SizeAt = Literal["fill", "signal"]
_NS_PER_YEAR = 365 * 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Costs, timing, brackets, sizing and risk limits of a backtest (all checked on creation).

    * ``fee_bps``: taker fee in basis points of each fill's notional; ``maker_fee_bps``
      (default: the same) applies to limit orders filled at their limit price.
    * ``slippage_bps``: taker fills (market orders, triggered stops) are that much
      worse than the reference price, against the taker.
    * ``latency_bars`` / ``latency_ns``: an order decided at a bar's close reaches the
      venue this much later; it can first fill on the first bar that opens at or after
      its arrival (``latency_bars=0, latency_ns=0``: the next bar's open).
    * ``stop_loss_pct`` / ``take_profit_pct``: brackets the venue keeps on every
      position, relative to its average entry price (None: none).
    * ``sizer``: sizer spec (module docstring). ``size_at="fill"`` sizes a market
      order that opens or flips a position again at its fill price, leaving room for
      the taker fee (what "99.99 % of equity at the next bar's open" means);
      ``"signal"`` fills exactly the quantity the strategy sized at the signal's close,
      as the live node does.
    * ``max_position`` / ``max_order_notional`` / ``max_orders_per_second``: the
      RiskGuard's limits (None: unlimited).
    * ``close_at_end``: close an open position at the last bar's close (taker fee, no
      slippage), so every trade is a closed round trip.
    """

    cash: float = 100_000.0
    fee_bps: float = 10.0
    maker_fee_bps: float | None = None
    slippage_bps: float = 0.0
    latency_bars: int = 0
    latency_ns: int = 0
    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None
    sizer: str = "fraction:0.9999"
    size_at: SizeAt = "fill"
    max_position: float | None = None
    max_order_notional: float | None = None
    max_orders_per_second: float | None = None
    close_at_end: bool = True
    venue: str = "backtest"
    strategy_id: str = "bt"

    def __post_init__(self) -> None:
        _finite("cash", self.cash, positive=True)
        _finite("fee_bps", self.fee_bps)
        if self.maker_fee_bps is not None:
            _finite("maker_fee_bps", self.maker_fee_bps)
        _finite("slippage_bps", self.slippage_bps)
        for name in ("latency_bars", "latency_ns"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("stop_loss_pct", "take_profit_pct"):
            value = getattr(self, name)
            if value is not None:
                _finite(name, value, positive=True)
        if self.stop_loss_pct is not None and self.stop_loss_pct >= 100:
            raise ValueError(f"stop_loss_pct must be below 100, got {self.stop_loss_pct!r}")
        for name in ("max_position", "max_order_notional", "max_orders_per_second"):
            value = getattr(self, name)
            if value is not None:
                _finite(name, value, positive=True)
        if self.size_at not in ("fill", "signal"):
            raise ValueError(f"size_at must be 'fill' or 'signal', got {self.size_at!r}")
        parse_sizer(self.sizer)

    @property
    def taker_fee(self) -> float:
        """Taker fee as a fraction of notional."""
        return self.fee_bps / 1e4

    @property
    def maker_fee(self) -> float:
        """Maker fee as a fraction of notional."""
        return (self.fee_bps if self.maker_fee_bps is None else self.maker_fee_bps) / 1e4

    @property
    def slippage(self) -> float:
        """Slippage as a fraction of the reference price."""
        return self.slippage_bps / 1e4

    @property
    def has_limits(self) -> bool:
        """Whether any RiskGuard limit is set (without one the guard approves every sane order)."""
        return any(
            v is not None for v in (self.max_position, self.max_order_notional, self.max_orders_per_second)
        )

    def risk_limits(self) -> RiskLimits:
        """The RiskGuard's limits (unset ones are infinite)."""
        return RiskLimits(
            max_order_notional=_or_inf(self.max_order_notional),
            max_position=_or_inf(self.max_position),
            max_orders_per_second=_or_inf(self.max_orders_per_second),
        )

    def with_changes(self, **changes: object) -> BacktestConfig:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else float(value)


def _finite(name: str, value: object, positive: bool = False) -> None:
    """ValueError naming ``name`` unless ``value`` is a finite (positive, or >= 0) number."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > 0 if positive else value >= 0):  # type: ignore[operator]
        return
    raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


def parse_sizer(spec: str) -> tuple[str, tuple[float, ...]]:
    """``"fraction:0.5"`` -> ``("fraction", (0.5,))``; ValueError naming the spec if malformed."""
    kind, _, rest = spec.partition(":")
    arity = {"fraction": (1, 1), "fixed": (1, 1), "voltarget": (2, 3)}
    if kind not in arity:
        raise ValueError(
            f"sizer {spec!r}: expected fraction:F, fixed:QTY or voltarget:VOL:LOOKBACK[:MAX_LEVERAGE]"
        )
    try:
        values = tuple(float(part) for part in rest.split(":")) if rest else ()
    except ValueError:
        raise ValueError(f"sizer {spec!r}: values must be numbers") from None
    low, high = arity[kind]
    if not low <= len(values) <= high or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"sizer {spec!r}: expected {low}-{high} positive numbers after {kind}:")
    if kind == "voltarget" and (not values[1].is_integer() or values[1] < 2):
        raise ValueError(f"sizer {spec!r}: the lookback must be a whole number of bars >= 2")
    return kind, values


def make_sizer(spec: str, bar_ns: int = 0) -> PositionSizer:
    """A fresh sizer for ``spec``; ``bar_ns`` (bar length) annualises volatility targets."""
    kind, values = parse_sizer(spec)
    if kind == "fraction":
        return FractionOfEquity(values[0])
    if kind == "fixed":
        return FixedSize(values[0])
    periods = _NS_PER_YEAR / bar_ns if bar_ns > 0 else 365.0
    leverage = values[2] if len(values) > 2 else 1.0
    return VolatilityTarget(values[0], int(values[1]), periods_per_year=periods, max_leverage=leverage)
