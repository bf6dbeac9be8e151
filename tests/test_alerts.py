"""Alerts: each channel against a local server speaking its real wire format, 429s, the outbox, kill -9.

The channel tests drive the real dispatcher, outbox (LMDB) and channels against servers on
127.0.0.1 (tests/ops_servers). The end-to-end tests run the alerts actor in a real node (added with
``admin start-child``), trigger real events (``admin halt`` / ``resume``) and kill the actor's
process with SIGKILL while a Telegram request is in flight.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sniperbot.alerts.channels import CHANNEL_TYPES
from sniperbot.alerts.config import ALERTS_ACTOR, ALERTS_ACTOR_ID, AlertsConfig
from sniperbot.alerts.dispatcher import Dispatcher
from sniperbot.alerts.outbox import DELIVERED, Outbox
from sniperbot.logs import actor_logger
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot
from tests.ops_servers import BotApiServer, DiscordServer, SmtpServer, WebhookServer

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
CHAT_ID = "4242"
HOOK_ID, HOOK_TOKEN = "1180000000000000000", "wH-tok3n_abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One local server per channel, stopped afterwards."""
    out: dict[str, Any] = {
        "telegram": BotApiServer(BOT_TOKEN).start(),
        "discord": DiscordServer(HOOK_ID, HOOK_TOKEN).start(),
        "webhook": WebhookServer().start(),
        "email": SmtpServer(tmp_path, credentials=("alerts@example.org", "s3cret-pass")).start(),
    }
    try:
        yield out
    finally:
        for server in out.values():
            server.release() if hasattr(server, "release") else None
            server.stop()


def settings(servers: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """An ``[alerts]`` section (as the node passes it to the actor) pointing at the local servers."""
    smtp: SmtpServer = servers["email"]
    section: dict[str, Any] = {
        "telegram": {
            "bot_token": BOT_TOKEN,
            "chat_id": CHAT_ID,
            "api_url": servers["telegram"].url,
            "min_severity": "warning",
        },
        "discord": {"webhook_url": servers["discord"].webhook_url, "min_severity": "warning"},
        "webhook": {"url": servers["webhook"].url + "/hook", "headers": {"X-Auth": "hook-secret-123"}},
        "email": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "ca_file": str(smtp.cert),
            "username": "alerts@example.org",
            "password": "s3cret-pass",
            "sender": "alerts@example.org",
            "to": ["ops@example.org"],
            "min_severity": "critical",
        },
        "daily_summary_utc": "",
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            section[key] = {**section[key], **value}
        else:
            section[key] = value
    return section


class Harness:
    """The real outbox + dispatcher + channels, fed the way the alerts actor feeds them."""

    def __init__(self, directory: Path, section: dict[str, Any]) -> None:
        config = msgspec.convert(section, AlertsConfig)
        channels = [cls(getattr(config, n)) for n, cls in CHANNEL_TYPES.items() if getattr(config, n)]
        self.names = [c.name for c in channels]
        self.outbox = Outbox(directory / "alerts")
        self.dispatcher = Dispatcher(self.outbox, channels, actor_logger("alerts", 1), config.max_age_s)
        self.dispatcher.start()

    def send(self, key: str, severity: str = "critical", title: str = "breaker venue:sim OPEN") -> Any:
        alert = self.outbox.submit(
            key=key,
            kind="breaker",
            severity=severity,
            title=title,
            text="venue.sim escalated",  # type: ignore[arg-type]
            channels=self.names,
            window_s=300,
        )
        if alert is not None:
            self.dispatcher.submit(alert, self.names)
        return alert

    def delivered(self, alert: Any) -> bool:
        return all(self.outbox.outcome(alert.id, n) == DELIVERED for n in self.names)

    def close(self) -> None:
        self.dispatcher.stop()
        self.outbox.close()


@pytest.fixture
def harness_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Harness] = []

    def make(section: dict[str, Any]) -> Harness:
        made.append(Harness(tmp_path, section))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_each_channel_speaks_its_wire_format(servers: dict[str, Any], harness_factory: Any) -> None:
    h = harness_factory(settings(servers))
    alert = h.send("breaker:venue:sim:open:1")
    eventually(lambda: h.delivered(alert), 30, what="the alert delivered to all four channels")

    (tg,) = servers["telegram"].requests
    assert tg["path"] == f"/bot{BOT_TOKEN}/sendMessage"
    assert tg["json"]["chat_id"] == CHAT_ID
    assert tg["json"]["text"].startswith("[CRITICAL] breaker venue:sim OPEN\nvenue.sim escalated")

    (dc,) = servers["discord"].requests
    assert dc["path"] == f"/api/webhooks/{HOOK_ID}/{HOOK_TOKEN}"
    assert dc["json"]["content"].startswith("[CRITICAL] breaker venue:sim OPEN")
    assert dc["json"]["allowed_mentions"] == {"parse": []}  # an alert never pings @everyone

    (wh,) = servers["webhook"].requests
    assert wh["headers"]["Idempotency-Key"] == alert.id
    assert wh["headers"]["X-Auth"] == "hook-secret-123"
    assert wh["json"]["severity"] == "critical" and wh["json"]["key"] == "breaker:venue:sim:open:1"

    (mail,) = servers["email"].messages
    assert mail["tls"] and mail["auth"], "sent only after STARTTLS and AUTH"
    assert mail["to"] == ["ops@example.org"]
    assert "Subject: [sniperbot CRITICAL] breaker venue:sim OPEN" in mail["data"]

    # De-duplication: the same key within the window is not journaled, so not sent, again.
    assert h.send("breaker:venue:sim:open:1") is None
    time.sleep(0.5)
    assert len(servers["telegram"].requests) == 1


