"""Tests for the LMDB journal, with real LMDB files and real (spawned) processes.

Child processes are started with the "spawn" context and open the journal
themselves: an LMDB environment must never cross fork().
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import stat
import threading
import time
from pathlib import Path

import lmdb
import msgspec
import pytest

from sniperbot.journal import Journal, JournalError, JournalRecord
from sniperbot.messages import Fill, Order, OrderUpdate

SPAWN = mp.get_context("spawn")
TINY_MAP = 64 * 1024
TIMEOUT_S = 60.0  # a deadline for spawned processes on a loaded machine, not an expected time


def _order(cid: str, strategy: str = "s1", intent_seq: int = 1, ts_ns: int = 0) -> Order:
    return Order(
        client_order_id=cid,
        intent_id=f"{strategy}-{intent_seq}",
        strategy_id=strategy,
        venue="sim",
        symbol="BTC-USD",
        side="buy",
        quantity=0.5,
        order_type="limit",
        limit_price=50_000.0,
        ts_ns=ts_ns,
    )


def _update(cid: str, status: str, strategy: str = "s1", reason: str = "") -> OrderUpdate:
    return OrderUpdate(
        client_order_id=cid,
        strategy_id=strategy,
        venue="sim",
        symbol="BTC-USD",
        status=status,  # type: ignore[arg-type]
        reason=reason,
        ts_ns=2,
    )


def _fill(fid: str, cid: str, strategy: str = "s1") -> Fill:
    return Fill(
        fill_id=fid,
        client_order_id=cid,
        strategy_id=strategy,
        venue="sim",
        symbol="BTC-USD",
        side="buy",
        quantity=0.25,
        price=50_000.0,
        fee=0.1,
        liquidity="maker",
        ts_ns=3,
    )


def _writer_record(name: str, i: int) -> JournalRecord:
    """The i-th record a concurrent writer appends: cycles Order, OrderUpdate, Fill."""
    cid = f"{name}-o{i // 3}"
    kind = i % 3
    if kind == 0:
        return _order(cid, strategy=name, intent_seq=i // 3 + 1)
    if kind == 1:
        return _update(cid, "accepted", strategy=name)
    return _fill(f"{name}-f{i // 3}", cid, strategy=name)


# --------------------------------------------------------------- child processes


def _concurrent_writer(run_dir: str, name: str, n: int, barrier: object, map_size: int, out: str) -> None:
    """Append n records: half, a rendezvous with the other writer, the other half.

    Both halves race the other writer's; the rendezvous makes the overlap certain rather
    than likely (each writer's second half comes after the other's first half).
    """
    journal = Journal.open(Path(run_dir), map_size=map_size)
    barrier.wait(TIMEOUT_S)  # type: ignore[attr-defined]
    seqs = [journal.append(_writer_record(name, i)) for i in range(n // 2)]
    barrier.wait(TIMEOUT_S)  # type: ignore[attr-defined]
    seqs += [journal.append(_writer_record(name, i)) for i in range(n // 2, n)]
    journal.close()
    Path(out).write_text(json.dumps(seqs))


def _live_reader(run_dir: str, created: object, opened: object, expect: int, q: object) -> None:
    created.wait(TIMEOUT_S)  # type: ignore[attr-defined]
    journal = Journal.open(Path(run_dir), readonly=True)
    before = journal.last_seq()
    opened.set()  # type: ignore[attr-defined]
    deadline = time.monotonic() + TIMEOUT_S
    while journal.last_seq() < expect and time.monotonic() < deadline:
        time.sleep(0.002)
    q.put((before, [f.fill_id for f in journal.fills()], journal.counts()))  # type: ignore[attr-defined]
    journal.close()


def _append_until_killed(run_dir: str, report: str, round_no: int, durability: str) -> None:
    """Append Orders (single and in batches of 4) forever; report each returned seq."""
    journal = Journal.open(Path(run_dir), durability=durability)  # type: ignore[arg-type]
    fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    i = 0
    while True:
        if i % 3 == 2:
            cids = [f"r{round_no}-b{i}-{k}" for k in range(4)]
            seqs = journal.append_many([_order(c, intent_seq=i) for c in cids])
        else:
            cids = [f"r{round_no}-s{i}"]
            seqs = [journal.append(_order(cids[0], intent_seq=i))]
        # Reported only after append returned: these seqs are promised durable.
        os.write(fd, "".join(f"{c} {s}\n" for c, s in zip(cids, seqs, strict=True)).encode())
        i += 1


def _die_inside_write_txn(run_dir: str, inside: object) -> None:
    """Write a record in an LMDB write transaction and hang there, holding the write lock."""
    env = lmdb.open(str(Path(run_dir) / "journal"), max_dbs=8)
    with env.begin(write=True) as txn:
        log = env.open_db(b"log", txn=txn)
        txn.put((2).to_bytes(8, "big"), b"never committed", db=log, append=True)
        inside.set()  # type: ignore[attr-defined]
        time.sleep(TIMEOUT_S)


def _drop_cut_line(report: Path) -> None:
    """Truncate ``report`` after its last complete line, so the next writer starts a fresh one."""
    if report.exists():
        data = report.read_bytes()
        os.truncate(report, data.rfind(b"\n") + 1)


def _read_report(report: Path) -> list[tuple[str, int]]:
    text = report.read_text() if report.exists() else ""
    lines = text.split("\n")[:-1]  # a line cut by the kill has no newline: ignore it
    return [(c, int(s)) for c, s in (line.split() for line in lines)]


# ------------------------------------------------------------------ single process


@pytest.mark.parametrize("durability", ["fsync", "process"])
def test_round_trip_all_kinds(tmp_path: Path, durability: str) -> None:
    order, update, fill = _order("c1", ts_ns=1), _update("c1", "accepted"), _fill("f1", "c1")
    with Journal.open(tmp_path, durability=durability) as journal:  # type: ignore[arg-type]
        assert journal.last_seq() == 0
        assert journal.append(order) == 1
        assert journal.append(update) == 2
        assert journal.append(fill) == 3
        assert list(journal.records()) == [(1, order), (2, update), (3, fill)]
    # Reopen: everything came back from disk, decoded to the same tagged types.
    with Journal.open(tmp_path, durability=durability) as journal:  # type: ignore[arg-type]
        assert list(journal.records()) == [(1, order), (2, update), (3, fill)]
        assert journal.orders() == [order]
        assert journal.fills() == [fill]
        assert journal.order("c1") == order
        assert journal.order("nope") is None
        assert journal.order_status("c1") == "accepted"
        assert journal.order_status("nope") is None
        assert journal.has_fill("f1")
        assert not journal.has_fill("f2")
        assert journal.counts() == {"orders": 1, "fills": 1, "updates": 1}
        assert journal.last_seq() == 3
        assert journal.append(_update("c1", "filled")) == 4
    with Journal.open(tmp_path, readonly=True) as journal:
        assert journal.readonly
        assert journal.order_status("c1") == "filled"


def test_sequences_contiguous_and_filtered_reads(tmp_path: Path) -> None:
    with Journal.open(tmp_path, durability="process") as journal:
        # More than one read batch, so records() crosses read transactions.
        n = 2500
        batch = [_order(f"c{i}", intent_seq=i) for i in range(n)]
        assert journal.append_many(batch) == list(range(1, n + 1))
        assert journal.append_many([]) == []
        assert journal.append(_fill("f0", "c0")) == n + 1
        seqs = [seq for seq, _ in journal.records()]
        assert seqs == list(range(1, n + 2))
        assert [seq for seq, _ in journal.records(after_seq=2490)] == list(range(2491, n + 2))
        assert list(journal.records(kinds=(Fill,))) == [(n + 1, _fill("f0", "c0"))]
        assert [s for s, _ in journal.records(after_seq=1000, kinds=(Order,))][:2] == [1001, 1002]
        assert list(journal.records(after_seq=n + 1)) == []
        assert journal.max_intent_seq("s1") == n - 1


def test_duplicate_order_and_fill_are_idempotent(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        assert journal.append(_order("c1", ts_ns=1)) == 1
        assert journal.append(_fill("f1", "c1")) == 2
        # A resend (even re-stamped) returns the original seq and writes nothing.
        assert journal.append(_order("c1", ts_ns=99)) == 1
        assert journal.append(_fill("f1", "c1")) == 2
        assert journal.append_many([_order("c2"), _fill("f1", "c1"), _order("c2")]) == [3, 2, 3]
        assert journal.last_seq() == 3
        assert journal.order("c1") == _order("c1", ts_ns=1)
        assert journal.counts() == {"orders": 2, "fills": 1, "updates": 0}
        # Updates have no id: each one is journaled.
        assert journal.append(_update("c1", "accepted")) == 4
        assert journal.append(_update("c1", "accepted")) == 5
        assert journal.counts() == {"orders": 2, "fills": 1, "updates": 2}


def test_status_index_open_orders_and_intent_seq(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append_many(
            [
                _order("a", "mm-1", 1),
                _order("b", "mm-1", 7),
                _order("c", "mm-1", 3),
                _order("d", "trend", 2),
                _order("e", "trend", 5),
                _order("x", "mm", 40),  # strategy "mm" is not "mm-1"
            ]
        )
        journal.append(_update("a", "accepted"))
        journal.append(_update("b", "filled"))
        journal.append(_update("b", "accepted"))  # late, out of order: b stays filled
        journal.append(_update("c", "cancelled"))
        journal.append(_update("d", "rejected", reason="venue said no"))
        journal.append(_update("risk-1", "rejected", reason="max position"))  # no Order
        assert journal.order_status("b") == "filled"
        assert journal.order_status("risk-1") == "rejected"
        assert [o.client_order_id for o in journal.open_orders()] == ["a", "e", "x"]
        assert journal.max_intent_seq("mm-1") == 7
        assert journal.max_intent_seq("trend") == 5
        assert journal.max_intent_seq("mm") == 40
        assert journal.max_intent_seq("unknown") == 0
        # An intent_id not of the form f"{strategy_id}-{intent_seq}" does not count.
        journal.append(msgspec.structs.replace(_order("y", "odd", 1), intent_id="hash-abc"))
        assert journal.max_intent_seq("odd") == 0


def test_invalid_records_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append(_order("c1"))
        # msgspec does not validate on construction; the journal must not store
        # what it could never read back.
        with pytest.raises(JournalError, match="invalid OrderUpdate"):
            journal.append_many([_order("c2"), _update("c1", "bogus")])
        with pytest.raises(JournalError, match="client_order_id"):
            journal.append(_order(""))
        with pytest.raises(TypeError):
            journal.append("not a record")  # type: ignore[arg-type]
        assert journal.last_seq() == 1
        assert journal.order("c2") is None


def test_open_twice_in_one_process_raises(tmp_path: Path) -> None:
    run = tmp_path / "run"
    journal = Journal.open(run)
    with pytest.raises(JournalError, match="already open in this process"):
        Journal.open(run)
    with pytest.raises(JournalError, match="already open in this process"):
        Journal.open(tmp_path / "run" / ".." / "run", readonly=True)
    (tmp_path / "link").symlink_to(run)
    with pytest.raises(JournalError, match="already open in this process"):
        Journal.open(tmp_path / "link")
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        journal.last_seq()
    with Journal.open(run) as again:  # released by close()
        assert again.last_seq() == 0


def test_readonly_missing_journal_raises_naming_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    with pytest.raises(JournalError, match=str(missing / "journal")):
        Journal.open(missing, readonly=True)
    assert not missing.exists()  # a reader creates nothing


def test_readonly_refuses_writes(tmp_path: Path) -> None:
    Journal.open(tmp_path).close()
    with Journal.open(tmp_path, readonly=True) as journal, pytest.raises(JournalError):
        journal.append(_order("c1"))


def test_files_are_private(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run") as journal:
        journal.append(_order("c1"))
        path = journal.path
    assert path == tmp_path / "run" / "journal"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for name in ("data.mdb", "lock.mdb"):
        assert stat.S_IMODE((path / name).stat().st_mode) == 0o600


def test_map_full_grows_and_retries(tmp_path: Path) -> None:
    records = [_order(f"c{i}", intent_seq=i) for i in range(3000)]
    with Journal.open(tmp_path, durability="process", map_size=TINY_MAP) as journal:
        for r in records[:1000]:
            journal.append(r)
        # A single transaction larger than the whole initial map also fits.
        journal.append_many(records[1000:])
        assert journal.last_seq() == 3000
    data = tmp_path / "journal" / "data.mdb"
    assert data.stat().st_size > 4 * TINY_MAP
    with Journal.open(tmp_path, map_size=TINY_MAP) as journal:
        assert [r for _, r in journal.records()] == records
        assert journal.append(_fill("f", "c0")) == 3001


def test_undecodable_record_raises_naming_seq(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append(_order("c1"))
    env = lmdb.open(str(tmp_path / "journal"), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put((2).to_bytes(8, "big"), b"\xc1 not msgpack", db=env.open_db(b"log", txn=txn))
    env.close()
    with Journal.open(tmp_path) as journal, pytest.raises(JournalError, match="seq 2"):
        list(journal.records())


def test_gap_in_sequence_refused_at_open(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append(_order("c1"))
    env = lmdb.open(str(tmp_path / "journal"), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put((5).to_bytes(8, "big"), b"", db=env.open_db(b"log", txn=txn))
    env.close()
    with pytest.raises(JournalError, match="not contiguous"):
        Journal.open(tmp_path)


def test_forked_child_cannot_use_or_reopen(tmp_path: Path) -> None:
    # The one deliberate fork with an open journal: the child must touch no LMDB.
    journal = Journal.open(tmp_path)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            journal.last_seq()
            code = 1
        except JournalError:
            pass
        try:
            Journal.open(tmp_path)
            code = 2
        except JournalError as e:
            code = code or (0 if "fork" in str(e) else 3)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert journal.append(_order("c1")) == 1
    journal.close()


# ------------------------------------------------------------------ real processes


@pytest.mark.parametrize("map_size", [None, TINY_MAP], ids=["default-map", "tiny-map"])
def test_two_writer_processes(tmp_path: Path, map_size: int | None) -> None:
    n = 500
    barrier = SPAWN.Barrier(2)
    outs = {name: tmp_path / f"{name}.json" for name in ("w1", "w2")}
    procs = [
        SPAWN.Process(
            target=_concurrent_writer,
            args=(str(tmp_path), name, n, barrier, map_size or 16 * 1024**3, str(out)),
        )
        for name, out in outs.items()
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(TIMEOUT_S)
        assert p.exitcode == 0
    with Journal.open(tmp_path, readonly=True) as journal:
        records = dict(journal.records())
        assert list(records) == list(range(1, 2 * n + 1))
        for name, out in outs.items():
            seqs = json.loads(out.read_text())
            assert seqs == sorted(seqs) and len(set(seqs)) == n
            for i, seq in enumerate(seqs):
                assert records[seq] == _writer_record(name, i)
        expected = [_writer_record(w, i) for w in outs for i in range(n)]
        assert journal.counts() == {
            "orders": sum(isinstance(r, Order) for r in expected),
            "fills": sum(isinstance(r, Fill) for r in expected),
            "updates": sum(isinstance(r, OrderUpdate) for r in expected),
        }
        # Both writers' seqs interleave (certain, by the rendezvous): the appends really overlapped.
        for out in outs.values():
            seqs = json.loads(out.read_text())
            assert seqs != list(range(1, n + 1)) and seqs != list(range(n + 1, 2 * n + 1))


def test_reader_process_sees_new_records_without_reopening(tmp_path: Path) -> None:
    created, opened, q = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    n = 50
    reader = SPAWN.Process(target=_live_reader, args=(str(tmp_path), created, opened, n + 1, q))
    reader.start()  # before this process opens the journal
    with Journal.open(tmp_path) as journal:
        journal.append(_order("c1"))
        created.set()
        assert opened.wait(TIMEOUT_S)
        for i in range(n):
            journal.append(_fill(f"f{i}", "c1"))
        before, fill_ids, counts = q.get(timeout=TIMEOUT_S)
    reader.join(TIMEOUT_S)
    assert reader.exitcode == 0
    assert before == 1
    assert fill_ids == [f"f{i}" for i in range(n)]
    assert counts == {"orders": 1, "fills": n, "updates": 0}


def _append_within(journal: Journal, record: JournalRecord, timeout: float) -> int:
    """Append from a daemon thread so a deadlock fails the test instead of hanging it."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(journal.append(record)), daemon=True)
    thread.start()
    thread.join(timeout)
    assert result, "append blocked: the killed writer's lock was not recovered"
    return result[0]


