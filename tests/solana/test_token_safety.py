"""The Solana token safety check on the local chain: real JSON-RPC (LocalSolana), real token programs, the
Jupiter-shaped local aggregator, and the buy-then-sell simulated by ``simulateBundle``.

A clean token passes; each trap is refused with its own reason code; the check signs nothing and changes
nothing on chain; ``sniperbot token-check`` runs it for a ``kind = "solana"`` venue.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from sniperbot.messages import TokenSafetyReport
from sniperbot.venues.dex import SafetyRules
from sniperbot.venues.solana.devaggregator import LocalAggregator
from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.devtokens import create_mint, mint_to, token_balance
from sniperbot.venues.solana.layouts import LAMPORTS_PER_SOL, SOL_MINT, TOKEN_2022_PROGRAM_ID
from sniperbot.venues.solana.safety import REASON_CODES, check_token

SUPPLY = 1_000_000 * 10**6  # raw units of a 6-decimals token
POOL_SHARE = 800_000 * 10**6  # what goes into the pool; the rest to holders


@dataclass
class Env:
    """The local chain, its aggregator and a funded buyer (its key stays here: nothing is signed)."""

    chain: LocalSolana
    aggregator: LocalAggregator
    wallet: Keypair


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    """One chain and aggregator for the module; every test launches its own mints and pools."""
    chain = LocalSolana(slot_ms=50).start()
    try:
        aggregator = LocalAggregator(chain).start()
        try:
            wallet = Keypair()
            chain.airdrop(wallet.pubkey(), 20 * LAMPORTS_PER_SOL)
            yield Env(chain, aggregator, wallet)
        finally:
            aggregator.stop()
    finally:
        chain.stop()


def launch(
    env: Env,
    *,
    pool_sol: float = 10.0,
    whale_pct: float = 0.0,
    mint_authority: Keypair | None = None,
    freeze_authority: Pubkey | None = None,
    program: str = "token",
    extensions: dict[str, Any] | None = None,
) -> tuple[Pubkey, Pubkey]:
    """A token with 80 % of its supply in a pool of ``pool_sol`` SOL, the rest spread over holders of 4 %
    (one ``whale_pct`` holder first when given); (mint, pool)."""
    mint = create_mint(
        env.chain,
        mint_authority=mint_authority,
        freeze_authority=freeze_authority,
        program=program,
        extensions=extensions,
    )
    pool = env.aggregator.create_pool(mint, POOL_SHARE, int(pool_sol * LAMPORTS_PER_SOL))
    rest = SUPPLY - POOL_SHARE
    if whale_pct:
        whale = int(SUPPLY * whale_pct / 100)
        mint_to(env.chain, mint, Keypair().pubkey(), whale)
        rest -= whale
    while rest > 0:
        part = min(rest, SUPPLY * 4 // 100)
        mint_to(env.chain, mint, Keypair().pubkey(), part)
        rest -= part
    return mint, pool


def check(env: Env, mint: Pubkey, pool: Pubkey | None, rules: SafetyRules | None = None, **kw: Any):
    """The report for ``mint`` as the env's wallet."""
    kw.setdefault("wallet", env.wallet.pubkey())
    kw.setdefault("aggregator_url", env.aggregator.url)
    return check_token(env.chain.rpc_url, mint, pool, rules or SafetyRules(), venue="localsol", **kw)


def codes(report: TokenSafetyReport) -> set[str]:
    """The reason codes of a report (``extension:<name>`` for extensions), every one of them known."""
    found = {r.split(": ")[0] if r.startswith("extension:") else r.split(":")[0] for r in report.reasons}
    assert {c.split(":")[0] for c in found} <= REASON_CODES, report.reasons
    return found


def test_a_clean_token_passes_with_its_figures(env: Env) -> None:
    """No authority, no extension, spread holders, a deep pool, a buy and a sell that both work: buy."""
    mint, pool = launch(env, pool_sol=10.0)
    before, slot_before = env.chain.account(env.wallet.pubkey()), env.chain.slot()
    report = check(env, mint, pool)
    assert report.verdict == "buy", report.reasons
    assert report.reasons == [] and report.can_sell
    assert (report.token, report.pair, report.venue) == (str(mint), str(pool), "localsol")
    assert report.liquidity_quote == pytest.approx(10.0)
    assert (report.buy_tax_bps, report.sell_tax_bps, report.transfer_tax_bps) == (0, 0, 0)
    assert report.owner_powers == []
    # The reads' slot, at the default commitment "confirmed" (one slot behind the processed one).
    assert slot_before - 1 <= report.block_number <= env.chain.slot()
    # Nothing was signed or sent: the wallet's lamports and tokens are untouched.
    assert env.chain.account(env.wallet.pubkey()) == before
    assert token_balance(env.chain, env.wallet.pubkey(), mint) == 0
    # Without a pool argument the check finds the mint's pool itself.
    found = check(env, mint, None)
    assert found.verdict == "buy" and found.pair == str(pool), found.reasons


