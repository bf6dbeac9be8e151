"""Indicators against TA-Lib itself, and streaming against vectorised, on random-walk bars."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

import sniperbot.indicators as ind
from tests.conftest import optional_import

# Test-only dependency: the `ta-lib` wheel on PyPI bundles the C library. Without it the
# streaming/vectorised and exactness tests still run; the parity ones skip (fail in CI).
talib, TALIB_MISSING = optional_import("talib")

needs_talib = pytest.mark.skipif(talib is None, reason=TALIB_MISSING)

Bars = dict[str, np.ndarray]


def random_walk(n: int, price: float, vol: float, seed: int, tick: float | None = None) -> Bars:
    """OHLCV bars of a geometric random walk: open = previous close, wicks around the body."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.concatenate([[price], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, vol / 2, n)))
    if tick is not None:  # exchange prices sit on a tick grid, which makes exact ties common
        open_, high, low, close = (np.round(a / tick) * tick for a in (open_, high, low, close))
    volume = rng.lognormal(0.0, 1.0, n)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


# A 1-minute-like walk around 100, and one at BTC's price level with 0.01 ticks.
MARKETS = {
    "usd100": random_walk(6000, 100.0, 0.002, seed=1),
    "btc": random_walk(6000, 65000.0, 0.0008, seed=2, tick=0.01),
}


@pytest.fixture(params=sorted(MARKETS))
def bars(request: pytest.FixtureRequest) -> Bars:
    return MARKETS[request.param]


def assert_close(ours: np.ndarray, theirs: np.ndarray, rtol: float = 1e-9, scale: float = 0.0) -> None:
    """Same warm-up (NaN) positions; elsewhere |ours - theirs| <= rtol * max(|theirs|, scale)."""
    assert ours.shape == theirs.shape and ours.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    defined = ~np.isnan(theirs)
    assert defined.any()
    error = np.abs(ours[defined] - theirs[defined])
    bound = rtol * np.maximum(np.abs(theirs[defined]), scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        worst = int(np.nanargmax(np.where(error > 0, error / bound, 0.0)))
    assert np.all(error <= bound), (worst, ours[defined][worst], theirs[defined][worst])


# -- against TA-Lib -----------------------------------------------------------------------


@pytest.mark.parametrize("period", [1, 2, 10, 30, 200])
@needs_talib
def test_sma_matches_talib(bars: Bars, period: int) -> None:
    c = bars["close"]
    if period == 1:  # TA-Lib refuses period 1; it is the series itself
        np.testing.assert_array_equal(ind.sma(c, 1), c)
    else:
        assert_close(ind.sma(c, period), talib.SMA(c, period))


@pytest.mark.parametrize("period", [2, 12, 26, 200])
@needs_talib
def test_ema_matches_talib(bars: Bars, period: int) -> None:
    c = bars["close"]
    assert_close(ind.ema(c, period), talib.EMA(c, period))


@pytest.mark.parametrize("period", [2, 9, 30, 200])
@needs_talib
def test_wma_matches_talib(bars: Bars, period: int) -> None:
    c = bars["close"]
    assert_close(ind.wma(c, period), talib.WMA(c, period))


@pytest.mark.parametrize("period", [2, 14, 30])
@needs_talib
def test_rsi_matches_talib(bars: Bars, period: int) -> None:
    c = bars["close"]
    assert_close(ind.rsi(c, period), talib.RSI(c, period), scale=100.0)


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (2, 3, 1), (5, 35, 5)])
@needs_talib
def test_macd_matches_talib_including_its_alignment(bars: Bars, fast: int, slow: int, signal: int) -> None:
    c = bars["close"]
    ours = ind.macd(c, fast, slow, signal)
    theirs = talib.MACD(c, fast, slow, signal)
    # MACD is a difference of prices: its rounding is relative to the price, not to itself.
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b, scale=float(np.mean(c)))
    assert np.isnan(ours[0][slow + signal - 3]) and not np.isnan(ours[0][slow + signal - 2])


