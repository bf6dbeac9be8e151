"""Lost and damaged state (issue #8, points 1, 3, 7 and 10) against real nodes and real LMDB files.

Every test damages a real run dir the way an operator, a disk or a crash would, then runs
the real ``sniperbot`` CLI and checks what a trader relies on: the node refuses to start
(exit 2, the file and the problem named, how to recover, nothing left behind) instead of
trading on an empty or wrong book; client order ids are never reused; a crash is never
recorded as an orderly stop.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot

# Spaced kills stand for a crash loop in these tests: count every restart (OTP; min_uptime_s = 0).
SLOW_BREAKERS = "\n[breakers]\ncooldown_s = 300.0\nprobe_s = 1.0\n[supervisor]\nmin_uptime_s = 0.0\n"


def _fills(run_dir: Path) -> list[dict]:
    result = sniperbot("journal", "--run-dir", str(run_dir), "fills", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _trade_and_stop(run_dir: Path, config: Path) -> list[dict]:
    """Run a node in ``run_dir`` until it has fills, stop it in order; its fills."""
    running = RunningNode(run_dir, config)
    try:
        running.wait_ready(60)
        eventually(lambda: running.admin("status")["fills"] >= 2, 60, what="fills")
    finally:
        assert running.stop() == 0, running.log()
    return _fills(run_dir)


@pytest.fixture(scope="module")
def traded() -> Iterator[tuple[Path, Path]]:
    """(run dir of a node that traded and stopped in order, its config); copied by each test."""
    with tempfile.TemporaryDirectory(prefix="sb-", dir="/tmp") as d:
        config = Path(d) / "fast.toml"
        config.write_text(FAST_CONFIG)
        _trade_and_stop(Path(d) / "run", config)
        yield Path(d) / "run", config


def _copy(traded: tuple[Path, Path], dest: Path) -> Path:
    run_dir = dest / "run"
    shutil.copytree(traded[0], run_dir, ignore=shutil.ignore_patterns("*.sock"))
    for lock in run_dir.rglob("lock.mdb"):
        lock.unlink()  # reader slots of the template's processes
    return run_dir


def _start(run_dir: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return sniperbot(
        "run", "--config", str(config), "--run-dir", str(run_dir), "--duration", "20", timeout=90
    )


def _assert_nothing_left(run_dir: Path) -> None:
    assert sorted(p.name for p in run_dir.glob("*.sock")) == []
    fd = os.open(run_dir / "node.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if a lock was left held
    finally:
        os.close(fd)


def _assert_refused(result: subprocess.CompletedProcess[str], names: str, problem: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert names in result.stderr and problem in result.stderr, result.stderr[-3000:]
    assert "restore" in result.stderr and "backup or archive" in result.stderr, result.stderr


# -- point 1: lost journal, client order ids --------------------------------------------------


def _listing(directory: Path) -> list[str] | None:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else None


def _truncate_journal(run_dir: Path) -> None:
    os.truncate(run_dir / "journal" / "data.mdb", 0)


def _remove_journal(run_dir: Path) -> None:
    shutil.rmtree(run_dir / "journal")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [(_truncate_journal, "is empty (0 bytes)"), (_remove_journal, "is missing")],
    ids=["truncated-to-0", "rm-rf-journal"],
)
def test_a_lost_journal_in_a_run_dir_that_traded_refuses_to_start(
    traded: tuple[Path, Path], short_tmp: Path, damage: Callable[[Path], None], problem: str
) -> None:
    run_dir = _copy(traded, short_tmp)
    damage(run_dir)
    before = (
        sorted(p.name for p in (run_dir / "journal").glob("*")) if (run_dir / "journal").exists() else None
    )
    result = _start(run_dir, traded[1])
    _assert_refused(result, str(run_dir / "journal"), problem)
    assert "node.json" in result.stderr  # the evidence that it traded before
    _assert_nothing_left(run_dir)
    after = (
        sorted(p.name for p in (run_dir / "journal").glob("*")) if (run_dir / "journal").exists() else None
    )
    assert after == before  # no fresh journal created over the evidence
    if after is not None:
        assert (run_dir / "journal" / "data.mdb").stat().st_size == 0


def test_a_lost_journal_and_marker_with_a_venue_ledger_refuses_to_start(
    traded: tuple[Path, Path], short_tmp: Path
) -> None:
    run_dir = _copy(traded, short_tmp)
    _remove_journal(run_dir)
    (run_dir / "node.json").unlink()
    result = _start(run_dir, traded[1])
    _assert_refused(result, str(run_dir / "journal"), "is missing")
    assert "venue-sim" in result.stderr
    _assert_nothing_left(run_dir)
    assert not (run_dir / "journal").exists()


def test_the_marker_is_written_at_first_start_outside_the_journal(traded: tuple[Path, Path]) -> None:
    marker = traded[0] / "node.json"
    assert marker.stat().st_mode & 0o777 == 0o600
    content = json.loads(marker.read_text())
    assert len(content["run_id"]) == 32 and content["created"].endswith("Z") and content["last_life"]


def test_client_order_ids_are_never_reused_across_node_lives_even_with_every_file_lost(
    traded: tuple[Path, Path], short_tmp: Path
) -> None:
    first = {f["client_order_id"] for f in _fills(traded[0])}
    # Every file lost: a brand-new run dir trades the same strategies on the same seeded market.
    second = {f["client_order_id"] for f in _trade_and_stop(short_tmp / "fresh", traded[1])}
    assert first and second
    assert first.isdisjoint(second), sorted(first & second)
    for cid in first | second:
        strategy, life, seq = cid.split("-")
        assert strategy in ("fast_btc", "fast_eth") and life.isalnum() and seq.isdigit(), cid
        assert len(cid) <= 32, cid


# -- point 3: a crashed node restarts fail-closed ---------------------------------------------


def test_a_node_killed_by_an_exception_exits_71_and_restarts_fail_closed(
    short_tmp: Path, fast_config: Path
) -> None:
    running = RunningNode(short_tmp / "run", fast_config, ("--enable-chaos",))
    try:
        running.wait_ready(60)
        crash = ("chaos", "--actor", "node", "--signal", "CRASH")
        result = sniperbot("admin", "--run-dir", str(running.run_dir), *crash)
        assert result.returncode == 0, result.stderr
        code = running.process.wait(60)
    finally:
        running.stop()
    assert code == 71, running.log()[-3000:]
    assert "node crashed" in running.log() and "NodeCrash" in running.log()
    _assert_nothing_left(running.run_dir)
    again = RunningNode(running.run_dir, fast_config)
    try:
        again.wait_ready(60)
        breakers = {b["scope"]: b for b in again.admin("breaker-status")}
        assert breakers["global"]["state"] in ("open", "half_open"), breakers
        assert breakers["global"]["reason"] == "unclean_shutdown", breakers
    finally:
        assert again.stop() == 0


# -- point 7: every kind of damage, one answer ------------------------------------------------


def _half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _flip_every_page(path: Path) -> None:
    """Flip 8 bytes at the end of every data page (pages 0 and 1 are LMDB's meta pages).

    LMDB fills a page's nodes from its end, so the last bytes of every page in use hold
    a record, a key or a child pointer: the damage always lands on live data.
    """
    with open(path, "r+b") as f:
        size = f.seek(0, 2)
        for offset in range(3 * 4096 - 8, size, 4096):
            f.seek(offset)
            data = f.read(8)
            f.seek(offset)
            f.write(bytes(b ^ 0xFF for b in data))


def _rot_one_record(path: Path) -> None:
    """Bit rot inside one record: LMDB's structure stays intact, only a full check sees it."""
    import lmdb

    env = lmdb.open(str(path.parent), max_dbs=8, lock=False)
    try:
        with env.begin(write=True) as txn:
            log = env.open_db(b"log", txn=txn, create=False)
            key, value = next(iter(txn.cursor(db=log)))
            txn.put(key, bytes([value[0]]) + b"\xc1" + value[2:], db=log)  # 0xc1: never valid msgpack
    finally:
        env.close()


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(256 * 1024))


