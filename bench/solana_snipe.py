"""New pool seen -> bundle sent, and simulate + sign + send per swap, on the local Solana chain.

Two figures (issue #13 point 8), each with a floor measured in the same run, on the same chain:

* **snipe** (a real node): ``sniperbot run`` with a live ``[[venues]] kind = "solana"`` on
  :class:`~sniperbot.venues.solana.devchain.LocalSolana` (its wallet unlocked from a keystore, as in
  production), ``route = "jito"`` and ``[venues.sniper]``; the local aggregator over the chain's pools.
  Per launch: the mint is created (not timed), then the clock starts just before
  :meth:`~sniperbot.venues.solana.devaggregator.LocalAggregator.create_pool` (its vaults funded, then the
  pool account written: the moment the pool can be bought and the watchers are notified; the figures
  include the few ms of its writes rather than risk starting late; the split also shows it from the pool
  watcher's ``new_pool`` log line, whose stamp has ms precision). The end: the block engine receiving
  the first ``sendBundle`` whose transaction is the wallet's buy of that mint. The block engine is the
  chain's, behind a stamping pass-through on 127.0.0.1 (:class:`StampingEngine`: it stamps each request's
  arrival and forwards it byte for byte; one loopback hop more than the node's real path, counted in both
  ours and the floor). The path: the pool watcher's ``programSubscribe`` notification -> ``NewPool`` on the
  bus -> the checker (mint, holders, the simulated buy and sell) -> ``TokenSafetyReport`` -> the feed's
  first quote of the pair -> the sniper's intent -> risk guard -> executor (journals the order) -> gateway
  (ledger, quote, swap transaction, sign, simulate, journal) -> ``sendBundle``. One launch at a time.
  **Floor**: the bare pipeline, in this process, run before the node starts: a ``programSubscribe`` of the
  pools program over the real solana-py websocket client, and on each notification the same
  :class:`~sniperbot.venues.solana.jito.JitoClient` sending a bundle of an already signed transaction.
* **swap** (in process): per swap, the aggregator's quote and unsigned transaction are fetched (not
  timed), then timed: the wallet's signature (solders), ``simulateTransaction`` with signature
  verification through solana-py's ``AsyncClient`` (as the gateway does), and the bundle sent through
  :class:`~sniperbot.venues.solana.jito.JitoRoute` (the gateway's route). **Floor**: the same calls' raw
  round trips: the JSON bodies of another signed swap prepared in advance, posted with a bare httpx client
  (``simulateTransaction`` then ``sendBundle``), so the ratio is what the client code, the signature and
  the parsing cost on top of the two RPC round trips.

Bounded loops (``--count``, ``--swaps``); ``--quick`` runs fewer. Printed: p50/p99 and the ratio to the
floor; the last line is the JSON of every figure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

from bench._common import (
    REPO,
    NodeProcess,
    SnipeLog,
    buy_decisions,
    emit,
    fmt_latency,
    latency_ms,
    parse_args,
    ratio,
    short_tmp,
    subprocess_env,
)

VENUE = "localsol"
WAIT_S = 60.0
DECIMALS = 6
POOL_TOKENS = 1_000_000 * 10**DECIMALS
POOL_LAMPORTS = 10 * 1_000_000_000
TIP = 10_000
SNIPER_TOML = """
[venues.sniper]
budget = 0.01
take_profit_pct = 50.0
stop_loss_pct = 25.0
max_hold_s = 3600.0
"""


class StampingEngine:
    """A pass-through in front of the chain's block engine that stamps every request's arrival."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.requests: list[dict[str, Any]] = []  # {"at", "method", "txs": [VersionedTransaction]}
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="engine", daemon=True)
        self._runner: Any = None
        self._session: Any = None

    @property
    def url(self) -> str:
        """The block engine URL to configure (``/api/v1/...`` below it)."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> StampingEngine:
        """Serve on an ephemeral port (a thread of its own)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        import aiohttp
        from aiohttp import web

        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.add_routes([web.post("/{tail:.*}", self._forward)])
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _forward(self, request: Any) -> Any:
        from aiohttp import web
        from solders.transaction import VersionedTransaction

        at = time.time()
        body = await request.read()
        try:
            call = json.loads(body)
            method = call.get("method", "")
            txs = []
            if method == "sendBundle":
                txs = [VersionedTransaction.from_bytes(base64.b64decode(t)) for t in call["params"][0]]
            self.requests.append({"at": at, "method": method, "txs": txs})
        except (ValueError, KeyError, TypeError, IndexError):
            pass
        url = self.target + request.path_qs
        async with self._session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            return web.Response(body=await r.read(), status=r.status, content_type="application/json")

    def stop(self) -> None:
        """Stop serving."""

        async def close() -> None:
            await self._runner.cleanup()
            await self._session.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def bundle_at(self, since: float, match: Any, timeout_s: float) -> float | None:
        """Arrival stamp of the first ``sendBundle`` after ``since`` with a transaction that ``match``es."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            requests = list(self.requests)
            for r in requests[seen:]:
                if r["method"] == "sendBundle" and r["at"] >= since and any(match(tx) for tx in r["txs"]):
                    return float(r["at"])
            seen = len(requests)
            time.sleep(0.002)
        return None


class Chain:
    """The local chain, its aggregator and the stamping block engine; a listed pool for the config."""

    def __init__(self) -> None:
        from sniperbot.venues.solana.devaggregator import LocalAggregator
        from sniperbot.venues.solana.devchain import LocalSolana

        self.chain = LocalSolana().start()
        self.agg = LocalAggregator(self.chain).start()
        self.engine = StampingEngine(self.chain.block_engine_url).start()
        self.rng = random.Random(13)
        self.listed = self.launch()

    def mint(self) -> Any:
        """A clean mint (no authorities): not timed."""
        from sniperbot.venues.solana.devtokens import create_mint

        return create_mint(self.chain, decimals=DECIMALS)

    def pool(self, mint: Any) -> float:
        """Create ``mint``'s pool at a random phase of the slot; the wall clock just before (module doc).

        The random wait: a loop that launches right after the previous bundle arrived (itself right after a
        slot's notification) would always launch at the start of a slot, the worst phase for a
        ``confirmed`` notification; a real launch lands at any point of a slot."""
        time.sleep(self.rng.uniform(0, self.chain.slot_ms / 1000))
        t0 = time.time()
        self.agg.create_pool(mint, POOL_TOKENS, POOL_LAMPORTS)
        return t0

    def launch(self) -> Any:
        """A mint and its pool."""
        mint = self.mint()
        self.pool(mint)
        return mint

    def close(self) -> None:
        for part in (self.engine, self.agg, self.chain):
            try:
                part.stop()
            except Exception as e:  # the others still stop
                print(f"stopping {type(part).__name__}: {e!r}")


def _signed_tip_tx(chain: Any, payer: Any, n: int) -> Any:
    """A distinct signed transaction paying a Jito tip (what the floor's bundles carry)."""
    from solders.message import MessageV0
    from solders.system_program import TransferParams, transfer
    from solders.transaction import VersionedTransaction

    from sniperbot.venues.solana.jito import TIP_ACCOUNTS

    ixs = [
        transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=payer.pubkey(), lamports=n + 1)),
        transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=TIP_ACCOUNTS[0], lamports=TIP)),
    ]
    message = MessageV0.try_compile(payer.pubkey(), ixs, [], chain.latest_blockhash())
    return VersionedTransaction(message, [payer])


