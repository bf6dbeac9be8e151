"""Message tracing for benchmarks (``SNIPERBOT_TRACE_DIR``, used by ``bench/tick_to_trade.py --trace``)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from sniperbot.actors.runtime import TRACE_DIR_ENV
from tests.conftest import RunningNode, eventually


def test_a_traced_node_writes_what_each_actor_handled_with_transit_handling_and_cpu_times(
    short_tmp: Path, fast_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace_dir = short_tmp / "trace"
    trace_dir.mkdir()
    monkeypatch.setenv(TRACE_DIR_ENV, str(trace_dir))  # the node's environment, hence its actors'
    node = RunningNode(short_tmp / "run", fast_config)
    try:
        node.wait_ready()
        eventually(lambda: node.admin("status")["orders"] >= 2, 60, what="two orders")
    finally:
        assert node.stop() == 0
    files = {p.name for p in trace_dir.glob("*.json")}
    assert "risk_guard.1.json" in files and "executor.sim.1.json" in files, sorted(files)
    intents = [
        entry
        for entry in msgspec.json.decode((trace_dir / "risk_guard.1.json").read_bytes())
        if entry[3] == "OrderIntent"
    ]
    assert intents, "the risk guard traced no intent"
    received, handled, channel, _, sent, sender, cpu = intents[0]
    assert channel == "inbox" and sender.startswith("strategy.")
    assert 0 < sent <= received and 0 < handled < 5e9
    # CPU time of the handling thread: some, and never more than the wall time it took (a small
    # allowance: the two clocks are read one after the other).
    assert 0 < cpu <= handled + 50_000, (cpu, handled)