def test_429_retry_after_is_obeyed_per_channel(servers: dict[str, Any], harness_factory: Any) -> None:
    servers["telegram"].script = [("429", 2)]  # parameters.retry_after (s)
    servers["discord"].script = [("429", 1.5)]  # JSON retry_after (float s) + Retry-After header
    servers["webhook"].script = [("429", 1)]  # Retry-After header only
    h = harness_factory(settings(servers, email=None))
    alert = h.send("breaker:venue:sim:open:2")
    eventually(lambda: h.delivered(alert), 40, what="delivery after the 429s")
    for name, wait in (("telegram", 2.0), ("discord", 1.5), ("webhook", 1.0)):
        first, second = servers[name].requests
        assert second["t"] - first["t"] >= wait - 0.05, f"{name} retried before retry_after"
        assert h.dispatcher.stats[name]["rate_limited"] == 1


def test_discord_bucket_headers_pause_before_a_429(servers: dict[str, Any], harness_factory: Any) -> None:
    servers["discord"].script = [("exhausted", 1.5)]  # 204 with X-RateLimit-Remaining: 0
    h = harness_factory(
        settings(servers, email=None, telegram=None, webhook=None, discord={"rate_per_s": 100.0, "burst": 10})
    )
    first, second = h.send("k1"), h.send("k2")
    eventually(lambda: h.delivered(first) and h.delivered(second), 30, what="both delivered")
    a, b = servers["discord"].requests
    assert b["t"] - a["t"] >= 1.45, "the second alert waited for X-RateLimit-Reset-After"
    assert h.dispatcher.stats["discord"]["rate_limited"] == 0  # never hit a 429


def test_token_bucket_spaces_a_burst(servers: dict[str, Any], harness_factory: Any) -> None:
    h = harness_factory(
        settings(servers, email=None, discord=None, webhook=None, telegram={"rate_per_s": 2.0, "burst": 1})
    )
    alerts = [h.send(f"k{i}") for i in range(4)]
    eventually(lambda: all(h.delivered(a) for a in alerts), 30, what="four alerts delivered")
    times = [r["t"] for r in servers["telegram"].requests]
    assert [r["json"]["text"] for r in servers["telegram"].requests] == [a.line() for a in alerts], "in order"
    # Burst 1 at 2/s: the 2nd, 3rd and 4th wait 0.5 s each (measured where they arrive, so give or
    # take the requests' own jitter).
    assert times[-1] - times[0] >= 1.4, times


