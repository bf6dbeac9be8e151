"""Sentry: an actor of a real node crashes; the local envelope endpoint gets it scrubbed and tagged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sniperbot
from sniperbot.observability.sentry import FILTERED, scrub_event, scrub_text
from tests.conftest import RunningNode, eventually, optional_import
from tests.conftest import sniperbot as cli
from tests.ops_servers import SentryServer

sentry_sdk, why = optional_import("sentry_sdk")
pytestmark = pytest.mark.skipif(sentry_sdk is None, reason=why)

BOT_TOKEN = "987654321:AAF1xYz_secretTokenPart-0123456789ab"
API_SECRET = "q8Zr2LmN5vB7xC1kJ4hG6fD3sA9pO0iU"  # what an exchange secret looks like


@pytest.fixture
def sentry_server() -> Iterator[SentryServer]:
    server = SentryServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_actor_crash_reaches_sentry_scrubbed_and_tagged(
    short_tmp: Path, fast_config: Path, sentry_server: SentryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", sentry_server.dsn())
    secret_file = short_tmp / "api.secret"
    secret_file.write_text(API_SECRET)
    node = RunningNode(short_tmp / "run", fast_config)
    try:
        node.wait_ready()
        spec = {
            "id": "crashy",
            "actor": "tests.ops_servers.crashy:CrashOnceActor",
            "args": {"venue": "sim", "secret_file": str(secret_file), "bot_token": BOT_TOKEN},
        }
        result = cli("admin", "--run-dir", str(node.run_dir), "start-child", "--sup", "root",
                     "--spec", json.dumps(spec), "--json")  # fmt: skip
        assert result.returncode == 0, result.stderr + result.stdout

        def crash_event() -> dict[str, Any] | None:
            for event in sentry_server.events():
                if event.get("tags", {}).get("actor") == "crashy" and event.get("exception"):
                    return event
            return None

        event = eventually(crash_event, 60, what="the crash event at the local Sentry endpoint")
    finally:
        node.stop()

    request = sentry_server.requests[0]
    assert request["path"] == "/api/42/envelope/"
    assert "sentry_key=publickey0123" in request["headers"]["X-Sentry-Auth"]
    # Nothing of either secret anywhere in what left the process.
    for r in sentry_server.requests:
        assert API_SECRET.encode() not in r["raw"]
        assert BOT_TOKEN.encode() not in r["raw"]
        assert BOT_TOKEN.split(":")[1].encode() not in r["raw"]

    assert event["tags"]["actor"] == "crashy"
    assert event["tags"]["incarnation"] == "1"
    assert event["tags"]["venue"] == "sim"
    assert event["tags"]["version"] == sniperbot.__version__
    assert event["release"] == f"sniperbot@{sniperbot.__version__}"
    (exc,) = event["exception"]["values"]
    assert exc["type"] == "RuntimeError"
    assert f"https://api.telegram.org/bot{FILTERED}/sendMessage" in exc["value"]
    frame = exc["stacktrace"]["frames"][-1]
    assert frame["function"] == "_send"
    assert frame["vars"]["api_secret"] == FILTERED  # the SDK's own scrubber sends this one in clear


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        (
            "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1/getMe",
            "AAHdqTcvCH1vGWJ",
        ),
        ("dsn=https://abcdef0123456789@o1.ingest.sentry.io/5", "abcdef0123456789"),
        ("smtp://alerts:hunter2pass@mail.example.org:587", "hunter2pass"),
        ("https://discord.com/api/webhooks/1180000000000000000/wH-tok3n_abcdefghij", "wH-tok3n"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxIn0"),
        ("{'apiKey': 'AbCdEf12', 'secret': 'zz'}", "AbCdEf12"),
        ("passphrase=correct-horse", "correct-horse"),
        ("key 0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318 used", "4c0883a691"),
        ("blob q8Zr2LmN5vB7xC1kJ4hG6fD3sA9pO0iU+/== end", "q8Zr2LmN5vB7"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----", "MIIEvQIBADANBg"),
    ],
)
def test_scrub_text_removes_secrets_by_pattern(text: str, leaked: str) -> None:
    assert leaked not in scrub_text(text)


def test_scrub_keeps_what_is_not_secret_and_walks_every_field() -> None:
    plain = "order sim-abc123 rejected: price band; /tmp/sb-x1/run/journal/data.mdb; strategy.sma_fast"
    assert scrub_text(plain) == plain
    event = {
        "event_id": "0123456789abcdef0123456789abcdef",
        "message": "token=abcdefgh123",
        "extra": {"listen_key": "L1", "nested": [{"password": "p"}]},
        "breadcrumbs": {"values": [{"message": "GET https://u:pw@host/x", "data": {"webhook_url": "h"}}]},
        "contexts": {"trace": {"trace_id": "0123456789abcdef0123456789abcdef"}, "venue": {"api_key": "k"}},
    }
    out = scrub_event(event)
    assert out["event_id"] == "0123456789abcdef0123456789abcdef"  # ids are not secrets
    assert out["contexts"]["trace"]["trace_id"] == "0123456789abcdef0123456789abcdef"
    assert FILTERED in out["message"]
    assert out["extra"]["listen_key"] == FILTERED and out["extra"]["nested"][0]["password"] == FILTERED
    crumb = out["breadcrumbs"]["values"][0]
    assert "pw" not in crumb["message"] and crumb["data"]["webhook_url"] == FILTERED
    assert out["contexts"]["venue"]["api_key"] == FILTERED


def test_node_reports_a_restart_storm(sentry_server: SentryServer, tmp_path: Path) -> None:
    """What the node calls when a supervisor reaches its restart intensity (in a fresh process)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "from sniperbot.observability import sentry\n"
        f"assert sentry.init_node({sentry_server.dsn()!r})\n"
        "sentry.report_restart_storm('venue.sim', 'feed.sim', 3, 30.0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (event,) = [e for e in sentry_server.events() if "restart storm" in e.get("message", "")]
    assert event["message"] == "restart storm: venue.sim reached 3 restarts in 30 s (feed.sim)"
    assert event["level"] == "error"
    assert event["tags"]["actor"] == "node" and event["tags"]["supervisor"] == "venue.sim"
    assert event["tags"]["offender"] == "feed.sim" and event["tags"]["version"] == sniperbot.__version__
