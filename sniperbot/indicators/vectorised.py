"""Vectorised indicators: a whole series in, a float64 series of the same length out.

Bars before an indicator is defined (its warm-up) are NaN, at the same positions
TA-Lib leaves undefined. Leading NaNs in the input are skipped, as TA-Lib's Python
wrapper does, so indicators can be chained (``sma(rsi(close), 5)``). Inputs are
expected to be finite after that; a NaN inside the data poisons the outputs that
depend on it and is not otherwise specified.

Definitions are TA-Lib's (see each function); ``sniperbot.indicators`` documents the
few deliberate differences. Each function has a streaming twin in
:mod:`sniperbot.indicators.streaming` that agrees with it to 1e-9 (SMA, EMA, RSI,
ATR, MACD, Bollinger, stochastic and VWAP bit for bit).
"""

from __future__ import annotations

import numpy as np

from sniperbot.indicators._kernels import (
    FloatArray,
    as_series,
    check_period,
    chunk_length,
    first_valid,
    linear_filter,
    nan_array,
    rolling_max,
    rolling_min,
    same_length,
    window_mean,
    window_variance,
)
from sniperbot.indicators._kernels import flat_windows as _flat_windows

__all__ = [
    "atr",
    "bollinger",
    "ema",
    "macd",
    "rolling_volatility",
    "rsi",
    "sma",
    "stochastic",
    "true_range",
    "vwap",
    "wma",
]


def sma(x: object, period: int) -> FloatArray:
    """Simple moving average of the last ``period`` values; NaN for the first ``period - 1``."""
    period = check_period("period", period)
    x = as_series(x)
    out = nan_array(len(x))
    start = first_valid(x)
    if len(x) - start >= period:
        out[start + period - 1 :] = window_mean(x[start:], period)
    return out


def _ema_tail(v: FloatArray, period: int) -> FloatArray:
    """TA-Lib EMA of ``v`` (no NaNs) from index ``period - 1`` on, seeded with the first SMA."""
    seed = float(window_mean(v[:period], period)[0])
    tail = np.empty(len(v) - period + 1)
    tail[0] = seed
    # TA-Lib's k = 2 / (period + 1); the decay 1 - k is formed exactly as (p - 1) / (p + 1).
    tail[1:] = linear_filter(v[period:], seed, (period - 1) / (period + 1), 2.0 / (period + 1))
    return tail


def ema(x: object, period: int) -> FloatArray:
    """Exponential moving average, ``k = 2 / (period + 1)``, seeded with the SMA of the first ``period``."""
    period = check_period("period", period)
    x = as_series(x)
    out = nan_array(len(x))
    start = first_valid(x)
    if len(x) - start >= period:
        out[start + period - 1 :] = _ema_tail(x[start:], period)
    return out


def wma(x: object, period: int) -> FloatArray:
    """Linearly weighted moving average: weights 1..``period``, the newest value weighing most."""
    period = check_period("period", period)
    x = as_series(x)
    out = nan_array(len(x))
    start = first_valid(x)
    v = x[start:]
    if len(v) < period:
        return out
    out[start + period - 1 :] = _window_weighted_mean(v, period)
    return out


