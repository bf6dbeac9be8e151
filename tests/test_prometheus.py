"""Prometheus metrics, scraped by a real Prometheus server from a real node; alert rules; dashboard.

A running node (``sniperbot run``, every actor its own process) serves ``/metrics`` at the
address it writes to ``<run dir>/endpoints.json``; a real ``prometheus`` (Debian package, installed
by ``.ci/run``) scrapes it every second and is queried over its HTTP API. ``promtool`` lints the
exposition and checks and unit-tests ``deploy/prometheus/alerts.yml``; every metric the Grafana
dashboard and the alert rules use must be on a running node's ``/metrics``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sniperbot.metrics.catalog import CATALOG
from sniperbot.observability.endpoints import ENDPOINTS_FILE, read_endpoints, update_endpoints
from tests.conftest import FAST_CONFIG, ROOT, RunningNode, eventually

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "sniperbot.json"
# Snapshots every 0.2 s; a long breaker cooldown keeps a tripped breaker open while we look.
# min_uptime_s = 0: the test trips a breaker by kills about a second apart, which the default rule
# (only crash loops count toward intensity) would ride out as independent faults.
CONFIG = (
    FAST_CONFIG
    + "\n[metrics]\ninterval_s = 0.2\n\n[breakers]\ncooldown_s = 120.0\n\n[supervisor]\nmin_uptime_s = 0.0\n"
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package 'prometheus'; .ci/run installs it as root)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


class Prometheus:
    """A real Prometheus server on 127.0.0.1 scraping one target every second."""

    def __init__(self, workdir: Path, target: str) -> None:
        binary = _tool("prometheus")
        workdir.mkdir()
        shutil.copy(RULES, workdir / "alerts.yml")
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [alerts.yml]\n"
            "scrape_configs:\n"
            f"  - job_name: sniperbot\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = open(workdir / "prometheus.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        eventually(lambda: _get(self.url + "/-/ready") is not None, 60, 0.2, what="prometheus ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (values are strings in Prometheus's API)."""
        body = json.loads(_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"))
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def value(self, expr: str) -> float | None:
        """The single value of ``expr``, or None while it has no sample."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def target(self) -> dict[str, Any]:
        """The scrape target's health, last error and last scrape's duration (for failure messages)."""
        body = json.loads(_get(self.url + "/api/v1/targets"))
        (active,) = body["data"]["activeTargets"]
        return {k: active.get(k) for k in ("health", "lastError", "lastScrapeDuration", "lastScrape")}

    def firing(self) -> set[str]:
        """Names of the alerts firing now."""
        body = json.loads(_get(self.url + "/api/v1/alerts"))
        return {a["labels"]["alertname"] for a in body["data"]["alerts"] if a["state"] == "firing"}

    def stop(self) -> None:
        """Stop the server."""
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


@pytest.fixture
def metrics_node(short_tmp: Path) -> Iterator[RunningNode]:
    """A running fast node with metrics every 0.2 s, stopped afterwards."""
    config = short_tmp / "metrics.toml"
    config.write_text(CONFIG)
    running = RunningNode(short_tmp / "run", config)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


def _metrics_url(node: RunningNode) -> str:
    return str(
        eventually(lambda: read_endpoints(node.run_dir).get("metrics"), 60, what="endpoints.json metrics")
    )


def _exposed_names(text: str) -> set[str]:
    """Metric family names on a /metrics page (from its TYPE lines)."""
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def _used_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (histogram series mapped to their family)."""
    names = set(re.findall(r"\bsniperbot_[a-z0-9_]+", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def _kill_until_new_pid(node: RunningNode, actor: str) -> None:
    worker = eventually(lambda: (w := node.workers().get(actor)) and w["state"] == "running" and w, 60)
    os.kill(worker["pid"], signal.SIGKILL)
    # Gone or replaced (after its subtree's last allowed restart, the breaker leaves it down).
    eventually(lambda: node.workers().get(actor, {}).get("pid") != worker["pid"], 60, what=f"{actor} killed")


def test_a_real_prometheus_scrapes_restarts_fills_and_an_open_breaker(
    metrics_node: RunningNode, short_tmp: Path
) -> None:
    """Prometheus scrapes the node's endpoint; kill -9 shows as a restart, fills count, a breaker opens."""
    node = metrics_node
    node.wait_ready()
    url = _metrics_url(node)
    assert url.startswith("http://127.0.0.1:")  # loopback by default
    prom = Prometheus(short_tmp / "prom", url.removeprefix("http://"))
    try:
        eventually(lambda: prom.value('up{job="sniperbot"}') == 1.0, 60, 0.5, what="target up")
        eventually(lambda: (prom.value("sum(sniperbot_fills_total)") or 0) > 0, 60, 0.5, what="fills > 0")
        assert prom.value('sniperbot_actor_up{actor="strategy.fast_btc"}') == 1.0
        assert prom.value('sniperbot_actor_restarts_total{actor="strategy.fast_btc"}') == 0.0
        assert prom.value('sniperbot_breaker_open{scope="venue:sim"}') == 0.0
        assert prom.value('sniperbot_trading_state{state="ACTIVE"}') == 1.0
        eventually(lambda: (prom.value("sum(sniperbot_tick_to_intent_seconds_count)") or 0) > 0, 60, 0.5)

        _kill_until_new_pid(node, "strategy.fast_btc")
        eventually(
            lambda: (prom.value('sniperbot_actor_restarts_total{actor="strategy.fast_btc"}') or 0) >= 1,
            60,
            0.5,
            what="the restart in Prometheus",
        )
        # The venue subtree gives up after 3 restarts in 30 s: its breaker opens.
        for _ in range(4):
            _kill_until_new_pid(node, "executor.sim")
        eventually(lambda: node.admin("status")["breakers"].get("venue:sim") == "open", 60, what="open")
        seen: list[Any] = []

        def breaker_scraped() -> bool:
            seen[:] = [prom.value('sniperbot_breaker_open{scope="venue:sim"}'), prom.target()]
            return seen[0] == 1.0

        try:
            eventually(breaker_scraped, 60, 0.5, what="breaker 1")
        except AssertionError as e:  # which side lags: the scrape, the exporter's page or the node
            page = [line for line in _get(url + "/metrics").splitlines() if "breaker_open" in line]
            status = node.admin("status")["breakers"]
            raise AssertionError(
                f"{e}; Prometheus (value, target): {seen}; /metrics: {page}; node: {status}"
            ) from e
        assert prom.value('sniperbot_breaker_state{scope="venue:sim",state="open"}') == 1.0
        # The alert rule fires in the real server too (no `for`: at the next evaluation).
        eventually(lambda: "SniperbotBreakerOpen" in prom.firing(), 60, 0.5, what="alert firing")
    finally:
        prom.stop()


def test_metrics_page_lints_and_serves_every_dashboard_and_alert_metric(metrics_node: RunningNode) -> None:
    """promtool accepts /metrics; every name there is catalogued; dashboards and rules only use those."""
    promtool = _tool("promtool")
    node = metrics_node
    node.wait_ready()
    url = _metrics_url(node)

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    rules = re.findall(r"expr: (.*)", RULES.read_text())
    used = set().union(*map(_used_names, exprs), *map(_used_names, rules))
    assert len(used) > 30
    missing: set[str] = set()

    def complete_page() -> str | None:
        # Each actor's snapshot arrives on its own clock: wait for a page with all of them.
        text = _get(url + "/metrics")
        exposed = _exposed_names(text)
        missing.clear()
        missing.update(n for n in used if n not in exposed and n.removesuffix("_total") not in exposed)
        return text if not missing else None

    try:
        text = eventually(complete_page, 60, 0.5)
    except AssertionError:
        pytest.fail(f"dashboard/alert metrics not on a running node's /metrics: {sorted(missing)}")
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # One home for names: everything served is in the catalogue.
    catalogued = {n.removesuffix("_total") for n in CATALOG}
    assert {n.removesuffix("_total") for n in _exposed_names(text)} <= catalogued

    # A scrape client that connects and never sends its request blocks neither other scrapes
    # nor the exporter actor's loop (its heartbeats: it is still its first incarnation).
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as hung:
        hung.sendall(b"GET /metrics HTTP/1.1\r\n")  # ... and never the rest
        started = time.monotonic()
        assert "sniperbot_actor_up" in _get(url + "/metrics", timeout=10)
        assert time.monotonic() - started < 5
        time.sleep(2.0)  # several heartbeat intervals (0.2 s) with the client still hung
        metrics_actor = node.workers()["metrics"]
        assert (metrics_actor["state"], metrics_actor["restarts"]) == ("running", 0)

    # endpoints.json is shared: another service's key survives the exporter's kill -9 and
    # restart, which writes its new address (port 0: a new free port) next to it; owner-only.
    update_endpoints(node.run_dir, api="http://127.0.0.1:1")
    _kill_until_new_pid(node, "metrics")
    endpoints = eventually(
        lambda: (e := read_endpoints(node.run_dir)).get("metrics") not in (None, url) and e,
        60,
        what="new url",
    )
    assert endpoints["api"] == "http://127.0.0.1:1"
    # The new exporter serves at once; the node's next snapshot (every interval_s) brings actor_up.
    eventually(lambda: "sniperbot_actor_up" in _get(endpoints["metrics"] + "/metrics"), 30, what="actor_up")
    assert stat.S_IMODE((node.run_dir / ENDPOINTS_FILE).stat().st_mode) == 0o600


def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    """``promtool check rules`` and ``promtool test rules`` on deploy/prometheus/."""
    promtool = _tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    unit = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"], cwd=RULES.parent, capture_output=True, text=True
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    names = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (RULES.parent / "alerts_test.yml").read_text()))
    assert names - {"SniperbotAbsent", "SniperbotActorDown", "SniperbotVenueRateLimited"} <= tested


def test_an_exporter_that_cannot_bind_opens_only_the_ops_breaker_and_trading_goes_on(short_tmp: Path) -> None:
    """A crash-looping operator service (its port is taken) trips ``ops``; nothing else stops."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = short_tmp / "taken.toml"
        config.write_text(FAST_CONFIG + f'\n[metrics]\naddress = "127.0.0.1:{taken.getsockname()[1]}"\n')
        node = RunningNode(short_tmp / "run", config)
        try:
            eventually(lambda: node.admin("status")["breakers"].get("ops") == "open", 60, what="ops open")
            fills = node.admin("status")["fills"]
            eventually(lambda: node.admin("status")["fills"] > fills + 2, 60, what="fills after ops opened")
            status = node.admin("status")
            assert status["trading_state"] == "ACTIVE"
            assert {s: b for s, b in status["breakers"].items() if b != "closed"} == {"ops": "open"}
            assert "[metrics] address" in node.log()
        finally:
            assert node.stop() == 0


def test_metrics_disabled_means_no_exporter_and_trading_as_usual(short_tmp: Path) -> None:
    """``[metrics] enabled = false``: no metrics actor, no endpoint, the node still trades."""
    config = short_tmp / "off.toml"
    config.write_text(FAST_CONFIG + "\n[metrics]\nenabled = false\n")
    node = RunningNode(short_tmp / "run", config)
    try:
        workers = node.wait_ready()
        assert "metrics" not in workers
        eventually(lambda: node.admin("status")["fills"] > 0, 60, what="fills")
        assert "metrics" not in read_endpoints(node.run_dir)
    finally:
        node.stop()


def test_a_ccxt_venue_reports_connection_reconnects_and_rate_limit_use(short_tmp: Path) -> None:
    """A paper node on the local Binance server: FeedStatus and the shared rate limiter reach /metrics."""
    from tests.exchanges.activity import Activity
    from tests.exchanges.binance import demo_server
    from tests.venues_ccxt.nodes import strategy_toml, venue_toml, write_config

    server = demo_server()
    server.start()
    activity = Activity(server, ["BTC/USDT"], hz=20, seed=3).start()
    config = write_config(
        short_tmp / "bx.toml", venue_toml(server), strategy_toml(), "[metrics]\ninterval_s = 0.2\n"
    )
    node = RunningNode(short_tmp / "run", config)
    try:
        node.wait_ready()
        url = _metrics_url(node) + "/metrics"

        def sample(pattern: str) -> float | None:
            found = re.search(rf"^{pattern} (\S+)$", _get(url), re.M)
            return float(found.group(1)) if found else None

        eventually(
            lambda: sample(r'sniperbot_venue_connected\{venue="bx"\}') == 1.0, 60, 0.2, what="connected"
        )
        eventually(
            lambda: (sample(r'sniperbot_venue_rate_limit_used_ratio\{[^}]*venue="bx"[^}]*\}') or 0) > 0,
            60,
            0.2,
            what="rate-limit use",
        )
        before = sample(r'sniperbot_venue_reconnects_total\{venue="bx"\}') or 0.0
        assert server.drop_websockets() > 0
        eventually(lambda: (sample(r'sniperbot_venue_reconnects_total\{venue="bx"\}') or 0) > before, 60, 0.2)
    finally:
        node.stop()
        activity.stop()
        server.stop()
