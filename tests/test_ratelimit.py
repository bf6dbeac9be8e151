"""Rate limits shared across the node: real processes, the real ccxt Binance client, a weight-counting server.

The server below counts request weight per clock-aligned window the way Binance does
(``X-MBX-USED-WEIGHT-<n>s`` on every answer, 429 once the limit is broken) and can be
told to answer the next request with a 429 or a 418 ban. Worker processes (this file
run as a script) each drive a ``ccxt.binance`` limited by one ``SharedLimiter`` in a
shared run dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
VENUE, KEY = "binance", "main"
# The server's weight per path (Binance's for these endpoints; ccxt's cost is weight x 0.2).
WEIGHTS = {"/api/v3/time": 1, "/api/v3/ping": 1, "/api/v3/exchangeInfo": 20, "/api/v3/order": 1}


# -- the local exchange -------------------------------------------------------------------------


class WeightServer:
    """Counts weight per window of ``window`` s; answers 429 past ``limit``; scripted 429/418 on demand."""

    def __init__(self, limit: int, window: float, external: int = 0, report_weight: bool = True) -> None:
        self.limit, self.window, self.external = limit, window, external
        self.report_weight = report_weight
        tag = f"{int(window // 60)}M" if window % 60 == 0 else f"{int(window)}S"
        self.weight_header, self.orders_header = f"X-MBX-USED-WEIGHT-{tag}", f"X-MBX-ORDER-COUNT-{tag}"
        self.lock = threading.Lock()
        self.used: dict[int, int] = {}
        self.orders: dict[int, int] = {}
        self.log: list[tuple[float, str, str, int]] = []  # arrival, worker, path, status answered
        self.violations: list[tuple[int, int]] = []  # (window, weight) above the limit
        self.armed: list[tuple[int, float]] = []
        self.faults: list[tuple[float, int]] = []  # when a scripted 429/418 was answered
        self.body: str | None = None  # answer 200 with this body (exchanges that put errors in the body)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, method: str, path: str, worker: str) -> tuple[int, dict[str, str], bytes]:
        now = time.time()
        w = int(now // self.window)
        with self.lock:
            used = self.used.get(w, self.external) + WEIGHTS.get(path, 1)
            self.used[w] = used
            headers = {self.weight_header: str(used)} if self.report_weight else {}
            if method == "POST" and path == "/api/v3/order":
                self.orders[w] = self.orders.get(w, 0) + 1
                headers[self.orders_header] = str(self.orders[w])
            if self.armed:
                status, retry_after = self.armed.pop(0)
                self.faults.append((now, status))
                headers["Retry-After"] = str(int(retry_after))
                until_ms = int((now + retry_after) * 1000)
                msg = f"Way too much request weight used; IP banned until {until_ms}."
                body = json.dumps({"code": -1003, "msg": msg if status == 418 else "Too many requests."})
            elif used > self.limit:
                self.violations.append((w, used))
                status = 429
                headers["Retry-After"] = str(max(1, int((w + 1) * self.window - now)))
                body = json.dumps({"code": -1003, "msg": "Too much request weight used."})
            else:
                status = 200
                body = json.dumps({"serverTime": int(now * 1000)} if path.endswith("/time") else {})
                body = self.body or body
            self.log.append((now, worker, path, status))
        return status, headers, body.encode()

    def arrivals(self, start: float, end: float) -> list[tuple[float, str, str, int]]:
        with self.lock:
            return [r for r in self.log if start <= r[0] < end]

    def max_used(self) -> int:
        with self.lock:
            return max(self.used.values(), default=0)


def _handler(server: WeightServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, headers, body = server.answer(
                self.command, urlsplit(self.path).path, self.headers.get("X-Worker", "?")
            )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _serve  # noqa: N815 - http.server names

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def server_factory() -> Iterator[Any]:
    servers: list[WeightServer] = []

    def make(limit: int, window: float, external: int = 0, report_weight: bool = True) -> WeightServer:
        s = WeightServer(limit, window, external, report_weight)
        s.thread.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.httpd.shutdown()
        s.httpd.server_close()


# -- ccxt client (used by the workers and in-process) -------------------------------------------


def _client(
    ccxt_class: type, limiter: Any, url: str, worker: str, config: dict[str, Any] | None = None
) -> Any:
    from sniperbot.venues.ccxt.ratelimit import limited_exchange

    cfg = {
        "timeout": 30000,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
        **(config or {}),
    }
    ex = limited_exchange(ccxt_class, limiter)(cfg)
    for k, v in list(ex.urls["api"].items()):
        if isinstance(v, str) and v.startswith("https://"):
            ex.urls["api"][k] = url + urlsplit(v).path
    ex.headers = {"X-Worker": worker}
    return ex


def _worker(spec: dict[str, Any]) -> None:
    """One actor-like process: ``calls`` REST calls through a limited ccxt.binance, events to ``out``."""
    import ccxt

    from sniperbot.venues.ccxt.ratelimit import SharedLimiter, VenueBanned, binance_limits

    with open(spec["out"], "a", buffering=1) as out:

        def emit(**kw: Any) -> None:
            out.write(json.dumps({"t": time.time(), **kw}) + "\n")

        limiter = SharedLimiter(
            spec["run_dir"],
            VENUE,
            KEY,
            binance_limits(**spec["limits"]),
            on_block=lambda b: emit(ev="on_block", status=b.status, reason=b.reason),
        )
        ex = _client(ccxt.binance, limiter, spec["url"], spec["name"])
        emit(ev="start")
        done = 0
        heavy = spec.get("heavy_every", 0)
        stop = spec.get("stop_file")
        while done < spec["calls"] and not (stop and os.path.exists(stop)):
            try:
                if heavy and done % heavy == 0:
                    ex.public_get_exchangeinfo()
                else:
                    ex.public_get_time()
                done += 1
                if spec.get("pause"):
                    time.sleep(spec["pause"])
            except VenueBanned as e:
                emit(ev="banned", until=e.until, reason=e.reason)
                time.sleep(max(0.0, e.until - time.time()))
            except ccxt.DDoSProtection as e:
                emit(ev="ddos", msg=str(e)[:200])
        emit(ev="done", calls=done)


class Workers:
    """Worker processes started from this file, killed in ``stop``."""

    def __init__(self, tmp: Path, url: str, limits: dict[str, Any]) -> None:
        self.tmp, self.url, self.limits = tmp, url, limits
        self.run_dir = tmp / "run"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, calls: int, **extra: Any) -> subprocess.Popen[bytes]:
        spec = {
            "name": name,
            "calls": calls,
            **extra,
            "run_dir": str(self.run_dir),
            "url": self.url,
            "limits": self.limits,
            "out": str(self.tmp / f"{name}.jsonl"),
        }
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        err = open(self.tmp / f"{name}.err", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, __file__, json.dumps(spec)], env=env, stderr=err)
        err.close()
        self.procs[name] = proc
        return proc

    def events(self, name: str) -> list[dict[str, Any]]:
        path = self.tmp / f"{name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]

    def done(self, name: str) -> bool:
        proc = self.procs[name]
        if proc.poll() not in (None, 0):
            raise AssertionError(f"worker {name} exited {proc.returncode}: {self.stderr(name)}")
        return any(e["ev"] == "done" for e in self.events(name))

    def stderr(self, name: str) -> str:
        return (self.tmp / f"{name}.err").read_text()[-2000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def workers(short_tmp: Path) -> Iterator[Any]:
    made: list[Workers] = []

    def make(url: str, **limits: Any) -> Workers:
        w = Workers(short_tmp, url, limits)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


def _limiter(run_dir: Path, **limits: Any) -> Any:
    from sniperbot.venues.ccxt.ratelimit import SharedLimiter, binance_limits

    return SharedLimiter(run_dir, VENUE, KEY, binance_limits(**limits))


# -- tests --------------------------------------------------------------------------------------


def test_burst_of_1000_calls_from_3_processes_never_exceeds_the_servers_limit(
    server_factory: Any, workers: Any
) -> None:
    from tests.conftest import eventually

    # no used-weight header here: only the budget the processes share keeps the server under its limit
    server = server_factory(limit=200, window=2.0, report_weight=False)
    w = workers(server.url, weight_limit=200, weight_window=2.0)
    names = ["feed", "executor", "recon"]
    for i, name in enumerate(names):
        # every 25th call is exchangeInfo (weight 20): the cost of each call comes from ccxt's table
        w.start(name, calls=334 if i else 332, heavy_every=25)
    eventually(lambda: all(w.done(n) for n in names), timeout_s=180, what="1,000 calls done")

    calls = sum(e["calls"] for n in names for e in w.events(n) if e["ev"] == "done")
    assert calls == 1000
    assert server.violations == [], f"server saw its limit exceeded: {server.violations}"
    assert not [r for r in server.log if r[3] != 200]
    assert {r[1] for r in server.log} == set(names)
    # the limit was the binding constraint: some window was filled close to the (5 % margin) budget
    assert server.max_used() >= 160, server.used


def test_a_process_killed_mid_burst_and_restarted_does_not_reset_the_spent_budget(
    server_factory: Any, workers: Any
) -> None:
    from tests.conftest import eventually

    window, limit = 10.0, 60
    server = server_factory(limit=limit, window=window, report_weight=False)
    w = workers(server.url, weight_limit=limit, weight_window=window)
    # start early in a window so the restarted process comes back inside the same one
    left = window - time.time() % window
    if left < 8.0:
        time.sleep(left + 0.05)
    first = w.start("executor", calls=1000)
    eventually(lambda: server.max_used() >= 50, timeout_s=60, what="the budget spent")
    w_killed = int(time.time() // window)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    w.start("executor2", calls=30)
    eventually(lambda: w.done("executor2"), timeout_s=90, what="the restarted process done")

    assert server.violations == [], f"server saw its limit exceeded: {server.violations}"
    again = [r for r in server.log if r[1] == "executor2"]
    assert len(again) == 30 and all(r[3] == 200 for r in again)
    # back inside the killed process's window, it only had what that process left (<= 57 - 50)
    same_window = [r for r in again if int(r[0] // window) == w_killed]
    assert len(same_window) <= 7


def test_a_429_makes_every_process_wait_retry_after(server_factory: Any, workers: Any) -> None:
    from tests.conftest import eventually

    server = server_factory(limit=100000, window=2.0)
    w = workers(server.url, weight_limit=100000, weight_window=2.0)
    names = ["feed", "executor", "recon"]
    for name in names:
        w.start(name, calls=10**9, pause=0.01, stop_file=str(w.tmp / "stop"))
    eventually(lambda: {r[1] for r in server.log} == set(names), timeout_s=60, what="all workers calling")
    retry_after = 4.0
    server.armed.append((429, retry_after))
    eventually(lambda: server.faults, timeout_s=30, what="the 429 answered")
    t429 = server.faults[0][0]
    eventually(
        lambda: {r[1] for r in server.arrivals(t429 + retry_after, time.time() + 1)} == set(names),
        timeout_s=60,
        what="every process calling again after Retry-After",
    )
    (w.tmp / "stop").touch()
    eventually(lambda: all(w.done(n) for n in names), timeout_s=60, what="all workers done")

    # requests already granted when the 429 was read may still arrive just after it, no later
    quiet = server.arrivals(t429 + 1.5, t429 + retry_after)
    assert quiet == [], f"{len(quiet)} requests inside the Retry-After period"
    assert server.violations == []


def test_a_418_ban_stops_every_process_until_it_ends_and_is_reported(
    server_factory: Any, workers: Any
) -> None:
    from tests.conftest import eventually

    server = server_factory(limit=100000, window=2.0)
    w = workers(server.url, weight_limit=100000, weight_window=2.0)
    names = ["feed", "executor", "recon"]
    for name in names:
        w.start(name, calls=10**9, pause=0.01, stop_file=str(w.tmp / "stop"))
    eventually(lambda: {r[1] for r in server.log} == set(names), timeout_s=60, what="all workers calling")
    ban = 5.0
    server.armed.append((418, ban))
    eventually(lambda: server.faults, timeout_s=30, what="the 418 answered")

    # any process of the venue (here the test's own) sees the ban and its reason, for the breaker
    observer = _limiter(w.run_dir, weight_limit=100000, weight_window=2.0)
    block = eventually(observer.block, 10, what="the ban seen by another process")
    assert block.banned and block.status == 418
    assert "418" in block.reason and "IP banned until" in block.reason
    t418 = server.faults[0][0]
    assert abs(block.until - (t418 + ban)) < 1.5

    eventually(
        lambda: {r[1] for r in server.arrivals(t418 + ban, time.time() + 1)} == set(names),
        timeout_s=60,
        what="every process calling again after the ban",
    )
    (w.tmp / "stop").touch()
    eventually(lambda: all(w.done(n) for n in names), timeout_s=60, what="all workers done")
    quiet = server.arrivals(t418 + 1.5, t418 + ban)
    assert quiet == [], f"{len(quiet)} requests sent during the ban"
    for name in names:
        banned = [e for e in w.events(name) if e["ev"] == "banned"]
        assert banned, f"{name} never saw the ban"
        assert "418" in banned[0]["reason"]
    reports = [e for n in names for e in w.events(n) if e["ev"] == "on_block"]
    assert len(reports) == 1 and reports[0]["status"] == 418
    assert observer.block() is None


def test_the_servers_used_weight_header_resyncs_the_budget(server_factory: Any, short_tmp: Path) -> None:
    import ccxt

    # another client on the same IP has already spent 80 of every window's 100
    server = server_factory(limit=100, window=2.0, external=80)
    limiter = _limiter(short_tmp / "run", weight_limit=100, weight_window=2.0)
    ex = _client(ccxt.binance, limiter, server.url, "solo")
    for _ in range(40):
        ex.public_get_time()
    assert server.violations == []
    assert len(server.log) == 40


def test_each_ccxt_call_costs_its_endpoints_weight_and_orders_count(
    server_factory: Any, short_tmp: Path
) -> None:
    import asyncio

    import ccxt
    import ccxt.async_support

    # no used-weight header: the counts below are the limiter's own, from ccxt's per-endpoint costs
    server = server_factory(limit=100000, window=60.0, report_weight=False)
    if 60 - time.time() % 60 < 10:  # all in one minute, so the counts are exact
        time.sleep(60 - time.time() % 60 + 0.05)
    run_dir = short_tmp / "run"
    limiter = _limiter(run_dir)
    ex = _client(ccxt.binance, limiter, server.url, "sync", {"apiKey": "k", "secret": "s"})
    ex.public_get_time()  # weight 1 (ccxt cost 0.2)
    ex.public_get_exchangeinfo()  # weight 20 (ccxt cost 4)
    ex.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})
    used = limiter.usage()
    assert used["weight"] == 22.0 and used["orders_1d"] == 1.0  # the order counts in ORDERS, reads do not
    assert used["orders_10s"] in (0.0, 1.0)  # 0 only if its 10 s window has just rolled

    async def run_async() -> None:
        # the async client shares the same budget (another instance, the same file)
        aex = _client(ccxt.async_support.binance, _limiter(run_dir), server.url, "async")
        try:
            await aex.public_get_exchangeinfo()
        finally:
            await aex.close()

    asyncio.run(run_async())
    assert limiter.usage()["weight"] == 42.0
    assert [r[2] for r in server.log] == [
        "/api/v3/time",
        "/api/v3/exchangeInfo",
        "/api/v3/order",
        "/api/v3/exchangeInfo",
    ]


def test_kraken_rate_limit_error_fills_its_counter_and_the_next_call_is_held_back(
    server_factory: Any, short_tmp: Path
) -> None:
    import ccxt

    from sniperbot.venues.ccxt.ratelimit import SharedLimiter, kraken_limits

    # Kraken answers 200 with the error in the body; its call counter then decays at 0.33/s
    server = server_factory(limit=100000, window=60.0)
    server.body = json.dumps({"error": ["EAPI:Rate limit exceeded"], "result": {}})
    limiter = SharedLimiter(short_tmp / "run", "kraken", KEY, kraken_limits(), max_wait=1.0)
    ex = _client(ccxt.kraken, limiter, server.url, "kraken", {"apiKey": "k", "secret": "c2VjcmV0"})
    with pytest.raises(ccxt.DDoSProtection, match="EAPI:Rate limit exceeded"):
        ex.private_post_balance()
    assert limiter.usage()["private"] > 14.0
    # the next private call would wait ~3 s for the counter to decay: more than max_wait, so it is refused
    with pytest.raises(ccxt.RateLimitExceeded, match="would wait"):
        ex.private_post_balance()
    assert [r[2] for r in server.log] == ["/0/private/Balance"]


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
