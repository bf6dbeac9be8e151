"""Executor <-> gateway traffic: what a venue answers about orders (the contract: ``sniperbot.venues.base``).

The executor sends :class:`~sniperbot.messages.orders.Order` and
:class:`~sniperbot.messages.orders.CancelOrder` to the venue's gateway actor's inbox and asks
about one order with :class:`VenueOrderQuery`; the venue answers with
:class:`VenueEvents` (what just happened: accepted, rejected, filled, cancelled,
with the fills) and :class:`VenueOrderReport` (everything it knows about one
order, for reconciliation after a restart). All of it travels on the reliable
inbox path, so each message takes effect once.
"""

from __future__ import annotations

from sniperbot.messages.base import Message
from sniperbot.messages.orders import Fill, OrderUpdate


class VenueOrderQuery(Message, tag="venue_query"):
    """What happened to the order with this client order id? (reconciliation)."""

    client_order_id: str
    venue: str


class VenueOrderReport(Message, tag="venue_report"):
    """The venue's answer to a :class:`VenueOrderQuery`, from its own ledger.

    ``known`` is False when the venue never received the order; otherwise
    ``status`` is its last status (``accepted`` while a limit order rests),
    ``reason`` the reason given with it, and ``fills`` every fill, in order.
    """

    client_order_id: str
    venue: str
    known: bool
    status: str = ""
    reason: str = ""
    fills: list[Fill] = []
    ts_ns: int = 0
    exchange_order_id: str = ""  # the venue's own id of the order, when it has one


class VenueEvents(Message, tag="venue_events"):
    """Updates and fills the venue recorded in one step, in the order they happened.

    The answer to an order or a cancel, or the fills of resting orders that a new
    quote crossed. The receiver journals them together (all or nothing).
    """

    venue: str
    events: list[OrderUpdate | Fill]
