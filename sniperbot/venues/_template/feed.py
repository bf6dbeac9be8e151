"""The feed of a new venue kind: market data on the bus (copy, rename, fill in; see README.md).

Requirements (``sniperbot/venues/base.py`` has the whole contract):

==========================  ==========================================  =========
publishes                   topic                                       required
==========================  ==========================================  =========
``Quote``                   ``topic.quote(venue, symbol)``              yes
``TradeTick``               ``topic.trade(venue, symbol)``              yes
==========================  ==========================================  =========

Takes nothing from other actors. Reconnects by itself; a feed that raises is restarted
by its supervisor (and restarts the venue's gateway and executor: ``rest_for_one``).
"""

from __future__ import annotations

from sniperbot.actors.base import Actor, ActorContext


class TemplateFeed(Actor):
    """Publishes one venue's quotes and trades; actor id ``feed.<venue>``."""

    def __init__(self, ctx: ActorContext, *, venue: str, symbols: list[str]) -> None:
        super().__init__(ctx)
        self.venue = venue
        self.symbols = symbols

    def on_start(self) -> None:
        """Connect and subscribe; publish with ``self.ctx.publish(topic.quote(...), Quote(...))``."""
        raise NotImplementedError("connect to the venue's market data")
