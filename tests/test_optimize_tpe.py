"""TPE search (``optimize --search tpe``) and the optimisation report's heatmap, on generated data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sniperbot.backtest import run_backtest
from sniperbot.data import OHLCV
from sniperbot.optimize import optimize
from sniperbot.optimize.heatmap import heatmap, importance
from sniperbot.optimize.tpe import optimize_tpe
from tests.candles import random_walk_csv
from tests.conftest import sniperbot
from tests.test_report import run_chromium

MINUTE = 60_000_000_000
SPACE = ["fast=2:20:2", "slow=10:60:5"]  # 10 x 11 points, 100 of them with fast < slow


def _walk(seed: int, drift: float, n: int = 6_000) -> OHLCV:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(drift, 0.003, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    times = 1_700_000_000 * 1_000_000_000 + np.arange(n) * MINUTE
    return OHLCV(times, open_, high, low, close, np.ones(n), symbol="X/USDT", timeframe="1m")


@pytest.fixture(scope="module")
def data() -> OHLCV:
    return _walk(seed=17, drift=0.0002)


@pytest.fixture(scope="module")
def grid(data: OHLCV):
    return optimize(data, "sma_cross", SPACE, metric="sharpe", workers=1)


def _report_data(report: Path) -> dict:
    """The JSON the report's script draws from."""
    text = report.read_text()
    found = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', text, re.S)
    assert found, "no report data"
    return json.loads(found[1])


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("elapsed_s", "rank", "trial")}


def test_tpe_finds_the_grid_best_in_a_ninth_of_the_backtests() -> None:
    # A driftless walk whose best point stands clear of the rest (Sharpe 7.4, next 5.1): 366
    # valid points; 40 random ones would include it about one time in nine.
    bars = _walk(seed=5, drift=0.0)
    space = ["fast=2:40:2", "slow=10:200:10"]
    grid = optimize(bars, "sma_cross", space, metric="sharpe", workers=1)
    assert len(grid.rows) == 366
    by_point = {tuple(r["params"].items()): _strip(r) for r in grid.rows}
    for seed in (0, 1, 2):
        result = optimize_tpe(bars, "sma_cross", space, trials=40, seed=seed, metric="sharpe", workers=1)
        assert len(result.rows) == 40 and result.search["search"] == "tpe"
        assert len({tuple(r["params"].values()) for r in result.rows}) == 40  # 40 distinct points
        assert result.best["params"] == grid.best["params"], (seed, result.best["params"])
        # Same metrics as the grid: each trial's row is the grid's row for that point.
        for row in result.rows:
            assert _strip(row) == by_point[tuple(row["params"].items())]
        sharpes = [r["sharpe"] for r in result.rows]
        assert sharpes == sorted(sharpes, reverse=True)
        assert [r["rank"] for r in result.rows] == list(range(1, 41))


def test_refused_points_never_run_nor_count_and_a_small_space_is_exhausted(data: OHLCV, grid) -> None:
    result = optimize_tpe(
        data, "sma_cross", SPACE, trials=25, seed=1, constraints=["slow>=3*fast"], workers=1
    )
    assert len(result.rows) == 25  # refused suggestions did not use up trials
    assert all(r["params"]["fast"] < r["params"]["slow"] for r in result.rows)
    assert all(r["params"]["slow"] >= 3 * r["params"]["fast"] for r in result.rows)
    assert result.grid.skipped_invalid + result.grid.skipped_constraint > 0
    # Asking for more trials than the space has valid points: each valid point once, then stop.
    everything = optimize_tpe(data, "sma_cross", SPACE, trials=500, seed=2, workers=1)
    assert sorted(tuple(r["params"].items()) for r in everything.rows) == sorted(
        tuple(r["params"].items()) for r in grid.rows
    )
    assert everything.best["sharpe"] == grid.best["sharpe"]


def test_the_same_seed_gives_the_same_trials(data: OHLCV) -> None:
    def trials(seed: int, workers: int) -> list[tuple]:
        result = optimize_tpe(data, "sma_cross", SPACE, trials=15, seed=seed, workers=workers)
        return [(r["trial"], tuple(r["params"].items()), r["sharpe"]) for r in result.rows]

    first = trials(7, 1)
    assert trials(7, 1) == first
    assert trials(8, 1) != first
    # Parallel rounds are told in trial order, so 2 workers are reproducible too.
    parallel = trials(7, 2)
    assert trials(7, 2) == parallel and len(parallel) == 15