def test_kill_9_loses_no_returned_record(tmp_path: Path) -> None:
    rng = random.Random(20240607)
    report = tmp_path / "report.txt"
    for round_no, durability in enumerate(["fsync", "process", "fsync", "process"]):
        _drop_cut_line(report)  # the last round's writer may have died mid-line
        start = len(_read_report(report))
        writer = SPAWN.Process(
            target=_append_until_killed, args=(str(tmp_path), str(report), round_no, durability)
        )
        writer.start()
        deadline = time.monotonic() + TIMEOUT_S
        while len(_read_report(report)) < start + rng.randint(20, 150):
            assert time.monotonic() < deadline and writer.is_alive()
            time.sleep(0.001)
        # Held open across the kill: the next append must recover the write lock
        # the writer most likely died holding (it spends its time in commit).
        watcher = Journal.open(tmp_path)
        time.sleep(rng.random() * 0.005)
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(TIMEOUT_S)
        assert writer.exitcode == -signal.SIGKILL
        seq = _append_within(watcher, _order(f"after-kill-{round_no}"), 5.0)
        watcher.close()

        with Journal.open(tmp_path) as journal:
            records = list(journal.records())  # every record decodes, or this raises
            assert [s for s, _ in records] == list(range(1, journal.last_seq() + 1))
            assert records[-1] == (seq, _order(f"after-kill-{round_no}"))
            by_seq = dict(records)
            reported = _read_report(report)
            assert len(reported) > start
            for cid, s in reported:
                record = by_seq[s]
                assert isinstance(record, Order) and record.client_order_id == cid
            # append_many is all or nothing: every batch is complete or absent.
            batches: dict[str, int] = {}
            for _, r in records:
                if isinstance(r, Order) and "-b" in r.client_order_id:
                    prefix = r.client_order_id.rsplit("-", 1)[0]
                    batches[prefix] = batches.get(prefix, 0) + 1
            assert batches and set(batches.values()) == {4}
            assert journal.counts()["orders"] == len(records)


