"""The new-token sniper on Solana end to end (issue #13 point 6): a real ``sniperbot run`` node, local chain.

Real components only: :class:`~sniperbot.venues.solana.devchain.LocalSolana` (LiteSVM with the real SPL Token,
Token-2022 and associated-token programs behind Solana's JSON-RPC, WebSocket and Jito block-engine wire
formats), the local Jupiter-shaped aggregator over pools in that chain, and a node whose config has a
``[[venues]] kind = "solana"`` in live mode (its wallet unlocked from the keystore), ``route = "jito"`` and
``[venues.sniper]``: the pool watcher, the token checker, the UNCHANGED sniper actor of the EVM venue
(:mod:`sniperbot.actors.sniper`), the risk guard, the executor and the Solana gateway, each in its own
process. Pools are created while the node runs. The oracle is the chain: the wallet's token balance, the
bundle's status at the block engine, and the journal's fills against them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.account import Account
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from sniperbot.messages import TokenSafetyReport
from sniperbot.venues.dex import sniper_id
from sniperbot.venues.solana.devaggregator import LocalAggregator
from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.devtokens import create_mint, token_balance
from sniperbot.venues.solana.layouts import LAMPORTS_PER_SOL, LOCAL_AMM_PROGRAM, SOL_MINT, PoolState
from tests.conftest import ROOT, RunningNode, eventually, sniperbot

VENUE = "localsol"
QUOTE = "SOL"
SID = sniper_id(VENUE)
SNIPER = f"strategy.{SID}"
CHECKER = f"checker.{VENUE}"
WAIT_S = 60.0  # event-driven waits end as soon as the state is reached; generous for a loaded machine
DECIMALS = 6
POOL_TOKENS = 1_000_000 * 10**DECIMALS  # every token of a launch goes into its pool
POOL_SOL = 10 * LAMPORTS_PER_SOL
BUDGET = 0.1  # SOL per snipe
#: A program id nothing runs at: the quote vault of an unsellable pool is handed to it (see ``launch``).
JAIL = Pubkey.from_string("J1111111111111111111111111111111111111111111")

SNIPER_TOML = f"""
[venues.sniper]
budget = {BUDGET}
take_profit_pct = 50.0
stop_loss_pct = 25.0
max_hold_s = 600.0
"""

#: A trap token's kind: the reason codes of which at least one must be given.
TRAPS = {
    "freeze": {"freeze_authority"},
    "hook": {"extension:transfer_hook"},
    "non_transferable": {"extension:non_transferable"},
    "unsellable": {"sell_failed"},
}


@dataclass(frozen=True)
class Launched:
    """A token and its pool, as a launch leaves them."""

    kind: str
    mint: Pubkey
    pool: Pubkey

    @property
    def symbol(self) -> str:
        """The sniper's pair of the token."""
        return f"{self.mint}/{QUOTE}"


class Sol:
    """The local chain, its aggregator, a listed pool (the config needs one pair) and funded wallets."""

    def __init__(self) -> None:
        self.chain = LocalSolana().start()
        try:
            self.agg = LocalAggregator(self.chain).start()
        except BaseException:
            self.chain.stop()
            raise
        self.wallet = Keypair()  # the node's
        self.trader = Keypair()  # another account moving prices
        self.chain.airdrop(self.wallet.pubkey(), 5 * LAMPORTS_PER_SOL)
        self.chain.airdrop(self.trader.pubkey(), 50 * LAMPORTS_PER_SOL)
        self.listed = launch(self, "good")

    def close(self) -> None:
        try:
            self.agg.stop()
        finally:
            self.chain.stop()

    def swap_in(self, mint: Pubkey, lamports: int) -> str:
        """The trader buys ``mint`` for ``lamports`` via the aggregator (the price rises); the signature."""
        with httpx.Client(base_url=self.agg.url, timeout=30) as http:
            quote = http.get(
                "/swap/v1/quote",
                params={
                    "inputMint": str(SOL_MINT),
                    "outputMint": str(mint),
                    "amount": str(lamports),
                    "slippageBps": "500",
                    "swapMode": "ExactIn",
                },
            )
            assert quote.status_code == 200, quote.text
            body = {"quoteResponse": quote.json(), "userPublicKey": str(self.trader.pubkey())}
            swap = http.post("/swap/v1/swap", json=body)
            assert swap.status_code == 200, swap.text
        unsigned = VersionedTransaction.from_bytes(base64.b64decode(swap.json()["swapTransaction"]))
        signatures = list(unsigned.signatures)
        signatures[0] = self.trader.sign_message(
            to_bytes_versioned(unsigned.message)
        )  # the pool signed the rest
        signed = VersionedTransaction.populate(unsigned.message, signatures)
        self.chain.send_raw(signed)
        return str(signatures[0])


