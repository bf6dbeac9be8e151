"""A local Solana chain that behaves like one: LiteSVM behind JSON-RPC, WebSocket and Jito block-engine APIs.

Tests, benchmarks and demos use it; a production node never does (it talks to the endpoints its ``[[venues]]
kind = "solana"`` entry names). :class:`LocalSolana` runs solders' ``LiteSVM`` (the real SPL Token,
Token-2022, ATA and memo programs) and serves it on ONE aiohttp server on 127.0.0.1, in a background thread:

- ``rpc_url`` (``http://127.0.0.1:<port>``): Solana's JSON-RPC at ``/``, in the wire format of a real
  validator (the real ``solana.rpc.async_api.AsyncClient`` and solders' response parsers read it), plus Jito's
  ``simulateBundle``;
- ``ws_url`` (``ws://127.0.0.1:<port>``, same port): ``slotSubscribe``, ``signatureSubscribe``,
  ``accountSubscribe``, ``programSubscribe``, ``logsSubscribe`` (and their ``*Unsubscribe``);
- ``block_engine_url`` (``http://127.0.0.1:<port>/``): Jito's block engine under ``/api/v1/`` (``bundles``:
  ``sendBundle``, ``getBundleStatuses``, ``getInflightBundleStatuses``, ``getTipAccounts``; ``transactions``:
  ``sendTransaction``; ``getTipAccounts``).

**Blocks.** Every ``slot_ms`` a new slot is produced (block height == slot: no slot is ever skipped) with a
new blockhash. A blockhash made at slot ``S`` is valid for transactions landing at slots ``<= S +
blockhash_valid_slots`` (``lastValidBlockHeight``); the server checks it (the SVM is built without its own
blockhash check). Sent transactions and bundles are queued and land, in the order received, at the start of
the next slot, so "sent but not landed" exists. A landed transaction is ``processed`` in its slot,
``confirmed`` one slot later and ``finalized`` ``finality_slots`` slots later. Reads that take a commitment
answer with the slot (context, ``getSlot``, ``getBlockHeight``, ``getLatestBlockhash``) of that commitment's
bank; account state is always the latest (processed) bank's: no fork is ever abandoned here, so a later bank
only adds to an earlier one.

**Transactions** land like on a validator: a transaction whose blockhash has expired, or whose signature
already landed, is dropped; one that fails while executing still lands (status ``err``, its fee charged), one
that cannot pay its fee never does. ``sendTransaction`` runs the real preflight (signature verification, then
a simulation on the latest bank: ``-32002`` with ``data.err``/``data.logs`` on failure, e.g.
``BlockhashNotFound`` or ``AlreadyProcessed``), ``skipPreflight`` skips it.

**Jito.** ``sendBundle`` takes at most 5 base64 (or base58) transactions and lands them all or none in one
slot: every account the bundle touches is snapshotted and restored if one transaction fails. A bundle must pay
a tip of at least :data:`MIN_TIP_LAMPORTS` by a system transfer to one of the 8 tip accounts
(:data:`TIP_ACCOUNTS`, mainnet's addresses, pre-funded so that small tips do not fail for rent), else it
is refused at once. The bundle id is the sha256 hex of the transactions' first signatures joined by ``","``
(jito-solana's ``derive_bundle_id``).

**Subscriptions** honour their commitment (default ``finalized``, as a validator): a change is notified when
its slot reaches that commitment, with the account as it was right after the change. Any change of an account
(by a landed transaction, or through :meth:`LocalSolana.set_account` / :meth:`LocalSolana.airdrop`) notifies
the account's subscribers and the subscribers of the program that owns it after the change.

**Devchain API** (thread-safe; tests and benches): :meth:`~LocalSolana.airdrop`,
:meth:`~LocalSolana.set_account`, :meth:`~LocalSolana.account`, :meth:`~LocalSolana.slot`,
:meth:`~LocalSolana.latest_blockhash`, :meth:`~LocalSolana.pause` / :meth:`~LocalSolana.resume` /
:meth:`~LocalSolana.produce_slots`, :meth:`~LocalSolana.drop_next`, :meth:`~LocalSolana.send_raw`,
:meth:`~LocalSolana.simulate`, :meth:`~LocalSolana.wait_for_slot`, :meth:`~LocalSolana.signature_status`,
:meth:`~LocalSolana.wait_for_signature`, :meth:`~LocalSolana.signatures_for`. Code that reads or writes
``svm`` directly holds ``lock`` (a re-entrant lock) and calls :meth:`~LocalSolana.notify_changed` for accounts
it wrote; transactions go through :meth:`~LocalSolana.send_raw` (``svm.send_transaction`` would bypass the
ledger: no status, no notification).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import math
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.token.state import Mint, TokenAccount
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

# One home for Jito's rules (tip accounts, minimum tip, bundle size and id): the client's module.
from sniperbot.venues.solana.jito import MAX_BUNDLE_TXS, MIN_TIP_LAMPORTS, TIP_ACCOUNTS, bundle_id_of

log = logging.getLogger("sniperbot.venues.solana.devchain")

__all__ = ["LocalSolana", "RpcError", "SignatureStatus", "TransactionFailed", "TxOutcome"]

LAMPORTS_PER_SIGNATURE = 5000  # the base fee per signature of every cluster
SLOTS_PER_EPOCH = 432_000  # mainnet's epoch length
STATUS_CACHE_SLOTS = (
    300  # a validator's status cache (MAX_RECENT_BLOCKHASHES): older needs searchTransactionHistory
)
DEFAULT_CU_PER_INSTRUCTION = 200_000  # the compute budget's default limit per program instruction
DEFAULT_CU_PER_BUILTIN_INSTRUCTION = 3_000  # ... and per builtin-program instruction (agave 2.x)
MAX_COMPUTE_UNIT_LIMIT = 1_400_000
MAX_FEE_SLOTS = 150  # getRecentPrioritizationFees looks this many slots back
SOLANA_CORE_VERSION = "2.2.0"  # what getVersion and the response contexts advertise
FEATURE_SET = 3294202862  # getVersion's feature-set (any stable number: clients only display it)
MAX_BASE58_ACCOUNT_BYTES = 128  # a validator refuses base58 account data longer than this
COMPUTE_BUDGET_PROGRAM_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
BUILTIN_PROGRAMS = frozenset(
    Pubkey.from_string(s)
    for s in (
        "11111111111111111111111111111111",
        "ComputeBudget111111111111111111111111111111",
        "AddressLookupTab1e1111111111111111111111111",
        "Stake11111111111111111111111111111111111111",
        "Vote111111111111111111111111111111111111111",
        "Config1111111111111111111111111111111111111",
        "BPFLoader1111111111111111111111111111111111",
        "BPFLoader2111111111111111111111111111111111",
        "BPFLoaderUpgradeab1e11111111111111111111111",
        "LoaderV411111111111111111111111111111111111",
    )
)
TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
TOKEN_ACCOUNT_SIZE = 165
MINT_SIZE = 82
ACCOUNT_TYPE_TOKEN_ACCOUNT = 2  # Token-2022's account-type byte (at offset 165) of a token account
ACCOUNT_TYPE_MINT = 1
ALT_META_SIZE = 56  # an address lookup table's header before its addresses

COMMITMENTS = ("processed", "confirmed", "finalized")
_COMMITMENT_ALIASES = {
    "recent": "processed",
    "single": "confirmed",
    "singleGossip": "confirmed",
    "max": "finalized",
    "root": "finalized",
}

# JSON-RPC error codes of a validator (agave rpc-client-api custom_error.rs) and of JSON-RPC 2.0.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PREFLIGHT_FAILURE = -32002
SIGNATURE_VERIFICATION_FAILURE = -32003
UNSUPPORTED_TRANSACTION_VERSION = -32015
MIN_CONTEXT_SLOT_NOT_REACHED = -32016


class RpcError(Exception):
    """A JSON-RPC error object, as a validator returns it (code, message, optional data)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The ``error`` member of the response."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


class TransactionFailed(RuntimeError):
    """A transaction run by :meth:`LocalSolana.send_raw` failed (or could not land); ``outcome`` says how."""

    def __init__(self, outcome: TxOutcome) -> None:
        super().__init__(f"transaction {outcome.signature} failed: {outcome.err} ; logs: {outcome.logs}")
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """What became of a transaction run by :meth:`LocalSolana.send_raw` or :meth:`LocalSolana.simulate`."""

    signature: Signature
    landed: bool  # in the ledger (with or without an error); False: refused, nothing changed
    slot: int
    err: Any  # the error in its JSON form ({"InstructionError": [0, {"Custom": 1}]}, "BlockhashNotFound"...)
    logs: list[str]
    fee: int
    units_consumed: int

    @property
    def ok(self) -> bool:
        """Landed (or simulated) without an error."""
        return self.err is None


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """A landed transaction's slot, error (JSON form, None: success) and commitment reached."""

    slot: int
    err: Any
    commitment: str  # processed | confirmed | finalized


# ----------------------------------------------------------------------------------------------------
# Wire-format helpers (pure functions)


_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def _b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 (Solana's encoding of keys, signatures and instruction data)."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    """Inverse of :func:`_b58encode` (ValueError on a character outside the alphabet)."""
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise ValueError(f"invalid base58 character {c!r}")
        n = n * 58 + _B58_INDEX[c]
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def _err_json(err: Any) -> Any:
    """A solders TransactionError in the JSON form of the RPC (via solders' own serializer)."""
    if err is None:
        return None
    doc = RpcSimulateTransactionResult(
        err=err, logs=None, accounts=None, units_consumed=None, return_data=None
    ).to_json()
    return json.loads(doc)["err"]


_FIELDLESS_MESSAGES = {
    "AccountInUse": "Account in use",
    "AccountLoadedTwice": "Account loaded twice",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "ProgramAccountNotFound": "Attempt to load a program that does not exist",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "InvalidAccountForFee": "This account may not be used to pay transaction fees",
    "AlreadyProcessed": "This transaction has already been processed",
    "BlockhashNotFound": "Blockhash not found",
    "SignatureFailure": "Transaction did not pass signature verification",
    "SanitizeFailure": "Transaction failed to sanitize accounts offsets correctly",
    "InvalidAccountIndex": "Transaction contains an invalid account reference",
}


def _err_message(err: Any) -> str:
    """A TransactionError's Display text, as in a validator's "Transaction simulation failed: ..." message."""
    if isinstance(err, str):
        return _FIELDLESS_MESSAGES.get(err, err)
    if isinstance(err, dict) and "InstructionError" in err:
        index, inner = err["InstructionError"]
        if isinstance(inner, dict) and "Custom" in inner:
            detail = f"custom program error: {inner['Custom']:#x}"
        else:
            detail = str(inner)
        return f"Error processing Instruction {index}: {detail}"
    if isinstance(err, dict) and "InsufficientFundsForRent" in err:
        return (
            f"Transaction results in an account ({err['InsufficientFundsForRent']['account_index']}) "
            "with insufficient funds for rent"
        )
    return json.dumps(err)


def _ui_amount_string(amount: int, decimals: int) -> str:
    """A token amount as a validator prints it (``uiAmountString``): decimal, trailing zeros trimmed."""
    if decimals == 0:
        return str(amount)
    whole, frac = divmod(amount, 10**decimals)
    frac_s = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{whole}.{frac_s}" if frac_s else str(whole)


def _ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    """The ``uiTokenAmount`` object (``amount`` as a string, ``uiAmount`` a float)."""
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": amount / 10**decimals,
        "uiAmountString": _ui_amount_string(amount, decimals),
    }


