"""The EVM gateway's own books: every swap intent, the nonces it holds and each signed transaction, in LMDB.

The chain is the venue; what the gateway *signed* lives only here until a block holds it. So this ledger is
written before anything leaves the process (:mod:`sniperbot.venues.evm.gateway`): the order and the nonce
it reserves in one transaction, then each signed transaction (hash, nonce, raw bytes, fees) before it is
broadcast, then what the chain did (receipts, the fill, its reversal after a reorg) and the events owed to
the executor (an outbox: an event is removed only once the executor acknowledged it).

Layout (one LMDB environment at ``run_dir / f"evmtx-{venue}"``, files 0600; not ``venue-*``, which is the
paper/ccxt :class:`~sniperbot.venues.sim.ledger.VenueLedger` format):

* ``intents``: ``client_order_id`` -> msgpack :class:`Intent` (the whole state of one order).
* ``meta``: ``format``; ``next_nonce`` (8-byte big-endian): the lowest nonce no intent holds.

Every write is one LMDB transaction, so a kill -9 leaves either the state before or the state after a step.
``durability``: ``fsync`` survives power loss, ``process`` the crash of any process (the journal's meaning).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Literal

import lmdb
import msgspec

from sniperbot.journal.lmdbfile import check_before_open, check_mapped_size
from sniperbot.messages import Fill, Order, OrderUpdate

_FORMAT = b"1"
_MAP_SIZE = 4 * 1024**3  # virtual reservation; the file grows with the data

#: Transaction kinds: the swap, a token approval (sells), a 0-value self-transfer that consumes a nonce.
SWAP, APPROVE, CANCEL = "swap", "approve", "cancel"


class TxLedgerError(Exception):
    """The transaction ledger cannot be opened or holds data it cannot read."""


class SignedTx(msgspec.Struct, frozen=True):
    """One signed transaction, exactly as broadcast (``raw``): resent byte for byte."""

    tx_hash: str  # 0x-prefixed
    raw: bytes
    max_fee: int  # wei
    priority_fee: int  # wei
    kind: str  # SWAP | APPROVE | CANCEL
    signed_block: int  # head block when signed (replacement timing)


class Mined(msgspec.Struct, frozen=True):
    """A receipt seen for one of a slot's hashes."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int


class Slot(msgspec.Struct):
    """One nonce held by an intent, with the call it carries and every transaction signed for it."""

    nonce: int
    kind: str  # what the nonce is for: SWAP or APPROVE
    to: str
    value: int
    data: str  # 0x calldata
    gas: int
    txs: list[SignedTx] = []
    mined: Mined | None = None


class Intent(msgspec.Struct):
    """Everything the gateway did for one client order id."""

    order: Order
    slots: list[Slot]
    deadline_ts: int  # the swap's deadline (block timestamp)
    token: str  # the base token's address
    decimals: int
    status: str = "accepted"  # accepted (on its way) | a terminal status once the chain decided
    reason: str = ""
    done: bool = False  # past finality: no longer watched
    counted: Mined | None = None  # the receipt the current fill came from (reorg watch)
    generation: int = 0  # how many fills were reversed by reorgs
    fills: list[Fill] = []  # every fill made, reversals included (VenueOrderReport)
    outbox: list[OrderUpdate | Fill] = []  # events the executor has not acknowledged yet
    fee_counted: list[str] = []  # tx hashes whose gas is in a fill already (a re-mined hash costs it once)


_encoder = msgspec.msgpack.Encoder()
_intent_decoder = msgspec.msgpack.Decoder(Intent)
_open_paths: set[str] = set()
_open_lock = threading.Lock()


def tx_ledger_dir(run_dir: str | os.PathLike[str], venue: str) -> Path:
    """Where the transaction ledger of ``venue`` lives inside a run directory."""
    return Path(run_dir) / f"evmtx-{venue}"


