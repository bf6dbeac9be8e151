"""Config gaps of issue #8 point 8: each bad config exits 2 naming the field, and starts nothing.

Same pattern as tests/test_config.py: the real CLI, no run directory created, no process left.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sniperbot.config import decode_config
from tests.conftest import FAST_CONFIG
from tests.test_config import _run_refused, assert_config_refused

_STRATEGY = '[[strategies]]\nid = "{id}"\nsymbol = "BTC/USDT"\nquantity = 0.1\n'


def _strategy(**fields: object) -> str:
    text = _STRATEGY.format(id=fields.pop("id", "a"))
    return text + "".join(f"{k} = {v}\n" for k, v in fields.items())


GAPS = [
    # (test id, TOML text, what the message must name)
    (
        "position-limit-not-traded",
        '[risk]\nposition_limits = { "btc/usdt" = 1.0 }\n',
        ["risk.position_limits.btc/usdt", "not a traded symbol"],
    ),
    ("tiny-bar-interval", _strategy(bar_interval_s=1e-10), ["strategies[0].bar_interval_s", "0.01"]),
    ("300-char-id", _strategy(id="x" * 300), ["strategies[0].id", "not a valid id"]),
    ("33-char-id", _strategy(id="x" * 33), ["strategies[0].id", "not a valid id"]),
    ("slash-id", _strategy(id="a/b"), ["strategies[0].id", "not a valid id"]),
    ("space-id", _strategy(id="a b"), ["strategies[0].id", "not a valid id"]),
    ("dotdot-id", _strategy(id="a..b"), ["strategies[0].id", "not a valid id"]),
    ("dot-id", _strategy(id=".hidden"), ["strategies[0].id", "not a valid id"]),
    ("slash-venue", '[[venues]]\nname = "sim/x"\nkind = "sim"\n', ["venues[0].name", "not a valid id"]),
    ("long-venue", f'[[venues]]\nname = "{"v" * 300}"\nkind = "sim"\n', ["venues[0].name", "not a valid id"]),
    ("tiny-heartbeat", "[node]\nheartbeat_interval_s = 1e-9\n", ["node.heartbeat_interval_s", "0.05"]),
    ("tiny-start-timeout", "[node]\nstart_timeout_s = 1e-9\n", ["node.start_timeout_s", ">= 1.0"]),
    ("inf-max-position", "[risk]\nmax_position = inf\n", ["risk.max_position", "finite"]),
    ("inf-notional", "[risk]\nmax_order_notional = inf\n", ["risk.max_order_notional", "finite"]),
    ("inf-rate", "[risk]\nmax_orders_per_second = inf\n", ["risk.max_orders_per_second", "finite"]),
    ("inf-daily-loss", "[risk]\ndaily_loss_limit = inf\n", ["risk.daily_loss_limit", "finite"]),
    ("inf-drawdown", "[risk]\nmax_drawdown = inf\n", ["risk.max_drawdown", "finite"]),
    (
        "inf-position-limit",
        '[risk]\nposition_limits = { "BTC/USDT" = inf }\n',
        ["risk.position_limits.BTC/USDT", "finite"],
    ),
    ("nan-max-position", "[risk]\nmax_position = nan\n", ["risk.max_position"]),
    ("nan-daily-loss", "[risk]\ndaily_loss_limit = nan\n", ["risk.daily_loss_limit"]),
    ("inf-quantity", _STRATEGY.format(id="a").replace("0.1", "inf"), ["strategies[0].quantity", "finite"]),
    ("inf-param", _strategy(params="{ fast = 2, slow = inf }"), ["strategies[0].params.slow", "finite"]),
    ("inf-cooldown", "[breakers]\nmax_cooldown_s = inf\n", ["breakers.max_cooldown_s", "finite"]),
    ("inf-fee", "[execution]\nfee_bps = inf\n", ["execution.fee_bps", "finite"]),
]


@pytest.mark.parametrize(("text", "names"), [g[1:] for g in GAPS], ids=[g[0] for g in GAPS])
def test_config_gap_exits_2_naming_the_field_and_starts_nothing(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, text: str, names: list[str]
) -> None:
    assert_config_refused(short_tmp, monkeypatch, text, names)


def test_limits_at_the_documented_minimums_are_accepted() -> None:
    """The minimums are inclusive, and the shipped configs stay valid."""
    text = (
        "[node]\nheartbeat_interval_s = 0.05\nstart_timeout_s = 1.0\n"
        + _strategy(id="A-z_0.9", bar_interval_s=0.01)
        + '[risk]\nposition_limits = { "BTC/USDT" = 2.0 }\n'
    )
    config = decode_config(text)
    assert config.strategies[0].id == "A-z_0.9"
    decode_config(FAST_CONFIG)
    assert decode_config(_strategy(id="x" * 32)).strategies[0].id == "x" * 32


def test_missing_admin_server_key_exits_2_before_creating_anything(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = short_tmp / "allowed"
    allowed.mkdir()
    missing = short_tmp / "nowhere" / "server.key_secret"
    config = short_tmp / "tcp.toml"
    config.write_text(
        FAST_CONFIG
        + '\n[admin]\ntcp_endpoint = "tcp://127.0.0.1:1"\n'
        + f'server_key = "{missing}"\nauthorized_clients = "{allowed}"\n'
    )
    stderr = _run_refused(monkeypatch, short_tmp / "run", "--config", str(config), "--duration", "1")
    assert "admin.server_key" in stderr and str(missing) in stderr, stderr
    assert "Traceback" not in stderr
    # a public key where the secret one belongs is refused the same way
    public = short_tmp / "server.key"
    public.write_text('metadata\ncurve\n    public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"\n')
    config.write_text(config.read_text().replace(str(missing), str(public)))
    stderr = _run_refused(monkeypatch, short_tmp / "run", "--config", str(config), "--duration", "1")
    assert "admin.server_key" in stderr and "no secret key" in stderr, stderr
