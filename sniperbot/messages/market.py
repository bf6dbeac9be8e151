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
