"""The EVM gateway on anvil with the real Uniswap V2: swaps placed once, fills from receipts (#12 point 3).

Real components: anvil, Uniswap's published Factory/Router02/WETH9, the generic executor and the gateway
each in an :class:`ActorRuntime` of their own (the harness of ``tests/venues_ccxt/test_gateway.py``), real
ZeroMQ inboxes, the real LMDB journal and tx ledger. What was placed is read from the CHAIN (the wallet's
transactions, block by block), what was booked from the journal. The wallet key reaches the gateway the
way production does, in ``ActorLaunch.credentials``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3.exceptions import TransactionNotFound

from sniperbot.actors.runtime import close_process_journals, process_journal
from sniperbot.keystore import Credentials
from sniperbot.logs import JsonFormatter
from sniperbot.messages import Order, OrderUpdate
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport
from sniperbot.venues.base import DUPLICATE
from sniperbot.venues.evm.devchain import (
    ANVIL_KEYS,
    Anvil,
    UniswapDeployment,
    add_liquidity_eth,
    deploy,
    deploy_plain_token,
    deploy_uniswap,
    erc20,
    node_modules,
)
from sniperbot.venues.evm.gateway import fill_id, reversal_id
from sniperbot.venues.evm.txledger import CANCEL, Intent, TxLedger
from tests.conftest import eventually
from tests.venues_ccxt.test_gateway import _HEARD, _OUTGOING, Actors
from tests.venues_ccxt.test_venue_status import StatusWatch

VENUE = "anvil"
SYM = "TKN/WETH"
GATEWAY = f"gateway.{VENUE}"
EXECUTOR = f"executor.{VENUE}"
WALLET_KEY = ANVIL_KEYS[1]  # a funded dev account of its own: nonces start at 0
WALLET = Account.from_key(WALLET_KEY).address
DRIVER = "tests.venues_ccxt.test_gateway:Driver"


@dataclass
class Chain:
    """anvil with Uniswap and a plain token TKN in a TKN/WETH pool."""

    anvil: Anvil
    uni: UniswapDeployment
    token: str


def make_chain(anvil: Anvil, uni: UniswapDeployment) -> Chain:
    """A plain token with 1,000,000 TKN / 100 ETH of liquidity."""
    w3 = anvil.w3
    token = deploy_plain_token(w3, ANVIL_KEYS[0], 10**6 * 10**18)
    add_liquidity_eth(w3, uni, ANVIL_KEYS[0], token, 10**6 * 10**18, 100 * 10**18)
    return Chain(anvil, uni, token)


@pytest.fixture
def chain(anvil: Anvil, uniswap: UniswapDeployment) -> Chain:
    return make_chain(anvil, uniswap)


@pytest.fixture
def actors(short_tmp: Path) -> Iterator[Actors]:
    a = Actors(short_tmp / "run")
    try:
        yield a
    finally:
        a.stop_all()
        close_process_journals()
        _OUTGOING.clear()
        _HEARD.clear()


def gateway_args(chain: Chain, **extra: Any) -> dict[str, Any]:
    """The constructor args ``EvmVenueConfig.live_gateway`` passes (issue #12 shapes)."""
    return {
        "venue": VENUE,
        "chain_id": 31337,
        "rpc_url": chain.anvil.rpc_url,
        "router": chain.uni.router,
        "tokens": {"WETH": chain.uni.weth, "TKN": chain.token},
        "quote": "WETH",
        "symbols": [SYM],
        "route": "public",
        "slippage_bps": 100,
        "deadline_s": 120.0,
        "confirmations": 2,
        "max_fee_gwei": 300.0,
        "priority_fee_gwei": 1.5,
        "replace_after_blocks": 3,
        "replace_bump_pct": 12.5,
        "poll_s": 0.05,
        "durability": "process",
        **extra,
    }


def wallet_launch() -> bytes:
    """The wallet's keystore entry sealed for the gateway's launch."""
    return Credentials("anvil-wallet", "evm", "2026-01-01T00:00:00Z", {"private_key": WALLET_KEY}).to_launch()


def start_all(actors: Actors, chain: Chain, **extra: Any) -> None:
    """Gateway, generic executor and an order source (with the risk guard's id)."""
    actors.start(
        GATEWAY, "sniperbot.venues.evm.gateway:EvmGateway", gateway_args(chain, **extra), wallet_launch()
    )
    actors.start(EXECUTOR, "sniperbot.execution.executor:Executor", {"venue": VENUE, "gateway": GATEWAY})
    actors.start("risk_guard", DRIVER, {})


def order(cid: str, side: str = "buy", quantity: float = 1000.0) -> Order:
    return Order(
        client_order_id=cid,
        intent_id=cid,
        strategy_id="s1",
        venue=VENUE,
        symbol=SYM,
        side=side,  # type: ignore[arg-type]
        quantity=quantity,
        ts_ns=time.time_ns(),
    )


def submit(o: Order) -> None:
    _OUTGOING["risk_guard"].put((EXECUTOR, o))


def journal(run_dir: Path) -> Any:
    return process_journal(run_dir, "process")


def fills_of(run_dir: Path, cid: str) -> list[Any]:
    return [f for f in journal(run_dir).fills() if f.client_order_id == cid]


def mine_until(anvil: Anvil, cond: Callable[[], Any], timeout: float = 30.0, what: str = "") -> None:
    """Mine a block at a time (the gateway sees each) until ``cond`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        anvil.mine(1)
        time.sleep(0.15)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")


def wallet_txs(anvil: Anvil) -> list[dict[str, Any]]:
    """Every mined transaction sent by the wallet, from the chain itself (block by block)."""
    w3 = anvil.w3
    found = []
    for n in range(w3.eth.block_number + 1):
        for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]:
            if tx["from"] == WALLET:
                found.append(dict(tx))
    return found


def swaps_on_chain(chain: Chain) -> list[dict[str, Any]]:
    """The wallet's mined transactions to the router (the swaps)."""
    return [t for t in wallet_txs(chain.anvil) if t["to"] == chain.uni.router]


def ledger_intent(run_dir: Path, cid: str) -> Intent:
    """The gateway's ledger entry (open it only while no gateway runs in this process)."""
    ledger = TxLedger.open(run_dir, VENUE, "process")
    try:
        intent = ledger.intent(cid)
    finally:
        ledger.close()
    assert intent is not None
    return intent


# ---- tests


class _Lines(logging.Handler):
    """Keeps every formatted log line (the JSON the node would print)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log line of sniperbot's loggers at DEBUG while the test runs."""
    handler = _Lines()
    logger = logging.getLogger("sniperbot")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_buy_and_sell_each_one_swap_fills_from_receipts_and_no_key_anywhere(
    chain: Chain, actors: Actors, capfd: pytest.CaptureFixture[str], log_lines: list[str]
) -> None:
    start_all(actors, chain)
    run = actors.run_dir
    tkn = erc20(chain.anvil.w3, chain.token)
    submit(order("s1-t1-1", "buy", 1000.0))
    mine_until(chain.anvil, lambda: journal(run).order_status("s1-t1-1") == "filled", what="buy filled")
    swaps = swaps_on_chain(chain)
    assert len(swaps) == 1
    buy_hash = "0x" + swaps[0]["hash"].hex().removeprefix("0x")
    (fill,) = fills_of(run, "s1-t1-1")
    assert fill.fill_id == fill_id(VENUE, buy_hash)
    got = tkn.functions.balanceOf(WALLET).call()
    assert fill.quantity == pytest.approx(got / 1e18) and got >= 1000 * 10**18 * 0.99
    assert fill.side == "buy" and fill.price == pytest.approx(swaps[0]["value"] / 1e18 / fill.quantity)
    receipt = chain.anvil.w3.eth.get_transaction_receipt(buy_hash)
    assert fill.fee == pytest.approx(receipt["gasUsed"] * receipt["effectiveGasPrice"] / 1e18)
    # confirmations: the fill waited for 2 blocks on top of the receipt's block
    assert chain.anvil.w3.eth.block_number >= receipt["blockNumber"] + 2

    # A sell needs the router's allowance: an approval (its own nonce), then the swap.
    eth_before = chain.anvil.w3.eth.get_balance(WALLET)
    submit(order("s1-t1-2", "sell", 500.0))
    mine_until(chain.anvil, lambda: journal(run).order_status("s1-t1-2") == "filled", what="sell filled")
    txs = wallet_txs(chain.anvil)
    assert [t["nonce"] for t in txs] == [0, 1, 2]  # buy, approve, sell: nonces in order, none twice
    assert txs[1]["to"] == chain.token and len(swaps_on_chain(chain)) == 2
    (sell,) = fills_of(run, "s1-t1-2")
    assert sell.side == "sell" and sell.quantity == pytest.approx(500.0)
    assert tkn.functions.balanceOf(WALLET).call() == got - 500 * 10**18
    received = chain.anvil.w3.eth.get_balance(WALLET) - eth_before + sell.fee * 1e18
    assert sell.price * sell.quantity == pytest.approx(received / 1e18, rel=1e-9)

    # The wallet key is nowhere: run dir (journal, ledger, logs) nor what the actors printed.
    actors.stop_all()
    secret = WALLET_KEY.removeprefix("0x")
    files = [p for p in run.rglob("*") if p.is_file()]
    assert files
    for needle in (secret, secret.upper()):
        leaked = [
            p for p in files if needle.encode() in p.read_bytes() or bytes.fromhex(secret) in p.read_bytes()
        ]
        assert not leaked, leaked
    out, err = capfd.readouterr()
    logs = "\n".join(log_lines) + out + err
    assert secret not in logs.lower()
    assert '"event": "swap_confirmed"' in logs  # the grep saw the gateway's log


def test_resent_order_is_refused_as_duplicate_never_swapped_twice_and_queries_answer_from_the_ledger(
    chain: Chain, actors: Actors
) -> None:
    start_all(actors, chain)
    run = actors.run_dir
    o = order("s1-t1-3", "buy", 100.0)
    submit(o)
    mine_until(chain.anvil, lambda: journal(run).order_status("s1-t1-3") == "filled", what="filled")
    (fill,) = fills_of(run, "s1-t1-3")
    # A new executor incarnation resends the same order (its inbox resend): never a second swap.
    actors.stop(EXECUTOR)
    actors.start(EXECUTOR, DRIVER, {})  # speaks with the executor's id: the only sender the gateway hears
    _OUTGOING[EXECUTOR].put((GATEWAY, o))

    def refused() -> bool:
        return any(
            isinstance(p, VenueEvents) and any(e.reason == DUPLICATE for e in p.events)
            for p in _HEARD[EXECUTOR]
        )

    eventually(refused, 30, what="duplicate refusal")
    _OUTGOING[EXECUTOR].put((GATEWAY, VenueOrderQuery(client_order_id="s1-t1-3", venue=VENUE)))
    _OUTGOING[EXECUTOR].put((GATEWAY, VenueOrderQuery(client_order_id="s1-t1-404", venue=VENUE)))
    reports = eventually(
        lambda: (r := [p for p in _HEARD[EXECUTOR] if isinstance(p, VenueOrderReport)]) and len(r) == 2 and r,
        30,
        what="both reports",
    )
    known = next(r for r in reports if r.client_order_id == "s1-t1-3")
    assert known.known and known.status == "filled" and known.fills == [fill]
    assert known.exchange_order_id == fill.trade_id
    assert not next(r for r in reports if r.client_order_id == "s1-t1-404").known
    chain.anvil.mine(3)
    time.sleep(1.0)
    assert len(swaps_on_chain(chain)) == 1 and len(wallet_txs(chain.anvil)) == 1
    assert len(fills_of(run, "s1-t1-3")) == 1


def test_stuck_transaction_is_replaced_with_the_same_nonce_and_mined_once(
    chain: Chain, actors: Actors
) -> None:
    anvil = chain.anvil
    anvil.set_automine(False)
    start_all(actors, chain, replace_after_blocks=2)
    run = actors.run_dir
    submit(order("s1-t1-4", "buy", 100.0))
    eventually(lambda: journal(run).order_status("s1-t1-4") == "accepted", 30, what="signed and sent")
    first = anvil.w3.eth.get_transaction_count(WALLET, "pending")
    assert first == 1  # in the pool, not mined
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(50 * 10**9))  # the first signature is now underpriced
    mine_until(
        anvil, lambda: journal(run).order_status("s1-t1-4") == "filled", what="filled after replacement"
    )
    actors.stop(GATEWAY)
    intent = ledger_intent(run, "s1-t1-4")
    (slot,) = intent.slots
    assert len(slot.txs) >= 2 and len({t.tx_hash for t in slot.txs}) == len(slot.txs)
    assert slot.mined is not None and slot.mined.tx_hash != slot.txs[0].tx_hash
    for older, newer in zip(slot.txs, slot.txs[1:], strict=False):
        assert newer.max_fee >= older.max_fee * 1.125 and newer.priority_fee >= older.priority_fee * 1.125
    assert all(t.max_fee <= 300 * 10**9 for t in slot.txs)
    swaps = swaps_on_chain(chain)
    assert len(swaps) == 1 and swaps[0]["nonce"] == 0
    with pytest.raises(TransactionNotFound):  # the first signature was never mined
        anvil.w3.eth.get_transaction_receipt(slot.txs[0].tx_hash)
    assert "0x" + swaps[0]["hash"].hex().removeprefix("0x") == slot.mined.tx_hash
    (fill,) = fills_of(run, "s1-t1-4")
    assert fill.fill_id == fill_id(VENUE, slot.mined.tx_hash)


