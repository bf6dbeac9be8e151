"""The Solana gateway on the local chain: Jupiter-shaped swaps placed once, fills from the chain (#13 p. 3).

Real components: the local chain (LiteSVM with the real token programs behind Solana's JSON-RPC and a Jito
block engine), the local Jupiter-shaped aggregator, the generic executor and the gateway each in an
:class:`ActorRuntime` of their own (the harness of ``tests/venues_ccxt/test_gateway.py``), real ZeroMQ
inboxes, the real LMDB journal and tx ledger. What was placed is read from the CHAIN (the wallet's
transactions and balances), what was booked from the journal. The wallet key reaches the gateway the way
production does, in ``ActorLaunch.credentials``.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from sniperbot.actors.runtime import close_process_journals, process_journal
from sniperbot.keystore import Credentials
from sniperbot.messages import Order
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport
from sniperbot.venues.base import DUPLICATE
from sniperbot.venues.solana import devtokens
from sniperbot.venues.solana.devaggregator import LocalAggregator
from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.gateway import fill_id
from sniperbot.venues.solana.jito import TIP_ACCOUNTS, tip_lamports
from sniperbot.venues.solana.layouts import SOL_MINT
from sniperbot.venues.solana.txledger import Intent, TxLedger
from tests.conftest import eventually
from tests.venues_ccxt.test_gateway import _HEARD, _OUTGOING, Actors

VENUE = "localsol"
SYM = "TKN/SOL"
GATEWAY = f"gateway.{VENUE}"
EXECUTOR = f"executor.{VENUE}"
DRIVER = "tests.venues_ccxt.test_gateway:Driver"
# A fixed wallet (tests only): its key must appear nowhere but in the gateway's memory.
WALLET = Keypair.from_seed(bytes(range(1, 33)))
WALLET_KEY = str(WALLET)  # base58 of the 64 bytes: the keystore's secret_key
DECIMALS = 6
POOL_TOKENS = 1_000_000 * 10**DECIMALS
POOL_SOL = 100 * 10**9
TIP = 10_000


@dataclass
class Market:
    """The local chain, the aggregator and one pool TKN/SOL (1,000,000 TKN / 100 SOL)."""

    chain: Any
    agg: LocalAggregator
    mint: Pubkey
    pool: Pubkey


def make_market(chain: Any, agg: LocalAggregator, **mint_args: Any) -> Market:
    """A fresh mint (no authorities unless asked), its pool, and a funded wallet (50 SOL)."""
    args = {"decimals": DECIMALS, "mint_authority": None, "freeze_authority": None, **mint_args}
    mint = devtokens.create_mint(chain, **args)
    pool = agg.create_pool(mint, POOL_TOKENS, POOL_SOL)
    chain.airdrop(WALLET.pubkey(), 50 * 10**9)
    return Market(chain, agg, mint, pool)


@pytest.fixture
def chain() -> Iterator[Any]:
    """A fresh local chain (50 ms slots; a blockhash lives 40 slots so that expiry tests stay short)."""
    with LocalSolana(blockhash_valid_slots=40) as c:
        yield c


@pytest.fixture
def market(chain: Any) -> Iterator[Market]:
    with LocalAggregator(chain) as agg:
        yield make_market(chain, agg)


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


def gateway_args(m: Market, **extra: Any) -> dict[str, Any]:
    """The constructor args ``SolanaVenueConfig.live_gateway`` passes (issue #13 shapes)."""
    return {
        "venue": VENUE,
        "rpc_url": m.chain.rpc_url,
        "ws_url": "",
        "commitment": "confirmed",
        "aggregator_url": m.agg.url,
        "quote": "SOL",
        "mints": {"SOL": str(SOL_MINT), "TKN": str(m.mint)},
        "symbols": [SYM],
        "route": "jito",
        "block_engine_url": m.chain.block_engine_url,
        "tip_lamports": TIP,
        "priority_fee_micro_lamports": 10_000,
        "compute_unit_limit": 200_000,
        "slippage_bps": 100,
        "poll_s": 0.05,
        "resend_s": 0.5,
        "durability": "process",
        **extra,
    }


def wallet_launch() -> bytes:
    """The wallet's keystore entry sealed for the gateway's launch."""
    return Credentials("sol-wallet", "solana", "2026-01-01T00:00:00Z", {"secret_key": WALLET_KEY}).to_launch()


def start_all(actors: Actors, m: Market, **extra: Any) -> None:
    """Gateway, generic executor and an order source (with the risk guard's id)."""
    actors.start(GATEWAY, "sniperbot.venues.solana.gateway:SolanaGateway", gateway_args(m, **extra),
                 wallet_launch())  # fmt: skip
    actors.start(EXECUTOR, "sniperbot.execution.executor:Executor", {"venue": VENUE, "gateway": GATEWAY})
    actors.start("risk_guard", DRIVER, {})


def order(cid: str, side: str = "buy", quantity: float = 1000.0, symbol: str = SYM) -> Order:
    return Order(
        client_order_id=cid,
        intent_id=cid,
        strategy_id="s1",
        venue=VENUE,
        symbol=symbol,
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


_ids = itertools.count(1)


def rpc(chain: Any, method: str, *params: Any) -> Any:
    """One JSON-RPC call to the local chain (what any Solana client sends)."""
    body = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": list(params)}
    answer = httpx.post(chain.rpc_url, json=body, timeout=10).json()
    assert "error" not in answer, answer
    return answer["result"]


def wallet_txs(chain: Any) -> list[dict[str, Any]]:
    """Every landed transaction the wallet signed, oldest first, from the chain (getSignaturesForAddress +
    getTransaction): signature, slot, err, meta and the transaction itself."""
    rows = rpc(chain, "getSignaturesForAddress", str(WALLET.pubkey()), {"commitment": "confirmed"})
    out = []
    for row in reversed(rows):
        cfg = {"encoding": "base64", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}
        tx = rpc(chain, "getTransaction", row["signature"], cfg)
        vt = VersionedTransaction.from_bytes(base64.b64decode(tx["transaction"][0]))
        if vt.message.account_keys[0] != WALLET.pubkey():
            continue  # e.g. an airdrop that only credits the wallet
        out.append({"signature": row["signature"], "slot": tx["slot"], "err": tx["meta"]["err"],
                    "meta": tx["meta"], "tx": vt})  # fmt: skip
    return out


def balance(chain: Any, key: Pubkey) -> int:
    return int(rpc(chain, "getBalance", str(key), {"commitment": "confirmed"})["value"])


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


def test_buy_and_sell_through_jito_each_one_swap_with_its_tip_fills_from_the_chain_no_key_anywhere(
    market: Market, actors: Actors, capfd: pytest.CaptureFixture[str]
) -> None:
    m = market
    start_all(actors, m)
    run = actors.run_dir
    sol_before = balance(m.chain, WALLET.pubkey())
    tips_before = sum(balance(m.chain, t) for t in TIP_ACCOUNTS)
    submit(order("s1-t1-1", "buy", 1000.0))
    eventually(lambda: journal(run).order_status("s1-t1-1") == "filled", 30, what="buy filled")
    (buy_tx,) = wallet_txs(m.chain)
    assert buy_tx["err"] is None
    (fill,) = fills_of(run, "s1-t1-1")
    assert fill.fill_id == fill_id(VENUE, buy_tx["signature"]) and fill.trade_id == buy_tx["signature"]
    got = devtokens.token_balance(m.chain, WALLET.pubkey(), m.mint)
    assert got == 1000 * 10**DECIMALS  # ExactOut: exactly the quantity asked
    assert fill.side == "buy" and fill.quantity == pytest.approx(1000.0)
    # The tip went to a Jito tip account inside the swap transaction itself.
    assert tip_lamports(buy_tx["tx"]) == TIP
    assert sum(balance(m.chain, t) for t in TIP_ACCOUNTS) - tips_before == TIP
    meta = buy_tx["meta"]
    assert fill.fee == pytest.approx((meta["fee"] + TIP) / 1e9)
    # The price is the SOL that went into the pool: the pool's quote vault grew by exactly that.
    spent = sol_before - balance(m.chain, WALLET.pubkey())
    pool_state = m.agg.pools[m.pool].state
    vault_in = balance(m.chain, pool_state.quote_vault) - POOL_SOL - rent0(m.chain)
    assert fill.price * fill.quantity == pytest.approx(vault_in / 1e9, rel=1e-12)
    assert spent > vault_in + meta["fee"] + TIP  # + the rent of the new token account (a deposit)
    # The constant product (0.3 % fee) priced it: getAmountIn of 1000 TKN.
    need = POOL_SOL * 1000 * 10**DECIMALS * 10_000 // ((POOL_TOKENS - 1000 * 10**DECIMALS) * 9_970) + 1
    assert vault_in == need

    sol_mid = balance(m.chain, WALLET.pubkey())
    submit(order("s1-t1-2", "sell", 400.0))
    eventually(lambda: journal(run).order_status("s1-t1-2") == "filled", 30, what="sell filled")
    txs = wallet_txs(m.chain)
    assert len(txs) == 2 and txs[0]["signature"] == buy_tx["signature"]
    (sell,) = fills_of(run, "s1-t1-2")
    assert sell.side == "sell" and sell.quantity == pytest.approx(400.0)
    assert devtokens.token_balance(m.chain, WALLET.pubkey(), m.mint) == got - 400 * 10**DECIMALS
    received = balance(m.chain, WALLET.pubkey()) - sol_mid + sell.fee * 1e9
    assert sell.price * sell.quantity == pytest.approx(received / 1e9, rel=1e-9)
    assert tip_lamports(txs[1]["tx"]) == TIP

    # The wallet key is nowhere: run dir (journal, ledger, logs) nor what the actors printed.
    actors.stop_all()
    secret = WALLET_KEY
    raw = bytes(WALLET)
    files = [p for p in run.rglob("*") if p.is_file()]
    assert files
    leaked = [p for p in files if secret.encode() in p.read_bytes() or raw[:32] in p.read_bytes()]
    assert not leaked, leaked
    out, err = capfd.readouterr()
    assert secret not in out + err


def rent0(chain: Any) -> int:
    return int(rpc(chain, "getMinimumBalanceForRentExemption", 0))


def test_route_rpc_sends_the_swap_without_a_tip_and_fills(market: Market, actors: Actors) -> None:
    m = market
    start_all(actors, m, route="rpc", block_engine_url="")
    run = actors.run_dir
    submit(order("s1-r-1", "buy", 250.0))
    eventually(lambda: journal(run).order_status("s1-r-1") == "filled", 30, what="buy filled")
    (tx,) = wallet_txs(m.chain)
    assert tip_lamports(tx["tx"]) == 0
    (fill,) = fills_of(run, "s1-r-1")
    assert fill.fill_id == fill_id(VENUE, tx["signature"]) and fill.quantity == pytest.approx(250.0)
    assert fill.fee == pytest.approx(tx["meta"]["fee"] / 1e9)


def test_resent_order_is_refused_as_duplicate_never_swapped_twice_and_queries_answer_from_the_ledger(
    market: Market, actors: Actors
) -> None:
    m = market
    start_all(actors, m)
    run = actors.run_dir
    o = order("s1-t1-3", "buy", 100.0)
    submit(o)
    eventually(lambda: journal(run).order_status("s1-t1-3") == "filled", 30, what="filled")
    (fill,) = fills_of(run, "s1-t1-3")
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
    time.sleep(0.5)
    assert len(wallet_txs(m.chain)) == 1
    assert devtokens.token_balance(m.chain, WALLET.pubkey(), m.mint) == 100 * 10**DECIMALS


def test_a_dropped_swap_whose_blockhash_expires_is_rejected_expired_and_never_signed_again(
    market: Market, actors: Actors
) -> None:
    m = market
    m.chain.drop_next(10_000)  # every send is accepted and never lands (a leader that drops it)
    start_all(actors, m)
    run = actors.run_dir
    submit(order("s1-x-1", "buy", 100.0))
    eventually(lambda: journal(run).order_status("s1-x-1") == "accepted", 30, what="signed and sent")
    eventually(lambda: journal(run).order_status("s1-x-1") == "rejected", 30, what="rejected after expiry")
    m.chain.drop_next(0)
    actors.stop(GATEWAY)
    intent = ledger_intent(run, "s1-x-1")
    assert (intent.status, intent.reason) == ("rejected", "expired")
    assert intent.tx is not None
    # It was rejected only once the chain's finalized height had passed the transaction's last valid one.
    height = rpc(m.chain, "getBlockHeight", {"commitment": "finalized"})
    assert height > intent.tx.last_valid_block_height
    # Nothing landed, nothing filled, and the one signature journaled is the one the order was accepted with.
    assert not wallet_txs(m.chain) and not fills_of(run, "s1-x-1")
    assert devtokens.token_balance(m.chain, WALLET.pubkey(), m.mint) == 0
    sigs = rpc(m.chain, "getSignatureStatuses", [intent.tx.signature], {"searchTransactionHistory": True})
    assert sigs["value"] == [None]


def test_a_token_that_cannot_be_transferred_is_refused_by_the_simulation_nothing_sent(
    chain: Any, actors: Actors
) -> None:
    with LocalAggregator(chain) as agg:
        m = make_market(chain, agg)
        hooked = devtokens.create_mint(
            chain, decimals=DECIMALS, mint_authority=None, freeze_authority=None, program="token-2022",
            extensions={"transfer_hook": {"program": str(Keypair().pubkey())}},
        )  # fmt: skip
        agg.create_pool(hooked, POOL_TOKENS, POOL_SOL)
        start_all(actors, m)
        run = actors.run_dir
        submit(order("s1-h-1", "buy", 100.0, symbol=f"{hooked}/SOL"))
        eventually(lambda: journal(run).order_status("s1-h-1") == "rejected", 30, what="refused")
        (update,) = [
            r for _, r in journal(run).records() if getattr(r, "client_order_id", "") == "s1-h-1"
            and getattr(r, "status", "") == "rejected"
        ]  # fmt: skip
        assert update.reason == "simulation_failed"
        assert not wallet_txs(chain)


def test_the_gateway_runs_with_exactly_what_the_venue_config_gives_and_fills(
    market: Market, actors: Actors, short_tmp: Path
) -> None:
    """A live ``[[venues]] kind = "solana"`` entry: ``live_gateway()`` names this gateway and its args (no
    secret among them) run it; a buy fills on the chain."""
    from sniperbot.config import load_config
    from sniperbot.venues.solana.layouts import LOCAL_AMM_PROGRAM

    m = market
    path = short_tmp / "live.toml"
    path.write_text(
        f'strategies = []\n[[venues]]\nname = "{VENUE}"\nkind = "solana"\nmode = "live"\n'
        f'rpc_url = "{m.chain.rpc_url}"\naggregator_url = "{m.agg.url}"\nquote = "SOL"\n'
        f'mints = {{ SOL = "{SOL_MINT}", TKN = "{m.mint}" }}\nsymbols = ["{SYM}"]\n'
        f'pools_program = "{LOCAL_AMM_PROGRAM}"\nwallet = "sol-wallet"\nroute = "jito"\n'
        f'block_engine_url = "{m.chain.block_engine_url}"\ntip_lamports = 5000\n'
    )
    (venue,) = load_config(path).venues
    actor, args = venue.live_gateway()
    assert actor == "sniperbot.venues.solana.gateway:SolanaGateway"
    assert WALLET_KEY not in str(args)
    actors.start(GATEWAY, actor, args, wallet_launch())
    actors.start(EXECUTOR, "sniperbot.execution.executor:Executor", {"venue": VENUE, "gateway": GATEWAY})
    actors.start("risk_guard", DRIVER, {})
    submit(order("s1-cfg-1", "buy", 10.0))
    eventually(lambda: journal(actors.run_dir).order_status("s1-cfg-1") == "filled", 30, what="filled")
    (tx,) = wallet_txs(m.chain)
    assert tip_lamports(tx["tx"]) == 5000
    assert devtokens.token_balance(m.chain, WALLET.pubkey(), m.mint) == 10 * 10**DECIMALS


def test_jito_client_speaks_the_block_engine_wire_format(market: Market) -> None:
    """Tip accounts, a bundle without a tip refused with the engine's error, a landed bundle's statuses."""
    from sniperbot.venues.solana.jito import JitoClient, JitoError, bundle_id

    m = market
    client = JitoClient(m.chain.block_engine_url, timeout_s=5)
    try:
        assert set(client.get_tip_accounts()) == set(TIP_ACCOUNTS)
        body = {"quoteResponse": httpx.get(f"{m.agg.url}/swap/v1/quote", timeout=10, params={
            "inputMint": str(SOL_MINT), "outputMint": str(m.mint), "amount": 10**6}).json(),
            "userPublicKey": str(WALLET.pubkey())}  # fmt: skip
        untipped = httpx.post(f"{m.agg.url}/swap/v1/swap", json=body, timeout=10).json()["swapTransaction"]
        tx = _signed(untipped)
        with pytest.raises(JitoError):
            client.send_bundle([tx])  # no tip: the engine refuses it (it could never win an auction)
        body["prioritizationFeeLamports"] = {"jitoTipLamports": 2000}
        tx = _signed(httpx.post(f"{m.agg.url}/swap/v1/swap", json=body, timeout=10).json()["swapTransaction"])
        bid = client.send_bundle([tx])
        assert bid == bundle_id([tx])
        landed = eventually(lambda: client.get_bundle_statuses([bid]).get(bid), 15, what="bundle landed")
        assert landed.transactions == [str(tx.signatures[0])] and landed.err in (None, {"Ok": None})
        assert client.get_inflight_bundle_statuses([bid])[bid].status == "Landed"
        assert client.get_inflight_bundle_statuses(["0" * 64])["0" * 64].status == "Invalid"
    finally:
        client.close()


def _signed(swap_tx: str) -> VersionedTransaction:
    from solders.message import to_bytes_versioned

    tx = VersionedTransaction.from_bytes(base64.b64decode(swap_tx))
    sigs = list(tx.signatures)
    sigs[0] = WALLET.sign_message(to_bytes_versioned(tx.message))
    return VersionedTransaction.populate(tx.message, sigs)


def test_orders_refused_before_signing_leave_nothing_on_chain_and_the_status_shows_the_wallet(
    market: Market, actors: Actors
) -> None:
    """A buy whose quote is above its limit price, a sell of more than the wallet holds, an unknown symbol,
    a limit order: each rejected with its reason, nothing signed; the status carries the wallet's balances."""
    from tests.venues_ccxt.test_venue_status import StatusWatch

    m = market
    watch = StatusWatch(actors.run_dir, VENUE)
    try:
        start_all(actors, m)
        run = actors.run_dir
        status = watch.wait(lambda s: s.reconciled, 30, what="reconciled status")
        assert status.connection == "ok" and status.account == str(WALLET.pubkey())
        assert status.balances["SOL"] == pytest.approx(balance(m.chain, WALLET.pubkey()) / 1e9)
        assert status.balances["TKN"] == 0.0
        mid = (POOL_SOL / 1e9) / (POOL_TOKENS / 10**DECIMALS)  # SOL per token
        cheap = order("s1-l-1", "buy", 1000.0)
        cheap = Order(**{**{f: getattr(cheap, f) for f in cheap.__struct_fields__}, "limit_price": mid * 0.9})
        submit(cheap)
        submit(order("s1-l-2", "sell", 5.0))  # holds none
        submit(order("s1-l-3", "buy", 5.0, symbol="NOPE/SOL"))
        limit = order("s1-l-4", "buy", 5.0)
        submit(Order(**{**{f: getattr(limit, f) for f in limit.__struct_fields__}, "order_type": "limit",
                        "limit_price": mid}))  # fmt: skip
        reasons = {"s1-l-1": "price_above_limit", "s1-l-2": "insufficient_funds", "s1-l-3": "unknown_symbol",
                   "s1-l-4": "unsupported_order_type"}  # fmt: skip
        for cid in reasons:
            eventually(lambda c=cid: journal(run).order_status(c) == "rejected", 30, what=f"{cid} rejected")
        got = {
            r.client_order_id: r.reason
            for _, r in journal(run).records()
            if getattr(r, "status", "") == "rejected" and getattr(r, "client_order_id", "") in reasons
        }
        assert got == reasons
        time.sleep(0.3)
        assert not wallet_txs(m.chain)
    finally:
        watch.close()


def test_a_live_node_runs_the_gateway_with_the_keystore_wallet_and_reconciles(
    market: Market, short_tmp: Path
) -> None:
    """``sniperbot run`` with a live ``kind = "solana"`` venue: the wallet is unlocked from the encrypted
    keystore into the gateway's launch only; the gateway (its own process) reconciles and reports the
    wallet's balances; the key appears nowhere in the run dir or the node's log."""
    import json
    import subprocess
    import sys

    from sniperbot.venues.solana.layouts import LOCAL_AMM_PROGRAM
    from tests.conftest import ROOT, RunningNode

    m = market
    ks, pw = short_tmp / "ks", short_tmp / "ks.pw"
    pw.write_text("solgw-node-pw\n")
    pw.chmod(0o600)
    added = subprocess.run(
        [sys.executable, "-m", "sniperbot", "keys", "add", "sol-wallet", "--exchange", "solana", "--stdin",
         "--keystore", str(ks), "--password-file", str(pw)],
        input=json.dumps({"secret_key": WALLET_KEY}), capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    config = short_tmp / "live.toml"
    config.write_text(
        'strategies = []\n[node]\nheartbeat_interval_s = 0.2\nheartbeat_liveness = 5\nlog_level = "INFO"\n'
        '[journal]\ndurability = "process"\n'
        f'[[venues]]\nname = "{VENUE}"\nkind = "solana"\nmode = "live"\n'
        f'rpc_url = "{m.chain.rpc_url}"\naggregator_url = "{m.agg.url}"\nquote = "SOL"\n'
        f'mints = {{ SOL = "{SOL_MINT}", TKN = "{m.mint}" }}\nsymbols = ["{SYM}"]\n'
        f'pools_program = "{LOCAL_AMM_PROGRAM}"\nwallet = "sol-wallet"\nroute = "jito"\n'
        f'block_engine_url = "{m.chain.block_engine_url}"\n'
    )
    run = short_tmp / "run"
    node = RunningNode(run, config, ("--keystore", str(ks), "--password-file", str(pw)))
    try:

        def reconciled() -> Any:
            gateway = (node.admin("status").get("venues") or {}).get(VENUE, {}).get("gateway") or {}
            return gateway if gateway.get("reconciled") else None

        status = eventually(reconciled, 60, interval_s=0.3, what="the live venue reconciled")
        assert status["connection"] == "ok" and status["balances"]["TKN"] == 0.0
        assert status["balances"]["SOL"] == pytest.approx(balance(m.chain, WALLET.pubkey()) / 1e9)
        assert status["account"] == str(WALLET.pubkey())
    finally:
        node.stop()
    leaked = [p for p in run.rglob("*") if p.is_file() and WALLET_KEY.encode() in p.read_bytes()]
    assert not leaked
    assert WALLET_KEY not in node.log()


def test_a_token_2022_transfer_fee_is_booked_as_what_the_wallet_really_got_and_paid(
    chain: Any, actors: Actors
) -> None:
    """A 1 % Token-2022 transfer fee: a buy of 1000 delivers 990 (the fill says 990), a sell of 500 takes 500
    from the wallet (the fill says 500); the chain's token balances agree."""
    with LocalAggregator(chain) as agg:
        m = make_market(
            chain, agg, program="token-2022", extensions={"transfer_fee": {"bps": 100, "max": 10**15}}
        )
        start_all(actors, m, slippage_bps=300)
        run = actors.run_dir
        submit(order("s1-f-1", "buy", 1000.0))
        eventually(lambda: journal(run).order_status("s1-f-1") == "filled", 30, what="buy filled")
        held = devtokens.token_balance(chain, WALLET.pubkey(), m.mint)
        assert held == 990 * 10**DECIMALS
        (buy,) = fills_of(run, "s1-f-1")
        assert buy.quantity == pytest.approx(990.0)
        submit(order("s1-f-2", "sell", 500.0))
        eventually(lambda: journal(run).order_status("s1-f-2") == "filled", 30, what="sell filled")
        (sell,) = fills_of(run, "s1-f-2")
        assert sell.quantity == pytest.approx(500.0)
        assert devtokens.token_balance(chain, WALLET.pubkey(), m.mint) == held - 500 * 10**DECIMALS
