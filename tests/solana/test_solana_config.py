"""The Solana venue as a configured place (issue #13 point 1): ``[[venues]] kind = "solana"``, its wallet.

Each bad value is refused naming its field, in process (the ConfigError ``sniperbot run`` exits 2 on) and,
for a sample, through a real ``sniperbot run --config``; the wallet is an entry of kind ``solana`` added
with the real ``sniperbot keys add`` and sealed into the live gateway's launch only.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair

from sniperbot.keystore import Credentials
from tests.conftest import ROOT, sniperbot

VENUE = "localsol"
SOL = "So11111111111111111111111111111111111111112"
TKN = "Hc7FFXxbVf9rfSXDqY1R4FptVdR7Z6kQnNbrcuUyPe9n"  # any valid key: no chain is asked at load
PROGRAM = "7D5MzZciqoXJLtGjBw85QVp7RUJRtCGir5p5yGn2P2q9"
PASSWORD = "solana-keystore-pw"
WALLET = Keypair.from_seed(bytes(range(32)))
WALLET_SECRET = str(WALLET)  # base58 of the 64 bytes

_NODE = '[node]\nheartbeat_interval_s = 0.2\n\n[journal]\ndurability = "process"\n'

#: What ``SolanaVenueConfig.live_gateway`` hands ``SolanaGateway`` (i13_shapes.md); the topology adds
#: ``executor``.
GATEWAY_KWARGS = {
    "venue", "rpc_url", "ws_url", "commitment", "aggregator_url", "quote", "mints", "symbols", "route",
    "block_engine_url", "tip_lamports", "priority_fee_micro_lamports", "compute_unit_limit", "slippage_bps",
}  # fmt: skip


def venue_toml(*, mode: str = "paper", rpc_url: str = "http://127.0.0.1:8899", extra: str = "") -> str:
    """One ``[[venues]] kind = "solana"`` entry (the shapes file's example)."""
    return (
        f'[[venues]]\nname = "{VENUE}"\nkind = "solana"\nmode = "{mode}"\nrpc_url = "{rpc_url}"\n'
        f'ws_url = "ws://127.0.0.1:8900"\ncommitment = "confirmed"\naggregator_url = "http://127.0.0.1:8080"\n'
        f'quote = "SOL"\nmints = {{ SOL = "{SOL}", TKN = "{TKN}" }}\nsymbols = ["TKN/SOL"]\n'
        f'pools_program = "{PROGRAM}"\nroute = "jito"\nblock_engine_url = "http://127.0.0.1:8899"\n{extra}\n'
    )


def write_config(path: Path, venue: str) -> Path:
    """A node config with the venue and no strategies."""
    path.write_text("strategies = []\n" + _NODE + venue)
    return path


def refused(config: Path, run_dir: Path, *extra: str) -> str:
    """Run a node that must refuse to start: exit 2, nothing created; returns its error."""
    result = sniperbot("run", "--config", str(config), "--run-dir", str(run_dir), "--duration", "5", *extra)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert not (run_dir / "journal").exists(), "a refused node must not create its run dir"
    return result.stderr


def test_bad_solana_configs_are_refused_naming_the_field(short_tmp: Path) -> None:
    """Each check at load names its field; a sample through ``sniperbot run`` exits 2 naming it."""
    from sniperbot.config import ConfigError, decode_config

    good = venue_toml()
    cases = [
        (good.replace(PROGRAM, PROGRAM[:-1] + "0"), "venues[0].pools_program", "not a base58 public key"),
        (good.replace(PROGRAM, PROGRAM[:-2]), "venues[0].pools_program", "does not decode to 32 bytes"),
        (good.replace(f'TKN = "{TKN}"', f'TKN = "{TKN[:-3]}"'), "venues[0].mints.TKN", "not a public key"),
        (good.replace(f'TKN = "{TKN}"', 'TKN = "0xdeadbeef"'), "venues[0].mints.TKN", "not a base58"),
        (good.replace(f'TKN = "{TKN}"', f'TKN = "{SOL}"'), "venues[0].mints.TKN", "same mint as mints.SOL"),
        (good.replace(f'SOL = "{SOL}"', f'SOL = "{PROGRAM}"'), "venues[0].mints.SOL", "must be native SOL"),
        (good.replace('quote = "SOL"', 'quote = "USDC"'), "venues[0].quote", "not listed in mints"),
        (good.replace('"TKN/SOL"', '"TKN/USDC"'), "venues[0].symbols", "not quoted in"),
        (good.replace('"TKN/SOL"', '"PEPE/SOL"'), "venues[0].symbols", "'PEPE' is not listed"),
        (good.replace('"TKN/SOL"', '"TKN-SOL"'), "venues[0].symbols", "not a pair"),
        (good.replace('"TKN/SOL"', '"SOL/SOL"'), "venues[0].symbols", "against itself"),
        (good.replace('rpc_url = "http://', 'rpc_url = "ws://'), "venues[0].rpc_url", "http or https"),
        (good.replace('ws_url = "ws://', 'ws_url = "http://'), "venues[0].ws_url", "ws or wss"),
        (good.replace('aggregator_url = "http://', 'aggregator_url = "ftp://'), "venues[0].aggregator_url",
         "http or https"),
        (good.replace('block_engine_url = "http://', 'block_engine_url = "ws://'),
         "venues[0].block_engine_url", "http or https"),
        (good.replace('block_engine_url = "http://127.0.0.1:8899"', ""), "venues[0].block_engine_url",
         'route = "jito" needs'),
        (venue_toml(mode="live"), "venues[0].wallet", "needs a keystore entry with field secret_key"),
        (good.replace('route = "jito"', 'route = "public"'), "venues[0].route", "Invalid enum value"),
        (good.replace('"confirmed"', '"final"'), "venues[0].commitment", "Invalid enum value"),
        (venue_toml(extra="tip_lamports = 999"), "venues[0].tip_lamports", ">= 1000"),
        (venue_toml(extra="slippage_bps = 0"), "venues[0].slippage_bps", ">= 1"),
        (venue_toml(extra="slippage_bps = 5001"), "venues[0].slippage_bps", "<= 5000"),
        (venue_toml(extra="priority_fee_micro_lamports = -1"), "venues[0].priority_fee_micro_lamports",
         ">= 0"),
        (venue_toml(extra="compute_unit_limit = 0"), "venues[0].compute_unit_limit", ">= 1"),
        (venue_toml(extra="compute_unit_limit = 1400001"), "venues[0].compute_unit_limit", "<= 1400000"),
        (venue_toml(extra="wallet = 7"), "venues[0].wallet", "Expected `str`"),
        (venue_toml(extra="[venues.sniper]\nbudget = 0.0"), "venues[0].sniper.budget", "> 0"),
        (good.replace('aggregator_url = "http://127.0.0.1:8080"\n', ""), "venues[0]",
         "missing required field `aggregator_url`"),
    ]  # fmt: skip
    for venue, path, what in cases:
        with pytest.raises(ConfigError) as caught:
            decode_config("strategies = []\n" + _NODE + venue)
        message = str(caught.value)
        assert f"at {path}" in message and what in message, (path, message)
    config = decode_config("strategies = []\n" + _NODE + good)  # the good one loads
    assert type(config.venues[0]).__name__ == "SolanaVenueConfig"
    run_dir = short_tmp / "run"
    for index in (0, 6, 15, 16):
        venue, path, _ = cases[index]
        error = refused(write_config(short_tmp / f"bad{index}.toml", venue), run_dir)
        assert f"at {path}" in error, error


def test_loading_a_solana_config_imports_no_solana_library() -> None:
    """Every CLI command loads the config: a Solana venue's module must not pull solana-py or solders in
    (they are imported by the checks of a configured venue and by its actors only)."""
    code = (
        "import sys\nfrom sniperbot.config import Config\nimport sniperbot.venues.solana.config\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('solana', 'solders', 'spl')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def free_port() -> int:
    """A port nobody listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_rpc_is_a_warning_not_a_refusal() -> None:
    """As EVM: a node restarted during an RPC outage must come back by itself; the warning hides the URL."""
    from sniperbot.config import check_venues, decode_config

    rpc_url = f"http://127.0.0.1:{free_port()}/secret-api-key"
    config = decode_config("strategies = []\n" + _NODE + venue_toml(rpc_url=rpc_url))
    (warning,) = check_venues(config)
    assert warning.startswith(f"venues[0] ({VENUE}): cannot reach rpc_url"), warning
    assert "secret-api-key" not in warning, warning


# -- the wallet: keystore entry of kind solana, sealed into the gateway's launch only ---------------------


def keys_add(keystore: Path, name: str, kind: str, fields: dict[str, str]) -> Any:
    """``sniperbot keys add NAME --exchange KIND --stdin`` (the operator's way); the completed process."""
    password_file = keystore.parent / "ks.pw"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    command = [
        sys.executable, "-m", "sniperbot", "keys", "add", name, "--exchange", kind, "--stdin",
        "--keystore", str(keystore), "--password-file", str(password_file),
    ]  # fmt: skip
    return subprocess.run(
        command, input=json.dumps(fields), capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_keys_add_stores_a_solana_wallet_and_refuses_a_malformed_key(short_tmp: Path) -> None:
    """Kind ``solana``, field ``secret_key``: a base58 64-byte keypair whose public half is its secret's,
    checked before anything is stored; no error quotes the key."""
    ks = short_tmp / "ks"
    other = Keypair.from_seed(bytes(32))
    swapped = str(Keypair.from_bytes(bytes(other)))  # a valid keypair text, to splice halves below
    spliced = WALLET_SECRET[:44] + swapped[44:]  # base58 of some 64 bytes, unlikely a consistent keypair
    why = "'secret_key' must be a base58 64-byte ed25519 keypair"
    bad = [
        ({"secret_key": WALLET_SECRET[:-4]}, why),
        ({"secret_key": WALLET_SECRET + "1"}, why),
        ({"secret_key": "0" + WALLET_SECRET[1:]}, why),  # '0' is not base58
        ({"secret_key": str(WALLET.pubkey())}, why),  # a public key is no wallet
        ({"secret_key": spliced}, why),
        ({"private_key": WALLET_SECRET}, "'private_key' is not a solana wallet field"),
        ({}, "solana needs the credential field(s) secret_key"),
    ]
    for fields, reason in bad:
        result = keys_add(ks, "w", "solana", fields)
        assert result.returncode == 2 and reason in result.stderr, (fields, result.stderr)
        assert WALLET_SECRET[8:40] not in result.stderr + result.stdout
        assert not (ks / "w.key").exists(), "a refused key must not be stored"
    result = keys_add(ks, "w", "solana", {"secret_key": WALLET_SECRET})
    assert result.returncode == 0, result.stderr
    assert WALLET_SECRET not in result.stderr + result.stdout
    listed = sniperbot("keys", "list", "--keystore", str(ks), "--json")
    assert [(e["name"], e["exchange"]) for e in json.loads(listed.stdout)] == [("w", "solana")], listed.stdout
    from sniperbot.keystore import Keystore

    assert Keystore.open(ks, PASSWORD).get("w")["secret_key"].reveal() == WALLET_SECRET


def test_a_live_venue_unlocks_its_wallet_and_only_its_gateway_launch_carries_it(short_tmp: Path) -> None:
    """``mode = "live"``: the wallet is unlocked before any process starts and sealed into
    ``gateway.<venue>``'s launch only; the gateway's args (the shapes' kwargs) hold no secret; with
    ``[venues.sniper]`` the checker, the pool watcher and the unchanged sniper join the tree."""
    from sniperbot.config import load_config
    from sniperbot.keystore import unlock_for_config
    from sniperbot.node import Node
    from sniperbot.supervision import ChildSpec

    ks = short_tmp / "ks"
    assert keys_add(ks, "w", "solana", {"secret_key": WALLET_SECRET}).returncode == 0
    extra = 'wallet = "w"\n[venues.sniper]\nbudget = 0.2'
    config = load_config(write_config(short_tmp / "live.toml", venue_toml(mode="live", extra=extra)))
    unlocked = unlock_for_config(config, keystore=ks, password_file=ks.parent / "ks.pw", interactive=False)
    assert sorted(unlocked) == ["w"]
    node = Node(config, short_tmp / "run", credentials=unlocked)

    def workers(spec: ChildSpec) -> list[ChildSpec]:
        return [spec] if spec.type == "worker" else [w for c in spec.children for w in workers(c)]

    specs = {w.id: w for w in workers(node.tree_spec)}
    gateway = specs[f"gateway.{VENUE}"]
    assert gateway.actor == "sniperbot.venues.solana.gateway:SolanaGateway"
    assert set(gateway.args) == GATEWAY_KWARGS | {"executor"}, sorted(gateway.args)
    assert gateway.args["mints"] == {"SOL": SOL, "TKN": TKN}
    assert (gateway.args["route"], gateway.args["tip_lamports"], gateway.args["commitment"]) == (
        "jito", 10_000, "confirmed"
    )  # fmt: skip
    sealed = Credentials.from_launch(node.sealed_credentials(gateway))
    assert (sealed.name, sealed.exchange) == ("w", "solana")
    assert sealed["secret_key"].reveal() == WALLET_SECRET
    assert [i for i, spec in specs.items() if i != gateway.id and node.sealed_credentials(spec)] == []
    for spec in specs.values():
        assert WALLET_SECRET not in json.dumps(spec.args), spec.id
    assert specs[f"feed.{VENUE}"].actor == "sniperbot.venues.solana.feed:SolanaFeed"
    assert specs[f"checker.{VENUE}"].actor == "sniperbot.venues.solana.checker:TokenChecker"
    assert specs[f"checker.{VENUE}"].args["wallet_pass"] is True
    assert specs[f"checker.{VENUE}"].args["buy_quote"] == 0.2
    assert specs[f"pools.{VENUE}"].actor == "sniperbot.venues.solana.pool_watcher:PoolWatcher"
    sniper = specs[f"strategy.sniper-{VENUE}"]
    assert sniper.actor == "sniperbot.actors.sniper:SniperActor"
    assert (sniper.args["venue"], sniper.args["quote"]) == (VENUE, "SOL")


def test_a_live_venue_naming_a_missing_or_foreign_wallet_entry_exits_2(short_tmp: Path) -> None:
    """The wallet entry must exist and be of kind ``solana`` (an EVM wallet is no Solana wallet)."""
    ks = short_tmp / "ks"
    evm_key = "0x" + "11" * 32
    assert keys_add(ks, "ev", "evm", {"private_key": evm_key}).returncode == 0
    unlock = ("--keystore", str(ks), "--password-file", str(ks.parent / "ks.pw"))
    run_dir = short_tmp / "run"
    missing = write_config(short_tmp / "m.toml", venue_toml(mode="live", extra='wallet = "w"'))
    error = refused(missing, run_dir, *unlock)
    assert "venues[0].wallet: no keystore entry named 'w'" in error, error
    foreign = write_config(short_tmp / "f.toml", venue_toml(mode="live", extra='wallet = "ev"'))
    error = refused(foreign, run_dir, *unlock)
    why = "venues[0].wallet: keystore entry 'ev' holds a evm key, the venue needs one of kind solana"
    assert why in error, error
