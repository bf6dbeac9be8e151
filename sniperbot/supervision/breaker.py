"""Circuit breakers: stop trading through a failing part of the tree, retry it later.

States: ``closed`` (trading), ``open`` (no new orders in scope; open orders in
scope are cancelled), ``half_open`` (the subtree runs again on probation; only
risk-reducing orders pass). Scopes are ``global``, ``venue:<name>`` and
``strategy:<id>`` (one strategy actor's crash loop: only that strategy stops).

A trip opens the breaker for a cooldown that doubles on each consecutive trip
(``base_cooldown_s`` .. ``max_cooldown_s``); after the cooldown the breaker is
half-open, and it closes once the subtree has run for the probe period. The
trip count resets after a breaker stayed closed for ``max_cooldown_s``.

**Crash loops trip, independent faults do not** (issue #14 point 6). A subtree's breaker
opens when its supervisor exceeds its restart intensity, and with ``[supervisor]
min_uptime_s`` that counts only the restarts of children that died right after they
started (:mod:`sniperbot.supervision.intensity`): a storm of unrelated kills, each
recovered in milliseconds, no longer trips it, so its cooldown no longer climbs. The
cooldown's own decay stays Kubernetes' rule for CrashLoopBackOff (back to the base delay
after a stable run): a breaker that stayed closed for ``max_cooldown_s`` starts again from
``base_cooldown_s``; one that trips again sooner keeps doubling, because each trip is now a
real crash loop, and a subtree that crash-loops every few minutes should be kept out longer
(and alerted on), not retried every ``base_cooldown_s`` for days. A gradual decay (one
doubling undone per cooldown spent closed) was considered and rejected for that reason.

Every change is journaled (``breaker/<scope>``) before it is announced, and the
journal is read at start: a node that crashed starts fail-closed (``global``
open, reason ``unclean_shutdown``) and re-closes only through the same
cooldown-and-probe cycle once every actor is running, or by an operator reset.

**Venue holds** (issue #9, NautilusTrader's rule: a venue that is not reconciled does
not trade). A live venue's gateway says in its ``VenueStatus`` whether a reconciliation
completed since it started and since its exchange was last down or banned
(:mod:`sniperbot.venues.ccxt.gateway`). While it has not, the node *holds* that venue's
breaker open (:meth:`BreakerBoard.hold`, reason starting with :data:`NOT_RECONCILED`:
the exchange unreachable at start, a lookup that keeps failing, a 418 ban with its end).
A hold is not timed: no cooldown half-opens it. It closes **automatically** as soon as
the gateway reports a completed reconciliation (``venue reconciled``; back to half-open
instead if the hold began during a half-open probation, which the supervisor's probe then
finishes): the condition that opened it is gone, and that is checked against the exchange
itself, which is more than an operator could check by hand; an operator reset closes it
too, but the next unreconciled status opens it again. While a hold is on, the supervisor's probe does not
close the breaker either (:meth:`sniperbot.node.Node.breaker_closed`). A hold is not a
trip: it leaves ``trips`` and the cooldown alone (every live gateway start holds its venue
until its first reconciliation, and a restart must not lengthen the supervisor's next
cooldown).

**Cancel-all on a trip.** When ``global`` or ``venue:<name>`` opens, and when trading goes
``HALTED``, the venue's executor cancels every unfinished order of its venue through its
gateway (:mod:`sniperbot.execution.executor`); a live gateway looks each one up and cancels
it at the exchange once the exchange answers. Since every live gateway start holds its
venue until reconciled, a gateway that crashes already has our resting orders cancelled by
its next incarnation. If a crash loop takes the venue subtree down before that, no gateway
runs during the cooldown: orders still resting at the exchange stay there (unwatched)
until the subtree is started again half-open, when the new executor cancels them before it
takes any order (the paper gateway cancels its resting orders at every start anyway). No
temporary cancel-only gateway is started.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from sniperbot.journal import keys
from sniperbot.messages import BreakerChanged

log = logging.getLogger("sniperbot.breaker")

BreakerState = Literal["closed", "open", "half_open"]
_KEY = keys.BREAKER
NOT_RECONCILED = "venue not reconciled"  # the reason prefix of a venue hold (see the module docstring)
_MAX_DOUBLINGS = 64  # far past any sane max_cooldown_s / base_cooldown_s ratio


class Breaker(msgspec.Struct):
    """One scope's breaker, as journaled."""

    scope: str
    state: BreakerState = "closed"
    trips: int = 0
    reason: str = ""
    cooldown_s: float = 0.0
    changed_ns: int = 0
    closed_ns: int = 0

    def announcement(self) -> BreakerChanged:
        """Its last change as the bus announces it (the node; the alerts actor reading the journal)."""
        return BreakerChanged(
            scope=self.scope,
            state=self.state,
            reason=self.reason,
            trips=self.trips,
            cooldown_s=self.cooldown_s,
            ts_ns=self.changed_ns,
        )


