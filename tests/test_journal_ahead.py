"""The executor's write-ahead log (:mod:`sniperbot.journal.ahead`): one flush before a send or a publish.

Behaviour a user relies on: an order or a venue's answer made durable in the log and then sent or published
is in the journal after any crash, even when the process died before LMDB had it (kill -9 of a real
process, then a real node that reconciles it), and never twice; a torn last write is ignored and never
invents a record; a log that wrapped around replays nothing stale and drops no order still awaiting its
answer; two incarnations cannot write one log; a full disk fails at open, naming the file.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import msgspec
import pytest

from sniperbot.chaos.invariants import check_run_dir
from sniperbot.execution.executor import EXPIRED_UNSENT
from sniperbot.journal import AheadLog, Journal, JournalError
from sniperbot.journal.ahead import CAPACITY
from sniperbot.journal.archive import archive_until_done
from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.messages.orders import make_intent_id
from sniperbot.venues.sim.ledger import VenueLedger
from tests.conftest import FAST_CONFIG, RunningNode, eventually

WRITER = "executor.sim"


def _order(n: int, ts_ns: int = 1) -> Order:
    cid = make_intent_id("s1", n, "ahd001")
    return Order(cid, cid, "s1", "sim", "BTC/USDT", "buy", 0.01, ts_ns=ts_ns)


def _answer(n: int) -> list[OrderUpdate | Fill]:
    """What the venue answers a market order: accepted, the fill, filled."""
    cid = _order(n).client_order_id
    return [
        OrderUpdate(cid, "s1", "sim", "BTC/USDT", "accepted", ts_ns=2),
        Fill(f"f-{n}", cid, "s1", "sim", "BTC/USDT", "buy", 0.01, 50_000.0, 0.05, ts_ns=2),
        OrderUpdate(cid, "s1", "sim", "BTC/USDT", "filled", ts_ns=2),
    ]


def _log_then_die(run_dir: str, committed: int, logged: int, answered: int) -> None:
    """As an executor would: ``committed`` orders logged, sent, answered and committed; then ``logged``
    more logged and sent, the first ``answered`` of them answered and published too, and killed -9
    before LMDB had any of those."""
    journal = Journal.open(Path(run_dir), durability="fsync")
    log = AheadLog.open(journal, WRITER)
    for n in range(committed):
        log.write((_order(n),))
        log.write(_answer(n))
        journal.append_many((_order(n), *_answer(n)), sync_meta=False)
    for n in range(committed, committed + logged):
        log.write((_order(n),))
        if n < committed + answered:
            log.write(_answer(n))
    os.kill(os.getpid(), signal.SIGKILL)


def _run_and_kill(run_dir: Path, committed: int, logged: int, answered: int = 0) -> None:
    process = multiprocessing.get_context("spawn").Process(
        target=_log_then_die, args=(str(run_dir), committed, logged, answered)
    )
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL


def test_what_was_logged_but_not_in_lmdb_when_killed_is_journaled_at_the_next_open(tmp_path: Path) -> None:
    _run_and_kill(tmp_path, committed=3, logged=2, answered=1)
    with Journal.open(tmp_path) as journal:
        assert sorted(o.client_order_id for o in journal.orders()) == sorted(
            _order(n).client_order_id for n in range(3)
        )
        assert len(journal.fills()) == 3
        log = AheadLog.open(journal, WRITER)
        assert log.recovered == [_order(3), *_answer(3), _order(4)]
        assert journal.order_status(_order(3).client_order_id) == "filled"
        assert [f.fill_id for f in journal.fills()] == ["f-0", "f-1", "f-2", "f-3"]
        assert [o.client_order_id for o in journal.open_orders()] == [_order(4).client_order_id]
        log.close()
        # Recovered once: the next open starts a new generation and finds nothing new.
        again = AheadLog.open(journal, WRITER)
        assert again.recovered == []
        assert len(journal.orders()) == 5 and len(journal.fills()) == 4
        again.close()


def test_recovery_journals_only_what_is_news_in_the_order_it_was_logged(tmp_path: Path) -> None:
    """An answer LMDB already has is not journaled again, nor a late "accepted" after "filled"."""
    with Journal.open(tmp_path) as journal:
        log = AheadLog.open(journal, WRITER)
        log.write((_order(0),))
        log.write(_answer(0))
        journal.append_many((_order(0), *_answer(0)[:2]), sync_meta=False)  # LMDB has the fill, not "filled"
        late_accepted = _answer(0)[0]
        log.write((late_accepted,))
        log.close()
        before = journal.last_seq()
        log = AheadLog.open(journal, WRITER)
        assert log.recovered == [_answer(0)[2]]
        assert journal.last_seq() == before + 1
        assert journal.order_status(_order(0).client_order_id) == "filled"
        log.close()


def test_news_is_judged_after_what_is_on_its_way_to_the_journal(tmp_path: Path) -> None:
    """``Journal.unseen(records, after=pending)``: the executor's pending order and answer count as
    heard (a resent "accepted" is not news) but are never returned themselves."""
    accepted, fill, filled = _answer(0)
    with Journal.open(tmp_path) as journal:
        assert journal.unseen([accepted, fill, filled], after=[_order(0), accepted]) == [fill, filled]
        assert journal.unseen([], after=[_order(0)]) == []
        journal.append_many((_order(0), accepted, fill, filled))
        assert journal.unseen([_order(0), accepted, fill, filled]) == []


def test_a_torn_last_record_is_ignored_and_the_ones_before_it_are_recovered(tmp_path: Path) -> None:
    _run_and_kill(tmp_path, committed=0, logged=3)
    path = tmp_path / "journal" / "ahead" / f"{WRITER}.log"
    data = bytearray(path.read_bytes())
    size = len(data)
    end = data.rindex(b"BTC/USDT")  # inside the third record's payload
    data[end] ^= 0xFF  # its flush never returned: a bad CRC
    path.write_bytes(bytes(data))
    with Journal.open(tmp_path) as journal:
        log = AheadLog.open(journal, WRITER)
        assert log.recovered == [_order(0), _order(1)]
        assert journal.order(_order(2).client_order_id) is None
        log.close()
    assert path.stat().st_size == size == CAPACITY


def test_a_log_that_wrapped_around_replays_nothing_stale_and_keeps_what_awaits_an_answer(
    tmp_path: Path,
) -> None:
    journal = Journal.open(tmp_path, durability="fsync")
    log = AheadLog.open(journal, WRITER)
    awaiting = _order(10_000)
    log.write((awaiting,))  # sent, its answer not come yet: LMDB does not have it
    per_file = (CAPACITY - 64) // (16 + len(msgspec.msgpack.encode(_order(0))))
    total = per_file + 200  # past the end once: a new generation at the top of the file
    resets = []
    for n in range(total):
        resets.append(log.write((_order(n),), unsettled=[awaiting]))
        journal.append_many((_order(n),), sync_meta=False)
    # One reset, which committed the order still awaiting its answer before the new generation began.
    assert resets.count(True) == 1
    assert journal.order(awaiting.client_order_id) == awaiting
    log.close()
    # Records of the old generation lie after the new ones; the new generation's are all in LMDB.
    reopened = AheadLog.open(journal, WRITER)
    assert reopened.recovered == []
    assert len(journal.orders()) == total + 1
    # After the reset an order logged and not committed is still recovered.
    reopened.write((_order(total),))
    reopened.close()
    last = AheadLog.open(journal, WRITER)
    assert last.recovered == [_order(total)]
    last.close()
    journal.close()


def test_what_the_archive_took_from_an_old_generation_is_not_journaled_again(tmp_path: Path) -> None:
    """A writer that ran for days without filling its log: its generation still holds an order and the
    answer that the archiver has since moved out of LMDB. Recovery must not journal them a second time."""
    old_ns = time.time_ns() - 10 * 86_400 * 10**9
    order = _order(0, ts_ns=old_ns)
    answer = [msgspec.structs.replace(r, ts_ns=old_ns) for r in _answer(0)]
    with Journal.open(tmp_path) as journal:
        log = AheadLog.open(journal, WRITER)
        log.write((order,))
        log.write(answer)
        journal.append_many((order, *answer), sync_meta=False)
        journal.append(_order(1, ts_ns=time.time_ns()))  # the archive never takes the last record
        assert archive_until_done(journal, 7 * 86_400.0).floor == 4
        assert journal.order(order.client_order_id) is None  # its fill's id stays hot a day (dedup)
        log.write((_order(2),))  # logged, never committed: this one is news
        log.close()
        before = journal.counts()
        log = AheadLog.open(journal, WRITER)
        assert log.recovered == [_order(2)]
        assert journal.counts() == {**before, "orders": before["orders"] + 1}
        assert sum(isinstance(r, Fill) for _, r in journal.records()) == 1  # archive included
        log.close()


def test_two_incarnations_cannot_hold_one_log(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        first = AheadLog.open(journal, WRITER)
        with pytest.raises(JournalError, match=r"ahead/executor\.sim\.log is held by another incarnation"):
            AheadLog.open(journal, WRITER)
        first.close()
        AheadLog.open(journal, WRITER).close()


def test_a_node_start_recovers_every_log_no_live_writer_holds(tmp_path: Path) -> None:
    """``recover_all``: a held log belongs to a live writer and is left alone; a free one is recovered
    (a writer killed and never restarted, e.g. its venue removed from the config)."""
    with Journal.open(tmp_path) as journal:
        held = AheadLog.open(journal, WRITER)
        held.write((_order(0),))
        gone = AheadLog.open(journal, "executor.gone")
        gone.write((_order(1),))
        gone.close()
        assert AheadLog.recover_all(journal) == [_order(1)]
        assert journal.order(_order(0).client_order_id) is None
        held.close()
        assert AheadLog.recover_all(journal) == [_order(0)]
        assert AheadLog.recover_all(journal) == []


def test_the_money_checker_counts_what_a_log_holds_as_journaled(tmp_path: Path) -> None:
    """A node killed between the send and the LMDB commit: the venue has the order and its fill, the
    journal has them only in the log. The invariant checker counts them, once; without the log it
    would call them unjournaled (and a node's next start recovers them into LMDB anyway)."""
    with Journal.open(tmp_path) as journal:
        journal.append_many((_order(0), *_answer(0)))
        log = AheadLog.open(journal, WRITER)
        log.write((_order(0),))  # in LMDB too: counted once
        log.write((_order(1),))
        log.write(_answer(1))
        log.close()
    with VenueLedger.open(tmp_path, "sim") as ledger:
        ledger.record([_order(0), *_answer(0), _order(1), *_answer(1)])
    report = check_run_dir(tmp_path)
    assert report.ok, report.problems
    assert report.orders_journaled == report.orders_at_venue == 2
    assert report.fills_journaled == report.fills_at_venue == 2
    assert report.duplicate_orders == [] and report.unjournaled_orders == []
    assert report.positions == {"sim:BTC/USDT": pytest.approx(0.02)}
    (tmp_path / "journal" / "ahead" / f"{WRITER}.log").unlink()
    assert check_run_dir(tmp_path).unjournaled_orders == [_order(1).client_order_id]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs (CI runs as root)")
def test_a_full_disk_fails_the_open_naming_the_file_and_keeps_the_journal(short_tmp: Path) -> None:
    disk = short_tmp / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=768k,mode=0700", "tmpfs", str(disk)], check=True)
    try:
        with Journal.open(disk, map_size=1 << 20) as journal:
            journal.append(_order(0))
            with pytest.raises(JournalError, match=r"ahead/executor\.sim\.log: cannot reserve 1048576 bytes"):
                AheadLog.open(journal, WRITER)
            assert (disk / "journal" / "ahead" / f"{WRITER}.log").stat().st_size == 0
            assert [o.client_order_id for o in journal.orders()] == [_order(0).client_order_id]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_node_journals_and_reconciles_an_order_its_executor_logged_before_dying(short_tmp: Path) -> None:
    """The executor died after the log's flush and before LMDB had the order: the restarted node's
    executor journals it, asks the venue, and (too old to send now) cancels it as expired_unsent."""
    run = short_tmp / "run"
    fast_config = short_tmp / "fsync.toml"
    assert 'durability = "process"' in FAST_CONFIG
    fast_config.write_text(FAST_CONFIG.replace('durability = "process"', 'durability = "fsync"'))
    first = RunningNode(run, fast_config)
    first.wait_ready()
    assert first.stop() == 0
    with Journal.open(run) as journal:
        log = AheadLog.open(journal, WRITER)
        stale = _order(7, ts_ns=time.time_ns() - 3_600 * 10**9)
        log.write((stale,))
        log.close()
        assert journal.order(stale.client_order_id) is None
    second = RunningNode(run, fast_config)
    second.wait_ready()

    def expired() -> list[OrderUpdate]:
        with Journal.open(run, readonly=True) as journal:
            return [
                r
                for _, r in journal.records()
                if isinstance(r, OrderUpdate)
                and r.client_order_id == stale.client_order_id
                and r.reason == EXPIRED_UNSENT
            ]

    eventually(expired, 30, what="the recovered order reconciled and cancelled")
    assert second.stop() == 0
    with Journal.open(run, readonly=True) as journal:
        assert journal.order(stale.client_order_id) == stale
        assert journal.order_status(stale.client_order_id) == "cancelled"