@pytest.mark.parametrize(("period", "k"), [(20, 2.0), (5, 1.5), (50, 3.0)])
@needs_talib
def test_bollinger_matches_talib(bars: Bars, period: int, k: float) -> None:
    c = bars["close"]
    ours = ind.bollinger(c, period, k)
    theirs = talib.BBANDS(c, period, k, k, 0)
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b)
    np.testing.assert_array_equal(ours[1], ind.sma(c, period))


def test_bollinger_width_is_the_exact_population_stdev(bars: Bars) -> None:
    # TA-Lib's E[x²] - E[x]² over running sums loses accuracy at high price levels; the
    # width is checked here against a two-pass standard deviation of every window.
    c, period = bars["close"], 20
    upper, middle, _ = ind.bollinger(c, period, 1.0)
    windows = np.lib.stride_tricks.sliding_window_view(c, period)
    reference = np.sqrt(np.mean((windows - windows.mean(axis=1, keepdims=True)) ** 2, axis=1))
    assert_close((upper - middle)[period - 1 :], reference, scale=float(np.median(reference)))


@pytest.mark.parametrize("period", [1, 2, 14, 50])
@needs_talib
def test_atr_and_true_range_match_talib(bars: Bars, period: int) -> None:
    h, lo, c = bars["high"], bars["low"], bars["close"]
    assert_close(ind.atr(h, lo, c, period), talib.ATR(h, lo, c, period))
    np.testing.assert_array_equal(ind.true_range(h, lo, c), talib.TRANGE(h, lo, c))


@pytest.mark.parametrize(("k_period", "d_period", "slowing"), [(14, 3, 3), (5, 3, 1), (9, 4, 2), (1, 1, 1)])
@needs_talib
def test_stochastic_matches_talib_stoch_with_sma_smoothing(
    bars: Bars, k_period: int, d_period: int, slowing: int
) -> None:
    h, lo, c = bars["high"], bars["low"], bars["close"]
    ours = ind.stochastic(h, lo, c, k_period, d_period, slowing)
    theirs = talib.STOCH(h, lo, c, k_period, slowing, 0, d_period, 0)
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b, scale=100.0)


@needs_talib
def test_stochastic_defaults_are_talibs_14_3_3(bars: Bars) -> None:
    h, lo, c = bars["high"], bars["low"], bars["close"]
    for a, b in zip(ind.stochastic(h, lo, c), talib.STOCH(h, lo, c, 14, 3, 0, 3, 0), strict=True):
        assert_close(a, b, scale=100.0)


@pytest.mark.parametrize("period", [2, 20, 60])
@needs_talib
def test_rolling_volatility_is_the_sample_stdev_of_log_returns(bars: Bars, period: int) -> None:
    c = bars["close"]
    returns = np.concatenate([[np.nan], np.log(c[1:] / c[:-1])])
    # TA-Lib's STDDEV is the population one; rescale it to the sample (n - 1) divisor.
    theirs = talib.STDDEV(returns, period, 1.0) * math.sqrt(period / (period - 1))
    ours = ind.rolling_volatility(c, period)
    # TA-Lib's running E[x²] - E[x]² loses digits on a near-zero variance, so the
    # comparison is relative to the typical volatility; accuracy is checked below.
    assert_close(ours, theirs, scale=float(np.nanmedian(theirs)))
    windows = np.lib.stride_tricks.sliding_window_view(returns[1:], period)
    reference = np.std(windows, axis=1, ddof=1)
    # Windows of nearly equal returns have a near-zero deviation that no one-pass
    # formula gets to 1e-9 of itself; they are held to 1e-9 of the typical volatility.
    assert_close(ours[period:], reference, scale=float(np.median(reference)))


def test_vwap_is_the_cumulative_volume_weighted_typical_price(bars: Bars) -> None:
    h, lo, c, v = bars["high"], bars["low"], bars["close"], bars["volume"].copy()
    v[:3] = 0.0  # nothing traded yet: undefined
    typical = (h + lo + c) / 3.0
    reference = np.array(
        [math.fsum(typical[: i + 1] * v[: i + 1]) / math.fsum(v[: i + 1]) for i in range(3, len(c))]
    )
    ours = ind.vwap(h, lo, c, v)
    assert np.isnan(ours[:3]).all()
    assert_close(ours[3:], reference)


