"""Numerical kernels shared by the vectorised and the streaming indicators.

Where a strategy compares two indicators (a crossover), the backtester's vectorised
path and the live node's streaming path must see the *same* floats, not merely close
ones, or a near-tie could trade in one and not the other. So the kernels here are
written so that a streaming class can repeat the exact sequence of IEEE operations
the vectorised form performs:

* window sums are differences of a running (sequential) sum, which ``np.cumsum``
  computes in order, one addition per value, just as a streaming update does;
* first-order recursions (EMA, Wilder smoothing) are evaluated block-wise in closed
  form (see :func:`linear_filter`), and :class:`LinearFilter` walks the same blocks
  one value at a time.
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = np.ndarray

# A block of the closed-form recursion spans a dynamic range of a**-block; 1e150 keeps
# every intermediate far from overflow and from subnormals, at full precision.
_BLOCK_LOG_RANGE = 150.0 * math.log(10.0)
_MAX_BLOCK = 1 << 16


def check_period(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_series(x: object, name: str = "x") -> FloatArray:
    """A 1-D contiguous float64 array of ``x`` (copied only when needed)."""
    array = np.ascontiguousarray(x, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def same_length(**series: FloatArray) -> int:
    """The common length of ``series``, or a ValueError naming the one that differs."""
    lengths = {name: len(s) for name, s in series.items()}
    first = next(iter(lengths.values()))
    for name, length in lengths.items():
        if length != first:
            raise ValueError(f"all inputs must have the same length; {lengths} ({name} differs)")
    return first


def first_valid(*series: FloatArray) -> int:
    """Index of the first bar where every series is not NaN (the length if there is none).

    Like TA-Lib's Python wrapper, leading NaNs are skipped: that is what lets one
    indicator be applied to another's output, warm-up included.
    """
    start = 0
    for s in series:
        if len(s) == 0:
            return 0
        if s[0] != s[0]:  # NaN: only then pay for the scan
            nan = np.isnan(s)
            start = max(start, int(np.argmin(nan)) if not nan.all() else len(s))
    return start


def nan_array(n: int) -> FloatArray:
    """An array of ``n`` NaNs."""
    return np.full(n, np.nan)


def flat_windows(v: FloatArray, period: int) -> np.ndarray:
    """For each full window of ``v`` (ending at ``period-1`` .. ``len-1``): all values equal.

    A flat window's mean is its value and its variance zero *exactly*; sums of
    floats would leave rounding dust there, and dust decides strict comparisons
    such as ``fast > slow`` on a market that did not move.
    """
    count = len(v) - period + 1
    if period == 1:
        return np.ones(count, dtype=bool)
    changes = np.empty(len(v), dtype=np.int32 if len(v) < 2**31 else np.int64)
    changes[0] = 0
    np.cumsum(v[1:] != v[:-1], out=changes[1:])
    return changes[period - 1 :] == changes[:count]


def window_mean(v: FloatArray, period: int) -> FloatArray:
    """Mean of each full window of ``v``: ``anchor + (S[i] - S[i-period]) / period``.

    ``S`` is the running sum of ``v - v[0]``; anchoring at the first value keeps the
    running sum small (prices hover around it), so the difference loses little.
    Flat windows return their value exactly. :class:`WindowMean` repeats this
    arithmetic one value at a time.
    """
    anchor = v[0]
    count = len(v) - period + 1
    running = np.subtract(v, anchor)
    np.cumsum(running, out=running)
    mean = np.empty(count)
    mean[0] = running[period - 1]
    np.subtract(running[period:], running[: count - 1], out=mean[1:])
    mean /= period
    mean += anchor
    np.copyto(mean, v[period - 1 :], where=flat_windows(v, period))
    return mean


class WindowMean:
    """Streaming twin of :func:`window_mean`: bit-identical output, O(1) per value.

    Leading NaNs are skipped (as the vectorised functions skip them); the last
    result is kept in ``value``.
    """

    __slots__ = ("_anchor", "_count", "_last", "_pos", "_ring", "_run", "_total", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        # _ring[k] holds the running sum written ``period`` values ago (0.0 at the start).
        self._ring = [0.0] * period
        self._pos = 0
        self._total = 0.0
        self._count = 0
        self._anchor = 0.0
        self._last = math.nan
        self._run = 0
        self.value = math.nan

    def update(self, value: float) -> float:
        """Add ``value``; the window's mean, NaN until ``period`` values are in."""
        # Locals and one write per field: this runs once per bar per average in live and
        # per-bar backtests, so it is kept tight.
        count = self._count
        if count == 0:
            if value != value:
                return math.nan
            self._anchor = value
        self._count = count = count + 1
        if value == self._last:
            self._run = run = self._run + 1
        else:
            self._run = run = 1
            self._last = value
        self._total = total = self._total + (value - self._anchor)
        pos = self._pos
        ring = self._ring
        oldest = ring[pos]
        ring[pos] = total
        period = self.period
        self._pos = 0 if pos + 1 == period else pos + 1
        if count < period:
            return math.nan
        if run >= period:
            self.value = value
        else:
            self.value = (total - oldest) / period + self._anchor
        return self.value


