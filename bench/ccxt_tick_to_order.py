"""Tick to order on a live ccxt venue: a trade sent by the local Binance server -> the order POST it receives.

* **ours**: a real ``sniperbot run`` node in live mode on a ``[[venues]] kind = "ccxt"`` venue pointed at
  the local Binance server (:mod:`tests.exchanges.binance`), its key unlocked from a keystore as in
  production (:mod:`tests.venues_ccxt.nodes`). The path: the server's ``<sym>@trade`` websocket message ->
  ccxt.pro in the feed (``feed.bx``) -> ``TradeTick`` on the bus -> a strategy that orders on every tick
  (``bench.bench_actors:TickStrategy``, the one ``bench/tick_to_trade.py`` uses, hot-added with ``admin
  start-child``) -> risk guard -> executor (journals the order first) -> live gateway (``gateway.bx``:
  ledger first, then ccxt's signed ``POST /api/v3/order``). The server stamps (``time.monotonic``, same
  machine) when it queues the trade for the websocket and when the order POST arrives, before it checks the
  signature; orders are matched to their trade by client order id (the strategy's intent id carries the
  trade id). One trade in flight; the next one ``--gap-ms`` (400) after the POST. The pace is bounded by
  Binance's budgets, which the gateway's limiter keeps: ORDERS 50 per 10 s, and REQUEST_WEIGHT 6,000 per
  minute, of which each market order spends 21 (the POST, then ``myTrades`` of the order: 20) and the
  0.5 s reconciliation sweep 12 a second; at 4 orders a second the weight runs out and orders wait for
  the next minute (seen as a tail of seconds and ``RateLimitExceeded`` in the node's log).
* **sim, same run**: ``bench/tick_to_trade.py``'s node on the simulated venue (durability "process"), from
  the bench feed's tick to the paper venue accepting the order (``OrderUpdate.ts_ns``): the same hops
  without websocket, ccxt, HTTP and signing.

Printed: p50/p99 of both and the ratio ours / sim.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

from bench._common import (
    emit,
    fmt_latency,
    latency_us,
    parse_args,
    ratio,
    short_tmp,
    subprocess_env,
    wait_for,
)

VENUE = "bx"
SYM = "BTC/USDT"
STRATEGY = "t2o"
RISK = """
[risk]
max_order_notional = 1e12
max_position = 1e6
max_orders_per_second = 1e9
"""


def _server() -> Any:
    from tests.exchanges.binance import BinanceServer, demo_server

    class StampedServer(BinanceServer):
        """The demo Binance server, stamping trades as they are queued for websockets and order POSTs."""

        def __init__(self) -> None:
            super().__init__()
            # Binance counts per calendar interval, as the gateway's limiter does; the test server's
            # windows start when it is built, so its ORDERS count (which the limiter adopts from the
            # X-MBX-ORDER-COUNT-10S header when higher) would run ahead of ours and make orders wait.
            for window in (self.weight, self.order_rate):
                window.start = math.floor(time.time() / window.window_s) * window.window_s
            self.trades_sent: dict[int, tuple[float, int]] = {}  # trade id -> (monotonic, wall-clock ns)
            self.arrived: tuple[float, int] = (0.0, 0)  # the last order POST's arrival
            self.posts: dict[str, tuple[float, int]] = {}  # client order id -> its POST's arrival
            self.posted = threading.Condition()

        def _on_trade(self, m: Any, tid: int, *args: Any) -> None:
            self.trades_sent[tid] = (time.monotonic(), time.time_ns())
            super()._on_trade(m, tid, *args)

        def rate_limit(self, request: Any) -> Any:
            # Arrival, before the body is read and the signature checked; post_order (which has the
            # client order id) follows for the same request: the gateway sends one order at a time here.
            if request.method == "POST" and request.path.endswith("/api/v3/order"):
                self.arrived = (time.monotonic(), time.time_ns())
            return super().rate_limit(request)

        def post_order(self, params: dict[str, str]) -> Any:
            with self.posted:
                self.posts[params.get("newClientOrderId", "")] = self.arrived
                self.posted.notify_all()
            return super().post_order(params)

    demo = demo_server()
    server = StampedServer()
    for symbol, m in demo.engine.markets.items():
        server.add_market(symbol)
        # a deep book: the alternating market orders never run it dry
        server.engine.set_levels(
            symbol, [(p, q * 1000) for p, q in m.bids.items()], [(p, q * 1000) for p, q in m.asks.items()]
        )
    server.engine.deposit("USDT", 10_000_000)
    server.engine.deposit("BTC", 100)
    return server.start()


def run_ours(work: Path, count: int, warmup: int, gap_s: float) -> dict[str, Any]:
    """A live node on the local server; one trade at a time, timed until the order POST arrives."""
    from tests.venues_ccxt.nodes import add_key, venue_toml, write_config

    server = _server()
    cli = [sys.executable, "-m", "sniperbot"]
    run_dir = work / "live"
    unlock = add_key(work / "keys", server)
    config = write_config(
        work / "live.toml",
        venue_toml(server, name=VENUE, mode="live", keys="local") + RISK,
        strategies=False,
    )
    log = open(work / "live.log", "w")  # noqa: SIM115
    node = subprocess.Popen(
        [*cli, "run", "--config", str(config), "--run-dir", str(run_dir), "--duration", "900", *unlock],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
        env=subprocess_env(),
    )

    def admin(*args: str) -> Any:
        if node.poll() is not None:
            raise RuntimeError(f"node exited {node.returncode}: {(work / 'live.log').read_text()[-3000:]}")
        r = subprocess.run(
            [*cli, "admin", "--run-dir", str(run_dir), *args, "--json"],
            capture_output=True,
            text=True,
            cwd=work,
            env=subprocess_env(),
        )
        return json.loads(r.stdout) if r.returncode == 0 else None

    samples: list[int] = []
    pairs: list[tuple[str, int, int]] = []  # (client order id, trade wall ns, POST wall ns)
    lost = 0
    late: list[tuple[str, int]] = []  # ticks whose order took longer than 10 s: (cid, trade wall ns)
    try:
        wait_for(lambda: admin("status"), 120, "node up", interval_s=0.2)
        spec = {
            "id": f"strategy.{STRATEGY}",
            "actor": "bench.bench_actors:TickStrategy",
            "args": {"strategy_id": STRATEGY, "venue": VENUE, "symbol": SYM, "quantity": 0.001},
        }
        if admin("start-child", "--sup", "strategies", "--spec", json.dumps(spec)) is None:
            raise RuntimeError("start-child of the tick strategy failed")
        low = server.market_id(SYM).lower()
        wait_for(lambda: server.subscribers(f"{low}@trade"), 60, "feed subscribed", interval_s=0.1)
        time.sleep(1.0)  # the gateway's start sweep and the executor's reconciliation
        for i in range(warmup + count):
            tid = server.trade(SYM, 50_000, "0.01", taker_side="buy" if i % 2 else "sell")
            t_trade, wall_trade = server.trades_sent[tid]
            cid = f"{STRATEGY}-{tid}"  # TickStrategy's intent id, which the risk guard's order keeps
            with server.posted:
                if not server.posted.wait_for(lambda c=cid: c in server.posts, timeout=10):
                    lost += 1
                    late.append((cid, wall_trade))
                    admin("status")  # raises with the log if the node died
                    continue
                t_post, wall_post = server.posts[cid]
            if i >= warmup:
                samples.append(int((t_post - t_trade) * 1e9))
                pairs.append((cid, wall_trade, wall_post))
            time.sleep(gap_s)
        orders = sum(1 for o in server.state_json()["orders"] if o["status"] == "filled")
        calls = dict(Counter(f"{m} {p.rsplit('/api/v3/', 1)[-1]}" for m, p in server.requests).most_common())
        weight_peak = server.weight.peak  # the most request weight the server counted in one minute
    finally:
        node.terminate()
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(5)
        log.close()
        server.stop()
    # What the node logged (warnings and up), by event: rate-limit waits, send retries, ...
    text = (work / "live.log").read_text()
    events = dict(Counter(re.findall(r'"event": "([a-z_]+)"', text)))
    errors = dict(Counter(re.findall(r'"event": "([a-z_]+)".*?"error": "([A-Za-z]+)"', text)))
    # Where the time goes (wall clock, same machine): the risk guard's decision is the journaled
    # Order's ts_ns, matched to its POST by client order id.
    from sniperbot.journal import Journal

    journal = Journal.open(run_dir, readonly=True)
    try:
        decided = {o.client_order_id: o.ts_ns for o in journal.orders()}
    finally:
        journal.close()
    to_risk: list[int] = []
    to_post: list[int] = []
    for cid, wall_trade, wall_post in pairs:
        ts = decided.get(cid)
        if ts:
            to_risk.append(ts - wall_trade)
            to_post.append(wall_post - ts)
    # The ticks given up on: when (if ever) the risk guard decided and the POST arrived, in ms.
    slow = [
        {
            "client_order_id": cid,
            "to_risk_ms": round((decided[cid] - wall) / 1e6, 1) if cid in decided else None,
            "to_post_ms": round((server.posts[cid][1] - wall) / 1e6, 1) if cid in server.posts else None,
        }
        for cid, wall in late
    ]
    return {
        "latency": latency_us(samples),
        "lost_ticks": slow,
        "rest_calls": calls,
        "weight_peak_per_minute": weight_peak,
        "segments": {
            "ws trade -> risk decision": latency_us(to_risk),
            "risk decision -> POST at server": latency_us(to_post),
        },
        "lost": lost,
        "filled_at_exchange": orders,
        "log_events": events,
        "log_errors": {f"{e}:{err}": n for (e, err), n in errors.items()},
    }


def run_sim(work: Path, count: int, warmup: int) -> dict[str, Any]:
    """bench/tick_to_trade.py's node (durability "process"): tick -> the paper venue accepts the order."""
    import msgspec

    from bench.tick_to_trade import run_ours as tick_to_trade

    r = tick_to_trade(work, "process", count, warmup, 0.001)
    raw = msgspec.json.decode((work / "t2t-process.json").read_bytes())
    to_venue = [u - t for t, u in zip(raw["tick_wall_ns"], raw["update_ts_ns"], strict=True)]
    return {"to_venue": latency_us(to_venue), "round_trip": r["latency"], "lost": r["lost"]}


