"""Technical indicators, in a vectorised form for research and a streaming form for live use.

Vectorised functions take whole numpy arrays and return float64 arrays of the same
length, NaN during warm-up::

    sma(x, period)                      ema(x, period)            wma(x, period)
    rsi(x, period=14)                   atr(high, low, close, period=14)
    macd(x, fast=12, slow=26, signal=9) -> (macd, signal, hist)
    bollinger(x, period=20, k=2.0)      -> (upper, middle, lower)
    stochastic(high, low, close, k_period=14, d_period=3, slowing=3) -> (k, d)
    vwap(high, low, close, volume)      rolling_volatility(x, period)
    true_range(high, low, close)

Streaming classes (``Sma(period).update(value) -> float`` and so on, O(1) per value)
return, value by value, what the function returns at that index.

Definitions are TA-Lib's, and the tests compare against TA-Lib itself:

* SMA; EMA with ``k = 2 / (period + 1)`` seeded with the SMA of the first ``period``
  values; WMA with weights ``1..period``.
* RSI and ATR with Wilder's smoothing, seeded with the plain mean of the first
  ``period`` changes / true ranges (first value at index ``period``).
* MACD aligned as TA-Lib's ``MACD``: both EMAs start at ``slow - 1`` (the fast one
  seeded there, not at ``fast - 1``), the signal is the EMA of the MACD line, and all
  three outputs are NaN before ``slow + signal - 2``.
* Bollinger bands with the *population* standard deviation (TA-Lib's ``BBANDS``).
* Stochastic = TA-Lib ``STOCH(fastk=k_period, slowk=slowing, slowd=d_period)`` with
  SMA smoothing; %K and %D both start where %D is defined.

Deliberate differences from TA-Lib (all within TA-Lib's own rounding on ordinary data):

* Variance (Bollinger) is computed from deviations, not as ``E[x²] - E[x]²`` over
  running sums as TA-Lib does; TA-Lib's form loses ``eps * price² / variance`` to
  cancellation (1e-7 relative on BTC-priced minute bars), ours does not.
* A window whose values are all equal has its mean exactly equal to that value and
  its variance exactly 0 (TA-Lib leaves rounding dust). On a flat market two
  averages are then exactly equal, so a strict ``fast > slow`` cannot fire on dust.
* RSI is 0 when the average gain and loss are both exactly 0 (TA-Lib: when their
  sum is below 1e-8 in absolute terms, which also zeroes the RSI of sub-cent prices).
* MACD requires ``fast < slow`` (TA-Lib silently swaps them).

Not in TA-Lib: ``vwap`` (cumulative from the first bar, typical price
``(high + low + close) / 3``) and ``rolling_volatility`` (sample standard deviation,
divisor ``period - 1``, of ``period`` log returns; per bar, not annualised).

Accuracy: moving sums are differences of one running sum of ``x - x[0]``; their
error grows slowly with the series length (about 1e-12 relative on 130k BTC minute
bars). The EMA/Wilder recursions are evaluated block-wise in closed form, with the
rounding of the plain recursion but no Python loop.
"""

from sniperbot.indicators.streaming import (
    Atr,
    Bollinger,
    Ema,
    Macd,
    RollingVolatility,
    Rsi,
    Sma,
    Stochastic,
    TrueRange,
    Vwap,
    Wma,
)
from sniperbot.indicators.vectorised import (
    atr,
    bollinger,
    ema,
    macd,
    rolling_volatility,
    rsi,
    sma,
    stochastic,
    true_range,
    vwap,
    wma,
)

__all__ = [
    "Atr",
    "Bollinger",
    "Ema",
    "Macd",
    "RollingVolatility",
    "Rsi",
    "Sma",
    "Stochastic",
    "TrueRange",
    "Vwap",
    "Wma",
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
