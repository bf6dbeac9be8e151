"""The HTTP API (``ops/api``) of a real node: token, the admin socket's JSON, control, OpenAPI, the stream.

One node (fast config, chaos enabled) serves the whole module: starting one per test would cost
more than the tests (2 cores, shared). Tests that change the trading state put it back.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sniperbot.observability.endpoints import read_endpoints, remove_endpoints, update_endpoints
from tests.conftest import FAST_CONFIG, ROOT, RunningNode, eventually, sniperbot


class Api:
    """A running node and its API's URL and token."""

    def __init__(self, node: RunningNode) -> None:
        self.node = node
        self.url = eventually(
            lambda: read_endpoints(node.run_dir).get("api"), 60, what="api in endpoints.json"
        )
        self.token = (node.run_dir / "api.token").read_text().strip()

    def call(
        self,
        method: str,
        path: str,
        token: str | None = "",
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, decoded JSON body, headers); ``token=""`` means the right one, None none."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token or self.token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null"), dict(response.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null"), dict(e.headers)

    def get(self, path: str) -> Any:
        status, body, _ = self.call("GET", path)
        assert status == 200, (status, body)
        return body


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with tempfile.TemporaryDirectory(prefix="sb-", dir="/tmp") as d:
        config = Path(d) / "fast.toml"
        config.write_text(FAST_CONFIG)
        node = RunningNode(Path(d) / "run", config, ("--enable-chaos",))
        # Module-scoped: this module stops it, not conftest's per-test cleanup.
        RunningNode.live.discard(node)
        try:
            node.wait_ready()
            yield Api(node)
        finally:
            RunningNode.live.add(node)
            assert node.stop() == 0, node.log()


def _without(value: Any, *keys: str) -> Any:
    """``value`` without the given keys at any depth (what changes between two reads)."""
    if isinstance(value, dict):
        return {k: _without(v, *keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, *keys) for v in value]
    return value


def test_the_api_runs_under_ops_and_publishes_its_url_and_a_private_token(api: Api) -> None:
    workers = api.node.workers()
    assert "api" in workers and workers["api"]["state"] == "running"
    ops = next(c for c in api.node.admin("tree")["children"] if c["id"] == "ops")
    assert ops["breaker"] == "ops"
    assert api.url.startswith("http://127.0.0.1:")
    mode = stat.S_IMODE(os.stat(api.node.run_dir / "api.token").st_mode)
    assert mode == 0o600, oct(mode)
    assert len(api.token) >= 32


def test_every_api_request_needs_the_token(api: Api) -> None:
    for method, path in (
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/halt"),
    ):
        for token in (None, "not-the-token-at-all-0123456789", api.token[:-1]):
            status, body, headers = api.call(method, path, token=token)
            assert status == 401, (method, path, status, body)
            assert body["error"]["code"] == "unauthorized"
            assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    # The refused halt changed nothing.
    assert api.node.admin("status")["trading_state"] == "ACTIVE"
    status, _, _ = api.call("GET", "/api/v1/status", headers={})
    assert status == 200


def test_status_and_tree_are_the_admin_sockets_json(api: Api) -> None:
    tree = api.get("/api/v1/tree")
    admin_tree = api.node.admin("tree")
    # Everything but the counters that move between two reads (uptime, messages handled).
    assert _without(tree, "uptime_s", "handled") == _without(admin_tree, "uptime_s", "handled")
    status = api.get("/api/v1/status")
    admin_status = api.node.admin("status")
    assert set(status) == set(admin_status)
    assert set(status["pnl"]) == set(admin_status["pnl"])
    for key in ("trading_state", "breakers", "actors", "invalid_frames"):
        assert status[key] == admin_status[key], key


def test_halt_reduce_and_resume_change_the_trading_state(api: Api) -> None:
    try:
        status, body, _ = api.call("POST", "/api/v1/halt", body={"reason": "test"})
        assert (status, body) == (200, {"trading_state": "HALTED"})
        assert api.node.admin("status")["trading_state"] == "HALTED"
        status, body, _ = api.call("POST", "/api/v1/reduce")
        assert (status, body) == (200, {"trading_state": "REDUCING"})
        assert api.node.admin("status")["trading_state"] == "REDUCING"
    finally:
        status, body, _ = api.call("POST", "/api/v1/resume", body={"reason": "test over"})
    assert (status, body) == (200, {"trading_state": "ACTIVE"})
    assert api.node.admin("status")["trading_state"] == "ACTIVE"


def test_control_errors_carry_the_admin_code_and_name_the_field(api: Api) -> None:
    status, body, _ = api.call("POST", "/api/v1/breakers/venue:nope/reset")
    assert status == 404 and body["error"]["code"] == "not_found", body
    status, body, _ = api.call("POST", "/api/v1/halt", body={"reason": 5})
    assert status == 400 and "reason" in body["error"]["message"], body
    status, body, _ = api.call(
        "POST", "/api/v1/strategies", body={"id": "x1", "strategy": "sma_cross", "quantity": -1}
    )
    assert (
        status == 400 and body["error"]["code"] == "invalid_spec" and "quantity" in body["error"]["message"]
    )
    status, body, _ = api.call("DELETE", "/api/v1/strategies/nope")
    assert status == 404 and body["error"]["code"] == "not_found", body


def test_strategies_are_added_and_removed(api: Api) -> None:
    status, body, _ = api.call(
        "POST", "/api/v1/strategies", body={"id": "api_s", "symbol": "BTC/USDT", "quantity": 0.01}
    )
    assert status == 200 and body["id"] == "strategy.api_s", body
    assert api.node.workers()["strategy.api_s"]["state"] == "running"
    status, body, _ = api.call("DELETE", "/api/v1/strategies/api_s")
    assert status == 200, body
    assert "strategy.api_s" not in api.node.workers()


def test_orders_fills_positions_equity_breakers_venues(api: Api) -> None:
    fills = eventually(lambda: api.get("/api/v1/fills"), 60, what="fills over the API")
    journal = subprocess.run(
        [sys.executable, "-m", "sniperbot", "journal", "--run-dir", str(api.node.run_dir), "fills", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert journal.returncode == 0, journal.stderr
    journaled = json.loads(journal.stdout)
    # The API's rows are the journal CLI's rows (the latest ones, in journal order).
    start = journaled.index(fills[0])
    assert journaled[start : start + len(fills)] == fills
    assert len(api.get("/api/v1/fills?limit=1")) == 1
    orders = api.get("/api/v1/orders?limit=5")
    assert 1 <= len(orders) <= 5 and {"client_order_id", "status", "filled"} <= set(orders[0])
    assert set(api.get("/api/v1/positions")) == {"positions", "pnl"}
    equity = eventually(lambda: api.get("/api/v1/equity"), 30, what="equity points")
    assert {"t", "net", "realized", "unrealized", "fees"} == set(equity[-1])
    prices = eventually(lambda: api.get("/api/v1/prices"), 30, what="prices")
    assert {"sim:BTC/USDT", "sim:ETH/USDT"} <= set(prices)
    assert api.get("/api/v1/breakers") == api.node.admin("breaker-status")
    (venue,) = api.get("/api/v1/venues")
    assert venue["name"] == "sim" and venue["state"] == "running" and venue["breaker"] == "closed"
    status, body, _ = api.call("GET", "/api/v1/fills?limit=-1")
    assert status == 400 and "limit" in body["error"]["message"]


def test_the_openapi_document_lists_every_endpoint(api: Api) -> None:
    doc = api.get("/api/v1/openapi.json")
    assert doc["openapi"].startswith("3.")
    expected = {
        ("get", "/api/v1/status"),
        ("get", "/api/v1/tree"),
        ("get", "/api/v1/positions"),
        ("get", "/api/v1/orders"),
        ("get", "/api/v1/fills"),
        ("get", "/api/v1/equity"),
        ("get", "/api/v1/breakers"),
        ("get", "/api/v1/venues"),
        ("post", "/api/v1/halt"),
        ("post", "/api/v1/reduce"),
        ("post", "/api/v1/resume"),
        ("post", "/api/v1/strategies"),
        ("delete", "/api/v1/strategies/{id}"),
        ("post", "/api/v1/breakers/{scope}/reset"),
        ("get", "/api/v1/ws"),
    }
    listed = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert expected <= listed, expected - listed
    body = doc["paths"]["/api/v1/strategies"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "AddStrategy" in json.dumps(body)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_foreign_hosts_and_origins_are_refused(api: Api) -> None:
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host.
    status, body, _ = api.call("GET", "/api/v1/status", headers={"Host": "evil.example"})
    assert status == 421, body
    # CORS closed: no allow-origin header for an origin not configured.
    status, _, headers = api.call("GET", "/api/v1/status", headers={"Origin": "http://evil.example"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    # Framing forbidden (the control buttons cannot be clickjacked); no referrer (?token= never leaks).
    assert headers.get("X-Frame-Options") == "DENY" and headers.get("Referrer-Policy") == "no-referrer"


def test_the_stream_needs_the_token_and_pushes_changes(api: Api) -> None:
    ws_url = api.url.replace("http", "ws", 1) + "/api/v1/ws"

    async def refused() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(ws_url + "?token=wrong-token-0123456789") as ws:
                msg = await ws.receive(timeout=30)
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008, msg
            with pytest.raises(aiohttp.WSServerHandshakeError):  # cross-site WebSocket hijacking
                await session.ws_connect(ws_url, headers={"Origin": "http://evil.example"})

    asyncio.run(refused())

    async def stream() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
            await ws.send_json({"token": api.token})  # the token as the first message
            first = await ws.receive_json(timeout=30)
            assert first["type"] == "snapshot", first
            assert {"tree", "status", "venues", "orders", "fills_recent", "equity", "prices"} <= set(
                first["data"]
            )
            before = {w["id"]: w for w in _workers(first["data"]["tree"])}["portfolio"]["incarnation"]
            loop = asyncio.get_running_loop()
            killed = await loop.run_in_executor(
                None,
                lambda: sniperbot(
                    "admin", "--run-dir", str(api.node.run_dir), "chaos", "--actor", "portfolio"
                ),
            )
            assert killed.returncode == 0, killed.stderr
            deadline = loop.time() + 30
            while loop.time() < deadline:
                msg = await ws.receive_json(timeout=30)
                if msg["type"] == "tree":
                    now = {w["id"]: w for w in _workers(msg["data"])}["portfolio"]
                    if now["incarnation"] != before and now["state"] == "running":
                        return
            pytest.fail("no tree with the restarted portfolio was pushed")

    asyncio.run(stream())


def _workers(tree: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for child in tree["children"]:
        if child["kind"] == "worker":
            out.append(child)
        out.extend(_workers(child))
    return out


def test_a_non_loopback_address_needs_tls_or_insecure(tmp_path: Path) -> None:
    config = tmp_path / "open.toml"
    config.write_text(FAST_CONFIG + '\n[api]\naddress = "0.0.0.0"\n')
    result = subprocess.run(
        [sys.executable, "-m", "sniperbot", "run", "--config", str(config), "--run-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2 and "api.address" in result.stderr and "tls_cert" in result.stderr, (
        result.stderr
    )


def test_endpoints_json_merges_services_atomically(tmp_path: Path) -> None:
    """Two services write their own key concurrently: neither loses the other's."""
    import threading

    def write(name: str) -> None:
        for i in range(50):
            update_endpoints(tmp_path, **{name: f"http://127.0.0.1:{i}"})

    threads = [threading.Thread(target=write, args=(n,)) for n in ("api", "metrics")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert read_endpoints(tmp_path) == {"api": "http://127.0.0.1:49", "metrics": "http://127.0.0.1:49"}
    assert stat.S_IMODE(os.stat(tmp_path / "endpoints.json").st_mode) == 0o600
    assert remove_endpoints(tmp_path, "api") == {"metrics": "http://127.0.0.1:49"}


def test_hung_http_clients_delay_neither_the_api_nor_the_node(api: Api) -> None:
    """Clients that send half a request and then nothing hold sockets of the API's thread, nothing else."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(api.url)
    hung = []
    try:
        for _ in range(30):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
            sock.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            hung.append(sock)
        before = api.node.workers()
        for _ in range(5):
            assert set(api.get("/api/v1/status")) >= {"trading_state", "positions"}
        status = api.node.admin("status")
        # Nothing restarted for missed heartbeats (the API actor included) while they hang.
        after = api.node.workers()
        assert {k: w["incarnation"] for k, w in after.items()} == {
            k: w["incarnation"] for k, w in before.items()
        }
        assert status["trading_state"] == "ACTIVE"
    finally:
        for sock in hung:
            sock.close()


def test_api_config_rules() -> None:
    from sniperbot.config import ConfigError, decode_config

    assert decode_config('[api]\naddress = "0.0.0.0"\ninsecure = true\n').api.insecure
    for text, field in (
        ('[api]\naddress = "10.0.0.5"\n', "api.address"),
        ('[api]\naddress = "0.0.0.0"\ntls_cert = "/x.pem"\n', "api.tls_cert"),
        ('[api]\ntoken = "short"\n', "api.token"),
        ('[api]\ntoken = "0123456789abcdef"\ntoken_file = "/t"\n', "api.token"),
        ('[api]\ncors_origins = ["*"]\n', "api.cors_origins"),
        ("[api]\nport = 70000\n", "api.port"),
    ):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            decode_config(text)
    # An inline token reaches the actor only as its SHA-256: never in the child spec.
    from sniperbot.topology import build_tree

    config = decode_config('[api]\ntoken = "a-very-secret-token-42"\n')
    (spec,) = [s for s in build_tree(config).walk() if s.id == "api"]
    assert "a-very-secret-token-42" not in json.dumps(spec.args) and spec.args["settings"]["token_sha256"]
    assert spec.placement == "process"


def test_tls_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    """``tls_cert``/``tls_key``: the server speaks https (what a non-loopback bind needs)."""
    import hashlib
    import logging
    import shutil
    import ssl

    from sniperbot.api.config import ApiSection
    from sniperbot.api.server import ApiServer, LiveData

    openssl = shutil.which("openssl") or pytest.fail("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    token = "a-test-token-0123456789"
    section = ApiSection(address="127.0.0.1", tls_cert=str(cert), tls_key=str(key))
    server = ApiServer(
        section, hashlib.sha256(token.encode()).hexdigest(), tmp_path, LiveData(), logging.getLogger()
    )
    url = server.start()
    try:
        assert url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(cert))
        request = urllib.request.Request(
            url + "/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            assert "/api/v1/halt" in json.loads(response.read())["paths"]
        with pytest.raises(OSError):  # plain http on the TLS port is not served (reset or refused)
            urllib.request.urlopen(url.replace("https", "http", 1) + "/api/v1/openapi.json", timeout=10)
    finally:
        server.stop()
