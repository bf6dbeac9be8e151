"""Parity: the backtester agrees with other engines, with a plain reference loop, and with itself.

* On the real BTC/USDT minute file beside the checkout (``../shared/data/``, or
  ``$SNIPERBOT_SHARED/data/``: see ``tests/conftest.py``; skipped with the reason when
  absent, a failure in CI), SMA 10/30 long-only under the reference convention gives
  the figures three independent engines agree on: 2565 trades, final equity 570.60
  (within 0.1 %), max drawdown -99.43 %, on both paths.
* On generated data, always: the same convention written out as a straightforward loop
  here gives the same trades and equity.
* For every shipped strategy, long and long-short, on 24,000 bars: the per-bar callback
  path and the vectorised path give identical trades and equity, under several
  fill settings.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sniperbot.backtest import BacktestConfig, run_backtest
from sniperbot.data import OHLCV, load_ohlcv
from sniperbot.strategies import STRATEGIES
from tests.conftest import missing_data_reason, shared_data

# Those with a vectorised form to compare (a strategy that reads signals has none).
PRICE_STRATEGIES = sorted(name for name, cls in STRATEGIES.items() if not cls.uses_signals())

REAL = shared_data("candles", "binance_spot_BTCUSDT_1m_2025-05-20_2025-08-18.csv")
MINUTE = 60_000_000_000


def walk(n: int, seed: int) -> OHLCV:
    """A random-walk minute series with realistic candles (opens near the previous close)."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0015, n)))
    open_ = np.concatenate([[30_000.0], close[:-1]]) * (1 + rng.normal(0.0, 0.0002, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.0008, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.0008, n)))
    volume = rng.lognormal(0.0, 1.0, n)
    times = 1_700_000_000 * 1_000_000_000 + np.arange(n) * MINUTE
    return OHLCV(times, open_, high, low, close, volume, symbol="BTC/USDT", timeframe="1m")


# -- the real data ----------------------------------------------------------------------


@pytest.mark.skipif(not REAL.exists(), reason=missing_data_reason(REAL))
@pytest.mark.parametrize("path", ["vectorised", "per-bar"])
def test_sma_10_30_on_real_btc_minutes_matches_the_reference_engines(path: str) -> None:
    data = load_ohlcv(REAL)
    assert len(data) == 130_708
    result = run_backtest(
        data, "sma_cross", {"fast": 10, "slow": 30}, BacktestConfig(fee_bps=10.0, cash=100_000.0), path=path
    )  # type: ignore[arg-type]
    assert result.trades == 2565
    assert result.final_equity == pytest.approx(570.60, rel=1e-3)
    assert round(result.max_drawdown_pct, 2) == -99.43


# -- an independent reference loop ------------------------------------------------------


def reference_sma_cross(
    data: OHLCV, fast: int, slow: int, fee: float, cash: float, long_short: bool
) -> tuple[list[tuple[int, int, float, float, float]], list[float]]:
    """The reference convention, written out plainly.

    Signals on each close from exactly summed SMAs; a cross is strict. Long-only: enter
    with 99.99 % of equity (fee included) at the next open, exit at the next open on
    the opposite cross. Long-short: the opposite cross flips to a short of 99.99 % of
    the equity left after closing. Fee on each fill's notional; an open position is
    closed at the last close. Returns the round trips (entry bar, exit bar, entry
    price, exit price, signed quantity) and the equity at each close.
    """
    o, c = data.open.tolist(), data.close.tolist()
    n = len(c)

    def sma(i: int, period: int) -> float:
        return math.fsum(c[i - period + 1 : i + 1]) / period if i >= period - 1 else math.nan

    position = 0.0
    entry_bar, entry_price = -1, 0.0
    trades: list[tuple[int, int, float, float, float]] = []
    equity: list[float] = []
    want = 0.0
    for i in range(n):
        if i > 0:
            target = want
            if (
                (target > 0 and position <= 0)
                or (target <= 0 and position > 0)
                or (target < 0 and position == 0)
            ):
                price = o[i]
                if position != 0:
                    cash += position * price - abs(position) * price * fee
                    trades.append((entry_bar, i, entry_price, price, position))
                    position = 0.0
                if target != 0:
                    position = math.copysign(0.9999 * cash / (price * (1 + fee)), target)
                    cash -= position * price + abs(position) * price * fee
                    entry_bar, entry_price = i, price
        if i >= 1:
            f0, s0, f1, s1 = sma(i - 1, fast), sma(i - 1, slow), sma(i, fast), sma(i, slow)
            if f0 < s0 and f1 > s1:
                want = 1.0
            elif f0 > s0 and f1 < s1:
                want = -1.0 if long_short else 0.0
        equity.append(cash + position * c[i])
    if position != 0:
        cash += position * c[-1] - abs(position) * c[-1] * fee
        trades.append((entry_bar, n - 1, entry_price, c[-1], position))
        equity[-1] = cash
    return trades, equity