def _bad_meta(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(16)  # page header, then the meta's magic number
        f.write(b"\0\0\0\0")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_half, "is truncated"),
        (_flip_every_page, ""),
        (_rot_one_record, "cannot be decoded"),
        (_garbage, ""),
        (_bad_meta, ""),
    ],
    ids=["half-truncated", "bytes-flipped", "record-rotten", "garbage", "bad-meta-page"],
)
def test_a_damaged_journal_refuses_to_start_and_to_be_read(
    traded: tuple[Path, Path], short_tmp: Path, damage: Callable[[Path], None], problem: str
) -> None:
    run_dir = _copy(traded, short_tmp)
    damage(run_dir / "journal" / "data.mdb")
    result = _start(run_dir, traded[1])
    _assert_refused(result, str(run_dir / "journal"), problem)
    _assert_nothing_left(run_dir)
    fills = sniperbot("journal", "--run-dir", str(run_dir), "fills")
    _assert_refused(fills, str(run_dir / "journal"), problem)  # exit 2, not SIGBUS (135)


def test_a_read_only_journal_refuses_to_start(traded: tuple[Path, Path], short_tmp: Path) -> None:
    run_dir = _copy(traded, short_tmp)
    journal = run_dir / "journal"
    mounted = False
    if os.geteuid() == 0:  # root ignores file modes: a read-only bind mount is what stops it
        subprocess.run(["mount", "--bind", str(journal), str(journal)], check=True)
        mounted = True
        subprocess.run(["mount", "-o", "remount,ro,bind", str(journal)], check=True)
    else:
        for p in journal.iterdir():
            p.chmod(0o400)
        journal.chmod(0o500)
    try:
        result = _start(run_dir, traded[1])
    finally:
        if mounted:
            subprocess.run(["umount", str(journal)], check=True)
        journal.chmod(0o700)
    _assert_refused(result, str(journal), "cannot open journal")
    _assert_nothing_left(run_dir)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [(_half, "is truncated"), (_rot_one_record, "cannot be decoded")],
    ids=["half", "rot"],
)
def test_a_damaged_venue_ledger_refuses_to_start(
    traded: tuple[Path, Path], short_tmp: Path, damage: Callable[[Path], None], problem: str
) -> None:
    run_dir = _copy(traded, short_tmp)
    damage(run_dir / "venue-sim" / "data.mdb")
    result = _start(run_dir, traded[1])
    _assert_refused(result, str(run_dir / "venue-sim"), problem)
    _assert_nothing_left(run_dir)


