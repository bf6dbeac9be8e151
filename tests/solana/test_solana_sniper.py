"""The new-token sniper on Solana, end to end in a real node (issue #13 point 6).

A ``sniperbot run`` node in live mode on the local chain: the ``[[venues]] kind = "solana"`` entry with
``[venues.sniper]`` brings the pool watcher, the token checker and the UNCHANGED sniper into the tree; the
wallet comes from the encrypted keystore (``sniperbot keys add --exchange solana``). Tokens are launched
on the chain while the node runs: a clean one is bought through a landed Jito bundle and sold at
take-profit once another wallet pushes its price up; a token with a live freeze authority, one with a
transfer hook and one that cannot be transferred at all are refused with their reasons, never ordered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from sniperbot.venues.solana.devaggregator import LocalAggregator
from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.devtokens import create_mint, mint_to, token_balance
from sniperbot.venues.solana.layouts import LAMPORTS_PER_SOL, LOCAL_AMM_PROGRAM, SOL_MINT
from tests.conftest import ROOT, RunningNode, eventually, sniperbot
from tests.solana.test_solana_feed import Trader

VENUE = "localsol"
SID = f"sniper-{VENUE}"
SUPPLY = 10**15  # raw units, 6 decimals
WALLET = Keypair()
WAIT_S = 90.0  # event-driven waits end as soon as the state is reached; generous for a loaded machine


@pytest.fixture
def chain() -> Iterator[LocalSolana]:
    """A fresh local chain (50 ms slots)."""
    with LocalSolana(slot_ms=50) as c:
        yield c


@pytest.fixture
def agg(chain: LocalSolana) -> Iterator[LocalAggregator]:
    """The local aggregator (the node's aggregator_url)."""
    a = LocalAggregator(chain).start()
    try:
        yield a
    finally:
        a.stop()


def launch(chain: LocalSolana, agg: LocalAggregator, **mint: Any) -> Pubkey:
    """A token with 80 % of its supply in a 10 SOL pool, the rest over holders of 4 %; its mint."""
    token = create_mint(chain, decimals=6, **mint)
    agg.create_pool(token, SUPPLY * 80 // 100, 10 * LAMPORTS_PER_SOL)
    for _ in range(5):
        mint_to(chain, token, Keypair().pubkey(), SUPPLY * 4 // 100)
    return token


def keystore(short_tmp: Path) -> tuple[str, ...]:
    """A keystore holding the wallet ``w`` (kind solana); the node's unlock arguments."""
    ks, pw = short_tmp / "ks", short_tmp / "ks.pw"
    pw.write_text("solana-sniper-pw\n")
    pw.chmod(0o600)
    command = [
        sys.executable, "-m", "sniperbot", "keys", "add", "w", "--exchange", "solana", "--stdin",
        "--keystore", str(ks), "--password-file", str(pw),
    ]  # fmt: skip
    done = subprocess.run(
        command, input=json.dumps({"secret_key": str(WALLET)}), capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return ("--keystore", str(ks), "--password-file", str(pw))


def node_config(path: Path, chain: LocalSolana, agg: LocalAggregator, listed: Pubkey) -> Path:
    """A live Solana venue with the sniper (0.5 SOL per snipe, take profit at +50 %)."""
    path.write_text(
        "strategies = []\n"
        '[node]\nheartbeat_interval_s = 0.2\nheartbeat_liveness = 5\nlog_level = "INFO"\n'
        '[journal]\ndurability = "process"\n'
        "[risk]\nmax_position = 1e15\nmax_order_notional = 10.0\nmax_orders_per_second = 50.0\n"
        "max_spend_per_symbol = 1.0\nmax_spend_per_day = 5.0\nmax_open_positions = 5\n"
        f'[[venues]]\nname = "{VENUE}"\nkind = "solana"\nmode = "live"\nrpc_url = "{chain.rpc_url}"\n'
        f'ws_url = "{chain.ws_url}"\ncommitment = "confirmed"\naggregator_url = "{agg.url}"\n'
        f'quote = "SOL"\nmints = {{ SOL = "{SOL_MINT}", TKN = "{listed}" }}\nsymbols = ["TKN/SOL"]\n'
        f'pools_program = "{LOCAL_AMM_PROGRAM}"\nwallet = "w"\nroute = "jito"\n'
        f'block_engine_url = "{chain.block_engine_url}"\ntip_lamports = 10000\n'
        "[venues.sniper]\nbudget = 0.5\ntake_profit_pct = 50.0\nstop_loss_pct = 25.0\nmax_hold_s = 600.0\n"
    )
    return path


def journal(run_dir: Path, what: str) -> list[dict[str, Any]]:
    """``sniperbot journal --json <what>``."""
    result = sniperbot("journal", "--run-dir", str(run_dir), what, "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def fills(run_dir: Path, token: Pubkey, side: str) -> list[dict[str, Any]]:
    """The sniper's fills of ``token`` on ``side``."""
    return [
        f
        for f in journal(run_dir, "fills")
        if f["strategy_id"] == SID and f["symbol"] == f"{token}/SOL" and f["side"] == side
    ]


def events(node: RunningNode, event: str) -> list[dict[str, Any]]:
    """The node log's structured lines of ``event``."""
    found = []
    for line in node.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found


def test_a_clean_token_is_bought_by_bundle_and_sold_at_take_profit_traps_are_refused(
    chain: LocalSolana, agg: LocalAggregator, short_tmp: Path
) -> None:
    chain.airdrop(WALLET.pubkey(), 20 * LAMPORTS_PER_SOL)
    listed = launch(chain, agg)
    unlock = keystore(short_tmp)
    node = RunningNode(
        short_tmp / "run", node_config(short_tmp / "sol.toml", chain, agg, listed), extra=unlock
    )
    try:
        workers = node.wait_ready(120)
        wanted = {
            f"checker.{VENUE}",
            f"pools.{VENUE}",
            f"strategy.{SID}",
            f"gateway.{VENUE}",
            f"feed.{VENUE}",
        }
        assert wanted <= set(workers), sorted(workers)
        traps = {
            "freeze_authority": launch(chain, agg, freeze_authority=Keypair().pubkey()),
            "transfer_hook": launch(chain, agg, program="token-2022", extensions={"transfer_hook": {}}),
            "non_transferable": launch(
                chain, agg, program="token-2022", extensions={"non_transferable": True}
            ),
        }
        good = launch(chain, agg)
        tips_before = sum(chain.account(t).lamports for t in chain.tip_accounts)  # type: ignore[union-attr]
        symbol = f"{good}/SOL"

        def logged(side: str) -> list[dict[str, Any]]:
            return [f for f in events(node, "snipe_fill") if (f["symbol"], f["side"]) == (symbol, side)]

        (buy,) = eventually(lambda: logged("buy"), WAIT_S, what="the buy fill")
        held = token_balance(chain, WALLET.pubkey(), good)
        assert held > 0 and held == pytest.approx(buy["quantity"] * 10**6, rel=1e-9), (held, buy)
        assert sum(chain.account(t).lamports for t in chain.tip_accounts) >= tips_before + 10_000  # type: ignore[union-attr]
        Trader(chain, agg).swap(SOL_MINT, good, 8 * LAMPORTS_PER_SOL)  # 8 SOL into a 10 SOL pool: about 3x
        (sell,) = eventually(lambda: logged("sell"), WAIT_S, what="the take-profit sell")
        assert sell["quantity"] == pytest.approx(buy["quantity"], rel=1e-9)
        assert sell["price"] > buy["price"] * 1.5
        assert token_balance(chain, WALLET.pubkey(), good) <= held * 1e-9
        exits = events(node, "snipe_exit")
        assert [e["reason"].split(":")[0] for e in exits] == ["take_profit"], exits

        def reports() -> dict[str, dict[str, Any]]:
            return {r["token"]: r for r in events(node, "token_safety")}

        assert reports()[str(good)]["verdict"] == "buy", reports()[str(good)]
        eventually(
            lambda: all(str(m) in reports() for m in traps.values()), WAIT_S, what="the traps' reports"
        )
        for reason, mint in traps.items():
            report = reports()[str(mint)]
            assert report["verdict"] == "refuse", report
            assert any(
                r.startswith(reason) or r.startswith(f"extension:{reason}") for r in report["reasons"]
            ), (
                reason,
                report["reasons"],
            )
        (journaled,) = fills(node.run_dir, good, "buy")  # the fills are the journal's, by transaction
        assert journaled["fill_id"].startswith(f"{VENUE}:") and journaled["quantity"] == buy["quantity"]
        assert [f["quantity"] for f in fills(node.run_dir, good, "sell")] == [sell["quantity"]]
        orders = journal(node.run_dir, "orders")
        assert {o["symbol"] for o in orders} == {f"{good}/SOL"}, orders  # no trap was ever ordered
    finally:
        assert node.stop() == 0, node.log()[-3000:]
