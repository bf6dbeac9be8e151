"""Actors used only by the benchmarks, loaded as ``bench.bench_actors:Class``.

They are ordinary :class:`~sniperbot.actors.base.Actor` subclasses run by the
real :class:`~sniperbot.actors.runtime.ActorRuntime`; results go to a JSON
file (written atomically) that the benchmark process polls for.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import Envelope, OrderIntent, OrderUpdate, Quote, TradeTick
from sniperbot.messages import topics as topic

# -- bus throughput -------------------------------------------------------------------------

BUS_PREFIX = "md.bench."
BUS_DATA = "md.bench.BTC/USDT.quote"
BUS_PROBE = "md.bench.probe"
BUS_DONE = "md.bench.done"
BUS_GO = "bench.go"
_PROBE_INTERVAL_S = 0.05


def write_result(path: str | os.PathLike[str], result: dict[str, Any]) -> None:
    """Write ``result`` as JSON to ``path`` atomically (the bench polls for the file)."""
    tmp = Path(f"{path}.tmp")
    tmp.write_bytes(msgspec.json.encode(result))
    os.replace(tmp, path)


def bench_quote(i: int, symbol: str = "BTC/USDT") -> Quote:
    """The market-data payload of the bus benchmark (ours and raw send the same)."""
    return Quote(
        venue="bench", symbol=symbol, bid=60_000.0, bid_size=0.5, ask=60_000.5, ask_size=0.7, ts_ns=i
    )


class BusPublisher(Actor):
    """Waits for the subscriber's go, then publishes ``count`` quotes back to back (or at ``rate``/s).

    Handshake: until started it publishes a probe every 50 ms; the subscriber
    answers each probe it receives with a go on ``bench.go``. So publishing
    starts only once the subscriber's subscription is in place end to end.
    Afterwards it publishes a done marker every 50 ms carrying the sent count
    (``bid``), the time spent sending in ns (``ask``) and the wall-clock time
    of the first send (``ts_ns``).
    """

    def __init__(self, ctx: ActorContext, *, count: int, rate: float = 0.0) -> None:
        super().__init__(ctx)
        self.topics = (BUS_GO,)
        self.count = count
        self.rate = rate  # messages per second; 0: back to back
        self.sent = 0
        self.t_start_ns = 0
        self.t_end_ns = 0

    def on_start(self) -> None:
        """Start probing."""
        self.ctx.every(_PROBE_INTERVAL_S, self._probe)

    def _probe(self) -> None:
        if not self.t_start_ns:
            self.ctx.publish(BUS_PROBE, bench_quote(0, "PROBE"))
        elif self.sent >= self.count:
            done = msgspec.structs.replace(
                bench_quote(self.t_start_ns, "DONE"),
                bid=float(self.sent),
                ask=float(self.t_end_ns - self.t_start_ns),
            )
            self.ctx.publish(BUS_DONE, done)

    def on_message(self, envelope: Envelope) -> None:
        """The go: publish everything as fast as ``ctx.publish`` goes."""
        if envelope.topic != BUS_GO or self.t_start_ns:
            return
        publish = self.ctx.publish
        self.t_start_ns = time.time_ns()
        if not self.rate:
            for i in range(self.count):
                publish(BUS_DATA, bench_quote(i))
        else:
            # Paced: never ahead of ``rate`` (checked every 100 messages; a short sleep when ahead).
            start = time.perf_counter()
            i = 0
            while i < self.count:
                if i > self.rate * (time.perf_counter() - start):
                    time.sleep(0.0002)
                    continue
                for j in range(i, min(i + 100, self.count)):
                    publish(BUS_DATA, bench_quote(j))
                i += 100
        self.sent = self.count
        self.t_end_ns = time.time_ns()


class BusSubscriber(Actor):
    """Counts quotes; answers probes with a go; writes its result on the first done marker."""

    topics = (BUS_PREFIX,)

    def __init__(self, ctx: ActorContext, *, out: str) -> None:
        super().__init__(ctx)
        self.out = out
        self.received = 0
        self.t_first_ns = 0
        self.t_last_ns = 0
        self.written = False

    def on_message(self, envelope: Envelope) -> None:
        """Data, probe or done."""
        if envelope.topic == BUS_DATA:
            self.t_last_ns = time.time_ns()
            if not self.received:
                self.t_first_ns = self.t_last_ns
            self.received += 1
        elif envelope.topic == BUS_PROBE:
            self.ctx.publish(BUS_GO, envelope.payload)  # type: ignore[arg-type]
        elif envelope.topic == BUS_DONE and not self.written:
            done = envelope.payload
            assert isinstance(done, Quote)
            self.written = True
            write_result(
                self.out,
                {
                    "sent": int(done.bid),
                    "send_ns": int(done.ask),
                    "received": self.received,
                    "t_start_ns": done.ts_ns,
                    "t_first_ns": self.t_first_ns,
                    "t_last_ns": self.t_last_ns,
                },
            )


# -- tick to trade --------------------------------------------------------------------------


class TickFeed(Actor):
    """Emits one TradeTick at a time and times it until the executor's ``accepted`` update.

    It is also the measuring subscriber (topic ``ev.<strategy>.order``): the
    update's ``client_order_id`` is ``"<strategy>-<trade_id>"``. The next tick
    goes ``gap_s`` after the previous one was accepted (one in flight); a tick
    with no answer after 0.5 s is counted lost and replaced (during start-up the
    chain may not be subscribed yet). It also publishes a quote every 100 ms so
    that the risk guard has a price and the executor a book.
    """

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        symbol: str,
        strategy_id: str,
        count: int,
        warmup: int,
        gap_s: float,
        out: str,
    ) -> None:
        super().__init__(ctx)
        self.topics = (topic.order_update(strategy_id),)
        self.venue = venue
        self.symbol = symbol
        self.quote_topic = topic.quote(venue, symbol)
        self.trade_topic = topic.trade(venue, symbol)
        self.count = count
        self.warmup = warmup
        self.gap_s = gap_s
        self.out = out
        self.seq = 0
        self.inflight = 0
        self.t0_perf = 0
        self.t0_wall = 0
        self.lost = 0
        self.rejected: dict[str, int] = {}
        self.done = False
        fields = ("seq", "latency_ns", "tick_wall_ns", "update_ts_ns", "publish_ts_ns", "recv_wall_ns")
        self.samples: dict[str, list[int]] = {k: [] for k in fields}

    def on_start(self) -> None:
        """Quote now and every 100 ms; a watchdog sends the first tick and replaces lost ones."""
        self._quote()
        self.ctx.every(0.1, self._quote)
        self.ctx.every(0.05, self._watchdog)

    def _quote(self) -> None:
        self.ctx.publish(
            self.quote_topic,
            Quote(
                venue=self.venue,
                symbol=self.symbol,
                bid=59_999.5,
                bid_size=10.0,
                ask=60_000.5,
                ask_size=10.0,
                ts_ns=time.time_ns(),
            ),
        )

    def _watchdog(self) -> None:
        if self.done:
            return
        if self.inflight and time.perf_counter_ns() - self.t0_perf > 500_000_000:
            self.lost += 1
            self.inflight = 0
        if not self.inflight:
            self._tick()

    def _tick(self) -> None:
        self.seq += 1
        self.inflight = self.seq
        self.t0_wall = time.time_ns()
        self.t0_perf = time.perf_counter_ns()
        self.ctx.publish(
            self.trade_topic,
            TradeTick(
                venue=self.venue,
                symbol=self.symbol,
                price=60_000.0,
                size=0.001,
                side="buy",
                trade_id=self.seq,
                ts_ns=self.t0_wall,
            ),
        )

    def on_message(self, envelope: Envelope) -> None:
        """An order update of the bench strategy."""
        t1_perf = time.perf_counter_ns()
        t1_wall = time.time_ns()
        update = envelope.payload
        if not isinstance(update, OrderUpdate) or self.done:
            return
        if update.status not in ("accepted", "rejected"):
            return
        seq = int(update.client_order_id.rpartition("-")[2])
        if seq != self.inflight:
            return
        self.inflight = 0
        if update.status == "rejected":
            self.rejected[update.reason] = self.rejected.get(update.reason, 0) + 1
        elif seq > self.warmup:
            s = self.samples
            s["seq"].append(seq)
            s["latency_ns"].append(t1_perf - self.t0_perf)
            s["tick_wall_ns"].append(self.t0_wall)
            s["update_ts_ns"].append(update.ts_ns)
            s["publish_ts_ns"].append(envelope.ts_ns)
            s["recv_wall_ns"].append(t1_wall)
            if len(s["seq"]) >= self.count:
                self.done = True
                write_result(self.out, {**s, "lost": self.lost, "rejected": self.rejected})
                return
        if self.gap_s:
            time.sleep(self.gap_s)  # idle between ticks; nothing else is due on this actor
        self._tick()


class TickStrategy(Actor):
    """Turns every trade tick into a market OrderIntent for the risk guard, alternating buy/sell."""

    def __init__(
        self,
        ctx: ActorContext,
        *,
        strategy_id: str,
        venue: str,
        symbol: str,
        quantity: float,
        risk_guard: str = "risk_guard",
    ) -> None:
        super().__init__(ctx)
        self.topics = (topic.trade(venue, symbol),)
        self.strategy_id = strategy_id
        self.venue = venue
        self.symbol = symbol
        self.quantity = quantity
        self.risk_guard = risk_guard
        self.n = 0

    def on_message(self, envelope: Envelope) -> None:
        """One intent per tick."""
        tick = envelope.payload
        if not isinstance(tick, TradeTick):
            return
        self.n += 1
        self.ctx.send(
            self.risk_guard,
            OrderIntent(
                intent_id=f"{self.strategy_id}-{tick.trade_id}",
                strategy_id=self.strategy_id,
                intent_seq=tick.trade_id,
                venue=self.venue,
                symbol=self.symbol,
                side="buy" if self.n % 2 else "sell",
                quantity=self.quantity,
                ts_ns=time.time_ns(),
            ),
        )
