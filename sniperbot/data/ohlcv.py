"""The OHLCV container, timeframes and gap detection.

A bar's time is its **open** time, in integer nanoseconds since the Unix epoch (UTC).
Timeframes are written the way ccxt writes them: ``1s``, ``1m``, ``5m``, ``1h``,
``4h``, ``1d``, ``1w``, ``1M`` (a month counts as 30 days, as in ccxt), and any
``<n><unit>`` with ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``, ``M``.

Gaps are reported, never filled: a filled gap (a flat bar carrying the previous
close) would invent prices and volume that never traded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3_600 * NS_PER_S,
    "d": NS_PER_DAY,
    "w": 7 * NS_PER_DAY,
    "M": 30 * NS_PER_DAY,
    "y": 365 * NS_PER_DAY,
}
# Largest unit first, so 3_600 s is written "1h" and not "60m".
_FORMAT_UNITS = ("w", "d", "h", "m", "s", "ms", "us", "ns")
_TIMEFRAME = re.compile(r"^\s*(\d+)\s*(ns|us|ms|s|m|h|d|w|M|y)\s*$")


class DataError(ValueError):
    """Malformed or unusable market data; the message names the file, line and column."""

    def __init__(
        self, message: str, path: str | None = None, line: int | None = None, column: str | None = None
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}: "
        if line is not None:
            where += f"line {line}: "
        if column is not None:
            where += f"column {column!r}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.column = column
        self.reason = message


def parse_timeframe(timeframe: str) -> int:
    """Length of a timeframe such as ``"1m"`` or ``"4h"`` in nanoseconds."""
    match = _TIMEFRAME.match(timeframe)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"bad timeframe {timeframe!r}: expected <count><unit> such as 1m, 5m, 1h, 1d "
            "(units ms, s, m, h, d, w, M)"
        )
    return int(match.group(1)) * _UNIT_NS[match.group(2)]


def format_timeframe(step_ns: int) -> str:
    """The shortest ccxt-style name of a bar spacing (``60_000_000_000`` -> ``"1m"``)."""
    if step_ns <= 0:
        raise ValueError(f"a timeframe must be positive, got {step_ns} ns")
    for unit in _FORMAT_UNITS:
        size = _UNIT_NS[unit]
        if step_ns % size == 0:
            return f"{step_ns // size}{unit}"
    raise AssertionError("unreachable: every integer is a whole number of ns")


def infer_timeframe(time_ns: np.ndarray) -> str:
    """The timeframe of bars from the median spacing of their times ("" if under 2 bars)."""
    if len(time_ns) < 2:
        return ""
    # The median, not the minimum: a few irregular bars (an exchange's odd first bar,
    # a gap) must not change the answer.
    step = int(np.median(np.diff(time_ns)))
    if step <= 0:
        raise ValueError("bar times do not increase; cannot infer the timeframe")
    return format_timeframe(step)


def format_ns(ns: int) -> str:
    """A UTC time in nanoseconds as ``YYYY-MM-DD HH:MM[:SS[.fff]]`` for messages."""
    seconds, rem = divmod(int(ns), NS_PER_S)
    dt = datetime.fromtimestamp(seconds, tz=UTC)
    text = dt.strftime("%Y-%m-%d %H:%M:%S")
    if rem:
        text += f".{rem:09d}".rstrip("0")
    elif text.endswith(":00"):
        text = text[:-3]
    return text


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing bars: ``missing`` bars would have opened in ``[start_ns, end_ns)``.

    ``start_ns`` is the open time of the first missing bar (the last bar before the gap
    plus one timeframe); ``end_ns`` is the open time of the first bar after the gap, and
    ``index`` is that bar's position in the series.
    """

    start_ns: int
    end_ns: int
    missing: int
    index: int

    def __str__(self) -> str:
        plural = "" if self.missing == 1 else "s"
        return f"{format_ns(self.start_ns)} -> {format_ns(self.end_ns)} ({self.missing} missing bar{plural})"


