"""Replay through the node: ``sniperbot replay`` runs a real node on a candle file and must trade
exactly like the in-process backtest (same fills: time, side, quantity; equity within 0.1 %), or
name the first divergence. Candles are generated (``tests/candles.py``), never the shared file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sniperbot.backtest.config import BacktestConfig
from sniperbot.backtest.engine import run_backtest
from sniperbot.data import load_ohlcv
from tests.candles import random_walk_csv
from tests.conftest import sniperbot

REPLAY_TIMEOUT_S = 400.0

# A strategy that trades like sma_cross in the backtester but, inside a node (where the strategy
# actor's module is loaded), goes deaf from CUTOFF_NS on: the node must stop trading there and
# the replay must name the first backtest trade it misses.
DEAF_IN_NODE = '''
import sys

from sniperbot.strategies.sma_cross import SmaCross

CUTOFF_NS = {cutoff}


class DeafInNode(SmaCross):
    """sma_cross, except that in a node it ignores every bar from CUTOFF_NS on."""

    name = "deaf_in_node"

    def decide(self, bar):
        decision = super().decide(bar)
        if "sniperbot.actors.strategy" in sys.modules and bar.start_ns >= CUTOFF_NS:
            return None
        return decision
'''


@pytest.fixture(scope="module")
def candles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~2,000 one-minute candles of a lively random walk (enough crosses for a hundred trades)."""
    path = tmp_path_factory.mktemp("replay") / "X_USDT-1m.csv"
    return random_walk_csv(path, 2_000, seed=5, start=100.0, vol=0.004, wick=0.002)


def replay(*args: str) -> tuple[int, dict, str]:
    """``sniperbot replay ... --json``: exit status, the JSON object (or {}), stderr."""
    result = sniperbot("replay", *args, "--json", timeout=REPLAY_TIMEOUT_S)
    out = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, out, result.stderr


@pytest.mark.parametrize(
    ("strategy", "params"),
    [
        ("sma_cross", ["fast=5", "slow=20"]),
        ("bollinger_breakout", ["period=15", "k=1.5", "mode=long-short"]),
    ],
)
def test_replay_through_the_node_trades_like_the_backtest(
    candles: Path, strategy: str, params: list[str]
) -> None:
    """Every fill of the node is the backtest's (time, side, quantity), equity within 0.1 %.

    A full position is ~90 % of the equity, so a fill at the wrong price moves the equity by far more
    than 0.1 % over the run.
    """
    flags = [f for p in params for f in ("--param", p)]
    code, out, err = replay(
        "--data", str(candles), "--strategy", strategy, *flags, "--quantity", "900", "--slippage-bps", "3"
    )
    assert code == 0, (err, out.get("first_divergence"))
    assert out["identical"] is True
    assert "first_divergence" not in out
    # Enough trades that an off-by-one bar or a wrong fill price could not hide.
    assert out["node_trades"] == out["backtest_trades"] >= 40
    assert out["equity_diff_pct"] < 0.1
    assert out["bars"] == 2_000 and out["bars_per_s"] > 0
    # The comparison is against the backtester itself, run independently here.
    config = BacktestConfig(sizer="fixed:900.0", size_at="signal", slippage_bps=3.0, close_at_end=False)
    kv = dict(p.split("=") for p in params)
    cls_params = {k: (v if k == "mode" else float(v) if "." in v else int(v)) for k, v in kv.items()}
    expected = run_backtest(load_ohlcv(candles), strategy, cls_params, config)
    assert out["backtest_trades"] == len(expected.fills)
    assert out["backtest_equity"] == pytest.approx(float(expected.equity[-1]))


