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


VENUE_CONNECTIONS = ("connecting", "ok", "down", "banned", "simulated")
"""What :attr:`VenueStatus.connection` may say: ``connecting`` (no answer from the exchange yet),
``ok`` (the last call was answered), ``down`` (several calls in a row failed), ``banned`` (the
exchange banned us, HTTP 418, until :attr:`VenueStatus.banned_until_ns`), ``simulated`` (the
paper gateway: there is no exchange to lose)."""


class VenueStatus(Message, tag="venue_status"):
    """A venue gateway's health, reconciliation state and balances, published about once a second.

    Only the venue's own gateway (``gateway.<venue>`` or ``paper.<venue>``) may say it: the node
    opens the venue's breaker on it (:meth:`sniperbot.node.Node.on_venue_status`). ``reconciled``
    is True once a reconciliation (every unfinished order looked up, the account's open orders,
    the balances) completed since the gateway started and since the connection was last down or
    banned; the venue trades only then. ``last_failure`` is an error *class* name (a ccxt message
    may quote a signed request). ``foreign_orders`` counts orders seen on the account that
    sniperbot did not place. ``balances`` are totals per asset from the exchange (empty where the
    gateway has none), ``drift`` per asset is the exchange's balance change since the baseline
    minus the net of the journaled fills since then (see :mod:`sniperbot.venues.ccxt.gateway`).
    """

    venue: str
    connection: str
    reconciled: bool
    last_reconciliation_ns: int = 0
    last_failure: str = ""
    last_failure_ns: int = 0
    banned_until_ns: int = 0
    ban_reason: str = ""
    open_orders: int = 0
    foreign_orders: int = 0
    balances: dict[str, float] = {}
    drift: dict[str, float] = {}
    account: str = ""  # the venue's own account where it is public (an EVM wallet's address); never a key
    drift_since_ns: int = 0
    ts_ns: int = 0
