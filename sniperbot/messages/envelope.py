"""The envelope every message travels in, and the one codec for it.

Wire format: msgpack of an array ``[topic, sender, incarnation, seq, ts_ns, payload, mac]``
where ``payload`` is a map tagged by its field ``t``. The envelope evolves append-only:
new fields go at the end, with defaults, so old and new peers interoperate; a message
without a tag is sent as the six-element array (exactly the bytes of wire version 1).
``mac`` is the 16-byte authentication tag of a message that carries authority (see
:mod:`sniperbot.transport.auth`); it is the last bytes of the frame and covers all before it.
"""

from __future__ import annotations

import msgspec

from sniperbot.messages.chain import NewPool, TokenSafetyReport
from sniperbot.messages.control import (
    Ack,
    ActorError,
    BreakerChanged,
    Crash,
    Heartbeat,
    PortfolioSnapshot,
    Ready,
    RiskStatus,
    SetTradingState,
    SnapshotEnd,
    SnapshotRequest,
    Stop,
)
from sniperbot.messages.market import Bar, FeedStatus, MarketRules, OrderBook, Quote, TradeTick
from sniperbot.messages.metrics import MetricsSnapshot
from sniperbot.messages.orders import CancelOrder, Fill, Order, OrderIntent, OrderUpdate
from sniperbot.messages.signals import AnalyserStatus, Post, Signal
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport, VenueStatus

WIRE_VERSION = 1

Payload = (
    TradeTick
    | Quote
    | Bar
    | OrderIntent
    | Order
    | OrderUpdate
    | Fill
    | CancelOrder
    | Heartbeat
    | Ready
    | Stop
    | Ack
    | PortfolioSnapshot
    | RiskStatus
    | SetTradingState
    | BreakerChanged
    | SnapshotRequest
    | SnapshotEnd
    | Crash
    | ActorError
    | VenueOrderQuery
    | VenueOrderReport
    | VenueEvents
    | OrderBook
    | FeedStatus
    | VenueStatus
    | MarketRules
    | MetricsSnapshot
    | TokenSafetyReport
    | NewPool
    | Signal
    | Post
    | AnalyserStatus
)


class Envelope(msgspec.Struct, frozen=True, array_like=True):
    """Routing and ordering data around one payload.

    ``seq`` increases by one per message within one (``sender``, ``incarnation``);
    receivers use the triple as the message id.
    """

    topic: str
    sender: str
    incarnation: int
    seq: int
    ts_ns: int
    payload: Payload
    mac: bytes = b""


class InvalidFrame(ValueError):
    """A frame that is not a valid envelope; ``reason`` says why (msgspec's words and path)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode an envelope to its wire bytes."""
    if envelope.mac:
        return _encoder.encode(envelope)
    # msgspec writes every field of an array-like struct; without a tag, the six of version 1.
    e = envelope
    return _encoder.encode((e.topic, e.sender, e.incarnation, e.seq, e.ts_ns, e.payload))


def decode_envelope(frame: bytes | memoryview) -> Envelope:
    """Decode wire bytes to an envelope, raising :class:`InvalidFrame` with the reason.

    This is the one gate for bytes from a socket, so it turns *every* failure into
    :class:`InvalidFrame`: besides msgspec's ``DecodeError``, a well-formed frame can
    raise ``RecursionError`` (deep nesting, even in a field that is skipped),
    ``MemoryError`` (a huge collection), ``OverflowError`` or ``ValueError``/
    ``UnicodeDecodeError``. Callers catch only ``InvalidFrame``; an escaped exception
    would kill the actor or the node on one hostile frame.
    """
    try:
        return _decoder.decode(frame)
    except msgspec.DecodeError as e:
        raise InvalidFrame(str(e)) from None
    except RecursionError:
        raise InvalidFrame("nested too deeply") from None
    except Exception as e:  # MemoryError, OverflowError, ValueError, ...: any undecodable frame
        raise InvalidFrame(f"undecodable frame ({type(e).__name__})") from None
