"""Money invariants against the chain for a live Solana venue: the journal against what the wallet did.

The Solana twin of :mod:`sniperbot.chaos.chain` (same report, :class:`~sniperbot.chaos.chain.ChainReport`, so
``sniperbot chaos`` prints and judges both alike). :class:`SolanaChainReader` reads, over the venue's own RPC
with the real ``solana`` client, every transaction of the wallet since the session's baseline slot
(``getSignaturesForAddress`` back to the newest signature of the baseline, then ``getTransaction`` of each:
its error and fee), the on-chain status of every signature the journal names, its fills' and its orders'
(``getSignatureStatuses`` with the history: a signature that landed before the baseline is not this
session's), and the wallet's balances then and now; :func:`check_solana` compares them with the journal.

**The wallet's SOL** is the lamports of the wallet *plus the lamports held by its token accounts*: creating
a token account moves its rent deposit (about 0.002 SOL) from the wallet into an account the wallet owns
and gets back when it closes it, so it is neither spent nor earned (and a wrapped-SOL account's amount is
its lamports: SOL, counted once). **Tokens** are counted per mint over
every token account of the wallet (SPL Token and Token-2022), named by their symbol for configured mints
and by the mint's base58 address for tokens learnt at run time (the sniper's ``"<mint>/SOL"``). Every read
is at the venue's ``commitment`` (the level at which the gateway calls a swap filled).

The checks (each a list of offending ids; ``ok`` is False if any is non-empty):

* ``duplicate_orders``: one client order id with two different landed transactions (an intent executed
  twice: the signatures of its fills and of its ``accepted`` update, whose ``exchange_order_id`` is the
  signed swap's signature), a fill id journaled twice, or two fills for one transaction.
* ``lost_fills``: a successful transaction of the wallet since the baseline that the journal has no fill
  for (every successful transaction of a chaos wallet is a swap: see the decision below).
* ``phantom_fills``: a journaled fill whose signature has no successful transaction on chain (never
  landed, or landed with an error).
* ``position_mismatches``: per mint, the wallet's balance change since the baseline against the net
  quantity of the journal's fills on that mint (token units, from the wallet's point of view).
* ``balance_mismatches``: SOL: the wallet's change against what the journal explains: sells' value minus
  buys' value minus the fills' fees (the transaction fee plus the Jito tip: the gateway's fee), minus the
  fee of every transaction that landed with an error (the chain charges it; no fill explains it).

Not failures but not settled (a check is retried until settled): an order the journal still has open, or
a wallet that moved while it was being read (its signatures differ before and after the balances).

**Decision:** a chaos session on a chain uses a dedicated wallet: any other transaction from it, or a
transfer into it, shows as a lost fill or a balance mismatch.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import msgspec

from sniperbot.chaos.chain import ChainReport
from sniperbot.journal import TERMINAL_STATUSES
from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.venues.solana.layouts import LAMPORTS_PER_SOL as _LAMPORTS
from sniperbot.venues.solana.layouts import SOL_MINT, decode_mint, decode_token_account

_NATIVE = str(SOL_MINT)
#: Reads of the wallet at the baseline before giving up on a wallet that never stands still.
_BASELINE_TRIES = 20
#: How long the baseline waits for the commitment to cover the slot its balances were read at (finalized
#: trails processed by ~13 s on mainnet); past it, the baseline fails with the slots it saw.
_CATCH_UP_S = 30.0
#: getSignaturesForAddress pages (the RPC's maximum per call).
_PAGE = 1000
#: How far a balance may differ from what the journal explains: float rounding of token units and prices
#: (a fill's ``quantity * price`` is one float product), far below one lamport per fill.
_ABS_SOL = 1e-9
_REL = 1e-9

_T = TypeVar("_T")


class SolanaChainVenue(msgspec.Struct, frozen=True, kw_only=True):
    """What the checker needs of a ``[[venues]]`` entry with ``kind = "solana"`` and ``mode = "live"``."""

    name: str
    rpc_url: str
    commitment: str
    quote: str
    mints: dict[str, str]  # symbol -> mint (base58)
    wallet: str  # the wallet's public key (never its secret)


class SolanaBaseline(msgspec.Struct, kw_only=True):
    """The wallet when the session started: the slot, its newest signature, its balances (token units)."""

    venue: str
    slot: int
    newest: str  # the wallet's newest signature then ("" if it had none)
    balances: dict[str, float]  # "SOL" and one entry per mint held (symbol, or mint base58)


class SolanaTx(msgspec.Struct, frozen=True, kw_only=True):
    """One transaction of the wallet, as landed."""

    signature: str
    slot: int
    ok: bool
    fee_sol: float  # the chain's transaction fee (a tip is a transfer, not in it)


class SolanaRecords(msgspec.Struct, kw_only=True):
    """One read of the chain: the wallet's transactions since the baseline and its balances now."""

    venue: str
    slot: int
    txs: list[SolanaTx]
    balances: dict[str, float]
    before: list[str] = []  # journaled signatures landed at or before the baseline (not this session's)
    moved: bool = False  # the wallet's signatures changed while its balances were read (read again)


