"""The adversarial test tokens behave on chain as the safety check assumes (real Uniswap V2 on anvil)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractLogicError

from sniperbot.venues.evm.devchain import (
    ANVIL_KEYS,
    Anvil,
    UniswapDeployment,
    erc20,
    router_contract,
    send_tx,
)
from tests.evm.tokens import (
    DEAD_BLOCKS,
    MAX_TX,
    MAX_WALLET,
    POOL_ETH,
    POOL_TOKENS,
    TOKENS,
    default_args,
    deploy_token,
    launch,
    token_contract,
)

ROOT = Path(__file__).resolve().parents[2]
OWNER_KEY, BUYER_KEY, OTHER_KEY = ANVIL_KEYS[0], ANVIL_KEYS[1], ANVIL_KEYS[2]
BUYER = Account.from_key(BUYER_KEY).address
OTHER = Account.from_key(OTHER_KEY).address
ETH = 10**18


def _deadline(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"]) + 600


def _send(w3: Web3, key: str, call: Any, value: int = 0, gas: int = 500_000) -> dict[str, Any]:
    """Send a contract call as a transaction with fixed gas (so a revert is mined, not estimated away)."""
    sender = Account.from_key(key).address
    tx = call.build_transaction({"from": sender, "value": value, "gas": gas, "nonce": 0})
    return send_tx(w3, key, tx | {"nonce": w3.eth.get_transaction_count(sender, "pending")})


def _revert_reason(w3: Web3, key: str, call: Any, value: int = 0) -> str:
    """The revert reason of ``call`` from ``key``'s account (eth_call; fails the test if no revert)."""
    with pytest.raises(ContractLogicError) as info:
        call.call({"from": Account.from_key(key).address, "value": value})
    return str(info.value)


def _buy(w3: Web3, uni: UniswapDeployment, token: str, eth: int, key: str = BUYER_KEY) -> Any:
    """The router call that buys ``token`` for ``eth`` wei (fee-on-transfer-supporting, no min-out)."""
    to = Account.from_key(key).address
    router = router_contract(w3, uni)
    return router.functions.swapExactETHForTokensSupportingFeeOnTransferTokens(
        0, [uni.weth, token], to, _deadline(w3)
    )


def _sell(w3: Web3, uni: UniswapDeployment, token: str, amount: int, key: str = BUYER_KEY) -> Any:
    """Approve the router, then the call selling ``amount`` of ``token`` (fee-on-transfer-supporting)."""
    _send(w3, key, erc20(w3, token).functions.approve(uni.router, 2**256 - 1))
    to = Account.from_key(key).address
    router = router_contract(w3, uni)
    return router.functions.swapExactTokensForETHSupportingFeeOnTransferTokens(
        amount, 0, [token, uni.weth], to, _deadline(w3)
    )


def _balance(w3: Web3, token: str, who: str) -> int:
    return int(erc20(w3, token).functions.balanceOf(who).call())


