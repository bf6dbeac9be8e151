"""The order journal: an append-only, crash-safe log of Orders, OrderUpdates and Fills in LMDB.

It also keeps the decisions an order depends on that are not orders: token safety reports
(:class:`~sniperbot.messages.TokenSafetyReport`, the sniper's buy/refuse verdicts), in the same log, in
order with the orders. They have no index; :meth:`Journal.records` yields them only when asked for by
``kinds`` (its default is :data:`ORDER_RECORDS`, what every order reader expects).

Layout (one LMDB environment at ``run_dir / "journal"``, files mode 0600):

* ``log``: global sequence (8-byte big-endian, contiguous from 1) -> msgpack of the
  tagged record (field ``t``), written with ``append=True``.
* ``orders``: ``client_order_id`` -> seq of its Order (also the Order dedup key).
* ``fills``: ``fill_id`` -> seq of that Fill (the Fill dedup key).
* ``status``: ``client_order_id`` -> latest status string from its OrderUpdates.
* ``intents``: ``strategy_id`` -> highest ``intent_seq`` among its Orders.
* ``meta``: the on-disk format version, and the number of report records (``reports``).
* ``open``: ``client_order_id`` -> seq of its Order, while the order has no terminal status
  (:meth:`Journal.open_orders` reads O(open orders), not O(orders)).
* ``aggregates``: positions, P&L, fees, spend per day and intent seqs, summed at append time
  (:mod:`sniperbot.journal.aggregates`, which says why): a restarting actor reads them with
  :meth:`Journal.snapshot` and tails the log after the snapshot's seq, so a restart reads O(keys),
  not O(records), however long the node has traded.
* ``by_strategy``: ``strategy_id`` NUL seq -> empty, for each order record: a strategy's own records
  (:meth:`Journal.strategy_records`) without reading the others'.
* ``archived``: the **base** of the aggregates, what the records archived out of the log
  (:mod:`sniperbot.journal.archive`) contributed: the same keys and values as ``aggregates`` folded over
  seqs 1..floor only, plus ``i`` strategy -> the highest intent seq of its archived Orders. Empty until
  something is archived. ``verify`` folds the hot log onto it and must get ``aggregates`` exactly.

Archiving (:meth:`Journal.drop_archived`, one write transaction) deletes a prefix 1..floor of the log
whose records are already fsync'd to the archive files, and in the same transaction folds them into
``archived``, deletes their ``by_strategy`` keys and their ``orders``/``fills``/``status`` entries (the
rule for which dedup entries stay is :mod:`sniperbot.journal.archive`'s), and records the floor and how
many reports, Order and Fill entries left (``meta``), so :meth:`Journal.counts` still counts the whole
history. A kill -9 anywhere leaves either the whole step or none of it.

Format versions (``meta`` ``format``): ``1`` had none of ``open``, ``aggregates``, ``by_strategy``. A format-1
journal opened for writing is upgraded once, in one write transaction (all or nothing): both are
built from the log and the format becomes ``2``; nothing in the log changes. Opened read-only it is
read as it is, without :meth:`Journal.snapshot`.

Every ``append`` is one write transaction that writes the record *and* its index
entries, so the indexes can never disagree with the log, even under kill -9.

Concurrency: several processes may append (LMDB serialises write transactions
across processes with the robust mutex in ``lock.mdb``, and a writer killed while
holding it is recovered by the next one); any number of processes may read,
each read in a fresh, short read transaction, so readers see what other
processes committed after they opened the journal and never pin old pages.
Open the journal *after* the process started (spawn/forkserver), never before a
fork: an LMDB environment must not cross ``fork()``.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import lmdb
import msgspec

from sniperbot import metrics
from sniperbot.journal import aggregates
from sniperbot.journal.lmdbfile import check_before_open, check_mapped_size
from sniperbot.messages import Fill, Order, OrderUpdate, TokenSafetyReport
from sniperbot.messages.orders import parse_intent_seq

__all__ = [
    "DEFAULT_MAP_SIZE",
    "ORDER_RECORDS",
    "TERMINAL_STATUSES",
    "Durability",
    "Journal",
    "JournalError",
    "JournalRecord",
    "reopens",
]

Durability = Literal["fsync", "process"]
"""How far a record has got when ``append`` returns.

