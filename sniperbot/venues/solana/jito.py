"""A small typed client of Jito's block engine, and the routes that take a signed swap to a leader.

**Client** (:class:`JitoClient`): JSON-RPC 2.0 over HTTP to ``<block engine>/api/v1/bundles``
(``sendBundle``, ``getBundleStatuses``, ``getInflightBundleStatuses``, ``getTipAccounts``) and
``/api/v1/transactions`` (``sendTransaction``), exactly the wire format of Jito's docs (research
``dex-sniping.md`` §4): transactions base64 with ``{"encoding": "base64"}`` always sent (the default is
still base58), bundle ids are the hex SHA-256 of the transactions' first signatures joined by ``,``, both
``confirmation_status`` and ``confirmationStatus`` parsed. Every call has a timeout; an HTTP 429 (the
default limit is 1 request/s per IP and region) is :class:`JitoRateLimited`; a JSON-RPC error is
:class:`JitoError` with the engine's code and message. Payloads (signed transactions) are never logged.

Decision: not ``jito-py-rpc`` (official, but no timeout on its requests, ``print()`` of every payload,
errors swallowed into dicts) nor ``aiojito`` (returns None on errors, then fails with a TypeError; base58
only) — research §4.6. This is ~150 lines on httpx, which solana-py already depends on.

**Routes** (the Solana twin of :mod:`sniperbot.venues.evm.routes`): a route only *delivers* bytes the
gateway signed and journaled before; it never signs and never decides whether a swap happened (the gateway
learns that from signature statuses, whichever route carried the transaction). ``submit`` is idempotent
for the same bytes: the gateway resends them until they land or their blockhash expires.

* ``jito``: a bundle of the ONE swap transaction, which carries its own tip (research §4.5: a tip in a
  separate transaction can land without the swap, uncle bandits). All or nothing, never in the public
  mempool.
* ``rpc``: ``sendTransaction`` through the real solana-py client (preflight skipped: the gateway simulated
  the transaction just before); an "already processed" answer is a resend, not a failure.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

import httpx
import msgspec
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

#: Jito's 8 mainnet tip accounts (constant; ``getTipAccounts`` returns them; research §4.2). Never reach
#: them through an address lookup table.
TIP_ACCOUNTS: tuple[Pubkey, ...] = tuple(
    Pubkey.from_string(s)
    for s in (
        "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5",
        "HFqU5x63VTqvQss8hp11i4wVV8bD44PvwucfZ2bU7gRe",
        "Cw8CFyM9FkoMi7K7Crf6HNQqf4uEMzpKw6QNghXLvLkY",
        "ADaUMid9yfUytqMBgopwjb2DTLSokTSzL1zt6iGPaS49",
        "DfXygSm4jCyNCybVYYK6DwvWqjKee8pbDmJGcLWNDXjh",
        "ADuUkR4vqLUMWXxW9gh6D6L8pMSawimctcNZ5pGwDcEt",
        "DttWaMuVvTiduZRnguLF7jNxTgiMBZ1hyAumKUiL2KRL",
        "3AVi9Tg9Uo68tJfuvoKvqKNWKkC5wPdSSdeBnizKZ6jT",
    )
)
#: The block engine's minimum tip (lamports; Jito's docs).
MIN_TIP_LAMPORTS = 1000
MAX_BUNDLE_TXS = 5

InflightStatus = Literal["Invalid", "Pending", "Failed", "Landed"]


class JitoError(Exception):
    """The block engine answered with a JSON-RPC error (``code``, ``message``) or something unreadable."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class JitoRateLimited(JitoError):
    """HTTP 429: over the block engine's rate limit (back off, then resend the same bytes)."""


class BundleStatus(msgspec.Struct, frozen=True):
    """One landed bundle (``getBundleStatuses``)."""

    bundle_id: str
    transactions: list[str]
    slot: int
    confirmation_status: str  # processed | confirmed | finalized
    err: Any = None  # {"Ok": null} when it succeeded


