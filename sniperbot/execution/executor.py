"""The executor actor: journals each order, sends it to its venue once, journals what happened.

One generic executor for every venue: it talks to the venue's *gateway*, another actor
whose id it is given (``paper.<venue>`` in paper mode, :mod:`sniperbot.venues.sim.gateway`;
``gateway.<venue>`` for a live venue), through the messages of the venue contract
(:mod:`sniperbot.venues.base`). The gateway has its own books, so either side can die
at any moment. Money stays exact because:

* **Journal first.** An order is journaled before it is sent, and the venue's answers
  (:class:`~sniperbot.messages.venue.VenueEvents`) before they are published. With
  "fsync" durability "journaled" means the executor's write-ahead log
  (:mod:`sniperbot.journal.ahead`: one device flush, where an LMDB commit costs two);
  LMDB gets an order in one commit with the venue's first answer, right after that
  answer is published (or alone after :data:`PENDING_COMMIT_S` without one). Until then
  the executor counts the order as journaled (a resend is dropped, a cancel goes out,
  cancel-all includes it, a report and a stop commit it first), and the log's recovery at the next
  start puts back whatever a crash kept out of LMDB. Without the log ("process"
  durability) every commit goes to LMDB before the send or the publish.
  A resent ``Order`` whose client order id is already journaled is acknowledged
  and dropped: it was sent once already.
* **Reconcile before trading.** A new incarnation first asks the venue about every
  journaled order of this venue without a terminal status
  (:class:`~sniperbot.messages.venue.VenueOrderQuery`) and journals the answer:
  missing fills, accepted, rejected, cancelled. Orders and cancels that arrive
  meanwhile wait, their acknowledgements held, so the risk guard keeps them until
  they are really taken.
* **A journaled order the venue never received** (we died between the journal and
  the send) is sent now, exactly once, if it is still fresh (approved less than
  ``resend_within_s`` ago, 5 s by default): a short crash must not drop an order
  the trader's strategy and risk already count on. An older one is cancelled with
  reason ``expired_unsent``: after a long outage the market has moved and a stale
  market order must not go out.
* **A duplicate refusal** (``rejected``/``duplicate_client_order_id``) means the
  venue had the order already: it is never journaled as the order's status; the
  executor asks the venue for the real status instead.

**Cancel-all on a trip** (issue #9 point 4): when the ``global`` breaker or this venue's
breaker opens (``BreakerChanged`` on the bus), or trading goes ``HALTED`` (``RiskStatus``:
a loss limit, ``admin halt``), every unfinished order of this venue in the journal is
cancelled through the gateway (reason ``breaker <scope>: <reason>`` / ``trading HALTED``);
at start the same happens if the journal says either breaker is not closed (a subtree
restarted half-open after a crash loop: its resting orders were left unwatched during the
cooldown), and every :data:`BREAKER_CHECK_S` while one is open (an announcement missed
while subscribing; half-open lets risk-reducing orders through, so it cancels only at
start). The executor, not the node, sends it: it alone knows its venue's unfinished
orders and its gateway, and it holds the cancels until its reconciliation is done. A cancel
is sent again for an order still open after :data:`CANCEL_RESEND_S`. Orders placed later
are not affected: the risk guard does not approve any while the breaker is open or trading
is HALTED.

On start the executor also republishes the journal's recent events of its venue,
since a crash between journaling an event and publishing it would otherwise leave
strategies and the risk guard without it (receivers drop what they already have).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.journal import TERMINAL_STATUSES, AheadLog, keys
from sniperbot.messages import (
    BreakerChanged,
    CancelOrder,
    Envelope,
    Fill,
    Order,
    OrderUpdate,
    RiskStatus,
    update_of,
)
from sniperbot.messages import topics as topic
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport
from sniperbot.venues.base import DUPLICATE

#: Cancel reason: the journal had the order, the venue never got it, and it was too old to send at restart.
EXPIRED_UNSENT = "expired_unsent"
_REPUBLISH_TAIL = 256  # journal records re-announced at start (covers a crash mid-publish)
_SLOW_RECONCILE_S = 10.0
_MAX_ACK_TIMERS = 10_000  # orders awaiting their first venue answer, for the ack latency
CANCEL_RESEND_S = 10.0  # a trip's cancel for an order still open is sent again after this long
BREAKER_CHECK_S = 2.0  # how often the journal's breaker states are read (a missed announcement)
#: An order logged ahead and sent goes into LMDB with the venue's first answer, or alone after this long.
PENDING_COMMIT_S = 0.05


class Executor(Actor):
    """Sends approved orders to the venue's gateway actor, journal first, reconciling after restarts."""

    inbox = True

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        gateway: str,
        resend_within_s: float = 5.0,
    ) -> None:
        super().__init__(ctx)
        self.venue = venue
        self.gateway = gateway
        self.resend_within_s = resend_within_s
        self.reconciling: set[str] = set()
        self.waiting: list[tuple[Order | CancelOrder, Callable[[], None] | None]] = []
        self._reconcile_started = 0.0
        # client order id -> when it was sent, for the ack latency (bounded: see _submit).
        self._sent_ns: dict[str, int] = {}
        # Breaker changes and the trading state, for cancel-all on a trip (module docstring).
        self.topics = (topic.BREAKERS, topic.STATUS_RISK)
        self._scopes = ("global", f"venue:{venue}")
        self._cancels_sent: dict[str, float] = {}  # client order id -> monotonic time of the trip's cancel
        self._ahead: AheadLog | None = None  # "fsync" durability only (see _submit)
        # Logged ahead and sent or published, not yet in LMDB, in order (module docstring), and the
        # client order ids of the orders among them.
        self._pending: list[Order | OrderUpdate | Fill] = []
        self._pending_orders: set[str] = set()
        self._commit_due = math.inf  # monotonic time of the earliest commit timer armed

    # -- start: reconcile -------------------------------------------------------------------
    def on_start(self) -> None:
        """Recover the write-ahead log, re-announce recent events, ask the venue about unfinished orders."""
        journal = self.ctx.journal
        if journal.durability == "fsync":
            self._ahead = AheadLog.open(journal, self.ctx.actor_id)
            if self._ahead.recovered:
                self.ctx.log.warning(
                    "sent or published but not in the journal when the last incarnation died: journaled now",
                    extra={
                        "event": "ahead_recovered",
                        "orders": sorted({r.client_order_id for r in self._ahead.recovered})[:10],
                        "count": len(self._ahead.recovered),
                    },
                )
        self._republish_tail()
        self._reconcile_started = time.monotonic()
        unfinished = [o for o in self.ctx.journal.open_orders() if o.venue == self.venue]
        for order in unfinished:
            self.reconciling.add(order.client_order_id)
            self._query(order.client_order_id)
        if unfinished:
            self.ctx.log.warning(
                "reconciling unfinished orders with the venue before accepting new ones",
                extra={"event": "reconcile_start", "orders": len(unfinished)},
            )
            self.ctx.every(_SLOW_RECONCILE_S, self._check_reconcile)
        self._count_reconciling()
        self.ctx.metrics.inc("sniperbot_orders_rejected_total", 0.0, venue=self.venue, reason="venue")
        self._check_breakers(("open", "half_open"))
        # Also on a timer: a BreakerChanged published while our subscription was still connecting
        # (the hold a restarted live gateway asks for right at start) must not be missed.
        self.ctx.every(BREAKER_CHECK_S, self._check_breakers)

    def on_stop(self) -> None:
        """Say what is still open at the venue: the next incarnation reconciles it."""
        self._commit_pending()
        if self._ahead is not None:
            self._ahead.close()
        still_open = [o.client_order_id for o in self.ctx.journal.open_orders() if o.venue == self.venue]
        if still_open:
            self.ctx.log.warning(
                "stopping with open orders; the next start reconciles them with the venue",
                extra={"event": "open_at_stop", "orders": len(still_open), "first": still_open[:10]},
            )

    @property
    def reconciled(self) -> bool:
        """Whether every order of the previous incarnations is settled with the venue."""
        return not self.reconciling

    def _republish_tail(self) -> None:
        journal = self.ctx.journal
        for _, record in journal.records(after_seq=max(0, journal.last_seq() - _REPUBLISH_TAIL)):
            if isinstance(record, Fill | OrderUpdate) and record.venue == self.venue:
                self._publish(record)

    def _query(self, client_order_id: str) -> None:
        self.ctx.send(self.gateway, VenueOrderQuery(client_order_id=client_order_id, venue=self.venue))

    def _check_reconcile(self) -> None:
        if self.reconciling:
            # No timeout that gives up: trading before we know would risk a double order.
            self.ctx.log.warning(
                "still waiting for the venue to reconcile",
                extra={
                    "event": "reconcile_slow",
                    "waited_s": round(time.monotonic() - self._reconcile_started, 1),
                    "orders": sorted(self.reconciling)[:10],
                },
            )

    # -- messages ---------------------------------------------------------------------------
    def on_message(self, envelope: Envelope) -> None:
        """Orders and cancels (inbox, or cancels from the node); the venue's answers."""
        payload = envelope.payload
        if isinstance(payload, VenueEvents):
            self._on_events(payload.events)
        elif isinstance(payload, VenueOrderReport):
            self._on_report(payload)
        elif isinstance(payload, BreakerChanged):
            if payload.scope in self._scopes and payload.state == "open":
                self.cancel_all(f"breaker {payload.scope}: {payload.reason}")
        elif isinstance(payload, RiskStatus):
            if payload.trading_state == "HALTED":
                self.cancel_all("trading HALTED")
        elif isinstance(payload, Order | CancelOrder):
            if self.reconciled:
                self._take(payload)
            else:
                # Wait for reconciliation. An inbox message keeps its sender resending
                # (and us safe) until we ack; a control message (a breaker's cancel) has
                # nothing to hold.
                release = self.ctx.hold_ack() if envelope.topic.startswith("to.") else None
                self.waiting.append((payload, release))

    def _check_breakers(self, states: tuple[str, ...] = ("open",)) -> None:
        """Cancel-all while the journal says our venue's or the global breaker is in ``states``."""
        for scope in self._scopes:
            raw = self.ctx.journal.get_state(keys.BREAKER + scope)
            breaker = msgspec.json.decode(raw) if raw is not None else {}
            if breaker.get("state", "closed") in states:
                self.cancel_all(f"breaker {scope} {breaker['state']}: {breaker.get('reason', '')}")

    def cancel_all(self, reason: str) -> None:
        """Cancel every unfinished order of this venue (a breaker trip, trading HALTED)."""
        now = time.monotonic()
        # The orders sent but not in LMDB yet too, without writing first: a trip is often a storage
        # fault, and cancelling must not wait for a commit that may fail.
        orders = [o for o in self.ctx.journal.open_orders() if o.venue == self.venue]
        listed = {o.client_order_id for o in orders}
        orders += [r for r in self._pending if isinstance(r, Order) and r.client_order_id not in listed]
        sent = {
            o.client_order_id: self._cancels_sent[o.client_order_id]
            for o in orders
            if o.client_order_id in self._cancels_sent
        }
        self._cancels_sent = sent  # finished orders are forgotten
        due = [
            o
            for o in orders
            if o.client_order_id not in sent or now - sent[o.client_order_id] >= CANCEL_RESEND_S
        ]
        if not due:
            return
        self.ctx.log.warning(
            "cancelling every open order of the venue",
            extra={"event": "cancel_all", "reason": reason, "orders": len(due)},
        )
        for order in due:
            self._cancels_sent[order.client_order_id] = now
            cancel = CancelOrder(
                client_order_id=order.client_order_id,
                strategy_id=order.strategy_id,
                venue=order.venue,
                symbol=order.symbol,
                reason=reason,
                ts_ns=time.time_ns(),
            )
            if self.reconciled:
                self._cancel(cancel)
            else:
                self.waiting.append((cancel, None))

    def _take(self, payload: Order | CancelOrder) -> None:
        if isinstance(payload, Order):
            self._submit(payload)
        else:
            self._cancel(payload)

    def _submit(self, order: Order) -> None:
        journal = self.ctx.journal
        cid = order.client_order_id
        if cid in self._pending_orders or journal.order(cid) is not None:
            return  # sent once already (a resend from the risk guard); acked, never resent
        ahead = self._ahead
        if ahead is None:
            journal.append(order)
            self.ctx.send(self.gateway, order)
        else:
            # Durable in one flush before the send; into LMDB with the venue's answer (one commit
            # for both), or alone if that is slow (module docstring).
            if ahead.write((order,), unsettled=self._pending):
                self._settled_by_log()
            self.ctx.send(self.gateway, order)
            self._pending.append(order)
            self._pending_orders.add(cid)
            self._arm_commit(PENDING_COMMIT_S)
        metrics = self.ctx.metrics
        if metrics.enabled:
            now = time.time_ns()
            # From the risk guard's approval stamp to the order on its way to the venue.
            metrics.observe_since("sniperbot_intent_to_order_seconds", order.ts_ns)
            metrics.inc("sniperbot_orders_sent_total", venue=self.venue)
            if len(self._sent_ns) >= _MAX_ACK_TIMERS:
                self._sent_ns.clear()  # acks that never came (a venue outage): forget, never grow
            self._sent_ns[order.client_order_id] = now

    def _arm_commit(self, delay_s: float) -> None:
        """Commit what is pending within ``delay_s`` (a timer, unless an earlier one is armed)."""
        due = time.monotonic() + delay_s
        if due < self._commit_due:
            self._commit_due = due
            self.ctx.after(delay_s, self._commit_timer)

    def _commit_timer(self) -> None:
        self._commit_due = math.inf
        self._commit_pending()

    def _settled_by_log(self) -> None:
        """The log started a new generation and committed what was pending to LMDB itself."""
        self._pending = []
        self._pending_orders.clear()

    def _commit_pending(self) -> None:
        """Commit to LMDB what was logged ahead and is not there yet, in the order logged."""
        if self._pending:
            # One fsync, not two (Journal.append_many): they are durable in the log ahead already.
            self.ctx.journal.append_many(self._pending, sync_meta=False)
        self._pending = []
        self._pending_orders.clear()

    def _cancel(self, cancel: CancelOrder) -> None:
        journal = self.ctx.journal
        if cancel.client_order_id in self._pending_orders:
            self.ctx.send(self.gateway, cancel)  # sent, not in LMDB yet: unfinished by definition
            return
        if journal.order(cancel.client_order_id) is None:
            return  # never ours: nothing to cancel
        if journal.order_status(cancel.client_order_id) in TERMINAL_STATUSES:
            return  # already finished
        self.ctx.send(self.gateway, cancel)

    def _on_events(self, events: list[OrderUpdate | Fill]) -> None:
        refused = [e for e in events if isinstance(e, OrderUpdate) and e.reason == DUPLICATE]
        for update in refused:
            # The venue had it before: learn what really happened to it.
            self.ctx.log.warning(
                "venue refused a duplicate; asking for the real status",
                extra={"event": "duplicate_refused", "client_order_id": update.client_order_id},
            )
            self._query(update.client_order_id)
        self._record([e for e in events if not (isinstance(e, OrderUpdate) and e.reason == DUPLICATE)])

    def _on_report(self, report: VenueOrderReport) -> None:
        self._commit_pending()  # a report may concern one (after a duplicate refusal): look it up in LMDB
        cid = report.client_order_id
        journal = self.ctx.journal
        order = journal.order(cid)
        if report.known:
            events: list[OrderUpdate | Fill] = list(report.fills)
            if order is not None and report.status:
                status, eid = report.status, report.exchange_order_id
                events.append(update_of(order, status, report.reason, eid, report.ts_ns))  # type: ignore[arg-type]
            self._record(events)
        elif cid in self.reconciling and order is not None:
            self._resolve_unsent(order)
        self._settled(cid)

    def _resolve_unsent(self, order: Order) -> None:
        """The journal has it, the venue never got it: send it now once, or cancel it if stale."""
        age_s = (time.time_ns() - order.ts_ns) / 1e9
        if order.ts_ns > 0 and age_s <= self.resend_within_s:
            self.ctx.log.warning(
                "sending an order the previous incarnation journaled but never sent",
                extra={"event": "send_unsent", "client_order_id": order.client_order_id},
            )
            self.ctx.send(self.gateway, order)
            return
        self.ctx.log.warning(
            "cancelling an order that never reached the venue and is too old to send",
            extra={"event": "expired_unsent", "client_order_id": order.client_order_id, "age_s": age_s},
        )
        self._record([update_of(order, "cancelled", EXPIRED_UNSENT)])

    def _settled(self, client_order_id: str) -> None:
        if client_order_id not in self.reconciling:
            return
        self.reconciling.discard(client_order_id)
        self._count_reconciling()
        if self.reconciling:
            return
        self.ctx.log.info(
            "reconciled with the venue; accepting orders",
            extra={
                "event": "reconciled",
                "waited_s": round(time.monotonic() - self._reconcile_started, 3),
                "waiting": len(self.waiting),
            },
        )
        waiting, self.waiting = self.waiting, []
        for payload, release in waiting:
            self._take(payload)
            if release is not None:
                release()

    # -- journal, then publish ------------------------------------------------------------------
    def _record(self, events: list[OrderUpdate | Fill]) -> None:
        """Journal what is new (fills by id, updates that change a status), then publish it.

        Without the log ahead: committed to LMDB (one flush), then published. With it: logged (one
        flush), published, then committed to LMDB with what else is pending (the order). Either way
        nothing is published before it is durable. (Committing later, on a timer, was measured: the
        commit then lands on the next order's path.)
        """
        journal = self.ctx.journal
        ahead = self._ahead
        new: list[OrderUpdate | Fill] = journal.unseen(events, after=self._pending)  # type: ignore[assignment]
        if ahead is None:
            if new:
                # One fsync, not two (Journal.append_many): the order was made durable before it
                # was sent; an answer lost with the machine is asked again at start.
                journal.append_many(new, sync_meta=False)
        elif new:
            if ahead.write(new, unsettled=self._pending):
                self._settled_by_log()
            self._pending.extend(new)
        for event in new:
            self._publish(event)
        if ahead is not None:
            self._commit_pending()
        if new and self.ctx.metrics.enabled:
            self._count(new)

    def _count_reconciling(self) -> None:
        self.ctx.metrics.set("sniperbot_reconciliation_pending", len(self.reconciling), venue=self.venue)

    def _count(self, events: list[OrderUpdate | Fill]) -> None:
        """Metrics of what the venue did: status changes, venue rejections, fills, ack latency."""
        metrics = self.ctx.metrics
        for event in events:
            if isinstance(event, Fill):
                metrics.inc("sniperbot_fills_total", venue=self.venue)
                continue
            metrics.inc("sniperbot_order_updates_total", venue=self.venue, status=event.status)
            if event.status == "rejected":
                # A venue's reason is free text: one bounded label value for all of them.
                metrics.inc("sniperbot_orders_rejected_total", venue=self.venue, reason="venue")
            sent = self._sent_ns.pop(event.client_order_id, 0)
            if sent:
                metrics.observe_since("sniperbot_order_ack_seconds", sent)

    def _publish(self, event: OrderUpdate | Fill) -> None:
        if isinstance(event, Fill):
            self.ctx.publish(topic.fill(event.strategy_id), event)
        else:
            self.ctx.publish(topic.order_update(event.strategy_id), event)