def test_deadline_passed_the_nonce_is_consumed_by_a_self_transfer_and_the_order_rejected(
    chain: Chain, actors: Actors
) -> None:
    anvil = chain.anvil
    anvil.set_automine(False)
    start_all(actors, chain, replace_after_blocks=1000, deadline_s=30.0)
    run = actors.run_dir
    submit(order("s1-t1-5", "buy", 100.0))
    eventually(lambda: journal(run).order_status("s1-t1-5") == "accepted", 30, what="signed and sent")
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(50 * 10**9))  # the swap cannot be mined ...
    anvil.mine(1)
    anvil.rpc("evm_increaseTime", 60)  # ... before its deadline
    mine_until(anvil, lambda: journal(run).order_status("s1-t1-5") == "rejected", what="rejected")
    txs = wallet_txs(anvil)
    assert len(txs) == 1 and txs[0]["nonce"] == 0 and txs[0]["to"] == WALLET and txs[0]["value"] == 0
    assert not swaps_on_chain(chain) and not fills_of(run, "s1-t1-5")
    actors.stop(GATEWAY)
    intent = ledger_intent(run, "s1-t1-5")
    assert intent.reason == "deadline" and intent.slots[0].txs[-1].kind == CANCEL


def test_reorg_that_drops_a_counted_receipt_reverses_the_fill_and_the_swap_is_watched_again(
    chain: Chain, actors: Actors
) -> None:
    anvil = chain.anvil
    start_all(actors, chain)
    run = actors.run_dir
    snap = anvil.snapshot()
    submit(order("s1-t1-6", "buy", 100.0))
    mine_until(anvil, lambda: journal(run).order_status("s1-t1-6") == "filled", what="filled")
    (fill,) = fills_of(run, "s1-t1-6")
    tx_hash = fill.trade_id
    anvil.revert(snap)  # the blocks holding the swap are gone
    eventually(
        lambda: any(f.fill_id == reversal_id(fill.fill_id) for f in fills_of(run, "s1-t1-6")),
        30,
        what="reversal",
    )
    reversal = next(f for f in fills_of(run, "s1-t1-6") if f.fill_id == reversal_id(fill.fill_id))
    assert reversal.side == "sell" and reversal.quantity == fill.quantity and reversal.price == fill.price
    # The identical signed bytes are still watched and resent: mined again, filled again (a new fill id).
    mine_until(anvil, lambda: journal(run).order_status("s1-t1-6") == "filled", what="filled again")
    ids = [f.fill_id for f in fills_of(run, "s1-t1-6")]
    assert ids == [fill.fill_id, reversal_id(fill.fill_id), fill_id(VENUE, tx_hash, 1)]
    swaps = swaps_on_chain(chain)
    assert len(swaps) == 1 and "0x" + swaps[0]["hash"].hex().removeprefix("0x") == tx_hash
    updates = [
        (r.status, r.reason)
        for _, r in journal(run).records(kinds=(OrderUpdate,))
        if isinstance(r, OrderUpdate) and r.client_order_id == "s1-t1-6"
    ]
    assert updates == [("accepted", ""), ("filled", ""), ("rejected", "reorged"), ("filled", "")]
    net = sum(f.quantity if f.side == "buy" else -f.quantity for f in fills_of(run, "s1-t1-6"))
    tkn = erc20(anvil.w3, chain.token)
    assert net == pytest.approx(tkn.functions.balanceOf(WALLET).call() / 1e18)


