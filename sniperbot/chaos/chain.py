"""Money invariants against the chain: the journal of an EVM venue checked against what the wallet did.

The third witness of an on-chain venue (after the journal and the gateway's transaction ledger) is the
chain itself. :class:`ChainReader` reads, over the venue's own RPC, every transaction the wallet sent
since the session's baseline block (their receipts: status, gas, block), and the wallet's balances of
ETH and of every configured token then and now; :func:`check_chain` compares them with the journal.
Nothing here is specific to anvil: any JSON-RPC node that serves blocks with full transactions and
historical ``balanceOf`` (an archive node, or a recent enough window) can be checked.

The checks (each a list of offending ids; ``ok`` is False if any is non-empty):

* ``duplicate_orders``: one client order id with two different swap transactions mined successfully
  (an intent executed twice), or a fill id journaled twice.
* ``lost_fills``: a successful swap of the wallet to the router, with the venue's confirmations on top,
  that the journal has no (net) fill for. The gateway's fill id is ``<venue>:<tx hash>[:<n>]``; a
  reversal (``...:reorg``) cancels one fill of the same hash.
* ``phantom_fills``: a journaled (net) fill whose transaction has no successful receipt on chain.
* ``position_mismatches``: per token, the wallet's balance change since the baseline against the net
  quantity of the journal's fills on that token (both in token units, from the wallet's point of view).
* ``balance_mismatches``: ETH: the wallet's change against what the journal's fills explain (sells' value
  minus buys' value) minus the gas of every transaction the wallet sent (swaps, approvals, the
  self-transfers that consume a nonce after a deadline): the chain's gas, since fills charge a
  reversal's gas once only.

Not failures but not settled (a check is retried until settled): an order the journal still has open,
or a successful swap with fewer than ``confirmations`` blocks on top.

**Decision:** a chaos session on a chain uses a dedicated wallet: any other transaction from it, or a
transfer into it, shows as a position or balance mismatch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgspec
from eth_utils import to_checksum_address
from web3 import Web3

from sniperbot.journal import TERMINAL_STATUSES
from sniperbot.messages import Fill, Order, OrderUpdate

_REL = 1e-9  # wei -> float conversions: the journal's floats carry ~16 significant digits
_ERC20_BALANCE = [
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "name": "decimals",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
]


class ChainVenue(msgspec.Struct, frozen=True, kw_only=True):
    """What the checker needs of a ``[[venues]]`` entry with ``kind = "evm"`` and ``mode = "live"``."""

    name: str
    rpc_url: str
    router: str
    quote: str
    tokens: dict[str, str]  # symbol -> address
    confirmations: int
    wallet: str  # the wallet's address (never its key)


class ChainBaseline(msgspec.Struct, kw_only=True):
    """The wallet when the session started: the block, its nonce and balances (token units, ETH)."""

    venue: str
    block: int
    nonce: int
    balances: dict[str, float]  # symbol -> balance; "ETH" for the native coin


class WalletTx(msgspec.Struct, frozen=True, kw_only=True):
    """One transaction the wallet sent, as mined."""

    hash: str
    nonce: int
    to: str
    block: int
    ok: bool
    gas_eth: float


class ChainRecords(msgspec.Struct, kw_only=True):
    """One read of the chain: the wallet's mined transactions since the baseline and its balances now."""

    venue: str
    head: int
    txs: list[WalletTx]
    balances: dict[str, float]


class ChainReport(msgspec.Struct, kw_only=True):
    """The outcome of one venue's check against the chain; ``ok`` is False if an invariant broke."""

    ok: bool
    settled: bool
    venue: str
    orders_journaled: int
    swaps_on_chain: int
    fills_journaled: int
    wallet_txs: int
    duplicate_orders: list[str]
    lost_fills: list[str]
    phantom_fills: list[str]
    position_mismatches: list[str]
    balance_mismatches: list[str]
    unsettled: list[str]
    positions: dict[str, float]
    wallet_changes: dict[str, float]
    problems: list[str]


