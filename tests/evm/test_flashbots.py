"""Flashbots: our relay client and the private route, against a local relay over anvil (real signed txs).

The relay (``tests/evm/relay.py``) verifies ``X-Flashbots-Signature``, simulates on anvil, and builds the
blocks when the test says so (anvil's automine is off while it runs): a bundle lands whole in its target
block, in order, or not at all.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from web3 import Web3

from sniperbot.venues.evm.devchain import (
    ANVIL_CHAIN_ID,
    ANVIL_KEYS,
    Anvil,
    UniswapDeployment,
    add_liquidity_eth,
    artifact,
    deploy_plain_token,
    erc20,
    router_contract,
)
from sniperbot.venues.evm.flashbots import (
    FlashbotsClient,
    FlashbotsRoute,
    RelayError,
    bundle_hash,
    flashbots_signature,
    tx_hash,
)
from sniperbot.venues.evm.routes import RouteRejected
from tests.evm.relay import LocalRelay

# The reputation key: any key, it holds no funds (not one of anvil's funded accounts).
AUTH_KEY = "0x" + "4b" * 32
TRADER, OTHER = ANVIL_KEYS[1], ANVIL_KEYS[2]


@dataclass
class Market:
    """Uniswap with a TKN/WETH pool on anvil."""

    w3: Web3
    uni: UniswapDeployment
    token: str


@pytest.fixture
def market(anvil: Anvil, uniswap: UniswapDeployment) -> Market:
    """A plain token with 10 ETH of liquidity (set up while anvil still automines)."""
    token = deploy_plain_token(anvil.w3, ANVIL_KEYS[0], 10**24)
    add_liquidity_eth(anvil.w3, uniswap, ANVIL_KEYS[0], token, 10**23, 10 * 10**18)
    return Market(anvil.w3, uniswap, token)


@pytest.fixture
def relay(anvil: Anvil, market: Market) -> Iterator[LocalRelay]:
    """The local relay over ``anvil`` (from here on, blocks are built by the test through the relay)."""
    with LocalRelay(anvil) as r:
        yield r


def _fees(w3: Web3, nonce: int, sender: str) -> dict[str, Any]:
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    return {
        "from": sender,
        "nonce": nonce,
        "chainId": ANVIL_CHAIN_ID,
        "maxFeePerGas": 2 * base + 2 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }


def weth_deposit(m: Market, key: str, nonce: int, wei: int = 10**17) -> bytes:
    """A signed ``WETH.deposit()`` of ``wei``."""
    account = Account.from_key(key)
    weth = m.w3.eth.contract(address=m.uni.weth, abi=artifact("@uniswap/v2-periphery", "WETH9")["abi"])
    tx = weth.functions.deposit().build_transaction(
        _fees(m.w3, nonce, account.address) | {"value": wei, "gas": 100_000}
    )
    return bytes(account.sign_transaction(tx).raw_transaction)


def swap_buy(m: Market, key: str, nonce: int, wei: int = 10**17, greedy: bool = False) -> bytes:
    """A signed ``swapExactETHForTokens`` of ``wei``; ``greedy`` asks twice the quote (it reverts)."""
    account = Account.from_key(key)
    router = router_contract(m.w3, m.uni)
    quote = router.functions.getAmountsOut(wei, [m.uni.weth, m.token]).call()[1]
    deadline = int(m.w3.eth.get_block("latest")["timestamp"]) + 600
    swap = router.functions.swapExactETHForTokens(
        quote * 2 if greedy else quote, [m.uni.weth, m.token], account.address, deadline
    )
    tx = swap.build_transaction(_fees(m.w3, nonce, account.address) | {"value": wei, "gas": 300_000})
    return bytes(account.sign_transaction(tx).raw_transaction)


def nonce_of(w3: Web3, key: str) -> int:
    """The account's mined nonce."""
    return int(w3.eth.get_transaction_count(Account.from_key(key).address, "latest"))


def weth_of(m: Market, key: str) -> int:
    """The account's WETH balance."""
    return int(erc20(m.w3, m.uni.weth).functions.balanceOf(Account.from_key(key).address).call())


