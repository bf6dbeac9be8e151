"""An actor's chain worker thread and its hand-over to the actor loop, in one place (EVM and Solana).

A venue actor (gateway, token checker) must not block its loop on an RPC (heartbeats would stop): the
blocking calls run in one daemon worker thread. Jobs reach the worker through :attr:`ChainWorker._jobs`;
what the worker has for the actor (publish, send, journal) it hands over with :meth:`ChainWorker._later`,
and the actor loop runs those callables, in the order they were handed over, from :meth:`ChainWorker.
_drain` on a timer of a few ms. Stopping sets :attr:`ChainWorker._stopping` (and, for a worker that waits
on its job queue without a timeout, puts a ``None`` job), then joins the thread for a bounded time: a call
under way is abandoned (the thread is a daemon). Fields the worker writes and the actor reads (a status)
are read and written under :attr:`ChainWorker._lock`.

:class:`GatewayWorker` adds what both chain gateways keep the same way: the worker loop (each job as it
comes, a tick every ``poll_s``, a failure counted and retried) and the venue status (``connecting`` until
a call answers, ``down`` after :data:`DOWN_AFTER` failures in a row, published on each change).
:class:`CheckerWorker` adds the token checkers' report (journaled, published, logged, in that order).
A feed's thread (:class:`FeedThread`) hands ``(kind, item)`` tuples over instead of callables (its
quotes and trades are the hot path: no closure each); :class:`FeedWorker` drains them the same way and
keeps the feed's staleness watchdog and ``FeedStatus``.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from sniperbot.messages import (
    CancelOrder,
    Envelope,
    FeedStatus,
    Fill,
    NewPool,
    Order,
    OrderUpdate,
    Quote,
    TokenSafetyReport,
    TradeTick,
)
from sniperbot.messages import topics as topic
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport, VenueStatus


class ChainWorker:
    """Mixin for an actor with one chain worker thread (see the module docstring).

    Call :meth:`_init_worker` in ``__init__``, :meth:`_start_worker` in ``on_start`` and
    :meth:`_stop_worker` in ``on_stop``; the class using it has ``ctx`` (an ``ActorContext``).
    """

    ctx: Any

    def _init_worker(self) -> None:
        """The queues, the stop event and the lock; no thread yet."""
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._out: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # fields the worker writes and the actor reads (a status)

    def _start_worker(self, target: Callable[[], None], name: str, drain_s: float) -> None:
        """Start the worker thread running ``target`` and drain its hand-over every ``drain_s``."""
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()
        self.ctx.every(drain_s, self._drain)

    def _stop_worker(self, join_s: float, wake: bool = False) -> None:
        """Ask the worker to end (``wake``: also a ``None`` job) and wait for it at most ``join_s``."""
        self._stopping.set()
        if wake:
            self._jobs.put(None)
        if self._thread is not None:
            self._thread.join(join_s)

    def _drain(self) -> None:
        """Run, in the actor loop, what the worker handed over (actor thread)."""
        while True:
            try:
                fn = self._out.get_nowait()
            except queue.Empty:
                return
            fn()

    def _later(self, fn: Callable[[], None]) -> None:
        """Hand ``fn`` over to the actor loop (worker thread)."""
        self._out.put(fn)


DOWN_AFTER = 3  # consecutive failed chain calls before a gateway says its connection is "down"
BALANCES_S = 1.0  # a gateway reads the wallet's balances at most this often (and at each reconciliation)
_STATUS_S = 1.0  # a gateway publishes its VenueStatus at least this often (and on each change)


def event_key(event: OrderUpdate | Fill) -> str:
    """What tells an order's events apart in its outbox: a fill by its id, an update by status and reason."""
    return event.fill_id if isinstance(event, Fill) else f"{event.status}|{event.reason}"


def short_error(e: BaseException) -> str:
    """An error for the log: its class and a short message (RPC and HTTP errors never hold our key)."""
    return f"{type(e).__name__}: {str(e)[:160]}"


