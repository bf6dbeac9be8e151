"""The gateway conformance suite: what every venue gateway must do for exactly-once money.

The venue contract (``sniperbot/venues/base.py``) in tests, the way NautilusTrader tests
every adapter with one base suite. The real generic executor and the gateway under test
(a real actor with its real store: the paper venue's ledger, an exchange server's books)
are joined by an in-process FIFO "wire" that loses what a killed actor had in flight, so
each crash point of the order path can be walked through deterministically.

To run it against a gateway, write a :class:`GatewayHarness` for it and, in a test
module, a fixture ``desk`` yielding ``Desk(tmp_path, harness)`` plus
``class TestMyGateway(GatewayConformance): pass`` (``tests/venues/test_sim_conformance.py``
does it for the paper gateway; ``tests/venues_ccxt/test_ccxt_conformance.py`` for the ccxt gateway
against a local exchange server).

The suite states the contract every gateway keeps, not one venue's habits:

* A gateway may answer later than the message that asked (an exchange round trip): the wire lets it
  :meth:`GatewayHarness.settle` after each delivery, until its answer is on the wire.
* Fill ids are the venue's (the paper venue's ``<cid>-f<n>``, an exchange's trade id): the journal must
  hold exactly the venue's fills of an order (:meth:`GatewayHarness.fill_ids`), each once.
* What rests at a venue when its gateway restarts is the venue's business: the paper venue cancels it
  (``cancels_on_restart``, reason ``venue_restart``), an exchange keeps it; either way the journal then
  agrees with the venue, and a cancel sent through the executor reaches it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.chaos.invariants import InvariantReport
from sniperbot.execution.executor import Executor
from sniperbot.journal import Journal
from sniperbot.logs import actor_logger
from sniperbot.messages import CancelOrder, Envelope, Fill, Order, OrderUpdate, Payload
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport

VENUE = "sim"
SYMBOL = "BTC/USDT"
EXECUTOR_ID = f"executor.{VENUE}"
POSITION = f"{VENUE}:{SYMBOL}"  # the key of the position in the chaos report (and admin status)
# A market order that fills at once: a venue may say "accepted" first (the paper venue) or only "filled"
# (an exchange's answer to the order already says it traded); the journal then holds what it said.
FILLED_AT_ONCE = (["accepted", "filled"], ["filled"])


# -- an in-process wire between real actors ---------------------------------------------------
class Wire:
    """FIFO delivery between actors in this process; a killed actor's traffic is lost."""

    def __init__(self) -> None:
        self.queue: deque[tuple[str, str, Payload, Callable[[], None] | None]] = deque()
        self.actors: dict[str, Any] = {}
        # actor id -> wait until what it was given is answered (an asynchronous gateway), or its kill -9
        self.settlers: dict[str, Callable[[Any], None]] = {}
        self.killers: dict[str, Callable[[Any], None]] = {}

    def deliver(self) -> None:
        """Deliver everything in flight, and whatever that causes, in order."""
        while self.queue:
            self.deliver_one()

    def deliver_one(self) -> None:
        """Deliver the oldest message in flight."""
        target, sender, payload, on_ack = self.queue.popleft()
        actor = self.actors.get(target)
        if actor is None:
            return  # nobody listens: lost, as in a dead process's socket
        ctx: Ctx = actor.ctx
        ctx.held = False
        actor.on_message(Envelope(f"to.{target}", sender, 1, 0, time.time_ns(), payload))
        if on_ack is not None and not ctx.held:
            on_ack()
        settle = self.settlers.get(target)
        if settle is not None:
            settle(actor)

    def kill(self, actor_id: str) -> None:
        """kill -9: the actor and everything it had in flight, both ways, are gone."""
        actor = self.actors.pop(actor_id, None)
        killer = self.killers.get(actor_id)
        if actor is not None and killer is not None:
            killer(actor)  # its threads too: nothing it would still say reaches the wire
        self.queue = deque(m for m in self.queue if actor_id not in (m[0], m[1]))


