"""A whole node on a ccxt venue against the local Binance server (issue #9 points 1, 3, 4).

Real components end to end: ``sniperbot run`` with a ``[[venues]] kind = "ccxt"`` config whose
``rest_url``/``ws_url`` point at :mod:`tests.exchanges.binance` on 127.0.0.1, the real ccxt/ccxt.pro
clients in the feed and gateway processes, a seeded moving market (:mod:`tests.exchanges.activity`),
and every claim about what happened at the exchange read from the server's own records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningNode, eventually, sniperbot
from tests.exchanges.activity import Activity
from tests.exchanges.binance import BinanceServer, demo_server
from tests.venues_ccxt.nodes import add_key, strategy_toml, venue_toml, write_config


@pytest.fixture
def server() -> Iterator[BinanceServer]:
    """The local Binance server with a moving BTC/USDT market."""
    s = demo_server()
    s.start()
    activity = Activity(s, ["BTC/USDT"], hz=20, seed=3).start()
    try:
        yield s
    finally:
        activity.stop()
        s.stop()


def journal_json(run_dir: Path, what: str) -> list[dict[str, Any]]:
    """``sniperbot journal --run-dir DIR fills|orders --json``."""
    result = sniperbot("journal", "--run-dir", str(run_dir), what, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused(config: Path, run_dir: Path, *extra: str) -> str:
    """Run a node that must refuse to start: exit 2, nothing created; returns its error."""
    result = sniperbot("run", "--config", str(config), "--run-dir", str(run_dir), "--duration", "5", *extra)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert not (run_dir / "journal").exists(), "a refused node must not create its run dir"
    return result.stderr


def test_bad_venue_configs_exit_2_naming_the_field_before_anything_starts(
    server: BinanceServer, short_tmp: Path
) -> None:
    """Unknown exchange, live without keys, a symbol the exchange does not list, an unknown keystore entry."""
    run_dir = short_tmp / "run"
    cases = [
        (venue_toml(server).replace('exchange = "binance"', 'exchange = "binanze"'), "venues[0].exchange"),
        (venue_toml(server, mode="live"), "venues[0].keys"),
        (venue_toml(server, symbols=("BTC/USDT", "DOGE/USDT")), "venues[0].symbols"),
        (venue_toml(server, mode="live", keys="nosuchkey"), "venues[0].keys"),
    ]
    for index, (venue, field) in enumerate(cases):
        config = write_config(short_tmp / f"bad{index}.toml", venue, strategies=False)
        error = refused(config, run_dir, "--keystore", str(short_tmp / "ks"))
        assert field in error, error
    unlisted = refused(write_config(short_tmp / "bad2.toml", cases[2][0], strategies=False), run_dir)
    assert "'DOGE/USDT' not listed by binance" in unlisted, unlisted
    assert "did you mean 'binance'" in refused(
        write_config(short_tmp / "bad0.toml", cases[0][0], strategies=False), run_dir
    )
    assert not server.state_json()["orders"]


def test_dry_run_trades_on_the_exchange_market_data_and_sends_nothing(
    server: BinanceServer, short_tmp: Path
) -> None:
    """``mode = "paper"``: trades on the live book, fills journaled, no order sent to the exchange."""
    config = write_config(short_tmp / "paper.toml", venue_toml(server), strategy_toml())
    node = RunningNode(short_tmp / "run", config)
    try:
        workers = node.wait_ready()
        assert {"feed.bx", "paper.bx", "executor.bx"} <= set(workers), sorted(workers)
        assert "gateway.bx" not in workers
        fills = eventually(lambda: journal_json(node.run_dir, "fills"), 90, what="dry-run fills")
        # Positions are keyed by venue and symbol (the portfolio's snapshot follows the fills).
        eventually(lambda: "bx:BTC/USDT" in node.admin("status")["positions"], 60, what="a bx position")
    finally:
        assert node.stop() == 0, node.log()
    for fill in fills:
        assert fill["venue"] == "bx" and fill["symbol"] == "BTC/USDT"
        assert fill["trade_id"] and fill["client_order_id"].startswith("sma_bx-")
        # Filled against the exchange's book (around 50,000), not a simulated one.
        assert 40_000 < fill["price"] < 60_000
    orders = journal_json(node.run_dir, "orders")
    assert orders and all(o["venue"] == "bx" for o in orders)
    assert not server.state_json()["orders"], "a dry-run must never send an order to the exchange"


def test_live_orders_reach_the_exchange_once_and_every_trade_is_journaled_once(
    server: BinanceServer, short_tmp: Path
) -> None:
    """``mode = "live"``: orders at the exchange under our client ids; journal == the exchange's trades."""
    unlock = add_key(short_tmp / "ks", server)
    venue = venue_toml(server, mode="live", keys="local")
    config = write_config(short_tmp / "live.toml", venue, strategy_toml())
    node = RunningNode(short_tmp / "run", config, tuple(unlock))
    try:
        workers = node.wait_ready()
        assert {"feed.bx", "gateway.bx", "executor.bx"} <= set(workers), sorted(workers)
        eventually(lambda: len(journal_json(node.run_dir, "fills")) >= 3, 120, what="three live fills")
    finally:
        assert node.stop() == 0, node.log()
    state = server.state_json()
    ours = [o for o in state["orders"] if o["client_order_id"].startswith("sma_bx-")]
    assert ours, state
    cids = [o["client_order_id"] for o in ours]
    assert len(cids) == len(set(cids)), "a client order id was placed twice at the exchange"
    exchange_trades = {f["trade_id"] for o in ours for f in o["fills"]}
    fills = journal_json(node.run_dir, "fills")
    journaled = [f["trade_id"] for f in fills]
    assert len(journaled) == len(set(journaled)), "an exchange trade was journaled twice"
    assert set(journaled) == exchange_trades
    by_cid = {o["client_order_id"]: o for o in ours}
    for order in journal_json(node.run_dir, "orders"):
        if order["client_order_id"] in by_cid:
            assert order["exchange_order_id"] == by_cid[order["client_order_id"]]["order_id"], order
    assert server.secret not in node.log() and server.api_key not in node.log()


