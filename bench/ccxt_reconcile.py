"""Reconciliation of 1,000 unfinished orders against the local Binance server, from a cold start.

The scene: a node sent ``--orders`` orders on two symbols and died before hearing any answer, so its
journal holds every one without a status and the live gateway's ledger holds every one as sent. Meanwhile
at the exchange a quarter of them filled (two trades each), a quarter partially filled (one trade), a
quarter rests untouched, and a quarter never arrived. The node starts again:

* **ours**: a real node (``sniperbot.node.Node``, each actor its own process) whose tree is the live
  venue subtree, ``gateway.bx`` (:class:`~sniperbot.venues.ccxt.gateway.CcxtGateway`, its key sealed into
  its launch as ``sniperbot run`` does) and ``executor.bx`` (the generic executor), on the pre-seeded run
  dir; the server keeps Binance's real weight limit (6,000 per minute). Timed from the node's spawn until
  the journal has every order's status (filled, accepted, or ``cancelled``/``expired_unsent`` for those the
  exchange never got) and every exchange trade exactly once; per order, from the gateway's first REST
  call to the moment this process sees its resolution in the journal (polled every 20 ms);
* **floor, per order**: bare ccxt (``ccxt.async_support.binance``, no rate limiting) on an identical
  server without a weight limit, one order at a time: the lookup by client order id, plus the order's
  trades where it has filled — the same lookups the gateway makes per order;
* **floor, batch**: bare ccxt fetching per symbol the open orders, all orders and the account's trades
  (three calls per symbol) — the least REST work that tells every order's state.

Printed: totals, p50/p99 per order, REST calls and the request weight the server saw per endpoint, and
the ratios to both floors measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

from bench._common import (
    emit,
    fast_sim_config,
    latency_ms,
    parse_args,
    ratio,
    short_tmp,
    subprocess_env,
)

VENUE = "bx"
SYMBOLS = {"BTC/USDT": (49_000, "0.01"), "ETH/USDT": (2_900, "0.1")}  # resting buy price, quantity
KINDS = ("filled", "partial", "resting", "never_sent")
EXPECTED_STATUS = {
    "filled": "filled",
    "partial": "accepted",
    "resting": "accepted",
    "never_sent": "cancelled",
}
KEYS = "bench"


def _server_class(weight_limit: int) -> Any:
    from tests.exchanges.binance import BinanceServer

    class StampedServer(BinanceServer):
        """The local Binance server, stamping every REST request with its arrival and weight."""

        def __init__(self) -> None:
            super().__init__(weight_limit=weight_limit)
            # Binance counts weight per calendar minute (as our limiter does); the test server's window
            # starts when it is built, which lets a client that is right by the clock be refused.
            self.weight.start = math.floor(time.time() / 60) * 60
            self.stamps: list[tuple[float, str, int]] = []  # (monotonic, "METHOD endpoint", weight)

        def rate_limit(self, request: Any) -> Any:
            ep = request.path.split("/api/v3/", 1)[-1]
            self.stamps.append((time.monotonic(), f"{request.method} {ep}", self._weight_of(request)))
            return super().rate_limit(request)

    return StampedServer()


def seeded_server(n: int, weight_limit: int) -> tuple[Any, list[dict[str, Any]]]:
    """A started server holding the exchange's side of the scene; the orders as the node sent them."""
    from tests.exchanges.binance import demo_server

    server = _server_class(weight_limit)
    demo = demo_server()  # markets, book and balances of the demo server, copied onto ours
    for symbol in SYMBOLS:
        server.add_market(symbol)
        m = demo.engine.markets[symbol]
        server.engine.set_levels(symbol, m.bids.items(), m.asks.items())
    server.engine.deposit("USDT", 100_000_000)
    sent: list[dict[str, Any]] = []
    for i in range(n):
        symbol = list(SYMBOLS)[i % len(SYMBOLS)]
        kind = KINDS[(i // len(SYMBOLS)) % len(KINDS)]
        price, qty = SYMBOLS[symbol]
        cid = f"s1-r{i}"
        if kind != "never_sent":
            o = server.engine.place(symbol, "buy", "limit", qty, price=price, client_id=cid)
            if kind == "filled":
                server.engine.fill(o, o.qty / 2)
                server.engine.fill(o, o.qty / 2)
            elif kind == "partial":
                server.engine.fill(o, o.qty / 4)
        trades = [str(f.trade_id) for f in server.engine.fills if f.order.client_id == cid]
        sent.append(
            {"cid": cid, "symbol": symbol, "kind": kind, "price": price, "qty": float(qty), "trades": trades}
        )
    return server.start(), sent


def seed_run_dir(run_dir: Path, sent: list[dict[str, Any]]) -> None:
    """The journal and the gateway's ledger as the dead node left them: every order sent, no answer."""
    from sniperbot.journal import Journal
    from sniperbot.messages import Order
    from sniperbot.rundir import RunDir
    from sniperbot.venues.sim.ledger import VenueLedger

    RunDir(run_dir).create()
    ts = time.time_ns() - 120 * 10**9  # two minutes ago: too old for the executor to resend unsent ones
    orders = [
        Order(
            client_order_id=s["cid"],
            intent_id=s["cid"],
            strategy_id="s1",
            venue=VENUE,
            symbol=s["symbol"],
            side="buy",
            quantity=s["qty"],
            order_type="limit",
            limit_price=float(s["price"]),
            ts_ns=ts,
        )
        for s in sent
    ]
    journal = Journal.open(run_dir, durability="process")
    try:
        journal.append_many(orders)
    finally:
        journal.close()
    ledger = VenueLedger.open(run_dir, VENUE, durability="process")
    try:
        ledger.record(orders)
    finally:
        ledger.close()


# -- the node (a child process) ----------------------------------------------------------------


def tree(config: Any, *, rest_url: str, ws_url: str, poll_s: float) -> Any:
    """The live venue subtree alone: the gateway, then the executor (``rest_for_one``, as the topology)."""
    from sniperbot.supervision import ChildSpec, SupFlags

    gateway = ChildSpec(
        id=f"gateway.{VENUE}",
        actor="sniperbot.venues.ccxt.gateway:CcxtGateway",
        args={
            "venue": VENUE,
            "exchange": "binance",
            "symbols": list(SYMBOLS),
            "rest_url": rest_url,
            "ws_url": ws_url,
            "executor": f"executor.{VENUE}",
            "poll_s": poll_s,
            "durability": "process",
            "keys": KEYS,
        },
    )
    executor = ChildSpec(
        id=f"executor.{VENUE}",
        actor="sniperbot.execution.executor:Executor",
        args={"venue": VENUE, "gateway": gateway.id},
    )
    venue = ChildSpec(
        id=f"venue.{VENUE}",
        type="supervisor",
        flags=SupFlags(strategy="rest_for_one", intensity=0, period_s=30.0),
        children=[gateway, executor],
    )
    return ChildSpec(id="root", type="supervisor", flags=SupFlags(intensity=0), children=[venue])


def node_main() -> int:
    """A real Node on ``--config``/``--run-dir`` running :func:`tree`, the server's key read from stdin.

    What ``sniperbot run`` does once the keystore is unlocked: the node seals the entry into the
    gateway's launch only. The key is the local server's dummy one.
    """
    import argparse

    from sniperbot.config import load_config
    from sniperbot.keystore import Credentials
    from sniperbot.logs import configure_logging
    from sniperbot.node import Node

    parser = argparse.ArgumentParser()
    for flag in ("--config", "--run-dir", "--rest-url", "--ws-url"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--poll-s", type=float, default=2.0)
    args = parser.parse_args(sys.argv[1:])
    fields = json.loads(sys.stdin.readline())
    config = load_config(args.config)
    configure_logging(config.node.log_level)
    creds = Credentials(KEYS, "binance", "2026-01-01T00:00:00Z", fields)
    node = Node(config, args.run_dir, credentials={KEYS: creds})
    node.tree_spec = tree(config, rest_url=args.rest_url, ws_url=args.ws_url, poll_s=args.poll_s)
    return node.run(600.0)


def _fill_id(symbol: str, trade_id: str) -> str:
    from sniperbot.venues.ccxt.gateway import fill_id

    return fill_id(VENUE, symbol, trade_id)


def ours(work: Path, n: int, poll_s: float) -> dict[str, Any]:
    """Seed, start the node, watch the journal until every order is resolved; the figures."""
    from sniperbot.journal import Journal

    server, sent = seeded_server(n, weight_limit=6000)
    run_dir = work / "run"
    seed_run_dir(run_dir, sent)
    config = work / "node.toml"
    config.write_text(fast_sim_config(log_level='"WARNING"'))
    log = open(work / "node.log", "w")  # noqa: SIM115
    command = [
        sys.executable,
        "-c",
        "import sys; from bench.ccxt_reconcile import node_main; sys.exit(node_main())",
        *("--config", str(config), "--run-dir", str(run_dir)),
        *("--rest-url", server.rest_url, "--ws-url", server.ws_url, "--poll-s", str(poll_s)),
    ]
    pending = {s["cid"]: s for s in sent}
    resolved_at: dict[str, float] = {}
    journal = None
    t_spawn = time.monotonic()
    node = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=work, env=subprocess_env()
    )
    try:
        assert node.stdin is not None
        node.stdin.write((json.dumps(server.credentials()) + "\n").encode())
        node.stdin.close()
        deadline = time.monotonic() + 900
        while pending:
            if node.poll() is not None:
                raise RuntimeError(
                    f"node exited with {node.returncode}: {(work / 'node.log').read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} orders unresolved after 900 s")
            if journal is None:
                try:
                    journal = Journal.open(run_dir, readonly=True)
                except Exception:
                    time.sleep(0.05)
                    continue
            now = time.monotonic()
            for cid, s in list(pending.items()):
                if journal.order_status(cid) != EXPECTED_STATUS[s["kind"]]:
                    continue
                if all(journal.has_fill(_fill_id(s["symbol"], t)) for t in s["trades"]):
                    resolved_at[cid] = now
                    del pending[cid]
            time.sleep(0.02)
        t_done = time.monotonic()
        # Nothing twice: every journaled fill is an exchange trade of its order, once.
        fills = journal.fills() if journal is not None else []
        expected = {_fill_id(s["symbol"], t) for s in sent for t in s["trades"]}
        got = [f.fill_id for f in fills]
        exact = sorted(got) == sorted(expected)
    finally:
        if journal is not None:
            journal.close()
        node.terminate()
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(5)
        log.close()
        server.stop()
    stamps = server.stamps
    t_first = stamps[0][0] if stamps else t_spawn
    during = [s for s in stamps if s[0] <= t_done]
    per_order = [int((t - t_first) * 1e9) for t in resolved_at.values()]
    return {
        "total_s": round(t_done - t_spawn, 2),
        "from_first_call_s": round(t_done - t_first, 2),
        "per_order_ms": latency_ms(per_order),
        "rest_calls": len(during),
        "weight": sum(w for _, _, w in during),
        "by_endpoint": dict(Counter(e for _, e, _ in during).most_common()),
        "fills_exact": exact,
        "fills": len(got),
    }


# -- floors: bare ccxt -------------------------------------------------------------------------


def _bare(server: Any) -> Any:
    import ccxt.async_support as ccxt_async

    from sniperbot.venues.ccxt.urls import rebase_urls

    ex = ccxt_async.binance(
        {
            **server.credentials(),
            "enableRateLimit": False,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
        }
    )
    return rebase_urls(ex, server.rest_url, server.ws_url)


def floor_per_order(n: int) -> dict[str, Any]:
    """One order at a time: lookup by client order id, then its trades where it has filled."""
    from sniperbot.venues.ccxt.exchange_orders import find_order, order_trades

    server, sent = seeded_server(n, weight_limit=10**9)

    async def run() -> tuple[float, list[int]]:
        ex = _bare(server)
        try:
            await ex.load_markets()
            t0 = time.monotonic()
            done: list[int] = []
            for s in sent:
                found = await find_order(ex, "binance", s["symbol"], s["cid"])
                if found is not None and float(found.get("filled") or 0) > 0:
                    trades = await order_trades(ex, "binance", s["symbol"], str(found["id"]))
                    assert len(trades) == len(s["trades"])
                done.append(int((time.monotonic() - t0) * 1e9))
            return time.monotonic() - t0, done
        finally:
            await ex.close()

    try:
        calls_before = len(server.stamps)
        total, done = asyncio.run(run())
        calls = server.stamps[calls_before + 1 :]  # after load_markets' exchangeInfo
    finally:
        server.stop()
    return {
        "total_s": round(total, 2),
        "per_order_ms": latency_ms(done),
        "rest_calls": len(calls),
        "weight": sum(w for _, _, w in calls),
    }


def floor_batch(n: int) -> dict[str, Any]:
    """Per symbol: open orders, all orders, the account's trades (three calls)."""
    server, sent = seeded_server(n, weight_limit=10**9)

    async def run() -> float:
        ex = _bare(server)
        try:
            await ex.load_markets()
            t0 = time.monotonic()
            trades = 0
            for symbol in SYMBOLS:
                await ex.fetch_open_orders(symbol)
                await ex.fetch_orders(symbol, None, 1000)
                trades += len(await ex.fetch_my_trades(symbol, None, 1000))
            assert trades == sum(len(s["trades"]) for s in sent), trades
            return time.monotonic() - t0
        finally:
            await ex.close()

    try:
        before = len(server.stamps)
        total = asyncio.run(run())
        calls = server.stamps[before + 1 :]
    finally:
        server.stop()
    return {"total_s": round(total, 3), "rest_calls": len(calls), "weight": sum(w for _, _, w in calls)}


def main() -> int:
    """Floors, then ours; print; emit JSON."""

    def options(parser: Any) -> None:
        parser.add_argument("--orders", type=int, default=0, help="unfinished orders (default 1000)")
        parser.add_argument("--poll-s", type=float, default=2.0, help="the gateway's poll interval")

    args = parse_args(__doc__.splitlines()[0], options)
    n = args.orders or (200 if args.quick else 1000)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"reconciliation of {n} unfinished orders (mix: {', '.join(KINDS)}), 2 symbols; load {' '.join(load)}"
    )
    per_order = floor_per_order(n)
    batch = floor_batch(n)
    with short_tmp("sb-rec-") as work:
        r = ours(work, n, args.poll_s)
    print(
        f"  floor, bare ccxt one order at a time   {per_order['total_s']:>8.2f} s   "
        f"{per_order['rest_calls']:>5} calls  weight {per_order['weight']}"
    )
    print(
        f"  floor, bare ccxt batch per symbol      {batch['total_s']:>8.3f} s   "
        f"{batch['rest_calls']:>5} calls  weight {batch['weight']}"
    )
    print(
        f"  ours, node start -> all resolved       {r['total_s']:>8.2f} s   "
        f"({r['from_first_call_s']:.2f} s from the gateway's first REST call)"
    )
    pm = r["per_order_ms"]
    print(
        f"  ours, per order (from first REST call)  p50 {pm['p50']:.0f} ms  p99 {pm['p99']:.0f} ms  "
        f"max {pm['max']:.0f} ms"
    )
    print(
        f"  ours, REST calls the server saw        {r['rest_calls']:>5}  "
        f"weight {r['weight']} (limit 6000/min)"
    )
    for endpoint, count in r["by_endpoint"].items():
        print(f"      {count:>5}  {endpoint}")
    print(f"  every exchange trade journaled exactly once: {r['fills_exact']} ({r['fills']} fills)")
    r_per = ratio(r["from_first_call_s"], per_order["total_s"])
    r_batch = ratio(r["from_first_call_s"], batch["total_s"])
    print(f"  ratio ours / per-order floor: {r_per}   ours / batch floor: {r_batch}")
    emit(
        "ccxt_reconcile",
        {
            "orders": n,
            "load": load,
            "ours": r,
            "floor_per_order": per_order,
            "floor_batch": batch,
            "ratio_per_order_floor": r_per,
            "ratio_batch_floor": r_batch,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
