"""Money invariants under crashes: the node's journal against each venue's own ledger.

Two independent witnesses of every trade are compared, Jepsen-style (research
§8 CHAOS-04, §9.5): the executor's journal (what we believe) and the venue's
ledger (what the exchange did). The checks, each a list of the offending ids:

* ``duplicate_orders``: a client order id the venue *executed* more than once
  (received twice, accepted twice, or filled beyond its quantity). Must be empty.
  Resubmissions the venue refused are harmless and only counted
  (``duplicate_submissions``).
* ``lost_fills``: a venue fill missing from the journal although the journal
  considers its order finished. Must be empty.
* ``phantom_fills``: a journaled fill the venue never made. Must be empty.
* ``fill_mismatches`` / ``order_mismatches``: same id, different side, quantity,
  price, fee or symbol. Must be empty.
* ``unjournaled_orders``: an order the venue received that the journal never had
  (journal-first broken). Must be empty.
* ``status_mismatches``: the journal says an order finished one way, the venue
  another (or the journal says it traded and the venue never had it). Must be empty.
* ``position_mismatches``: per symbol, the sum of journaled fills against the
  sum of the venue's fills, and against the node's reported positions when given.

Not failures but not settled either (Jepsen's ``:info``): ``unreconciled``
(the venue has news about an order the journal still has open: in flight, or
the executor reconciles it at its next start) and ``unsent`` (journaled and open,
the venue has not seen it yet). ``settled`` is true when both are empty.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from sniperbot.execution.executor import EXPIRED_UNSENT
from sniperbot.journal import TERMINAL_STATUSES, AheadLog, Journal, JournalError, reopens
from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.messages.control import position_key
from sniperbot.venues.sim.ledger import LedgerError, VenueLedger

_EPS = 1e-9


class CheckError(Exception):
    """The run directory cannot be checked (no journal, unreadable ledger)."""


class InvariantReport(msgspec.Struct, kw_only=True):
    """The outcome of one check; ``ok`` is False if any money invariant broke."""

    ok: bool
    settled: bool
    venues: list[str]
    orders_journaled: int
    orders_at_venue: int
    fills_journaled: int
    fills_at_venue: int
    duplicate_submissions: int
    duplicate_orders: list[str]
    lost_fills: list[str]
    phantom_fills: list[str]
    fill_mismatches: list[str]
    unjournaled_orders: list[str]
    order_mismatches: list[str]
    status_mismatches: list[str]
    position_mismatches: list[str]
    unreconciled: list[str]
    unsent: list[str]
    positions: dict[str, float]
    venue_positions: dict[str, float]
    problems: list[str]


class _Book:
    """Orders, fills and last statuses of one witness, for one venue."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.order_counts: Counter[str] = Counter()
        self.accepted_counts: Counter[str] = Counter()
        self.fills: dict[str, Fill] = {}
        self.fill_counts: Counter[str] = Counter()
        self.status: dict[str, tuple[str, str]] = {}

    def is_news(self, record: Order | OrderUpdate | Fill) -> bool:
        """Whether ``record`` adds to what this book has (an order or fill it lacks, a status change)."""
        if isinstance(record, Order):
            return record.client_order_id not in self.orders
        if isinstance(record, Fill):
            return record.fill_id not in self.fills
        previous = self.status.get(record.client_order_id, ("", ""))[0]
        return previous != record.status and not reopens(previous, record.status)

    def add(self, record: Order | OrderUpdate | Fill) -> None:
        if isinstance(record, Order):
            self.order_counts[record.client_order_id] += 1
            self.orders.setdefault(record.client_order_id, record)
        elif isinstance(record, Fill):
            self.fill_counts[record.fill_id] += 1
            self.fills.setdefault(record.fill_id, record)
        else:
            cid = record.client_order_id
            if record.status == "accepted":
                self.accepted_counts[cid] += 1
            previous = self.status.get(cid, ("", ""))[0]
            # The journal's status index's rule: nothing reopens a finished order.
            if not reopens(previous, record.status):
                self.status[cid] = (record.status, record.reason)


def _positions(fills: Iterable[Fill]) -> dict[str, float]:
    """Signed quantity per ``"venue:symbol"`` (:func:`position_key`, as ``admin status`` keys them)."""
    out: dict[str, float] = {}
    for f in fills:
        key = position_key(f.venue, f.symbol)
        out[key] = out.get(key, 0.0) + (f.quantity if f.side == "buy" else -f.quantity)
    return {s: q for s, q in sorted(out.items())}


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=_EPS)