def test_a_live_mint_authority_is_refused(env: Env) -> None:
    """A mint authority can dilute the buyer: refused, unless the rules allow it."""
    authority = Keypair()
    mint, pool = launch(env, mint_authority=authority)
    report = check(env, mint, pool)
    assert report.verdict == "refuse" and codes(report) == {"mint_authority"}, report.reasons
    assert str(authority.pubkey()) in report.reasons[0] and "mint_authority" in report.owner_powers
    allowed = check(env, mint, pool, SafetyRules(require_no_mint_authority=False))
    assert allowed.verdict == "buy", allowed.reasons


def test_a_live_freeze_authority_is_refused(env: Env) -> None:
    """A freeze authority can freeze the buyer's account: refused, unless the rules allow it."""
    mint, pool = launch(env, freeze_authority=Keypair().pubkey())
    report = check(env, mint, pool)
    assert report.verdict == "refuse" and codes(report) == {"freeze_authority"}, report.reasons
    assert check(env, mint, pool, SafetyRules(require_no_freeze_authority=False)).verdict == "buy"


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        ({"transfer_hook": {}}, {"extension:transfer_hook"}),
        ({"permanent_delegate": True}, {"extension:permanent_delegate"}),
        ({"non_transferable": True}, {"extension:non_transferable"}),
        ({"default_account_state": "frozen"}, {"extension:default_frozen", "freeze_authority"}),
    ],
    ids=["transfer_hook", "permanent_delegate", "non_transferable", "default_frozen"],
)
def test_trap_extensions_are_refused(env: Env, extensions: dict[str, Any], expected: set[str]) -> None:
    """Each Token-2022 trap is refused by name (and a trap that stops transfers also fails the buy)."""
    freezer = Keypair().pubkey() if "default_account_state" in extensions else None
    mint, pool = launch(env, program="token-2022", extensions=extensions, freeze_authority=freezer)
    report = check(env, mint, pool)
    assert report.verdict == "refuse"
    assert expected <= codes(report) <= expected | {"buy_failed", "sell_failed"}, report.reasons
    if "permanent_delegate" not in extensions:  # the others stop every transfer: the buy cannot land
        assert "buy_failed" in codes(report) and not report.can_sell, report.reasons


def test_a_transfer_fee_above_the_limit_is_refused_and_one_below_passes(env: Env) -> None:
    """The Token-2022 fee in force is capped by max_transfer_tax_bps; what the buy delivers shows it."""
    mint, pool = launch(env, program="token-2022", extensions={"transfer_fee": {"bps": 1_500, "max": 10**15}})
    report = check(env, mint, pool)
    assert report.verdict == "refuse" and codes(report) == {"transfer_fee"}, report.reasons
    assert report.transfer_tax_bps == 1_500 and "15.00 %" in report.reasons[0]
    assert check(env, mint, pool, SafetyRules(max_transfer_tax_bps=2_000)).verdict == "buy"

    mild, mild_pool = launch(
        env, program="token-2022", extensions={"transfer_fee": {"bps": 200, "max": 10**15}}
    )
    passed = check(env, mild, mild_pool)
    assert passed.verdict == "buy", passed.reasons
    assert passed.transfer_tax_bps == 200 and passed.buy_tax_bps == 200 and passed.can_sell
    # A fee whose maximum caps it far below its rate for the buy's size is charged as what it takes.
    capped, capped_pool = launch(
        env, program="token-2022", extensions={"transfer_fee": {"bps": 5_000, "max": 10}}
    )
    assert check(env, capped, capped_pool).verdict == "buy"


def test_a_scheduled_fee_rise_is_refused(env: Env) -> None:
    """A higher fee already set to start at a later epoch is refused now."""
    fee = {
        "older": {"epoch": 0, "bps": 100, "max": 10**15},
        "newer": {"epoch": 10_000, "bps": 9_000, "max": 10**15},
    }
    mint, pool = launch(env, program="token-2022", extensions={"transfer_fee": fee})
    report = check(env, mint, pool)
    assert report.transfer_tax_bps == 100
    assert codes(report) == {"transfer_fee"} and "from epoch 10000" in report.reasons[0], report.reasons