def solana_chain_venues(config: Any, credentials: dict[str, Any]) -> list[SolanaChainVenue]:
    """The live solana venues of a node config, each with its wallet's public key (from the unlocked key)."""
    from sniperbot.venues.solana.config import SolanaVenueConfig

    out: list[SolanaChainVenue] = []
    for venue in getattr(config, "venues", None) or ():
        if not isinstance(venue, SolanaVenueConfig) or venue.mode != "live" or not venue.wallet:
            continue
        entry = credentials.get(venue.wallet)
        if entry is None:
            continue
        from solders.keypair import Keypair

        wallet = str(Keypair.from_base58_string(entry["secret_key"].reveal()).pubkey())
        out.append(
            SolanaChainVenue(
                name=venue.name,
                rpc_url=venue.rpc_url,
                commitment=venue.commitment,
                quote=venue.quote,
                mints=dict(venue.mints),
                wallet=wallet,
            )
        )
    return out


def _run(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run one coroutine to completion on a loop of its own (the chaos tool is synchronous)."""
    return asyncio.run(make())  # type: ignore[arg-type]


class SolanaChainReader:
    """Reads a venue's wallet from the chain over its RPC (the real ``solana`` AsyncClient)."""

    def __init__(self, venue: SolanaChainVenue) -> None:
        self.venue = venue
        self._decimals: dict[str, int] = {}
        self._symbol_of = {mint: symbol for symbol, mint in venue.mints.items()}

    def _client(self) -> Any:
        from solana.rpc.async_api import AsyncClient

        return AsyncClient(self.venue.rpc_url, commitment=self.venue.commitment, timeout=30, http2=False)

    async def _balances(self, client: Any) -> dict[str, float]:
        """SOL (the wallet plus its token accounts' rent deposits) and every mint the wallet holds."""
        from solana.rpc.models import TokenAccountOpts
        from solders.pubkey import Pubkey
        from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

        wallet = Pubkey.from_string(self.venue.wallet)
        lamports = (await client.get_balance(wallet)).value
        raw: dict[str, int] = {}
        for program in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
            accounts = await client.get_token_accounts_by_owner(wallet, TokenAccountOpts(program_id=program))
            for keyed in accounts.value:
                lamports += keyed.account.lamports
                held = decode_token_account(bytes(keyed.account.data))
                mint = str(held.mint)
                if mint == _NATIVE:
                    continue  # wrapped SOL: its amount is the account's lamports, counted just above
                raw[mint] = raw.get(mint, 0) + int(held.amount)
        unknown = [m for m in raw if m not in self._decimals]
        if unknown:
            answer = await client.get_multiple_accounts([Pubkey.from_string(m) for m in unknown])
            for mint, account in zip(unknown, answer.value, strict=True):
                if account is None:
                    raise ValueError(f"mint {mint} of a token account of the wallet does not exist")
                self._decimals[mint] = decode_mint(bytes(account.data), account.owner).decimals
        out = {"SOL": lamports / _LAMPORTS}
        for mint, amount in raw.items():
            out[self._symbol_of.get(mint, mint)] = amount / 10 ** self._decimals[mint]
        return out

    async def _signatures(self, client: Any, until: str) -> list[tuple[str, int, bool]]:
        """The wallet's signatures newer than ``until`` (newest first): (signature, slot, ok)."""
        from solders.pubkey import Pubkey
        from solders.signature import Signature

        wallet = Pubkey.from_string(self.venue.wallet)
        stop = Signature.from_string(until) if until else None
        out: list[tuple[str, int, bool]] = []
        before = None
        while True:
            page = (
                await client.get_signatures_for_address(wallet, before=before, until=stop, limit=_PAGE)
            ).value
            out.extend((str(s.signature), int(s.slot), s.err is None) for s in page)
            if len(page) < _PAGE:
                return out
            before = page[-1].signature

    def baseline(self) -> SolanaBaseline:
        """The wallet now: the session's starting point."""

        async def read() -> SolanaBaseline:
            from solana.rpc.commitment import Processed

            client = self._client()
            try:
                for _ in range(_BASELINE_TRIES):
                    newest = await self._signatures_head(client)
                    balances = await self._balances(client)
                    slot = await self._slot_covering(client, (await client.get_slot(Processed)).value)
                    # Nothing of the wallet's reached the commitment meanwhile (else read again): every
                    # transaction in ``balances`` landed at or before ``slot``, and every later one after it.
                    if await self._signatures_head(client) == newest:
                        return SolanaBaseline(
                            venue=self.venue.name, slot=slot, newest=newest, balances=balances
                        )
            finally:
                await client.close()
            raise RuntimeError(
                f"venue {self.venue.name}: the wallet moved during each of {_BASELINE_TRIES} reads of it"
            )

        return _run(read)

    async def _slot_covering(self, client: Any, processed: int) -> int:
        """The commitment's slot once it has reached ``processed`` (the slot the balances were read at).

        Why wait: an RPC may answer account reads from a newer bank than its commitment's slot (a dev chain
        serves the processed state at every commitment). Read then, a swap in flight is in the balances but
        not yet listed nor "before" the baseline's slot, and the session would count it twice. Once the
        commitment covers that slot, the head of the wallet's signatures tells whether it was.
        """
        deadline = asyncio.get_running_loop().time() + _CATCH_UP_S
        while True:
            slot = int((await client.get_slot()).value)
            if slot >= processed:
                return slot
            if asyncio.get_running_loop().time() > deadline:
                # Never a baseline that may split a swap: a false money alarm costs the operator's trust.
                raise RuntimeError(
                    f"venue {self.venue.name}: the RPC's {self.venue.commitment} slot stayed at {slot}, "
                    f"short of the processed slot {processed} of its balances, for {_CATCH_UP_S:.0f} s"
                )
            await asyncio.sleep(0.02)

    async def _signatures_head(self, client: Any) -> str:
        from solders.pubkey import Pubkey

        page = (await client.get_signatures_for_address(Pubkey.from_string(self.venue.wallet), limit=1)).value
        return str(page[0].signature) if page else ""

    def fetch(self, baseline: SolanaBaseline, journaled: Iterable[str] = ()) -> SolanaRecords:
        """The wallet's transactions since the baseline and its balances now.

        ``journaled``: the signatures of the journal's fills; those that landed successfully before the
        baseline (the node traded before the session started) are listed in ``before``.
        """

        async def read() -> SolanaRecords:
            from solders.signature import Signature

            client = self._client()
            try:
                slot = (await client.get_slot()).value
                listed = await self._signatures(client, baseline.newest)
                balances = await self._balances(client)
                moved = await self._signatures_head(client) != (listed[0][0] if listed else baseline.newest)
                txs: list[SolanaTx] = []
                for signature, landed_slot, _ok in listed:
                    answer = await client.get_transaction(
                        Signature.from_string(signature), max_supported_transaction_version=0
                    )
                    tx = answer.value
                    if tx is None:  # listed but not served yet at this commitment: read again later
                        moved = True
                        continue
                    meta = tx.transaction.meta
                    txs.append(
                        SolanaTx(
                            signature=signature,
                            slot=landed_slot,
                            ok=meta is not None and meta.err is None,
                            fee_sol=(meta.fee if meta is not None else 0) / _LAMPORTS,
                        )
                    )
                seen = {t.signature for t in txs}
                others = sorted(set(journaled) - seen)
                before: list[str] = []
                for start in range(0, len(others), 256):  # the RPC's limit per call
                    chunk = others[start : start + 256]
                    statuses = (
                        await client.get_signature_statuses(
                            [Signature.from_string(s) for s in chunk], search_transaction_history=True
                        )
                    ).value
                    for signature, status in zip(chunk, statuses, strict=True):
                        if status is not None and status.err is None and status.slot <= baseline.slot:
                            before.append(signature)
                return SolanaRecords(
                    venue=self.venue.name, slot=slot, txs=txs, balances=balances, before=before, moved=moved
                )
            finally:
                await client.close()

        return _run(read)


def _signature_of(fill_id: str, venue: str) -> str:
    """The transaction signature of one of the gateway's fill ids (``<venue>:<signature>``)."""
    return fill_id.removeprefix(venue + ":").split(":")[0]


def journaled_signatures(journal: Iterable[Any], venue: str) -> list[str]:
    """Every transaction signature the journal names on ``venue``: its fills' and its orders' (the
    gateway's ``accepted`` update carries the signed swap's signature as ``exchange_order_id``)."""
    out: set[str] = set()
    for r in journal:
        if isinstance(r, Fill) and r.venue == venue:
            out.add(_signature_of(r.fill_id, venue))
        elif isinstance(r, OrderUpdate) and r.venue == venue and r.exchange_order_id:
            out.add(r.exchange_order_id)
    return sorted(out)


def _close(a: float, b: float, fills: int) -> bool:
    return math.isclose(a, b, rel_tol=_REL, abs_tol=_ABS_SOL * (1 + fills))


def check_solana(
    venue: SolanaChainVenue, journal: Iterable[Any], records: SolanaRecords, baseline: SolanaBaseline
) -> ChainReport:
    """The journal of ``venue`` against the chain's records since ``baseline`` (module docstring)."""
    name = venue.name
    before = set(records.before)
    orders: dict[str, Order] = {}
    status: dict[str, str] = {}
    cid_of: dict[str, str] = {}  # signature -> the client order id the journal gives it
    fills: list[Fill] = []
    for record in journal:
        if isinstance(record, Order) and record.venue == name:
            orders[record.client_order_id] = record
        elif isinstance(record, OrderUpdate) and record.venue == name:
            status[record.client_order_id] = record.status
            if record.exchange_order_id:
                cid_of.setdefault(record.exchange_order_id, record.client_order_id)
        elif isinstance(record, Fill) and record.venue == name:
            fills.append(record)
    fills = [f for f in fills if _signature_of(f.fill_id, name) not in before]  # not this session's
    landed = {t.signature: t for t in records.txs if t.ok}
    r = ChainReport(
        ok=True, settled=True, venue=name, orders_journaled=len(orders), swaps_on_chain=len(landed),
        fills_journaled=len(fills), wallet_txs=len(records.txs), duplicate_orders=[], lost_fills=[],
        phantom_fills=[], position_mismatches=[], balance_mismatches=[], unsettled=[], positions={},
        wallet_changes={}, problems=[],
    )  # fmt: skip
    seen_ids: set[str] = set()
    fills_of_tx: dict[str, int] = {}
    txs_of_cid: dict[str, set[str]] = {}
    for fill in fills:
        if fill.fill_id in seen_ids:
            r.duplicate_orders.append(f"fill {fill.fill_id} journaled twice")
            continue
        seen_ids.add(fill.fill_id)
        signature = _signature_of(fill.fill_id, name)
        fills_of_tx[signature] = fills_of_tx.get(signature, 0) + 1
        cid_of.setdefault(signature, fill.client_order_id)
    for signature, cid in cid_of.items():
        if signature in landed:
            txs_of_cid.setdefault(cid, set()).add(signature)
    for cid, signatures in sorted(txs_of_cid.items()):
        if len(signatures) > 1:
            r.duplicate_orders.append(
                f"{cid}: {len(signatures)} swaps landed ({', '.join(sorted(signatures))})"
            )
    for signature, count in sorted(fills_of_tx.items()):
        if count > 1:
            r.duplicate_orders.append(f"{signature}: {count} fills journaled for one transaction")
        if signature not in landed:
            r.phantom_fills.append(f"{signature}: journaled, no successful transaction on chain")
    for signature, tx in sorted(landed.items()):
        if signature not in fills_of_tx:
            cid = cid_of.get(signature)
            known = f" (order {cid}, journaled {status.get(cid, 'open')})" if cid else ""
            r.lost_fills.append(f"{signature} (slot {tx.slot}) landed, no fill in the journal{known}")
    for cid in orders:
        if status.get(cid) not in TERMINAL_STATUSES:
            r.unsettled.append(f"{cid}: open in the journal")
    if records.moved:
        r.unsettled.append("the wallet moved while it was read")
    # Positions and SOL, from the wallet's point of view, since the baseline.
    symbol_of = {mint: symbol for symbol, mint in venue.mints.items()}
    value = 0.0
    for fill in {f.fill_id: f for f in fills}.values():
        sign = 1.0 if fill.side == "buy" else -1.0
        base = fill.symbol.split("/")[0]
        base = symbol_of.get(base, base)  # "<mint>/SOL" of a sniped token: its symbol if configured
        r.positions[base] = r.positions.get(base, 0.0) + sign * fill.quantity
        value -= sign * fill.quantity * fill.price + fill.fee
    failed_fees = sum(t.fee_sol for t in records.txs if not t.ok)
    for asset in sorted(set(records.balances) | set(baseline.balances)):
        r.wallet_changes[asset] = records.balances.get(asset, 0.0) - baseline.balances.get(asset, 0.0)
    # Balances are compared only when settled: a swap landed but not yet journaled has moved them already.
    for asset in sorted(set(r.wallet_changes) | set(r.positions)) if not r.unsettled else ():
        change = r.wallet_changes.get(asset, 0.0)
        if asset == "SOL":
            expected = value - failed_fees
            if not _close(change, expected, len(fills)):
                r.balance_mismatches.append(
                    f"SOL: wallet {change:+.12f}, journal and failed txs' fees explain {expected:+.12f}"
                )
        elif not _close(change, r.positions.get(asset, 0.0), len(fills)):
            r.position_mismatches.append(
                f"{asset}: wallet {change:+.12g}, journal {r.positions.get(asset, 0.0):+.12g}"
            )
    r.settled = not r.unsettled
    broken = (
        r.duplicate_orders or r.lost_fills or r.phantom_fills or r.position_mismatches or r.balance_mismatches
    )
    r.ok = not broken
    for label in (
        "duplicate_orders",
        "lost_fills",
        "phantom_fills",
        "position_mismatches",
        "balance_mismatches",
    ):
        items = getattr(r, label)
        if items:
            r.problems.append(f"venue {name}: {label}: {'; '.join(items[:5])}")
    return r
