"""The journal's cold store: completed orders and reports older than a horizon, moved out of LMDB.

A node that trades for weeks keeps its hot journal bounded: :func:`archive_step` moves the oldest
records, in small batches, into one append-only file per UTC day of the records' ``ts_ns``
(``<run dir>/archive/YYYY-MM-DD.sba``), then deletes them from the hot log.

What moves (decided here, one place): a contiguous prefix of the log, never its last record, in which
every record is older than the horizon and is a token safety report or belongs to an order whose
journaled status is terminal (:data:`~sniperbot.journal.TERMINAL_STATUSES`), or to no journaled order
at all. The first record that does not qualify (an open order, a recent one) stops the batch: an order
still open after the horizon holds back the archive behind it (the ``held by`` of :class:`StepResult`;
the archiver logs it) rather than leaving holes in the log, whose seqs stay contiguous.

What leaves with the records, in the transaction that deletes them (:meth:`Journal.drop_archived`),
so that the hot journal is bounded by the horizon's records and not by the history (decided here):

* Their contribution to the aggregates moves into a stored **base** (the ``archived`` database): the
  totals every restore reads (:meth:`Journal.snapshot`) do not change, and ``verify`` folds the hot log
  onto the base and must get them exactly; ``verify_archive`` folds the archive and must get the base.
* Their ``by_strategy`` keys; :meth:`Journal.strategy_records` reads a strategy's archived records from
  the archive files (the sniper's restore: O(archive); every other restore is O(keys)).
* The dedup and status entries of archived orders (``orders``, ``status``): a client order id is never
  reused (node life + intent seq, kept in ``intents`` and the aggregates, which stay), an Order is only
  ever resent from the recent tail (the risk guard's unacknowledged intents, the executor's republish
  window), so an id older than the horizon never comes back as an Order. A venue's late report of an
  archived order is journaled as a record of no hot order (harmless: the ``open`` index is only ever
  added to by an Order) and archived in turn. ``order``/``order_status`` of an archived order: None.
* The dedup entries of archived fills (``fills``), **except** those within :data:`FILL_DEDUP_KEEP_NS`
  of their instrument's latest fill: a live venue's trade catch-up re-reads the fills just before the
  latest journaled one (however long the instrument has been idle), and those must stay duplicates. A
  venue re-delivering any other fill older than the horizon (7 days by default) is not a thing venues
  do; such a fill would be journaled as new. ``bench/journal_archive.py`` shows the hot journal flat
  from the horizon on (was ~226 B per fill forever when the entries stayed).

What stays hot: everything of the horizon and of open orders; per strategy, venue, instrument and day
the aggregates and their base, and ``intents`` (O(keys)); the few kept fill entries above.

File format (a senior engineer can read it with ten lines of Python): a sequence of frames, each
``b"SBA1"`` + big-endian u64 first seq + u64 last seq + u32 body length + u32 CRC-32 of the body + body,
where the body is the zlib-compressed msgpack of ``[[seq, record msgpack bytes], ...]`` (the records
byte-for-byte as LMDB held them) in increasing seq order. The seq range in the header lets a reader of
the tail skip older frames without decompressing them. A frame is written and fsync'd (and a new
file's directory too) *before* the transaction that deletes its records from LMDB commits, so a kill -9
at any point loses nothing: at worst a record is both archived and still hot (a retry archives it
again), and readers deduplicate by seq. A torn frame at the end of a file (a crash mid-write) was
never followed by the delete: readers ignore it and the next writer truncates it. A bad frame anywhere
else is damage and raises :class:`~sniperbot.journal.JournalError` naming the file and offset.

Readers, decided one by one: :meth:`Journal.records` (and ``fills()``/``orders()`` on it) reads the
archive transparently below the floor, so every reader of the whole history sees it unchanged — the
API and Telegram views, ``sniperbot journal``, ``replay``, the chaos invariants. Restores read the
aggregates (:meth:`Journal.snapshot`, unchanged by archiving) and the hot tail after them. A reader of
the tail (the executor's republish window, the API following new records, the portfolio's catch-up, a
live gateway's fill scan) reads the archive only when its position is below the floor, from the frames
after it. The index lookups answer from the hot indexes (above: what left them).

Disk: LMDB reuses the pages a delete frees but never shrinks its file, so the hot ``data.mdb`` stays at
its high-water mark, which archiving keeps at about the horizon's worth of records plus the indexes
(``bench/journal_archive.py`` measures both). A journal that grew before archiving was on (or a burst)
is shrunk by ``sniperbot journal compact`` while the node is stopped.
"""

