"""A live venue's breaker follows its reconciliation; a trip cancels our resting orders (issue #9 point 4).

Real nodes (``sniperbot run``, live mode, keys from a keystore) on a ``[[venues]] kind = "ccxt"`` venue
pointed at the local Binance server; faults are the server's own (a closed port, 5xx answers, a 418
ban); what was placed or cancelled is read from the server's records. Resting limit orders come from
:class:`LimitOrders`, a small actor started as ``strategy.lim`` (the registry's strategies send only
market orders): its intents pass the real risk guard and executor like any strategy's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.journal import Journal
from sniperbot.messages import Envelope, OrderIntent, OrderUpdate
from sniperbot.messages.orders import make_intent_id
from tests.conftest import RunningNode, eventually, sniperbot
from tests.exchanges.binance import BinanceServer, demo_server
from tests.venues_ccxt.nodes import add_key, venue_toml, write_config

VENUE = "bx"
SYM = "BTC/USDT"
SCOPE = f"venue:{VENUE}"
LIMIT_PRICE = 40_000.0  # far below the book (~50,000): rests at the exchange


class LimitOrders(Actor):
    """``strategy.<id>``: sends a limit buy intent to the risk guard every ``every_s`` (``count`` in all)."""

    inbox = True

    def __init__(
        self, ctx: ActorContext, *, venue: str, symbol: str, count: int = 0, every_s: float = 0.5
    ) -> None:
        super().__init__(ctx)
        self.venue = venue
        self.symbol = symbol
        self.count = count
        self.every_s = every_s
        self.strategy_id = ctx.actor_id.partition(".")[2]
        self.seq = 0

    def on_start(self) -> None:
        """Send on a timer."""
        self.ctx.every(self.every_s, self._send)

    def _send(self) -> None:
        if self.count and self.seq >= self.count:
            return
        self.seq += 1
        intent = OrderIntent(
            intent_id=make_intent_id(self.strategy_id, self.seq, self.ctx.node_life),
            strategy_id=self.strategy_id,
            intent_seq=self.seq,
            venue=self.venue,
            symbol=self.symbol,
            side="buy",
            quantity=0.001,
            order_type="limit",
            limit_price=LIMIT_PRICE,
            ts_ns=time.time_ns(),
        )
        self.ctx.send("risk_guard", intent)

    def on_message(self, envelope: Envelope) -> None:
        """Order events are not needed here."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[BinanceServer]:
    s = demo_server(_free_port())  # a fixed port: a test may stop the server and start another there
    s.start()
    try:
        yield s
    finally:
        s.stop()


def live_node(short_tmp: Path, exchange: BinanceServer) -> RunningNode:
    """A live node on venue ``bx`` at ``exchange`` (running or not), no strategies."""
    unlock = add_key(short_tmp / "ks", exchange)
    config = write_config(
        short_tmp / "live.toml",
        venue_toml(exchange, mode="live", keys="local"),
        # The crash-loop test kills the gateway a few times: every restart counts (OTP).
        "\n[supervisor]\nmin_uptime_s = 0.0\n",
        strategies=False,
    )
    return RunningNode(short_tmp / "run", config, tuple(unlock))