def _same_fill(a: Fill, b: Fill) -> bool:
    return (
        (a.client_order_id, a.symbol, a.side, a.venue) == (b.client_order_id, b.symbol, b.side, b.venue)
        and _close(a.quantity, b.quantity)
        and _close(a.price, b.price)
        and _close(a.fee, b.fee)
    )


def check(
    journal: Journal,
    ledgers: Mapping[str, VenueLedger],
    node_positions: Mapping[str, float] | None = None,
    skip: Iterable[str] = (),
    logged: Iterable[Order | OrderUpdate | Fill] = (),
) -> InvariantReport:
    """Compare an open journal with open venue ledgers (venue name -> ledger).

    ``node_positions`` (``"venue:symbol"`` -> signed quantity, as ``admin status`` reports them)
    are compared with the sum of journaled fills when given. Venues in ``skip`` (checked against
    their exchange instead) are left out of every comparison. ``logged``: what the executors'
    write-ahead logs hold (:meth:`AheadLog.read_all`, read before the journal): journaled too,
    where LMDB does not have it yet.
    """
    skipped = set(skip)
    if skipped and node_positions is not None:
        node_positions = {k: v for k, v in node_positions.items() if k.split(":", 1)[0] not in skipped}
    ours: dict[str, _Book] = {venue: _Book() for venue in ledgers}
    all_fills: list[Fill] = []
    for _, record in journal.records():
        if isinstance(record, Fill) and record.venue not in skipped:
            all_fills.append(record)
        book = ours.get(record.venue)
        if book is not None:
            book.add(record)
    for record in logged:
        book = ours.get(record.venue)
        if book is not None and book.is_news(record):
            book.add(record)
            if isinstance(record, Fill):
                all_fills.append(record)
    r = InvariantReport(
        ok=True,
        settled=True,
        venues=sorted(ledgers),
        orders_journaled=0,
        orders_at_venue=0,
        fills_journaled=0,
        fills_at_venue=0,
        duplicate_submissions=0,
        duplicate_orders=[],
        lost_fills=[],
        phantom_fills=[],
        fill_mismatches=[],
        unjournaled_orders=[],
        order_mismatches=[],
        status_mismatches=[],
        position_mismatches=[],
        unreconciled=[],
        unsent=[],
        positions=_positions(all_fills),
        venue_positions={},
        problems=[],
    )
    venue_fills: list[Fill] = []
    for venue, ledger in sorted(ledgers.items()):
        theirs = _Book()
        for _, record in ledger.records():
            theirs.add(record)
        venue_fills.extend(theirs.fills.values())
        r.duplicate_submissions += sum(ledger.duplicates().values())
        _compare(ours[venue], theirs, r)
    r.venue_positions = _positions(venue_fills)
    if not (r.unreconciled or r.unsent):
        for symbol in sorted(set(r.positions) | set(r.venue_positions)):
            a, b = r.positions.get(symbol, 0.0), r.venue_positions.get(symbol, 0.0)
            if not _close(a, b):
                r.position_mismatches.append(f"{symbol}: journal {a:g} != venue {b:g}")
    if node_positions is not None:
        for symbol in sorted(set(r.positions) | set(node_positions)):
            a, b = r.positions.get(symbol, 0.0), float(node_positions.get(symbol, 0.0))
            if not _close(a, b):
                r.position_mismatches.append(f"{symbol}: journal {a:g} != node status {b:g}")
    _conclude(r)
    return r


