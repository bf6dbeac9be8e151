"""TPE vs the full grid: the best Sharpe found in 100 TPE trials and the time each search took.

On ``../shared/data/candles/binance_spot_BTCUSDT_1m_2024-07-26_2024-08-25.csv`` (43,209 bars),
ranked by Sharpe, 10 bps fees, 2 workers, in two spaces:

* ``sma_cross fast=5:300:5 x slow=20:1500:20`` (60 x 75 = 4,500 combinations, those with
  fast < slow valid): integers, a narrow peak;
* ``bollinger_breakout period=10:600:10 x k=1.0:4.0:0.25`` (60 x 13 = 780): an int and a float.

Measured per space:

* **grid**: every valid point backtested (:func:`sniperbot.optimize.optimize`): its best Sharpe
  and wall time;
* **TPE**: :func:`sniperbot.optimize.tpe.optimize_tpe` with 100 trials, for ``--seeds`` seeds:
  the best Sharpe found, its rank in the full grid, its gap to the grid's best (Sharpe units:
  a ratio of Sharpes means nothing when they can be negative) and wall time;
* **random**: for scale, the best of 100 valid points drawn at random (same seeds) from the
  grid's own results, which is what TPE has to beat to be worth its overhead.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, emit, parse_args

# $SNIPERBOT_SHARED (the directory holding data/, as for the tests) or the shared/ beside the checkout.
SHARED = Path(os.environ.get("SNIPERBOT_SHARED") or REPO / ".." / "shared")
DATA = SHARED / "data" / "candles" / "binance_spot_BTCUSDT_1m_2024-07-26_2024-08-25.csv"
SPACES = [
    ("sma_cross", ["fast=5:300:5", "slow=20:1500:20"]),
    ("bollinger_breakout", ["period=10:600:10", "k=1.0:4.0:0.25"]),
]
TRIALS = 100
WORKERS = 2


def main() -> int:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: p.add_argument("--seeds", type=int, default=5, help="TPE seeds to run (default: 5)"),
    )
    seeds = 2 if args.quick else max(1, args.seeds)
    if not DATA.exists():
        print(f"real candles not found at {DATA} (they sit beside the checkout)")
        return 2
    from sniperbot.cli.research import speed_up_numpy

    speed_up_numpy()  # as the CLI does
    from sniperbot.backtest import BacktestConfig
    from sniperbot.data import load_ohlcv
    from sniperbot.optimize import optimize
    from sniperbot.optimize.tpe import optimize_tpe

    bars = load_ohlcv(DATA)
    config = BacktestConfig(fee_bps=10.0)
    print(f"{DATA.name} ({len(bars):,} bars), by Sharpe, {WORKERS} workers, {TRIALS} TPE trials")
    figures: dict[str, Any] = {"bars": len(bars), "trials": TRIALS}
    for strategy, space in SPACES:
        started = time.perf_counter()
        grid = optimize(bars, strategy, space, config=config, metric="sharpe", workers=WORKERS)
        grid_s = time.perf_counter() - started
        best = grid.best
        assert best is not None
        rank_of = {tuple(r["params"].items()): r["rank"] for r in grid.rows}
        print(f"{strategy} {' x '.join(space)}")
        print(
            f"  grid: {len(grid.rows):,} backtests in {grid_s:.1f} s; best Sharpe {best['sharpe']:.3f} "
            f"at {best['params']}"
        )
        runs: list[dict[str, Any]] = []
        for seed in range(seeds):
            started = time.perf_counter()
            tpe = optimize_tpe(
                bars, strategy, space, trials=TRIALS, seed=seed, config=config, workers=WORKERS
            )
            elapsed = time.perf_counter() - started
            found = tpe.best
            assert found is not None
            sample = random.Random(seed).sample(grid.rows, TRIALS)
            random_best = max(r["sharpe"] for r in sample if r["sharpe"] is not None)
            run = {
                "seed": seed,
                "tpe_s": round(elapsed, 2),
                "tpe_best_sharpe": round(found["sharpe"], 4),
                "tpe_best_params": found["params"],
                "tpe_rank_in_grid": rank_of[tuple(found["params"].items())],
                "tpe_gap_to_grid_best": round(best["sharpe"] - found["sharpe"], 4),
                "random_best_sharpe": round(random_best, 4),
                "suggestions": tpe.search["suggestions"],
            }
            runs.append(run)
            print(
                f"  TPE seed {seed}: {len(tpe.rows)} trials in {elapsed:.1f} s; "
                f"best Sharpe {found['sharpe']:.3f} at {found['params']} "
                f"(rank {run['tpe_rank_in_grid']} of {len(grid.rows):,}); random 100: {random_best:.3f}"
            )
        ranks = [r["tpe_rank_in_grid"] for r in runs]
        print(
            f"  TPE: median rank {statistics.median(ranks):g} (worst {max(ranks)}), median gap "
            f"{statistics.median(r['tpe_gap_to_grid_best'] for r in runs):.3f} Sharpe, "
            f"{sum(r == 1 for r in ranks)}/{len(runs)} seeds found the grid's best; median "
            f"{statistics.median(r['tpe_s'] for r in runs):.1f} s vs the grid's {grid_s:.1f} s; "
            f"random 100 median {statistics.median(r['random_best_sharpe'] for r in runs):.3f}"
        )
        figures[strategy] = {
            "space": space,
            "grid_points": len(grid.rows),
            "grid_s": round(grid_s, 2),
            "grid_best_sharpe": round(best["sharpe"], 4),
            "grid_best_params": best["params"],
            "tpe_median_rank": statistics.median(ranks),
            "tpe_median_s": statistics.median(r["tpe_s"] for r in runs),
            "runs": runs,
        }
    emit("optimize_tpe", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