def test_float_and_categorical_axes_keep_the_grid_values(data: OHLCV) -> None:
    result = optimize_tpe(
        data, "rsi_reversion", ["oversold=20:30:2.5", "mode=long,long-short"], trials=8, seed=0, workers=1
    )
    assert len(result.rows) == 8
    for row in result.rows:
        assert row["params"]["oversold"] in (20.0, 22.5, 25.0, 27.5, 30.0)
        assert row["params"]["mode"] in ("long", "long-short")
        assert row["sharpe"] == pytest.approx(run_backtest(data, "rsi_reversion", row["params"]).sharpe)


def test_walk_forward_searches_each_fold_in_sample_and_scores_it_out_of_sample(data: OHLCV) -> None:
    result = optimize_tpe(
        data, "sma_cross", SPACE, trials=10, seed=0, metric="total_return_pct", walk_forward=2, workers=1
    )
    assert [f["fold"] for f in result.walk_forward] == [1, 2]
    for fold in result.walk_forward:
        lo, hi = fold["in_sample_bars"]
        olo, ohi = fold["out_of_sample_bars"]
        assert (lo, hi, olo, ohi) == {1: (0, 2000, 2000, 4000), 2: (2000, 4000, 4000, 6000)}[fold["fold"]]
        assert fold["trials"] == 10 and 1 <= fold["out_of_sample_rank"] <= 10
        # The winner was picked on the in-sample window and scored afresh on the next one.
        assert fold["in_sample"] == pytest.approx(
            run_backtest(data[lo:hi], "sma_cross", fold["params"]).total_return_pct
        )
        assert fold["out_of_sample"] == pytest.approx(
            run_backtest(data[olo:ohi], "sma_cross", fold["params"]).total_return_pct
        )
        # ... and it is the in-sample best of every point of the space the fold could pick.
        full = optimize(data[lo:hi], "sma_cross", SPACE, metric="total_return_pct", workers=1)
        assert fold["in_sample"] <= full.best["total_return_pct"] + 1e-9


def test_heatmap_cells_are_the_best_score_over_the_other_parameters() -> None:
    axes = {"a": [1, 2], "b": [10, 20, 30], "c": ["x", "y"]}
    rows = []
    for a in axes["a"]:
        for b in axes["b"]:
            for c in axes["c"]:
                score = a * 100 + b + (0.5 if c == "y" else 0.0)  # a and b matter, c hardly
                rows.append({"params": {"a": a, "b": b, "c": c}, "sharpe": score})
    rows.append({"params": {"a": 2, "b": 30, "c": "x"}, "sharpe": None})  # missing scores are ignored
    assert list(importance(rows, axes, "sharpe"))[:2] == ["a", "b"]
    cells = heatmap(rows[:-3], axes, "sharpe")  # (a=2, b=30) never scored: an empty cell
    assert (cells["x"], cells["y"], cells["others"]) == ("a", "b", ["c"])
    assert cells["z"][0] == [110.5, 210.5] and cells["z"][1] == [120.5, 220.5]
    assert cells["z"][2] == [130.5, None]
    low = heatmap(rows, axes, "sharpe", ("b", "c"))
    assert low["xs"] == [10, 20, 30] and low["z"][1][0] == 210.5