def run_floor(c: Chain, count: int, warmup: int) -> dict[str, Any]:
    """programSubscribe notification -> JitoClient.send_bundle of a pre-signed transaction, in process."""
    from solana.rpc.websocket_api import SolanaWsClient
    from solders.keypair import Keypair

    from sniperbot.venues.solana.jito import JitoClient
    from sniperbot.venues.solana.layouts import LOCAL_AMM_PROGRAM

    payer = Keypair()
    c.chain.airdrop(payer.pubkey(), 10 * 1_000_000_000)
    jito = JitoClient(c.engine.url)
    armed: dict[str, Any] = {}
    errors: list[str] = []
    ready = threading.Event()
    stop = threading.Event()

    async def listen() -> None:
        async with SolanaWsClient(c.chain.ws_url) as ws:
            # the node's watcher subscribes at the venue's commitment ("confirmed"), so does the floor
            await ws.program_subscribe(
                program_id=LOCAL_AMM_PROGRAM, commitment="confirmed", encoding="base64"
            )
            ready.set()
            while not stop.is_set():
                try:
                    await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                tx = armed.pop("tx", None)
                if tx is not None:
                    try:
                        jito.send_bundle([tx])
                    except Exception as e:  # reported; that launch then times out
                        errors.append(repr(e)[:200])

    thread = threading.Thread(target=lambda: asyncio.run(listen()), name="floor", daemon=True)
    thread.start()
    samples: list[int] = []
    lost = 0
    try:
        if not ready.wait(30):
            raise RuntimeError("the floor's subscription did not start")
        for i in range(warmup + count):
            mint = c.mint()
            tx = _signed_tip_tx(c.chain, payer, i)
            wanted = tx.signatures[0]
            armed["tx"] = tx
            t0 = c.pool(mint)
            at = c.engine.bundle_at(t0 - 1.0, lambda t, w=wanted: t.signatures[0] == w, WAIT_S)
            if at is None:
                lost += 1
                continue
            if i >= warmup:
                samples.append(int((at - t0) * 1e9))
    finally:
        stop.set()
        thread.join(5)
        jito.close()
    return {"latency": latency_ms(samples), "lost": lost, "errors": errors}


