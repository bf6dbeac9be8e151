"""Parameter optimisation: grid search over local processes or Ray, ranked, with walk-forward.

``optimize(ohlcv, "sma_cross", ["fast=5:50:5", "slow=60:240:20"], metric="sharpe")``
backtests every point the strategy accepts (its ``validate_params`` skips fast >= slow)
and returns an :class:`~sniperbot.optimize.search.OptimizeResult` with rows best first.
See :mod:`.grid` for the spec syntax, :mod:`.walkforward` for the splits, :mod:`.local`
and :mod:`.ray_backend` for where the backtests run.

``optimize_tpe(ohlcv, "sma_cross", [...same specs...], trials=100, seed=0)`` searches the same
space with Bayesian TPE (Optuna, the ``research`` extra) instead of every point: see :mod:`.tpe`.
:mod:`.heatmap` lays the ranked rows on two parameters for the report.
"""

from sniperbot.optimize.grid import Grid, expand_grid, parse_constraint, parse_grid_spec
from sniperbot.optimize.search import METRICS, OptimizeResult, optimize
from sniperbot.optimize.tpe import optimize_tpe

__all__ = [
    "METRICS",
    "Grid",
    "OptimizeResult",
    "expand_grid",
    "optimize",
    "optimize_tpe",
    "parse_constraint",
    "parse_grid_spec",
]