class InflightBundleStatus(msgspec.Struct, frozen=True):
    """Where a bundle is in the block engine (``getInflightBundleStatuses``, 5-minute look-back)."""

    bundle_id: str
    status: InflightStatus
    landed_slot: int | None = None


def bundle_id_of(signatures: Iterable[Signature]) -> str:
    """A bundle's id as Jito derives it (``derive_bundle_id``): sha256 hex of the transactions' first
    signatures joined by ``","``; the block engine and the local chain both use this one."""
    return hashlib.sha256(",".join(str(s) for s in signatures).encode()).hexdigest()


def bundle_id(txs: Sequence[VersionedTransaction]) -> str:
    """The id of the bundle of ``txs`` (:func:`bundle_id_of` their first signatures)."""
    return bundle_id_of(tx.signatures[0] for tx in txs)


def tip_lamports(tx: VersionedTransaction) -> int:
    """The lamports ``tx`` transfers to Jito's tip accounts (its top-level system transfers)."""
    msg = tx.message
    keys = list(msg.account_keys)
    system = Pubkey.from_string("11111111111111111111111111111111")
    total = 0
    for ix in msg.instructions:
        data = bytes(ix.data)
        if keys[ix.program_id_index] != system or len(data) != 12 or data[:4] != (2).to_bytes(4, "little"):
            continue
        if len(ix.accounts) >= 2 and keys[ix.accounts[1]] in TIP_ACCOUNTS:
            total += int.from_bytes(data[4:12], "little")
    return total


class JitoClient:
    """Jito's block-engine JSON-RPC (see the module docstring); thread-safe, one HTTP connection pool."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, auth_uuid: str = "") -> None:
        self.base = url.rstrip("/")
        if self.base.endswith("/api/v1"):
            self.base = self.base[: -len("/api/v1")]
        headers = {"x-jito-auth": auth_uuid} if auth_uuid else {}
        self._http = httpx.Client(timeout=timeout_s, headers=headers)
        self._ids = itertools.count(1)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, path: str, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        resp = self._http.post(f"{self.base}{path}", json=body)
        if resp.status_code == 429:
            raise JitoRateLimited(f"{method}: rate limited (HTTP 429)", 429)
        try:
            answer = resp.json()
        except ValueError:
            raise JitoError(f"{method}: HTTP {resp.status_code}, not JSON") from None
        if not isinstance(answer, dict):
            raise JitoError(f"{method}: HTTP {resp.status_code}, not a JSON-RPC answer")
        error = answer.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise JitoError(f"{method}: {str(message)[:200]}", code)
        if resp.status_code >= 400:
            raise JitoError(f"{method}: HTTP {resp.status_code}", resp.status_code)
        return answer.get("result")

    def send_bundle(self, txs: Sequence[VersionedTransaction]) -> str:
        """Send ``txs`` (signed, <= 5) as one atomic bundle; the bundle id (an acknowledgement only)."""
        if not 1 <= len(txs) <= MAX_BUNDLE_TXS:
            raise ValueError(f"a bundle holds 1..{MAX_BUNDLE_TXS} transactions, not {len(txs)}")
        encoded = [base64.b64encode(bytes(tx)).decode() for tx in txs]
        result = self._call("/api/v1/bundles", "sendBundle", [encoded, {"encoding": "base64"}])
        if not isinstance(result, str):
            raise JitoError("sendBundle: no bundle id in the answer")
        return result

    def send_transaction(self, tx: VersionedTransaction, *, bundle_only: bool = False) -> str:
        """Jito's ``sendTransaction`` (straight to the leader); the signature."""
        path = "/api/v1/transactions" + ("?bundleOnly=true" if bundle_only else "")
        encoded = base64.b64encode(bytes(tx)).decode()
        return str(self._call(path, "sendTransaction", [encoded, {"encoding": "base64"}]))

    def get_tip_accounts(self) -> list[Pubkey]:
        """The block engine's tip accounts."""
        result = self._call("/api/v1/bundles", "getTipAccounts", [])
        try:
            return [Pubkey.from_string(s) for s in result]
        except (TypeError, ValueError):
            raise JitoError("getTipAccounts: not a list of public keys") from None

    def get_bundle_statuses(self, ids: Sequence[str]) -> dict[str, BundleStatus]:
        """Landed bundles among ``ids`` (<= 5), by id; an id absent has not landed (or is too old)."""
        result = self._call("/api/v1/bundles", "getBundleStatuses", [list(ids)])
        out: dict[str, BundleStatus] = {}
        for row in _value(result, "getBundleStatuses"):
            if not isinstance(row, dict):
                continue
            row = dict(row)
            if "confirmationStatus" in row and "confirmation_status" not in row:  # the docs' table spelling
                row["confirmation_status"] = row.pop("confirmationStatus")
            status = msgspec.convert(row, BundleStatus, strict=False)
            out[status.bundle_id] = status
        return out

    def get_inflight_bundle_statuses(self, ids: Sequence[str]) -> dict[str, InflightBundleStatus]:
        """Where each of ``ids`` (<= 5) is: Invalid | Pending | Failed | Landed."""
        result = self._call("/api/v1/bundles", "getInflightBundleStatuses", [list(ids)])
        rows = [r for r in _value(result, "getInflightBundleStatuses") if isinstance(r, dict)]
        try:
            statuses = [msgspec.convert(r, InflightBundleStatus, strict=False) for r in rows]
        except msgspec.ValidationError as e:
            raise JitoError(f"getInflightBundleStatuses: {e}") from None
        return {s.bundle_id: s for s in statuses}


