"""The paper venue's own books: what the exchange received, did and filled, durable in LMDB.

A real exchange's records do not live in our journal, so the paper venue keeps its
own, in a separate LMDB environment at ``run_dir / f"venue-{venue}"`` (files 0600).
The executor's journal and this ledger are two independent witnesses of the same
trades; the chaos checker (``sniperbot.chaos.invariants``) compares them.

Layout (named databases):

* ``log``: seq (8-byte big-endian, contiguous from 1) -> msgpack of the tagged record
  (``Order`` when received, then its ``OrderUpdate``\\s and ``Fill``\\s), in the order the
  venue did them.
* ``orders``: ``client_order_id`` -> msgpack :class:`_Entry` (seq of the Order, last
  status and reason, seqs of its fills, filled quantity). Also the duplicate check.
* ``fills``: ``fill_id`` -> seq of the Fill.
* ``duplicates``: ``client_order_id`` -> how many times an order with this id was
  submitted again and refused (8-byte big-endian count).
* ``meta``: the format version.

Every :meth:`VenueLedger.record` is one write transaction: the venue answers only
after it committed, so what the executor hears has happened for good, and what was
not committed never happened (a crash before the commit loses nothing anyone saw).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

import lmdb
import msgspec

from sniperbot.journal.lmdbfile import check_before_open, check_mapped_size
from sniperbot.journal.store import reopens
from sniperbot.messages import Fill, Order, OrderUpdate

__all__ = [
    "LedgerError",
    "LedgerOrder",
    "LedgerRecord",
    "VenueLedger",
    "close_shared_ledgers",
    "shared_ledger",
    "venue_ledger_dir",
    "venue_ledgers",
]

LedgerRecord = Order | OrderUpdate | Fill
"""What the ledger's log holds."""

_FORMAT = b"1"
_DB_NAMES = (b"log", b"orders", b"fills", b"duplicates", b"meta")
_MAP_SIZE = 16 * 1024**3  # virtual reservation; the file grows with the data
_MAX_ATTEMPTS = 64
_READ_BATCH = 1024

_T = TypeVar("_T")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Order | OrderUpdate | Fill)

# LMDB must not be opened twice in one process (LMDB-04): path -> pid that holds it.
_open_paths: dict[str, int] = {}
_open_lock = threading.Lock()


class LedgerError(Exception):
    """The venue ledger cannot be opened, is misused, or holds data it cannot read."""


class _Entry(msgspec.Struct, array_like=True):
    """Per-order state kept next to the log, updated in the same transaction."""

    seq: int
    status: str = "received"
    reason: str = ""
    fill_seqs: list[int] = []
    filled: float = 0.0


_entry_decoder = msgspec.msgpack.Decoder(_Entry)


class LedgerOrder(NamedTuple):
    """Everything the venue knows about one order."""

    order: Order
    status: str
    reason: str
    fills: list[Fill]


def venue_ledger_dir(run_dir: str | os.PathLike[str], venue: str) -> Path:
    """Where the ledger of ``venue`` lives inside a run directory."""
    return Path(run_dir) / f"venue-{venue}"