def test_writer_killed_inside_transaction(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append(_order("c1"))
        inside = SPAWN.Event()
        child = SPAWN.Process(target=_die_inside_write_txn, args=(str(tmp_path), inside))
        child.start()
        assert inside.wait(TIMEOUT_S)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(TIMEOUT_S)
        # LMDB's robust mutex hands the dead writer's lock to the next writer,
        # and its uncommitted page is gone.
        assert _append_within(journal, _fill("f1", "c1"), 5.0) == 2
        assert list(journal.records()) == [(1, _order("c1")), (2, _fill("f1", "c1"))]


def test_node_state_survives_reopen_and_is_listed_by_prefix(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    journal.put_state("breaker/global", b"open")
    journal.put_state("breaker/venue:sim", b"closed")
    journal.put_state("spec/strategies/a", b"{}")
    journal.put_state("spec/strategies/b", b"{}")
    journal.put_state("spec/strategies/b", None)
    # Several in one transaction (the sniper's live state and a finished snipe): set and delete together.
    journal.put_states({"spec/strategies/c": b"{}", "spec/strategies/a": None, "spec/strategies/a2": b"{}"})
    with pytest.raises(JournalError, match="state key must be"):
        journal.put_states({"spec/strategies/d": b"{}", "": b"bad key"})  # all or nothing
    journal.close()
    reopened = Journal.open(tmp_path, readonly=True)
    try:
        assert reopened.get_state("breaker/global") == b"open"
        assert reopened.get_state("missing") is None
        assert reopened.state_items("breaker/") == [
            ("breaker/global", b"open"),
            ("breaker/venue:sim", b"closed"),
        ]
        assert reopened.state_items("spec/") == [("spec/strategies/a2", b"{}"), ("spec/strategies/c", b"{}")]
        assert reopened.counts() == {"orders": 0, "fills": 0, "updates": 0}
    finally:
        reopened.close()


def test_state_items_reads_a_key_range_and_the_last_n_by_cursor(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    try:
        # Neighbours that share a byte prefix but not the key prefix must never leak in.
        journal.put_states({"a": b"-", "a/": b"root", "a0": b"-", "b/1": b"-"})
        journal.put_states({f"a/{i:03d}": str(i).encode() for i in range(20)})
        every = journal.state_items("a/")
        assert [k for k, _ in every] == ["a/"] + [f"a/{i:03d}" for i in range(20)]
        assert journal.state_items("a/", start="005", stop="008") == [
            ("a/005", b"5"),
            ("a/006", b"6"),
            ("a/007", b"7"),
        ]
        assert journal.state_items("a/", last=3) == [("a/017", b"17"), ("a/018", b"18"), ("a/019", b"19")]
        assert journal.state_items("a/", stop="010", last=2) == [("a/008", b"8"), ("a/009", b"9")]
        assert journal.state_items("a/", stop="999", last=1) == [("a/019", b"19")]  # stop past the end
        assert journal.state_items("a/", start="018", last=5) == [("a/018", b"18"), ("a/019", b"19")]
        assert journal.state_items("a/", last=100) == every
        assert journal.state_items("a/", stop="000", last=5) == [("a/", b"root")]
        assert journal.state_items("zz/", last=5) == [] and journal.state_items("zz/") == []
        assert journal.state_items("b/", last=5) == [("b/1", b"-")]  # the last prefix of the database
        with pytest.raises(ValueError, match="last must be >= 0"):
            journal.state_items("a/", last=-1)
        # state_keys: the same keys for every range, without the values (the bar store's prune).
        for kwargs in ({}, {"start": "005", "stop": "008"}, {"last": 3}, {"stop": "010", "last": 2}):
            assert journal.state_keys("a/", **kwargs) == [k for k, _ in journal.state_items("a/", **kwargs)]
        assert journal.state_keys("zz/", last=5) == []
    finally:
        journal.close()


def test_strategy_records_after_a_seq_yields_only_that_strategys_later_records(tmp_path: Path) -> None:
    # What a strategy or sniper reads before deciding: its own records since its last look.
    journal = Journal.open(tmp_path, durability="process")
    try:
        journal.append(_order("a-1", "a", 1))
        journal.append(_order("b-1", "b", 1))
        looked = journal.last_seq()
        journal.append_many([_fill("f-a1", "a-1", "a"), _fill("f-b1", "b-1", "b"), _order("a-2", "a", 2)])
        later = list(journal.strategy_records("a", (Fill, Order), after_seq=looked))
        assert [(type(r).__name__, seq) for seq, r in later] == [("Fill", looked + 1), ("Order", looked + 3)]
        assert list(journal.strategy_records("a", (Fill, Order), after_seq=journal.last_seq())) == []
        everything = list(journal.strategy_records("a", (Fill, Order)))
        assert [seq for seq, _ in everything] == [1, looked + 1, looked + 3]
        # Journal.since: the same look, and how far it reached (every strategy's records counted).
        records, through = journal.since(looked, (Fill,), "a")
        assert [seq for seq, _ in records] == [looked + 1] and through == journal.last_seq() == looked + 3
        records, through = journal.since(looked, (Fill,))
        assert [r.fill_id for _, r in records] == ["f-a1", "f-b1"] and through == looked + 3
        assert journal.since(through, (Fill, Order)) == ([], through)
    finally:
        journal.close()
