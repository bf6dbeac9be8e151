"""The strategy actor: builds bars from trades and runs one strategy instance on them."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.journal import keys
from sniperbot.market.bar_store import BarStore
from sniperbot.market.bars import BarBuilder
from sniperbot.messages import Bar, Envelope, Fill, Order, OrderUpdate, Quote, TradeTick
from sniperbot.messages import topics as topic
from sniperbot.messages.orders import parse_intent_seq
from sniperbot.strategies.loader import load_strategy

_BAR_CLOCK_S = 0.1


class StrategyActor(Actor):
    """Hosts one strategy: bars in, order intents out to the risk guard.

    On start (and restart, and hot-add) it is **warmed** before it acts: the last
    ``warmup_bars()`` closed bars of its venue, symbol and interval from the node's bar
    store (:mod:`sniperbot.market.bar_store`, filled by every strategy actor as bars close)
    run through its decision without trading; then its own saved state (``on_load``) and
    its position and intent sequence (from the journal, so client order ids stay unique
    across restarts) are restored. A restarted strategy therefore decides on the next bar
    as one that never stopped would. Bars it builds are put in the store; its ``on_save``
    state is journaled after each bar when it changed.
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
        history: dict[str, Any] | None = None,
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
        self.venue = venue
        self.symbol = symbol
        self._saved: bytes | None = None
        self._catch_up_from: int | None = None
        self.history = history  # the venue's candle source (None: the node's own bars only)
        self._seen_fills: set[str] = set()

    def on_start(self) -> None:
        """Warm up, restore saved state, position and intent sequence, then start the bar clock."""
        journal = self.ctx.journal
        self.store = BarStore(journal)
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
        self._warm()  # first: the restored position, not the history, sets the current target
        # The node life makes ids unique across node lives even if the journal was lost.
        self.strategy.restore(position=position, next_intent_seq=last_seq + 1, node_life=self.ctx.node_life)
        saved = journal.get_state(keys.STRATEGY_STATE + self.strategy_id)
        if saved is not None:
            self.strategy.on_load(msgspec.json.decode(saved))
            self._saved = saved
        self.ctx.every(_BAR_CLOCK_S, self._close_bars)

    def _warm(self) -> None:
        """Warm the strategy on the stored bars before the current one (see the class docstring)."""
        need = self.strategy.warmup_bars()
        current = self.bars.bar_start(time.time_ns())
        started = time.perf_counter()
        history = self.store.last(self.venue, self.symbol, self.bars.interval_s, need, before_ns=current)
        source = "node"
        if len(history) < need and self.history is not None:
            from sniperbot.venues.ccxt.history import NoHistory, fetch_bars

            try:
                fetched = fetch_bars(
                    self.history,
                    self.ctx.run_dir,
                    self.venue,
                    self.symbol,
                    self.bars.interval_s,
                    need,
                    current,
                )
            except NoHistory as e:
                self.ctx.log.info("no exchange history", extra={"event": "no_history", "reason": str(e)})
            else:
                if len(fetched) > len(history):
                    history, source = fetched, "exchange"
        self.strategy.warm(history)
        if history:
            self.bars.resume_after(history[-1])
            # The bar in progress when the last incarnation stopped may be stored a moment after this
            # read (by a sibling strategy closing it): looked for again at our first close.
            self._catch_up_from = history[-1].start_ns + 1
        self.ctx.log.info(
            "strategy warmed",
            extra={
                "event": "warmed",
                "bars": len(history),
                "needed": need,
                "source": source,
                "first_ns": history[0].start_ns if history else None,
                "ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )

    def on_message(self, envelope: Envelope) -> None:
        """Trades build bars; fills and order updates keep the strategy's position true."""
        payload = envelope.payload
        if isinstance(payload, TradeTick):
            for bar in self.bars.on_trade(payload):
                self._on_bar(bar)
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
            self._on_bar(bar)

    def _on_bar(self, bar: Bar) -> None:
        """Decide (and send what it takes), then keep the bar and the strategy's own state."""
        if self._catch_up_from is not None:
            missed = self.store.between(
                self.venue, self.symbol, self.bars.interval_s, self._catch_up_from, bar.start_ns
            )
            self._catch_up_from = None
            # Indicators follow the bars we missed; the target stays what the real position says.
            self.strategy.warm(missed, keep_target=True)
        self._submit(self.strategy.on_bar(bar))
        self.store.put(bar)
        state = self.strategy.on_save()
        if state is not None:
            encoded = msgspec.json.encode(state)
            if encoded != self._saved:
                self.ctx.journal.put_state(keys.STRATEGY_STATE + self.strategy_id, encoded)
                self._saved = encoded

    def _submit(self, intents: list[Any]) -> None:
        for intent in intents:
            self.ctx.send(self.risk_guard, intent)