def find_gaps(time_ns: np.ndarray, step_ns: int, calendar_months: bool = False) -> list[Gap]:
    """Every place where consecutive bars are more than one timeframe apart."""
    if step_ns <= 0 or len(time_ns) < 2:
        return []
    diffs = np.diff(time_ns)
    # Calendar months are 28-31 days long; a "1M" step (30 days) must not see gaps
    # between months of 31 days.
    tolerance = step_ns // 30 * 31 if calendar_months else step_ns
    where = np.flatnonzero(diffs > tolerance)
    gaps: list[Gap] = []
    for i in where.tolist():
        diff = int(diffs[i])
        if calendar_months:
            # 30.436875 days: the mean Gregorian month.
            missing = max(1, round(diff / (step_ns / 30 * 30.436875)) - 1)
        else:
            # Bars that are not on the grid still count whole missing slots (ceil - 1).
            missing = max(1, -(-diff // step_ns) - 1)
        gaps.append(Gap(int(time_ns[i]) + step_ns, int(time_ns[i + 1]), missing, i + 1))
    return gaps


def _column(values: Any, name: str, dtype: type) -> np.ndarray:
    array = np.ascontiguousarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"OHLCV.{name} must be 1-D, got shape {array.shape}")
    return array


@dataclass(frozen=True, eq=False, slots=True)
class OHLCV:
    """Bars of one symbol: column arrays of equal length, times strictly increasing.

    ``time_ns`` is each bar's open time (int64 ns, UTC); prices and volume are float64.
    ``timeframe`` is inferred from the median spacing when not given. ``source`` says
    where the bars came from (a path), for messages.
    """

    time_ns: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbol: str = ""
    timeframe: str = ""
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Frozen: the coerced arrays replace the given ones through object.__setattr__.
        object.__setattr__(self, "time_ns", _column(self.time_ns, "time_ns", np.int64))
        n = len(self.time_ns)
        for name in ("open", "high", "low", "close", "volume"):
            array = _column(getattr(self, name), name, np.float64)
            if len(array) != n:
                raise ValueError(f"OHLCV.{name} has {len(array)} values but time_ns has {n}")
            object.__setattr__(self, name, array)
        if n > 1 and not bool(np.all(np.diff(self.time_ns) > 0)):
            bad = int(np.flatnonzero(np.diff(self.time_ns) <= 0)[0]) + 1
            raise ValueError(f"OHLCV.time_ns must increase strictly; bar {bad} is not after bar {bad - 1}")
        if not self.timeframe:
            object.__setattr__(self, "timeframe", infer_timeframe(self.time_ns))
        else:
            parse_timeframe(self.timeframe)  # validates the name

    def __len__(self) -> int:
        return len(self.time_ns)

    def __repr__(self) -> str:
        span = f"{format_ns(self.start_ns)} -> {format_ns(self.end_ns)}" if len(self) else "empty"
        return f"OHLCV({self.symbol or '?'} {self.timeframe or '?'}, {len(self)} bars, {span})"

    def __getitem__(self, index: slice) -> OHLCV:
        """The bars of a slice (``ohlcv[100:200]``), sharing memory with this series."""
        if not isinstance(index, slice):
            raise TypeError("OHLCV supports slicing only (ohlcv[a:b]); index the arrays for single bars")
        return OHLCV(
            self.time_ns[index],
            self.open[index],
            self.high[index],
            self.low[index],
            self.close[index],
            self.volume[index],
            symbol=self.symbol,
            timeframe=self.timeframe,
            source=self.source,
        )

    @property
    def timeframe_ns(self) -> int:
        """Bar length in nanoseconds (0 if unknown: fewer than two bars and none declared)."""
        return parse_timeframe(self.timeframe) if self.timeframe else 0

    @property
    def start_ns(self) -> int:
        """Open time of the first bar."""
        return int(self.time_ns[0])

    @property
    def end_ns(self) -> int:
        """Open time of the last bar."""
        return int(self.time_ns[-1])

    def gaps(self) -> list[Gap]:
        """Places where bars are missing (see :class:`Gap`); nothing is filled."""
        return find_gaps(self.time_ns, self.timeframe_ns, self.timeframe.endswith("M"))

    def between(self, start_ns: int | None = None, end_ns: int | None = None) -> OHLCV:
        """The bars opening in ``[start_ns, end_ns)`` (either bound may be None)."""
        lo = 0 if start_ns is None else int(np.searchsorted(self.time_ns, start_ns, "left"))
        hi = len(self) if end_ns is None else int(np.searchsorted(self.time_ns, end_ns, "left"))
        return self[lo:hi]
