"""Chaos on chain (issue #12 point 8): a live node swapping on anvil, its actors killed and stopped, and the
journal checked against the chain.

Real components end to end: anvil with the real Uniswap V2, a plain token's pool moved by another account,
``sniperbot run --enable-chaos`` with a ``[[venues]] kind = "evm"`` in live mode (its wallet in the
keystore), an SMA strategy trading the pool, and ``sniperbot chaos --config`` reading the wallet's
transactions and balances from the chain. The test's own oracle is the chain: one mined swap per
client order id.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from eth_account import Account

from sniperbot.chaos.chain import ChainReader, ChainVenue, check_chain
from sniperbot.chaos.exchange import read_journal
from sniperbot.venues.evm.devchain import ANVIL_KEYS, erc20, router_contract, send_tx
from tests.conftest import RunningNode, eventually, sniperbot
from tests.evm.test_evm_node import (  # noqa: F401  (fixture)
    PASSWORD,
    VENUE,
    Mover,
    Pool,
    keys_add,
    pool,
    strategy_toml,
    venue_toml,
    write_config,
)

WALLET_KEY = ANVIL_KEYS[3]  # the node's wallet (10,000 ETH on anvil): nobody else uses it here


def live_node(pool: Pool, short_tmp: Path) -> tuple[RunningNode, Path, list[str]]:  # noqa: F811
    """A live evm node with chaos enabled; returns it, its config and the keystore arguments."""
    keystore = short_tmp / "ks"
    added = keys_add(keystore, "wallet", "evm", {"private_key": WALLET_KEY})
    assert added.returncode == 0, added.stderr
    unlock = ["--keystore", str(keystore), "--password-file", str(keystore.parent / "ks.pw")]
    venue = venue_toml(pool, mode="live", extra='wallet = "wallet"\nconfirmations = 1\n')
    config = write_config(short_tmp / "live.toml", venue)
    config.write_text(config.read_text() + "\n[breakers]\ncooldown_s = 0.5\nprobe_s = 1.0\n")
    return RunningNode(short_tmp / "run", config, ("--enable-chaos", *unlock)), config, unlock


def mined_swaps(chain: Pool, wallet: str, since: int) -> list[str]:
    """Every successful transaction of the wallet to the router after block ``since`` (the chain's record)."""
    w3 = chain.anvil.w3
    out = []
    for number in range(since + 1, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            to_router = tx["from"] == wallet and tx["to"] == chain.uni.router
            if to_router and w3.eth.get_transaction_receipt(tx["hash"])["status"] == 1:
                out.append("0x" + bytes(tx["hash"]).hex())
    return out


def test_seeded_chaos_session_on_chain_loses_no_money(pool: Pool, short_tmp: Path) -> None:  # noqa: F811
    wallet = Account.from_key(WALLET_KEY).address
    start = pool.anvil.w3.eth.block_number
    node, config, unlock = live_node(pool, short_tmp)
    mover = Mover(pool)
    # The mover sells what it bought, and a little more as the price rises: give it a stock of tokens.
    deployer = Account.from_key(ANVIL_KEYS[0]).address
    give = erc20(pool.anvil.w3, pool.token).functions.transfer(mover.me, 50_000 * 10**18)
    send_tx(
        pool.anvil.w3,
        ANVIL_KEYS[0],
        give.build_transaction({"from": deployer, "gas": 100_000, "nonce": 0})
        | {"nonce": pool.anvil.w3.eth.get_transaction_count(deployer)},
    )
    mover.approve()
    mover.start()
    try:
        workers = node.wait_ready()
        assert {"feed.anvil", "gateway.anvil", "executor.anvil"} <= set(workers), sorted(workers)
        eventually(lambda: len(mined_swaps(pool, wallet, start)) >= 2, 120, what="first swaps of the node")
        result = sniperbot(
            "chaos", "--run-dir", str(node.run_dir), "--config", str(config), *unlock,
            "--duration", "20", "--interval", "1.5", "--seed", "12",
            "--settle-timeout", "90", "--trade-timeout", "60", "--json",
            timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["ok"] is True, report["problems"]
        assert report["faults"] >= 8 and report["recovered"] == report["faults"], report["fault_log"]
        assert {f["actor"] for f in report["fault_log"]} & {"gateway.anvil", "executor.anvil"}
        assert report["still_trading"] is True
        (ch,) = report["chain"]
        assert ch["venue"] == VENUE and ch["ok"] and ch["settled"], ch["problems"]
        assert ch["duplicate_orders"] == [] and ch["lost_fills"] == [] and ch["phantom_fills"] == []
        assert ch["position_mismatches"] == [] and ch["balance_mismatches"] == []
        assert ch["swaps_on_chain"] > 0 and ch["wallet_changes"]["ETH"] != 0
        assert ch["positions"]["TKN"] == pytest.approx(ch["wallet_changes"]["TKN"], rel=1e-9)
        assert node.process.poll() is None
    finally:
        mover.stop()
        assert node.stop() == 0, node.log()
    # The chain as the oracle: each client order id has one mined swap, every mined swap one net fill.
    fills = [r for r in read_journal(str(node.run_dir)) if type(r).__name__ == "Fill"]
    swaps = set(mined_swaps(pool, wallet, start))
    by_cid = Counter(f.client_order_id for f in fills if not f.fill_id.endswith(":reorg"))
    reversed_ = Counter(f.client_order_id for f in fills if f.fill_id.endswith(":reorg"))
    assert swaps and max((n - reversed_[c] for c, n in by_cid.items()), default=0) == 1
    assert {f.fill_id.split(":")[1] for f in fills} == swaps


def test_checker_finds_a_swap_behind_the_journals_back(pool: Pool, short_tmp: Path) -> None:  # noqa: F811
    """The checker is not blind: a swap the wallet made that the journal does not have is a lost fill,
    and the wallet's token balance no longer matches the journal's position."""
    wallet_key = ANVIL_KEYS[4]
    wallet = Account.from_key(wallet_key).address
    venue = ChainVenue(
        name=VENUE, rpc_url=pool.anvil.rpc_url, router=pool.uni.router, quote="WETH",
        tokens={"WETH": pool.uni.weth, "TKN": pool.token}, confirmations=0, wallet=wallet,
    )  # fmt: skip
    reader = ChainReader(venue)
    baseline = reader.baseline()
    clean = check_chain(venue, [], reader.fetch(baseline), baseline)
    assert clean.ok and clean.settled and clean.swaps_on_chain == 0, clean.problems
    w3 = pool.anvil.w3
    router = router_contract(w3, pool.uni)
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    swap = router.functions.swapExactETHForTokens(0, [pool.uni.weth, pool.token], wallet, deadline)
    tx = swap.build_transaction({"from": wallet, "value": 10**17, "gas": 300_000, "nonce": 0})
    send_tx(w3, wallet_key, tx | {"nonce": w3.eth.get_transaction_count(wallet)})
    report = check_chain(venue, [], reader.fetch(baseline), baseline)
    assert not report.ok and report.swaps_on_chain == 1
    assert len(report.lost_fills) == 1 and report.position_mismatches and report.balance_mismatches