def _is_token_account(acc: Account | None) -> bool:
    if acc is None or acc.owner not in TOKEN_PROGRAMS or len(acc.data) < TOKEN_ACCOUNT_SIZE:
        return False
    # A Token-2022 mint with extensions is also longer than 165 bytes: its account-type byte tells them apart.
    return len(acc.data) == TOKEN_ACCOUNT_SIZE or acc.data[TOKEN_ACCOUNT_SIZE] == ACCOUNT_TYPE_TOKEN_ACCOUNT


def _is_mint(acc: Account | None) -> bool:
    if acc is None or acc.owner not in TOKEN_PROGRAMS:
        return False
    return len(acc.data) == MINT_SIZE or (
        len(acc.data) > TOKEN_ACCOUNT_SIZE and acc.data[TOKEN_ACCOUNT_SIZE] == ACCOUNT_TYPE_MINT
    )


def _token_account(acc: Account) -> TokenAccount:
    return TokenAccount.from_bytes(bytes(acc.data[:TOKEN_ACCOUNT_SIZE]))


def _mint(acc: Account) -> Mint:
    return Mint.from_bytes(bytes(acc.data[:MINT_SIZE]))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _parse_commitment(cfg: dict[str, Any]) -> str:
    """The commitment of a request's config (default ``finalized``, as a validator)."""
    raw = cfg.get("commitment") or "finalized"
    value = _COMMITMENT_ALIASES.get(raw, raw)
    if value not in COMMITMENTS:
        raise RpcError(INVALID_PARAMS, f"Invalid param: unknown commitment {raw!r}")
    return str(value)


def _param(params: list[Any], index: int, what: str) -> Any:
    if len(params) <= index or params[index] is None:
        raise RpcError(INVALID_PARAMS, f"Invalid params: missing {what} (parameter {index})")
    return params[index]


def _config(params: list[Any], index: int) -> dict[str, Any]:
    if len(params) <= index or params[index] is None:
        return {}
    cfg = params[index]
    if not isinstance(cfg, dict):
        raise RpcError(
            INVALID_PARAMS, f"Invalid params: parameter {index} must be a config object, not {cfg!r}"
        )
    return cfg


def _pubkey(value: Any, what: str) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except Exception as exc:  # solders raises ValueError or its own ParseError
        raise RpcError(
            INVALID_PARAMS, f"Invalid param: {what} is not a base58 public key: {value!r}"
        ) from exc


def _signature(value: Any, what: str) -> Signature:
    try:
        return Signature.from_string(value)
    except Exception as exc:
        raise RpcError(INVALID_PARAMS, f"Invalid param: {what} is not a base58 signature: {value!r}") from exc


def _decode_bytes(value: Any, encoding: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, f"Invalid params: {what} must be a string, not {type(value).__name__}")
    try:
        if encoding == "base64":
            return base64.b64decode(value, validate=True)
        if encoding == "base58":
            return _b58decode(value)
    except Exception as exc:
        raise RpcError(INVALID_PARAMS, f"invalid {encoding} encoding of {what}: {exc}") from exc
    raise RpcError(INVALID_PARAMS, f"Invalid params: unsupported encoding {encoding!r} of {what}")


def _decode_transaction(value: Any, encoding: str) -> tuple[VersionedTransaction, bytes]:
    raw = _decode_bytes(value, encoding, "the transaction")
    try:
        tx = VersionedTransaction.from_bytes(raw)
        tx.sanitize()
    except Exception as exc:
        raise RpcError(
            INVALID_PARAMS,
            f"failed to deserialize solana_transaction::versioned::VersionedTransaction: {exc}",
        ) from exc
    return tx, raw


def _compute_budget(tx: VersionedTransaction) -> tuple[int, int]:
    """(compute unit limit, compute unit price in micro-lamports) that a transaction asks for."""
    msg = tx.message
    keys = msg.account_keys
    limit: int | None = None
    price = 0
    default_limit = 0
    for ix in msg.instructions:
        program = keys[ix.program_id_index]
        builtin = program in BUILTIN_PROGRAMS
        default_limit += DEFAULT_CU_PER_BUILTIN_INSTRUCTION if builtin else DEFAULT_CU_PER_INSTRUCTION
        if program != COMPUTE_BUDGET_PROGRAM_ID:
            continue
        data = bytes(ix.data)
        if data[:1] == b"\x02" and len(data) >= 5:
            limit = struct.unpack_from("<I", data, 1)[0]
        elif data[:1] == b"\x03" and len(data) >= 9:
            price = struct.unpack_from("<Q", data, 1)[0]
    if limit is None:
        limit = default_limit
    return min(limit, MAX_COMPUTE_UNIT_LIMIT), price


def _fee(message: Message | MessageV0, tx: VersionedTransaction | None = None) -> int:
    """The fee of a message: 5000 lamports a signature plus the priority fee (price x limit, rounded up)."""
    probe = (
        tx
        if tx is not None
        else VersionedTransaction.populate(
            message, [Signature.default()] * message.header.num_required_signatures
        )
    )
    limit, price = _compute_budget(probe)
    return LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + math.ceil(
        limit * price / 1_000_000
    )


def _tip_paid(tx: VersionedTransaction, keys: list[Pubkey]) -> int:
    """Lamports a transaction transfers to Jito tip accounts (system-program Transfer instructions)."""
    total = 0
    for ix in tx.message.instructions:
        if keys[ix.program_id_index] != SYSTEM_PROGRAM_ID:
            continue
        data = bytes(ix.data)
        accounts = bytes(ix.accounts)
        is_transfer = len(data) >= 12 and struct.unpack_from("<I", data)[0] == 2 and len(accounts) >= 2
        if is_transfer and keys[accounts[1]] in TIP_ACCOUNTS:
            total += struct.unpack_from("<Q", data, 4)[0]
    return total


def _writable_indexes(msg: Message | MessageV0, n_keys: int) -> set[int]:
    """Indexes (into the static + loaded keys) a message write-locks."""
    h = msg.header
    n_static = len(msg.account_keys)
    out = {i for i in range(h.num_required_signatures - h.num_readonly_signed_accounts)}
    out |= set(range(h.num_required_signatures, n_static - h.num_readonly_unsigned_accounts))
    if isinstance(msg, MessageV0):
        n_writable_loaded = sum(len(lookup.writable_indexes) for lookup in msg.address_table_lookups)
        out |= set(range(n_static, n_static + n_writable_loaded))
    return {i for i in out if i < n_keys}


# ----------------------------------------------------------------------------------------------------
# Records


@dataclass(slots=True)
class _TxRecord:
    """A landed transaction: everything getTransaction, getSignatureStatuses and the notifications need."""

    signature: Signature
    slot: int
    block_time: int
    tx: VersionedTransaction
    raw: bytes
    keys: list[Pubkey]
    n_loaded_writable: int
    err: Any  # JSON form
    fee: int
    logs: list[str]
    units: int
    inner: list[dict[str, Any]]
    return_data: dict[str, Any] | None
    pre_balances: list[int]
    post_balances: list[int]
    pre_token: list[dict[str, Any]]
    post_token: list[dict[str, Any]]
    cu_price: int
    writable: list[Pubkey]


@dataclass(slots=True)
class _Execution:
    """One transaction run on the SVM, not yet committed to the ledger/notifications."""

    record: _TxRecord | None  # None: it could not land (nothing changed)
    err: Any
    logs: list[str]
    units: int
    fee: int
    changed: dict[Pubkey, Account | None]


@dataclass(slots=True)
class _Bundle:
    id: str
    txs: list[tuple[VersionedTransaction, bytes]]
    status: str = "Pending"  # Jito's inflight statuses: Pending | Landed | Failed | Invalid
    landed_slot: int | None = None
    dropped: bool = False
    last_valid_slot: int = 0


@dataclass(slots=True)
class _Event:
    """An account change or a transaction's logs, sent once its slot reaches a subscriber's commitment."""

    seq: int
    slot: int
    pubkey: Pubkey | None = None
    account: Account | None = None
    signature: Signature | None = None
    err: Any = None
    logs: list[str] = field(default_factory=list)
    mentions: frozenset[Pubkey] = frozenset()


@dataclass(slots=True)
class _Sub:
    id: int
    kind: str  # slot | signature | account | program | logs
    conn: _WsConn
    depth: int
    target: Any = None  # Pubkey (account, program, logs mention) or Signature
    encoding: str = "base64"
    data_slice: tuple[int, int] | None = None
    filters: list[dict[str, Any]] = field(default_factory=list)
    cursor: int = 0
    logs_all: bool = False  # logsSubscribe "all"
    received: bool = False  # signatureSubscribe enableReceivedNotification


