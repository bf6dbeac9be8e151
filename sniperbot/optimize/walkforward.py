"""Walk-forward analysis: does a grid's in-sample winner hold up on the bars after it?

The data is cut into ``K + 1`` consecutive windows of (nearly) equal length. Fold
``f`` (1..K) optimises on window ``f - 1`` (in-sample) and tests on window ``f``
(out-of-sample): rolling, not anchored, so every fold has the same amount of history.
Each window is a fresh backtest (indicators warm up again at its start; a position
open at its end is closed there).

Reported:

* per grid point, beside its score on all the data: ``is_<metric>`` and
  ``oos_<metric>``, the means over the folds of its in-sample and out-of-sample
  scores;
* per fold, the in-sample winner, its in-sample score and its out-of-sample score and
  rank among all points out-of-sample. A winner whose out-of-sample score collapses
  is an overfit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["mean", "summarise", "windows"]


def windows(bars: int, folds: int) -> list[tuple[int, int]]:
    """``folds + 1`` consecutive ``(start, stop)`` bar ranges covering ``bars``."""
    if folds < 1:
        raise ValueError(f"--walk-forward must be >= 1, got {folds}")
    parts = folds + 1
    if bars < parts * 2:
        raise ValueError(f"--walk-forward {folds}: {bars} bars are too few for {parts} windows")
    bounds = [round(bars * k / parts) for k in range(parts + 1)]
    return list(itertools.pairwise(bounds))


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the finite values, None if there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def summarise(
    scores: list[list[float | None]],
    points: list[dict[str, Any]],
    bounds: list[tuple[int, int]],
    sort_key: Callable[[float | None], tuple[int, float]],
) -> list[dict[str, Any]]:
    """Per fold: the in-sample winner and how it did out-of-sample.

    ``scores[p][w]`` is point ``p``'s metric on window ``w``; ``sort_key`` orders
    scores best first (None last).
    """
    folds = []
    for fold in range(1, len(bounds)):
        in_sample = [scores[p][fold - 1] for p in range(len(points))]
        out_sample = [scores[p][fold] for p in range(len(points))]
        best = min(range(len(points)), key=lambda p: sort_key(in_sample[p]))
        oos_order = sorted(range(len(points)), key=lambda p: sort_key(out_sample[p]))
        folds.append(
            {
                "fold": fold,
                "in_sample_bars": list(bounds[fold - 1]),
                "out_of_sample_bars": list(bounds[fold]),
                "params": points[best],
                "in_sample": in_sample[best],
                "out_of_sample": out_sample[best],
                "out_of_sample_rank": oos_order.index(best) + 1,
            }
        )
    return folds
