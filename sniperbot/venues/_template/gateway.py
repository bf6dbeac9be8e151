"""The live gateway of a new venue kind (copy, rename, fill in; see README.md).

Requirements (``sniperbot/venues/base.py`` has the whole contract; the conformance
suite ``tests/venues/conformance.py`` checks it):

=====================  =========  ======================================================  ========
message                direction  contract                                                required
=====================  =========  ======================================================  ========
``Order``              in         place once; a known id is never executed again           yes
                                  (refuse ``duplicate_client_order_id`` or report its
                                  real state); an unsupported type is rejected
                                  ``unsupported_order_type``
``CancelOrder``        in         cancel if open; never answer ``rejected`` for a          yes
                                  finished or unknown order
``VenueOrderQuery``    in         answer ``VenueOrderReport``: ``known=False`` if never    yes
                                  received, else status, reason and every fill
``VenueEvents``        out        updates and fills in order, stable unique ``fill_id``    yes
=====================  =========  ======================================================  ========

Answers go to the sender (``envelope.sender``); unasked events (fills of resting
orders) go to ``executor``.
"""

from __future__ import annotations

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import Envelope


class TemplateGateway(Actor):
    """Places, cancels and looks up orders at the venue; actor id ``gateway.<venue>``."""

    inbox = True

    def __init__(self, ctx: ActorContext, *, venue: str, executor: str) -> None:
        super().__init__(ctx)
        self.venue = venue
        self.executor = executor

    def on_start(self) -> None:
        """Connect (and authenticate) before the executor's reconciliation queries arrive."""
        raise NotImplementedError("connect to the venue's trading API")

    def on_message(self, envelope: Envelope) -> None:
        """``Order``, ``CancelOrder`` and ``VenueOrderQuery`` from the executor."""
        raise NotImplementedError("place, cancel and look up orders")
