"""Supervision promises of a real node: stale incarnations, hung thread actors, hot-added
strategies across a supervisor restart, an orderly ``admin shutdown`` and ``halt --reducing``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.journal import Journal
from sniperbot.messages import (
    ActorError,
    Envelope,
    Fill,
    Heartbeat,
    Order,
    OrderUpdate,
    Ready,
    encode_envelope,
)
from sniperbot.node import RUNNING_KEY
from sniperbot.rundir import RunDir
from tests.conftest import RunningNode, eventually, sniperbot
from tests.test_money import call

HANG_AFTER_S = 0.2 * 5  # fast-sim.toml: heartbeat_interval_s x heartbeat_liveness


class HangingActor(Actor):
    """Test actor: blocks its own loop once ``hang.<id>.<incarnation>`` appears in the run dir.

    It stays blocked (no heartbeat, no message handled) until ``release.<id>`` appears.
    """

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)

    def on_start(self) -> None:
        """Look for the hang file on the actor's own loop."""
        self.ctx.every(0.05, self._maybe_hang)

    def _maybe_hang(self) -> None:
        run_dir = self.ctx.run_dir
        if (run_dir / f"hang.{self.ctx.actor_id}.{self.ctx.incarnation}").exists():
            while not (run_dir / f"release.{self.ctx.actor_id}").exists():
                time.sleep(0.02)


class CrashingActor(Actor):
    """Test actor: raises in a timer once ``crash.<id>.<incarnation>`` appears; on_stop leaves a mark."""

    def on_start(self) -> None:
        """Look for the crash file on the actor's own loop."""
        self.ctx.every(0.05, self._maybe_crash)

    def _maybe_crash(self) -> None:
        if (self.ctx.run_dir / f"crash.{self.ctx.actor_id}.{self.ctx.incarnation}").exists():
            _ = 1 / 0

    def on_stop(self) -> None:
        """Leave a mark: the test asserts that a crashed incarnation still ran its ``on_stop``."""
        (self.ctx.run_dir / f"stopped.{self.ctx.actor_id}.{self.ctx.incarnation}").touch()