class BreakerBoard:
    """All breakers of a node: state, timing, persistence and announcements."""

    def __init__(
        self,
        store: Any,
        announce: Callable[[BreakerChanged], None],
        clock: Callable[[], int] = time.time_ns,
        base_cooldown_s: float = 5.0,
        max_cooldown_s: float = 300.0,
        probe_s: float = 10.0,
        on_reset: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._announce = announce
        self._on_reset = on_reset  # the node starts a tripped subtree at once
        self._clock = clock
        self.base_cooldown_s = base_cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.probe_s = probe_s
        self.breakers: dict[str, Breaker] = {}
        self._timed: set[str] = set()  # scopes this board moves on by itself (no subtree owns them)
        self._held_from: dict[str, BreakerState] = {}  # scope -> its state when a hold opened it

    def load(self) -> None:
        """Read journaled breakers; open ones are carried on by the board's own timer."""
        for key, raw in self._store.state_items(_KEY):
            breaker = msgspec.json.decode(raw, type=Breaker)
            self.breakers[key.removeprefix(_KEY)] = breaker
            if breaker.state != "closed":
                self._timed.add(breaker.scope)

    def state(self, scope: str) -> BreakerState:
        """The state of ``scope`` (closed if it never tripped)."""
        breaker = self.breakers.get(scope)
        return breaker.state if breaker else "closed"

    def snapshot(self) -> dict[str, BreakerState]:
        """Scope -> state, for ``admin status``."""
        return {scope: b.state for scope, b in sorted(self.breakers.items())}

    def details(self) -> list[dict[str, Any]]:
        """Every breaker with its trips, reason and cooldown."""
        return [msgspec.to_builtins(b) for _, b in sorted(self.breakers.items())]

    def trip(self, scope: str, reason: str, timed: bool = False) -> float:
        """Open ``scope``; returns the cooldown in seconds. ``timed``: the board half-opens it."""
        now = self._clock()
        breaker = self.breakers.get(scope) or Breaker(scope=scope)
        if breaker.state == "closed" and now - breaker.closed_ns > self.max_cooldown_s * 1e9:
            breaker.trips = 0
        breaker.trips += 1
        # The exponent is capped: a breaker that flaps for days (never quiet for max_cooldown_s)
        # counts past 1024 trips, and 2**1024 no longer converts to a float.
        doublings = min(breaker.trips - 1, _MAX_DOUBLINGS)
        breaker.cooldown_s = min(self.max_cooldown_s, self.base_cooldown_s * 2.0**doublings)
        if timed:
            self._timed.add(scope)
        self._set(breaker, "open", reason)
        return breaker.cooldown_s

    def hold(self, scope: str, reason: str) -> None:
        """Keep ``scope`` open for ``reason`` (a venue hold); not a trip: trips and cooldown stay.

        Not timed: it stays open until :meth:`close` (the node, on a reconciled venue) or a reset.
        """
        self._timed.discard(scope)
        breaker = self.breakers.get(scope) or Breaker(scope=scope)
        if breaker.state != "open":
            self._held_from[scope] = breaker.state
        if breaker.state != "open" or breaker.reason != reason:
            self._set(breaker, "open", reason)

    def release(self, scope: str, reason: str) -> None:
        """A hold's condition is gone: back to half-open if it was held during a probation, else closed."""
        before = self._held_from.pop(scope, "closed")
        breaker = self.breakers.get(scope)
        if breaker is None or breaker.state != "open":
            return
        if before == "half_open":
            self._set(breaker, "half_open", reason)  # the supervisor's probe closes it
        else:
            self.close(scope, reason)

    def explain(self, scope: str, was: str, reason: str) -> None:
        """An open breaker's reason ``was`` becomes ``reason``: its cause, heard after the trip.

        A crashed actor's error report can reach the node after its exit, when the trip already named
        the exit code. State, trips, cooldown and ``changed_ns`` stay (the cooldown runs on; the alerts
        actor, keyed on ``changed_ns``, does not alert twice); the journal, ``admin status`` and the
        bus carry the better reason.
        """
        breaker = self.breakers.get(scope)
        if breaker is None or breaker.state == "closed" or breaker.reason != was or was == reason:
            return
        breaker.reason = reason
        self._store.put_state(_KEY + breaker.scope, msgspec.json.encode(breaker))
        log.warning(  # the trip itself was logged (error) already: this names its cause
            "circuit breaker reason",
            extra={"event": "breaker_reason", "scope": scope, "state": breaker.state, "reason": reason},
        )
        self._announce(breaker.announcement())

    def half_open(self, scope: str) -> None:
        """Cooldown over: let the subtree run on probation."""
        breaker = self.breakers.get(scope)
        if breaker is not None and breaker.state == "open":
            self._set(breaker, "half_open", breaker.reason)

    def close(self, scope: str, reason: str = "probe passed") -> None:
        """The subtree ran through its probe period: trade normally."""
        breaker = self.breakers.get(scope)
        if breaker is not None and breaker.state != "closed":
            self._timed.discard(scope)
            breaker.closed_ns = self._clock()
            self._set(breaker, "closed", reason)

    def reset(self, scope: str) -> bool:
        """Operator override: close ``scope`` now. False if there is no such breaker.

        The operator's word replaces the cooldown and the probe: the breaker closes, and a
        subtree still waiting out its cooldown is started at once (``on_reset``), so trading
        through it resumes now. The trip count is kept: the next trip soon after still
        waits the longer cooldown.
        """
        if scope not in self.breakers:
            return False
        self.close(scope, "operator reset")
        if self._on_reset is not None:
            self._on_reset(scope)
        return True

    def tick(self, node_running: bool) -> None:
        """Move timed breakers on: open -> half_open after the cooldown, -> closed after the probe.

        Only while the whole tree runs: that is the health check after a crash.
        """
        if not node_running:
            return
        now = self._clock()
        for scope in list(self._timed):
            breaker = self.breakers[scope]
            elapsed = (now - breaker.changed_ns) / 1e9
            if breaker.state == "open" and elapsed >= breaker.cooldown_s:
                self.half_open(scope)
            elif breaker.state == "half_open" and elapsed >= self.probe_s:
                self.close(scope)

    def _set(self, breaker: Breaker, state: BreakerState, reason: str) -> None:
        breaker.state = state
        breaker.reason = reason
        breaker.changed_ns = self._clock()
        self.breakers[breaker.scope] = breaker
        # Journal first: a crash right after must not forget an open breaker.
        self._store.put_state(_KEY + breaker.scope, msgspec.json.encode(breaker))
        level = logging.INFO if state == "closed" else logging.ERROR
        log.log(
            level,
            "circuit breaker " + state,
            extra={
                "event": "breaker",
                "scope": breaker.scope,
                "state": state,
                "reason": reason,
                "trips": breaker.trips,
                "cooldown_s": breaker.cooldown_s,
            },
        )
        self._announce(breaker.announcement())
