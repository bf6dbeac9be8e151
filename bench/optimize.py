"""Grid search speed: a 100-combination SMA grid on the real 130,708-bar minute file, on 2 cores.

The grid is ``fast=5:50:5`` x ``slow=60:240:20`` (10 x 10 points, all valid), ranked by
Sharpe, 10 bps fees, on ``../shared/data/candles/binance_spot_BTCUSDT_1m_2025-05-20_2025-08-18.csv``.

Measured:

* **whole process**: ``sniperbot optimize ... --workers 2 --json`` in a fresh process
  (start, load, 100 backtests on 2 worker processes, ranking, output); median of
  ``--repeat`` runs. Target: < 3 s.
* **in process**: :func:`sniperbot.optimize.optimize` with the bars already loaded, on 1
  and on 2 workers, and the mean time of one backtest.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, emit, parse_args, short_tmp, verdict

DATA = REPO / ".." / "shared" / "data" / "candles" / "binance_spot_BTCUSDT_1m_2025-05-20_2025-08-18.csv"
GRID = ["fast=5:50:5", "slow=60:240:20"]
TARGET_S = 3.0


def _command(work: Path) -> list[str]:
    args = ["optimize", "--data", str(DATA), "--strategy", "sma_cross", "--fee-bps", "10"]
    for spec in GRID:
        args += ["--grid", spec]
    args += ["--metric", "sharpe", "--workers", "2", "--json"]
    return [sys.executable, "-m", "sniperbot", *args]


def _in_process(repeat: int) -> dict[str, Any]:
    from sniperbot.cli.research import speed_up_numpy

    speed_up_numpy()  # as the CLI does
    from sniperbot.backtest import BacktestConfig
    from sniperbot.data import load_ohlcv
    from sniperbot.optimize import optimize

    data = load_ohlcv(DATA)
    config = BacktestConfig(fee_bps=10.0)
    figures: dict[str, Any] = {}
    for workers in (1, 2):
        times = []
        result = None
        for _ in range(repeat):
            started = time.perf_counter()
            result = optimize(data, "sma_cross", GRID, config=config, workers=workers)
            times.append(time.perf_counter() - started)
        assert result is not None and len(result.rows) == 100
        figures[f"in_process_{workers}_workers_s"] = round(min(times), 3)
        if workers == 1:
            figures["per_backtest_ms"] = round(min(times) / 100 * 1e3, 2)
            best = result.rows[0]
            figures["best_params"] = best["params"]
            figures["best_sharpe"] = round(best["sharpe"], 4)
    return figures


def main() -> int:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: p.add_argument("--repeat", type=int, default=3, help="runs per measurement (default: 3)"),
    )
    repeat = 1 if args.quick else max(1, args.repeat)
    if not DATA.exists():
        print(f"real candles not found at {DATA} (they sit beside the checkout)")
        return 2
    print(f"sma_cross grid {' x '.join(GRID)} (100 points) on {DATA.name}")
    with short_tmp("sb-opt-") as work:
        command = _command(work)
        wall = []
        out: dict[str, Any] = {}
        for _ in range(repeat):
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=work, timeout=600)
            wall.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise SystemExit(f"sniperbot optimize failed ({done.returncode}):\n{done.stderr[-2000:]}")
            out = json.loads(done.stdout)
    whole = statistics.median(wall)
    print(
        f"  whole process, 2 workers: {whole:.2f} s (median of {repeat}; the search itself "
        f"{out['elapsed_s']:.2f} s for {out['evaluated']} backtests of {out['bars']:,} bars)"
    )
    figures = _in_process(repeat)
    print(
        f"  in process: 1 worker {figures['in_process_1_workers_s']:.2f} s, "
        f"2 workers {figures['in_process_2_workers_s']:.2f} s; "
        f"{figures['per_backtest_ms']:.1f} ms per backtest"
    )
    print(f"  best by Sharpe: {figures['best_params']} (Sharpe {figures['best_sharpe']})")
    ok = whole < TARGET_S
    print(f"target: {verdict(ok)}  100-combination grid < {TARGET_S:.0f} s on 2 cores (whole process)")
    emit(
        "optimize",
        {
            "points": out["evaluated"],
            "bars": out["bars"],
            "whole_process_2_workers_s": round(whole, 3),
            "search_2_workers_s": out["elapsed_s"],
            **figures,
            "target_met": ok,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
