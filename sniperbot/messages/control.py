"""Control messages between actors and their supervisor, and node-wide status."""

from __future__ import annotations

from typing import Final, Literal, get_args

from sniperbot.messages.base import Message

# The closed set of trading states (one home): validated wherever one is decoded.
TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]
TRADING_STATES: Final = get_args(TradingState)


class Heartbeat(Message, tag="hb"):
    """I am alive: sent by every actor to its supervisor, and by the supervisor back.

    ``invalid_frames`` counts frames the actor dropped because they did not decode.
    """

    seq: int
    ts_ns: int
    invalid_frames: int = 0
    handled: int = 0


class Ready(Message, tag="ready"):
    """The actor has bound its sockets and is serving; published once per incarnation."""

    actor_id: str
    incarnation: int
    pid: int
    ts_ns: int


class Stop(Message, tag="stop"):
    """Stop in an orderly way (run ``on_stop``, flush, exit 0)."""

    reason: str = "shutdown"


class Ack(Message, tag="ack"):
    """Receipt of a reliable message identified by its sender's ``seq``."""

    seq: int


def position_key(venue: str, symbol: str) -> str:
    """The one home of the key of a position in ``admin status`` and the chaos checker: ``"sim:BTC/USDT"``.

    Venue names never contain ``:`` (:data:`sniperbot.config.ID_RULE`), so the first ``:``
    splits it back; BTC/USDT on two venues is two positions.
    """
    return f"{venue}:{symbol}"


class Position(Message, tag="position"):
    """A signed position in one symbol on one venue, with its average entry price and realised P&L."""

    symbol: str
    quantity: float
    avg_price: float
    realized_pnl: float
    unrealized_pnl: float = 0.0
    venue: str = ""  # empty only where there is no venue (the backtester's ledger)


class PortfolioSnapshot(Message, tag="portfolio"):
    """The portfolio's view, published periodically for the node and the operator."""

    positions: list[Position]
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    orders: int
    fills: int
    rejected: int
    ts_ns: int


class RiskStatus(Message, tag="risk"):
    """The risk guard's trading state and counters."""

    trading_state: str
    approved: int
    rejected: int
    ts_ns: int


class SetTradingState(Message, tag="set_trading_state"):
    """Operator command to the risk guard: ACTIVE, REDUCING or HALTED (anything else does not decode)."""

    state: TradingState
    reason: str = ""


class BreakerChanged(Message, tag="breaker"):
    """A circuit breaker changed state (closed, open, half_open); also an alert."""

    scope: str
    state: str
    reason: str
    trips: int
    cooldown_s: float
    ts_ns: int


class SnapshotRequest(Message, tag="snapshot_req"):
    """A (re)started actor asks the node for the last value of each topic it follows."""

    topics: list[str]


class SnapshotEnd(Message, tag="snapshot_end"):
    """The node sent every last value a :class:`SnapshotRequest` asked for (``values`` of them)."""

    values: int


class ActorError(Message, tag="actor_error"):
    """An actor's last words to the node: what it crashed on (class and place, never a message)."""

    error: str


class Crash(Message, tag="crash"):
    """Fault injection: the actor raises inside its own loop (``sniperbot admin chaos --signal CRASH``).

    Unlike a signal it works in every placement, threads included.
    """

    reason: str = "chaos"