def block_txs(w3: Web3, number: int) -> list[str]:
    """The 0x-hex hashes of a block's transactions, in block order."""
    return ["0x" + bytes(h).hex() for h in w3.eth.get_block(number)["transactions"]]


# ---- the signature


def test_signature_header_is_eip191_of_the_0x_prefixed_body_hash() -> None:
    body = (
        b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[{"txs":["0x02"],"blockNumber":"0x2a"}]}'
    )
    header = flashbots_signature(body, AUTH_KEY)
    address, _, signature = header.partition(":")
    assert address == Account.from_key(AUTH_KEY).address
    assert signature.startswith("0x") and len(signature) == 2 + 65 * 2
    # The documented algorithm, step by step: the TEXT "0x" + hex(keccak256(body)), EIP-191 personal_sign.
    text = "0x" + keccak(body).hex()
    assert Account.recover_message(encode_defunct(text=text), signature=signature) == address
    # The web3 >= 7 pitfall (hex without 0x) signs another message: a relay would recover someone else.
    assert Account.recover_message(encode_defunct(text=keccak(body).hex()), signature=signature) != address


# ---- the client against the relay


def test_call_bundle_simulates_in_order_and_leaves_the_chain_untouched(
    anvil: Anvil, market: Market, relay: LocalRelay
) -> None:
    w3, n = market.w3, nonce_of(market.w3, TRADER)
    head, weth_before = w3.eth.block_number, weth_of(market, TRADER)
    raws = [weth_deposit(market, TRADER, n), swap_buy(market, TRADER, n + 1)]
    client = FlashbotsClient(relay.url, AUTH_KEY)
    sim = client.call_bundle(raws, head + 1, "latest")
    assert [r["txHash"] for r in sim["results"]] == [tx_hash(r) for r in raws]
    assert all("error" not in r and r["value"] == "0x" for r in sim["results"])
    gas = [r["gasUsed"] for r in sim["results"]]
    assert gas[0] > 21_000 and gas[1] > 60_000 and sim["totalGasUsed"] == sum(gas)
    assert sim["bundleHash"] == bundle_hash(raws)
    assert int(sim["coinbaseDiff"]) == sum(g * 10**9 for g in gas)  # the 1 gwei tips
    assert sim["stateBlockNumber"] == head
    # A simulation, not a submission: no block, no nonce used, no WETH, nothing left in the pool.
    assert w3.eth.block_number == head and nonce_of(w3, TRADER) == n
    assert weth_of(market, TRADER) == weth_before
    assert anvil.rpc("txpool_status")["pending"] == "0x0"
    assert relay.requests[-1]["signer"] == client.auth_address

    # The swap of a greedy bundle reverts: the result says which transaction and why.
    greedy = [weth_deposit(market, TRADER, n), swap_buy(market, TRADER, n + 1, greedy=True)]
    sim = client.call_bundle(greedy, head + 1)
    assert "error" not in sim["results"][0]
    assert sim["results"][1]["error"] == "execution reverted"
    assert sim["results"][1]["revert"] == "UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"
    assert w3.eth.block_number == head and nonce_of(w3, TRADER) == n


def test_bundle_lands_whole_in_its_target_block_in_order(market: Market, relay: LocalRelay) -> None:
    w3 = market.w3
    n, m = nonce_of(w3, TRADER), nonce_of(w3, OTHER)
    head = w3.eth.block_number
    # Two signers, the trader's deposit and swap around the other's deposit.
    raws = [weth_deposit(market, TRADER, n), weth_deposit(market, OTHER, m), swap_buy(market, TRADER, n + 1)]
    client = FlashbotsClient(relay.url, AUTH_KEY)
    sent_hash = client.send_bundle(raws, head + 1)
    assert sent_hash == bundle_hash(raws)
    assert w3.eth.block_number == head  # nothing until the block is built

    built = relay.build_block()
    assert built.number == head + 1 and built.included == [sent_hash]
    assert block_txs(w3, head + 1) == [tx_hash(r) for r in raws]
    assert all(w3.eth.get_transaction_receipt(tx_hash(r))["status"] == 1 for r in raws)
    assert nonce_of(w3, TRADER) == n + 2 and nonce_of(w3, OTHER) == m + 1
    assert erc20(w3, market.token).functions.balanceOf(Account.from_key(TRADER).address).call() > 0
    # The relay's view of it.
    stats = client.bundle_stats(sent_hash, head + 1)
    assert stats["isSimulated"] and stats["sealedByBuildersAt"]


