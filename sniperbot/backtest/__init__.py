"""Backtesting: the engine (:mod:`.engine`), its venue and ledger, metrics and the HTML report.

``run_backtest(ohlcv, "sma_cross", {"fast": 10, "slow": 30}, BacktestConfig(fee_bps=10))``
returns a :class:`~sniperbot.backtest.result.BacktestResult`. The names below are
imported on first use, so ``import sniperbot.backtest.metrics`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BacktestConfig": "sniperbot.backtest.config",
    "BacktestResult": "sniperbot.backtest.result",
    "run_backtest": "sniperbot.backtest.engine",
    "run_per_bar": "sniperbot.backtest.engine",
    "run_vectorised": "sniperbot.backtest.vectorised",
    "run_targets": "sniperbot.backtest.vectorised",
    "compute_metrics": "sniperbot.backtest.metrics",
    "Metrics": "sniperbot.backtest.metrics",
    "Trade": "sniperbot.backtest.metrics",
    "write_report": "sniperbot.backtest.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sniperbot.backtest' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
