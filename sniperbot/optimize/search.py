"""Grid search: every accepted point backtested, ranked by a metric, walk-forward beside it."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sniperbot.backtest.config import BacktestConfig
from sniperbot.backtest.engine import resolve_strategy
from sniperbot.data.ohlcv import OHLCV
from sniperbot.optimize import walkforward
from sniperbot.optimize.evaluate import FULL, Job, Workload
from sniperbot.optimize.grid import Grid, expand_grid
from sniperbot.strategies import Strategy

__all__ = ["METRICS", "OptimizeResult", "optimize", "sort_key"]

#: Metrics a grid can be ranked by, and whether higher is better.
METRICS: dict[str, bool] = {
    "sharpe": True,
    "sortino": True,
    "calmar": True,
    "total_return_pct": True,
    "cagr_pct": True,
    "final_equity": True,
    "max_drawdown_pct": True,  # negative: closer to 0 is better
    "profit_factor": True,
    "win_rate_pct": True,
    "expectancy": True,
    "trades": True,
    "exposure_pct": True,
    "volatility_pct": False,
    "max_drawdown_duration_days": False,
    "fees": False,
}


def sort_key(metric: str) -> Callable[[float | None], tuple[int, float]]:
    """Key ordering scores of ``metric`` best first, missing (None/NaN) last."""
    higher = METRICS[metric]

    def key(value: float | None) -> tuple[int, float]:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return (1, 0.0)
        return (0, -value if higher else value)

    return key


@dataclass
class OptimizeResult:
    """Ranked rows (best first) and how the search went."""

    strategy: str
    metric: str
    grid: Grid
    rows: list[dict[str, Any]]
    elapsed_s: float
    backend: str
    workers: int
    bars: int
    walk_forward: list[dict[str, Any]] = field(default_factory=list)
    #: How the points were chosen: ``{"search": "grid"}`` or TPE's trials, seed and suggestions.
    search: dict[str, Any] = field(default_factory=lambda: {"search": "grid"})

    @property
    def best(self) -> dict[str, Any] | None:
        """The best row, or None if the grid was empty."""
        return self.rows[0] if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the search's figures and ``results``, the ranked rows."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "metric": self.metric,
            "bars": self.bars,
            "grid_size": self.grid.size,
            "evaluated": len(self.rows),
            "skipped_invalid": self.grid.skipped_invalid,
            "skipped_constraint": self.grid.skipped_constraint,
            "backend": self.backend,
            "workers": self.workers,
            "elapsed_s": round(self.elapsed_s, 4),
            **self.search,
            "results": self.rows,
        }
        if self.walk_forward:
            out["walk_forward"] = self.walk_forward
        return out


def optimize(
    ohlcv: OHLCV,
    strategy: str | type[Strategy],
    grid: Sequence[str],
    *,
    fixed: Mapping[str, Any] | None = None,
    constraints: Sequence[str] = (),
    config: BacktestConfig | None = None,
    metric: str = "sharpe",
    workers: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    walk_forward: int = 0,
    path: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> OptimizeResult:
    """Backtest every grid point the strategy accepts and rank them by ``metric`` (ValueError on bad input).

    ``progress(done, total)`` is called as batches of backtests finish.
    """
    started = time.perf_counter()
    cls = resolve_strategy(strategy)
    if metric not in METRICS:
        raise ValueError(f"--metric: unknown metric {metric!r} (known: {', '.join(METRICS)})")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    expanded = expand_grid(cls, grid, fixed, constraints)
    bounds = walkforward.windows(len(ohlcv), walk_forward) if walk_forward else []
    work = Workload(ohlcv, cls, expanded.points, bounds, config or BacktestConfig(), path)
    jobs: list[Job] = [(p, FULL) for p in range(len(expanded.points))]
    jobs += [(p, w) for p in range(len(expanded.points)) for w in range(len(bounds))]
    done = 0

    def step(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, len(jobs))

    if progress is not None:
        progress(0, len(jobs))
    if ray:
        from sniperbot.optimize.ray_backend import run_ray

        backend, used = "ray", 0
        results = run_ray(work, jobs, ray_address, step) if jobs else []
    else:
        used = workers or os.cpu_count() or 1
        used = max(1, min(used, len(jobs)))
        backend = "local"
        from sniperbot.optimize.local import run_local

        results = run_local(work, jobs, used, step) if jobs else []

    full: dict[int, dict[str, Any]] = {}
    scores = [[None] * len(bounds) for _ in expanded.points]
    for point, window, row in results:
        if window == FULL:
            full[point] = row
        else:
            scores[point][window] = row.get(metric)
    rows = []
    for p, params in enumerate(expanded.points):
        row = {"params": params, **full[p]}
        if bounds:
            row[f"is_{metric}"] = walkforward.mean(scores[p][:-1])
            row[f"oos_{metric}"] = walkforward.mean(scores[p][1:])
        rows.append(row)
    key = sort_key(metric)
    rows.sort(key=lambda r: key(r.get(metric)))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    folds = walkforward.summarise(scores, expanded.points, bounds, key) if bounds else []
    return OptimizeResult(
        strategy=cls.name or cls.__name__,
        metric=metric,
        grid=expanded,
        rows=rows,
        elapsed_s=time.perf_counter() - started,
        backend=backend,
        workers=used,
        bars=len(ohlcv),
        walk_forward=folds,
    )
