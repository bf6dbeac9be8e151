"""One unit of optimiser work: backtest a grid point on the whole data or on one window.

A *job* is ``(point index, window index)``; window ``-1`` is all the bars, others are
bar ranges from :func:`sniperbot.optimize.walkforward.windows`. Both backends (local
processes, Ray) run lists of jobs through :func:`run_jobs` and get back one row per
job: the metrics (JSON-safe, NaN as None) and the backtest's own ``elapsed_s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sniperbot.backtest.config import BacktestConfig
from sniperbot.data.ohlcv import OHLCV
from sniperbot.strategies import Strategy

__all__ = ["FULL", "Job", "Workload", "run_jobs"]

FULL = -1
Job = tuple[int, int]

# Dropped from the rows: bookkeeping, not something to rank or read in a table.
_DROP = ("start_ns", "end_ns", "max_drawdown_duration_ns")


@dataclass(frozen=True)
class Workload:
    """Everything a worker needs besides its jobs; shipped once per worker (fork or object store)."""

    ohlcv: OHLCV
    strategy: type[Strategy]
    points: list[dict[str, Any]]
    windows: list[tuple[int, int]]
    config: BacktestConfig
    path: str


def run_jobs(work: Workload, jobs: Sequence[Job]) -> list[tuple[int, int, dict[str, Any]]]:
    """Backtest each ``(point, window)`` job; returns ``(point, window, metrics row)`` in order."""
    from sniperbot.backtest.engine import run_backtest

    out = []
    for point, window in jobs:
        data = work.ohlcv
        if window != FULL:
            lo, hi = work.windows[window]
            data = data[lo:hi]
        result = run_backtest(data, work.strategy, work.points[point], work.config, path=work.path)  # type: ignore[arg-type]
        row = result.metrics.to_dict(json_safe=True)
        for key in _DROP:
            row.pop(key, None)
        row["elapsed_s"] = round(result.elapsed_s, 6)
        out.append((point, window, row))
    return out