* ``"fsync"`` (the default): the commit is fsync'd to the device, so it survives a
  process crash, an OS crash and a power loss. Costs two fsyncs per commit (p50
  ~250-300 µs per append on the dev box's ext4): LMDB writes the data pages and
  syncs them, then the meta page that points at them, and syncs that (LMDB
  ``sync=True, metasync=False``, then an explicit sync of the meta page: about 10 %
  slower than LMDB's own synchronous meta write in ``bench/journal.py``, the price
  of the exception below). Batch with :meth:`Journal.append_many` to amortise them.

  One exception, asked for by name: ``append_many(..., sync_meta=False)`` skips the
  second fsync. The data pages are on the device; the meta page follows with the
  next commit of any writer or the next sync. A power loss before that undoes this
  one commit, never more and never corrupts the file (LMDB's ``MDB_NOMETASYNC``
  guarantee; pages of the last durable commit are not reused before a newer one
  is durable). The executor journals a venue's answers this way: an order is made
  durable before it is sent, and what the venue answered can be asked again (the
  executor reconciles every journaled order without a final status at start).
* ``"process"`` (LMDB ``sync=False``): the commit is in the OS page cache when
  ``append`` returns, so it survives the crash of any process, kill -9 included,
  but an OS crash or power loss may lose the last transactions (and, per the
  LMDB docs, can corrupt the file unless the filesystem preserves write order).
  About 20x cheaper per commit (p50 ~13 µs). ``close()`` flushes.

Use ``"fsync"`` for anything that must survive the machine (orders before they
are sent to a venue); ``"process"`` where losing the tail on power loss is
acceptable.
"""

JournalRecord = Order | OrderUpdate | Fill | TokenSafetyReport
"""What the journal holds."""

ORDER_RECORDS: tuple[type, ...] = (Order, OrderUpdate, Fill)
"""The order records (what :meth:`Journal.records` yields by default); the others are reports."""

_REPORTS_KEY = b"reports"  # meta: how many report records the log holds (counts() tells them apart)
# meta, written by drop_archived (sniperbot.journal.archive): the log's records 1..floor are archived, and
# how many of them are reports. 0 / absent: nothing archived.
_FLOOR_KEY = b"archived_through"
_ARCHIVED_REPORTS_KEY = b"archived_reports"
# meta: how many Order and Fill entries archiving deleted from the orders and fills indexes (counts()).
_PRUNED_ORDERS_KEY = b"pruned_orders"
_PRUNED_FILLS_KEY = b"pruned_fills"
_BASE_INTENT = b"i"  # archived: strategy -> highest intent seq of its archived Orders

TERMINAL_STATUSES: frozenset[str] = frozenset({"rejected", "cancelled", "filled"})
"""Order statuses after which an order is no longer open."""


def reopens(current: str | None, status: str) -> bool:
    """Whether an update to ``status`` would reopen an order whose status is ``current``: never applied
    (venues deliver updates out of order; a late "accepted" must not reopen a filled order)."""
    return current in TERMINAL_STATUSES and status not in TERMINAL_STATUSES


DEFAULT_MAP_SIZE = 16 * 1024**3
"""Initial map size: a virtual reservation (the file only grows as pages are written)."""

_FORMAT = b"2"
_FORMAT_V1 = b"1"  # no open-orders index, no aggregates: upgraded when opened for writing
_MAX_DBS = 16
# Records copied out per read transaction in records(): short transactions let
# writers reuse freed pages; decoding happens after the transaction ended.
_READ_BATCH = 1024
# Doubling from even a 64 KiB map reaches 2**70 bytes well before this bound; it
# only stops a pathological loop (e.g. set_mapsize silently not taking effect).
_MAX_ATTEMPTS = 64
_MAX_KEY_BYTES = 511  # LMDB's compiled-in maximum key size

_T = TypeVar("_T")

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(JournalRecord)

# Journal directories (realpath) open in this process -> pid that opened them.
# A second open of one environment in a process shares (and on close, drops)
# its fcntl locks and corrupts it (LMDB-04), so it is refused here with a clear
# error. An entry inherited by a fork()ed child keeps the parent's pid, which
# makes the child refuse to reopen the journal too: it holds the parent's file
# descriptors, and closing those would drop the child's own locks.
_open_paths: dict[str, int] = {}
_open_paths_lock = threading.Lock()


class JournalError(Exception):
    """The journal cannot be opened, is misused, or holds data it cannot read."""


class _Dbs(NamedTuple):
    log: lmdb._Database
    orders: lmdb._Database
    fills: lmdb._Database
    status: lmdb._Database
    intents: lmdb._Database
    meta: lmdb._Database
    state: lmdb._Database
    open: lmdb._Database
    aggregates: lmdb._Database
    by_strategy: lmdb._Database
    archived: lmdb._Database


_DB_NAMES = (
    *(b"log", b"orders", b"fills", b"status", b"intents", b"meta", b"state"),  # format 1
    *(b"open", b"aggregates", b"by_strategy"),  # format 2
    b"archived",  # format 2, created by the first writable open of a journal that lacks it
)


def _seq_key(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def _seq_of(key: bytes, what: str) -> int:
    if len(key) != 8:
        raise JournalError(f"malformed {what}: {key!r} is not an 8-byte sequence number")
    return int.from_bytes(key, "big")


def _key(value: str, what: str) -> bytes:
    raw = value.encode()
    if not 0 < len(raw) <= _MAX_KEY_BYTES:
        raise JournalError(f"{what} must be 1..{_MAX_KEY_BYTES} bytes of UTF-8, got {value!r}")
    return raw


def _meta_int(txn: lmdb.Transaction, dbs: _Dbs, key: bytes) -> int:
    value = txn.get(key, db=dbs.meta)
    return _seq_of(value, f"meta {key.decode()}") if value else 0


def _intent_seq(order: Order) -> int | None:
    """The ``intent_seq`` encoded in the Order's ``intent_id`` (:func:`make_intent_id`), if any."""
    return parse_intent_seq(order.intent_id, order.strategy_id)


def _decode(seq: int, value: bytes) -> JournalRecord:
    try:
        return _decoder.decode(value)
    except (msgspec.DecodeError, ValueError, RecursionError) as e:
        # ValueError: msgspec raises UnicodeDecodeError for invalid UTF-8 in a string.
        # Never skip: a journal that silently drops a record would rebuild a wrong position.
        raise JournalError(f"journal record at seq {seq} cannot be decoded: {e}") from None


class _Prepared(NamedTuple):
    record: JournalRecord
    payload: bytes
    id_key: bytes  # client_order_id (Order, OrderUpdate) or fill_id (Fill); empty for a report
    intent: tuple[bytes, int] | None  # (strategy_id, intent_seq) of an Order


def _prepare(record: JournalRecord) -> _Prepared:
    """Validate and encode one record, outside any transaction."""
    intent: tuple[bytes, int] | None = None
    if isinstance(record, Order):
        id_key = _key(record.client_order_id, "client_order_id")
        intent_seq = _intent_seq(record)
        if intent_seq is not None:
            intent = (_key(record.strategy_id, "strategy_id"), intent_seq)
    elif isinstance(record, Fill):
        id_key = _key(record.fill_id, "fill_id")
    elif isinstance(record, OrderUpdate):
        id_key = _key(record.client_order_id, "client_order_id")
    elif isinstance(record, TokenSafetyReport):
        id_key = b""  # a report is a fact of its moment: no id, no index, always appended
    else:
        raise TypeError(f"cannot journal {type(record).__name__}: not a {' | '.join(_RECORD_NAMES)}")
    payload = _encoder.encode(record)
    try:
        # msgspec validates on decode, not on construction: refuse a record that
        # could be written but never read back (e.g. an unknown status).
        _decoder.decode(payload)
    except (msgspec.DecodeError, ValueError, RecursionError) as e:
        # ValueError: msgspec raises UnicodeDecodeError for invalid UTF-8 in a string.
        raise JournalError(f"cannot journal an invalid {type(record).__name__}: {e}") from None
    return _Prepared(record, payload, id_key, intent)


_RECORD_NAMES = ("Order", "OrderUpdate", "Fill", "TokenSafetyReport")


def _put_all(txn: lmdb.Transaction, dbs: _Dbs, prepared: list[_Prepared]) -> list[int]:
    """Append the prepared records and their index entries in ``txn``; their seqs."""
    # The last seq is read inside the write transaction: writers of all
    # processes are serialised, so seqs stay contiguous across processes.
    cur = txn.cursor(db=dbs.log)
    last = _seq_of(cur.key(), "journal key") if cur.last() else 0
    seqs: list[int] = []
    store = aggregates.TxnStore(txn, dbs.aggregates)

    for record, payload, id_key, intent in prepared:
        seq = last + 1
        seq_key = _seq_key(seq)
        if isinstance(record, Order | Fill):
            # Idempotent by id: a resent Order or Fill keeps its first seq.
            index = dbs.orders if isinstance(record, Order) else dbs.fills
            existing = txn.get(id_key, db=index)
            if existing is not None:
                seqs.append(_seq_of(existing, "index value"))
                continue
            txn.put(id_key, seq_key, db=index)
            if isinstance(record, Order) and not _is_terminal(txn.get(id_key, db=dbs.status)):
                txn.put(id_key, seq_key, db=dbs.open)
            if intent is not None:
                strategy_key, intent_seq = intent
                prev = txn.get(strategy_key, db=dbs.intents)
                if prev is None or _seq_of(prev, "intents index value") < intent_seq:
                    txn.put(strategy_key, _seq_key(intent_seq), db=dbs.intents)
        elif isinstance(record, TokenSafetyReport):
            reports = txn.get(_REPORTS_KEY, db=dbs.meta)
            count = _seq_of(reports, "reports count") if reports else 0
            txn.put(_REPORTS_KEY, _seq_key(count + 1), db=dbs.meta)
        else:
            prev_status = txn.get(id_key, db=dbs.status)
            if not reopens(None if prev_status is None else prev_status.decode(), record.status):
                txn.put(id_key, record.status.encode(), db=dbs.status)
            if record.status in TERMINAL_STATUSES:
                txn.delete(id_key, db=dbs.open)
        if not txn.put(seq_key, payload, append=True, db=dbs.log):
            raise JournalError(f"journal seq {seq} is not after the last one")
        aggregates.apply(store, seq, record)
        if not isinstance(record, TokenSafetyReport):
            txn.put(_strategy_seq_key(record.strategy_id, seq), b"", db=dbs.by_strategy)
        seqs.append(seq)
        last = seq
    return seqs


def _strategy_seq_key(strategy_id: str, seq: int) -> bytes:
    return strategy_id.encode() + b"\0" + _seq_key(seq)


def _is_terminal(status: bytes | None) -> bool:
    return status is not None and status.decode() in TERMINAL_STATUSES


def _upgrade_v1(txn: lmdb.Transaction, dbs: _Dbs) -> None:
    """Build the ``open`` index and the aggregates of a format-1 journal from its log (one pass)."""

    store = aggregates.MemoryStore()
    for key, value in txn.cursor(db=dbs.log):
        seq = _seq_of(key, "journal key")
        record = _decode(seq, value)
        aggregates.apply(store, seq, record)
        if not isinstance(record, TokenSafetyReport):
            txn.put(_strategy_seq_key(record.strategy_id, seq), b"", db=dbs.by_strategy)
    for key, value in store.encoded().items():
        txn.put(key, value, db=dbs.aggregates)
    for cid, seq_key in txn.cursor(db=dbs.orders):
        if not _is_terminal(txn.get(cid, db=dbs.status)):
            txn.put(cid, seq_key, db=dbs.open)
    txn.put(b"format", _FORMAT, db=dbs.meta)


def _without_aggregates(txn: lmdb.Transaction, dbs: _Dbs) -> bool:
    """Whether this is a format-1 journal opened read-only (no ``open`` index, no aggregates)."""
    return dbs.open is dbs.log or txn.get(b"format", db=dbs.meta) == _FORMAT_V1


def _base(txn: lmdb.Transaction, dbs: _Dbs) -> tuple[aggregates.MemoryStore, dict[bytes, int]]:
    """The archived records' contribution: the aggregates base and each strategy's highest intent seq."""
    store = aggregates.MemoryStore()
    intents: dict[bytes, int] = {}
    if dbs.archived is dbs.log:
        return store, intents  # read-only open of a journal never archived: no base yet
    for key, value in txn.cursor(db=dbs.archived):
        if key.startswith(_BASE_INTENT):
            intents[bytes(key[1:])] = _seq_of(value, "archived intent seq")
        else:
            store.save(bytes(key), aggregates.decode_value(bytes(key), bytes(value)))
    return store, intents


def _without_archived_status(have: dict[bytes, bytes], want: dict[bytes, bytes], hot: set[bytes]) -> None:
    """Compare ``status`` only for orders whose Order is hot (their whole history is in the hot log).

    An order whose Order was archived had its status entry deleted with it, but an OrderUpdate that
    arrived after it (a venue's late report) may be hot and have written a new entry (or been in the hot
    log when the entry was deleted): the hot log alone cannot say what it should be. Such an order is
    terminal (only terminal orders are archived) and no longer in the ``open`` index, which is checked.
    """
    for cid in [c for c in have.keys() | want.keys() if c not in hot]:
        have.pop(cid, None)
        want.pop(cid, None)


def _close_env(key: str, env: lmdb.Environment, pid: int, flush: bool) -> None:
    """Close ``env`` and release its registry entry; a no-op in a child forked after open."""
    if os.getpid() != pid:
        # Inherited across fork(): the environment belongs to the parent.
        return
    try:
        if flush:
            # "process" durability: a clean shutdown still leaves everything on disk.
            env.sync(True)
    finally:
        env.close()
        with _open_paths_lock:
            if _open_paths.get(key) == pid:
                del _open_paths[key]


class Journal:
    """An append-only journal of Orders, OrderUpdates and Fills; create it with :meth:`open`.

    Appends are idempotent by id, as every receiver in sniperbot is: an Order
    whose ``client_order_id`` or a Fill whose ``fill_id`` is already journaled is
    not written again, and ``append`` returns the seq of the existing record.
    OrderUpdates carry no id and are always appended; the status index is
    idempotent (a terminal status is never replaced by a non-terminal one).

    A Journal is thread-safe (one lock serialises its transactions, which also
    makes growing the map safe); it must not be used across ``fork()``.
    """

    def __init__(
        self,
        env: lmdb.Environment,
        path: Path,
        key: str,
        *,
        readonly: bool,
        durability: Durability,
    ) -> None:
        self._env = env
        self._path = path
        self._readonly = readonly
        self._durability: Durability = durability
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        self._dbs: _Dbs | None = None
        # Closes the environment if the Journal is dropped without close(), so a
        # forgotten journal does not keep its path locked in the registry forever.
        self._finalizer = weakref.finalize(
            self,
            _close_env,
            key,
            env,
            self._pid,
            not readonly and durability == "process",
        )

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        run_dir: Path,
        *,
        readonly: bool = False,
        durability: Durability = "fsync",
        map_size: int = DEFAULT_MAP_SIZE,
        must_exist: bool = False,
    ) -> Journal:
        """Open (creating unless ``readonly`` or ``must_exist``) the journal at ``run_dir / "journal"``.

        ``map_size`` is the initial virtual reservation; it grows on demand.
        Raises :class:`JournalError` if the journal is already open in this
        process, if ``readonly`` and no journal exists, if ``must_exist`` and it is
        missing or empty (a node whose run dir shows it traded must never start on
        a fresh journal), if the file is shorter than its meta page says (checked
        before any data page is read: no SIGBUS), or if it fails its integrity
        check (sequence not contiguous, unknown format). :meth:`verify` checks
        every record on top.
        """
        if durability not in ("fsync", "process"):
            raise ValueError(f"durability must be 'fsync' or 'process', got {durability!r}")
        path = Path(run_dir) / "journal"
        if readonly and not (path / "data.mdb").is_file():
            raise JournalError(f"no journal at {path}")
        problem = check_before_open(path, must_exist=readonly or must_exist)
        if problem is not None:
            raise JournalError(f"journal {problem}")
        if not readonly:
            # Only the leaf gets 0700; run_dir itself keeps the caller's mode.
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = os.path.realpath(path)
        pid = os.getpid()
        with _open_paths_lock:
            owner = _open_paths.get(key)
            if owner == pid:
                raise JournalError(
                    f"journal {path} is already open in this process; opening an LMDB "
                    "environment twice in one process corrupts it: share the open Journal"
                )
            if owner is not None:
                raise JournalError(
                    f"journal {path} was open in process {owner} when this process was "
                    "forked from it; LMDB environments must not cross fork(): start "
                    "this process with spawn or forkserver"
                )
            _open_paths[key] = pid
        try:
            env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=_MAX_DBS,
                subdir=True,
                readonly=readonly,
                create=not readonly,
                sync=durability == "fsync",
                # The meta page is synced by _write_txn (see Durability: sync_meta=False).
                metasync=False,
                # writemap stays off: with sync=False LMDB keeps ACI only without it.
                writemap=False,
                mode=0o600,
                lock=True,
            )
        except lmdb.Error as e:
            with _open_paths_lock:
                _open_paths.pop(key, None)
            raise JournalError(f"cannot open journal at {path}: {e}") from e
        journal = cls(env, path, key, readonly=readonly, durability=durability)
        try:
            problem = check_mapped_size(env, path)
            if problem is not None:
                raise JournalError(f"journal {problem}")
            # Free reader slots left by crashed processes, which would otherwise
            # pin old pages and make the file grow without bound (LMDB-04).
            env.reader_check()
            journal._init_dbs()
            journal._check_integrity()
        except BaseException:
            journal.close()
            raise
        return journal

    def _init_dbs(self) -> None:
        if self._readonly:
            self._dbs = self._open_dbs_readonly()
            return

        def init(txn: lmdb.Transaction) -> _Dbs:
            dbs = _Dbs(*(self._env.open_db(name, txn=txn, create=True) for name in _DB_NAMES))
            fmt = txn.get(b"format", db=dbs.meta)
            if fmt is None:
                txn.put(b"format", _FORMAT, db=dbs.meta)
            elif fmt == _FORMAT_V1:
                _upgrade_v1(txn, dbs)
            elif fmt != _FORMAT:
                raise JournalError(f"journal {self._path} has format {fmt!r}, expected {_FORMAT!r}")
            return dbs

        with self._lock:
            self._dbs = self._write_txn(init)

    def _open_dbs_readonly(self) -> _Dbs | None:
        """Open the named databases, or None if no writer has created them yet."""
        try:
            named = [self._env.open_db(name, create=False) for name in _DB_NAMES[:7]]
            try:
                named += [self._env.open_db(name, create=False) for name in _DB_NAMES[7:10]]
            except lmdb.NotFoundError:
                # A format-1 journal (not upgraded: read-only): read as it is; snapshot() refuses.
                named += [named[0], named[0], named[0]]
            try:
                named.append(self._env.open_db(_DB_NAMES[10], create=False))
            except lmdb.NotFoundError:
                named.append(named[0])  # never archived (no base): _base() reads it as empty
            return _Dbs(*named)
        except lmdb.NotFoundError:
            # The writer creates all of them in its first transaction; until it
            # commits, the journal is simply empty.
            return None

    def _check_integrity(self) -> None:
        def check(txn: lmdb.Transaction, dbs: _Dbs) -> None:
            fmt = txn.get(b"format", db=dbs.meta)
            if fmt != _FORMAT and not (self._readonly and fmt == _FORMAT_V1):
                raise JournalError(f"journal {self._path} has format {fmt!r}, expected {_FORMAT!r}")
            cur = txn.cursor(db=dbs.log)
            last = _seq_of(cur.key(), "journal key") if cur.last() else 0
            entries = txn.stat(dbs.log)["entries"]
            floor = _meta_int(txn, dbs, _FLOOR_KEY)  # 1..floor archived; never the last record
            # Keys are unique and > floor, so count == last - floor <=> exactly floor+1..last.
            first = _seq_of(cur.key(), "journal key") if cur.first() else floor + 1
            if entries != last - floor or first != floor + 1:
                raise JournalError(
                    f"journal {self._path} is not contiguous: {entries} records, last seq {last}"
                    + (f", archived through seq {floor}" if floor else "")
                )

        self._read(check, None)

    def verify(self) -> int:
        """Check the whole journal: every record decodes and every index agrees with the log.

        The node runs this at each start, before anything else: a flipped byte must
        stop the node with a message, not start it on a wrong book. Costs one pass
        over the log (see ``bench/journal_verify.py`` for the cost per 100k records).
        Returns the number of hot (not archived) records; raises :class:`JournalError` naming it.

        After archiving (:mod:`sniperbot.journal.archive`) the hot log starts after the floor: the
        aggregates are recomputed as the archived base (``archived``) with the hot log folded onto it,
        in journal order, and must equal the stored ones exactly, as must the intent seqs (base and hot
        Orders), ``open``, ``orders`` and ``by_strategy`` (hot records only). A ``fills`` entry may also
        point at an archived seq (the fills the archive keeps deduplicating hot), never at a missing
        hot one; ``status`` is compared for orders whose Order is hot.
        """

        def check(txn: lmdb.Transaction, dbs: _Dbs) -> int:
            orders: dict[bytes, bytes] = {}
            fills: dict[bytes, bytes] = {}
            status: dict[bytes, bytes] = {}
            aggregated, intents = _base(txn, dbs)
            by_strategy: dict[bytes, bytes] = {}
            reports = 0
            floor = _meta_int(txn, dbs, _FLOOR_KEY)
            expected = floor + 1
            for key, value in txn.cursor(db=dbs.log):
                seq = _seq_of(key, "journal key")
                if seq != expected:
                    raise JournalError(f"journal {self._path} has a gap: seq {expected} missing")
                expected += 1
                try:
                    record = _decode(seq, value)
                except JournalError as e:
                    raise JournalError(f"journal {self._path}: {e}") from None
                aggregates.apply(aggregated, seq, record)
                if not isinstance(record, TokenSafetyReport):
                    by_strategy[_strategy_seq_key(record.strategy_id, seq)] = b""
                if isinstance(record, Order):
                    orders.setdefault(record.client_order_id.encode(), key)
                    intent_seq = _intent_seq(record)
                    if intent_seq is not None:
                        sid = record.strategy_id.encode()
                        intents[sid] = max(intents.get(sid, 0), intent_seq)
                elif isinstance(record, Fill):
                    fills.setdefault(record.fill_id.encode(), key)
                elif isinstance(record, TokenSafetyReport):
                    reports += 1
                else:
                    cid = record.client_order_id.encode()
                    prev = status.get(cid)
                    if not reopens(None if prev is None else prev.decode(), record.status):
                        status[cid] = record.status.encode()
            indexes: list[tuple[str, lmdb._Database, dict[bytes, bytes]]] = [
                ("orders", dbs.orders, orders),
                ("fills", dbs.fills, fills),
                ("status", dbs.status, status),
                ("intents", dbs.intents, {k: _seq_key(v) for k, v in intents.items()}),
            ]
            if not _without_aggregates(txn, dbs):
                open_ = {k: v for k, v in orders.items() if not _is_terminal(status.get(k))}
                indexes += [("open", dbs.open, open_), ("aggregates", dbs.aggregates, aggregated.encoded())]
                indexes.append(("by_strategy", dbs.by_strategy, by_strategy))
            for name, db, want in indexes:
                have = {bytes(k): bytes(v) for k, v in txn.cursor(db=db)}
                if floor and name == "fills":
                    have = {k: v for k, v in have.items() if _seq_of(v, "fills index value") > floor}
                elif floor and name == "status":
                    _without_archived_status(have, want, set(orders))
                if have != want:
                    wrong = sorted(set(have.items()) ^ set(want.items()))[:1]
                    raise JournalError(
                        f"journal {self._path}: the {name} index disagrees with the log "
                        f"({len(have)} entries, the log implies {len(want)}; first difference at key "
                        f"{wrong[0][0][:40]!r})"
                    )
            counted = txn.get(_REPORTS_KEY, db=dbs.meta)
            reports += _meta_int(txn, dbs, _ARCHIVED_REPORTS_KEY)
            if (_seq_of(counted, "reports count") if counted else 0) != reports:
                raise JournalError(f"journal {self._path}: the reports count disagrees with the log")
            for _ in txn.cursor(db=dbs.state):
                pass  # node state: reading every page is the check
            return expected - 1 - floor

        return self._read(check, 0)

    def verify_archive(self) -> int:
        """Check the archived records against the base they left: every archived seq is in the archive
        files (each frame's CRC checked), decodes, and folded in journal order they give the stored base
        (``archived``) exactly. With :meth:`verify` (base + hot log = the totals) the whole history is
        checked. One pass over the archive: ``sniperbot journal`` runs it, a node's start does not (its
        restart must not grow with the history). Returns the number of archived records.
        """
        floor, (want, want_intents) = self._read(
            lambda txn, dbs: (_meta_int(txn, dbs, _FLOOR_KEY), _base(txn, dbs)),
            (0, (aggregates.MemoryStore(), {})),
        )
        store = aggregates.MemoryStore()
        intents: dict[bytes, int] = {}
        for seq, record in self._archived(0, floor, None):
            aggregates.apply(store, seq, record)
            if isinstance(record, Order) and (intent := _intent_seq(record)) is not None:
                sid = record.strategy_id.encode()
                intents[sid] = max(intents.get(sid, 0), intent)
        if store.encoded() != want.encoded() or intents != want_intents:
            raise JournalError(
                f"journal {self._path}: the archive {self._path.parent / 'archive'} (seqs 1..{floor}) "
                "disagrees with the totals the journal kept when it archived them"
            )
        return floor

    # ------------------------------------------------------------------ plumbing

    def _check_usable(self, write: bool) -> None:
        if self._closed:
            raise JournalError(f"journal {self._path} is closed")
        if os.getpid() != self._pid:
            raise JournalError(
                f"journal {self._path} was opened in process {self._pid}; it cannot be used across fork()"
            )
        if write and self._readonly:
            raise JournalError(f"journal {self._path} is open read-only")

    def _write_txn(self, fn: Callable[[lmdb.Transaction], _T], sync_meta: bool = True) -> _T:
        """Run ``fn`` in a write transaction (self._lock held), growing the map as needed.

        ``fn`` may run more than once: an aborted attempt leaves no trace. With "fsync"
        durability the commit syncs its data pages, and ``sync_meta`` its meta page too
        (:data:`Durability`).
        """
        for _ in range(_MAX_ATTEMPTS):
            try:
                # The context manager commits on a clean exit and aborts on an
                # exception; never let a write txn leak (LMDB-04 self-deadlock).
                started = time.perf_counter()
                with self._env.begin(write=True) as txn:
                    result = fn(txn)
                if sync_meta and self._durability == "fsync":
                    self._env.sync(True)
                # The calling actor's registry (thread-local): commit time, fsync included.
                metrics.current().observe("sniperbot_journal_commit_seconds", time.perf_counter() - started)
                return result
            except lmdb.MapResizedError:
                self._adopt_map_size()
            except lmdb.MapFullError:
                self._grow()
            except lmdb.Error as e:
                raise JournalError(f"journal {self._path}: write failed: {e}") from e
        raise JournalError(f"journal {self._path}: write failed after {_MAX_ATTEMPTS} attempts")

    def _adopt_map_size(self) -> None:
        # Another process grew the map past ours; set_mapsize(0) adopts the size
        # it recorded. Safe for the same reason as _grow.
        try:
            self._env.set_mapsize(0)
        except lmdb.Error as e:
            raise JournalError(f"journal {self._path}: cannot adopt the grown map: {e}") from e

    def _grow(self) -> None:
        # Safe: the caller holds self._lock, so no transaction of this process is
        # open, and set_mapsize requires exactly that (LMDB-03).
        new_size = self._env.info()["map_size"] * 2
        try:
            self._env.set_mapsize(new_size)
        except lmdb.Error as e:
            raise JournalError(f"journal {self._path}: cannot grow map to {new_size}: {e}") from e

    def _read(self, fn: Callable[[lmdb.Transaction, _Dbs], _T], default: _T) -> _T:
        """Run ``fn`` in a fresh, short read transaction; ``default`` if the journal is empty."""
        with self._lock:
            self._check_usable(write=False)
            if self._dbs is None:
                self._dbs = self._open_dbs_readonly()
                if self._dbs is None:
                    return default
            for _ in range(_MAX_ATTEMPTS):
                try:
                    # A new read txn per call sees everything committed so far,
                    # by any process.
                    with self._env.begin() as txn:
                        return fn(txn, self._dbs)
                except lmdb.MapResizedError:
                    self._adopt_map_size()
                except lmdb.Error as e:
                    raise JournalError(f"journal {self._path}: read failed: {e}") from e
            raise JournalError(f"journal {self._path}: read failed after {_MAX_ATTEMPTS} attempts")

    # ------------------------------------------------------------------ writing

    def append(self, record: JournalRecord) -> int:
        """Journal one record durably and return its seq (the existing seq for a duplicate)."""
        return self.append_many((record,))[0]

    def append_many(self, records: Iterable[JournalRecord], *, sync_meta: bool = True) -> list[int]:
        """Journal several records in one transaction (group commit): all or none; their seqs.

        ``sync_meta=False``: with "fsync" durability, one fsync instead of two, and a power loss
        before the next commit may undo this one (:data:`Durability`); no effect with "process".
        """
        # Validate and encode before taking the LMDB writer lock, which every
        # writer process shares.
        prepared = [_prepare(record) for record in records]
        if not prepared:
            return []
        with self._lock:
            self._check_usable(write=True)
            dbs = self._dbs
            assert dbs is not None  # a writable journal creates them at open
            return self._write_txn(lambda txn: _put_all(txn, dbs, prepared), sync_meta)

    # ------------------------------------------------------------------ reading

    def records(
        self, after_seq: int = 0, kinds: tuple[type, ...] | None = ORDER_RECORDS
    ) -> Iterator[tuple[int, JournalRecord]]:
        """Yield ``(seq, record)`` with seq > ``after_seq`` in journal order, of the types ``kinds``.

        By default the order records (:data:`ORDER_RECORDS`); ``kinds=None`` yields every record,
        reports included. Records archived out of LMDB (:mod:`sniperbot.journal.archive`) are read
        from the archive files transparently, so every reader still sees the full history; a reader
        that wants only the hot tail passes ``after_seq=journal.archived_through()``.

        Reads in batches, each in its own short read transaction, so records
        appended during the iteration are included and no transaction stays open
        while the caller holds the iterator. Raises :class:`JournalError` on a gap
        or an undecodable record.
        """
        position = after_seq

        def batch(txn: lmdb.Transaction, dbs: _Dbs) -> list[tuple[int, bytes]] | int:
            floor = _meta_int(txn, dbs, _FLOOR_KEY)
            if position < floor:
                return floor  # archived since: read the archive first (its files are fsync'd)
            out: list[tuple[int, bytes]] = []
            cur = txn.cursor(db=dbs.log)
            if not cur.set_range(_seq_key(position + 1)):
                return out
            expected = position + 1
            for key, value in cur:
                seq = _seq_of(key, "journal key")
                if seq != expected:
                    raise JournalError(f"journal {self._path} has a gap: seq {expected} missing")
                out.append((seq, value))
                expected += 1
                if len(out) >= _READ_BATCH:
                    break
            return out

        while True:
            raw = self._read(batch, [])
            if isinstance(raw, int):
                yield from self._archived(position, raw, kinds)
                position = raw
                continue
            for seq, value in raw:
                record = _decode(seq, value)
                if kinds is None or isinstance(record, kinds):
                    yield seq, record
            if len(raw) < _READ_BATCH:
                return
            position = raw[-1][0]

    def _archived(
        self, after_seq: int, through_seq: int, kinds: tuple[type, ...] | None
    ) -> Iterator[tuple[int, JournalRecord]]:
        """``(seq, record)`` of the archived seqs ``after_seq+1..through_seq`` of the types ``kinds``, from
        the archive files (fsync'd before their records left the log); a missing seq is named, not skipped."""
        from sniperbot.journal.archive import archive_dir, read_archive  # it imports this module

        position = after_seq
        for seq, value in read_archive(archive_dir(self._path), after_seq, through_seq):
            if seq != position + 1:
                break  # a hole: named below
            record = _decode(seq, value)
            if kinds is None or isinstance(record, kinds):
                yield seq, record
            position = seq
        if position != through_seq:
            raise JournalError(
                f"journal {self._path}: record {position + 1} is archived (through {through_seq}) but "
                f"missing from {archive_dir(self._path)}"
            )

    def strategy_records(
        self, strategy_id: str, kinds: tuple[type, ...] = ORDER_RECORDS, after_seq: int = 0
    ) -> Iterator[tuple[int, JournalRecord]]:
        """Yield ``(seq, record)`` of one strategy's order records (``kinds``) with seq > ``after_seq``, in
        journal order.

        Reads that strategy's hot records only (the ``by_strategy`` index), in batches of short read
        transactions: O(its records), however many other strategies have journaled. Records archived
        out of the log (:mod:`sniperbot.journal.archive`) lost their index keys in the same transaction:
        they are read from the archive files first (one pass over the archive, decoding every record:
        only the sniper's restore reads a strategy's whole history; the strategy actor restores from
        :meth:`snapshot`).
        """
        prefix = _key(strategy_id, "strategy_id") + b"\0"
        position = prefix + _seq_key(after_seq) if after_seq > 0 else prefix
        archived = max(0, after_seq)  # the archive has been read through this seq

        def batch(txn: lmdb.Transaction, dbs: _Dbs) -> list[tuple[int, bytes]] | int:
            if _without_aggregates(txn, dbs):
                raise JournalError(
                    f"journal {self._path} has format {_FORMAT_V1!r} (no strategy index): open it for "
                    "writing once to upgrade it"
                )
            floor = _meta_int(txn, dbs, _FLOOR_KEY)
            if floor > archived:
                return floor  # archived (since): read the archive through it first
            out: list[tuple[int, bytes]] = []
            cur = txn.cursor(db=dbs.by_strategy)
            if not cur.set_range(position):
                return out
            for key in cur.iternext(keys=True, values=False):
                if not key.startswith(prefix):
                    break
                if key == position:
                    continue
                seq = _seq_of(key[len(prefix) :], "strategy index key")
                value = txn.get(_seq_key(seq), db=dbs.log)
                if value is None:
                    raise JournalError(f"journal {self._path}: strategy index points at missing seq {seq}")
                out.append((seq, bytes(value)))
                if len(out) >= _READ_BATCH:
                    break
            return out

        while True:
            raw = self._read(batch, [])
            if isinstance(raw, int):
                for seq, record in self._archived(archived, raw, ORDER_RECORDS):
                    if isinstance(record, kinds) and record.strategy_id == strategy_id:
                        yield seq, record
                archived = raw
                position = max(position, prefix + _seq_key(raw))
                continue
            for seq, value in raw:
                record = _decode(seq, value)
                if isinstance(record, kinds):
                    yield seq, record
            if len(raw) < _READ_BATCH:
                return
            position = prefix + _seq_key(raw[-1][0])

    def fills(self) -> list[Fill]:
        """All fills, in journal order."""
        return [r for _, r in self.records(kinds=(Fill,)) if isinstance(r, Fill)]

    def orders(self) -> list[Order]:
        """All orders, in journal order."""
        return [r for _, r in self.records(kinds=(Order,)) if isinstance(r, Order)]

    def _record_at(self, txn: lmdb.Transaction, dbs: _Dbs, seq: int) -> JournalRecord:
        value = txn.get(_seq_key(seq), db=dbs.log)
        if value is None:
            raise JournalError(f"journal {self._path}: index points at missing seq {seq}")
        return _decode(seq, value)

    def order(self, client_order_id: str) -> Order | None:
        """The journaled Order with this ``client_order_id``, or None."""
        key = _key(client_order_id, "client_order_id")

        def get(txn: lmdb.Transaction, dbs: _Dbs) -> Order | None:
            seq = txn.get(key, db=dbs.orders)
            if seq is None:
                return None
            n = _seq_of(seq, "orders index value")
            record = self._record_at(txn, dbs, n)
            if not isinstance(record, Order):
                raise JournalError(f"journal {self._path}: seq {n} is not an Order")
            return record

        return self._read(get, None)

    def order_status(self, client_order_id: str) -> str | None:
        """Latest status journaled for this order by an OrderUpdate, or None if there is none."""
        key = _key(client_order_id, "client_order_id")

        def get(txn: lmdb.Transaction, dbs: _Dbs) -> str | None:
            value = txn.get(key, db=dbs.status)
            return None if value is None else value.decode()

        return self._read(get, None)

    def has_fill(self, fill_id: str) -> bool:
        """Whether a Fill with this ``fill_id`` is journaled."""
        key = _key(fill_id, "fill_id")
        return self._read(lambda txn, dbs: txn.get(key, db=dbs.fills) is not None, False)

    def unseen(
        self,
        records: Iterable[Order | OrderUpdate | Fill],
        after: Iterable[Order | OrderUpdate | Fill] = (),
    ) -> list[Order | OrderUpdate | Fill]:
        """Of ``records``, in order, what would be news to the journal: orders and fills whose id it
        lacks, updates that change an order's status (a resent answer, or a late non-terminal one
        after a terminal one, is not). Each is judged after the ones before it, all of them after
        ``after`` (records on their way to the journal, not in it yet). One read transaction.
        """
        ahead = list(after)
        asked = list(records)
        if not asked:
            return []

        def judge(txn: lmdb.Transaction | None, dbs: _Dbs | None) -> list[Order | OrderUpdate | Fill]:
            def get(key: bytes, db_of: Callable[[_Dbs], Any]) -> bytes | None:
                return None if txn is None or dbs is None else txn.get(key, db=db_of(dbs))

            seen: set[tuple[bool, str]] = set()
            status: dict[str, str | None] = {}
            new: list[Order | OrderUpdate | Fill] = []
            for i, record in enumerate([*ahead, *asked]):
                if isinstance(record, Order | Fill):
                    is_order = isinstance(record, Order)
                    ident = record.client_order_id if is_order else record.fill_id  # type: ignore[union-attr]
                    index = (lambda d: d.orders) if is_order else (lambda d: d.fills)
                    if (is_order, ident) in seen or get(_key(ident, "id"), index) is not None:
                        continue
                    seen.add((is_order, ident))
                else:
                    cid = record.client_order_id
                    if cid not in status:
                        value = get(_key(cid, "client_order_id"), lambda d: d.status)
                        status[cid] = None if value is None else value.decode()
                    current = status[cid]
                    if current == record.status or reopens(current, record.status):
                        continue  # heard before (a resend, a report after the events), or late
                    status[cid] = record.status
                if i >= len(ahead):  # the records of ``after`` are judged, never returned
                    new.append(record)
            return new

        judged = self._read(judge, None)
        return judge(None, None) if judged is None else judged

    def last_txnid(self) -> int:
        """LMDB's id of the last committed write transaction (any process's): changes with every commit."""
        with self._lock:
            self._check_usable(write=False)
            return int(self._env.info()["last_txnid"])

    def since(
        self, after_seq: int, kinds: tuple[type, ...], strategy_id: str = ""
    ) -> tuple[list[tuple[int, JournalRecord]], int]:
        """The records of ``kinds`` (only ``strategy_id``'s, if given) with seq > ``after_seq``, and the seq
        the caller has now looked through: what an actor that decides on the journal's state reads since
        its last look (bus messages can be lost; see the risk guard and the strategy actor).

        The seq is the last one when the look began, or later if later records were read: a record
        appended during the look is either returned or after it.
        """
        through = self.last_seq()
        if strategy_id:
            records = list(self.strategy_records(strategy_id, kinds, after_seq=after_seq))
        else:
            records = list(self.records(after_seq=after_seq, kinds=kinds))
        if records:
            through = max(through, records[-1][0])
        return records, through

    def last_seq(self) -> int:
        """The seq of the last record (0 when empty); every seq from 1 to it exists."""

        def get(txn: lmdb.Transaction, dbs: _Dbs) -> int:
            cur = txn.cursor(db=dbs.log)
            return _seq_of(cur.key(), "journal key") if cur.last() else 0

        return self._read(get, 0)

    def max_intent_seq(self, strategy_id: str) -> int:
        """Highest ``intent_seq`` among this strategy's Orders (0 if none).

        Parsed from the ``intent_id`` (:func:`~sniperbot.messages.orders.make_intent_id`)
        at append time; an Order whose intent_id does not follow that form does not count.
        """
        key = _key(strategy_id, "strategy_id")

        def get(txn: lmdb.Transaction, dbs: _Dbs) -> int:
            value = txn.get(key, db=dbs.intents)
            return 0 if value is None else _seq_of(value, "intents index value")

        return self._read(get, 0)

    def open_orders(self) -> list[Order]:
        """Orders with no terminal status (rejected, cancelled, filled) yet, in journal order."""

        def get(txn: lmdb.Transaction, dbs: _Dbs) -> list[Order]:
            seqs: list[int] = []
            if _without_aggregates(txn, dbs):
                # A format-1 journal read as it is: every order's status.
                for cid, seq in txn.cursor(db=dbs.orders):
                    if not _is_terminal(txn.get(cid, db=dbs.status)):
                        seqs.append(_seq_of(seq, "orders index value"))
            else:
                seqs = [_seq_of(seq, "open index value") for _, seq in txn.cursor(db=dbs.open)]
            out: list[Order] = []
            for n in sorted(seqs):
                record = self._record_at(txn, dbs, n)
                if not isinstance(record, Order):
                    raise JournalError(f"journal {self._path}: seq {n} is not an Order")
                out.append(record)
            return out

        return self._read(get, [])

    def fill_seq(self, fill_id: str) -> int | None:
        """The seq of the Fill with this ``fill_id``, or None if it is not journaled.

        A restored actor tells with it whether a fill from the bus is in its snapshot already
        (seq <= the snapshot's ``through_seq``) or new, without remembering every fill id.
        """
        key = _key(fill_id, "fill_id")

        def get(txn: lmdb.Transaction, dbs: _Dbs) -> int | None:
            value = txn.get(key, db=dbs.fills)
            return None if value is None else _seq_of(value, "fills index value")

        return self._read(get, None)

    def snapshot(
        self, *, strategy_id: str | None = None, spend_day: int | None = None
    ) -> aggregates.Snapshot:
        """The aggregates (:mod:`sniperbot.journal.aggregates`) and the log's last seq, in one read.

        Always the books of every instrument and the totals of every venue; with ``strategy_id`` that
        strategy's totals and books; with ``spend_day`` (UTC days since the epoch: today) the spend of
        the latest day >= it that has a fill (the risk guard's day). Reads O(keys), not O(records).
        """

        def get(txn: lmdb.Transaction, dbs: _Dbs) -> aggregates.Snapshot:
            if _without_aggregates(txn, dbs):
                raise JournalError(
                    f"journal {self._path} has format {_FORMAT_V1!r} (no aggregates): open it for "
                    "writing once to upgrade it"
                )
            cur = txn.cursor(db=dbs.log)
            through = _seq_of(cur.key(), "journal key") if cur.last() else 0
            books: dict[tuple[str, str], aggregates.Book] = {}
            venues: dict[str, aggregates.VenueTotals] = {}
            strategy_books: dict[tuple[str, str], aggregates.Book] = {}
            spend: dict[tuple[str, str], float] = {}
            day = -1
            cur = txn.cursor(db=dbs.aggregates)
            for prefix in (aggregates.BOOK, aggregates.VENUE):
                if not cur.set_range(prefix):
                    continue
                for key, value in cur:
                    if not key.startswith(prefix):
                        break
                    if prefix == aggregates.BOOK:
                        books[aggregates.split_pair(key[1:])] = aggregates.decode_book(value)
                    else:
                        venues[key[1:].decode()] = aggregates.decode_venue(value)
            totals = aggregates.StrategyTotals()
            if strategy_id is not None:
                totals = aggregates.decode_strategy(
                    txn.get(aggregates.strategy_key(strategy_id), db=dbs.aggregates)
                )
                prefix = aggregates.strategy_book_key(strategy_id)
                if cur.set_range(prefix):
                    for key, value in cur:
                        if not key.startswith(prefix):
                            break
                        strategy_books[aggregates.split_pair(key[len(prefix) :])] = aggregates.decode_book(
                            value
                        )
            if spend_day is not None:
                day = spend_day
                # The latest day with a fill, if after today (a fill stamped in the future rolls the day).
                if cur.set_range(aggregates.spend_key(spend_day)):
                    for key, _ in cur:
                        if not key.startswith(aggregates.SPEND):
                            break
                        day = max(day, int.from_bytes(key[1:9], "big"))
                prefix = aggregates.spend_key(day)
                if cur.set_range(prefix):
                    for key, value in cur:
                        if not key.startswith(prefix):
                            break
                        spend[aggregates.split_pair(key[len(prefix) :])] = aggregates.decode_spend(value)
            return aggregates.Snapshot(
                through_seq=through,
                orders=txn.stat(dbs.orders)["entries"] + _meta_int(txn, dbs, _PRUNED_ORDERS_KEY),
                books=books,
                venues=venues,
                strategy=totals,
                strategy_books=strategy_books,
                spend_day=day,
                spend=spend,
            )

        empty = aggregates.Snapshot(
            0, 0, {}, {}, aggregates.StrategyTotals(), {}, -1 if spend_day is None else spend_day, {}
        )
        return self._read(get, empty)

    # ------------------------------------------------------------------ archive

    def archived_through(self) -> int:
        """The seq through which the log is archived (:mod:`sniperbot.journal.archive`); 0 if none."""
        return self._read(lambda txn, dbs: _meta_int(txn, dbs, _FLOOR_KEY), 0)

    def archive_candidates(
        self, before_ns: int, limit: int
    ) -> tuple[int, list[tuple[int, bytes, JournalRecord]], str]:
        """The archivable prefix after the floor: ``(floor, [(seq, bytes, record)], held_by)``.

        The rule is :mod:`sniperbot.journal.archive`'s: a record older than ``before_ns``, never the
        log's last, that is a report, belongs to no hot Order (none journaled, or archived already: a
        venue's late report), or to an order whose status is terminal. ``held_by`` names the record that
        stopped a batch shorter than ``limit`` ("" if it reached the horizon or the log's last record).
        """

        def scan(txn: lmdb.Transaction, dbs: _Dbs) -> tuple[int, list[tuple[int, bytes, JournalRecord]], str]:
            floor = _meta_int(txn, dbs, _FLOOR_KEY)
            cur = txn.cursor(db=dbs.log)
            last = _seq_of(cur.key(), "journal key") if cur.last() else 0
            out: list[tuple[int, bytes, JournalRecord]] = []
            if not cur.set_range(_seq_key(floor + 1)):
                return floor, out, ""
            for key, value in cur:
                seq = _seq_of(key, "journal key")
                if seq >= last or len(out) >= limit:
                    return floor, out, ""  # the last record stays: it carries the next seq
                record = _decode(seq, value)
                if record.ts_ns >= before_ns:
                    return floor, out, ""
                if not isinstance(record, TokenSafetyReport):
                    cid = record.client_order_id.encode()
                    hot_order = txn.get(cid, db=dbs.orders) is not None
                    if hot_order and not _is_terminal(txn.get(cid, db=dbs.status)):
                        return floor, out, f"open order {record.client_order_id} (seq {seq})"
                out.append((seq, bytes(value), record))
            return floor, out, ""

        return self._read(scan, (0, [], ""))

    def drop_archived(self, floor: int, records: list[tuple[int, JournalRecord]], keep_fills_ns: int) -> int:
        """Delete the log records ``records`` (seqs ``floor+1..``, already fsync'd to the archive) in one
        transaction, with what depends on them; returns the new floor.

        In the same transaction: the records' contribution is added to the aggregates base
        (``archived``), so ``verify`` = base + hot log, always; their ``by_strategy`` keys go; the
        ``orders`` entry of an archived Order and the ``status`` entry of its order go (ids are never
        reused, and an archived order is terminal); the ``fills`` entry of an archived Fill goes unless
        the Fill is within ``keep_fills_ns`` of its instrument's latest fill (a venue's trade catch-up
        re-reads those). Refuses unless the floor is still ``floor`` (one archiver at a time), the seqs
        follow it without a hole, and the last one is before the log's last record.

        The fold itself runs before, in a read transaction at the same floor (only this method moves
        the floor or writes the base, and it checks the floor again): LMDB's writer lock, which every
        trading writer shares, is held only for the deletes and a few puts.
        """
        through = records[-1][0] if records else floor

        def fold(txn: lmdb.Transaction, dbs: _Dbs) -> dict[bytes, bytes]:
            if _meta_int(txn, dbs, _FLOOR_KEY) != floor:
                raise JournalError(f"journal {self._path}: archived concurrently (floor moved from {floor})")
            base = aggregates.BufferedTxnStore(txn, dbs.archived)  # each key read once, kept in memory
            intents: dict[bytes, int] = {}
            for seq, record in records:
                aggregates.apply(base, seq, record)
                if isinstance(record, Order) and (intent := _intent_seq(record)) is not None:
                    key = _BASE_INTENT + record.strategy_id.encode()
                    if key not in intents:
                        prev = txn.get(key, db=dbs.archived)
                        intents[key] = 0 if prev is None else _seq_of(prev, "archived intent seq")
                    intents[key] = max(intents[key], intent)
            return {**base.changes(), **{key: _seq_key(seq) for key, seq in intents.items()}}

        base_changes = self._read(fold, {})

        def drop(txn: lmdb.Transaction) -> int:
            assert self._dbs is not None
            dbs = self._dbs
            if _meta_int(txn, dbs, _FLOOR_KEY) != floor:
                raise JournalError(f"journal {self._path}: archived concurrently (floor moved from {floor})")
            cur = txn.cursor(db=dbs.log)
            if not cur.last() or _seq_of(cur.key(), "journal key") <= through:
                raise JournalError(f"journal {self._path}: cannot archive through {through}, the last record")
            reports = pruned_orders = pruned_fills = 0
            latest_fill: dict[bytes, int] = {}  # instrument's book key -> its latest fill's ts_ns
            for expected, (seq, record) in enumerate(records, floor + 1):
                seq_key = _seq_key(seq)
                if seq != expected or not txn.delete(seq_key, db=dbs.log):
                    raise JournalError(f"journal {self._path}: seq {expected} missing while archiving")
                if isinstance(record, TokenSafetyReport):
                    reports += 1
                    continue
                txn.delete(_strategy_seq_key(record.strategy_id, seq), db=dbs.by_strategy)
                id_key = record.client_order_id.encode()
                if isinstance(record, Order):
                    if txn.get(id_key, db=dbs.orders) == seq_key:
                        txn.delete(id_key, db=dbs.orders)
                        pruned_orders += 1
                    if txn.get(id_key, db=dbs.open) is not None:
                        raise JournalError(f"journal {self._path}: the order at seq {seq} is open")
                    txn.delete(id_key, db=dbs.status)
                elif isinstance(record, Fill):
                    book_key = aggregates.book_key(record.venue, record.symbol)
                    latest = latest_fill.get(book_key)
                    if latest is None:
                        book = txn.get(book_key, db=dbs.aggregates)
                        latest = aggregates.decode_book(book).last_fill_ts_ns if book is not None else 0
                        latest_fill[book_key] = latest
                    fill_key = record.fill_id.encode()
                    if record.ts_ns < latest - keep_fills_ns and txn.get(fill_key, db=dbs.fills) == seq_key:
                        txn.delete(fill_key, db=dbs.fills)
                        pruned_fills += 1
                elif txn.get(id_key, db=dbs.orders) is None:
                    txn.delete(id_key, db=dbs.status)  # its Order archived (or none): the order is done
            for key, value in base_changes.items():
                txn.put(key, value, db=dbs.archived)
            for key, count in (
                (_FLOOR_KEY, through - floor),
                (_ARCHIVED_REPORTS_KEY, reports),
                (_PRUNED_ORDERS_KEY, pruned_orders),
                (_PRUNED_FILLS_KEY, pruned_fills),
            ):
                txn.put(key, _seq_key(_meta_int(txn, dbs, key) + count), db=dbs.meta)
            return through

        with self._lock:
            self._check_usable(write=True)
            return self._write_txn(drop)

    def compact_copy(self) -> Path:
        """Write this journal without its free pages to ``journal/compact/data.mdb`` (fsync'd); its path.

        LMDB reuses the pages that archiving frees but never shrinks its file: ``sniperbot journal
        compact`` swaps this copy in while the node is stopped.
        """
        target = self._path / "compact"
        target.mkdir(mode=0o700, exist_ok=True)
        copy = target / "data.mdb"
        copy.unlink(missing_ok=True)
        with self._lock:
            self._check_usable(write=False)
            try:
                self._env.copy(str(target), compact=True)
            except lmdb.Error as e:
                raise JournalError(f"journal {self._path}: compacting copy failed: {e}") from e
        os.chmod(copy, 0o600)
        fd = os.open(copy, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return copy

    # ------------------------------------------------------------------ node state

    def put_state(self, key: str, value: bytes | None) -> None:
        """Store (or, with None, delete) one piece of node state durably: breakers,
        trading state, hot-added child specs. Not part of the record log."""
        self.put_states({key: value})

    def put_states(self, items: dict[str, bytes | None]) -> None:
        """:meth:`put_state` of several pieces in one transaction: all of them or none."""
        encoded = [(_key(key, "state key"), value) for key, value in items.items()]

        def put(txn: lmdb.Transaction) -> None:
            assert self._dbs is not None
            for key, value in encoded:
                if value is None:
                    txn.delete(key, db=self._dbs.state)
                else:
                    txn.put(key, value, db=self._dbs.state)

        with self._lock:
            self._check_usable(write=True)
            self._write_txn(put)

    def get_state(self, key: str) -> bytes | None:
        """One piece of node state, or None."""
        encoded = _key(key, "state key")
        return self._read(lambda txn, dbs: txn.get(encoded, db=dbs.state), None)

    def state_items(
        self, prefix: str, *, start: str = "", stop: str = "", last: int = 0
    ) -> list[tuple[str, bytes]]:
        """The pieces of node state whose key starts with ``prefix``, in key order.

        ``start``/``stop``: only keys from ``prefix + start`` (inclusive) to ``prefix + stop``
        (exclusive; "" = no bound); ``last``: only the last ``last`` of those (0 = all). Read by
        cursor, so the cost is what is returned, not how much the prefix holds (a strategy's warm-up
        reads its last bars of the thousands the bar store keeps).
        """
        return self._state_scan(prefix, start, stop, last, values=True)

    def state_keys(self, prefix: str, *, start: str = "", stop: str = "", last: int = 0) -> list[str]:
        """The keys :meth:`state_items` would return, without reading or copying their values."""
        return [key for key, _ in self._state_scan(prefix, start, stop, last, values=False)]

    def _state_scan(
        self, prefix: str, start: str, stop: str, last: int, *, values: bool
    ) -> list[tuple[str, bytes]]:
        """One cursor scan of the state keys for :meth:`state_items` / :meth:`state_keys`."""
        if last < 0:
            raise ValueError(f"last must be >= 0, got {last}")
        base = prefix.encode()
        low = (prefix + start).encode()
        # No UTF-8 key has a 0xff byte: base + 0xff sorts after every key that starts with base.
        high = (prefix + stop).encode() if stop else base + b"\xff"

        def scan(txn: lmdb.Transaction, dbs: _Dbs) -> list[tuple[str, bytes]]:
            out: list[tuple[str, bytes]] = []
            cur = txn.cursor(db=dbs.state)
            if not last:
                if cur.set_range(low):
                    for key in cur.iternext(keys=True, values=False):
                        if key >= high or not key.startswith(base):
                            break
                        out.append((key.decode(), bytes(cur.value()) if values else b""))
                return out
            # Backwards from the last key below ``high``.
            here = cur.prev() if cur.set_range(high) else cur.last()
            while here and len(out) < last:
                key = cur.key()
                if key < low or not key.startswith(base):
                    break
                out.append((key.decode(), bytes(cur.value()) if values else b""))
                here = cur.prev()
            out.reverse()
            return out

        return self._read(scan, [])

    def counts(self) -> dict[str, int]:
        """Number of journaled orders, fills and updates."""

        def get(txn: lmdb.Transaction, dbs: _Dbs) -> dict[str, int]:
            # Archived records count too: the history, not only the hot log.
            total = txn.stat(dbs.log)["entries"] + _meta_int(txn, dbs, _FLOOR_KEY)
            # Entries archiving deleted count too (each was one Order or Fill).
            orders = txn.stat(dbs.orders)["entries"] + _meta_int(txn, dbs, _PRUNED_ORDERS_KEY)
            fills = txn.stat(dbs.fills)["entries"] + _meta_int(txn, dbs, _PRUNED_FILLS_KEY)
            counted = txn.get(_REPORTS_KEY, db=dbs.meta)
            reports = _seq_of(counted, "reports count") if counted else 0
            # Every log record is an Order, a Fill, an OrderUpdate or a report; every Order and
            # Fill has exactly one index entry and every report a count, written in the same txn.
            return {"orders": orders, "fills": fills, "updates": total - orders - fills - reports}

        return self._read(get, {"orders": 0, "fills": 0, "updates": 0})

    def sync(self) -> None:
        """Make every commit so far durable, data and meta pages (what ``sync_meta=False`` left)."""
        with self._lock:
            self._check_usable(write=True)
            try:
                self._env.sync(True)
            except lmdb.Error as e:
                raise JournalError(f"journal {self._path}: sync failed: {e}") from e

    # ------------------------------------------------------------------ closing

    @property
    def path(self) -> Path:
        """The environment directory, ``run_dir / "journal"``."""
        return self._path

    @property
    def readonly(self) -> bool:
        """Whether this Journal was opened read-only."""
        return self._readonly

    @property
    def durability(self) -> Durability:
        """The durability of this Journal's commits."""
        return self._durability

    def close(self) -> None:
        """Flush ("process" durability), close the environment, release its path; idempotent."""
        with self._lock:
            self._closed = True
            self._dbs = None
            self._finalizer()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("readonly" if self._readonly else self._durability)
        return f"Journal({str(self._path)!r}, {state})"
