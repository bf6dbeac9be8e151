"""Backtest metrics against numbers worked out by hand (derivations in the comments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sniperbot.backtest.metrics import (
    Trade,
    compute_metrics,
    daily_returns,
    drawdown,
    in_position_from_trades,
    max_drawdown_duration_ns,
)

H = 3_600 * 1_000_000_000
DAY = 24 * H
T0 = 1_735_689_600 * 1_000_000_000  # 2025-01-01 00:00 UTC

# Six bars over five UTC days; day 2 has no bar at all.
TIMES = np.array([T0, T0 + 12 * H, T0 + DAY, T0 + DAY + 12 * H, T0 + 3 * DAY + 6 * H, T0 + 4 * DAY])
EQUITY = np.array([100.0, 110.0, 105.0, 99.0, 121.0, 110.0])
TRADES = [
    Trade(T0 + 12 * H, T0 + DAY, 10.0, 13.1, 10.0, "long", 30.0, 1.0),
    Trade(T0 + DAY, T0 + DAY + 12 * H, 13.0, 14.0, 10.0, "short", -10.0, 1.0),
    Trade(T0 + 3 * DAY + 6 * H, T0 + 4 * DAY, 5.0, 7.2, 10.0, "long", 20.0, 2.0),
    Trade(T0 + 4 * DAY, T0 + 4 * DAY + H, 7.0, 7.05, 10.0, "long", 0.0, 0.5),
]
IN_POSITION = np.array([False, True, True, False, True, False])


def test_daily_returns_take_each_days_last_value_and_carry_empty_days() -> None:
    # Day closes: D0 = 110, D1 = 99, D2 = 99 (no bar: carried), D3 = 121, D4 = 110;
    # the first day counts from E0 = 100.
    np.testing.assert_allclose(
        daily_returns(TIMES, EQUITY), [110 / 100 - 1, 99 / 110 - 1, 0.0, 121 / 99 - 1, 110 / 121 - 1]
    )


def test_every_metric_of_the_worked_example() -> None:
    m = compute_metrics(TIMES, EQUITY, TRADES, IN_POSITION)
    assert (m.bars, m.days, m.trades) == (6, 5, 4)
    assert (m.initial_equity, m.final_equity) == (100.0, 110.0)
    assert m.total_return_pct == pytest.approx(10.0)
    # 4 days = 4/365 years: (1.1 ** (365 / 4) - 1) * 100.
    assert m.cagr_pct == pytest.approx(598425.3105929955, rel=1e-12)
    # r = [0.1, -0.1, 0, 2/9, -1/11]: mean = 13/495 = 0.0262626...;
    # squared deviations 0.0054374 + 0.0159422 + 0.0006897 + 0.0384004 + 0.0137293 = 0.0741991,
    # / (5 - 1) = 0.0185498, stdev = 0.1361971.
    assert m.volatility_pct == pytest.approx(0.13619705500509927 * math.sqrt(365) * 100, rel=1e-9)
    assert m.sharpe == pytest.approx((13 / 495) / 0.13619705500509927 * math.sqrt(365), rel=1e-9)
    assert m.sharpe == pytest.approx(3.68398, abs=1e-5)
    # Downside deviation: sqrt((0.1^2 + (1/11)^2) / 5) = sqrt(0.0036529) = 0.0604392.
    assert m.sortino == pytest.approx((13 / 495) / math.sqrt((0.01 + 1 / 121) / 5) * math.sqrt(365), rel=1e-9)
    assert m.sortino == pytest.approx(8.30168, abs=1e-5)
    # Peak 110, trough 99: -10 %; the later fall 121 -> 110 is only -9.09 %.
    assert m.max_drawdown_pct == pytest.approx(-10.0)
    # Longest peak-to-recovery: 110 at day 0 12:00 back above at day 3 06:00 = 2.75 days
    # (the unrecovered 121 -> 110 lasts 0.75 days).
    assert m.max_drawdown_duration_ns == 2 * DAY + 18 * H
    assert m.max_drawdown_duration_days == pytest.approx(2.75)
    assert m.calmar == pytest.approx(598425.3105929955 / 100 / 0.10, rel=1e-12)
    # pnl 30, -10, 20, 0: two wins of four (break-even is no win), 50 / 10, mean 10.
    assert m.win_rate_pct == pytest.approx(50.0)
    assert m.profit_factor == pytest.approx(5.0)
    assert m.expectancy == pytest.approx(10.0)
    assert m.exposure_pct == pytest.approx(50.0)
    assert m.fees == pytest.approx(4.5)
    assert compute_metrics(TIMES, EQUITY, TRADES, IN_POSITION, fees=7.25).fees == 7.25


def test_in_position_from_trades_covers_entry_to_exit() -> None:
    trades = [
        Trade(TIMES[1], TIMES[3], 1.0, 1.0, 1.0, "long", 0.0, 0.0),
        Trade(TIMES[4], TIMES[5] + H, 1.0, 1.0, 1.0, "long", 0.0, 0.0),
    ]
    np.testing.assert_array_equal(in_position_from_trades(TIMES, trades), [0, 1, 1, 0, 1, 1])
    assert compute_metrics(TIMES, EQUITY, trades).exposure_pct == pytest.approx(400 / 6)


def test_drawdown_and_its_duration() -> None:
    equity = np.array([100.0, 90.0, 100.0, 80.0, 85.0, 120.0, 60.0])
    times = np.arange(7) * H
    np.testing.assert_allclose(drawdown(equity), [0, -0.1, 0, -0.2, -0.15, 0, -0.5])
    # Under water: bars 1 (peak 0, back at 2: 2 h), 3-4 (peak 2, back at 5: 3 h),
    # 6 (peak 5, never back: 1 h to the last bar).
    assert max_drawdown_duration_ns(times, equity) == 3 * H
    assert max_drawdown_duration_ns(times, np.array([1.0, 2, 2, 3, 4, 4, 5])) == 0
    # An unrecovered drawdown that is the longest.
    assert max_drawdown_duration_ns(times, np.array([5.0, 1, 2, 3, 4, 4.5, 4.9])) == 6 * H


def test_degenerate_cases() -> None:
    flat = compute_metrics(TIMES, np.full(6, 100.0), [], np.zeros(6, dtype=bool))
    assert flat.total_return_pct == 0.0 and flat.cagr_pct == 0.0
    assert flat.max_drawdown_pct == 0.0 and flat.max_drawdown_duration_ns == 0
    assert math.isnan(flat.sharpe) and math.isnan(flat.sortino) and math.isnan(flat.calmar)
    assert flat.trades == 0 and math.isnan(flat.win_rate_pct) and math.isnan(flat.profit_factor)
    assert math.isnan(flat.expectancy) and flat.fees == 0.0 and flat.exposure_pct == 0.0

    rising = compute_metrics(TIMES, np.array([100.0, 101, 102, 103, 104, 105]), TRADES[:1])
    assert rising.sortino == math.inf  # no losing day
    assert rising.profit_factor == math.inf and rising.win_rate_pct == 100.0

    one_bar = compute_metrics(TIMES[:1], EQUITY[:1], [])
    assert one_bar.days == 1 and math.isnan(one_bar.sharpe) and math.isnan(one_bar.cagr_pct)

    ruined = compute_metrics(TIMES, np.array([100.0, 50, 10, 0.0, 0.0, 0.0]), [])
    assert ruined.cagr_pct == -100.0 and ruined.max_drawdown_pct == -100.0

    with pytest.raises(ValueError, match="one equity value per bar"):
        compute_metrics(TIMES, EQUITY[:3], [])


def test_json_safe_dict() -> None:
    m = compute_metrics(TIMES, np.array([100.0, 101, 102, 103, 104, 105]), TRADES[:1])
    safe = m.to_dict(json_safe=True)
    assert safe["sortino"] is None and safe["profit_factor"] is None
    assert safe["trades"] == 1 and safe["final_equity"] == 105.0
    json.dumps(safe, allow_nan=False)
    assert m.to_dict()["profit_factor"] == math.inf


def test_a_three_month_minute_curve() -> None:
    # How fast this runs is a benchmark (bench/metrics.py), not a wall-clock assertion.
    rng = np.random.default_rng(3)
    n = 130_708
    times = T0 + np.arange(n, dtype=np.int64) * 60_000_000_000
    equity = 100_000 * np.cumprod(1 + rng.normal(0, 1e-3, n))
    m = compute_metrics(times, equity, [], rng.random(n) < 0.5)
    assert m.days == 91 and m.bars == n
    assert m.final_equity == equity[-1] and m.exposure_pct == pytest.approx(50.0, abs=1.0)