def test_refused_alert_is_marked_and_does_not_block_the_channel(
    servers: dict[str, Any], harness_factory: Any
) -> None:
    servers["telegram"].script = [("status", 400)]
    servers["email"].script = [("status", 550)]
    h = harness_factory(settings(servers, discord=None, webhook=None))
    bad, good = h.send("k-bad"), h.send("k-good")
    eventually(lambda: h.delivered(good), 30, what="the next alert delivered")
    assert h.outbox.outcome(bad.id, "telegram").startswith("refused: HTTP 400")
    assert h.outbox.outcome(bad.id, "email").startswith("refused")
    assert len(servers["telegram"].requests) == 2  # the refused one was not retried


def test_email_is_never_sent_without_tls(
    tmp_path: Path, servers: dict[str, Any], harness_factory: Any
) -> None:
    (tmp_path / "plain").mkdir()
    # A server that does not offer STARTTLS (and would accept mail in plain text).
    plain = SmtpServer(tmp_path / "plain", starttls=False).start()
    try:
        h = harness_factory(
            settings(
                servers, telegram=None, discord=None, webhook=None, email={"port": plain.port, "username": ""}
            )
        )
        alert = h.send("k-plain")
        eventually(
            lambda: h.dispatcher.stats["email"]["retries"] >= 1 or plain.messages, 30, what="an attempt"
        )
        assert plain.messages == [] and h.outbox.outcome(alert.id, "email") is None  # still owed
    finally:
        plain.stop()


# -- the actor in a real node -------------------------------------------------------------------


