"""A real node in a real process: it trades, survives kill -9 and hangs, stops cleanly."""

from __future__ import annotations

import calendar
import json
import os
import signal
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot


def _fills(node: RunningNode) -> int:
    return node.admin("status")["fills"]


def test_default_node_trades_and_kill9_of_each_actor_is_recovered(node: RunningNode) -> None:
    before = node.wait_ready()
    assert set(before) == {
        "feed.sim",
        "paper.sim",
        "portfolio",
        "risk_guard",
        "executor.sim",
        "strategy.fast_btc",
        "strategy.fast_eth",
        "metrics",
        "api",
        "archiver",
    }
    eventually(lambda: _fills(node) >= 2, 20, what="first fills")
    for actor_id in before:
        current = node.workers()
        victim = current[actor_id]
        os.kill(victim["pid"], signal.SIGKILL)
        back = eventually(
            lambda a=actor_id, v=victim: (
                (w := node.workers()[a])["state"] == "running"
                and w["incarnation"] == v["incarnation"] + 1
                and w
            ),
            30,
            what=f"{actor_id} restarted",
        )
        assert back["pid"] != victim["pid"]
        assert back["restarts"] == victim["restarts"] + 1
        # rest_for_one in the venue: the paper venue depends on the feed and the executor on
        # the venue, so they restart with what they depend on
        also = {"feed.sim": {"paper.sim", "executor.sim"}, "paper.sim": {"executor.sim"}}.get(actor_id, set())
        others = node.workers()
        for other_id, other in others.items():
            if other_id != actor_id and other_id not in also:  # nobody else was restarted
                assert other["incarnation"] == current[other_id]["incarnation"], other_id
    fills = _fills(node)
    eventually(lambda: _fills(node) > fills, 20, what="trading after the kills")
    assert node.process.poll() is None
    assert node.stop() == 0


def test_hung_actor_is_killed_and_replaced(node: RunningNode) -> None:
    workers = node.wait_ready()
    victim = workers["strategy.fast_btc"]
    os.kill(victim["pid"], signal.SIGSTOP)
    stopped_at = time.monotonic()
    back = eventually(
        lambda: (
            (w := node.workers()["strategy.fast_btc"])["incarnation"] == victim["incarnation"] + 1
            and w["state"] == "running"
            and w
        ),
        30,
        what="hung strategy replaced",
    )
    # Not killed early: heartbeat 0.2 s x liveness 5 = 1 s of silence counts as hung, and the
    # last heartbeat may have left up to one interval before the SIGSTOP. A lower bound only
    # (a loaded machine makes it later, never sooner).
    assert time.monotonic() - stopped_at >= 1.0 - 0.2
    assert back["pid"] != victim["pid"]
    kills = [r for r in _log_records(node) if r.get("event") == "kill"]
    assert [(k["child"], k["incarnation"], k["why"]) for k in kills] == [
        ("strategy.fast_btc", victim["incarnation"], "hung")
    ]
    # The hung incarnation was SIGKILLed, so waking it up resurrects nothing.
    eventually(
        lambda: (
            not Path(f"/proc/{victim['pid']}").exists()
            or "Z" in Path(f"/proc/{victim['pid']}/stat").read_text().split()[2]
        ),
        30,
        what="old incarnation gone",
    )
    assert node.stop() == 0


def _live(pid: int) -> bool:
    stat_file = Path(f"/proc/{pid}/stat")
    try:
        return "Z" not in stat_file.read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False


def _spares(workers: dict[str, dict[str, Any]]) -> set[int]:
    """The live processes of the node's forkserver that run no actor: its spare (placement.py)."""
    pids = {w["pid"] for w in workers.values()}
    some = next(iter(pids))
    forkserver = int(Path(f"/proc/{some}/stat").read_text().rsplit(")", 1)[1].split()[1])
    children = {
        int(pid)
        for task in Path(f"/proc/{forkserver}/task").iterdir()
        for pid in (task / "children").read_text().split()
    }
    return {pid for pid in children - pids if _live(pid)}