def main() -> int:
    """Sim path, then ours; print; emit JSON."""

    def options(parser: Any) -> None:
        parser.add_argument("--count", type=int, default=0, help="measured ticks (default 200, quick 50)")
        parser.add_argument("--gap-ms", type=float, default=400.0, help="pause after each order POST")

    args = parse_args(__doc__.splitlines()[0], options)
    count = args.count or (50 if args.quick else 200)
    warmup = 10
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"tick to order: {count} ticks after {warmup} warm-up, one in flight, {args.gap_ms:.0f} ms after "
        f"each order; load {' '.join(load)}"
    )
    with short_tmp("sb-t2o-") as work:
        sim = run_sim(work, count, warmup)
        ours = run_ours(work, count, warmup, args.gap_ms / 1e3)
    print(fmt_latency("sim: tick -> paper venue has the order", sim["to_venue"]))
    print(fmt_latency("ours: ws trade -> order POST at server", ours["latency"]))
    for label, stats in ours["segments"].items():
        print(fmt_latency(f"  {label}", stats))
    r50 = ratio(ours["latency"]["p50"], sim["to_venue"]["p50"])
    r99 = ratio(ours["latency"]["p99"], sim["to_venue"]["p99"])
    print(
        f"  ratio ours / sim: p50 {r50}, p99 {r99}; lost: ours {ours['lost']}, sim {sim['lost']}; "
        f"orders filled at the exchange {ours['filled_at_exchange']}"
    )
    print(
        f"  REST calls the server saw: {ours['rest_calls']}; peak weight in a minute "
        f"{ours['weight_peak_per_minute']:.0f} (Binance's limit 6000, the gateway keeps 5700)"
    )
    for slow in ours["lost_ticks"]:
        print(f"  over 10 s: {slow}")
    print(f"  the live node logged: {ours['log_events'] or 'nothing'}; errors {ours['log_errors']}")
    emit(
        "ccxt_tick_to_order",
        {"count": count, "load": load, "ours_us": ours, "sim_us": sim, "ratio_p50": r50, "ratio_p99": r99},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
