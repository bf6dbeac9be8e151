"""kill -9 of the Solana gateway at each step of a swap: exactly one swap per order on chain (#13 point 3).

The gateway and the generic executor run in a process of their own (:mod:`tests.solana.sol_node`) with
``SNIPERBOT_FAULT_SOLANA`` set: the gateway SIGKILLs its process at that step of the first swap (signed,
not journaled; journaled, not sent; sent; landed at the commitment, before the fill). The process is
started again without it, on the same run dir, and the test reads the CHAIN (every transaction the wallet
signed, its token balance) and the journal: one swap landed, the journaled signature when one was
journaled; one fill with that signature.
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

from sniperbot.actors.runtime import close_process_journals
from sniperbot.venues.solana import devtokens
from sniperbot.venues.solana.devaggregator import LocalAggregator
from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.gateway import FAULT_ENV, FAULT_POINTS, fill_id
from tests.conftest import ScriptProcess, eventually
from tests.solana.sol_node import KEY_ENV
from tests.solana.test_solana_gateway import (
    DECIMALS,
    WALLET,
    WALLET_KEY,
    Market,
    fills_of,
    gateway_args,
    journal,
    ledger_intent,
    make_market,
    order,
    rpc,
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
def market(request: pytest.FixtureRequest) -> Iterator[Market]:
    """A local chain whose blockhashes live ``valid_slots`` slots (a parameter; 400 = 20 s by default,
    longer than a process restart), the aggregator and one pool."""
    valid = getattr(request, "param", 400)
    with LocalSolana(blockhash_valid_slots=valid) as chain, LocalAggregator(chain) as agg:
        yield make_market(chain, agg)


def node_process(spec: dict[str, Any], log: Path, fault: str = "") -> ScriptProcess:
    """One incarnation of :mod:`tests.solana.sol_node` with the wallet's key (and ``fault`` armed, if any)."""
    env = {KEY_ENV: WALLET_KEY, **({FAULT_ENV: fault} if fault else {})}
    return ScriptProcess("tests.solana.sol_node", spec, log, env, drop=(FAULT_ENV,))


def spec_for(m: Market, run: Path, cid: str, quantity: float = 500.0) -> dict[str, Any]:
    return {
        "run_dir": str(run),
        "auth_key": os.urandom(32).hex(),
        "gateway": gateway_args(m),
        "orders": [msgspec.json.encode(order(cid, "buy", quantity)).decode()],
    }


def finalized_height(m: Market) -> int:
    return int(rpc(m.chain, "getBlockHeight", {"commitment": "finalized"}))


def killed_at(spec: dict[str, Any], log: Path, fault: str) -> None:
    first = node_process(spec, log, fault)
    try:
        code = first.wait(60)
    finally:
        first.stop()
    assert code == -signal.SIGKILL, f"the fault hook did not fire: exit {code}\n{log.read_text()[-3000:]}"


@pytest.mark.parametrize("fault", FAULT_POINTS)
def test_kill_9_at_each_step_of_a_swap_yields_exactly_one_swap_on_chain(
    market: Market, short_tmp: Path, fault: str
) -> None:
    m = market
    run, log, cid = short_tmp / "run", short_tmp / "node.log", "s1-c-1"
    spec = spec_for(m, run, cid)
    killed_at(spec, log, fault)
    before = ledger_intent(run, cid)  # the order is in the ledger before any quote or signature
    # What reached the chain before the kill: nothing before the send, the swap after it.
    if fault in ("after_sign", "after_journal"):
        time.sleep(0.3)  # several slots: anything sent would have landed
        assert not wallet_txs(m.chain)
    else:
        eventually(lambda: len(wallet_txs(m.chain)) == 1, 15, what="the sent swap landed")
    assert (before.tx is None) == (fault == "after_sign")  # the signature journaled before it left
    assert not fills_of(run, cid)  # a fill only from the chain, after the restart here

    second = node_process(spec, log)
    try:
        eventually(lambda: journal(run).order_status(cid) == "filled", 60, what="filled after restart")
        time.sleep(0.5)  # more slots seen by the gateway: nothing else may be signed or sent
    finally:
        second.stop()
    txs = wallet_txs(m.chain)
    assert len(txs) == 1 and txs[0]["err"] is None, txs
    assert devtokens.token_balance(m.chain, WALLET.pubkey(), m.mint) == 500 * 10**DECIMALS
    landed = txs[0]["signature"]
    after = ledger_intent(run, cid)
    assert after.tx is not None and after.tx.signature == landed
    if fault != "after_sign":
        assert before.tx is not None and before.tx.signature == landed  # the journaled bytes, never re-signed
    fills = fills_of(run, cid)
    assert [f.fill_id for f in fills] == [fill_id("localsol", landed)]
    assert fills[0].quantity == pytest.approx(500.0)
    assert WALLET_KEY not in log.read_text()


@pytest.mark.parametrize("market", [40], indirect=True)
def test_killed_after_journaling_and_restarted_after_the_blockhash_expired_is_rejected_never_resigned(
    market: Market, short_tmp: Path
) -> None:
    m = market
    run, log, cid = short_tmp / "run", short_tmp / "node.log", "s1-c-2"
    spec = spec_for(m, run, cid)
    killed_at(spec, log, "after_journal")  # journaled, never sent
    journaled = ledger_intent(run, cid).tx
    assert journaled is not None
    eventually(
        lambda: finalized_height(m) > journaled.last_valid_block_height,
        30,
        what="the blockhash expired",
    )
    second = node_process(spec, log)
    try:
        eventually(lambda: journal(run).order_status(cid) == "rejected", 60, what="rejected after restart")
        time.sleep(0.5)
    finally:
        second.stop()
    intent = ledger_intent(run, cid)
    assert (intent.status, intent.reason) == ("rejected", "expired")
    assert intent.tx == journaled  # nothing signed again
    assert not wallet_txs(m.chain) and not fills_of(run, cid)
    assert devtokens.token_balance(m.chain, WALLET.pubkey(), m.mint) == 0