def chain_venues(config: Any, credentials: dict[str, Any]) -> list[ChainVenue]:
    """The live evm venues of a node config, each with its wallet's address (from the unlocked key)."""
    from eth_account import Account

    from sniperbot.venues.evm.config import EvmVenueConfig

    out: list[ChainVenue] = []
    for venue in getattr(config, "venues", None) or ():
        if not isinstance(venue, EvmVenueConfig) or venue.mode != "live":
            continue
        entry = credentials.get(venue.wallet)
        if entry is None:
            continue
        address = Account.from_key(entry["private_key"].reveal()).address
        out.append(
            ChainVenue(
                name=venue.name,
                rpc_url=venue.rpc_url,
                router=to_checksum_address(venue.router),
                quote=venue.quote,
                tokens={s: to_checksum_address(a) for s, a in venue.tokens.items()},
                confirmations=venue.confirmations,
                wallet=address,
            )
        )
    return out


class ChainReader:
    """Reads a venue's wallet from the chain over its RPC."""

    def __init__(self, venue: ChainVenue, w3: Web3 | None = None) -> None:
        self.venue = venue
        self.w3 = w3 or Web3(Web3.HTTPProvider(venue.rpc_url, request_kwargs={"timeout": 30}))
        self._decimals: dict[str, int] = {}

    def _token(self, address: str) -> Any:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=_ERC20_BALANCE)

    def _balances(self, block: int | str) -> dict[str, float]:
        wallet = self.venue.wallet
        out = {"ETH": self.w3.eth.get_balance(wallet, block_identifier=block) / 1e18}
        for symbol, address in self.venue.tokens.items():
            if symbol == self.venue.quote:
                continue  # the quote is wrapped ETH: the wallet pays and is paid in ETH
            token = self._token(address)
            if address not in self._decimals:
                self._decimals[address] = int(token.functions.decimals().call())
            raw = token.functions.balanceOf(wallet).call(block_identifier=block)
            out[symbol] = raw / 10 ** self._decimals[address]
        return out

    def baseline(self) -> ChainBaseline:
        """The wallet now: the session's starting point."""
        block = self.w3.eth.block_number
        return ChainBaseline(
            venue=self.venue.name,
            block=block,
            nonce=self.w3.eth.get_transaction_count(self.venue.wallet, block),
            balances=self._balances(block),
        )

    def fetch(self, baseline: ChainBaseline) -> ChainRecords:
        """The wallet's transactions mined after the baseline block, and its balances at the same head."""
        head = self.w3.eth.block_number
        wallet = self.venue.wallet.lower()
        txs: list[WalletTx] = []
        for number in range(baseline.block + 1, head + 1):
            block = self.w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                if str(tx["from"]).lower() != wallet:
                    continue
                receipt = self.w3.eth.get_transaction_receipt(tx["hash"])
                txs.append(
                    WalletTx(
                        hash="0x" + bytes(tx["hash"]).hex(),
                        nonce=int(tx["nonce"]),
                        to=str(tx.get("to") or ""),
                        block=number,
                        ok=receipt["status"] == 1,
                        gas_eth=receipt["gasUsed"] * receipt["effectiveGasPrice"] / 1e18,
                    )
                )
        return ChainRecords(venue=self.venue.name, head=head, txs=txs, balances=self._balances(head))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL, abs_tol=1e-12)


def _tx_of(fill_id: str, venue: str) -> tuple[str, bool]:
    """(transaction hash, is a reversal) of one of the gateway's fill ids."""
    rest = fill_id.removeprefix(venue + ":")
    return rest.split(":")[0].lower(), rest.endswith(":reorg")


