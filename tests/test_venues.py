"""Venues as places in the tree: ``[[venues]]`` config, one subtree each, positions keyed by venue.

Also the fixes made on the way: a stop intent keeps its ``stop_price`` through the risk
guard, and ``mode = "long-short"`` can be set in a strategy's live params.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sniperbot.actors.risk_guard import RiskGuardActor
from sniperbot.chaos.invariants import check_run_dir
from sniperbot.config import Config, ConfigError, decode_config
from sniperbot.journal import Journal
from sniperbot.messages import Envelope, Fill, Order, OrderIntent, Quote
from sniperbot.portfolio.ledger import Ledger, combined_snapshot
from sniperbot.risk import RiskGuard, RiskLimits
from sniperbot.supervision import ChildSpec
from sniperbot.topology import build_tree, preload_modules, strategy_child
from tests.conftest import RunningNode, eventually, sniperbot
from tests.venues.conformance import Ctx, Wire


def _venue(name: str, seed: int, start_price: float) -> str:
    return f"""
[[venues]]
name = "{name}"
kind = "sim"
mode = "paper"
seed = {seed}
tick_interval_s = 0.02

[[venues.symbols]]
symbol = "BTC/USDT"
start_price = {start_price}
base_vol_bps = 6.0
top_size = 0.5
trade_prob = 0.9
"""


# Two simulated venues trading the same symbol at very different prices, so a fill's price
# tells which venue's book it came from.
TWO_VENUES = (
    """
[node]
heartbeat_interval_s = 0.2
heartbeat_liveness = 5
log_level = "INFO"

[journal]
durability = "process"

[risk]
max_orders_per_second = 50.0
max_position = 1.0
"""
    + _venue("alpha", 11, 60000.0)
    + _venue("beta", 12, 20000.0)
    + """
[[strategies]]
id = "on_alpha"
venue = "alpha"
symbol = "BTC/USDT"
quantity = 0.01
bar_interval_s = 0.2
params = { fast = 2, slow = 4 }

