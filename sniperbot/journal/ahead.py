"""The executor's write-ahead log: an order or a venue's answer durable in one device flush.

With "fsync" durability an LMDB commit costs two device flushes: its data pages, then
the meta page that points at them (:data:`sniperbot.journal.store.Durability`). An
order must be durable before it goes to a venue, and an answer before anyone hears of
it; those flushes were the largest part of the tick-to-trade path. So the executor
(:mod:`sniperbot.execution.executor`) writes each here first: one append and one
``fdatasync`` into a file whose blocks were written at creation, so that no size or
extent change has to be made durable with it. Then it sends or publishes, and commits
to LMDB after that (the order together with its first answer). LMDB stays the journal
every reader uses; this log covers only the moments between a send or a publish and
that commit. Measured on the dev VM's ext4: this append p50 121 µs, p99 183 µs; an
LMDB commit of one order with both flushes p50 376 µs, p99 849 µs.

Rules:

* **One log per writer**, ``run_dir/journal/ahead/<writer>.log`` (the executor's actor
  id), held with an exclusive ``flock``: a second incarnation of the same writer cannot
  write it at the same time (an abandoned thread incarnation, a stray process).
* **Recovery** (the writer's :meth:`AheadLog.open`, and the node's start for every log no
  live writer holds, :meth:`AheadLog.recover_all`): every record of the current
  generation that is news to the journal (:meth:`Journal.unseen`: orders and fills by
  id, updates that change a status; and not in the archive, which a finished order can
  reach before its log generation ends) is appended to it, in the order written, with
  both flushes. A writer killed between a send and the LMDB commit, or a power loss, never
  leaves a sent order or a published answer out of the journal; the executor then
  reconciles the order with the venue like any other unfinished one.
* **Generations.** The file starts with a header (a random 64-bit generation and its
  CRC); a record is ``generation, length, crc32`` then one encoded record. Reading
  stops at the first record of another generation, of a bad CRC or of length zero: a
  torn last write (its flush never returned, so nothing in it was sent or published)
  or what an older generation left behind. When a write would not fit, what LMDB lacks
  of the log (orders awaiting their answer, named by the writer) is committed to it and
  the journal synced, meta pages included; only then does a new generation start at
  the top of the file. So a damaged header (a crash during that header's write) hides
  nothing LMDB does not have durably: the log then starts a new generation.
* **Space is taken at creation** (:data:`CAPACITY` bytes, written and flushed), so a
  full disk fails the open with a :class:`JournalError` naming the file, never an
  append on the order path.

Readers use LMDB: ``sniperbot journal`` and the actors see what a crash left only in a log
once a node or its executor starts again and recovers it; the money invariant checker
(:func:`sniperbot.chaos.check_run_dir`) reads the logs too (:meth:`AheadLog.read_all`).

"process" durability needs none of this: a commit there is in the page cache when it
returns, which survives the death of any process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import msgspec

from sniperbot.journal.archive import in_archive
from sniperbot.journal.store import Journal, JournalError
from sniperbot.messages import Fill, Order, OrderUpdate

__all__ = ["CAPACITY", "AheadLog", "Logged"]

CAPACITY = 1 << 20
"""Bytes of one log file: about 1,000 orders with their answers between two resets (a reset costs a
journal sync and one flush here)."""

_HEADER = struct.Struct("<QI")  # generation, crc32 of the generation's 8 bytes
_RECORD = struct.Struct("<QII")  # generation, payload length, crc32 of the payload
_FIRST = 64  # records start here: the header has its own sector-aligned block
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Order | OrderUpdate | Fill)

Logged = Order | OrderUpdate | Fill
"""What the log holds: the executor's orders and the venue's answers."""


class AheadLog:
    """One writer's write-ahead log of orders and answers; create it with :meth:`open`."""

    def __init__(self, path: Path, fd: int, journal: Journal, generation: int) -> None:
        """Use :meth:`open`."""
        self.path = path
        self._fd = fd
        self._journal = journal
        self._generation = generation
        self._offset = _FIRST
        self.recovered: list[Logged] = []
        """The records that recovery appended to the journal at open (news to it)."""

    @classmethod
    def open(cls, journal: Journal, writer: str) -> AheadLog:
        """Open (creating) ``writer``'s log beside ``journal``, recover it, start a new generation."""
        directory = journal.path / "ahead"
        path = directory / f"{writer}.log"
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise JournalError(f"write-ahead log {path}: cannot open: {e.strerror}") from None
        try:
            if not _lock(fd):
                raise JournalError(f"write-ahead log {path} is held by another incarnation of {writer!r}")
            if created or os.fstat(fd).st_size < CAPACITY:
                _allocate(fd, path, directory)
            log = cls(path, fd, journal, 0)
            log.recovered = _recover(fd, path, journal)
            log._reset()
        except BaseException:
            os.close(fd)
            raise
        return log

    @staticmethod
    def recover_all(journal: Journal) -> list[Logged]:
        """Recover every log beside ``journal`` that no live writer holds (a node's start: a writer
        killed and never restarted, a venue removed from the config); the records appended."""
        recovered: list[Logged] = []
        for fd, path in _each_log(journal.path, os.O_RDWR):
            if _lock(fd):  # a held one belongs to a live writer: it commits or its successor recovers
                recovered += _recover(fd, path, journal)
        return recovered

    @staticmethod
    def read_all(journal_dir: Path) -> list[Logged]:
        """What every log in ``journal_dir / "ahead"`` holds in its current generation, read-only and
        without locks (a live writer's log included; LMDB may have some or all of it): for a checker
        that counts a record as journaled once it is durable anywhere."""
        records: list[Logged] = []
        for fd, path in _each_log(Path(journal_dir), os.O_RDONLY):
            records += _read(fd, path)
        return records

    def write(self, records: Sequence[Logged], unsettled: Iterable[Logged] = ()) -> bool:
        """Make ``records`` durable here, in one ``fdatasync``; send or publish them only after this.

        ``unsettled``: records written here before that LMDB does not have yet (orders sent and
        awaiting their answer, answers published and not committed). When this write needs a new
        generation they are committed to LMDB first, with both flushes, and it returns True: the
        caller must not commit them again. A reset never drops what only this log held.
        """
        payloads = [_encoder.encode(r) for r in records]
        size = sum(_RECORD.size + len(p) for p in payloads)
        if _FIRST + size > CAPACITY:
            raise JournalError(f"write-ahead log {self.path}: {len(payloads)} records do not fit in it")
        reset = self._offset + size > CAPACITY
        if reset:
            unsettled = list(unsettled)
            if unsettled:
                self._journal.append_many(unsettled)  # durable, meta page and every commit before it
            else:
                self._journal.sync()
            self._reset()
        block = b"".join(_RECORD.pack(self._generation, len(p), zlib.crc32(p)) + p for p in payloads)
        try:
            os.pwrite(self._fd, block, self._offset)
            os.fdatasync(self._fd)
        except OSError as e:
            raise JournalError(f"write-ahead log {self.path}: write failed: {e.strerror}") from None
        self._offset += len(block)
        return reset

    def close(self) -> None:
        """Release the file (and its lock); idempotent."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def _reset(self) -> None:
        """Start a new generation at the top of the file (its header flushed before any record)."""
        generation = int.from_bytes(os.urandom(8), "little") or 1
        head = generation.to_bytes(8, "little")
        try:
            os.pwrite(self._fd, _HEADER.pack(generation, zlib.crc32(head)), 0)
            os.fdatasync(self._fd)
        except OSError as e:
            raise JournalError(f"write-ahead log {self.path}: cannot reset: {e.strerror}") from None
        self._generation = generation
        self._offset = _FIRST


def _each_log(journal_dir: Path, mode: int) -> Iterator[tuple[int, Path]]:
    """Each log file beside a journal, opened with ``mode`` (closed after its turn), in name order."""
    directory = journal_dir / "ahead"
    for path in sorted(directory.glob("*.log")) if directory.is_dir() else ():
        try:
            fd = os.open(path, mode | os.O_CLOEXEC)
        except OSError as e:
            raise JournalError(f"write-ahead log {path}: cannot open: {e.strerror}") from None
        try:
            yield fd, path
        finally:
            os.close(fd)


def _lock(fd: int) -> bool:
    """Take the file's exclusive lock; False if another open file (a live writer) holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _recover(fd: int, path: Path, journal: Journal) -> list[Logged]:
    """Append to ``journal`` every record of the file's current generation that is news to it (by
    :meth:`Journal.unseen`, in the order written); those records."""
    missing = journal.unseen(_read(fd, path))
    if missing:
        # Archiving removes a finished order from LMDB, and a log generation can outlive that (a
        # writer that ran for days without filling its log): what the archive holds is not news.
        missing = [r for r, held in zip(missing, in_archive(journal.path, missing), strict=True) if not held]
    if missing:
        journal.append_many(missing)
    return missing