class TxLedger:
    """The durable record of one EVM venue's wallet; thread-safe. Open with :meth:`open`, close when done."""

    def __init__(self, env: lmdb.Environment, path: Path) -> None:
        self._env = env
        self._path = path
        self._lock = threading.Lock()
        self._intents = env.open_db(b"intents", create=True)
        self._meta = env.open_db(b"meta", create=True)
        with env.begin(write=True) as txn:
            fmt = txn.get(b"format", db=self._meta)
            if fmt is None:
                txn.put(b"format", _FORMAT, db=self._meta)
            elif fmt != _FORMAT:
                raise TxLedgerError(f"tx ledger {path} has format {fmt!r}, expected {_FORMAT!r}")

    @classmethod
    def open(
        cls, run_dir: str | os.PathLike[str], venue: str, durability: Literal["fsync", "process"] = "fsync"
    ) -> TxLedger:
        """Open (creating) the ledger of ``venue`` in ``run_dir``; once per process."""
        path = cls.directory(run_dir, venue)
        problem = check_before_open(path, must_exist=False)
        if problem is not None:
            raise TxLedgerError(f"tx ledger {problem}")
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = os.path.realpath(path)
        with _open_lock:
            if key in _open_paths:
                raise TxLedgerError(f"tx ledger {path} is already open in this process")
            _open_paths.add(key)
        try:
            env = lmdb.open(
                str(path),
                map_size=_MAP_SIZE,
                max_dbs=2,
                sync=durability == "fsync",
                metasync=durability == "fsync",
                mode=0o600,
            )
            problem = check_mapped_size(env, path)
            if problem is not None:
                env.close()
                raise TxLedgerError(f"tx ledger {problem}")
            env.reader_check()
            return cls(env, path)
        except BaseException:
            with _open_lock:
                _open_paths.discard(key)
            raise

    @classmethod
    def directory(cls, run_dir: str | os.PathLike[str], venue: str) -> Path:
        """Where this ledger lives in ``run_dir`` (another chain's ledger subclasses this one)."""
        return tx_ledger_dir(run_dir, venue)

    def close(self) -> None:
        """Flush and close (idempotent)."""
        with self._lock:
            if self._env is None:
                return
            self._env.sync(True)
            self._env.close()
            self._env = None  # type: ignore[assignment]
            with _open_lock:
                _open_paths.discard(os.path.realpath(self._path))

    # -- reading -----------------------------------------------------------------------------------
    def intent(self, cid: str) -> Intent | None:
        """The intent of ``cid``, or None if the gateway never recorded it."""
        with self._lock, self._env.begin() as txn:
            raw = txn.get(cid.encode(), db=self._intents)
        return None if raw is None else self._decode(cid, raw)

    def intents(self) -> list[Intent]:
        """Every intent, by client order id."""
        with self._lock, self._env.begin() as txn:
            rows = [(bytes(k).decode(), bytes(v)) for k, v in txn.cursor(db=self._intents)]
        return [self._decode(cid, raw) for cid, raw in rows]

    def next_nonce(self) -> int:
        """The lowest nonce no intent holds yet."""
        with self._lock, self._env.begin() as txn:
            raw = txn.get(b"next_nonce", db=self._meta)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def _decode(self, cid: str, raw: bytes) -> Intent:
        try:
            return _intent_decoder.decode(raw)
        except (msgspec.DecodeError, ValueError) as e:
            where = f"tx ledger {self._path}: intent {cid[:40]!r}"
            raise TxLedgerError(f"{where} cannot be decoded: {e}") from None

    # -- writing -----------------------------------------------------------------------------------
    def create(self, intent: Intent, chain_nonce: int) -> Intent:
        """Record a new intent and reserve its nonces, in one transaction; the intent with its nonces.

        The nonces start at ``max(next_nonce, chain_nonce)`` (the chain is ahead if the wallet was used
        elsewhere). Raises if the client order id is known (never a second swap for one order).
        """
        cid = intent.order.client_order_id.encode()
        with self._lock, self._env.begin(write=True) as txn:
            if txn.get(cid, db=self._intents) is not None:
                raise TxLedgerError(f"intent {intent.order.client_order_id!r} already recorded")
            raw = txn.get(b"next_nonce", db=self._meta)
            nonce = max(chain_nonce, 0 if raw is None else int.from_bytes(raw, "big"))
            for slot in intent.slots:
                slot.nonce = nonce
                nonce += 1
            txn.put(b"next_nonce", nonce.to_bytes(8, "big"), db=self._meta)
            txn.put(cid, _encoder.encode(intent), db=self._intents)
        return intent

    def put(self, intent: Intent) -> None:
        """Store the intent's new state (one transaction)."""
        with self._lock, self._env.begin(write=True) as txn:
            txn.put(intent.order.client_order_id.encode(), _encoder.encode(intent), db=self._intents)
