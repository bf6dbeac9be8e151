"""The Solana gateway's own books: every swap intent and the one transaction signed for it, in LMDB.

The chain is the venue; what the gateway *signed* lives only here until a slot holds it. So this ledger
is written before anything leaves the process (:mod:`sniperbot.venues.solana.gateway`): the order first
(before any quote or signature), then the signed transaction (signature, ``lastValidBlockHeight``, the
exact bytes) before it is sent, then what the chain did (the landed slot, the fill or the rejection) and
the events owed to the executor (an outbox: an event is removed only once the executor acknowledged it).

A Solana transaction has no nonce: it is unique by its signature and dies with its blockhash. So an
intent holds at most ONE signed transaction at a time that can still land; the gateway signs another
for the same intent never (an expired one rejects the order ``expired``), except when the process died
between a signature and its journaling: those bytes never left the process.

Layout (one LMDB environment at ``run_dir / f"soltx-{venue}"``, files 0600): ``intents``:
``client_order_id`` -> msgpack :class:`Intent`; ``meta``: ``format``. Every write is one LMDB
transaction, so a kill -9 leaves either the state before or the state after a step. The LMDB plumbing is
the EVM ledger's (:class:`sniperbot.venues.evm.txledger.TxLedger`), reused with this venue's records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.venues.evm import txledger as _evm


class SignedSwap(msgspec.Struct, frozen=True):
    """The one signed swap transaction of an intent, exactly as sent (``raw``): resent byte for byte."""

    signature: str  # base58: the transaction's id
    raw: bytes
    last_valid_block_height: int  # past it (and not landed), the transaction can never land
    route: str  # jito | rpc
    tip: int  # lamports to Jito, inside the transaction
    in_amount: int  # what the quote said it pays (raw units of the input)
    out_amount: int  # what the quote said it gets (raw units of the output)
    threshold: int  # the quote's otherAmountThreshold


class Landed(msgspec.Struct, frozen=True):
    """The signature's status once the chain holds it."""

    slot: int
    ok: bool
    error: str = ""


class Intent(msgspec.Struct):
    """Everything the gateway did for one client order id."""

    order: Order
    mint: str  # the base token's mint (base58)
    decimals: int
    created_ns: int  # when the order was recorded (wall clock): bounds a placement after a restart
    tx: SignedSwap | None = None
    landed: Landed | None = None
    status: str = "accepted"  # accepted (on its way) | a terminal status once the chain decided
    reason: str = ""
    done: bool = False  # decided: no longer watched
    fills: list[Fill] = []
    outbox: list[OrderUpdate | Fill] = []  # events the executor has not acknowledged yet


def tx_ledger_dir(run_dir: str | os.PathLike[str], venue: str) -> Path:
    """Where the transaction ledger of ``venue`` lives inside a run directory."""
    return Path(run_dir) / f"soltx-{venue}"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Intent)

TxLedgerError = _evm.TxLedgerError


class TxLedger(_evm.TxLedger):
    """The durable record of one Solana venue's wallet; thread-safe. :meth:`open`, then close."""

    @classmethod
    def directory(cls, run_dir: str | os.PathLike[str], venue: str) -> Path:
        """``<run dir>/soltx-<venue>``."""
        return tx_ledger_dir(run_dir, venue)

    @classmethod
    def open(
        cls, run_dir: str | os.PathLike[str], venue: str, durability: Literal["fsync", "process"] = "fsync"
    ) -> TxLedger:
        """Open (creating) the ledger of ``venue`` in ``run_dir``; once per process."""
        return super().open(run_dir, venue, durability)  # type: ignore[return-value]

    def intent(self, cid: str) -> Intent | None:  # type: ignore[override]
        """The intent of ``cid``, or None if the gateway never recorded it."""
        with self._lock, self._env.begin() as txn:
            raw = txn.get(cid.encode(), db=self._intents)
        return None if raw is None else self._decode_sol(cid, bytes(raw))

    def intents(self) -> list[Intent]:  # type: ignore[override]
        """Every intent, by client order id."""
        with self._lock, self._env.begin() as txn:
            rows = [(bytes(k).decode(), bytes(v)) for k, v in txn.cursor(db=self._intents)]
        return [self._decode_sol(cid, raw) for cid, raw in rows]

    def _decode_sol(self, cid: str, raw: bytes) -> Intent:
        try:
            return _decoder.decode(raw)
        except (msgspec.DecodeError, ValueError) as e:
            raise TxLedgerError(
                f"tx ledger {self._path}: intent {cid[:40]!r} cannot be decoded: {e}"
            ) from None

    def create(self, intent: Intent) -> Intent:  # type: ignore[override]
        """Record a new intent (before any quote or signature). Raises if the client order id is known."""
        cid = intent.order.client_order_id.encode()
        with self._lock, self._env.begin(write=True) as txn:
            if txn.get(cid, db=self._intents) is not None:
                raise TxLedgerError(f"intent {intent.order.client_order_id!r} already recorded")
            txn.put(cid, _encoder.encode(intent), db=self._intents)
        return intent

    def put(self, intent: Intent) -> None:  # type: ignore[override]
        """Store the intent's new state (one transaction)."""
        with self._lock, self._env.begin(write=True) as txn:
            txn.put(intent.order.client_order_id.encode(), _encoder.encode(intent), db=self._intents)