def test_a_strategy_that_behaves_differently_in_the_node_is_reported(candles: Path, tmp_path: Path) -> None:
    """The first divergence names the bar, the decision and why; exit 1, the run dir kept."""
    bars = load_ohlcv(candles)
    cutoff = int(bars.time_ns[1_000])
    file = tmp_path / "deaf.py"
    file.write_text(DEAF_IN_NODE.format(cutoff=cutoff))
    code, out, err = replay("--data", str(candles), "--strategy", f"{file}:DeafInNode", "--param", "slow=20")
    assert code == 1, err
    assert out["identical"] is False
    # The backtest's first fill decided on a bar from the cutoff on is where the node falls silent.
    config = BacktestConfig(sizer="fixed:1.0", size_at="signal", close_at_end=False)
    expected = run_backtest(bars, "sma_cross", {"slow": 20}, config)
    times = expected.fills.time_ns.tolist()
    first_missing = next(i for i, t in enumerate(times) if t > cutoff)
    divergence = out["first_divergence"]
    assert divergence["trade"] == first_missing
    assert divergence["bar"] == int(expected.fills.bar[first_missing])
    assert divergence["decision_bar"] == divergence["bar"] - 1
    assert divergence["node"] is None and divergence["backtest"]["time_ns"] == times[first_missing]
    assert "node has no more trades" in divergence["reason"]
    assert out["node_trades"] == first_missing < out["backtest_trades"]
    kept = Path(out["run_dir"])
    assert (kept / "journal").exists()
    shutil.rmtree(kept.parent)  # the replay's temporary directory, kept for inspection


def test_speed_paces_the_replay_on_the_data_clock(tmp_path: Path) -> None:
    """``--speed 1200`` on one-minute candles: at most one candle per 50 ms, still identical."""
    path = random_walk_csv(tmp_path / "X_USDT-1m.csv", 40, seed=2, start=100.0, vol=0.01, wick=0.002)
    code, out, err = replay(
        "--data", str(path), "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=4",
        "--speed", "1200",
    )  # fmt: skip
    assert code == 0, err
    assert out["identical"] is True and out["node_trades"] > 0
    assert out["replay_s"] >= 39 * 0.05 * 0.95


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--data", "/nonexistent/candles.csv", "--strategy", "sma_cross"], "--data: no such file"),
        (["--strategy", "no_such_strategy"], "--strategy"),
        (["--strategy", "sma_cross", "--param", "fast=40", "--param", "slow=20"], "--param"),
        (["--strategy", "sma_cross", "--param", "bogus=1"], "--param"),
        (["--strategy", "sma_cross", "--speed", "-1"], "--speed"),
        (["--strategy", "sma_cross", "--quantity", "0"], "--quantity"),
        (["--strategy", "sma_cross", "--run-dir", "/"], "--run-dir"),
    ],
)
def test_bad_input_exits_2_naming_it(candles: Path, args: list[str], named: str) -> None:
    """Nothing starts: exit 2 with the argument named."""
    if "--data" not in args:
        args = ["--data", str(candles), *args]
    code, out, err = replay(*args)
    assert code == 2, (code, out, err)
    assert named in err
    assert out == {}


def test_a_file_with_one_candle_exits_2(tmp_path: Path) -> None:
    """One candle cannot close a bar: refused before a node starts."""
    path = random_walk_csv(tmp_path / "X_USDT-1m.csv", 1, seed=1, start=100.0, vol=0.01, wick=0.0)
    code, _, err = replay("--data", str(path), "--strategy", "sma_cross")
    assert code == 2
    assert "--data:" in err and "at least 2" in err


@pytest.mark.parametrize(
    ("venue", "named"),
    [
        ('data = "/nonexistent/candles.csv"\nsymbol = "X/USDT"\nstrategies = ["a"]', "venues[0].data"),
        ('data = "{data}"\nsymbol = "X/USDT"\nstrategies = []', "venues[0].strategies"),
        ('data = "{data}"\nsymbol = "X/USDT"\nstrategies = ["a"]\nspeed = -1', "speed"),
        ('data = "{data}"\nsymbol = "X/USDT"\nstrategies = ["a"]\nmode = "live"', "mode"),
    ],
)
def test_a_bad_replay_venue_config_exits_2_naming_the_field(
    candles: Path, tmp_path: Path, venue: str, named: str
) -> None:
    """``sniperbot run`` with a ``kind = "replay"`` venue checks it before any process starts."""
    config = tmp_path / "replay.toml"
    config.write_text(
        '[[venues]]\nname = "r"\nkind = "replay"\n'
        + venue.format(data=candles)
        + '\n[[strategies]]\nid = "a"\nsymbol = "X/USDT"\nquantity = 1\n'
    )
    result = sniperbot("run", "--config", str(config), "--run-dir", str(tmp_path / "run"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
