"""Flashbots: private bundles through a relay (``eth_callBundle``, ``eth_sendBundle``), our own client.

Why our own: the PyPI ``flashbots`` package pins ``web3<7`` and signs with ``HexBytes.hex()``, which has no
``0x`` since hexbytes 1 (web3 >= 7), so the relay answers ``error in signature check``. The wire format is
the relay's JSON-RPC (docs.flashbots.net, "RPC endpoint"):

* ``eth_callBundle [{txs, blockNumber, stateBlockNumber}]`` simulates the signed transactions, in order,
  at the top of ``blockNumber`` on the state of ``stateBlockNumber``; each result carries ``error`` (and
  ``revert``, the reason) when its transaction reverts.
* ``eth_sendBundle [{txs, blockNumber, revertingTxHashes?}]`` offers the bundle for ONE block: all its
  transactions land in that block, in order, or none does (unless listed in ``revertingTxHashes``). Not
  being included is no error: the bundle must be sent again for every block it should be tried in.
* ``flashbots_getBundleStatsV2 [{bundleHash, blockNumber}]``: what the relay did with a bundle. Flashbots
  deprecated it on its public relay in 2025 (it answers 403), so nothing here depends on it: inclusion is
  learnt from the chain (receipts), by the gateway, the same way for every route.

Every request is signed: header ``X-Flashbots-Signature: <address>:<signature>``, the signature being the
EIP-191 ``personal_sign`` of the TEXT ``"0x" + hex(keccak256(body))`` (0x-prefixed lowercase hex) by the
reputation key, over the exact bytes sent. That key only identifies the searcher to the relay and holds
no funds; it never appears in an error or a log line (errors name the relay by scheme, host and port only,
since some relay URLs carry an API key in their path or query).
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from web3 import Web3

from sniperbot.venues.evm.routes import RouteRejected

log = logging.getLogger("sniperbot.venues.evm.flashbots")

SIGNATURE_HEADER = "X-Flashbots-Signature"
# What a relay's simulation answers when a transaction's nonce is already used on chain: the bundle (or a
# replacement with the same nonce) has landed. Nothing to send; the gateway learns which from receipts.
_ALREADY_MINED = ("nonce too low",)


def _hex(raw: bytes) -> str:
    # bytes.hex() / HexBytes.hex() have no 0x (hexbytes >= 1): the relay wants 0x-hex everywhere
    return "0x" + bytes(raw).hex()


def tx_hash(raw: bytes) -> str:
    """The hash of a signed raw transaction (keccak256 of its bytes), 0x-hex."""
    return _hex(keccak(bytes(raw)))


def bundle_hash(raw_txs: Iterable[bytes]) -> str:
    """The relay's bundle hash: keccak256 of the concatenated transaction hashes, 0x-hex."""
    return _hex(keccak(b"".join(keccak(bytes(raw)) for raw in raw_txs)))


def flashbots_signature(body: bytes, auth_key: str) -> str:
    """The ``X-Flashbots-Signature`` header value for ``body``: ``<address>:<0x-signature>``.

    EIP-191 personal_sign of the text ``"0x" + hex(keccak256(body))`` (the 0x is part of what is signed).
    """
    account = Account.from_key(auth_key)
    message = encode_defunct(text=_hex(keccak(body)))
    signature = account.sign_message(message).signature
    return f"{account.address}:{_hex(signature)}"


