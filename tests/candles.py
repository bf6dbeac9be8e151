"""Seeded candle files for tests that need a CSV of bars (one home for the random walk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sniperbot.data import OHLCV, write_csv


def random_walk_csv(
    path: Path, n: int, seed: int, start: float, vol: float, wick: float, symbol: str = "X/USDT"
) -> Path:
    """``n`` one-minute bars of a seeded geometric random walk written to ``path`` (returned)."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.concatenate([[start], close[:-1]])
    high = np.maximum(open_, close) * (1 + wick)
    low = np.minimum(open_, close) * (1 - wick)
    times = 1_735_689_600 * 1_000_000_000 + np.arange(n) * 60_000_000_000
    write_csv(OHLCV(times, open_, high, low, close, np.ones(n), symbol=symbol, timeframe="1m"), path)
    return path