from __future__ import annotations

import heapq
import os
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from sniperbot.journal.store import JournalError, JournalRecord
from sniperbot.messages import Fill, Order, OrderUpdate

if TYPE_CHECKING:
    from sniperbot.journal.store import Journal

__all__ = [
    "ARCHIVE_DIR",
    "DEFAULT_BATCH",
    "SUFFIX",
    "StepResult",
    "archive_dir",
    "archive_files",
    "archive_step",
    "archive_until_done",
    "in_archive",
    "read_archive",
]

ARCHIVE_DIR = "archive"
SUFFIX = ".sba"
DEFAULT_BATCH = 128
"""Records per archive step: one fsync'd frame per day touched and one short LMDB write transaction."""

FILL_DEDUP_KEEP_NS = 86_400 * 1_000_000_000
"""An archived Fill within this of its instrument's latest fill keeps its ``fills`` entry (dedup) hot.

A venue's trade catch-up re-reads the fills just before the latest journaled one of each instrument
(the ccxt gateway's ``_TRADES_MARGIN_MS``, 60 s, before ``Book.last_fill_ts_ns``): those ids must still
be known however old they are (an instrument idle for longer than the horizon). A day covers any such
margin; the entries kept are at most an instrument's last day of fills."""

_MAGIC = b"SBA1"
_HEADER = struct.Struct(">4sQQII")  # magic, first seq, last seq, body length, CRC-32 of the body
_NS_PER_DAY = 86_400 * 1_000_000_000
_encoder = msgspec.msgpack.Encoder()
_frame_decoder = msgspec.msgpack.Decoder(list[tuple[int, bytes]])
_record_decoder = msgspec.msgpack.Decoder(JournalRecord)


class StepResult(NamedTuple):
    """What one :func:`archive_step` did: records moved, the new floor, and what holds the archive back."""

    archived: int
    floor: int
    held_by: str  # "" when the batch was full or reached the horizon; else what stopped it


def archive_dir(journal_path: Path) -> Path:
    """The archive directory beside the journal: ``<run dir>/archive``."""
    return journal_path.parent / ARCHIVE_DIR


def archive_files(directory: Path) -> list[Path]:
    """The day files of an archive directory, oldest day first ([] if there is none)."""
    try:
        return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))
    except FileNotFoundError:
        return []


