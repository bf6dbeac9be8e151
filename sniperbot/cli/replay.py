"""``sniperbot replay``: a candle file through the real node, compared with the in-process backtest.

It writes a node config with one ``replay`` venue (:mod:`sniperbot.venues.replay`) and one strategy,
runs ``sniperbot run`` on a temporary run dir (or ``--run-dir``) until the feed reports the end of
the data, stops the node, and compares the journaled fills of the strategy with the backtest of the
same data under the same fill convention: signals on a bar's close, market orders at the next
bar's open plus ``--slippage-bps``, ``--fee-bps`` on each fill's notional, a fixed ``--quantity``
per full position sized at the signal (the live strategy's :class:`~sniperbot.risk.sizing.FixedSize`;
backtest ``sizer="fixed:Q"``, ``size_at="signal"``), no position closed at the end: both equities
are marked at the last close.

Decisions: a *trade* here is one execution (fill), compared on its time (the open time of the
candle it filled at: the replay clock, not the wall clock), side and quantity (relative 1e-9);
prices and fees enter through the final equity, which must agree within
:data:`EQUITY_TOLERANCE_PCT`. Exit status: 0 identical, 1 a divergence (reported, the run dir kept),
2 bad input (named) before anything starts.

``--json`` prints one object: ``node_trades``, ``backtest_trades`` (fill counts), ``identical``,
``equity_diff_pct``, ``node_equity``, ``backtest_equity``, ``bars``, ``bars_per_s`` (the replay's
throughput through the node), ``elapsed_s`` and, when not identical, ``first_divergence``
(``trade``, ``bar``, ``time``, ``decision_bar``, ``node``, ``backtest``, ``reason``).
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EQUITY_TOLERANCE_PCT = 0.1
#: The venue and strategy ids of the replay node.
VENUE = "replay"
STRATEGY_ID = "replay"
#: A node whose replay makes no progress for this long is reported stalled (exit 1).
STALL_S = 120.0
_QTY_RTOL = 1e-9


class _Usage(Exception):
    """Bad input, named; exit 2."""


def add_replay_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``replay`` to the subparsers of the main ``sniperbot`` parser."""
    parser = subparsers.add_parser(
        "replay",
        help="replay a candle file through the real node and compare with the backtest",
        description=(
            "Feed a candle file through a real node (feed, strategy, risk guard, executor, paper "
            "venue, journal, each in its own process) and compare the journaled trades with the "
            "in-process backtest of the same data: same trades (time, side, quantity) and final "
            "equity within 0.1%%, or the first divergence. Exit 0 identical, 1 divergent, 2 bad input."
        ),
    )
    parser.add_argument("--data", required=True, metavar="FILE", help="OHLCV file: CSV, Parquet or Feather")
    parser.add_argument(
        "--strategy", required=True, metavar="REF", help="name, module:Class or file.py:Class"
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="strategy parameter (repeatable)"
    )
    parser.add_argument("--symbol", help="symbol of the data (default: guessed from the file name)")
    parser.add_argument("--quantity", type=float, default=1.0, help="size of a full position (default: 1)")
    parser.add_argument(
        "--cash", type=float, default=100_000.0, help="starting equity (default: %(default)s)"
    )
    parser.add_argument("--fee-bps", type=float, default=10.0, help="fee, bps of notional (default: 10)")
    parser.add_argument("--slippage-bps", type=float, default=0.0, help="market fills this much worse")
    parser.add_argument(
        "--speed", type=float, default=0.0, help="0: as fast as the node takes it; N: at most N x real time"
    )
    parser.add_argument(
        "--run-dir", help="the node's run dir (default: a temporary one, removed if identical)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"sniperbot: error: {message}", file=sys.stderr)
    return code


def _inputs(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Any]:
    """Strategy class, typed params and bars; _Usage naming the bad argument."""
    from sniperbot.data import DataError, load_ohlcv
    from sniperbot.strategies.loader import StrategyLoadError, load_strategy

    try:
        cls = load_strategy(args.strategy)
    except StrategyLoadError as e:
        raise _Usage(f"--strategy: {e}") from None
    texts: dict[str, str] = {}
    for item in args.param:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise _Usage(f"--param: expected K=V, got {item!r}")
        texts[key.strip()] = text.strip()
    try:
        params = cls.parse_params(texts)
    except ValueError as e:
        raise _Usage(f"--param: {e}") from None
    for name in ("quantity", "cash"):
        value = getattr(args, name)
        if not (0 < value < math.inf):
            raise _Usage(f"--{name}: must be a finite number > 0, got {value}")
    for name in ("fee_bps", "slippage_bps", "speed"):
        value = getattr(args, name)
        if not (0 <= value < math.inf):
            raise _Usage(f"--{name.replace('_', '-')}: must be a finite number >= 0, got {value}")
    if args.run_dir and Path(args.run_dir).exists() and any(Path(args.run_dir).iterdir()):
        # A replay compares one fresh run: an old journal would mix its trades into this one.
        raise _Usage(f"--run-dir: {args.run_dir} is not empty; a replay needs a fresh run dir")
    if not Path(args.data).is_file():
        raise _Usage(f"--data: no such file: {args.data}")
    try:
        bars = load_ohlcv(args.data, symbol=args.symbol)
    except (DataError, ValueError) as e:
        raise _Usage(f"--data: {e}") from None
    if len(bars) < 2:
        raise _Usage(f"--data: {args.data} has {len(bars)} bar(s); a replay needs at least 2")
    step = bars.timeframe_ns
    starts = [t - t % step for t in bars.time_ns.tolist()]
    for k in range(1, len(starts)):
        if starts[k] <= starts[k - 1]:
            raise _Usage(f"--data: bars {k - 1} and {k} fall in the same {bars.timeframe} interval")
    return cls, params, bars


def _toml(value: Any) -> str:
    """A TOML value (strings, numbers, booleans, flat lists and inline tables are all we write)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"


def node_config(
    data: str,
    symbol: str,
    strategy: str,
    params: dict[str, Any],
    quantity: float,
    bar_interval_s: float,
    fee_bps: float,
    slippage_bps: float,
    speed: float,
) -> str:
    """The TOML of a replay node: one replay venue, one strategy, limits that never bind."""
    lines = [
        "[node]",
        'log_level = "WARNING"',
        "heartbeat_interval_s = 0.5",
        "[journal]",
        'durability = "process"',
        "[execution]",
        f"fee_bps = {fee_bps!r}",
        f"slippage_bps = {slippage_bps!r}",
        # The backtest has no limits: the node's must not bind either (a replay runs far faster
        # than the wall clock the order-rate limit counts in).
        "[risk]",
        "max_order_notional = 1e18",
        "max_position = 1e18",
        "max_orders_per_second = 1e9",
        "position_limits = {}",
        "[[venues]]",
        f"name = {_toml(VENUE)}",
        'kind = "replay"',
        f"data = {_toml(data)}",
        f"symbol = {_toml(symbol)}",
        f"speed = {speed!r}",
        f"strategies = {_toml([STRATEGY_ID])}",
        "[[strategies]]",
        f"id = {_toml(STRATEGY_ID)}",
        f"venue = {_toml(VENUE)}",
        f"symbol = {_toml(symbol)}",
        f"strategy = {_toml(strategy)}",
        f"quantity = {quantity!r}",
        f"bar_interval_s = {bar_interval_s!r}",
        f"params = {_toml(params)}",
    ]
    return "\n".join(lines) + "\n"


class ReplayNode:
    """A ``sniperbot run`` process on a replay config, and its journal read from outside."""

    def __init__(self, run_dir: Path, config: Path, log: Path) -> None:
        self.run_dir = run_dir
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sniperbot", "run", "--config", str(config), "--run-dir", str(run_dir)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.journal: Any = None

    def _open_journal(self) -> Any:
        from sniperbot.journal import Journal, JournalError

        if self.journal is None and (self.run_dir / "journal").exists():
            try:
                self.journal = Journal.open(self.run_dir, readonly=True)
            except JournalError:
                return None
        return self.journal

    def wait_done(self) -> dict[str, Any]:
        """Wait for the end of data; RuntimeError if the node exits or stalls first."""
        import msgspec

        from sniperbot.market.bars import replay_key

        last_progress, progress = time.monotonic(), b""
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the node exited with status {self.process.returncode} (log: {self.log_path})"
                )
            journal = self._open_journal()
            if journal is not None:
                done = journal.get_state(replay_key(VENUE, "done"))
                if done is not None:
                    return msgspec.json.decode(done)
                ack = journal.get_state(replay_key(VENUE, "ack", STRATEGY_ID)) or b""
                if ack != progress:
                    last_progress, progress = time.monotonic(), ack
            if time.monotonic() - last_progress > STALL_S:
                raise RuntimeError(f"the replay made no progress for {STALL_S:.0f} s (log: {self.log_path})")
            time.sleep(0.05)

    def stop(self) -> None:
        """Orderly stop (SIGTERM), killed if it does not finish in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        if self.journal is not None:
            self.journal.close()
            self.journal = None


def node_fills(journal: Any) -> list[dict[str, Any]]:
    """The replay strategy's fills in journal order, each with its replay-clock time."""
    from sniperbot.market.bars import replay_key

    out = []
    for fill in journal.fills():
        if fill.strategy_id != STRATEGY_ID:
            continue
        clock = journal.get_state(replay_key(VENUE, "fill", fill.fill_id))
        out.append(
            {
                "time_ns": int(clock) if clock is not None else None,
                "side": fill.side,
                "quantity": fill.quantity,
                "price": fill.price,
                "fee": fill.fee,
            }
        )
    return out


def backtest_fills(result: Any) -> list[dict[str, Any]]:
    """The backtest's fills in the same shape (fees from the config's taker fee)."""
    fee = result.config.taker_fee
    log = result.fills
    return [
        {
            "time_ns": int(t),
            "side": "buy" if q > 0 else "sell",
            "quantity": abs(float(q)),
            "price": float(p),
            "fee": abs(float(q)) * float(p) * fee,
        }
        for t, q, p in zip(log.time_ns.tolist(), log.quantity.tolist(), log.price.tolist(), strict=True)
    ]


def node_equity(fills: list[dict[str, Any]], cash: float, last_close: float) -> float:
    """Starting cash plus every fill's cash flow, the position marked at the last close."""
    position = 0.0
    for f in fills:
        signed = f["quantity"] if f["side"] == "buy" else -f["quantity"]
        position += signed
        cash -= signed * f["price"] + f["fee"]
    return cash + position * last_close


def _iso(ns: int | None) -> str | None:
    from sniperbot.data.ohlcv import format_ns

    return None if ns is None else format_ns(ns)


def first_divergence(
    node: list[dict[str, Any]], backtest: list[dict[str, Any]], times: list[int]
) -> dict[str, Any] | None:
    """The first trade that differs in time, side or quantity (None: the same trades)."""
    for i in range(max(len(node), len(backtest))):
        a = node[i] if i < len(node) else None
        b = backtest[i] if i < len(backtest) else None
        if a is not None and b is not None:
            if a["time_ns"] != b["time_ns"]:
                reason = (
                    f"time: the node filled at {_iso(a['time_ns'])}, the backtest at {_iso(b['time_ns'])}"
                )
            elif a["side"] != b["side"]:
                reason = f"side: the node {a['side']}s, the backtest {b['side']}s"
            elif not math.isclose(a["quantity"], b["quantity"], rel_tol=_QTY_RTOL):
                reason = f"quantity: the node {a['quantity']!r}, the backtest {b['quantity']!r}"
            else:
                continue
        elif a is not None:
            reason = f"the node {a['side']}s {a['quantity']!r} where the backtest has no more trades"
        else:
            assert b is not None
            reason = f"the backtest {b['side']}s {b['quantity']!r} where the node has no more trades"
        at = (a or b or {}).get("time_ns")
        bar = None if at is None else bisect.bisect_left(times, at)
        return {
            "trade": i,
            "bar": bar,
            "time": _iso(at),
            # The decision was made on the close of the bar before the fill.
            "decision_bar": None if bar is None else bar - 1,
            "node": a,
            "backtest": b,
            "reason": reason,
        }
    return None


def compare(
    node: list[dict[str, Any]],
    backtest: list[dict[str, Any]],
    times: list[int],
    node_eq: float,
    backtest_eq: float,
) -> dict[str, Any]:
    """``identical``, ``equity_diff_pct`` and, when not identical, ``first_divergence``."""
    diff_pct = abs(node_eq - backtest_eq) / abs(backtest_eq) * 100 if backtest_eq else math.inf
    divergence = first_divergence(node, backtest, times)
    if divergence is None and diff_pct > EQUITY_TOLERANCE_PCT:
        divergence = {
            "trade": None,
            "bar": len(times) - 1,
            "time": _iso(times[-1]),
            "decision_bar": None,
            "node": None,
            "backtest": None,
            "reason": f"equity: {node_eq:.2f} vs {backtest_eq:.2f} ({diff_pct:.4f} % apart)",
        }
    out: dict[str, Any] = {
        "node_trades": len(node),
        "backtest_trades": len(backtest),
        "identical": divergence is None,
        "equity_diff_pct": diff_pct,
        "node_equity": node_eq,
        "backtest_equity": backtest_eq,
    }
    if divergence is not None:
        out["first_divergence"] = divergence
    return out


def run_replay(args: argparse.Namespace) -> int:
    """Run ``sniperbot replay``; returns the exit status (0 identical, 1 divergent, 2 bad input)."""
    try:
        cls, params, bars = _inputs(args)
    except _Usage as e:
        return _fail(str(e), 2)
    from sniperbot.backtest.config import BacktestConfig
    from sniperbot.backtest.engine import run_backtest

    symbol = bars.symbol or args.symbol or "X/USDT"
    bt_config = BacktestConfig(
        cash=args.cash,
        fee_bps=args.fee_bps,
        slippage_bps=args.slippage_bps,
        sizer=f"fixed:{args.quantity!r}",
        size_at="signal",
        close_at_end=False,
        venue=VENUE,
        strategy_id=STRATEGY_ID,
    )
    base = Path(tempfile.mkdtemp(prefix="sb-rp-", dir="/tmp"))
    run_dir = Path(args.run_dir) if args.run_dir else base / "run"
    config_path = base / "replay.toml"
    config_path.write_text(
        node_config(
            str(Path(args.data).resolve()),
            symbol,
            args.strategy,
            params,
            args.quantity,
            bars.timeframe_ns / 1e9,
            args.fee_bps,
            args.slippage_bps,
            args.speed,
        )
    )
    # A terminated replay stops its node too (the finally below), rather than leaving it running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    node = ReplayNode(run_dir, config_path, base / "node.log")
    started = time.perf_counter()
    try:
        try:
            done = node.wait_done()
        except RuntimeError as e:
            return _fail(f"{e}", 1)
        node_trades = node_fills(node.journal)
    finally:
        node.stop()
    elapsed = time.perf_counter() - started
    result = run_backtest(bars, cls, params, bt_config)
    bt_trades = backtest_fills(result)
    times = bars.time_ns.tolist()
    last_close = float(bars.close[-1])
    report = compare(
        node_trades,
        bt_trades,
        times,
        node_equity(node_trades, args.cash, last_close),
        float(result.equity[-1]),
    )
    report.update(
        strategy=cls.name or cls.__name__,
        params=params,
        data=args.data,
        symbol=symbol,
        bars=len(bars),
        bars_per_s=done.get("bars_per_s"),
        replay_s=done.get("elapsed_s"),
        elapsed_s=elapsed,
    )
    if report["identical"] and not args.run_dir:
        shutil.rmtree(base, ignore_errors=True)
    else:
        report["run_dir"] = str(run_dir)
        report["node_log"] = str(base / "node.log")
    if args.json:
        print(json.dumps(report))
    else:
        _print(report)
    return 0 if report["identical"] else 1


def _print(report: dict[str, Any]) -> None:
    verdict = "identical" if report["identical"] else "DIVERGENT"
    print(f"replay of {report['bars']:,} bars through the node: {verdict}")
    print(f"  trades       node {report['node_trades']}, backtest {report['backtest_trades']}")
    print(
        f"  equity       node {report['node_equity']:,.2f}, backtest {report['backtest_equity']:,.2f} "
        f"({report['equity_diff_pct']:.4f} % apart)"
    )
    print(f"  throughput   {report['bars_per_s'] or 0:,.0f} bars/s through the node")
    divergence = report.get("first_divergence")
    if divergence:
        decided = divergence["decision_bar"]
        on = f", decided on the close of bar {decided}" if decided is not None else ""
        where = f"bar {divergence['bar']} ({divergence['time']}{on})"
        print(f"  first divergence at {where}: {divergence['reason']}")
        print(f"  run dir kept: {report['run_dir']}")
