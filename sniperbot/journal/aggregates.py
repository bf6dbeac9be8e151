"""Materialised aggregates of the journal: what actors restore from, in O(keys) instead of O(records).

Decision (issue 14, restarts that do not grow with the journal): the journal itself keeps, in its
``aggregates`` database, the running sums every restarting actor needs, updated by :func:`apply` in
the **same LMDB write transaction** as the record that changes them (as the ``intents`` and
``status`` indexes are). They can therefore never disagree with the log, kill -9 mid-append
included: a transaction is all or nothing. A reader gets them together with ``through_seq``, the
last seq of the log in the same read transaction (:meth:`Journal.snapshot`), and tails the log after
it. Per-actor snapshots taken now and then were the alternative; they would still replay a tail of
unbounded length after a long run and need their own consistency rules, so they were not chosen.

Keys (one LMDB database, one byte of kind first; venue, symbol and strategy ids are joined by NUL):

* ``B`` venue NUL symbol -> :class:`Book`: the position of an instrument over every strategy
  (the portfolio ledger's book, the risk guard's net position, the last fill's time).
* ``P`` strategy NUL venue NUL symbol -> :class:`Book`: the same for one strategy's fills.
* ``S`` strategy -> :class:`StrategyTotals`: a strategy's net quantity over all its fills (summed
  in journal order, as a replay would) and the highest intent seq of its Orders and OrderUpdates.
* ``V`` venue -> :class:`VenueTotals`: fees, fills and rejected updates of a venue (the portfolio
  ledger's totals, summed in journal order).
* ``D`` day (8-byte big-endian UTC days since the epoch) venue NUL symbol -> :class:`Spend`: quote spent
  by the day's buy fills (a sell writes the key with nothing added: the risk guard's day is the latest day
  of any fill).

Every float is summed in journal order with the same expressions a replay uses
(:func:`sniperbot.portfolio.ledger.book_fill` for the book), so a restored figure is bit-for-bit the
replayed one, not merely close.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

import lmdb
import msgspec

from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.messages.orders import parse_intent_seq
from sniperbot.portfolio.ledger import book_fill

__all__ = [
    "DAY_NS",
    "Book",
    "BufferedTxnStore",
    "MemoryStore",
    "Snapshot",
    "Spend",
    "StrategyTotals",
    "TxnStore",
    "VenueTotals",
    "apply",
    "book_key",
    "decode_value",
    "strategy_book_key",
]

DAY_NS = 86_400 * 10**9
"""One UTC day in ns: the spend aggregates are per ``ts_ns // DAY_NS``, as the risk guard counts them."""

BOOK = b"B"
STRATEGY_BOOK = b"P"
STRATEGY = b"S"
VENUE = b"V"
SPEND = b"D"
_SEP = b"\0"


class Book(msgspec.Struct, array_like=True):
    """The running position of one instrument (over every strategy, or one strategy's)."""

    net: float = 0.0  # signed quantities summed in journal order (the risk guard's position)
    quantity: float = 0.0  # the ledger's average-cost position (dust snapped to flat)
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    fills: int = 0
    buy_quantity: float = 0.0
    buy_quote: float = 0.0  # sum of quantity x price of the buys
    sell_quantity: float = 0.0
    sell_quote: float = 0.0
    last_fill_seq: int = 0
    last_fill_ts_ns: int = 0  # the latest fill time (max), for "trades since the journal" at a venue


class StrategyTotals(msgspec.Struct, array_like=True):
    """A strategy's net position over all its fills and its highest intent seq."""

    net: float = 0.0
    fills: int = 0
    intent_seq: int = 0


class VenueTotals(msgspec.Struct, array_like=True):
    """A venue's fees, fills and rejected order updates (the portfolio ledger's totals)."""

    fees: float = 0.0
    fills: int = 0
    rejected: int = 0


class Spend(msgspec.Struct, array_like=True):
    """Quote spent by one day's buy fills of one instrument."""

    quote: float = 0.0


_enc = msgspec.msgpack.Encoder()
_decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {
    kind: msgspec.msgpack.Decoder(kind) for kind in (Book, StrategyTotals, VenueTotals, Spend)
}
_S = TypeVar("_S", Book, StrategyTotals, VenueTotals, Spend)


