"""The simulated market feed actor: publishes quotes and trades of the sim venue."""

from __future__ import annotations

import time
from typing import Any

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import Quote
from sniperbot.messages import topics as topic
from sniperbot.venues.sim.market import SimMarket, SimSymbol

_MAX_CATCH_UP = 20  # ticks replayed after a stall; older ones are skipped as a real feed would


class SimFeed(Actor):
    """Publishes the deterministic simulated market, tick ``i`` at ``epoch + i * interval``.

    The tick index comes from the wall clock relative to the node's epoch, so a
    restarted feed resumes the same price path where it should be now (ticks
    that fell due while it was down are skipped, as with a real venue).
    """

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        seed: int,
        tick_interval_s: float,
        symbols: list[dict[str, Any]],
        epoch_ns: int,
    ) -> None:
        super().__init__(ctx)
        self.venue = venue
        self.market = SimMarket(venue, seed, [SimSymbol(**s) for s in symbols], tick_interval_s)
        self.interval_ns = int(tick_interval_s * 1e9)
        self.epoch_ns = epoch_ns
        self.next_index = max(0, (time.time_ns() - epoch_ns) // self.interval_ns)
        self._topics = {
            s["symbol"]: (topic.quote(venue, s["symbol"]), topic.trade(venue, s["symbol"])) for s in symbols
        }

    def on_start(self) -> None:
        """Publish the tick that is due now, then keep ticking."""
        self._tick()
        self.ctx.every(self.interval_ns / 1e9 / 2, self._tick)

    def _tick(self) -> None:
        due = (time.time_ns() - self.epoch_ns) // self.interval_ns
        if due < self.next_index:
            return
        self.next_index = max(self.next_index, due - _MAX_CATCH_UP + 1)
        while self.next_index <= due:
            ts_ns = self.epoch_ns + self.next_index * self.interval_ns
            for event in self.market.events_at(self.next_index, ts_ns):
                quote_topic, trade_topic = self._topics[event.symbol]
                self.ctx.publish(quote_topic if isinstance(event, Quote) else trade_topic, event)
            self.next_index += 1