class GatewayWorker(ChainWorker):
    """A chain gateway's worker: jobs and ticks, and the venue status it keeps under the lock.

    The class using it has ``venue``, ``wallet`` (its public address, ``""`` before it is known),
    ``poll_s``, ``_order(order, sender, release)``, ``_tick()``, ``_read_balances()`` and
    ``_exchange_order_id(intent)``; :meth:`_serve` is the worker thread's loop. It also owns the inbox
    (:meth:`on_message`), the ledger's close (:meth:`on_stop`) and the answers to the executor's queries.
    """

    venue: str
    wallet: str
    poll_s: float
    executor: str
    ledger: Any  # the venue's TxLedger: intent(cid), put(intent), close()
    _fault: str  # the fault-injection point (module docstring of each gateway), "" for none
    #: What bounds a swap that cannot be cancelled on this chain (logged when a cancel is ignored).
    cancel_note = "cancel not possible on chain"

    def on_message(self, envelope: Envelope) -> None:
        """Orders and queries go to the chain worker; cancels are not answered (a swap is bounded)."""
        payload = envelope.payload
        if isinstance(payload, Order):
            self._jobs.put(("order", payload, envelope.sender, self.ctx.hold_ack()))
        elif isinstance(payload, VenueOrderQuery):
            self._jobs.put(("query", payload.client_order_id, envelope.sender))
        elif isinstance(payload, CancelOrder):
            self.ctx.log.info(
                self.cancel_note,
                extra={"event": "cancel_ignored", "client_order_id": payload.client_order_id},
            )

    def on_stop(self) -> None:
        """Stop the worker, close the ledger."""
        self._stop_worker(15)
        self.ledger.close()

    def _begin(self, target: Callable[[], None], thread: str, what: str) -> None:
        """The end of ``on_start``: the worker thread running ``target``, the status timer, a log line."""
        self._start_worker(target, thread, 0.01)
        self.ctx.every(_STATUS_S, self.publish_status)
        self.publish_status()
        self.ctx.log.info(
            f"{what} gateway starting",
            extra={"event": "gateway_start", "unfinished": len(self._active), "route": self.route_name},
        )

    def _unseal(self, sealed: bytes, field: str) -> Any:
        """The launch's wallet entry (a ``Credentials``) if it has ``field``; else None, logged."""
        from sniperbot.keystore import Credentials

        if not sealed:
            self.ctx.log.error("no wallet in the launch; orders are rejected", extra={"event": "no_wallet"})
            return None
        creds = Credentials.from_launch(sealed)
        if field not in creds.field_names:
            self.ctx.log.error(
                f"the wallet entry has no {field} field; orders are rejected",
                extra={"event": "no_wallet", "entry": creds.name},
            )
            return None
        return creds

    def _handle(self, job: tuple[Any, ...]) -> None:
        kind = job[0]
        if kind == "ack":
            self._acked(job[1], job[2])
        elif kind == "query":
            self._query(job[1], job[2])
        elif not self.reconciled:
            self._deferred.append(job)  # trade only once every earlier order is resolved
        else:
            try:
                self._order(*job[1:])
            except Exception:
                # The chain did not answer: again after the next good tick (a recorded intent is then
                # answered as a duplicate, and the tick places what it holds).
                self._deferred.append(job)
                raise

    def _die_at(self, point: str) -> None:
        """The fault-injection hook (module docstring): SIGKILL this process at ``point``."""
        if self._fault == point:
            os.kill(os.getpid(), signal.SIGKILL)

    def _query(self, cid: str, sender: str) -> None:
        """Answer the executor's query of order ``cid`` from the ledger (worker thread)."""
        intent = self.ledger.intent(cid)
        if intent is None:
            report = VenueOrderReport(
                client_order_id=cid, venue=self.venue, known=False, ts_ns=time.time_ns()
            )
        else:
            report = VenueOrderReport(
                client_order_id=cid,
                venue=self.venue,
                known=True,
                status=intent.status,
                reason=intent.reason,
                fills=list(intent.fills),
                ts_ns=time.time_ns(),
                exchange_order_id=self._exchange_order_id(intent),
            )
        self._later(lambda: self.ctx.send(sender, report))

    def _init_worker(self) -> None:
        """The worker's queues and lock, and the status fields (connecting, not reconciled)."""
        super()._init_worker()
        self.connection = "connecting"
        self.reconciled = False
        self.last_reconciliation_ns = 0
        self.balances: dict[str, float] = {}
        self._fail_streak = 0
        self._last_failure = ""
        self._last_failure_ns = 0
        self._open = 0
        self._inflight: set[tuple[str, str]] = set()  # (order, event key) sent, not acked yet
        self._last_balances = 0.0  # monotonic time of the last balances read
        self._deferred: list[Any] = []  # order jobs that wait for the next good tick

    def _order(self, order: Order, sender: str, release: Callable[[], None]) -> None:
        raise NotImplementedError

    def _exchange_order_id(self, intent: Any) -> str:
        raise NotImplementedError

    def _tick(self) -> None:
        raise NotImplementedError

    def _read_balances(self) -> None:
        raise NotImplementedError

    def _reconciled(self, open_count: int) -> None:
        """End of a good tick: balances, status (published when first reconciled), deferred orders."""
        # Worker thread. The deferred orders run in their order; a failing one puts itself back.
        if time.monotonic() - self._last_balances >= BALANCES_S or not self.reconciled:
            self._read_balances()
        with self._lock:
            self._open = open_count
            first = not self.reconciled
            self.reconciled = True
            self.last_reconciliation_ns = time.time_ns()
        if first:
            self._later(self.publish_status)
        deferred, self._deferred = self._deferred, []
        for i, job in enumerate(deferred):
            try:
                self._handle(job)  # a failing order puts itself back
            except Exception:
                self._deferred.extend(deferred[i + 1 :])  # the others wait for the next good tick too
                raise

    def _serve(self) -> None:
        """Until stopped: each job as it comes, and a tick every ``poll_s`` (worker thread)."""
        next_tick = 0.0
        while not self._stopping.is_set():
            try:
                job = self._jobs.get(timeout=max(0.0, min(self.poll_s, next_tick - time.monotonic())))
            except queue.Empty:
                job = None
            try:
                if job is not None:
                    self._handle(job)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.poll_s
                    self._tick()
            except Exception as e:  # an RPC failure: counted, logged, the next tick tries again
                self._note_failure(e)

    def status(self) -> VenueStatus:
        """The venue's status now."""
        with self._lock:
            return VenueStatus(
                venue=self.venue,
                connection=self.connection,
                reconciled=self.reconciled,
                last_reconciliation_ns=self.last_reconciliation_ns,
                last_failure=self._last_failure,
                last_failure_ns=self._last_failure_ns,
                open_orders=self._open,
                balances=dict(self.balances),
                account=self.wallet or "",
                ts_ns=time.time_ns(),
            )

    def publish_status(self) -> None:
        """Publish :meth:`status` on ``status.venue.<venue>``."""
        self.ctx.publish(topic.venue_status(self.venue), self.status())

    def _reply(self, sender: str, events: list[OrderUpdate | Fill], release: Callable[[], None]) -> None:
        """Send ``events`` to ``sender`` from the actor loop, then release the held ack (worker thread)."""

        def send() -> None:
            self.ctx.send(sender, VenueEvents(venue=self.venue, events=events))
            release()

        self._later(send)

    def _send_outbox(self, intent: Any) -> None:
        """Send ``intent``'s outbox events not in flight yet to the executor; an ack drops them (worker)."""
        cid = intent.order.client_order_id
        new = [e for e in intent.outbox if (cid, event_key(e)) not in self._inflight]
        if not new:
            return
        keys = [event_key(e) for e in new]
        self._inflight.update((cid, k) for k in keys)
        message = VenueEvents(venue=self.venue, events=new)
        jobs = self._jobs

        def send() -> None:
            self.ctx.send(self.executor, message, on_ack=lambda: jobs.put(("ack", cid, keys)))

        self._later(send)

    def _acked(self, cid: str, keys: list[str]) -> None:
        """The executor has the events ``keys`` of order ``cid``: out of its outbox (worker thread)."""
        intent = self.ledger.intent(cid)
        if intent is None:
            return
        intent.outbox = [e for e in intent.outbox if event_key(e) not in keys]
        self.ledger.put(intent)
        self._inflight.difference_update((cid, k) for k in keys)

    def _note_ok(self) -> None:
        """A chain call answered: the connection is "ok" (a change is published)."""
        with self._lock:
            changed = self.connection != "ok"
            self._fail_streak = 0
            self.connection = "ok"
        if changed:
            self._later(self.publish_status)

    def _note_failure(self, e: BaseException) -> None:
        """A chain call failed: counted, logged now and then, "down" after :data:`DOWN_AFTER` in a row."""
        with self._lock:
            self._fail_streak += 1
            self._last_failure = type(e).__name__
            self._last_failure_ns = time.time_ns()
            down = self._fail_streak >= DOWN_AFTER and self.connection != "down"
            if down:
                self.connection = "down"
                self.reconciled = False
        if self._fail_streak in (1, DOWN_AFTER) or self._fail_streak % 100 == 0:
            self.ctx.log.warning(
                "chain call failed; retrying",
                extra={"event": "chain_retry", "error": short_error(e), "streak": self._fail_streak},
            )
        if down:
            self._later(self.publish_status)


