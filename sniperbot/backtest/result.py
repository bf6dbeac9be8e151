"""What a backtest returns: metrics, round trips, fills and the equity curve."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sniperbot.backtest.config import BacktestConfig
from sniperbot.backtest.ledger import Ledger, RoundTrips
from sniperbot.backtest.metrics import Metrics, compute_metrics

__all__ = ["BacktestResult", "FillLog", "build_result"]


@dataclass(frozen=True, slots=True)
class FillLog:
    """Every fill in order, as columns: bar index, time, signed quantity (buy > 0), price."""

    bar: np.ndarray
    time_ns: np.ndarray
    quantity: np.ndarray
    price: np.ndarray

    def __len__(self) -> int:
        return len(self.bar)


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """A finished backtest. The metrics are also attributes: ``result.sharpe``, ``result.trades``.

    ``trades`` is the number of closed round trips (as in the JSON output); the round
    trips themselves are ``round_trips``.
    """

    strategy: str
    params: dict[str, Any]
    path: str
    config: BacktestConfig
    metrics: Metrics
    round_trips: RoundTrips
    fills: FillLog
    time_ns: np.ndarray
    equity: np.ndarray
    position: np.ndarray
    elapsed_s: float
    rejected: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def trades(self) -> int:
        """Closed round trips."""
        return self.metrics.trades

    @property
    def final_equity(self) -> float:
        """Equity after the last bar (after closing an open position)."""
        return self.metrics.final_equity

    @property
    def total_return_pct(self) -> float:
        """Total return in percent."""
        return self.metrics.total_return_pct

    @property
    def max_drawdown_pct(self) -> float:
        """Deepest fall from a running peak, in percent (negative)."""
        return self.metrics.max_drawdown_pct

    @property
    def sharpe(self) -> float:
        """Sharpe ratio of daily returns, annualised with sqrt(365)."""
        return self.metrics.sharpe

    @property
    def sortino(self) -> float:
        """Sortino ratio of daily returns, annualised with sqrt(365)."""
        return self.metrics.sortino

    @property
    def win_rate_pct(self) -> float:
        """Winning round trips in percent of all."""
        return self.metrics.win_rate_pct

    @property
    def profit_factor(self) -> float:
        """Gross wins over gross losses."""
        return self.metrics.profit_factor

    @property
    def fees(self) -> float:
        """All fees paid."""
        return self.metrics.fees

    @property
    def bars(self) -> int:
        """Bars in the test."""
        return self.metrics.bars

    def to_dict(self, json_safe: bool = True) -> dict[str, Any]:
        """Metrics, ``elapsed_s``, strategy, parameters and path, one flat dict (JSON-safe by default)."""
        out: dict[str, Any] = {"strategy": self.strategy, "params": dict(self.params), "path": self.path}
        out.update(self.metrics.to_dict(json_safe=json_safe))
        out["elapsed_s"] = round(self.elapsed_s, 6)
        out["rejected_orders"] = self.rejected
        out.update(self.extra)
        return out


def build_result(
    ledger: Ledger,
    time_ns: np.ndarray,
    close: np.ndarray,
    *,
    strategy: str,
    params: dict[str, Any],
    path: str,
    config: BacktestConfig,
    started: float,
    clock: Any,
    rejected: int = 0,
) -> BacktestResult:
    """Equity curve and metrics from a ledger; ``elapsed_s`` runs from ``started`` (``clock()``)."""
    equity, position = ledger.curves(close)
    trades = ledger.trades
    metrics = compute_metrics(time_ns, equity, trades, position != 0.0, fees=ledger.fees, pnl=trades.pnl())
    fills = FillLog(
        np.asarray(ledger.fill_bar, dtype=np.int64),
        np.asarray(ledger.fill_time_ns, dtype=np.int64),
        np.asarray(ledger.fill_quantity, dtype=np.float64),
        np.asarray(ledger.fill_price, dtype=np.float64),
    )
    elapsed = clock() - started
    return BacktestResult(
        strategy=strategy,
        params=params,
        path=path,
        config=config,
        metrics=metrics,
        round_trips=trades,
        fills=fills,
        time_ns=time_ns,
        equity=equity,
        position=position,
        elapsed_s=elapsed if math.isfinite(elapsed) else 0.0,
        rejected=rejected,
    )
