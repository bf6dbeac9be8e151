"""The live gateway of one EVM venue: Uniswap V2 swaps signed, journaled and placed exactly once.

Actor id ``gateway.<venue>``; the generic executor drives it through the venue contract
(:mod:`sniperbot.venues.base`): ``Order``, ``CancelOrder`` and ``VenueOrderQuery`` in, ``VenueEvents`` and
``VenueOrderReport`` out, ``VenueStatus`` on ``status.venue.<venue>``. All chain I/O runs on one worker
thread of its own (so a slow RPC never stops the actor's heartbeats, and every ledger write has one
writer); what must go out on the actor's sockets is handed back to the actor's loop.

**Orders** (issue #12 point 3). ``Order.symbol`` is ``"<base>/<quote>"`` (``"TKN/WETH"``), ``quantity`` in
base-token units (scaled by the token's ``decimals()``), market orders only (a limit or stop order is
``rejected`` / ``unsupported_order_type``):

* **buy**: spend ``getAmountsIn(quantity)`` ETH through
  ``swapExactETHForTokensSupportingFeeOnTransferTokens``, min-out ``quantity * (1 - slippage_bps)``;
* **sell**: ``swapExactTokensForETHSupportingFeeOnTransferTokens`` of ``quantity`` tokens, min-out
  ``getAmountsOut(quantity) * (1 - slippage_bps)``; if the router's allowance is short, an ``approve``
  (unlimited) goes first as its own journaled transaction with its own nonce (the swap takes the next one).

**Tokens learnt at run time** (the sniper's): a symbol whose base is itself a token address,
``"0x<40 hex>/<quote>"``, is traded like a configured one (no config can list a token that did not exist
when the node started). **A buy's limit price**: a market buy may carry ``limit_price``, the most it pays
per token; if ``getAmountsIn(quantity)`` exceeds ``quantity * limit_price`` by more than the slippage
tolerance, the order is ``rejected`` / ``price_above_limit`` before anything is signed.

The fee-on-transfer variants are used for every token: the plain ones mishandle honest taxed tokens.
The swap's deadline is the head block's timestamp + ``deadline_s``. Gas limits are fixed
(:data:`SWAP_GAS`, :data:`APPROVE_GAS`): an estimate needs the approval mined first, and a token whose
transfer needs more gas than that is not one to trade. Checked before anything is recorded: symbol,
order type, a quote from the router (``no_liquidity`` if it reverts), the wallet's balance
(``insufficient_funds``: ETH for value + gas at the fee cap, or the tokens).

**Exactly once.**

* **The gateway owns the wallet's nonces** and journals them in its own ledger
  (:mod:`sniperbot.venues.evm.txledger`, ``<run dir>/evmtx-<venue>``): a new order and the nonce(s) it
  reserves are committed in one LMDB transaction, before any signature (``next_nonce`` starts at the
  chain's pending nonce if that is ahead). An order id the ledger has is never placed again: a resent
  ``Order`` is answered ``rejected`` / ``duplicate_client_order_id`` (the executor then queries).
* **Ledger before send.** Each signed transaction (hash, nonce, raw bytes, fees, kind) is committed before
  the bytes leave through the venue's route (:mod:`sniperbot.venues.evm.routes`: ``public`` mempool, or
  ``flashbots``); an order's pending transactions (a sell's approval and swap) go to the route together,
  in nonce order. The inbox acknowledgement of the ``Order`` is held until then.
* **Every new block**, for each unfinished order: the receipts of every hash of each of its nonces; if
  none, the latest signed bytes are submitted again (identical bytes, idempotent); after
  ``replace_after_blocks`` blocks without a receipt a replacement is signed with the SAME nonce and fees
  bumped by at least ``replace_bump_pct`` (tip and max fee; never above ``max_fee_gwei``: at the cap the
  same bytes are resent), journaled, then sent; every hash of the nonce stays watched, and whichever is
  mined decides. A second swap with another nonce for the same order is never signed. The blocks are
  counted from the signature, and after a restart from the first resend of the new incarnation (the
  journaled bytes may never have left: they get their chance before a replacement is signed). A nonce the
  chain has used with none of our hashes mined (the wallet was used elsewhere) is logged
  (``nonce_consumed``) and kept watched; nothing else is signed for it.
* **Nonces are never released.** A nonce once journaled is always consumed on chain, by the swap (or
  approval), or by a 0-value self-transfer (:data:`~sniperbot.venues.evm.txledger.CANCEL`, fees bumped
  like a replacement) signed when the swap's deadline has passed with nothing mined: handing a nonce back
  could leave a gap that stalls every later transaction, or let a delayed broadcast of the old bytes land
  after the nonce went to another order. An order whose cancel is mined is ``rejected`` / ``deadline``; if
  the swap wins the race after all, it is filled as usual (the chain decides, not the clock).
* **Fills from receipts, after confirmations.** When the swap's receipt has ``confirmations`` blocks on top
  of its block: a successful receipt is one ``Fill`` (``fill_id = f"{venue}:{tx_hash}"``, ``trade_id`` the
  hash) with quantity and price from the receipt's ``Transfer`` logs (the tokens the wallet really
  received or paid, and the WETH the router paid or got), fee = gas used x effective gas price in ETH
  (an approval's gas included); then ``filled``. A reverted receipt: ``rejected`` / ``reverted``.
* **Reorgs.** The counted receipt stays watched until :data:`FINALITY_BLOCKS` blocks on top. If it is gone
  or its block hash changed after the fill was sent, the fill is reversed: a compensating ``Fill``
  (``fill_id`` + ``":reorg"``, opposite side, same quantity and price, fee 0 since fees are never negative:
  the gas stays counted, a conservative overstatement if the transaction never lands again, and a
  re-mining of the same hash is not charged twice) and ``rejected`` / ``reorged`` (the only terminal change
  the journal takes after ``filled``), both journaled in the ledger's outbox first. The transaction stays
  watched and rebroadcast: mined again, it is filled again with ``fill_id = f"{venue}:{tx_hash}:{n}"``
  (``n`` = how many of the order's fills were reversed so far) and ``filled``.
* **Outbox.** Every event for the executor is first committed in the ledger with the state change that
  caused it, sent, and removed only when the executor acknowledged it: a crash in between sends it again
  and the executor keeps fills by id and statuses once.
* **Restart** (kill -9 anywhere): nothing is trusted from memory. Before taking new orders, every unfinished
  ledger entry is looked up on chain: receipts of each recorded hash, the chain's nonce; a nonce with no
  signed transaction yet (killed between the ledger and the signature) is signed now with its recorded
  nonce and call (or a cancel if past the deadline); otherwise the identical bytes are rebroadcast or the
  replacement continues; receipts found are confirmed and reported as above.
* **Queries** are answered from the ledger (what was signed is only known here): ``known=False`` if the
  ledger has no such order (it was never signed, let alone sent), else its status (``accepted`` until the
  chain decided) and every fill, reversals included.
* **CancelOrder** is not answered: a broadcast swap cannot be recalled (a racing cancel transaction would be
  a second bet on the same nonce); the deadline bounds every swap.

**Fault injection** (tests only; never set by the product): the environment variable
``SNIPERBOT_FAULT_EVM`` = ``after_sign`` | ``after_journal`` | ``after_broadcast`` | ``after_receipt``,
read once at construction, makes the gateway's process SIGKILL itself at that step (after the first
signature, before it is journaled; after it is journaled, before it is sent; after it was sent; after a
receipt was journaled, before the fill), so tests can prove the restart rules above.

**Status**: :class:`~sniperbot.messages.venue.VenueStatus` every second and on change: ``connection``
(``connecting`` until the RPC first answers, ``ok``, ``down`` after 3 failed calls in a row or a wrong
``eth_chainId``), ``reconciled`` (once a full pass over the unfinished orders and the balances completed
since the start and since the RPC was last down), ``balances`` (the wallet's ETH and each configured token),
``open_orders``. Orders wait (their acknowledgement held) until the gateway is reconciled.

**Secrets**: the wallet key comes only from ``ActorLaunch.credentials`` (field ``private_key``), is
turned into a signing account once and never logged, journaled or put in an error (errors are logged by
class and a short message from the node, which never holds the key). Flashbots: the relay's reputation key
is the entry's ``relay_private_key`` field if present, else a fresh random key per process (it holds no
funds).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any, Literal

from eth_account import Account
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.exceptions import TransactionNotFound

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import Fill, Order, OrderUpdate, update_of
from sniperbot.venues.base import DUPLICATE, UNSUPPORTED_ORDER_TYPE
from sniperbot.venues.dex.units import to_units
from sniperbot.venues.dex.worker import GatewayWorker
from sniperbot.venues.dex.worker import short_error as _error
from sniperbot.venues.evm.routes import PublicRoute, RouteRejected
from sniperbot.venues.evm.txledger import (
    APPROVE,
    CANCEL,
    SWAP,
    Intent,
    Mined,
    SignedTx,
    Slot,
    TxLedger,
)

FAULT_ENV = "SNIPERBOT_FAULT_EVM"
FAULT_POINTS = ("after_sign", "after_journal", "after_broadcast", "after_receipt")
SWAP_GAS = 350_000
APPROVE_GAS = 100_000
CANCEL_GAS = 21_000
DUST_DIVISOR = 10**9  # a sell at most 1e-9 above the wallet's balance sells the balance (float dust)
FINALITY_BLOCKS = 64  # a counted receipt is watched for reorgs this deep (two epochs on Ethereum)
REORGED = "reorged"
DEADLINE = "deadline"
REVERTED = "reverted"
_MAX_UINT = 2**256 - 1
_TRANSFER = bytes.fromhex("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")

_ERC20_ABI: list[dict[str, Any]] = [
    {"name": "decimals", "type": "function", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
    {"name": "balanceOf", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
    {"name": "allowance", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"name": "approve", "type": "function", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
]  # fmt: skip
_ADDRS = {"name": "path", "type": "address[]"}
_ROUTER_ABI: list[dict[str, Any]] = [
    {"name": "getAmountsIn", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "amountOut", "type": "uint256"}, _ADDRS],
     "outputs": [{"name": "amounts", "type": "uint256[]"}]},
    {"name": "getAmountsOut", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "amountIn", "type": "uint256"}, _ADDRS],
     "outputs": [{"name": "amounts", "type": "uint256[]"}]},
    {"name": "swapExactETHForTokensSupportingFeeOnTransferTokens", "type": "function",
     "stateMutability": "payable",
     "inputs": [{"name": "amountOutMin", "type": "uint256"}, _ADDRS, {"name": "to", "type": "address"},
                {"name": "deadline", "type": "uint256"}], "outputs": []},
    {"name": "swapExactTokensForETHSupportingFeeOnTransferTokens", "type": "function",
     "stateMutability": "nonpayable",
     "inputs": [{"name": "amountIn", "type": "uint256"}, {"name": "amountOutMin", "type": "uint256"}, _ADDRS,
                {"name": "to", "type": "address"}, {"name": "deadline", "type": "uint256"}], "outputs": []},
]  # fmt: skip

Event = OrderUpdate | Fill


def fill_id(venue: str, tx_hash: str, generation: int = 0) -> str:
    """The one home of an EVM fill id: the swap's hash (``:n`` after ``n`` reorgs reversed earlier fills)."""
    return f"{venue}:{tx_hash}" if generation == 0 else f"{venue}:{tx_hash}:{generation}"


