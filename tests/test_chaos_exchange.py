"""``sniperbot chaos`` against an exchange (issue #9 point 8): a live node on the local Binance server.

Real components end to end: ``sniperbot run --enable-chaos`` with a live ``[[venues]] kind = "ccxt"``
venue on :mod:`tests.exchanges.binance` (keys in a real keystore, unlocked with ``--password-file``),
a seeded moving market (:mod:`tests.exchanges.activity`), and ``sniperbot chaos --config`` that kills
and freezes the node's actors, injects network faults through the server's control hook
(``--venue-faults``), then checks the journal against the exchange's own orders, trades and balances,
fetched through ccxt with the venue's keys. The tests' own oracle is the server's state
(``state_json``), read directly.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import ccxt
import pytest

from sniperbot.chaos.exchange import (
    ExchangeReader,
    ExchangeVenue,
    check_exchange,
    journal_since_ms,
    read_journal,
)
from sniperbot.keystore import Credentials
from sniperbot.venues.ccxt.markets import spot_options
from sniperbot.venues.ccxt.urls import rebase_urls
from tests.conftest import RunningNode, eventually, sniperbot
from tests.exchanges._base import CONTROL_PATH
from tests.exchanges.activity import Activity
from tests.exchanges.binance import BinanceServer, demo_server
from tests.venues_ccxt.nodes import add_key, strategy_toml, venue_toml, write_config

VENUE = "bx"
SYM = "BTC/USDT"
# Short breaker cooldown and probe, so a tripped venue is back within the session.
BREAKERS = "\n[breakers]\ncooldown_s = 1.0\nprobe_s = 2.0\n"


@pytest.fixture
def server() -> Iterator[BinanceServer]:
    """The local Binance server with a moving BTC/USDT market."""
    s = demo_server()
    s.start()
    activity = Activity(s, [SYM], hz=20, seed=5).start()
    try:
        yield s
    finally:
        activity.stop()
        s.stop()


def chaos(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """``sniperbot chaos ...`` in a fresh process."""
    return sniperbot("chaos", *args, timeout=timeout)


def live_node(server: BinanceServer, short_tmp: Path) -> tuple[RunningNode, Path, list[str]]:
    """A live node on ``server`` with chaos enabled; returns it, its config and the unlock arguments."""
    unlock = add_key(short_tmp / "ks", server)
    config = write_config(
        short_tmp / "live.toml", venue_toml(server, mode="live", keys="local"), strategy_toml(), BREAKERS
    )
    return RunningNode(short_tmp / "run", config, ("--enable-chaos", *unlock)), config, unlock


def our_orders(server: BinanceServer) -> list[dict]:
    """The server's own record of the node's orders."""
    return [o for o in server.state_json()["orders"] if o["client_order_id"].startswith("sma_bx-")]


def test_seeded_chaos_session_against_the_exchange_loses_no_money(
    server: BinanceServer, short_tmp: Path
) -> None:
    node, config, unlock = live_node(server, short_tmp)
    try:
        workers = node.wait_ready()
        assert {"feed.bx", "gateway.bx", "executor.bx"} <= set(workers), sorted(workers)
        eventually(lambda: len(our_orders(server)) >= 2, 120, what="first live orders")
        result = chaos(
            "--run-dir", str(node.run_dir), "--config", str(config), *unlock,
            "--venue-faults", server.rest_url + CONTROL_PATH,
            "--duration", "24", "--interval", "1.5", "--seed", "11", "--net-share", "0.4",
            "--settle-timeout", "90", "--trade-timeout", "60", "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["ok"] is True, report["problems"]
        assert report["faults"] >= 10 and report["recovered"] == report["faults"], report["fault_log"]
        signals = Counter(f["signal"] for f in report["fault_log"])
        assert signals["KILL"] and signals["STOP"] and signals["NET"] == report["net_faults"] >= 2, signals
        hit = {f["actor"] for f in report["fault_log"]}
        assert hit & {"gateway.bx", "executor.bx", "feed.bx"}, hit
        # Seed 11 arms a lost order answer: the order is placed, the gateway never hears it.
        assert "exchange:lose_order_answer" in hit, hit
        net = [f for f in report["fault_log"] if f["signal"] == "NET"]
        assert all(f["recovery_ms"] is not None and f["recovery_ms"] >= 0 for f in net), net
        assert 0 < report["recovery_ms_p50"] <= report["recovery_ms_p99"]
        assert report["still_trading"] is True
        assert report["invariants"] is None  # the only venue is checked against its exchange
        (ex,) = report["exchange"]
        assert ex["venue"] == VENUE and ex["ok"] and ex["settled"], ex["problems"]
        assert ex["duplicate_orders"] == [] and ex["lost_fills"] == [] and ex["phantom_fills"] == []
        assert ex["fills_journaled"] == ex["trades_at_exchange"] > 0
        assert ex["positions"] == ex["exchange_positions"] and f"{VENUE}:{SYM}" in ex["positions"]
        # The session moved money at the exchange, and the journaled fills explain every unit of it.
        assert ex["balance_changes"]["USDT"] != 0
        for asset, change in ex["balance_changes"].items():
            assert change == pytest.approx(ex["expected_balance_changes"][asset], abs=1e-6), asset
        assert node.process.poll() is None
    finally:
        assert node.stop() == 0, node.log()
    # The test's own oracle, the server's records: one exchange order per client order id.
    cids = Counter(o["client_order_id"] for o in our_orders(server))
    assert cids and max(cids.values()) == 1, [c for c, n in cids.items() if n > 1]
    # The node's keys never reached the chaos tool's output.
    assert server.secret not in result.stdout + result.stderr


def test_the_exchange_checker_catches_a_blind_resend(server: BinanceServer, short_tmp: Path) -> None:
    """A second order under a journaled, filled client order id (what a gateway that resends without
    looking the order up does after a lost answer) is a double execution the checker names.
    """
    node, _, _ = live_node(server, short_tmp)
    creds = Credentials("local", "binance", "2026-01-01T00:00:00Z", server.credentials())
    venue = ExchangeVenue(
        name=VENUE, exchange="binance", symbols=(SYM,), keys="local", rest_url=server.rest_url
    )
    try:
        node.wait_ready()
        filled = eventually(
            lambda: [o for o in our_orders(server) if o["status"] == "filled"], 120, what="a filled order"
        )
    finally:
        assert node.stop() == 0, node.log()
    reader = ExchangeReader(venue, str(node.run_dir), creds)
    try:
        baseline = reader.baseline()
        journal = read_journal(str(node.run_dir))
        clean = check_exchange(journal, reader.fetch(journal_since_ms(journal, VENUE)), baseline)
        assert clean.ok and clean.settled, clean.problems
        # The blind resend: same client order id, same order, sent again through ccxt.
        victim = filled[0]
        config = {**server.credentials(), "options": spot_options("binance")}
        ex = rebase_urls(ccxt.binance(config), server.rest_url, None)
        ex.create_order(
            SYM, "market", victim["side"], float(victim["quantity"]), None,
            {"newClientOrderId": victim["client_order_id"]},
        )  # fmt: skip
        report = check_exchange(journal, reader.fetch(journal_since_ms(journal, VENUE)), baseline)
    finally:
        reader.close()
    assert not report.ok
    cid = victim["client_order_id"]
    assert any(d.startswith(f"{cid}: 2 exchange orders") for d in report.duplicate_orders), report
    # Its trade is the exchange's, never journaled: a lost fill, and balances the journal cannot explain.
    assert report.lost_fills and all(f.startswith(f"{VENUE}:{SYM}:") for f in report.lost_fills)
    assert {m.split(":")[0] for m in report.balance_mismatches} >= {"BTC", "USDT"}, report.balance_mismatches
    assert any(p.startswith("duplicate_orders: bx:") for p in report.problems), report.problems


def test_chaos_against_an_exchange_refuses_a_wrong_password_and_unknown_faults(
    server: BinanceServer, short_tmp: Path
) -> None:
    """Exit 2 before touching any node or exchange: the keys are unlocked as ``sniperbot run`` does."""
    unlock = add_key(short_tmp / "ks", server)
    config = write_config(
        short_tmp / "live.toml", venue_toml(server, mode="live", keys="local"), strategy_toml()
    )
    wrong = short_tmp / "wrong.pw"
    wrong.write_text("not-the-keystore-password\n")
    requests_before = len(server.requests)
    common = (
        "--run-dir",
        str(short_tmp / "run"),
        "--duration",
        "5",
        "--interval",
        "1",
        "--config",
        str(config),
    )
    bad_password = chaos(*common, "--keystore", unlock[1], "--password-file", str(wrong))
    assert bad_password.returncode == 2, bad_password.stdout + bad_password.stderr
    assert "password" in bad_password.stderr.lower() and bad_password.stdout == ""
    bad_fault = chaos(*common, *unlock, "--net-faults", "drop_streams,unplug_cable")
    assert bad_fault.returncode == 2 and "network faults" in bad_fault.stderr, bad_fault.stderr
    no_node = chaos(*common, *unlock, "--venue-faults", server.rest_url + CONTROL_PATH)
    assert no_node.returncode == 2 and "no_node" in no_node.stderr, no_node.stderr
    assert len(server.requests) == requests_before, "nothing may reach the exchange before the node is found"
    for result in (bad_password, bad_fault, no_node):
        assert server.secret not in result.stdout + result.stderr