class Ctx(ActorContext):
    """An actor's context on the wire, with the real journal."""

    def __init__(self, wire: Wire, actor_id: str, run_dir: Path, journal: Journal) -> None:
        self.wire = wire
        self.actor_id = actor_id
        self.incarnation = 1
        self.run_dir = run_dir
        self.log = actor_logger(actor_id, 1)
        self._journal = journal
        self.published: list[Payload] = []
        self.sent: list[tuple[str, Payload]] = []
        self.held = False
        self.released: list[str] = []
        self.sealed = b""  # a gateway's venue key (Credentials.to_launch()), set by its harness

    def publish(self, topic: str, payload: Payload) -> None:
        self.published.append(payload)

    def send(self, actor_id: str, payload: Payload, on_ack: Callable[[], None] | None = None) -> None:
        self.sent.append((actor_id, payload))
        self.wire.queue.append((actor_id, self.actor_id, payload, on_ack))

    @property
    def credentials(self) -> bytes:
        return self.sealed

    def hold_ack(self) -> Callable[[], None]:
        self.held = True
        return lambda: self.released.append("ack")

    def every(self, interval_s: float, callback: Callable[[], None]) -> None:
        pass

    @property
    def journal(self) -> Journal:
        return self._journal

    def stop(self) -> None:
        pass


class GatewayHarness(Protocol):
    """A gateway under test and a witness of the venue's own records (its ledger, the exchange)."""

    #: The gateway's actor id (``paper.<venue>``, ``gateway.<venue>``).
    gateway_id: str
    #: Orders the venue does not take, as ``Order`` fields (type and prices): each must be rejected
    #: ``unsupported_order_type``.
    unsupported_orders: tuple[dict[str, Any], ...]
    #: Whether the venue cancels what rested when its gateway restarts (reason ``venue_restart``).
    cancels_on_restart: bool

    def start(self, ctx: Ctx) -> Actor:
        """A new incarnation of the gateway on ``ctx``, started, with a market of 100.0 / 101.0."""
        ...

    def move_market(self, gateway: Actor, bid: float, ask: float) -> None:
        """Move the venue's market (resting orders the new prices cross fill)."""
        ...

    def settle(self, gateway: Actor) -> None:
        """Return once the gateway has put its answer to what it was just given on the wire."""
        ...

    def kill(self, gateway: Actor) -> None:
        """kill -9 of the gateway: whatever it still runs stops without a word."""
        ...

    def fill_ids(self, client_order_id: str) -> list[str]:
        """The venue's fills of an order, as ``Fill.fill_id``, in the venue's order."""
        ...

    def knows(self, client_order_id: str) -> bool:
        """Whether the venue ever received this order."""
        ...

    def counts(self) -> dict[str, int]:
        """``orders`` received, ``fills`` made, ``duplicate_submissions`` refused, at the venue."""
        ...

    def duplicates(self) -> dict[str, int]:
        """Client order id -> how often the venue refused it as a duplicate."""
        ...

    def order_ids(self) -> list[str]:
        """Client order ids in the order the venue received them."""
        ...

    def open_orders(self) -> list[str]:
        """Client order ids resting at the venue now."""
        ...

    def reason(self, client_order_id: str) -> str:
        """The reason the venue gave with the order's last status."""
        ...

    def check(self, journal: Journal) -> InvariantReport:
        """The chaos checker: the journal against the venue's own records."""
        ...

    def close(self) -> None:
        """Release what the harness opened."""
        ...