def _keystore(work: Path, wallet: Any) -> tuple[str, ...]:
    """A keystore holding the wallet ``w`` (kind solana); the node's unlock arguments."""
    ks, pw = work / "ks", work / "ks.pw"
    pw.write_text("bench-solana-pw\n")
    pw.chmod(0o600)
    command = [
        sys.executable, "-m", "sniperbot", "keys", "add", "w", "--exchange", "solana", "--stdin",
        "--keystore", str(ks), "--password-file", str(pw),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        input=json.dumps({"secret_key": str(wallet)}),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=subprocess_env(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"keys add failed: {done.stderr}")
    return ("--keystore", str(ks), "--password-file", str(pw))


def _config(path: Path, c: Chain, launches: int) -> Path:
    from sniperbot.venues.solana.layouts import LOCAL_AMM_PROGRAM, SOL_MINT

    path.write_text(
        "strategies = []\n"
        '[node]\nheartbeat_interval_s = 0.5\nlog_level = "INFO"\n'
        '[journal]\ndurability = "process"\n'
        "[risk]\nmax_position = 1e12\nmax_order_notional = 10.0\nmax_orders_per_second = 50.0\n"
        f"max_spend_per_symbol = 0.5\nmax_spend_per_day = {launches + 10}.0\n"
        f"max_open_positions = {launches + 10}\n"
        f'[[venues]]\nname = "{VENUE}"\nkind = "solana"\nmode = "live"\n'
        f'rpc_url = "{c.chain.rpc_url}"\nws_url = "{c.chain.ws_url}"\ncommitment = "confirmed"\n'
        f'aggregator_url = "{c.agg.url}"\nquote = "SOL"\n'
        f'mints = {{ SOL = "{SOL_MINT}", TKN = "{c.listed}" }}\nsymbols = ["TKN/SOL"]\n'
        f'pools_program = "{LOCAL_AMM_PROGRAM}"\nwallet = "w"\nroute = "jito"\n'
        f'block_engine_url = "{c.engine.url}"\ntip_lamports = {TIP}\n' + SNIPER_TOML
    )
    return path


def run_ours(work: Path, c: Chain, count: int, warmup: int) -> dict[str, Any]:
    """A live sniping node; one launch at a time, timed until its buy bundle reaches the block engine."""
    from solders.keypair import Keypair

    wallet = Keypair()
    c.chain.airdrop(wallet.pubkey(), (count + warmup + 5) * 1_000_000_000)
    unlock = _keystore(work, wallet)
    launches = warmup + count
    config = _config(work / "snipe.toml", c, launches)
    node = NodeProcess(work, config.read_text(), duration_s=3600, name="snipe", extra_args=unlock)
    samples: list[int] = []
    stamps: dict[str, tuple[int, int]] = {}  # symbol -> (start, bundle at the engine), wall ns
    lost = 0
    me = wallet.pubkey()
    try:
        node.wait_ready(180)
        time.sleep(1.0)  # the watcher's subscription, the gateway's first reconciliation
        for i in range(launches):
            mint = c.mint()

            def buy(tx: Any, mint: Any = mint) -> bool:
                keys = list(tx.message.account_keys)
                return bool(keys) and keys[0] == me and mint in keys

            t0 = c.pool(mint)
            at = c.engine.bundle_at(t0 - 1.0, buy, WAIT_S)
            if at is None:
                lost += 1
                node.check_alive()
                continue
            if i >= warmup:
                samples.append(int((at - t0) * 1e9))
                stamps[f"{mint}/SOL"] = (int(t0 * 1e9), int(at * 1e9))
    finally:
        node.stop(60)
    log = SnipeLog(node.log_path, "SOL")
    seen = log.seen_ns
    decided = buy_decisions(node.run_dir)
    to_order = [decided[s] - t0 for s, (t0, _) in stamps.items() if s in decided]
    to_engine = [at - decided[s] for s, (_, at) in stamps.items() if s in decided]
    to_seen = [seen[s] - t0 for s, (t0, _) in stamps.items() if s in seen]
    seen_to_engine = [at - seen[s] for s, (_, at) in stamps.items() if s in seen]
    return {
        "latency": latency_ms(samples),
        "segments": {
            "pool created -> seen (watcher log)": latency_ms(to_seen),
            "pool seen -> bundle at engine": latency_ms(seen_to_engine),
            "pool created -> buy order decided": latency_ms(to_order),
            "order decided -> bundle at engine": latency_ms(to_engine),
        },
        "lost": lost,
        "token_safety_ms": latency_ms(log.safety_ns[warmup:]),
        "report_to_intent_ms": latency_ms(log.to_intent_ns[warmup:]),
        "log_warnings": log.warnings,
    }


def run_swaps(c: Chain, swaps: int, warmup: int) -> dict[str, Any]:
    """Sign + simulate + send per swap (the gateway's clients) against the same calls' raw round trips."""
    import httpx
    from solana.rpc.async_api import AsyncClient
    from solana.rpc.commitment import Confirmed
    from solders.keypair import Keypair
    from solders.message import to_bytes_versioned
    from solders.transaction import VersionedTransaction

    from sniperbot.venues.solana.jito import JitoClient, JitoRoute
    from sniperbot.venues.solana.layouts import SOL_MINT

    wallet = Keypair()
    c.chain.airdrop(wallet.pubkey(), (swaps + warmup) * 2 * 1_000_000_000)
    http = httpx.Client(base_url=c.agg.url, timeout=30)
    raw = httpx.Client(timeout=30)
    route = JitoRoute(JitoClient(c.engine.url))
    engine = c.engine.url.rstrip("/") + "/api/v1/bundles"

    def unsigned(lamports: int) -> VersionedTransaction:
        """The aggregator's swap transaction (a small buy of the listed token), not yet signed: not timed."""
        quote = http.get(
            "/swap/v1/quote",
            params={
                "inputMint": str(SOL_MINT), "outputMint": str(c.listed), "amount": str(lamports),
                "slippageBps": "500", "swapMode": "ExactIn",
            },
        )  # fmt: skip
        quote.raise_for_status()
        body = {
            "quoteResponse": quote.json(),
            "userPublicKey": str(wallet.pubkey()),
            "prioritizationFeeLamports": {"jitoTipLamports": TIP},
        }
        swap = http.post("/swap/v1/swap", json=body)
        swap.raise_for_status()
        return VersionedTransaction.from_bytes(base64.b64decode(swap.json()["swapTransaction"]))

    def sign(tx: VersionedTransaction) -> VersionedTransaction:
        signatures = list(tx.signatures)
        signatures[0] = wallet.sign_message(to_bytes_versioned(tx.message))
        return VersionedTransaction.populate(tx.message, signatures)

    async def measure() -> tuple[list[int], list[int], list[str]]:
        client = AsyncClient(c.chain.rpc_url, commitment=Confirmed, timeout=30, http2=False)
        ours: list[int] = []
        floor: list[int] = []
        errors: list[str] = []
        try:
            for i in range(warmup + swaps):
                # ours: sign, simulate (signatures verified), send the bundle
                tx = unsigned(1_000_000 + i)
                t0 = time.perf_counter_ns()
                signed = sign(tx)
                sim = await client.simulate_transaction(signed, sig_verify=True, commitment=Confirmed)
                if sim.value.err is not None:
                    errors.append(f"simulation: {sim.value.err}")
                    continue
                route.submit(signed)
                t1 = time.perf_counter_ns()
                # floor: the same two calls' raw round trips, their JSON prepared in advance
                other = base64.b64encode(bytes(sign(unsigned(2_000_000 + i)))).decode()
                simulate = json.dumps({
                    "jsonrpc": "2.0", "id": 1, "method": "simulateTransaction",
                    "params": [other, {"encoding": "base64", "sigVerify": True, "commitment": "confirmed"}],
                }).encode()  # fmt: skip
                bundle = json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": 2,
                        "method": "sendBundle",
                        "params": [[other], {"encoding": "base64"}],
                    }
                ).encode()
                headers = {"Content-Type": "application/json"}
                t2 = time.perf_counter_ns()
                a = raw.post(c.chain.rpc_url, content=simulate, headers=headers)
                b = raw.post(engine, content=bundle, headers=headers)
                t3 = time.perf_counter_ns()
                if "error" in a.json() or "error" in b.json():
                    errors.append(f"floor: {a.text[:100]} {b.text[:100]}")
                    continue
                if i >= warmup:
                    ours.append(t1 - t0)
                    floor.append(t3 - t2)
        finally:
            await client.close()
        return ours, floor, errors

    try:
        ours, floor, errors = asyncio.run(measure())
    finally:
        http.close()
        raw.close()
        route.client.close()
    return {"ours": latency_ms(ours), "floor": latency_ms(floor), "errors": errors[:5]}


