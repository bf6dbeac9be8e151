"""The optimiser: grid specs, constraints, ranking, parallel == serial, walk-forward."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sniperbot.backtest import BacktestConfig, run_backtest
from sniperbot.data import OHLCV
from sniperbot.optimize import expand_grid, optimize, parse_constraint, parse_grid_spec
from sniperbot.strategies import RsiReversion, SmaCross

MINUTE = 60_000_000_000


@pytest.fixture(scope="module")
def data() -> OHLCV:
    rng = np.random.default_rng(17)
    n = 6_000
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.003, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    times = 1_700_000_000 * 1_000_000_000 + np.arange(n) * MINUTE
    return OHLCV(times, open_, high, low, close, np.ones(n), symbol="X/USDT", timeframe="1m")


def test_ranges_include_their_stop_and_keep_their_type() -> None:
    assert parse_grid_spec("fast=5:50:5") == ("fast", [5, 10, 15, 20, 25, 30, 35, 40, 45, 50])
    assert parse_grid_spec("k=1.5:2.5:0.25") == ("k", [1.5, 1.75, 2.0, 2.25, 2.5])
    assert parse_grid_spec("k=0.1:0.3:0.1")[1] == [0.1, 0.2, 0.3]  # no float drift
    assert parse_grid_spec("mode=long,long-short") == ("mode", ["long", "long-short"])
    assert parse_grid_spec("slow=30") == ("slow", ["30"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fast", "expected NAME=START:STOP:STEP"),
        ("fast=5:50", "START:STOP:STEP"),
        ("fast=5:50:0", "step must be > 0"),
        ("fast=50:5:5", "below start"),
        ("fast=a:b:c", "must be numbers"),
    ],
)
def test_bad_grid_specs_are_refused_naming_the_spec(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_grid_spec(spec)


def test_the_strategy_and_constraints_decide_which_points_run() -> None:
    grid = expand_grid(SmaCross, ["fast=10:40:10", "slow=20:40:10"])
    # fast >= slow is refused by the strategy itself.
    assert [(p["fast"], p["slow"]) for p in grid.points] == [
        (10, 20),
        (10, 30),
        (10, 40),
        (20, 30),
        (20, 40),
        (30, 40),
    ]
    assert grid.size == 12 and grid.skipped_invalid == 6
    tight = expand_grid(SmaCross, ["fast=10:40:10", "slow=20:40:10"], constraints=["slow>=2*fast"])
    assert [(p["fast"], p["slow"]) for p in tight.points] == [(10, 20), (10, 30), (10, 40), (20, 40)]
    assert tight.skipped_constraint == 2
    with pytest.raises(ValueError, match="integer"):
        expand_grid(SmaCross, ["fast=1.5:3:0.5"])
    with pytest.raises(ValueError, match="no parameter 'speed'"):
        expand_grid(SmaCross, ["speed=1:3:1"])
    with pytest.raises(ValueError, match="no parameter 'quick'"):
        expand_grid(SmaCross, ["fast=1:3:1"], constraints=["quick<slow"])
    floats = expand_grid(RsiReversion, ["oversold=20:30:5"])
    assert [p["oversold"] for p in floats.points] == [20.0, 25.0, 30.0]


def test_constraints_parse_names_numbers_and_multiples() -> None:
    c = parse_constraint("slow >= 2*fast")
    assert c.holds({"fast": 10, "slow": 20}) and not c.holds({"fast": 10, "slow": 19})
    assert parse_constraint("fast<30").holds({"fast": 29})
    with pytest.raises(ValueError, match="expected A<B"):
        parse_constraint("fast")


def test_rows_are_ranked_by_the_metric_and_equal_a_direct_backtest(data: OHLCV) -> None:
    config = BacktestConfig(fee_bps=5.0)
    result = optimize(
        data, "sma_cross", ["fast=5:20:5", "slow=30:60:15"], config=config, metric="sharpe", workers=1
    )
    assert len(result.rows) == 12 and [r["rank"] for r in result.rows] == list(range(1, 13))
    sharpes = [r["sharpe"] for r in result.rows]
    assert sharpes == sorted(sharpes, reverse=True)
    best = result.rows[0]
    direct = run_backtest(data, "sma_cross", best["params"], config)
    assert best["sharpe"] == direct.sharpe and best["trades"] == direct.trades
    assert best["final_equity"] == direct.final_equity
    by_drawdown = optimize(
        data, "sma_cross", ["fast=5:20:5", "slow=30:60:15"], metric="volatility_pct", workers=1
    )
    vols = [r["volatility_pct"] for r in by_drawdown.rows]
    assert vols == sorted(vols)  # lower volatility ranks first


def test_worker_processes_give_the_same_ranking_as_one_process(data: OHLCV) -> None:
    grid = ["fast=4:16:4", "slow=20:50:10", "mode=long,long-short"]
    serial = optimize(data, "ema_cross", grid, workers=1)
    parallel = optimize(data, "ema_cross", grid, workers=2)
    assert parallel.backend == "local" and parallel.workers == 2
    strip = [{k: v for k, v in row.items() if k != "elapsed_s"} for row in serial.rows]
    assert [{k: v for k, v in row.items() if k != "elapsed_s"} for row in parallel.rows] == strip


def test_walk_forward_scores_each_window_out_of_sample(data: OHLCV) -> None:
    result = optimize(
        data, "sma_cross", ["fast=5:15:5", "slow=30:50:20"], metric="total_return_pct", walk_forward=2
    )
    assert len(result.walk_forward) == 2
    first, second = result.walk_forward
    assert first["in_sample_bars"] == [0, 2000] and first["out_of_sample_bars"] == [2000, 4000]
    assert second["in_sample_bars"] == [2000, 4000] and second["out_of_sample_bars"] == [4000, 6000]
    # The fold's winner is the best point in-sample, and its out-of-sample score is a
    # fresh backtest on the next window.
    window = data[2000:4000]
    oos = run_backtest(window, "sma_cross", first["params"]).total_return_pct
    assert first["out_of_sample"] == pytest.approx(oos)
    in_sample = [run_backtest(data[0:2000], "sma_cross", r["params"]).total_return_pct for r in result.rows]
    assert first["in_sample"] == pytest.approx(max(in_sample))
    for row in result.rows:
        assert {"is_total_return_pct", "oos_total_return_pct", "total_return_pct"} <= set(row)
        assert row["oos_total_return_pct"] is None or math.isfinite(row["oos_total_return_pct"])


def test_bad_optimiser_input_is_refused(data: OHLCV) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        optimize(data, "sma_cross", ["fast=5:10:5"], metric="luck")
    with pytest.raises(ValueError, match="unknown strategy"):
        optimize(data, "nope", ["fast=5:10:5"])
    with pytest.raises(ValueError, match="walk-forward"):
        optimize(data[:10], "sma_cross", ["fast=5:10:5"], walk_forward=20)
    empty = optimize(data, "sma_cross", ["fast=40:50:10", "slow=20:30:10"])
    assert empty.rows == [] and empty.grid.skipped_invalid == 4
