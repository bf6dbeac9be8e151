"""Restarts that do not grow with the journal: what the journal's aggregates give equals a full replay.

Each restoring actor reads :meth:`Journal.snapshot` (O(keys)) instead of every record. These tests
hold the snapshot to the full-scan result the actors used before (the portfolio ledger replayed,
the risk guard's positions and day's spend, each strategy's position and intent seq, the open
orders, a strategy's own records for the sniper) on a journal with mixed strategies and venues,
after kill -9 of a writer mid-append, and after the upgrade of a format-1 journal (which had no
aggregates). Real LMDB, real processes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import lmdb
import pytest

from sniperbot.actors.strategy import journaled_history
from sniperbot.journal import TERMINAL_STATUSES, Journal, JournalError, JournalRecord
from sniperbot.journal.aggregates import DAY_NS
from sniperbot.journal.seal import break_seal, is_sealed, write_seal
from sniperbot.messages import Fill, Order, OrderUpdate, TokenSafetyReport
from sniperbot.messages.orders import make_intent_id, parse_intent_seq
from sniperbot.portfolio.ledger import Ledger, combined_snapshot
from sniperbot.risk.guard import RiskGuard, RiskLimits

TIMEOUT_S = 60.0  # a deadline on a loaded machine, not an expected time
STRATEGIES = ("alpha", "beta", "gamma")
INSTRUMENTS = (("sim", "BTC/USDT"), ("sim", "ETH/USDT"), ("paper", "BTC/USDT"))
LIMITS = RiskLimits(max_order_notional=1e9, max_position=1e9, max_orders_per_second=100.0)
NOW_NS = 20_000 * DAY_NS + 3_600 * 10**9  # "today", with fills on it, the day before and the day after


def _records(rng: random.Random, prefix: str, n_orders: int) -> list[JournalRecord]:
    """Orders of several strategies and venues, their updates (some rejected), fills that open, add to,
    reduce and flip positions with fees, on three days; duplicates and a report mixed in."""
    out: list[JournalRecord] = []
    for i in range(n_orders):
        strategy = rng.choice(STRATEGIES)
        venue, symbol = rng.choice(INSTRUMENTS)
        cid = make_intent_id(strategy, rng.randint(1, 10_000), f"{prefix}{i % 3}")
        side = rng.choice(("buy", "sell"))
        quantity = rng.choice((0.1, 0.25, 1.0, 3.0, 0.3))
        ts = NOW_NS + rng.choice((-DAY_NS, 0, 0, 0, DAY_NS // 2, DAY_NS)) + i
        if rng.random() < 0.15:  # refused by the risk guard: an update, no order
            out.append(
                OrderUpdate(
                    client_order_id=cid, strategy_id=strategy, venue=venue, symbol=symbol,
                    status="rejected", reason="max_position", ts_ns=ts,
                )
            )  # fmt: skip
            continue
        order = Order(
            client_order_id=cid, intent_id=cid, strategy_id=strategy, venue=venue, symbol=symbol,
            side=side, quantity=quantity, order_type="market", ts_ns=ts,
        )  # fmt: skip
        out.append(order)
        out.append(
            OrderUpdate(client_order_id=cid, strategy_id=strategy, venue=venue, symbol=symbol,
                        status="accepted", ts_ns=ts)
        )  # fmt: skip
        if rng.random() < 0.2:
            continue  # left open
        for k in range(rng.randint(1, 2)):
            out.append(
                Fill(
                    fill_id=f"{cid}-f{k}", client_order_id=cid, strategy_id=strategy, venue=venue,
                    symbol=symbol, side=side, quantity=quantity / 2, price=rng.uniform(90.0, 110.0),
                    fee=rng.uniform(0.0, 0.05), liquidity="taker", ts_ns=ts + k,
                )
            )  # fmt: skip
        if rng.random() < 0.1:
            out.append(out[-1])  # a resent fill: journaled once
        final = rng.choice(("filled", "filled", "cancelled"))
        out.append(
            OrderUpdate(client_order_id=cid, strategy_id=strategy, venue=venue, symbol=symbol,
                        status=final, ts_ns=ts + 5)
        )  # fmt: skip
        if rng.random() < 0.05:
            out.append(TokenSafetyReport(token="0xabc", venue=venue, verdict="refuse", ts_ns=ts))
    return out


def _full_scan(journal: Journal) -> dict[str, Any]:
    """What the actors restored before the aggregates: every record, from the first."""
    ledgers: dict[str, Ledger] = {}
    positions: dict[tuple[str, str], float] = {}
    orders = 0
    fills: list[Fill] = []
    for _, record in journal.records():
        if isinstance(record, Fill):
            fills.append(record)
            ledgers.setdefault(record.venue, Ledger()).apply_fill(record)
            key = (record.venue, record.symbol)
            positions[key] = positions.get(key, 0.0) + (
                record.quantity if record.side == "buy" else -record.quantity
            )
        elif isinstance(record, Order):
            orders += 1
        elif isinstance(record, OrderUpdate):
            ledgers.setdefault(record.venue, Ledger()).on_order_update(record)
    guard = RiskGuard(LIMITS)
    guard.restore_spend(fills, NOW_NS)
    strategies = {}
    for sid in STRATEGIES:
        own = [r for _, r in journal.records() if r.strategy_id == sid]
        last = max((parse_intent_seq(r.client_order_id, sid) or 0 for r in own), default=0)
        own_fills = [r for r in own if isinstance(r, Fill)]
        strategies[sid] = (sum(f.quantity if f.side == "buy" else -f.quantity for f in own_fills), last)
        # The sniper's history: the strategy's own records through its index, the same ones.
        assert journaled_history(journal, sid) == (own_fills, last)
        assert [r for _, r in journal.strategy_records(sid)] == own
    open_orders = [
        o for o in journal.orders() if journal.order_status(o.client_order_id) not in TERMINAL_STATUSES
    ]
    return {
        "portfolio": combined_snapshot(ledgers, 1, orders=orders),
        "positions": positions,
        "spend": {k: guard.spent(*k) for k in INSTRUMENTS},
        "strategies": strategies,
        "open": open_orders,
    }


def _restored(journal: Journal) -> dict[str, Any]:
    """The same figures as the actors now restore them: one snapshot, O(keys)."""
    snapshot = journal.snapshot(spend_day=NOW_NS // DAY_NS)
    assert snapshot.through_seq == journal.last_seq()
    ledgers: dict[str, Ledger] = {}
    for (venue, symbol), book in snapshot.books.items():
        ledgers.setdefault(venue, Ledger()).restore(symbol, book.quantity, book.avg_price, book.realized_pnl)
    for venue, totals in snapshot.venues.items():
        ledgers.setdefault(venue, Ledger()).restore_totals(totals.fees, totals.fills, totals.rejected)
    guard = RiskGuard(LIMITS)
    guard.restore_spend_totals(snapshot.spend_day, snapshot.spend)
    strategies = {}
    for sid in STRATEGIES:
        totals = journal.snapshot(strategy_id=sid).strategy
        strategies[sid] = (totals.net, totals.intent_seq)
    return {
        "portfolio": combined_snapshot(ledgers, 1, orders=snapshot.orders),
        "positions": {key: book.net for key, book in snapshot.books.items()},
        "spend": {k: guard.spent(*k) for k in INSTRUMENTS},
        "strategies": strategies,
        "open": journal.open_orders(),
    }


def _assert_restores_like_a_replay(journal: Journal, verify: bool = True) -> None:
    scanned, restored = _full_scan(journal), _restored(journal)
    # Exact (==, not approx): the aggregates sum in journal order with the replay's own expressions.
    for what in scanned:
        assert restored[what] == scanned[what], what
    strategies = restored["strategies"]
    assert any(net != 0.0 for net, _ in strategies.values()) and all(
        seq > 0 for _, seq in strategies.values()
    )
    assert any(spent > 0.0 for spent in restored["spend"].values())
    if verify:  # every index and aggregate recomputed from the log (one full pass)
        assert journal.verify() == journal.last_seq()


def test_snapshot_equals_full_scan_on_mixed_strategies_and_venues(tmp_path: Path) -> None:
    rng = random.Random(14)
    with Journal.open(tmp_path, durability="process") as journal:
        records = _records(rng, "a", 400)
        for start in range(0, len(records), 37):  # batches and single appends, as actors do
            journal.append_many(records[start : start + 37])
        journal.append(records[5])
        portfolio = _full_scan(journal)["portfolio"]
        assert portfolio.fills > 300 and portfolio.rejected > 20 and portfolio.realized_pnl != 0.0
        assert {p.venue for p in portfolio.positions} == {"sim", "paper"}
        _assert_restores_like_a_replay(journal)
        # A fill journaled after the snapshot is told apart from one already in it.
        through = journal.snapshot().through_seq
        first = next(r for _, r in journal.records(kinds=(Fill,)))
        assert isinstance(first, Fill)
        assert (journal.fill_seq(first.fill_id) or 0) <= through
        assert journal.fill_seq("never-journaled") is None


def _append_until_killed(run_dir: str, seed: int) -> None:
    """Append mixed records without pause, in batches and one by one, until killed (a forked child).

    The records are made before the writer says it started, so that nearly all of its time is spent
    appending: a kill lands in or between transactions, not in the making of records.
    """
    rng = random.Random(seed)
    batches = [_records(rng, f"k{seed}n{i}n", rng.randint(1, 6)) for i in range(3000)]
    journal = Journal.open(Path(run_dir), durability="process")
    Path(run_dir, f"started-{seed}").touch()
    for records in batches:
        journal.append_many(records) if len(records) % 2 else [journal.append(r) for r in records]
    time.sleep(TIMEOUT_S)  # all appended before the kill: the test's kill still ends it


def test_aggregates_hold_after_kill_9_mid_append(tmp_path: Path) -> None:
    # fork, not spawn: 10 kills in ~1 s. Safe: this process has no journal open while it forks.
    fork = mp.get_context("fork")
    rng = random.Random(9)
    for round_no in range(10):
        child = fork.Process(target=_append_until_killed, args=(str(tmp_path), round_no))
        child.start()
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not (tmp_path / f"started-{round_no}").exists():
                assert time.monotonic() < deadline and child.is_alive(), "the writer did not start"
                time.sleep(0.001)
            time.sleep(rng.uniform(0.005, 0.05))  # mid-stream: the writer appends without pause
        finally:
            os.kill(child.pid or 0, signal.SIGKILL)
            child.join(TIMEOUT_S)
        assert child.exitcode == -signal.SIGKILL
        with Journal.open(tmp_path, durability="process") as journal:
            _assert_restores_like_a_replay(journal, verify=False)
    with Journal.open(tmp_path, durability="process") as journal:
        assert journal.last_seq() > 100
        assert journal.verify() == journal.last_seq()


def _downgrade_to_format_1(run_dir: Path) -> None:
    """Make the journal what format 1 was: no ``open``, ``by_strategy`` or aggregates; format b"1"."""
    env = lmdb.open(str(run_dir / "journal"), max_dbs=16, subdir=True)
    try:
        with env.begin(write=True) as txn:
            for name in (b"open", b"aggregates", b"by_strategy"):
                txn.drop(env.open_db(name, txn=txn), delete=True)
            txn.put(b"format", b"1", db=env.open_db(b"meta", txn=txn))
    finally:
        env.close()


def test_format_1_journal_is_upgraded_once_and_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    with Journal.open(tmp_path, durability="process") as journal:
        journal.append_many(_records(rng, "u", 300))
        before = list(journal.records(kinds=None))
        expected = _full_scan(journal)
    _downgrade_to_format_1(tmp_path)
    # An old journal read as it is (read-only: no upgrade): its orders, no snapshot.
    with Journal.open(tmp_path, readonly=True) as old:
        assert old.open_orders() == expected["open"]
        with pytest.raises(JournalError, match=r"format b'1'.*open it for writing once"):
            old.snapshot()
        assert old.verify() == len(before)
    with Journal.open(tmp_path, durability="process") as journal:  # opened for writing: upgraded
        assert list(journal.records(kinds=None)) == before
        restored = _restored(journal)
        for what in expected:
            assert restored[what] == expected[what], what
        _assert_restores_like_a_replay(journal)
        journal.append_many(_records(rng, "v", 60))  # and kept up to date from then on
        _assert_restores_like_a_replay(journal)
    env = lmdb.open(str(tmp_path / "journal"), max_dbs=16, subdir=True, readonly=True)
    try:
        with env.begin() as txn:
            assert txn.get(b"format", db=env.open_db(b"meta", txn=txn)) == b"2"
    finally:
        env.close()


def test_the_seal_of_an_orderly_stop_breaks_on_any_write(tmp_path: Path) -> None:
    """A start skips the full verification only on a journal untouched since its orderly stop."""
    journal_dir = tmp_path / "journal"

    def stop_in_order() -> None:
        with Journal.open(tmp_path, durability="process") as journal:
            journal.append_many(_records(random.Random(3), "s", 20))
            txnid = journal.last_txnid()
        write_seal(journal_dir, txnid)

    def sealed() -> bool:
        with Journal.open(tmp_path, durability="process") as journal:  # opening writes nothing
            return is_sealed(journal_dir, journal.last_txnid())

    stop_in_order()
    assert sealed() and sealed()
    with Journal.open(tmp_path, durability="process") as journal:  # a write through LMDB
        journal.put_state("x", b"1")
    assert not sealed()
    stop_in_order()
    assert sealed()
    time.sleep(0.02)  # past the file system's timestamp granularity (ext4: one jiffy) since the commit
    with open(journal_dir / "data.mdb", "r+b") as f:  # a write behind LMDB's back, same bytes
        f.seek(4096 * 3)
        byte = f.read(1)
        f.seek(4096 * 3)
        f.write(byte)
    assert not sealed()
    stop_in_order()
    break_seal(journal_dir)  # what a start does before its first write: a crash leaves no seal
    assert not sealed()
