"""Order flow: what strategies want, what the executor did, what the venue filled."""

from __future__ import annotations

import time
from typing import Literal

from sniperbot.messages.base import Message
from sniperbot.messages.market import Side

OrderType = Literal["market", "limit", "stop"]
OrderStatus = Literal["accepted", "rejected", "cancelled", "filled"]


def make_intent_id(strategy_id: str, intent_seq: int, node_life: str = "") -> str:
    """The one home of the intent / client order id format.

    ``f"{strategy_id}-{node_life}-{intent_seq}"`` in a live node, where ``node_life``
    is the node's start token (:func:`sniperbot.rundir.next_node_life`, 6 base36
    characters): ids are never reused across node lives, even if the journal was
    lost. Without a node life (the backtester: no venue) ``f"{strategy_id}-{intent_seq}"``.
    Exchanges limit client order ids to about 32-36 characters: a strategy id of up
    to ~20 characters keeps every id within that.
    """
    if node_life:
        return f"{strategy_id}-{node_life}-{intent_seq}"
    return f"{strategy_id}-{intent_seq}"


def parse_intent_seq(intent_id: str, strategy_id: str) -> int | None:
    """The ``intent_seq`` of an id made by :func:`make_intent_id` for ``strategy_id``, else None."""
    prefix = strategy_id + "-"
    if not intent_id.startswith(prefix):
        return None
    life, _, tail = intent_id[len(prefix) :].rpartition("-")
    if not (tail.isascii() and tail.isdigit()):
        return None
    if life and not (life.isascii() and life.isalnum()):
        return None
    return int(tail)


class OrderIntent(Message, tag="intent"):
    """A strategy's wish to trade; nothing is sent to a venue until the risk guard approves it.

    ``intent_id`` is deterministic (:func:`make_intent_id`: strategy id, node life,
    intent sequence), so a resent intent is recognised everywhere downstream.
    """

    intent_id: str
    strategy_id: str
    intent_seq: int
    venue: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = "market"
    limit_price: float | None = None
    reduce_only: bool = False
    ts_ns: int = 0
    stop_price: float | None = None  # trigger price of a stop order


class Order(Message, tag="order"):
    """An approved order as the executor journals and sends it to the venue."""

    client_order_id: str
    intent_id: str
    strategy_id: str
    venue: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = "market"
    limit_price: float | None = None
    reduce_only: bool = False
    ts_ns: int = 0
    stop_price: float | None = None  # trigger price of a stop order
    #: The market time the strategy decided at (its intent's ``ts_ns``; 0 unknown). A replay's paper
    #: venue fills a market order against no book older than this (sniperbot.venues.sim.paper).
    decided_ts_ns: int = 0


class OrderUpdate(Message, tag="update"):
    """A change of an order's state: accepted, rejected (with the reason), cancelled, filled."""

    client_order_id: str
    strategy_id: str
    venue: str
    symbol: str
    status: OrderStatus
    reason: str = ""
    ts_ns: int = 0
    exchange_order_id: str = ""  # the venue's own id of the order, once the venue has said it


class Fill(Message, tag="fill"):
    """An execution against an order; ``fee`` is in quote currency, always >= 0.

    ``fill_id`` is unique in the journal (the venue scopes its ``trade_id`` by venue and symbol).
    """

    fill_id: str
    client_order_id: str
    strategy_id: str
    venue: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    liquidity: Literal["maker", "taker"] = "taker"
    ts_ns: int = 0
    trade_id: str = ""  # the venue's own id of this execution (an exchange's trade id)


class CancelOrder(Message, tag="cancel"):
    """A request to cancel an open order by its client order id."""

    client_order_id: str
    strategy_id: str
    venue: str
    symbol: str
    reason: str = ""
    ts_ns: int = 0


def update_of(
    order: Order, status: OrderStatus, reason: str = "", exchange_order_id: str = "", ts_ns: int = 0
) -> OrderUpdate:
    """An update of ``order`` on its venue (stamped now unless ``ts_ns``): the one way to make one."""
    return OrderUpdate(
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        venue=order.venue,
        symbol=order.symbol,
        status=status,
        reason=reason,
        ts_ns=ts_ns or time.time_ns(),
        exchange_order_id=exchange_order_id,
    )