def _value(result: Any, method: str) -> list[Any]:
    if result is None:
        return []
    if not isinstance(result, dict) or not isinstance(result.get("value", []), list):
        raise JitoError(f"{method}: no value list in the answer")
    return result.get("value") or []


# -- routes ---------------------------------------------------------------------------------------------


class RouteRejected(Exception):
    """The route refused the transaction for a reason resending will not change; ``reason`` names it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Route(Protocol):
    """Delivers one signed swap transaction towards the next slots."""

    name: str

    def submit(self, tx: VersionedTransaction) -> None:
        """Send (again) ``tx``; idempotent for the same bytes."""
        ...


# What an RPC answers for a transaction it has already seen or processed: a resend, not a failure.
_ALREADY = ("alreadyprocessed", "alreadybeenprocessed")


def _already(text: str) -> bool:
    squeezed = text.lower().replace(" ", "")
    return any(m in squeezed for m in _ALREADY)


class JitoRoute:
    """A Jito bundle of the one swap transaction (its tip inside); see the module docstring."""

    name = "jito"

    def __init__(self, client: JitoClient, min_tip: int = MIN_TIP_LAMPORTS) -> None:
        self.client = client
        self.min_tip = min_tip

    def submit(self, tx: VersionedTransaction) -> None:
        """Send a bundle of ``tx``; refused before sending if it carries no tip (it could never land)."""
        if tip_lamports(tx) < self.min_tip:
            raise RouteRejected(f"no tip of at least {self.min_tip} lamports in the transaction")
        try:
            self.client.send_bundle([tx])
        except JitoRateLimited:
            raise
        except JitoError as e:
            if _already(str(e)):
                return
            raise


class RpcRoute:
    """``sendTransaction`` through the real solana-py client (``solana.rpc.async_api.AsyncClient``, driven
    by ``run``: the gateway's worker runs one event loop and hands each coroutine to it)."""

    name = "rpc"

    def __init__(self, client: Any, run: Callable[[Awaitable[Any]], Any]) -> None:
        self.client = client
        self.run = run

    def submit(self, tx: VersionedTransaction) -> None:
        """Send ``tx`` (preflight skipped: simulated just before); one already processed is not an error."""
        from solana.rpc.models import TxOpts

        try:
            self.run(self.client.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True, max_retries=0)))
        except Exception as e:  # solana-py raises its RPC exception types; the message is what nodes agree on
            if _already(str(e)):
                return
            raise
