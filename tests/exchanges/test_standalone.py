"""Each local exchange server as its own process (``python -m tests.exchanges.NAME``), scripted over HTTP.

This is how the chaos tool and the benchmarks use them: the first stdout line gives the URLs and credentials,
``POST /__control__/<method>`` scripts a fault or a market move, ``GET /__control__/state`` returns the
exchange's own records (orders, fills with trade ids, balances).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import ccxt
import pytest

from sniperbot.venues.ccxt.urls import rebase_urls

ROOT = Path(__file__).resolve().parents[2]
CASES = {
    # name: (symbol, order path, client id param, scripted fault (status, body), ccxt exception)
    "binance": (
        "BTC/USDT",
        "/api/v3/order$",
        "clientOrderId",
        (503, {"code": -1007, "msg": "Timeout waiting for response from backend server."}),
        ccxt.RequestTimeout,
    ),
    "kraken": (
        "BTC/USD",
        "/0/private/AddOrder",
        "clientOrderId",
        (200, {"error": ["EService:Unavailable"]}),
        ccxt.ExchangeNotAvailable,
    ),
    "coinbase": (
        "BTC/USD",
        "/orders$",
        "client_order_id",
        (429, {"error": "rate_limit_exceeded"}),
        ccxt.RateLimitExceeded,
    ),
}


def control(base: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call a control of the server process."""
    data = json.dumps({"args": list(args), "kwargs": kwargs}).encode() if name != "state" else None
    req = urllib.request.Request(
        f"{base}/__control__/{name}",
        data=data,
        method="POST" if data else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("name", sorted(CASES))
def test_standalone_process_urls_control_and_state(name: str) -> None:
    symbol, path, cid_param, (status, body), exc = CASES[name]
    proc = subprocess.Popen(
        [sys.executable, "-m", f"tests.exchanges.{name}", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["exchange"] == name and info["rest_url"].startswith("http://127.0.0.1:")
        ex = getattr(ccxt, name)(
            {
                "apiKey": info["apiKey"],
                "secret": info["secret"],
                "enableRateLimit": False,
                "options": {
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                },
            }
        )
        rebase_urls(ex, info["rest_url"], info["ws_url"])
        ex.load_markets()
        control(info["rest_url"], "fail_next", path, status, body)
        with pytest.raises(exc):
            ex.create_order(symbol, "limit", "buy", 0.1, 49000, {cid_param: "proc-1"})
        ex.create_order(symbol, "limit", "buy", 0.1, 49000, {cid_param: "proc-1"})
        fill = control(info["rest_url"], "fill", "proc-1", "0.04")["result"]
        state = control(info["rest_url"], "state")
        [order] = state["orders"]
        assert (order["client_order_id"], order["status"], order["filled"]) == (
            "proc-1",
            "partially_filled",
            "0.04",
        )
        assert order["fills"][0]["trade_id"] == fill["trade_id"]
        assert [t["id"] for t in ex.fetch_my_trades(symbol)] == [fill["trade_id"]]
        assert control(info["rest_url"], "drop_websockets")["result"] == 0
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