class CheckerWorker(ChainWorker):
    """A token checker's worker: checks pools one at a time, reports reach the actor loop in order.

    The class using it has ``venue`` and ``_run`` (the worker thread: takes :class:`NewPool` jobs until a
    ``None`` one, hands each report over with :meth:`_reported`).
    """

    venue: str

    def _run(self) -> None:
        raise NotImplementedError

    def _start_checks(self, drain_s: float) -> None:
        """Start the checking thread and the hand-over timer."""
        self._start_worker(self._run, f"token-check-{self.venue}", drain_s)

    def _reported(self, pool: NewPool, report: TokenSafetyReport, ms: float) -> None:
        """Hand ``report`` (on ``pool``, checked in ``ms``) over to the actor loop (worker thread)."""
        self._later(lambda: self._report(pool, report, ms))

    def _report(self, pool: NewPool, report: TokenSafetyReport, ms: float) -> None:
        """Journal, publish and log one report, in that order (actor thread)."""
        self.ctx.journal.append(report)  # first: a refusal's reason is on record before anyone acts
        self.ctx.publish(topic.token_safety(self.venue, report.token), report)
        log = self.ctx.log.info if report.verdict == "buy" else self.ctx.log.warning
        log(
            "token check",
            extra={
                "event": "token_safety",
                "venue": self.venue,
                "verdict": report.verdict,
                "reasons": list(report.reasons),
                "token": report.token,
                "pair": report.pair or pool.pair,
                "block": report.block_number,
                "pool_block": pool.block_number,
                "ms": round(ms, 3),
            },
        )