def start_alerts(node: RunningNode, section: dict[str, Any]) -> dict[str, Any]:
    spec = {"id": ALERTS_ACTOR_ID, "actor": ALERTS_ACTOR, "args": {"settings": section}}
    result = sniperbot(
        "admin",
        "--run-dir",
        str(node.run_dir),
        "start-child",
        "--sup",
        "root",
        "--spec",
        json.dumps(spec),
        "--json",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def texts(server: Any) -> list[str]:
    return [r["json"]["text" if "text" in r["json"] else "content"] for r in server.requests]


def test_kill_9_mid_send_loses_nothing_and_repeats_at_most_the_one_in_flight(
    node: RunningNode, servers: dict[str, Any]
) -> None:
    node.wait_ready()
    started = start_alerts(node, settings(servers, email=None))
    assert started["incarnation"] == 1
    telegram, discord, webhook = servers["telegram"], servers["discord"], servers["webhook"]

    # Alert 1 (critical): trading HALTED. Telegram holds its request open (the send is in flight).
    telegram.script = ["hold"]
    node.admin("halt")
    eventually(telegram.holding.is_set, 30, what="the Telegram request in flight")
    eventually(lambda: len(discord.requests) == 1 and len(webhook.requests) == 1, 30, what="others delivered")

    # Alert 2 (info: ACTIVE): journaled while Telegram is busy; only the webhook wants info.
    node.admin("resume")
    eventually(lambda: len(webhook.requests) == 2, 30, what="the resume alert on the webhook")

    # A hung channel does not hang the actor: it keeps heartbeating (liveness is 1 s here).
    time.sleep(2.0)
    alerts_actor = node.workers()["alerts"]
    assert (
        alerts_actor["state"] == "running" and alerts_actor["incarnation"] == 1 and telegram.holding.is_set()
    )

    os.kill(alerts_actor["pid"], signal.SIGKILL)
    telegram.release()  # the server got it, but the actor died before it could mark it delivered
    eventually(
        lambda: (
            node.workers()["alerts"]["incarnation"] >= 2 and node.workers()["alerts"]["state"] == "running"
        ),
        60,
        what="the alerts actor restarted",
    )

    # The new incarnation resends the one alert Telegram had not acknowledged: the allowed repeat.
    eventually(lambda: len(telegram.requests) == 2, 30, what="the unacknowledged alert resent")
    assert texts(telegram)[0] == texts(telegram)[1] and texts(telegram)[0].startswith(
        "[CRITICAL] trading HALTED"
    )
    # Channels that acknowledged never get an alert again, and the replayed last trading state
    # (the bus's snapshot for the new incarnation) is not news.
    time.sleep(2.0)
    assert len(discord.requests) == 1 and len(webhook.requests) == 2 and len(telegram.requests) == 2
    assert [r["json"]["title"] for r in webhook.requests] == ["trading HALTED", "trading ACTIVE"]

    # Kill again while nothing is in flight: nothing at all is repeated.
    os.kill(node.workers()["alerts"]["pid"], signal.SIGKILL)
    eventually(
        lambda: (
            node.workers()["alerts"]["incarnation"] >= 3 and node.workers()["alerts"]["state"] == "running"
        ),
        60,
        what="the alerts actor restarted again",
    )
    node.admin("halt")
    eventually(lambda: len(telegram.requests) == 3 and len(discord.requests) == 2, 30, what="the next alert")
    time.sleep(1.0)
    assert len(telegram.requests) == 3 and len(discord.requests) == 2 and len(webhook.requests) == 3


def test_node_events_become_alerts(short_tmp: Path, servers: dict[str, Any]) -> None:
    """A real loss-limit stop, a restart storm that opens a venue breaker, and the daily summary."""
    config = short_tmp / "loss.toml"
    # Fees alone breach a 0.01 daily loss limit within the first fills.
    # min_uptime_s = 0: the spaced kills of the feed below stand for a crash loop (every restart counts).
    config.write_text(FAST_CONFIG + "daily_loss_limit = 0.01\n" + "\n[supervisor]\nmin_uptime_s = 0.0\n")
    node = RunningNode(short_tmp / "run", config)
    try:
        node.wait_ready()
        # The last summary was sent long ago (the node was down): today's goes out at start.
        seeded = Outbox(node.run_dir / "alerts")
        seeded.put_state("daily_summary", b"2000-01-01")
        seeded.close()
        webhook = servers["webhook"]
        start_alerts(
            node,
            settings(
                servers,
                email=None,
                restart_storm_count=3,
                restart_storm_window_s=120,
                daily_summary_utc="00:00",
            ),
        )

        def titles() -> list[str]:
            return [r["json"]["title"] for r in webhook.requests]

        eventually(
            lambda: any(t.startswith("daily summary ") for t in titles()), 30, what="the daily summary"
        )
        summary = next(r["json"] for r in webhook.requests if r["json"]["kind"] == "daily_summary")
        assert summary["severity"] == "info" and "net P&L" in summary["text"]

        loss = eventually(
            lambda: next((r["json"] for r in webhook.requests if r["json"]["kind"] == "loss_limit"), None),
            60,
            what="the loss-limit alert",
        )
        assert loss["severity"] == "critical" and loss["title"] == "loss limit hit: trading HALTED"
        assert loss["text"].startswith("daily loss ")
        eventually(
            lambda: any(t.startswith("[CRITICAL] loss limit hit") for t in texts(servers["telegram"])),
            30,
            what="the loss-limit alert on Telegram",
        )

        # Kill the venue's feed until its subtree escalates (rest_for_one 3 in 30 s): breaker open.
        for _ in range(4):
            before = node.workers()["feed.sim"]
            if before["state"] != "running" or before["pid"] is None:
                break
            os.kill(before["pid"], signal.SIGKILL)
            eventually(
                lambda b=before: (
                    (w := node.workers()["feed.sim"])["incarnation"] != b["incarnation"]
                    or w["state"] != "running"
                ),
                30,
                what="the feed restarted or tripped",
            )
        storm = eventually(
            lambda: next((r["json"] for r in webhook.requests if r["json"]["key"] == "restart_storm"), None),
            60,
            what="the restart-storm alert",
        )
        assert storm["severity"] == "warning" and "feed.sim" in storm["text"]
        breaker = eventually(
            lambda: next(
                (r["json"] for r in webhook.requests if r["json"]["title"] == "breaker venue:sim OPEN"), None
            ),
            60,
            what="the breaker-open alert",
        )
        assert breaker["severity"] == "critical" and breaker["kind"] == "restart_storm"
        assert "escalated" in breaker["text"]
    finally:
        node.stop()


def test_venue_outage_recovery_and_fill_alerts_in_a_real_node(
    node: RunningNode, servers: dict[str, Any]
) -> None:
    """The ccxt feed of a local Binance server goes silent (stale), then speaks again (recovered).

    Fills alert too here (``fills = true``), to the webhook only (info).
    """
    from tests.exchanges.binance import demo_server

    exchange = demo_server().start()
    try:
        node.wait_ready()
        start_alerts(node, settings(servers, email=None, venue_grace_s=6.0, fills=True))
        spec = {
            "id": "feed.bin",
            "actor": "sniperbot.venues.ccxt.feed:CcxtFeed",
            "args": {
                "venue": "bin",
                "exchange": "binance",
                "symbols": ["BTC/USDT"],
                "stale_after_s": 2.0,
                "rest_url": exchange.rest_url,
                "ws_url": exchange.ws_url,
                "poll_interval_s": 0.3,
            },
        }
        result = sniperbot(
            "admin", "--run-dir", str(node.run_dir), "start-child", "--sup", "root",
            "--spec", json.dumps(spec), "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        webhook = servers["webhook"]

        def alert(title: str) -> Any:
            return next((r["json"] for r in webhook.requests if r["json"]["title"] == title), None)

        # Connecting at start ("down" until the websocket is up) is not news; nor is a fresh feed.
        time.sleep(8.0)
        assert [r["json"]["title"] for r in webhook.requests if "venue bin" in r["json"]["title"]] == []
        exchange.set_silent(True)
        # Silent: stale, then "down" while the feed's watchdog reconnects; whichever it is when the
        # outage has lasted venue_grace_s is reported, once.
        outage = eventually(
            lambda: alert("venue bin stale") or alert("venue bin disconnected"), 60, what="the outage alert"
        )
        severity = {"venue bin stale": "warning", "venue bin disconnected": "critical"}[outage["title"]]
        assert outage["severity"] == severity and outage["kind"] == "venue"
        head = f"[{severity.upper()}] {outage['title']}"
        eventually(
            lambda: any(t.startswith(head) for t in texts(servers["telegram"])), 30, what="on Telegram"
        )
        exchange.set_silent(False)
        recovered = eventually(lambda: alert("venue bin recovered"), 60, what="the recovered alert")
        assert recovered["severity"] == "info"
        titles = [r["json"]["title"] for r in webhook.requests if "venue bin" in r["json"]["title"]]
        assert titles == [outage["title"], "venue bin recovered"], titles  # one outage, one recovery
        assert not any("recovered" in t for t in texts(servers["telegram"]))  # below its min severity
        # fills = true: the sim venue's fills (the node trades all along) are info alerts.
        fill = next(r["json"] for r in webhook.requests if r["json"]["kind"] == "fill")
        assert fill["severity"] == "info" and fill["title"].startswith(("fill buy ", "fill sell "))
        assert fill["title"].endswith(" on sim") and "strategy fast_" in fill["text"]
        assert not any(t.startswith("[INFO] fill") for t in texts(servers["telegram"]))
    finally:
        exchange.stop()


def test_config_errors_name_the_setting_and_secrets_come_from_files(
    tmp_path: Path, servers: dict[str, Any], harness_factory: Any
) -> None:
    toml = b"""
[telegram]
chat_id = "4242"
min_severity = "urgent"
"""
    with pytest.raises(msgspec.ValidationError, match=r"telegram\.min_severity"):
        msgspec.toml.decode(toml, type=AlertsConfig)
    with pytest.raises(
        msgspec.ValidationError,
        match=r"alerts\.telegram\.bot_token: set it or alerts\.telegram\.bot_token_file",
    ):
        msgspec.convert({"telegram": {"chat_id": "1"}}, AlertsConfig)
    with pytest.raises(msgspec.ValidationError, match="daily_summary_utc"):
        msgspec.convert({"daily_summary_utc": "25:00"}, AlertsConfig)
    assert not AlertsConfig().enabled  # no channel, no alerts actor

    # The bot token in a 0600 file: the section (the actor's args) never holds it.
    token_file = tmp_path / "telegram.token"
    token_file.write_text(BOT_TOKEN + "\n")
    token_file.chmod(0o600)
    section = settings(servers, email=None, discord=None, webhook=None)
    section["telegram"] = {**section["telegram"], "bot_token": "", "bot_token_file": str(token_file)}
    assert BOT_TOKEN not in json.dumps(section)
    h = harness_factory(section)
    alert = h.send("k-file")
    eventually(lambda: h.delivered(alert), 30, what="delivered with the token from the file")
    assert servers["telegram"].requests[0]["path"] == f"/bot{BOT_TOKEN}/sendMessage"


def test_a_configured_alerts_channel_runs_the_actor_under_ops_and_alerts_a_halt(short_tmp: Path) -> None:
    """``[alerts.webhook]`` in the config: ``ops/alerts`` is in the tree; ``admin halt`` reaches the hook."""
    hook = WebhookServer().start()
    try:
        url_file = short_tmp / "hook.url"
        url_file.write_text(f"http://127.0.0.1:{hook.port}/hook\n")
        url_file.chmod(0o600)
        config = short_tmp / "alerts.toml"
        config.write_text(
            FAST_CONFIG + f'\n[alerts.webhook]\nurl_file = "{url_file}"\nmin_severity = "info"\n'
        )
        node = RunningNode(short_tmp / "run", config)
        try:
            workers = node.wait_ready()
            assert "alerts" in workers
            ops = next(c for c in node.admin("tree")["children"] if c["id"] == "ops")
            assert ops["breaker"] == "ops" and "alerts" in [c["id"] for c in ops["children"]]
            # The secret (the hook URL) is read from its file by the actor: never in the child spec.
            spec = sniperbot(
                "admin",
                "--run-dir",
                str(node.run_dir),
                "get-childspec",
                "--sup",
                "ops",
                "--id",
                "alerts",
                "--json",
            )
            assert spec.returncode == 0 and f":{hook.port}/hook" not in spec.stdout, spec.stdout
            node.admin("halt")
            eventually(lambda: any(b"HALTED" in r["raw"] for r in hook.requests), 30, what="halt alert")
        finally:
            assert node.stop() == 0, node.log()
    finally:
        hook.stop()


def test_a_live_venue_that_cannot_reconcile_alerts_critical_then_reconciled(short_tmp: Path) -> None:
    """A live ccxt venue whose exchange does not answer at start: "not reconciled: not trading"
    (critical, once it lasted ``venue_grace_s``); when the exchange answers, "reconciled" (info)."""
    from tests.exchanges.binance import demo_server
    from tests.venues_ccxt.nodes import add_key, venue_toml

    exchange = demo_server()
    exchange.start()
    hook = WebhookServer().start()
    try:
        unlock = add_key(short_tmp / "ks", exchange)
        url_file = short_tmp / "hook.url"
        url_file.write_text(f"http://127.0.0.1:{hook.port}/hook\n")
        config = short_tmp / "recon.toml"
        venue = venue_toml(exchange, mode="live", keys="local")
        # The account's open orders answer 503 until the test lets them through: no reconciliation.
        exchange.fail_next("openOrders", 503, exchange.server_error_body, times=10**6)
        config.write_text(
            "strategies = []\n"
            + FAST_CONFIG[: FAST_CONFIG.index("[[venues]]")]
            + venue
            + "\n[alerts]\nvenue_grace_s = 2.0\n"
            + f'[alerts.webhook]\nurl_file = "{url_file}"\nmin_severity = "info"\n'
        )
        node = RunningNode(short_tmp / "run", config, tuple(unlock))
        try:
            node.wait_ready()
            titles = lambda: [r["json"]["title"] for r in hook.requests]  # noqa: E731
            eventually(lambda: "venue bx not reconciled: not trading" in titles(), 60, what="critical alert")
            critical = next(r["json"] for r in hook.requests if r["json"]["title"].startswith("venue bx not"))
            assert critical["severity"] == "critical", critical
            exchange.clear_faults()
            eventually(lambda: "venue bx reconciled" in titles(), 60, what="reconciled alert")
        finally:
            assert node.stop() == 0, node.log()
    finally:
        hook.stop()
        exchange.stop()