def test_a_restart_runs_in_the_spare_process_and_a_new_spare_follows(node: RunningNode) -> None:
    """kill -9 -> the next incarnation runs in the process forked ahead of need; one spare, never more."""
    node.wait_ready()
    (spare,) = eventually(lambda: _spares(node.workers()), 10, what="a spare process")
    victim = node.workers()["risk_guard"]
    os.kill(victim["pid"], signal.SIGKILL)
    back = eventually(
        lambda: (w := node.workers()["risk_guard"])["state"] == "running" and w["incarnation"] == 2 and w,
        30,
        what="risk_guard restarted",
    )
    assert back["pid"] == spare  # no fork on the restart's path
    (second,) = eventually(lambda: _spares(node.workers()), 10, what="the next spare")
    assert second != spare
    eventually(lambda: _fills(node) >= 2, 20, what="fills with the restarted risk guard")
    # A spare that dies (killed by hand) is not handed a launch: the restart forks as before.
    os.kill(second, signal.SIGKILL)
    eventually(lambda: not _live(second), 10, what="the killed spare gone")
    victim = node.workers()["strategy.fast_btc"]
    os.kill(victim["pid"], signal.SIGKILL)
    back = eventually(
        lambda: (
            (w := node.workers()["strategy.fast_btc"])["state"] == "running" and w["incarnation"] == 2 and w
        ),
        30,
        what="strategy restarted without a spare",
    )
    assert back["pid"] != second
    (third,) = eventually(lambda: _spares(node.workers()), 10, what="a spare again")
    # A node killed -9 takes its spare with it, as its actors (watch_node): no process lingers.
    node.process.kill()
    node.process.wait(10)
    eventually(lambda: not _live(third), 10, what="the spare ended with the node")


