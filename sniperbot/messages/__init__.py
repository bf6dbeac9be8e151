"""The message vocabulary: every payload that crosses an actor boundary, and its envelope.

Payloads are frozen msgspec Structs with explicit tags (field ``t``); the
:class:`Envelope` carries one of them with its routing and ordering data.
"""

from sniperbot.messages.base import Message
from sniperbot.messages.chain import NewPool, TokenSafetyReport
from sniperbot.messages.control import (
    Ack,
    ActorError,
    BreakerChanged,
    Crash,
    Heartbeat,
    PortfolioSnapshot,
    Position,
    Ready,
    RiskStatus,
    SetTradingState,
    SnapshotEnd,
    SnapshotRequest,
    Stop,
)
from sniperbot.messages.envelope import (
    WIRE_VERSION,
    Envelope,
    InvalidFrame,
    Payload,
    decode_envelope,
    encode_envelope,
)
from sniperbot.messages.market import Bar, FeedStatus, MarketRules, OrderBook, Quote, Side, TradeTick
from sniperbot.messages.metrics import MetricsSnapshot
from sniperbot.messages.orders import (
    CancelOrder,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    OrderUpdate,
    update_of,
)
from sniperbot.messages.signals import SIGNAL_VERSION, AnalyserStatus, Post, Signal, subject_of
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport, VenueStatus

__all__ = [
    "SIGNAL_VERSION",
    "WIRE_VERSION",
    "Ack",
    "ActorError",
    "AnalyserStatus",
    "Bar",
    "BreakerChanged",
    "CancelOrder",
    "Crash",
    "Envelope",
    "FeedStatus",
    "Fill",
    "Heartbeat",
    "InvalidFrame",
    "MarketRules",
    "Message",
    "MetricsSnapshot",
    "NewPool",
    "Order",
    "OrderBook",
    "OrderIntent",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Payload",
    "PortfolioSnapshot",
    "Position",
    "Post",
    "Quote",
    "Ready",
    "RiskStatus",
    "SetTradingState",
    "Side",
    "Signal",
    "SnapshotEnd",
    "SnapshotRequest",
    "Stop",
    "TokenSafetyReport",
    "TradeTick",
    "VenueEvents",
    "VenueOrderQuery",
    "VenueOrderReport",
    "VenueStatus",
    "decode_envelope",
    "encode_envelope",
    "subject_of",
    "update_of",
]
