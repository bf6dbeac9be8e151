"""Replay throughput: a candle file through the real node (bars/s) next to the in-process backtest.

The case: SMA 10/30 long-only, a fixed 1-unit position sized at the signal (the live strategy's
sizer), 10 bps fees, 1 bp slippage, market orders at the next bar's open, no position closed at the
end (both equities marked at the last close), on
``../shared/data/candles/binance_spot_BTCUSDT_1m_2024-07-26_2024-08-25.csv`` (43,209 bars; found as
the tests find it: ``SNIPERBOT_SHARED``, else a ``shared/data`` beside the checkout or a parent) when
present, else 43,209 generated one-minute bars (``--quick``: 5,000).

Measured, by ``sniperbot replay --json`` in a fresh process (a real node: feed, strategy, risk
guard, executor, paper venue, journal, each in its own process, paced by acknowledgement):

* **replay bars/s**: candles / the replay's own time, first candle to the end of data, as the feed
  reports it (node start and stop excluded); also the whole command's wall time;
* **backtest bars/s**: the same data through the in-process backtester (per-bar path, the same
  callbacks the strategy actor calls, and the vectorised path), warm, best of ``--repeat``;
* both engines' **trades** (fills) and **final equity**, and whether the trades are identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, emit, parse_args, subprocess_env

CANDLES = ("candles", "binance_spot_BTCUSDT_1m_2024-07-26_2024-08-25.csv")
BARS = 43_209
PARAMS = {"fast": 10, "slow": 30}
QUANTITY = 1.0
FEE_BPS = 10.0
SLIPPAGE_BPS = 1.0


def _data(quick: bool, tmp: Path) -> tuple[Path, str]:
    """The shared BTC file when present (not with --quick), else generated candles."""
    sys.path.insert(0, str(REPO))
    from tests.candles import random_walk_csv
    from tests.conftest import shared_data  # one home for where the shared data sits

    data = shared_data(*CANDLES)
    if data.is_file() and not quick:
        return data.resolve(), "shared BTC/USDT 1m"

    n = 5_000 if quick else BARS
    path = random_walk_csv(tmp / "X_USDT-1m.csv", n, seed=7, start=60_000.0, vol=0.0008, wick=0.0005)
    return path, f"generated ({n:,} bars)"


def _backtest(path: Path, repeat: int) -> dict[str, Any]:
    """The in-process backtest of the same case, both paths, best of ``repeat``."""
    from sniperbot.backtest.config import BacktestConfig
    from sniperbot.backtest.engine import run_backtest
    from sniperbot.data import load_ohlcv

    bars = load_ohlcv(path)
    config = BacktestConfig(
        fee_bps=FEE_BPS,
        slippage_bps=SLIPPAGE_BPS,
        sizer=f"fixed:{QUANTITY}",
        size_at="signal",
        close_at_end=False,
    )
    out: dict[str, Any] = {}
    for name in ("per-bar", "vectorised"):
        best = float("inf")
        result: Any = None
        for _ in range(repeat):
            started = time.perf_counter()
            result = run_backtest(bars, "sma_cross", PARAMS, config, path=name)  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - started)
        key = name.replace("-", "_")
        out[f"backtest_{key}_bars_per_s"] = round(len(bars) / best)
        out["backtest_trades"] = len(result.fills)
        out["backtest_equity"] = round(float(result.equity[-1]), 2)
    return out


def main() -> int:
    """Run the benchmark; the last line is one JSON object."""
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: p.add_argument("--repeat", type=int, default=3, help="backtest runs"),
    )
    with tempfile.TemporaryDirectory(prefix="sb-bench-rp-", dir="/tmp") as d:
        path, source = _data(args.quick, Path(d))
        flags = [f for k, v in PARAMS.items() for f in ("--param", f"{k}={v}")]
        started = time.perf_counter()
        run = subprocess.run(
            [
                sys.executable, "-m", "sniperbot", "replay", "--data", str(path), "--strategy", "sma_cross",
                *flags, "--quantity", str(QUANTITY), "--fee-bps", str(FEE_BPS),
                "--slippage-bps", str(SLIPPAGE_BPS), "--json",
            ],
            capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=3_600,
        )  # fmt: skip
        wall = time.perf_counter() - started
        if not run.stdout.strip():
            print(run.stderr, file=sys.stderr)
            return 1
        replay = json.loads(run.stdout)
        backtest = _backtest(path, args.repeat)
    figures = {
        "data": source,
        "bars": replay["bars"],
        "replay_bars_per_s": round(replay["bars_per_s"] or 0),
        "replay_s": round(replay["replay_s"], 2),
        "replay_command_s": round(wall, 2),
        "node_trades": replay["node_trades"],
        "node_equity": round(replay["node_equity"], 2),
        **backtest,
        "identical": replay["identical"],
        "equity_diff_pct": replay["equity_diff_pct"],
        "first_divergence": replay.get("first_divergence"),
    }
    print(f"data: {source}, {figures['bars']:,} bars, sma_cross 10/30, fixed {QUANTITY}, {FEE_BPS} bps fee")
    print(
        f"replay through the node: {figures['replay_bars_per_s']:,} bars/s "
        f"({figures['replay_s']} s replay, {figures['replay_command_s']} s whole command)"
    )
    print(
        f"in-process backtest:     {backtest['backtest_per_bar_bars_per_s']:,} bars/s per-bar, "
        f"{backtest['backtest_vectorised_bars_per_s']:,} bars/s vectorised"
    )
    print(
        f"trades: node {figures['node_trades']}, backtest {figures['backtest_trades']}; equity: node "
        f"{figures['node_equity']:,.2f}, backtest {figures['backtest_equity']:,.2f} "
        f"({figures['equity_diff_pct']:.2e} % apart); identical: {figures['identical']}"
    )
    emit("replay", figures)
    return 0 if replay["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
