"""Research subcommands of the ``sniperbot`` command: ``data``, ``backtest`` and ``optimize``.

``add_data_parser(subparsers)`` adds ``data`` to the main parser; ``run_data(args)``
runs it and returns the exit status (0 success; 1 the download or the file failed;
2 bad usage, for example an unreadable date).

``add_backtest_parser`` / ``run_backtest`` and ``add_optimize_parser`` / ``run_optimize``
do the same for ``backtest`` and ``optimize``: exit status 0 on success, 2 on bad input
(the message names the argument: unknown strategy, bad parameter name or value, bad
grid spec, missing file), 1 if Ray could not be started or joined. ``--json`` prints
one JSON object on stdout; on a terminal a progress bar is drawn on stderr, anywhere
else nothing but the result is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# Heavy imports (numpy, ccxt, rich) are inside the handlers: `sniperbot --help` and
# the other subcommands must not pay for them.


def add_data_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``data {download,info}`` to the subparsers of the main ``sniperbot`` parser."""
    data = subparsers.add_parser("data", help="download and inspect OHLCV candle files")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    download = data_sub.add_parser(
        "download",
        help="fetch candles from an exchange (ccxt) into a CSV; resumes an existing file",
        description=(
            "Fetch closed candles opening in [--since, --until) through ccxt, page by page with "
            "the exchange's rate limit, into a CSV (date,open,high,low,close,volume; ISO UTC). "
            "If --out exists, the download continues after its last bar."
        ),
    )
    download.add_argument("--exchange", default="binance", help="ccxt exchange id (default: %(default)s)")
    download.add_argument("--symbol", required=True, help="unified symbol, e.g. BTC/USDT")
    download.add_argument(
        "--timeframe", default="1m", help="candle length, e.g. 1m, 1h (default: %(default)s)"
    )
    download.add_argument(
        "--since",
        help="first bar's open time: ISO date/time (UTC unless zoned) or epoch; required for a new file",
    )
    download.add_argument("--until", help="stop before this time (exclusive; default: now)")
    download.add_argument("--out", required=True, help="CSV file to write or resume")
    download.add_argument("--limit", type=int, help="candles per request (default: 1000 on Binance)")
    download.add_argument("--retries", type=int, default=3, help="retries of a failed request (default: 3)")
    download.add_argument(
        "--api-url",
        help="send the exchange's REST calls to this base URL instead (a mirror, or a local test server)",
    )

    info = data_sub.add_parser("info", help="load a candle file and report its bars, timeframe and gaps")
    info.add_argument("file", help="CSV, Parquet or Feather file")
    info.add_argument("--symbol", help="symbol to report (default: guessed from the file name)")
    info.add_argument("--timeframe", help="declared timeframe (default: the median bar spacing)")
    info.add_argument("--json", action="store_true", help="print JSON (every gap)")
    return data


def run_data(args: argparse.Namespace) -> int:
    """Run ``sniperbot data ...``; returns the exit status."""
    if args.data_command == "download":
        return _download(args)
    return _info(args)


def _fail(message: str, code: int) -> int:
    print(f"sniperbot: error: {message}", file=sys.stderr)
    return code


def _time_arg(name: str, text: str | None) -> int | None:
    from sniperbot.data.times import TimeParseError, parse_datetime

    if text is None:
        return None
    try:
        return parse_datetime(text)
    except TimeParseError:
        raise ValueError(
            f"{name}: {text!r} is not a date (use e.g. 2025-05-20 or 2025-05-20T12:00)"
        ) from None