def venue_ledgers(run_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Venue name -> ledger directory, for every venue ledger directory in ``run_dir``."""
    prefix = venue_ledger_dir(run_dir, "").name
    return {p.name[len(prefix) :]: p for p in sorted(Path(run_dir).glob(prefix + "*")) if p.is_dir()}


def _seq_key(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def _decode(seq: int, raw: bytes) -> LedgerRecord:
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, ValueError, RecursionError) as e:
        # ValueError: msgspec raises UnicodeDecodeError for invalid UTF-8 in a string.
        raise LedgerError(f"ledger record at seq {seq} cannot be decoded: {e}") from None


class VenueLedger:
    """The durable record of one venue; create it with :meth:`open`. Thread-safe."""

    def __init__(self, env: lmdb.Environment, path: Path, key: str, readonly: bool) -> None:
        self._env = env
        self._path = path
        self._key = key
        self._readonly = readonly
        self._lock = threading.Lock()
        self._dbs: dict[bytes, lmdb._Database] | None = None
        self._closed = False

    @classmethod
    def open(
        cls,
        run_dir: str | os.PathLike[str],
        venue: str,
        *,
        readonly: bool = False,
        durability: Literal["fsync", "process"] = "fsync",
    ) -> VenueLedger:
        """Open (creating unless ``readonly``) the ledger of ``venue`` in ``run_dir``.

        ``durability`` has the journal's meaning: ``fsync`` survives power loss,
        ``process`` survives the crash of any process. The file gets the journal's
        checks before any data page is read (:mod:`sniperbot.journal.lmdbfile`): a
        truncated or garbage ledger is a :class:`LedgerError`, never a SIGBUS.
        """
        path = venue_ledger_dir(run_dir, venue)
        if readonly and not (path / "data.mdb").is_file():
            raise LedgerError(f"no venue ledger at {path}")
        problem = check_before_open(path, must_exist=readonly)
        if problem is not None:
            raise LedgerError(f"venue ledger {problem}")
        if not readonly:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = os.path.realpath(path)
        with _open_lock:
            if key in _open_paths:
                raise LedgerError(
                    f"venue ledger {path} is already open in this process; share the open ledger"
                )
            _open_paths[key] = os.getpid()
        try:
            env = lmdb.open(
                str(path),
                map_size=_MAP_SIZE,
                max_dbs=len(_DB_NAMES),
                readonly=readonly,
                create=not readonly,
                sync=durability == "fsync",
                metasync=durability == "fsync",
                writemap=False,
                mode=0o600,
            )
        except lmdb.Error as e:
            with _open_lock:
                _open_paths.pop(key, None)
            raise LedgerError(f"cannot open venue ledger at {path}: {e}") from e
        ledger = cls(env, path, key, readonly)
        try:
            problem = check_mapped_size(env, path)
            if problem is not None:
                raise LedgerError(f"venue ledger {problem}")
            env.reader_check()  # free reader slots of crashed processes (LMDB-04)
            if not readonly:
                ledger._create_dbs()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _create_dbs(self) -> None:
        with self._env.begin(write=True) as txn:
            dbs = {name: self._env.open_db(name, txn=txn, create=True) for name in _DB_NAMES}
            fmt = txn.get(b"format", db=dbs[b"meta"])
            if fmt is None:
                txn.put(b"format", _FORMAT, db=dbs[b"meta"])
            elif fmt != _FORMAT:
                raise LedgerError(f"venue ledger {self._path} has format {fmt!r}, expected {_FORMAT!r}")
        self._dbs = dbs

    def _usable_dbs(self) -> dict[bytes, lmdb._Database] | None:
        if self._closed:
            raise LedgerError(f"venue ledger {self._path} is closed")
        if self._dbs is None:
            try:
                # Without a txn argument py-lmdb opens each in its own committed txn,
                # which keeps the handles valid for later transactions.
                self._dbs = {name: self._env.open_db(name, create=False) for name in _DB_NAMES}
            except lmdb.NotFoundError:
                return None  # a writer has not created them yet: the ledger is empty
        return self._dbs

    def _write(self, fn: Callable[[lmdb.Transaction, dict[bytes, lmdb._Database]], _T]) -> _T:
        with self._lock:
            if self._readonly:
                raise LedgerError(f"venue ledger {self._path} is open read-only")
            dbs = self._usable_dbs()
            assert dbs is not None
            for _ in range(_MAX_ATTEMPTS):
                try:
                    with self._env.begin(write=True) as txn:
                        return fn(txn, dbs)
                except lmdb.MapFullError:
                    self._env.set_mapsize(self._env.info()["map_size"] * 2)
                except lmdb.MapResizedError:
                    self._env.set_mapsize(0)
            raise LedgerError(f"venue ledger {self._path}: write failed after {_MAX_ATTEMPTS} attempts")

    def _read(self, fn: Callable[[lmdb.Transaction, dict[bytes, lmdb._Database]], _T], empty: _T) -> _T:
        with self._lock:
            dbs = self._usable_dbs()
            if dbs is None:
                return empty
            for _ in range(_MAX_ATTEMPTS):
                try:
                    with self._env.begin() as txn:
                        return fn(txn, dbs)
                except lmdb.MapResizedError:
                    self._env.set_mapsize(0)
            raise LedgerError(f"venue ledger {self._path}: read failed after {_MAX_ATTEMPTS} attempts")

    def verify(self) -> int:
        """Check the whole ledger: every record decodes and its indexes point at the right records.

        The node runs this at start for every ledger in its run dir. Returns the
        number of log records; raises :class:`LedgerError` naming the problem.
        """

        def check(txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database]) -> int:
            records: dict[int, LedgerRecord] = {}
            for key, value in txn.cursor(db=dbs[b"log"]):
                seq = int.from_bytes(key, "big")
                if seq != len(records) + 1:
                    raise LedgerError(f"venue ledger {self._path} has a gap before seq {seq}")
                try:
                    records[seq] = _decode(seq, bytes(value))
                except LedgerError as e:
                    raise LedgerError(f"venue ledger {self._path}: {e}") from None
            for cid, raw in txn.cursor(db=dbs[b"orders"]):
                try:
                    entry = _entry_decoder.decode(raw)
                except (msgspec.DecodeError, ValueError, RecursionError) as e:
                    where = f"venue ledger {self._path}: order entry {bytes(cid)[:40]!r}"
                    raise LedgerError(f"{where}: {e}") from None
                order = records.get(entry.seq)
                fills = [records.get(s) for s in entry.fill_seqs]
                if not (
                    isinstance(order, Order)
                    and order.client_order_id.encode() == cid
                    and all(isinstance(f, Fill) and f.client_order_id.encode() == cid for f in fills)
                ):
                    raise LedgerError(
                        f"venue ledger {self._path}: the orders index disagrees with the log "
                        f"at {bytes(cid)[:40]!r}"
                    )
            for fid, raw in txn.cursor(db=dbs[b"fills"]):
                fill = records.get(int.from_bytes(raw, "big"))
                if not (isinstance(fill, Fill) and fill.fill_id.encode() == fid):
                    raise LedgerError(
                        f"venue ledger {self._path}: the fills index disagrees with the log "
                        f"at {bytes(fid)[:40]!r}"
                    )
            return len(records)

        try:
            return self._read(check, 0)
        except lmdb.Error as e:
            raise LedgerError(f"venue ledger {self._path}: read failed: {e}") from e

    # ------------------------------------------------------------------ writing

    def record(self, records: Sequence[LedgerRecord]) -> list[LedgerRecord]:
        """Commit what the venue received and did, in one transaction; returns what was new.

        Idempotent like an exchange's books: an Order whose client order id is
        known, a Fill whose fill id is known, or an update that does not change
        the order's status is not written again. An update of an unknown order is
        refused (the venue only reports on its orders).
        """
        prepared = [(r, _encoder.encode(r)) for r in records]

        def put(txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database]) -> list[LedgerRecord]:
            log, orders, fills = dbs[b"log"], dbs[b"orders"], dbs[b"fills"]
            cur = txn.cursor(db=log)
            seq = int.from_bytes(cur.key(), "big") if cur.last() else 0
            entries: dict[bytes, _Entry] = {}
            new: list[LedgerRecord] = []

            def entry(cid: bytes) -> _Entry:
                if cid not in entries:
                    raw = txn.get(cid, db=orders)
                    if raw is None:
                        raise LedgerError(f"venue ledger has no order {cid.decode()!r}")
                    entries[cid] = _entry_decoder.decode(raw)
                return entries[cid]

            for record, payload in prepared:
                cid = record.client_order_id.encode()
                if isinstance(record, Order):
                    if cid in entries or txn.get(cid, db=orders) is not None:
                        continue
                    entries[cid] = _Entry(seq=seq + 1)
                elif isinstance(record, Fill):
                    fid = record.fill_id.encode()
                    if txn.get(fid, db=fills) is not None:
                        continue
                    e = entry(cid)
                    e.fill_seqs.append(seq + 1)
                    e.filled += record.quantity
                    txn.put(fid, _seq_key(seq + 1), db=fills)
                else:
                    e = entry(cid)
                    if e.status == record.status:
                        continue  # said already
                    if reopens(e.status, record.status):
                        continue  # a late update never reopens a finished order
                    e.status, e.reason = record.status, record.reason
                seq += 1
                if not txn.put(_seq_key(seq), payload, append=True, db=log):
                    raise LedgerError(f"venue ledger seq {seq} is not after the last one")
                new.append(record)
            for cid, e in entries.items():
                txn.put(cid, _encoder.encode(e), db=orders)
            return new

        return self._write(put)

    def count_duplicate(self, client_order_id: str) -> int:
        """Count one refused resubmission of ``client_order_id``; returns its count so far."""
        cid = client_order_id.encode()

        def put(txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database]) -> int:
            raw = txn.get(cid, db=dbs[b"duplicates"])
            count = (int.from_bytes(raw, "big") if raw else 0) + 1
            txn.put(cid, count.to_bytes(8, "big"), db=dbs[b"duplicates"])
            return count

        return self._write(put)

    # ------------------------------------------------------------------ reading

    def knows(self, client_order_id: str) -> bool:
        """Whether the venue ever received an order with this id."""
        cid = client_order_id.encode()
        return self._read(lambda txn, dbs: txn.get(cid, db=dbs[b"orders"]) is not None, False)

    def order(self, client_order_id: str) -> LedgerOrder | None:
        """The order with its status, reason and fills, or None if the venue never received it."""
        cid = client_order_id.encode()

        def get(txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database]) -> LedgerOrder | None:
            raw = txn.get(cid, db=dbs[b"orders"])
            return None if raw is None else self._load(txn, dbs, _entry_decoder.decode(raw))

        return self._read(get, None)

    def resting(self) -> list[LedgerOrder]:
        """Orders accepted and not finished (resting limit orders), in arrival order."""

        def get(txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database]) -> list[LedgerOrder]:
            open_entries = [
                e
                for e in (_entry_decoder.decode(raw) for _, raw in txn.cursor(db=dbs[b"orders"]))
                if e.status == "accepted"
            ]
            return [self._load(txn, dbs, e) for e in sorted(open_entries, key=lambda e: e.seq)]

        return self._read(get, [])

    def _load(self, txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database], e: _Entry) -> LedgerOrder:
        def at(seq: int) -> LedgerRecord:
            raw = txn.get(_seq_key(seq), db=dbs[b"log"])
            if raw is None:
                raise LedgerError(f"venue ledger {self._path}: index points at missing seq {seq}")
            return _decode(seq, raw)

        order = at(e.seq)
        fills = [at(s) for s in e.fill_seqs]
        if not isinstance(order, Order) or not all(isinstance(f, Fill) for f in fills):
            raise LedgerError(f"venue ledger {self._path}: index of order at seq {e.seq} is corrupt")
        return LedgerOrder(order, e.status, e.reason, fills)  # type: ignore[arg-type]

    def records(self, after_seq: int = 0) -> Iterator[tuple[int, LedgerRecord]]:
        """Yield ``(seq, record)`` in the order the venue did them; raises on a gap."""
        position = after_seq
        while True:
            raw = self._read(lambda txn, dbs, after=position: self._batch(txn, dbs, after), [])
            for seq, value in raw:
                yield seq, _decode(seq, value)
            if len(raw) < _READ_BATCH:
                return
            position = raw[-1][0]

    def _batch(
        self, txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database], after: int
    ) -> list[tuple[int, bytes]]:
        """Up to one batch of raw log records after seq ``after``, checking contiguity."""
        out: list[tuple[int, bytes]] = []
        cur = txn.cursor(db=dbs[b"log"])
        if not cur.set_range(_seq_key(after + 1)):
            return out
        for key, value in cur:
            seq = int.from_bytes(key, "big")
            if seq != after + len(out) + 1:
                raise LedgerError(f"venue ledger {self._path} has a gap before seq {seq}")
            out.append((seq, bytes(value)))
            if len(out) >= _READ_BATCH:
                break
        return out

    def orders(self) -> list[Order]:
        """Every order the venue received, in arrival order (each id once)."""
        return [r for _, r in self.records() if isinstance(r, Order)]

    def fills(self) -> list[Fill]:
        """Every fill the venue made, in order."""
        return [r for _, r in self.records() if isinstance(r, Fill)]

    def duplicates(self) -> dict[str, int]:
        """Client order id -> how many resubmissions of it the venue refused."""

        def get(txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database]) -> dict[str, int]:
            return {k.decode(): int.from_bytes(v, "big") for k, v in txn.cursor(db=dbs[b"duplicates"])}

        return self._read(get, {})

    def counts(self) -> dict[str, int]:
        """Orders received, fills made, and refused duplicate submissions."""

        def get(txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database]) -> dict[str, int]:
            dups = sum(int.from_bytes(v, "big") for _, v in txn.cursor(db=dbs[b"duplicates"]))
            return {
                "orders": txn.stat(dbs[b"orders"])["entries"],
                "fills": txn.stat(dbs[b"fills"])["entries"],
                "duplicate_submissions": dups,
            }

        return self._read(get, {"orders": 0, "fills": 0, "duplicate_submissions": 0})

    # ------------------------------------------------------------------ closing

    @property
    def path(self) -> Path:
        """The LMDB environment directory."""
        return self._path

    def close(self) -> None:
        """Close the environment and release its path; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._dbs = None
            self._env.close()
            with _open_lock:
                if _open_paths.get(self._key) == os.getpid():
                    del _open_paths[self._key]

    def __enter__(self) -> VenueLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# One open ledger per venue per process: LMDB forbids a second open of a path in one
# process, and with thread placement a new incarnation of a venue's gateway (paper or
# live) runs in the process that already has the ledger open, so it takes over the handle.
_shared: dict[str, VenueLedger] = {}
_shared_lock = threading.Lock()


def shared_ledger(
    run_dir: str | os.PathLike[str], venue: str, durability: Literal["fsync", "process"]
) -> VenueLedger:
    """The one open ledger of ``venue`` in this process (opened on first use)."""
    key = f"{run_dir}|{venue}"
    with _shared_lock:
        ledger = _shared.get(key)
        if ledger is None:
            ledger = VenueLedger.open(run_dir, venue, durability=durability)
            _shared[key] = ledger
        return ledger


def close_shared_ledgers() -> None:
    """Close every venue ledger this process opened (node shutdown, tests)."""
    with _shared_lock:
        for ledger in _shared.values():
            ledger.close()
        _shared.clear()