# -- point 10: breaker reset, no node (a full disk: tests/test_storage_faults.py) --------------


def test_breaker_reset_restarts_the_tripped_subtree_now(short_tmp: Path) -> None:
    config = short_tmp / "slow.toml"
    config.write_text(FAST_CONFIG + SLOW_BREAKERS)
    running = RunningNode(short_tmp / "run", config, ("--enable-chaos",))
    try:
        running.wait_ready(60)
        for _ in range(4):  # venue.sim allows 3 restarts in 30 s: the 4th trips venue:sim
            pid = eventually(lambda: (w := running.workers()["executor.sim"])["state"] == "running" and w)
            kill = sniperbot("admin", "--run-dir", str(running.run_dir), "chaos", "--actor", "executor.sim")
            assert kill.returncode == 0, kill.stderr
            eventually(lambda p=pid: running.workers().get("executor.sim", {}).get("pid") != p["pid"], 20)
        eventually(lambda: running.admin("status")["breakers"].get("venue:sim") == "open", 20, what="tripped")
        args = ("breaker-reset", "--scope", "venue:sim", "--json")
        result = sniperbot("admin", "--run-dir", str(running.run_dir), *args)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["venue:sim"] == "closed"
        # The cooldown is 300 s: within 30 s the subtree runs again only because the reset restarted it.
        running.wait_ready(30)
        fills = running.admin("status")["fills"]
        eventually(lambda: running.admin("status")["fills"] > fills, 30, what="trading through venue:sim")
    finally:
        assert running.stop() == 0


def test_admin_on_a_run_dir_without_a_node_says_no_node_running(short_tmp: Path, fast_config: Path) -> None:
    running = RunningNode(short_tmp / "run", fast_config)
    try:
        running.wait_ready(60)
    finally:
        running.process.kill()  # SIGKILL: the admin socket file stays behind
        running.stop()
    assert (running.run_dir / "admin.sock").exists()
    result = sniperbot("admin", "--run-dir", str(running.run_dir), "--timeout", "5", "ping")
    assert result.returncode == 3, (result.returncode, result.stderr)
    assert f"no node running in {running.run_dir}" in result.stderr, result.stderr
