"""Money across whole-node crashes, and the money checker proved able to fail.

A real node is killed whole (``kill -9`` of its process group: the node, the
forkserver and every actor at once) while an order is in flight, then started
again on the same run directory: it must start fail-closed, reconcile the order
with the venue, and keep every money invariant. And ``sniperbot chaos`` run
against a journal damaged on purpose must exit non-zero naming the invariant.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sniperbot.admin import admin_request
from sniperbot.chaos.exchange import read_journal
from sniperbot.chaos.invariants import check_run_dir
from sniperbot.execution.executor import EXPIRED_UNSENT
from sniperbot.journal import Journal
from sniperbot.messages import Fill, OrderUpdate
from tests.conftest import FAST_CONFIG, ROOT, RunningNode, breaker_changes, eventually, sniperbot

# Short breaker cooldown and probe: a node restarted after a crash starts fail-closed
# (global breaker open) and trades again within seconds. Hang detection is slow
# (50 x 0.2 s) so that a venue we SIGSTOP keeps an order in flight until we kill.
MONEY_CONFIG = (
    FAST_CONFIG.replace("heartbeat_liveness = 5", "heartbeat_liveness = 50")
    + "\n[breakers]\ncooldown_s = 1.0\nprobe_s = 2.0\n"
)


def reconciled_orders(log: str) -> int:
    """Unfinished orders the executors reconciled with their venue, summed over a node log."""
    total = 0
    for line in log.splitlines():
        if '"reconcile_start"' in line:
            total += int(json.loads(line)["orders"])
    return total


def call(node: RunningNode, cmd: str, **args: Any) -> Any:
    """One admin request through the node's real admin socket (in-process client: fast polling)."""
    reply = admin_request(node.run_dir, cmd, **args)
    assert reply.ok, reply.error
    return reply.result


class SessionNode(RunningNode):
    """A ``sniperbot run`` in its own process group, so that the whole node can be killed at once."""

    def __init__(self, run_dir: Path, config: Path, log_name: str, extra: tuple[str, ...] = ()) -> None:
        self.run_dir = run_dir
        self.log_path = run_dir.parent / log_name
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "sniperbot", "run"),
                *("--config", str(config), "--run-dir", str(run_dir), *extra),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def kill_all(self) -> None:
        """kill -9 the node and every process it started (same process group)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._log.close()

    def group_gone(self) -> bool:
        """Whether no process of the node's group is left."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False


@pytest.fixture
def money_config(short_tmp: Path) -> Path:
    path = short_tmp / "money.toml"
    path.write_text(MONEY_CONFIG)
    return path


@pytest.fixture
def nodes() -> Iterator[list[SessionNode]]:
    """Nodes a test starts; any left running is killed with its whole group afterwards."""
    started: list[SessionNode] = []
    try:
        yield started
    finally:
        for n in started:
            if n.process.poll() is None:
                n.process.send_signal(signal.SIGTERM)
                try:
                    n.process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(n.process.pid, signal.SIGKILL)
                    n.process.wait(10)
            if not n.group_gone():
                os.killpg(n.process.pid, signal.SIGKILL)