# An honest fee-on-transfer token (5 % of every transfer not from or to the owner goes to the owner),
# compiled here with npm solc: the gateway must use the router's fee-on-transfer swap variants and book
# what the wallet really received (a buy) or paid (a sell).
FOT_SOURCE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;
contract FoT {
  string public name = "FoT"; string public symbol = "FOT"; uint8 public decimals = 18;
  uint256 public totalSupply; address public owner;
  mapping(address => uint256) public balanceOf;
  mapping(address => mapping(address => uint256)) public allowance;
  event Transfer(address indexed from, address indexed to, uint256 value);
  event Approval(address indexed owner, address indexed spender, uint256 value);
  constructor(uint256 supply) {
    owner = msg.sender; totalSupply = supply; balanceOf[msg.sender] = supply;
    emit Transfer(address(0), msg.sender, supply);
  }
  function approve(address s, uint256 v) external returns (bool) {
    allowance[msg.sender][s] = v; emit Approval(msg.sender, s, v); return true;
  }
  function transfer(address to, uint256 v) external returns (bool) { _move(msg.sender, to, v); return true; }
  function transferFrom(address f, address to, uint256 v) external returns (bool) {
    uint256 a = allowance[f][msg.sender];
    if (a != type(uint256).max) { require(a >= v, "allowance"); allowance[f][msg.sender] = a - v; }
    _move(f, to, v); return true;
  }
  function _move(address f, address to, uint256 v) internal {
    require(balanceOf[f] >= v, "balance");
    balanceOf[f] -= v;
    uint256 tax = (f == owner || to == owner) ? 0 : v * 5 / 100;
    balanceOf[to] += v - tax; emit Transfer(f, to, v - tax);
    if (tax > 0) { balanceOf[owner] += tax; emit Transfer(f, owner, tax); }
  }
}
"""


def compile_fot() -> dict[str, Any]:
    """The FoT token's artifact, compiled with npm solc (skips if node or solc is missing)."""
    solc = node_modules() / "solc"
    node = shutil.which("node")
    if node is None or not solc.exists():
        pytest.skip("node or npm solc not installed")
    std = {
        "language": "Solidity",
        "sources": {"FoT.sol": {"content": FOT_SOURCE}},
        "settings": {"outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    }
    script = (
        f"const solc=require({json.dumps(str(solc))});let s='';process.stdin.on('data',d=>s+=d);"
        "process.stdin.on('end',()=>process.stdout.write(solc.compile(s)));"
    )
    out = json.loads(subprocess.run([node, "-e", script], input=json.dumps(std), capture_output=True,
                                    text=True, check=True, timeout=60).stdout)  # fmt: skip
    errors = [e["formattedMessage"] for e in out.get("errors", []) if e["severity"] == "error"]
    assert not errors, errors
    c = out["contracts"]["FoT.sol"]["FoT"]
    return {"abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"]}


def test_fee_on_transfer_token_buy_and_sell_book_what_the_wallet_really_got(
    anvil: Anvil, uniswap: UniswapDeployment, actors: Actors
) -> None:
    fot = deploy(anvil.w3, ANVIL_KEYS[0], compile_fot(), 10**6 * 10**18)
    add_liquidity_eth(anvil.w3, uniswap, ANVIL_KEYS[0], fot, 10**6 * 10**18, 100 * 10**18)
    chain = Chain(anvil, uniswap, fot)
    start_all(actors, chain, slippage_bps=1000)  # a 5 % tax: min-out must leave room for it
    run = actors.run_dir
    tkn = erc20(anvil.w3, fot)
    submit(order("s1-t1-7", "buy", 1000.0))
    mine_until(anvil, lambda: journal(run).order_status("s1-t1-7") == "filled", what="FoT buy filled")
    (buy,) = fills_of(run, "s1-t1-7")
    got = tkn.functions.balanceOf(WALLET).call()
    assert got == pytest.approx(950 * 10**18, rel=1e-12)  # 5 % taxed on the way in
    assert buy.quantity == pytest.approx(got / 1e18, rel=1e-12)  # what the wallet received, not what it asked
    (swap,) = swaps_on_chain(chain)
    assert buy.price == pytest.approx(swap["value"] / 1e18 / 950.0)
    submit(order("s1-t1-8", "sell", 500.0))
    eth_before = anvil.w3.eth.get_balance(WALLET)
    mine_until(anvil, lambda: journal(run).order_status("s1-t1-8") == "filled", what="FoT sell filled")
    (sell,) = fills_of(run, "s1-t1-8")
    assert sell.quantity == pytest.approx(500.0)  # what the wallet paid (the tax included)
    assert tkn.functions.balanceOf(WALLET).call() == got - 500 * 10**18
    received = anvil.w3.eth.get_balance(WALLET) - eth_before + sell.fee * 1e18
    assert sell.price * sell.quantity == pytest.approx(received / 1e18, rel=1e-9)


@pytest.fixture
def watch(actors: Actors) -> Iterator[StatusWatch]:
    w = StatusWatch(actors.run_dir, VENUE)
    try:
        yield w
    finally:
        w.close()


def test_a_swap_reverted_on_chain_is_rejected_and_status_shows_the_wallet(
    chain: Chain, actors: Actors, watch: StatusWatch
) -> None:
    anvil = chain.anvil
    anvil.set_automine(False)
    start_all(actors, chain, replace_after_blocks=1000, deadline_s=30.0)
    run = actors.run_dir
    w3 = anvil.w3
    status = watch.wait(lambda s: s.reconciled, what="reconciled status")
    assert status.venue == VENUE and status.connection == "ok"
    assert status.balances["ETH"] == pytest.approx(w3.eth.get_balance(WALLET) / 1e18)
    assert status.balances["TKN"] == 0.0 and "WETH" in status.balances
    submit(order("s1-t1-9", "buy", 100.0))
    eventually(lambda: journal(run).order_status("s1-t1-9") == "accepted", 30, what="signed and sent")
    assert watch.wait(lambda s: True).open_orders == 1
    anvil.rpc("evm_increaseTime", 60)  # the swap lands in a block past its deadline: the router reverts it
    mine_until(anvil, lambda: journal(run).order_status("s1-t1-9") == "rejected", what="rejected")
    txs = wallet_txs(anvil)
    assert len(txs) == 1 and w3.eth.get_transaction_receipt(txs[0]["hash"])["status"] == 0
    assert not fills_of(run, "s1-t1-9")
    # the status follows the wallet (the gas paid) and says no order is open
    eth = w3.eth.get_balance(WALLET) / 1e18
    watch.wait(lambda s: s.open_orders == 0 and s.balances["ETH"] == pytest.approx(eth), what="status after")
    actors.stop(GATEWAY)
    intent = ledger_intent(run, "s1-t1-9")
    assert (intent.status, intent.reason) == ("rejected", "reverted") and len(intent.slots[0].txs) == 1


def test_rpc_down_the_status_says_so_and_an_order_waits_until_the_chain_answers(
    short_tmp: Path, actors: Actors, watch: StatusWatch
) -> None:
    state = short_tmp / "chain.json"
    first = Anvil(extra=("--dump-state", str(state))).start()
    try:
        chain = make_chain(first, deploy_uniswap(first.w3))
    finally:
        first.stop()  # the RPC is gone (its state kept in a file)
    start_all(actors, chain)
    run = actors.run_dir
    watch.wait(lambda s: s.connection == "down" and not s.reconciled, what="connection down")
    submit(order("s1-t1-10", "buy", 100.0))
    time.sleep(1.5)
    assert journal(run).order("s1-t1-10") is not None and journal(run).order_status("s1-t1-10") is None
    second = Anvil(port=first.port, extra=("--load-state", str(state))).start()  # the same chain is back
    try:
        watch.wait(lambda s: s.connection == "ok" and s.reconciled, what="reconciled again")
        mine_until(second, lambda: journal(run).order_status("s1-t1-10") == "filled", what="filled")
        assert len(swaps_on_chain(Chain(second, chain.uni, chain.token))) == 1
    finally:
        actors.stop_all()
        second.stop()


def test_selling_a_position_summed_from_float_fills_sells_the_whole_balance(
    chain: Chain, actors: Actors
) -> None:
    """A position is a sum of float fills: it can exceed the wallet's balance by float dust (1e-16). Selling
    it must sell the whole balance, not be refused as insufficient funds and strand the tokens; a real
    shortfall is still refused."""
    start_all(actors, chain)
    run = actors.run_dir
    tkn = erc20(chain.anvil.w3, chain.token)
    submit(order("s1-d-1", "buy", 100.0))
    mine_until(chain.anvil, lambda: journal(run).order_status("s1-d-1") == "filled", what="buy filled")
    held = tkn.functions.balanceOf(WALLET).call()
    (fill,) = fills_of(run, "s1-d-1")
    position = fill.quantity + 1e-14  # what summing a few float fills can give
    assert position * 10**18 > held
    submit(order("s1-d-2", "sell", held / 1e18 * 1.001))  # a real shortfall (0.1 %): refused
    eventually(lambda: journal(run).order_status("s1-d-2") == "rejected", 30, what="shortfall refused")
    assert journal(run).order("s1-d-2") is not None
    submit(order("s1-d-3", "sell", position))
    mine_until(chain.anvil, lambda: journal(run).order_status("s1-d-3") == "filled", what="dust sell filled")
    assert tkn.functions.balanceOf(WALLET).call() == 0
    (sold,) = fills_of(run, "s1-d-3")
    assert sold.quantity == pytest.approx(held / 1e18, rel=1e-12)