class _WsConn:
    """One WebSocket client: an ordered outbound queue drained by one writer task."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.subs: set[int] = set()

    def send(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(message))

    async def writer(self) -> None:
        while True:
            text = await self.queue.get()
            if text is None or self.ws.closed:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return


# ----------------------------------------------------------------------------------------------------


class LocalSolana:
    """A local Solana chain (LiteSVM) on 127.0.0.1: JSON-RPC, WebSocket subscriptions, Jito block engine."""

    def __init__(
        self, slot_ms: float = 50, finality_slots: int = 4, blockhash_valid_slots: int = 150
    ) -> None:
        if slot_ms <= 0 or finality_slots < 1 or blockhash_valid_slots < 1:
            raise ValueError(
                f"LocalSolana: slot_ms ({slot_ms}) must be > 0, finality_slots ({finality_slots}) "
                f"and blockhash_valid_slots ({blockhash_valid_slots}) >= 1"
            )
        self.slot_ms = float(slot_ms)
        self.finality_slots = int(finality_slots)
        self.blockhash_valid_slots = int(blockhash_valid_slots)
        self.lock = threading.RLock()
        # The server checks blockhashes and duplicates itself (slot-based, like a validator); the SVM keeps no
        # history, so a bundle rolled back leaves no trace and its transactions can be sent again.
        self.svm = LiteSVM().with_blockhash_check(False).with_transaction_history(0).with_sigverify(True)
        self.port = 0
        self._genesis_unix = int(time.time())
        self._slot = 0
        self._blockhashes: dict[Hash, int] = {}  # blockhash -> slot it was made at
        self._slot_hash: dict[int, Hash] = {}
        self._new_blockhash(0)
        self._genesis_hash = self._slot_hash[0]
        # Genesis holds no transaction (as on a cluster): the chain starts at slot 1, so that every
        # commitment's slot (confirmed = slot - 1) is one whose transactions that commitment shows.
        self._slot = 1
        clock = self.svm.get_clock()
        clock.slot, clock.unix_timestamp = 1, self._block_time(1)
        self.svm.set_clock(clock)
        self._new_blockhash(1)
        self._queue: deque[tuple[VersionedTransaction, bytes] | _Bundle] = deque()
        self._queued: set[Signature] = set()
        self._drop = 0
        self._paused = False
        self._records: dict[Signature, _TxRecord] = {}
        self._by_address: dict[Pubkey, list[Signature]] = {}
        self._slot_fees: dict[int, list[tuple[int, list[Pubkey]]]] = {}
        self._bundles: dict[str, _Bundle] = {}
        self._faucet = Keypair()
        self.svm.set_account(self._faucet.pubkey(), Account(10**18, b"", SYSTEM_PROGRAM_ID))
        tip_rent = self.svm.minimum_balance_for_rent_exemption(0)
        for tip in TIP_ACCOUNTS:
            self.svm.set_account(tip, Account(tip_rent, b"", SYSTEM_PROGRAM_ID))
        self._events: deque[_Event] = deque()
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._subs: dict[int, _Sub] = {}
        self._sub_ids = itertools.count(1)
        self._conns: set[_WsConn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._slot_cond = threading.Condition(self.lock)
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            "getAccountInfo": self._rpc_get_account_info,
            "getBalance": self._rpc_get_balance,
            "getBlockHeight": self._rpc_get_block_height,
            "getEpochInfo": self._rpc_get_epoch_info,
            "getEpochSchedule": self._rpc_get_epoch_schedule,
            "getFeeForMessage": self._rpc_get_fee_for_message,
            "getFirstAvailableBlock": lambda p: 0,
            "getGenesisHash": lambda p: str(self._genesis_hash),
            "getHealth": lambda p: "ok",
            "getIdentity": lambda p: {"identity": str(self._faucet.pubkey())},
            "getLatestBlockhash": self._rpc_get_latest_blockhash,
            "getMinimumBalanceForRentExemption": self._rpc_get_minimum_balance,
            "getMultipleAccounts": self._rpc_get_multiple_accounts,
            "getProgramAccounts": self._rpc_get_program_accounts,
            "getRecentPrioritizationFees": self._rpc_get_recent_prioritization_fees,
            "getSignatureStatuses": self._rpc_get_signature_statuses,
            "getSignaturesForAddress": self._rpc_get_signatures_for_address,
            "getSlot": self._rpc_get_slot,
            "getTokenAccountBalance": self._rpc_get_token_account_balance,
            "getTokenAccountsByOwner": self._rpc_get_token_accounts_by_owner,
            "getTokenLargestAccounts": self._rpc_get_token_largest_accounts,
            "getTokenSupply": self._rpc_get_token_supply,
            "getTransaction": self._rpc_get_transaction,
            "getTransactionCount": lambda p: len(self._records),
            "getVersion": lambda p: {"solana-core": SOLANA_CORE_VERSION, "feature-set": FEATURE_SET},
            "isBlockhashValid": self._rpc_is_blockhash_valid,
            "minimumLedgerSlot": lambda p: 0,
            "requestAirdrop": self._rpc_request_airdrop,
            "sendTransaction": self._rpc_send_transaction,
            "simulateBundle": self._rpc_simulate_bundle,
            "simulateTransaction": self._rpc_simulate_transaction,
        }
        self._engine_methods: dict[str, Callable[[list[Any]], Any]] = {
            "sendBundle": self._engine_send_bundle,
            "getBundleStatuses": self._engine_get_bundle_statuses,
            "getInflightBundleStatuses": self._engine_get_inflight_bundle_statuses,
            "getTipAccounts": lambda p: [str(t) for t in TIP_ACCOUNTS],
            "sendTransaction": self._rpc_send_transaction,
        }

    # -------------------- lifecycle

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC endpoint (``/``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """WebSocket subscriptions endpoint (same port)."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def block_engine_url(self) -> str:
        """Jito block-engine base URL (paths ``api/v1/bundles``, ``api/v1/transactions``...)."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def tip_accounts(self) -> tuple[Pubkey, ...]:
        """The 8 Jito tip accounts (pre-funded)."""
        return TIP_ACCOUNTS

    def start(self, timeout_s: float = 30.0) -> LocalSolana:
        """Start the server thread and block production; return once the server answers."""
        if self._thread is not None:
            raise RuntimeError("LocalSolana already started")
        self._thread = threading.Thread(target=self._run, name=f"local-solana-{id(self):x}", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError(f"LocalSolana did not start within {timeout_s} s")
        if self._start_error is not None:
            raise RuntimeError(f"LocalSolana failed to start: {self._start_error}") from self._start_error
        return self

    def stop(self) -> None:
        """Stop the server and block production (the chain is gone with it)."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        self._thread = None

    def __enter__(self) -> LocalSolana:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._start_error = exc
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/", self._handle_ws)
        app.router.add_post("/{path:.*}", self._handle_post)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        site = web.SockSite(runner, sock)
        await site.start()
        self._started.set()
        producer = asyncio.create_task(self._produce_forever())
        try:
            await self._stop.wait()
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            for conn in list(self._conns):
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"LocalSolana stopped")
            await runner.cleanup()

    async def _produce_forever(self) -> None:
        period = self.slot_ms / 1000
        next_at = time.monotonic() + period
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            # Late (a busy machine): one slot now and a new schedule, never a burst of slots.
            next_at = max(next_at + period, time.monotonic())
            try:
                self._produce_slot(scheduled=True)
            except Exception:  # a bug in one slot must not stop the chain: say it and go on
                log.exception("LocalSolana: producing slot %d failed", self._slot)

    # -------------------- devchain API

    def slot(self) -> int:
        """The latest (processed) slot; block height is the same number."""
        with self.lock:
            return self._slot

    def latest_blockhash(self) -> Hash:
        """The latest slot's blockhash (valid for ``blockhash_valid_slots`` slots)."""
        with self.lock:
            return self._slot_hash[self._slot]

    def account(self, pubkey: Pubkey) -> Account | None:
        """An account as it is now (``None``: it does not exist, i.e. has no lamports)."""
        with self.lock:
            acc = self.svm.get_account(pubkey)
            return acc if acc is not None and acc.lamports > 0 else None

    def set_account(self, pubkey: Pubkey, account: Account) -> None:
        """Write an account (no program runs) and notify its account and program subscribers."""
        with self.lock:
            self.svm.set_account(pubkey, account)
            self.notify_changed([pubkey])

    def airdrop(self, pubkey: Pubkey, lamports: int) -> None:
        """Add lamports to an account at once (creating a system account if it does not exist)."""
        if lamports <= 0:
            raise ValueError(f"airdrop of {lamports} lamports to {pubkey}: must be > 0")
        with self.lock:
            acc = self.svm.get_account(pubkey)
            if acc is None or acc.lamports == 0:
                acc = Account(0, b"", SYSTEM_PROGRAM_ID)
            self.set_account(
                pubkey, Account(acc.lamports + lamports, acc.data, acc.owner, acc.executable, acc.rent_epoch)
            )

    def notify_changed(self, pubkeys: Iterable[Pubkey]) -> None:
        """Notify subscribers of accounts written directly through ``svm`` (hold ``lock`` while writing)."""
        with self.lock:
            for key in pubkeys:
                self._emit(_Event(next(self._seq), self._slot, pubkey=key, account=self.account(key)))
        self._wake()

    def pause(self) -> None:
        """Stop producing slots: sent transactions stay queued, blockhashes do not age."""
        with self.lock:
            self._paused = True

    def resume(self) -> None:
        """Produce slots again."""
        with self.lock:
            self._paused = False

    def drop_next(self, n: int = 1) -> None:
        """The next ``n`` transactions/bundles sent are accepted (id returned) but never land."""
        with self.lock:
            self._drop += n

    def produce_slots(self, n: int = 1) -> int:
        """Produce ``n`` slots now (also while paused): what is queued lands in the first. The new slot."""
        for _ in range(n):
            self._produce_slot(scheduled=False)
        return self.slot()

    def _produce_slot(self, *, scheduled: bool) -> None:
        with self.lock:
            if scheduled and self._paused:  # checked under the lock: pause() stops the very next slot
                return
            self._slot += 1
            slot = self._slot
            clock = self.svm.get_clock()
            clock.slot = slot
            clock.unix_timestamp = self._block_time(slot)
            self.svm.set_clock(clock)
            self._new_blockhash(slot)
            self._land_queue(slot)
            self._slot_cond.notify_all()
        self._wake(new_slot=slot)

    def wait_for_slot(self, slot: int, timeout_s: float = 10.0) -> int:
        """Block until the chain reaches ``slot``; the slot reached (raises TimeoutError if it does not)."""
        deadline = time.monotonic() + timeout_s
        with self._slot_cond:
            while self._slot < slot:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"slot {slot} not reached within {timeout_s} s (at {self._slot})")
                self._slot_cond.wait(left)
            return self._slot

    def send_raw(self, tx: VersionedTransaction | Transaction | bytes, *, check: bool = True) -> TxOutcome:
        """Run a signed transaction now, in the current slot (setup code): the server's own rules apply.

        Raises :class:`TransactionFailed` if it fails or cannot land, unless ``check=False``.
        """
        vtx, raw = self._as_versioned(tx)
        with self.lock:
            execution = self._execute(vtx, raw, self._slot)
            if execution.record is not None:
                self._commit(execution)
            outcome = self._outcome(vtx, execution)
        self._wake()
        if check and not outcome.ok:
            raise TransactionFailed(outcome)
        return outcome

    def simulate(
        self, tx: VersionedTransaction | Transaction | bytes, *, sig_verify: bool = True
    ) -> TxOutcome:
        """Simulate on the latest state (nothing changes); blockhash and duplicate rules apply."""
        vtx, _ = self._as_versioned(tx)
        with self.lock:
            result = self._simulate(vtx, sig_verify=sig_verify, replace_blockhash=False, addresses=[])
        return TxOutcome(
            vtx.signatures[0],
            False,
            self.slot(),
            result["err"],
            result["logs"] or [],
            result["fee"] or 0,
            result["unitsConsumed"] or 0,
        )

    def signature_status(self, signature: Signature) -> SignatureStatus | None:
        """Where a transaction landed and how final it is; None while it has not landed (or never will)."""
        with self.lock:
            rec = self._records.get(signature)
            return None if rec is None else SignatureStatus(rec.slot, rec.err, self._status(rec.slot))

    def wait_for_signature(
        self, signature: Signature, commitment: str = "confirmed", timeout_s: float = 10.0
    ) -> SignatureStatus:
        """Block until a transaction reaches ``commitment``; its status (TimeoutError if it does not)."""
        if commitment not in COMMITMENTS:
            raise ValueError(f"wait_for_signature: commitment {commitment!r} is not one of {COMMITMENTS}")
        depth = self._depth(commitment)
        deadline = time.monotonic() + timeout_s
        with self._slot_cond:
            while True:
                rec = self._records.get(signature)
                if rec is not None and rec.slot + depth <= self._slot:
                    return SignatureStatus(rec.slot, rec.err, self._status(rec.slot))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{signature} not {commitment} within {timeout_s} s (at slot {self._slot})"
                    )
                self._slot_cond.wait(left)

    def signatures_for(self, pubkey: Pubkey) -> list[Signature]:
        """Signatures of the landed transactions that referenced an account, oldest first."""
        with self.lock:
            return list(self._by_address.get(pubkey, []))

    def blockhash_last_valid(self, blockhash: Hash) -> int | None:
        """The last slot a blockhash is valid at (``lastValidBlockHeight``), None if never made here."""
        with self.lock:
            made = self._blockhashes.get(blockhash)
            return None if made is None else made + self.blockhash_valid_slots

    # -------------------- the ledger

    @staticmethod
    def _as_versioned(tx: VersionedTransaction | Transaction | bytes) -> tuple[VersionedTransaction, bytes]:
        if isinstance(tx, bytes | bytearray):
            vtx = VersionedTransaction.from_bytes(bytes(tx))
        elif isinstance(tx, Transaction):
            vtx = VersionedTransaction.from_legacy(tx)
        else:
            vtx = tx
        return vtx, bytes(vtx)

    def _block_time(self, slot: int) -> int:
        return self._genesis_unix + int(slot * self.slot_ms / 1000)

    def _new_blockhash(self, slot: int) -> None:
        self.svm.expire_blockhash()
        bh = self.svm.latest_blockhash()
        self._blockhashes[bh] = slot
        self._slot_hash[slot] = bh
        # Forget hashes long expired (keep the slot -> hash map for commitment-lagged reads).
        old = slot - self.blockhash_valid_slots - self.finality_slots - 2
        if old >= 0 and old in self._slot_hash:
            self._blockhashes.pop(self._slot_hash.pop(old), None)

    def _blockhash_valid(self, blockhash: Hash, at_slot: int) -> bool:
        made = self._blockhashes.get(blockhash)
        return made is not None and made <= at_slot <= made + self.blockhash_valid_slots

    def _commitment_slot(self, commitment: str) -> int:
        if commitment == "processed":
            return self._slot
        if commitment == "confirmed":
            return max(0, self._slot - 1)
        return max(0, self._slot - self.finality_slots)

    def _depth(self, commitment: str) -> int:
        return {"processed": 0, "confirmed": 1}.get(commitment, self.finality_slots)

    def _status(self, landed_slot: int) -> str:
        age = self._slot - landed_slot
        if age >= self.finality_slots:
            return "finalized"
        return "confirmed" if age >= 1 else "processed"

    def _account_keys(self, tx: VersionedTransaction) -> tuple[list[Pubkey], int]:
        """Static, then loaded from lookup tables (writable first); and how many loaded are writable."""
        msg = tx.message
        keys = list(msg.account_keys)
        if not isinstance(msg, MessageV0) or not msg.address_table_lookups:
            return keys, 0
        writable: list[Pubkey] = []
        readonly: list[Pubkey] = []
        for lookup in msg.address_table_lookups:
            table = self.svm.get_account(lookup.account_key)
            data = bytes(table.data) if table is not None else b""
            addresses = [
                Pubkey.from_bytes(data[i : i + 32]) for i in range(ALT_META_SIZE, len(data) - 31, 32)
            ]
            for idx, bucket in ((lookup.writable_indexes, writable), (lookup.readonly_indexes, readonly)):
                for i in bytes(idx):
                    if i < len(addresses):
                        bucket.append(addresses[i])
        return keys + writable + readonly, len(writable)

    def _token_balances(
        self, keys: list[Pubkey], accounts: dict[Pubkey, Account | None]
    ) -> list[dict[str, Any]]:
        out = []
        for index, key in enumerate(keys):
            acc = accounts.get(key)
            if not _is_token_account(acc):
                continue
            assert acc is not None
            ta = _token_account(acc)
            mint_acc = self.svm.get_account(ta.mint)
            decimals = _mint(mint_acc).decimals if _is_mint(mint_acc) else 0
            out.append(
                {
                    "accountIndex": index,
                    "mint": str(ta.mint),
                    "owner": str(ta.owner),
                    "programId": str(acc.owner),
                    "uiTokenAmount": _ui_token_amount(ta.amount, decimals),
                }
            )
        return out

    def _snapshot(self, keys: Iterable[Pubkey]) -> dict[Pubkey, Account | None]:
        return {k: self.account(k) for k in keys}

    def _restore(self, snapshot: dict[Pubkey, Account | None]) -> None:
        for key, acc in snapshot.items():
            self.svm.set_account(key, acc if acc is not None else Account(0, b"", SYSTEM_PROGRAM_ID))

    def _execute(
        self,
        tx: VersionedTransaction,
        raw: bytes,
        slot: int,
        *,
        check_blockhash: bool = True,
    ) -> _Execution:
        """Run one transaction on the SVM at ``slot`` with a validator's rules; not yet committed."""
        sig = tx.signatures[0]
        if sig in self._records:
            return _Execution(None, "AlreadyProcessed", [], 0, 0, {})
        if check_blockhash and not self._blockhash_valid(tx.message.recent_blockhash, slot):
            return _Execution(None, "BlockhashNotFound", [], 0, 0, {})
        keys, n_loaded_writable = self._account_keys(tx)
        pre = self._snapshot(keys)
        result = self.svm.send_transaction(tx)
        meta: TransactionMetadata = result.meta() if isinstance(result, FailedTransactionMetadata) else result
        err = _err_json(result.err()) if isinstance(result, FailedTransactionMetadata) else None
        post = self._snapshot(keys)
        changed = {k: post[k] for k in keys if post[k] != pre[k]}
        logs = list(meta.logs())
        if err is not None and not changed:
            # Refused before execution (no fee charged: bad signature, unknown payer...): never lands.
            return _Execution(None, err, logs, meta.compute_units_consumed(), 0, {})
        limit_price = _compute_budget(tx)
        writable_idx = _writable_indexes(tx.message, len(keys))
        rd = meta.return_data()
        return_data = (
            {"programId": str(rd.program_id), "data": [_b64(bytes(rd.data)), "base64"]}
            if rd is not None and len(rd.data)
            else None
        )
        inner = [
            {
                "index": i,
                "instructions": [
                    {
                        "programIdIndex": ii.instruction().program_id_index,
                        "accounts": list(bytes(ii.instruction().accounts)),
                        "data": _b58encode(bytes(ii.instruction().data)),
                        "stackHeight": ii.stack_height(),
                    }
                    for ii in group
                ],
            }
            for i, group in enumerate(meta.inner_instructions())
            if group
        ]
        record = _TxRecord(
            signature=sig,
            slot=slot,
            block_time=self._block_time(slot),
            tx=tx,
            raw=raw,
            keys=keys,
            n_loaded_writable=n_loaded_writable,
            err=err,
            fee=meta.fee(),
            logs=logs,
            units=meta.compute_units_consumed(),
            inner=inner,
            return_data=return_data,
            pre_balances=[pre[k].lamports if pre[k] is not None else 0 for k in keys],  # type: ignore[union-attr]
            post_balances=[post[k].lamports if post[k] is not None else 0 for k in keys],  # type: ignore[union-attr]
            pre_token=self._token_balances(keys, pre),
            post_token=self._token_balances(keys, post),
            cu_price=limit_price[1],
            writable=[keys[i] for i in sorted(writable_idx)],
        )
        return _Execution(record, err, logs, record.units, record.fee, changed)

    def _commit(self, execution: _Execution) -> None:
        """Put an executed transaction in the ledger and announce its changes and logs."""
        rec = execution.record
        assert rec is not None
        self._records[rec.signature] = rec
        for key in dict.fromkeys(rec.keys):
            self._by_address.setdefault(key, []).append(rec.signature)
        self._slot_fees.setdefault(rec.slot, []).append((rec.cu_price, rec.writable))
        self._slot_fees.pop(rec.slot - MAX_FEE_SLOTS - 1, None)
        for key, acc in execution.changed.items():
            self._emit(_Event(next(self._seq), rec.slot, pubkey=key, account=acc))
        self._emit(
            _Event(
                next(self._seq),
                rec.slot,
                signature=rec.signature,
                err=rec.err,
                logs=rec.logs,
                mentions=frozenset(rec.keys),
            )
        )

    def _outcome(self, tx: VersionedTransaction, execution: _Execution) -> TxOutcome:
        rec = execution.record
        return TxOutcome(
            tx.signatures[0],
            rec is not None,
            rec.slot if rec else self._slot,
            execution.err,
            execution.logs,
            execution.fee,
            execution.units,
        )

    def _land_queue(self, slot: int) -> None:
        """Land everything queued, in order, at ``slot``."""
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Bundle):
                self._land_bundle(item, slot)
                continue
            tx, raw = item
            self._queued.discard(tx.signatures[0])
            execution = self._execute(tx, raw, slot)
            if execution.record is not None:
                self._commit(execution)

    def _run_bundle(
        self,
        txs: list[tuple[VersionedTransaction, bytes]],
        slot: int,
    ) -> tuple[list[_Execution], dict[Pubkey, Account | None], int | None]:
        """Run a bundle in order: (executions, snapshot of every account touched, index of the failed one)."""
        snapshot: dict[Pubkey, Account | None] = {}
        executions: list[_Execution] = []
        for i, (tx, raw) in enumerate(txs):
            keys, _ = self._account_keys(tx)
            for key in keys:
                if key not in snapshot:
                    snapshot[key] = self.account(key)
            execution = self._execute(tx, raw, slot)
            executions.append(execution)
            if execution.record is None or execution.err is not None:
                return executions, snapshot, i
        return executions, snapshot, None

    def _land_bundle(self, bundle: _Bundle, slot: int) -> None:
        if bundle.dropped:
            return
        executions, snapshot, failed = self._run_bundle(bundle.txs, slot)
        if failed is not None:
            self._restore(snapshot)
            bundle.status = "Failed"
            return
        for execution in executions:
            self._commit(execution)
        bundle.status = "Landed"
        bundle.landed_slot = slot

    def _simulate(
        self,
        tx: VersionedTransaction,
        *,
        sig_verify: bool,
        replace_blockhash: bool,
        addresses: list[Pubkey],
        encoding: str = "base64",
        inner: bool = False,
    ) -> dict[str, Any]:
        """simulateTransaction's value (RpcSimulateTransactionResult) on the latest state."""
        result: dict[str, Any] = json.loads(
            RpcSimulateTransactionResult(
                err=None, logs=[], accounts=None, units_consumed=0, return_data=None
            ).to_json()
        )
        if sig_verify and not all(tx.verify_with_results()):
            raise RpcError(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
        if replace_blockhash:
            bh = self._slot_hash[self._slot]
            result["replacementBlockhash"] = {
                "blockhash": str(bh),
                "lastValidBlockHeight": self._slot + self.blockhash_valid_slots,
            }
        elif not self._blockhash_valid(tx.message.recent_blockhash, self._slot):
            result["err"] = "BlockhashNotFound"
            return result
        if tx.signatures[0] in self._records:
            result["err"] = "AlreadyProcessed"
            return result
        self.svm.with_sigverify(False)  # verified above when asked; never for replaceRecentBlockhash
        try:
            sim = self.svm.simulate_transaction(tx)
        finally:
            self.svm.with_sigverify(True)
        if isinstance(sim, FailedTransactionMetadata):
            meta, post_accounts = sim.meta(), {}
            result["err"] = _err_json(sim.err())
        else:
            meta, post_accounts = sim.meta(), dict(sim.post_accounts())
        result["logs"] = list(meta.logs())
        result["unitsConsumed"] = meta.compute_units_consumed()
        result["fee"] = meta.fee()
        rd = meta.return_data()
        if rd is not None and len(rd.data):
            result["returnData"] = {"programId": str(rd.program_id), "data": [_b64(bytes(rd.data)), "base64"]}
        if inner:
            result["innerInstructions"] = [
                {
                    "index": i,
                    "instructions": [
                        {
                            "programIdIndex": ii.instruction().program_id_index,
                            "accounts": list(bytes(ii.instruction().accounts)),
                            "data": _b58encode(bytes(ii.instruction().data)),
                            "stackHeight": ii.stack_height(),
                        }
                        for ii in group
                    ],
                }
                for i, group in enumerate(meta.inner_instructions())
                if group
            ]
        if addresses:
            accounts = []
            for key in addresses:
                acc = (
                    post_accounts.get(key, self.account(key)) if result["err"] is None else self.account(key)
                )
                accounts.append(
                    self._encode_account(acc, encoding, None) if acc is not None and acc.lamports else None
                )
            result["accounts"] = accounts
        return result

    # -------------------- subscriptions

    def _emit(self, event: _Event) -> None:
        self._events.append(event)
        self._last_seq = event.seq

    def _wake(self, new_slot: int | None = None) -> None:
        """Deliver due notifications, from the server's loop (any thread may call this)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            if threading.current_thread() is self._thread:
                self._deliver(new_slot)
            else:
                loop.call_soon_threadsafe(self._deliver, new_slot)
        except RuntimeError:  # the loop is closing: nobody is listening any more
            pass

    def _deliver(self, new_slot: int | None) -> None:
        with self.lock:
            slot = self._slot
            for sub in list(self._subs.values()):
                if sub.kind == "slot":
                    if new_slot is not None:
                        sub.conn.send(
                            self._notification(
                                "slotNotification",
                                sub.id,
                                {
                                    "parent": new_slot - 1,
                                    "root": max(0, new_slot - self.finality_slots),
                                    "slot": new_slot,
                                },
                            )
                        )
                elif sub.kind == "signature":
                    rec = self._records.get(sub.target)
                    if rec is not None and rec.slot + sub.depth <= slot:
                        sub.conn.send(
                            self._notification(
                                "signatureNotification",
                                sub.id,
                                {"context": {"slot": rec.slot + sub.depth}, "value": {"err": rec.err}},
                            )
                        )
                        self._remove_sub(sub.id)
                else:
                    self._deliver_events(sub, slot)
            # Every subscription has seen what is older than the deepest commitment: forget it.
            horizon = slot - self.finality_slots - 1
            while self._events and self._events[0].slot < horizon:
                self._events.popleft()

    def _deliver_events(self, sub: _Sub, slot: int) -> None:
        for ev in self._events:
            if ev.seq <= sub.cursor:
                continue
            if ev.slot + sub.depth > slot:
                break
            sub.cursor = ev.seq
            context = {"slot": ev.slot + sub.depth}
            if sub.kind == "logs" and ev.signature is not None:
                if sub.logs_all or sub.target in ev.mentions:
                    sub.conn.send(
                        self._notification(
                            "logsNotification",
                            sub.id,
                            {
                                "context": context,
                                "value": {"signature": str(ev.signature), "err": ev.err, "logs": ev.logs},
                            },
                        )
                    )
            elif sub.kind == "account" and ev.pubkey == sub.target:
                sub.conn.send(
                    self._notification(
                        "accountNotification",
                        sub.id,
                        {
                            "context": context,
                            "value": self._sub_account(sub, self._or_closed(ev.account)),
                        },
                    )
                )
            elif (
                sub.kind == "program"
                and ev.pubkey is not None
                and ev.account is not None
                and ev.account.owner == sub.target
                and self._matches(ev.account, sub.filters)
            ):
                sub.conn.send(
                    self._notification(
                        "programNotification",
                        sub.id,
                        {
                            "context": context,
                            "value": {
                                "pubkey": str(ev.pubkey),
                                "account": self._sub_account(sub, ev.account),
                            },
                        },
                    )
                )

    def _sub_account(self, sub: _Sub, acc: Account) -> dict[str, Any]:
        try:
            return self._encode_account(acc, sub.encoding, sub.data_slice)
        except RpcError:  # too long for base58: a notification cannot fail, it falls back to base64
            return self._encode_account(acc, "base64", sub.data_slice)

    @staticmethod
    def _or_closed(acc: Account | None) -> Account:
        return acc if acc is not None else Account(0, b"", SYSTEM_PROGRAM_ID)

    @staticmethod
    def _notification(method: str, sub_id: int, result: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "method": method, "params": {"result": result, "subscription": sub_id}}

    def _remove_sub(self, sub_id: int) -> bool:
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            return False
        sub.conn.subs.discard(sub_id)
        return True

    def _subscribe(self, conn: _WsConn, method: str, params: list[Any]) -> int:
        kind = method[: -len("Subscribe")]
        cfg: dict[str, Any] = {}
        sub = _Sub(id=next(self._sub_ids), kind=kind, conn=conn, depth=0)
        if kind == "slot":
            pass
        elif kind == "signature":
            sub.target = _signature(_param(params, 0, "the signature"), "signature")
            cfg = _config(params, 1)
            sub.received = bool(cfg.get("enableReceivedNotification"))
        elif kind in ("account", "program"):
            sub.target = _pubkey(_param(params, 0, "the pubkey"), "pubkey")
            cfg = _config(params, 1)
            sub.encoding = self._account_encoding(cfg, default="binary")
            sub.data_slice = self._data_slice(cfg)
            if kind == "program":
                sub.filters = self._filters(cfg)
        elif kind == "logs":
            flt = _param(params, 0, "the filter")
            if flt in ("all", "allWithVotes"):
                sub.logs_all = True
            elif (
                isinstance(flt, dict) and isinstance(flt.get("mentions"), list) and len(flt["mentions"]) == 1
            ):
                sub.target = _pubkey(flt["mentions"][0], "mentions[0]")
            else:
                raise RpcError(INVALID_PARAMS, "Invalid Request: Only 1 address supported")
            cfg = _config(params, 1)
        else:
            raise RpcError(METHOD_NOT_FOUND, "Method not found")
        sub.depth = self._depth(_parse_commitment(cfg))
        with self.lock:
            sub.cursor = self._last_seq
            self._subs[sub.id] = sub
            conn.subs.add(sub.id)
        return sub.id

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "error": {"code": INVALID_REQUEST, "message": "use POST for JSON-RPC, or a WebSocket"},
                    "id": None,
                }
            )
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        conn = _WsConn(ws)
        self._conns.add(conn)
        writer = asyncio.create_task(conn.writer())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                conn.send(self._ws_request(conn, msg.data))
                self._deliver(None)  # a signature that already reached its commitment is notified at once
        finally:
            with self.lock:
                for sub_id in list(conn.subs):
                    self._remove_sub(sub_id)
            self._conns.discard(conn)
            conn.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    def _ws_request(self, conn: _WsConn, text: str) -> dict[str, Any]:
        try:
            req = json.loads(text)
        except ValueError:
            return {"jsonrpc": "2.0", "error": {"code": PARSE_ERROR, "message": "Parse error"}, "id": None}
        req_id = req.get("id") if isinstance(req, dict) else None
        try:
            if not isinstance(req, dict) or not isinstance(req.get("method"), str):
                raise RpcError(INVALID_REQUEST, "Invalid request")
            method, params = req["method"], req.get("params") or []
            if not isinstance(params, list):
                raise RpcError(INVALID_PARAMS, "Invalid params: params must be an array")
            if method.endswith("Unsubscribe"):
                sub_id = _param(params, 0, "the subscription id")
                with self.lock:
                    sub = self._subs.get(sub_id) if isinstance(sub_id, int) else None
                    if sub is None or sub.conn is not conn:
                        raise RpcError(INVALID_PARAMS, f"Invalid subscription id: {sub_id!r}")
                    self._remove_sub(sub_id)
                return {"jsonrpc": "2.0", "result": True, "id": req_id}
            if method.endswith("Subscribe"):
                return {"jsonrpc": "2.0", "result": self._subscribe(conn, method, params), "id": req_id}
            raise RpcError(METHOD_NOT_FOUND, "Method not found")
        except RpcError as exc:
            return {"jsonrpc": "2.0", "error": exc.to_json(), "id": req_id}

    # -------------------- HTTP

    async def _handle_post(self, request: web.Request) -> web.Response:
        # Slashes are not significant: "<block_engine_url>/api/v1/bundles" works whether the base ends in "/".
        path = "/".join(part for part in request.path.split("/") if part)
        if not path:
            return await self._handle_jsonrpc(request, self._methods)
        if path.startswith("api/v1/"):
            return await self._handle_jsonrpc(request, self._engine_methods)
        raise web.HTTPNotFound(
            text=f"no JSON-RPC endpoint at {request.path}: the RPC is at / and Jito at /api/v1/"
        )

    async def _handle_jsonrpc(
        self,
        request: web.Request,
        methods: dict[str, Callable[[list[Any]], Any]],
    ) -> web.Response:
        body = await request.read()
        try:
            doc = json.loads(body)
        except ValueError:
            return web.json_response(
                {"jsonrpc": "2.0", "error": {"code": PARSE_ERROR, "message": "Parse error"}, "id": None}
            )
        if isinstance(doc, list):
            out: Any = [self._call(item, methods) for item in doc]
        else:
            out = self._call(doc, methods)
        self._wake()
        return web.json_response(out)

    def _call(self, req: Any, methods: dict[str, Callable[[list[Any]], Any]]) -> dict[str, Any]:
        req_id = req.get("id") if isinstance(req, dict) else None
        try:
            if (
                not isinstance(req, dict)
                or req.get("jsonrpc") != "2.0"
                or not isinstance(req.get("method"), str)
            ):
                raise RpcError(INVALID_REQUEST, "Invalid request")
            handler = methods.get(req["method"])
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, "Method not found")
            params = req.get("params")
            if params is None:
                params = []
            if not isinstance(params, list):
                raise RpcError(INVALID_PARAMS, "Invalid params: params must be an array")
            with self.lock:
                result = handler(params)
            return {"jsonrpc": "2.0", "result": result, "id": req_id}
        except RpcError as exc:
            return {"jsonrpc": "2.0", "error": exc.to_json(), "id": req_id}
        except Exception as exc:  # a bug here must reach the client, not kill the server
            return {
                "jsonrpc": "2.0",
                "error": {"code": INTERNAL_ERROR, "message": f"Internal error: {exc!r}"},
                "id": req_id,
            }

    # ------------------------------------------------------------------------------------- RPC: encodings

    def _context(self, slot: int) -> dict[str, Any]:
        return {"slot": slot, "apiVersion": SOLANA_CORE_VERSION}

    def _with_context(self, cfg: dict[str, Any], value: Any) -> dict[str, Any]:
        slot = self._context_slot(cfg)
        return {"context": self._context(slot), "value": value}

    def _context_slot(self, cfg: dict[str, Any]) -> int:
        slot = self._commitment_slot(_parse_commitment(cfg))
        min_slot = cfg.get("minContextSlot")
        if isinstance(min_slot, int) and min_slot > slot:
            raise RpcError(
                MIN_CONTEXT_SLOT_NOT_REACHED,
                "Minimum context slot has not been reached",
                {"contextSlot": slot},
            )
        return slot

    @staticmethod
    def _account_encoding(cfg: dict[str, Any], default: str = "binary") -> str:
        encoding = cfg.get("encoding") or default
        if encoding not in ("binary", "base58", "base64", "jsonParsed"):
            raise RpcError(INVALID_PARAMS, f"Invalid params: unsupported account encoding {encoding!r}")
        return str(encoding)

    @staticmethod
    def _data_slice(cfg: dict[str, Any]) -> tuple[int, int] | None:
        ds = cfg.get("dataSlice")
        if ds is None:
            return None
        if (
            not isinstance(ds, dict)
            or not isinstance(ds.get("offset"), int)
            or not isinstance(ds.get("length"), int)
        ):
            raise RpcError(
                INVALID_PARAMS, f"Invalid params: dataSlice must be {{offset, length}}, not {ds!r}"
            )
        return ds["offset"], ds["length"]

    def _encode_account(
        self, acc: Account, encoding: str, data_slice: tuple[int, int] | None
    ) -> dict[str, Any]:
        data = bytes(acc.data)
        if data_slice is not None:
            data = data[data_slice[0] : data_slice[0] + data_slice[1]]
        encoded: Any
        if encoding == "jsonParsed":
            parsed = self._json_parsed(acc) if data_slice is None else None
            encoded = parsed if parsed is not None else [_b64(data), "base64"]
        elif encoding == "base64":
            encoded = [_b64(data), "base64"]
        else:
            if len(data) > MAX_BASE58_ACCOUNT_BYTES:
                raise RpcError(
                    INVALID_PARAMS,
                    f"Encoded binary (base 58) data should be less than "
                    f"{MAX_BASE58_ACCOUNT_BYTES} bytes, please use Base64 encoding.",
                )
            b58 = _b58encode(data)
            encoded = b58 if encoding == "binary" else [b58, "base58"]
        return {
            "data": encoded,
            "executable": acc.executable,
            "lamports": acc.lamports,
            "owner": str(acc.owner),
            "rentEpoch": acc.rent_epoch,
            "space": len(acc.data),
        }

    def _json_parsed(self, acc: Account) -> dict[str, Any] | None:
        """jsonParsed of SPL token accounts and mints (base fields); other accounts fall back to base64."""
        program = "spl-token" if acc.owner == TOKEN_PROGRAM_ID else "spl-token-2022"
        if _is_token_account(acc):
            ta = _token_account(acc)
            mint_acc = self.svm.get_account(ta.mint)
            decimals = _mint(mint_acc).decimals if _is_mint(mint_acc) else 0
            info: dict[str, Any] = {
                "isNative": ta.is_native is not None,
                "mint": str(ta.mint),
                "owner": str(ta.owner),
                "state": str(ta.state).rsplit(".", 1)[-1].lower(),
                "tokenAmount": _ui_token_amount(ta.amount, decimals),
            }
            if ta.delegate is not None:
                info["delegate"] = str(ta.delegate)
                info["delegatedAmount"] = _ui_token_amount(ta.delegated_amount, decimals)
            if ta.close_authority is not None:
                info["closeAuthority"] = str(ta.close_authority)
            return {"program": program, "parsed": {"info": info, "type": "account"}, "space": len(acc.data)}
        if _is_mint(acc):
            m = _mint(acc)
            info = {
                "decimals": m.decimals,
                "freezeAuthority": str(m.freeze_authority) if m.freeze_authority else None,
                "isInitialized": m.is_initialized,
                "mintAuthority": str(m.mint_authority) if m.mint_authority else None,
                "supply": str(m.supply),
            }
            return {"program": program, "parsed": {"info": info, "type": "mint"}, "space": len(acc.data)}
        return None

    @staticmethod
    def _filters(cfg: dict[str, Any]) -> list[dict[str, Any]]:
        filters = cfg.get("filters") or []
        if not isinstance(filters, list):
            raise RpcError(INVALID_PARAMS, f"Invalid params: filters must be an array, not {filters!r}")
        out = []
        for i, flt in enumerate(filters):
            if isinstance(flt, dict) and isinstance(flt.get("dataSize"), int):
                out.append({"dataSize": flt["dataSize"]})
            elif isinstance(flt, dict) and isinstance(flt.get("memcmp"), dict):
                mc = flt["memcmp"]
                offset = mc.get("offset")
                if not isinstance(offset, int) or offset < 0:
                    raise RpcError(INVALID_PARAMS, f"Invalid params: filters[{i}].memcmp.offset: {offset!r}")
                wanted = _decode_bytes(
                    mc.get("bytes"), mc.get("encoding") or "base58", f"filters[{i}].memcmp.bytes"
                )
                out.append({"memcmp": (offset, wanted)})
            else:
                raise RpcError(
                    INVALID_PARAMS, f"Invalid params: filters[{i}] must be dataSize or memcmp: {flt!r}"
                )
        return out

    @staticmethod
    def _matches(acc: Account, filters: list[dict[str, Any]]) -> bool:
        data = bytes(acc.data)
        for flt in filters:
            if "dataSize" in flt and len(data) != flt["dataSize"]:
                return False
            if "memcmp" in flt:
                offset, wanted = flt["memcmp"]
                if data[offset : offset + len(wanted)] != wanted:
                    return False
        return True

    # ------------------------------------------------------------------------------------- RPC: accounts

    def _rpc_get_account_info(self, params: list[Any]) -> Any:
        key = _pubkey(_param(params, 0, "the pubkey"), "pubkey")
        cfg = _config(params, 1)
        acc = self.account(key)
        value = (
            None
            if acc is None
            else self._encode_account(acc, self._account_encoding(cfg), self._data_slice(cfg))
        )
        return self._with_context(cfg, value)

    def _rpc_get_multiple_accounts(self, params: list[Any]) -> Any:
        keys = _param(params, 0, "the pubkeys")
        if not isinstance(keys, list) or len(keys) > 100:
            raise RpcError(INVALID_PARAMS, "Invalid params: pubkeys must be an array of at most 100 keys")
        cfg = _config(params, 1)
        encoding, data_slice = self._account_encoding(cfg), self._data_slice(cfg)
        out = []
        for i, raw in enumerate(keys):
            acc = self.account(_pubkey(raw, f"pubkeys[{i}]"))
            out.append(None if acc is None else self._encode_account(acc, encoding, data_slice))
        return self._with_context(cfg, out)

    def _rpc_get_balance(self, params: list[Any]) -> Any:
        key = _pubkey(_param(params, 0, "the pubkey"), "pubkey")
        acc = self.account(key)
        return self._with_context(_config(params, 1), 0 if acc is None else acc.lamports)

    def _program_accounts(self, program: Pubkey) -> list[tuple[Pubkey, Account]]:
        return sorted(
            ((k, a) for k, a in self.svm.get_program_accounts(program) if a.lamports > 0),
            key=lambda ka: bytes(ka[0]),
        )

    def _rpc_get_program_accounts(self, params: list[Any]) -> Any:
        program = _pubkey(_param(params, 0, "the program id"), "program id")
        cfg = _config(params, 1)
        encoding, data_slice, filters = self._account_encoding(cfg), self._data_slice(cfg), self._filters(cfg)
        out = [
            {"pubkey": str(k), "account": self._encode_account(a, encoding, data_slice)}
            for k, a in self._program_accounts(program)
            if self._matches(a, filters)
        ]
        return self._with_context(cfg, out) if cfg.get("withContext") else out

    def _rpc_get_minimum_balance(self, params: list[Any]) -> Any:
        size = _param(params, 0, "the data length")
        if not isinstance(size, int) or size < 0:
            raise RpcError(
                INVALID_PARAMS, f"Invalid params: data length must be a non-negative integer: {size!r}"
            )
        return self.svm.minimum_balance_for_rent_exemption(size)

    # ------------------------------------------------------------------------------------- RPC: tokens

    def _token_accounts(self) -> list[tuple[Pubkey, Account, TokenAccount]]:
        out = []
        for program in TOKEN_PROGRAMS:
            for key, acc in self._program_accounts(program):
                if _is_token_account(acc):
                    out.append((key, acc, _token_account(acc)))
        return out

    def _decimals(self, mint: Pubkey) -> int:
        acc = self.account(mint)
        if not _is_mint(acc):
            raise RpcError(INVALID_PARAMS, f"Invalid param: not a Token mint: {mint}")
        return _mint(acc).decimals  # type: ignore[arg-type]

    def _rpc_get_token_accounts_by_owner(self, params: list[Any]) -> Any:
        owner = _pubkey(_param(params, 0, "the owner"), "owner")
        which = _param(params, 1, "the mint or programId filter")
        cfg = _config(params, 2)
        if isinstance(which, dict) and "mint" in which:
            mint: Pubkey | None = _pubkey(which["mint"], "mint")
            program = None
        elif isinstance(which, dict) and "programId" in which:
            mint, program = None, _pubkey(which["programId"], "programId")
            if program not in TOKEN_PROGRAMS:
                raise RpcError(INVALID_PARAMS, f"Invalid param: unrecognized Token program id {program}")
        else:
            raise RpcError(
                INVALID_PARAMS, f"Invalid params: expected {{mint}} or {{programId}}, not {which!r}"
            )
        encoding, data_slice = self._account_encoding(cfg), self._data_slice(cfg)
        out = [
            {"pubkey": str(k), "account": self._encode_account(a, encoding, data_slice)}
            for k, a, ta in self._token_accounts()
            if ta.owner == owner
            and (mint is None or ta.mint == mint)
            and (program is None or a.owner == program)
        ]
        return self._with_context(cfg, out)

    def _rpc_get_token_account_balance(self, params: list[Any]) -> Any:
        key = _pubkey(_param(params, 0, "the token account"), "token account")
        acc = self.account(key)
        if not _is_token_account(acc):
            raise RpcError(
                INVALID_PARAMS,
                "Invalid param: could not find account"
                if acc is None
                else "Invalid param: not a Token account",
            )
        ta = _token_account(acc)  # type: ignore[arg-type]
        return self._with_context(_config(params, 1), _ui_token_amount(ta.amount, self._decimals(ta.mint)))

    def _rpc_get_token_supply(self, params: list[Any]) -> Any:
        mint = _pubkey(_param(params, 0, "the mint"), "mint")
        acc = self.account(mint)
        if not _is_mint(acc):
            raise RpcError(
                INVALID_PARAMS,
                "Invalid param: could not find mint" if acc is None else "Invalid param: not a Token mint",
            )
        m = _mint(acc)  # type: ignore[arg-type]
        return self._with_context(_config(params, 1), _ui_token_amount(m.supply, m.decimals))

    def _rpc_get_token_largest_accounts(self, params: list[Any]) -> Any:
        mint = _pubkey(_param(params, 0, "the mint"), "mint")
        decimals = self._decimals(mint)
        holders = sorted(
            ((k, ta.amount) for k, _, ta in self._token_accounts() if ta.mint == mint),
            key=lambda ka: (-ka[1], bytes(ka[0])),
        )[:20]
        return self._with_context(
            _config(params, 1),
            [{"address": str(k), **_ui_token_amount(amount, decimals)} for k, amount in holders],
        )

    # ------------------------------------------------------------------------------------- RPC: chain state

    def _rpc_get_slot(self, params: list[Any]) -> Any:
        return self._context_slot(_config(params, 0))

    def _rpc_get_block_height(self, params: list[Any]) -> Any:
        return self._context_slot(_config(params, 0))

    def _rpc_get_latest_blockhash(self, params: list[Any]) -> Any:
        cfg = _config(params, 0)
        slot = self._context_slot(cfg)
        return {
            "context": self._context(slot),
            "value": {
                "blockhash": str(self._slot_hash[slot]),
                "lastValidBlockHeight": slot + self.blockhash_valid_slots,
            },
        }

    def _rpc_is_blockhash_valid(self, params: list[Any]) -> Any:
        raw = _param(params, 0, "the blockhash")
        try:
            bh = Hash.from_string(raw)
        except Exception as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid param: blockhash is not a base58 hash: {raw!r}") from exc
        cfg = _config(params, 1)
        return self._with_context(cfg, self._blockhash_valid(bh, self._slot))

    def _rpc_get_epoch_info(self, params: list[Any]) -> Any:
        slot = self._context_slot(_config(params, 0))
        return {
            "absoluteSlot": slot,
            "blockHeight": slot,
            "epoch": slot // SLOTS_PER_EPOCH,
            "slotIndex": slot % SLOTS_PER_EPOCH,
            "slotsInEpoch": SLOTS_PER_EPOCH,
            "transactionCount": len(self._records),
        }

    def _rpc_get_epoch_schedule(self, params: list[Any]) -> Any:
        return {
            "slotsPerEpoch": SLOTS_PER_EPOCH,
            "leaderScheduleSlotOffset": SLOTS_PER_EPOCH,
            "warmup": False,
            "firstNormalEpoch": 0,
            "firstNormalSlot": 0,
        }

    def _rpc_get_fee_for_message(self, params: list[Any]) -> Any:
        raw = _decode_bytes(_param(params, 0, "the message"), "base64", "the message")
        try:
            msg = from_bytes_versioned(raw)
        except Exception as exc:
            raise RpcError(INVALID_PARAMS, f"invalid message: {exc}") from exc
        cfg = _config(params, 1)
        fee = _fee(msg) if self._blockhash_valid(msg.recent_blockhash, self._slot) else None
        return self._with_context(cfg, fee)

    def _rpc_get_recent_prioritization_fees(self, params: list[Any]) -> Any:
        raw = params[0] if params and params[0] is not None else []
        if not isinstance(raw, list) or len(raw) > 128:
            raise RpcError(
                INVALID_PARAMS, "Invalid params: expected an array of at most 128 account addresses"
            )
        wanted = {_pubkey(v, f"addresses[{i}]") for i, v in enumerate(raw)}
        out = []
        for slot in range(max(1, self._slot - MAX_FEE_SLOTS + 1), self._slot + 1):
            prices = [
                price
                for price, writable in self._slot_fees.get(slot, ())
                if not wanted or wanted.intersection(writable)
            ]
            out.append({"slot": slot, "prioritizationFee": min(prices) if prices else 0})
        return out

    # ------------------------------------------------------------------------------------- RPC: transactions

    def _rpc_request_airdrop(self, params: list[Any]) -> Any:
        key = _pubkey(_param(params, 0, "the pubkey"), "pubkey")
        lamports = _param(params, 1, "the lamports")
        if not isinstance(lamports, int) or lamports <= 0:
            raise RpcError(
                INVALID_PARAMS, f"Invalid params: lamports must be a positive integer: {lamports!r}"
            )
        # The faucet's transfer is an ordinary transaction: it lands in the next slot and has a status.
        msg = Message.new_with_blockhash(
            [transfer(TransferParams(from_pubkey=self._faucet.pubkey(), to_pubkey=key, lamports=lamports))],
            self._faucet.pubkey(),
            self._slot_hash[self._slot],
        )
        tx = VersionedTransaction(msg, [self._faucet])
        self._enqueue(tx, bytes(tx), droppable=False)  # drop_next is for the caller's own transactions
        return str(tx.signatures[0])

    def _enqueue(self, tx: VersionedTransaction, raw: bytes, *, droppable: bool = True) -> None:
        sig = tx.signatures[0]
        if droppable and self._drop > 0:
            self._drop -= 1
            return
        if sig in self._queued:
            return
        self._queued.add(sig)
        self._queue.append((tx, raw))
        for sub in self._subs.values():
            if sub.kind == "signature" and sub.target == sig and sub.received:
                sub.conn.send(
                    self._notification(
                        "signatureNotification",
                        sub.id,
                        {"context": self._context(self._slot), "value": "receivedSignature"},
                    )
                )

    def _rpc_send_transaction(self, params: list[Any]) -> Any:
        cfg = _config(params, 1)
        tx, raw = _decode_transaction(_param(params, 0, "the transaction"), cfg.get("encoding") or "base58")
        self._context_slot({"commitment": "processed", "minContextSlot": cfg.get("minContextSlot")})
        if not cfg.get("skipPreflight"):
            if not all(tx.verify_with_results()):
                raise RpcError(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
            sim = self._simulate(tx, sig_verify=False, replace_blockhash=False, addresses=[])
            if sim["err"] is not None:
                raise RpcError(
                    PREFLIGHT_FAILURE, f"Transaction simulation failed: {_err_message(sim['err'])}", sim
                )
        if tx.signatures[0] not in self._records:  # already landed: a validator's leader drops the duplicate
            self._enqueue(tx, raw)
        return str(tx.signatures[0])

    def _rpc_simulate_transaction(self, params: list[Any]) -> Any:
        cfg = _config(params, 1)
        tx, _ = _decode_transaction(_param(params, 0, "the transaction"), cfg.get("encoding") or "base58")
        sig_verify, replace = bool(cfg.get("sigVerify")), bool(cfg.get("replaceRecentBlockhash"))
        if sig_verify and replace:
            raise RpcError(INVALID_PARAMS, "sigVerify may not be used with replaceRecentBlockhash")
        accounts_cfg = cfg.get("accounts") or {}
        addresses = [
            _pubkey(a, f"accounts.addresses[{i}]") for i, a in enumerate(accounts_cfg.get("addresses") or [])
        ]
        encoding = self._account_encoding(accounts_cfg, default="base64")
        slot = self._context_slot(cfg)
        value = self._simulate(
            tx,
            sig_verify=sig_verify,
            replace_blockhash=replace,
            addresses=addresses,
            encoding=encoding,
            inner=bool(cfg.get("innerInstructions")),
        )
        return {"context": self._context(slot), "value": value}

    def _rpc_get_signature_statuses(self, params: list[Any]) -> Any:
        sigs = _param(params, 0, "the signatures")
        if not isinstance(sigs, list) or len(sigs) > 256:
            raise RpcError(INVALID_PARAMS, "Invalid params: signatures must be an array of at most 256")
        cfg = _config(params, 1)
        history = bool(cfg.get("searchTransactionHistory"))
        out: list[Any] = []
        for i, raw in enumerate(sigs):
            rec = self._records.get(_signature(raw, f"signatures[{i}]"))
            if rec is None or (not history and self._slot - rec.slot > STATUS_CACHE_SLOTS):
                out.append(None)
                continue
            status = self._status(rec.slot)
            out.append(
                {
                    "slot": rec.slot,
                    "confirmations": None if status == "finalized" else self._slot - rec.slot,
                    "err": rec.err,
                    "status": {"Ok": None} if rec.err is None else {"Err": rec.err},
                    "confirmationStatus": status,
                }
            )
        return {"context": self._context(self._slot), "value": out}

    def _visible(self, rec: _TxRecord, commitment: str) -> bool:
        return rec.slot + self._depth(commitment) <= self._slot

    def _rpc_get_transaction(self, params: list[Any]) -> Any:
        sig = _signature(_param(params, 0, "the signature"), "signature")
        cfg = _config(params, 1)
        commitment = _parse_commitment(cfg)
        if commitment == "processed":
            raise RpcError(INVALID_PARAMS, "Method does not support commitment below `confirmed`")
        encoding = cfg.get("encoding") or "json"
        if encoding not in ("json", "jsonParsed", "base64", "base58"):
            raise RpcError(INVALID_PARAMS, f"Invalid params: unsupported transaction encoding {encoding!r}")
        rec = self._records.get(sig)
        if rec is None or not self._visible(rec, commitment):
            return None
        legacy = isinstance(rec.tx.message, Message)
        if not legacy and cfg.get("maxSupportedTransactionVersion") is None:
            raise RpcError(
                UNSUPPORTED_TRANSACTION_VERSION,
                "Transaction version (0) is not supported by the requesting client. Please try the "
                "request again with the following configuration parameter: "
                '"maxSupportedTransactionVersion": 0',
            )
        if encoding == "base64":
            transaction: Any = [_b64(rec.raw), "base64"]
        elif encoding == "base58":
            transaction = [_b58encode(rec.raw), "base58"]
        else:
            transaction = self._ui_transaction(rec)
        n_static = len(rec.tx.message.account_keys)
        meta = {
            "err": rec.err,
            "status": {"Ok": None} if rec.err is None else {"Err": rec.err},
            "fee": rec.fee,
            "preBalances": rec.pre_balances,
            "postBalances": rec.post_balances,
            "innerInstructions": rec.inner,
            "logMessages": rec.logs,
            "preTokenBalances": rec.pre_token,
            "postTokenBalances": rec.post_token,
            "rewards": [],
            "loadedAddresses": {
                "writable": [str(k) for k in rec.keys[n_static : n_static + rec.n_loaded_writable]],
                "readonly": [str(k) for k in rec.keys[n_static + rec.n_loaded_writable :]],
            },
            "computeUnitsConsumed": rec.units,
        }
        if rec.return_data is not None:
            meta["returnData"] = rec.return_data
        return {
            "slot": rec.slot,
            "blockTime": rec.block_time,
            "transaction": transaction,
            "meta": meta,
            "version": "legacy" if legacy else 0,
        }

    @staticmethod
    def _ui_transaction(rec: _TxRecord) -> dict[str, Any]:
        msg = rec.tx.message
        h = msg.header
        ui_msg: dict[str, Any] = {
            "accountKeys": [str(k) for k in msg.account_keys],
            "header": {
                "numRequiredSignatures": h.num_required_signatures,
                "numReadonlySignedAccounts": h.num_readonly_signed_accounts,
                "numReadonlyUnsignedAccounts": h.num_readonly_unsigned_accounts,
            },
            "recentBlockhash": str(msg.recent_blockhash),
            "instructions": [
                {
                    "programIdIndex": ix.program_id_index,
                    "accounts": list(bytes(ix.accounts)),
                    "data": _b58encode(bytes(ix.data)),
                    "stackHeight": None,
                }
                for ix in msg.instructions
            ],
        }
        if isinstance(msg, MessageV0):
            ui_msg["addressTableLookups"] = [
                {
                    "accountKey": str(lk.account_key),
                    "writableIndexes": list(bytes(lk.writable_indexes)),
                    "readonlyIndexes": list(bytes(lk.readonly_indexes)),
                }
                for lk in msg.address_table_lookups
            ]
        return {"signatures": [str(s) for s in rec.tx.signatures], "message": ui_msg}

    def _rpc_get_signatures_for_address(self, params: list[Any]) -> Any:
        key = _pubkey(_param(params, 0, "the address"), "address")
        cfg = _config(params, 1)
        commitment = _parse_commitment(cfg)
        if commitment == "processed":
            raise RpcError(INVALID_PARAMS, "Method does not support commitment below `confirmed`")
        limit = cfg.get("limit") or 1000
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise RpcError(INVALID_PARAMS, f"Invalid params: limit must be 1..1000, not {limit!r}")
        before = _signature(cfg["before"], "before") if cfg.get("before") else None
        until = _signature(cfg["until"], "until") if cfg.get("until") else None
        out: list[dict[str, Any]] = []
        started = before is None
        for sig in reversed(self._by_address.get(key, [])):
            if not started:
                started = sig == before
                continue
            if sig == until or len(out) >= limit:
                break
            rec = self._records[sig]
            if not self._visible(rec, commitment):
                continue
            out.append(
                {
                    "signature": str(sig),
                    "slot": rec.slot,
                    "err": rec.err,
                    "memo": None,
                    "blockTime": rec.block_time,
                    "confirmationStatus": self._status(rec.slot),
                }
            )
        return out

    # -------------------- Jito

    def _bundle_txs(self, params: list[Any]) -> list[tuple[VersionedTransaction, bytes]]:
        encoded = _param(params, 0, "the bundle's transactions")
        encoding = _config(params, 1).get("encoding") or "base58"
        if not isinstance(encoded, list) or not 1 <= len(encoded) <= MAX_BUNDLE_TXS:
            raise RpcError(INVALID_PARAMS, f"bundle must contain 1 to {MAX_BUNDLE_TXS} transactions")
        return [_decode_transaction(item, encoding) for item in encoded]

    def _engine_send_bundle(self, params: list[Any]) -> Any:
        txs = self._bundle_txs(params)
        sigs = [tx.signatures[0] for tx, _ in txs]
        if len(set(sigs)) != len(sigs):
            raise RpcError(INVALID_PARAMS, "bundle contains duplicate transactions")
        for i, (tx, _) in enumerate(txs):
            if not all(tx.verify_with_results()):
                raise RpcError(
                    INVALID_PARAMS, f"bundle transaction {i} ({sigs[i]}) fails signature verification"
                )
        tip = sum(_tip_paid(tx, self._account_keys(tx)[0]) for tx, _ in txs)
        if tip < MIN_TIP_LAMPORTS:
            raise RpcError(
                INVALID_PARAMS,
                f"bundle must pay a tip of at least {MIN_TIP_LAMPORTS} lamports to one "
                f"of the tip accounts (getTipAccounts); it pays {tip}",
            )
        bid = bundle_id_of(sigs)
        bundle = self._bundles.get(bid)
        if bundle is not None and (
            bundle.status == "Landed" or (bundle.status == "Pending" and not bundle.dropped)
        ):
            return bid  # landed, or queued for the next slot: the same bundle again changes nothing
        if bundle is None:
            last_valid = min(self._blockhashes.get(tx.message.recent_blockhash, -(10**9)) for tx, _ in txs)
            bundle = _Bundle(bid, txs, last_valid_slot=last_valid + self.blockhash_valid_slots)
            self._bundles[bid] = bundle
        # New, lost on the way (drop_next) or failed: it goes to the next slot's auction (again).
        bundle.status, bundle.dropped = "Pending", False
        if self._drop > 0:
            self._drop -= 1
            bundle.dropped = True
        else:
            self._queue.append(bundle)
        return bid

    def _bundle_ids(self, params: list[Any]) -> list[str]:
        ids = _param(params, 0, "the bundle ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 5 or not all(isinstance(i, str) for i in ids):
            raise RpcError(INVALID_PARAMS, "Invalid params: expected an array of 1 to 5 bundle ids")
        return ids

    def _engine_get_inflight_bundle_statuses(self, params: list[Any]) -> Any:
        out = []
        for bid in self._bundle_ids(params):
            b = self._bundles.get(bid)
            if b is None:
                status = "Invalid"
            elif b.dropped:  # lost on the way: pending while it could still land, then failed
                status = "Pending" if self._slot <= b.last_valid_slot else "Failed"
            else:
                status = b.status
            out.append(
                {"bundle_id": bid, "status": status, "landed_slot": b.landed_slot if b is not None else None}
            )
        return {"context": {"slot": self._slot}, "value": out}

    def _engine_get_bundle_statuses(self, params: list[Any]) -> Any:
        out: list[Any] = []
        for bid in self._bundle_ids(params):
            b = self._bundles.get(bid)
            if b is None or b.landed_slot is None:
                out.append(None)
                continue
            out.append(
                {
                    "bundle_id": bid,
                    "transactions": [str(tx.signatures[0]) for tx, _ in b.txs],
                    "slot": b.landed_slot,
                    "confirmation_status": self._status(b.landed_slot),
                    "err": {"Ok": None},
                }
            )
        return {"context": {"slot": self._slot}, "value": out}

    def _rpc_simulate_bundle(self, params: list[Any]) -> Any:
        first = _param(params, 0, "the bundle")
        if not isinstance(first, dict) or not isinstance(first.get("encodedTransactions"), list):
            raise RpcError(INVALID_PARAMS, 'Invalid params: expected {"encodedTransactions": [base64, ...]}')
        cfg = _config(params, 1)
        encoded = first["encodedTransactions"]
        if not 1 <= len(encoded) <= MAX_BUNDLE_TXS:
            raise RpcError(INVALID_PARAMS, f"bundle must contain 1 to {MAX_BUNDLE_TXS} transactions")
        txs = [_decode_transaction(item, "base64") for item in encoded]
        if not cfg.get("skipSigVerify"):
            for i, (tx, _) in enumerate(txs):
                if not all(tx.verify_with_results()):
                    raise RpcError(
                        SIGNATURE_VERIFICATION_FAILURE,
                        f"Transaction signature verification failure (transaction {i})",
                    )
        replace = bool(cfg.get("replaceRecentBlockhash"))
        pre_cfgs = cfg.get("preExecutionAccountsConfigs") or [None] * len(txs)
        post_cfgs = cfg.get("postExecutionAccountsConfigs") or [None] * len(txs)
        if len(pre_cfgs) != len(txs) or len(post_cfgs) != len(txs):
            raise RpcError(
                INVALID_PARAMS, "pre/postExecutionAccountsConfigs must have one entry per transaction"
            )
        snapshot: dict[Pubkey, Account | None] = {}
        results: list[dict[str, Any]] = []
        summary: Any = "succeeded"
        slot = self._slot
        self.svm.with_sigverify(False)  # verified above unless skipped
        try:
            for i, (tx, raw) in enumerate(txs):
                keys, _ = self._account_keys(tx)
                for key in keys:
                    if key not in snapshot:
                        snapshot[key] = self.account(key)
                pre_accounts = self._accounts_config(pre_cfgs[i])
                execution = self._execute(tx, raw, slot, check_blockhash=not replace)
                post_accounts = self._accounts_config(post_cfgs[i])
                err = execution.err
                results.append(
                    {
                        "err": err,
                        "logs": execution.logs,
                        "preExecutionAccounts": pre_accounts,
                        "postExecutionAccounts": post_accounts,
                        "unitsConsumed": execution.units,
                        "returnData": execution.record.return_data if execution.record else None,
                    }
                )
                if err is not None:
                    summary = {
                        "failed": {
                            "error": {"TransactionFailure": [[str(tx.signatures[0])], _err_message(err)]},
                            "tx_signature": str(tx.signatures[0]),
                        }
                    }
                    break
        finally:
            self._restore(snapshot)
            self.svm.with_sigverify(True)
        return {"context": self._context(slot), "value": {"summary": summary, "transactionResults": results}}

    def _accounts_config(self, cfg: Any) -> list[Any] | None:
        if cfg is None:
            return None
        if not isinstance(cfg, dict):
            raise RpcError(
                INVALID_PARAMS, f"Invalid params: an accounts config must be an object, not {cfg!r}"
            )
        encoding = self._account_encoding(cfg, default="base64")
        out = []
        for i, raw in enumerate(cfg.get("addresses") or []):
            acc = self.account(_pubkey(raw, f"addresses[{i}]"))
            out.append(None if acc is None else self._encode_account(acc, encoding, None))
        return out