class TxnStore:
    """The aggregates database in a write transaction: each value decoded on load, encoded on save."""

    def __init__(self, txn: lmdb.Transaction, db: lmdb._Database) -> None:
        self._txn, self._db = txn, db

    def load(self, key: bytes, kind: type[_S]) -> _S:
        """The stored value of ``key``, or a new empty one."""
        raw = self._txn.get(key, db=self._db)
        return kind() if raw is None else _decoders[kind].decode(raw)

    def save(self, key: bytes, value: msgspec.Struct) -> None:
        """Store ``value`` under ``key``."""
        self._txn.put(key, _enc.encode(value), db=self._db)


class BufferedTxnStore(TxnStore):
    """A :class:`TxnStore` that reads each key once and keeps what is saved in memory (:meth:`changes`):
    a fold of many records (an archive batch) in a read transaction, written later in one write."""

    def __init__(self, txn: lmdb.Transaction, db: lmdb._Database) -> None:
        super().__init__(txn, db)
        self._values: dict[bytes, msgspec.Struct] = {}
        self._dirty: set[bytes] = set()

    def load(self, key: bytes, kind: type[_S]) -> _S:
        """The value of ``key`` so far (stored, or saved in this fold), or a new empty one."""
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = super().load(key, kind)
        return value  # type: ignore[return-value]

    def save(self, key: bytes, value: msgspec.Struct) -> None:
        """Keep ``value`` under ``key`` (in memory)."""
        self._values[key] = value
        self._dirty.add(key)

    def changes(self) -> dict[bytes, bytes]:
        """Every key saved in this fold with its value as the database stores it."""
        return {key: _enc.encode(self._values[key]) for key in self._dirty}


class MemoryStore:
    """Aggregates folded in memory (an upgrade, a verification): values stay objects until :meth:`encoded`."""

    def __init__(self) -> None:
        self.values: dict[bytes, msgspec.Struct] = {}

    def load(self, key: bytes, kind: type[_S]) -> _S:
        """The value of ``key`` so far, or a new empty one (kept only once saved)."""
        value = self.values.get(key)
        return kind() if value is None else value  # type: ignore[return-value]

    def save(self, key: bytes, value: msgspec.Struct) -> None:
        """Keep ``value`` under ``key`` (the same object, mutated by later loads)."""
        self.values[key] = value

    def encoded(self) -> dict[bytes, bytes]:
        """Every key with its value as the database stores it."""
        return {key: _enc.encode(value) for key, value in self.values.items()}


Store = TxnStore | MemoryStore


class Snapshot(NamedTuple):
    """The aggregates read in one transaction, with the log's last seq in that transaction."""

    through_seq: int
    orders: int  # Orders journaled
    books: dict[tuple[str, str], Book]  # (venue, symbol) -> book
    venues: dict[str, VenueTotals]
    strategy: StrategyTotals  # of the strategy asked for (empty if none was)
    strategy_books: dict[tuple[str, str], Book]  # (venue, symbol) -> that strategy's book
    spend_day: int  # max(today, the latest day of any fill); -1 if no day was asked for
    spend: dict[tuple[str, str], float]  # (venue, symbol) -> quote spent by buys on spend_day


def book_key(venue: str, symbol: str) -> bytes:
    """The key of an instrument's book."""
    return BOOK + venue.encode() + _SEP + symbol.encode()


def strategy_book_key(strategy_id: str, venue: str = "", symbol: str = "") -> bytes:
    """The key of one strategy's book of an instrument (without venue: the prefix of all its books)."""
    key = STRATEGY_BOOK + strategy_id.encode() + _SEP
    return key + venue.encode() + _SEP + symbol.encode() if venue else key


def strategy_key(strategy_id: str) -> bytes:
    """The key of a strategy's totals."""
    return STRATEGY + strategy_id.encode()


def venue_key(venue: str) -> bytes:
    """The key of a venue's totals."""
    return VENUE + venue.encode()


def spend_key(day: int, venue: str = "", symbol: str = "") -> bytes:
    """The key of a day's spend on an instrument (without venue: the prefix of the day)."""
    key = SPEND + day.to_bytes(8, "big")
    return key + venue.encode() + _SEP + symbol.encode() if venue else key