def test_kill_9_of_the_whole_node_with_an_order_in_flight_loses_no_money(
    short_tmp: Path, money_config: Path, nodes: list[SessionNode]
) -> None:
    run = short_tmp / "run"
    first = SessionNode(run, money_config, "first.log")
    nodes.append(first)
    workers = first.wait_ready()
    eventually(lambda: call(first, "status")["fills"] >= 3, 30, what="first fills")
    # Freeze the venue: the executor keeps journaling and sending orders that the venue
    # cannot answer, so an order is in flight (journaled, unanswered) when we kill.
    os.kill(workers["paper.sim"]["pid"], signal.SIGSTOP)
    in_flight = eventually(lambda: check_run_dir(run).unsent, 30, what="an order in flight")
    first.kill_all()
    eventually(first.group_gone, 15, what="every process of the node gone")
    assert first.process.returncode == -signal.SIGKILL

    before = check_run_dir(run)
    assert before.ok, before.problems
    assert set(in_flight) <= set(before.unsent)  # nothing answered them before the kill
    fills_before = before.fills_journaled

    second = SessionNode(run, money_config, "second.log")
    nodes.append(second)
    second.wait_ready()
    # The crash is in the journal: the node starts fail-closed ...
    # From the node's breaker records, not a poll: "open" lasts only the cooldown and the probe, which
    # a loaded machine can spend before the node answers its first admin call.
    global_breaker = next(b for b in call(second, "breaker_status") if b["scope"] == "global")
    assert global_breaker["trips"] >= 1
    assert breaker_changes(second, "global")[0] == ("open", "unclean_shutdown")
    # ... its executor reconciles every order left unfinished before it takes new ones ...
    settled = eventually(
        lambda: (r := check_run_dir(run)).ok and r.settled and r, 30, what="journal == venue after restart"
    )
    assert not set(in_flight) & set(settled.unsent + settled.unreconciled)
    assert reconciled_orders(second.log()) >= len(before.unsent)
    # ... and trades again once the breaker closed.
    eventually(lambda: call(second, "status")["fills"] > fills_before, 40, what="trading after restart")

    assert call(second, "halt")["trading_state"] == "HALTED"
    eventually(lambda: (r := check_run_dir(run)).ok and r.settled, 15, what="settled after halt")
    eventually(
        lambda: check_run_dir(run, call(second, "status")["positions"]).ok, 15, what="positions == fills"
    )
    assert second.stop() == 0
    final = check_run_dir(run)
    assert final.ok and final.settled, final.problems
    assert final.duplicate_orders == [] and final.lost_fills == [] and final.phantom_fills == []
    # Every journaled order reached the venue, except one the restart found too old to send (a slow restart:
    # the executor cancels it, expired_unsent, rather than trade on a stale decision).
    expired = [r for r in read_journal(str(run)) if isinstance(r, OrderUpdate) and r.reason == EXPIRED_UNSENT]
    assert set(before.unsent) >= {r.client_order_id for r in expired}
    assert final.orders_journaled == final.orders_at_venue + len(expired)
    assert final.fills_journaled == final.fills_at_venue
    assert final.positions == final.venue_positions


def test_chaos_exits_non_zero_naming_the_invariant_a_damaged_journal_breaks(
    short_tmp: Path, money_config: Path, nodes: list[SessionNode]
) -> None:
    run = short_tmp / "run"
    first = SessionNode(run, money_config, "first.log", ("--enable-chaos",))
    nodes.append(first)
    first.wait_ready()
    eventually(lambda: call(first, "status")["fills"] >= 2, 30, what="first fills")
    assert first.stop() == 0
    assert check_run_dir(run).ok  # healthy before the damage: the damage is what the checker sees

    # While no node runs, forge a fill the venue never made.
    journal = Journal.open(run, durability="process")
    try:
        real = journal.fills()[0]
        phantom = Fill(
            fill_id=real.fill_id + "-phantom",
            client_order_id=real.client_order_id,
            strategy_id=real.strategy_id,
            venue=real.venue,
            symbol=real.symbol,
            side=real.side,
            quantity=real.quantity,
            price=real.price,
            fee=real.fee,
        )
        journal.append(phantom)
    finally:
        journal.close()

    second = SessionNode(run, money_config, "second.log", ("--enable-chaos",))
    nodes.append(second)
    second.wait_ready()
    eventually(lambda: call(second, "status")["fills"] >= 1, 30, what="trading")
    result = sniperbot(
        "chaos", "--run-dir", str(run), "--duration", "1", "--interval", "1", "--signals", "KILL",
        "--seed", "3", timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "chaos: FAILED" in result.stdout
    problems = [line for line in result.stdout.splitlines() if "problem:" in line]
    assert any("phantom_fills: 1 " in p and phantom.fill_id in p for p in problems), result.stdout
    assert second.stop() == 0
