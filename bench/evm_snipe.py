"""PairCreated seen -> bundle sent: a new pool on anvil to the sniper's buy bundle at the Flashbots relay.

* **ours**: a real ``sniperbot run`` node with a live ``[[venues]] kind = "evm"`` venue on anvil (its
  wallet unlocked from a keystore, as in production), ``route = "flashbots"`` pointed at the local relay
  (:mod:`tests.evm.relay`: test code, imported here as the other benchmarks import the local exchanges,
  because it is the only relay that runs on loopback) and ``[venues.sniper]`` enabled; the pool watcher
  subscribed over ``ws_url`` (the sniper's fast path, ``confirmations = 0`` for pools). Per launch: the
  token is deployed and approved (not timed), then the ``addLiquidityETH`` that funds the pool is sent;
  anvil automines inside ``eth_sendRawTransaction``, so the clock starts just before that call (the
  figures include its round trip, a few ms, rather than risk starting late). The test tokens create their
  pair in their constructor, as many real launches do: PairCreated comes a block earlier with an empty
  pool, the watcher publishes it and the checker waits for the liquidity; the clock starts when the pool
  can be bought, the moment a sniper races for. The end: the relay receiving the first
  ``eth_sendBundle`` whose transaction is the wallet's buy of that token (the relay stamps every request
  on arrival). The path: the watcher's log -> ``NewPool`` on the bus -> the checker (waits for the
  liquidity, then ``check_token``: three JSON-RPC round trips, see ``bench/token_safety.py``) ->
  ``TokenSafetyReport`` -> the sniper's intent -> risk guard -> executor (journals the order) -> gateway
  (ledger, signs) -> ``eth_callBundle`` -> ``eth_sendBundle``. Blocks come every second from the relay's
  builder (as in the end-to-end test), one launch at a time, the next after the buy bundle arrived.
* **floor, same run, same chain and relay**: the bare pipeline without the node: a thread of this
  process reading the latest block's logs by block hash back to back (PairCreated, then the pair's first
  ``Sync``), and on the funded pool the same ``FlashbotsRoute`` the gateway uses submitting an already
  signed transaction (``eth_callBundle`` then ``eth_sendBundle``). Run before the node starts (its
  watcher starts at the latest block), so the two never compete for the CPU.

Each launch starts once the previous buy is mined: a buy signed while the previous one still waits in a
bundle carries the next nonce, which a relay cannot simulate until that one lands, so the gateway
(rightly) sends it a block later; that measured the launch pacing (about one block, ~0.8 s), not the
node.

Printed: p50/p99 of both, the ratio ours / floor, and the split the node logs (``token_safety.ms``,
``snipe_buy.report_to_intent_ms``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

from eth_account import Account
from web3 import Web3

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
    wait_for,
)

VENUE = "anvil"
DEPLOYER = 0  # anvil key index launching the tokens
WALLET_KEY = 3  # the node's wallet (keystore)
FLOOR_KEY = 5  # the floor's pre-signed transactions
AUTH_KEY = 6  # the floor's Flashbots auth key
WAIT_S = 60.0
SYNC_TOPIC = (
    "0x" + bytes(Web3.keccak(text="Sync(uint112,uint112)")).hex()
)  # per launch, for the bundle at the relay (the machine may be busy)
SNIPER_TOML = """
[venues.sniper]
budget = 0.01
take_profit_pct = 50.0
stop_loss_pct = 25.0
max_hold_s = 3600.0
"""


def _config(path: Path, anvil: Any, uni: Any, listed: str, relay_url: str, launches: int) -> Path:
    """The end-to-end test's node config, with room for ``launches`` positions and the ws subscription."""
    path.write_text(
        "strategies = []\n"
        '[node]\nheartbeat_interval_s = 0.5\nlog_level = "INFO"\n'
        '[journal]\ndurability = "process"\n'
        "[risk]\nmax_position = 1e12\nmax_order_notional = 10.0\nmax_orders_per_second = 50.0\n"
        f"max_spend_per_symbol = 0.5\nmax_spend_per_day = {launches + 10}.0\n"
        f"max_open_positions = {launches + 10}\n"
        f'[[venues]]\nname = "{VENUE}"\nkind = "evm"\nmode = "live"\nchain_id = 31337\n'
        f'rpc_url = "{anvil.rpc_url}"\nws_url = "{anvil.ws_url}"\n'
        f'router = "{uni.router}"\nfactory = "{uni.factory}"\n'
        f'quote = "WETH"\ntokens = {{ WETH = "{uni.weth}", TKN = "{listed}" }}\n'
        'symbols = ["TKN/WETH"]\nwallet = "w"\nroute = "flashbots"\n'
        f'relay_url = "{relay_url}"\nconfirmations = 1\n' + SNIPER_TOML
    )
    return path


