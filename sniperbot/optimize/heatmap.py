"""The metric over two parameters of an optimisation: the report's heatmap (parameter stability).

A robust optimum sits on a plateau of good cells; a lone bright cell among poor neighbours is
luck that will not repeat live. :func:`heatmap` lays the ranked rows on the grid of two chosen
parameters. With more than two parameters searched, a cell shows the **best** score over the
others (the best the pair can do); a cell no row reached (refused by the strategy, or not tried
by TPE) is empty (None).

The default pair is the two parameters that explain most of the metric's variance
(:func:`importance`: the between-group share of the variance, eta squared, per parameter), so
the map shows what matters without the user having to know it first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sniperbot.optimize.search import METRICS, sort_key

__all__ = ["heatmap", "importance", "parse_heatmap_option"]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def importance(
    rows: Sequence[Mapping[str, Any]], axes: Mapping[str, Sequence[Any]], metric: str
) -> dict[str, float]:
    """Per searched parameter, the share of the metric's variance its values explain (0..1), largest first."""
    scored = [(r["params"], float(r[metric])) for r in rows if _finite(r.get(metric))]
    out: dict[str, float] = {}
    if not scored:
        return {name: 0.0 for name in axes if len(axes[name]) > 1}
    mean = sum(v for _, v in scored) / len(scored)
    total = sum((v - mean) ** 2 for _, v in scored)
    for name, values in axes.items():
        if len(values) < 2:
            continue
        groups: dict[Any, list[float]] = {}
        for params, v in scored:
            groups.setdefault(params.get(name), []).append(v)
        between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values())
        out[name] = between / total if total > 0 else 0.0
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def parse_heatmap_option(text: str, axes: Mapping[str, Sequence[Any]]) -> tuple[str, str]:
    """``"fast,slow"`` -> ``("fast", "slow")``; ValueError naming ``--heatmap`` and what is wrong."""
    names = [part.strip() for part in text.split(",")]
    if len(names) != 2 or not all(names):
        raise ValueError(f"--heatmap {text!r}: expected two parameters, e.g. fast,slow")
    if names[0] == names[1]:
        raise ValueError(f"--heatmap {text!r}: two different parameters are needed")
    for name in names:
        if name not in axes:
            raise ValueError(f"--heatmap {text!r}: {name!r} is not on the grid (searched: {', '.join(axes)})")
        if len(axes[name]) < 2:
            raise ValueError(f"--heatmap {text!r}: {name!r} has a single value on the grid")
    return names[0], names[1]


def heatmap(
    rows: Sequence[Mapping[str, Any]],
    axes: Mapping[str, Sequence[Any]],
    metric: str,
    pair: tuple[str, str] | None = None,
) -> dict[str, Any] | None:
    """The report's heatmap payload: ``x``/``y`` names and values, ``z[y][x]`` scores (None: empty).

    ``pair`` defaults to the two most important parameters; None when fewer than two
    parameters vary.
    """
    if pair is None:
        ranked = list(importance(rows, axes, metric))
        if len(ranked) < 2:
            return None
        pair = (ranked[0], ranked[1])
    x_name, y_name = pair
    xs, ys = list(axes[x_name]), list(axes[y_name])
    x_at = {v: i for i, v in enumerate(xs)}
    y_at = {v: i for i, v in enumerate(ys)}
    key = sort_key(metric)
    z: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for row in rows:
        value = row.get(metric)
        if not _finite(value):
            continue
        i, j = y_at[row["params"][y_name]], x_at[row["params"][x_name]]
        if z[i][j] is None or key(float(value)) < key(z[i][j]):
            z[i][j] = float(value)
    return {
        "metric": metric,
        "higher_is_better": METRICS[metric],
        "x": x_name,
        "y": y_name,
        "xs": xs,
        "ys": ys,
        "z": z,
        "others": [name for name, values in axes.items() if name not in pair and len(values) > 1],
    }
