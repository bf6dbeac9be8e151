"""kill -9 of the EVM gateway at each step of a swap: exactly one swap per order on chain (#12 point 3).

The gateway and the generic executor run in a process of their own (:mod:`tests.evm.evm_node`) with
``SNIPERBOT_FAULT_EVM`` set: the gateway SIGKILLs its process at that step of the first swap (after
signing, after journaling, after broadcasting, after journaling the receipt). The process is started
again without it, on the same run dir, and the test reads the CHAIN (every transaction the wallet sent,
block by block) and the journal: one swap mined, with the nonce the ledger reserved; one fill journaled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from eth_account import Account

from sniperbot.actors.runtime import close_process_journals
from sniperbot.venues.evm.devchain import (
    ANVIL_KEYS,
    Anvil,
    UniswapDeployment,
    add_liquidity_eth,
    deploy_plain_token,
    erc20,
    send_tx,
)
from sniperbot.venues.evm.gateway import FAULT_ENV, FAULT_POINTS, fill_id
from sniperbot.venues.evm.txledger import TxLedger
from tests.conftest import ScriptProcess
from tests.evm.evm_node import KEY_ENV
from tests.evm.test_evm_gateway import (
    VENUE,
    WALLET,
    WALLET_KEY,
    Chain,
    fills_of,
    gateway_args,
    journal,
    make_chain,
    mine_until,
    order,
    swaps_on_chain,
    wallet_txs,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _close_journals() -> Iterator[None]:
    """The journal this process opened to read a test's run dir is closed with the test."""
    try:
        yield
    finally:
        close_process_journals()


@pytest.fixture
def chain(anvil: Anvil, uniswap: UniswapDeployment) -> Chain:
    return make_chain(anvil, uniswap)


def node_process(spec: dict[str, Any], log: Path, fault: str = "") -> ScriptProcess:
    """One incarnation of :mod:`tests.evm.evm_node` with the wallet's key (and ``fault`` armed, if any)."""
    env = {KEY_ENV: WALLET_KEY, **({FAULT_ENV: fault} if fault else {})}
    return ScriptProcess("tests.evm.evm_node", spec, log, env, drop=(FAULT_ENV,))


def ledger_hashes(run: Path, cid: str) -> tuple[int, list[str]]:
    """(swap nonce, every hash signed for it) from the gateway's ledger."""
    ledger = TxLedger.open(run, VENUE, "process")
    try:
        intent = ledger.intent(cid)
    finally:
        ledger.close()
    assert intent is not None, "the order and its nonce are in the ledger before any signature"
    swap = intent.slots[-1]
    return swap.nonce, [t.tx_hash for t in swap.txs]


@pytest.mark.parametrize("fault", FAULT_POINTS)
def test_kill_9_at_each_step_of_a_swap_yields_exactly_one_swap_on_chain(
    chain: Chain, short_tmp: Path, fault: str
) -> None:
    run = short_tmp / "run"
    cid = "s1-t1-1"
    spec = {
        "run_dir": str(run),
        "auth_key": os.urandom(32).hex(),
        "gateway": gateway_args(chain),
        "orders": [msgspec.json.encode(order(cid, "buy", 1000.0)).decode()],
    }
    log = short_tmp / "node.log"
    first = node_process(spec, log, fault)
    try:
        code = first.wait(60)
    finally:
        first.stop()
    assert code == -signal.SIGKILL, f"the fault hook did not fire: exit {code}\n{log.read_text()[-3000:]}"
    nonce, before = ledger_hashes(run, cid)
    assert nonce == 0
    # What reached the chain before the kill: nothing before the broadcast, the swap after it.
    sent = fault in ("after_broadcast", "after_receipt")
    assert len(swaps_on_chain(chain)) == (1 if sent else 0)
    assert len(before) == (0 if fault == "after_sign" else 1)  # the signature journaled before it left
    assert not fills_of(run, cid)  # a fill only from a confirmed receipt, after the restart here

    second = node_process(spec, log)
    try:
        mine_until(
            chain.anvil, lambda: journal(run).order_status(cid) == "filled", 60, what="filled after restart"
        )
        time.sleep(1.0)  # a few more blocks seen by the gateway: nothing else may be signed or sent
        chain.anvil.mine(3)
        time.sleep(1.0)
    finally:
        second.stop()
    swaps = swaps_on_chain(chain)
    assert len(swaps) == 1, swaps
    assert swaps[0]["nonce"] == nonce and len(wallet_txs(chain.anvil)) == 1
    assert chain.anvil.w3.eth.get_transaction_count(WALLET) == 1
    mined = "0x" + swaps[0]["hash"].hex().removeprefix("0x")
    _, after = ledger_hashes(run, cid)
    if fault == "after_sign":
        assert after == [mined]  # the lost signature never left; its nonce was signed once more
    else:
        assert mined == before[0] and after == before  # the identical journaled bytes, never re-signed
    fills = fills_of(run, cid)
    assert [f.fill_id for f in fills] == [fill_id(VENUE, mined)]
    assert WALLET_KEY.removeprefix("0x") not in log.read_text().lower()


