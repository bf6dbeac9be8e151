"""The risk guard decides on the breakers as the node journaled them, even when it missed their announcement.

A ``BreakerChanged`` on the bus is at-most-once: one published while a starting (or restarted) risk
guard's subscription is still joining the bus is lost. Under CI load that happened to a live venue's
start-up hold (``venue not reconciled``, released a moment later): the guard kept the ``open`` it had
read at start and rejected every intent of the venue (``breaker_open``) for as long as the node ran,
while ``admin status`` said the breaker was closed - a node that silently never traded.

Real components: the real :class:`~sniperbot.actors.risk_guard.RiskGuardActor` in an
:class:`~sniperbot.actors.runtime.ActorRuntime` of its own (a thread, real ZeroMQ inboxes in a real run
dir, the real LMDB journal), intents from a real actor with a strategy's id, and the node's own
:class:`~sniperbot.supervision.breaker.BreakerBoard` journaling the breaker. There is no node here, so
no announcement reaches the guard at all: the worst case of a lost one, made deterministic.
"""

from __future__ import annotations

import logging

import msgspec
import pytest

from sniperbot.actors.runtime import process_journal
from sniperbot.messages import Fill, Order, OrderIntent, OrderUpdate
from sniperbot.supervision.breaker import NOT_RECONCILED, BreakerBoard
from tests.conftest import eventually
from tests.venues_ccxt.test_gateway import _HEARD, _OUTGOING, Actors, actors  # noqa: F401  (fixture)

VENUE = "sim"
SYM = "BTC/USDT"
STRATEGY = "strategy.t"
EXECUTOR = f"executor.{VENUE}"
DRIVER = "tests.venues_ccxt.test_gateway:Driver"
LIMITS = {"max_order_notional": 1e9, "max_position": 1e9, "max_orders_per_second": 1000.0}


def intent(seq: int) -> OrderIntent:
    """A small limit buy (its limit price values it: the guard needs no quote)."""
    return OrderIntent(
        intent_id=f"t-{seq}",
        strategy_id="t",
        intent_seq=seq,
        venue=VENUE,
        symbol=SYM,
        side="buy",
        quantity=0.01,
        order_type="limit",
        limit_price=100.0,
    )


def test_a_breaker_closed_in_the_journal_is_closed_for_the_guard_without_its_announcement(
    actors: Actors,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sniperbot.actor")
    journal = process_journal(actors.run_dir, "process")
    announced: list[object] = []  # the node's bus, which this guard never hears
    board = BreakerBoard(journal, announced.append)
    scope = f"venue:{VENUE}"
    board.hold(scope, f"{NOT_RECONCILED}: exchange not reached yet")  # a live venue's start-up hold
    actors.start(EXECUTOR, DRIVER, {})  # stands in for the executor: keeps the orders it is sent
    actors.start(
        "risk_guard",
        "sniperbot.actors.risk_guard:RiskGuardActor",
        {"limits": LIMITS, "trading_state": "ACTIVE", "executors": {VENUE: EXECUTOR}},
    )
    actors.start(STRATEGY, DRIVER, {})

    def decided(seq: int) -> str:
        """The guard's decision on intent ``seq``: rejected (its reason) or sent to the executor."""
        if any(isinstance(p, Order) and p.client_order_id == f"t-{seq}" for p in _HEARD[EXECUTOR]):
            return "approved"
        reasons = [
            f"{r.status}:{r.reason}"
            for _, r in journal.records(kinds=(OrderUpdate,))
            if isinstance(r, OrderUpdate) and r.client_order_id == f"t-{seq}"
        ]
        return reasons[-1] if reasons else ""

    _OUTGOING[STRATEGY].put(("risk_guard", intent(1)))
    assert eventually(lambda: decided(1), 30, what="the decision on t-1") == f"rejected:breaker_open:{scope}"
    # A node that rejects its intents says why in its log (once per venue and reason, not per intent).
    (logged,) = [r for r in caplog.records if getattr(r, "event", "") == "intent_rejected"]
    assert (logged.reason, logged.venue, logged.count) == (f"breaker_open:{scope}", VENUE, 1)  # type: ignore[attr-defined]

    # The gateway reconciled: the node releases the hold, journals it, announces it (to nobody here).
    board.release(scope, "venue reconciled")
    assert [c.state for c in announced] == ["open", "closed"]  # type: ignore[attr-defined]
    _OUTGOING[STRATEGY].put(("risk_guard", intent(2)))
    assert eventually(lambda: decided(2), 30, what="the decision on t-2") == "approved"


def test_a_fill_journaled_but_never_heard_is_in_the_guards_position(actors: Actors) -> None:  # noqa: F811
    """A restarted guard that missed a fill's announcement must not refuse the strategy's exit from it.

    Under chaos on chain the guard thought the position flat and refused the strategy's reduce-only sell
    (``reducing_only``) on every bar after: the node never traded again.
    """
    journal = process_journal(actors.run_dir, "process")
    actors.start(EXECUTOR, DRIVER, {})
    actors.start(
        "risk_guard",
        "sniperbot.actors.risk_guard:RiskGuardActor",
        {"limits": LIMITS, "trading_state": "ACTIVE", "executors": {VENUE: EXECUTOR}},
    )
    actors.start(STRATEGY, DRIVER, {})
    # What the executor journals (then publishes, to nobody here) for a buy the guard approved earlier.
    buy = Order(
        client_order_id="t-0", intent_id="t-0", strategy_id="t", venue=VENUE, symbol=SYM, side="buy",
        quantity=0.01, order_type="limit", limit_price=100.0,
    )  # fmt: skip
    journal.append(buy)
    journal.append(
        Fill(
            fill_id="f-0",
            client_order_id="t-0",
            strategy_id="t",
            venue=VENUE,
            symbol=SYM,
            side="buy",
            quantity=0.01,
            price=100.0,
            fee=0.0,
        )
    )
    exit_ = msgspec.structs.replace(intent(1), side="sell", reduce_only=True)
    _OUTGOING[STRATEGY].put(("risk_guard", exit_))

    def sent_or_rejected() -> str:
        if any(isinstance(p, Order) and p.client_order_id == "t-1" for p in _HEARD[EXECUTOR]):
            return "approved"
        return f"rejected:{journal.order_status('t-1')}" if journal.order_status("t-1") else ""

    assert eventually(sent_or_rejected, 30, what="the decision on the exit") == "approved"
