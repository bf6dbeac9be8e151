"""Restart latency per placement: an actor crashes, until its next incarnation is serving again.

The fault is ``admin chaos --signal CRASH``: the actor raises in its own loop,
which works for every placement (a thread cannot be SIGKILLed). For each of
``process`` and ``thread`` a node runs the fast test config with every actor in
that placement (every supervisor's intensity raised, as in bench/restart.py),
and the strategies, risk guard and portfolio are crashed in rotation. Restart
time: from the admin reply to the supervisor reporting the new incarnation
running (which happens when its Ready arrives), polled every 2 ms. Ray's figure
comes from bench/restart_ray.py (it needs a loopback-only network namespace).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import NodeProcess, emit, fmt_latency, latency_ms, parse_args, short_tmp, wait_for
from bench.restart import FAST_CONFIG
from sniperbot.admin import admin_request

VICTIMS = ("strategy.fast_btc", "strategy.fast_eth", "risk_guard", "portfolio")


def _worker(run_dir: Path, actor: str) -> dict[str, Any]:
    def find(node: dict[str, Any]) -> dict[str, Any] | None:
        if node["id"] == actor:
            return node
        return next((f for c in node["children"] if (f := find(c)) is not None), None)

    found = find(admin_request(run_dir, "tree", timeout_s=5.0).result)
    assert found is not None, actor
    return found


def measure(work: Path, placement: str, crashes_per_actor: int) -> list[int]:
    """Crash each victim in turn; nanoseconds from the fault to the next incarnation running."""
    config = FAST_CONFIG + f'\n[placement]\ndefault = "{placement}"\n'
    node = NodeProcess(work, config, tree="bench.restart:tree", name=placement, duration_s=600)
    samples: list[int] = []
    try:
        node.wait_ready(30)
        time.sleep(0.5)
        for _ in range(crashes_per_actor):
            for actor in VICTIMS:
                before = _worker(node.run_dir, actor)
                t0 = time.perf_counter_ns()
                reply = admin_request(node.run_dir, "chaos", actor=actor, signal="CRASH")
                assert reply.ok, reply.error

                def back(a: str = actor, inc: int = before["incarnation"]) -> bool:
                    now = _worker(node.run_dir, a)
                    return now["incarnation"] > inc and now["state"] == "running"

                wait_for(back, 10, f"{actor} back", interval_s=0.002)
                samples.append(time.perf_counter_ns() - t0)
                time.sleep(0.05)
    finally:
        node.stop()
    return samples


def main() -> int:
    """Measure both placements; print; emit JSON."""
    args = parse_args(__doc__.splitlines()[0])
    per_actor = 3 if args.quick else 10
    figures: dict[str, Any] = {}
    with short_tmp("sb-rsp-") as work:
        for placement in ("process", "thread"):
            stats = latency_ms(measure(work, placement, per_actor))
            print(fmt_latency(f"crash -> serving, placement {placement}", stats, "ms"))
            figures[placement] = stats
    emit("restart_placement", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
