"""Live feed latency: a trade (a book move) at the local Binance server -> TradeTick (Quote) on the bus.

* floor: the same server, ccxt.pro ``watch_trades`` in a plain asyncio loop (what ccxt itself costs:
  websocket, JSON, parsing), trade printed -> watch returns;
* ours: a real ``sniperbot run`` node with a ``CcxtFeed`` child (added by ``admin start-child``), trade
  printed -> ``TradeTick`` read by a bus subscriber, and book moved -> ``Quote`` (bookTicker stream).

``ours - floor`` is what the feed adds: the hand-over from the asyncio thread to the actor loop (a queue
drained every ``DRAIN_INTERVAL_S``, 2 ms: 1 ms on average), the publish and the bus hop.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, emit, fmt_latency, latency_us, parse_args, short_tmp, subprocess_env, wait_for

SYM = "BTC/USDT"


def _floor(server: Any, n: int) -> list[int]:
    from sniperbot.venues.ccxt.feed import make_exchange

    async def main() -> list[int]:
        ex = make_exchange("binance", server.rest_url, server.ws_url, False)
        out: list[int] = []
        try:
            await ex.load_markets()
            first = asyncio.ensure_future(ex.watch_trades(SYM))
            await asyncio.sleep(0.5)
            server.trade(SYM, 50_010, "0.01")
            await first
            for i in range(n):
                pending = asyncio.ensure_future(ex.watch_trades(SYM))
                await asyncio.sleep(0.01)
                t0 = time.perf_counter_ns()
                server.trade(SYM, 50_010 + i % 7, "0.01")
                await pending
                out.append(time.perf_counter_ns() - t0)
        finally:
            await ex.close()
        return out

    return asyncio.run(main())


def _ours(server: Any, n: int) -> tuple[list[int], list[int]]:
    import zmq

    from sniperbot.messages import Quote, TradeTick
    from sniperbot.messages import topics as topic
    from sniperbot.rundir import RunDir
    from sniperbot.transport.bus import Subscriber

    with short_tmp() as tmp:
        run_dir = tmp / "run"
        log = open(tmp / "node.log", "w")  # noqa: SIM115
        cli = [sys.executable, "-m", "sniperbot"]
        node = subprocess.Popen(
            [*cli, "run", "--config", str(REPO / "config" / "fast-sim.toml"), "--run-dir", str(run_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=subprocess_env(),
        )
        zctx = zmq.Context()
        try:

            def admin(*args: str) -> Any:
                r = subprocess.run(
                    [*cli, "admin", "--run-dir", str(run_dir), *args, "--json"],
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                    env=subprocess_env(),
                )
                return json.loads(r.stdout) if r.returncode == 0 else None

            wait_for(lambda: admin("status"), 60, "node up")
            spec = {
                "id": "feed.bin",
                "actor": "sniperbot.venues.ccxt.feed:CcxtFeed",
                "args": {
                    "venue": "bin",
                    "exchange": "binance",
                    "symbols": [SYM],
                    "rest_url": server.rest_url,
                    "ws_url": server.ws_url,
                },
            }
            assert admin("start-child", "--sup", "root", "--spec", json.dumps(spec)) is not None
            sub = Subscriber(zctx, RunDir(run_dir).bus_out, (topic.market("bin"),))
            low = server.market_id(SYM).lower()
            wait_for(
                lambda: all(server.subscribers(f"{low}@{s}") for s in ("trade", "bookTicker")),
                60,
                "subscribed",
            )

            def until(pred: Any) -> None:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if sub.socket.poll(100) and pred(sub.recv()[1].payload):
                        return
                raise TimeoutError("no message")

            trades: list[int] = []
            quotes: list[int] = []
            for i in range(n):
                time.sleep(0.01 + random.random() * 0.005)  # no phase lock with the feed's drain timer
                t0 = time.perf_counter_ns()
                tid = server.trade(SYM, 50_010, "0.01")
                until(lambda m, tid=tid: isinstance(m, TradeTick) and m.trade_id == tid)
                trades.append(time.perf_counter_ns() - t0)
                size = float(1 + i)  # a new top every time (exact in decimal and binary)
                t0 = time.perf_counter_ns()
                server.move_book(SYM, bids=[(49_990, size)])
                until(lambda m, size=size: isinstance(m, Quote) and m.bid_size == size)
                quotes.append(time.perf_counter_ns() - t0)
            sub.close()
            return trades, quotes
        finally:
            node.terminate()
            node.wait(30)
            zctx.destroy(linger=0)
            log.close()


def main() -> None:
    """Run the floor and ours against one local server; print the lines and one JSON line."""
    args = parse_args(__doc__.splitlines()[0])
    n = 100 if args.quick else 500
    from tests.exchanges.binance import demo_server

    server = demo_server().start()
    try:
        floor = latency_us(_floor(server, n))
        trades_ns, quotes_ns = _ours(server, n)
    finally:
        server.stop()
    trades, quotes = latency_us(trades_ns), latency_us(quotes_ns)
    print("ccxt feed: local Binance server -> bus")
    print(fmt_latency("floor: trade -> ccxt watch_trades", floor))
    print(fmt_latency("ours: trade -> TradeTick on the bus", trades))
    print(fmt_latency("ours: book move -> Quote on the bus", quotes))
    emit("ccxt_feed", {"floor_trade_us": floor, "trade_us": trades, "quote_us": quotes})


if __name__ == "__main__":
    main()
