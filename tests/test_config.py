"""Configuration: the shipped default is the built-in one; every bad config stops the CLI before it starts.

A bad config must exit 2, name the field path, and start nothing: no run directory,
no actor process, no forkserver.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import msgspec
import pytest
import zmq

from sniperbot.config import Config, ConfigError, decode_config, load_config, with_overrides
from sniperbot.messages import TradeTick, decode_envelope
from sniperbot.transport.bus import LOCAL_MARK, split_message
from sniperbot.venues.sim.market import SimMarket, SimSymbol
from tests.conftest import ROOT, RunningNode, eventually, sniperbot

_STRATEGY = '[[strategies]]\nid = "a"\nsymbol = "BTC/USDT"\nquantity = 0.1\n'


def _processes_with_marker(marker: str) -> list[int]:
    """Pids (other than this one) whose environment carries ``marker``."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass  # gone, or not ours
    return found


def _run_refused(monkeypatch: pytest.MonkeyPatch, run_dir: Path, *args: str) -> str:
    """Run ``sniperbot run`` expecting exit 2 with nothing started; return its stderr."""
    marker = f"sb-config-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("SNIPERBOT_TEST_MARKER", marker)
    result = sniperbot("run", "--run-dir", str(run_dir), *args)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert not run_dir.exists(), "a refused config must not create the run directory"
    assert _processes_with_marker(marker) == [], "a refused config must leave no process behind"
    assert result.stdout == ""
    return result.stderr


def test_default_toml_is_the_built_in_default() -> None:
    path = ROOT / "config" / "default.toml"
    assert decode_config(path.read_bytes(), str(path)) == Config()
    assert load_config(path) == Config()
    assert load_config(None) == Config()


def test_default_toml_spells_out_every_field() -> None:
    """Every field of every section appears in the file, so the file documents the whole config."""
    data = msgspec.toml.decode((ROOT / "config" / "default.toml").read_bytes())
    built_in = msgspec.to_builtins(Config())
    for section, fields in built_in.items():
        assert section in data, section
        if isinstance(fields, dict):
            # Optional sub-sections (None: absent, e.g. [alerts.telegram]) are documented in comments.
            assert set(data[section]) == {k for k, v in fields.items() if v is not None}, section


_SIM = '[[venues]]\nname = "sim"\nkind = "sim"\n'
BAD_CONFIGS = [
    # (test id, TOML text, what the message must name)
    ("wrong-type", '[risk]\nmax_position = "big"\n', ["risk.max_position", "float"]),
    ("wrong-type-int", "[node]\nheartbeat_liveness = 4.5\n", ["node.heartbeat_liveness", "int"]),
    ("wrong-literal", '[risk]\ntrading_state = "PANIC"\n', ["risk.trading_state"]),
    ("wrong-placement", '[placement]\ndefault = "cloud"\n', ["placement.default"]),
    ("unknown-key", "[risk]\nbogus = 1\n", ["risk.bogus", "unknown field"]),
    (
        "unknown-nested-key",
        _SIM + '[[venues.symbols]]\nsymbol = "BTC/USDT"\nstart_price = 1.0\nbogus = 2\n',
        ["venues[0].symbols[0].bogus", "unknown field"],
    ),
    ("unknown-section", "[bogus]\nx = 1\n", ["bogus", "unknown field"]),
    ("negative", "[risk]\nmax_position = -1.0\n", ["risk.max_position", "> 0"]),
    ("zero", "[node]\nheartbeat_interval_s = 0\n", ["node.heartbeat_interval_s", "> 0"]),
    ("zero-quantity", _STRATEGY.replace("0.1", "0"), ["strategies[0].quantity"]),
    ("liveness-1", "[node]\nheartbeat_liveness = 1\n", ["node.heartbeat_liveness", ">= 2"]),
    ("negative-intensity", "[supervisor]\nintensity = -1\n", ["supervisor.intensity"]),
    (
        "trade-prob",
        _SIM + '[[venues.symbols]]\nsymbol = "X"\nstart_price = 1.0\ntrade_prob = 1.5\n',
        ["venues[0].symbols[0].trade_prob"],
    ),
    ("fast-eq-slow", _STRATEGY + "params = { fast = 5, slow = 5 }\n", ["strategies[0].params", "slow"]),
    ("fast-gt-slow", _STRATEGY + "params = { fast = 8, slow = 3 }\n", ["strategies[0].params", "slow"]),
    ("param-str", _STRATEGY + 'params = { fast = "2", slow = 5 }\n', ["strategies[0].params"]),
    ("param-bool", _STRATEGY + "params = { fast = true, slow = 5 }\n", ["strategies[0].params", "fast"]),
    (
        "param-unknown",
        _STRATEGY + "params = { fast = 2, slow = 5, zzz = 1 }\n",
        ["strategies[0].params", "zzz"],
    ),
    ("unknown-strategy", _STRATEGY + 'strategy = "martingale"\n', ["strategies[0].strategy", "martingale"]),
    (
        "symbol-not-in-market",
        _STRATEGY.replace("BTC/USDT", "DOGE/USDT"),
        ["strategies[0].symbol", "DOGE/USDT"],
    ),
    ("duplicate-strategy-id", _STRATEGY + _STRATEGY, ["strategies[1].id", "duplicate"]),
    ("missing-required", '[[strategies]]\nid = "a"\nsymbol = "BTC/USDT"\n', ["strategies[0]", "quantity"]),
    ("no-symbols", _SIM + "symbols = []\n", ["venues[0].symbols", "symbol"]),
    ("bad-toml", "[risk\nmax_position = 1\n", ["TOML", "line 1"]),
]