class Desk:
    """A journal, a gateway and the generic executor on one wire: restart either at will."""

    def __init__(self, run_dir: Path, harness: GatewayHarness) -> None:
        self.run_dir = run_dir
        self.gw = harness
        self.gateway_id = harness.gateway_id
        self.wire = Wire()
        self.journal = Journal.open(run_dir, durability="process")
        self.venue = self.start_venue()
        self.executor = self.start_executor()

    def start_venue(self) -> Actor:
        venue = self.gw.start(Ctx(self.wire, self.gateway_id, self.run_dir, self.journal))
        self.wire.actors[self.gateway_id] = venue
        self.wire.settlers[self.gateway_id] = self.gw.settle
        self.wire.killers[self.gateway_id] = self.gw.kill
        self.gw.settle(venue)  # started: ready for orders
        return venue

    def start_executor(self) -> Executor:
        executor = Executor(
            Ctx(self.wire, EXECUTOR_ID, self.run_dir, self.journal), venue=VENUE, gateway=self.gateway_id
        )
        self.wire.actors[EXECUTOR_ID] = executor
        executor.on_start()
        return executor

    def move_market(self, bid: float, ask: float) -> None:
        self.gw.move_market(self.venue, bid, ask)

    def order_from_risk(self, o: Order) -> None:
        self.wire.queue.append((EXECUTOR_ID, "risk_guard", o, None))

    def cancel(self, cid: str) -> None:
        """An operator's cancel of an order, through the executor."""
        cancel = CancelOrder(
            client_order_id=cid, strategy_id="s1", venue=VENUE, symbol=SYMBOL, reason="operator"
        )
        self.wire.queue.append((EXECUTOR_ID, "node", cancel, None))

    def to_gateway(self, payload: Payload) -> None:
        """Something reaches the gateway straight from the executor (an old copy, a query)."""
        self.wire.queue.append((self.gateway_id, EXECUTOR_ID, payload, None))

    def statuses(self, cid: str) -> list[str]:
        return [
            r.status
            for _, r in self.journal.records()
            if isinstance(r, OrderUpdate) and r.client_order_id == cid
        ]

    def journal_fills(self) -> list[Fill]:
        return self.journal.fills()

    def check(self) -> InvariantReport:
        return self.gw.check(self.journal)

    def close(self) -> None:
        self.gw.close()
        self.journal.close()


def order(seq: int, side: str = "buy", age_s: float = 0.0, **extra: Any) -> Order:
    cid = f"s1-{seq}"
    return Order(
        client_order_id=cid,
        intent_id=cid,
        strategy_id="s1",
        venue=VENUE,
        symbol=SYMBOL,
        side=side,  # type: ignore[arg-type]
        quantity=0.5,
        ts_ns=time.time_ns() - int(age_s * 1e9),
        **extra,
    )


