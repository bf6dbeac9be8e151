"""``sniperbot backtest`` and ``sniperbot optimize`` through the real command, on small generated files."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sniperbot.backtest import BacktestConfig, run_backtest
from sniperbot.data import load_ohlcv
from tests.candles import random_walk_csv
from tests.conftest import ROOT, sniperbot

REQUIRED = (
    "trades",
    "final_equity",
    "total_return_pct",
    "max_drawdown_pct",
    "sharpe",
    "sortino",
    "win_rate_pct",
    "profit_factor",
    "fees",
    "bars",
    "elapsed_s",
)


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "ETHUSDT_1m.csv"
    return random_walk_csv(path, 5_000, seed=8, start=2_000.0, vol=0.002, wick=0.001, symbol="ETH/USDT")


def test_backtest_json_has_the_documented_fields_and_matches_the_library(csv_file: Path) -> None:
    done = sniperbot(
        "backtest", "--data", str(csv_file), "--strategy", "sma_cross",
        "--param", "fast=8", "--param", "slow=21", "--fee-bps", "7.5", "--slippage-bps", "1",
        "--cash", "50000", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: no progress bar, nothing extra
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    for key in REQUIRED:
        assert key in out, key
    assert out["params"] == {"fast": 8, "slow": 21, "mode": "long"}
    expected = run_backtest(
        load_ohlcv(csv_file),
        "sma_cross",
        {"fast": 8, "slow": 21},
        BacktestConfig(fee_bps=7.5, slippage_bps=1.0, cash=50_000.0),
    )
    assert out["trades"] == expected.trades > 20
    assert out["final_equity"] == pytest.approx(expected.final_equity, rel=1e-12)
    assert out["bars"] == 5_000 and out["symbol"] == "ETH/USDT"


def test_backtest_text_output_and_report(csv_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "out.html"
    done = sniperbot(
        "backtest", "--data", str(csv_file), "--strategy", "rsi_reversion", "--mode", "long-short",
        "--path", "per-bar", "--report", str(report),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "final equity" in done.stdout and "per-bar path" in done.stdout and str(report) in done.stdout
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "rsi_reversion" in html
    assert "<script src=" not in html and "<link" not in html  # self-contained


def test_long_short_mode_goes_short(csv_file: Path) -> None:
    long_only = json.loads(
        sniperbot("backtest", "--data", str(csv_file), "--strategy", "ema_cross", "--json").stdout
    )
    both = sniperbot(
        "backtest", "--data", str(csv_file), "--strategy", "ema_cross", "--mode", "long-short", "--json"
    )
    out = json.loads(both.stdout)
    assert out["params"]["mode"] == "long-short"
    assert out["trades"] > long_only["trades"]  # every flip is another round trip


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--strategy", "moon_shot"], "--strategy"),
        (["--strategy", "sma_cross", "--param", "speed=3"], "--param"),
        (["--strategy", "sma_cross", "--param", "fast=ten"], "'fast'"),
        (["--strategy", "sma_cross", "--param", "fast=40", "--param", "slow=20"], "'slow'"),
        (["--strategy", "sma_cross", "--fee-bps", "-1"], "--fee-bps"),
        (["--strategy", "sma_cross", "--sizer", "kelly:1"], "--sizer"),
    ],
)
def test_bad_backtest_input_exits_2_naming_the_argument(csv_file: Path, args: list[str], named: str) -> None:
    done = sniperbot("backtest", "--data", str(csv_file), *args, "--json")
    assert done.returncode == 2
    assert named in done.stderr and done.stdout == ""


def test_a_missing_data_file_exits_2_naming_it(tmp_path: Path) -> None:
    done = sniperbot("backtest", "--data", str(tmp_path / "nope.csv"), "--strategy", "sma_cross")
    assert done.returncode == 2 and "--data" in done.stderr and "nope.csv" in done.stderr


def test_optimize_json_ranks_rows_with_params_and_metrics(csv_file: Path) -> None:
    done = sniperbot(
        "optimize", "--data", str(csv_file), "--strategy", "sma_cross", "--grid", "fast=4:12:4",
        "--grid", "slow=10:30:10", "--metric", "total_return_pct", "--workers", "2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = json.loads(done.stdout)
    assert out["grid_size"] == 9 and out["evaluated"] == 8 and out["skipped_invalid"] == 1  # (12, 10) refused
    rows = out["results"]
    assert [r["rank"] for r in rows] == list(range(1, 9))
    returns = [r["total_return_pct"] for r in rows]
    assert returns == sorted(returns, reverse=True)
    for row in rows:
        assert set(row["params"]) == {"fast", "slow"}
        for key in REQUIRED:
            assert key in row, key


def test_optimize_walk_forward_and_text_table(csv_file: Path) -> None:
    done = sniperbot(
        "optimize", "--data", str(csv_file), "--strategy", "sma_cross", "--grid", "fast=5:10:5",
        "--grid", "slow=20:40:20", "--walk-forward", "2", "--constraint", "slow>=4*fast",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "IS sharpe" in done.stdout and "OOS sharpe" in done.stdout
    assert "fold 1:" in done.stdout and "fold 2:" in done.stdout
    assert "3 of 4 grid points" in done.stdout  # (10, 20) fails slow >= 4 x fast


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--grid", "fast=5:50"], "--grid"),
        (["--grid", "fast=5:50:5", "--metric", "luck"], "--metric"),
        (["--grid", "speed=1:3:1"], "--grid"),
        (["--grid", "fast=5:10:5", "--constraint", "fast"], "--constraint"),
        (["--grid", "fast=5:10:5", "--workers", "0"], "--workers"),
    ],
)
def test_bad_optimize_input_exits_2_naming_the_argument(csv_file: Path, args: list[str], named: str) -> None:
    done = sniperbot("optimize", "--data", str(csv_file), "--strategy", "sma_cross", *args)
    assert done.returncode == 2
    assert named in done.stderr


def test_on_a_terminal_progress_goes_to_stderr_and_stdout_stays_json(csv_file: Path) -> None:
    main, secondary = pty.openpty()
    seen: list[bytes] = []

    def drain() -> None:
        # Keep reading so the child never blocks on a full terminal buffer.
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sniperbot", "optimize", "--data", str(csv_file),
             "--strategy", "sma_cross", "--grid", "fast=4:8:4", "--grid", "slow=20:30:10", "--json"],
            stdout=subprocess.PIPE, stderr=secondary, text=True, timeout=60, cwd=ROOT,
            env={**os.environ, "COLUMNS": "100"},
        )  # fmt: skip
    finally:
        os.close(secondary)
    reader.join(5)
    os.close(main)
    assert done.returncode == 0
    assert len(json.loads(done.stdout)["results"]) == 4
    assert b"sma_cross" in b"".join(seen)  # the progress bar was drawn on the terminal
