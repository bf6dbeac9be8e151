"""The live gateway of one ccxt venue: real orders, placed exactly once; actor id ``gateway.<venue>``.

It speaks the venue protocol of the paper venue (:mod:`sniperbot.messages.venue`), so the generic
executor drives it unchanged: ``Order``, ``CancelOrder`` and ``VenueOrderQuery`` in its inbox,
``VenueEvents`` and ``VenueOrderReport`` back. Exchange I/O runs on an asyncio loop in a thread of
its own (ccxt / ccxt.pro), so a slow exchange never stops the actor's heartbeats; what the exchange
answered goes back to the actor's loop, which alone touches the sockets.

Exactly once (issue #9 point 4, research live-venues.md §3, §5):

* **The gateway's ledger first.** An ``Order`` is committed to the gateway's
  :class:`~sniperbot.venues.sim.ledger.VenueLedger` (``<run dir>/venue-<venue>``) before it is sent;
  its client order id goes in the exchange's own field (:mod:`sniperbot.venues.ccxt.exchange_orders`).
  The inbox acknowledgement is held until the exchange's answer is known, so the executor resends an
  order whose gateway died mid-send.
* **Never resent blindly.** An ``Order`` the ledger already has (a resend, or a new incarnation after a
  crash), and any send that failed without a definitive answer (timeout, 5xx, 429, connection lost,
  Binance's "Duplicate order sent."), is first looked up at the exchange by its client order id. Found:
  the exchange has it — a resend is refused like the paper venue does (``rejected`` /
  ``duplicate_client_order_id``, counted), so the executor queries the real state; a failed send
  answers with what the exchange did. Not found (only on the exchange's definitive "no such order"):
  sent once more; after ``max_send_attempts`` definitive absences the order is ``rejected``
  (``send_failed``). A lookup that itself fails is retried with backoff, never taken as "not found".
  Exchanges' duplicate-id checks are not relied on (Binance and Kraken check only open orders).
* **Fills are the exchange's trades.** Each exchange trade becomes one ``Fill`` with
  ``fill_id = f"{venue}:{symbol}:{trade id}"`` (:func:`fill_id`; trade ids are per symbol on Binance),
  so the journal keeps it once however often it is heard. Fee in quote currency (a base-asset fee is
  valued at the trade price; a third asset such as BNB counts 0 and is logged).
* **Private stream, REST behind it.** ``watch_my_trades`` (where ccxt.pro has it) triggers a REST
  refresh of the order it concerns; every ``poll_s`` seconds every unfinished order of the ledger is
  refreshed over REST (order by client id + its trades), which is also the fallback while the stream
  is down, and after each stream reconnect. New events go to the executor; the ledger records them
  when the executor has acknowledged them, so a crash in between makes the next incarnation send them
  again (the executor drops what it has).
* **Many unfinished orders** (a restart after a crash with hundreds open): for a symbol with at least
  ``_BATCH_MIN`` of them a sweep reads the symbol's orders, then its trades, in two calls, and what they
  list needs no lookup of its own; an order they do not list (never arrived, or past a page) is still
  looked up by client order id — absence from a list is never taken as "not at the exchange". At most
  ``_SWEEP_CONCURRENCY`` per-order lookups are in flight. 1,000 orders: seconds and ~2,400 weight
  instead of ~4 minutes and ~28,000 weight (``bench/ccxt_reconcile.py``).
* **Queries** (``VenueOrderQuery``) are answered from the exchange: lookup by client order id and the
  order's trades — from the next sweep's batch (fetched after the query arrived) when its symbol is
  batched. ``known=False`` when neither the ledger nor the journal has the order, or the exchange says
  definitively that it has none.
* **Foreign orders**: open orders on the account whose client order id is not in the ledger are logged
  (``foreign_order``) and counted (:attr:`CcxtGateway.foreign`), never adopted, cancelled or reported.
* **Precision**: amounts and prices go through ``amount_to_precision`` (truncated to the step) and
  ``price_to_precision`` (ccxt rounds to the nearest tick); an amount below one step is ``rejected``
  (``amount_below_precision``) before anything is sent.
* Order types: market, limit, and stop (``stop_price``; with ``limit_price`` a stop-limit) through
  ccxt's ``stopLossPrice``; an order ccxt says the exchange cannot take (``NotSupported``, e.g. a Coinbase
  stop-market) is ``rejected`` / ``unsupported_order_type``, the contract's reason. **Cancel-all**:
  ``CancelOrder`` with ``client_order_id ==`` :data:`CANCEL_ALL` cancels every unfinished order of the
  ledger (ours only).

Coinbase market *buys* are sized in quote currency by Coinbase: the gateway costs them at the best ask
it fetches just before sending (``quantity x ask``), so the base bought differs from the quantity by
the book's move in between; positions and P&L follow the exchange's fills, never the request.

Status, reconciliation and drift (issue #9 points 4 and 6): the gateway publishes a
:class:`~sniperbot.messages.venue.VenueStatus` on ``status.venue.<venue>`` every ``status_interval_s``
and on every change of its connection or reconciliation state:

* **connection**: ``connecting`` until the exchange first answers, ``ok`` after any answered call,
  ``down`` after ``down_after`` calls in a row failed (any ccxt error: transport, 5xx, auth), ``banned``
  while the shared rate limiter holds a 418 ban (until and reason shown). ``last_failure`` is the
  error's class name only.
* **reconciled**: a *reconciliation* is one complete sweep — every unfinished order of the ledger looked
  up (fills and status to the executor), the account's open orders fetched per symbol (foreign orders
  reported), and the balances fetched (``fetch_balance``, totals per asset). It runs at start, every
  ``poll_s`` and after each private-stream reconnect. ``reconciled`` is True once a sweep completed since
  the start and since the connection was last ``down`` or ``banned``; the node keeps the venue's breaker
  open while it is False (:meth:`sniperbot.node.Node.on_venue_status`). The gateway itself also holds a
  *new* order while unreconciled (up to ``reconcile_wait_s``, covering the start before the node has
  heard the first status) and then rejects it unsent (``venue_not_reconciled``, or ``venue_banned``).
* **drift** (per asset): ``(exchange total now - exchange total at the baseline) - (net of the
  journal's fills of this venue now - that net at the baseline)``, where a fill counts base ``+qty``
  for a buy (``-qty`` sell) and quote ``-qty*price`` (``+`` for a sell), less its fee in the asset the
  exchange charged it in (learned per market and side from the exchange's trades: Binance charges a
  buy's fee in the base asset, Kraken and Coinbase in quote; a third asset such as BNB is not in the
  journal at all, so it shows as drift there). The baseline is taken at the venue's first completed
  reconciliation in this run dir and kept in the journal's state (``venue/baseline/<venue>``), so a
  restart keeps it, and a journal restored from a backup brings its own baseline. A drift beyond
  ``drift_tolerance`` (+1e-9 of the balance) in two sweeps in a row is logged once (``balance_drift``,
  again only after it went back within tolerance) and always shown in the status. Deposits and
  withdrawals show as drift too: that is the point (money moved that the journal does not explain).

**Trades since the last journaled one.** Each new reconciliation (at start, and after the exchange was
unreachable) also reads the account's trades of each symbol since the last journaled fill (minus a
minute for clocks): a trade of ours the journal lacks, whatever status the journal gives its order (a
cancel the exchange answered wrongly, a journal restored from an older backup), is fetched through its
order and journaled once; a trade of an order not ours is reported like a foreign order.

Credentials never travel in args: ``sniperbot run`` unlocks the keystore before any process starts and
hands the node ``{entry name: Credentials}``; the node seals the entry named by this actor's ``keys``
argument (a name, safe in args and the journal) into this actor's ``ActorLaunch.credentials``
(:meth:`sniperbot.node.Node.sealed_credentials`, read here through
:attr:`~sniperbot.actors.base.ActorContext.credentials`) — no other actor's launch carries it; they are used
once, to construct the ccxt exchange, and exchange errors are logged by class only (a ccxt message
may quote the request). No credentials: public calls only (every signed call is refused by the
exchange, so orders are rejected with the exchange's reason).
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

import ccxt
import ccxt.pro
import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.journal import TERMINAL_STATUSES, keys, reopens
from sniperbot.messages import CancelOrder, Envelope, Fill, Order, OrderUpdate, update_of
from sniperbot.messages import topics as topic
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport, VenueStatus
from sniperbot.venues.base import UNSUPPORTED_ORDER_TYPE
from sniperbot.venues.ccxt.exchange_orders import (
    STATUS,
    client_id_of,
    client_id_params,
    fee_in_quote,
    find_order,
    order_trades,
)
from sniperbot.venues.ccxt.markets import spot_options
from sniperbot.venues.ccxt.ratelimit import PUBLIC_KEY_NAME, VenueBanned, open_limited
from sniperbot.venues.ccxt.urls import rebase_urls
from sniperbot.venues.sim.ledger import shared_ledger

DUPLICATE = "duplicate_client_order_id"  # the paper venue's refusal reason: the executor queries then
SEND_FAILED = "send_failed"
REJECT_NOT_RECONCILED = "venue_not_reconciled"
_TRADES_MARGIN_MS = 60_000  # the trades scan starts this long before the last journaled fill (clock skew)
BANNED = "venue_banned"
CANCEL_ALL = "*"
_DRAIN_S = 0.01
_BACKOFF_MAX_S = 5.0
# From this many unfinished orders of one symbol, a sweep reads the symbol's orders and trades in two calls
# (Binance: weight 40) instead of a lookup (4) and a trades call (20) per order: 1,000 orders reconcile
# in seconds instead of minutes of rate budget (bench/ccxt_reconcile.py).
_BATCH_MIN = 8
_BATCH_LIMIT = 1000  # Binance's largest page of allOrders / myTrades
# Per-order lookups of one sweep in flight at once. The limiter paces them anyway; an unbounded burst keeps
# hundreds in flight when a 429 lands, and Binance bans an IP that keeps calling during a 429 window.
_SWEEP_CONCURRENCY = 8
_T = TypeVar("_T")
Event = OrderUpdate | Fill
Batched = tuple[dict[str, Any], list[dict[str, Any]]]  # an order's record and its trades, from a batch


# Refusals after which the exchange certainly did not take the order. Anything else (timeouts, 5xx as
# OperationFailed, unclassified ExchangeError) may have been processed: looked up before any resend.
DEFINITIVE: tuple[type[Exception], ...] = (
    ccxt.InvalidOrder,
    ccxt.InsufficientFunds,
    ccxt.BadRequest,
    ccxt.AuthenticationError,
    ccxt.PermissionDenied,
    ccxt.AccountSuspended,
    ccxt.NotSupported,
    ccxt.ArgumentsRequired,
)


def fill_id(venue: str, symbol: str, trade_id: str) -> str:
    """The one home of a live fill id: the exchange's trade id, scoped by venue and symbol."""
    return f"{venue}:{symbol}:{trade_id}"


