"""The strategy actor: builds bars from trades and runs one strategy instance on them."""

from __future__ import annotations

import time
from typing import Any

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.market.bars import BarBuilder
from sniperbot.messages import Envelope, Fill, Order, OrderUpdate, Quote, TradeTick
from sniperbot.messages import topics as topic
from sniperbot.messages.orders import parse_intent_seq
from sniperbot.strategies.loader import load_strategy

_BAR_CLOCK_S = 0.1


class StrategyActor(Actor):
    """Hosts one strategy: bars in, order intents out to the risk guard.

    On start it restores its position and its intent sequence from the
    journal, so client order ids stay unique across restarts. Indicator history
    is not restored: the strategy warms up again on fresh bars.
    """

    def __init__(
        self,
        ctx: ActorContext,
        *,
        strategy_id: str,
        strategy: str,
        venue: str,
        symbol: str,
        bar_interval_s: float,
        quantity: float,
        params: dict[str, Any],
        risk_guard: str = "risk_guard",
    ) -> None:
        super().__init__(ctx)
        self.strategy_id = strategy_id
        self.risk_guard = risk_guard
        self.strategy = load_strategy(strategy)(
            strategy_id=strategy_id, venue=venue, symbol=symbol, quantity=quantity, **params
        )
        self.bars = BarBuilder(venue, symbol, bar_interval_s)
        # The quote topic also brings the last quote at start (the node's last-value cache).
        self.topics = (
            topic.trade(venue, symbol),
            topic.quote(venue, symbol),
            topic.strategy_events(strategy_id),
        )
        self.last_quote: Quote | None = None
        self._seen_fills: set[str] = set()

    def on_start(self) -> None:
        """Restore position and intent sequence from the journal, then start the bar clock."""
        journal = self.ctx.journal
        position = 0.0
        last_seq = 0
        for _, record in journal.records():
            if record.strategy_id != self.strategy_id:
                continue
            if isinstance(record, Fill):
                self._seen_fills.add(record.fill_id)
                position += record.quantity if record.side == "buy" else -record.quantity
            elif isinstance(record, Order | OrderUpdate):
                seq = parse_intent_seq(record.client_order_id, self.strategy_id)
                last_seq = max(last_seq, seq or 0)
        # The node life makes ids unique across node lives even if the journal was lost.
        self.strategy.restore(position=position, next_intent_seq=last_seq + 1, node_life=self.ctx.node_life)
        self.ctx.every(_BAR_CLOCK_S, self._close_bars)

    def on_message(self, envelope: Envelope) -> None:
        """Trades build bars; fills and order updates keep the strategy's position true."""
        payload = envelope.payload
        if isinstance(payload, TradeTick):
            for bar in self.bars.on_trade(payload):
                self._submit(self.strategy.on_bar(bar))
        elif isinstance(payload, Fill):
            if payload.fill_id not in self._seen_fills:
                self._seen_fills.add(payload.fill_id)
                self._submit(self.strategy.on_fill(payload))
        elif isinstance(payload, OrderUpdate):
            self.strategy.on_order_update(payload)
        elif isinstance(payload, Quote):
            self.last_quote = payload

    def _close_bars(self) -> None:
        for bar in self.bars.on_time(time.time_ns()):
            self._submit(self.strategy.on_bar(bar))

    def _submit(self, intents: list[Any]) -> None:
        for intent in intents:
            self.ctx.send(self.risk_guard, intent)