def test_sigint_and_sigterm_stop_in_reverse_start_order(short_tmp: Path, fast_config: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        running = RunningNode(short_tmp / f"run-{sig}", fast_config, own_group=True)
        running.wait_ready()
        if sig == signal.SIGINT:
            # Ctrl-C in a terminal: every process of the group gets it (actors, the forkserver, the
            # spare process); only the node acts on it, and nobody prints a traceback.
            os.killpg(running.process.pid, sig)
        assert running.stop(sig) == 0
        assert "Traceback" not in running.log()
        stops = [
            json.loads(line)["actor"] for line in running.log().splitlines() if '"event": "stop"' in line
        ]
        assert stops == [
            "archiver",  # ops starts last, stops first (its children in reverse)
            "api",
            "metrics",
            "strategy.fast_eth",
            "strategy.fast_btc",
            "risk_guard",
            "portfolio",
            "executor.sim",
            "paper.sim",
            "feed.sim",
        ]
        assert not (short_tmp / f"run-{sig}" / "admin.sock").exists()


def test_duration_ends_the_run_with_exit_0(short_tmp: Path, fast_config: Path) -> None:
    result = sniperbot(
        "run", "--config", str(fast_config), "--run-dir", str(short_tmp / "r"), "--duration", "3"
    )
    assert result.returncode == 0, result.stderr
    assert '"event": "node_stopped"' in result.stderr


def test_journal_restores_positions_and_pnl_on_restart(short_tmp: Path, fast_config: Path) -> None:
    run_dir = short_tmp / "run"
    first = RunningNode(run_dir, fast_config)
    first.wait_ready()
    eventually(lambda: _fills(first) >= 3, 20, what="fills")
    # The journal can be read while the node runs.
    live = sniperbot("journal", "--run-dir", str(run_dir), "fills", "--json")
    assert live.returncode == 0, live.stderr
    assert len(json.loads(live.stdout)) >= 3
    assert first.stop() == 0

    result = sniperbot("journal", "--run-dir", str(run_dir), "fills", "--json")
    assert result.returncode == 0, result.stderr
    fills = json.loads(result.stdout)
    for fill in fills:
        assert {"symbol", "side", "quantity", "price", "fee", "client_order_id"} <= set(fill)
    expected: dict[str, float] = {}
    for f in fills:
        key = f"{f['venue']}:{f['symbol']}"  # admin status keys positions by venue and symbol
        expected[key] = expected.get(key, 0.0) + (f["quantity"] if f["side"] == "buy" else -f["quantity"])
    fees = sum(f["fee"] for f in fills)

    halted = short_tmp / "halted.toml"  # no new trades, so the restored book is all we see
    halted.write_text(FAST_CONFIG.replace("[risk]\n", '[risk]\ntrading_state = "HALTED"\n'))
    second = RunningNode(run_dir, halted)
    second.wait_ready()
    # Both the portfolio's snapshot and the risk guard's first status (it reports every 0.5 s).
    status = eventually(
        lambda: (s := second.admin("status"))["positions"] and s["trading_state"] != "UNKNOWN" and s,
        20,
        what="restored snapshot and trading state",
    )
    assert status["trading_state"] == "HALTED"
    assert status["fills"] == len(fills)
    assert set(status["positions"]) >= set(expected)
    for key, quantity in expected.items():
        assert abs(status["positions"].get(key, 0.0) - quantity) < 1e-9
    assert abs(status["pnl"]["fees"] - fees) < 1e-6
    assert second.stop() == 0


def test_garbage_on_every_socket_kills_nothing(node: RunningNode) -> None:
    before = node.wait_ready()
    eventually(lambda: _fills(node) >= 1, 20, what="first fill")
    sockets = sorted(p for p in node.run_dir.iterdir() if p.suffix == ".sock")
    names = {p.stem for p in sockets}
    assert {"bus-in", "bus-out", "control", "admin", "inbox-risk_guard", "inbox-executor.sim"} <= names
    assert {"inbox-risk_guard.d", "inbox-executor.sim.d"} <= names  # their direct sockets
    assert {"sub-risk_guard", "sub-executor.sim", "sub-feed.sim"} <= names  # the local bus's
    garbage = [b"\x00\xff garbage", os.urandom(64), b"\x96\xa1x"]
    ctx = zmq.Context()
    try:
        for path in sockets:
            if path.name.endswith(".d.sock") or path.name.startswith("sub-"):  # direct sockets: datagrams
                direct = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                direct.connect(str(path))
                for frame in (*garbage, os.urandom(100_000)):  # the last one above the frame limit
                    direct.send(frame)
                direct.close()
                continue
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not even ZMTP
            raw.connect(str(path))
            raw.sendall(os.urandom(256))
            raw.close()
            # XPUB is a PUB that also shows the subscriptions it receives: the garbage is sent
            # once the proxy's subscriptions (the strategy's trade topic among them) are in.
            kind = zmq.XPUB if path.stem == "bus-in" else zmq.SUB if path.stem == "bus-out" else zmq.DEALER
            sock = ctx.socket(kind)
            # A DEALER queues while it connects; closing with a linger delivers what is queued.
            sock.setsockopt(zmq.LINGER, 30_000)
            sock.connect(f"ipc://{path}")
            if kind == zmq.SUB:
                sock.setsockopt(zmq.SUBSCRIBE, os.urandom(8))
                sock.close(0)
                continue
            if kind == zmq.XPUB:
                eventually(
                    lambda s=sock: s.poll(100) and b"md.sim.trade.BTC/USDT.".startswith(s.recv()[1:]),
                    30,
                    interval_s=0,
                    what="the bus proxy's subscription to BTC trades",
                )
            for frame in garbage:
                if kind == zmq.XPUB:
                    sock.send_multipart([b"md.sim.trade.BTC/USDT.", frame])
                    sock.send_multipart([b"ev.fast_btc.fill", frame, frame])
                    sock.send(b"ev.")
                else:
                    sock.send(frame)
                    sock.send_multipart([frame, frame, frame])
            sock.close()
        admin = ctx.socket(zmq.DEALER)
        admin.connect(f"ipc://{node.run_dir / 'admin.sock'}")
        admin.send(b'{"cmd": "tree", "args": {}, "bogus": 1}')
        assert admin.poll(30_000)
        reply = json.loads(admin.recv())
        assert reply["ok"] is False and reply["error"]["code"] == "invalid_message"
        assert "bogus" in reply["error"]["message"]
        admin.close()
    finally:
        ctx.term()  # returns once every queued frame is delivered (the lingers above)
    # Wait for the garbage to have landed (not a sleep), then check that it killed nothing.
    eventually(
        lambda: (
            {"strategy.fast_btc", "risk_guard", "executor.sim"}
            <= {a for a, w in node.workers().items() if w["invalid_frames"] > 0}
        ),
        30,
        what="garbage counted by the strategy (bus), the risk guard and the executor (inboxes)",
    )
    status = eventually(lambda: (s := node.admin("status"))["invalid_frames"] > 0 and s, 30)
    assert status["invalid_frames"] > 0
    after = node.workers()
    for actor_id, worker in before.items():
        assert after[actor_id]["incarnation"] == worker["incarnation"], actor_id
        assert after[actor_id]["state"] == "running"
    fills = _fills(node)
    eventually(lambda: _fills(node) > fills, 20, what="still trading")
    assert "dropped invalid frame" in node.log()
    assert node.stop() == 0


def test_admin_socket_is_owner_only_and_tree_is_complete(node: RunningNode) -> None:
    node.wait_ready()
    mode = stat.S_IMODE((node.run_dir / "admin.sock").stat().st_mode)
    assert mode == 0o600
    tree = node.admin("tree")
    assert tree["id"] == "root" and tree["kind"] == "supervisor"
    assert [c["id"] for c in tree["children"]] == ["venue.sim", "portfolio", "risk", "strategies", "ops"]
    for worker in node.workers().values():
        assert {"id", "placement", "pid", "state", "restarts", "children", "incarnation"} <= set(worker)
        assert worker["placement"] == "process" and worker["pid"] != node.process.pid
    status = eventually(lambda: (s := node.admin("status"))["trading_state"] != "UNKNOWN" and s, 30)
    assert {"positions", "orders", "fills", "pnl", "trading_state"} <= set(status)
    assert status["trading_state"] == "ACTIVE"
    text = sniperbot("admin", "--run-dir", str(node.run_dir), "tree")
    assert text.returncode == 0 and "risk_guard" in text.stdout


def test_thread_placement_runs_the_same_actors(short_tmp: Path) -> None:
    config = short_tmp / "threads.toml"
    config.write_text(FAST_CONFIG + '\n[placement]\ndefault = "thread"\n')
    running = RunningNode(short_tmp / "run", config)
    try:
        workers = running.wait_ready()
        for worker in workers.values():
            assert worker["placement"] == "thread"
            assert worker["pid"] == running.process.pid
        eventually(lambda: _fills(running) >= 2, 20, what="fills with thread placement")
    finally:
        assert running.stop() == 0


def test_a_second_node_on_the_same_run_dir_is_refused(node: RunningNode) -> None:
    node.wait_ready()
    result = sniperbot("run", "--run-dir", str(node.run_dir), "--duration", "1")
    assert result.returncode == 2
    assert "another node is running" in result.stderr


def test_actors_of_a_frozen_supervisor_stop_themselves(node: RunningNode) -> None:
    """Orphan protection: with the node SIGSTOPped, every actor notices the silence and exits."""
    workers = node.wait_ready()
    eventually(lambda: _fills(node) >= 1, 30, what="first fill")
    os.kill(node.process.pid, signal.SIGSTOP)
    try:
        # heartbeat 0.2 s x liveness 5: actors give up after ~1 s of supervisor silence
        eventually(
            lambda: (
                not any(
                    Path(f"/proc/{w['pid']}").exists()
                    and "Z" not in Path(f"/proc/{w['pid']}/stat").read_text().split()[2]
                    for w in workers.values()
                )
            ),
            60,
            what="every actor of the frozen node exited",
        )
    finally:
        os.kill(node.process.pid, signal.SIGCONT)
        resumed_ns = time.time_ns()  # from here the node restarts its actors, which trade again at once
    # Each one stopped itself for that reason (the node was frozen, not dead: nobody killed them).
    orphaned = {(r["actor"], r["incarnation"]): r for r in _log_records(node) if r.get("event") == "orphaned"}
    assert set(orphaned) == {(a, w["incarnation"]) for a, w in workers.items()}
    # No order was executed after the paper venue found itself orphaned (log time: ms).
    venue_gone_ns = _log_time_ns(orphaned[("paper.sim", workers["paper.sim"]["incarnation"])]["ts"])
    result = sniperbot("journal", "--run-dir", str(node.run_dir), "fills", "--json")
    fills = json.loads(result.stdout)
    late = [f for f in fills if venue_gone_ns + 1_000_000 <= f["ts_ns"] < resumed_ns]
    assert late == [], "no order was executed after the actors were orphaned"
    # Once it runs again the node restarts its actors: nothing was lost.
    back = eventually(
        lambda: (w := node.workers()) and all(x["state"] == "running" for x in w.values()) and w, 60
    )
    assert all(back[a]["incarnation"] > workers[a]["incarnation"] for a in workers)
    assert node.stop() == 0


@pytest.mark.parametrize("first", ["node", "actors"])
def test_a_pause_of_the_whole_node_longer_than_the_liveness_kills_no_actor(
    node: RunningNode, first: str
) -> None:
    """A VM pause (live migration, a starved host) stops the node and its actors together. Once they
    run again, the silence each side saw is its own: nobody is hung, nobody is orphaned.

    Heartbeat 0.2 s x liveness 5 = 1 s; the pause is 2 s. Resuming one side 0.3 s before the other
    makes each side's check run before it can hear the other: ``node`` first, the node judges actors
    that cannot have spoken (without the fix: every one killed as hung); ``actors`` first, each actor
    judges a node that cannot have spoken (without the fix: every one stopped as orphaned)."""
    workers = node.wait_ready()
    actors = [w["pid"] for w in workers.values()]
    node_pid = node.process.pid
    for pid in (node_pid, *actors):
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(2.0)
    finally:
        order = [[node_pid], actors] if first == "node" else [actors, [node_pid]]
        for i, pids in enumerate(order):
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            if i == 0:
                time.sleep(0.3)
    fills = _fills(node)
    eventually(lambda: _fills(node) > fills, 20, what="trading after the pause")
    after = node.workers()
    incarnations = {k: w["incarnation"] for k, w in workers.items()}
    assert {k: w["incarnation"] for k, w in after.items()} == incarnations
    events = [r for r in _log_records(node) if r.get("event") in ("kill", "orphaned")]
    assert events == [], events
    assert any(r.get("event") == "loop_paused" for r in _log_records(node))
    assert node.stop() == 0


def _log_records(node: RunningNode) -> list[dict[str, Any]]:
    """The node's JSON log records (its actors' included: they share its stderr)."""
    records = []
    for line in node.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line that is not a record (e.g. a traceback's)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _log_time_ns(ts: str) -> int:
    """A log record's ``ts`` (``2025-05-20T00:00:00.123Z``, UTC) in ns since the epoch."""
    whole, millis = ts.removesuffix("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(millis) * 10**6