def _read(fd: int, path: Path) -> list[Logged]:
    """The records of the file's current generation, in the order written."""
    data = os.pread(fd, CAPACITY, 0)
    if len(data) < _FIRST:
        return []  # never allocated: nothing was ever logged in it
    generation, crc = _HEADER.unpack_from(data, 0)
    if generation == 0 or zlib.crc32(data[:8]) != crc:
        return []  # never written, or a reset cut short: everything was durable in LMDB before it
    records: list[Logged] = []
    offset = _FIRST
    while offset + _RECORD.size <= len(data):
        gen, length, crc = _RECORD.unpack_from(data, offset)
        start = offset + _RECORD.size
        if gen != generation or length == 0 or start + length > len(data):
            break
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            break  # a torn last write: its flush never returned, nothing in it was sent or published
        try:
            records.append(_decoder.decode(payload))
        except msgspec.DecodeError as e:
            raise JournalError(f"write-ahead log {path}: record at byte {offset}: {e}") from None
        offset = start + length
    return records


def _allocate(fd: int, path: Path, directory: Path) -> None:
    """Write the file's blocks and flush them, file and directory: later appends change no metadata."""
    try:
        if os.pwrite(fd, bytes(CAPACITY), 0) < CAPACITY:
            raise OSError(28, os.strerror(28))  # a short write: the device is full (ENOSPC)
        os.fsync(fd)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # a half-written file would hide the full disk until the next open
        raise JournalError(f"write-ahead log {path}: cannot reserve {CAPACITY} bytes: {e.strerror}") from None