def relay_name(relay_url: str) -> str:
    """The relay as errors and logs show it: scheme, host and port (a path or query may hold an API key)."""
    parts = urlsplit(relay_url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class RelayError(Exception):
    """The relay refused or failed a request: names the relay, the method and the relay's own message.

    ``code`` is the JSON-RPC error code (None when the relay answered without one), ``http_status`` the
    HTTP status (None when the relay could not be reached).
    """

    def __init__(
        self, relay: str, method: str, message: str, code: int | None = None, http_status: int | None = None
    ) -> None:
        details = ", ".join(
            part
            for part in (
                f"code {code}" if code is not None else "",
                f"HTTP {http_status}" if http_status else "",
            )
            if part
        )
        super().__init__(
            f"flashbots relay {relay} {method}: {message}" + (f" ({details})" if details else "")
        )
        self.relay = relay
        self.method = method
        self.message = message
        self.code = code
        self.http_status = http_status


class FlashbotsClient:
    """A Flashbots relay's JSON-RPC, each request signed by the reputation key ``auth_key``."""

    def __init__(self, relay_url: str, auth_key: str, timeout_s: float = 5.0) -> None:
        self.relay_url = relay_url
        self.relay = relay_name(relay_url)
        self.timeout_s = timeout_s
        # The key stays in this (private) attribute; only the address is ever shown.
        try:
            self.auth_address = Account.from_key(auth_key).address
        except Exception:  # never chain the original: its message or locals could carry the key
            raise ValueError(
                "flashbots relay auth key is not a valid private key (32 bytes hex): check the keystore entry"
            ) from None
        self._auth_key = auth_key
        self._next_id = 0
        parts = urlsplit(relay_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"flashbots relay_url must be an http(s) URL, got scheme {parts.scheme!r}")
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # One kept-alive connection: a sniper's bundle must not wait for a TCP+TLS handshake per request.
        self._conn: http.client.HTTPConnection | None = None
        self._conn_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FlashbotsClient({self.relay}, auth={self.auth_address})"

    def request(self, method: str, params: list[Any]) -> Any:
        """One signed JSON-RPC call; its ``result``, or :class:`RelayError` with the relay's message."""
        self._next_id += 1
        payload = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        # Sign exactly the bytes sent (a re-serialised body would not match the signature).
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: flashbots_signature(body, self._auth_key),
        }
        status, raw = self._post(method, body, headers)
        try:
            answer = json.loads(raw)
        except ValueError:
            text = raw[:200].decode(errors="replace")
            raise RelayError(self.relay, method, f"not JSON: {text!r}", http_status=status) from None
        error = answer.get("error") if isinstance(answer, dict) else None
        if error is not None:
            if isinstance(error, dict):  # JSON-RPC error object
                raise RelayError(
                    self.relay, method, str(error.get("message")), code=error.get("code"), http_status=status
                )
            raise RelayError(self.relay, method, str(error), http_status=status)  # older relays: a string
        if status != 200 or not isinstance(answer, dict) or "result" not in answer:
            raise RelayError(self.relay, method, f"unexpected answer {str(answer)[:200]}", http_status=status)
        return answer["result"]

    def _post(self, method: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST on the kept-alive connection; a connection the relay closed meanwhile is reopened once."""
        with self._conn_lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                conn = self._conn or self._connect()
                try:
                    conn.request("POST", self._target, body=body, headers=headers)
                    response = conn.getresponse()
                    raw = response.read()
                    if response.will_close:
                        self.close()
                    return response.status, raw
                except (OSError, http.client.HTTPException) as e:
                    self.close()
                    # A kept-alive connection may have been closed by the relay while idle: once more on a
                    # fresh one (resending is harmless: a relay holds a bundle once per block, by its hash).
                    if attempt == 1 and reused:
                        continue
                    raise RelayError(self.relay, method, f"unreachable: {e}") from None
            raise AssertionError("unreachable")  # the loop returns or raises

    def _connect(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.relay_url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._conn = cls(parts.hostname or "", parts.port, timeout=self.timeout_s)
        return self._conn

    def close(self) -> None:
        """Close the connection to the relay (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call_bundle(
        self, raw_txs: Sequence[bytes], block_number: int, state_block: int | str = "latest"
    ) -> dict[str, Any]:
        """Simulate ``raw_txs`` in order at the top of ``block_number`` on ``state_block``'s state.

        Returns the relay's result: ``results`` (one per transaction: ``txHash``, ``gasUsed``, and
        ``error``/``revert`` if it reverted), ``totalGasUsed``, ``bundleHash``, ``coinbaseDiff``, ...
        """
        state = hex(state_block) if isinstance(state_block, int) else state_block
        params = {
            "txs": [_hex(raw) for raw in raw_txs],
            "blockNumber": hex(block_number),
            "stateBlockNumber": state,
        }
        return dict(self.request("eth_callBundle", [params]))

    def send_bundle(
        self, raw_txs: Sequence[bytes], block_number: int, reverting_hashes: Sequence[str] = ()
    ) -> str:
        """Offer ``raw_txs`` for block ``block_number`` only (all in order, or none); the bundle hash."""
        params: dict[str, Any] = {"txs": [_hex(raw) for raw in raw_txs], "blockNumber": hex(block_number)}
        if reverting_hashes:
            params["revertingTxHashes"] = list(reverting_hashes)
        result = self.request("eth_sendBundle", [params])
        if isinstance(result, dict) and result.get("bundleHash"):
            return str(result["bundleHash"])
        return bundle_hash(raw_txs)  # a relay answering without the hash: the same rule computed here

    def bundle_stats(self, bundle_hash_: str, block_number: int) -> dict[str, Any]:
        """``flashbots_getBundleStatsV2``: the relay's view of a bundle for a block (``isSimulated``,
        ``consideredByBuildersAt``, ``sealedByBuildersAt``...), where the relay still offers it."""
        params = {"bundleHash": bundle_hash_, "blockNumber": hex(block_number)}
        return dict(self.request("flashbots_getBundleStatsV2", [params]))


class FlashbotsRoute:
    """The private route: simulate with ``eth_callBundle``, then ``eth_sendBundle`` for the next blocks.

    ``submit(raw_txs, head_block)`` simulates the bundle for ``head_block + 1``; a transaction that
    reverts in the simulation raises :class:`RouteRejected` naming it and the revert reason (the relay
    would drop the bundle whole every time: resending cannot help). Otherwise it sends the bundle for each
    of the blocks ``head_block + 1 .. head_block + blocks_ahead``. The gateway calls ``submit`` again on
    every new head until a receipt or the intent's deadline, so a bundle missed by one block is offered for
    the following ones: "resubmitted until included or the deadline passes".

    Idempotent per (bundle bytes, block): a bundle already sent for a block is not sent again, and when
    every target block was already covered ``submit`` makes no request at all (not even a simulation).
    A simulation answering "nonce too low" means the bundle, or a replacement with the same nonce, has
    landed: nothing is sent and no error is raised (the gateway learns from receipts which one it was).
    Relay failures (unreachable, 5xx, auth) raise :class:`RelayError`: transient for the gateway, which
    tries again on the next block.
    """

    name = "flashbots"

    def __init__(
        self, w3: Web3, relay_url: str, auth_key: str, blocks_ahead: int = 3, timeout_s: float = 5.0
    ) -> None:
        if blocks_ahead < 1:
            raise ValueError(f"FlashbotsRoute blocks_ahead must be >= 1, got {blocks_ahead}")
        self.w3 = w3  # the chain client every route is built with (the relay calls do not need it)
        self.client = FlashbotsClient(relay_url, auth_key, timeout_s=timeout_s)
        self.blocks_ahead = blocks_ahead
        self._sent: set[tuple[str, int]] = set()  # (bundle hash, target block) already sent

    def submit(self, raw_txs: Sequence[bytes], head_block: int) -> None:
        """Simulate, then send the bundle for each of the next ``blocks_ahead`` blocks not yet covered."""
        raws = [bytes(raw) for raw in raw_txs]
        if not raws:
            return
        key = bundle_hash(raws)
        # Blocks at or below the head are over: forget them so the set stays small.
        self._sent = {(k, block) for k, block in self._sent if block > head_block}
        targets = [
            head_block + i for i in range(1, self.blocks_ahead + 1) if (key, head_block + i) not in self._sent
        ]
        if not targets:
            return
        try:
            simulation = self.client.call_bundle(raws, head_block + 1, "latest")
        except RelayError as e:
            if any(marker in e.message.lower() for marker in _ALREADY_MINED):
                log.info("bundle nonce already used on chain", extra={"bundle": key, "head": head_block})
                return
            raise
        for result in simulation.get("results", []):
            if result.get("error") or result.get("revert"):
                reason = result.get("revert") or result.get("error")
                raise RouteRejected(
                    f"flashbots simulation for block {head_block + 1}: transaction {result.get('txHash')} "
                    f"reverts: {reason}"
                )
        for block in targets:
            self.client.send_bundle(raws, block)
            self._sent.add((key, block))
        log.info("bundle sent", extra={"bundle": key, "blocks": targets, "relay": self.client.relay})