@pytest.mark.parametrize("long_short", [False, True])
def test_sma_cross_equals_a_plain_reference_loop_on_generated_data(long_short: bool) -> None:
    data = walk(20_000, seed=2024)
    trades, equity = reference_sma_cross(data, 10, 30, 0.001, 100_000.0, long_short)
    params = {"fast": 10, "slow": 30, "mode": "long-short" if long_short else "long"}
    for path in ("vectorised", "per-bar"):
        result = run_backtest(data, "sma_cross", params, BacktestConfig(fee_bps=10.0), path=path)  # type: ignore[arg-type]
        assert result.trades == len(trades) > 300
        for ours, (entry_bar, exit_bar, entry_price, exit_price, quantity) in zip(
            result.round_trips, trades, strict=True
        ):
            assert ours.entry_time_ns == data.time_ns[entry_bar]
            assert ours.exit_time_ns == data.time_ns[exit_bar]
            assert (ours.entry_price, ours.exit_price) == (entry_price, exit_price)
            assert ours.side == ("long" if quantity > 0 else "short")
            assert ours.quantity == pytest.approx(abs(quantity), rel=1e-9)
        np.testing.assert_allclose(result.equity, equity, rtol=1e-9)
        assert result.final_equity == pytest.approx(equity[-1], rel=1e-9)
        peak = np.maximum.accumulate(equity)
        assert result.max_drawdown_pct == pytest.approx(
            float(np.min(np.array(equity) / peak - 1)) * 100, abs=1e-9
        )


# -- per-bar callbacks == vectorised ----------------------------------------------------

CONFIGS: dict[str, dict[str, Any]] = {
    "reference": {},
    "slippage, sized at the signal": {"slippage_bps": 3.0, "size_at": "signal"},
    "fixed size, 2 bars latency": {"sizer": "fixed:1.5", "latency_bars": 2, "fee_bps": 4.0},
    "brackets, maker fee": {
        "stop_loss_pct": 0.4,
        "take_profit_pct": 0.6,
        "maker_fee_bps": 1.0,
        "slippage_bps": 1.0,
    },
    "risk limits, 90 s latency": {"sizer": "fixed:2", "max_position": 3.0, "latency_ns": 90_000_000_000},
}


@pytest.fixture(scope="module")
def long_walk() -> OHLCV:
    return walk(24_000, seed=99)


@pytest.mark.parametrize("mode", ["long", "long-short"])
@pytest.mark.parametrize("name", PRICE_STRATEGIES)
def test_per_bar_and_vectorised_paths_give_identical_trades(long_walk: OHLCV, name: str, mode: str) -> None:
    for label, fields in CONFIGS.items():
        config = BacktestConfig(**fields)
        vectorised = run_backtest(long_walk, name, {"mode": mode}, config, path="vectorised")
        per_bar = run_backtest(long_walk, name, {"mode": mode}, config, path="per-bar")
        assert per_bar.trades == vectorised.trades > 10, label
        assert per_bar.round_trips == vectorised.round_trips, label
        np.testing.assert_array_equal(per_bar.fills.price, vectorised.fills.price, err_msg=label)
        np.testing.assert_array_equal(per_bar.equity, vectorised.equity, err_msg=label)
        assert per_bar.rejected == vectorised.rejected, label


@pytest.mark.parametrize("name", PRICE_STRATEGIES)
def test_paths_agree_with_a_volatility_target_sizer(long_walk: OHLCV, name: str) -> None:
    # The sizer's streaming and vectorised volatility agree to ~1e-12, so quantities do too.
    config = BacktestConfig(sizer="voltarget:0.8:120:2", fee_bps=5.0)
    vectorised = run_backtest(long_walk, name, {"mode": "long-short"}, config, path="vectorised")
    per_bar = run_backtest(long_walk, name, {"mode": "long-short"}, config, path="per-bar")
    assert per_bar.trades == vectorised.trades > 10
    for a, b in zip(per_bar.round_trips, vectorised.round_trips, strict=True):
        assert (a.entry_time_ns, a.exit_time_ns, a.side) == (b.entry_time_ns, b.exit_time_ns, b.side)
        assert a.quantity == pytest.approx(b.quantity, rel=1e-9)
    np.testing.assert_allclose(per_bar.equity, vectorised.equity, rtol=1e-9)
