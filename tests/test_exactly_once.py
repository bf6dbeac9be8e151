"""Exactly-once money under crashes: journal first, venue with its own ledger, reconcile on restart.

Two layers. In-process and deterministic: the real executor and venue actors,
a real journal and a real venue ledger, joined by a little FIFO "wire" that can
lose what a killed actor had in flight, to walk through each crash point of the
order path. Then a real node: kill -9 the executor, the venue, the risk guard
and strategies at seeded random moments while orders flow, and check that the
journal and the venue's ledger agree on every order and fill.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sniperbot.actors.base import ActorContext
from sniperbot.actors.paper_executor import PaperExecutor
from sniperbot.actors.paper_venue import PaperVenueActor, close_venue_ledgers
from sniperbot.chaos.invariants import check, check_run_dir
from sniperbot.journal import Journal
from sniperbot.logs import actor_logger
from sniperbot.messages import Envelope, Fill, Order, OrderUpdate, Payload, Quote
from sniperbot.messages.venue import VenueEvents
from tests.conftest import RunningNode, eventually
from tests.test_money import MONEY_CONFIG, reconciled_orders

VENUE = "sim"
SYMBOL = "BTC/USDT"


# -- an in-process wire between real actors ---------------------------------------------------
class Wire:
    """FIFO delivery between actors in this process; a killed actor's traffic is lost."""

    def __init__(self) -> None:
        self.queue: deque[tuple[str, str, Payload, Callable[[], None] | None]] = deque()
        self.actors: dict[str, Any] = {}

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

    def kill(self, actor_id: str) -> None:
        """kill -9: the actor and everything it had in flight, both ways, are gone."""
        self.actors.pop(actor_id, None)
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
        self.held = False
        self.released: list[str] = []

    def publish(self, topic: str, payload: Payload) -> None:
        self.published.append(payload)

    def send(self, actor_id: str, payload: Payload, on_ack: Callable[[], None] | None = None) -> None:
        self.wire.queue.append((actor_id, self.actor_id, payload, on_ack))

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