def split_pair(raw: bytes) -> tuple[str, str]:
    """``venue NUL symbol`` back to ``(venue, symbol)``."""
    venue, _, symbol = raw.partition(_SEP)
    return venue.decode(), symbol.decode()


def decode_book(raw: bytes) -> Book:
    """A stored :class:`Book`."""
    return _decoders[Book].decode(raw)


def decode_strategy(raw: bytes | None) -> StrategyTotals:
    """A stored :class:`StrategyTotals` (empty if none)."""
    return StrategyTotals() if raw is None else _decoders[StrategyTotals].decode(raw)


def decode_venue(raw: bytes) -> VenueTotals:
    """A stored :class:`VenueTotals`."""
    return _decoders[VenueTotals].decode(raw)


def decode_spend(raw: bytes) -> float:
    """A stored day's spend."""
    return _decoders[Spend].decode(raw).quote


_KINDS: dict[bytes, type] = {
    BOOK: Book,
    STRATEGY_BOOK: Book,
    STRATEGY: StrategyTotals,
    VENUE: VenueTotals,
    SPEND: Spend,
}


def decode_value(key: bytes, raw: bytes) -> msgspec.Struct:
    """A stored value of any aggregates key, by the key's kind byte (a base seeding a fold)."""
    kind = _KINDS.get(key[:1])
    if kind is None:
        raise ValueError(f"unknown aggregates key {key[:40]!r}")
    return _decoders[kind].decode(raw)  # type: ignore[no-any-return]


def _book_fill(store: Store, key: bytes, seq: int, fill: Fill) -> None:
    book = store.load(key, Book)
    book.net += fill.quantity if fill.side == "buy" else -fill.quantity
    book.quantity, book.avg_price, book.realized_pnl = book_fill(
        book.quantity, book.avg_price, book.realized_pnl, fill.side, fill.quantity, fill.price
    )
    book.fees += fill.fee
    book.fills += 1
    if fill.side == "buy":
        book.buy_quantity += fill.quantity
        book.buy_quote += fill.quantity * fill.price
    else:
        book.sell_quantity += fill.quantity
        book.sell_quote += fill.quantity * fill.price
    book.last_fill_seq = seq
    book.last_fill_ts_ns = max(book.last_fill_ts_ns, fill.ts_ns)
    store.save(key, book)


def apply(store: Store, seq: int, record: object) -> None:
    """Fold one record just appended at ``seq`` into the aggregates ``store`` (of its write transaction).

    Called only for records that are written (a duplicate Order or Fill is not); reports change nothing.
    """
    if isinstance(record, Fill):
        _book_fill(store, book_key(record.venue, record.symbol), seq, record)
        _book_fill(store, strategy_book_key(record.strategy_id, record.venue, record.symbol), seq, record)
        key = strategy_key(record.strategy_id)
        totals = store.load(key, StrategyTotals)
        totals.net += record.quantity if record.side == "buy" else -record.quantity
        totals.fills += 1
        store.save(key, totals)
        key = venue_key(record.venue)
        venue = store.load(key, VenueTotals)
        venue.fees += record.fee
        venue.fills += 1
        store.save(key, venue)
        key = spend_key(record.ts_ns // DAY_NS, record.venue, record.symbol)
        spend = store.load(key, Spend)
        if record.side == "buy":
            spend.quote += record.quantity * record.price
        store.save(key, spend)  # a sell too: the risk guard's day is the latest day of any fill
    elif isinstance(record, Order | OrderUpdate):
        # As a replay of the strategy's records finds it: the seq in the client order id of its
        # Orders and OrderUpdates (a rejected intent has an OrderUpdate and no Order).
        intent_seq = parse_intent_seq(record.client_order_id, record.strategy_id)
        if intent_seq is not None:
            key = strategy_key(record.strategy_id)
            totals = store.load(key, StrategyTotals)
            if intent_seq > totals.intent_seq:
                totals.intent_seq = intent_seq
                store.save(key, totals)
        if isinstance(record, OrderUpdate) and record.status == "rejected":
            key = venue_key(record.venue)
            venue = store.load(key, VenueTotals)
            venue.rejected += 1
            store.save(key, venue)
