"""Market data messages: what a venue tells us about prices."""

from __future__ import annotations

from typing import Literal

from sniperbot.messages.base import Message

Side = Literal["buy", "sell"]


class TradeTick(Message, tag="trade"):
    """One trade printed by a venue; ``side`` is the aggressor's side."""

    venue: str
    symbol: str
    price: float
    size: float
    side: Side
    trade_id: int
    ts_ns: int


class Quote(Message, tag="quote"):
    """Top of book: best bid and ask with their sizes."""

    venue: str
    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    ts_ns: int

    @property
    def mid(self) -> float:
        """Mid price between best bid and best ask."""
        return (self.bid + self.ask) / 2.0


class Bar(Message, tag="bar"):
    """An OHLCV bar over ``[start_ns, start_ns + interval_s)``, built from trades."""

    venue: str
    symbol: str
    interval_s: float
    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int = 0


class OrderBook(Message, tag="book"):
    """Top ``depth`` levels of a venue's order book, best first: ``[[price, size], ...]``.

    ``seq`` is the venue's book sequence (update id) when it has one, else 0. Published by live feeds
    on :func:`sniperbot.messages.topics.book`; strategies that only need the top use :class:`Quote`.
    """

    venue: str
    symbol: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    seq: int
    ts_ns: int


class FeedStatus(Message, tag="feed_status"):
    """A market-data feed's health and counters (market state: untagged, like quotes).

    ``stale`` is True while no websocket message arrived for the feed's ``stale_after_s`` (REST polling
    may still deliver quotes then); the risk guard refuses new exposure on a stale venue.
    ``reconnects`` counts websocket disconnects (drops, and reconnects forced by the watchdog), ``gaps``
    order-book sequence gaps, ``snapshots`` fresh book snapshots taken to repair one, ``stale_periods``
    transitions to stale, ``rest_polls`` REST fallback requests, ``backfilled`` trades published from REST
    (missed by the stream: during an outage, a gap, or while it was down) rather than the stream.
    """

    venue: str
    connected: bool
    stale: bool
    reconnects: int
    gaps: int
    snapshots: int
    stale_periods: int
    rest_polls: int
    last_message_ns: int
    ts_ns: int
    backfilled: int = 0  # defaulted: frames from before the field decode


class MarketRules(Message, tag="market_rules"):
    """A venue's trading rules for one symbol, as the exchange lists them (its markets, after loading).

    Published by live feeds once per symbol on :func:`sniperbot.messages.topics.market_rules` (the node's
    last-value cache replays it to a restarted subscriber); the risk guard rounds quantities down to
    ``amount_step`` and refuses what the exchange would refuse (``min_amount``, ``max_amount``,
    ``min_notional`` in quote currency). Zero (or None for ``max_amount``) means "no such rule". Venues
    without rules (the simulated one) publish none, and nothing changes for them.
    """

    venue: str
    symbol: str
    amount_step: float = 0.0  # lot size: a quantity is a whole number of steps
    price_tick: float = 0.0  # prices are rounded to it by the gateway
    min_amount: float = 0.0
    min_notional: float = 0.0  # quantity x price, in quote currency
    max_amount: float | None = None
    ts_ns: int = 0