class Desk:
    """A journal, a venue with its ledger and an executor on one wire: restart either at will."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.wire = Wire()
        self.journal = Journal.open(run_dir, durability="process")
        self.venue = self.start_venue()
        self.executor = self.start_executor()

    def start_venue(self) -> PaperVenueActor:
        venue = PaperVenueActor(
            Ctx(self.wire, "paper.sim", self.run_dir, self.journal),
            venue=VENUE,
            fee_bps=10.0,
            slippage_bps=0.0,
            durability="process",
        )
        venue.on_start()
        self.wire.actors["paper.sim"] = venue
        venue.on_message(Envelope("md", "feed.sim", 1, 1, 1, quote(100.0, 101.0)))
        return venue

    def start_executor(self) -> PaperExecutor:
        executor = PaperExecutor(Ctx(self.wire, "executor.sim", self.run_dir, self.journal), venue=VENUE)
        self.wire.actors["executor.sim"] = executor
        executor.on_start()
        return executor

    def order_from_risk(self, o: Order) -> None:
        self.wire.queue.append(("executor.sim", "risk_guard", o, None))

    def statuses(self, cid: str) -> list[str]:
        return [
            r.status
            for _, r in self.journal.records()
            if isinstance(r, OrderUpdate) and r.client_order_id == cid
        ]

    def journal_fills(self) -> list[Fill]:
        return self.journal.fills()

    def check(self) -> Any:
        return check(self.journal, {VENUE: self.venue.ledger})


def quote(bid: float, ask: float) -> Quote:
    return Quote(
        venue=VENUE, symbol=SYMBOL, bid=bid, bid_size=5.0, ask=ask, ask_size=5.0, ts_ns=time.time_ns()
    )


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


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    d = Desk(tmp_path)
    try:
        yield d
    finally:
        close_venue_ledgers()
        d.journal.close()


# -- reconciliation, crash point by crash point ------------------------------------------------
def test_died_after_journal_before_send_the_order_goes_out_once_after_restart(desk: Desk) -> None:
    desk.order_from_risk(order(1))
    desk.wire.deliver_one()  # the executor journals the order and queues it for the venue ...
    desk.wire.kill("executor.sim")  # ... and dies before anything reached the venue
    assert desk.journal.order("s1-1") is not None and not desk.venue.ledger.knows("s1-1")

    desk.executor = desk.start_executor()
    assert not desk.executor.reconciled  # it asked the venue first
    desk.wire.deliver()
    assert desk.executor.reconciled
    assert desk.statuses("s1-1") == ["accepted", "filled"]
    assert [f.fill_id for f in desk.journal_fills()] == ["s1-1-f1"]
    assert desk.venue.ledger.counts() == {"orders": 1, "fills": 1, "duplicate_submissions": 0}
    report = desk.check()
    assert report.ok and report.settled, report.problems


def test_died_after_the_venue_filled_the_fill_is_journaled_once(desk: Desk) -> None:
    desk.order_from_risk(order(1))
    desk.wire.deliver_one()  # journaled and sent ...
    desk.wire.deliver_one()  # ... the venue fills it and answers ...
    answer = desk.wire.queue[0][2]
    assert isinstance(answer, VenueEvents)
    desk.wire.kill("executor.sim")  # ... and the executor dies before it hears back
    assert desk.journal.fills() == [] and desk.venue.ledger.counts()["fills"] == 1

    desk.executor = desk.start_executor()
    desk.wire.deliver()  # reconciliation: the venue reports the fill
    # The venue's outbox resends its answer to the new incarnation, and the risk guard
    # resends the order: neither journals anything twice or reaches the venue again.
    desk.wire.queue.append(("executor.sim", "paper.sim", answer, None))
    desk.order_from_risk(order(1))
    desk.wire.deliver()
    assert desk.statuses("s1-1") == ["filled"]
    assert [f.fill_id for f in desk.journal_fills()] == ["s1-1-f1"]
    assert desk.journal.counts() == {"orders": 1, "fills": 1, "updates": 1}
    assert desk.venue.ledger.counts() == {"orders": 1, "fills": 1, "duplicate_submissions": 0}
    report = desk.check()
    assert report.ok and report.settled and report.positions == {SYMBOL: 0.5}, report.problems


def test_an_unsent_order_too_old_to_send_is_cancelled_not_fired_late(desk: Desk) -> None:
    desk.order_from_risk(order(1, age_s=60.0))
    desk.wire.deliver_one()
    desk.wire.kill("executor.sim")
    desk.executor = desk.start_executor()
    desk.wire.deliver()
    assert desk.executor.reconciled
    assert desk.journal.order_status("s1-1") == "cancelled"
    assert not desk.venue.ledger.knows("s1-1")
    (update,) = [p for p in desk.executor.ctx.published if isinstance(p, OrderUpdate)]
    assert (update.status, update.reason) == ("cancelled", "expired_unsent")
    report = desk.check()
    assert report.ok and report.settled, report.problems


def test_new_orders_wait_for_reconciliation_with_their_acks_held(desk: Desk) -> None:
    desk.order_from_risk(order(1))
    desk.wire.deliver_one()
    desk.wire.kill("executor.sim")
    desk.executor = desk.start_executor()
    acked: list[str] = []
    # A new order arrives before the venue has answered the reconciliation query.
    query = desk.wire.queue.popleft()
    desk.wire.queue.append(("executor.sim", "risk_guard", order(2), lambda: acked.append("s1-2")))
    desk.wire.queue.append(query)
    desk.wire.deliver()
    assert desk.executor.reconciled
    ctx = desk.executor.ctx
    assert isinstance(ctx, Ctx)
    assert acked == [] and ctx.released == ["ack"]  # held while waiting, released once taken
    assert desk.journal.order_status("s1-1") == "filled"
    assert desk.journal.order_status("s1-2") == "filled"
    # Journal order is the venue's order: the old order went out before the new one.
    assert [o.client_order_id for o in desk.venue.ledger.orders()] == ["s1-1", "s1-2"]
    report = desk.check()
    assert report.ok and report.settled, report.problems


def test_a_duplicate_is_refused_counted_and_the_real_status_journaled(desk: Desk) -> None:
    desk.order_from_risk(order(1))
    desk.wire.deliver()
    assert desk.journal.order_status("s1-1") == "filled"
    # An old copy of the order reaches the venue again (say, from a woken-up incarnation).
    desk.wire.queue.append(("paper.sim", "executor.sim", order(1), None))
    desk.wire.deliver()
    assert desk.statuses("s1-1") == ["accepted", "filled"]  # "rejected" was never journaled
    assert desk.venue.ledger.duplicates() == {"s1-1": 1}
    report = desk.check()
    assert report.ok and report.duplicate_orders == [] and report.duplicate_submissions == 1


def test_a_restarted_venue_keeps_its_ledger_and_cancels_what_rested(desk: Desk) -> None:
    desk.order_from_risk(order(1, order_type="limit", limit_price=99.0))
    desk.order_from_risk(order(2))
    desk.wire.deliver()
    assert desk.journal.order_status("s1-1") == "accepted"
    desk.wire.kill("paper.sim")
    desk.wire.kill("executor.sim")  # rest_for_one: the executor restarts with its venue
    desk.venue = desk.start_venue()
    desk.executor = desk.start_executor()
    desk.wire.deliver()
    assert desk.executor.reconciled
    # Cancel-on-disconnect: nothing rests at a venue that restarted ...
    assert desk.statuses("s1-1") == ["accepted", "cancelled"]
    assert desk.venue.ledger.order("s1-1").reason == "venue_restart"  # type: ignore[union-attr]
    assert desk.venue.engine.open_orders() == []
    # ... and it still refuses ids it had before the restart.
    desk.wire.queue.append(("paper.sim", "executor.sim", order(2), None))
    desk.venue.on_message(Envelope("md", "feed.sim", 1, 2, 2, quote(98.0, 98.5)))
    desk.wire.deliver()
    assert desk.venue.ledger.duplicates() == {"s1-2": 1}
    assert [f.fill_id for f in desk.journal_fills()] == ["s1-2-f1"]
    report = desk.check()
    assert report.ok and report.settled and report.positions == {SYMBOL: 0.5}, report.problems


def test_a_venue_told_to_keep_resting_orders_fills_them_after_its_restart(desk: Desk) -> None:
    desk.order_from_risk(order(1, order_type="limit", limit_price=99.0))
    desk.wire.deliver()
    desk.wire.kill("paper.sim")
    venue = PaperVenueActor(
        Ctx(desk.wire, "paper.sim", desk.run_dir, desk.journal),
        venue=VENUE,
        fee_bps=10.0,
        slippage_bps=0.0,
        durability="process",
        cancel_on_restart=False,
    )
    venue.on_start()
    desk.wire.actors["paper.sim"] = desk.venue = venue
    assert venue.engine.open_orders() == ["s1-1"]
    venue.on_message(Envelope("md", "feed.sim", 1, 2, 2, quote(98.0, 98.5)))
    desk.wire.deliver()
    (fill,) = desk.journal_fills()
    assert (fill.fill_id, fill.price, fill.liquidity) == ("s1-1-f1", 99.0, "maker")
    assert desk.journal.order_status("s1-1") == "filled"
    assert desk.check().ok


def test_the_checker_catches_a_lost_fill_and_a_double_execution(desk: Desk) -> None:
    desk.order_from_risk(order(1))
    desk.wire.deliver()
    # Forge what a broken executor would leave: the venue filled s1-2, the journal says
    # "filled" without the fill; and the venue executed s1-1 a second time.
    two = order(2)
    desk.journal.append(two)
    desk.venue.ledger.record([two])
    desk.venue.ledger.record(
        [
            OrderUpdate(
                client_order_id="s1-2", strategy_id="s1", venue=VENUE, symbol=SYMBOL, status="filled"
            ),
            Fill(
                fill_id="s1-2-f1",
                client_order_id="s1-2",
                strategy_id="s1",
                venue=VENUE,
                symbol=SYMBOL,
                side="buy",
                quantity=0.5,
                price=101.0,
                fee=0.0,
            ),
            Fill(
                fill_id="s1-1-f2",
                client_order_id="s1-1",
                strategy_id="s1",
                venue=VENUE,
                symbol=SYMBOL,
                side="buy",
                quantity=0.5,
                price=101.0,
                fee=0.0,
            ),
        ]
    )
    desk.journal.append(
        OrderUpdate(client_order_id="s1-2", strategy_id="s1", venue=VENUE, symbol=SYMBOL, status="filled")
    )
    report = desk.check()
    assert not report.ok
    assert report.lost_fills == ["s1-2-f1", "s1-1-f2"]
    assert report.duplicate_orders == ["s1-1"]


# -- a real node, kill -9 while orders flow ------------------------------------------------------
VICTIMS = [
    "executor.sim",
    "paper.sim",  # killed while frozen with an order in flight: reconciliation must run
    "executor.sim",  # the venue subtree allows 3 restarts in 30 s before its breaker trips
    "risk_guard",
    "risk_guard",
    "strategy.fast_btc",
    "strategy.fast_eth",
]


@pytest.fixture
def slow_hang_node(short_tmp: Path) -> Iterator[RunningNode]:
    """A node on the fast market that takes 10 s to call a silent actor hung (a frozen venue stays)."""
    config = short_tmp / "money.toml"
    config.write_text(MONEY_CONFIG)
    running = RunningNode(short_tmp / "run", config)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            try:
                running.process.wait(30)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait(5)


def test_kill_9_of_executor_venue_risk_and_strategies_loses_no_money(slow_hang_node: RunningNode) -> None:
    node = slow_hang_node
    rng = random.Random(20261124)
    node.wait_ready()
    eventually(lambda: node.admin("status")["fills"] >= 3, 25, what="first fills")
    victims = list(VICTIMS)
    rng.shuffle(victims)
    for actor_id in victims:
        time.sleep(rng.uniform(0.05, 0.8))  # a random moment of the order flow
        victim = eventually(
            lambda a=actor_id: (w := node.workers()[a])["state"] == "running" and w, 15, what=f"{actor_id} up"
        )
        if actor_id == "paper.sim":
            # Not left to luck: freeze the venue until the executor has journaled and sent
            # an order it cannot answer, then kill it. The restarted executor must reconcile it.
            os.kill(victim["pid"], signal.SIGSTOP)
            eventually(lambda: check_run_dir(node.run_dir).unsent, 20, what="an order in flight")
        os.kill(victim["pid"], signal.SIGKILL)
        eventually(
            lambda a=actor_id, v=victim: (
                (w := node.workers()[a])["state"] == "running" and w["incarnation"] > v["incarnation"]
            ),
            15,
            what=f"{actor_id} restarted",
        )
    fills = node.admin("status")["fills"]
    eventually(lambda: node.admin("status")["fills"] > fills, 20, what="trading after the kills")

    # While it runs: the journal and the venue's ledger agree once in-flight orders land.
    live = eventually(
        lambda: (r := check_run_dir(node.run_dir)).ok and r.settled and r, 10, what="journal == venue"
    )
    assert live.duplicate_orders == [] and live.lost_fills == [] and live.fills_journaled >= fills
    # Stop trading and let the last orders land: the node's positions are the sum of the
    # journaled fills.
    halted = node.admin("halt")
    assert halted["trading_state"] == "HALTED"
    eventually(lambda: (r := check_run_dir(node.run_dir)).ok and r.settled, 30, what="settled after halt")
    eventually(
        lambda: check_run_dir(node.run_dir, node.admin("status")["positions"]).ok, 10, what="positions"
    )
    assert node.stop() == 0
    final = check_run_dir(node.run_dir)
    assert final.ok and final.settled, final.problems
    assert final.orders_journaled == final.orders_at_venue and final.fills_journaled == final.fills_at_venue
    assert final.positions == final.venue_positions
    # The kills did catch orders in flight: a restarted executor reconciled unfinished orders.
    log = node.log()
    assert reconciled_orders(log) >= 1, "no kill caught an order in flight: reconciliation never ran"
    assert log.count('"event": "reconciled"') >= 1
