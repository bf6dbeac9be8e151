"""Streaming indicators for live use: one value in, the indicator's current value out, O(1).

Each class is the twin of the same-named function in
:mod:`sniperbot.indicators.vectorised`: fed the same series value by value, ``update``
returns what the function returns at that index (NaN during warm-up, leading NaNs
skipped). SMA, EMA, RSI, ATR, MACD, Bollinger, the stochastic and VWAP repeat the
function's arithmetic operation for operation, so the two are bit-identical (a
strategy's crossover then trades identically in a backtest and live); WMA and the
rolling volatility (``math.log`` vs ``np.log``) agree to ~1e-14 relative.

The last result is kept in ``value`` and ``ready`` says whether it is defined.
"""

from __future__ import annotations

import math
from collections import deque

from sniperbot.indicators._kernels import LinearFilter, WindowMean, WindowVariance, check_period

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
]

_NAN = math.nan


class Sma(WindowMean):
    """Simple moving average of the last ``period`` values."""

    __slots__ = ()

    def __init__(self, period: int) -> None:
        super().__init__(check_period("period", period))

    @property
    def ready(self) -> bool:
        """Whether the average is defined (warm-up is over)."""
        return self.value == self.value


class Ema:
    """Exponential moving average, seeded with the SMA of the first ``period`` values (TA-Lib)."""

    __slots__ = ("_filter", "_seed", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = check_period("period", period)
        self._seed = WindowMean(self.period)
        self._filter: LinearFilter | None = None
        self.value = _NAN

    @property
    def ready(self) -> bool:
        """Whether the average is defined (warm-up is over)."""
        return self._filter is not None

    def update(self, value: float) -> float:
        """Add a value; the average, NaN during warm-up."""
        f = self._filter
        if f is not None:
            self.value = result = f.update(value)
            return result
        result = self._seed.update(value)
        if result == result:
            p = self.period
            self._filter = LinearFilter(result, (p - 1) / (p + 1), 2.0 / (p + 1))
            self.value = result
        return result


class Wma:
    """Linearly weighted moving average (weights 1..``period``, newest heaviest); amortised O(1).

    Keeps the plain and the weighted window sums as TA-Lib does, and re-sums them
    exactly once every ``period`` values so rounding cannot build up.
    """

    __slots__ = ("_count", "_last", "_pos", "_ring", "_run", "_since", "_sum", "_weighted", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = check_period("period", period)
        self._ring = [0.0] * self.period
        self._pos = 0
        self._count = 0
        self._sum = 0.0
        self._weighted = 0.0
        self._since = 0
        self._last = _NAN
        self._run = 0
        self.value = _NAN

    @property
    def ready(self) -> bool:
        """Whether the average is defined (warm-up is over)."""
        return self.value == self.value

    def update(self, value: float) -> float:
        """Add a value; the average, NaN during warm-up."""
        if value != value and self._count == 0:
            return _NAN
        p = self.period
        if value == self._last:
            self._run += 1
        else:
            self._run = 1
            self._last = value
        ring = self._ring
        pos = self._pos
        old = ring[pos]
        ring[pos] = value
        self._pos = 0 if pos + 1 == p else pos + 1
        self._count += 1
        if self._count < p:
            return _NAN
        self._since += 1
        if self._count == p or self._since >= p:
            self._since = 0
            ordered = ring[self._pos :] + ring[: self._pos]  # oldest first
            self._sum = math.fsum(ordered)
            self._weighted = math.fsum(w * x for w, x in enumerate(ordered, start=1))
        else:
            # Every weight drops by one (the dropped value's from 1 to 0), the new one weighs p.
            self._weighted += p * value - self._sum
            self._sum += value - old
        if self._run >= p:
            self.value = value
        else:
            self.value = self._weighted / (p * (p + 1) / 2.0)
        return self.value


class Rsi:
    """Wilder's RSI (TA-Lib), 0 while both averages are zero; first value after ``period + 1`` values."""

    __slots__ = ("_count", "_gain", "_gain_sum", "_loss", "_loss_sum", "_previous", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period("period", period)
        self._previous = _NAN
        self._count = 0
        self._gain_sum = 0.0
        self._loss_sum = 0.0
        self._gain: LinearFilter | None = None
        self._loss: LinearFilter | None = None
        self.value = _NAN

    @property
    def ready(self) -> bool:
        """Whether the RSI is defined (warm-up is over)."""
        return self._gain is not None

    def update(self, value: float) -> float:
        """Add a price; the RSI, NaN during warm-up."""
        if self._count == 0:
            if value != value:
                return _NAN
            self._count = 1
            self._previous = value
            return _NAN
        change = value - self._previous
        self._previous = value
        gain = change if change > 0.0 else 0.0
        loss = -change if change < 0.0 else 0.0
        g, lo = self._gain, self._loss
        if g is not None and lo is not None:
            avg_gain = g.update(gain)
            avg_loss = lo.update(loss)
        else:
            self._count += 1
            self._gain_sum += gain
            self._loss_sum += loss
            if self._count <= self.period:
                return _NAN
            p = self.period
            avg_gain = self._gain_sum / p
            avg_loss = self._loss_sum / p
            self._gain = LinearFilter(avg_gain, (p - 1) / p, 1.0 / p)
            self._loss = LinearFilter(avg_loss, (p - 1) / p, 1.0 / p)
        total = avg_gain + avg_loss
        self.value = result = 100.0 * (avg_gain / total) if total != 0.0 else 0.0
        return result


class Macd:
    """MACD line, signal line and histogram, aligned as TA-Lib's MACD (see ``vectorised.macd``)."""

    __slots__ = ("_count", "_fast", "_signal", "_slow", "fast", "signal", "slow", "value")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast = check_period("fast", fast)
        self.slow = check_period("slow", slow, minimum=2)
        self.signal = check_period("signal", signal)
        if self.fast >= self.slow:
            raise ValueError(f"fast must be less than slow, got fast={fast}, slow={slow}")
        self._fast = Ema(self.fast)
        self._slow = Ema(self.slow)
        self._signal = Ema(self.signal)
        self._count = 0
        self.value: tuple[float, float, float] = (_NAN, _NAN, _NAN)

    @property
    def ready(self) -> bool:
        """Whether the outputs are defined (warm-up is over)."""
        return self._signal.ready

    def update(self, value: float) -> tuple[float, float, float]:
        """Add a price; ``(macd, signal, histogram)``, NaN during warm-up."""
        if value != value and self._count == 0:
            return self.value
        self._count += 1
        slow = self._slow.update(value)
        # The fast EMA starts late so that its seed window ends where the slow one's does.
        if self._count <= self.slow - self.fast:
            return self.value
        fast = self._fast.update(value)
        if slow != slow:
            return self.value
        line = fast - slow
        signal = self._signal.update(line)
        if signal != signal:
            return self.value
        self.value = result = (line, signal, line - signal)
        return result


class Bollinger:
    """Bollinger bands ``(upper, middle, lower)``: SMA ± ``k`` population standard deviations."""

    __slots__ = ("_mean", "_variance", "k", "period", "value")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.period = check_period("period", period)
        self.k = float(k)
        self._mean = Sma(self.period)
        self._variance = WindowVariance(self.period, ddof=0)
        self.value: tuple[float, float, float] = (_NAN, _NAN, _NAN)

    @property
    def ready(self) -> bool:
        """Whether the bands are defined (warm-up is over)."""
        return self._mean.ready

    def update(self, value: float) -> tuple[float, float, float]:
        """Add a price; ``(upper, middle, lower)``, NaN during warm-up."""
        if value != value and self._mean._count == 0:
            return self.value
        middle = self._mean.update(value)
        variance = self._variance.update(value)
        if middle != middle:
            return self.value
        width = self.k * math.sqrt(variance)
        self.value = result = (middle + width, middle, middle - width)
        return result


class TrueRange:
    """True range: largest of high - low, |high - previous close|, |low - previous close|."""

    __slots__ = ("_previous", "value")

    def __init__(self) -> None:
        self._previous = _NAN
        self.value = _NAN

    @property
    def ready(self) -> bool:
        """Whether a true range is defined (a previous close is known)."""
        return self.value == self.value

    def update(self, high: float, low: float, close: float) -> float:
        """Add a bar; its true range, NaN for the first bar."""
        previous = self._previous
        if previous != previous:
            if high == high and low == low and close == close:
                self._previous = close
            return _NAN
        self._previous = close
        tr = high - low
        up = abs(previous - high)
        down = abs(low - previous)
        if up > tr:
            tr = up
        if down > tr:
            tr = down
        self.value = tr
        return tr


class Atr:
    """Average true range, Wilder-smoothed, seeded with the mean of the first ``period`` true ranges."""

    __slots__ = ("_count", "_filter", "_range", "_sum", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period("period", period)
        self._range = TrueRange()
        self._count = 0
        self._sum = 0.0
        self._filter: LinearFilter | None = None
        self.value = _NAN

    @property
    def ready(self) -> bool:
        """Whether the ATR is defined (warm-up is over)."""
        return self._filter is not None

    def update(self, high: float, low: float, close: float) -> float:
        """Add a bar; the ATR, NaN during warm-up."""
        tr = self._range.update(high, low, close)
        f = self._filter
        if f is not None:
            self.value = result = f.update(tr)
            return result
        if tr != tr:
            return _NAN
        self._count += 1
        self._sum += tr
        if self._count < self.period:
            return _NAN
        p = self.period
        seed = self._sum / p
        self._filter = LinearFilter(seed, (p - 1) / p, 1.0 / p)
        self.value = seed
        return seed


class _Extreme:
    """Running maximum (or minimum) of the last ``period`` values: a monotonic deque, amortised O(1)."""

    __slots__ = ("_count", "_queue", "_sign", "period")

    def __init__(self, period: int, maximum: bool) -> None:
        self.period = period
        self._sign = 1.0 if maximum else -1.0
        self._queue: deque[tuple[int, float]] = deque()
        self._count = 0

    def update(self, value: float) -> float:
        """Add a value; the window's extreme (over what it has seen so far)."""
        key = self._sign * value
        queue = self._queue
        while queue and queue[-1][1] <= key:
            queue.pop()
        queue.append((self._count, key))
        if queue[0][0] <= self._count - self.period:
            queue.popleft()
        self._count += 1
        return self._sign * queue[0][1]


class Stochastic:
    """Slow stochastic ``(%K, %D)``, TA-Lib's ``STOCH`` with SMA smoothing (see ``vectorised.stochastic``)."""

    __slots__ = ("_count", "_d", "_highest", "_k", "_lowest", "d_period", "k_period", "slowing", "value")

    def __init__(self, k_period: int = 14, d_period: int = 3, slowing: int = 3) -> None:
        self.k_period = check_period("k_period", k_period)
        self.d_period = check_period("d_period", d_period)
        self.slowing = check_period("slowing", slowing)
        self._highest = _Extreme(self.k_period, maximum=True)
        self._lowest = _Extreme(self.k_period, maximum=False)
        self._k = WindowMean(self.slowing)
        self._d = WindowMean(self.d_period)
        self._count = 0
        self.value: tuple[float, float] = (_NAN, _NAN)

    @property
    def ready(self) -> bool:
        """Whether %K and %D are defined (warm-up is over)."""
        return self.value[1] == self.value[1]

    def update(self, high: float, low: float, close: float) -> tuple[float, float]:
        """Add a bar; ``(%K, %D)``, NaN during warm-up."""
        if self._count == 0 and not (high == high and low == low and close == close):
            return self.value
        self._count += 1
        highest = self._highest.update(high)
        lowest = self._lowest.update(low)
        if self._count < self.k_period:
            return self.value
        scale = (highest - lowest) / 100.0
        fast_k = (close - lowest) / scale if scale != 0.0 else 0.0
        slow_k = self._k.update(fast_k)
        if slow_k != slow_k:
            return self.value
        slow_d = self._d.update(slow_k)
        if slow_d != slow_d:
            return self.value
        self.value = result = (slow_k, slow_d)
        return result


class Vwap:
    """Volume-weighted average typical price, cumulative from the first bar; NaN until volume trades."""

    __slots__ = ("_started", "_traded", "_volume", "value")

    def __init__(self) -> None:
        self._traded = 0.0
        self._volume = 0.0
        self._started = False
        self.value = _NAN

    @property
    def ready(self) -> bool:
        """Whether the VWAP is defined (some volume has traded)."""
        return self.value == self.value

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        """Add a bar; the VWAP so far."""
        if not self._started:
            if not (high == high and low == low and close == close and volume == volume):
                return _NAN
            self._started = True
        typical = (high + low + close) / 3.0
        self._traded += typical * volume
        self._volume += volume
        self.value = result = self._traded / self._volume if self._volume != 0.0 else _NAN
        return result


class RollingVolatility:
    """Sample standard deviation of the last ``period`` log returns, per bar (not annualised)."""

    __slots__ = ("_previous", "_variance", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = check_period("period", period, minimum=2)
        self._previous = _NAN
        self._variance = WindowVariance(self.period, ddof=1)
        self.value = _NAN

    @property
    def ready(self) -> bool:
        """Whether the volatility is defined (warm-up is over)."""
        return self.value == self.value

    def update(self, value: float) -> float:
        """Add a price (> 0); the volatility, NaN during warm-up."""
        previous = self._previous
        if previous != previous:
            if value == value:
                self._previous = value
            return _NAN
        self._previous = value
        variance = self._variance.update(math.log(value / previous))
        self.value = result = math.sqrt(variance) if variance == variance else _NAN
        return result