def _frames(path: Path, after_seq: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(end offset, body)`` of each whole frame of ``path`` holding a seq > ``after_seq`` (others are
    skipped unread); stops at a torn tail, raises on damage."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            f.seek(offset)
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return  # torn tail: a header cut short by a crash
            magic, _first, last, length, crc = _HEADER.unpack(header)
            end = offset + _HEADER.size + length
            if magic == _MAGIC and end <= size and last <= after_seq:
                offset = end  # older than asked: skipped (a torn or bad one can only be the last)
                continue
            body = f.read(length) if magic == _MAGIC else b""
            if magic != _MAGIC or len(body) < length or zlib.crc32(body) != crc:
                f.seek(offset)
                rest = f.read()
                if end >= size or (magic != _MAGIC and not rest.strip(b"\0")):
                    return  # torn tail: the last frame never completed (its records are still hot)
                raise JournalError(f"archive {path} is damaged at byte {offset}: bad frame")
            yield end, body
            offset = end


def _valid_end(path: Path) -> int:
    """Where the last whole frame ends (frames are checked, not decompressed)."""
    ends = [end for end, _ in _frames(path)]
    return ends[-1] if ends else 0


def read_file(path: Path, after_seq: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(seq, record bytes)`` of one day file, in the order written (frames before ``after_seq`` skipped)."""
    for _, body in _frames(path, after_seq):
        try:
            entries = _frame_decoder.decode(zlib.decompress(body))
        except (zlib.error, msgspec.DecodeError, ValueError) as e:
            raise JournalError(f"archive {path}: a frame cannot be decoded: {e}") from None
        yield from entries


def read_archive(
    directory: Path, after_seq: int = 0, through_seq: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """``(seq, record bytes)`` with ``after_seq < seq <= through_seq`` from every day file, by seq, once each.

    Each file holds increasing seqs (a retried step may repeat some), so a merge by seq with
    duplicates dropped gives the log's order.
    """
    streams = [read_file(p, after_seq) for p in archive_files(directory)]
    last = after_seq
    for seq, raw in heapq.merge(*streams, key=lambda entry: entry[0]):
        if seq <= last:
            continue
        if through_seq is not None and seq > through_seq:
            break
        last = seq
        yield seq, raw


def in_archive(journal_path: Path, records: Sequence[Order | OrderUpdate | Fill]) -> list[bool]:
    """For each of ``records``, whether the archive beside ``journal_path`` holds it (an order by client
    order id, a fill by id, an update by order and status). Reads only the day files of the records'
    own days (a record is archived into the file of its ``ts_ns``'s day)."""
    directory = archive_dir(journal_path)
    held: set[tuple[str, ...]] = set()
    for day in sorted({_day(r.ts_ns) for r in records}):
        path = directory / f"{day}{SUFFIX}"
        if path.is_file():
            for _, raw in read_file(path):
                held.add(_identity(_record_decoder.decode(raw)))
    return [_identity(r) in held for r in records]


def _identity(record: JournalRecord) -> tuple[str, ...]:
    if isinstance(record, Order):
        return ("order", record.client_order_id)
    if isinstance(record, Fill):
        return ("fill", record.fill_id)
    if isinstance(record, OrderUpdate):
        return ("update", record.client_order_id, record.status)
    return ("report",)


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(max(ts_ns, 0) // 1_000_000_000, UTC).strftime("%Y-%m-%d")


def _append_frame(path: Path, entries: list[tuple[int, bytes]]) -> None:
    """Append one frame and fsync it (and the directory, for a new file) before returning."""
    body = zlib.compress(_encoder.encode(entries), 6)
    frame = _HEADER.pack(_MAGIC, entries[0][0], entries[-1][0], len(body), zlib.crc32(body)) + body
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        # Cut a torn frame a crash left at the end: appending after it would bury it mid-file.
        end = 0 if created else _valid_end(path)
        os.ftruncate(fd, end)
        os.lseek(fd, end, os.SEEK_SET)
        view = memoryview(frame)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def archive_step(
    journal: Journal, horizon_s: float, *, now_ns: int | None = None, batch: int = DEFAULT_BATCH
) -> StepResult:
    """Move up to ``batch`` records older than ``horizon_s`` from the hot journal to the archive.

    Files first (fsync'd), LMDB delete second, in one short write transaction: trading writers wait
    at most that one transaction.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    cutoff = now_ns - int(horizon_s * 1_000_000_000)
    floor, candidates, held_by = journal.archive_candidates(cutoff, batch)
    if not candidates:
        return StepResult(0, floor, held_by)
    directory = archive_dir(journal.path)
    directory.mkdir(mode=0o700, exist_ok=True)
    by_day: dict[str, list[tuple[int, bytes]]] = {}
    for seq, raw, record in candidates:
        by_day.setdefault(_day(record.ts_ns), []).append((seq, raw))
    for day, entries in sorted(by_day.items()):
        _append_frame(directory / f"{day}{SUFFIX}", entries)
    # Only now, every frame fsync'd: the delete, the base and the index pruning in one transaction.
    new_floor = journal.drop_archived(
        floor, [(seq, record) for seq, _, record in candidates], FILL_DEDUP_KEEP_NS
    )
    return StepResult(len(candidates), new_floor, held_by)


def archive_until_done(journal: Journal, horizon_s: float, *, batch: int = DEFAULT_BATCH) -> StepResult:
    """Archive step after step until nothing more qualifies (offline use: the CLI, benches)."""
    total = 0
    while True:
        step = archive_step(journal, horizon_s, batch=batch)
        total += step.archived
        if step.archived < batch:
            return StepResult(total, step.floor, step.held_by)
