"""Position sizers: the numbers, streaming == vectorised, and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sniperbot.risk.sizing import FixedSize, FractionOfEquity, VolatilityTarget


def test_fixed_size_ignores_price_and_equity() -> None:
    sizer = FixedSize(0.25)
    assert sizer.quantity(60_000.0) == 0.25
    assert sizer.quantity(3.0, equity=1e9) == 0.25
    np.testing.assert_array_equal(sizer.quantities(np.array([1.0, 2.0, 3.0])), [0.25, 0.25, 0.25])


def test_fraction_of_equity_buys_that_share_of_the_account_at_the_price() -> None:
    sizer = FractionOfEquity(0.9999)
    assert sizer.quantity(100.0, equity=100_000.0) == pytest.approx(999.9)
    assert sizer.quantity(50_000.0, equity=10_000.0) == pytest.approx(0.19998)
    assert sizer.quantity(100.0, equity=-5.0) == 0.0  # nothing left to bet
    np.testing.assert_allclose(
        sizer.quantities(np.array([100.0, 200.0]), equity=np.array([1000.0, 1000.0])),
        [9.999, 4.9995],
    )
    # Sized at another price than the close (e.g. the next bar's open, where it fills).
    np.testing.assert_allclose(
        sizer.quantities(np.array([100.0, 200.0]), equity=1000.0, price=np.array([50.0, 250.0])),
        [19.998, 3.9996],
    )


def test_volatility_target_hand_computed() -> None:
    # Log returns alternate +r, -r: over any 2 returns the sample stdev is r * sqrt(2).
    r = 0.01
    closes = 100.0 * np.exp(np.cumsum([0.0] + [r if i % 2 == 0 else -r for i in range(20)]))
    sizer = VolatilityTarget(target_vol=0.20, lookback=2, periods_per_year=365.0, max_leverage=3.0)
    annual = r * math.sqrt(2.0) * math.sqrt(365.0)  # 0.2702
    leverage = 0.20 / annual  # 0.74
    quantities = sizer.quantities(closes, equity=10_000.0)
    assert quantities[0] == quantities[1] == 0.0  # fewer than `lookback` returns: no size yet
    np.testing.assert_allclose(quantities[2:], leverage * 10_000.0 / closes[2:], rtol=1e-12)
    for close in closes[:5]:
        sizer.update(float(close))
    assert sizer.leverage == pytest.approx(leverage, rel=1e-12)
    assert sizer.quantity(float(closes[4]), equity=10_000.0) == pytest.approx(quantities[4], rel=1e-12)


def test_volatility_target_caps_leverage_and_a_still_market_gets_the_cap() -> None:
    sizer = VolatilityTarget(target_vol=5.0, lookback=3, max_leverage=2.0)
    closes = np.array([100.0, 101.0, 100.0, 101.0, 101.0, 101.0, 101.0])
    q = sizer.quantities(closes, equity=1000.0)
    np.testing.assert_allclose(q[3:], 2.0 * 1000.0 / closes[3:])  # huge target: capped at 2x
    assert q[-1] == pytest.approx(2.0 * 1000.0 / 101.0)  # zero volatility: the cap, not inf


def test_volatility_target_streaming_equals_vectorised() -> None:
    rng = np.random.default_rng(0)
    closes = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, 5000)))
    equity = 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0005, 5000)))
    sizer = VolatilityTarget(target_vol=0.6, lookback=60, periods_per_year=525_600.0, max_leverage=2.0)
    vectorised = sizer.quantities(closes, equity=equity)
    streaming = []
    for close, cash in zip(closes.tolist(), equity.tolist(), strict=True):
        sizer.update(close)
        streaming.append(sizer.quantity(close, equity=cash))
    np.testing.assert_allclose(streaming, vectorised, rtol=1e-9, atol=0.0)
    sizer.reset()
    assert sizer.leverage == 0.0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FixedSize(0.0), "quantity must be a positive number"),
        (lambda: FixedSize(math.inf), "quantity must be a positive number"),
        (lambda: FractionOfEquity(-0.5), "fraction must be a positive number"),
        (lambda: VolatilityTarget(0.0, 20), "target_vol must be a positive number"),
        (lambda: VolatilityTarget(0.2, 1), "lookback must be an integer >= 2"),
        (lambda: VolatilityTarget(0.2, 20, max_leverage=0.0), "max_leverage must be a positive number"),
    ],
)
def test_bad_sizer_settings_are_refused_by_name(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_sizing_off_equity_needs_equity_and_a_price() -> None:
    with pytest.raises(ValueError, match="needs the account equity"):
        FractionOfEquity(0.5).quantity(100.0)
    with pytest.raises(ValueError, match="needs the account equity"):
        VolatilityTarget(0.2, 5).quantities(np.ones(10))
    with pytest.raises(ValueError, match="price must be a positive number"):
        FractionOfEquity(0.5).quantity(0.0, equity=100.0)
