"""kill -9 of the EVM gateway at each step of a swap: exactly one swap per order on chain (#12 point 3).

The gateway and the generic executor run in a process of their own (:mod:`tests.evm.evm_node`) with
``SNIPERBOT_FAULT_EVM`` set: the gateway SIGKILLs its process at that step of the first swap (after
signing, after journaling, after broadcasting, after journaling the receipt). The process is started
again without it, on the same run dir, and the test reads the CHAIN (every transaction the wallet sent,
block by block) and the journal: one swap mined, with the nonce the ledger reserved; one fill journaled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sniperbot.actors.runtime import close_process_journals
from sniperbot.venues.evm.devchain import Anvil, UniswapDeployment
from sniperbot.venues.evm.gateway import FAULT_ENV, FAULT_POINTS, fill_id
from sniperbot.venues.evm.txledger import TxLedger
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


@pytest.fixture
def chain(anvil: Anvil, uniswap: UniswapDeployment) -> Iterator[Chain]:
    try:
        yield make_chain(anvil, uniswap)
    finally:
        close_process_journals()


class NodeProcess:
    """One incarnation of :mod:`tests.evm.evm_node`; its stderr (the logs) kept in a file."""

    def __init__(self, spec: dict[str, Any], log: Path, fault: str = "") -> None:
        env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
        env.update({KEY_ENV: WALLET_KEY, "PYTHONPATH": str(ROOT), "SNIPERBOT_LOG_LEVEL": "INFO"})
        if fault:
            env[FAULT_ENV] = fault
        self.log = log
        self._err = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.evm.evm_node", json.dumps(spec)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
        )

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._err.flush()

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._err.close()


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
    first = NodeProcess(spec, log, fault)
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

    second = NodeProcess(spec, log)
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
