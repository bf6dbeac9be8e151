"""Storage faults fail closed (issue #14, point 4) against real nodes, a real small tmpfs and real LMDB.

A full disk or an unwritable run dir while the node trades: trading stops fail-closed (the
``global`` breaker held open with a reason naming the file and the problem, in ``admin status``
and ``breaker-status``), an alert goes out through the alerts actor, nothing journaled is lost and
no order reaches the venue without its journal record; once storage is back the node recovers by
itself (cooldown, half-open probe, closed) and trades again. A run dir that cannot be written, or a
journal swapped for an empty one, is refused at start, naming it. (A lost, truncated, garbled or
read-only journal is refused at start in tests/test_lost_state.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sniperbot.journal import Journal
from sniperbot.rundir import RunDir
from sniperbot.venues.sim.ledger import VenueLedger
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot
from tests.ops_servers import WebhookServer, webhook_fixture  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs (CI runs as root)")

QUICK_BREAKERS = "\n[breakers]\ncooldown_s = 0.5\nprobe_s = 1.0\n"


@pytest.fixture
def disk(short_tmp: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs of its own, unmounted afterwards."""
    mount = short_tmp / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _config(short_tmp: Path, webhook: WebhookServer) -> Path:
    path = short_tmp / "storage.toml"
    path.write_text(FAST_CONFIG + QUICK_BREAKERS + f'\n[alerts.webhook]\nurl = "{webhook.url}/hook"\n')
    return path


def _global(running: RunningNode) -> dict:
    return {b["scope"]: b for b in running.admin("breaker-status")}.get("global", {"state": "closed"})


def _journal(run_dir: Path, what: str) -> list[dict]:
    result = sniperbot("journal", "--run-dir", str(run_dir), what, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _fill_up(directory: Path) -> Path:
    """Another program takes every free byte of ``directory``'s file system, in one allocation
    (a writer that keeps writing after the node released its reserve: see sniperbot.node's docstring)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        stat = os.statvfs(directory)
        free = stat.f_bavail * stat.f_frsize
        while free > 0:
            try:
                os.posix_fallocate(fd, 0, free)
                break
            except OSError:
                free -= stat.f_frsize  # the file's own metadata took a block
    finally:
        os.close(fd)
    stat = os.statvfs(directory)
    assert stat.f_bavail * stat.f_frsize < 64 * 1024, stat
    return filler


def _alerted(webhook: WebhookServer, text: str) -> bool:
    return any(text in json.dumps(r["json"]) for r in webhook.requests)


def _read_only(directory: Path) -> None:
    """Make ``directory`` read-only under a running node (a bind mount of itself, remounted ro)."""
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], check=True)


def test_a_full_disk_or_read_only_run_dir_stops_trading_fail_closed_and_recovers_losing_nothing(
    short_tmp: Path, disk: Path, webhook: WebhookServer
) -> None:
    data_file = str(disk / "journal" / "data.mdb")
    running = RunningNode(disk, _config(short_tmp, webhook))  # its log lives beside, on the big disk
    read_only = False
    try:
        running.wait_ready(60)
        eventually(lambda: running.admin("status")["fills"] >= 1, 60, what="trading")
        # 1. Another program fills the disk.
        filler = _fill_up(disk)
        held = eventually(lambda: (g := _global(running))["state"] == "open" and g, 20, what="global open")
        assert held["reason"].startswith("storage: no space for the journal " + data_file), held
        status = running.admin("status")
        assert status["storage"].startswith("no space for the journal " + data_file), status
        eventually(lambda: _alerted(webhook, "storage: no space"), 30, what="alert sent")
        # Trading stopped, the node still serves: no new order while the disk stays full
        # (the strategies keep deciding, 5 bars a second).
        orders = {o["client_order_id"] for o in _journal(disk, "orders")}
        fills = {f["fill_id"] for f in _journal(disk, "fills")}
        assert running.process.poll() is None, running.log()[-3000:]
        assert {o["client_order_id"] for o in _journal(disk, "orders")} == orders
        assert _global(running)["state"] == "open"
        # 2. The operator frees space: the node recovers by itself (cooldown, probe) and trades again.
        filler.unlink()
        eventually(lambda: running.admin("status")["storage"] == "ok", 20, what="storage recovered")
        eventually(lambda: _global(running)["state"] == "closed", 30, what="global closed after its probe")
        count = len(orders)
        eventually(lambda: running.admin("status")["orders"] > count, 60, what="trading again")
        # 3. The run dir turns read-only (a remount after an I/O error): the same, until it is writable.
        _read_only(disk)
        read_only = True
        held = eventually(lambda: (g := _global(running))["state"] == "open" and g, 20, what="global open")
        assert held["reason"].startswith(f"storage: run dir {disk} is not writable: Read-only file system")
        eventually(lambda: _alerted(webhook, "is not writable"), 30, what="alert sent")
        subprocess.run(["umount", str(disk)], check=True)
        read_only = False
        eventually(lambda: _global(running)["state"] == "closed", 30, what="global closed after its probe")
    finally:
        if read_only:
            subprocess.run(["umount", str(disk)], check=False)
        code = running.stop()
    log = running.log()
    assert code == 0, log[-3000:]
    assert sum(1 for line in log.splitlines() if '"storage_fault"' in line) == 2, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    # Nothing journaled was lost, and the venue saw no order without its journal record.
    journaled = {o["client_order_id"] for o in _journal(disk, "orders")}
    assert orders <= journaled
    assert fills <= {f["fill_id"] for f in _journal(disk, "fills")}
    with VenueLedger.open(disk, "sim", readonly=True) as ledger:
        sent = {o.client_order_id for o in ledger.orders()}
    assert sent and sent <= journaled, sorted(sent - journaled)
    # 4. A lost lock file is not lost state (decision: ``lock.mdb`` holds only LMDB's reader table
    # and writer mutex, never a record, and LMDB recreates it): the node starts on every record.
    every_fill = _journal(disk, "fills")
    (disk / "journal" / "lock.mdb").unlink()
    again = sniperbot(
        "run", "--config", str(short_tmp / "storage.toml"), "--run-dir", str(disk), "--duration", "1"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert _journal(disk, "fills")[: len(every_fill)] == every_fill


def test_a_read_only_run_dir_refuses_to_start_naming_it(disk: Path, fast_config: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    result = sniperbot("run", "--config", str(fast_config), "--run-dir", str(disk), "--duration", "5")
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert f"run dir {disk} cannot be written: Read-only file system" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_a_journal_swapped_for_an_empty_one_refuses_to_start(short_tmp: Path, fast_config: Path) -> None:
    run_dir = short_tmp / "run"
    RunDir(run_dir).create()
    RunDir(run_dir).write_marker("x1")  # a node ran here ...
    Journal.open(run_dir).close()  # ... but its journal is a fresh, valid, empty one
    before = (run_dir / "journal" / "data.mdb").read_bytes()
    result = sniperbot("run", "--config", str(fast_config), "--run-dir", str(run_dir), "--duration", "5")
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert f"journal {run_dir / 'journal' / 'data.mdb'} was never written by a node" in result.stderr
    assert "replaced by an empty or foreign journal" in result.stderr and "node.json" in result.stderr
    assert (run_dir / "journal" / "data.mdb").read_bytes() == before  # nothing written over the evidence