def test_committed_artifacts_equal_a_fresh_compile() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: cannot recompile")
    out = subprocess.run(
        ["node", str(ROOT / "tests/evm/contracts/compile.js"), "--print"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    fresh: dict[str, str] = json.loads(out.stdout)
    expected = {f"tests/evm/contracts/build/{name}.json" for name in TOKENS}
    expected.add("sniperbot/venues/evm/contracts/SafetyProbe.json")
    assert set(fresh) == expected
    for rel, text in fresh.items():
        assert (ROOT / rel).read_text() == text, f"{rel} is stale: run node tests/evm/contracts/compile.js"
    assert {p.name for p in (ROOT / "tests/evm/contracts/build").iterdir()} == {f"{n}.json" for n in TOKENS}


def test_plain_token_buys_and_sells(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "PlainToken")
    c = token_contract(w3, "PlainToken", t.token)
    assert (c.functions.decimals().call(), c.functions.owner().call()) == (
        18,
        Account.from_key(OWNER_KEY).address,
    )
    _send(w3, BUYER_KEY, _buy(w3, uniswap, t.token, ETH // 10), value=ETH // 10)
    got = _balance(w3, t.token, BUYER)
    assert got > 0
    eth_before = w3.eth.get_balance(BUYER)
    _send(w3, BUYER_KEY, _sell(w3, uniswap, t.token, got))
    assert _balance(w3, t.token, BUYER) == 0 and w3.eth.get_balance(BUYER) > eth_before - ETH // 100


def test_fee_on_transfer_takes_two_percent_and_the_plain_router_functions_mishandle_it(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "FeeOnTransferToken")
    router = router_contract(w3, uniswap)
    # Wallet to wallet: 2 % burnt.
    _send(w3, OWNER_KEY, erc20(w3, t.token).functions.transfer(OTHER, 10_000))
    assert _balance(w3, t.token, OTHER) == 9_800
    # Plain buy with min-out = the router's own quote: it goes through, yet delivers 2 % LESS than the
    # min-out it promised to enforce (the router checks its precomputed amounts, not what arrived).
    quote = router.functions.getAmountsOut(ETH // 10, [uniswap.weth, t.token]).call()[1]
    plain_buy = router.functions.swapExactETHForTokens(quote, [uniswap.weth, t.token], BUYER, _deadline(w3))
    _send(w3, BUYER_KEY, plain_buy, value=ETH // 10)
    received = _balance(w3, t.token, BUYER)
    assert received < quote and received == quote - quote * 200 // 10_000
    # The supporting variant checks what arrived: the same min-out is refused.
    quote = router.functions.getAmountsOut(ETH // 10, [uniswap.weth, t.token]).call()[1]
    supporting = router.functions.swapExactETHForTokensSupportingFeeOnTransferTokens(
        quote, [uniswap.weth, t.token], BUYER, _deadline(w3)
    )
    assert "INSUFFICIENT_OUTPUT_AMOUNT" in _revert_reason(w3, BUYER_KEY, supporting, ETH // 10)
    # Plain sell: the pair receives 2 % less than the router computed with: "UniswapV2: K".
    _send(w3, BUYER_KEY, erc20(w3, t.token).functions.approve(uniswap.router, 2**256 - 1))
    plain_sell = router.functions.swapExactTokensForETH(
        received, 0, [t.token, uniswap.weth], BUYER, _deadline(w3)
    )
    assert "UniswapV2: K" in _revert_reason(w3, BUYER_KEY, plain_sell)
    with pytest.raises(RuntimeError, match="reverted"):
        _send(w3, BUYER_KEY, plain_sell)
    # The supporting sell works.
    _send(w3, BUYER_KEY, _sell(w3, uniswap, t.token, received))
    assert _balance(w3, t.token, BUYER) == 0


def test_honeypot_buys_but_only_the_owner_can_sell(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "Honeypot")
    _send(w3, BUYER_KEY, _buy(w3, uniswap, t.token, ETH // 10), value=ETH // 10)
    got = _balance(w3, t.token, BUYER)
    assert got > 0
    sell = _sell(w3, uniswap, t.token, got)
    assert "TRANSFER_FROM_FAILED" in _revert_reason(w3, BUYER_KEY, sell)
    with pytest.raises(RuntimeError, match="reverted"):
        _send(w3, BUYER_KEY, sell)
    assert _balance(w3, t.token, BUYER) == got
    assert "trading not enabled" in _revert_reason(
        w3, BUYER_KEY, erc20(w3, t.token).functions.transfer(t.pair, 1)
    )
    # Wallet-to-wallet moves work, so a transfer test alone would not see the trap; the owner can sell.
    _send(w3, BUYER_KEY, erc20(w3, t.token).functions.transfer(OTHER, 1))
    _send(w3, OWNER_KEY, _sell(w3, uniswap, t.token, 10**18, key=OWNER_KEY))


def test_sell_tax_50_takes_half_of_a_sell_only(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "SellTax50")
    router = router_contract(w3, uniswap)
    quote = router.functions.getAmountsOut(ETH // 10, [uniswap.weth, t.token]).call()[1]
    _send(w3, BUYER_KEY, _buy(w3, uniswap, t.token, ETH // 10), value=ETH // 10)
    got = _balance(w3, t.token, BUYER)
    assert got == quote  # no buy tax
    owner = Account.from_key(OWNER_KEY).address
    owner_before = _balance(w3, t.token, owner)
    pair_before = _balance(w3, t.token, t.pair)
    _send(w3, BUYER_KEY, _sell(w3, uniswap, t.token, got))
    assert _balance(w3, t.token, t.pair) - pair_before == got // 2
    assert _balance(w3, t.token, owner) - owner_before == got - got // 2


def test_blacklist_after_buy_freezes_the_buyer(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "BlacklistAfterBuy")
    c = token_contract(w3, "BlacklistAfterBuy", t.token)
    assert not c.functions.isBlacklisted(BUYER).call()
    _send(w3, BUYER_KEY, _buy(w3, uniswap, t.token, ETH // 10), value=ETH // 10)
    got = _balance(w3, t.token, BUYER)
    assert got > 0 and c.functions.isBlacklisted(BUYER).call()
    assert "blacklisted" in _revert_reason(w3, BUYER_KEY, c.functions.transfer(OTHER, 1))
    assert "TRANSFER_FROM_FAILED" in _revert_reason(w3, BUYER_KEY, _sell(w3, uniswap, t.token, got))


def test_dead_blocks_trap_the_buy_in_the_blocks_after_the_liquidity_add(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "DeadBlocks")
    c = token_contract(w3, "DeadBlocks", t.token)
    # The liquidity add (the first transfer into the pair) is the launch block, and the latest block.
    assert c.functions.launchBlock().call() == t.block == w3.eth.block_number
    assert c.functions.deadBlocks().call() == DEAD_BLOCKS
    # The real buy lands in the next block at the earliest, and there it is trapped.
    receipt = _send(w3, BUYER_KEY, _buy(w3, uniswap, t.token, ETH // 10), value=ETH // 10)
    assert receipt["blockNumber"] == t.block + 1
    got = _balance(w3, t.token, BUYER)
    assert got > 0 and c.functions.isSniper(BUYER).call()
    assert "sniper" in _revert_reason(w3, BUYER_KEY, c.functions.transfer(OTHER, 1))
    # After the dead blocks a buyer is left alone.
    anvil.mine(DEAD_BLOCKS)
    _send(w3, OTHER_KEY, _buy(w3, uniswap, t.token, ETH // 10, key=OTHER_KEY), value=ETH // 10)
    assert _balance(w3, t.token, OTHER) > 0 and not c.functions.isSniper(OTHER).call()
    _send(w3, OTHER_KEY, c.functions.transfer(BUYER, 1))


def test_dead_blocks_leave_a_buy_in_the_launch_block_itself_alone(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    # What makes a latest-block simulation pass: the launch block is not a dead block. Only a buy mined
    # in the same block as the liquidity add (the launcher's own bundle) can be there.
    w3 = anvil.w3
    owner = Account.from_key(OWNER_KEY).address
    token = deploy_token(w3, OWNER_KEY, "DeadBlocks", *default_args("DeadBlocks", uniswap))
    _send(w3, OWNER_KEY, erc20(w3, token).functions.approve(uniswap.router, POOL_TOKENS))
    router = router_contract(w3, uniswap)
    add = router.functions.addLiquidityETH(token, POOL_TOKENS, 0, 0, owner, _deadline(w3))
    buy = _buy(w3, uniswap, token, ETH // 10)
    anvil.set_automine(False)
    try:
        hashes = [
            _sign_and_send(w3, OWNER_KEY, add, POOL_ETH, 5_000_000),
            _sign_and_send(w3, BUYER_KEY, buy, ETH // 10, 500_000),
        ]
        anvil.mine(1)
    finally:
        anvil.set_automine(True)
    receipts = [w3.eth.get_transaction_receipt(h) for h in hashes]
    assert [r["status"] for r in receipts] == [1, 1] and receipts[0]["blockNumber"] == receipts[1][
        "blockNumber"
    ]
    c = token_contract(w3, "DeadBlocks", token)
    assert c.functions.launchBlock().call() == receipts[0]["blockNumber"]
    assert _balance(w3, token, BUYER) > 0 and not c.functions.isSniper(BUYER).call()
    _send(w3, BUYER_KEY, c.functions.transfer(OTHER, 1))


def _sign_and_send(w3: Web3, key: str, call: Any, value: int, gas: int) -> Any:
    """Sign and send without waiting for the receipt (automine off: it waits for the next block)."""
    sender = Account.from_key(key).address
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tx = call.build_transaction({"from": sender, "value": value, "gas": gas, "nonce": 0})
    tx |= {
        "nonce": w3.eth.get_transaction_count(sender, "pending"),
        "maxFeePerGas": 2 * base + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    tx.pop("gasPrice", None)
    return w3.eth.send_raw_transaction(Account.from_key(key).sign_transaction(tx).raw_transaction)


def test_max_tx_lets_a_small_buy_through_and_reverts_the_snipers_size(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "MaxTx")
    c = token_contract(w3, "MaxTx", t.token)
    assert c.functions.maxTx().call() == MAX_TX
    _send(w3, BUYER_KEY, _buy(w3, uniswap, t.token, ETH // 100), value=ETH // 100)  # ~99 tokens
    assert 0 < _balance(w3, t.token, BUYER) <= MAX_TX
    big = _buy(w3, uniswap, t.token, ETH // 10)  # ~987 tokens > 500
    assert "TRANSFER_FAILED" in _revert_reason(w3, BUYER_KEY, big, ETH // 10)
    # The limit is the token's own (the router only reports the pair's failed transfer): a wallet move
    # above it reverts too, and so would selling a position above it in one transaction.
    _send(w3, OWNER_KEY, c.functions.transfer(OTHER, 2 * MAX_TX))  # the owner is exempt
    assert "max transaction exceeded" in _revert_reason(
        w3, OTHER_KEY, c.functions.transfer(BUYER, MAX_TX + 1)
    )
    with pytest.raises(RuntimeError, match="reverted"):
        _send(w3, BUYER_KEY, big, value=ETH // 10)


def test_max_wallet_caps_what_a_buyer_may_hold(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "MaxWallet")
    c = token_contract(w3, "MaxWallet", t.token)
    assert c.functions.maxWallet().call() == MAX_WALLET
    _send(w3, BUYER_KEY, _buy(w3, uniswap, t.token, ETH // 100), value=ETH // 100)  # ~99 tokens
    assert 0 < _balance(w3, t.token, BUYER) <= MAX_WALLET
    assert "TRANSFER_FAILED" in _revert_reason(
        w3, BUYER_KEY, _buy(w3, uniswap, t.token, ETH // 10), ETH // 10
    )
    _send(w3, OWNER_KEY, c.functions.transfer(OTHER, MAX_WALLET))  # up to the cap is fine
    assert "max wallet exceeded" in _revert_reason(w3, OWNER_KEY, c.functions.transfer(OTHER, 1))


def test_eoa_trap_freezes_a_wallet_buyer_but_not_a_contract(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "EoaTrap")
    c = token_contract(w3, "EoaTrap", t.token)
    _send(w3, BUYER_KEY, _buy(w3, uniswap, t.token, ETH // 10), value=ETH // 10)
    got = _balance(w3, t.token, BUYER)
    assert got > 0 and c.functions.isFrozen(BUYER).call()
    assert "TRANSFER_FROM_FAILED" in _revert_reason(w3, BUYER_KEY, _sell(w3, uniswap, t.token, got))
    # A buy delivered to a contract (here the factory: it has code) is not frozen.
    router = router_contract(w3, uniswap)
    to_contract = router.functions.swapExactETHForTokensSupportingFeeOnTransferTokens(
        0, [uniswap.weth, t.token], uniswap.factory, _deadline(w3)
    )
    _send(w3, OTHER_KEY, to_contract, value=ETH // 10)
    assert _balance(w3, t.token, uniswap.factory) > 0 and not c.functions.isFrozen(uniswap.factory).call()


def test_mintable_lets_the_owner_mint_and_nobody_else(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    w3 = anvil.w3
    t = launch(w3, uniswap, "Mintable")
    c = token_contract(w3, "Mintable", t.token)
    supply = c.functions.totalSupply().call()
    _send(w3, OWNER_KEY, c.functions.mint(OTHER, 5 * 10**24))
    assert (
        c.functions.totalSupply().call() == supply + 5 * 10**24 and _balance(w3, t.token, OTHER) == 5 * 10**24
    )
    assert "not owner" in _revert_reason(w3, BUYER_KEY, c.functions.mint(BUYER, 1))