def test_concentrated_holders_are_refused_pool_vault_excluded(env: Env) -> None:
    """One account with 15 % of the supply: refused at a 10 % cap, passed at 20 %; the pool's 80 % never
    counts."""
    mint, pool = launch(env, whale_pct=15.0)
    assert check(env, mint, pool).verdict == "buy"  # default cap 20 %; the pool vault holds 80 %
    report = check(env, mint, pool, SafetyRules(max_top_holder_pct=10.0))
    assert codes(report) == {"top_holders"} and "15.00 %" in report.reasons[0], report.reasons


def test_a_thin_pool_is_refused(env: Env) -> None:
    """Less SOL in the pool than min_liquidity_quote: refused with the amount."""
    mint, pool = launch(env, pool_sol=0.5)
    report = check(env, mint, pool)
    assert codes(report) == {"liquidity"} and report.liquidity_quote == pytest.approx(0.5), report.reasons
    assert check(env, mint, pool, SafetyRules(min_liquidity_quote=0.4)).verdict == "buy"


def _require_memo_on_pool_vault(env: Env, pool: Pubkey) -> None:
    """The pool's creator makes its base vault require a memo on incoming transfers (Token-2022's
    MemoTransfer, enabled by the vault's owner with the REAL program): buys still work, sells never land."""
    local = env.aggregator.pools[pool]
    vault, owner = local.state.base_vault, local.authority
    env.chain.airdrop(owner.pubkey(), LAMPORTS_PER_SOL)
    system = Pubkey.from_string("11111111111111111111111111111111")
    realloc = Instruction(
        TOKEN_2022_PROGRAM_ID,
        bytes([29]) + (8).to_bytes(2, "little"),  # Reallocate for MemoTransfer (ExtensionType 8)
        [
            AccountMeta(vault, False, True),
            AccountMeta(owner.pubkey(), True, True),
            AccountMeta(system, False, False),
            AccountMeta(owner.pubkey(), True, False),
        ],
    )
    enable = Instruction(
        TOKEN_2022_PROGRAM_ID,
        bytes([30, 0]),
        [AccountMeta(vault, False, True), AccountMeta(owner.pubkey(), True, False)],
    )
    message = Message.new_with_blockhash([realloc, enable], owner.pubkey(), env.chain.latest_blockhash())
    outcome = env.chain.send_raw(VersionedTransaction(message, [owner]))
    assert outcome.ok, outcome


def test_a_token_that_cannot_be_sold_is_refused(env: Env) -> None:
    """Nothing in the mint shows it, the buy works, the sell fails: the simulation refuses (sell_failed)."""
    mint, pool = launch(env, program="token-2022")
    assert check(env, mint, pool).verdict == "buy"
    _require_memo_on_pool_vault(env, pool)
    report = check(env, mint, pool)
    assert report.verdict == "refuse" and codes(report) == {"sell_failed"}, report.reasons
    assert not report.can_sell and report.buy_tax_bps == 0
    assert "memo" in report.reasons[0].lower(), report.reasons


def test_when_in_doubt_the_check_refuses(env: Env) -> None:
    """No wallet, a dead aggregator, a dead RPC, a mint that is no mint, a pool of another token: refuse."""
    mint, pool = launch(env)
    no_wallet = check(env, mint, pool, wallet=None)
    assert no_wallet.verdict == "refuse" and codes(no_wallet) == {"simulation"}, no_wallet.reasons
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    no_aggregator = check(env, mint, pool, aggregator_url=dead)
    assert codes(no_aggregator) == {"simulation"} and "aggregator" in no_aggregator.reasons[0]
    no_rpc = check_token(dead, mint, pool, SafetyRules(), wallet=env.wallet.pubkey(), aggregator_url=dead)
    assert no_rpc.verdict == "refuse" and codes(no_rpc) == {"rpc"}, no_rpc.reasons
    wallet_as_mint = check(env, env.wallet.pubkey(), pool)
    assert {"not_a_mint", "no_pool"} <= codes(wallet_as_mint), wallet_as_mint.reasons
    other, _ = launch(env)
    mismatched = check(env, other, pool)
    assert "no_pool" in codes(mismatched), mismatched.reasons
    assert check(env, Keypair().pubkey(), None).verdict == "refuse"


# -- sniperbot token-check on a kind = "solana" venue ------------------------------------------------------


