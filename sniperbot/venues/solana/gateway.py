"""The live gateway of one Solana venue: swaps through a Jupiter-shaped aggregator, signed, journaled and
placed exactly once, landed through a Jito bundle (the tip in the same transaction) or plain RPC.

Actor id ``gateway.<venue>``; the generic executor drives it through the venue contract
(:mod:`sniperbot.venues.base`), like the EVM gateway (:mod:`sniperbot.venues.evm.gateway`, whose seams
this copies): ``Order`` and ``VenueOrderQuery`` in, ``VenueEvents`` and ``VenueOrderReport`` out,
``VenueStatus`` on ``status.venue.<venue>``. All chain I/O runs on one worker thread of its own, with one
asyncio loop driving the real ``solana.rpc.async_api.AsyncClient`` (solana-py 0.41 has no sync client); a
slow RPC never stops the actor's heartbeats and every ledger write has one writer.

**Orders.** ``Order.symbol`` is ``"<base>/SOL"`` with ``<base>`` a configured mint's symbol or a mint itself
(base58: a token learnt at run time, the sniper's), ``quantity`` in base tokens (scaled by the mint's
decimals), market orders only (else ``rejected`` / ``unsupported_order_type``):

* **buy** ``quantity`` = ``/swap/v1/quote?swapMode=ExactOut&amount=<raw quantity>``: the SOL in is at most
  the quote's ``otherAmountThreshold`` (``slippage_bps``). A buy's ``limit_price`` is the most it pays per
  token: a quote above it by more than the slippage is ``rejected`` / ``price_above_limit``.
* **sell** = ExactIn of the raw quantity (at least the threshold out). A sell a hair above the balance
  (float dust of summed fills) sells the balance, as on EVM.

Refused before anything is recorded: ``no_wallet``, ``unknown_symbol``, ``amount_below_precision``,
``no_route`` (the aggregator has none), ``price_above_limit``, ``insufficient_funds`` (SOL for the maximum
in + tip + fees + a token account's rent, or the tokens). Refused after the order is recorded, before
anything is signed or sent: ``price_moved`` (the pool moved past the quote's slippage before the swap
transaction was built), ``aggregator_refused``, ``bad_swap_transaction``, ``simulation_failed``.

**Exactly once** (issue #13 point 3). The path is quote -> swap transaction -> sign -> simulate -> journal
-> send -> confirm:

* **Ledger first.** The order is recorded in the gateway's ledger (:mod:`sniperbot.venues.solana.txledger`,
  ``<run dir>/soltx-<venue>``) before any quote; an order id the ledger has is never placed again (a resent
  ``Order`` is ``rejected`` / ``duplicate_client_order_id``, the executor then queries).
* **The swap transaction is checked before it is signed** (the aggregator is not trusted with the wallet):
  fee payer and first signer = the wallet, compute-unit limit <= ``compute_unit_limit``, price <=
  ``priority_fee_micro_lamports``, the Jito tip = ``tip_lamports`` (route ``jito``) or none (route ``rpc``),
  a ``lastValidBlockHeight``. The wallet signs at its index; the pool's partial signatures are kept. The
  signed transaction is simulated (signatures verified) with the wallet's accounts: a simulation error, or
  a post-state that spends more SOL (or tokens) than the quote's bound + tip + fees + rent, is
  ``rejected`` / ``simulation_failed`` / ``bad_swap_transaction`` and nothing is sent.
* **Journal before send**: the signature, ``lastValidBlockHeight`` and the exact signed bytes are committed
  before the bytes leave (:mod:`sniperbot.venues.solana.jito`: route ``jito`` = a bundle of the one
  transaction carrying its tip; ``rpc`` = ``sendTransaction``). The ``Order``'s inbox acknowledgement is held
  until then; ``accepted`` carries the signature as ``exchange_order_id``.
* **Every poll** (``poll_s``), for each unfinished order, by signature (``getSignatureStatuses``, with
  history): landed -> once at ``commitment``, the fill; not landed -> the identical bytes resent every
  ``resend_s``; not landed and the *finalized* block height (read BEFORE the status) above
  ``lastValidBlockHeight`` -> the transaction can never land: ``rejected`` / ``expired`` (a definite
  failure: the strategy decides whether to try again with a new order). **Never a second signature for an
  intent** while the first can land; the only re-signature is of an intent whose journaled state has no
  transaction at all (the process died between signing and journaling: those bytes never left).
* **Fills from the chain**: ``getTransaction`` of the landed signature, ``meta`` pre/post balances:
  quantity = the token change of the wallet's account (what it really got or paid: a Token-2022 transfer
  fee is netted), price = the SOL that went to or came from the pool (the wallet's lamport change less the
  transaction fee, the tip and the rent put into a newly created token account: a deposit, not a cost) per
  token; ``fee`` = transaction fee + tip in SOL; ``fill_id = f"{venue}:{signature}"``. A transaction landed
  with an error is ``rejected`` / ``failed`` (its fee is lost; no fill).
* **Outbox.** Every event for the executor is committed in the ledger with the state change that caused
  it, sent, removed only when acknowledged.
* **Restart** (kill -9 anywhere): before any new order, every unfinished intent is resolved by signature as
  above (the first pass of the worker); intents without a signed transaction are then placed (quote
  again), or ``rejected`` / ``not_placed`` once ``place_timeout_s`` has passed since the order was recorded
  (a snipe placed minutes late is not the trade that was decided).
* **Commitment**: a fill counts at the configured ``commitment`` (``confirmed`` by default: a supermajority
  voted; ``processed`` can still be rolled back and is not watched after the fill).
* **CancelOrder** is not answered: a sent transaction cannot be recalled; its blockhash bounds it (~60-90 s).

**Fault injection** (tests only): ``SNIPERBOT_FAULT_SOLANA`` = ``after_sign`` | ``after_journal`` |
``after_send`` | ``before_fill``, read once at construction, makes the gateway's process SIGKILL itself at
that step of a swap (signed, not journaled; journaled, not sent; sent; landed at the commitment and
journaled, before the fill).

**No fallback between routes** (decision): route ``jito`` never falls back to ``sendTransaction`` on the
public RPC when the block engine is down or rate-limits (429): a swap seen before it lands can be
sandwiched, and a second route would be a second way for the same bytes to land late. The bytes are resent
to the engine until they land or their blockhash expires (then ``rejected`` / ``expired``).

**Polling, not subscriptions**: ``ws_url`` is accepted and not used: statuses are polled every ``poll_s``
(0.1 s; a slot is ~0.4 s), one code path for the steady state and for the restart resolution; a
``signatureSubscribe`` would save at most one poll of latency on the fill, not on the send.

**Status**: ``connection`` (``connecting``, ``ok``, ``down`` after 3 failed calls in a row), ``reconciled``
(a full pass over the unfinished orders since the start / since the RPC was down), ``balances`` (SOL and each
configured mint), ``open_orders``. Orders wait until reconciled.

**Secrets**: the wallet comes only from ``ActorLaunch.credentials`` (field ``secret_key``: base58 of the 64
bytes), becomes a ``Keypair`` once and is never logged, journaled or put in an error.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed, Finalized
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token.instructions import get_associated_token_address

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import Fill, Order, OrderUpdate, update_of
from sniperbot.venues.base import DUPLICATE, UNSUPPORTED_ORDER_TYPE
from sniperbot.venues.dex.units import to_units
from sniperbot.venues.dex.worker import GatewayWorker
from sniperbot.venues.dex.worker import short_error as _error
from sniperbot.venues.solana.jito import MIN_TIP_LAMPORTS, JitoClient, JitoRoute, RouteRejected, RpcRoute
from sniperbot.venues.solana.jito import tip_lamports as tip_of
from sniperbot.venues.solana.txledger import Intent, Landed, SignedSwap, TxLedger

FAULT_ENV = "SNIPERBOT_FAULT_SOLANA"
FAULT_POINTS = ("after_sign", "after_journal", "after_send", "before_fill")
EXPIRED = "expired"
FAILED = "failed"
NOT_PLACED = "not_placed"
SIMULATION_FAILED = "simulation_failed"
BAD_SWAP_TX = "bad_swap_transaction"
COMMITMENTS = ("processed", "confirmed", "finalized")
LAMPORTS_PER_SOL = 1_000_000_000
SIGNATURE_FEE = 5_000  # lamports per signature (Solana's base fee)
TOKEN_ACCOUNT_RENT_SIZE = 300  # bytes: room for a Token-2022 account with extensions (rent allowance)
DUST_DIVISOR = 10**9  # a sell at most 1e-9 above the wallet's balance sells the balance (float dust)
_COMPUTE_BUDGET = Pubkey.from_string("ComputeBudget111111111111111111111111111111")

Event = OrderUpdate | Fill


class Refused(Exception):
    """An order refused for ``reason`` (a definite answer: nothing of it is on chain)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fill_id(venue: str, signature: str) -> str:
    """The one home of a Solana fill id: the swap transaction's signature."""
    return f"{venue}:{signature}"


