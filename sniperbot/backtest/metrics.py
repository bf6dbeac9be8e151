"""Performance metrics of a backtest, and their definitions.

Inputs
------
* The **equity curve**: ``time_ns`` (int64, increasing, one entry per bar) and ``equity``
  (float64, the account's value in the quote currency at that bar, open positions marked
  to market). ``E_0`` is its first value (the starting capital), ``E_T`` its last.
* The **closed trades** (round trips): entry and exit time and price, quantity, side,
  ``pnl`` (net: after both fills' fees) and ``fees`` (see :class:`Trade`; any object with
  those attributes will do).
* ``in_position``: one boolean per bar, True while a position is open during that bar.
  When not given it is derived from the trades: a bar is in position if a trade's
  ``entry_time_ns <= bar time < exit_time_ns``.

Definitions
-----------
Returns and risk:

* ``total_return_pct`` = (E_T / E_0 - 1) x 100.
* ``cagr_pct`` = ((E_T / E_0) ^ (1 / years) - 1) x 100, with years = (t_T - t_0) / 365
  days (crypto trades every day, so a year is 365 days, as in the sqrt(365) below);
  -100 if the account is wiped out (E_T <= 0), NaN over a zero span.
* **Daily returns**: the equity is resampled to UTC calendar days, keeping each day's
  last value D_d. Days without any bar carry the previous day's value (a 0 % return: the
  position was still held). r_d = D_d / D_(d-1) - 1, with D_(-1) = E_0, so the first day
  counts from the start of the test. N is the number of days.
* ``volatility_pct`` (annualised) = stdev(r, ddof=1) x sqrt(365) x 100.
* ``sharpe`` = mean(r) / stdev(r, ddof=1) x sqrt(365). Risk-free rate 0. NaN when the
  returns have no spread or N < 2.
* ``sortino`` = mean(r) / DD x sqrt(365), where DD, the **downside deviation**, is
  sqrt((1/N) x sum over all N days of min(r_d, 0)^2): the root mean square of the
  shortfalls below a target return of 0, every day counted (a gaining day contributes 0,
  it is not dropped). +inf when no day lost and the mean is positive; NaN if N < 2.
* ``max_drawdown_pct`` = min over t of (E_t / max_(s<=t) E_s - 1) x 100: the deepest fall
  from a running peak, a negative number (0 if equity never fell).
* ``max_drawdown_duration_ns`` / ``_days``: the **longest** peak-to-recovery time of any
  drawdown (not necessarily the deepest one): from the bar of a peak to the first later
  bar whose equity is back at or above it. A drawdown not recovered by the last bar lasts
  until the last bar.
* ``calmar`` = (cagr_pct / 100) / |max_drawdown_pct / 100|; NaN without a drawdown.

Trades:

* ``trades``: number of closed round trips.
* ``win_rate_pct`` = 100 x (trades with pnl > 0) / trades; a break-even trade is not a
  win. NaN without trades.
* ``profit_factor`` = (sum of winning pnl) / |sum of losing pnl|; +inf if there are wins
  and no losses, NaN if neither.
* ``expectancy``: mean pnl per trade, in the quote currency, after fees.
* ``exposure_pct`` = 100 x (bars in position) / bars.
* ``fees``: sum of the trades' fees, unless the engine passes its own total (which then
  also counts fills of a position still open).

:meth:`Metrics.to_dict` gives these under the names above (plus ``bars``, ``start_ns``,
``end_ns``, ``days``, ``initial_equity``, ``final_equity``); with ``json_safe=True``
non-finite values become ``None`` since JSON has no NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import numpy as np

NS_PER_DAY = 86_400 * 1_000_000_000
DAYS_PER_YEAR = 365
Side = Literal["long", "short"]


class TradeLike(Protocol):
    """What the metrics need of a closed trade (engines may use their own classes)."""

    entry_time_ns: int
    exit_time_ns: int
    entry_price: float
    exit_price: float
    quantity: float
    side: str
    pnl: float
    fees: float


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed round trip. ``pnl`` is net of ``fees`` (both fills); ``quantity`` > 0."""

    entry_time_ns: int
    exit_time_ns: int
    entry_price: float
    exit_price: float
    quantity: float
    side: Side
    pnl: float
    fees: float

    @property
    def return_pct(self) -> float:
        """Net pnl as a percentage of the entry notional."""
        notional = self.entry_price * self.quantity
        return self.pnl / notional * 100 if notional else math.nan


@dataclass(frozen=True, slots=True)
class Metrics:
    """A backtest's figures; see the module docstring for each definition."""

    bars: int
    start_ns: int
    end_ns: int
    days: int
    initial_equity: float
    final_equity: float
    total_return_pct: float
    cagr_pct: float
    volatility_pct: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown_pct: float
    max_drawdown_duration_ns: int
    max_drawdown_duration_days: float
    trades: int
    win_rate_pct: float
    profit_factor: float
    expectancy: float
    exposure_pct: float
    fees: float

    def to_dict(self, json_safe: bool = False) -> dict[str, float | int | None]:
        """The metrics by name; ``json_safe`` turns NaN and infinities into None."""
        out: dict[str, float | int | None] = asdict(self)
        if json_safe:
            for key, value in out.items():
                if isinstance(value, float) and not math.isfinite(value):
                    out[key] = None
        return out


