"""Backtest speed: sniperbot against backtesting.py on the same real minute bars, in one run.

The case is the parity case: SMA 10/30 long-only, 99.99 % of equity per entry at the
next open, 10 bps fees, cash 100,000, an open position closed at the end, on
``../shared/data/candles/binance_spot_BTCUSDT_1m_2025-05-20_2025-08-18.csv`` (130,708 bars).

Measured:

* **whole process**, each engine in its own fresh Python process: start, import, load
  the CSV, run, write the HTML report (``sniperbot backtest --report`` and
  backtesting.py's ``Backtest.plot``). Median of ``--repeat`` runs.
* **engine bars/s**: bars / the engine's own run time, as each engine reports it in
  that process (backtesting.py: ``Backtest.run``; sniperbot: the backtest's
  ``elapsed_s``, signals to metrics).
* sniperbot's **vectorised path** and **per-bar callback path**, warm, in this process
  (best of ``--repeat``), signals to metrics included.

backtesting.py is not a dependency of sniperbot; install it into the venv for this
benchmark only: ``.venv/bin/pip install backtesting`` (it brings pandas and bokeh).
Its ``FractionalBacktest`` trades fractions of a BTC (plain ``Backtest`` buys whole
units, and 100,000 USDT does not buy one BTC at these prices).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, emit, parse_args, ratio, short_tmp, verdict

DATA = REPO / ".." / "shared" / "data" / "candles" / "binance_spot_BTCUSDT_1m_2025-05-20_2025-08-18.csv"

# Targets of the research engine (issue 4).
WHOLE_PROCESS_RATIO = 0.5
VECTORISED_BARS_S = 4_500_000
PER_BAR_OVER_BACKTESTING_PY = 2.0

BACKTESTING_PY = r"""
import json, sys, time, warnings
started = time.perf_counter()
import pandas as pd
from backtesting import Strategy
from backtesting.lib import FractionalBacktest, crossover
from backtesting.test import SMA

warnings.simplefilter("ignore")
frame = pd.read_csv(sys.argv[1], parse_dates=["date"], index_col="date")
frame.columns = [c.capitalize() for c in frame.columns]


class SmaCross(Strategy):
    def init(self):
        self.fast = self.I(SMA, self.data.Close, 10)
        self.slow = self.I(SMA, self.data.Close, 30)

    def next(self):
        if crossover(self.fast, self.slow):
            self.buy(size=0.9999)
        elif crossover(self.slow, self.fast):
            self.position.close()


