"""Bounded disk: old completed orders move from the hot LMDB journal to ``<run dir>/archive``, losslessly.

Behaviour a user relies on: records move and ``sniperbot journal`` still lists them; nothing is lost when
the archiver is killed -9 mid-way; open orders stay hot; what every actor restores (positions, P&L, intent
sequences) is the same after archiving; trading writers keep journaling while the archiver runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from sniperbot.actors.strategy import journaled_history
from sniperbot.cli.journal import order_rows
from sniperbot.journal import Journal
from sniperbot.journal.archive import (
    _append_frame,
    archive_dir,
    archive_files,
    archive_step,
    read_archive,
    read_file,
)
from sniperbot.messages import Fill, Order, OrderUpdate, TokenSafetyReport
from sniperbot.messages.control import position_key
from sniperbot.messages.orders import make_intent_id
from sniperbot.portfolio.ledger import Ledger
from sniperbot.rundir import RunDir
from tests.conftest import FAST_CONFIG, ROOT, RunningNode, eventually, sniperbot

DAY_NS = 86_400 * 1_000_000_000
NOW_NS = time.time_ns()


def _order(strategy: str, n: int, ts_ns: int, side: str = "buy") -> Order:
    cid = make_intent_id(strategy, n, "tst001")
    return Order(cid, cid, strategy, "sim", "BTC/USDT", side, 0.01, ts_ns=ts_ns)  # type: ignore[arg-type]


def _trade(journal: Journal, strategy: str, n: int, ts_ns: int, *, fill: bool = True) -> str:
    """One order: accepted then filled (or left open); its client order id."""
    order = _order(strategy, n, ts_ns, "buy" if n % 3 else "sell")
    cid = order.client_order_id
    journal.append(order)
    journal.append(OrderUpdate(cid, strategy, "sim", "BTC/USDT", "accepted", ts_ns=ts_ns))
    if fill:
        price = 60_000.0 + 10 * (n % 7)
        journal.append_many(
            [
                Fill(
                    f"sim:{cid}", cid, strategy, "sim", "BTC/USDT", order.side, 0.01, price, 0.03, ts_ns=ts_ns
                ),
                OrderUpdate(cid, strategy, "sim", "BTC/USDT", "filled", ts_ns=ts_ns),
            ]
        )
    return cid


def _report(ts_ns: int) -> TokenSafetyReport:
    return TokenSafetyReport("evm", "0xtoken", reasons=["honeypot: cannot sell"], ts_ns=ts_ns)


def _build(run_dir: Path, orders: int = 60, open_at: int | None = 20) -> list[str]:
    """A month of trading: ``orders`` orders spread over 30 days, one (``open_at``) still open."""
    cids = []
    with Journal.open(run_dir, durability="process") as journal:
        for n in range(1, orders + 1):
            ts = NOW_NS - 30 * DAY_NS + n * (30 * DAY_NS // orders) - DAY_NS // 2
            strategy = "s_a" if n % 2 else "s_b"
            cids.append(_trade(journal, strategy, n, ts, fill=n != open_at))
            if n % 10 == 0:
                journal.append(_report(ts))
    return cids


def _restored(journal: Journal) -> dict[str, object]:
    """What the actors rebuild at start, through their own code: portfolio, risk guard, strategies."""
    ledger = Ledger()
    for _, record in journal.records():
        if isinstance(record, Fill):
            ledger.apply_fill(record)
        elif isinstance(record, OrderUpdate):
            ledger.on_order_update(record)
    risk: dict[str, float] = {}
    for fill in journal.fills():
        risk[fill.symbol] = risk.get(fill.symbol, 0.0) + (
            fill.quantity if fill.side == "buy" else -fill.quantity
        )
    return {
        "positions": ledger.positions,
        "realized": ledger.realized_pnl,
        "fees": ledger.fees,
        "risk": risk,
        "history": {s: journaled_history(journal, s) for s in ("s_a", "s_b")},
        "intents": {s: journal.max_intent_seq(s) for s in ("s_a", "s_b")},
        "open": journal.open_orders(),
        "counts": journal.counts(),
    }


def test_old_completed_orders_move_open_ones_stay_and_the_cli_lists_everything(short_tmp: Path) -> None:
    run_dir = short_tmp / "run"
    cids = _build(run_dir)
    run = str(run_dir)
    fills_before = json.loads(sniperbot("journal", "--run-dir", run, "fills", "--json").stdout)
    with Journal.open(run_dir, readonly=True) as journal:
        everything = list(journal.records(kinds=None))
        restored = _restored(journal)

    result = sniperbot("journal", "--run-dir", run, "archive", "--after-days", "7")
    assert result.returncode == 0, result.stderr
    assert f"held back by open order {cids[19]}" in result.stdout

    with Journal.open(run_dir, readonly=True) as journal:
        journal.verify()
        floor = journal.archived_through()
        hot = list(journal.records(after_seq=floor, kinds=None))
        # Archived up to the open order (seq 20 * 4 - 3 + 1 report), which stays hot with all after it.
        assert 0 < floor < len(everything)
        assert journal.open_orders()[0].client_order_id == cids[19]
        assert hot[0][1] == journal.open_orders()[0]
        assert list(journal.records(kinds=None)) == everything
        assert _restored(journal) == restored
    # One file per day of the archived records' timestamps.
    days = {time.strftime("%Y-%m-%d", time.gmtime(r.ts_ns // 10**9)) for s, r in everything if s <= floor}
    assert {p.name for p in archive_files(run_dir / "archive")} == {f"{d}.sba" for d in days}
    assert json.loads(sniperbot("journal", "--run-dir", run, "fills", "--json").stdout) == fills_before
    orders = json.loads(sniperbot("journal", "--run-dir", run, "orders", "--json").stdout)
    assert orders == order_rows([r for _, r in everything]) and len(orders) == 60

    # Cancelling the old open order frees the archive behind it, up to the horizon (not the recent week).
    with Journal.open(run_dir, durability="process") as journal:
        journal.append(
            OrderUpdate(cids[19], "s_b", "sim", "BTC/USDT", "cancelled", ts_ns=NOW_NS - 20 * DAY_NS)
        )
        while archive_step(journal, 7 * 86_400.0, batch=64).archived:
            pass
        new_floor = journal.archived_through()
        hot = list(journal.records(after_seq=new_floor, kinds=None))[:-1]  # the last record always stays
        assert hot and all(r.ts_ns >= NOW_NS - 7 * DAY_NS for _, r in hot)
        assert new_floor > floor
        assert journal.verify() == journal.last_seq() - new_floor
        # The dedup entries of archived orders and fills left with them (the bounded hot journal; the
        # fills near an instrument's latest one stay: test_an_idle_instrument_keeps_its_last_fills_known).
        assert not journal.has_fill(f"sim:{cids[0]}")
        assert (journal.order(cids[0]), journal.order_status(cids[0])) == (None, None)
        counts = restored["counts"]
        assert isinstance(counts, dict)
        # Every restore is unchanged but for the cancel: the order is no longer open, one more update.
        assert _restored(journal) == {
            **restored,
            "open": [],
            "counts": {**counts, "updates": counts["updates"] + 1},
        }

    # LMDB reuses freed pages but never shrinks its file: `journal compact` does, never beside a node.
    data = run_dir / "journal" / "data.mdb"
    size = data.stat().st_size
    lock = RunDir(run_dir).lock()
    try:
        refused = sniperbot("journal", "--run-dir", run, "compact")
    finally:
        os.close(lock)
    assert refused.returncode == 2 and "another node is running" in refused.stderr
    assert data.stat().st_size == size
    compacted = sniperbot("journal", "--run-dir", run, "compact")
    assert compacted.returncode == 0, compacted.stderr
    assert data.stat().st_size < size
    with Journal.open(run_dir, readonly=True) as journal:
        journal.verify()
        assert list(journal.records(kinds=None))[: len(everything)] == everything


def test_kill9_of_the_archiver_mid_batch_loses_nothing(short_tmp: Path) -> None:
    run_dir = short_tmp / "run"
    with Journal.open(run_dir, durability="process") as journal:
        for n in range(1, 801):
            _trade(journal, "s_a", n, NOW_NS - 30 * DAY_NS + n * 300_000_000_000)
        everything = list(journal.records(kinds=None))
    # A real archiver process, small fsync'd batches, killed -9 while it is busy.
    script = (
        "import sys; from pathlib import Path; from sniperbot.journal import Journal; "
        "from sniperbot.journal.archive import archive_step\n"
        "with Journal.open(Path(sys.argv[1])) as j:\n"
        "    while archive_step(j, 86400.0, batch=3).archived: pass\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(run_dir)], cwd=ROOT)
    try:
        with Journal.open(run_dir, readonly=True) as journal:
            eventually(lambda: journal.archived_through() >= 300, 30, 0.005, what="archiving under way")
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
            floor = journal.archived_through()
            assert floor < len(everything) - 100, "the archiver finished before it was killed"
            # Consistent wherever the kill fell: base + hot log = the totals, the archive = the base.
            journal.verify()
            assert journal.verify_archive() == floor
            assert list(journal.records(kinds=None)) == everything
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    # Both crash windows, made certain: a frame fsync'd but its records not yet deleted (they are then
    # in both places), and a frame torn by the kill (ignored, then cut by the next writer).
    day_file = archive_files(archive_dir(run_dir / "journal"))[-1]
    raw = [(s, msgspec.msgpack.encode(r)) for s, r in everything[floor : floor + 5]]
    _append_frame(day_file, raw)
    with open(day_file, "ab") as f:
        f.write(b"SBA1\x00\x00\x10\x00torn")
    with Journal.open(run_dir, readonly=True) as journal:
        assert list(journal.records(kinds=None)) == everything
    with Journal.open(run_dir) as journal:
        while archive_step(journal, 86_400.0).archived:
            pass
        journal.verify()
        assert journal.archived_through() == len(everything) - 1  # all but the last record
        assert list(journal.records(kinds=None)) == everything
    seqs = [s for s, _ in read_archive(archive_dir(run_dir / "journal"))]
    assert seqs == list(range(1, len(everything)))
    # Damage inside an archive file is named, never skipped: the CLI lists nothing and exits 2.
    first = archive_files(archive_dir(run_dir / "journal"))[0]
    data = bytearray(first.read_bytes())
    data[40] ^= 0xFF
    first.write_bytes(bytes(data))
    result = sniperbot("journal", "--run-dir", str(run_dir), "fills")
    assert (result.returncode, result.stdout) == (2, "")
    assert f"archive {first} is damaged at byte 0" in result.stderr
    # A cut file (its last frame looks torn) whose records left LMDB: a hole, named, not skipped.
    data[40] ^= 0xFF
    first.write_bytes(bytes(data[: len(data) - 10]))
    result = sniperbot("journal", "--run-dir", str(run_dir), "fills")
    assert (result.returncode, result.stdout) == (2, "")
    assert "is archived (through" in result.stderr and "but missing from" in result.stderr


def test_writers_keep_journaling_while_the_archiver_runs(short_tmp: Path) -> None:
    run_dir = short_tmp / "run"
    _build(run_dir, orders=600, open_at=None)
    # A trading writer in its own process, fsync durability, appending orders as fast as it can.
    script = (
        "import sys, time; from pathlib import Path; from sniperbot.journal import Journal; "
        "from sniperbot.messages import Order\n"
        "with Journal.open(Path(sys.argv[1])) as j:\n"
        "    n = 0\n"
        "    while True:\n"
        "        n += 1; cid = f'live-{n}'\n"
        "        j.append(Order(cid, cid, 'live', 'sim', 'BTC/USDT', 'buy', 0.01, ts_ns=time.time_ns()))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(run_dir)], cwd=ROOT)
    try:
        with Journal.open(run_dir, durability="process") as journal:
            eventually(lambda: journal.order("live-1"), 30, what="the writer started")
            interleaved = 0
            while True:
                before = journal.last_seq()
                step = archive_step(journal, 7 * 86_400.0, batch=64)
                interleaved += journal.last_seq() > before
                if not step.archived:
                    break
            steps_done = journal.archived_through() // 64
            assert steps_done >= 20
            # The writer committed between most steps: archiving never held the journal for long.
            assert interleaved >= steps_done // 2, (interleaved, steps_done)
    finally:
        child.kill()
        child.wait(10)
    with Journal.open(run_dir, readonly=True) as journal:
        journal.verify()
        live = [r.client_order_id for _, r in journal.records(kinds=(Order,)) if r.strategy_id == "live"]
        assert live == [f"live-{n}" for n in range(1, len(live) + 1)]


def test_a_node_archives_while_trading_and_its_journal_rebuilds_the_same_book(short_tmp: Path) -> None:
    config = short_tmp / "fast.toml"
    # A horizon of ~1 s: the node's archiver actor moves its own fills while it keeps trading.
    config.write_text(
        FAST_CONFIG.replace('durability = "process"', 'durability = "process"\narchive_after_days = 0.00001')
    )
    run_dir = short_tmp / "run"
    running = RunningNode(run_dir, config)
    running.wait_ready()
    with Journal.open(run_dir, readonly=True) as journal:
        eventually(lambda: journal.archived_through() > 0, 30, what="the archiver moved records")
        fills = running.admin("status")["fills"]
        floor = journal.archived_through()
        eventually(lambda: running.admin("status")["fills"] > fills + 2, 30, what="trading goes on")
        eventually(lambda: journal.archived_through() > floor, 30, what="archiving goes on")
    assert sniperbot("admin", "--run-dir", str(run_dir), "halt").returncode == 0

    def settled() -> dict | None:
        first = running.admin("status")
        time.sleep(0.3)
        second = running.admin("status")
        return (
            first if first["fills"] == second["fills"] and first["positions"] == second["positions"] else None
        )

    book = eventually(settled, 30, what="halted")
    assert running.stop() == 0
    # What a restart rebuilds (the portfolio's ledgers over the journal, archive included) is the book
    # the node held live, though most of its fills now live in the archive.
    with Journal.open(run_dir, readonly=True) as journal:
        assert journal.archived_through() > floor
        journal.verify()
        ledgers: dict[str, Ledger] = {}
        for _, record in journal.records():
            if isinstance(record, Fill):
                ledgers.setdefault(record.venue, Ledger()).apply_fill(record)
            elif isinstance(record, OrderUpdate):
                ledgers.setdefault(record.venue, Ledger()).on_order_update(record)
        counts = journal.counts()
    positions = {position_key(v, sym): q for v, lg in ledgers.items() for sym, q in lg.positions.items()}
    # approx: the live node applied the same fills, possibly in another order (bus before journal).
    assert positions == pytest.approx(book["positions"], abs=1e-9)
    assert sum(lg.realized_pnl for lg in ledgers.values()) == pytest.approx(book["pnl"]["realized"], abs=1e-6)
    assert sum(lg.fees for lg in ledgers.values()) == pytest.approx(book["pnl"]["fees"], abs=1e-9)
    assert (counts["orders"], counts["fills"]) == (book["orders"], book["fills"])


def _eth_trade(journal: Journal, n: int, ts_ns: int) -> Fill:
    """One filled ETH order of strategy ``s_e`` (an instrument that stops trading); its Fill."""
    order = _order("s_e", n, ts_ns)
    order = msgspec.structs.replace(order, symbol="ETH/USDT")
    cid = order.client_order_id
    fill = Fill(f"sim:{cid}", cid, "s_e", "sim", "ETH/USDT", "buy", 0.5, 3_000.0 + n, 0.01, ts_ns=ts_ns)
    journal.append(order)
    journal.append_many([fill, OrderUpdate(cid, "s_e", "sim", "ETH/USDT", "filled", ts_ns=ts_ns)])
    return fill


def test_archiving_keeps_every_total_and_an_idle_instrument_keeps_its_last_fills_known(
    short_tmp: Path,
) -> None:
    run_dir = short_tmp / "run"
    hour = DAY_NS // 24
    with Journal.open(run_dir, durability="process") as journal:
        btc: list[str] = []
        eth: list[Fill] = []
        for n in range(1, 41):  # journal order follows time, as a node's does
            ts = NOW_NS - 30 * DAY_NS + n * 17 * hour
            if n == 10:  # a risk-rejected intent: an update, no Order
                rejected = make_intent_id("s_a", 99, "tst001")
                journal.append(OrderUpdate(rejected, "s_a", "sim", "BTC/USDT", "rejected", ts_ns=ts))
            if n == 15:  # ETH trades ~20 days ago, then never again: its last day of fills stays known
                eth = [_eth_trade(journal, k, ts + h * hour) for k, h in ((1, 1), (2, 29), (3, 30))]
            btc.append(_trade(journal, "s_a", n, ts))
        # A venue's late report of a long-filled order, journaled now (hot, after the archive point).
        journal.append(OrderUpdate(btc[0], "s_a", "sim", "BTC/USDT", "accepted", ts_ns=NOW_NS - 29 * DAY_NS))
        journal.append(_report(NOW_NS))
        everything = list(journal.records(kinds=None))
        day = NOW_NS // DAY_NS

        def totals() -> object:
            snaps = {s: journal.snapshot(strategy_id=s, spend_day=day - 20) for s in ("s_a", "s_e")}
            history = {s: list(journal.strategy_records(s)) for s in ("s_a", "s_e")}
            intents = {s: journal.max_intent_seq(s) for s in ("s_a", "s_e")}
            return snaps, history, intents, journal.counts(), journal.open_orders()

        before = totals()
        archived = 0
        while step := archive_step(journal, 7 * 86_400.0, batch=16).archived:
            archived += step
        floor = journal.archived_through()
        assert archived == floor > len(everything) // 2
        # verify() = the archived base + the hot log, folded in journal order: the stored totals exactly.
        assert journal.verify() == len(everything) - floor
        assert totals() == before
        assert list(journal.records(kinds=None)) == everything
        # The ETH fills within a day of ETH's latest fill stay known (a venue's trade catch-up re-reads
        # them): resent, one is a duplicate (its archived seq), nothing is booked twice.
        assert [journal.has_fill(f.fill_id) for f in eth] == [False, True, True]
        kept = journal.fill_seq(eth[2].fill_id)
        assert kept is not None and kept <= floor
        assert journal.append(eth[2]) == kept and journal.last_seq() == len(everything)
        assert totals() == before
        # A venue's late report of an order archived already: journaled, opens nothing, and a month on
        # it moves with all but the last record (it has no hot Order: it never holds the archive back).
        journal.append(OrderUpdate(btc[1], "s_a", "sim", "BTC/USDT", "accepted", ts_ns=NOW_NS - 28 * DAY_NS))
        assert journal.order_status(btc[1]) == "accepted" and journal.open_orders() == []
        journal.append(_report(NOW_NS))
        while archive_step(journal, 7 * 86_400.0, now_ns=NOW_NS + 30 * DAY_NS, batch=16).archived:
            pass
        floor = journal.archived_through()
        assert floor == journal.last_seq() - 1 and journal.verify() == 1
        assert journal.order_status(btc[1]) is None
        everything = list(journal.records(kinds=None))
        # Reopened (a node's start) it verifies the same.
    with Journal.open(run_dir, readonly=True) as journal:
        assert journal.verify() == len(everything) - floor
        assert journal.verify_archive() == floor
    # An archive file rewritten with whole frames (each CRC right) but another price for one fill: the
    # archive no longer folds to the totals it left; `sniperbot journal` names it and lists nothing.
    files = archive_files(archive_dir(run_dir / "journal"))
    day_file = next(p for p in files if any(raw == msgspec.msgpack.encode(eth[1]) for _, raw in read_file(p)))
    entries = [
        (seq, raw.replace(msgspec.msgpack.encode(3_002.0), msgspec.msgpack.encode(3_012.0)))
        for seq, raw in read_file(day_file)
    ]
    day_file.unlink()
    _append_frame(day_file, entries)
    result = sniperbot("journal", "--run-dir", str(run_dir), "fills")
    assert (result.returncode, result.stdout) == (2, "")
    assert "disagrees with the totals the journal kept when it archived them" in result.stderr
