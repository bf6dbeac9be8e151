"""The embedded default, exactly as `make run` starts it, trades within its first 30 seconds."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import ROOT, RunningNode, eventually


def test_default_config_trades_within_30_seconds(short_tmp: Path) -> None:
    started = time.monotonic()
    running = RunningNode(short_tmp / "run", ROOT / "config" / "default.toml")
    try:
        workers = running.wait_ready()
        assert len(workers) == 7
        eventually(lambda: running.admin("status")["fills"] >= 1, 30, interval_s=0.5, what="a fill")
        assert time.monotonic() - started < 30
    finally:
        assert running.stop() == 0