def admin(node: RunningNode, *command: str) -> Any:
    """``sniperbot admin <command...> --json`` through the real CLI; its JSON result."""
    result = sniperbot("admin", "--run-dir", str(node.run_dir), *command, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def worker(node: RunningNode, actor_id: str) -> dict[str, Any]:
    """One worker's entry of ``admin tree`` (in-process admin client)."""
    found: dict[str, Any] = {}

    def walk(entry: dict[str, Any]) -> None:
        if entry["id"] == actor_id:
            found.update(entry)
        for child in entry["children"]:
            walk(child)

    walk(call(node, "tree"))
    return found


def replaced(node: RunningNode, actor_id: str, after: int) -> dict[str, Any] | None:
    """The worker once a newer incarnation than ``after`` is running, else None."""
    w = worker(node, actor_id)
    return w if w.get("state") == "running" and w["incarnation"] > after else None


def test_a_woken_old_incarnation_is_ignored_and_cannot_keep_a_hung_successor_alive(
    node: RunningNode,
) -> None:
    actor_id = "strategy.fast_btc"
    node.wait_ready()
    first = worker(node, actor_id)
    # A hang: the node declares it hung after heartbeat x liveness of silence and replaces it.
    os.kill(first["pid"], signal.SIGSTOP)
    second = eventually(lambda: replaced(node, actor_id, first["incarnation"]), 15, what="hung one replaced")
    with contextlib.suppress(ProcessLookupError):
        os.kill(first["pid"], signal.SIGCONT)  # it was SIGKILLed; if not, it wakes up now

    # The old incarnation speaks again on the control socket, under its old identity.
    ctx = zmq.Context.instance()
    ghost = ctx.socket(zmq.DEALER)
    ghost.setsockopt(zmq.LINGER, 0)
    ghost.setsockopt(zmq.ROUTING_ID, f"{actor_id}#{first['incarnation']}".encode())
    ghost.connect(RunDir(node.run_dir).control)
    stale_before = call(node, "status")["stale_messages"]
    sent = 0

    def say(payload: Any) -> None:
        nonlocal sent
        envelope = Envelope("ctl", actor_id, first["incarnation"], sent, time.time_ns(), payload)
        ghost.send(encode_envelope(envelope))
        sent += 1

    try:
        say(
            Ready(actor_id=actor_id, incarnation=first["incarnation"], pid=first["pid"], ts_ns=time.time_ns())
        )
        # Now the current incarnation hangs too, while the old one keeps heartbeating: the old
        # one's heartbeats must not count, so the node still replaces the hung current one.
        os.kill(second["pid"], signal.SIGSTOP)
        deadline = time.monotonic() + 20
        third = None
        while third is None and time.monotonic() < deadline:
            say(Heartbeat(seq=sent, ts_ns=time.time_ns()))
            time.sleep(0.1)
            third = replaced(node, actor_id, second["incarnation"])
        assert third is not None, "stale heartbeats kept a hung incarnation alive"
        assert sent * 0.1 >= HANG_AFTER_S  # it heartbeated through the whole hang deadline
        stale = eventually(
            lambda: (n := call(node, "status")["stale_messages"] - stale_before) >= sent and n,
            10,
            what="the old incarnation's messages counted as stale",
        )
        assert stale >= sent
        # A crash report is still heard from the incarnation just replaced (it can lose the race with
        # its own exit), never from one further back: the first one's is stale like its heartbeats.
        say(ActorError(error="KeyError at ghost.py:1 in first"))
        late = ctx.socket(zmq.DEALER)
        late.setsockopt(zmq.LINGER, 0)
        late.setsockopt(zmq.ROUTING_ID, f"{actor_id}#{second['incarnation']}".encode())
        late.connect(RunDir(node.run_dir).control)
        report = ActorError(error="ValueError at ghost.py:2 in second")
        envelope = Envelope("ctl", actor_id, second["incarnation"], 0, time.time_ns(), report)
        late.send(encode_envelope(envelope))
        eventually(lambda: worker(node, actor_id)["last_error"] == report.error, 10, what="the late report")
        late.close(0)
        assert call(node, "status")["stale_messages"] - stale_before == sent
    finally:
        ghost.close(0)
    after = worker(node, actor_id)
    assert after["incarnation"] == third["incarnation"] and after["state"] == "running"
    assert after["restarts"] == first["restarts"] + 2  # the two hangs, nothing from the ghost


def test_a_hung_thread_actor_is_abandoned_and_replaced(node: RunningNode) -> None:
    run_dir = node.run_dir
    node.wait_ready()
    spec = {"id": "hanger", "actor": f"{__name__}:HangingActor", "placement": "thread"}
    started = admin(node, "start-child", "--sup", "root", "--spec", json.dumps(spec))
    assert started["pid"] == node.process.pid  # a thread of the node process
    first = eventually(lambda: (w := worker(node, "hanger"))["state"] == "running" and w, 15, what="hanger")
    assert first["placement"] == "thread"
    try:
        (run_dir / f"hang.hanger.{first['incarnation']}").touch()
        # The thread cannot be killed: it is abandoned and a fresh incarnation runs ...
        second = eventually(lambda: replaced(node, "hanger", first["incarnation"]), 15, what="replaced")
        assert (
            second["pid"] == node.process.pid and second["last_exit"] == f"killed by signal {signal.SIGKILL}"
        )
        # ... and keeps heartbeating while the abandoned one is still blocked.
        eventually(
            lambda: (w := worker(node, "hanger"))["uptime_s"] > 3 * HANG_AFTER_S and w,
            15,
            what="the new incarnation stays up past the hang deadline",
        )
        assert worker(node, "hanger")["incarnation"] == second["incarnation"]
        # Released, the abandoned incarnation finds its stop request and ends on its own,
        # without disturbing its successor ...
        (run_dir / "release.hanger").touch()
        time.sleep(2 * HANG_AFTER_S)
        now = worker(node, "hanger")
        assert (now["incarnation"], now["state"]) == (second["incarnation"], "running")
        assert now["restarts"] == 1
    finally:
        (run_dir / "release.hanger").touch()  # never leave a blocked thread in the node
    # ... and the node can exit: no thread of it is left blocked.
    assert node.stop() == 0


@pytest.mark.parametrize("placement", ["thread", "process"])
def test_a_crashed_actor_runs_on_stop_and_admin_tree_names_the_error_in_either_placement(
    node: RunningNode, placement: str
) -> None:
    """A handler that raises ends the incarnation the same way in a thread of the node as in its own
    process: ``on_stop`` runs (it may release what the actor holds), ``admin tree`` shows the error's
    class and place, and the supervisor starts a fresh incarnation."""
    run_dir = node.run_dir
    node.wait_ready()
    actor_id = f"crasher-{placement}"
    spec = {"id": actor_id, "actor": f"{__name__}:CrashingActor", "placement": placement}
    admin(node, "start-child", "--sup", "root", "--spec", json.dumps(spec))
    first = eventually(lambda: (w := worker(node, actor_id))["state"] == "running" and w, 15, what=actor_id)
    assert first["placement"] == placement
    (run_dir / f"crash.{actor_id}.{first['incarnation']}").touch()
    second = eventually(lambda: replaced(node, actor_id, first["incarnation"]), 15, what="replaced")
    assert (run_dir / f"stopped.{actor_id}.{first['incarnation']}").exists(), "on_stop did not run"
    # The crash report may reach the node just after it saw the exit and started the next incarnation.
    error = eventually(lambda: worker(node, actor_id)["last_error"], 5, what="last_error")
    assert error.startswith("ZeroDivisionError at ") and "in _maybe_crash" in error, error
    assert second["restarts"] == first["restarts"] + 1


def test_a_hot_added_strategy_survives_its_supervisors_restart(node: RunningNode) -> None:
    node.wait_ready()
    added = admin(
        node,
        "add-strategy",
        "--id",
        "hot",
        "--strategy",
        "sma_cross",
        "--param",
        "fast=2",
        "--param",
        "slow=4",
    )
    assert added["id"] == "strategy.hot"
    before = eventually(
        lambda: (w := worker(node, "strategy.hot"))["state"] == "running" and w, 15, what="hot"
    )
    assert before["dynamic"] is True

    # Restart the strategies supervisor itself: its children come from its spec and the journal.
    admin(node, "terminate-child", "--sup", "root", "--id", "strategies")
    assert worker(node, "strategy.hot")["state"] == "stopped"  # the whole subtree is down
    admin(node, "restart-child", "--sup", "root", "--id", "strategies")

    after = eventually(
        lambda: (w := worker(node, "strategy.hot"))["state"] == "running" and w, 15, what="hot back"
    )
    assert after["incarnation"] > before["incarnation"] and after["dynamic"] is True
    args = call(node, "get_childspec", sup="strategies", id="strategy.hot")["args"]
    assert (args["strategy"], args["params"]) == ("sma_cross", {"fast": 2, "slow": 4})
    for configured in ("strategy.fast_btc", "strategy.fast_eth"):
        assert worker(node, configured)["state"] == "running"


def test_admin_shutdown_exits_0_and_the_next_start_is_not_fail_closed(
    node: RunningNode, fast_config: Path
) -> None:
    node.wait_ready()
    eventually(lambda: call(node, "status")["fills"] >= 1, 25, what="trading")
    admin(node, "shutdown")
    assert node.process.wait(60) == 0
    journal = Journal.open(node.run_dir, readonly=True)
    try:
        assert journal.get_state(RUNNING_KEY) == b"0"  # an orderly stop is journaled
    finally:
        journal.close()

    again = RunningNode(node.run_dir, fast_config)
    try:
        again.wait_ready()
        breakers = call(again, "breaker_status")
        assert all(b["state"] == "closed" and b["reason"] != "unclean_shutdown" for b in breakers), breakers
        fills = call(again, "status")["fills"]
        eventually(lambda: call(again, "status")["fills"] > fills, 25, what="trading at once")
    finally:
        assert again.stop() == 0


def _positions_before(journal: Journal) -> dict[int, tuple[dict[str, float], Any]]:
    """Each journal record by seq with the positions (sum of fills) just before it."""
    positions: dict[str, float] = {}
    out: dict[int, tuple[dict[str, float], Any]] = {}
    for seq, record in journal.records():
        out[seq] = (dict(positions), record)
        if isinstance(record, Fill):
            signed = record.quantity if record.side == "buy" else -record.quantity
            positions[record.symbol] = positions.get(record.symbol, 0.0) + signed
    return out


def test_halt_reducing_rejects_growing_intents_and_fills_reducing_ones(node: RunningNode) -> None:
    node.wait_ready()
    # REDUCING must start while a position is open, so that the strategy's next exit is a
    # reduction. The state change races with the strategies' own exits: check the journal at
    # the moment REDUCING is in force, and go back to ACTIVE and try again if it was flat.
    # The first try goes through the CLI; later ones through the in-process client, since a
    # loaded machine can spend longer starting the CLI than the strategy holds its position.
    for attempt in range(10):
        eventually(
            lambda: any(q > 0 for q in call(node, "status")["positions"].values()), 30, what="a long position"
        )
        if attempt == 0:
            state = admin(node, "halt", "--reducing", "--reason", "test")["trading_state"]
        else:
            state = call(node, "halt", state="REDUCING", reason="test")["trading_state"]
        assert state == "REDUCING"
        eventually(lambda: call(node, "status")["trading_state"] == "REDUCING", 10, what="REDUCING in force")
        time.sleep(0.5)  # an intent approved just before the change reaches the journal
        journal = Journal.open(node.run_dir, readonly=True)
        try:
            history = _positions_before(journal)
            mark = max(history)
            positions, last = history[mark]
            if isinstance(last, Fill):
                signed = last.quantity if last.side == "buy" else -last.quantity
                positions[last.symbol] = positions.get(last.symbol, 0.0) + signed
            open_at_mark = any(abs(q) > 1e-12 for q in positions.values())
        finally:
            journal.close()
        if open_at_mark:
            break
        call(node, "resume")
    else:
        raise AssertionError("never caught a position open while REDUCING came into force")

    def after_halt() -> tuple[list[tuple[float, Order]], list[OrderUpdate]] | None:
        journal = Journal.open(node.run_dir, readonly=True)
        try:
            later = [(pos, r) for seq, (pos, r) in _positions_before(journal).items() if seq > mark]
        finally:
            journal.close()
        orders = [(pos.get(r.symbol, 0.0), r) for pos, r in later if isinstance(r, Order)]
        rejected = [r for _, r in later if isinstance(r, OrderUpdate) and r.status == "rejected"]
        filled = {r.client_order_id for _, r in later if isinstance(r, Fill)}
        reduced = [o for _, o in orders if o.client_order_id in filled]
        growing = [r for r in rejected if r.reason == "reducing_only"]
        return (orders, rejected) if growing and reduced else None

    orders, rejected = eventually(after_halt, 40, what="a rejected growing intent and a reducing fill")
    for before, order in orders:
        after = before + (order.quantity if order.side == "buy" else -order.quantity)
        assert abs(after) < abs(before) and after * before >= 0, f"{order} grew {before} -> {after}"
    assert {r.reason for r in rejected} == {"reducing_only"}
