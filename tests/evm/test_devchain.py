"""The local chain the EVM tests stand on: anvil with the real Uniswap V2 contracts, swapping."""

from __future__ import annotations

from eth_account import Account
from eth_utils import keccak

from sniperbot.venues.evm.devchain import (
    ANVIL_KEYS,
    MAINNET_PAIR_INIT_CODE_HASH,
    Anvil,
    UniswapDeployment,
    add_liquidity_eth,
    artifact,
    deploy_plain_token,
    erc20,
    router_contract,
    send_tx,
)


def test_published_pair_matches_the_routers_init_code_hash_and_a_swap_goes_through(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    pair_code = artifact("@uniswap/v2-core", "UniswapV2Pair")["bytecode"]
    assert keccak(hexstr=pair_code).hex().removeprefix("0x") == uniswap.init_code_hash
    assert uniswap.init_code_hash == MAINNET_PAIR_INIT_CODE_HASH and not uniswap.init_code_hash_patched
    w3 = anvil.w3
    token = deploy_plain_token(w3, ANVIL_KEYS[0], 10**24)
    pair = add_liquidity_eth(w3, uniswap, ANVIL_KEYS[0], token, 10**23, 10 * 10**18)
    router = router_contract(w3, uniswap)
    # The router computes the pair's address by CREATE2 from the init-code hash: a quote only works
    # if that address is the pair the factory deployed.
    amounts = router.functions.getAmountsOut(10**17, [uniswap.weth, token]).call()
    assert amounts[1] > 0 and erc20(w3, token).functions.balanceOf(pair).call() == 10**23
    buyer = Account.from_key(ANVIL_KEYS[1]).address
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    swap = router.functions.swapExactETHForTokens(amounts[1], [uniswap.weth, token], buyer, deadline)
    send_tx(
        w3,
        ANVIL_KEYS[1],
        swap.build_transaction({"from": buyer, "value": 10**17, "gas": 300_000, "nonce": 0})
        | {"nonce": w3.eth.get_transaction_count(buyer)},
    )
    assert erc20(w3, token).functions.balanceOf(buyer).call() == amounts[1]


def test_snapshot_and_revert_drop_a_mined_receipt(anvil: Anvil) -> None:
    w3 = anvil.w3
    snap = anvil.snapshot()
    sender = Account.from_key(ANVIL_KEYS[2]).address
    receipt = send_tx(w3, ANVIL_KEYS[2], {"to": sender, "value": 1})
    assert w3.eth.get_transaction_receipt(receipt["transactionHash"])["status"] == 1
    anvil.revert(snap)
    assert w3.eth.block_number == receipt["blockNumber"] - 1
    try:
        w3.eth.get_transaction_receipt(receipt["transactionHash"])
        raise AssertionError("the receipt outlived the revert")
    except Exception as e:  # web3's TransactionNotFound
        assert "not found" in str(e).lower() or "TransactionNotFound" in type(e).__name__