def _config(tmp_path: Path, env: Env, mint: Pubkey, safety: str = "") -> Path:
    path = tmp_path / "node.toml"
    path.write_text(
        f"""
[[venues]]
name = "localsol"
kind = "solana"
mode = "paper"
rpc_url = "{env.chain.rpc_url}"
aggregator_url = "{env.aggregator.url}"
quote = "SOL"
mints = {{ SOL = "{SOL_MINT}", TKN = "{mint}" }}
symbols = ["TKN/SOL"]
pools_program = "7D5MzZciqoXJLtGjBw85QVp7RUJRtCGir5p5yGn2P2q9"
route = "rpc"
{safety}
[[strategies]]
id = "s"
strategy = "sma_cross"
venue = "localsol"
symbol = "TKN/SOL"
quantity = 1.0
"""
    )
    return path


def test_cli_token_check_on_a_solana_venue(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same command, rules table, output and exit codes as EVM, from the venue's config."""
    from sniperbot.cli.main import main

    mint, pool = launch(env, freeze_authority=Keypair().pubkey())
    config = _config(tmp_path, env, mint)
    wallet = str(env.wallet.pubkey())
    args = ["token-check", "--venue", "localsol", "--config", str(config), str(mint), "--wallet", wallet]
    assert main([*args, "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "refuse" and out["pair"] == str(pool) and "t" not in out
    assert [r.split(":")[0] for r in out["reasons"]] == ["freeze_authority"]
    config = _config(tmp_path, env, mint, "[venues.safety]\nrequire_no_freeze_authority = false\n")
    assert main([*args, "--pool", str(pool)]) == 0
    printed = capsys.readouterr().out
    assert f"token {mint} on localsol: BUY" in printed and "can sell         yes" in printed
    # Bad input names what is wrong (exit 2); flags alone, without a config, select Solana too.
    assert main([*args[:-2], "--wallet", "me"]) == 2 and "--wallet: 'me'" in capsys.readouterr().err
    assert main([*args, "--router", "0x" + "11" * 20]) == 2 and "evm flags" in capsys.readouterr().err
    flags = [
        "token-check",
        "--venue",
        "x",
        "--rpc-url",
        env.chain.rpc_url,
        "--aggregator-url",
        env.aggregator.url,
    ]
    assert main([*flags, str(mint), "--wallet", wallet]) == 3  # the default rules: the freeze authority
    assert "freeze_authority" in capsys.readouterr().out
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert main([*flags[:4], dead, *flags[5:], str(mint)]) == 1
    assert "cannot query --rpc-url" in capsys.readouterr().err


def test_the_check_does_not_touch_the_pool(env: Env) -> None:
    """The simulated swaps leave the pool's reserves as they were."""
    mint, pool = launch(env)
    local = env.aggregator.pools[pool]
    before = (env.chain.account(local.state.quote_vault), env.chain.account(local.state.base_vault))
    assert check(env, mint, pool).verdict == "buy"
    after = (env.chain.account(local.state.quote_vault), env.chain.account(local.state.base_vault))
    assert after == before
    assert isinstance(before[0], Account)


def test_solana_rules_defaults_and_bad_values_name_the_field() -> None:
    """The careful defaults; a bad Solana rule is refused naming its field (the config loader's path)."""
    import msgspec

    rules = msgspec.convert({}, SafetyRules)
    assert (rules.require_no_mint_authority, rules.require_no_freeze_authority) == (True, True)
    assert rules.max_top_holder_pct == 20.0
    assert {"transfer_hook", "permanent_delegate", "non_transferable", "default_frozen"} <= set(
        rules.refused_extensions
    )
    for bad, words in (
        ({"refused_extensions": ["transfer_hook", "hooks"]}, ["refused_extensions", "'hooks'"]),
        ({"max_top_holder_pct": 101}, ["max_top_holder_pct"]),
        ({"require_no_mint_authority": "yes"}, ["require_no_mint_authority"]),
    ):
        with pytest.raises(msgspec.ValidationError) as info:
            msgspec.convert(bad, SafetyRules)
        assert all(w in str(info.value) for w in words), info.value


def test_an_unknown_or_pausable_extension_is_refused(env: Env) -> None:
    """An extension type this reader does not know is refused whatever the rules; pausable by default."""
    from sniperbot.venues.solana.layouts import encode_mint

    for extensions, code in (
        ({"unknown_77": {"raw": "00"}}, "extension:unknown_77"),
        ({"pausable": {"authority": Keypair().pubkey(), "paused": False}}, "extension:pausable"),
    ):
        data = encode_mint(program="token-2022", extensions=extensions, supply=SUPPLY)
        mint = Keypair().pubkey()
        env.chain.set_account(mint, Account(lamports=10**7, data=data, owner=TOKEN_2022_PROGRAM_ID))
        report = check(env, mint, None, SafetyRules(refused_extensions=[]) if "unknown" in code else None)
        assert code in codes(report) and "no_pool" in codes(report), report.reasons