def launch(sol: Sol, kind: str) -> Launched:
    """A new token and its pool (all of the supply in the pool), trapped as ``kind`` says.

    * ``good``: SPL Token mint, no mint or freeze authority;
    * ``freeze``: a live freeze authority (the creator could freeze a buyer's account);
    * ``hook``: Token-2022 with a transfer hook (a program of the creator's runs on every transfer);
    * ``non_transferable``: Token-2022, non-transferable (bought, it could never be sold);
    * ``unsellable``: a clean mint, but the pool's SOL cannot come out: its quote vault belongs to another
      program (the system program may not debit it), so a buy lands and every sell fails. Set up under the
      chain's lock, so no RPC answer sees the pool before its trap.
    """
    chain = sol.chain
    with chain.lock:
        if kind == "freeze":
            mint = create_mint(chain, decimals=DECIMALS, freeze_authority=Keypair().pubkey())
        elif kind == "hook":
            mint = create_mint(chain, decimals=DECIMALS, extensions={"transfer_hook": {}})
        elif kind == "non_transferable":
            mint = create_mint(chain, decimals=DECIMALS, extensions={"non_transferable": True})
        else:
            mint = create_mint(chain, decimals=DECIMALS)
        pool = sol.agg.create_pool(mint, POOL_TOKENS, POOL_SOL)
        if kind == "unsellable":
            state = PoolState.decode(bytes(chain.account(pool).data))
            vault = chain.account(state.quote_vault)
            chain.set_account(state.quote_vault, Account(lamports=vault.lamports, data=b"", owner=JAIL))
    return Launched(kind, mint, pool)


@pytest.fixture
def sol() -> Iterator[Sol]:
    s = Sol()
    try:
        yield s
    finally:
        s.close()


