"""The strategy actor: builds bars from trades and runs one strategy instance on them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.actors.recent import RecentIds
from sniperbot.journal import TERMINAL_STATUSES, keys
from sniperbot.market.bar_store import BarStore
from sniperbot.market.bars import LIVE_CLOSE_DELAY_S, BarBuilder, replay_key
from sniperbot.messages import Bar, Envelope, Fill, Order, OrderUpdate, Quote, Signal, TradeTick
from sniperbot.messages import topics as topic
from sniperbot.messages.orders import parse_intent_seq
from sniperbot.strategies.loader import load_strategy

if TYPE_CHECKING:
    from sniperbot.journal import Journal

_BAR_CLOCK_S = 0.1


def journaled_history(journal: Journal, strategy_id: str) -> tuple[list[Fill], int]:
    """A strategy's journaled fills and the highest intent sequence of its orders (a restart resumes
    after it, so intent ids stay unique), from its own records (:meth:`Journal.strategy_records`).

    O(the strategy's records): the strategy actor restores from :meth:`Journal.snapshot` (O(keys))
    instead; this stays for the sniper, whose per-token state needs each of its fills in order.
    """
    fills: list[Fill] = []
    last_seq = 0
    for _, record in journal.strategy_records(strategy_id):
        if isinstance(record, Fill):
            fills.append(record)
        elif isinstance(record, Order | OrderUpdate):
            seq = parse_intent_seq(record.client_order_id, strategy_id)
            last_seq = max(last_seq, seq or 0)
    return fills, last_seq


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

    **Replay clock.** On a replay venue (:mod:`sniperbot.venues.replay`: its feed marks the journal
    before any strategy starts) bars are closed only by the next trade, never by the wall clock,
    and the actor acknowledges in the journal's state (:func:`~sniperbot.market.bars.replay_key`)
    each bar it decided on, the intents still in flight and the quotes it has seen, so that the
    feed publishes the next candle only when this one is fully handled; each fill's replay time
    (the quote it filled against) is kept next to it.

    **Signals.** It subscribes to the ``sig.<subject>.<kind>.`` topics of the signals the strategy
    declares (:meth:`~sniperbot.strategies.Strategy.signal_topics`); the node's last-value cache hands
    over the current ones at start, restart and hot-add, and each is fed to ``on_signal`` as it
    arrives. Signals are not journaled by the strategy: after a restart the cache has the newest
    reading of every source again (what an older one would have been used for is past).

    **Fills as journaled.** Before deciding on a bar, the actor books its strategy's fills and order
    updates journaled since it last looked and not heard on the bus (the executor journals them before
    it publishes them; a bus message is at-most-once, and one published while a restarted actor's
    subscription is still joining the bus is lost). A strategy that missed a fill holds a wrong position
    for good: long on paper while flat at the venue, its reduce-only exit is refused by the risk guard on
    every bar after. O(the strategy's own records since the last bar: the journal's strategy index).
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
        self.bars = BarBuilder(venue, symbol, bar_interval_s, close_delay_s=LIVE_CLOSE_DELAY_S)
        # The quote topic also brings the last quote at start (the node's last-value cache).
        self.topics = (
            topic.trade(venue, symbol),
            topic.quote(venue, symbol),
            topic.strategy_events(strategy_id),
            *self.strategy.signal_topics(),
        )
        self.last_quote: Quote | None = None
        self.venue = venue
        self.symbol = symbol
        self._saved: bytes | None = None
        self._catch_up_from: int | None = None
        self.history = history  # the venue's candle source (None: the node's own bars only)
        self._seen_fills = RecentIds()
        self._replay = False
        self._replay_ack = {"bar": -1, "in_flight": 0, "quotes": 0}
        self._in_flight: set[str] = set()
        self._restored_through = 0  # the journal seq the restored position includes
        self._read_through = 0  # the journal seq whose fills and updates are booked (class docstring)

    def on_start(self) -> None:
        """Warm up, restore saved state, position and intent sequence, then start the bar clock."""
        journal = self.ctx.journal
        self.store = BarStore(journal)
        # O(keys): the journal's aggregates, not its records (sniperbot.journal.aggregates).
        snapshot = journal.snapshot(strategy_id=self.strategy_id)
        self._restored_through = self._read_through = snapshot.through_seq
        position, last_seq = snapshot.strategy.net, snapshot.strategy.intent_seq
        self._warm()  # first: the restored position, not the history, sets the current target
        # The node life makes ids unique across node lives even if the journal was lost.
        self.strategy.restore(position=position, next_intent_seq=last_seq + 1, node_life=self.ctx.node_life)
        saved = journal.get_state(keys.STRATEGY_STATE + self.strategy_id)
        if saved is not None:
            self.strategy.on_load(msgspec.json.decode(saved))
            self._saved = saved
        self._replay = journal.get_state(replay_key(self.venue, "clock")) is not None
        if self._replay:
            self._ack()
        else:
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
            self._replay_ack["bar"] = history[-1].start_ns  # replay clock: a restart resumes after it
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
                if self._on_bar(bar):
                    # From the feed's publish stamp to the intents sent to the risk guard.
                    self.ctx.metrics.observe_since("sniperbot_tick_to_intent_seconds", envelope.ts_ns)
        elif isinstance(payload, Fill):
            self._on_fill(payload)
        elif isinstance(payload, OrderUpdate):
            self._on_update(payload)
        elif isinstance(payload, Signal):
            self.strategy.on_signal(payload)
        elif isinstance(payload, Quote):
            self.last_quote = payload
            if self._replay and self._replay_ack["bar"] < 0:
                # Before the first bar: the feed waits until our subscription demonstrably works.
                self._replay_ack["quotes"] += 1
                self._ack()

    def _on_fill(self, fill: Fill) -> None:
        """Book one of the strategy's fills once (heard on the bus or read from the journal)."""
        if fill.fill_id not in self._seen_fills and not self._restored(fill):
            self._seen_fills.add(fill.fill_id)
            if self._replay and self.last_quote is not None:
                key = replay_key(self.venue, "fill", fill.fill_id)
                self.ctx.journal.put_state(key, str(self.last_quote.ts_ns).encode())
            self._submit(self.strategy.on_fill(fill))

    def _on_update(self, update: OrderUpdate) -> None:
        """An order's status: a finished one is no longer in flight (idempotent)."""
        self.strategy.on_order_update(update)
        if update.status in TERMINAL_STATUSES and update.client_order_id in self._in_flight:
            self._in_flight.discard(update.client_order_id)
            self._ack()

    def _read_journal(self) -> None:
        """Book the strategy's fills and updates journaled since the last look (class docstring)."""
        records, self._read_through = self.ctx.journal.since(
            self._read_through, (Fill, OrderUpdate), self.strategy_id
        )
        for _, record in records:
            if isinstance(record, Fill):
                self._on_fill(record)
            elif isinstance(record, OrderUpdate):
                self._on_update(record)

    def _restored(self, fill: Fill) -> bool:
        """Whether ``fill`` is in the position restored at start (journaled at or before its seq)."""
        seq = self.ctx.journal.fill_seq(fill.fill_id)
        return seq is not None and seq <= self._restored_through

    def _close_bars(self) -> None:
        for bar in self.bars.on_time(time.time_ns()):
            self._on_bar(bar)

    def _on_bar(self, bar: Bar) -> bool:
        """Decide (and send what it takes), keep the bar and the strategy's state; True if it sent."""
        self._read_journal()
        if self._catch_up_from is not None:
            missed = self.store.between(
                self.venue, self.symbol, self.bars.interval_s, self._catch_up_from, bar.start_ns
            )
            self._catch_up_from = None
            # Indicators follow the bars we missed; the target stays what the real position says.
            self.strategy.warm(missed, keep_target=True)
        intents = self.strategy.on_bar(bar)
        self._submit(intents)
        self.store.put(bar)
        if self._replay:
            self._replay_ack["bar"] = bar.start_ns
            self._ack()
        state = self.strategy.on_save()
        if state is not None:
            encoded = msgspec.json.encode(state)
            if encoded != self._saved:
                self.ctx.journal.put_state(keys.STRATEGY_STATE + self.strategy_id, encoded)
                self._saved = encoded
        return bool(intents)

    def _submit(self, intents: list[Any]) -> None:
        for intent in intents:
            if self._replay:
                self._in_flight.add(intent.intent_id)
            self.ctx.send(self.risk_guard, intent)

    def _ack(self) -> None:
        """Replay clock: tell the feed how far this strategy is (see the class docstring)."""
        self._replay_ack["in_flight"] = len(self._in_flight)
        key = replay_key(self.venue, "ack", self.strategy_id)
        self.ctx.journal.put_state(key, msgspec.json.encode(self._replay_ack))
