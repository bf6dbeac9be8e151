"""The embedded default, exactly as `make run` starts it, trades.

How soon (the README's "within its first 30 seconds") is a benchmark, bench/default_run.py:
on a loaded machine a wall-clock bound fails with nothing wrong.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, RunningNode, eventually


def test_default_config_trades(short_tmp: Path) -> None:
    running = RunningNode(short_tmp / "run", ROOT / "config" / "default.toml")
    try:
        workers = running.wait_ready(timeout_s=60)
        # feed, paper, executor, portfolio, risk_guard, 2 strategies; metrics, api, archiver
        assert len(workers) == 10
        # A deadline, not a claim: the default needs ~10 s of market; this leaves room for load.
        eventually(lambda: running.admin("status")["fills"] >= 1, 120, interval_s=0.5, what="a fill")
    finally:
        assert running.stop() == 0