bt = FractionalBacktest(
    frame, SmaCross, cash=100_000, commission=0.001, finalize_trades=True, fractional_unit=1e-6
)
run_started = time.perf_counter()
stats = bt.run()
run_s = time.perf_counter() - run_started
bt.plot(filename=sys.argv[2], open_browser=False)
print(json.dumps({
    "bars": len(frame), "run_s": run_s, "trades": int(stats["# Trades"]),
    "final_equity": float(stats["Equity Final [$]"]), "max_drawdown_pct": float(stats["Max. Drawdown [%]"]),
}))
"""


def _timed(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=600)
    return time.perf_counter() - started, done


def _whole_process(command: list[str], cwd: Path, repeat: int, label: str) -> tuple[float, dict[str, Any]]:
    """Median wall time of ``repeat`` runs and the last run's JSON line."""
    times = []
    out: dict[str, Any] = {}
    for _ in range(repeat):
        elapsed, done = _timed(command, cwd)
        if done.returncode != 0:
            raise SystemExit(f"{label} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        times.append(elapsed)
        out = json.loads(done.stdout.strip().splitlines()[-1])
    return statistics.median(times), out


def _sniperbot_command(work: Path) -> list[str]:
    args = [
        "backtest", "--data", str(DATA), "--strategy", "sma_cross",
        "--param", "fast=10", "--param", "slow=30", "--fee-bps", "10", "--cash", "100000",
        "--json", "--report", str(work / "sniperbot.html"),
    ]  # fmt: skip
    return [sys.executable, "-m", "sniperbot", *args]


def _in_process(repeat: int) -> dict[str, Any]:
    """Warm bars/s of both sniperbot paths (best of ``repeat``)."""
    from sniperbot.cli.research import speed_up_numpy

    speed_up_numpy()  # as the CLI does
    from sniperbot.backtest import BacktestConfig, run_backtest
    from sniperbot.data import load_ohlcv

    data = load_ohlcv(DATA)
    config = BacktestConfig(fee_bps=10.0, cash=100_000.0)
    figures: dict[str, Any] = {"bars": len(data)}
    for path, runs in (("vectorised", max(repeat, 5)), ("per-bar", repeat)):
        best = float("inf")
        result = None
        for _ in range(runs + 1):  # the first run warms up
            result = run_backtest(data, "sma_cross", {"fast": 10, "slow": 30}, config, path=path)  # type: ignore[arg-type]
            best = min(best, result.elapsed_s)
        assert result is not None
        key = path.replace("-", "_")
        figures[f"{key}_s"] = round(best, 5)
        figures[f"{key}_bars_per_s"] = round(len(data) / best)
        figures[f"{key}_trades"] = result.trades
        figures[f"{key}_final_equity"] = round(result.final_equity, 4)
        figures[f"{key}_max_drawdown_pct"] = round(result.max_drawdown_pct, 4)
    return figures


def main() -> int:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: p.add_argument("--repeat", type=int, default=3, help="runs per measurement (default: 3)"),
    )
    repeat = 1 if args.quick else max(1, args.repeat)
    if not DATA.exists():
        print(f"real candles not found at {DATA} (they sit beside the checkout)")
        return 2
    try:
        import backtesting  # noqa: F401
    except ImportError:
        print("backtesting.py is not installed; for this benchmark only: .venv/bin/pip install backtesting")
        return 2

    print(f"SMA 10/30 long-only, 10 bps, cash 100,000 on {DATA.name}")
    print("sniperbot in this process (warm):")
    warm = _in_process(repeat)
    bars = warm["bars"]
    for path in ("vectorised", "per_bar"):
        print(
            f"  {path.replace('_', '-'):<11} {warm[f'{path}_bars_per_s'] / 1e6:7.2f} M bars/s  "
            f"({warm[f'{path}_s'] * 1e3:.1f} ms; {warm[f'{path}_trades']} trades, final equity "
            f"{warm[f'{path}_final_equity']:.2f}, max drawdown {warm[f'{path}_max_drawdown_pct']:.2f} %)"
        )

    with short_tmp("sb-bt-") as work:
        print(f"whole process, median of {repeat} (start, load, run, HTML report):")
        ours_s, ours = _whole_process(_sniperbot_command(work), work, repeat, "sniperbot")
        script = work / "backtesting_py.py"
        script.write_text(BACKTESTING_PY)
        theirs_s, theirs = _whole_process(
            [sys.executable, str(script), str(DATA), str(work / "backtesting_py.html")],
            work,
            repeat,
            "backtesting.py",
        )
    ours_engine = bars / ours["elapsed_s"]
    theirs_engine = theirs["bars"] / theirs["run_s"]
    print(
        f"  sniperbot      {ours_s:6.2f} s   engine {ours_engine / 1e6:6.2f} M bars/s   "
        f"{ours['trades']} trades, final equity {ours['final_equity']:.2f}, "
        f"max DD {ours['max_drawdown_pct']:.2f} %"
    )
    print(
        f"  backtesting.py {theirs_s:6.2f} s   engine {theirs_engine / 1e6:6.2f} M bars/s   "
        f"{theirs['trades']} trades, final equity {theirs['final_equity']:.2f}, "
        f"max DD {theirs['max_drawdown_pct']:.2f} %"
    )
    whole_ratio = ratio(ours_s, theirs_s)
    per_bar_ratio = ratio(warm["per_bar_bars_per_s"], theirs_engine)
    print("ratios:")
    print(f"  whole process sniperbot / backtesting.py      {whole_ratio:5.2f}x")
    print(f"  engine bars/s sniperbot / backtesting.py      {ratio(ours_engine, theirs_engine):5.2f}x")
    print(f"  per-bar path bars/s / backtesting.py bars/s   {per_bar_ratio:5.2f}x")
    print("targets:")
    checks = {
        f"whole process <= {WHOLE_PROCESS_RATIO}x backtesting.py's": whole_ratio is not None
        and whole_ratio <= WHOLE_PROCESS_RATIO,
        f"vectorised path >= {VECTORISED_BARS_S / 1e6} M bars/s": warm["vectorised_bars_per_s"]
        >= VECTORISED_BARS_S,
        f"per-bar path >= {PER_BAR_OVER_BACKTESTING_PY}x backtesting.py's bars/s": per_bar_ratio is not None
        and per_bar_ratio >= PER_BAR_OVER_BACKTESTING_PY,
        "per-bar path >= 410 k bars/s (2x the 205 k reference figure)": warm["per_bar_bars_per_s"] >= 410_000,
    }
    for label, ok in checks.items():
        print(f"  {verdict(ok):<6} {label}")
    emit(
        "backtest",
        {
            **warm,
            "sniperbot_whole_s": round(ours_s, 3),
            "sniperbot_engine_bars_per_s": round(ours_engine),
            "backtesting_py_whole_s": round(theirs_s, 3),
            "backtesting_py_engine_bars_per_s": round(theirs_engine),
            "backtesting_py_trades": theirs["trades"],
            "backtesting_py_final_equity": round(theirs["final_equity"], 4),
            "whole_process_ratio": whole_ratio,
            "per_bar_over_backtesting_py": per_bar_ratio,
            "targets_met": all(checks.values()),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
