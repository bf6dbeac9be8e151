"""How signed transactions reach a block: the public mempool, or a private relay (Flashbots).

A route only *delivers* bytes that the EVM gateway signed and journaled before: it never signs, never
picks a nonce and never decides whether a swap happened. The gateway learns that from receipts, the
same way whichever route carried the transaction, and calls :meth:`Route.submit` again (same bytes)
on every new block until a receipt is final or the intent's deadline has passed. So ``submit`` must be
idempotent for the same bytes: a mempool that already knows the transaction, or a relay that already
holds the bundle for that block, is not an error.

Which route a venue uses is its config's ``route`` (``"public"`` or ``"flashbots"``), chosen per venue:
a chain without a relay uses the public mempool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from web3 import Web3


class RouteRejected(Exception):
    """The route refused the transactions for a reason that resending will not change (e.g. the relay's
    simulation reverts); ``reason`` names it for the journal and the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Route(Protocol):
    """Delivers signed raw transactions towards the next blocks."""

    name: str

    def submit(self, raw_txs: Sequence[bytes], head_block: int) -> None:
        """Send (again) ``raw_txs``, in order, for the blocks after ``head_block``; idempotent."""
        ...


# What nodes answer when they already hold a transaction or it was mined: a resend, not a failure.
_ALREADY = ("already known", "known transaction", "nonce too low", "already imported", "replacement")


class PublicRoute:
    """The public mempool: ``eth_sendRawTransaction`` of each transaction (searchers can see them)."""

    name = "public"

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def submit(self, raw_txs: Sequence[bytes], head_block: int) -> None:
        """Broadcast each transaction; one the node already has (or has mined) is not an error."""
        for raw in raw_txs:
            try:
                self.w3.eth.send_raw_transaction(raw)
            except Exception as e:  # web3 raises its RPC error types; the message is what nodes agree on
                text = str(e).lower()
                if any(marker in text for marker in _ALREADY):
                    continue
                raise
