"""The exchange's candles as bars, to warm a strategy the node has too few bars of its own for.

A strategy actor on a ccxt venue calls :func:`fetch_bars` at start when the node's bar store
(:mod:`sniperbot.market.bar_store`) holds fewer than its ``warmup_bars()``: public REST
``fetch_ohlcv`` at the exchange timeframe equal to the strategy's bar interval, through the
venue's shared rate budget. Only candles that closed before the current bar are used. An
interval the exchange has no timeframe for (e.g. 0.2 s), or an exchange that does not answer
within the timeout, leaves the strategy with the node's own bars (logged by the caller).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sniperbot.messages import Bar
from sniperbot.venues.ccxt.markets import spot_options
from sniperbot.venues.ccxt.ratelimit import PUBLIC_KEY_NAME, open_limited
from sniperbot.venues.ccxt.urls import rebase_urls

HISTORY_TIMEOUT_MS = 5_000


class NoHistory(Exception):
    """The exchange cannot give candles for this interval (the reason is the message)."""


def timeframe_for(ex: Any, interval_s: float) -> str:
    """The exchange's timeframe of exactly ``interval_s`` seconds; NoHistory if it has none."""
    for timeframe in getattr(ex, "timeframes", None) or {}:
        if abs(ex.parse_timeframe(timeframe) - interval_s) < 1e-9:
            return str(timeframe)
    raise NoHistory(f"{ex.id} has no {interval_s:g} s candles")


def fetch_bars(
    source: dict[str, Any],
    run_dir: Path,
    venue: str,
    symbol: str,
    interval_s: float,
    count: int,
    before_ns: int,
) -> list[Bar]:
    """The last ``count`` closed exchange candles before ``before_ns`` as bars (oldest first)."""
    import ccxt

    config = {"timeout": HISTORY_TIMEOUT_MS, "options": spot_options(source["exchange"])}
    ex = open_limited(
        getattr(ccxt, source["exchange"]), run_dir, venue, source.get("keys") or PUBLIC_KEY_NAME, config
    )
    if source.get("sandbox"):
        ex.set_sandbox_mode(True)
    rebase_urls(ex, source.get("rest_url"), source.get("ws_url"))
    timeframe = timeframe_for(ex, interval_s)
    try:
        rows = ex.fetch_ohlcv(symbol, timeframe, limit=min(1000, count + 2))
    except ccxt.BaseError as e:
        raise NoHistory(f"fetch_ohlcv failed ({type(e).__name__})") from None
    bars = [
        Bar(
            venue,
            symbol,
            interval_s,
            int(t) * 1_000_000,
            float(o),
            float(h),
            float(lo),
            float(c),
            float(v or 0.0),
        )
        for t, o, h, lo, c, v in rows
        if int(t) * 1_000_000 < before_ns
    ]
    return bars[-count:]