def start_limits(node: RunningNode, count: int = 0, every_s: float = 0.5) -> None:
    """Start :class:`LimitOrders` as ``strategy.lim`` under the strategies supervisor."""
    spec = {
        "id": "strategy.lim",
        "actor": f"{__name__}:LimitOrders",
        "args": {"venue": VENUE, "symbol": SYM, "count": count, "every_s": every_s},
        "restart": "temporary",
    }
    result = sniperbot(
        "admin", "--run-dir", str(node.run_dir), "start-child", "--sup", "strategies",
        "--spec", json.dumps(spec), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def breaker(node: RunningNode, scope: str = SCOPE) -> dict[str, Any]:
    """``admin breaker-status`` of one scope ({} if it never tripped)."""
    return next((b for b in node.admin("breaker-status") if b["scope"] == scope), {})


def rejections(node: RunningNode) -> dict[str, str]:
    """Client order id -> reason of every journaled rejection of ``strategy.lim`` (read-only journal)."""
    journal = Journal.open(node.run_dir, readonly=True)
    try:
        return {
            r.client_order_id: r.reason
            for _, r in journal.records()
            if isinstance(r, OrderUpdate) and r.status == "rejected" and r.strategy_id == "lim"
        }
    finally:
        journal.close()


def ours_at_exchange(exchange: BinanceServer) -> list[dict[str, Any]]:
    return [o for o in exchange.state_json()["orders"] if o["client_order_id"].startswith("lim-")]


def test_unreachable_exchange_at_start_keeps_the_breaker_open_and_intents_rejected_until_reconciled(
    short_tmp: Path,
) -> None:
    port = _free_port()
    absent = BinanceServer()
    absent.port = port  # nothing listens there: the exchange is unreachable when the node starts
    node = live_node(short_tmp, absent)
    up: BinanceServer | None = None
    try:
        node.wait_ready(90)
        held = eventually(lambda: breaker(node).get("state") == "open" and breaker(node), 60, what="held")
        assert held["reason"].startswith("venue not reconciled: exchange"), held
        gateway = eventually(
            lambda: (
                (g := node.admin("status")["venues"][VENUE]["gateway"]) and g["connection"] == "down" and g
            ),
            30,
            what="gateway down",
        )
        held = eventually(lambda: "unreachable" in breaker(node)["reason"] and breaker(node), 30, what="why")
        assert held["reason"].startswith("venue not reconciled: exchange unreachable (last failure: "), held
        assert gateway["reconciled"] is False and gateway["last_reconciliation_ns"] == 0, gateway
        start_limits(node)

        eventually(lambda: rejections(node), 60, what="intents rejected while the venue is held")
        assert set(rejections(node).values()) == {f"breaker_open:{SCOPE}"}, rejections(node)
        # The exchange comes up: the gateway reconciles, the breaker closes, orders reach it.
        up = demo_server(port)
        up.start()
        closed = eventually(
            lambda: breaker(node).get("state") == "closed" and breaker(node), 90, what="closed"
        )
        assert closed["reason"] == "venue reconciled", closed
        eventually(lambda: ours_at_exchange(up), 60, what="orders at the exchange once reconciled")
        gateway = node.admin("status")["venues"][VENUE]["gateway"]
        assert gateway["connection"] == "ok" and gateway["reconciled"] is True, gateway
    finally:
        assert node.stop() == 0, node.log()
        if up is not None:
            up.stop()
    # Nothing rejected while held ever reached the exchange.
    rejected = set(rejections(node))
    assert rejected and not rejected & {o["client_order_id"] for o in ours_at_exchange(up)}


def test_418_ban_opens_the_breaker_with_the_ban_end_and_cancels_our_resting_orders(
    server: BinanceServer, short_tmp: Path
) -> None:
    node = live_node(short_tmp, server)
    try:
        node.wait_ready(90)
        eventually(lambda: breaker(node).get("state") == "closed", 60, what="reconciled at start")
        start_limits(node, count=2)
        eventually(lambda: len(ours_at_exchange(server)) == 2, 60, what="two resting orders of ours")
        server.ban(6)
        held = eventually(
            lambda: "banned until" in breaker(node).get("reason", "") and breaker(node), 60, what="ban shown"
        )
        assert held["state"] == "open" and "418" in held["reason"], held
        # The ban ends: reconciled again, breaker closed, and the trip's cancels reached the exchange.
        eventually(lambda: breaker(node).get("state") == "closed", 90, what="closed after the ban")
        eventually(
            lambda: all(o["status"] == "canceled" for o in ours_at_exchange(server)), 60, what="cancelled"
        )
    finally:
        assert node.stop() == 0, node.log()


def test_admin_halt_cancels_our_resting_orders_at_the_exchange_and_leaves_a_foreign_order_alone(
    server: BinanceServer, short_tmp: Path
) -> None:
    with server.lock:
        server.engine.place(SYM, "buy", "limit", "0.002", "41000", None, "foreign-1", "GTC")
    node = live_node(short_tmp, server)
    try:
        node.wait_ready(90)
        eventually(lambda: breaker(node).get("state") == "closed", 60, what="reconciled at start")
        start_limits(node, count=2)
        eventually(
            lambda: [o["status"] for o in ours_at_exchange(server)] == ["new", "new"], 60, what="resting"
        )
        gateway = eventually(
            lambda: (g := node.admin("status")["venues"][VENUE]["gateway"])["open_orders"] == 2 and g,
            30,
            what="two open orders shown",
        )
        assert gateway["foreign_orders"] == 1, gateway
        result = sniperbot("admin", "--run-dir", str(node.run_dir), "halt")
        assert result.returncode == 0, result.stderr
        eventually(
            lambda: all(o["status"] == "canceled" for o in ours_at_exchange(server)),
            60,
            what="ours cancelled",
        )
        foreign = [o for o in server.state_json()["orders"] if o["client_order_id"] == "foreign-1"]
        assert [o["status"] for o in foreign] == ["new"], foreign
        eventually(
            lambda: node.admin("status")["venues"][VENUE]["gateway"]["open_orders"] == 0, 30, what="none open"
        )
    finally:
        assert node.stop() == 0, node.log()


def test_crash_loop_of_the_gateway_trips_the_venue_and_its_restart_cancels_our_resting_orders(
    server: BinanceServer, short_tmp: Path
) -> None:
    """Resting orders of ours do not outlive a gateway that keeps crashing; holds are not trips."""
    node = live_node(short_tmp, server)
    try:
        node.wait_ready(90)
        eventually(lambda: breaker(node).get("state") == "closed", 60, what="reconciled at start")
        start_limits(node, count=2)
        eventually(
            lambda: [o["status"] for o in ours_at_exchange(server)] == ["new", "new"], 60, what="resting"
        )
        killed: set[int] = set()
        # More restarts than venue.bx's intensity (3 in 30 s): the subtree gives up, its breaker trips.
        # (A gateway restart only *holds* the venue until reconciled: that is not a trip.)
        while not breaker(node).get("trips", 0):
            pid = eventually(
                lambda: (
                    (w := node.workers().get("gateway.bx"))
                    and w["state"] == "running"
                    and w["pid"] not in killed
                    and w["pid"]
                ),
                60,
                what="a running gateway to kill",
            )
            killed.add(pid)
            os.kill(pid, signal.SIGKILL)
            eventually(
                lambda pid=pid: (
                    node.workers().get("gateway.bx", {}).get("pid") != pid or breaker(node).get("trips", 0)
                ),
                60,
                what="gateway replaced or venue tripped",
            )
        assert '"reason": "venue.bx escalated"' in node.log()
        eventually(
            lambda: all(o["status"] == "canceled" for o in ours_at_exchange(server)),
            90,
            what="cancelled once the subtree runs again",
        )
        # Half-open again once its restarted gateway has reconciled, then closed by the probe.
        closed = eventually(
            lambda: breaker(node).get("state") == "closed" and breaker(node), 120, what="closed by the probe"
        )
        assert closed["reason"] == "probe passed", closed
        changes = [json.loads(line) for line in node.log().splitlines() if '"event": "breaker"' in line]
        # Only escalations count as trips (a loaded machine may see a second one), never the holds.
        escalations = [c for c in changes if c["state"] == "open" and c["reason"] == "venue.bx escalated"]
        assert closed["trips"] == len(escalations) >= 1, (closed, escalations)
        after_trip = changes[next(i for i, c in enumerate(changes) if c["reason"] == "venue.bx escalated") :]
        moves = [(c["state"], c["reason"]) for c in after_trip]
        assert ("half_open", "venue reconciled") in moves, moves
    finally:
        assert node.stop() == 0, node.log()