def test_bundle_with_one_reverting_transaction_is_dropped_whole(market: Market, relay: LocalRelay) -> None:
    w3 = market.w3
    n, m = nonce_of(w3, TRADER), nonce_of(w3, OTHER)
    weth_trader, weth_other = weth_of(market, TRADER), weth_of(market, OTHER)
    head = w3.eth.block_number
    raws = [
        weth_deposit(market, TRADER, n),
        swap_buy(market, TRADER, n + 1, greedy=True),  # reverts: min-out above what the pool gives
        weth_deposit(market, OTHER, m),
    ]
    client = FlashbotsClient(relay.url, AUTH_KEY)
    dropped = client.send_bundle(raws, head + 1)
    built = relay.build_block()
    assert built.number == head + 1 and built.included == []
    assert built.dropped[0][0] == dropped and "INSUFFICIENT_OUTPUT_AMOUNT" in built.dropped[0][1]
    # Not one of its transactions is on chain, not even those that would have succeeded.
    assert block_txs(w3, head + 1) == []
    assert nonce_of(w3, TRADER) == n and nonce_of(w3, OTHER) == m
    assert weth_of(market, TRADER) == weth_trader and weth_of(market, OTHER) == weth_other
    stats = client.bundle_stats(dropped, head + 1)
    assert stats["consideredByBuildersAt"] and not stats["sealedByBuildersAt"]

    # The same bundle allowing the swap to revert lands whole, the swap reverted inside it.
    client.send_bundle(raws, head + 2, reverting_hashes=[tx_hash(raws[1])])
    built = relay.build_block()
    assert block_txs(w3, head + 2) == [tx_hash(r) for r in raws]
    assert [w3.eth.get_transaction_receipt(tx_hash(r))["status"] for r in raws] == [1, 0, 1]


def test_bundle_for_a_past_or_another_block_is_not_included(market: Market, relay: LocalRelay) -> None:
    w3 = market.w3
    n = nonce_of(w3, TRADER)
    head = w3.eth.block_number
    raws = [weth_deposit(market, TRADER, n)]
    client = FlashbotsClient(relay.url, AUTH_KEY)
    client.send_bundle(raws, head)  # the current block: already built
    client.send_bundle(raws, head + 2)  # not the next block
    built = relay.build_block()
    assert built.number == head + 1 and built.included == [] and built.dropped == []
    assert block_txs(w3, head + 1) == [] and nonce_of(w3, TRADER) == n
    # Its own block takes it.
    built = relay.build_block()
    assert built.number == head + 2 and block_txs(w3, head + 2) == [tx_hash(raws[0])]