@lru_cache(maxsize=256)
def _block_tables(decay: float) -> tuple[FloatArray, FloatArray, list[float], list[float]]:
    """``decay**-j`` and ``decay**j`` for ``j = 1..block``, as arrays and as Python lists."""
    block = int(min(_MAX_BLOCK, max(1.0, _BLOCK_LOG_RANGE / -math.log(decay))))
    j = np.arange(1, block + 1, dtype=np.float64)
    grow = np.power(decay, -j)
    shrink = np.power(decay, j)
    return grow, shrink, grow.tolist(), shrink.tolist()


def linear_filter(t: FloatArray, y0: float, decay: float, gain: float) -> FloatArray:
    """``y[j] = decay * y[j-1] + gain * t[j]`` with ``y[-1] = y0``, for ``0 <= decay < 1``.

    No Python loop over values: within a block of ``B`` values the recursion has the
    closed form ``y[j] = decay**(j+1) * (c + cumsum(gain * t * decay**-(m+1)))`` where ``c``
    is the last output of the previous block, so a block is two multiplications and a
    ``cumsum``, and only the per-block carries ``c`` form a (short) sequential chain.
    ``B`` is chosen so ``decay**-B`` stays below 1e150. Rounding is of the order of the
    plain recursion's (about ``eps / (1 - decay)`` relative); about 30x faster than a
    Python loop.
    """
    m = len(t)
    if decay == 0.0:
        return gain * t
    grow, shrink, _, _ = _block_tables(decay)
    block = len(grow)
    blocks = -(-m // block)
    padded = t if blocks * block == m else np.concatenate([t, np.zeros(blocks * block - m)])
    scaled = (gain * padded).reshape(blocks, block) * grow
    np.cumsum(scaled, axis=1, out=scaled)
    ends = scaled[:, -1].tolist()
    last_shrink = float(shrink[-1])
    carries = [0.0] * blocks
    carry = float(y0)
    for k in range(blocks):
        carries[k] = carry
        carry = last_shrink * (carry + ends[k])
    y = shrink * (np.array(carries)[:, None] + scaled)
    return y.ravel()[:m]


class LinearFilter:
    """Streaming twin of :func:`linear_filter`: the same blocks, one value at a time."""

    __slots__ = ("_block", "_carry", "_grow", "_j", "_shrink", "_sum", "decay", "gain")

    def __init__(self, y0: float, decay: float, gain: float) -> None:
        self.decay = decay
        self.gain = gain
        self._carry = float(y0)
        self._sum = 0.0
        self._j = 0
        if decay == 0.0:
            self._grow: list[float] = []
            self._shrink: list[float] = []
            self._block = 0
        else:
            _, _, self._grow, self._shrink = _block_tables(decay)
            self._block = len(self._grow)

    def update(self, t: float) -> float:
        """The next output for input ``t``."""
        if self._block == 0:
            return self.gain * t
        j = self._j
        # The first term of a block is taken as-is, as np.cumsum does (0.0 + -0.0 is 0.0).
        term = (self.gain * t) * self._grow[j]
        s = term if j == 0 else self._sum + term
        y = self._shrink[j] * (self._carry + s)
        j += 1
        if j == self._block:
            self._carry = y
            self._sum = 0.0
            self._j = 0
        else:
            self._sum = s
            self._j = j
        return y


def rolling_max(v: FloatArray, period: int) -> FloatArray:
    """Maximum of each full window of ``v`` in O(n) (van Herk / Gil-Werman blocks)."""
    return _rolling_extreme(v, period, np.maximum, -np.inf)


def rolling_min(v: FloatArray, period: int) -> FloatArray:
    """Minimum of each full window of ``v`` in O(n) (van Herk / Gil-Werman blocks)."""
    return _rolling_extreme(v, period, np.minimum, np.inf)


def _rolling_extreme(v: FloatArray, period: int, pick: np.ufunc, fill: float) -> FloatArray:
    """A window's extreme is that of the suffix of its first block and the prefix of its last."""
    n = len(v)
    blocks = -(-n // period)
    padded = np.full(blocks * period, fill)
    padded[:n] = v
    grid = padded.reshape(blocks, period)
    prefix = pick.accumulate(grid, axis=1).ravel()
    suffix = pick.accumulate(grid[:, ::-1], axis=1)[:, ::-1].ravel()
    return pick(suffix[: n - period + 1], prefix[period - 1 : n])


def chunk_length(period: int) -> int:
    """Outputs per chunk of the chunked window sums: rounding grows with the chunk, speed shrinks."""
    return max(8 * period, 64)


def window_variance(v: FloatArray, period: int, ddof: int) -> FloatArray:
    """Variance (divisor ``period - ddof``) of each full window of ``v``, accurately.

    ``E[x²] - E[x]²`` over running sums cancels catastrophically on prices (1e5² vs
    a variance of 1e2). Here the series is cut into chunks of ``8 * period`` outputs
    (overlapping by ``period - 1`` inputs; at least 64) and each chunk's running sums are taken of
    deviations from the chunk's first value, so the cancellation is bounded by the
    chunk's spread, not by the price level or the series length. Flat windows give 0.
    """
    count = len(v) - period + 1
    chunk = chunk_length(period)
    chunks = -(-count // chunk)
    need = chunks * chunk + period - 1
    padded = v if need == len(v) else np.concatenate([v, np.full(need - len(v), v[-1])])
    windows = sliding_window_view(padded, chunk + period - 1)[::chunk]
    d = windows - windows[:, :1]
    s1 = np.zeros((chunks, chunk + period))
    s2 = np.zeros((chunks, chunk + period))
    np.cumsum(d, axis=1, out=s1[:, 1:])
    np.cumsum(d * d, axis=1, out=s2[:, 1:])
    w1 = s1[:, period:] - s1[:, :chunk]
    w2 = s2[:, period:] - s2[:, :chunk]
    var = ((w2 - w1 * w1 / period) / (period - ddof)).ravel()[:count]
    np.maximum(var, 0.0, out=var)
    var[flat_windows(v, period)] = 0.0
    return var


class WindowVariance:
    """Streaming twin of :func:`window_variance`: the same chunks, bit-identical, O(1) per value.

    A window is summed in the chunk its first value falls in, relative to that
    chunk's first value; since windows reach ``period - 1`` values past their chunk's
    end, two chunks are summed at once during that overlap.
    """

    __slots__ = ("_chunk", "_count", "_current", "_last", "_previous", "_run", "ddof", "period")

    def __init__(self, period: int, ddof: int) -> None:
        self.period = period
        self.ddof = ddof
        self._chunk = chunk_length(period)
        self._count = 0
        self._current: _ChunkSums | None = None
        self._previous: _ChunkSums | None = None
        self._last = math.nan
        self._run = 0

    def update(self, value: float) -> float:
        """Add ``value``; the window's variance, NaN until ``period`` values are in."""
        i = self._count
        self._count = i + 1
        if value == self._last:
            self._run += 1
        else:
            self._run = 1
            self._last = value
        period = self.period
        current = self._current
        if i % self._chunk == 0:
            self._previous = current
            self._current = current = _ChunkSums(i, value, period)
        assert current is not None
        current.add(value)
        previous = self._previous
        if previous is not None:
            if i - current.start < period - 1:
                previous.add(value)
            else:
                self._previous = previous = None
        first = i - period + 1  # the window's first value
        if first < 0:
            return math.nan
        sums = current if first >= current.start or previous is None else previous
        if self._run >= period:
            return 0.0
        w1 = sums.total - sums.lag_total
        w2 = sums.squares - sums.lag_squares
        variance = (w2 - w1 * w1 / period) / (period - self.ddof)
        return variance if variance > 0.0 else 0.0


class _ChunkSums:
    """Running sums of one chunk's deviations and squared deviations, with their values ``period`` ago."""

    __slots__ = (
        "_pos",
        "_ring_squares",
        "_ring_total",
        "lag_squares",
        "lag_total",
        "ref",
        "squares",
        "start",
        "total",
    )

    def __init__(self, start: int, ref: float, period: int) -> None:
        self.start = start
        self.ref = ref
        self.total = 0.0
        self.squares = 0.0
        self._ring_total = [0.0] * period
        self._ring_squares = [0.0] * period
        self._pos = 0
        self.lag_total = 0.0
        self.lag_squares = 0.0

    def add(self, value: float) -> None:
        """Add one value; ``lag_*`` become the sums before the current window's first value."""
        d = value - self.ref
        self.total += d
        self.squares += d * d
        pos = self._pos
        self.lag_total = self._ring_total[pos]
        self.lag_squares = self._ring_squares[pos]
        self._ring_total[pos] = self.total
        self._ring_squares[pos] = self.squares
        pos += 1
        self._pos = 0 if pos == len(self._ring_total) else pos