def _budget(tx: VersionedTransaction) -> tuple[int | None, int]:
    """(compute-unit limit, price in micro-lamports) set by ``tx``'s compute-budget instructions."""
    msg = tx.message
    keys = list(msg.account_keys)
    limit: int | None = None
    price = 0
    for ix in msg.instructions:
        if keys[ix.program_id_index] != _COMPUTE_BUDGET:
            continue
        data = bytes(ix.data)
        if data[:1] == b"\x02" and len(data) == 5:
            limit = int.from_bytes(data[1:5], "little")
        elif data[:1] == b"\x03" and len(data) == 9:
            price = int.from_bytes(data[1:9], "little")
    return limit, price


class SolanaGateway(GatewayWorker, Actor):
    """Signs, journals and places Jupiter-shaped swaps once on one Solana cluster (module docstring)."""

    inbox = True
    cancel_note = "cancel not possible on chain; the blockhash bounds the swap"

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        rpc_url: str,
        aggregator_url: str,
        mints: dict[str, str],
        symbols: list[str],
        ws_url: str = "",
        commitment: str = "confirmed",
        quote: str = "SOL",
        route: str = "jito",
        block_engine_url: str = "",
        tip_lamports: int = 10_000,
        priority_fee_micro_lamports: int = 10_000,
        compute_unit_limit: int = 200_000,
        slippage_bps: int = 100,
        poll_s: float = 0.1,
        resend_s: float = 1.0,
        place_timeout_s: float = 30.0,
        durability: Literal["fsync", "process"] = "fsync",
        executor: str = "",
    ) -> None:
        super().__init__(ctx)
        where = f"gateway.{venue}"
        if quote not in mints:
            raise ValueError(f"{where}: quote = {quote!r} is not in mints")
        for sym in symbols:
            base, _, q = sym.partition("/")
            if q != quote or base not in mints:
                raise ValueError(f"{where}: symbol {sym!r} is not <mint>/{quote} of listed mints")
        if route not in ("jito", "rpc"):
            raise ValueError(f"{where}: route = {route!r} (jito or rpc)")
        if route == "jito" and not block_engine_url:
            raise ValueError(f"{where}: route = 'jito' needs block_engine_url")
        if route == "jito" and tip_lamports < MIN_TIP_LAMPORTS:
            raise ValueError(f"{where}: tip_lamports = {tip_lamports} is below Jito's {MIN_TIP_LAMPORTS}")
        if commitment not in COMMITMENTS:
            raise ValueError(f"{where}: commitment = {commitment!r} ({', '.join(COMMITMENTS)})")
        self.venue = venue
        self.rpc_url = rpc_url
        self.ws_url = ws_url
        self.commitment = commitment
        self.aggregator_url = aggregator_url.rstrip("/")
        self.mints = {s: Pubkey.from_string(m) for s, m in mints.items()}
        self.quote = quote
        self.symbols = list(symbols)
        self.route_name = route
        self.block_engine_url = block_engine_url
        self.tip = int(tip_lamports) if route == "jito" else 0
        self.cu_price = int(priority_fee_micro_lamports)
        self.cu_limit = int(compute_unit_limit)
        self.slippage_bps = int(slippage_bps)
        self.poll_s = poll_s
        self.resend_s = resend_s
        self.place_timeout_s = place_timeout_s
        self.durability = durability
        self.executor = executor or f"executor.{venue}"
        fault = os.environ.get(FAULT_ENV, "")
        if fault and fault not in FAULT_POINTS:
            raise ValueError(f"{FAULT_ENV}={fault!r}: one of {', '.join(FAULT_POINTS)}")
        self._fault = fault
        self._init_worker()  # jobs, hand-over, stop event, the status fields (under _lock)
        self._active: set[str] = set()  # intents not done (worker thread only)
        self._sent_at: dict[str, float] = {}  # signature -> when this incarnation last sent it
        self._mint_info: dict[Pubkey, tuple[int, Pubkey]] = {}
        self._keypair: Keypair | None = None
        self.wallet = ""
        self._route: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rpc: AsyncClient | None = None
        self._http: httpx.Client | None = None
        self._rent_allowance = 0

    # -- lifecycle (actor thread) ----------------------------------------------------------------
    def on_start(self) -> None:
        """Open the ledger, unseal the wallet, start the chain worker and the status timer."""
        self.ledger = TxLedger.open(self.ctx.run_dir, self.venue, self.durability)
        self._active = {i.order.client_order_id for i in self.ledger.intents() if not i.done}
        self._setup_wallet(self.ctx.credentials)
        self._begin(self._run, f"gateway-sol-{self.venue}", "solana")

    def _setup_wallet(self, sealed: bytes) -> None:
        creds = self._unseal(sealed, "secret_key")
        if creds is None:
            return
        try:
            self._keypair = Keypair.from_base58_string(creds["secret_key"].reveal())
        except Exception:
            # never the library's message: it may quote the value
            raise ValueError(
                f"gateway.{self.venue}: keystore entry {creds.name!r}: secret_key is not a base58 64-byte key"
            ) from None
        del creds
        self.wallet = str(self._keypair.pubkey())

    # -- the chain worker ------------------------------------------------------------------------
    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._rpc = AsyncClient(self.rpc_url, commitment=Confirmed, timeout=10)
        self._http = httpx.Client(timeout=10)
        if self.route_name == "jito":
            self._route = JitoRoute(JitoClient(self.block_engine_url, timeout_s=5))
        else:
            self._route = RpcRoute(self._rpc, self._call)
        try:
            self._serve()
        finally:
            self._call(self._rpc.close())
            self._http.close()
            if isinstance(self._route, JitoRoute):
                self._route.client.close()
            self._loop.close()

    def _call(self, coro: Awaitable[Any]) -> Any:
        """Run one solana-py coroutine on the worker's loop (worker thread only)."""
        assert self._loop is not None
        return self._loop.run_until_complete(coro)  # type: ignore[arg-type]

    # -- chain reads -----------------------------------------------------------------------------
    def mint_info(self, mint: Pubkey) -> tuple[int, Pubkey]:
        """(decimals, token program) of ``mint`` (cached); ``unknown_symbol`` if it is not a mint."""
        if mint not in self._mint_info:
            from sniperbot.venues.solana.layouts import decode_mint

            account = self._call(self._rpc_().get_account_info(mint)).value
            if account is None:
                raise Refused("unknown_symbol")
            try:
                decoded = decode_mint(bytes(account.data), account.owner)
            except ValueError:
                raise Refused("unknown_symbol") from None
            self._mint_info[mint] = (int(decoded.decimals), account.owner)
        return self._mint_info[mint]

    def _rpc_(self) -> AsyncClient:
        assert self._rpc is not None
        return self._rpc

    def _token_balance(self, mint: Pubkey, program: Pubkey) -> int:
        """The wallet's raw balance of ``mint`` (its associated token account; 0 if it has none)."""
        ata = get_associated_token_address(self._keypair.pubkey(), mint, program)  # type: ignore[union-attr]
        account = self._call(self._rpc_().get_account_info(ata)).value
        if account is None:
            return 0
        return int.from_bytes(bytes(account.data)[64:72], "little")

    def _lamports(self) -> int:
        return int(self._call(self._rpc_().get_balance(self._keypair.pubkey())).value)  # type: ignore[union-attr]

    # -- every poll ------------------------------------------------------------------------------
    def _tick(self) -> None:
        rpc = self._rpc_()
        # The finalized height is read BEFORE any status: a transaction missing from the statuses read
        # after it, with this height above its lastValidBlockHeight, can never land (module docstring).
        final_height = int(self._call(rpc.get_block_height(Finalized)).value)
        if self._rent_allowance == 0:
            self._rent_allowance = int(
                self._call(rpc.get_minimum_balance_for_rent_exemption(TOKEN_ACCOUNT_RENT_SIZE)).value
            )
        self._note_ok()
        open_count = 0
        intents = [i for i in (self.ledger.intent(c) for c in sorted(self._active)) if i is not None]
        # Every journaled transaction is resolved before anything unsigned is placed (restart rule).
        for intent in sorted(intents, key=lambda i: i.tx is None):
            cid = intent.order.client_order_id
            if not intent.done:
                if intent.tx is None:
                    self._place_again(intent)
                else:
                    self._watch(intent, final_height)
            self._send_outbox(intent)
            if intent.done and not intent.outbox:
                self._active.discard(cid)
            if intent.status == "accepted":
                open_count += 1
        self._reconciled(open_count)

    def _read_balances(self) -> None:
        if self._keypair is None:
            return
        balances = {self.quote: self._lamports() / LAMPORTS_PER_SOL}
        for sym, mint in self.mints.items():
            if sym == self.quote:
                continue
            try:
                decimals, program = self.mint_info(mint)
            except Refused:
                continue  # a configured mint that does not exist (yet): no balance to show
            balances[sym] = self._token_balance(mint, program) / 10**decimals
        with self._lock:
            self.balances = balances
        self._last_balances = time.monotonic()

    def _watch(self, intent: Intent, final_height: int) -> None:
        """One look at a sent transaction, by its signature: landed, still able to land, or expired."""
        tx = intent.tx
        assert tx is not None
        cid = intent.order.client_order_id
        status = self._call(
            self._rpc_().get_signature_statuses([Signature.from_string(tx.signature)], True)
        ).value[0]
        if status is None:
            if intent.landed is not None:
                # Seen before, gone now (a minority fork dropped it): watched again, never re-signed.
                self.ctx.log.warning(
                    "landed transaction no longer found; watching it again",
                    extra={"event": "landed_gone", "client_order_id": cid, "signature": tx.signature},
                )
                intent.landed = None
                self.ledger.put(intent)
            if final_height > tx.last_valid_block_height:
                self._finish(intent, "rejected", EXPIRED)
                self.ctx.log.warning(
                    "swap expired: its blockhash is past and it never landed",
                    extra={"event": "swap_expired", "client_order_id": cid, "signature": tx.signature,
                           "last_valid_block_height": tx.last_valid_block_height,
                           "finalized_height": final_height},
                )  # fmt: skip
                return
            if time.monotonic() - self._sent_at.get(tx.signature, 0.0) >= self.resend_s:
                self._send(intent, tx)  # the identical bytes (idempotent)
            return
        level = str(status.confirmation_status or "").split(".")[-1].lower() or "processed"
        if intent.landed is None:
            error = "" if status.err is None else str(status.err)[:200]
            intent.landed = Landed(slot=int(status.slot), ok=status.err is None, error=error)
            self.ledger.put(intent)
        if COMMITMENTS.index(level) < COMMITMENTS.index(self.commitment):
            return
        self._die_at("before_fill")
        if not intent.landed.ok:
            self._finish(intent, "rejected", FAILED)
            self.ctx.log.warning(
                "swap landed with an error",
                extra={"event": "swap_failed", "client_order_id": cid, "signature": tx.signature,
                       "error": intent.landed.error},
            )  # fmt: skip
            return
        fill = self._fill(intent)
        if fill is None:
            return  # the transaction is not served yet at this commitment: next poll
        intent.fills.append(fill)
        intent.outbox += [fill, update_of(intent.order, "filled", "", tx.signature)]
        intent.status, intent.reason, intent.done = "filled", "", True
        self.ledger.put(intent)
        self.ctx.log.info(
            "swap filled",
            extra={"event": "swap_confirmed", "client_order_id": cid, "signature": tx.signature,
                   "slot": intent.landed.slot, "quantity": fill.quantity, "price": fill.price},
        )  # fmt: skip

    def _finish(self, intent: Intent, status: str, reason: str) -> None:
        intent.status, intent.reason, intent.done = status, reason, True
        sig = intent.tx.signature if intent.tx else ""
        intent.outbox.append(update_of(intent.order, status, reason, sig))
        self.ledger.put(intent)

    def _fill(self, intent: Intent) -> Fill | None:
        """The fill of a landed swap from ``getTransaction``'s meta (module docstring)."""
        tx = intent.tx
        assert tx is not None
        commitment: Commitment = Finalized if self.commitment == "finalized" else Confirmed
        resp = self._call(
            self._rpc_().get_transaction(
                Signature.from_string(tx.signature), "json", commitment, max_supported_transaction_version=0
            )
        )
        if resp.value is None or resp.value.transaction.meta is None:
            return None
        meta = resp.value.transaction.meta
        signed = VersionedTransaction.from_bytes(tx.raw)
        keys = list(signed.message.account_keys)
        wallet = self._keypair.pubkey()  # type: ignore[union-attr]
        mint = Pubkey.from_string(intent.mint)
        _, program = self.mint_info(mint)
        ata = get_associated_token_address(wallet, mint, program)
        fee_payer = keys.index(wallet)
        lamports = meta.post_balances[fee_payer] - meta.pre_balances[fee_payer]
        rent = 0
        if ata in keys:
            i = keys.index(ata)
            rent = max(0, meta.post_balances[i] - meta.pre_balances[i])

        def tokens(balances: Any) -> int:
            for b in balances or []:
                if b.mint == mint and b.owner == wallet:
                    return int(b.ui_token_amount.amount)
            return 0

        qty_raw = abs(tokens(meta.post_token_balances) - tokens(meta.pre_token_balances))
        order = intent.order
        costs = meta.fee + tx.tip
        sol = (-lamports - costs - rent) if order.side == "buy" else (lamports + costs)
        quantity = qty_raw / 10**intent.decimals
        price = (sol / LAMPORTS_PER_SOL) / quantity if quantity > 0 else 0.0
        return Fill(
            fill_id=fill_id(self.venue, tx.signature),
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            venue=self.venue,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            fee=(meta.fee + tx.tip) / LAMPORTS_PER_SOL,
            ts_ns=time.time_ns(),
            trade_id=tx.signature,
        )

    # -- orders ----------------------------------------------------------------------------------
    def mint_of(self, symbol: str) -> Pubkey | None:
        """The base mint of ``symbol``, or None if this gateway does not trade it: a configured symbol
        (``"TKN/SOL"``) or ``"<mint base58>/SOL"`` (a token learnt at run time, the sniper's)."""
        base, _, quote = symbol.partition("/")
        if symbol in self.symbols:
            return self.mints[base]
        if quote == self.quote and 32 <= len(base) <= 44:
            try:
                return Pubkey.from_string(base)
            except ValueError:
                return None
        return None

    def _order(self, order: Order, sender: str, release: Callable[[], None]) -> None:
        cid = order.client_order_id
        if self.ledger.intent(cid) is not None:
            self.ctx.log.warning(
                "order already in the ledger; refused as a duplicate",
                extra={"event": "duplicate_order", "client_order_id": cid},
            )
            self._reply(sender, [update_of(order, "rejected", DUPLICATE)], release)
            return
        try:
            intent, quote = self._prepare(order)
        except Refused as e:
            self.ctx.log.warning(
                "order refused before signing",
                extra={"event": "order_refused", "client_order_id": cid, "reason": e.reason},
            )
            self._reply(sender, [update_of(order, "rejected", e.reason)], release)
            return
        self.ledger.create(intent)  # the order is durable before any swap transaction exists
        self._active.add(cid)
        try:
            tx = self._place(intent, quote)
        except Refused as e:
            intent.status, intent.reason, intent.done = "rejected", e.reason, True
            self.ledger.put(intent)
            self.ctx.log.warning(
                "swap refused before sending",
                extra={"event": "order_refused", "client_order_id": cid, "reason": e.reason},
            )
            self._reply(sender, [update_of(order, "rejected", e.reason)], release)
            return
        self._reply(sender, [update_of(order, "accepted", "", tx.signature)], release)

    def _place_again(self, intent: Intent) -> None:
        """An intent with no journaled transaction (the process died before it was journaled: nothing
        left): placed now, or refused once it is too late for the trade that was decided."""
        if time.time_ns() - intent.created_ns > self.place_timeout_s * 1e9:
            self._finish(intent, "rejected", NOT_PLACED)
            return
        try:
            _, quote = self._prepare(intent.order)
            tx = self._place(intent, quote)
        except Refused as e:
            self._finish(intent, "rejected", e.reason)
            return
        intent.outbox.append(update_of(intent.order, "accepted", "", tx.signature))
        self.ledger.put(intent)

    def _prepare(self, order: Order) -> tuple[Intent, dict[str, Any]]:
        """The checks before anything is recorded, and the aggregator's quote; :class:`Refused` if not."""
        if self._keypair is None:
            raise Refused("no_wallet")
        mint = self.mint_of(order.symbol)
        if mint is None:
            raise Refused("unknown_symbol")
        if order.order_type != "market":
            raise Refused(UNSUPPORTED_ORDER_TYPE)
        decimals, program = self.mint_info(mint)
        amount = to_units(order.quantity, decimals)
        if amount <= 0:
            raise Refused("amount_below_precision")
        sol = str(self.mints[self.quote])
        if order.side == "sell":
            balance = self._token_balance(mint, program)
            if balance < amount:
                # A position summed from float fills can exceed the wallet by float dust: selling
                # "everything" then means the whole balance, not a refusal that strands it.
                if amount - balance > amount // DUST_DIVISOR:
                    raise Refused("insufficient_funds")
                amount = balance
            params = {"inputMint": str(mint), "outputMint": sol, "amount": amount, "swapMode": "ExactIn"}
        else:
            params = {"inputMint": sol, "outputMint": str(mint), "amount": amount, "swapMode": "ExactOut"}
        params["slippageBps"] = self.slippage_bps
        quote = self._aggregator("GET", "/swap/v1/quote", params=params)
        if order.side == "buy":
            max_in = int(quote["otherAmountThreshold"])
            if order.limit_price is not None:
                # the most it pays per token (the sniper's): a pool that moved past it is not bought
                most = int(order.limit_price * order.quantity * LAMPORTS_PER_SOL)
                if int(quote["inAmount"]) > most * (10_000 + self.slippage_bps) // 10_000:
                    raise Refused("price_above_limit")
            need = max_in + self.tip + self._max_fees() + self._rent_allowance
            if self._lamports() < need:
                raise Refused("insufficient_funds")
        intent = Intent(order=order, mint=str(mint), decimals=decimals, created_ns=time.time_ns())
        return intent, quote

    def _max_fees(self) -> int:
        """The most a swap transaction may cost in fees besides the tip (priority + a few signatures)."""
        return self.cu_price * self.cu_limit // 1_000_000 + 4 * SIGNATURE_FEE

    def _aggregator(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One call to the swap API; a 4xx is a :class:`Refused` (``no_route`` when it has no route)."""
        assert self._http is not None
        resp = self._http.request(method, f"{self.aggregator_url}{path}", **kwargs)
        if 400 <= resp.status_code < 500:
            try:
                code = str(resp.json().get("errorCode", ""))
            except (ValueError, AttributeError):
                code = ""
            self.ctx.log.warning(
                "aggregator refused the request",
                extra={"event": "aggregator_refused", "path": path, "status": resp.status_code,
                       "error_code": code[:60]},
            )  # fmt: skip
            if "ROUTE" in code or "NOT_TRADABLE" in code:
                raise Refused("no_route")
            raise Refused("price_moved" if "SLIPPAGE" in code else "aggregator_refused")
        resp.raise_for_status()
        body = resp.json()
        if not isinstance(body, dict):
            raise ValueError(f"aggregator {path}: not a JSON object")
        return body

    def _place(self, intent: Intent, quote: dict[str, Any]) -> SignedSwap:
        """Swap transaction -> check -> sign -> simulate -> journal -> send; the journaled transaction.

        The ``swap_sent`` log line carries the time of each step (ms): the swap API, check + sign +
        simulate, journal + send (what the benches read)."""
        started = time.perf_counter()
        wallet = self._keypair.pubkey()  # type: ignore[union-attr]
        body: dict[str, Any] = {
            "quoteResponse": quote,
            "userPublicKey": str(wallet),
            "wrapAndUnwrapSol": True,
            "dynamicComputeUnitLimit": True,
            "computeUnitPriceMicroLamports": self.cu_price,
        }
        if self.tip:
            body["prioritizationFeeLamports"] = {"jitoTipLamports": self.tip}
        answer = self._aggregator("POST", "/swap/v1/swap", json=body)
        if answer.get("simulationError"):
            # the aggregator simulated it for the compute limit and it failed: it would fail on chain too
            self.ctx.log.warning(
                "the aggregator's simulation of the swap failed; not signed",
                extra={"event": "simulation_failed", "client_order_id": intent.order.client_order_id,
                       "error": str(answer["simulationError"])[:200]},
            )  # fmt: skip
            raise Refused(SIMULATION_FAILED)
        try:
            unsigned = VersionedTransaction.from_bytes(base64.b64decode(answer["swapTransaction"]))
            last_valid = int(answer["lastValidBlockHeight"])
        except (KeyError, TypeError, ValueError):
            raise Refused(BAD_SWAP_TX) from None
        built = time.perf_counter()
        self._check_tx(intent, unsigned)
        message = unsigned.message
        signatures = list(unsigned.signatures)
        signatures[0] = self._keypair.sign_message(to_bytes_versioned(message))  # type: ignore[union-attr]
        signed = VersionedTransaction.populate(message, signatures)
        self._die_at("after_sign")
        self._simulate(intent, signed, quote)
        record = SignedSwap(
            signature=str(signed.signatures[0]),
            raw=bytes(signed),
            last_valid_block_height=last_valid,
            route=self.route_name,
            tip=tip_of(signed),
            in_amount=int(quote["inAmount"]),
            out_amount=int(quote["outAmount"]),
            threshold=int(quote["otherAmountThreshold"]),
        )
        simulated = time.perf_counter()
        intent.tx = record
        self.ledger.put(intent)  # journaled before a byte leaves
        self._die_at("after_journal")
        self._send(intent, record)
        sent = time.perf_counter()
        self.ctx.log.info(
            "swap signed, journaled and sent",
            extra={"event": "swap_sent", "client_order_id": intent.order.client_order_id,
                   "signature": record.signature, "route": self.route_name,
                   "last_valid_block_height": last_valid,
                   "swap_api_ms": round((built - started) * 1e3, 3),
                   "sign_simulate_ms": round((simulated - built) * 1e3, 3),
                   "journal_send_ms": round((sent - simulated) * 1e3, 3)},
        )  # fmt: skip
        return record

    def _check_tx(self, intent: Intent, tx: VersionedTransaction) -> None:
        """What the wallet is asked to sign is what it asked for (module docstring)."""
        msg = tx.message
        keys = list(msg.account_keys)
        problem = ""
        limit, price = _budget(tx)
        if not keys or keys[0] != self._keypair.pubkey():  # type: ignore[union-attr]
            problem = "fee payer is not the wallet"
        elif limit is None or limit > self.cu_limit:
            problem = f"compute unit limit {limit} (at most {self.cu_limit})"
        elif price > self.cu_price:
            problem = f"compute unit price {price} (at most {self.cu_price})"
        elif tip_of(tx) != self.tip:
            problem = f"tip {tip_of(tx)} lamports (expected {self.tip})"
        if problem:
            self.ctx.log.warning(
                "swap transaction refused before signing",
                extra={"event": "bad_swap_transaction", "client_order_id": intent.order.client_order_id,
                       "problem": problem},
            )  # fmt: skip
            raise Refused(BAD_SWAP_TX)

    def _simulate(self, intent: Intent, tx: VersionedTransaction, quote: dict[str, Any]) -> None:
        """Simulate the signed swap; refuse it if it fails or moves more than the quote allows."""
        wallet = self._keypair.pubkey()  # type: ignore[union-attr]
        mint = Pubkey.from_string(intent.mint)
        _, program = self.mint_info(mint)
        ata = get_associated_token_address(wallet, mint, program)
        pre_sol = self._lamports()
        pre_tokens = self._token_balance(mint, program)
        sim = self._call(
            self._rpc_().simulate_transaction(tx, sig_verify=True, accounts_addresses=[wallet, ata])
        ).value
        cid = intent.order.client_order_id
        if sim.err is not None:
            self.ctx.log.warning(
                "swap simulation failed; not sent",
                extra={"event": "simulation_failed", "client_order_id": cid, "error": str(sim.err)[:200],
                       "logs": list(sim.logs or [])[-5:]},
            )  # fmt: skip
            raise Refused(SIMULATION_FAILED)
        accounts = list(sim.accounts or [])
        post_sol = accounts[0].lamports if accounts and accounts[0] is not None else pre_sol
        post_acc = accounts[1] if len(accounts) > 1 else None
        post_tokens = int.from_bytes(bytes(post_acc.data)[64:72], "little") if post_acc is not None else 0
        threshold = int(quote["otherAmountThreshold"])
        costs = self.tip + self._max_fees()
        if intent.order.side == "buy":
            ok = pre_sol - post_sol <= threshold + costs + self._rent_allowance and post_tokens > pre_tokens
        else:
            sold = pre_tokens - post_tokens
            ok = post_sol - pre_sol >= threshold - costs and sold <= int(quote["inAmount"])
        if not ok:
            self.ctx.log.warning(
                "swap simulation moves more than the quote allows; not sent",
                extra={"event": "bad_swap_transaction", "client_order_id": cid,
                       "sol_change": post_sol - pre_sol, "token_change": post_tokens - pre_tokens,
                       "threshold": threshold},
            )  # fmt: skip
            raise Refused(BAD_SWAP_TX)

    def _send(self, intent: Intent, record: SignedSwap) -> None:
        """The journaled bytes to the route; a failure is logged: they are resent on the next poll."""
        self._sent_at[record.signature] = time.monotonic()
        try:
            self._route.submit(VersionedTransaction.from_bytes(record.raw))
        except RouteRejected as e:
            self.ctx.log.warning(
                "route refused the transaction; resent later",
                extra={"event": "route_rejected", "client_order_id": intent.order.client_order_id,
                       "signature": record.signature, "reason": e.reason},
            )  # fmt: skip
        except Exception as e:  # not delivered: resent on a later poll (it is journaled)
            self.ctx.log.warning(
                "send failed; resent later",
                extra={"event": "send_failed", "client_order_id": intent.order.client_order_id,
                       "signature": record.signature, "error": _error(e)},
            )  # fmt: skip
        self._die_at("after_send")

    # -- to the executor -------------------------------------------------------------------------
    def _exchange_order_id(self, intent: Intent) -> str:
        """The signature of the intent's signed swap."""
        return intent.tx.signature if intent.tx else ""
