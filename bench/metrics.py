"""Time of ``compute_metrics`` on a 130,708-bar (three months of minutes) equity curve.

Moved here from ``tests/test_metrics.py``, where it was a wall-clock assertion (< 0.5 s)
that a loaded CI machine could fail without any regression. Floor: the passes over the
same arrays that any metrics code needs (bar returns, running peak and drawdown), timed
in the same run on the same machine, so the ratio says how much the rest costs. The
former threshold is printed as a target line.
"""

from __future__ import annotations

import sys
import time

sys.path.append(str(__import__("pathlib").Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import emit, parse_args, ratio, verdict
from sniperbot.backtest.metrics import compute_metrics

BARS = 130_708
MINUTE_NS = 60_000_000_000
T0 = 1_747_699_200 * 1_000_000_000  # 2025-05-20 00:00 UTC
TARGET_S = 0.5


def _best_of(repeats: int, work: object) -> float:
    """The fastest of ``repeats`` runs of ``work()`` in seconds (the least disturbed one)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def _floor(equity: np.ndarray) -> None:
    returns = np.diff(equity) / equity[:-1]
    peak = np.maximum.accumulate(equity)
    (equity / peak - 1.0).min()
    returns.std()


def main() -> None:
    args = parse_args(__doc__ or "")
    repeats = 3 if args.quick else 10
    rng = np.random.default_rng(3)
    times = T0 + np.arange(BARS, dtype=np.int64) * MINUTE_NS
    equity = 100_000 * np.cumprod(1 + rng.normal(0, 1e-3, BARS))
    in_position = rng.random(BARS) < 0.5
    ours = _best_of(repeats, lambda: compute_metrics(times, equity, [], in_position))
    floor = _best_of(repeats, lambda: _floor(equity))
    print(f"compute_metrics on {BARS:,} bars: {ours * 1e3:.1f} ms (best of {repeats})")
    print(f"  floor (returns, running peak, drawdown): {floor * 1e3:.1f} ms, ratio {ratio(ours, floor)}")
    print(f"  target < {TARGET_S} s: {verdict(ours < TARGET_S)}")
    emit(
        "metrics",
        {
            "bars": BARS,
            "ms": round(ours * 1e3, 2),
            "floor_ms": round(floor * 1e3, 2),
            "ratio": ratio(ours, floor),
        },
    )


if __name__ == "__main__":
    main()