def _keystore(work: Path) -> tuple[str, ...]:
    """A keystore holding the wallet ``w``; the node's unlock arguments."""
    from sniperbot.venues.evm.devchain import ANVIL_KEYS

    ks, pw = work / "ks", work / "ks.pw"
    pw.write_text("bench-snipe-pw\n")
    pw.chmod(0o600)
    command = [
        sys.executable, "-m", "sniperbot", "keys", "add", "w", "--exchange", "evm", "--stdin",
        "--keystore", str(ks), "--password-file", str(pw),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        input=json.dumps({"private_key": ANVIL_KEYS[WALLET_KEY]}),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=subprocess_env(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"keys add failed: {done.stderr}")
    return ("--keystore", str(ks), "--password-file", str(pw))


class Launcher:
    """Launches PlainTokens; :meth:`pair_created` sends the liquidity add and returns the start stamp."""

    def __init__(self, chain: Any) -> None:
        from sniperbot.venues.evm.devchain import ANVIL_KEYS

        self.chain, self.w3, self.key = chain, chain.anvil.w3, ANVIL_KEYS[DEPLOYER]
        self.owner = Account.from_key(self.key).address

    def token(self) -> str:
        """Deploy and approve a token (public, mined at once); not timed."""
        from sniperbot.venues.evm.devchain import erc20, send_tx
        from tests.evm.tokens import POOL_TOKENS, default_args, deploy_token

        with self.chain.public():
            token = deploy_token(self.w3, self.key, "PlainToken", *default_args("PlainToken", self.chain.uni))
            approve = erc20(self.w3, token).functions.approve(self.chain.uni.router, POOL_TOKENS)
            send_tx(self.w3, self.key, approve.build_transaction({"from": self.owner, "gas": 100_000}))
        return token

    def pair_created(self, token: str) -> float:
        """Send the ``addLiquidityETH`` that creates the pair; wall clock when its block is mined."""
        from sniperbot.venues.evm.devchain import router_contract
        from tests.evm.tokens import DEAD, POOL_ETH, POOL_TOKENS

        w3 = self.w3
        deadline = w3.eth.get_block("latest")["timestamp"] + 3600
        add = router_contract(w3, self.chain.uni).functions.addLiquidityETH(
            token, POOL_TOKENS, 0, 0, DEAD, deadline
        )
        base = w3.eth.get_block("latest")["baseFeePerGas"]
        tx = add.build_transaction(
            {
                "from": self.owner,
                "value": POOL_ETH,
                "gas": 5_000_000,
                "nonce": w3.eth.get_transaction_count(self.owner, "pending"),
                "maxPriorityFeePerGas": 10**9,
                "maxFeePerGas": 2 * base + 10**9,
                "chainId": 31337,
            }
        )
        raw = Account.sign_transaction(tx, self.key).raw_transaction
        with self.chain.public():
            # The start is stamped before the send (the block is mined inside it: automine): the
            # figures include the send's round trip, a few ms at most, rather than risk starting late.
            t0 = time.time()
            h = w3.eth.send_raw_transaction(raw)
        receipt = w3.eth.wait_for_transaction_receipt(h, timeout=30, poll_latency=0.05)
        if receipt["status"] != 1:
            raise RuntimeError(f"addLiquidityETH of {token} reverted")
        return t0


def _bundle_at(relay: Any, since: float, match: Any, timeout_s: float) -> float | None:
    """Arrival stamp of the first accepted ``eth_sendBundle`` after ``since`` whose txs ``match``."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        requests = list(relay.requests)
        for r in requests[seen:]:
            if r["method"] != "eth_sendBundle" or r.get("refused") or r["at"] < since:
                continue
            txs = [str(t).lower() for t in (r["params"] or [{}])[0].get("txs", [])]
            if match(txs):
                return float(r["at"])
        seen = len(requests)
        time.sleep(0.002)
    return None


def _pair(log: Any) -> str:
    """The pair address of a PairCreated log (the first word of its data)."""
    data = bytes(log["data"])
    return data[12:32].hex()


def run_floor(chain: Any, launcher: Launcher, count: int, warmup: int) -> dict[str, Any]:
    """WebSocket PairCreated log -> FlashbotsRoute.submit of a pre-signed transaction, in this process."""
    from sniperbot.venues.evm.devchain import ANVIL_KEYS
    from sniperbot.venues.evm.flashbots import FlashbotsRoute
    from sniperbot.venues.evm.pool_watcher import PAIR_CREATED_TOPIC

    w3 = chain.anvil.w3
    route = FlashbotsRoute(w3, chain.relay.url, ANVIL_KEYS[AUTH_KEY])
    me = Account.from_key(ANVIL_KEYS[FLOOR_KEY]).address
    armed: dict[str, bytes] = {}  # the transaction to send on the next PairCreated
    stop = threading.Event()
    errors: list[BaseException] = []
    factory = chain.uni.factory.lower()[2:]

    def listen() -> None:
        # The latest block's logs by block hash, in a tight loop (no sleep but the round trips). Not a
        # cursor of block numbers and not a subscription: the relay simulates bundles by mining a block
        # and reverting it, so a block number comes back with other contents (the node's watcher handles
        # that as a reorg), and anvil's range queries and log subscriptions then miss the new block.
        # The pair is created by the token's constructor (empty); the pool is buyable at its first Sync.
        hashes: set[str] = set()
        pairs: set[str] = set()  # created, not yet funded
        w3 = Web3(Web3.HTTPProvider(chain.anvil.rpc_url))  # its own client: the main thread launches
        while not stop.is_set():
            try:
                block = w3.eth.get_block("latest")
                h = "0x" + bytes(block["hash"]).hex()
                if h in hashes:
                    continue
                hashes.add(h)
                logs = w3.eth.get_logs({"blockHash": h, "topics": [[PAIR_CREATED_TOPIC, SYNC_TOPIC]]})  # type: ignore[arg-type,typeddict-item]
                funded = False
                for log in logs:
                    topic0 = "0x" + bytes(log["topics"][0]).hex()
                    address = str(log["address"]).lower()[2:]
                    if topic0 == PAIR_CREATED_TOPIC and address == factory:
                        pairs.add(_pair(log))
                    elif topic0 == SYNC_TOPIC and address in pairs:
                        pairs.discard(address)
                        funded = True
                raw = armed.pop("raw", None) if funded else None
                if raw is not None:
                    route.submit([raw], int(block["number"]))
            except Exception as e:  # reported, the launch then times out
                errors.append(e)
                time.sleep(0.05)

    thread = threading.Thread(target=listen, name="floor", daemon=True)
    thread.start()
    samples: list[int] = []
    lost = 0
    try:
        for i in range(warmup + count):
            token = launcher.token()
            base = w3.eth.get_block("latest")["baseFeePerGas"]
            tx = {
                "to": me,
                "value": 0,
                "gas": 21_000,
                "nonce": w3.eth.get_transaction_count(me),
                "maxPriorityFeePerGas": 10**9,
                "maxFeePerGas": 4 * base + 10**9,
                "chainId": 31337,
            }
            raw = bytes(Account.sign_transaction(tx, ANVIL_KEYS[FLOOR_KEY]).raw_transaction)
            wanted = "0x" + raw.hex()
            armed["raw"] = raw
            t0 = launcher.pair_created(token)
            at = _bundle_at(chain.relay, t0 - 1.0, lambda txs, w=wanted: w in txs, WAIT_S)
            if at is None:
                lost += 1
                continue
            if i >= warmup:
                samples.append(int((at - t0) * 1e9))
            # included by the next block: the next launch's transaction takes the next nonce
            wait_for(lambda n=tx["nonce"]: w3.eth.get_transaction_count(me) > n, WAIT_S, "floor tx mined")
    finally:
        stop.set()
        thread.join(5)
        route.client.close()
    return {"latency": latency_ms(samples), "lost": lost, "errors": [repr(e)[:200] for e in errors]}


def run_ours(work: Path, chain: Any, launcher: Launcher, count: int, warmup: int) -> dict[str, Any]:
    """A live sniping node; one launch at a time, timed until its buy bundle reaches the relay."""
    from sniperbot.venues.evm.devchain import ANVIL_KEYS

    wallet = Account.from_key(ANVIL_KEYS[WALLET_KEY]).address
    unlock = _keystore(work)
    launches = warmup + count
    config = _config(
        work / "snipe.toml", chain.anvil, chain.uni, chain.listed.token, chain.relay.url, launches
    )
    node = NodeProcess(work, config.read_text(), duration_s=3600, name="snipe", extra_args=unlock)
    samples: list[int] = []
    stamps: dict[str, tuple[int, int]] = {}  # symbol -> (start, bundle at the relay), wall ns
    lost = 0
    try:
        node.wait_ready(180)
        time.sleep(1.0)  # the watcher's subscription and first scan
        for i in range(launches):
            token = launcher.token()
            needle = token.lower()[2:]  # the swap's path carries the token address

            def buy(txs: list[str], needle: str = needle) -> bool:
                return any(
                    needle in t and Account.recover_transaction(t).lower() == wallet.lower() for t in txs
                )

            nonce = chain.anvil.w3.eth.get_transaction_count(wallet)
            t0 = launcher.pair_created(token)
            at = _bundle_at(chain.relay, t0 - 1.0, buy, WAIT_S)
            if at is None:
                lost += 1
                node.check_alive()
                continue
            # The next launch once this buy is mined: a buy signed while the previous one is still in
            # a bundle has the next nonce, which no relay can simulate before that one lands (the
            # gateway rightly waits a block). Launches are rare; this measures the path, not the queue.
            wait_for(
                lambda n=nonce: chain.anvil.w3.eth.get_transaction_count(wallet) > n,
                WAIT_S,
                f"launch {i}: the buy mined",
            )
            if i >= warmup:
                samples.append(int((at - t0) * 1e9))
                stamps[f"{token}/WETH"] = (int(t0 * 1e9), int(at * 1e9))
    finally:
        node.stop(60)
    log = SnipeLog(node.log_path, "WETH")
    # Where the time goes (wall clock, same machine): the risk guard's decision is the journaled buy
    # Order's ts_ns, matched to its launch by symbol.
    decided = buy_decisions(node.run_dir)
    to_order = [decided[sym] - t0 for sym, (t0, _) in stamps.items() if sym in decided]
    to_relay = [at - decided[sym] for sym, (_, at) in stamps.items() if sym in decided]
    return {
        "latency": latency_ms(samples),
        "segments": {
            "funded pool -> buy order decided": latency_ms(to_order),
            "order decided -> bundle at relay": latency_ms(to_relay),
        },
        "lost": lost,
        "token_safety_ms": latency_ms(log.safety_ns[warmup:]),
        "report_to_intent_ms": latency_ms(log.to_intent_ns[warmup:]),
        "log_warnings": log.warnings,
    }


def main() -> int:
    """Floor, then ours, on one chain and relay; print; emit JSON."""
    from sniperbot.venues.evm.devchain import Anvil, deploy_uniswap
    from tests.evm.test_sniper import Chain  # the end-to-end test's chain: relay + a block a second

    def options(parser: Any) -> None:
        parser.add_argument("--count", type=int, default=0, help="measured launches (default 20, quick 5)")

    args = parse_args((__doc__ or "").splitlines()[0], options)
    count = args.count or (5 if args.quick else 20)
    warmup = 1
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"PairCreated -> bundle at the relay: {count} launches after {warmup} warm-up; load {' '.join(load)}"
    )
    with short_tmp("sb-snp-") as work, Anvil() as anvil:
        chain = Chain(anvil, deploy_uniswap(anvil.w3))
        try:
            launcher = Launcher(chain)
            floor = run_floor(chain, launcher, count, warmup)
            ours = run_ours(work, chain, launcher, count, warmup)
        finally:
            chain.close()
    print(fmt_latency("floor: block logs -> call+sendBundle", floor["latency"], "ms"))
    print(fmt_latency("ours: pool funded -> buy bundle at relay", ours["latency"], "ms"))
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
    emit(
        "evm_snipe",
        {
            "count": count,
            "load": load,
            "ours_ms": ours,
            "floor_ms": floor,
            "ratio_p50": r50,
            "ratio_p99": r99,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
