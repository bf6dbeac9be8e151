"""``sniperbot journal``: read a node's journal (running or stopped) — fills and orders, text or JSON.

The JSON is an interface other tools script against (kept stable, documented in the README):

* ``fills --json``: one object per fill, in journal order: ``fill_id``, ``venue``, ``symbol``, ``side``,
  ``quantity``, ``price``, ``fee`` (quote currency), ``liquidity``, ``client_order_id``, ``strategy_id``,
  ``trade_id`` (the venue's own execution id: the exchange's trade id), ``ts_ns``.
* ``orders --json``: one object per order, in journal order: ``client_order_id``, ``venue``, ``symbol``,
  ``side``, ``order_type``, ``quantity``, ``limit_price``, ``stop_price``, ``strategy_id``,
  ``exchange_order_id`` (the venue's id, ``""`` until it said one), ``status`` (the latest journaled,
  ``"pending"`` before the venue answered), ``reason``, ``filled`` (sum of fill quantities), ``fills``,
  ``ts_ns``.

A damaged journal prints nothing and exits 2 (a partial list of fills would look like a complete one).

``fills`` and ``orders`` list the whole history: records archived out of the hot journal
(``<run dir>/archive``, :mod:`sniperbot.journal.archive`) are read back transparently, in journal order,
after the whole history is verified: the hot journal against its totals (:meth:`Journal.verify`) and the
archive against the totals it left behind (:meth:`Journal.verify_archive`).
``archive`` runs the archiver now (safe beside a running node); ``compact`` rewrites a stopped node's
``data.mdb`` without its free pages (LMDB reuses freed pages but never shrinks its file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from sniperbot.journal import Journal, JournalError
from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.rundir import RunDir, RunDirError

_RECOVER = (
    "restore the journal directory from a backup or archive, and check it against "
    "the venue's own records (the venue ledger, the exchange)"
)


_ORDER_LINE = (
    "{client_order_id:<24} {venue:<10} {symbol:<10} {side:<4} {order_type:<6} {quantity:>12.6f} "
    "{status:<10} {exchange_order_id}"
)
_FILL_LINE = (
    "{client_order_id:<24} {venue:<10} {symbol:<10} {side:<4} {quantity:>12.6f} @ {price:<14.4f} "
    "fee {fee:.4f} {trade_id}"
)


def add_journal_parser(sub: Any, default_run_dir: str) -> None:
    """The ``journal`` command and its verbs."""
    journal = sub.add_parser("journal", help="read a node's journal (running or stopped)")
    journal.add_argument("--run-dir", default=default_run_dir)
    verbs = journal.add_subparsers(dest="journal_command", required=True)
    fills = verbs.add_parser("fills", help="every journaled fill, in journal order")
    fills.add_argument("--json", action="store_true", help="print a JSON array")
    orders = verbs.add_parser("orders", help="every journaled order with its latest status")
    orders.add_argument("--json", action="store_true", help="print a JSON array")
    archive = verbs.add_parser("archive", help="move old completed orders to <run dir>/archive now")
    archive.add_argument(
        "--after-days",
        type=float,
        default=None,
        help="horizon in days (default: the built-in [journal] archive_after_days)",
    )
    verbs.add_parser("compact", help="shrink a stopped node's journal file to its live pages")


def fill_rows(records: list[Any]) -> list[dict[str, Any]]:
    """The ``fills --json`` objects of the journal ``records``."""
    rows = []
    for record in records:
        if isinstance(record, Fill):
            row = msgspec.to_builtins(record)
            row.pop("t", None)
            rows.append(row)
    return rows


def order_rows(records: list[Any]) -> list[dict[str, Any]]:
    """The ``orders --json`` objects of the journal ``records`` (one pass, in journal order)."""
    rows: dict[str, dict[str, Any]] = {}
    update_order_rows(rows, records)
    return list(rows.values())


def update_order_rows(rows: dict[str, dict[str, Any]], records: list[Any]) -> set[str]:
    """Apply more journal ``records`` to ``rows`` (by client order id); the ids of the rows changed.

    What a reader following the journal uses (the HTTP API): :func:`order_rows` of all records
    equals this applied batch by batch.
    """
    changed: set[str] = set()
    for record in records:
        if isinstance(record, Order):
            rows[record.client_order_id] = {
                "client_order_id": record.client_order_id,
                "venue": record.venue,
                "symbol": record.symbol,
                "side": record.side,
                "order_type": record.order_type,
                "quantity": record.quantity,
                "limit_price": record.limit_price,
                "stop_price": record.stop_price,
                "strategy_id": record.strategy_id,
                "exchange_order_id": "",
                "status": "pending",
                "reason": "",
                "filled": 0.0,
                "fills": 0,
                "ts_ns": record.ts_ns,
            }
        elif isinstance(record, OrderUpdate):
            row = rows.get(record.client_order_id)
            if row is None:
                continue  # a rejection before the order was journaled (risk guard): not an order
            row["status"] = record.status
            row["reason"] = record.reason
            if record.exchange_order_id:
                row["exchange_order_id"] = record.exchange_order_id
        elif isinstance(record, Fill):
            row = rows.get(record.client_order_id)
            if row is None:
                continue
            row["filled"] += record.quantity
            row["fills"] += 1
        else:
            continue
        changed.add(record.client_order_id)
    return changed


def run_journal_command(args: argparse.Namespace) -> int:
    """``sniperbot journal fills|orders [--json] | archive [--after-days N] | compact``."""
    if args.journal_command in ("archive", "compact"):
        try:
            return _archive(args) if args.journal_command == "archive" else _compact(args)
        except (JournalError, RunDirError, OSError) as e:
            print(f"sniperbot: error: {e}", file=sys.stderr)
            return 2
    try:
        journal = Journal.open(Path(args.run_dir), readonly=True)
    except JournalError as e:
        print(f"sniperbot: error: {e}. To recover: {_RECOVER}", file=sys.stderr)
        return 2
    try:
        journal.verify()
        journal.verify_archive()  # the whole history: the archive against the totals it left
        records = [record for _, record in journal.records()]
    except JournalError as e:
        print(f"sniperbot: error: {e}. To recover: {_RECOVER}", file=sys.stderr)
        return 2
    finally:
        journal.close()
    if args.journal_command == "orders":
        rows, line = order_rows(records), _ORDER_LINE
    else:
        rows, line = fill_rows(records), _FILL_LINE
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(line.format(**row))
    print(f"{len(rows)} {args.journal_command}")
    return 0


def _archive(args: argparse.Namespace) -> int:
    """Archive now, step after step, what the archiver would (:mod:`sniperbot.journal.archive`)."""
    from sniperbot.config import JournalSection
    from sniperbot.journal.archive import archive_until_done

    days = JournalSection().archive_after_days if args.after_days is None else args.after_days
    if days <= 0:
        print("sniperbot: error: --after-days must be > 0", file=sys.stderr)
        return 2
    with Journal.open(Path(args.run_dir), must_exist=True) as journal:
        step = archive_until_done(journal, days * 86_400.0)
    held = f"; held back by {step.held_by}" if step.held_by else ""
    print(f"archived {step.archived} records; the archive holds seqs 1..{step.floor}{held}")
    return 0


def _compact(args: argparse.Namespace) -> int:
    """Copy the journal without free pages and swap the file in atomically (the node must be stopped)."""
    run = RunDir(args.run_dir)
    lock = run.lock()  # no node may run here meanwhile
    try:
        journal_dir = Path(args.run_dir) / "journal"
        data = journal_dir / "data.mdb"
        before = data.stat().st_size
        with Journal.open(Path(args.run_dir), must_exist=True) as journal:
            journal.verify()
            compacted = journal.compact_copy()
        os.replace(compacted, data)  # atomic: the old file or the new one, never neither
        compacted.parent.rmdir()
        dir_fd = os.open(journal_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        with Journal.open(Path(args.run_dir), readonly=True) as journal:
            journal.verify()
    finally:
        os.close(lock)
    print(f"compacted {data}: {before} -> {data.stat().st_size} bytes")
    return 0