def keystore(short_tmp: Path, wallet: Keypair) -> tuple[str, ...]:
    """A keystore holding the wallet ``w`` (kind solana); the node's unlock arguments."""
    ks, pw = short_tmp / "ks", short_tmp / "ks.pw"
    pw.write_text("solana-sniper-pw\n")
    pw.chmod(0o600)
    command = [
        sys.executable, "-m", "sniperbot", "keys", "add", "w", "--exchange", "solana", "--stdin",
        "--keystore", str(ks), "--password-file", str(pw),
    ]  # fmt: skip
    done = subprocess.run(
        command, input=json.dumps({"secret_key": str(wallet)}), capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return ("--keystore", str(ks), "--password-file", str(pw))


def venue_toml(sol: Sol, extra: str = "") -> str:
    """The ``[[venues]] kind = "solana"`` entry of the local chain, live, through Jito."""
    chain = sol.chain
    return (
        f'[[venues]]\nname = "{VENUE}"\nkind = "solana"\nmode = "live"\n'
        f'rpc_url = "{chain.rpc_url}"\nws_url = "{chain.ws_url}"\ncommitment = "confirmed"\n'
        f'aggregator_url = "{sol.agg.url}"\nquote = "{QUOTE}"\n'
        f'mints = {{ SOL = "{SOL_MINT}", TKN = "{sol.listed.mint}" }}\nsymbols = ["TKN/SOL"]\n'
        f'pools_program = "{LOCAL_AMM_PROGRAM}"\nwallet = "w"\nroute = "jito"\n'
        f'block_engine_url = "{chain.block_engine_url}"\ntip_lamports = 10000\n{extra}'
    )


NODE_TOML = (
    '[node]\nheartbeat_interval_s = 0.2\nheartbeat_liveness = 5\nlog_level = "INFO"\n'
    '[journal]\ndurability = "process"\n'
    "[risk]\nmax_position = 1e12\nmax_order_notional = 10.0\nmax_orders_per_second = 50.0\n"
    "max_spend_per_symbol = 0.5\nmax_spend_per_day = 5.0\nmax_open_positions = 20\n"
)


def node_config(path: Path, sol: Sol) -> Path:
    """A node that snipes on the local chain and runs no other strategy."""
    path.write_text("strategies = []\n" + NODE_TOML + venue_toml(sol) + SNIPER_TOML)
    return path


def journal(run_dir: Path, what: str) -> list[dict[str, Any]]:
    """``sniperbot journal <what> --json`` of a run dir."""
    result = sniperbot("journal", "--run-dir", str(run_dir), what, "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def sniper_fills(run_dir: Path, launched: Launched, side: str) -> list[dict[str, Any]]:
    """The sniper's journaled fills of ``launched`` on ``side``."""
    return [
        f
        for f in journal(run_dir, "fills")
        if f["strategy_id"] == SID and f["symbol"] == launched.symbol and f["side"] == side
    ]


def log_lines(node: RunningNode, event: str) -> list[dict[str, Any]]:
    """The node's JSON log records of ``event``."""
    out = []
    for line in node.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            out.append(record)
    return out


def has_code(reasons: list[str], codes: set[str]) -> bool:
    """Whether one of ``reasons`` (``"<code>: <detail>"``, codes like ``extension:transfer_hook``) has one
    of ``codes``."""
    return any(r == c or r.startswith(c + ":") or r.startswith(c + " ") for r in reasons for c in codes)


def watching(node: RunningNode) -> dict[str, dict[str, Any]]:
    """Wait until every actor runs and the pool watcher follows the chain (subscribed, first backfill done:
    pools older than that are old news on a first start); the workers."""
    workers = node.wait_ready(WAIT_S)
    eventually(lambda: log_lines(node, "pool_watcher_connected"), WAIT_S, what="the pool watcher following")
    return workers


def tip_paid(sol: Sol, signature: str) -> int:
    """Lamports the transaction paid into Jito's tip accounts (``getTransaction``: its balances)."""
    params = [signature, {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"}]
    request = {"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": params}
    tx = httpx.post(sol.chain.rpc_url, json=request, timeout=10).json()["result"]
    keys = tx["transaction"]["message"]["accountKeys"]
    meta = tx["meta"]
    tips = {str(t) for t in sol.chain.tip_accounts}
    return sum(
        post - pre
        for key, pre, post in zip(keys, meta["preBalances"], meta["postBalances"], strict=False)
        if key in tips
    )


def bundle_status(sol: Sol, signature: str) -> dict[str, Any] | None:
    """The block engine's ``getBundleStatuses`` of the one-transaction bundle of ``signature``."""
    bundle_id = hashlib.sha256(signature.encode()).hexdigest()  # Jito's id: sha256 of the signatures joined
    request = {"jsonrpc": "2.0", "id": 1, "method": "getBundleStatuses", "params": [[bundle_id]]}
    url = sol.chain.block_engine_url.rstrip("/") + "/api/v1/bundles"
    answer = httpx.post(url, json=request, timeout=10).json()
    value = (answer.get("result") or {}).get("value") or []
    return value[0] if value and value[0] else None


def test_end_to_end_good_token_bought_through_a_bundle_and_sold_at_take_profit_traps_refused(
    sol: Sol, short_tmp: Path
) -> None:
    from sniperbot.journal import Journal

    unlock = keystore(short_tmp, sol.wallet)
    node = RunningNode(short_tmp / "run", node_config(short_tmp / "sniper.toml", sol), extra=unlock)
    wallet = sol.wallet.pubkey()
    try:
        workers = watching(node)
        assert {CHECKER, f"pools.{VENUE}", SNIPER, f"gateway.{VENUE}"} <= set(workers), sorted(workers)
        traps = {kind: launch(sol, kind) for kind in TRAPS}
        good = launch(sol, "good")
        (buy,) = eventually(lambda: sniper_fills(node.run_dir, good, "buy"), WAIT_S, what="the buy fill")
        signature = buy["fill_id"].split(":", 1)[1]
        status = bundle_status(sol, signature)
        assert status is not None and status["transactions"] == [signature], status  # landed as a bundle
        assert tip_paid(sol, signature) == 10_000  # the tip inside the swap transaction itself
        held = token_balance(sol.chain, wallet, good.mint)
        assert held == pytest.approx(buy["quantity"] * 10**DECIMALS, rel=1e-9)
        assert buy["quantity"] * buy["price"] <= BUDGET * 1.02  # the budget (+ the slippage allowed)
        sol.swap_in(good.mint, 8 * LAMPORTS_PER_SOL)  # 8 SOL into a ~10 SOL pool: the price about triples
        (sell,) = eventually(lambda: sniper_fills(node.run_dir, good, "sell"), WAIT_S, what="the sell fill")
        assert sell["quantity"] == pytest.approx(buy["quantity"], rel=1e-9)
        assert sell["price"] > buy["price"] * 1.5
        assert token_balance(sol.chain, wallet, good.mint) <= held * 1e-9  # all sold but float dust
        exits = log_lines(node, "snipe_exit")
        assert [e["reason"].split(":")[0] for e in exits] == ["take_profit"], exits
        checks: dict[str, dict[str, Any]] = {}
        for kind, t in traps.items():
            checks[kind] = eventually(
                lambda t=t: next(
                    (r for r in log_lines(node, "token_safety") if r["token"] == str(t.mint)), None
                ),
                WAIT_S,
                what=f"the {kind} check in the log",
            )
            assert checks[kind]["verdict"] == "refuse" and checks[kind]["reasons"], checks[kind]
        orders = journal(node.run_dir, "orders")
        assert {o["symbol"] for o in orders} == {good.symbol}, orders  # nothing ordered for a trap
        for t in traps.values():
            assert token_balance(sol.chain, wallet, t.mint) == 0
        assert node.stop() == 0
        opened = Journal.open(node.run_dir, readonly=True)
        try:
            reports = {r.token: r for _, r in opened.records(kinds=(TokenSafetyReport,))}
        finally:
            opened.close()
        assert reports[str(good.mint)].verdict == "buy"
        for kind, t in traps.items():
            report = reports[str(t.mint)]
            assert report.verdict == "refuse" and has_code(report.reasons, TRAPS[kind]), (
                kind,
                report.reasons,
            )
            assert checks[kind]["reasons"] == report.reasons  # the same reasons in the log and the journal
    finally:
        if node.process.poll() is None:
            node.stop()
