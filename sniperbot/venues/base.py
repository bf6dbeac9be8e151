"""The venue contract: what a feed and a gateway take and emit, and the config every venue shares.

A *venue* is a place orders go (an exchange, the simulated market, later a chain). In
the supervision tree each configured venue ``<name>`` is one ``rest_for_one`` subtree
``venue.<name>`` (breaker ``venue:<name>``) of three actors, started in this order:

====================  ==============================  ==================================================
actor id              what                            code
====================  ==============================  ==================================================
``feed.<name>``       market data                     the venue kind's feed (``sim``: ``SimFeed``)
``paper.<name>``      the gateway in paper mode:      ``sniperbot.venues.sim.gateway.PaperVenueActor``
                      fills against the feed's book   for *every* kind (paper is a mode, not a venue)
``gateway.<name>``    the gateway in live mode        the venue kind's (:meth:`VenueSection.live_gateway`)
``executor.<name>``   journal first, reconcile        ``sniperbot.execution.executor.Executor``, one
                                                      generic executor for every venue
====================  ==============================  ==================================================

Nothing else in the node knows which venue it watches: strategies, the risk guard and
the portfolio see only the messages below.

**Feed** (NautilusTrader's ``DataClient``): publishes on the bus, takes nothing.

=========================  ==============================  ==========================================
message                    topic                           required
=========================  ==============================  ==========================================
``messages.Quote``         ``md.<name>.quote.<symbol>.``   yes: best bid/ask with sizes (marks, risk
                                                           checks and paper fills need it)
``messages.TradeTick``     ``md.<name>.trade.<symbol>.``   yes: strategies build bars from trades
=========================  ==============================  ==========================================

``venue`` of every message is the configured venue name, ``symbol`` the config's
spelling (``BTC/USDT``), ``ts_ns`` the venue's event time. Each trade's ``trade_id``
increases per symbol.

**Gateway** (NautilusTrader's ``ExecutionClient``): its inbox talks to its executor
only (the trust table, :data:`sniperbot.transport.auth.AUTHORITY`, enforces it).

=============================  =========  ===================================================  =========
message                        direction  contract                                             required
=============================  =========  ===================================================  =========
``orders.Order``               in         place it once. An id the venue already has is        required
                                          answered ``rejected`` / :data:`DUPLICATE` (or with
                                          the order's real state), never executed again. An
                                          order type the venue cannot take is ``rejected`` /
                                          :data:`UNSUPPORTED_ORDER_TYPE`, never a crash.
``orders.CancelOrder``         in         cancel if open; a finished or unknown order is not   required
                                          answered ``rejected`` (that would release an order
                                          that in fact filled): no answer, or its real state
``venue.VenueOrderQuery``      in         answer with a ``VenueOrderReport``                   required
``venue.VenueEvents``          out        what happened, in order: ``OrderUpdate`` (accepted,  required
                                          rejected with a reason, cancelled, filled) and
                                          ``Fill`` (``fill_id`` unique at the venue and stable:
                                          the same execution always has the same id). Sent to
                                          the executor, also unasked (resting orders filling).
``venue.VenueOrderReport``     out        ``known=False`` if the venue never received that     required
                                          id; else its status, reason and *every* fill
``venue.VenueStatus``          out        on ``status.venue.<name>``, every ~1 s and on        required
                                          change: connection, reconciled, balances, drift
                                          (the node holds the venue's breaker open while a
                                          live venue is not reconciled)
=============================  =========  ===================================================  =========

Optional behaviour, stated by the gateway's docstring: cancel resting orders when it
restarts (the paper gateway does, reason :data:`VENUE_RESTART`, like an exchange's
cancel-on-disconnect), stop orders, partial fills.

The executor relies on exactly this: it journals an order before it sends it, asks
about every unfinished order after a restart (and waits for every answer before it
takes new orders), and journals each fill once by ``fill_id``. A gateway that keeps
the contract gets exactly-once orders and fills for free; ``tests/venues/conformance.py``
is the suite every gateway must pass.

**Config**: a venue kind is a :class:`VenueSection` subclass tagged on ``kind`` (a
msgspec tagged union, :data:`sniperbot.venues.config.VenueConfig`). To add one, copy
``sniperbot/venues/_template/`` (its README says how).

This module is a leaf (msgspec only): the node's config imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec

# Config field types of the node config and of every venue config (one home: here, since
# sniperbot.config imports the venue configs and so cannot be imported by them).
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]

VenueMode = Literal["paper", "live"]

#: Rejection reason: the client order id was used before at this venue.
DUPLICATE = "duplicate_client_order_id"
#: Rejection reason: the venue does not take this order type (e.g. ``stop`` on the paper venue).
UNSUPPORTED_ORDER_TYPE = "unsupported_order_type"
#: Cancel reason: the gateway restarted and cancelled what rested (cancel-on-disconnect).
VENUE_RESTART = "venue_restart"

#: Actor paths (``module:Class``) shared by every venue kind.
PAPER_GATEWAY = "sniperbot.venues.sim.gateway:PaperVenueActor"
EXECUTOR = "sniperbot.execution.executor:Executor"


class VenueSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    """What every ``[[venues]]`` entry has; each kind subclasses it with ``tag="<kind>"``.

    ``name`` is the venue id in topics, breakers, actor ids and the journal (the
    node config checks it against :data:`sniperbot.config.ID_RULE`). ``mode``:
    ``paper`` fills simulated orders against this venue's own market data, ``live``
    sends real orders (only kinds whose :attr:`supported_modes` include it).
    """

    name: str
    mode: VenueMode = "paper"

    #: Modes this kind supports (``sim`` has no live orders: there is nobody to send them to).
    supported_modes: ClassVar[tuple[str, ...]] = ("paper", "live")

    def symbol_names(self) -> list[str]:
        """The symbols this venue trades, in config order."""
        raise NotImplementedError

    def feed(self, epoch_ns: int) -> tuple[str, dict[str, Any]]:
        """The feed actor of this venue: ``("module:Class", args)``."""
        raise NotImplementedError

    def live_gateway(self) -> tuple[str, dict[str, Any]]:
        """The live gateway actor of this venue (``mode = "live"``): ``("module:Class", args)``."""
        raise NotImplementedError

    def paper_gateway_args(self) -> dict[str, Any]:
        """This kind's own arguments of the paper gateway (``mode = "paper"``), beside the node's fees."""
        return {}

    def keystore_entries(self) -> dict[str, tuple[str, str]]:
        """The keystore entries this venue names: config field -> (entry name, the kind the entry must hold:
        an exchange id, ``evm``; "" any). ``sniperbot run`` unlocks them before any process starts."""
        return {}

    def gateway_credentials(self, unlocked: Mapping[str, Any]) -> Any:
        """The one ``Credentials`` the node seals into this venue's live gateway launch (None: no key),
        built from the unlocked entries (entry name -> Credentials): by default the first entry named."""
        entries = list(self.keystore_entries().values())
        return unlocked.get(entries[0][0]) if entries else None

    def venue_actors(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Further actors of this venue's subtree, started after its executor, as ``(actor id,
        "module:Class", args)`` (an evm venue's token checker and pool watcher); none by default."""
        return []

    def strategy_actors(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Strategy actors this venue brings into the ``strategies`` supervisor, as ``(actor id
        "strategy.<strategy id>", "module:Class", args)`` (an evm venue's sniper); none by default."""
        return []

    def history_source(self) -> dict[str, Any] | None:
        """Where a strategy on this venue gets candles to warm on when the node has too few bars
        (args for the venue kind's history fetcher), or None: only the node's own bars."""
        return None

    def preflight(self) -> str | None:
        """Checks that need the venue itself, run by ``sniperbot run`` before any process starts.

        Raise ``ValueError("<field>: what")`` to refuse the config (exit 2, naming the field);
        return a warning to start anyway (e.g. the venue could not be reached), or None.
        """
        return None
