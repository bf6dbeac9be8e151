"""The EVM venue as a configured place in a real node (issue #12 point 1): anvil with the real Uniswap V2.

Real components end to end: a fresh anvil chain (``tests/evm/conftest.py``), Uniswap's published
Factory/Router02/WETH9, a plain ERC-20 with liquidity, ``sniperbot run`` with a ``[[venues]] kind =
"evm"`` entry, and the price moved on chain by swaps of another account. Every claim about prices is
checked against the chain itself (reserves, ``getAmountsIn``/``getAmountsOut``, the swap receipts).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq
from eth_account import Account
from web3 import Web3

from sniperbot.keystore import Credentials
from sniperbot.messages import FeedStatus, Quote, TradeTick, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import Subscriber, split_message
from sniperbot.venues.evm.devchain import (
    ANVIL_KEYS,
    Anvil,
    UniswapDeployment,
    add_liquidity_eth,
    deploy_plain_token,
    erc20,
    pair_contract,
    router_contract,
    send_tx,
)
from sniperbot.venues.evm.feed import POLL_S
from sniperbot.venues.evm.feed import _Worker as FeedChainThread
from tests.conftest import ROOT, RunningNode, eventually, sniperbot

VENUE = "anvil"
SYMBOL = "TKN/WETH"
MOVER_KEY = ANVIL_KEYS[1]  # another account: moves the pool's price
WALLET_KEY = ANVIL_KEYS[2]  # the node's wallet in the keystore checks
PASSWORD = "evm-node-keystore-pw"
FEE_BPS, SLIPPAGE_BPS = 10.0, 1.0  # the paper gateway's cost model ([execution])

_NODE = f"""
[node]
heartbeat_interval_s = 0.2
heartbeat_liveness = 5
log_level = "INFO"

[journal]
durability = "process"

[risk]
max_position = 10000.0

[execution]
fee_bps = {FEE_BPS}
slippage_bps = {SLIPPAGE_BPS}
"""


@dataclass
class Pool:
    """A TKN/WETH pool on anvil: 100,000 TKN against 10 ETH (0.0001 WETH per TKN)."""

    anvil: Anvil
    uni: UniswapDeployment
    token: str
    pair: str

    def reserves(self, block: int | str = "latest") -> tuple[int, int]:
        """(TKN, WETH) reserves in wei at ``block``."""
        pair = pair_contract(self.anvil.w3, self.pair)
        r0, r1, _ = pair.functions.getReserves().call(block_identifier=block)
        token0 = pair.functions.token0().call()
        return (r0, r1) if token0.lower() == self.token.lower() else (r1, r0)

    def mid(self, block: int | str = "latest") -> float:
        """WETH per TKN from the reserves (both tokens have 18 decimals)."""
        tkn, weth = self.reserves(block)
        return weth / tkn


@pytest.fixture
def pool(anvil: Anvil, uniswap: UniswapDeployment) -> Pool:
    """A plain ERC-20 with liquidity on the real Uniswap V2."""
    token = deploy_plain_token(anvil.w3, ANVIL_KEYS[0], 10**24)
    pair = add_liquidity_eth(anvil.w3, uniswap, ANVIL_KEYS[0], token, 10**23, 10 * 10**18)
    return Pool(anvil, uniswap, token, pair)


def venue_toml(pool: Pool, *, mode: str = "paper", chain_id: int = 31337, extra: str = "") -> str:
    """One ``[[venues]] kind = "evm"`` entry on the pool's chain."""
    return (
        f'[[venues]]\nname = "{VENUE}"\nkind = "evm"\nmode = "{mode}"\nchain_id = {chain_id}\n'
        f'rpc_url = "{pool.anvil.rpc_url}"\nrouter = "{pool.uni.router}"\nfactory = "{pool.uni.factory}"\n'
        f'quote = "WETH"\ntokens = {{ WETH = "{pool.uni.weth}", TKN = "{pool.token}" }}\n'
        f'symbols = ["{SYMBOL}"]\n{extra}\n'
    )


def strategy_toml(quantity: float = 100.0) -> str:
    """A fast sma_cross on TKN/WETH (0.2 s bars, 2/4): it trades within seconds on a moving pool."""
    return (
        f'[[strategies]]\nid = "sma_evm"\nvenue = "{VENUE}"\nsymbol = "{SYMBOL}"\nquantity = {quantity}\n'
        "bar_interval_s = 0.2\nparams = { fast = 2, slow = 4 }\n"
    )