def _compare(ours: _Book, theirs: _Book, r: InvariantReport) -> None:
    """Add one venue's differences between the journal (ours) and its ledger (theirs)."""
    r.orders_journaled += len(ours.orders)
    r.orders_at_venue += len(theirs.orders)
    r.fills_journaled += len(ours.fills)
    r.fills_at_venue += len(theirs.fills)
    filled: dict[str, float] = {}
    for fill in theirs.fills.values():
        filled[fill.client_order_id] = filled.get(fill.client_order_id, 0.0) + fill.quantity
    for cid, order in theirs.orders.items():
        executed_twice = (
            theirs.order_counts[cid] > 1
            or theirs.accepted_counts[cid] > 1
            or filled.get(cid, 0.0) > order.quantity * (1 + 1e-9) + _EPS
        )
        if executed_twice:
            r.duplicate_orders.append(cid)
        mine = ours.orders.get(cid)
        if mine is None:
            r.unjournaled_orders.append(cid)
        elif mine != order:
            r.order_mismatches.append(cid)
    for fid, fill in theirs.fills.items():
        mine_fill = ours.fills.get(fid)
        if mine_fill is None:
            if ours.status.get(fill.client_order_id, ("", ""))[0] in TERMINAL_STATUSES:
                r.lost_fills.append(fid)
            else:
                r.unreconciled.append(fill.client_order_id)
        elif not _same_fill(mine_fill, fill):
            r.fill_mismatches.append(fid)
    for fid, count in ours.fill_counts.items():
        if count > 1:
            r.duplicate_orders.append(f"journal fill {fid} x{count}")
        if fid not in theirs.fills:
            r.phantom_fills.append(fid)
    for cid in ours.orders:
        status, reason = ours.status.get(cid, ("", ""))
        at_venue = theirs.status.get(cid)
        if at_venue is None:
            if status in ("", "accepted"):
                r.unsent.append(cid)
            elif not (status == "cancelled" and reason == EXPIRED_UNSENT):
                r.status_mismatches.append(f"{cid}: journal {status}, venue never received it")
            continue
        venue_status = at_venue[0]
        if status == venue_status:
            continue
        if status in ("", "accepted"):
            if venue_status != "accepted":
                r.unreconciled.append(cid)
        else:
            r.status_mismatches.append(f"{cid}: journal {status}, venue {venue_status}")
    r.unreconciled = sorted(set(r.unreconciled))


def _conclude(r: InvariantReport) -> None:
    checks = [
        ("duplicate_orders", "orders executed more than once at the venue"),
        ("lost_fills", "venue fills missing from the journal"),
        ("phantom_fills", "journaled fills the venue never made"),
        ("fill_mismatches", "fills that differ between journal and venue"),
        ("unjournaled_orders", "orders the venue received that were never journaled"),
        ("order_mismatches", "orders that differ between journal and venue"),
        ("status_mismatches", "orders finished differently in journal and venue"),
        ("position_mismatches", "positions that are not the sum of journaled fills"),
    ]
    for field, what in checks:
        bad: list[str] = getattr(r, field)
        if bad:
            # Each line starts with the invariant's name, so an operator can look it up above.
            r.problems.append(
                f"{field}: {len(bad)} {what}: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}"
            )
    r.ok = not r.problems
    r.settled = not (r.unreconciled or r.unsent)


def venues_in(run_dir: str | Path) -> list[str]:
    """Names of the venues that keep a ledger in ``run_dir``."""
    return sorted(p.parent.name.removeprefix("venue-") for p in Path(run_dir).glob("venue-*/data.mdb"))


def check_run_dir(
    run_dir: str | Path,
    node_positions: Mapping[str, float] | None = None,
    exclude: Iterable[str] = (),
) -> InvariantReport:
    """Open a run directory's journal and venue ledgers read-only (node running or not) and check.

    ``exclude``: venues not checked here (a live venue's witness is its exchange,
    :mod:`sniperbot.chaos.exchange`, not its gateway's ledger); their positions are not compared.
    """
    skipped = set(exclude)
    try:
        # The logs first: what an executor commits to LMDB after this read is in LMDB when it is read.
        logged = AheadLog.read_all(Path(run_dir) / "journal")
        journal = Journal.open(Path(run_dir), readonly=True)
    except JournalError as e:
        raise CheckError(str(e)) from e
    ledgers: dict[str, VenueLedger] = {}
    try:
        for venue in venues_in(run_dir):
            if venue not in skipped:
                ledgers[venue] = VenueLedger.open(run_dir, venue, readonly=True)
        if not ledgers:
            raise CheckError(f"no venue ledger in {run_dir} (venue-<name>/): nothing to check against")
        return check(journal, ledgers, node_positions, skipped, logged)
    except (JournalError, LedgerError) as e:
        raise CheckError(str(e)) from e
    finally:
        for ledger in ledgers.values():
            ledger.close()
        journal.close()


def report_dict(report: InvariantReport) -> dict[str, Any]:
    """The report as plain data (for JSON)."""
    return msgspec.to_builtins(report)
