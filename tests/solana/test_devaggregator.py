"""The local Jupiter-shaped aggregator over pools in the local chain (#13 point 2).

Against the real pieces: the local chain (LiteSVM with the real token programs behind Solana's JSON-RPC and
Jito's block engine), the aggregator's HTTP API (Jupiter's ``/swap/v1`` shapes), its swap transaction
signed here by the user and landed through a Jito bundle. What moved is read from the chain's accounts.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from sniperbot.venues.solana import devtokens
from sniperbot.venues.solana.devaggregator import LocalAggregator
from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.jito import TIP_ACCOUNTS, JitoClient, tip_lamports
from sniperbot.venues.solana.layouts import LOCAL_AMM_PROGRAM, SOL_MINT, PoolState

POOL_TOKENS = 1_000_000 * 10**6
POOL_SOL = 100 * 10**9
BAD = "INVALID_REQUEST"


@dataclass
class Setup:
    chain: LocalSolana
    agg: LocalAggregator
    mint: Pubkey
    pool: Pubkey
    user: Keypair


@pytest.fixture
def setup(solchain: LocalSolana) -> Iterator[Setup]:
    """A pool of 1,000,000 TKN (6 decimals) / 100 SOL and a user holding 10 SOL."""
    with LocalAggregator(solchain) as agg:
        mint = devtokens.create_mint(solchain, decimals=6, mint_authority=None, freeze_authority=None)
        pool = agg.create_pool(mint, POOL_TOKENS, POOL_SOL)
        user = Keypair()
        solchain.airdrop(user.pubkey(), 10 * 10**9)
        yield Setup(solchain, agg, mint, pool, user)


def quote(s: Setup, **params: Any) -> httpx.Response:
    return httpx.get(f"{s.agg.url}/swap/v1/quote", params=params, timeout=10)


def swap(s: Setup, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{s.agg.url}/swap/v1/swap", json=body, timeout=10)


def lamports(s: Setup, key: Pubkey) -> int:
    acc = s.chain.account(key)
    return 0 if acc is None else acc.lamports


def vaults(s: Setup) -> tuple[int, int]:
    """(base vault tokens, quote vault lamports) read from the chain."""
    state = PoolState.decode(bytes(s.chain.account(s.pool).data))  # type: ignore[union-attr]
    base = int.from_bytes(bytes(s.chain.account(state.base_vault).data)[64:72], "little")  # type: ignore[union-attr]
    return base, lamports(s, state.quote_vault)


def sign_and_bundle(s: Setup, swap_tx: str) -> VersionedTransaction:
    """The user's signature at index 0 (the pool's kept), then a Jito bundle of it; returns it once landed."""
    tx = VersionedTransaction.from_bytes(base64.b64decode(swap_tx))
    sigs = list(tx.signatures)
    sigs[0] = s.user.sign_message(to_bytes_versioned(tx.message))
    signed = VersionedTransaction.populate(tx.message, sigs)
    client = JitoClient(s.chain.block_engine_url)
    try:
        bundle = client.send_bundle([signed])
        s.chain.produce_slots(2)
        deadline = s.chain.slot() + 100
        while s.chain.slot() < deadline:
            if bundle in client.get_bundle_statuses([bundle]):
                break
            s.chain.wait_for_slot(s.chain.slot() + 1)
        statuses = client.get_bundle_statuses([bundle])
        assert statuses[bundle].transactions == [str(signed.signatures[0])]
        assert client.get_inflight_bundle_statuses([bundle])[bundle].status == "Landed"
    finally:
        client.close()
    return signed


def buy_and_land(s: Setup, q: dict[str, Any]) -> None:
    """The user swaps ``q`` (tip 1000 lamports) and it lands."""
    body = {"quoteResponse": q, "userPublicKey": str(s.user.pubkey()),
            "prioritizationFeeLamports": {"jitoTipLamports": 1000}}  # fmt: skip
    sign_and_bundle(s, swap(s, body).json()["swapTransaction"])


def expected_out(amount_in: int, r_in: int, r_out: int) -> int:
    return amount_in * 9970 * r_out // (r_in * 10_000 + amount_in * 9970)


def expected_in(amount_out: int, r_in: int, r_out: int) -> int:
    return r_in * amount_out * 10_000 // ((r_out - amount_out) * 9970) + 1


def test_quotes_follow_the_constant_product_with_a_0_3_pct_fee_in_jupiters_shape(setup: Setup) -> None:
    s = setup
    sol, tkn = str(SOL_MINT), str(s.mint)
    q = quote(s, inputMint=sol, outputMint=tkn, amount=10**9, slippageBps=50).json()  # ExactIn by default
    out = expected_out(10**9, POOL_SOL, POOL_TOKENS)
    assert q["swapMode"] == "ExactIn" and q["inAmount"] == str(10**9) and q["outAmount"] == str(out)
    assert q["otherAmountThreshold"] == str(out * 9950 // 10_000) and q["slippageBps"] == 50
    (leg,) = q["routePlan"]
    assert leg["percent"] == 100 and leg["swapInfo"]["ammKey"] == str(s.pool)
    info = leg["swapInfo"]
    assert (info["inputMint"], info["outputMint"], info["feeMint"]) == (sol, tkn, sol)
    assert info["feeAmount"] == str(3 * 10**6) and isinstance(q["contextSlot"], int)
    assert 0 < float(q["priceImpactPct"]) < 0.02

    q = quote(
        s, inputMint=sol, outputMint=tkn, amount=500 * 10**6, slippageBps=100, swapMode="ExactOut"
    ).json()
    need = expected_in(500 * 10**6, POOL_SOL, POOL_TOKENS)
    assert q["swapMode"] == "ExactOut" and q["outAmount"] == str(500 * 10**6) and q["inAmount"] == str(need)
    assert q["otherAmountThreshold"] == str(need * 10_100 // 10_000)  # the most it may pay
    # ExactOut is the smallest input that gives at least the output
    assert (
        expected_out(need, POOL_SOL, POOL_TOKENS)
        >= 500 * 10**6
        > expected_out(need - 1, POOL_SOL, POOL_TOKENS)
    )

    q = quote(s, inputMint=tkn, outputMint=sol, amount=10**9).json()  # a sell
    assert q["outAmount"] == str(expected_out(10**9, POOL_TOKENS, POOL_SOL))


def test_buy_swap_transaction_is_partially_signed_by_the_pool_and_lands_moving_exactly_the_quoted_amounts(
    setup: Setup,
) -> None:
    s = setup
    q = quote(s, inputMint=str(SOL_MINT), outputMint=str(s.mint), amount=2 * 10**9, slippageBps=100).json()
    base0, quote0 = vaults(s)
    tips0 = sum(lamports(s, t) for t in TIP_ACCOUNTS)
    user0 = lamports(s, s.user.pubkey())
    body = {"quoteResponse": q, "userPublicKey": str(s.user.pubkey()), "wrapAndUnwrapSol": True,
            "prioritizationFeeLamports": {"jitoTipLamports": 20_000},
            "computeUnitPriceMicroLamports": 5_000, "dynamicComputeUnitLimit": True}  # fmt: skip
    answer = swap(s, body).json()
    tx = VersionedTransaction.from_bytes(base64.b64decode(answer["swapTransaction"]))
    msg = tx.message
    assert msg.account_keys[0] == s.user.pubkey()  # the fee payer is the user
    assert tx.signatures[0] == Signature.default()  # left for the bot
    signers = list(msg.account_keys[: msg.header.num_required_signatures])
    verified = tx.verify_with_results()
    assert verified[0] is False and all(verified[1:]) and len(signers) == 2  # the pool's authority signed
    assert tip_lamports(tx) == 20_000  # the tip is an instruction of this very transaction
    assert answer["prioritizationFeeLamports"] >= 20_000 and 0 < answer["computeUnitLimit"] < 1_400_000
    assert answer["lastValidBlockHeight"] > s.chain.slot()
    assert answer["simulationError"] is None

    signed = sign_and_bundle(s, answer["swapTransaction"])
    base1, quote1 = vaults(s)
    out, paid = int(q["outAmount"]), int(q["inAmount"])
    assert devtokens.token_balance(s.chain, s.user.pubkey(), s.mint) == out
    assert (base0 - base1, quote1 - quote0) == (out, paid)
    assert sum(lamports(s, t) for t in TIP_ACCOUNTS) - tips0 == 20_000
    fee_and_rent = user0 - lamports(s, s.user.pubkey()) - paid - 20_000
    assert 0 < fee_and_rent < 3_000_000  # the signatures' fee, the priority fee and the token account's rent
    assert str(signed.signatures[0]) != str(Signature.default())


def test_sell_swap_transaction_pays_the_user_exactly_the_quoted_lamports(setup: Setup) -> None:
    s = setup
    buy = quote(s, inputMint=str(SOL_MINT), outputMint=str(s.mint), amount=10**9).json()
    buy_and_land(s, buy)
    held = devtokens.token_balance(s.chain, s.user.pubkey(), s.mint)
    q = quote(s, inputMint=str(s.mint), outputMint=str(SOL_MINT), amount=held // 2).json()
    user0 = lamports(s, s.user.pubkey())
    body = {"quoteResponse": q, "userPublicKey": str(s.user.pubkey()),
            "prioritizationFeeLamports": {"jitoTipLamports": 1000}}  # fmt: skip
    sign_and_bundle(s, swap(s, body).json()["swapTransaction"])
    assert devtokens.token_balance(s.chain, s.user.pubkey(), s.mint) == held - held // 2
    fee = 2 * 5000 + 1000  # two signatures (the user's, the quote vault's) + the tip; no priority fee asked
    assert lamports(s, s.user.pubkey()) - user0 == int(q["outAmount"]) - fee


def test_new_pool_account_is_announced_with_funded_vaults(setup: Setup) -> None:
    s = setup
    body = {"jsonrpc": "2.0", "id": 1, "method": "getProgramAccounts",
            "params": [str(LOCAL_AMM_PROGRAM), {"encoding": "base64"}]}  # fmt: skip
    (row,) = httpx.post(s.chain.rpc_url, json=body, timeout=10).json()["result"]
    assert row["pubkey"] == str(s.pool)
    state = PoolState.decode(base64.b64decode(row["account"]["data"][0]))
    assert (state.base_mint, state.quote_mint, state.fee_bps) == (s.mint, SOL_MINT, 30)
    base, quote_lamports = vaults(s)
    assert (
        base == POOL_TOKENS and quote_lamports == POOL_SOL + s.chain.svm.minimum_balance_for_rent_exemption(0)
    )


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"outputMint": "MINT", "amount": 1}, "inputMint", "INVALID_REQUEST"),
        ({"inputMint": "SOL", "outputMint": "MINT", "amount": 0}, "amount", "INVALID_REQUEST"),
        ({"inputMint": "SOL", "outputMint": "MINT", "amount": "x1"}, "amount", "INVALID_REQUEST"),
        ({"inputMint": "SOL", "outputMint": "MINT", "amount": 1, "swapMode": "Exact"}, "swapMode", BAD),
        ({"inputMint": "SOL", "outputMint": "MINT", "amount": 1, "slippageBps": -1}, "slippageBps", BAD),
        ({"inputMint": "SOL", "outputMint": "OTHER", "amount": 1}, "no pool", "COULD_NOT_FIND_ANY_ROUTE"),
        ({"inputMint": "SOL", "outputMint": "MINT", "amount": POOL_TOKENS, "swapMode": "ExactOut"},
         "liquidity", "COULD_NOT_FIND_ANY_ROUTE"),
    ],
)  # fmt: skip
def test_a_bad_quote_request_is_a_4xx_naming_the_field(
    setup: Setup, params: dict[str, Any], field: str, code: str
) -> None:
    names = {"SOL": str(SOL_MINT), "MINT": str(setup.mint), "OTHER": str(Keypair().pubkey())}
    resp = quote(setup, **{k: names.get(v, v) if isinstance(v, str) else v for k, v in params.items()})
    assert resp.status_code == 400
    body = resp.json()
    assert body["errorCode"] == code and field in body["error"]


def test_a_bad_swap_request_is_a_4xx_naming_the_field_and_a_moved_pool_is_refused(setup: Setup) -> None:
    s = setup
    q = quote(s, inputMint=str(SOL_MINT), outputMint=str(s.mint), amount=10**9, slippageBps=10).json()
    user = str(s.user.pubkey())
    for body, field in [
        ({"userPublicKey": user}, "quoteResponse"),
        ({"quoteResponse": q}, "userPublicKey"),
        ({"quoteResponse": q, "userPublicKey": "nope"}, "userPublicKey"),
        ({"quoteResponse": {**q, "inAmount": "-5"}, "userPublicKey": user}, "quoteResponse.inAmount"),
        ({"quoteResponse": q, "userPublicKey": user, "wrapAndUnwrapSol": False}, "wrapAndUnwrapSol"),
        ({"quoteResponse": q, "userPublicKey": user, "prioritizationFeeLamports": {"jitoTipLamports": 0}},
         "jitoTipLamports"),
    ]:  # fmt: skip
        resp = swap(s, body)
        assert resp.status_code == 400, body
        assert field in resp.json()["error"] and resp.json()["errorCode"] == "INVALID_REQUEST"
    # Someone else buys first: the pool moved past the quote's 0.1 % slippage; no transaction is built.
    other = quote(s, inputMint=str(SOL_MINT), outputMint=str(s.mint), amount=5 * 10**9).json()
    rival = s.user
    s.user = Keypair()
    s.chain.airdrop(s.user.pubkey(), 10 * 10**9)
    buy_and_land(s, other)
    resp = swap(s, {"quoteResponse": q, "userPublicKey": str(rival.pubkey())})
    assert resp.status_code == 400 and resp.json()["errorCode"] == "SLIPPAGE_EXCEEDED"