def test_a_config_without_strategies_gets_one_by_hot_add(server: BinanceServer, short_tmp: Path) -> None:
    """``strategies = []`` runs the venue alone; ``admin add-strategy --venue bx`` starts one on it."""
    config = write_config(short_tmp / "empty.toml", venue_toml(server), strategies=False)
    node = RunningNode(short_tmp / "run", config)
    try:
        node.wait_ready()
        result = sniperbot(
            "admin", "--run-dir", str(node.run_dir), "add-strategy", "--id", "late", "--strategy",
            "sma_cross", "--venue", "bx", "--symbol", "BTC/USDT", "--quantity", "0.001",
            "--bar-interval", "0.2", "--param", "fast=2", "--param", "slow=4",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        eventually(lambda: journal_json(node.run_dir, "fills"), 90, what="fills of the hot-added strategy")
    finally:
        assert node.stop() == 0, node.log()


def test_the_shipped_dry_run_config_is_a_paper_binance_venue() -> None:
    """``config/binance-dry-run.toml`` (README's three steps) decodes: Binance BTC/USDT in paper mode."""
    from sniperbot.config import load_config
    from sniperbot.venues.config import CcxtVenueConfig

    config = load_config(Path(__file__).resolve().parents[2] / "config" / "binance-dry-run.toml")
    (venue,) = config.venues
    assert isinstance(venue, CcxtVenueConfig)
    assert (venue.exchange, venue.symbols, venue.mode, venue.keys) == ("binance", ["BTC/USDT"], "paper", "")
    assert config.strategy_venue(config.strategies[0]) == "binance"


def test_a_strategy_without_bars_of_its_own_is_warmed_from_the_exchanges_candles(
    server: BinanceServer, short_tmp: Path
) -> None:
    """A fresh node, 1-minute bars: the strategy warms on the exchange's last closed 1m candles."""
    minute_ms = 60_000
    now_ms = int(time.time() * 1000)
    current = now_ms - now_ms % minute_ms
    candles = [
        (current - (40 - i) * minute_ms, 50_000.0 + i, 50_010.0 + i, 49_990.0 + i, 50_005.0 + i, 1.0)
        for i in range(40)
    ]
    server.seed_klines("BTC/USDT", "1m", candles)
    strategy = strategy_toml().replace("bar_interval_s = 0.2", "bar_interval_s = 60.0")
    config = write_config(short_tmp / "warm.toml", venue_toml(server), strategy)
    node = RunningNode(short_tmp / "run", config)
    try:
        node.wait_ready()
        warmed = eventually(
            lambda: [json.loads(x) for x in node.log().splitlines() if '"event": "warmed"' in x],
            30,
            what="the warm-up log line",
        )
    finally:
        assert node.stop() == 0, node.log()
    (event,) = warmed
    need = 4 + 1  # sma_cross fast=2 slow=4: its warmup_bars()
    assert event["source"] == "exchange" and event["bars"] == event["needed"] == need, event
    # The last `need` candles that closed before the current minute, in order.
    assert event["first_ns"] == candles[-need][0] * 1_000_000, event