def _download(args: argparse.Namespace) -> int:
    from sniperbot.data.download import DownloadError, DownloadProgress, download_ohlcv
    from sniperbot.data.ohlcv import format_ns, parse_timeframe

    try:
        since = _time_arg("--since", args.since)
        until = _time_arg("--until", args.until)
        parse_timeframe(args.timeframe)
    except ValueError as e:
        return _fail(str(e), 2)
    if args.limit is not None and args.limit <= 0:
        return _fail("--limit must be > 0", 2)

    progress_bar: Any = None
    task: Any = None

    def on_progress(p: DownloadProgress) -> None:
        if progress_bar is not None:
            progress_bar.update(
                task,
                completed=p.fraction * 1000,
                description=f"{args.symbol} {format_ns(p.cursor_ns)} {p.bars:,} bars",
            )

    try:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            progress_bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            task = progress_bar.add_task(f"{args.symbol} connecting", total=1000)
            progress_bar.start()
        result = download_ohlcv(
            args.exchange,
            args.symbol,
            args.timeframe,
            args.out,
            since,
            until,
            limit=args.limit,
            api_url=args.api_url,
            progress=on_progress,
            retries=max(0, args.retries),
        )
    except DownloadError as e:
        return _fail(str(e), 1)
    except KeyboardInterrupt:
        return _fail(f"interrupted; run the same command again to resume {args.out}", 130)
    finally:
        if progress_bar is not None:
            progress_bar.stop()
    span = ""
    if result.first_ns is not None and result.last_ns is not None:
        span = f" ({format_ns(result.first_ns)} -> {format_ns(result.last_ns)})"
    resumed = ""
    if result.resumed_after_ns is not None:
        resumed = f", resumed after {format_ns(result.resumed_after_ns)}"
    if result.bars_written == 0 and result.resumed_after_ns is None:
        print(f"no closed {args.timeframe} bars of {args.symbol} in that range; nothing written")
    else:
        print(
            f"{result.path}: {result.bars_written:,} bars written{span}{resumed}; "
            f"{result.requests} requests in {result.elapsed_s:.1f} s"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    from sniperbot.data import DataError, format_ns, load_ohlcv

    try:
        bars = load_ohlcv(args.file, symbol=args.symbol, timeframe=args.timeframe)
    except DataError as e:
        return _fail(str(e), 1)
    gaps = bars.gaps()
    summary = {
        "file": args.file,
        "symbol": bars.symbol,
        "timeframe": bars.timeframe,
        "bars": len(bars),
        "start": format_ns(bars.start_ns),
        "end": format_ns(bars.end_ns),
        "missing_bars": sum(g.missing for g in gaps),
        "gaps": [
            {"start": format_ns(g.start_ns), "end": format_ns(g.end_ns), "missing": g.missing} for g in gaps
        ],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"{args.file}: {bars.symbol or '?'} {bars.timeframe}, {len(bars):,} bars, "
        f"{summary['start']} -> {summary['end']}"
    )
    print(f"{len(gaps)} gaps, {summary['missing_bars']} missing bars")
    for gap in gaps[:20]:
        print(f"  {gap}")
    if len(gaps) > 20:
        print(f"  ... {len(gaps) - 20} more (--json lists all)")
    return 0


# -- backtest and optimize ----------------------------------------------------------------


def speed_up_numpy() -> None:
    """Keep freed memory at the top of the heap (glibc M_TOP_PAD = 64 MiB).

    Without it every large numpy temporary is a fresh mmap/brk round trip to the
    kernel; with it they are reused, which makes array code several times faster.
    """
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(-2, 64 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


def _add_market_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``backtest`` and ``optimize``: data, strategy, costs, sizing, risk."""
    parser.add_argument("--data", required=True, metavar="FILE", help="OHLCV file: CSV, Parquet or Feather")
    parser.add_argument("--strategy", required=True, metavar="NAME", help="strategy name, e.g. sma_cross")
    parser.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="strategy parameter (repeatable)"
    )
    parser.add_argument(
        "--mode", choices=("long", "long-short"), help="long-only or long-short (parameter mode)"
    )
    parser.add_argument("--symbol", help="symbol of the data (default: guessed from the file name)")
    parser.add_argument("--timeframe", help="bar length, e.g. 1m (default: the median bar spacing)")
    costs = parser.add_argument_group("costs and execution")
    costs.add_argument("--cash", type=float, default=100_000.0, help="starting equity (default: %(default)s)")
    costs.add_argument(
        "--fee-bps",
        type=float,
        default=10.0,
        help="taker fee, bps of each fill's notional (default: %(default)s)",
    )
    costs.add_argument(
        "--maker-fee-bps", type=float, help="maker fee for resting limit fills (default: --fee-bps)"
    )
    costs.add_argument(
        "--slippage-bps", type=float, default=0.0, help="taker fills this much worse (default: %(default)s)"
    )
    costs.add_argument(
        "--latency-bars", type=int, default=0, help="orders reach the venue this many bars late (default: 0)"
    )
    costs.add_argument(
        "--latency-ms", type=float, default=0.0, help="orders reach the venue this late (default: 0)"
    )
    costs.add_argument("--stop-loss-pct", type=float, help="stop-loss this far from each position's entry")
    costs.add_argument(
        "--take-profit-pct", type=float, help="take-profit this far from each position's entry"
    )
    costs.add_argument(
        "--sizer",
        default="fraction:0.9999",
        help="fraction:F | fixed:QTY | voltarget:VOL:LOOKBACK[:MAX_LEVERAGE] (default: %(default)s)",
    )
    costs.add_argument(
        "--size-at",
        choices=("fill", "signal"),
        default="fill",
        help="size market orders at the fill price (default) or at the signal's close (as live)",
    )
    costs.add_argument("--max-position", type=float, help="risk guard: largest absolute position")
    costs.add_argument("--max-order-notional", type=float, help="risk guard: largest order notional")
    costs.add_argument(
        "--path",
        choices=("auto", "vectorised", "per-bar"),
        default="auto",
        help="vectorised (from target arrays) or per-bar (on_bar callbacks); same trades (default: auto)",
    )


def add_backtest_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``backtest`` to the subparsers of the main ``sniperbot`` parser."""
    parser = subparsers.add_parser(
        "backtest",
        help="backtest a strategy on an OHLCV file",
        description=(
            "Backtest a strategy on bars: signals on each bar's close, market orders at the next "
            "bar's open plus slippage, fees on each fill's notional, sizing and risk through the "
            "live node's sizer and risk guard. Defaults are the reference convention (99.99%% of "
            "equity per position, an open position closed at the last close)."
        ),
    )
    _add_market_options(parser)
    parser.add_argument(
        "--signals",
        metavar="FILE",
        help=(
            "recorded signals (JSON lines, one Signal per line) for a strategy that reads them "
            "(default: <data>.signals.jsonl when it exists)"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--report", metavar="OUT.html", help="write the self-contained HTML report")
    return parser


def _signals(args: argparse.Namespace, cls: Any) -> tuple[str | None, list[Any]]:
    """The signal file of a backtest and its signals: ``--signals``, else the one beside the candles.

    Decision: the file beside the candles (``<data>.signals.jsonl``) is read only for a strategy that
    declares signals; a strategy that reads signals but has none is told so on stderr (it will decide
    as if no analyser had anything to say: no entries that need a signal).
    """
    from sniperbot.analytics.signals import beside, read_signals

    path = args.signals
    if path is None and cls.uses_signals():
        default = beside(args.data)
        path = str(default) if default.exists() else None
        if path is None:
            label = cls.name or cls.__name__
            print(f"warning: {label} reads signals but there is no {default}", file=sys.stderr)
    if path is None:
        return None, []
    return path, read_signals(path)


def add_lookahead_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``check-lookahead`` to the subparsers of the main ``sniperbot`` parser."""
    parser = subparsers.add_parser(
        "check-lookahead",
        help="prove a strategy does not peek at future bars (exit 0: none found, 1: found)",
        description=(
            "Decide on the bars up to t only, at many cut points t, and compare with the decisions "
            "made on the whole file: a decision that changes when later bars are removed used them. "
            "Both the streaming and the vectorised form are checked."
        ),
    )
    parser.add_argument("--data", required=True, metavar="FILE", help="OHLCV file: CSV, Parquet or Feather")
    parser.add_argument(
        "--strategy", required=True, metavar="REF", help="name, module:Class or file.py:Class"
    )
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="strategy parameter")
    parser.add_argument("--mode", choices=("long", "long-short"), help="parameter mode")
    parser.add_argument("--symbol", help="symbol of the data (default: guessed from the file name)")
    parser.add_argument("--timeframe", help="bar length, e.g. 1m (default: the median bar spacing)")
    parser.add_argument("--cuts", type=int, default=50, help="cut points, vectorised form (default: 50)")
    parser.add_argument(
        "--streaming-cuts", type=int, default=8, help="cut points, streaming form (default: 8)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def run_check_lookahead(args: argparse.Namespace) -> int:
    """Run ``sniperbot check-lookahead``: 0 no look-ahead found, 1 found, 2 bad input."""
    import msgspec

    from sniperbot.backtest.lookahead import check_lookahead

    try:
        cls, params = _strategy_and_params(args)
        bars = _load(args)
        if args.cuts < 1 or args.streaming_cuts < 1:
            raise _Usage("--cuts and --streaming-cuts must be at least 1")
        report = check_lookahead(cls, params, bars, cuts=args.cuts, streaming_cuts=args.streaming_cuts)
    except (_Usage, ValueError) as e:
        return _fail(str(e), 2)
    if args.json:
        print(msgspec.json.encode(report).decode())
    elif report.ok:
        forms = "vectorised and streaming" if report.vectorised else "streaming"
        print(
            f"ok: no look-ahead in {report.bars:,} bars ({forms}; {report.cuts + report.streaming_cuts} cuts)"
        )
    else:
        print(
            f"LOOK-AHEAD: the {report.form} decision at bar {report.first_bad_bar} changes when the bars "
            f"after bar {report.cut} are removed"
        )
    if report.parity_bar is not None:
        print(
            f"warning: streaming and vectorised decisions differ from bar {report.parity_bar}",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def add_optimize_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``optimize`` to the subparsers of the main ``sniperbot`` parser."""
    parser = subparsers.add_parser(
        "optimize",
        help="search a strategy's parameters (grid or TPE), ranked by a metric",
        description=(
            "Backtest every combination of --grid ranges (start:stop:step, stop included; or "
            "v1,v2,...) that the strategy accepts, in parallel, and rank them by --metric; or, with "
            "--search tpe, only --trials of them chosen by Bayesian TPE search (Optuna) in the same "
            "space. --walk-forward K adds in-sample / out-of-sample scores so overfitting shows; "
            "--report writes the best point's HTML report with a heatmap of the metric."
        ),
    )
    _add_market_options(parser)
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="K=START:STOP:STEP",
        help="parameter range (repeatable)",
    )
    parser.add_argument(
        "--constraint", action="append", default=[], metavar="EXPR", help="e.g. fast<slow (repeatable)"
    )
    parser.add_argument("--metric", default="sharpe", help="rank by this metric (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        help="local worker processes (default: all cores); a TPE run is reproducible for a given "
        "--seed and --workers",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="run on Ray: no value or 'auto' finds or starts a cluster, 'local' starts one, "
        "host:port joins one",
    )
    parser.add_argument("--walk-forward", type=int, default=0, metavar="K", help="K rolling IS/OOS folds")
    parser.add_argument(
        "--search",
        choices=("grid", "tpe"),
        default="grid",
        help="grid: every point (default); tpe: Bayesian search of --trials points (Optuna)",
    )
    parser.add_argument(
        "--trials", type=int, default=100, help="--search tpe: distinct points to backtest (default: 100)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="--search tpe: sampler seed; same seed, same trials (default: 0)"
    )
    parser.add_argument(
        "--report", metavar="OUT.html", help="write the best point's HTML report with the metric's heatmap"
    )
    parser.add_argument(
        "--heatmap",
        metavar="A,B",
        help="the report's heatmap over these two parameters (default: the two most important)",
    )
    parser.add_argument(
        "--top", type=int, default=20, help="rows to print (default: %(default)s; --json: all)"
    )
    parser.add_argument("--json", action="store_true", help="print the ranked results as JSON")
    return parser


class _Usage(ValueError):
    """Bad command-line input: exit status 2."""


def _strategy_and_params(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The strategy class and its --param / --mode values, typed; _Usage naming the argument."""
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
    if args.mode is not None:
        if texts.get("mode", args.mode) != args.mode:
            raise _Usage(f"--mode {args.mode} contradicts --param mode={texts['mode']}")
        texts["mode"] = args.mode
    params: dict[str, Any] = {}
    for key, text in texts.items():
        spec = cls.params.get(key)
        if spec is None:
            raise _Usage(f"--param: {cls.name} has no parameter {key!r} (known: {', '.join(cls.params)})")
        try:
            params[key] = spec.parse(key, text)
        except ValueError as e:
            raise _Usage(f"--param: {cls.name}: {e}") from None
    return cls, params


def _config(args: argparse.Namespace) -> Any:
    """The BacktestConfig of the command line; _Usage naming the option."""
    from sniperbot.backtest.config import BacktestConfig

    if args.latency_ms < 0 or args.latency_ms != args.latency_ms:
        raise _Usage(f"--latency-ms must be >= 0, got {args.latency_ms}")
    fields = {
        "cash": args.cash,
        "fee_bps": args.fee_bps,
        "maker_fee_bps": args.maker_fee_bps,
        "slippage_bps": args.slippage_bps,
        "latency_bars": args.latency_bars,
        "latency_ns": round(args.latency_ms * 1e6),
        "stop_loss_pct": args.stop_loss_pct,
        "take_profit_pct": args.take_profit_pct,
        "sizer": args.sizer,
        "size_at": args.size_at,
        "max_position": args.max_position,
        "max_order_notional": args.max_order_notional,
    }
    try:
        return BacktestConfig(**fields)
    except ValueError as e:
        message = str(e)
        name = message.split(" ", 1)[0]
        option = "--" + name.replace("_", "-") if name in fields else "--sizer"
        if name == "latency_ns":
            option = "--latency-ms"
        raise _Usage(f"{option}: {message}") from None


def _load(args: argparse.Namespace) -> Any:
    """The bars of --data; _Usage naming --data if missing or unreadable."""
    from pathlib import Path

    from sniperbot.data import DataError, load_ohlcv

    if not Path(args.data).is_file():
        raise _Usage(f"--data: no such file: {args.data}")
    try:
        bars = load_ohlcv(args.data, symbol=args.symbol, timeframe=args.timeframe)
    except (DataError, ValueError) as e:
        raise _Usage(f"--data: {e}") from None
    if len(bars) == 0:
        raise _Usage(f"--data: {args.data} has no bars")
    return bars


class _Stages:
    """A transient progress display on a terminal's stderr; silent anywhere else."""

    def __init__(self, total: float = 1.0) -> None:
        self.progress: Any = None
        self.task: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.progress.add_task("", total=total)
            self.progress.start()

    def update(self, description: str, completed: float | None = None, total: float | None = None) -> None:
        """Show a stage and how far it is."""
        if self.progress is not None:
            self.progress.update(self.task, description=description, completed=completed, total=total)

    def stop(self) -> None:
        """Remove the display."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def run_backtest(args: argparse.Namespace) -> int:
    """Run ``sniperbot backtest``; returns the exit status (2: bad input)."""
    speed_up_numpy()
    stages = _Stages(total=3)
    try:
        try:
            cls, params = _strategy_and_params(args)
            config = _config(args)
            stages.update(f"loading {args.data}", 0)
            bars = _load(args)
            signal_file, signals = _signals(args, cls)
            from sniperbot.backtest.engine import run_backtest as backtest

            stages.update(f"{cls.name} on {len(bars):,} bars", 1)
            result = backtest(bars, cls, params, config, path=args.path, signals=signals)
        except _Usage as e:
            return _fail(str(e), 2)
        except ValueError as e:
            return _fail(str(e), 2)
        if args.report:
            stages.update(f"writing {args.report}", 2)
            from sniperbot.backtest.report import write_report

            title = f"{result.strategy} " + " ".join(f"{k}={v}" for k, v in result.params.items())
            metrics = {**result.metrics.to_dict(), "elapsed_s": result.elapsed_s}
            try:
                write_report(args.report, bars, result.equity, result.round_trips, metrics, title)
            except OSError as e:
                return _fail(f"--report: cannot write {args.report}: {e.strerror or e}", 2)
    finally:
        stages.stop()
    if args.json:
        out = result.to_dict()
        out.update(data=args.data, symbol=bars.symbol, timeframe=bars.timeframe)
        if signal_file is not None:
            out.update(signals=signal_file, signal_count=len(signals))
        if args.report:
            out["report"] = args.report
        print(json.dumps(out))
        return 0
    _print_backtest(result, bars, args)
    return 0


def _fmt(value: Any, kind: str = "num") -> str:
    """A metric for people: NaN as '-', percentages with a %, money with separators."""
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if kind == "pct":
        return f"{value:,.2f} %"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:,.3f}"


_BACKTEST_ROWS = (
    ("final_equity", "final equity", "money"),
    ("total_return_pct", "total return", "pct"),
    ("cagr_pct", "CAGR", "pct"),
    ("max_drawdown_pct", "max drawdown", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("calmar", "Calmar", "num"),
    ("volatility_pct", "volatility (ann.)", "pct"),
    ("trades", "trades", "int"),
    ("win_rate_pct", "win rate", "pct"),
    ("profit_factor", "profit factor", "num"),
    ("expectancy", "expectancy / trade", "money"),
    ("exposure_pct", "exposure", "pct"),
    ("fees", "fees", "money"),
)


def _print_backtest(result: Any, bars: Any, args: argparse.Namespace) -> None:
    from sniperbot.data import format_ns

    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    print(f"{result.strategy} ({params}) on {bars.symbol or '?'} {bars.timeframe}, {len(bars):,} bars")
    print(f"  {format_ns(bars.start_ns)} -> {format_ns(bars.end_ns)}, {result.path} path")
    values = result.metrics.to_dict()
    for key, label, kind in _BACKTEST_ROWS:
        print(f"  {label:<20} {_fmt(values[key], kind):>16}")
    if result.rejected:
        print(f"  {'rejected orders':<20} {result.rejected:>16,}")
    print(f"  {'elapsed':<20} {result.elapsed_s:>14.3f} s")
    if args.report:
        print(f"report: {args.report}")


def run_optimize(args: argparse.Namespace) -> int:
    """Run ``sniperbot optimize``; returns the exit status (2: bad input, 1: Ray failed)."""
    speed_up_numpy()
    stages = _Stages(total=1)
    try:
        try:
            cls, fixed = _strategy_and_params(args)
            config = _config(args)
            if not args.grid:
                raise _Usage("--grid: give at least one NAME=START:STOP:STEP")
            if args.workers is not None and args.workers < 1:
                raise _Usage(f"--workers must be >= 1, got {args.workers}")
            if args.walk_forward < 0:
                raise _Usage(f"--walk-forward must be >= 0, got {args.walk_forward}")
            from sniperbot.optimize.grid import expand_grid
            from sniperbot.optimize.search import METRICS

            if args.metric not in METRICS:
                raise _Usage(f"--metric: unknown metric {args.metric!r} (known: {', '.join(METRICS)})")
            if args.search == "tpe":
                if args.ray is not None:
                    raise _Usage("--ray: runs --search grid only (TPE runs on local --workers)")
                if args.trials < 1:
                    raise _Usage(f"--trials must be >= 1, got {args.trials}")
                from sniperbot.optimize.tpe import search_space

                axes = {a.name: a.values for a in search_space(cls, args.grid)}
            else:
                axes = expand_grid(cls, args.grid, fixed, args.constraint).axes  # bad specs fail early
            pair = None
            if args.heatmap is not None:
                if not args.report:
                    raise _Usage("--heatmap: needs --report OUT.html")
                from sniperbot.optimize.heatmap import parse_heatmap_option

                pair = parse_heatmap_option(args.heatmap, axes)
            stages.update(f"loading {args.data}", 0)
            bars = _load(args)
            from sniperbot.optimize.ray_backend import RayUnavailable
            from sniperbot.optimize.search import optimize
            from sniperbot.optimize.tpe import OptunaUnavailable

            def progress(done: int, total: int) -> None:
                stages.update(f"{cls.name}: {total:,} backtests", done, total)

            try:
                if args.search == "tpe":
                    from sniperbot.optimize.tpe import optimize_tpe

                    result = optimize_tpe(
                        bars,
                        cls,
                        args.grid,
                        trials=args.trials,
                        seed=args.seed,
                        fixed=fixed,
                        constraints=args.constraint,
                        config=config,
                        metric=args.metric,
                        workers=args.workers,
                        walk_forward=args.walk_forward,
                        path=args.path,
                        progress=progress,
                    )
                else:
                    result = optimize(
                        bars,
                        cls,
                        args.grid,
                        fixed=fixed,
                        constraints=args.constraint,
                        config=config,
                        metric=args.metric,
                        workers=args.workers,
                        ray=args.ray is not None,
                        ray_address=args.ray,
                        walk_forward=args.walk_forward,
                        path=args.path,
                        progress=progress,
                    )
            except RayUnavailable as e:
                return _fail(str(e), 1)
            except OptunaUnavailable as e:
                return _fail(str(e), 1)
            if args.report:
                stages.update(f"writing {args.report}")
                try:
                    _optimize_report(args, bars, cls, config, result, pair)
                except OSError as e:
                    return _fail(f"--report: cannot write {args.report}: {e.strerror or e}", 2)
        except _Usage as e:
            return _fail(str(e), 2)
        except ValueError as e:
            return _fail(str(e), 2)
    finally:
        stages.stop()
    if args.json:
        out = result.to_dict()
        out.update(data=args.data, symbol=bars.symbol, timeframe=bars.timeframe)
        if args.report:
            out["report"] = args.report
        print(json.dumps(out))
        return 0
    _print_optimize(result, args)
    return 0


def _optimize_report(
    args: argparse.Namespace, bars: Any, cls: Any, config: Any, result: Any, pair: tuple[str, str] | None
) -> None:
    """The best point's backtest report, with the metric's heatmap over ``pair`` (default: most important)."""
    from sniperbot.backtest.engine import run_backtest as backtest
    from sniperbot.backtest.report import write_report
    from sniperbot.optimize.heatmap import heatmap

    best = result.best
    params = best["params"] if best is not None else {}
    run = backtest(bars, cls, params, config, path=args.path)
    how = result.search.get("search", "grid")
    if how == "tpe":
        how = f"TPE, {len(result.rows)} trials, seed {result.search['seed']}"
    title = f"{result.strategy} optimisation ({how}), best by {result.metric}: " + " ".join(
        f"{k}={v}" for k, v in params.items()
    )
    metrics = {**run.metrics.to_dict(), "elapsed_s": result.elapsed_s}
    cells = heatmap(result.rows, result.grid.axes, result.metric, pair)
    write_report(args.report, bars, run.equity, run.round_trips, metrics, title, heatmap=cells)


def _print_optimize(result: Any, args: argparse.Namespace) -> None:
    metric = result.metric
    grid = result.grid
    skipped = grid.skipped_invalid + grid.skipped_constraint
    how = ""
    if result.search.get("search") == "tpe":
        how = f" by TPE (seed {result.search['seed']}, {result.search['suggestions']:,} suggestions)"
    print(
        f"{result.strategy}: {len(result.rows):,} of {grid.size:,} grid points backtested{how} "
        f"({skipped:,} skipped as invalid) on {result.bars:,} bars in {result.elapsed_s:.2f} s, "
        f"{result.backend} x{result.workers or '?'}; ranked by {metric}"
    )
    names = list(grid.axes)
    walk = bool(result.walk_forward)
    # Per-point IS/OOS means exist for the grid; TPE's walk-forward searches each fold apart.
    per_point = walk and bool(result.rows) and f"is_{metric}" in result.rows[0]
    header = [*names, metric]
    if per_point:
        header += [f"IS {metric}", f"OOS {metric}"]
    header += ["return %", "max DD %", "trades", "win %"]
    lines = [header]
    for row in result.rows[: max(0, args.top)]:
        cells = [str(row["params"][n]) for n in names]
        cells.append(_fmt(row.get(metric)))
        if per_point:
            cells += [_fmt(row.get(f"is_{metric}")), _fmt(row.get(f"oos_{metric}"))]
        cells += [
            _fmt(row.get("total_return_pct")),
            _fmt(row.get("max_drawdown_pct")),
            _fmt(row.get("trades"), "int"),
            _fmt(row.get("win_rate_pct")),
        ]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  " + "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
    if walk:
        print(f"walk-forward ({len(result.walk_forward)} folds): in-sample winner vs out-of-sample")
        for fold in result.walk_forward:
            params = ", ".join(f"{k}={v}" for k, v in fold["params"].items() if k in names)
            among = fold.get("trials", len(result.rows))  # TPE: the fold's own trials
            print(
                f"  fold {fold['fold']}: {params}  IS {_fmt(fold['in_sample'])}  "
                f"OOS {_fmt(fold['out_of_sample'])} (rank {fold['out_of_sample_rank']} of {among})"
            )
