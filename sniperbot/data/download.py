"""Download OHLCV candles from an exchange through ccxt, with pagination and resume.

``download_ohlcv`` asks the exchange for pages of candles (``fetch_ohlcv`` with
``since`` and ``limit``), each page starting one timeframe after the last bar already
written, until ``until`` (exclusive) or now. ccxt's own rate limiter
(``enableRateLimit``) spaces the requests by the exchange's declared weights. Network
failures and 5xx/429 answers are retried with exponential backoff; other exchange errors
(unknown symbol, bad parameters) stop at once. Every failure is raised as
:class:`DownloadError` naming the exchange, symbol, timeframe and the time being fetched.

The output is a CSV in sniperbot's layout (:data:`~sniperbot.data.loaders.CSV_HEADER`:
``date,open,high,low,close,volume``, ISO UTC open times). A new file is created
atomically (temporary file + rename) holding the header and the first page; later pages
are appended as whole lines and flushed to disk page by page. If the file already exists
the download **resumes** after its last bar (``since`` then only applies to new files):
a torn last line from a crash is cut off first, so an interrupted download continues
with no duplicate and no hole. Only closed candles are written: a candle still forming
(its close time after now) would otherwise be frozen in the file with partial values.

ccxt is imported only when a download runs.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from sniperbot.data.loaders import CSV_HEADER, format_csv_rows, load_csv
from sniperbot.data.ohlcv import DataError, format_ns, parse_timeframe

NS_PER_MS = 1_000_000


class DownloadError(RuntimeError):
    """A download that cannot go on; the message says what was being fetched and why."""


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """Where a download is: called back after every page written."""

    bars: int  # bars written by this run so far
    requests: int
    cursor_ns: int  # open time of the next bar wanted
    start_ns: int  # where this run started
    end_ns: int  # where it stops (exclusive)

    @property
    def fraction(self) -> float:
        """Share of the time span covered, 0..1."""
        span = self.end_ns - self.start_ns
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.cursor_ns - self.start_ns) / span))


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """What a download did."""

    path: Path
    bars_written: int
    requests: int
    first_ns: int | None  # first bar written by this run
    last_ns: int | None  # last bar in the file after this run
    resumed_after_ns: int | None  # last bar that was already in the file, if resuming
    elapsed_s: float


def point_exchange_at(exchange: Any, base_url: str) -> None:
    """Send every REST call of a ccxt exchange to ``base_url`` (keeping each URL's path).

    For mirrors and for tests against a local server that speaks the exchange's format,
    e.g. ``http://127.0.0.1:8080`` makes ``https://api.binance.com/api/v3`` become
    ``http://127.0.0.1:8080/api/v3``.
    """
    base = base_url.rstrip("/")

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: rewrite(value) for key, value in node.items()}
        if isinstance(node, str) and node.startswith(("https://", "http://")):
            return base + urlsplit(node).path
        return node

    exchange.urls["api"] = rewrite(exchange.urls["api"])


def create_exchange(exchange_id: str, *, api_url: str | None = None, spot_only: bool = False) -> Any:
    """A public (no keys) ccxt exchange with rate limiting on, optionally pointed at ``api_url``."""
    try:
        import ccxt
    except ImportError:
        raise DownloadError(
            "downloading candles needs ccxt, which is not installed: pip install ccxt"
        ) from None
    factory = getattr(ccxt, exchange_id, None)
    if exchange_id not in ccxt.exchanges or factory is None:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise DownloadError(f"unknown exchange {exchange_id!r}{hint}")
    config: dict[str, Any] = {"enableRateLimit": True}
    if spot_only and exchange_id.startswith("binance"):
        # Otherwise load_markets also fetches the futures exchangeInfo of fapi and dapi.
        config["options"] = {"fetchMarkets": {"types": ["spot"]}}
    exchange = factory(config)
    if api_url:
        point_exchange_at(exchange, api_url)
    return exchange


def _repair_tail(path: Path) -> None:
    """Cut a torn last line (a crash mid-write) so appending continues on a line boundary."""
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(max(0, size - 65536))
        tail = f.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        f.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)


def _existing_last_bar(path: Path, timeframe: str) -> int | None:
    """Open time of the last bar of a file being resumed (None if it has only a header)."""
    _repair_tail(path)
    with open(path, encoding="utf-8", newline="") as f:
        header = f.readline()
    if header == "":
        return None
    if header != CSV_HEADER:
        raise DownloadError(
            f"{path} exists and was not written by 'sniperbot data download' (its first line is "
            f"{header.strip()!r}); choose another --out"
        )
    if path.read_bytes().count(b"\n") <= 1:
        return None
    try:
        existing = load_csv(path)
    except DataError as e:
        raise DownloadError(f"cannot resume: {e}") from None
    if len(existing) > 1 and parse_timeframe(existing.timeframe) != parse_timeframe(timeframe):
        raise DownloadError(f"cannot resume: {path} holds {existing.timeframe} bars, not {timeframe}")
    return existing.end_ns


def _append_page(path: Path, text: str, create: bool) -> None:
    if create:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(CSV_HEADER + text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fetch_page(
    exchange: Any,
    symbol: str,
    timeframe: str,
    since_ms: int,
    limit: int | None,
    retries: int,
    retry_delay_s: float,
) -> list[list[Any]]:
    import ccxt

    attempt = 0
    while True:
        try:
            return exchange.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=limit)
        except ccxt.NetworkError as e:  # timeouts, 5xx, 429/418: worth another try
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"{exchange.id} {symbol} {timeframe}: fetching bars from "
                    f"{format_ns(since_ms * NS_PER_MS)} failed after {attempt} attempts: "
                    f"{type(e).__name__}: {e}"
                ) from e
            time.sleep(retry_delay_s * 2 ** (attempt - 1))
        except ccxt.BaseError as e:
            raise DownloadError(
                f"{exchange.id} {symbol} {timeframe}: fetching bars from {format_ns(since_ms * NS_PER_MS)} "
                f"failed: {type(e).__name__}: {e}"
            ) from e


def download_ohlcv(
    exchange: str | Any,
    symbol: str,
    timeframe: str,
    out: str | os.PathLike[str],
    since_ns: int | None = None,
    until_ns: int | None = None,
    *,
    limit: int | None = None,
    api_url: str | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    retries: int = 3,
    retry_delay_s: float = 1.0,
) -> DownloadResult:
    """Fetch closed candles opening in ``[since_ns, until_ns)`` into the CSV ``out``.

    ``exchange`` is a ccxt id (``"binance"``) or a ready ccxt exchange object. If
    ``out`` exists, the download resumes after its last bar. ``until_ns`` defaults to
    now. ``limit`` is the page size asked for (default: 1000 on Binance, its maximum;
    the exchange's own default elsewhere). If no bar falls in the range, no file is
    created.
    """
    import ccxt

    started = time.monotonic()
    path = Path(out)
    step_ns = parse_timeframe(timeframe)
    if isinstance(exchange, str):
        exchange = create_exchange(exchange, api_url=api_url, spot_only=":" not in symbol)
    elif api_url:
        point_exchange_at(exchange, api_url)
    if exchange.timeframes and timeframe not in exchange.timeframes:
        raise DownloadError(
            f"{exchange.id} has no {timeframe} candles; it offers {', '.join(exchange.timeframes)}"
        )
    try:
        exchange.load_markets()
    except ccxt.BaseError as e:
        raise DownloadError(f"{exchange.id}: loading markets failed: {type(e).__name__}: {e}") from e
    if symbol not in exchange.markets:
        close = difflib.get_close_matches(symbol, list(exchange.markets), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise DownloadError(f"{exchange.id} has no market {symbol!r}{hint}")

    resumed_after = _existing_last_bar(path, timeframe) if path.exists() else None
    # An empty file (say, cut to nothing by _repair_tail) is rewritten with its header.
    create = not path.exists() or path.stat().st_size == 0
    if resumed_after is not None:
        cursor = resumed_after + step_ns
    elif since_ns is not None:
        cursor = since_ns
    else:
        raise DownloadError(f"{path} does not exist yet: give --since to say where the download starts")
    if limit is None and exchange.id in ("binance", "binanceus"):
        limit = 1000  # ccxt asks for 500 by default; 1000 halves the requests
    now_ns = exchange.milliseconds() * NS_PER_MS
    end = now_ns if until_ns is None else min(until_ns, now_ns)
    start = cursor
    bars = requests = 0
    first: int | None = None
    last = resumed_after
    # Stop when the next bar would open at or after the end, or would still be forming.
    while cursor < end and cursor + step_ns <= now_ns:
        rows = _fetch_page(exchange, symbol, timeframe, cursor // NS_PER_MS, limit, retries, retry_delay_s)
        requests += 1
        if not rows:
            break  # nothing more on the exchange
        stamps = np.array([row[0] for row in rows], dtype=np.int64) * NS_PER_MS
        order = np.argsort(stamps, kind="stable")
        keep: list[int] = []
        previous = cursor - 1
        for i in order.tolist():
            t = int(stamps[i])
            # Drop what is before the cursor (already written), repeated, past the end,
            # or not closed yet.
            if previous < t < end and t + step_ns <= now_ns:
                keep.append(i)
                previous = t
        if not keep:
            if int(stamps.max()) < cursor:
                raise DownloadError(
                    f"{exchange.id} {symbol} {timeframe}: asked for bars from {format_ns(cursor)} but got "
                    f"only earlier ones (up to {format_ns(int(stamps.max()))})"
                )
            break
        page = [rows[i] for i in keep]
        columns = [np.array([row[k] for row in page], dtype=np.float64) for k in range(1, 6)]
        page_times = stamps[keep]
        _append_page(path, format_csv_rows(page_times, *columns), create)
        create = False
        bars += len(page)
        first = int(page_times[0]) if first is None else first
        last = int(page_times[-1])
        cursor = last + step_ns
        if progress is not None:
            progress(DownloadProgress(bars, requests, cursor, start, end))
    return DownloadResult(path, bars, requests, first, last, resumed_after, time.monotonic() - started)
