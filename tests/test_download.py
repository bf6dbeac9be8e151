"""`sniperbot data download` against a local server that speaks Binance's REST format.

The server answers the two endpoints ccxt's binance calls for a public download:
``GET /api/v3/exchangeInfo`` (load_markets; one spot market, BTCUSDT) and
``GET /api/v3/klines`` (fetch_ohlcv), with Binance's parameters (``symbol``,
``interval``, ``startTime``, ``endTime``, ``limit``; default 500, at most 1000) and
Binance's row layout. ccxt's ``urls['api']`` is pointed at it, so the real ccxt code
paths (request building, rate limiter, error mapping, parsing) run.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from sniperbot.cli.research import add_data_parser, run_data
from sniperbot.data import load_csv, parse_datetime
from sniperbot.data.download import (
    DownloadError,
    DownloadProgress,
    create_exchange,
    download_ohlcv,
)

MINUTE_MS = 60_000
START_MS = parse_datetime("2024-01-01") // 1_000_000
INTERVALS_MS = {"1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "1h": 60 * MINUTE_MS}

EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 0,
    "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
    ],
    "exchangeFilters": [],
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01",
                    "maxPrice": "1000000.00",
                    "tickSize": "0.01",
                },
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00", "stepSize": "0.00001"},
                {"filterType": "NOTIONAL", "minNotional": "5.00", "maxNotional": "9000000.00"},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }
    ],
}


def bar_values(open_ms: int) -> tuple[float, float, float, float, float]:
    """Deterministic prices for the bar opening at ``open_ms`` (what the server sends)."""
    i = (open_ms - START_MS) // MINUTE_MS
    base = 40_000 + (i % 997) * 1.25 + (i // 997) * 3.5
    return base, base + 7.5, base - 6.25, base + 0.5, 1 + (i % 13) * 0.125


@dataclass
class FakeBinance:
    """State of the fake venue: its candles, the requests it saw, the failures to inject."""

    first_ms: int = START_MS
    last_ms: int = START_MS + 9_999 * MINUTE_MS  # open time of the newest candle it has
    fail_after: int | None = None  # klines requests served before failing
    fail_times: int = 10**9  # how many klines requests fail once failing starts
    fail_status: int = 500
    fail_body: str = "<html>Internal Server Error</html>"
    requests: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    _klines_served: int = 0
    _failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def klines_requests(self) -> list[dict[str, str]]:
        with self.lock:
            return [q for _, path, q in self.requests if path == "/api/v3/klines"]

    def klines_times(self) -> list[float]:
        with self.lock:
            return [t for t, path, _ in self.requests if path == "/api/v3/klines"]

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((time.monotonic(), path, query))
        if path == "/api/v3/exchangeInfo":
            return 200, {**EXCHANGE_INFO, "serverTime": int(time.time() * 1000)}
        if path != "/api/v3/klines":
            return 404, {"code": -1, "msg": f"no such endpoint {path}"}
        with self.lock:
            failing = self.fail_after is not None and self._klines_served >= self.fail_after
            if failing and self._failed < self.fail_times:
                self._failed += 1
                return self.fail_status, self.fail_body
            self._klines_served += 1
        if query.get("symbol") != "BTCUSDT":
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        step = INTERVALS_MS.get(query.get("interval", ""))
        if step is None:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        limit = int(query.get("limit", 500))
        if not 1 <= limit <= 1000:
            return 400, {"code": -1130, "msg": "Invalid data sent for a parameter."}
        start = int(query.get("startTime", self.first_ms))
        end = int(query.get("endTime", self.last_ms))
        first = max(start, self.first_ms)
        first += -(first - self.first_ms) % step  # the first candle opening at or after startTime
        rows = []
        t = first
        while t <= min(end, self.last_ms) and len(rows) < limit:
            o, h, low, c, v = bar_values(t)
            prices = [f"{o:.8f}", f"{h:.8f}", f"{low:.8f}", f"{c:.8f}", f"{v:.8f}"]
            extra = [f"{c * v:.8f}", 42, f"{v / 2:.8f}", f"{c * v / 2:.8f}", "0"]
            rows.append([t, *prices, t + step - 1, *extra])
            t += step
        return 200, rows


@pytest.fixture
def venue() -> Iterator[tuple[FakeBinance, str]]:
    fake = FakeBinance()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            status, body = fake.handle(parts.path, query)
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def binance(url: str, rate_limit_ms: float = 1.0) -> Any:
    exchange = create_exchange("binance", api_url=url, spot_only=True)
    exchange.rateLimit = rate_limit_ms  # fast tests; the rate-limit test sets its own
    return exchange


def expected_rows(first_ms: int, count: int) -> np.ndarray:
    return np.array([(t, *bar_values(t)) for t in range(first_ms, first_ms + count * MINUTE_MS, MINUTE_MS)])


def assert_file_holds(path: Path, first_ms: int, count: int) -> None:
    bars = load_csv(path)
    assert len(bars) == count
    assert bars.timeframe == "1m"
    assert bars.gaps() == []
    want = expected_rows(first_ms, count)
    np.testing.assert_array_equal(bars.time_ns, want[:, 0].astype(np.int64) * 1_000_000)
    for k, column in enumerate((bars.open, bars.high, bars.low, bars.close, bars.volume), start=1):
        np.testing.assert_array_equal(column, want[:, k])


def test_only_the_endpoints_ccxt_needs_are_called(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    fake, url = venue
    out = tmp_path / "btc.csv"
    result = download_ohlcv(
        binance(url), "BTC/USDT", "1m", out, START_MS * 1_000_000, (START_MS + 10 * MINUTE_MS) * 1_000_000
    )
    assert result.bars_written == 10
    assert {path for _, path, _ in fake.requests} == {"/api/v3/exchangeInfo", "/api/v3/klines"}
    assert out.read_text().splitlines()[:2] == [
        "date,open,high,low,close,volume",
        "2024-01-01 00:00:00+00:00,40000.0,40007.5,39993.75,40000.5,1.0",
    ]


def test_paginates_until_the_end(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    fake, url = venue
    out = tmp_path / "btc.csv"
    seen: list[DownloadProgress] = []
    result = download_ohlcv(
        binance(url),
        "BTC/USDT",
        "1m",
        out,
        since_ns=START_MS * 1_000_000,
        until_ns=(START_MS + 2_500 * MINUTE_MS) * 1_000_000,
        progress=seen.append,
    )
    # 2,500 bars in pages of 1,000 (Binance's maximum): three requests, each starting
    # one minute after the last bar of the page before.
    assert [int(q["startTime"]) for q in fake.klines_requests()] == [
        START_MS,
        START_MS + 1_000 * MINUTE_MS,
        START_MS + 2_000 * MINUTE_MS,
    ]
    assert all(q["limit"] == "1000" and q["interval"] == "1m" for q in fake.klines_requests())
    assert result.bars_written == 2_500 and result.requests == 3
    assert result.first_ns == START_MS * 1_000_000
    assert result.last_ns == (START_MS + 2_499 * MINUTE_MS) * 1_000_000
    assert_file_holds(out, START_MS, 2_500)
    assert [p.bars for p in seen] == [1_000, 2_000, 2_500]
    assert seen[-1].fraction == 1.0


def test_stops_when_the_exchange_has_no_more(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    fake, url = venue
    fake.last_ms = START_MS + 1_199 * MINUTE_MS
    out = tmp_path / "btc.csv"
    result = download_ohlcv(binance(url), "BTC/USDT", "1m", out, since_ns=START_MS * 1_000_000)
    assert result.bars_written == 1_200
    assert result.requests == 3  # 1000, 200, then an empty page
    assert_file_holds(out, START_MS, 1_200)


def test_a_candle_still_forming_is_not_written(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    fake, url = venue
    now_ms = int(time.time() * 1000)
    fake.first_ms = now_ms - now_ms % MINUTE_MS - 30 * MINUTE_MS
    fake.last_ms = now_ms - now_ms % MINUTE_MS  # the current minute's candle, still open
    out = tmp_path / "btc.csv"
    result = download_ohlcv(binance(url), "BTC/USDT", "1m", out, since_ns=fake.first_ms * 1_000_000)
    bars = load_csv(out)
    assert bars.end_ns + 60 * 10**9 <= time.time_ns()
    assert result.bars_written == len(bars) in (30, 31)  # 31 if the minute turned meanwhile


def test_resume_after_an_interrupted_download(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    fake, url = venue
    out = tmp_path / "btc.csv"
    since, until = START_MS * 1_000_000, (START_MS + 3_500 * MINUTE_MS) * 1_000_000
    fake.fail_after = 2  # the connection to the venue dies after two pages
    with pytest.raises(DownloadError):
        download_ohlcv(binance(url), "BTC/USDT", "1m", out, since, until, retries=1, retry_delay_s=0.01)
    assert_file_holds(out, START_MS, 2_000)
    # A crash in the middle of writing a page leaves a torn last line.
    with open(out, "a") as f:
        f.write("2024-01-02 09:20:00+00:00,40001.0,400")
    fake.fail_after = None
    fake.requests.clear()
    result = download_ohlcv(binance(url), "BTC/USDT", "1m", out, since, until)
    assert result.resumed_after_ns == (START_MS + 1_999 * MINUTE_MS) * 1_000_000
    assert [int(q["startTime"]) for q in fake.klines_requests()] == [
        START_MS + 2_000 * MINUTE_MS,
        START_MS + 3_000 * MINUTE_MS,
    ]
    assert result.bars_written == 1_500
    assert_file_holds(out, START_MS, 3_500)  # no duplicate, no hole
    # Resuming a complete file asks for nothing more than what is missing.
    fake.requests.clear()
    again = download_ohlcv(binance(url), "BTC/USDT", "1m", out, since, until)
    assert again.bars_written == 0 and fake.klines_requests() == []
    assert_file_holds(out, START_MS, 3_500)


def test_rate_limit_is_honoured(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    fake, url = venue
    exchange = binance(url, rate_limit_ms=250.0)
    # ccxt weighs Binance's spot klines at 0.4, so requests are 0.4 * 250 = 100 ms apart.
    cost = exchange.calculate_rate_limiter_cost(["public"], "GET", "klines", {"limit": 100}, {"cost": 0.4})
    gap_s = exchange.rateLimit * cost / 1000
    result = download_ohlcv(
        exchange,
        "BTC/USDT",
        "1m",
        tmp_path / "btc.csv",
        START_MS * 1_000_000,
        (START_MS + 500 * MINUTE_MS) * 1_000_000,
        limit=100,
    )
    assert result.requests == 5
    times = fake.klines_times()
    spacing = np.diff(times)
    assert spacing.min() >= gap_s * 0.9, spacing
    assert times[-1] - times[0] >= 4 * gap_s * 0.9


def test_a_server_error_is_retried_then_surfaced(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    fake, url = venue
    fake.fail_after = 0
    out = tmp_path / "btc.csv"
    with pytest.raises(DownloadError) as error:
        download_ohlcv(
            binance(url), "BTC/USDT", "1m", out, START_MS * 1_000_000, retries=2, retry_delay_s=0.01
        )
    message = str(error.value)
    assert "binance BTC/USDT 1m" in message
    assert "2024-01-01 00:00" in message
    assert "failed after 3 attempts" in message
    assert "ExchangeNotAvailable" in message and "500" in message
    assert len(fake.klines_requests()) == 3
    assert not out.exists()


def test_a_transient_error_is_retried(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    fake, url = venue
    fake.fail_after, fake.fail_times, fake.fail_status = 1, 1, 429
    fake.fail_body = json.dumps({"code": -1003, "msg": "Too many requests."})
    out = tmp_path / "btc.csv"
    result = download_ohlcv(
        binance(url),
        "BTC/USDT",
        "1m",
        out,
        START_MS * 1_000_000,
        (START_MS + 1_500 * MINUTE_MS) * 1_000_000,
        retry_delay_s=0.01,
    )
    assert result.bars_written == 1_500 and result.requests == 2
    assert len(fake.klines_requests()) == 3
    assert_file_holds(out, START_MS, 1_500)


def test_an_exchange_error_is_not_retried(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    fake, url = venue
    fake.fail_after, fake.fail_status = 0, 400
    fake.fail_body = json.dumps({"code": -1121, "msg": "Invalid symbol."})
    with pytest.raises(DownloadError, match=r"binance BTC/USDT 1m: .*failed: BadSymbol: .*Invalid symbol"):
        download_ohlcv(binance(url), "BTC/USDT", "1m", tmp_path / "x.csv", START_MS * 1_000_000)
    assert len(fake.klines_requests()) == 1


def test_unknown_market_and_timeframe(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    _, url = venue
    with pytest.raises(DownloadError, match=r"no market 'BTC/USDC'"):
        download_ohlcv(binance(url), "BTC/USDC", "1m", tmp_path / "x.csv", START_MS * 1_000_000)
    with pytest.raises(DownloadError, match=r"has no 7m candles"):
        download_ohlcv(binance(url), "BTC/USDT", "7m", tmp_path / "x.csv", START_MS * 1_000_000)
    with pytest.raises(DownloadError, match=r"give --since"):
        download_ohlcv(binance(url), "BTC/USDT", "1m", tmp_path / "x.csv")


def test_an_empty_or_header_only_file_is_filled(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    _, url = venue
    until = (START_MS + 5 * MINUTE_MS) * 1_000_000
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    download_ohlcv(binance(url), "BTC/USDT", "1m", empty, START_MS * 1_000_000, until)
    assert_file_holds(empty, START_MS, 5)
    header_only = tmp_path / "header.csv"
    header_only.write_text("date,open,high,low,close,volume\n")
    download_ohlcv(binance(url), "BTC/USDT", "1m", header_only, START_MS * 1_000_000, until)
    assert_file_holds(header_only, START_MS, 5)


def test_refuses_to_append_to_a_foreign_file(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    _, url = venue
    out = tmp_path / "klines.csv"
    out.write_text("1704067200000,1,2,0.5,1.5,10,1704067259999,0,0,0,0,0\n")
    with pytest.raises(DownloadError, match="was not written by 'sniperbot data download'"):
        download_ohlcv(binance(url), "BTC/USDT", "1m", out, START_MS * 1_000_000)


def test_resume_refuses_another_timeframe(venue: tuple[FakeBinance, str], tmp_path: Path) -> None:
    _, url = venue
    out = tmp_path / "btc.csv"
    download_ohlcv(
        binance(url), "BTC/USDT", "1m", out, START_MS * 1_000_000, (START_MS + 5 * MINUTE_MS) * 1_000_000
    )
    with pytest.raises(DownloadError, match="holds 1m bars, not 5m"):
        download_ohlcv(binance(url), "BTC/USDT", "5m", out, START_MS * 1_000_000)


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sniperbot")
    add_data_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_download_and_info(
    venue: tuple[FakeBinance, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = venue
    out = tmp_path / "btc.csv"
    argv = ["data", "download", "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m"]
    argv += ["--since", "2024-01-01", "--until", "2024-01-01T20:00", "--out", str(out), "--api-url", url]
    assert run_data(_cli(argv)) == 0
    printed = capsys.readouterr().out
    assert "1,200 bars written" in printed and str(out) in printed
    assert_file_holds(out, START_MS, 1_200)
    # Again with a later --until: resumes after the last bar.
    argv[argv.index("2024-01-01T20:00")] = "2024-01-01T21:00"
    assert run_data(_cli(argv)) == 0
    assert "resumed after 2024-01-01 19:59" in capsys.readouterr().out
    assert_file_holds(out, START_MS, 1_260)
    assert run_data(_cli(["data", "info", str(out), "--json"])) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bars"] == 1_260 and info["timeframe"] == "1m" and info["symbol"] == ""
    assert info["gaps"] == [] and info["start"] == "2024-01-01 00:00"


def test_cli_reports_errors_with_exit_status_1(
    venue: tuple[FakeBinance, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = venue
    fake.fail_after = 0
    argv = ["data", "download", "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m"]
    argv += ["--since", "2024-01-01", "--out", str(tmp_path / "x.csv"), "--api-url", url, "--retries", "0"]
    assert run_data(_cli(argv)) == 1
    err = capsys.readouterr().err
    assert err.startswith("sniperbot: error: binance BTC/USDT 1m") and "ExchangeNotAvailable" in err
    assert run_data(_cli([*argv[:-6], "--since", "yesterday", "--out", "x.csv"])) == 2
    assert "--since" in capsys.readouterr().err
