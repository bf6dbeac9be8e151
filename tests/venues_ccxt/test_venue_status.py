"""A live venue's health, reconciliation state, balances and drift, as its gateway says them (issue #9).

The first tests run the gateway in an :class:`~tests.venues_ccxt.test_gateway.Actors` harness (its
own thread, real ZeroMQ, real LMDB) against the local Binance server; a real bus proxy carries what it
publishes, and the test reads its :class:`VenueStatus` off the bus like the node does. Balances and
drift are checked against the *server's* own account. The last one runs a real node (a live ccxt
venue and the simulated venue side by side) and reads the same through ``admin status``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import zmq

from sniperbot.actors.runtime import process_journal
from sniperbot.messages import OrderUpdate, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.messages.venue import VenueStatus
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import BusProxy, Subscriber, split_message
from sniperbot.venues.ccxt.gateway import REJECT_NOT_RECONCILED
from tests.conftest import RunningNode, eventually
from tests.exchanges.binance import BinanceServer, demo_server
from tests.venues_ccxt.nodes import add_key, venue_toml, write_config
from tests.venues_ccxt.test_gateway import (  # noqa: F401  (fixtures)
    SYM,
    VENUE,
    Actors,
    actors,
    at_exchange,
    order,
    server,
    start_executor,
    start_gateway,
    submit,
)


class StatusWatch:
    """Every VenueStatus of ``venue`` published on a real bus (proxy started here, as a node does)."""

    def __init__(self, run_dir: Path, venue: str = VENUE) -> None:
        self.zctx = zmq.Context()
        rundir = RunDir(run_dir)
        self.proxy = BusProxy(self.zctx, rundir.bus_in, rundir.bus_out)
        self.proxy.start()
        self.sub = Subscriber(self.zctx, rundir.bus_out, (topic.venue_status(venue),))
        self.seen: list[VenueStatus] = []

    def pump(self) -> list[VenueStatus]:
        while self.sub.socket.poll(0):
            _, frame = split_message(self.sub.socket.recv())
            payload = decode_envelope(frame).payload
            if isinstance(payload, VenueStatus):
                self.seen.append(payload)
        return self.seen

    def wait(self, pred: Any, timeout_s: float = 90.0, what: str = "") -> VenueStatus:
        """The first status (published after now) matching ``pred``."""
        after = len(self.pump())
        return eventually(
            lambda: next((s for s in self.pump()[after:] if pred(s)), None), timeout_s, what=what
        )

    def close(self) -> None:
        self.sub.close()
        self.proxy.stop()
        self.zctx.destroy(linger=0)


@pytest.fixture
def watch(actors: Actors) -> Iterator[StatusWatch]:  # noqa: F811
    w = StatusWatch(actors.run_dir)
    try:
        yield w
    finally:
        w.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_totals(exchange: BinanceServer) -> dict[str, float]:
    with exchange.lock:
        return {a: float(f + lk) for a, (f, lk) in exchange.engine.balances.items() if f + lk}


def test_status_shows_connection_reconciliation_balances_and_open_orders(
    server: BinanceServer,  # noqa: F811
    actors: Actors,  # noqa: F811
    watch: StatusWatch,
) -> None:
    start_gateway(actors, server)
    start_executor(actors)
    actors.start("risk_guard", "tests.venues_ccxt.test_gateway:Driver", {})
    status = watch.wait(lambda s: s.reconciled, what="a reconciled status")
    assert status.connection == "ok"
    assert status.last_reconciliation_ns > 0 and status.last_failure == ""
    assert status.balances == _server_totals(server) == {"USDT": 100_000.0, "BTC": 2.0, "ETH": 20.0}
    assert status.open_orders == 0 and status.foreign_orders == 0 and status.drift == {}

    # A resting order of ours: counted open; its locked balance is still in the totals.
    submit(order("rest1", limit=40_000.0))
    eventually(lambda: at_exchange(server, "rest1"), 90, what="order at the exchange")
    status = watch.wait(lambda s: s.open_orders == 1, what="one open order")
    assert status.balances["USDT"] == pytest.approx(100_000.0)
    # Reconciliations go on: each status after a sweep carries a later time.
    later = watch.wait(lambda s: s.last_reconciliation_ns > status.last_reconciliation_ns, what="next sweep")
    assert later.reconciled


def test_journaled_fills_explain_the_balance_change_and_a_change_behind_our_back_is_drift(
    server: BinanceServer,  # noqa: F811
    actors: Actors,  # noqa: F811
    watch: StatusWatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start_gateway(actors, server)
    start_executor(actors)
    actors.start("risk_guard", "tests.venues_ccxt.test_gateway:Driver", {})
    watch.wait(lambda s: s.reconciled and s.drift_since_ns > 0, what="baseline taken")
    # Our own trades (Binance charges a buy's fee in the base asset, a sell's in quote): no drift.
    submit(order("buy1", side="buy", quantity=0.5))
    submit(order("sell1", side="sell", quantity=0.2))
    status = watch.wait(
        lambda s: (
            s.balances.get("BTC", 0.0) != 2.0 and s.balances == _server_totals(server) and s.open_orders == 0
        ),
        what="balances after our trades",
    )
    assert status.balances["BTC"] == pytest.approx(2.0 + 0.5 * 0.999 - 0.2)
    assert status.drift == {}, status
    # Money moved at the exchange that the journal does not explain: shown per asset, logged once.
    with server.lock:
        server.engine.deposit("USDT", 123)
        server.engine.balances["ETH"][0] -= 1
    status = watch.wait(lambda s: "USDT" in s.drift, what="drift shown")
    assert status.drift["USDT"] == pytest.approx(123.0)
    assert status.drift["ETH"] == pytest.approx(-1.0)
    assert set(status.drift) == {"USDT", "ETH"}

    def logged() -> list[Any]:
        return [r for r in caplog.records if getattr(r, "event", "") == "balance_drift"]

    eventually(lambda: len(logged()) == 2, 90, what="balance_drift logged per asset")
    watch.wait(lambda s: True, what="another sweep")
    watch.wait(lambda s: True, what="and another")
    assert len(logged()) == 2, "a standing drift is logged once, not every sweep"


def test_unreachable_exchange_at_start_is_down_not_reconciled_and_new_orders_are_not_sent(
    actors: Actors,  # noqa: F811
    watch: StatusWatch,
) -> None:
    port = _free_port()
    later = BinanceServer()
    later.port = port  # nothing listens there yet: the exchange is unreachable
    start_gateway(actors, later, reconcile_wait_s=1.0)
    start_executor(actors)
    actors.start("risk_guard", "tests.venues_ccxt.test_gateway:Driver", {})
    status = watch.wait(lambda s: s.connection == "down", what="connection down")
    assert not status.reconciled and status.last_reconciliation_ns == 0
    assert status.last_failure in {"ExchangeNotAvailable", "NetworkError", "RequestTimeout"}, status
    submit(order("early1"))
    eventually(lambda: _rejection("early1", actors) == REJECT_NOT_RECONCILED, 90, what="rejected unsent")
    # The exchange comes up: the gateway reconciles and trades again.
    up = demo_server(port)
    up.start()
    try:
        status = watch.wait(lambda s: s.reconciled, 60, what="reconciled once reachable")
        assert status.connection == "ok" and status.balances["USDT"] == 100_000.0
        assert not at_exchange(up, "early1"), "an order rejected while unreconciled never reached it"
        submit(order("late1"))
        eventually(lambda: at_exchange(up, "late1"), 90, what="order placed once reconciled")
    finally:
        actors.stop_all()
        up.stop()


def _rejection(cid: str, harness: Actors) -> str:
    """The reason of the journaled rejection of ``cid`` ("" if none)."""
    for _, record in process_journal(harness.run_dir, "process").records():
        if isinstance(record, OrderUpdate) and record.client_order_id == cid and record.status == "rejected":
            return record.reason
    return ""


def test_ban_418_shows_banned_until_with_the_reason_then_reconciles_after_it(
    server: BinanceServer,  # noqa: F811
    actors: Actors,  # noqa: F811
    watch: StatusWatch,
) -> None:
    start_gateway(actors, server)
    watch.wait(lambda s: s.reconciled, what="reconciled")
    server.ban(4)
    banned = watch.wait(lambda s: s.connection == "banned", what="banned")
    assert not banned.reconciled
    assert "418" in banned.ban_reason
    assert banned.banned_until_ns > time.time_ns()
    again = watch.wait(lambda s: s.reconciled, 60, what="reconciled after the ban")
    assert again.connection == "ok" and again.last_reconciliation_ns > banned.ts_ns


# ---- a real node: admin status per venue


def test_admin_status_shows_each_venue_feed_gateway_balances_and_a_drift_made_behind_our_back(
    server: BinanceServer,  # noqa: F811
    short_tmp: Path,
) -> None:
    unlock = add_key(short_tmp / "ks", server)
    sim = '[[venues]]\nname = "sim"\nkind = "sim"\n'
    config = write_config(
        short_tmp / "live.toml", venue_toml(server, mode="live", keys="local"), sim, strategies=False
    )
    node = RunningNode(short_tmp / "run", config, tuple(unlock))
    try:
        node.wait_ready(90)

        def venue(name: str) -> dict[str, Any]:
            return node.admin("status")["venues"][name]

        bx = eventually(
            lambda: (v := venue(VENUE))["gateway"] and v["gateway"]["reconciled"] and v["feed"] and v,
            60,
            what="live venue reported by its feed and gateway",
        )
        assert (bx["kind"], bx["mode"]) == ("ccxt", "live")
        assert bx["feed"]["connected"] is True and bx["feed"]["stale"] is False, bx["feed"]
        assert {"reconnects", "gaps", "stale_periods", "rest_polls", "last_message_ns"} <= set(bx["feed"])
        gateway = bx["gateway"]
        assert gateway["connection"] == "ok" and gateway["last_reconciliation_ns"] > 0, gateway
        assert gateway["balances"] == _server_totals(server), gateway
        assert gateway["drift"] == {} and gateway["open_orders"] == 0 and gateway["foreign_orders"] == 0
        paper = eventually(lambda: venue("sim")["gateway"], 90, what="paper venue status")
        assert (venue("sim")["kind"], venue("sim")["mode"]) == ("sim", "paper")
        assert paper["connection"] == "simulated" and paper["reconciled"] is True, paper
        # 0.5 BTC leaves the account without a trade of ours: the journal cannot explain it.
        with server.lock:
            server.engine.balances["BTC"][0] -= Decimal("0.5")
        drift = eventually(lambda: venue(VENUE)["gateway"]["drift"], 60, what="drift in admin status")
        assert drift == {"BTC": pytest.approx(-0.5)}, drift
        eventually(lambda: '"event": "balance_drift"' in node.log(), 90, what="balance_drift logged")
        assert node.log().count('"event": "balance_drift"') == 1, "logged once, not every sweep"
    finally:
        assert node.stop() == 0, node.log()