FEED_DRAIN_INTERVAL_S = 0.01  # hand-over period from a feed's RPC thread to the actor loop
FEED_STATUS_INTERVAL_S = 1.0
FEED_STALE_AFTER_S = 10.0  # no RPC answer for this long: prices of unknown age


class FeedThread:
    """A chain feed's RPC thread: hands ``(kind, item)`` over through :attr:`out`, counts its connection.

    Kinds: ``quote``, ``trade`` (the tuples :meth:`FeedWorker._drain` publishes), ``status`` (the
    connection changed), ``error`` (a detail to log) and the venue's own (:meth:`FeedWorker._on_item`).
    The class using it has ``_run`` (the thread, until :attr:`running` is false) and ``wake``.
    """

    def __init__(self, name: str) -> None:
        self.out: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.running = True
        self.connected = False
        self.reconnects = 0
        self.polls = 0
        self.last_ok_ns = 0  # monotonic ns of the last RPC answer
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        """Poll now (from any thread)."""
        raise NotImplementedError

    def stop(self, join_s: float) -> None:
        """End the thread: at most ``join_s`` for the call under way."""
        self.running = False
        self.wake()
        self.thread.join(join_s)


class FeedWorker:
    """Mixin for a chain feed actor: its :class:`FeedThread`'s hand-over, the watchdog and FeedStatus.

    The class using it has ``ctx``, ``venue``, ``stale``, ``stale_periods``, ``_worker`` (its thread,
    ``None`` before ``on_start``) and ``_last_error``.
    """

    ctx: Any
    venue: str
    stale: bool
    stale_periods: int
    _worker: Any
    _last_error: str

    def _start_feed(self) -> None:
        """Start the RPC thread, the hand-over timer and the status timer; publish the status."""
        self._worker.thread.start()
        self.ctx.every(FEED_DRAIN_INTERVAL_S, self._drain)
        self.ctx.every(FEED_STATUS_INTERVAL_S, self._watchdog)
        self._publish_status()

    def _stop_feed(self, join_s: float) -> None:
        """Stop the thread, and say the venue's prices are stale from now on."""
        if self._worker is not None:
            self._worker.stop(join_s)
        self.stale = True
        self._publish_status(connected=False)

    def _on_item(self, kind: str, item: Any) -> bool:
        """A venue's own kind of hand-over (actor thread); whether ``kind`` was one."""
        return False

    def _drain(self) -> None:
        """Publish what the RPC thread handed over, in order (actor thread)."""
        worker = self._worker
        assert worker is not None
        while True:
            try:
                kind, item = worker.out.get_nowait()
            except queue.Empty:
                break
            if kind == "quote":
                symbol, bid, bid_size, ask, ask_size, ts_ns = item
                self.ctx.publish(
                    topic.quote(self.venue, symbol),
                    Quote(
                        venue=self.venue,
                        symbol=symbol,
                        bid=bid,
                        bid_size=bid_size,
                        ask=ask,
                        ask_size=ask_size,
                        ts_ns=ts_ns,
                    ),
                )
            elif kind == "trade":
                symbol, price, size, side, trade_id, ts_ns = item
                self.ctx.publish(
                    topic.trade(self.venue, symbol),
                    TradeTick(
                        venue=self.venue,
                        symbol=symbol,
                        price=price,
                        size=size,
                        side=side,
                        trade_id=trade_id,
                        ts_ns=ts_ns,
                    ),
                )
            elif kind == "status":
                self._watchdog()
            elif self._on_item(kind, item):
                pass
            elif item != self._last_error:  # a failure repeated every poll is logged once
                self._last_error = item
                self.ctx.log.warning("feed error", extra={"event": "feed_error", "detail": str(item)[:300]})

    def _watchdog(self) -> None:
        """Stale after ``FEED_STALE_AFTER_S`` without an RPC answer; fresh again with the next answer."""
        worker = self._worker
        assert worker is not None
        fresh = worker.last_ok_ns > 0 and time.monotonic_ns() - worker.last_ok_ns < FEED_STALE_AFTER_S * 1e9
        if self.stale and fresh:
            self.stale = False
        elif not self.stale and not fresh:
            self.stale = True
            self.stale_periods += 1
            self.ctx.log.warning("market data stale", extra={"event": "feed_stale", "venue": self.venue})
        self._publish_status()

    def _publish_status(self, connected: bool | None = None) -> None:
        worker = self._worker
        last = worker.last_ok_ns if worker else 0
        self.ctx.publish(
            topic.feed_status(self.venue),
            FeedStatus(
                venue=self.venue,
                connected=worker.connected if connected is None and worker else bool(connected),
                stale=self.stale,
                reconnects=worker.reconnects if worker else 0,
                gaps=0,
                snapshots=0,
                stale_periods=self.stale_periods,
                rest_polls=worker.polls if worker else 0,
                last_message_ns=time.time_ns() - (time.monotonic_ns() - last) if last else 0,
                ts_ns=time.time_ns(),
            ),
        )