def main() -> int:
    """Floor, then ours, on one chain; then the per-swap figures; print; emit JSON."""

    def options(parser: Any) -> None:
        parser.add_argument("--count", type=int, default=0, help="measured launches (default 20, quick 5)")
        parser.add_argument("--swaps", type=int, default=0, help="measured swaps (default 100, quick 20)")

    args = parse_args((__doc__ or "").splitlines()[0], options)
    count = args.count or (5 if args.quick else 20)
    swaps = args.swaps or (20 if args.quick else 100)
    warmup = 1
    load = Path("/proc/loadavg").read_text().split()[:3]
    head = f"new pool -> bundle at the block engine: {count} launches after {warmup} warm-up"
    print(f"{head}; load {' '.join(load)}")
    with short_tmp("sb-sol-") as work:
        c = Chain()
        try:
            floor = run_floor(c, count, warmup)
            ours = run_ours(work, c, count, warmup)
            swap = run_swaps(c, swaps, 3)
        finally:
            c.close()
    print(fmt_latency("floor: notification -> sendBundle", floor["latency"], "ms"))
    print(fmt_latency("ours: pool created -> buy bundle", ours["latency"], "ms"))
    for label, stats in ours["segments"].items():
        print(fmt_latency(f"  {label}", stats, "ms"))
    print(fmt_latency("  node log: token_safety.ms (buy)", ours["token_safety_ms"], "ms"))
    print(fmt_latency("  node log: snipe_buy.report_to_intent", ours["report_to_intent_ms"], "ms"))
    r50 = ratio(ours["latency"]["p50"], floor["latency"]["p50"])
    r99 = ratio(ours["latency"]["p99"], floor["latency"]["p99"])
    print(
        f"  ratio ours / floor: p50 {r50}, p99 {r99}; lost: ours {ours['lost']}, floor {floor['lost']}; "
        f"floor errors {floor['errors'] or 'none'}; node warnings {ours['log_warnings'] or 'none'}"
    )
    print(f"sign + simulate + send per swap: {swaps} swaps after 3 warm-up")
    print(fmt_latency("floor: raw simulate + sendBundle", swap["floor"], "ms"))
    print(fmt_latency("ours: sign + simulate + send", swap["ours"], "ms"))
    s50 = ratio(swap["ours"]["p50"], swap["floor"]["p50"])
    s99 = ratio(swap["ours"]["p99"], swap["floor"]["p99"])
    print(f"  ratio ours / floor: p50 {s50}, p99 {s99}; errors {swap['errors'] or 'none'}")
    emit(
        "solana_snipe",
        {
            "count": count,
            "swaps": swaps,
            "load": load,
            "snipe": {"ours_ms": ours, "floor_ms": floor, "ratio_p50": r50, "ratio_p99": r99},
            "swap": {**swap, "ratio_p50": s50, "ratio_p99": s99},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