def test_forged_or_missing_signature_is_refused_and_the_client_says_so(
    market: Market, relay: LocalRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    w3 = market.w3
    raws = [weth_deposit(market, TRADER, nonce_of(w3, TRADER))]
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "eth_sendBundle",
            "params": [{"txs": ["0x" + raws[0].hex()], "blockNumber": hex(w3.eth.block_number + 1)}],
        }
    ).encode()

    def post(headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(relay.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    claimed = Account.from_key(AUTH_KEY).address
    forged = flashbots_signature(body, ANVIL_KEYS[5]).partition(":")[2]  # someone else's signature
    status, answer = post(
        {"Content-Type": "application/json", "X-Flashbots-Signature": f"{claimed}:{forged}"}
    )
    assert status == 403 and answer["error"] == {
        "code": -32600,
        "message": f"error in signature check {claimed}",
    }
    status, answer = post({"Content-Type": "application/json"})
    assert status == 403 and answer["error"]["message"] == "signature is required"
    status, answer = post(
        {"Content-Type": "application/json", "X-Flashbots-Signature": flashbots_signature(body, AUTH_KEY)}
    )
    assert status == 200 and answer["result"]["bundleHash"] == bundle_hash(raws)  # the genuine one passes
    assert len(relay.bundles) == 1

    # Our client signing the web3 >= 7 way (hash hex without 0x): the relay refuses, the error is clear.
    def unprefixed(body: bytes, auth_key: str) -> str:
        acct = Account.from_key(auth_key)
        sig = acct.sign_message(encode_defunct(text=keccak(body).hex())).signature
        return f"{acct.address}:0x{bytes(sig).hex()}"

    monkeypatch.setattr("sniperbot.venues.evm.flashbots.flashbots_signature", unprefixed)
    client = FlashbotsClient(relay.url, AUTH_KEY)
    with pytest.raises(RelayError) as caught:
        client.send_bundle(raws, w3.eth.block_number + 1)
    text = str(caught.value)
    assert "eth_sendBundle" in text and f"error in signature check {claimed}" in text
    assert relay.url in text and "HTTP 403" in text
    assert AUTH_KEY.removeprefix("0x") not in text + repr(client)
    assert len(relay.bundles) == 1  # nothing stored from the refused request


def test_relay_out_of_reach_is_a_clear_error_without_the_key() -> None:
    client = FlashbotsClient("http://127.0.0.1:9/?apikey=SECRET", AUTH_KEY, timeout_s=2)
    with pytest.raises(RelayError) as caught:
        client.call_bundle([b"\x02"], 1)
    text = str(caught.value)
    assert text.startswith("flashbots relay http://127.0.0.1:9 eth_callBundle: unreachable")
    assert "SECRET" not in text and AUTH_KEY.removeprefix("0x") not in text
    bad_key = "0x" + "zz" * 32
    with pytest.raises(ValueError, match="auth key is not a valid private key") as caught_key:
        FlashbotsClient("http://127.0.0.1:9", bad_key)
    assert "zz" not in str(caught_key.value) and caught_key.value.__cause__ is None


# ---- the route


def test_route_resends_for_the_next_blocks_until_included(market: Market, relay: LocalRelay) -> None:
    w3 = market.w3
    n = nonce_of(w3, TRADER)
    head = w3.eth.block_number
    raws = [weth_deposit(market, TRADER, n), swap_buy(market, TRADER, n + 1)]
    key = bundle_hash(raws)
    route = FlashbotsRoute(w3, relay.url, AUTH_KEY, blocks_ahead=3)
    route.submit(raws, head)
    assert relay.methods() == ["eth_callBundle"] + ["eth_sendBundle"] * 3
    assert relay.sends() == [(key, head + 1), (key, head + 2), (key, head + 3)]
    route.submit(raws, head)  # the same head again: nothing new to send, no request at all
    assert len(relay.requests) == 4
    assert relay.connections() == 1  # one kept-alive connection, no handshake per request

    # The block after the head is built without the bundle (its proposer does not take bundles).
    assert relay.build_empty_block() == head + 1
    assert nonce_of(w3, TRADER) == n
    relay.drop_connections()  # the relay closed the idle connection meanwhile: the route reconnects
    route.submit(raws, head + 1)  # the gateway's call on the new head: only head+4 is new
    assert relay.sends()[3:] == [(key, head + 4)]
    assert relay.methods()[4:] == ["eth_callBundle", "eth_sendBundle"]

    built = relay.build_block()
    assert built.number == head + 2 and built.included == [key]
    assert block_txs(w3, head + 2) == [tx_hash(r) for r in raws]
    assert nonce_of(w3, TRADER) == n + 2

    # A call racing the receipt: the simulation finds the nonces used, nothing is sent, no error.
    route.submit(raws, head + 2)
    assert relay.methods()[6:] == ["eth_callBundle"] and len(relay.sends()) == 4
    relay.build_block()
    assert nonce_of(w3, TRADER) == n + 2  # landed exactly once


def test_route_rejects_a_bundle_whose_simulation_reverts(market: Market, relay: LocalRelay) -> None:
    w3 = market.w3
    n = nonce_of(w3, TRADER)
    raws = [weth_deposit(market, TRADER, n), swap_buy(market, TRADER, n + 1, greedy=True)]
    route = FlashbotsRoute(w3, relay.url, AUTH_KEY)
    with pytest.raises(RouteRejected) as caught:
        route.submit(raws, w3.eth.block_number)
    assert tx_hash(raws[1]) in caught.value.reason
    assert "UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT" in caught.value.reason
    assert relay.methods() == ["eth_callBundle"] and relay.sends() == []