def _window_weighted_mean(v: FloatArray, period: int) -> FloatArray:
    """WMA of each full window, from chunk-local running sums (see ``window_variance``)."""
    from numpy.lib.stride_tricks import sliding_window_view

    count = len(v) - period + 1
    chunk = chunk_length(period)
    chunks = -(-count // chunk)
    need = chunks * chunk + period - 1
    padded = v if need == len(v) else np.concatenate([v, np.full(need - len(v), v[-1])])
    windows = sliding_window_view(padded, chunk + period - 1)[::chunk]
    ref = windows[:, :1]
    d = windows - ref
    local = np.arange(chunk + period - 1, dtype=np.float64)
    s1 = np.zeros((chunks, chunk + period))
    s2 = np.zeros((chunks, chunk + period))
    np.cumsum(d, axis=1, out=s1[:, 1:])
    np.cumsum(d * local, axis=1, out=s2[:, 1:])
    # The window starting at local index j weighs value m by m - j + 1.
    starts = np.arange(chunk, dtype=np.float64) - 1.0
    weighted = (s2[:, period:] - s2[:, :chunk]) - starts * (s1[:, period:] - s1[:, :chunk])
    mean = ref + weighted / (period * (period + 1) / 2.0)
    result = mean.ravel()[:count]
    flat = _flat_windows(v, period)
    result[flat] = v[period - 1 :][flat]
    return result


def rsi(x: object, period: int = 14) -> FloatArray:
    """Wilder's RSI (TA-Lib): averages of gains and losses seeded with their plain means.

    ``100 * gain / (gain + loss)``; 0 where both averages are zero (a flat market), as
    TA-Lib returns. The first value is at index ``period``.
    """
    period = check_period("period", period)
    x = as_series(x)
    out = nan_array(len(x))
    start = first_valid(x)
    v = x[start:]
    if len(v) <= period:
        return out
    gains, losses = _gains_losses(v)
    avg_gain = _wilder(gains, period)
    avg_loss = _wilder(losses, period)
    out[start + period :] = _rsi_from_averages(avg_gain, avg_loss)
    return out


def _gains_losses(v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Upward and downward moves between consecutive values, both >= 0."""
    change = np.diff(v)
    return np.maximum(change, 0.0), np.maximum(-change, 0.0)


def _wilder(t: FloatArray, period: int) -> FloatArray:
    """Wilder's smoothing of ``t``: plain mean of the first ``period``, then ``(prev*(p-1) + t)/p``."""
    seed = float(np.cumsum(t[:period])[-1] / period)
    out = np.empty(len(t) - period + 1)
    out[0] = seed
    out[1:] = linear_filter(t[period:], seed, (period - 1) / period, 1.0 / period)
    return out


def _rsi_from_averages(avg_gain: FloatArray, avg_loss: FloatArray) -> FloatArray:
    """RSI from the smoothed gains and losses (0 where both are 0, as TA-Lib)."""
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = 100.0 * (avg_gain / total)
    value[total == 0.0] = 0.0
    return value


def macd(
    x: object, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD line, signal line and histogram, aligned as TA-Lib's MACD.

    Both EMAs start at index ``slow - 1``: the slow one is seeded with the SMA of the
    first ``slow`` values and the fast one with the SMA of the ``fast`` values ending
    there (so it is not ``ema(x, fast)``, whose seed is earlier). The signal line is
    the EMA of the MACD line seeded the same way; all three outputs start at index
    ``slow + signal - 2`` (TA-Lib's lookback).
    """
    fast = check_period("fast", fast)
    slow = check_period("slow", slow, minimum=2)
    signal = check_period("signal", signal)
    if fast >= slow:
        raise ValueError(f"fast must be less than slow, got fast={fast}, slow={slow}")
    x = as_series(x)
    n = len(x)
    line, sig, hist = nan_array(n), nan_array(n), nan_array(n)
    start = first_valid(x)
    v = x[start:]
    if len(v) < slow + signal - 1:
        return line, sig, hist
    slow_ema = _ema_tail(v, slow)
    fast_ema = _ema_tail(v[slow - fast :], fast)
    macd_line = fast_ema - slow_ema
    signal_line = _ema_tail(macd_line, signal)
    first = start + slow + signal - 2
    line[first:] = macd_line[signal - 1 :]
    sig[first:] = signal_line
    hist[first:] = line[first:] - signal_line
    return line, sig, hist


def bollinger(x: object, period: int = 20, k: float = 2.0) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger bands: SMA ± ``k`` population standard deviations of the last ``period`` values.

    Returns ``(upper, middle, lower)``; ``middle`` is exactly :func:`sma`.
    """
    period = check_period("period", period)
    k = float(k)
    x = as_series(x)
    n = len(x)
    upper, middle, lower = nan_array(n), nan_array(n), nan_array(n)
    start = first_valid(x)
    v = x[start:]
    if len(v) < period:
        return upper, middle, lower
    mid = window_mean(v, period)
    width = k * np.sqrt(window_variance(v, period, ddof=0))
    first = start + period - 1
    middle[first:] = mid
    upper[first:] = mid + width
    lower[first:] = mid - width
    return upper, middle, lower


def true_range(high: object, low: object, close: object) -> FloatArray:
    """True range: the largest of high - low, |high - previous close|, |low - previous close|."""
    h, lo, c = as_series(high, "high"), as_series(low, "low"), as_series(close, "close")
    n = same_length(high=h, low=lo, close=c)
    out = nan_array(n)
    start = first_valid(h, lo, c)
    if n - start >= 2:
        out[start + 1 :] = _true_range(h[start:], lo[start:], c[start:])
    return out


def _true_range(h: FloatArray, lo: FloatArray, c: FloatArray) -> FloatArray:
    """True range from the second bar on (it needs the previous close)."""
    previous = c[:-1]
    tr = h[1:] - lo[1:]
    np.maximum(tr, np.abs(previous - h[1:]), out=tr)
    np.maximum(tr, np.abs(lo[1:] - previous), out=tr)
    return tr


def atr(high: object, low: object, close: object, period: int = 14) -> FloatArray:
    """Average true range, Wilder-smoothed and seeded with the mean of the first ``period`` true ranges.

    The first value is at index ``period`` (the first true range needs a previous close).
    """
    period = check_period("period", period)
    h, lo, c = as_series(high, "high"), as_series(low, "low"), as_series(close, "close")
    n = same_length(high=h, low=lo, close=c)
    out = nan_array(n)
    start = first_valid(h, lo, c)
    if n - start <= period:
        return out
    tr = _true_range(h[start:], lo[start:], c[start:])
    out[start + period :] = _wilder(tr, period)
    return out


def stochastic(
    high: object,
    low: object,
    close: object,
    k_period: int = 14,
    d_period: int = 3,
    slowing: int = 3,
) -> tuple[FloatArray, FloatArray]:
    """Slow stochastic ``(%K, %D)``, as TA-Lib's ``STOCH`` with SMA smoothing.

    Fast %K is ``100 * (close - lowest low) / (highest high - lowest low)`` over the
    last ``k_period`` bars (0 when the range is zero, as TA-Lib); %K is its SMA over
    ``slowing`` bars and %D the SMA of %K over ``d_period`` bars. Both are NaN until
    ``%D`` is defined, at index ``k_period + slowing + d_period - 3``.
    """
    k_period = check_period("k_period", k_period)
    d_period = check_period("d_period", d_period)
    slowing = check_period("slowing", slowing)
    h, lo, c = as_series(high, "high"), as_series(low, "low"), as_series(close, "close")
    n = same_length(high=h, low=lo, close=c)
    k_out, d_out = nan_array(n), nan_array(n)
    start = first_valid(h, lo, c)
    lookback = k_period + slowing + d_period - 3
    if n - start <= lookback:
        return k_out, d_out
    fast_k = _fast_k(h[start:], lo[start:], c[start:], k_period)
    slow_k = window_mean(fast_k, slowing)
    slow_d = window_mean(slow_k, d_period)
    k_out[start + lookback :] = slow_k[d_period - 1 :]
    d_out[start + lookback :] = slow_d
    return k_out, d_out


def _fast_k(h: FloatArray, lo: FloatArray, c: FloatArray, period: int) -> FloatArray:
    """Fast %K from index ``period - 1`` on, with TA-Lib's operation order."""
    highest = rolling_max(h, period)
    lowest = rolling_min(lo, period)
    scale = (highest - lowest) / 100.0
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (c[period - 1 :] - lowest) / scale
    value[scale == 0.0] = 0.0
    return value


def vwap(high: object, low: object, close: object, volume: object) -> FloatArray:
    """Volume-weighted average typical price ``(high + low + close) / 3``, cumulative from the first bar.

    NaN while no volume has traded yet. Not a TA-Lib function; anchored at the start
    of the series (pass a session's slice for a session VWAP).
    """
    h, lo, c = as_series(high, "high"), as_series(low, "low"), as_series(close, "close")
    vol = as_series(volume, "volume")
    n = same_length(high=h, low=lo, close=c, volume=vol)
    out = nan_array(n)
    start = first_valid(h, lo, c, vol)
    if start >= n:
        return out
    typical = (h[start:] + lo[start:] + c[start:]) / 3.0
    traded = np.cumsum(typical * vol[start:])
    volume_so_far = np.cumsum(vol[start:])
    with np.errstate(invalid="ignore", divide="ignore"):
        value = traded / volume_so_far
    value[volume_so_far == 0.0] = np.nan
    out[start:] = value
    return out


def rolling_volatility(x: object, period: int) -> FloatArray:
    """Sample standard deviation (divisor ``period - 1``) of the last ``period`` log returns.

    Per bar, not annualised (multiply by ``sqrt(bars per year)``). Log returns are
    ``ln(x[i] / x[i-1])``, so prices must be > 0. The first value is at index ``period``.
    """
    period = check_period("period", period, minimum=2)
    x = as_series(x)
    out = nan_array(len(x))
    start = first_valid(x)
    v = x[start:]
    if len(v) <= period:
        return out
    returns = np.log(v[1:] / v[:-1])
    out[start + period :] = np.sqrt(window_variance(returns, period, ddof=1))
    return out