@needs_talib
def test_leading_nans_are_skipped_as_talib_does_so_indicators_chain(bars: Bars) -> None:
    c = bars["close"]
    r = ind.rsi(c, 14)
    assert_close(ind.sma(r, 5), talib.SMA(r, 5), scale=100.0)
    assert_close(ind.ema(r, 5), talib.EMA(r, 5), scale=100.0)
    assert_close(ind.wma(r, 5), talib.WMA(r, 5), scale=100.0)
    assert_close(ind.rsi(r, 5), talib.RSI(r, 5), scale=100.0)
    for a, b in zip(ind.bollinger(r, 10), talib.BBANDS(r, 10, 2.0, 2.0, 0), strict=True):
        assert_close(a, b, scale=100.0)
    for a, b in zip(ind.macd(r, 3, 7, 2), talib.MACD(r, 3, 7, 2), strict=True):
        assert_close(a, b, scale=100.0)


def test_inputs_shorter_than_the_warm_up_give_all_nan_like_talib() -> None:
    x = np.linspace(100.0, 101.0, 5)
    for out in (ind.sma(x, 6), ind.ema(x, 6), ind.wma(x, 6), ind.rsi(x, 5), *ind.macd(x, 2, 3, 4)):
        assert len(out) == 5 and np.isnan(out).all()
    assert ind.sma(np.array([]), 3).shape == (0,)
    assert np.isnan(ind.atr(x, x, x, 5)).all()