def write_config(path: Path, venue: str, strategies: bool = True) -> Path:
    """A node config with the venue (and the strategy, else ``strategies = []``)."""
    body = (
        ("" if strategies else "strategies = []\n") + _NODE + venue + (strategy_toml() if strategies else "")
    )
    path.write_text(body)
    return path


def refused(config: Path, run_dir: Path, *extra: str) -> str:
    """Run a node that must refuse to start: exit 2, nothing created; returns its error."""
    result = sniperbot("run", "--config", str(config), "--run-dir", str(run_dir), "--duration", "5", *extra)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert not (run_dir / "journal").exists(), "a refused node must not create its run dir"
    return result.stderr


class BusWatch:
    """Every market-data and feed-status message of the venue on the node's bus, in arrival order."""

    def __init__(self, zctx: zmq.Context, run_dir: Path) -> None:
        self.sub = Subscriber(zctx, RunDir(run_dir).bus_out, (topic.market(VENUE), topic.feed_status(VENUE)))
        self.seen: list[Any] = []

    def pump(self) -> list[Any]:
        """Take what arrived; return everything seen so far."""
        while not self.sub.socket.closed and self.sub.socket.poll(0):
            _, frame = split_message(self.sub.socket.recv())
            self.seen.append(decode_envelope(frame).payload)
        return self.seen

    def of(self, kind: type[Any]) -> list[Any]:
        """Every message of ``kind`` seen so far."""
        return [m for m in self.pump() if isinstance(m, kind)]


