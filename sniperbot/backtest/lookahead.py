"""Does a strategy peek? Decisions up to bar t must not change when the bars after t are removed.

For each cut point t (``cuts`` of them, spread over the data, the last bar included), the strategy
decides on bars ``0..t`` only and its decisions are compared with those it made on the whole data:

* the **vectorised** form (``decide_all``): the target exposure after each of bars ``0..t``;
* the **streaming** form (``decide`` on a fresh instance, bar by bar): the same, at fewer cut
  points (``streaming_cuts``, it costs a pass per cut), since a streaming strategy can only
  peek through state outside the bars it is given (a file, a global), which this catches too.

The first bar whose decision differs (over every cut) is ``first_bad_bar``; a strategy whose
streaming and vectorised forms disagree is reported too (``parity_bar``): the backtester's two
paths would then trade differently, which is not look-ahead but is as wrong.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from sniperbot.data import OHLCV
from sniperbot.messages import Bar
from sniperbot.strategies.base import Strategy


class LookaheadReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``sniperbot check-lookahead --json`` prints."""

    ok: bool
    first_bad_bar: int | None
    form: str | None  # "vectorised" or "streaming": where the first bad bar was found
    cut: int | None  # the cut point that showed it
    bars: int
    cuts: int
    streaming_cuts: int
    parity_bar: int | None  # first bar where streaming and vectorised decisions differ (None: they agree)
    vectorised: bool


def _cuts(n: int, count: int, first: int) -> list[int]:
    """``count`` cut points in ``[first, n - 1]``, evenly spread, the last bar included."""
    if n <= first:
        return [n - 1]
    return sorted({round(x) for x in np.linspace(first, n - 1, max(1, count))})


def streaming_exposure(cls: type[Strategy], params: dict[str, Any], bars: OHLCV, end: int) -> np.ndarray:
    """Target exposure after each of bars ``0..end`` from a fresh instance's ``on_bar`` (starting flat)."""
    strategy = cls("lookahead", "check", bars.symbol or "?", quantity=1.0, **params)  # fills never come
    interval_s = bars.timeframe_ns / 1e9
    out = np.zeros(end + 1)
    t, o, h, lo, c, v = (
        a[: end + 1].tolist() for a in (bars.time_ns, bars.open, bars.high, bars.low, bars.close, bars.volume)
    )
    for i in range(end + 1):
        bar = Bar("check", strategy.symbol, interval_s, int(t[i]), o[i], h[i], lo[i], c[i], v[i])
        strategy.on_bar(bar)  # not decide(): a strategy may read its own exposure, which on_bar keeps
        out[i] = strategy.exposure
    return out


def _vectorised(cls: type[Strategy], params: dict[str, Any], bars: OHLCV, end: int) -> np.ndarray:
    cut = slice(0, end + 1)
    return np.asarray(
        cls.target_exposure(
            bars.open[cut], bars.high[cut], bars.low[cut], bars.close[cut], bars.volume[cut], **params
        ),
        dtype=np.float64,
    )


def _first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    """The first index where two decision arrays differ (NaN equal to NaN), or None."""
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    bad = np.flatnonzero(~same)
    return int(bad[0]) if len(bad) else None


def check_lookahead(
    cls: type[Strategy], params: dict[str, Any], bars: OHLCV, cuts: int = 50, streaming_cuts: int = 8
) -> LookaheadReport:
    """Check ``cls`` with ``params`` on ``bars`` (see the module docstring)."""
    values = cls.validate_params(params)
    n = len(bars)
    if n < 2:
        raise ValueError("need at least 2 bars to check for look-ahead")
    first = min(n - 1, max(1, cls.warmup_bars_for(values)))
    found: tuple[int, str, int] | None = None

    def note(bad: int | None, form: str, cut: int) -> None:
        nonlocal found
        if bad is not None and (found is None or bad < found[0]):
            found = (bad, form, cut)

    vectorised = cls.has_vectorised()
    full_vector = _vectorised(cls, values, bars, n - 1) if vectorised else None
    if full_vector is not None:
        for cut in _cuts(n, cuts, first):
            note(
                _first_difference(_vectorised(cls, values, bars, cut), full_vector[: cut + 1]),
                "vectorised",
                cut,
            )
    full_stream = streaming_exposure(cls, values, bars, n - 1)
    stream_cuts = _cuts(n, streaming_cuts, first)
    for cut in stream_cuts[:-1]:  # the last cut is the full run itself
        note(
            _first_difference(streaming_exposure(cls, values, bars, cut), full_stream[: cut + 1]),
            "streaming",
            cut,
        )
    parity = None if full_vector is None else _first_difference(full_stream, full_vector)
    return LookaheadReport(
        ok=found is None,
        first_bad_bar=None if found is None else found[0],
        form=None if found is None else found[1],
        cut=None if found is None else found[2],
        bars=n,
        cuts=len(_cuts(n, cuts, first)) if vectorised else 0,
        streaming_cuts=max(0, len(stream_cuts) - 1),
        parity_bar=parity,
        vectorised=vectorised,
    )


__all__ = ["LookaheadReport", "check_lookahead", "streaming_exposure"]