def daily_returns(time_ns: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """Returns of the equity's last value per UTC day, days without bars carried forward."""
    if len(equity) == 0:
        return np.empty(0)
    day = np.floor_divide(time_ns, NS_PER_DAY)
    last_of_day = np.append(np.flatnonzero(np.diff(day)), len(day) - 1)
    day_ids = day[last_of_day]
    values = equity[last_of_day]
    all_days = np.arange(day_ids[0], day_ids[-1] + 1)
    closes = values[np.searchsorted(day_ids, all_days, side="right") - 1]
    previous = np.concatenate(([equity[0]], closes[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return closes / previous - 1.0


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Fall from the running peak at each bar, as a fraction (0 at a peak, negative below)."""
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, equity / peak - 1.0, 0.0)


def max_drawdown_duration_ns(time_ns: np.ndarray, equity: np.ndarray) -> int:
    """Longest time from a peak to the first bar back at or above it (or to the last bar)."""
    underwater = equity < np.maximum.accumulate(equity)
    if not underwater.any():
        return 0
    change = np.diff(underwater.astype(np.int8))
    starts = np.flatnonzero(change == 1) + 1  # first bar under water; the bar before is the peak
    ends = np.flatnonzero(change == -1) + 1  # first bar back at the peak
    if underwater[-1]:
        ends = np.append(ends, len(equity) - 1)
    return int(np.max(time_ns[ends] - time_ns[starts - 1]))


def in_position_from_trades(time_ns: np.ndarray, trades: Sequence[TradeLike]) -> np.ndarray:
    """Bars inside some trade's ``[entry_time_ns, exit_time_ns)``."""
    marks = np.zeros(len(time_ns) + 1, dtype=np.int64)
    if trades:
        entries = np.array([t.entry_time_ns for t in trades], dtype=np.int64)
        exits = np.array([t.exit_time_ns for t in trades], dtype=np.int64)
        np.add.at(marks, np.searchsorted(time_ns, entries, "left"), 1)
        np.add.at(marks, np.searchsorted(time_ns, exits, "left"), -1)
    return np.cumsum(marks[:-1]) > 0


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0 or not math.isfinite(denominator):
        if numerator > 0 and denominator == 0:
            return math.inf
        return math.nan
    return numerator / denominator


def compute_metrics(
    time_ns: np.ndarray,
    equity: np.ndarray,
    trades: Sequence[TradeLike],
    in_position: np.ndarray | None = None,
    *,
    fees: float | None = None,
    pnl: Sequence[float] | np.ndarray | None = None,
) -> Metrics:
    """All metrics of one backtest (definitions in the module docstring).

    ``pnl``, the trades' pnl in order, saves reading it from each trade object (engines
    that keep their trades as columns pass it).
    """
    time_ns = np.asarray(time_ns, dtype=np.int64)
    equity = np.asarray(equity, dtype=np.float64)
    if len(time_ns) != len(equity) or len(equity) == 0:
        raise ValueError(f"need one equity value per bar: {len(time_ns)} times, {len(equity)} values")
    if in_position is None:
        in_position = in_position_from_trades(time_ns, trades)
    elif len(in_position) != len(equity):
        raise ValueError(f"in_position has {len(in_position)} values for {len(equity)} bars")

    e0, et = float(equity[0]), float(equity[-1])
    growth = et / e0 if e0 else math.nan
    years = (int(time_ns[-1]) - int(time_ns[0])) / NS_PER_DAY / DAYS_PER_YEAR
    if et <= 0:
        cagr = -100.0
    elif years > 0 and math.isfinite(growth):
        cagr = (growth ** (1 / years) - 1) * 100
    else:
        cagr = math.nan

    returns = daily_returns(time_ns, equity)
    annual = math.sqrt(DAYS_PER_YEAR)
    if len(returns) >= 2 and np.all(np.isfinite(returns)):
        mean = float(returns.mean())
        std = float(returns.std(ddof=1))
        downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
        volatility = std * annual * 100
        sharpe = mean / std * annual if std > 0 else math.nan
        sortino = _ratio(mean, downside) * annual
    else:
        volatility = sharpe = sortino = math.nan

    mdd = float(drawdown(equity).min()) * 100
    calmar = (cagr / 100) / abs(mdd / 100) if mdd < 0 and math.isfinite(cagr) else math.nan
    duration = max_drawdown_duration_ns(time_ns, equity)

    if pnl is None:
        pnl = np.array([t.pnl for t in trades], dtype=np.float64)
    else:
        pnl = np.asarray(pnl, dtype=np.float64)
        if len(pnl) != len(trades):
            raise ValueError(f"pnl has {len(pnl)} values for {len(trades)} trades")
    wins = pnl[pnl > 0]
    losses = pnl[pnl < 0]
    count = len(pnl)
    return Metrics(
        bars=len(equity),
        start_ns=int(time_ns[0]),
        end_ns=int(time_ns[-1]),
        days=len(returns),
        initial_equity=e0,
        final_equity=et,
        total_return_pct=(growth - 1) * 100,
        cagr_pct=cagr,
        volatility_pct=volatility,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        max_drawdown_pct=mdd,
        max_drawdown_duration_ns=duration,
        max_drawdown_duration_days=duration / NS_PER_DAY,
        trades=count,
        win_rate_pct=len(wins) / count * 100 if count else math.nan,
        profit_factor=_ratio(float(wins.sum()), abs(float(losses.sum()))) if count else math.nan,
        expectancy=float(pnl.mean()) if count else math.nan,
        exposure_pct=float(np.mean(in_position)) * 100,
        fees=float(sum(t.fees for t in trades)) if fees is None else float(fees),
    )