def test_cli_tpe_report_shows_the_heatmap_of_the_search(tmp_path: Path) -> None:
    csv = random_walk_csv(tmp_path / "bars.csv", 4_000, 5, 100.0, 0.003, 0.001)
    report = tmp_path / "opt.html"
    done = sniperbot(
        "optimize", "--data", str(csv), "--strategy", "sma_cross",
        "--grid", "fast=2:10:2", "--grid", "slow=6:16:5",
        "--search", "tpe", "--trials", "8", "--seed", "3", "--workers", "2",
        "--report", str(report), "--heatmap", "fast,slow", "--json",
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert (out["search"], out["seed"], out["evaluated"], out["report"]) == ("tpe", 3, 8, str(report))
    data = _report_data(report)
    cells = data["heatmap"]
    assert (cells["x"], cells["y"], cells["xs"], cells["ys"]) == (
        "fast", "slow", ["2", "4", "6", "8", "10"], ["6", "11", "16"]
    )  # fmt: skip
    tried = {(r["params"]["fast"], r["params"]["slow"]): r["sharpe"] for r in out["results"]}
    for i, slow in enumerate((6, 11, 16)):
        for j, fast in enumerate((2, 4, 6, 8, 10)):
            assert cells["z"][i][j] == tried.get((fast, slow)), (fast, slow)
    assert cells["z"][0][4] is None  # fast=10, slow=6: refused by the strategy, an empty cell
    assert data["title"].startswith("sma_cross optimisation (TPE, 8 trials, seed 3)")

    # Rendered for real: one SVG cell per pair, each holding the score of its point.
    dom = run_chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-rendered="ok"' in dom.stdout and "data-error" not in re.search(r"<body[^>]*>", dom.stdout)[0]
    drawn = re.findall(
        r'<rect class="cell( empty)?"[^>]*data-x="(\d+)" data-y="(\d+)" data-value="([^"]*)"', dom.stdout
    )
    assert len(drawn) == 15
    for empty, x, y, value in drawn:
        expected = tried.get((int(x), int(y)))
        assert (value == "") == (expected is None) == bool(empty), (x, y)
        if expected is not None:
            assert float(value) == pytest.approx(expected)
    assert "sharpe over fast \u00d7 slow" in dom.stdout


def test_cli_grid_report_maps_the_two_most_important_parameters_by_default(tmp_path: Path) -> None:
    csv = random_walk_csv(tmp_path / "bars.csv", 3_000, 9, 100.0, 0.003, 0.001)
    report = tmp_path / "grid.html"
    done = sniperbot(
        "optimize", "--data", str(csv), "--strategy", "ema_cross", "--grid", "fast=2:8:2",
        "--grid", "slow=10:30:10", "--grid", "mode=long,long-short", "--report", str(report), "--json",
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["search"] == "grid" and out["evaluated"] == 24
    data = _report_data(report)
    cells = data["heatmap"]
    axes = {"fast": [2, 4, 6, 8], "slow": [10, 20, 30], "mode": ["long", "long-short"]}
    assert [cells["x"], cells["y"]] == list(importance(out["results"], axes, "sharpe"))[:2]
    (other,) = cells["others"]
    # Each cell is the best Sharpe over the third parameter.
    x_values, y_values = axes[cells["x"]], axes[cells["y"]]
    for i, y in enumerate(y_values):
        for j, x in enumerate(x_values):
            cell = {cells["x"]: x, cells["y"]: y}
            scores = [r["sharpe"] for r in out["results"] if cell.items() <= r["params"].items()]
            assert len(scores) == len(axes[other])
            assert cells["z"][i][j] == max(s for s in scores if s is not None)
    # The best point of the search is the one whose backtest the report shows.
    best = out["results"][0]
    assert data["title"].endswith(" ".join(f"{k}={v}" for k, v in best["params"].items()))
    sharpe_card = next(m for m in data["metrics"] if m[2] == "sharpe")
    assert sharpe_card[1] == f"{best['sharpe']:,.3f}"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--search", "tpe", "--trials", "0"], "--trials must be >= 1"),
        (["--search", "tpe", "--ray", "local"], "--ray: runs --search grid only"),
        (["--heatmap", "fast,slow"], "--heatmap: needs --report"),
        (["--heatmap", "fast,nope", "--report", "x.html"], "'nope' is not on the grid"),
        (["--heatmap", "fast", "--report", "x.html"], "expected two parameters"),
        (["--search", "tpe", "--grid", "speed=1:3:1"], "no parameter 'speed'"),
    ],
)
def test_bad_tpe_and_heatmap_options_exit_2_naming_it(tmp_path: Path, args: list[str], named: str) -> None:
    csv = random_walk_csv(tmp_path / "bars.csv", 500, 1, 100.0, 0.003, 0.001)
    grid = ["--grid", "fast=2:6:2", "--grid", "slow=10:20:10"]
    done = sniperbot("optimize", "--data", str(csv), "--strategy", "sma_cross", *grid, *args)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert named in done.stderr, done.stderr
    assert not (tmp_path / "x.html").exists()
