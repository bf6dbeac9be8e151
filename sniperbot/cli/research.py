"""Research subcommands of the ``sniperbot`` command: ``data download`` and ``data info``.

``add_data_parser(subparsers)`` adds ``data`` to the main parser; ``run_data(args)``
runs it and returns the exit status (0 success; 1 the download or the file failed;
2 bad usage, for example an unreadable date).
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