@dataclass
class Mover:
    """Another account swapping on the pool in a thread: 5 buys then 5 sells of ~0.08 ETH, over and over.

    Records the pool's mid after each swap and the swap receipts (the chain's own record).
    """

    pool: Pool
    mids: list[float] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.w3 = Web3(Web3.HTTPProvider(self.pool.anvil.rpc_url, request_kwargs={"timeout": 30}))
        self.me = Account.from_key(MOVER_KEY).address

    def start(self) -> Mover:
        """Swap until stopped (after :meth:`approve`)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop swapping (the current swap completes)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)
        if self.error is not None:
            raise self.error

    def _tx(self, call: Any, value: int = 0) -> dict[str, Any]:
        tx = call.build_transaction({"from": self.me, "value": value, "gas": 300_000, "nonce": 0})
        tx["nonce"] = self.w3.eth.get_transaction_count(self.me, "pending")
        return send_tx(self.w3, MOVER_KEY, tx)

    def approve(self) -> None:
        """Let the router take the account's TKN; record the pool's mid before any swap."""
        self.mids.append(self.pool.mid())
        self._tx(erc20(self.w3, self.pool.token).functions.approve(self.pool.uni.router, 2**255))

    def swap(self, buy: bool) -> dict[str, Any]:
        """Buy TKN for 0.08 ETH, or sell 800 TKN (~0.08 ETH); the receipt (the pool's mid recorded)."""
        router = router_contract(self.w3, self.pool.uni)
        weth, token = self.pool.uni.weth, self.pool.token
        deadline = self.w3.eth.get_block("latest")["timestamp"] + 600
        if buy:
            receipt = self._tx(
                router.functions.swapExactETHForTokens(0, [weth, token], self.me, deadline), value=8 * 10**16
            )
        else:
            amount = 800 * 10**18
            receipt = self._tx(
                router.functions.swapExactTokensForETH(amount, 0, [token, weth], self.me, deadline)
            )
        self.receipts.append(receipt)
        self.mids.append(self.pool.mid(receipt["blockNumber"]))
        return receipt

    def _run(self) -> None:
        try:
            step = 0
            while not self._stop.is_set():
                self.swap(buy=step % 10 < 5)
                step += 1
                self._stop.wait(0.12)
        except BaseException as e:  # surfaced by stop()
            self.error = e


def journal_json(run_dir: Path, what: str) -> list[dict[str, Any]]:
    """``sniperbot journal --run-dir DIR fills|orders --json``."""
    result = sniperbot("journal", "--run-dir", str(run_dir), what, "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def close(a: float, b: float, rel: float) -> bool:
    """Whether ``a`` and ``b`` differ by at most ``rel`` relative to ``b``."""
    return abs(a - b) <= rel * abs(b)


SWAP_TOPIC = Web3.keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)")


def swap_trade(pool: Pool, receipt: dict[str, Any]) -> tuple[int, str, float, float]:
    """(trade_id, side, size in TKN, price in WETH per TKN) of the Swap log in ``receipt``, from the chain."""
    (log,) = [lg for lg in receipt["logs"] if lg["topics"][0] == SWAP_TOPIC and lg["address"] == pool.pair]
    data = bytes(log["data"])
    a0_in, a1_in, a0_out, a1_out = (int.from_bytes(data[32 * i : 32 * i + 32], "big") for i in range(4))
    token0 = pair_contract(pool.anvil.w3, pool.pair).functions.token0().call()
    if token0.lower() == pool.token.lower():
        tkn_in, weth_in, tkn_out, weth_out = a0_in, a1_in, a0_out, a1_out
    else:
        tkn_in, weth_in, tkn_out, weth_out = a1_in, a0_in, a1_out, a0_out
    trade_id = receipt["blockNumber"] * 100_000 + log["logIndex"]
    if tkn_out:
        return trade_id, "buy", tkn_out / 1e18, weth_in / tkn_out
    return trade_id, "sell", tkn_in / 1e18, weth_out / tkn_in


@pytest.mark.parametrize("heads", ["polled", "subscribed"])
def test_paper_node_quotes_the_pool_and_fills_at_its_price(pool: Pool, short_tmp: Path, heads: str) -> None:
    """``mode = "paper"``: quotes and trades from the chain each block, paper fills at the pool's price.

    New heads polled over HTTP, or announced by the WebSocket subscription when ``ws_url`` is set.
    """
    w3 = pool.anvil.w3
    router = router_contract(w3, pool.uni)
    path_buy, path_sell = [pool.uni.weth, pool.token], [pool.token, pool.uni.weth]
    extra = f'ws_url = "{pool.anvil.ws_url}"' if heads == "subscribed" else ""
    config = write_config(short_tmp / "paper.toml", venue_toml(pool, extra=extra))
    node = RunningNode(short_tmp / "run", config)
    zctx = zmq.Context()
    mover = Mover(pool)
    bus = BusWatch(zctx, node.run_dir)  # ipc: connects once the node has bound its bus
    try:
        workers = node.wait_ready()
        assert {f"feed.{VENUE}", f"paper.{VENUE}", f"executor.{VENUE}"} <= set(workers), sorted(workers)
        assert f"gateway.{VENUE}" not in workers
        eventually(lambda: bus.of(FeedStatus), 30, what="the feed's status (the subscription is live)")
        # One swap: the quote of the block it landed in. Its touch is what the router really charges
        # for a tiny trade in that state, its sizes what it charges 1 % more for on average.
        mover.approve()
        block = mover.swap(buy=True)["blockNumber"]
        mid = pool.mid(block)
        first: Quote = eventually(
            lambda: next((q for q in bus.of(Quote) if close((q.bid * q.ask) ** 0.5, mid, 1e-9)), None),
            30,
            what="the quote of the swap's block",
        )
        tiny = 10**15  # 0.001 TKN

        def amount_in(out: int) -> float:
            return int(router.functions.getAmountsIn(out, path_buy).call(block_identifier=block)[0]) / out

        def amount_out(sold: int) -> float:
            return int(router.functions.getAmountsOut(sold, path_sell).call(block_identifier=block)[1]) / sold

        assert close(first.ask, amount_in(tiny), 1e-6) and close(first.bid, amount_out(tiny), 1e-6), first
        assert close(amount_in(int(first.ask_size * 1e18)), first.ask * 1.01, 1e-3), first
        assert close(amount_out(int(first.bid_size * 1e18)), first.bid * 0.99, 1e-3), first

        mover.start()
        fills = eventually(
            lambda: len(f := journal_json(node.run_dir, "fills")) >= 2 and f, 60, what="paper fills"
        )
        receipt = mover.receipts[0]
        trade_id, side, size, price = swap_trade(pool, receipt)
        tick: TradeTick = eventually(
            lambda: next((t for t in bus.of(TradeTick) if t.trade_id == trade_id), None),
            30,
            what="the swap's tick",
        )
        status = node.admin("status")
    finally:
        with contextlib.suppress(Exception):
            mover.stop()
        code = node.stop()
        bus.pump()  # everything the node published, before the socket closes
        zctx.destroy(linger=0)
    assert code == 0, node.log()
    assert mover.error is None, mover.error
    # Trades: the other account's swap, as the chain recorded it; ids increase.
    assert (tick.symbol, tick.side) == (SYMBOL, side) and close(tick.size, size, 1e-12), (tick, size)
    assert close(tick.price, price, 1e-12), (tick.price, price)
    ids = [t.trade_id for t in bus.of(TradeTick)]
    assert ids == sorted(set(ids)), ids
    # Quotes: every one is the pool's state after some block (mid from the reserves, 0.3 % fee each side).
    quotes = bus.of(Quote)
    assert len(quotes) >= 5, quotes
    for q in quotes:
        mid = (q.bid * q.ask) ** 0.5
        assert any(close(mid, m, 1e-9) for m in mover.mids), (mid, mover.mids)
        assert close(q.ask / q.bid, 1 / 0.997**2, 1e-9), q
    # Paper fills: at the touch of a quote the node saw (plus the configured slippage), never invented.
    for fill in fills:
        assert fill["venue"] == VENUE and fill["symbol"] == SYMBOL, fill
        touches = (
            [q.ask * (1 + SLIPPAGE_BPS / 1e4) for q in quotes]
            if fill["side"] == "buy"
            else [q.bid * (1 - SLIPPAGE_BPS / 1e4) for q in quotes]
        )
        assert any(close(fill["price"], t, 1e-9) for t in touches), (fill, touches)
        assert min(mover.mids) * 0.99 < fill["price"] < max(mover.mids) * 1.01, fill
    feed = status["venues"][VENUE]["feed"]
    assert status["venues"][VENUE]["kind"] == "evm" and feed["connected"] and not feed["stale"], status
    assert status["fills"] >= 2, status
    assert [s for s in bus.of(FeedStatus) if s.connected and not s.stale], "no fresh FeedStatus"
    assert ('"event": "feed_subscribed"' in node.log()) == (heads == "subscribed"), node.log()[-3000:]


# -- refusals: nothing starts ------------------------------------------------------------------


def test_a_chain_id_mismatch_stops_the_node_with_exit_2_naming_chain_id(pool: Pool, short_tmp: Path) -> None:
    """The RPC answers eth_chainId 31337, the config says 1: refused before any process starts."""
    config = write_config(short_tmp / "chain.toml", venue_toml(pool, chain_id=1), strategies=False)
    error = refused(config, short_tmp / "run")
    assert "venues[0].chain_id" in error and "eth_chainId = 31337" in error, error


def test_bad_evm_configs_are_refused_naming_the_field(pool: Pool, short_tmp: Path) -> None:
    """Each check at load names its field (in process: the same ConfigError ``sniperbot run`` exits 2 on);
    a sample through ``sniperbot run``, and the chain checks: no contract at an address."""
    from sniperbot.config import ConfigError, decode_config

    good = venue_toml(pool)
    router, weth, token = pool.uni.router, pool.uni.weth, pool.token
    mistyped = router[:-1] + ("A" if router[-1] != "A" else "B")  # one character off: checksum fails
    cases = [
        (good.replace(router, mistyped), "venues[0].router", "checksum"),
        (good.replace(router, router[:-1]), "venues[0].router", "not an address"),
        (good.replace(f'TKN = "{token}"', f'TKN = "{weth}"'), "venues[0].tokens.TKN", "same address"),
        (good.replace('quote = "WETH"', 'quote = "USDC"'), "venues[0].quote", "not listed in tokens"),
        (good.replace('"TKN/WETH"', '"TKN/USDC"'), "venues[0].symbols", "not quoted in"),
        (good.replace('"TKN/WETH"', '"PEPE/WETH"'), "venues[0].symbols", "'PEPE' is not listed"),
        (good.replace('"TKN/WETH"', '"TKN-WETH"'), "venues[0].symbols", "not a pair"),
        (good.replace("http://", "ftp://"), "venues[0].rpc_url", "http or https"),
        (venue_toml(pool, extra='ws_url = "http://127.0.0.1:1"'), "venues[0].ws_url", "ws or wss"),
        (venue_toml(pool, mode="live"), "venues[0].wallet", "needs a keystore entry"),
        (venue_toml(pool, extra='route = "flashbots"'), "venues[0].relay_url", "needs the relay"),
        (venue_toml(pool, extra='route = "private"'), "venues[0].route", "Invalid enum value"),
        (venue_toml(pool, extra='relay_url = "ws://x"'), "venues[0].relay_url", "http or https"),
        (venue_toml(pool, extra="slippage_bps = 0"), "venues[0].slippage_bps", ">= 1"),
        (venue_toml(pool, extra="slippage_bps = 5001"), "venues[0].slippage_bps", "<= 5000"),
        (venue_toml(pool, extra="confirmations = -1"), "venues[0].confirmations", ">= 0"),
        (venue_toml(pool, extra="max_fee_gwei = 0.0"), "venues[0].max_fee_gwei", "> 0"),
        (venue_toml(pool, extra="priority_fee_gwei = 0.0"), "venues[0].priority_fee_gwei", "> 0"),
        (venue_toml(pool, extra="priority_fee_gwei = 301.0"), "venues[0].priority_fee_gwei", "exceeds"),
        (venue_toml(pool, extra="replace_bump_pct = 5.0"), "venues[0].replace_bump_pct", ">= 10"),
        (venue_toml(pool, extra="replace_after_blocks = 0"), "venues[0].replace_after_blocks", ">= 1"),
        (venue_toml(pool, extra="deadline_s = 0.0"), "venues[0].deadline_s", "> 0"),
        (venue_toml(pool, chain_id=0), "venues[0].chain_id", ">= 1"),
        (venue_toml(pool, extra="wallet = 7"), "venues[0].wallet", "Expected `str`"),
    ]
    for venue, path, what in cases:
        with pytest.raises(ConfigError) as caught:
            decode_config("strategies = []\n" + _NODE + venue)
        message = str(caught.value)
        assert f"at {path}: " in message and what in message, (path, message)
    decode_config("strategies = []\n" + _NODE + good)  # the good one loads
    run_dir = short_tmp / "run"
    for index, (venue, path, _) in enumerate(cases[:1] + cases[9:10]):
        assert path in refused(write_config(short_tmp / f"bad{index}.toml", venue, strategies=False), run_dir)
    # After load, on the chain: an address without code (the mover's account) is no factory.
    mover = Account.from_key(MOVER_KEY).address
    no_code = write_config(short_tmp / "nocode.toml", good.replace(pool.uni.factory, mover), strategies=False)
    error = refused(no_code, run_dir)
    assert "venues[0].factory: no contract at" in error, error


def test_an_unreachable_rpc_does_not_stop_the_node_and_the_feed_says_so(
    anvil: Anvil, short_tmp: Path
) -> None:
    """Like an unreachable exchange: a warning at start, the node runs, the feed is disconnected and stale."""
    down = Anvil()  # a free port nobody listens on
    addresses = [Account.from_key(k).address for k in ANVIL_KEYS[:4]]
    venue = (
        f'[[venues]]\nname = "{VENUE}"\nkind = "evm"\nchain_id = 31337\nrpc_url = "{down.rpc_url}"\n'
        f'router = "{addresses[0]}"\nfactory = "{addresses[1]}"\nquote = "WETH"\n'
        f'tokens = {{ WETH = "{addresses[2]}", TKN = "{addresses[3]}" }}\nsymbols = ["{SYMBOL}"]\n'
    )
    node = RunningNode(short_tmp / "run", write_config(short_tmp / "down.toml", venue))
    try:
        node.wait_ready()
        feed = eventually(
            lambda: node.admin("status")["venues"][VENUE]["feed"], 30, what="the feed's first status"
        )
        assert not feed["connected"] and feed["stale"], feed
        (warning,) = [line for line in node.log().splitlines() if "cannot reach rpc_url" in line]
        assert "venues[0] (anvil)" in warning and down.rpc_url not in warning, warning
    finally:
        assert node.stop() == 0, node.log()


# -- the wallet: keystore entry, unlock, sealed into the gateway's launch only -----------------

RELAY_KEY = ANVIL_KEYS[3]  # a Flashbots reputation key (holds no funds)
#: What ``EvmVenueConfig.live_gateway`` hands ``EvmGateway`` (i12_shapes.md); the topology adds ``executor``.
GATEWAY_KWARGS = {
    "venue", "chain_id", "rpc_url", "router", "tokens", "quote", "symbols", "route", "relay_url",
    "slippage_bps", "deadline_s", "confirmations", "max_fee_gwei", "priority_fee_gwei",
    "replace_after_blocks", "replace_bump_pct",
}  # fmt: skip


def keys_add(keystore: Path, name: str, kind: str, fields: dict[str, str]) -> Any:
    """``sniperbot keys add NAME --exchange KIND --stdin`` (the operator's way); the completed process."""
    password_file = keystore.parent / "ks.pw"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    command = [
        sys.executable, "-m", "sniperbot", "keys", "add", name, "--exchange", kind, "--stdin",
        "--keystore", str(keystore), "--password-file", str(password_file),
    ]  # fmt: skip
    return subprocess.run(
        command, input=json.dumps(fields), capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_keys_add_stores_an_evm_wallet_and_refuses_a_malformed_key(short_tmp: Path) -> None:
    """Kind ``evm``, field ``private_key``: 32 bytes in hex, checked before anything is stored."""
    ks = short_tmp / "ks"
    bad = [
        ({"private_key": "0x1234"}, "'private_key' must be 32 bytes in hex"),
        ({"private_key": "0x" + "g" * 64}, "'private_key' must be 32 bytes in hex"),
        ({"private_key": "0x" + "0" * 64}, "'private_key' is not a valid secp256k1 private key"),
        ({"private_key": "0x" + "f" * 64}, "'private_key' is not a valid secp256k1 private key"),
        ({"privateKey": WALLET_KEY}, "'privateKey' is not an evm wallet field"),
        ({"private_key": WALLET_KEY, "relay_private_key": "0xabc"}, "'relay_private_key' must be 32 bytes"),
        ({}, "evm needs the credential field(s) private_key"),
    ]
    for fields, why in bad:
        result = keys_add(ks, "w", "evm", fields)
        assert result.returncode == 2 and why in result.stderr, (fields, result.stderr)
        assert WALLET_KEY[2:] not in result.stderr + result.stdout
        assert not (ks / "w.key").exists(), "a refused key must not be stored"
    result = keys_add(ks, "w", "evm", {"private_key": WALLET_KEY})
    assert result.returncode == 0, result.stderr
    assert WALLET_KEY[2:] not in result.stderr + result.stdout
    listed = sniperbot("keys", "list", "--keystore", str(ks), "--json")
    assert [(e["name"], e["exchange"]) for e in json.loads(listed.stdout)] == [("w", "evm")], listed.stdout
    from sniperbot.keystore import Keystore

    assert Keystore.open(ks, PASSWORD).get("w")["private_key"].reveal() == WALLET_KEY


def test_a_live_venue_unlocks_its_wallet_and_only_its_gateway_launch_carries_it(
    pool: Pool, short_tmp: Path
) -> None:
    """``mode = "live"``: the wallet (and the relay's reputation key) are unlocked before any process starts
    and sealed into ``gateway.<venue>``'s launch only; the gateway's args hold no secret."""
    from sniperbot.config import check_venues, load_config
    from sniperbot.keystore import unlock_for_config
    from sniperbot.node import Node
    from sniperbot.supervision import ChildSpec

    ks = short_tmp / "ks"
    assert keys_add(ks, "w", "evm", {"private_key": WALLET_KEY}).returncode == 0
    assert keys_add(ks, "fb", "evm", {"private_key": RELAY_KEY}).returncode == 0
    extra = 'wallet = "w"\nroute = "flashbots"\nrelay_url = "http://127.0.0.1:18550"\nrelay_auth = "fb"'
    path = write_config(short_tmp / "live.toml", venue_toml(pool, mode="live", extra=extra), strategies=False)
    config = load_config(path)
    assert check_venues(config) == []  # the chain id, the contracts and the pair are all there
    unlocked = unlock_for_config(config, keystore=ks, password_file=ks.parent / "ks.pw", interactive=False)
    assert sorted(unlocked) == ["fb", "w"]
    node = Node(config, short_tmp / "run", credentials=unlocked)

    def workers(spec: ChildSpec) -> list[ChildSpec]:
        return [spec] if spec.type == "worker" else [w for c in spec.children for w in workers(c)]

    specs = {w.id: w for w in workers(node.tree_spec)}
    gateway = specs[f"gateway.{VENUE}"]
    assert gateway.actor == "sniperbot.venues.evm.gateway:EvmGateway"
    assert set(gateway.args) == GATEWAY_KWARGS | {"executor"}, sorted(gateway.args)
    assert gateway.args["executor"] == f"executor.{VENUE}"
    assert gateway.args["tokens"] == {"WETH": pool.uni.weth, "TKN": pool.token}  # EIP-55
    assert (gateway.args["router"], gateway.args["chain_id"], gateway.args["route"]) == (
        pool.uni.router, 31337, "flashbots"
    )  # fmt: skip
    sealed = Credentials.from_launch(node.sealed_credentials(gateway))
    assert (sealed.name, sealed.exchange) == ("w", "evm")
    assert sealed["private_key"].reveal() == WALLET_KEY and sealed["relay_private_key"].reveal() == RELAY_KEY
    assert [i for i, spec in specs.items() if i != gateway.id and node.sealed_credentials(spec)] == []
    for spec in specs.values():
        text = json.dumps(spec.args)
        assert WALLET_KEY[2:] not in text and RELAY_KEY[2:] not in text, spec.id


def test_a_live_venue_naming_a_missing_or_foreign_wallet_entry_exits_2(pool: Pool, short_tmp: Path) -> None:
    """The wallet entry must exist and be of kind ``evm`` (an exchange's API key is no wallet)."""
    ks = short_tmp / "ks"
    assert keys_add(ks, "bn", "binance", {"apiKey": "k" * 16, "secret": "s" * 16}).returncode == 0
    unlock = ("--keystore", str(ks), "--password-file", str(ks.parent / "ks.pw"))
    run_dir = short_tmp / "run"
    missing = write_config(short_tmp / "m.toml", venue_toml(pool, mode="live", extra='wallet = "w"'), False)
    error = refused(missing, run_dir, *unlock)
    assert "venues[0].wallet: no keystore entry named 'w'" in error, error
    foreign = write_config(short_tmp / "f.toml", venue_toml(pool, mode="live", extra='wallet = "bn"'), False)
    error = refused(foreign, run_dir, *unlock)
    why = "venues[0].wallet: keystore entry 'bn' holds a binance key, the venue needs one of kind evm"
    assert why in error, error


def test_the_evm_gateway_takes_exactly_what_the_venue_config_gives() -> None:
    """``EvmGateway`` (written beside this venue) accepts every argument ``live_gateway`` passes."""
    import inspect

    gateway = pytest.importorskip("sniperbot.venues.evm.gateway", reason="EvmGateway not merged yet")
    params = inspect.signature(gateway.EvmGateway.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    assert takes_any or GATEWAY_KWARGS | {"executor"} <= set(params), sorted(params)


def test_a_pool_created_after_start_is_priced_and_a_reorg_moves_the_quote_back(
    anvil: Anvil, uniswap: UniswapDeployment, short_tmp: Path
) -> None:
    """A pair the factory does not have yet: a warning at start, quotes from the block that creates it.
    A reorg (anvil snapshot/revert) that drops a swap: the quote goes back to the pool's state without it."""
    token = deploy_plain_token(anvil.w3, ANVIL_KEYS[0], 10**24)
    pool = Pool(anvil, uniswap, token, pair="")
    config = write_config(short_tmp / "late.toml", venue_toml(pool), strategies=False)
    node = RunningNode(short_tmp / "run", config)
    zctx = zmq.Context()
    bus = BusWatch(zctx, node.run_dir)
    mover = Mover(pool)
    try:
        node.wait_ready()
        assert "no pool yet for TKN/WETH" in node.log(), node.log()[-2000:]
        eventually(lambda: bus.of(FeedStatus), 30, what="the feed's status (the subscription is live)")
        assert bus.of(Quote) == []
        pool.pair = add_liquidity_eth(anvil.w3, uniswap, ANVIL_KEYS[0], token, 10**23, 10 * 10**18)

        def quoted_at(mid: float) -> Quote | None:
            return next((q for q in bus.of(Quote) if close((q.bid * q.ask) ** 0.5, mid, 1e-9)), None)

        eventually(lambda: quoted_at(1e-4), 30, what="the new pool's first quote")
        mover.approve()
        snapshot = anvil.snapshot()
        before = pool.mid()
        receipt = mover.swap(buy=True)
        after = pool.mid(receipt["blockNumber"])
        eventually(lambda: quoted_at(after), 30, what="the swap's quote")
        seen = len(bus.pump())
        anvil.revert(snapshot)  # the swap's block is gone
        assert close(pool.mid(), before, 1e-12)
        try:
            back = eventually(
                lambda: next((q for q in bus.pump()[seen:] if isinstance(q, Quote)), None),
                30,
                what="a quote after the revert",
            )
        except AssertionError as e:  # which side lags: the chain, the feed's polls, or the bus
            latest = anvil.w3.eth.get_block("latest")
            statuses = bus.of(FeedStatus)
            raise AssertionError(
                f"{e}; chain head {latest['number']} {latest['hash'].hex()}, swap block "
                f"{receipt['blockNumber']}, mid {pool.mid()}; last feed status "
                f"{statuses[-1] if statuses else None}; quotes {bus.of(Quote)[-3:]}"
            ) from None
        assert close((back.bid * back.ask) ** 0.5, before, 1e-9), (back, before, after)
    finally:
        with contextlib.suppress(Exception):
            mover.stop()
        code = node.stop()
        zctx.destroy(linger=0)
    assert code == 0, node.log()


def feed_thread(pool: Pool, ws_url: str = "") -> FeedChainThread:
    """The EVM feed's chain thread on ``pool`` (not started), configured as the feed actor would."""
    config = types.SimpleNamespace(
        venue=VENUE,
        rpc_url=pool.anvil.rpc_url,
        ws_url=ws_url,
        factory=pool.uni.factory.lower(),
        tokens={"TKN": pool.token.lower(), "WETH": pool.uni.weth.lower()},
        quote="WETH",
        symbols=[SYMBOL],
    )
    return FeedChainThread(config)  # type: ignore[arg-type]  # the thread reads only these fields


def test_the_feed_reprices_on_a_reorg_to_a_lower_head_and_to_another_block_at_the_same_height(
    pool: Pool,
) -> None:
    """The feed's chain thread, one poll at a time on a real chain (no timing in the test).

    A swap's block dropped (revert): the next poll quotes the pool without it. Then the common reorg
    on a live chain, another block at the *same* height: a feed that compared head numbers only
    would keep the dropped swap's price until the next block; this one follows the head's hash."""
    feed = feed_thread(pool)

    def poll() -> list[float]:
        """One poll; the mids of the quotes it handed over (errors fail the test)."""
        feed.poll()
        mids = []
        while not feed.out.empty():
            kind, item = feed.out.get_nowait()
            assert kind in ("quote", "trade", "status"), (kind, item)
            if kind == "quote":
                mids.append((item[1] * item[3]) ** 0.5)
        return mids

    mover = Mover(pool)
    mover.approve()
    before = pool.mid()
    assert [close(m, before, 1e-9) for m in poll()] == [True]
    assert poll() == []  # same head, nothing new

    snapshot = pool.anvil.snapshot()
    after = pool.mid(mover.swap(buy=True)["blockNumber"])
    assert [close(m, after, 1e-9) for m in poll()] == [True]
    pool.anvil.revert(snapshot)  # a reorg to a lower head
    assert [close(m, before, 1e-9) for m in poll()] == [True]

    swapped = pool.anvil.snapshot()
    height = mover.swap(buy=True)["blockNumber"]
    assert [close(m, after, 1e-9) for m in poll()] == [True]
    pool.anvil.revert(swapped)
    pool.anvil.mine()  # another block at the swap's height, without the swap
    assert pool.anvil.w3.eth.block_number == height
    assert [close(m, before, 1e-9) for m in poll()] == [True], "a same-height reorg must reprice"
    assert poll() == []


@pytest.mark.parametrize("heads", ["http", "ws"])
def test_a_wake_is_consumed_and_the_feed_goes_on_polling_at_its_pace(pool: Pool, heads: str) -> None:
    """A wake (a pair the sniper asks for, at run time) makes one poll at once; then the feed polls every
    ``POLL_S`` again. A wake left pending made every later wait return at once: the thread polled the
    RPC back to back (a paid endpoint's rate limit gone in minutes)."""
    feed = feed_thread(pool, pool.anvil.ws_url if heads == "ws" else "")
    feed.thread.start()
    try:
        eventually(lambda: feed.polls >= 2, 10, what="the feed's first polls")
        feed.wake()
        eventually(lambda: feed.polls >= 4, 10, what="polls after the wake")
        start, t0 = feed.polls, time.monotonic()
        time.sleep(1.0)
        rate = (feed.polls - start) / (time.monotonic() - t0)
        assert rate <= 2 / POLL_S, f"{rate:.0f} polls a second after a wake (pace: {1 / POLL_S:.0f})"
    finally:
        feed.stop(5)