@pytest.mark.parametrize(("text", "names"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_exits_2_naming_the_field_and_starts_nothing(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, text: str, names: list[str]
) -> None:
    assert_config_refused(short_tmp, monkeypatch, text, names)


def assert_config_refused(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, text: str, names: list[str]
) -> None:
    """``sniperbot run`` on ``text`` exits 2 naming every one of ``names``; the library refuses it too."""
    config = short_tmp / "bad.toml"
    config.write_text(text)
    stderr = _run_refused(monkeypatch, short_tmp / "run", "--config", str(config), "--duration", "1")
    assert stderr.startswith("sniperbot: error: invalid config"), stderr
    assert str(config) in stderr
    for name in names:
        assert name in stderr, (name, stderr)
    assert "Traceback" not in stderr
    # the library raises the same error for the same text
    with pytest.raises(ConfigError):
        decode_config(text)


def test_missing_config_file_exits_2(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = short_tmp / "nope.toml"
    stderr = _run_refused(monkeypatch, short_tmp / "run", "--config", str(missing), "--duration", "1")
    assert "not found" in stderr and str(missing) in stderr
    assert "Traceback" not in stderr


def test_unreadable_config_exits_2(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = short_tmp / "is-a-dir.toml"
    directory.mkdir()
    stderr = _run_refused(monkeypatch, short_tmp / "run", "--config", str(directory), "--duration", "1")
    assert str(directory) in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("value", ["-1", "0", "abc", "nan"])
def test_bad_duration_exits_2_naming_the_option(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # The config file does not exist: if --duration were accepted, the error would name the file.
    stderr = _run_refused(
        monkeypatch, short_tmp / "run", "--config", str(short_tmp / "absent.toml"), "--duration", value
    )
    assert "--duration" in stderr, stderr
    assert "not found" not in stderr


def test_bad_seed_exits_2_naming_the_option(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = _run_refused(monkeypatch, short_tmp / "run", "--seed", "abc", "--duration", "1")
    assert "--seed" in stderr


def test_with_overrides_replaces_only_the_seed() -> None:
    config = Config()
    changed = with_overrides(config, seed=123)
    (venue,) = changed.venues
    assert venue.seed == 123 and config.venues[0].seed == 7
    assert msgspec.structs.replace(venue, seed=7) == config.venues[0]
    assert msgspec.structs.replace(changed, venues=config.venues) == config


_SEED_CONFIG = """
strategies = []

[node]
heartbeat_interval_s = 0.2
log_level = "INFO"

[journal]
durability = "process"

[[venues]]
name = "sim"
kind = "sim"
seed = 7
tick_interval_s = 0.02

[[venues.symbols]]
symbol = "BTC/USDT"
start_price = 60000.0
trade_prob = 1.0

[placement]
default = "thread"
"""


def test_seed_option_overrides_market_seed(short_tmp: Path) -> None:
    """The running feed prints the price path of --seed, not of market.seed from the file."""
    config = short_tmp / "seed.toml"
    config.write_text(_SEED_CONFIG)
    run_dir = short_tmp / "run"
    running = RunningNode(run_dir, config, extra=("--seed", "12345", "--duration", "20"))
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    try:
        eventually(lambda: (run_dir / "bus-out.sock").exists(), 30, what="bus socket")
        # A local actor's message reaches a tool on the proxy marked (sniperbot.transport.bus).
        sub.setsockopt(zmq.SUBSCRIBE, LOCAL_MARK + b"md.sim.trade.BTC/USDT.")
        sub.connect(f"ipc://{run_dir / 'bus-out.sock'}")
        assert sub.poll(10_000), running.log()
        tick = decode_envelope(split_message(sub.recv())[1]).payload
        assert isinstance(tick, TradeTick)
    finally:
        sub.close()
        ctx.term()
        assert running.stop() == 0
    symbol = SimSymbol("BTC/USDT", 60000.0, base_vol_bps=2.0, spread_bps=1.0, top_size=1.0, trade_prob=1.0)

    def printed_by(seed: int) -> bool:
        market = SimMarket("sim", seed, [symbol], 0.02)
        expected = [e for e in market.events_at(tick.trade_id, tick.ts_ns) if isinstance(e, TradeTick)]
        return expected == [tick]

    assert printed_by(12345)
    assert not printed_by(7)


def test_loading_a_config_does_not_import_the_chain_libraries() -> None:
    """Every ``sniperbot`` command loads the config: web3 (0.5 s to import) is for the actors that use it.

    A CLI slowed by it broke a test that reads the journal twice around a node's status."""
    import subprocess
    import sys

    code = (
        "import sys, sniperbot.config, sniperbot.cli.main; "
        "print(sorted(m for m in sys.modules if m.startswith(('web3', 'eth_abi'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