[[strategies]]
id = "on_beta"
venue = "beta"
symbol = "BTC/USDT"
quantity = 0.02
bar_interval_s = 0.2
params = { fast = 2, slow = 4, mode = "long-short" }
"""
)


# -- config ------------------------------------------------------------------------------------
def test_two_venues_and_strategies_naming_them_decode() -> None:
    config = decode_config(TWO_VENUES)
    assert [(v.name, v.mode) for v in config.venues] == [("alpha", "paper"), ("beta", "paper")]
    assert [config.strategy_venue(s) for s in config.strategies] == ["alpha", "beta"]
    # long-short is a live parameter now (it was refused: params took numbers and booleans only).
    assert config.strategies[1].params["mode"] == "long-short"
    assert strategy_child(config, config.strategies[1]).args["params"]["mode"] == "long-short"


def test_a_strategy_without_venue_trades_on_the_first_venue() -> None:
    config = decode_config(
        _venue("first", 1, 100.0)
        + _venue("second", 2, 100.0)
        + '[[strategies]]\nid = "s"\nsymbol = "BTC/USDT"\nquantity = 1.0\n'
    )
    assert strategy_child(config, config.strategies[0]).args["venue"] == "first"


def test_no_strategies_is_a_valid_config_and_tree() -> None:
    config = decode_config("strategies = []\n" + _venue("sim", 7, 100.0))
    tree = build_tree(config)
    (strategies,) = [c for c in tree.children if c.id == "strategies"]
    assert strategies.children == []


_NONE = "strategies = []\n"  # so that the venue is the only thing wrong
BAD = [
    (
        "live-sim",
        _NONE + _venue("sim", 1, 1.0).replace('mode = "paper"', 'mode = "live"'),
        ["venues[0].mode", "paper"],
    ),
    ("bad-mode", _NONE + _venue("sim", 1, 1.0).replace('mode = "paper"', 'mode = "dry"'), ["venues[0].mode"]),
    (
        "unknown-kind",
        _NONE + _venue("sim", 1, 1.0).replace('kind = "sim"', 'kind = "nasdaq"'),
        ["venues[0].kind"],
    ),
    ("dup-name", _NONE + _venue("sim", 1, 1.0) + _venue("sim", 2, 1.0), ["venues[1].name", "duplicate"]),
    ("no-venues", "venues = []\nstrategies = []\n", ["venues", "at least one"]),
    (
        "unknown-venue",
        _venue("sim", 1, 1.0)
        + '[[strategies]]\nid = "s"\nvenue = "nope"\nsymbol = "BTC/USDT"\nquantity = 1\n',
        ["strategies[0].venue", "nope"],
    ),
    (
        "symbol-of-another-venue",
        _venue("a", 1, 1.0)
        + _venue("b", 2, 1.0).replace("BTC/USDT", "ETH/USDT")
        + '[[strategies]]\nid = "s"\nvenue = "b"\nsymbol = "BTC/USDT"\nquantity = 1\n',
        ["strategies[0].symbol", "'BTC/USDT' is not traded on venue 'b'"],
    ),
    ("old-market-section", "strategies = []\n[market]\nseed = 1\n", ["market", "unknown field"]),
    (
        "bad-long-short",
        _venue("sim", 1, 1.0)
        + '[[strategies]]\nid = "s"\nsymbol = "BTC/USDT"\nquantity = 1\nparams = { mode = "short-only" }\n',
        ["strategies[0].params", "mode"],
    ),
]


@pytest.mark.parametrize(("text", "names"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_venue_config_is_refused_naming_the_field(text: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        decode_config(text)
    for name in names:
        assert name in str(caught.value), (name, str(caught.value))


def test_run_with_a_live_sim_venue_exits_2_before_anything_starts(short_tmp: Path) -> None:
    config = short_tmp / "live.toml"
    config.write_text("strategies = []\n" + _venue("sim", 1, 1.0).replace('mode = "paper"', 'mode = "live"'))
    result = sniperbot("run", "--config", str(config), "--run-dir", str(short_tmp / "run"), "--duration", "1")
    assert result.returncode == 2, result.stderr
    assert "venues[0].mode" in result.stderr and "Traceback" not in result.stderr
    assert not (short_tmp / "run").exists()


# -- the tree ----------------------------------------------------------------------------------
def test_one_rest_for_one_subtree_per_venue_with_its_breaker() -> None:
    tree = build_tree(decode_config(TWO_VENUES), epoch_ns=0)
    venues = [c for c in tree.children if c.id.startswith("venue.")]
    assert [(v.id, v.breaker, v.flags.strategy) for v in venues] == [
        ("venue.alpha", "venue:alpha", "rest_for_one"),
        ("venue.beta", "venue:beta", "rest_for_one"),
    ]
    for venue in venues:
        name = venue.id.removeprefix("venue.")
        feed, gateway, executor = venue.children
        assert (feed.id, gateway.id, executor.id) == (f"feed.{name}", f"paper.{name}", f"executor.{name}")
        assert feed.args["venue"] == gateway.args["venue"] == executor.args["venue"] == name
        assert executor.actor == "sniperbot.execution.executor:Executor"
        assert executor.args["gateway"] == gateway.id
        assert gateway.args["executor"] == executor.id
    (risk,) = [c for c in tree.walk() if c.id == "risk_guard"]
    assert risk.args["executors"] == {"alpha": "executor.alpha", "beta": "executor.beta"}
    (portfolio,) = [c for c in tree.walk() if c.id == "portfolio"]
    assert portfolio.args["venues"] == ["alpha", "beta"]


def test_the_forkserver_preloads_every_actor_module_of_the_tree() -> None:
    tree = build_tree(Config(), epoch_ns=0)
    modules = preload_modules(tree)
    for spec in tree.walk():
        if spec.type == "worker":
            assert spec.actor.partition(":")[0] in modules, spec.actor
    assert "sniperbot.actors.strategy" in modules  # hot-added strategies start warm too
    # A new venue kind's actor is preloaded without editing any list.
    new_kind = msgspec.structs.replace(
        tree, children=[*tree.children, ChildSpec(id="feed.x", actor="tests.test_venues:NoSuchActor")]
    )
    assert "tests.test_venues" in preload_modules(new_kind)


# -- positions keyed by venue and symbol -----------------------------------------------------------
def _intent(seq: int, venue: str, quantity: float) -> OrderIntent:
    return OrderIntent(
        intent_id=f"s1-{seq}",
        strategy_id="s1",
        intent_seq=seq,
        venue=venue,
        symbol="BTC/USDT",
        side="buy",
        quantity=quantity,
    )


def _fill(of: OrderIntent, price: float = 100.0) -> Fill:
    return Fill(
        fill_id=f"{of.intent_id}-f1",
        client_order_id=of.intent_id,
        strategy_id=of.strategy_id,
        venue=of.venue,
        symbol=of.symbol,
        side=of.side,
        quantity=of.quantity,
        price=price,
        fee=0.0,
    )


def test_the_risk_guard_keeps_one_position_per_venue_and_symbol() -> None:
    guard = RiskGuard(RiskLimits(max_order_notional=1e6, max_position=1.0, max_orders_per_second=100))
    first = _intent(1, "alpha", 1.0)
    assert guard.check(first, 100.0, 0) is None
    guard.on_fill(_fill(first))
    assert guard.positions == {("alpha", "BTC/USDT"): 1.0}
    # alpha is at its limit; the same symbol on beta is another position.
    assert guard.check(_intent(2, "alpha", 0.5), 100.0, 1) == "max_position"
    assert guard.check(_intent(3, "beta", 1.0), 100.0, 2) is None
    assert guard.exposure("beta", "BTC/USDT") == 1.0 and guard.exposure("alpha", "BTC/USDT") == 1.0


def test_the_portfolio_snapshot_keeps_venues_apart() -> None:
    ledgers = {"alpha": Ledger(), "beta": Ledger()}
    ledgers["alpha"].apply_fill(_fill(_intent(1, "alpha", 1.0), price=100.0))
    ledgers["beta"].apply_fill(_fill(_intent(2, "beta", 2.0), price=50.0))
    ledgers["alpha"].mark("BTC/USDT", 110.0)
    snapshot = combined_snapshot(ledgers, ts_ns=1, orders=2)
    held = {(p.venue, p.symbol): (p.quantity, p.avg_price) for p in snapshot.positions}
    assert held == {("alpha", "BTC/USDT"): (1.0, 100.0), ("beta", "BTC/USDT"): (2.0, 50.0)}
    assert snapshot.unrealized_pnl == pytest.approx(10.0)  # beta is not marked by alpha's price
    assert snapshot.fills == 2


# -- the stop price survives the risk guard --------------------------------------------------------
def test_a_stop_intent_keeps_its_stop_price_in_the_order(tmp_path: Path) -> None:
    wire = Wire()
    journal = Journal.open(tmp_path, durability="process")
    try:
        guard = RiskGuardActor(
            Ctx(wire, "risk_guard", tmp_path, journal),
            limits={"max_order_notional": 1e6, "max_position": 10.0, "max_orders_per_second": 100.0},
            trading_state="ACTIVE",
            executors={"sim": "executor.sim"},
        )
        guard.on_start()
        quote = Quote(
            venue="sim", symbol="BTC/USDT", bid=99.0, bid_size=1.0, ask=101.0, ask_size=1.0, ts_ns=1
        )
        guard.on_message(Envelope("md.sim.quote.BTC/USDT.", "feed.sim", 1, 1, 1, quote))
        intent = msgspec.structs.replace(
            _intent(1, "sim", 0.5), order_type="stop", stop_price=95.0, limit_price=94.0
        )
        guard.on_message(Envelope("to.risk_guard", "strategy.s1", 1, 2, 2, intent))
        (target, _, sent, _) = wire.queue.popleft()
        assert target == "executor.sim" and isinstance(sent, Order)
        assert (sent.order_type, sent.stop_price, sent.limit_price) == ("stop", 95.0, 94.0)
    finally:
        journal.close()


# -- a real node on two venues -------------------------------------------------------------------
def _admin(node: RunningNode, *args: str) -> tuple[int, Any]:
    result = sniperbot("admin", "--run-dir", str(node.run_dir), *args, "--json")
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        return result.returncode, result.stdout + result.stderr


def _journal_fills(run_dir: Path) -> list[dict[str, Any]]:
    result = sniperbot("journal", "--run-dir", str(run_dir), "fills", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_node_on_two_venues_trades_each_on_its_own_book_and_keys_positions_by_venue(
    short_tmp: Path,
) -> None:
    config = short_tmp / "two.toml"
    config.write_text(TWO_VENUES)
    node = RunningNode(short_tmp / "run", config)
    try:
        workers = node.wait_ready()
        for name in ("alpha", "beta"):
            assert {f"feed.{name}", f"paper.{name}", f"executor.{name}"} <= set(workers)
        tree = node.admin("tree")
        assert [(c["id"], c.get("breaker")) for c in tree["children"][:2]] == [
            ("venue.alpha", "venue:alpha"),
            ("venue.beta", "venue:beta"),
        ]
        # Both venues trade the same symbol; admin status keeps the positions apart.
        eventually(
            lambda: {"alpha:BTC/USDT", "beta:BTC/USDT"} <= set(node.admin("status")["positions"]),
            60,
            what="fills on both venues",
        )
        # The node's last-value cache follows every venue's quotes: with beta's feed stopped for
        # good, a strategy hot-added on beta still gets beta's last quote at once.
        code, body = _admin(node, "terminate-child", "--sup", "venue.beta", "--id", "feed.beta")
        assert code == 0, body
        eventually(lambda: node.workers()["feed.beta"]["state"] == "stopped", 30, what="beta's feed stopped")
        # Hot-add names its venue too, and takes a text parameter (long-short).
        code, body = _admin(
            node, "add-strategy", "--id", "hot_beta", "--strategy", "sma_cross", "--venue", "beta",
            "--quantity", "0.01", "--bar-interval", "0.2", "--param", "fast=2", "--param", "slow=3",
            "--param", "mode=long-short",
        )  # fmt: skip
        assert code == 0, body
        eventually(
            lambda: node.workers()["strategy.hot_beta"]["handled"] >= 1,
            30,
            what="beta's last quote delivered",
        )
        assert node.workers()["strategy.hot_beta"]["state"] == "running"
        assert node.workers()["feed.beta"]["state"] == "stopped", "beta's market stayed silent"
        code, body = _admin(
            node, "add-strategy", "--id", "nowhere", "--strategy", "sma_cross", "--venue", "x"
        )
        assert code != 0 and "venue" in json.dumps(body), body

        assert node.admin("halt")["trading_state"] == "HALTED"
        eventually(lambda: (r := check_run_dir(node.run_dir)).ok and r.settled, 30, what="settled")
        # The node's positions are the journaled fills summed per venue and symbol.
        eventually(
            lambda: check_run_dir(node.run_dir, node.admin("status")["positions"]).ok, 15, what="positions"
        )
        assert node.stop() == 0
    finally:
        if node.process.poll() is None:
            node.stop()
    fills = _journal_fills(short_tmp / "run")
    by_venue: dict[str, list[float]] = {}
    for f in fills:
        by_venue.setdefault(f["venue"], []).append(f["price"])
    assert set(by_venue) == {"alpha", "beta"}
    # Each paper gateway filled against its own venue's book (60k vs 20k), never the other's.
    assert all(p > 40_000 for p in by_venue["alpha"]), by_venue["alpha"]
    assert all(p < 40_000 for p in by_venue["beta"]), by_venue["beta"]
    client_ids = {f["client_order_id"].split("-")[0]: f["venue"] for f in fills}
    assert client_ids.get("on_alpha") == "alpha" and client_ids.get("on_beta") == "beta"


# -- the template a new venue copies ---------------------------------------------------------------
def test_the_template_imports_and_every_stub_says_what_to_fill_in() -> None:
    from sniperbot.actors.base import Actor
    from sniperbot.venues._template import config, feed, gateway
    from sniperbot.venues.base import VenueSection

    template = config.TemplateVenueConfig(name="x")
    assert isinstance(template, VenueSection) and msgspec.to_builtins(template)["kind"] == "template"
    for stub in (template.symbol_names, lambda: template.feed(0), template.live_gateway):
        with pytest.raises(NotImplementedError):
            stub()
    assert issubclass(feed.TemplateFeed, Actor) and issubclass(gateway.TemplateGateway, Actor)
    assert gateway.TemplateGateway.inbox  # the executor sends to its inbox
    readme = Path(config.__file__).with_name("README.md").read_text()
    assert "sniperbot/venues/config.py" in readme and "GatewayConformance" in readme