def _error_name(e: BaseException) -> str:
    """An exchange error by class only: ccxt messages may quote a signed request."""
    return type(e).__name__


class CcxtGateway(Actor):
    """Places, cancels and looks up orders at one exchange through ccxt; see the module docstring."""

    inbox = True

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        exchange: str,
        symbols: list[str],
        rest_url: str | None = None,
        ws_url: str | None = None,
        sandbox: bool = False,
        executor: str = "",
        timeout_ms: int = 10_000,
        poll_s: float = 2.0,
        max_send_attempts: int = 3,
        watch: bool = True,
        durability: Literal["fsync", "process"] = "fsync",
        keys: str = "",
        status_interval_s: float = 1.0,
        down_after: int = 3,
        reconcile_wait_s: float = 5.0,
        drift_tolerance: float = 1e-8,
    ) -> None:
        super().__init__(ctx)
        if not hasattr(ccxt.pro, exchange):
            raise ValueError(f"gateway.{venue}: exchange = {exchange!r} is not a ccxt.pro exchange id")
        self.venue = venue
        self.exchange_id = exchange
        self.symbols = list(symbols)
        self.rest_url = rest_url
        self.ws_url = ws_url
        self.sandbox = sandbox
        self.executor = executor or f"executor.{venue}"
        self.timeout_ms = timeout_ms
        self.poll_s = poll_s
        self.max_send_attempts = max(1, max_send_attempts)
        self.watch = watch
        self.durability = durability
        self.keys = (
            keys  # the keystore entry's name (not a secret): the node seals that entry into our launch
        )
        self.duplicates = 0
        self.foreign: set[str] = set()
        self._out: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._unfinished: set[str] = set()  # ledger orders without a terminal status
        self._inflight: set[str] = set()  # fill ids / "cid|status" sent, not yet acknowledged
        self._refreshing: set[str] = set()
        self._cancelling: set[str] = set()  # client order ids with a cancel under way
        self._tasks: set[asyncio.Task[Any]] = set()
        self._by_exchange_id: dict[str, str] = {}  # exchange order id -> our client order id
        self._next_batch: asyncio.Future[dict[str, Any]] | None = None  # what the next sweep's batch finds
        self._sweep_now = asyncio.Event()  # a query waits for a sweep: run it now, not at the next poll
        self._batched_symbols: set[str] | None = None  # what the last sweep batched (None: no sweep yet)
        self._wanted: set[str] = set()  # queried orders the next batch covers too (finished ones as well)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ex: Any = None
        # Status (VenueStatus): written by the exchange loop under _lock, published by the actor thread.
        self.status_interval_s = status_interval_s
        self.down_after = max(1, down_after)
        self.reconcile_wait_s = reconcile_wait_s
        self.drift_tolerance = drift_tolerance
        self.connection = "connecting"
        self.reconciled = False
        self.last_reconciliation_ns = 0
        self._fail_streak = 0
        self._last_failure = ""
        self._last_failure_ns = 0
        self._ban: VenueBanned | None = None
        self.balances: dict[str, float] = {}
        self.drift: dict[str, float] = {}
        self._baseline: dict[str, Any] | None = None
        self._net: dict[str, float] = {}  # net of this venue's journaled fills per asset (base/quote/fee)
        self._fills_seq = 0
        self._fee_assets: dict[str, str] = {}  # "symbol|side" -> "base" | "quote" | "other"
        self._fee_assets_saved: dict[str, str] = {}
        self._drift_over: set[str] = set()
        self._drift_logged: set[str] = set()

    # -- lifecycle (actor thread) -------------------------------------------------------------
    def on_start(self) -> None:
        """Open the ledger, start the exchange loop: markets, then reconciliation, stream and polling."""
        self.ledger = shared_ledger(self.ctx.run_dir, self.venue, self.durability)
        for order in self.ledger.orders():
            entry = self.ledger.order(order.client_order_id)
            if entry is not None and entry.status not in TERMINAL_STATUSES:
                self._unfinished.add(order.client_order_id)
        sealed = self.ctx.credentials
        raw = self.ctx.journal.get_state(keys.VENUE_BASELINE + self.venue)
        if raw is not None:
            self._baseline = msgspec.json.decode(raw)
            self._fee_assets = dict(self._baseline.get("fee_assets", {}))
            self._fee_assets_saved = dict(self._fee_assets)
        self._loop = asyncio.new_event_loop()
        self._ready = asyncio.Event()
        self._reconciled_event = asyncio.Event()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"gateway-io-{self.venue}", daemon=True
        )
        self._thread.start()
        self._submit(self._setup(sealed))
        self.ctx.every(_DRAIN_S, self._drain)
        self.ctx.every(self.status_interval_s, self.publish_status)
        self.publish_status()
        self.ctx.log.info(
            "gateway starting",
            extra={
                "event": "gateway_start",
                "exchange": self.exchange_id,
                "unfinished": len(self._unfinished),
            },
        )

    def on_stop(self) -> None:
        """Close the exchange's connections and the loop thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        except Exception as e:  # closing is best effort; the process may be going anyway
            self.ctx.log.warning("exchange close failed", extra={"event": "close", "error": _error_name(e)})
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    async def _shutdown(self) -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._ex is not None:
            await self._ex.close()

    def _submit(self, coro: Awaitable[Any]) -> Future[Any]:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._guarded(coro), self._loop)
        return future

    async def _guarded(self, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.ctx.log.error(
                "gateway task failed", extra={"event": "gateway_task_failed", "error": _error_name(e)}
            )
            return None

    def _drain(self) -> None:
        """Run what the exchange loop handed over (sends, acks) on the actor's own loop."""
        while True:
            try:
                fn = self._out.get_nowait()
            except queue.Empty:
                return
            fn()

    def _later(self, fn: Callable[[], None]) -> None:
        self._out.put(fn)

    # -- inbox (actor thread) -------------------------------------------------------------------
    def on_message(self, envelope: Envelope) -> None:
        """Orders, cancels and queries from the executor."""
        payload = envelope.payload
        sender = envelope.sender
        if isinstance(payload, Order):
            release = self.ctx.hold_ack()
            fresh = not self.ledger.knows(payload.client_order_id)
            if fresh:
                self.ledger.record([payload])  # before it can leave: a crash then means "look it up"
                with self._lock:
                    self._unfinished.add(payload.client_order_id)
            self._submit(self._on_order(payload, fresh, sender, release))
        elif isinstance(payload, CancelOrder):
            if payload.client_order_id == CANCEL_ALL:
                with self._lock:
                    cids = sorted(self._unfinished)
            else:
                cids = [payload.client_order_id]
            for cid in cids:
                entry = self.ledger.order(cid)
                with self._lock:
                    # One cancel per order at a time: a breaker held open for hours repeats its
                    # cancels, and each waits for the exchange to answer.
                    busy = cid in self._cancelling
                    if not busy:
                        self._cancelling.add(cid)
                if busy:
                    continue
                if entry is not None and entry.status not in TERMINAL_STATUSES:
                    self._submit(self._cancel(entry.order, payload.reason, sender))
                else:
                    with self._lock:
                        self._cancelling.discard(cid)
        elif isinstance(payload, VenueOrderQuery):
            cid = payload.client_order_id
            entry = self.ledger.order(cid)
            order = entry.order if entry is not None else self.ctx.journal.order(cid)
            if order is None:
                self.ctx.send(sender, self._unknown(cid))
            else:
                self._submit(self._query(order, sender))

    def _unknown(self, cid: str) -> VenueOrderReport:
        return VenueOrderReport(client_order_id=cid, venue=self.venue, known=False, ts_ns=time.time_ns())

    # -- exchange loop ----------------------------------------------------------------------------
    async def _setup(self, sealed: bytes) -> None:
        from sniperbot.keystore import Credentials

        creds = Credentials.from_launch(sealed) if sealed else None
        config: dict[str, Any] = {
            "timeout": self.timeout_ms,
            "options": spot_options(self.exchange_id),
        }
        if creds is not None:
            config.update(creds.ccxt_config())
        if self.keys and creds is None:
            self.ctx.log.error(
                "no credentials in the launch; signed calls will be refused",
                extra={"event": "credentials_missing", "keys": self.keys},
            )
        # One rate budget per (venue, key name), shared with the venue's other actors.
        key_name = self.keys or (creds.name if creds is not None else PUBLIC_KEY_NAME)
        ex = open_limited(getattr(ccxt.pro, self.exchange_id), self.ctx.run_dir, self.venue, key_name, config)
        del config, creds
        if self.sandbox:
            ex.set_sandbox_mode(True)  # before the rebase: it swaps urls['api'] wholesale
        self._ex = rebase_urls(ex, self.rest_url, self.ws_url)
        await self._retry("load_markets", lambda: self._ex.load_markets())
        missing = [s for s in self.symbols if s not in self._ex.markets]
        if missing:
            self.ctx.log.error(
                "symbols not listed by the exchange; orders for them are rejected",
                extra={"event": "unknown_symbols", "symbols": missing},
            )
        self._ready.set()
        self._spawn(self._poll_forever())
        if self.watch and self._ex.has.get("watchMyTrades"):
            self._spawn(self._watch_trades())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        """A background task of the exchange loop (referenced until done, as asyncio requires)."""
        task = asyncio.get_running_loop().create_task(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retry(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """A read that is safe to repeat, until the exchange answers (transport errors back off)."""
        delay = 0.2
        attempt = 0
        while True:
            try:
                result = await call()
            except ccxt.BaseError as e:
                # Not an answer (transport, 5xx, rate limit, or a refusal we cannot act on): a read is
                # safe to repeat, and acting without its answer is not.
                self._note_failure(e)
                attempt += 1
                if attempt in (1, 10) or attempt % 50 == 0:
                    self.ctx.log.warning(
                        "exchange unreachable; retrying",
                        extra={
                            "event": "exchange_retry",
                            "call": what,
                            "error": _error_name(e),
                            "attempt": attempt,
                        },
                    )
                await asyncio.sleep(delay)
                delay = min(_BACKOFF_MAX_S, delay * 2)
            else:
                self._note_ok()
                return result

    async def _lookup(self, order: Order) -> dict[str, Any] | None:
        """The exchange's order with this client order id; None only on a definitive 'no such order'."""
        return await self._retry(
            "lookup", lambda: find_order(self._ex, self.exchange_id, order.symbol, order.client_order_id)
        )

    async def _on_order(self, order: Order, fresh: bool, sender: str, release: Callable[[], None]) -> None:
        if fresh and not self._reconciled_event.is_set():
            # Never sent yet: trade only on a reconciled venue (a resend is looked up whatever the state).
            try:
                await asyncio.wait_for(self._reconciled_event.wait(), self.reconcile_wait_s)
            except TimeoutError:
                reason = BANNED if self.connection == "banned" else REJECT_NOT_RECONCILED
                self._reply(sender, order.client_order_id, [self._reject(order, reason)], release)
                return
        await self._ready.wait()
        events = await self._place(order, fresh)
        self._reply(sender, order.client_order_id, events, release)

    def _reject(self, order: Order, reason: str) -> OrderUpdate:
        return update_of(order, "rejected", reason)

    async def _place(self, order: Order, fresh: bool) -> list[Event]:
        ex = self._ex
        cid = order.client_order_id
        if order.symbol not in ex.markets:
            return [self._reject(order, "unknown_symbol")]
        if not fresh:
            found = await self._lookup(order)
            if found is not None:
                self.duplicates += 1
                self.ctx.log.warning(
                    "order already at the exchange; refused as a duplicate",
                    extra={"event": "duplicate_order", "client_order_id": cid},
                )
                return [self._reject(order, DUPLICATE)]
        try:
            amount = float(ex.amount_to_precision(order.symbol, order.quantity))
            price = (
                None
                if order.limit_price is None
                else float(ex.price_to_precision(order.symbol, order.limit_price))
            )
            stop = (
                None
                if order.stop_price is None
                else float(ex.price_to_precision(order.symbol, order.stop_price))
            )
        except ccxt.BaseError:
            return [self._reject(order, "amount_below_precision")]
        if amount <= 0:
            return [self._reject(order, "amount_below_precision")]
        if order.order_type == "limit" and price is None:
            return [self._reject(order, "limit_price_missing")]
        if order.order_type == "stop" and stop is None:
            return [self._reject(order, "stop_price_missing")]
        kind = "limit" if price is not None else "market"
        if kind == "market" and order.side == "buy" and ex.options.get("createMarketBuyOrderRequiresPrice"):
            # Coinbase sizes a market buy in quote currency: spend quantity x the best ask now, so the
            # base bought is the quantity up to the book's move in between (positions follow the fills).
            price = await self._market_buy_price(order.symbol)
        params: dict[str, Any] = client_id_params(self.exchange_id, cid)
        if stop is not None:
            params["stopLossPrice"] = stop
        last_error = ""
        for _ in range(self.max_send_attempts):
            try:
                placed = dict(await ex.create_order(order.symbol, kind, order.side, amount, price, params))
                if placed.get("status") is None:
                    # Kraken's AddOrder answers only the txid: ask for the order's real state now.
                    placed = await self._lookup(order) or placed
                return await self._events(order, placed)
            except VenueBanned:
                return [self._reject(order, "venue_banned")]  # refused before it left: never sent
            except DEFINITIVE as e:
                if isinstance(e, ccxt.NotSupported):  # ccxt knows the exchange cannot take this order type
                    return [self._reject(order, UNSUPPORTED_ORDER_TYPE)]
                if not (isinstance(e, ccxt.InvalidOrder) and "duplicate" in str(e).lower()):
                    return [self._reject(order, f"exchange: {_error_name(e)}")]
                last_error = _error_name(e)  # the id is taken by an open order: it is (probably) ours
            except ccxt.BaseError as e:
                last_error = _error_name(e)  # timeout, 5xx (OperationFailed), anything unclassified
            # No definitive answer: the order may be at the exchange. Look before any resend.
            self.ctx.log.warning(
                "order send without a definitive answer; looking it up by client order id",
                extra={"event": "send_unknown", "client_order_id": cid, "error": last_error},
            )
            found = await self._lookup(order)
            if found is not None:
                return await self._events(order, found)
        return [self._reject(order, f"{SEND_FAILED}: {last_error}")]

    async def _market_buy_price(self, symbol: str) -> float:
        """The price a quote-sized market buy is costed at: the best ask (else the last trade)."""
        ticker = await self._retry("ticker", lambda: self._ex.fetch_ticker(symbol))
        return float(ticker.get("ask") or ticker.get("last") or 0.0)

    async def _events(
        self, order: Order, placed: dict[str, Any], trades: list[dict[str, Any]] | None = None
    ) -> list[Event]:
        """What the exchange's record of an order means for us: its fills, then its status.

        ``trades``: the order's trades when the caller has them already (a sweep's batch).
        """
        status, reason = STATUS.get(str(placed.get("status")), ("accepted", ""))
        if placed.get("id") is not None:
            self._by_exchange_id[str(placed["id"])] = order.client_order_id
        filled = float(placed.get("filled") or 0.0)
        if trades is None and filled > 0.0 and placed.get("id") is not None:
            trades = await self._retry(
                "trades", lambda: order_trades(self._ex, self.exchange_id, order.symbol, str(placed["id"]))
            )
        fills: list[Event] = [self._fill(order, t) for t in trades or []]
        update = update_of(order, status, reason, str(placed.get("id") or ""))  # type: ignore[arg-type]
        if status == "accepted":
            return [update, *fills]
        return [*fills, update]

    def _fill(self, order: Order, trade: dict[str, Any]) -> Fill:
        market = self._ex.market(order.symbol)
        fee, unpriced = fee_in_quote(trade, str(market["base"]), str(market["quote"]))
        charged = str((trade.get("fee") or {}).get("currency") or "")
        if charged and float((trade.get("fee") or {}).get("cost") or 0.0):
            where = {str(market["base"]): "base", str(market["quote"]): "quote"}.get(charged, "other")
            self._fee_assets[f"{order.symbol}|{order.side}"] = where  # for the drift (module docstring)
        if unpriced:
            self.ctx.log.warning(
                "fee in a third asset counted as 0",
                extra={"event": "fee_unpriced", "asset": unpriced, "trade_id": str(trade.get("id"))},
            )
        return Fill(
            fill_id=fill_id(self.venue, order.symbol, str(trade["id"])),
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            venue=self.venue,
            symbol=order.symbol,
            side=order.side,
            quantity=float(trade["amount"]),
            price=float(trade["price"]),
            fee=fee,
            liquidity="maker" if trade.get("takerOrMaker") == "maker" else "taker",
            ts_ns=int(trade.get("timestamp") or 0) * 1_000_000,
            trade_id=str(trade["id"]),
        )

    async def _query(self, order: Order, sender: str) -> None:
        await self._ready.wait()
        swept = await self._swept(order)
        found, trades = swept if swept is not None else (await self._lookup(order), None)
        if found is None:
            report = self._unknown(order.client_order_id)
            events: list[Event] = []
        else:
            events = await self._events(order, found, trades)
            update = next(e for e in events if isinstance(e, OrderUpdate))
            report = VenueOrderReport(
                client_order_id=order.client_order_id,
                venue=self.venue,
                known=True,
                status=update.status,
                reason=update.reason,
                fills=[e for e in events if isinstance(e, Fill)],
                ts_ns=time.time_ns(),
                exchange_order_id=update.exchange_order_id,
            )
        self._later(lambda: self.ctx.send(sender, report, on_ack=lambda: self._record_if_ours(events)))

    async def _cancel(self, order: Order, reason: str, sender: str) -> None:
        try:
            await self._cancel_once(order, reason, sender)
        finally:
            with self._lock:
                self._cancelling.discard(order.client_order_id)

    async def _cancel_once(self, order: Order, reason: str, sender: str) -> None:
        await self._ready.wait()
        found = await self._lookup(order)
        if found is None:
            return  # never reached the exchange: nothing to cancel (the executor's resend decides)
        if found.get("status") == "open":
            try:
                await self._ex.cancel_order(str(found["id"]), order.symbol)
            except ccxt.OrderNotFound:
                pass  # finished meanwhile: the refresh below says how
            except ccxt.NetworkError as e:
                self.ctx.log.warning(
                    "cancel without a definitive answer; the refresh tells",
                    extra={
                        "event": "cancel_unknown",
                        "client_order_id": order.client_order_id,
                        "error": _error_name(e),
                    },
                )
            found = await self._lookup(order) or found
        events = await self._events(order, found)
        if reason:
            events = [
                OrderUpdate(**{**_update_fields(e), "reason": reason})
                if isinstance(e, OrderUpdate) and e.status == "cancelled" and not e.reason
                else e
                for e in events
            ]
        self._send_new(sender, order.client_order_id, events)

    async def _refresh(self, cid: str, batched: Batched | None = None) -> bool:
        """Bring one unfinished order up to date from the exchange (REST) and tell the executor.

        ``batched``: its record and trades from the sweep's batch; without it, looked up on its own.
        True once the exchange answered for it (False: another sweep is refreshing it right now).
        """
        if cid in self._refreshing:
            return False
        self._refreshing.add(cid)
        try:
            entry = self.ledger.order(cid)
            if entry is None or entry.status in TERMINAL_STATUSES:
                return True
            found, trades = batched if batched is not None else (await self._lookup(entry.order), None)
            if found is None:
                if self.ctx.journal.order_status(cid) in TERMINAL_STATUSES:
                    # Never reached the exchange, and the executor has settled it (e.g. cancelled as
                    # too old to send): nothing left to reconcile, so stop looking it up every sweep.
                    with self._lock:
                        self._unfinished.discard(cid)
                return True  # not at the exchange (yet): the executor's resend or query settles it
            self._send_new(self.executor, cid, await self._events(entry.order, found, trades))
            return True
        finally:
            self._refreshing.discard(cid)

    async def _poll_forever(self) -> None:
        """Reconcile at start and every ``poll_s`` (sooner when a query waits): unfinished orders, then
        foreign open orders.
        """
        while True:
            self._sweep_now.clear()
            await self._guarded(self._sweep())  # a failed sweep must not end the polling (queries wait on it)
            # Sleep poll_s, or less if a query wants a sweep; a timer rather than wait_for, which would run
            # the wait as a task of its own.
            timer = asyncio.get_running_loop().call_later(self.poll_s, self._sweep_now.set)
            try:
                await self._sweep_now.wait()
            finally:
                timer.cancel()

    def _batch_future(self) -> asyncio.Future[dict[str, Any]]:
        if self._next_batch is None:
            self._next_batch = asyncio.get_running_loop().create_future()
        return self._next_batch

    async def _swept(self, order: Order) -> Batched | None:
        """An order's record and trades from the next sweep's batch (read after we asked).

        None when the last sweep did not batch its symbol (too few unfinished orders), or the batch does
        not list it (then the caller looks it up on its own: absence from a batch is not "not at the
        exchange"). Before the first sweep every query waits for it: that is the start's reconciliation.
        """
        cid = order.client_order_id
        if self._batched_symbols is not None and order.symbol not in self._batched_symbols:
            return None
        self._wanted.add(cid)
        batch = self._batch_future()
        self._sweep_now.set()
        found: dict[str, Any] = await asyncio.shield(batch)
        return found.get(cid)

    def _by_symbol(self, cids: list[str]) -> dict[str, dict[str, Order]]:
        out: dict[str, dict[str, Order]] = {}
        for cid in cids:
            entry = self.ledger.order(cid)
            if entry is not None:
                out.setdefault(entry.order.symbol, {})[cid] = entry.order
        return out

    async def _batch(self, cids: list[str]) -> dict[str, Any]:
        """Many unfinished orders' records and trades, two calls per symbol (its orders, then its trades).

        Only for a symbol with at least ``_BATCH_MIN`` unfinished orders, on an exchange ccxt lists orders
        and trades of. Orders before trades, so the trades cover at least what each order says it filled;
        an order whose trades fall short (past a page) or that is not listed is left out, and looked up on
        its own. Returns ``{client order id: (order, trades)}``.
        """
        if not (self._ex.has.get("fetchOrders") and self._ex.has.get("fetchMyTrades")):
            self._batched_symbols = set()
            return {}
        out: dict[str, Any] = {}
        batched: set[str] = set()
        for symbol, orders in self._by_symbol(cids).items():
            if len(orders) < _BATCH_MIN or symbol not in self._ex.markets:
                continue
            try:
                listed = await self._ex.fetch_orders(symbol, None, _BATCH_LIMIT)
                trades = await self._ex.fetch_my_trades(symbol, None, _BATCH_LIMIT)
            except ccxt.BaseError as e:
                self.ctx.log.warning(
                    "batch lookup failed; looking orders up one by one",
                    extra={"event": "batch_failed", "symbol": symbol, "error": _error_name(e)},
                )
                continue
            batched.add(symbol)
            by_order: dict[str, list[dict[str, Any]]] = {}
            for t in trades:
                by_order.setdefault(str(t.get("order")), []).append(dict(t))
            for o in listed:
                cid = client_id_of(self.exchange_id, o)
                if cid not in orders or o.get("id") is None:
                    continue
                mine = sorted(
                    by_order.get(str(o["id"]), []), key=lambda t: (t.get("timestamp") or 0, str(t.get("id")))
                )
                filled = float(o.get("filled") or 0.0)
                if sum(float(t["amount"]) for t in mine) >= filled * (1.0 - 1e-9):
                    out[cid] = (dict(o), mine)
        self._batched_symbols = batched
        return out

    async def _sweep(self) -> bool:
        """One reconciliation: unfinished orders, the account's open orders, balances. True if complete."""
        with self._lock:
            cids = sorted(self._unfinished)
        batch, self._next_batch = self._batch_future(), None
        wanted, self._wanted = self._wanted, set()
        batched: dict[str, Any] = {}
        try:
            batched = await self._batch(sorted(wanted.union(cids)))
        finally:
            if not batch.done():
                batch.set_result(batched)  # queries waiting on this sweep: what it found
        slots = asyncio.Semaphore(_SWEEP_CONCURRENCY)

        async def refresh(cid: str) -> bool:
            async with slots:
                return await self._refresh(cid, batched.get(cid))

        # A queried order is answered from this batch by its query: refreshing it too would double the
        # events the actor thread hands over (1,000 orders at a restart).
        refreshed = await asyncio.gather(*(self._guarded(refresh(cid)) for cid in cids if cid not in wanted))
        complete = all(r is True for r in refreshed)
        for symbol in self.symbols:
            if symbol not in self._ex.markets:
                continue
            try:
                open_orders = await self._ex.fetch_open_orders(symbol)
            except ccxt.BaseError as e:
                self._note_failure(e)
                self.ctx.log.warning(
                    "open orders poll failed", extra={"event": "poll_failed", "error": _error_name(e)}
                )
                complete = False
                continue
            self._note_ok()
            for o in open_orders:
                self._check_foreign(client_id_of(self.exchange_id, o), str(o.get("id")), symbol)
        try:
            balance = await self._ex.fetch_balance()
        except ccxt.BaseError as e:
            self._note_failure(e)
            self.ctx.log.warning(
                "balance poll failed", extra={"event": "balance_failed", "error": _error_name(e)}
            )
            return False
        self._note_ok()
        totals = {str(a): float(v) for a, v in (balance.get("total") or {}).items() if v}
        if complete and not self.reconciled:
            # A new reconciliation (start, or after the exchange was unreachable): the account's trades
            # since the last journaled one, so a trade of ours the journal lacks is found whatever
            # the status the journal gives its order.
            complete = await self._trades_since_journal()
        if complete:
            self._reconciled_now(totals)
        return complete

    async def _trades_since_journal(self) -> bool:
        """Every account trade since the last journaled fill of each symbol: ours missing from the journal
        are fetched through their order (``_events``), foreign ones reported. True if every symbol answered.
        """
        # The latest fill time per symbol, from the journal's positions (O(instruments), not O(fills)).
        last = {
            symbol: book.last_fill_ts_ns
            for (venue, symbol), book in self.ctx.journal.snapshot().books.items()
            if venue == self.venue
        }
        complete = True
        for symbol in self.symbols:
            if symbol not in self._ex.markets or not self._ex.has.get("fetchMyTrades"):
                continue
            since_ms = (
                max(0, last.get(symbol, 0) // 1_000_000 - _TRADES_MARGIN_MS) if symbol in last else None
            )
            try:
                trades = await self._ex.fetch_my_trades(symbol, since_ms, 1000)
            except ccxt.BaseError as e:
                self._note_failure(e)
                complete = False
                continue
            missing: dict[str, list[str]] = {}
            for t in trades:
                if not self.ctx.journal.has_fill(fill_id(self.venue, symbol, str(t["id"]))):
                    missing.setdefault(str(t.get("order") or ""), []).append(str(t["id"]))
            for order_id, trade_ids in missing.items():
                cid = self._by_exchange_id.get(order_id, "")
                if not cid and order_id:
                    try:
                        cid = client_id_of(self.exchange_id, await self._ex.fetch_order(order_id, symbol))
                    except ccxt.BaseError:
                        # Not ours by any id we know, and the exchange will not say whose: reported, and
                        # never a reason to keep the venue from trading.
                        self._check_foreign("", order_id, symbol)
                        continue
                entry = self.ledger.order(cid) if cid else None
                if entry is None:
                    self._check_foreign(cid, order_id, symbol)
                    continue
                if entry.status not in TERMINAL_STATUSES:
                    continue  # unfinished: this very sweep refreshed it (its fills are on their way)
                self.ctx.log.warning(
                    "exchange trades of ours missing from the journal; fetching them",
                    extra={"event": "missing_trades", "client_order_id": cid, "trades": len(trade_ids)},
                )
                found = await self._lookup(entry.order)
                if found is not None:
                    self._send_new(self.executor, cid, await self._events(entry.order, found))
        return complete

    # -- status (exchange loop side) -----------------------------------------------------------
    def _note_ok(self) -> None:
        """The exchange answered a call."""
        with self._lock:
            changed = self.connection != "ok"
            self._fail_streak = 0
            self._ban = None
            self.connection = "ok"
        if changed:
            self._later(self.publish_status)

    def _note_failure(self, e: BaseException) -> None:
        """A call got no answer we can use: ``down_after`` in a row (or a ban) needs a new reconciliation."""
        with self._lock:
            before = (self.connection, self.reconciled)
            self._fail_streak += 1
            self._last_failure = _error_name(e)
            self._last_failure_ns = time.time_ns()
            if isinstance(e, VenueBanned):
                self._ban = e
                self.connection = "banned"
            elif self._fail_streak >= self.down_after:
                self.connection = "down"
            if self.connection in ("down", "banned"):
                self.reconciled = False
            changed = before != (self.connection, self.reconciled)
        if not self.reconciled:
            self._reconciled_event.clear()
        if changed:
            self._later(self.publish_status)

    def _reconciled_now(self, totals: dict[str, float]) -> None:
        now = time.time_ns()
        with self._lock:
            if self.connection in ("down", "banned"):
                return  # a call failed while we swept: the next sweep tells
            self.reconciled = True
            self.last_reconciliation_ns = now
            self.balances = totals
        self._reconciled_event.set()
        self._later(lambda: self._update_drift(totals, now))

    # -- status (actor thread) -------------------------------------------------------------------
    def status(self) -> VenueStatus:
        """The venue's status now (what :meth:`publish_status` sends)."""
        with self._lock:
            ban = self._ban
            return VenueStatus(
                venue=self.venue,
                connection=self.connection,
                reconciled=self.reconciled,
                last_reconciliation_ns=self.last_reconciliation_ns,
                last_failure=self._last_failure,
                last_failure_ns=self._last_failure_ns,
                banned_until_ns=int(ban.until * 1e9) if ban is not None else 0,
                ban_reason=ban.reason if ban is not None else "",
                open_orders=len(self._unfinished),
                foreign_orders=len(self.foreign),
                balances=dict(self.balances),
                drift=dict(self.drift),
                drift_since_ns=int(self._baseline["ts_ns"]) if self._baseline else 0,
                ts_ns=time.time_ns(),
            )

    def publish_status(self) -> None:
        """Publish :meth:`status` on ``status.venue.<venue>`` (the node keeps the last one)."""
        self.ctx.publish(topic.venue_status(self.venue), self.status())

    def _scan_fills(self) -> None:
        """Add the journal's new fills of this venue to the running net per asset."""
        journal = self.ctx.journal
        last = journal.last_seq()
        for seq, fill in journal.records(after_seq=self._fills_seq, kinds=(Fill,)):
            last = max(last, seq)
            if not isinstance(fill, Fill) or fill.venue != self.venue:
                continue
            market = (self._ex.markets or {}).get(fill.symbol) if self._ex is not None else None
            base, quote = (
                (str(market["base"]), str(market["quote"])) if market else tuple(fill.symbol.split("/", 1))
            )
            sign = 1.0 if fill.side == "buy" else -1.0
            net = self._net
            net[base] = net.get(base, 0.0) + sign * fill.quantity
            net[quote] = net.get(quote, 0.0) - sign * fill.quantity * fill.price
            if self._fee_assets.get(f"{fill.symbol}|{fill.side}") == "base" and fill.price > 0:
                net[base] -= fill.fee / fill.price  # the journal values a base-asset fee in quote
            else:
                net[quote] -= fill.fee
        self._fills_seq = last

    def _update_drift(self, totals: dict[str, float], now: int) -> None:
        """Compare the exchange's balances with the journal's fills (module docstring: drift)."""
        self._scan_fills()
        if self._baseline is None or self._fee_assets != self._fee_assets_saved:
            if self._baseline is None:
                self._baseline = {"ts_ns": now, "balances": dict(totals), "net": dict(self._net)}
            self._baseline["fee_assets"] = dict(self._fee_assets)
            self._fee_assets_saved = dict(self._fee_assets)
            self.ctx.journal.put_state(keys.VENUE_BASELINE + self.venue, msgspec.json.encode(self._baseline))
        base_bal: dict[str, float] = self._baseline["balances"]
        base_net: dict[str, float] = self._baseline["net"]
        drift: dict[str, float] = {}
        for asset in sorted(set(totals) | set(base_bal) | set(self._net) | set(base_net)):
            moved = totals.get(asset, 0.0) - base_bal.get(asset, 0.0)
            explained = self._net.get(asset, 0.0) - base_net.get(asset, 0.0)
            value = moved - explained
            tolerance = self.drift_tolerance + 1e-9 * abs(totals.get(asset, 0.0))
            if math.isfinite(value) and abs(value) > tolerance:
                drift[asset] = value
        for asset in set(self._drift_logged) - set(drift):
            self._drift_logged.discard(asset)  # back within tolerance: a new drift is said again
        for asset, value in drift.items():
            if asset in self._drift_over and asset not in self._drift_logged:
                self._drift_logged.add(asset)
                self.ctx.log.warning(
                    "exchange balance differs from the journal's fills",
                    extra={
                        "event": "balance_drift",
                        "asset": asset,
                        "drift": value,
                        "balance": totals.get(asset, 0.0),
                        "baseline": base_bal.get(asset, 0.0),
                    },
                )
        self._drift_over = set(drift)
        with self._lock:
            self.drift = drift
        self.publish_status()

    def _check_foreign(self, cid: str, exchange_order_id: str, symbol: str) -> bool:
        """Log and count an order on the account that we did not place; True if it is foreign."""
        if cid and self.ledger.knows(cid):
            return False
        key = exchange_order_id or cid
        if key not in self.foreign:
            self.foreign.add(key)
            self.ctx.log.warning(
                "order on the account not placed by sniperbot; reported, not adopted",
                extra={
                    "event": "foreign_order",
                    "exchange_order_id": exchange_order_id,
                    "client_order_id": cid,
                    "symbol": symbol,
                    "foreign_orders": len(self.foreign),
                },
            )
        return True

    async def _watch_trades(self) -> None:
        """The private stream: a trade of ours triggers a refresh; a reconnect, a full sweep."""
        delay = 0.5
        while True:
            try:
                trades = await self._ex.watch_my_trades()
                delay = 0.5
            except ccxt.BaseError as e:
                self.ctx.log.warning(
                    "private stream down; REST polling carries on",
                    extra={"event": "stream_down", "error": _error_name(e)},
                )
                await asyncio.sleep(delay)
                delay = min(_BACKOFF_MAX_S, delay * 2)
                await self._sweep()  # what happened while we did not listen
                continue
            for trade in trades:
                cid = await self._cid_of_trade(dict(trade))
                if cid:
                    self._spawn(self._refresh(cid))

    async def _cid_of_trade(self, trade: dict[str, Any]) -> str:
        """Our client order id of a streamed trade; an order id not seen yet costs one sweep."""
        order_id = str(trade.get("order") or "")
        if order_id not in self._by_exchange_id:
            await self._sweep()  # learns the exchange ids of every unfinished order
        return self._by_exchange_id.get(order_id, "")

    # -- back to the actor thread -----------------------------------------------------------------
    def _reply(self, sender: str, cid: str, events: list[Event], release: Callable[[], None]) -> None:
        """Answer an order (a duplicate refusal always; news only once), then release its inbox ack."""
        refused = [e for e in events if isinstance(e, OrderUpdate) and e.reason == DUPLICATE]
        new = self._claim(cid, [e for e in events if e not in refused])

        def send() -> None:
            self.ctx.send(
                sender,
                VenueEvents(venue=self.venue, events=refused + new),
                on_ack=lambda: self._acked(cid, new),
            )
            release()

        self._later(send)

    def _send_new(self, dest: str, cid: str, events: list[Event]) -> None:
        """Send what the ledger has not recorded and is not in flight; record it once acknowledged."""
        new = self._claim(cid, events)
        if new:
            event = VenueEvents(venue=self.venue, events=new)
            self._later(lambda: self.ctx.send(dest, event, on_ack=lambda: self._acked(cid, new)))

    def _acked(self, cid: str, new: list[Event]) -> None:
        self._record_if_ours(new)
        with self._lock:
            for e in new:
                self._inflight.discard(e.fill_id if isinstance(e, Fill) else f"{cid}|{e.status}")

    def _claim(self, cid: str, events: list[Event]) -> list[Event]:
        """The events neither recorded in the ledger nor already on their way; marked as on their way."""
        entry = self.ledger.order(cid)
        if entry is None:
            return list(events)  # not ours to record (a rejection before the ledger had it)
        known = {f.fill_id for f in entry.fills}
        status = entry.status
        new: list[Event] = []
        with self._lock:
            for e in events:
                key = e.fill_id if isinstance(e, Fill) else f"{cid}|{e.status}"
                if key in self._inflight:
                    continue
                if isinstance(e, Fill) and e.fill_id in known:
                    continue
                if isinstance(e, OrderUpdate) and (e.status == status or reopens(status, e.status)):
                    continue
                self._inflight.add(key)
                new.append(e)
        return new

    def _record_if_ours(self, events: list[Event]) -> None:
        """Record in the ledger what the executor now has (DUPLICATE refusals are not a status)."""
        kept = [e for e in events if not (isinstance(e, OrderUpdate) and e.reason == DUPLICATE)]
        kept = [e for e in kept if self.ledger.knows(e.client_order_id)]
        if not kept:
            return
        self.ledger.record(kept)
        with self._lock:
            for e in kept:
                if isinstance(e, OrderUpdate) and e.status in TERMINAL_STATUSES:
                    self._unfinished.discard(e.client_order_id)


def _update_fields(update: OrderUpdate) -> dict[str, Any]:
    return {f: getattr(update, f) for f in update.__struct_fields__}