class GatewayConformance:
    """The suite: every test needs the ``desk`` fixture of the module that runs it."""

    # -- the contract, message by message ------------------------------------------------------
    def test_a_query_for_an_order_the_venue_never_received_is_answered_known_false(self, desk: Desk) -> None:
        reports: list[VenueOrderReport] = []
        desk.wire.actors["probe"] = _Probe(desk, reports)
        query = VenueOrderQuery(client_order_id="s1-404", venue=VENUE)
        desk.wire.queue.append((desk.gateway_id, "probe", query, None))
        desk.wire.deliver()
        (report,) = reports
        assert (report.client_order_id, report.venue, report.known) == ("s1-404", VENUE, False)
        assert report.fills == [] and not desk.gw.knows("s1-404")

    def test_an_order_type_the_venue_does_not_take_is_rejected_with_a_reason(self, desk: Desk) -> None:
        for seq, fields in enumerate(desk.gw.unsupported_orders, start=1):
            desk.order_from_risk(order(seq, **fields))
            desk.wire.deliver()
            assert desk.statuses(f"s1-{seq}") == ["rejected"]
            (update,) = [p for p in desk.executor.ctx.published if isinstance(p, OrderUpdate)][-1:]
            assert (update.status, update.reason) == ("rejected", "unsupported_order_type")
        # The gateway is still there and still trades (a limit buy at the ask: every venue fills it now).
        desk.order_from_risk(order(100, order_type="limit", limit_price=101.0))
        desk.wire.deliver()
        assert desk.journal.order_status("s1-100") == "filled"
        assert desk.check().ok

    def test_every_fill_made_while_the_executor_was_down_is_journaled_on_reconciliation(
        self, desk: Desk
    ) -> None:
        desk.order_from_risk(order(1, order_type="limit", limit_price=99.0))
        desk.wire.deliver()
        assert desk.journal.order_status("s1-1") == "accepted"
        desk.wire.kill(EXECUTOR_ID)
        desk.move_market(98.0, 98.5)  # it fills at the venue while nobody listens
        desk.wire.deliver()  # (the venue's push is lost: nobody listens)
        assert desk.journal.fills() == [] and desk.gw.counts()["fills"] == 1
        desk.executor = desk.start_executor()
        desk.wire.deliver()
        assert desk.executor.reconciled
        assert [f.fill_id for f in desk.journal_fills()] == desk.gw.fill_ids("s1-1")
        assert desk.statuses("s1-1") == ["accepted", "filled"]
        report = desk.check()
        assert report.ok and report.settled, report.problems

    # -- reconciliation, crash point by crash point ----------------------------------------------
    def test_died_after_journal_before_send_the_order_goes_out_once_after_restart(self, desk: Desk) -> None:
        desk.order_from_risk(order(1))
        desk.wire.deliver_one()  # the executor journals the order and queues it for the venue ...
        desk.wire.kill(EXECUTOR_ID)  # ... and dies before anything reached the venue
        assert desk.journal.order("s1-1") is not None and not desk.gw.knows("s1-1")

        desk.executor = desk.start_executor()
        assert not desk.executor.reconciled  # it asked the venue first
        desk.wire.deliver()
        assert desk.executor.reconciled
        assert desk.statuses("s1-1") in FILLED_AT_ONCE
        assert [f.fill_id for f in desk.journal_fills()] == desk.gw.fill_ids("s1-1")
        assert desk.gw.counts() == {"orders": 1, "fills": 1, "duplicate_submissions": 0}
        report = desk.check()
        assert report.ok and report.settled, report.problems

    def test_died_after_the_venue_filled_the_fill_is_journaled_once(self, desk: Desk) -> None:
        desk.order_from_risk(order(1))
        desk.wire.deliver_one()  # journaled and sent ...
        desk.wire.deliver_one()  # ... the venue fills it and answers ...
        answer = desk.wire.queue[0][2]
        assert isinstance(answer, VenueEvents)
        desk.wire.kill(EXECUTOR_ID)  # ... and the executor dies before it hears back
        assert desk.journal.fills() == [] and desk.gw.counts()["fills"] == 1

        desk.executor = desk.start_executor()
        desk.wire.deliver()  # reconciliation: the venue reports the fill
        # The venue's outbox resends its answer to the new incarnation, and the risk guard
        # resends the order: neither journals anything twice or reaches the venue again.
        desk.wire.queue.append((EXECUTOR_ID, desk.gateway_id, answer, None))
        desk.order_from_risk(order(1))
        desk.wire.deliver()
        assert desk.statuses("s1-1") == ["filled"]
        assert [f.fill_id for f in desk.journal_fills()] == desk.gw.fill_ids("s1-1")
        assert desk.journal.counts() == {"orders": 1, "fills": 1, "updates": 1}
        assert desk.gw.counts() == {"orders": 1, "fills": 1, "duplicate_submissions": 0}
        report = desk.check()
        assert report.ok and report.settled and report.positions == {POSITION: 0.5}, report.problems

    def test_an_unsent_order_too_old_to_send_is_cancelled_not_fired_late(self, desk: Desk) -> None:
        desk.order_from_risk(order(1, age_s=60.0))
        desk.wire.deliver_one()
        desk.wire.kill(EXECUTOR_ID)
        desk.executor = desk.start_executor()
        desk.wire.deliver()
        assert desk.executor.reconciled
        assert desk.journal.order_status("s1-1") == "cancelled"
        assert not desk.gw.knows("s1-1")
        (update,) = [p for p in desk.executor.ctx.published if isinstance(p, OrderUpdate)]
        assert (update.status, update.reason) == ("cancelled", "expired_unsent")
        report = desk.check()
        assert report.ok and report.settled, report.problems

    def test_new_orders_wait_for_reconciliation_with_their_acks_held(self, desk: Desk) -> None:
        desk.order_from_risk(order(1))
        desk.wire.deliver_one()
        desk.wire.kill(EXECUTOR_ID)
        desk.executor = desk.start_executor()
        acked: list[str] = []
        # A new order arrives before the venue has answered the reconciliation query.
        query = desk.wire.queue.popleft()
        desk.wire.queue.append((EXECUTOR_ID, "risk_guard", order(2), lambda: acked.append("s1-2")))
        desk.wire.queue.append(query)
        desk.wire.deliver()
        assert desk.executor.reconciled
        ctx = desk.executor.ctx
        assert isinstance(ctx, Ctx)
        assert acked == [] and ctx.released == ["ack"]  # held while waiting, released once taken
        assert desk.journal.order_status("s1-1") == "filled"
        assert desk.journal.order_status("s1-2") == "filled"
        # Journal order is the venue's order: the old order went out before the new one.
        assert desk.gw.order_ids() == ["s1-1", "s1-2"]
        report = desk.check()
        assert report.ok and report.settled, report.problems

    def test_a_duplicate_is_refused_counted_and_the_real_status_journaled(self, desk: Desk) -> None:
        desk.order_from_risk(order(1))
        desk.wire.deliver()
        assert desk.journal.order_status("s1-1") == "filled"
        # An old copy of the order reaches the venue again (say, from a woken-up incarnation).
        desk.to_gateway(order(1))
        desk.wire.deliver()
        assert desk.statuses("s1-1") in FILLED_AT_ONCE  # "rejected" was never journaled
        assert desk.gw.duplicates() == {"s1-1": 1}
        report = desk.check()
        assert report.ok and report.duplicate_orders == [] and report.duplicate_submissions == 1

    def test_a_restarted_venue_keeps_its_ledger_and_cancels_what_rested(self, desk: Desk) -> None:
        desk.order_from_risk(order(1, order_type="limit", limit_price=99.0))
        desk.order_from_risk(order(2))
        desk.wire.deliver()
        assert desk.journal.order_status("s1-1") == "accepted"
        desk.wire.kill(desk.gateway_id)
        desk.wire.kill(EXECUTOR_ID)  # rest_for_one: the executor restarts with its venue
        desk.venue = desk.start_venue()
        desk.executor = desk.start_executor()
        desk.wire.deliver()
        assert desk.executor.reconciled
        if desk.gw.cancels_on_restart:
            # Cancel-on-disconnect: nothing rests at a venue that restarted ...
            assert desk.statuses("s1-1") == ["accepted", "cancelled"]
            assert desk.gw.reason("s1-1") == "venue_restart"
        else:
            # An exchange keeps what rests through our restart: the journal agrees, and a cancel reaches it.
            assert desk.statuses("s1-1") == ["accepted"]
            assert desk.gw.open_orders() == ["s1-1"]
            desk.cancel("s1-1")
            desk.wire.deliver()
            assert desk.statuses("s1-1") == ["accepted", "cancelled"]
        assert desk.gw.open_orders() == []
        # ... and it still refuses ids it had before the restart.
        desk.to_gateway(order(2))
        desk.move_market(98.0, 98.5)
        desk.wire.deliver()
        assert desk.gw.duplicates() == {"s1-2": 1}
        assert [f.fill_id for f in desk.journal_fills()] == desk.gw.fill_ids("s1-2")
        report = desk.check()
        assert report.ok and report.settled and report.positions == {POSITION: 0.5}, report.problems


class _Probe:
    """A stand-in sender on the wire that keeps what the gateway answers it."""

    def __init__(self, desk: Desk, reports: list[VenueOrderReport]) -> None:
        self.ctx = Ctx(desk.wire, "probe", desk.run_dir, desk.journal)
        self.reports = reports

    def on_message(self, envelope: Envelope) -> None:
        if isinstance(envelope.payload, VenueOrderReport):
            self.reports.append(envelope.payload)
