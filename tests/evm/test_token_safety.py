"""The token safety check: every adversarial token refused for its own reason, honest ones pass, all by
simulation (nothing changes on chain), in the block the buy would land in; the report journaled and shown
by ``sniperbot token-check``."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from eth_account import Account
from web3 import Web3

from sniperbot.journal import Journal
from sniperbot.messages import Fill, TokenSafetyReport
from sniperbot.venues.evm.devchain import ANVIL_KEYS, Anvil, UniswapDeployment, pair_contract
from sniperbot.venues.evm.safety import (
    CALLER_ADDRESS,
    PROBE_ADDRESS,
    SINK_ADDRESS,
    SafetyRules,
    check_token,
)
from tests.evm.tokens import DEAD_BLOCKS, launch

ROOT = Path(__file__).resolve().parents[2]
ETH = 10**18
OWNER = Account.from_key(ANVIL_KEYS[0]).address
WALLET = Account.from_key(ANVIL_KEYS[1]).address  # the sniper's wallet: the check simulates its own buy too


def _codes(report: TokenSafetyReport) -> set[str]:
    return {reason.split(":", 1)[0] for reason in report.reasons}


def _check(anvil: Anvil, uni: UniswapDeployment, token: str, **kw: Any) -> TokenSafetyReport:
    return check_token(anvil.w3, uni.router, uni.factory, uni.weth, token, venue="anvil", **kw)


# token -> (verdict, the reason codes it must be refused for, words the reasons must hold)
EXPECTED: dict[str, tuple[str, set[str], str]] = {
    "PlainToken": ("buy", set(), ""),
    "FeeOnTransferToken": ("buy", set(), ""),
    "Honeypot": ("refuse", {"cannot_sell"}, "trading not enabled"),
    "SellTax50": ("refuse", {"sell_tax"}, "> max 10.00 %"),
    "BlacklistAfterBuy": ("refuse", {"transfer_failed", "cannot_sell"}, "blacklisted"),
    "DeadBlocks": ("refuse", {"transfer_failed", "cannot_sell"}, "sniper"),
    "MaxTx": ("refuse", {"max_tx", "buy_failed"}, "allows 500 per transaction"),
    "MaxWallet": ("refuse", {"max_wallet", "buy_failed"}, "allows 500 per wallet"),
    "Mintable": ("refuse", {"owner_power"}, f"mint (owner {OWNER})"),
    "EoaTrap": ("refuse", {"wallet_cannot_sell"}, "the wallet's own sell reverted (the probe's did not)"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_token_gets_its_verdict_for_its_own_reason(
    anvil: Anvil, uniswap: UniswapDeployment, name: str
) -> None:
    launched = launch(anvil.w3, uniswap, name)
    report = _check(anvil, uniswap, launched.token, wallet=WALLET)
    verdict, codes, words = EXPECTED[name]
    assert (report.verdict, _codes(report)) == (verdict, codes), report.reasons
    assert words in " ".join(report.reasons)
    assert report.token == launched.token and report.pair == launched.pair and report.venue == "anvil"
    assert report.block_number == anvil.w3.eth.block_number + 1  # simulated in the next block
    assert report.liquidity_quote == 10.0 and report.lp_burnt_or_locked_pct == 100.0
    if name == "PlainToken":
        assert (report.buy_tax_bps, report.transfer_tax_bps, report.sell_tax_bps) == (0, 0, 0)
        assert report.can_sell and report.owner_powers == [] and report.max_tx == 0.0
    if name == "FeeOnTransferToken":  # 2 % on every transfer, within the 10 % rule
        assert (report.buy_tax_bps, report.transfer_tax_bps) == (
            200,
            200,
        ) and 190 <= report.sell_tax_bps <= 200
        assert report.can_sell
    if name == "SellTax50":
        assert report.can_sell and report.buy_tax_bps == 0 and 4_900 <= report.sell_tax_bps <= 5_000
    if name in ("Honeypot", "BlacklistAfterBuy", "DeadBlocks"):
        assert not report.can_sell and report.sell_tax_bps == -1
    if name == "MaxTx":
        assert report.max_tx == 500.0 and report.buy_tax_bps == -1
    if name == "MaxWallet":
        assert report.max_wallet == 500.0 and report.max_tx == 0.0 and report.buy_tax_bps == -1
    if name == "Mintable":
        assert report.owner_powers == ["mint"] and report.can_sell


def test_max_tx_and_max_wallet_tokens_pass_a_buy_below_their_limit_and_mint_passes_when_allowed(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    # The simulated buy has the size the sniper will buy: 0.01 ETH (~99 tokens) fits under 500.
    max_tx = launch(anvil.w3, uniswap, "MaxTx")
    small = _check(anvil, uniswap, max_tx.token, amount_in_wei=ETH // 100)
    assert small.verdict == "buy" and small.max_tx == 500.0, small.reasons
    max_wallet = launch(anvil.w3, uniswap, "MaxWallet")
    small = _check(anvil, uniswap, max_wallet.token, amount_in_wei=ETH // 100)
    assert small.verdict == "buy" and small.max_wallet == 500.0, small.reasons
    mintable = launch(anvil.w3, uniswap, "Mintable")
    allowed = _check(anvil, uniswap, mintable.token, rules=SafetyRules(allowed_owner_powers=["mint"]))
    assert allowed.verdict == "buy" and allowed.owner_powers == ["mint"], allowed.reasons


def test_a_tokens_revert_reason_is_passed_on_printable_and_bounded(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    launched = launch(anvil.w3, uniswap, "LoudHoneypot")
    report = _check(anvil, uniswap, launched.token)
    assert report.verdict == "refuse" and _codes(report) == {"cannot_sell"}
    (reason,) = report.reasons
    assert "no?{" in reason and all(ch.isprintable() for ch in reason) and len(reason) < 400


def test_a_trap_for_wallets_only_is_caught_by_simulating_the_wallet_itself(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    launched = launch(anvil.w3, uniswap, "EoaTrap")
    # The probe is a contract: alone it sees a clean token (the limit the wallet pass exists for).
    assert _check(anvil, uniswap, launched.token).verdict == "buy"
    report = _check(anvil, uniswap, launched.token, wallet=WALLET)
    assert _codes(report) == {"wallet_cannot_sell"} and "TRANSFER_FROM_FAILED" in report.reasons[0]
    assert report.can_sell  # what the probe saw; the verdict is what counts


def test_dead_blocks_are_caught_only_by_simulating_the_next_block(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    w3 = anvil.w3
    launched = launch(w3, uniswap, "DeadBlocks")
    assert w3.eth.block_number == launched.block  # the liquidity add is the latest block
    latest = _check(anvil, uniswap, launched.token, next_block=False)
    assert latest.verdict == "buy" and latest.block_number == launched.block, latest.reasons
    assert latest.can_sell and latest.sell_tax_bps == 0
    nxt = _check(anvil, uniswap, launched.token)
    assert nxt.verdict == "refuse" and nxt.block_number == launched.block + 1
    assert "cannot_sell" in _codes(nxt) and not nxt.can_sell
    # Once the dead blocks are past, the same token is clean in the next block too.
    anvil.mine(DEAD_BLOCKS)
    later = _check(anvil, uniswap, launched.token)
    assert later.verdict == "buy", later.reasons


def test_the_check_changes_nothing_on_chain(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    w3 = anvil.w3
    tokens = [launch(w3, uniswap, name) for name in ("PlainToken", "Honeypot", "SellTax50")]
    accounts = [Account.from_key(k).address for k in ANVIL_KEYS] + [
        PROBE_ADDRESS,
        CALLER_ADDRESS,
        SINK_ADDRESS,
    ]

    def state() -> Any:
        return (
            w3.eth.block_number,
            [
                (w3.eth.get_transaction_count(a), w3.eth.get_balance(a), bytes(w3.eth.get_code(a)))
                for a in accounts
            ],
            [pair_contract(w3, t.pair).functions.getReserves().call()[:2] for t in tokens],
            [w3.eth.get_balance(t.pair) + w3.eth.get_balance(uniswap.weth) for t in tokens],
        )

    before = state()
    reports = [_check(anvil, uniswap, t.token, wallet=WALLET) for t in tokens]
    assert [r.verdict for r in reports] == ["buy", "refuse", "refuse"]
    assert state() == before
    assert not w3.eth.get_code(PROBE_ADDRESS) and w3.eth.get_balance(CALLER_ADDRESS) == 0


def test_pool_rules_liquidity_and_lp_burnt_or_locked(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    w3 = anvil.w3
    thin = launch(w3, uniswap, "PlainToken", eth_amount=ETH)
    report = _check(anvil, uniswap, thin.token)
    assert _codes(report) == {"liquidity"} and report.liquidity_quote == 1.0
    assert _check(anvil, uniswap, thin.token, rules=SafetyRules(min_liquidity_quote=1.0)).verdict == "buy"
    kept = launch(w3, uniswap, "PlainToken", burn_lp=False)  # the deployer keeps the LP tokens: a rug vector
    report = _check(anvil, uniswap, kept.token)
    assert _codes(report) == {"lp_not_burnt_or_locked"} and report.lp_burnt_or_locked_pct < 0.01
    locked = _check(
        anvil, uniswap, kept.token, rules=SafetyRules(lp_lockers=[OWNER])
    )  # as if a locker held them
    assert locked.verdict == "buy" and locked.lp_burnt_or_locked_pct == 100.0, locked.reasons


def test_a_token_without_pool_or_code_is_refused(anvil: Anvil, uniswap: UniswapDeployment) -> None:
    from tests.evm.tokens import SUPPLY, deploy_token

    no_pool = deploy_token(anvil.w3, ANVIL_KEYS[0], "PlainToken", SUPPLY, "0x" + "00" * 20)
    assert _codes(_check(anvil, uniswap, no_pool)) == {"no_pool"}
    assert _codes(_check(anvil, uniswap, Account.from_key(ANVIL_KEYS[5]).address)) == {"not_a_contract"}


def test_an_eip1967_proxy_is_an_owner_power_and_its_implementation_is_scanned(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    plain = launch(anvil.w3, uniswap, "PlainToken")
    mintable = launch(anvil.w3, uniswap, "Mintable")
    slot = "0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc"
    anvil.rpc("anvil_setStorageAt", plain.token, slot, "0x" + "00" * 12 + mintable.token[2:].lower())
    report = _check(anvil, uniswap, plain.token)
    assert report.owner_powers == ["mint", "proxy"] and _codes(report) == {"owner_power"}, report.reasons


class _Proxy(BaseHTTPRequestHandler):
    """A JSON-RPC proxy to anvil that can act as a lesser node: one that ignores eth_call's block
    overrides (``drop_overrides``), one that refuses batch requests (``batches`` False)."""

    upstream = ""
    drop_overrides = False
    batches = True
    unsupported: tuple[str, ...] = ()
    seen: list[str]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append("batch" if isinstance(body, list) else "single")
        if isinstance(body, list) and not self.batches:
            answer = json.dumps(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batches"}}
            )
            return self._answer(answer.encode())
        for request in body if isinstance(body, list) else [body]:
            if self.drop_overrides and request.get("method") == "eth_call":
                request["params"] = request["params"][:3]
            if request.get("method") in self.unsupported:  # anvil answers: method not found
                request["method"] = "sniperbot_no_such_method"
        req = urllib.request.Request(
            self.upstream, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            self._answer(r.read())

    def _answer(self, answer: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _proxy(anvil: Anvil, **behaviour: Any) -> Iterator[tuple[str, list[str]]]:
    """A running :class:`_Proxy` to ``anvil``: its URL and the kinds of requests it saw."""
    seen: list[str] = []
    handler = type("H", (_Proxy,), {"upstream": anvil.rpc_url, "seen": seen, **behaviour})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_node_ignoring_block_overrides_makes_the_check_refuse(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    plain = launch(anvil.w3, uniswap, "PlainToken")
    with _proxy(anvil, drop_overrides=True) as (url, _):
        report = check_token(
            Web3(Web3.HTTPProvider(url)), uniswap.router, uniswap.factory, uniswap.weth, plain.token
        )
    assert report.verdict == "refuse" and _codes(report) == {"simulation_block"}, report.reasons
    assert "dead-blocks trap would go unseen" in report.reasons[0]


def test_a_node_that_cannot_simulate_the_wallet_makes_the_check_refuse(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    plain = launch(anvil.w3, uniswap, "PlainToken")
    with _proxy(anvil, unsupported=("eth_simulateV1",)) as (url, _):
        w3 = Web3(Web3.HTTPProvider(url))
        report = check_token(w3, uniswap.router, uniswap.factory, uniswap.weth, plain.token, wallet=WALLET)
        assert check_token(w3, uniswap.router, uniswap.factory, uniswap.weth, plain.token).verdict == "buy"
    assert _codes(report) == {"wallet_simulation"}, report.reasons


def test_two_round_trips_and_a_node_without_batches_gets_the_calls_one_by_one(
    anvil: Anvil, uniswap: UniswapDeployment
) -> None:
    honey = launch(anvil.w3, uniswap, "Honeypot")
    with _proxy(anvil) as (url, seen):
        batched = check_token(
            Web3(Web3.HTTPProvider(url)), uniswap.router, uniswap.factory, uniswap.weth, honey.token
        )
    assert seen == ["batch", "batch"]
    with _proxy(anvil, batches=False) as (url, seen):
        single = check_token(
            Web3(Web3.HTTPProvider(url)), uniswap.router, uniswap.factory, uniswap.weth, honey.token
        )
    assert seen[:2] == ["batch", "single"] and len(seen) > 10
    assert msgspec.structs.replace(single, ts_ns=0) == msgspec.structs.replace(batched, ts_ns=0)
    assert _codes(single) == {"cannot_sell"}


def test_rules_refuse_bad_values_naming_the_field() -> None:
    assert SafetyRules() == msgspec.convert({}, SafetyRules)
    defaults = SafetyRules()
    assert (defaults.max_buy_tax_bps, defaults.max_sell_tax_bps, defaults.allowed_owner_powers) == (
        1000,
        1000,
        [],
    )
    for bad, field in (
        ({"max_sell_tax_bps": 10_001}, "max_sell_tax_bps"),
        ({"allowed_owner_powers": ["mint", "teleport"]}, "allowed_owner_powers"),
        ({"lp_lockers": ["0x123"]}, "lp_lockers"),
        ({"min_lp_burnt_or_locked_pct": 101}, "min_lp_burnt_or_locked_pct"),
        ({"probe_quote": 0}, "probe_quote"),
        ({"max_tax": 5}, "max_tax"),
    ):
        with pytest.raises(msgspec.ValidationError, match=field):
            msgspec.convert(bad, SafetyRules)


def test_reports_are_journaled_beside_the_orders(tmp_path: Path) -> None:
    report = TokenSafetyReport(
        venue="anvil", token="0x" + "11" * 20, verdict="refuse", reasons=["cannot_sell: x"]
    )
    fill = Fill(
        fill_id="f1",
        client_order_id="c1",
        venue="anvil",
        symbol="TKN/WETH",
        side="buy",
        quantity=1.0,
        price=1.0,
        strategy_id="s",
        fee=0.0,
        ts_ns=1,
    )
    with Journal.open(tmp_path) as journal:
        assert journal.append_many([report, fill, report]) == [1, 2, 3]  # reports have no id: each appended
        assert journal.counts() == {"orders": 0, "fills": 1, "updates": 0}
    with Journal.open(tmp_path, readonly=True) as journal:
        assert journal.verify() == 3
        assert [r for _, r in journal.records()] == [fill]  # order readers see order records only
        assert [r for _, r in journal.records(kinds=(TokenSafetyReport,))] == [report, report]
        assert len(list(journal.records(kinds=None))) == 3


# ------------------------------------------------------------------ the CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sniperbot", "token-check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_cli_exit_codes_json_and_journal(anvil: Anvil, uniswap: UniswapDeployment, tmp_path: Path) -> None:
    w3 = anvil.w3
    plain, honey = launch(w3, uniswap, "PlainToken"), launch(w3, uniswap, "Honeypot")
    chain = ["--venue", "anvil", "--rpc-url", anvil.rpc_url, "--router", uniswap.router]
    chain += ["--factory", uniswap.factory, "--weth", uniswap.weth]

    ok = _cli(*chain, plain.token, "--json", "--wallet", WALLET)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["verdict"] == "buy" and out["token"] == plain.token and out["reasons"] == []
    assert out["can_sell"] is True and out["sell_tax_bps"] == 0 and "t" not in out

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    refused = _cli(*chain, honey.token, "--run-dir", str(run_dir))
    assert refused.returncode == 3, refused.stderr
    assert (
        "REFUSE" in refused.stdout
        and "cannot_sell" in refused.stdout
        and "trading not enabled" in refused.stdout
    )
    with Journal.open(run_dir, readonly=True) as journal:
        (journaled,) = [r for _, r in journal.records(kinds=(TokenSafetyReport,))]
    assert journaled.token == honey.token and journaled.verdict == "refuse" and not journaled.can_sell


def test_cli_bad_input_exits_2_naming_it(
    anvil: Anvil, uniswap: UniswapDeployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process (the same entry point as the console script): each case is refused before any chain work.
    from sniperbot.cli.main import main

    plain = launch(anvil.w3, uniswap, "PlainToken")
    chain = ["--venue", "anvil", "--rpc-url", anvil.rpc_url, "--router", uniswap.router]
    chain += ["--factory", uniswap.factory, "--weth", uniswap.weth]
    config = tmp_path / "node.toml"
    config.write_text("")  # the default config: one venue "sim", of kind sim
    cases = [
        ([*chain, "0xnot-an-address"], ["TOKEN", "0xnot-an-address"]),
        (["--venue", "anvil", "--rpc-url", anvil.rpc_url, plain.token], ["--router, --factory, --weth"]),
        ([*chain[:-1], plain.token, plain.token], ["--weth", "router's WETH"]),  # --weth: the token
        (["--venue", "sim", "--config", str(config), plain.token], ["'sim'", "not an evm venue"]),
        (["--venue", "nope", "--config", str(config), plain.token], ["'nope'", "not a venue"]),
        ([*chain, plain.token, "--amount", "-1"], ["--amount"]),
        ([*chain, plain.token, "--wallet", "me"], ["--wallet", "'me'"]),
        ([*chain, plain.token, "--run-dir", str(tmp_path / "missing")], ["--run-dir", "missing"]),
    ]
    for args, words in cases:
        assert main(["token-check", *args]) == 2, args
        err = capsys.readouterr().err
        assert all(w in err for w in words), (args, err)
    assert main(["token-check", *chain, plain.token]) == 0  # and the same chain, well given, answers
    assert "BUY" in capsys.readouterr().out
    eoa_trap = launch(anvil.w3, uniswap, "EoaTrap")
    assert main(["token-check", *chain, eoa_trap.token]) == 0
    assert main(["token-check", *chain, eoa_trap.token, "--wallet", WALLET]) == 3
    assert "wallet_cannot_sell" in capsys.readouterr().out


def test_cli_reads_the_venue_and_its_safety_rules_from_the_config(
    anvil: Anvil, uniswap: UniswapDeployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evm_config = pytest.importorskip(
        "sniperbot.venues.evm.config", reason="the evm venue kind is not merged yet"
    )
    from sniperbot.cli.main import main

    taxed = launch(anvil.w3, uniswap, "SellTax50")
    venue = f"""
[[venues]]
name = "anvil"
kind = "evm"
mode = "paper"
chain_id = 31337
rpc_url = "{anvil.rpc_url}"
router = "{uniswap.router}"
factory = "{uniswap.factory}"
quote = "WETH"
tokens = {{ WETH = "{uniswap.weth}", TAX = "{taxed.token}" }}
symbols = ["TAX/WETH"]

[[strategies]]
id = "s"
strategy = "sma_cross"
venue = "anvil"
symbol = "TAX/WETH"
quantity = 1.0
"""
    config = tmp_path / "node.toml"
    config.write_text(venue)
    assert main(["token-check", "--venue", "anvil", "--config", str(config), taxed.token]) == 3
    assert "sell_tax" in capsys.readouterr().out  # the default rules: max 10 %
    if "safety" not in evm_config.EvmVenueConfig.__struct_fields__:
        pytest.skip("EvmVenueConfig has no field `safety: SafetyRules` yet ([venues.safety] cannot be read)")
    config.write_text(
        venue.replace("\n[[strategies]]", "\n[venues.safety]\nmax_sell_tax_bps = 6000\n\n[[strategies]]")
    )
    assert main(["token-check", "--venue", "anvil", "--config", str(config), taxed.token]) == 0