def test_lists_and_integer_arrays_are_accepted() -> None:
    np.testing.assert_array_equal(ind.sma([1, 2, 3, 4], 2), [np.nan, 1.5, 2.5, 3.5])
    assert ind.ema(np.arange(10), 3).dtype == np.float64


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda x: ind.sma(x, 0), "period"),
        (lambda x: ind.ema(x, 2.5), "period"),
        (lambda x: ind.rsi(x, True), "period"),
        (lambda x: ind.macd(x, 26, 12), "fast must be less than slow"),
        (lambda x: ind.rolling_volatility(x, 1), "period"),
        (lambda x: ind.stochastic(x, x, x, d_period=0), "d_period"),
        (lambda x: ind.atr(x, x, x[:-1]), "same length"),
        (lambda x: ind.sma(np.ones((3, 3)), 2), "one-dimensional"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call: Callable[[np.ndarray], object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call(np.linspace(1.0, 2.0, 50))


def test_flat_windows_are_exact() -> None:
    # 0.1 is not representable: a running sum leaves dust; a flat window must not.
    x = np.concatenate([np.linspace(1.0, 2.0, 40), np.full(60, 0.1)])
    assert (ind.sma(x, 30)[-30:] == 0.1).all()
    upper, middle, lower = ind.bollinger(x, 20)
    assert (upper[-40:] == 0.1).all() and (lower[-40:] == 0.1).all() and (middle[-40:] == 0.1).all()
    assert (ind.wma(x, 10)[-50:] == 0.1).all()
    assert (ind.rolling_volatility(x, 5)[-50:] == 0.0).all()
    assert ind.rsi(np.full(30, 7.0), 14)[-1] == 0.0  # TA-Lib's convention for no movement at all


# -- streaming == vectorised --------------------------------------------------------------

Stream = Callable[[Bars], np.ndarray]


def _feed(indicator: object, *columns: np.ndarray) -> np.ndarray:
    """Run a streaming indicator over columns, collecting each update's result."""
    update = indicator.update  # type: ignore[attr-defined]
    return np.array([update(*values) for values in zip(*(col.tolist() for col in columns), strict=True)])


# name -> (streaming over bars, vectorised over bars); outputs stacked as columns.
CASES: dict[str, tuple[Stream, Stream]] = {
    "sma": (lambda b: _feed(ind.Sma(30), b["close"]), lambda b: ind.sma(b["close"], 30)),
    "sma1": (lambda b: _feed(ind.Sma(1), b["close"]), lambda b: ind.sma(b["close"], 1)),
    "ema": (lambda b: _feed(ind.Ema(26), b["close"]), lambda b: ind.ema(b["close"], 26)),
    "ema2": (lambda b: _feed(ind.Ema(2), b["close"]), lambda b: ind.ema(b["close"], 2)),
    "rsi": (lambda b: _feed(ind.Rsi(14), b["close"]), lambda b: ind.rsi(b["close"], 14)),
    "macd": (
        lambda b: _feed(ind.Macd(12, 26, 9), b["close"]),
        lambda b: np.column_stack(ind.macd(b["close"])),
    ),
    "bollinger": (
        lambda b: _feed(ind.Bollinger(20, 2.0), b["close"]),
        lambda b: np.column_stack(ind.bollinger(b["close"], 20, 2.0)),
    ),
    "atr": (
        lambda b: _feed(ind.Atr(14), b["high"], b["low"], b["close"]),
        lambda b: ind.atr(b["high"], b["low"], b["close"], 14),
    ),
    "true_range": (
        lambda b: _feed(ind.TrueRange(), b["high"], b["low"], b["close"]),
        lambda b: ind.true_range(b["high"], b["low"], b["close"]),
    ),
    "stochastic": (
        lambda b: _feed(ind.Stochastic(14, 3, 3), b["high"], b["low"], b["close"]),
        lambda b: np.column_stack(ind.stochastic(b["high"], b["low"], b["close"])),
    ),
    "vwap": (
        lambda b: _feed(ind.Vwap(), b["high"], b["low"], b["close"], b["volume"]),
        lambda b: ind.vwap(b["high"], b["low"], b["close"], b["volume"]),
    ),
    "wma": (lambda b: _feed(ind.Wma(20), b["close"]), lambda b: ind.wma(b["close"], 20)),
    "rolling_volatility": (
        lambda b: _feed(ind.RollingVolatility(30), b["close"]),
        lambda b: ind.rolling_volatility(b["close"], 30),
    ),
}
# These repeat the vectorised arithmetic operation for operation; the others agree to 1e-9.
BIT_IDENTICAL = {
    "sma",
    "sma1",
    "ema",
    "ema2",
    "rsi",
    "macd",
    "bollinger",
    "atr",
    "true_range",
    "stochastic",
    "vwap",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_streaming_agrees_with_vectorised(bars: Bars, name: str) -> None:
    streaming, vectorised = CASES[name]
    # A long flat stretch (exchange halts, illiquid hours) must not upset either form.
    flat = {key: value.copy() for key, value in bars.items()}
    for key in ("open", "high", "low", "close"):
        flat[key][3000:3100] = flat["close"][2999]
    for b in (bars, flat):
        ours, theirs = streaming(b), vectorised(b)
        if name in BIT_IDENTICAL:
            np.testing.assert_array_equal(ours, theirs)
        else:
            assert_close(ours.ravel(), theirs.ravel())


def test_streaming_skips_leading_nans_like_the_vectorised_form() -> None:
    c = np.concatenate([[np.nan] * 4, MARKETS["usd100"]["close"][:200]])
    np.testing.assert_array_equal(_feed(ind.Sma(10), c), ind.sma(c, 10))
    np.testing.assert_array_equal(_feed(ind.Ema(10), c), ind.ema(c, 10))
    np.testing.assert_array_equal(_feed(ind.Rsi(10), c), ind.rsi(c, 10))
    np.testing.assert_array_equal(_feed(ind.Macd(3, 8, 4), c), np.column_stack(ind.macd(c, 3, 8, 4)))


def test_streaming_state_is_readable() -> None:
    sma = ind.Sma(3)
    assert not sma.ready and math.isnan(sma.value)
    for x in (1.0, 2.0, 3.0):
        last = sma.update(x)
    assert sma.ready and sma.value == last == 2.0
    macd = ind.Macd(2, 3, 2)
    for x in (1.0, 2.0, 4.0, 3.0):
        macd.update(x)
    assert macd.ready and len(macd.value) == 3


def test_streaming_volatility_stays_exact_over_a_long_live_run() -> None:
    # 200k updates: the windowed sums must not drift (they are re-based every chunk).
    b = random_walk(200_000, 30000.0, 0.001, seed=9)
    stream = _feed(ind.RollingVolatility(50), b["close"])
    assert_close(stream, ind.rolling_volatility(b["close"], 50))
    stream_wma = _feed(ind.Wma(50), b["close"])
    assert_close(stream_wma, ind.wma(b["close"], 50))