def check_chain(
    venue: ChainVenue, journal: Iterable[Any], records: ChainRecords, baseline: ChainBaseline
) -> ChainReport:
    """The journal of ``venue`` against the chain's records since ``baseline`` (module docstring)."""
    name = venue.name
    orders: dict[str, Order] = {}
    status: dict[str, str] = {}
    fills: list[Fill] = []
    for record in journal:
        if isinstance(record, Order) and record.venue == name:
            orders[record.client_order_id] = record
        elif isinstance(record, OrderUpdate) and record.venue == name:
            status[record.client_order_id] = record.status
        elif isinstance(record, Fill) and record.venue == name:
            fills.append(record)
    r = ChainReport(
        ok=True, settled=True, venue=name, orders_journaled=len(orders), swaps_on_chain=0,
        fills_journaled=len(fills), wallet_txs=len(records.txs), duplicate_orders=[], lost_fills=[],
        phantom_fills=[], position_mismatches=[], balance_mismatches=[], unsettled=[], positions={},
        wallet_changes={}, problems=[],
    )  # fmt: skip
    seen_ids: set[str] = set()
    net: dict[str, int] = {}  # tx hash -> journaled fills minus reversals
    cids_of_tx: dict[str, set[str]] = {}
    for fill in fills:
        if fill.fill_id in seen_ids:
            r.duplicate_orders.append(f"fill {fill.fill_id} journaled twice")
        seen_ids.add(fill.fill_id)
        tx, reversal = _tx_of(fill.fill_id, name)
        net[tx] = net.get(tx, 0) + (-1 if reversal else 1)
        cids_of_tx.setdefault(tx, set()).add(fill.client_order_id)
    router = venue.router.lower()
    swaps = {t.hash.lower(): t for t in records.txs if t.ok and t.to.lower() == router}
    r.swaps_on_chain = len(swaps)
    swaps_of_cid: dict[str, set[str]] = {}
    for tx, cids in cids_of_tx.items():
        if tx in swaps:
            for cid in cids:
                swaps_of_cid.setdefault(cid, set()).add(tx)
    for cid, hashes in sorted(swaps_of_cid.items()):
        if len(hashes) > 1:
            r.duplicate_orders.append(f"{cid}: {len(hashes)} swaps mined ({', '.join(sorted(hashes))})")
    for tx, swap in sorted(swaps.items()):
        deep = records.head - swap.block >= venue.confirmations
        count = net.get(tx, 0)
        if count == 0 and deep:
            r.lost_fills.append(f"{tx} (block {swap.block}) mined, not in the journal")
        elif count == 0:
            r.unsettled.append(f"{tx}: {records.head - swap.block} of {venue.confirmations} confirmations")
        elif count > 1:
            r.duplicate_orders.append(f"{tx}: {count} fills journaled for one swap")
    for tx, count in sorted(net.items()):
        if count > 0 and tx not in swaps:
            r.phantom_fills.append(f"{tx}: journaled, no successful transaction on chain")
    for cid in orders:
        if status.get(cid) not in TERMINAL_STATUSES:
            r.unsettled.append(f"{cid}: open in the journal")
    # Positions and ETH, from the wallet's point of view, since the baseline.
    symbol_of = {f"{s}/{venue.quote}": s for s in venue.tokens}
    value = 0.0
    for fill in fills:
        _, reversal = _tx_of(fill.fill_id, name)
        sign = 1.0 if fill.side == "buy" else -1.0
        base = symbol_of.get(fill.symbol, fill.symbol.split("/")[0])
        r.positions[base] = r.positions.get(base, 0.0) + sign * fill.quantity
        value -= sign * fill.quantity * fill.price
    gas = sum(t.gas_eth for t in records.txs)
    for asset, now in records.balances.items():
        r.wallet_changes[asset] = now - baseline.balances.get(asset, 0.0)
    # Balances are compared only when settled: a swap mined but not yet confirmed has moved them already.
    for asset, change in sorted(r.wallet_changes.items()) if not r.unsettled else ():
        if asset == "ETH":
            expected = value - gas
            if not _close(change, expected):
                r.balance_mismatches.append(
                    f"ETH: wallet {change:+.18g}, journal and gas explain {expected:+.18g}"
                )
        elif not _close(change, r.positions.get(asset, 0.0)):
            r.position_mismatches.append(
                f"{asset}: wallet {change:+.18g}, journal {r.positions.get(asset, 0.0):+.18g}"
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
