"""Users' own strategies (issue #11 point 1): built-in names, import paths and files, everywhere.

Real processes: the ``sniperbot`` CLI (backtest, strategies, new-strategy, run) in fresh
processes, and a real node whose strategy actor loads a strategy from a file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sniperbot.backtest import BacktestConfig
from sniperbot.backtest.engine import run_backtest
from sniperbot.data import load_ohlcv
from sniperbot.strategies import STRATEGIES, StrategyLoadError, load_strategy
from tests.candles import random_walk_csv
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 one-minute bars of a seeded random walk."""
    return random_walk_csv(
        tmp_path_factory.mktemp("own") / "X_1m.csv", 3_000, seed=5, start=100.0, vol=0.003, wick=0.002
    )


def new_strategy(directory: Path, name: str = "my_breakout") -> str:
    """``sniperbot new-strategy NAME --dir DIR``; returns the reference it prints."""
    done = sniperbot("new-strategy", name, "--dir", str(directory))
    assert done.returncode == 0, done.stderr
    ref = done.stdout.split("--strategy ")[1].split()[0]
    assert Path(ref.rpartition(":")[0]).is_file()
    return ref


def test_the_template_backtests_as_written_and_its_two_forms_agree(csv_file: Path, tmp_path: Path) -> None:
    """The generated file backtests from the CLI; its vectorised and per-bar forms take the same trades."""
    ref = new_strategy(tmp_path)
    done = sniperbot("backtest", "--data", str(csv_file), "--strategy", ref, "--param", "entry=15", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["strategy"] == "my_breakout" and out["params"]["entry"] == 15 and out["trades"] > 5
    cls = load_strategy(ref)
    bars = load_ohlcv(csv_file)
    for mode in ("long", "long-short"):
        fast = run_backtest(bars, cls, {"entry": 15, "mode": mode}, BacktestConfig(), path="vectorised")
        slow = run_backtest(bars, cls, {"entry": 15, "mode": mode}, BacktestConfig(), path="per-bar")
        assert fast.trades == slow.trades > 5
        assert fast.final_equity == pytest.approx(slow.final_equity, rel=1e-9)
    assert new_strategy_refuses_to_overwrite(tmp_path)


def new_strategy_refuses_to_overwrite(directory: Path) -> bool:
    """A second ``new-strategy`` of the same name exits 2 and leaves the file alone."""
    path = directory / "my_breakout.py"
    before = path.read_text()
    done = sniperbot("new-strategy", "my_breakout", "--dir", str(directory))
    return done.returncode == 2 and "not overwritten" in done.stderr and path.read_text() == before


def test_a_strategy_without_a_vectorised_form_backtests_per_bar(csv_file: Path, tmp_path: Path) -> None:
    """Delete ``decide_all`` from the template: the backtest takes the per-bar path, same result."""
    ref = new_strategy(tmp_path, "plain")
    file = Path(ref.rpartition(":")[0])
    text = file.read_text()
    file.write_text(text[: text.index("    @classmethod\n    def decide_all")].rstrip() + "\n")
    cls = load_strategy(ref)
    assert not cls.has_vectorised()
    done = sniperbot("backtest", "--data", str(csv_file), "--strategy", ref, "--json")
    assert done.returncode == 0, done.stderr
    reference = run_backtest(load_ohlcv(csv_file), load_strategy(new_strategy(tmp_path / "b", "plain")), {})
    assert json.loads(done.stdout)["trades"] == reference.trades


def test_strategies_lists_every_strategy_with_parameters_defaults_and_ranges(tmp_path: Path) -> None:
    """``strategies --json``: the built-ins (and a file given by --strategy), params with ranges and docs."""
    ref = new_strategy(tmp_path)
    module_ref = "sniperbot.strategies.macd:MacdCross"
    done = sniperbot("strategies", "--json", "--strategy", ref, "--strategy", module_ref)
    assert done.returncode == 0, done.stderr
    rows = {row["reference"]: row for row in json.loads(done.stdout)}
    assert set(STRATEGIES) | {ref, module_ref} == set(rows)
    sma = rows["sma_cross"]["params"]
    assert sma["fast"] == {
        "type": "int",
        "default": 10,
        "min": 1,
        "max": None,
        "choices": [],
        "doc": sma["fast"]["doc"],
    }
    assert rows["sma_cross"]["ordered"] == [["fast", "slow"]] and rows["sma_cross"]["vectorised"]
    assert rows[ref]["params"]["entry"]["max"] == 1000 and rows[ref]["doc"].startswith("Donchian")
    assert rows["macd"]["warmup_bars"] == 270 and rows["sma_cross"]["warmup_bars"] == 31


def with_strategy(config: str, ref: str) -> str:
    """The fast config with its first strategy (``fast_btc``) replaced by ``ref``."""
    return config.replace('id = "fast_btc"', f'id = "fast_btc"\nstrategy = "{ref}"', 1)


def journal_fills(run_dir: Path) -> list[dict[str, object]]:
    """``sniperbot journal fills --json``."""
    return json.loads(sniperbot("journal", "--run-dir", str(run_dir), "fills", "--json").stdout)


BROKEN = [
    (
        "syntax",
        "from sniperbot.strategies import Strategy\n\nclass S(Strategy)\n    pass\n",
        "S",
        ":3: syntax error",
    ),
    ("import", "import numpy\nimport no_such_module_xyz\n", "S", ":2: ModuleNotFoundError"),
    ("raises", "x = 1\nraise RuntimeError('boom at import')\n", "S", ":2: RuntimeError: boom at import"),
    ("missing", "from sniperbot.strategies import Strategy\n", "S", "no class 'S'"),
    ("notastrategy", "class S:\n    pass\n", "S", "S is not a subclass"),
    (
        "nodecide",
        "from sniperbot.strategies import Strategy\n\n\nclass S(Strategy):\n    name = 's'\n",
        "S",
        ":4: S does not implement decide(bar)",
    ),
]


@pytest.mark.parametrize(("label", "source", "cls", "reason"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_strategy_file_exits_2_naming_the_file_line_and_reason(
    csv_file: Path, tmp_path: Path, label: str, source: str, cls: str, reason: str
) -> None:
    """backtest and run both refuse it before anything starts, with file, line and reason."""
    file = tmp_path / f"{label}.py"
    file.write_text(source)
    ref = f"{file}:{cls}"
    with pytest.raises(StrategyLoadError, match=None) as caught:
        load_strategy(ref)
    assert str(file) in str(caught.value) and reason in str(caught.value), caught.value
    done = sniperbot("backtest", "--data", str(csv_file), "--strategy", ref)
    assert done.returncode == 2 and str(file) in done.stderr and reason in done.stderr, done.stderr
    config = tmp_path / "node.toml"
    config.write_text(FAST_CONFIG.replace('id = "fast_btc"', f'id = "fast_btc"\nstrategy = "{ref}"', 1))
    run_dir = tmp_path / "run"
    done = sniperbot("run", "--config", str(config), "--run-dir", str(run_dir), "--duration", "3")
    assert done.returncode == 2, done.stderr
    assert "strategies[0].strategy" in done.stderr and reason in done.stderr, done.stderr
    assert not (run_dir / "journal").exists()


def test_bad_params_of_a_file_strategy_name_the_parameter(csv_file: Path, tmp_path: Path) -> None:
    """``--param entry=1`` is below the template's minimum: exit 2 naming it."""
    ref = new_strategy(tmp_path)
    done = sniperbot("backtest", "--data", str(csv_file), "--strategy", ref, "--param", "entry=1")
    assert done.returncode == 2 and "entry" in done.stderr, done.stderr


def test_a_node_runs_a_strategy_from_a_file(short_tmp: Path) -> None:
    """A config naming ``file.py:Class``: the strategy actor loads it and the node trades with it."""
    ref = new_strategy(short_tmp)
    config = short_tmp / "node.toml"
    text = FAST_CONFIG.replace('id = "fast_btc"', f'id = "fast_btc"\nstrategy = "{ref}"', 1).replace(
        "params = { fast = 2, slow = 4 }", "params = { entry = 3, exit = 2 }", 1
    )
    config.write_text(text)
    node = RunningNode(short_tmp / "run", config)
    try:
        node.wait_ready()
        fills = eventually(
            lambda: [
                f
                for f in json.loads(
                    sniperbot("journal", "--run-dir", str(node.run_dir), "fills", "--json").stdout
                )
                if f["strategy_id"] == "fast_btc"
            ],
            60,
            what="fills of the file strategy",
        )
    finally:
        assert node.stop() == 0, node.log()
    assert fills


CRASHING = '''
from sniperbot.strategies import Param, Strategy


class Crashing(Strategy):
    """Decides normally for a few bars, then divides by zero on every bar."""

    name = "crashing"
    params = {"after": Param(2, min=0)}

    def setup(self) -> None:
        self.bars = 0

    def decide(self, bar):
        self.bars += 1
        if self.bars > self.after:
            return 1 / 0
        return None
'''


def test_a_crashing_strategy_trips_only_itself_and_admin_tree_shows_its_last_error(short_tmp: Path) -> None:
    """Its own actor is restarted, then its breaker ``strategy:<id>`` opens; the other strategy trades on."""
    file = short_tmp / "crashing.py"
    file.write_text(CRASHING)
    config = short_tmp / "node.toml"
    config.write_text(
        with_strategy(FAST_CONFIG, f"{file}:Crashing").replace(
            "params = { fast = 2, slow = 4 }", "params = {}", 1
        )
    )
    node = RunningNode(short_tmp / "run", config)
    try:
        node.wait_ready()

        def tripped() -> dict[str, object] | None:
            breakers = {b["scope"]: b for b in node.admin("breaker-status")}
            return (
                breakers.get("strategy:fast_btc")
                if breakers.get("strategy:fast_btc", {}).get("state") == "open"
                else None
            )

        breaker = eventually(tripped, 90, what="the crashing strategy's breaker open")
        assert "crash loop" in str(breaker["reason"]) and "ZeroDivisionError" in str(breaker["reason"]), (
            breaker
        )
        workers = node.workers()
        crashed = workers["strategy.fast_btc"]
        assert crashed["state"] == "tripped" and crashed["restarts"] >= 4, crashed
        assert (
            crashed["last_error"].startswith("ZeroDivisionError at ") and "in decide" in crashed["last_error"]
        )
        assert "crashing.py:" in crashed["last_error"]
        status = node.admin("status")
        assert status["breakers"].get("global") != "open" and status["breakers"].get("venue:sim") != "open"
        assert workers["strategy.fast_eth"]["state"] == "running"
        before = len([f for f in journal_fills(node.run_dir) if f["strategy_id"] == "fast_eth"])
        eventually(
            lambda: len([f for f in journal_fills(node.run_dir) if f["strategy_id"] == "fast_eth"]) > before,
            60,
            what="the other strategy still trading",
        )
        assert node.process.poll() is None
    finally:
        assert node.stop() == 0, node.log()
