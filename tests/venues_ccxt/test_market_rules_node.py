"""The exchange's lot size and minimum notional, checked by the risk guard before sending (issue #9 point 4).

A real node (``sniperbot run``) on a ccxt venue in paper mode pointed at the local Binance server, whose
``exchangeInfo`` lists BTC/USDT with LOT_SIZE stepSize / minQty 0.00001 and NOTIONAL minNotional 5: the
real feed actor loads the markets and publishes their rules, the real risk guard sizes and refuses the
strategies' intents by them, and a risk guard killed with SIGKILL gets the rules back from the node's
last-value cache (the feed publishes them once, after loading the markets).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sniperbot.journal import Journal
from sniperbot.messages import Order, OrderUpdate
from tests.conftest import RunningNode, eventually
from tests.exchanges.activity import Activity
from tests.exchanges.binance import BinanceServer, demo_server
from tests.venues_ccxt.nodes import strategy_toml, venue_toml, write_config

ODD = "odd_bx"  # asks for 0.0123456789 BTC: not a whole number of 0.00001 steps
DUST = "dust_bx"  # asks for 0.00005 BTC: about 2.5 USDT at 50,000, below the 5 USDT minimum


@pytest.fixture
def server() -> Iterator[BinanceServer]:
    """The local Binance server with a moving BTC/USDT market (the strategies trade on its crossings)."""
    s = demo_server()
    s.start()
    activity = Activity(s, ["BTC/USDT"], hz=20, seed=5).start()
    try:
        yield s
    finally:
        activity.stop()
        s.stop()


def records(run_dir: Path) -> list[Order | OrderUpdate]:
    """The journal's orders and order updates (read-only, beside the running node)."""
    journal = Journal.open(run_dir, readonly=True)
    try:
        return [r for _, r in journal.records() if isinstance(r, Order | OrderUpdate)]
    finally:
        journal.close()


def orders_of(run_dir: Path, strategy: str) -> list[Order]:
    return [r for r in records(run_dir) if isinstance(r, Order) and r.strategy_id == strategy]


def rejections_of(run_dir: Path, strategy: str, after_ns: int = 0) -> list[OrderUpdate]:
    return [
        r
        for r in records(run_dir)
        if isinstance(r, OrderUpdate)
        and r.strategy_id == strategy
        and r.status == "rejected"
        and r.ts_ns > after_ns
    ]


def test_the_risk_guard_rounds_to_the_lot_step_and_refuses_below_min_notional_with_the_figures(
    server: BinanceServer, short_tmp: Path
) -> None:
    config = write_config(
        short_tmp / "rules.toml",
        venue_toml(server),
        strategy_toml(sid=ODD, quantity=0.0123456789),
        strategy_toml(sid=DUST, quantity=0.00005),
    )
    node = RunningNode(short_tmp / "run", config)
    run_dir = node.run_dir
    try:
        node.wait_ready(90)
        # Approved, with the quantity rounded *down* to the exchange's step: the order sent is 0.01234.
        odd = eventually(lambda: orders_of(run_dir, ODD), 120, what="an order of the odd-sized strategy")
        assert {o.quantity for o in odd} == {0.01234}, odd
        # Refused before anything is sent, the figures in the reason.
        (first, *_) = eventually(lambda: rejections_of(run_dir, DUST), 120, what="a dust rejection")
        code, _, figures = first.reason.partition(": ")
        assert code == "below_min_notional", first.reason
        assert figures.startswith("5e-05 x ") and figures.endswith(" < 5"), first.reason
        price = float(figures.split(" x ")[1].split(" = ")[0])
        assert 40_000 < price < 60_000  # valued at the exchange's market, not a simulated one

        # kill -9 the risk guard: its next incarnation knows the rules from the node's last-value cache
        # (the feed said them once, at start), so dust is still refused and odd sizes still rounded.
        guard = node.workers()["risk_guard"]
        os.kill(guard["pid"], signal.SIGKILL)
        eventually(
            lambda: (
                (w := node.workers().get("risk_guard", {})).get("state") == "running"
                and w.get("pid") != guard["pid"]
            ),
            60,
            what="risk guard restarted",
        )
        restarted_ns = time.time_ns()
        odd_before = len(orders_of(run_dir, ODD))
        again = eventually(
            lambda: rejections_of(run_dir, DUST, after_ns=restarted_ns), 120, what="a dust rejection after"
        )
        assert all(r.reason.startswith("below_min_notional: 5e-05 x ") for r in again), again
        later = eventually(
            lambda: orders_of(run_dir, ODD)[odd_before:], 120, what="an odd-sized order after the restart"
        )
        assert {o.quantity for o in later} == {0.01234}, later
        assert orders_of(run_dir, DUST) == [], "an order below the exchange's minimum notional was sent"
    finally:
        assert node.stop() == 0, node.log()
