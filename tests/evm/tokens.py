"""The adversarial test tokens (``tests/evm/contracts/*.sol``, compiled artifacts in ``build/``) on anvil.

Every token is an 18-decimal ERC-20 whose whole supply goes to the deployer (its owner); each takes the
Router02 address as constructor argument and creates its own WETH pair there, like real launch contracts
(the zero address: no pair). :func:`launch` deploys one and adds liquidity (by default 100,000 tokens
against 10 ETH, so about 10,000 tokens per ETH) and burns the LP tokens, as an honest launch does.

Recompile after editing a ``.sol``: ``node tests/evm/contracts/compile.js`` (``test_tokens.py`` checks the
committed artifacts equal a fresh compile).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from sniperbot.venues.evm.devchain import (
    ANVIL_KEYS,
    UniswapDeployment,
    add_liquidity_eth,
    deploy,
    erc20,
    factory_contract,
    router_contract,
    send_tx,
)

CONTRACTS = Path(__file__).resolve().parent / "contracts"
BUILD = CONTRACTS / "build"
TOKENS = (
    "PlainToken",
    "FeeOnTransferToken",
    "Honeypot",
    "SellTax50",
    "BlacklistAfterBuy",
    "DeadBlocks",
    "MaxTx",
    "MaxWallet",
    "Mintable",
    "LoudHoneypot",
    "EoaTrap",
)
SUPPLY = 10**24  # 1,000,000 tokens
POOL_TOKENS = 10**23  # 100,000 tokens ...
POOL_ETH = 10 * 10**18  # ... against 10 ETH
DEAD = "0x000000000000000000000000000000000000dEaD"
MAX_TX = 500 * 10**18  # MaxTx: 0.01 ETH (~99 tokens) passes, 0.1 ETH (~987 tokens) reverts
MAX_WALLET = 500 * 10**18  # MaxWallet: the same sizes
DEAD_BLOCKS = 3


@cache
def token_artifact(name: str) -> dict[str, Any]:
    """The committed ``{abi, bytecode}`` of one test token."""
    return json.loads((BUILD / f"{name}.json").read_text())


def deploy_token(w3: Web3, key: str, name: str, *args: Any) -> str:
    """Deploy test token ``name`` with constructor ``args`` from ``key``; its address."""
    return deploy(w3, key, token_artifact(name), *args)


def token_contract(w3: Web3, name: str, address: str) -> Any:
    """A web3 contract object for test token ``name`` at ``address`` (its full ABI)."""
    return w3.eth.contract(address=address, abi=token_artifact(name)["abi"])


def default_args(name: str, uni: UniswapDeployment) -> tuple[Any, ...]:
    """The constructor arguments the tests use for ``name``."""
    if name == "DeadBlocks":
        return (SUPPLY, uni.router, DEAD_BLOCKS)
    if name == "MaxTx":
        return (SUPPLY, uni.router, MAX_TX)
    if name == "MaxWallet":
        return (SUPPLY, uni.router, MAX_WALLET)
    return (SUPPLY, uni.router)


@dataclass(frozen=True)
class Launched:
    """A deployed test token with its pool."""

    name: str
    token: str
    pair: str
    block: int  # the block the liquidity was added in


def launch(
    w3: Web3,
    uni: UniswapDeployment,
    name: str,
    key: str = ANVIL_KEYS[0],
    token_amount: int = POOL_TOKENS,
    eth_amount: int = POOL_ETH,
    burn_lp: bool = True,
) -> Launched:
    """Deploy ``name`` and add liquidity, the LP tokens minted straight to 0x…dEaD (burnt) by default.

    The liquidity add is the last transaction: the chain's latest block is the launch block (what the
    DeadBlocks token's trap counts from).
    """
    token = deploy_token(w3, key, name, *default_args(name, uni))
    if not burn_lp:
        pair = add_liquidity_eth(w3, uni, key, token, token_amount, eth_amount)
        return Launched(name, token, pair, w3.eth.block_number)
    owner = Account.from_key(key).address
    approve = erc20(w3, token).functions.approve(uni.router, token_amount)
    tx = approve.build_transaction({"from": owner, "gas": 100_000, "nonce": 0})
    send_tx(w3, key, tx | _nonce(w3, owner))
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    add = router_contract(w3, uni).functions.addLiquidityETH(token, token_amount, 0, 0, DEAD, deadline)
    tx = add.build_transaction({"from": owner, "value": eth_amount, "gas": 5_000_000, "nonce": 0})
    receipt = send_tx(w3, key, tx | _nonce(w3, owner))
    pair = factory_contract(w3, uni).functions.getPair(token, uni.weth).call()
    return Launched(name, token, Web3.to_checksum_address(pair), receipt["blockNumber"])


def _nonce(w3: Web3, owner: str) -> dict[str, int]:
    return {"nonce": w3.eth.get_transaction_count(owner, "pending")}
