"""Exactly-once money under crashes on a real node: journal first, venue with its own ledger.

Kill -9 the executor, the venue, the risk guard and strategies at seeded random moments
while orders flow, and check that the journal and the venue's ledger agree on every
order and fill. The deterministic crash-point walk-throughs (the real executor and
gateway on an in-process wire) are the gateway conformance suite every venue must
pass: ``tests/venues/conformance.py``, run for the paper gateway by
``tests/venues/test_sim_conformance.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sniperbot.chaos.invariants import check_run_dir
from tests.conftest import RunningNode, eventually
from tests.test_money import MONEY_CONFIG, reconciled_orders

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