def test_kill_9_between_a_sells_approval_and_its_swap_signs_the_swap_with_its_recorded_nonce(
    anvil: Anvil, uniswap: UniswapDeployment, short_tmp: Path
) -> None:
    w3 = anvil.w3
    deployer = Account.from_key(ANVIL_KEYS[0]).address
    token = deploy_plain_token(w3, ANVIL_KEYS[0], 2 * 10**6 * 10**18)
    add_liquidity_eth(w3, uniswap, ANVIL_KEYS[0], token, 10**6 * 10**18, 100 * 10**18)
    chain = Chain(anvil, uniswap, token)
    tkn = erc20(w3, token)
    transfer = tkn.functions.transfer(WALLET, 1000 * 10**18)
    send_tx(w3, ANVIL_KEYS[0], transfer.build_transaction({"from": deployer, "gas": 100_000, "nonce": 0})
            | {"nonce": w3.eth.get_transaction_count(deployer)})  # fmt: skip
    run = short_tmp / "run"
    cid = "s1-t1-2"
    spec = {
        "run_dir": str(run),
        "auth_key": os.urandom(32).hex(),
        "gateway": gateway_args(chain),
        "orders": [msgspec.json.encode(order(cid, "sell", 400.0)).decode()],
    }
    log = short_tmp / "node.log"
    first = node_process(spec, log, "after_journal")  # dies once the approval is journaled, before it leaves
    try:
        code = first.wait(60)
    finally:
        first.stop()
    assert code == -signal.SIGKILL, log.read_text()[-3000:]
    ledger = TxLedger.open(run, VENUE, "process")
    try:
        intent = ledger.intent(cid)
    finally:
        ledger.close()
    assert intent is not None
    approve, swap = intent.slots
    assert (approve.kind, approve.nonce, len(approve.txs)) == ("approve", 0, 1)
    assert (swap.kind, swap.nonce, swap.txs) == ("swap", 1, [])  # reserved, never signed
    assert not wallet_txs(chain.anvil)

    second = node_process(spec, log)
    try:
        mine_until(
            chain.anvil, lambda: journal(run).order_status(cid) == "filled", 60, what="filled after restart"
        )
    finally:
        second.stop()
    txs = wallet_txs(chain.anvil)
    assert [t["nonce"] for t in txs] == [0, 1]
    assert "0x" + txs[0]["hash"].hex().removeprefix("0x") == approve.txs[0].tx_hash  # the journaled bytes
    assert txs[1]["to"] == chain.uni.router and len(swaps_on_chain(chain)) == 1
    nonce, hashes = ledger_hashes(run, cid)
    assert nonce == 1 and hashes == ["0x" + txs[1]["hash"].hex().removeprefix("0x")]  # signed once, mined
    (fill,) = fills_of(run, cid)
    assert fill.side == "sell" and fill.quantity == pytest.approx(400.0)
    assert tkn.functions.balanceOf(WALLET).call() == 600 * 10**18


def test_killed_before_the_first_signature_and_restarted_past_the_deadline_the_nonce_is_consumed_not_swapped(
    chain: Chain, short_tmp: Path
) -> None:
    run = short_tmp / "run"
    cid = "s1-t1-3"
    spec = {
        "run_dir": str(run),
        "auth_key": os.urandom(32).hex(),
        "gateway": gateway_args(chain, deadline_s=30.0),
        "orders": [msgspec.json.encode(order(cid, "buy", 100.0)).decode()],
    }
    log = short_tmp / "node.log"
    first = node_process(spec, log, "after_sign")
    try:
        assert first.wait(60) == -signal.SIGKILL, log.read_text()[-3000:]
    finally:
        first.stop()
    chain.anvil.rpc("evm_increaseTime", 120)  # the restart comes after the swap's deadline
    chain.anvil.mine(1)
    second = node_process(spec, log)
    try:
        mine_until(chain.anvil, lambda: journal(run).order_status(cid) == "rejected", 60, what="rejected")
    finally:
        second.stop()
    txs = wallet_txs(chain.anvil)
    assert len(txs) == 1 and txs[0]["to"] == WALLET and txs[0]["value"] == 0 and txs[0]["nonce"] == 0
    assert not swaps_on_chain(chain) and not fills_of(run, cid)
    nonce, hashes = ledger_hashes(run, cid)
    assert nonce == 0 and hashes == ["0x" + txs[0]["hash"].hex().removeprefix("0x")]
