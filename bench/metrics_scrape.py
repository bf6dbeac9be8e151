"""``/metrics`` scrape time with 50 actors: a node with 50 hot-added strategies (57 actors and more).

A real node (fast simulated market) gets 50 strategies through the admin socket
(``add_strategy``, each its own process), then waits until every actor's snapshot is on
``/metrics``; the scrape is timed from this process (HTTP GET over loopback, whole body read)
``--scrapes`` times. Also printed: series count and body size. Prometheus's own default scrape
timeout is 10 s; the target here is p99 < 100 ms (a scrape every second costs the exporter's
process a few percent at most and never touches the trading actors: it runs in the metrics
actor's HTTP thread).
"""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

from bench._common import (
    NodeProcess,
    emit,
    fast_sim_config,
    fmt_latency,
    latency_ms,
    parse_args,
    short_tmp,
    verdict,
    wait_for,
)
from sniperbot.observability.endpoints import read_endpoints

TARGET_P99_MS = 100.0
STRATEGIES = 50


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def main() -> int:
    """Start the node, add the strategies, time the scrapes; print; emit JSON."""

    def options(parser: Any) -> None:
        parser.add_argument("--scrapes", type=int, default=0, help="timed scrapes")

    args = parse_args(__doc__.splitlines()[0], options)
    scrapes = args.scrapes or (50 if args.quick else 200)
    config = fast_sim_config("\n[metrics]\ninterval_s = 1.0\n", log_level='"WARNING"', start_timeout_s="60.0")
    with short_tmp("sb-ms-") as work:
        node = NodeProcess(work, config, duration_s=900)
        try:
            node.wait_ready(120)
            for i in range(STRATEGIES):
                symbol = "BTC/USDT" if i % 2 else "ETH/USDT"
                _add(node, i, symbol)
            url = (
                wait_for(lambda: read_endpoints(node.run_dir).get("metrics"), 60, "endpoints.json")
                + "/metrics"
            )

            def all_actors() -> bytes | None:
                body = _get(url)
                actors = body.count(b"sniperbot_messages_handled_total{")
                return body if actors >= STRATEGIES + 7 else None

            body = wait_for(all_actors, 300, f"{STRATEGIES + 7} actors on /metrics", interval_s=1.0)
            samples: list[int] = []
            for _ in range(scrapes):
                started = time.perf_counter_ns()
                body = _get(url)
                samples.append(time.perf_counter_ns() - started)
            series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
            actors = body.count(b"sniperbot_messages_handled_total{")
        finally:
            code = node.stop()
    stats = latency_ms(samples)
    print(f"/metrics with {actors} actors: {series:,} series, {len(body) / 1024:.0f} KiB, node exit {code}")
    print(fmt_latency(f"scrape ({scrapes} GETs)", stats, unit="ms"))
    ok = stats["p99"] < TARGET_P99_MS
    print(f"target p99 < {TARGET_P99_MS:.0f} ms: {verdict(ok)}")
    emit(
        "metrics_scrape",
        {"actors": actors, "series": series, "bytes": len(body), "scrape_ms": stats, "target_met": ok},
    )
    return 0


def _add(node: NodeProcess, i: int, symbol: str) -> None:
    from sniperbot.admin import admin_request

    reply = admin_request(
        node.run_dir,
        "add_strategy",
        timeout_s=60.0,
        id=f"s{i:02d}",
        strategy="sma_cross",
        symbol=symbol,
        quantity=0.001,
    )
    if not reply.ok:
        raise RuntimeError(f"add_strategy s{i:02d}: {reply.error}")


if __name__ == "__main__":
    sys.exit(main())