def reversal_id(original_fill_id: str) -> str:
    """The fill id of the compensating fill that reverses ``original_fill_id`` after a reorg."""
    return f"{original_fill_id}:reorg"


def _hex(value: Any) -> str:
    """0x-prefixed hex of web3's bytes (``HexBytes.hex()`` has no prefix since web3 7)."""
    text = value.hex() if hasattr(value, "hex") else str(value)
    return text if text.startswith("0x") else "0x" + text


class EvmGateway(GatewayWorker, Actor):
    """Signs, journals and places Uniswap V2 swaps once on one EVM chain; see the module docstring."""

    inbox = True
    cancel_note = "cancel not possible on chain; the swap's deadline bounds it"

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        chain_id: int,
        rpc_url: str,
        router: str,
        tokens: dict[str, str],
        quote: str,
        symbols: list[str],
        route: str = "public",
        relay_url: str = "",
        slippage_bps: int,
        deadline_s: float,
        confirmations: int,
        max_fee_gwei: float,
        priority_fee_gwei: float,
        replace_after_blocks: int,
        replace_bump_pct: float,
        poll_s: float = 0.25,
        durability: Literal["fsync", "process"] = "fsync",
        executor: str = "",
    ) -> None:
        super().__init__(ctx)
        if quote not in tokens:
            raise ValueError(f"gateway.{venue}: quote = {quote!r} is not in tokens")
        for sym in symbols:
            base, _, q = sym.partition("/")
            if q != quote or base not in tokens:
                raise ValueError(f"gateway.{venue}: symbol {sym!r} is not <token>/{quote} of listed tokens")
        if route not in ("public", "flashbots"):
            raise ValueError(f"gateway.{venue}: route = {route!r} (public or flashbots)")
        self.venue = venue
        self.chain_id = chain_id
        self.rpc_url = rpc_url
        self.router = to_checksum_address(router)
        self.tokens = {s: to_checksum_address(a) for s, a in tokens.items()}
        self.quote = quote
        self.symbols = list(symbols)
        self.route_name = route
        self.relay_url = relay_url
        self.slippage_bps = int(slippage_bps)
        self.deadline_s = float(deadline_s)
        self.confirmations = max(0, int(confirmations))
        self.max_fee = int(max_fee_gwei * 1e9)
        self.priority_fee = int(priority_fee_gwei * 1e9)
        self.replace_after_blocks = max(1, int(replace_after_blocks))
        self.bump = 1.0 + replace_bump_pct / 100.0
        self.poll_s = poll_s
        self.durability = durability
        self.executor = executor or f"executor.{venue}"
        fault = os.environ.get(FAULT_ENV, "")
        if fault and fault not in FAULT_POINTS:
            raise ValueError(f"{FAULT_ENV}={fault!r}: one of {', '.join(FAULT_POINTS)}")
        self._fault = fault
        self._init_worker()  # jobs, hand-over, stop event, the status fields (under _lock)
        self._active: set[str] = set()  # intents not done (worker thread only)
        self._last_head = -1
        # tx hash -> head block when this incarnation first had it in hand: a restart resends the journaled
        # bytes and gives them replace_after_blocks blocks before replacing (they may never have left).
        self._resent_from: dict[str, int] = {}
        self._decimals: dict[str, int] = {}
        self._account: Any = None
        self.wallet = ""
        self._route: Any = None

    # -- lifecycle (actor thread) ----------------------------------------------------------------
    def on_start(self) -> None:
        """Open the ledger, unseal the wallet, start the chain worker and the status timer."""
        self.ledger = TxLedger.open(self.ctx.run_dir, self.venue, self.durability)
        self._active = {i.order.client_order_id for i in self.ledger.intents() if not i.done}
        self._setup_wallet(self.ctx.credentials)
        self.w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 10}))
        self.router_c = self.w3.eth.contract(address=self.router, abi=_ROUTER_ABI)
        self._route = self._make_route()
        self._begin(self._serve, f"gateway-evm-{self.venue}", "evm")

    def _setup_wallet(self, sealed: bytes) -> None:
        self._relay_key = ""
        creds = self._unseal(sealed, "private_key")
        if creds is None:
            return
        try:
            self._account = Account.from_key(creds["private_key"].reveal())
        except Exception:
            # never the library's message: it may quote the value
            raise ValueError(
                f"gateway.{self.venue}: keystore entry {creds.name!r}: private_key is not a key"
            ) from None
        if "relay_private_key" in creds.field_names:
            self._relay_key = creds["relay_private_key"].reveal()
        del creds
        self.wallet = self._account.address

    def _make_route(self) -> Any:
        if self.route_name == "public":
            return PublicRoute(self.w3)
        from sniperbot.venues.evm.flashbots import FlashbotsRoute  # another module's; loaded only when used

        auth = self._relay_key or _hex(Account.create().key)  # the reputation key holds no funds
        return FlashbotsRoute(self.w3, self.relay_url, auth, self.replace_after_blocks)

    # -- orders ----------------------------------------------------------------------------------
    def _order(self, order: Order, sender: str, release: Callable[[], None]) -> None:
        cid = order.client_order_id
        if self.ledger.intent(cid) is not None:
            self.ctx.log.warning(
                "order already in the ledger; refused as a duplicate",
                extra={"event": "duplicate_order", "client_order_id": cid},
            )
            self._reply(sender, [update_of(order, "rejected", DUPLICATE)], release)
            return
        refusal = self._check(order)
        if refusal is not None:
            self.ctx.log.warning(
                "order refused before signing",
                extra={"event": "order_refused", "client_order_id": cid, "reason": refusal},
            )
            self._reply(sender, [update_of(order, "rejected", refusal)], release)
            return
        intent = self._build(order)
        if isinstance(intent, str):
            self._reply(sender, [update_of(order, "rejected", intent)], release)
            return
        chain_nonce = self.w3.eth.get_transaction_count(self.wallet, "pending")
        intent = self.ledger.create(intent, chain_nonce)  # order and nonces durable before any signature
        self._active.add(cid)
        head = self.w3.eth.get_block("latest")
        number, base_fee = int(head["number"]), int(head.get("baseFeePerGas", 0))
        records = [self._sign(intent, slot, slot.kind, number, base_fee) for slot in intent.slots]
        self._submit(intent, [r for r in records if r is not None], number)
        swap = intent.slots[-1]
        accepted = update_of(order, "accepted", exchange_order_id=swap.txs[-1].tx_hash if swap.txs else "")
        self.ctx.log.info(
            "swap signed, journaled and sent",
            extra={"event": "swap_sent", "client_order_id": cid, "nonce": swap.nonce,
                   "tx_hash": accepted.exchange_order_id},
        )  # fmt: skip
        self._reply(sender, [accepted], release)

    def _check(self, order: Order) -> str | None:
        if self._account is None:
            return "no_wallet"
        if self.token_of(order.symbol) is None:
            return "unknown_symbol"
        if order.order_type != "market":
            return UNSUPPORTED_ORDER_TYPE
        return None

    def token_of(self, symbol: str) -> str | None:
        """The base token's address of ``symbol``, or None if this gateway does not trade it.

        A configured symbol (``"TKN/WETH"``), or one whose base *is* a token address against the venue's
        quote (``"0x<40 hex>/WETH"``): a token learnt at run time (the sniper's), which no config lists.
        """
        base, _, quote = symbol.partition("/")
        if symbol in self.symbols:
            return self.tokens[base]
        if quote == self.quote and is_address(base) and base.startswith("0x"):
            return to_checksum_address(base)
        return None

    def _token(self, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=_ERC20_ABI)

    def decimals(self, address: str) -> int:
        """A token's ``decimals()`` (cached)."""
        if address not in self._decimals:
            self._decimals[address] = int(self._token(address).functions.decimals().call())
        return self._decimals[address]

    def _build(self, order: Order) -> Intent | str:
        """The intent (calls to sign, one per nonce) of an order, or the reason it is refused."""
        token, weth = self.token_of(order.symbol), self.tokens[self.quote]
        assert token is not None  # checked by _check
        dec = self.decimals(token)
        amount = to_units(order.quantity, dec)
        if amount <= 0:
            return "amount_below_precision"
        head = self.w3.eth.get_block("latest")
        deadline = int(head["timestamp"] + self.deadline_s)
        keep = 10_000 - self.slippage_bps
        slots: list[Slot] = []
        try:
            if order.side == "buy":
                path = [weth, token]
                amount_in = int(self.router_c.functions.getAmountsIn(amount, path).call()[0])
            else:
                path = [token, weth]
                amount_out = int(self.router_c.functions.getAmountsOut(amount, path).call()[-1])
        except Exception as e:
            if "revert" in str(e).lower():
                return "no_liquidity"
            raise
        if order.side == "buy" and order.limit_price is not None:
            # A market buy may carry the most it pays per token (the sniper's): a pool that moved
            # further than the slippage tolerance since that price was set is not bought.
            most = int(order.limit_price * order.quantity * 10 ** self.decimals(weth))
            if amount_in > most * (10_000 + self.slippage_bps) // 10_000:
                return "price_above_limit"
        if order.side == "buy":
            eth = self.w3.eth.get_balance(self.wallet)
            if eth < amount_in + SWAP_GAS * self.max_fee:
                return "insufficient_funds"
            data = self.router_c.encode_abi(
                "swapExactETHForTokensSupportingFeeOnTransferTokens",
                args=[amount * keep // 10_000, path, self.wallet, deadline],
            )
            slots.append(Slot(-1, SWAP, self.router, amount_in, data, SWAP_GAS))
        else:
            erc = self._token(token)
            balance = int(erc.functions.balanceOf(self.wallet).call())
            if balance < amount:
                # A position summed from float fills can exceed the wallet by float dust (1e-16 relative):
                # selling "everything" then means the whole balance, not a refusal that strands it.
                if amount - balance > amount // DUST_DIVISOR:
                    return "insufficient_funds"
                amount = balance
            if int(erc.functions.allowance(self.wallet, self.router).call()) < amount:
                data = erc.encode_abi("approve", args=[self.router, _MAX_UINT])
                slots.append(Slot(-1, APPROVE, token, 0, data, APPROVE_GAS))
            data = self.router_c.encode_abi(
                "swapExactTokensForETHSupportingFeeOnTransferTokens",
                args=[amount, amount_out * keep // 10_000, path, self.wallet, deadline],
            )
            slots.append(Slot(-1, SWAP, self.router, 0, data, SWAP_GAS))
        return Intent(order=order, slots=slots, deadline_ts=deadline, token=token, decimals=dec)

    # -- signing and sending ---------------------------------------------------------------------
    def _fees(self, slot: Slot, base_fee: int) -> tuple[int, int] | None:
        """(max fee, tip) for the next signature of ``slot``; None if a replacement cannot be bumped."""
        if not slot.txs:
            max_fee = min(self.max_fee, 2 * base_fee + self.priority_fee)
            return max_fee, min(self.priority_fee, max_fee)
        last = slot.txs[-1]
        tip = math.ceil(last.priority_fee * self.bump) or 1
        need = math.ceil(last.max_fee * self.bump)
        max_fee = min(self.max_fee, max(need, 2 * base_fee + tip))
        if max_fee < need or tip > max_fee:
            return None  # at the cap: nodes refuse a smaller bump, so the same bytes are resent
        return max_fee, tip

    def _sign(self, intent: Intent, slot: Slot, kind: str, head: int, base_fee: int) -> SignedTx | None:
        """Sign ``kind`` for the slot's nonce and journal it (not sent); None if the fee cap forbids it."""
        fees = self._fees(slot, base_fee)
        if fees is None:
            return None
        max_fee, tip = fees
        call = (
            {"to": self.wallet, "value": 0, "data": "0x", "gas": CANCEL_GAS}
            if kind == CANCEL
            else {"to": slot.to, "value": slot.value, "data": slot.data, "gas": slot.gas}
        )
        tx = {**call, "nonce": slot.nonce, "chainId": self.chain_id, "type": 2,
              "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}  # fmt: skip
        signed = self._account.sign_transaction(tx)
        self._die_at("after_sign")
        record = SignedTx(_hex(signed.hash), bytes(signed.raw_transaction), max_fee, tip, kind, head)
        self._resent_from[record.tx_hash] = head
        slot.txs.append(record)
        self.ledger.put(intent)
        self._die_at("after_journal")
        if len(slot.txs) > 1:
            self.ctx.log.warning(
                "transaction replaced with the same nonce",
                extra={"event": "tx_replaced", "client_order_id": intent.order.client_order_id,
                       "nonce": slot.nonce, "kind": kind, "tx_hash": record.tx_hash,
                       "max_fee_gwei": max_fee / 1e9, "signatures": len(slot.txs)},
            )  # fmt: skip
        return record

    def _submit(self, intent: Intent, records: list[SignedTx], head: int) -> None:
        """Send an intent's pending transactions together, in nonce order (a bundle carries the approval and
        the swap at once); a failure is logged: everything is journaled and resent on the next block."""
        if not records:
            return
        try:
            self._route.submit([r.raw for r in records], head)
        except RouteRejected as e:
            self.ctx.log.warning(
                "route refused the transaction; resent next block",
                extra={"event": "route_rejected", "client_order_id": intent.order.client_order_id,
                       "tx_hash": records[-1].tx_hash, "reason": e.reason},
            )  # fmt: skip
        except Exception as e:  # not delivered: resent on the next block (it is journaled)
            self.ctx.log.warning(
                "broadcast failed; resent next block",
                extra={"event": "broadcast_failed", "client_order_id": intent.order.client_order_id,
                       "tx_hash": records[-1].tx_hash, "error": _error(e)},
            )  # fmt: skip
        self._die_at("after_broadcast")

    # -- every block -----------------------------------------------------------------------------
    def _tick(self) -> None:
        head = self.w3.eth.get_block("latest")
        if not self.reconciled and int(self.w3.eth.chain_id) != self.chain_id:
            raise RuntimeError(f"eth_chainId is not {self.chain_id}")
        self._note_ok()
        number = int(head["number"])
        new_block = number != self._last_head
        chain_nonce = int(self.w3.eth.get_transaction_count(self.wallet, "latest")) if self._account else 0
        open_count = 0
        for cid in sorted(self._active):
            intent = self.ledger.intent(cid)
            if intent is None:
                continue
            self._watch(intent, head, new_block, chain_nonce)
            self._send_outbox(intent)
            if intent.done and not intent.outbox:
                self._active.discard(cid)
            if intent.status == "accepted":
                open_count += 1
        self._last_head = number
        self._reconciled(open_count)

    def _read_balances(self) -> None:
        if self._account is None:
            return
        balances = {"ETH": self.w3.eth.get_balance(self.wallet) / 1e18}
        for sym, address in self.tokens.items():
            raw = int(self._token(address).functions.balanceOf(self.wallet).call())
            balances[sym] = raw / 10 ** self.decimals(address)
        with self._lock:
            self.balances = balances
        self._last_balances = time.monotonic()

    def _receipt(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            return dict(self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def _watch(self, intent: Intent, head: Any, new_block: bool, chain_nonce: int) -> None:
        """One look at an unfinished intent: receipts, reorgs, resends, replacements, the outcome."""
        number = int(head["number"])
        cid = intent.order.client_order_id
        receipts: dict[str, dict[str, Any]] = {}
        for slot in intent.slots:
            found: Mined | None = None
            for tx in slot.txs:
                r = self._receipt(tx.tx_hash)
                if r is not None and r.get("blockNumber") is not None:
                    found = Mined(tx.tx_hash, int(r["blockNumber"]), _hex(r["blockHash"]), int(r["status"]))
                    receipts[tx.tx_hash] = r
                    break
            if found != slot.mined:
                if slot.mined is not None:
                    self.ctx.log.warning(
                        "receipt gone or moved: chain reorganised",
                        extra={"event": "reorg", "client_order_id": cid, "tx_hash": slot.mined.tx_hash,
                               "block": slot.mined.block_number},
                    )  # fmt: skip
                slot.mined = found
                if (
                    intent.counted is not None
                    and (found is None or found != intent.counted)
                    and (intent.counted.tx_hash in {t.tx_hash for t in slot.txs})
                ):
                    self._reverse(intent)
                self.ledger.put(intent)
                if found is not None:
                    self._die_at("after_receipt")
        due: list[SignedTx] = []
        signed = False
        for slot in intent.slots:
            if slot.mined is None and not intent.done:
                record, new = self._next_tx(intent, slot, head, new_block, chain_nonce)
                if record is not None:
                    due.append(record)
                    signed = signed or new
        if due and (new_block or signed):
            self._submit(intent, due, number)
        swap = intent.slots[-1]
        mined = swap.mined
        if mined is not None and intent.counted is None and number >= mined.block_number + self.confirmations:
            self._count(intent, receipts.get(mined.tx_hash) or self._receipt(mined.tx_hash))
        counted = intent.counted
        if counted is not None and not intent.done and number >= counted.block_number + FINALITY_BLOCKS:
            intent.done = True
            self.ledger.put(intent)

    def _next_tx(
        self, intent: Intent, slot: Slot, head: Any, new_block: bool, chain_nonce: int
    ) -> tuple[SignedTx | None, bool]:
        """A nonce without a receipt: what to send now (signed first time, resent, replaced, or a cancel past
        the deadline), and whether it is a new signature."""
        number, base_fee, ts = int(head["number"]), int(head.get("baseFeePerGas", 0)), int(head["timestamp"])
        if not slot.txs:
            kind = CANCEL if ts > intent.deadline_ts else slot.kind
            return self._sign(intent, slot, kind, number, base_fee), True
        if not new_block:
            return None, False
        if chain_nonce > slot.nonce:
            # The nonce is used but none of our hashes has a receipt (a race with the block, or the wallet
            # was used elsewhere): look again next block, never sign anything else for it.
            self.ctx.log.warning(
                "nonce consumed without a receipt of ours",
                extra={"event": "nonce_consumed", "client_order_id": intent.order.client_order_id,
                       "nonce": slot.nonce},
            )  # fmt: skip
            return None, False
        last = slot.txs[-1]
        if ts > intent.deadline_ts and last.kind != CANCEL:
            kind = CANCEL  # past the deadline: consume the nonce with a 0-value self-transfer
        elif number - max(last.signed_block, self._resent_from.setdefault(last.tx_hash, number)) >= (
            self.replace_after_blocks
        ):
            kind = last.kind  # stuck: the same call, same nonce, fees bumped
        else:
            kind = ""
        record = self._sign(intent, slot, kind, number, base_fee) if kind else None
        if record is not None:
            return record, True
        return last, False  # the identical bytes again (idempotent)

    def _count(self, intent: Intent, receipt: dict[str, Any] | None) -> None:
        """The swap's receipt is confirmed: its fill (or rejection) into the outbox."""
        swap = intent.slots[-1]
        mined = swap.mined
        if receipt is None or mined is None:
            return
        order = intent.order
        kind = next(t.kind for t in swap.txs if t.tx_hash == mined.tx_hash)
        events: list[Event] = []
        if kind == CANCEL or mined.status != 1:
            reason = DEADLINE if kind == CANCEL else REVERTED
            if intent.status != "rejected":
                events.append(update_of(order, "rejected", reason))
                intent.status, intent.reason = "rejected", reason
        else:
            fill = self._fill(intent, receipt, mined.tx_hash)
            intent.fills.append(fill)
            events += [fill, update_of(order, "filled", "", mined.tx_hash)]
            intent.status, intent.reason = "filled", ""
        intent.counted = mined
        intent.outbox += events
        self.ledger.put(intent)
        self.ctx.log.info(
            "swap outcome confirmed",
            extra={"event": "swap_confirmed", "client_order_id": order.client_order_id,
                   "status": intent.status, "reason": intent.reason, "tx_hash": mined.tx_hash,
                   "block": mined.block_number},
        )  # fmt: skip

    def _fill(self, intent: Intent, receipt: dict[str, Any], tx_hash: str) -> Fill:
        """Quantity and price from the receipt's Transfer logs; fee from the gas of the intent's receipts."""
        order = intent.order
        wallet, router = self.wallet.lower(), self.router.lower()
        token, weth = intent.token.lower(), self.tokens[self.quote].lower()
        qty = paid = 0
        for log in receipt.get("logs", []):
            topics = log["topics"]
            if len(topics) != 3 or bytes(topics[0]) != _TRANSFER:
                continue
            src, dst = "0x" + bytes(topics[1])[-20:].hex(), "0x" + bytes(topics[2])[-20:].hex()
            amount = int.from_bytes(bytes(log["data"])[:32], "big")
            address = str(log["address"]).lower()
            if address == token and (dst == wallet if order.side == "buy" else src == wallet):
                qty += amount
            elif address == weth and (src == router if order.side == "buy" else dst == router):
                paid += amount
        quantity = qty / 10**intent.decimals
        price = (paid / 1e18) / quantity if quantity > 0 else 0.0
        fee = 0
        for slot in intent.slots:
            m = slot.mined
            if m is None or m.tx_hash in intent.fee_counted:
                continue
            r = receipt if m.tx_hash == tx_hash else self._receipt(m.tx_hash)
            if r is not None:
                fee += int(r["gasUsed"]) * int(r["effectiveGasPrice"])
                intent.fee_counted.append(m.tx_hash)
        return Fill(
            fill_id=fill_id(self.venue, tx_hash, intent.generation),
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            venue=self.venue,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            fee=fee / 1e18,
            ts_ns=time.time_ns(),
            trade_id=tx_hash,
        )

    def _reverse(self, intent: Intent) -> None:
        """The counted receipt is gone (reorg): reverse its fill, watch the transaction again."""
        counted = intent.counted
        intent.counted = None
        if intent.status != "filled" or not intent.fills:
            return  # a rejection's receipt moved: the nonce is watched again; nothing was filled
        original = intent.fills[-1]
        reversal = Fill(
            fill_id=reversal_id(original.fill_id),
            client_order_id=original.client_order_id,
            strategy_id=original.strategy_id,
            venue=self.venue,
            symbol=original.symbol,
            side="sell" if original.side == "buy" else "buy",
            quantity=original.quantity,
            price=original.price,
            fee=0.0,
            ts_ns=time.time_ns(),
            trade_id=original.trade_id,
        )
        intent.fills.append(reversal)
        intent.generation += 1
        intent.status, intent.reason = "rejected", REORGED
        update = update_of(intent.order, "rejected", REORGED, counted.tx_hash if counted else "")
        intent.outbox += [reversal, update]
        self.ctx.log.warning(
            "fill reversed: its receipt was reorganised away",
            extra={"event": "fill_reversed", "client_order_id": original.client_order_id,
                   "fill_id": original.fill_id},
        )  # fmt: skip

    # -- to the executor -------------------------------------------------------------------------
    def _exchange_order_id(self, intent: Intent) -> str:
        """The hash of the intent's mined swap, else of its last sent one."""
        swap = intent.slots[-1]
        return swap.mined.tx_hash if swap.mined else (swap.txs[-1].tx_hash if swap.txs else "")
