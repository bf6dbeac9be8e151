"""Real nodes on a ccxt venue pointed at a local exchange server: config files and keystore entries.

Shared by the node, status, chaos and benchmark tests: one way to write a ``[[venues]] kind = "ccxt"``
config for a local server, and one way to put the server's credentials in a keystore, the way an
operator does (``sniperbot keys add --stdin``), so a live node unlocks them as in production.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.exchanges._base import ExchangeServer

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "local-exchange-keystore-pw"
KEY_NAME = "local"

_NODE = """
[node]
heartbeat_interval_s = 0.2
heartbeat_liveness = 5
log_level = "INFO"

[journal]
durability = "process"
"""


def venue_toml(
    server: ExchangeServer,
    *,
    name: str = "bx",
    symbols: tuple[str, ...] = ("BTC/USDT",),
    mode: str = "paper",
    keys: str = "",
    extra: str = "",
) -> str:
    """One ``[[venues]]`` entry on ``server`` (its REST and websocket URLs replace the exchange's hosts)."""
    lines = [
        "[[venues]]",
        f'name = "{name}"',
        'kind = "ccxt"',
        f'exchange = "{server.name}"',
        f"symbols = {json.dumps(list(symbols))}",
        f'mode = "{mode}"',
        f'rest_url = "{server.rest_url}"',
        f'ws_url = "{server.ws_url}"',
        "stale_after_s = 5.0",
        "reconcile_interval_s = 0.5",
    ]
    if keys:
        lines.append(f'keys = "{keys}"')
    return "\n".join(lines) + "\n" + extra + "\n"


def strategy_toml(
    venue: str = "bx", symbol: str = "BTC/USDT", sid: str = "sma_bx", quantity: float = 0.001
) -> str:
    """A fast sma_cross on ``venue`` (0.2 s bars, 2/4): it trades within seconds on a moving market."""
    return (
        "[[strategies]]\n"
        f'id = "{sid}"\nvenue = "{venue}"\nsymbol = "{symbol}"\nquantity = {quantity}\n'
        "bar_interval_s = 0.2\nparams = { fast = 2, slow = 4 }\n"
    )


def write_config(path: Path, *parts: str, strategies: bool = True) -> Path:
    """A node config: fast heartbeats, the given venue/strategy entries (``strategies = []`` if none)."""
    body = _NODE + "".join(parts)
    if not strategies:
        body = "strategies = []\n" + body
    path.write_text(body)
    return path


def add_key(keystore: Path, server: ExchangeServer, name: str = KEY_NAME) -> list[str]:
    """Store ``server``'s credentials as entry ``name``; returns the ``sniperbot run`` arguments to unlock."""
    password_file = keystore.parent / f"{keystore.name}.pw"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sniperbot",
            "keys",
            "add",
            name,
            "--exchange",
            server.name,
            "--stdin",
            "--keystore",
            str(keystore),
            "--password-file",
            str(password_file),
        ],
        input=json.dumps(server.credentials()),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return ["--keystore", str(keystore), "--password-file", str(password_file)]
