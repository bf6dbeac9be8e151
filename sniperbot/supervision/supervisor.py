"""The supervisor: starts children in order, restarts them, escalates, stops them in reverse.

Supervisors live in the node process and are driven by the node's event loop
(they never block): a child process's exit is seen within milliseconds through
its sentinel file descriptor, a hung child by missed heartbeats. A restarted
child gets a new incarnation number; anything its predecessor still sends is
ignored.

Semantics are Erlang/OTP's ``supervisor`` (checklist ids in
``research/supervision-semantics.md``):

- strategies ``one_for_one``, ``one_for_all``, ``rest_for_one`` (siblings are
  stopped in reverse order, then the group starts again in order) and
  ``simple_one_for_one`` (one template, children added at run time);
- restart ``permanent`` (always), ``transient`` (after an abnormal exit),
  ``temporary`` (never; its spec is dropped when it ends);
- more than ``intensity`` restarts within ``period_s`` and the supervisor stops
  all its children in reverse order and fails to its parent; the failure of a
  supervisor counts as ``shutdown``, so only a permanent child supervisor is
  restarted by its parent;
- a restart that fails (the child dies before it is ready) counts too and is
  retried, so a child that cannot start eventually escalates.
- with ``min_uptime_s`` set in the flags (an extension), only crash loops count:
  the restart of a child that died before it was ready, or within
  ``min_uptime_s`` of becoming ready (a hung child: of its last heartbeat), counts
  toward the intensity (its supervisor's, or its own with a ``breaker``); the death
  of a child that ran longer is an independent fault, restarted at once without
  counting (:mod:`sniperbot.supervision.intensity`). A fault storm of independent
  kills keeps the node trading; a child that dies right after each start still trips
  its breaker or escalates as before.

Extensions, and departures from OTP:

- ``backoff`` delays the restarts of a child (exponential, jittered);
- a worker with a ``breaker`` scope has its own restart intensity (its spec's
  ``flags``) instead of counting toward its supervisor's: past it, its breaker
  opens and it alone stops (a strategy's crash loop trips that strategy, not its
  siblings), with the same cooldown and half-open cycle as a subtree;
- a child supervisor with a ``breaker`` scope does not fail its parent when it
  escalates: its breaker opens (trading through it stops), and after a cooldown
  that grows on each trip it is started again, half-open; it closes once the
  subtree has run for ``probe_s`` seconds. The node keeps the healthy parts
  trading;
- children added at run time are journaled by the host and come back when their
  supervisor restarts (OTP loses them, OTP-14);
- ``simple_one_for_one`` children have ids (``args["id"]``) so that operators
  can address them; OTP's have only pids.
- ``which_children`` lists children in start order (OTP: most recent first).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import msgspec

from sniperbot.messages import Heartbeat, Payload, Stop
from sniperbot.supervision.handle import ActorHandle
from sniperbot.supervision.intensity import RestartIntensity
from sniperbot.supervision.spec import ChildSpec

log = logging.getLogger("sniperbot.supervisor")

ChildState = Literal["idle", "starting", "running", "stopping", "stopped", "restarting", "tripped"]
SupervisorState = Literal["idle", "starting", "running", "stopping", "stopped", "failed"]

PROBE_S = 10.0  # a half-open subtree that runs this long closes its breaker


class SupervisorError(Exception):
    """An operator request the supervisor refuses; ``code`` is OTP's word for why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SupervisorHost(Protocol):
    """What the node provides to its supervisors."""

    heartbeat_interval_s: float
    heartbeat_liveness: int
    start_timeout_s: float

    def clock(self) -> float:
        """Monotonic seconds."""
        ...

    def start_actor(self, spec: ChildSpec, incarnation: int) -> ActorHandle:
        """Start one incarnation of a worker."""
        ...

    def watch(self, handle: ActorHandle, on_exit: Callable[[], None]) -> None:
        """Call ``on_exit`` when the incarnation ends."""
        ...

    def unwatch(self, handle: ActorHandle) -> None:
        """Stop watching an incarnation."""
        ...

    def send_control(self, actor_id: str, incarnation: int, payload: Payload) -> None:
        """Send a control message to one incarnation."""
        ...

    def next_incarnation(self, actor_id: str) -> int:
        """A node-wide increasing incarnation number for ``actor_id``."""
        ...

    def register(self, actor_id: str, child: Child) -> None:
        """Route control messages from ``actor_id`` to ``child``."""
        ...

    def root_failed(self, supervisor: Supervisor) -> None:
        """The root supervisor exceeded its intensity."""
        ...


class Child:
    """A supervisor's record of one child: its spec and its current incarnation."""

    def __init__(self, spec: ChildSpec, owner: Supervisor, dynamic: bool = False) -> None:
        self.spec = spec
        self.owner = owner
        self.dynamic = dynamic
        self.state: ChildState = "idle"
        self.incarnation = 0
        self.previous_incarnation = 0  # its crash report may arrive after its successor started
        self.handle: ActorHandle | None = None
        self.supervisor: Supervisor | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.ready_at = 0.0
        self.last_heartbeat = 0.0
        self.stop_deadline = 0.0
        self.invalid_frames = 0
        self.handled = 0
        self.last_exit: str = ""
        self.backoff_attempt = 0
        self.restart_due = 0.0
        self.removed = False
        self.killed: ActorHandle | None = None  # the incarnation already sent SIGKILL (kill once, log once)
        self.hung_since = 0.0  # a hung incarnation's last heartbeat: where its uptime ended
        self.on_trial = False  # added by start_child and not yet ready once: a failed start drops it
        self.last_error = ""  # what the last incarnation said it crashed on (class and place, no message)
        self.trip_reason = ""  # the reason its last breaker trip gave
        # A worker with a breaker scope counts its own restarts (its spec's flags), not its supervisor's.
        self.own_intensity: RestartIntensity | None = (
            RestartIntensity(
                spec.flags.intensity, spec.flags.period_s, owner.host.clock, spec.flags.min_uptime_s
            )
            if spec.breaker and spec.type == "worker"
            else None
        )
        self._ready_waiters: list[Callable[[], None]] = []
        self._stop_waiters: list[Callable[[], None]] = []

    @property
    def active(self) -> bool:
        """Whether an incarnation or subtree is up (or on its way up or down)."""
        if self.supervisor is not None:
            return self.supervisor.state not in ("stopped", "failed", "idle")
        return self.handle is not None

    def on_heartbeat(self, heartbeat: Heartbeat, now: float) -> None:
        """Note that the child is alive and what it reported."""
        self.last_heartbeat = now
        self.invalid_frames = heartbeat.invalid_frames
        self.handled = heartbeat.handled

    def _fire(self, waiters: list[Callable[[], None]]) -> None:
        pending = list(waiters)
        waiters.clear()
        for waiter in pending:
            waiter()


class Supervisor:
    """One supervisor of the tree."""

    def __init__(self, spec: ChildSpec, host: SupervisorHost, parent: Supervisor | None = None) -> None:
        self.spec = spec
        self.id = spec.id
        self.host = host
        self.parent = parent
        self.strategy = spec.flags.strategy
        self.template = spec.children[0] if self.strategy == "simple_one_for_one" else None
        self.children: list[Child] = (
            [] if self.template is not None else [Child(c, self) for c in spec.children]
        )
        self.intensity = RestartIntensity(
            spec.flags.intensity, spec.flags.period_s, host.clock, spec.flags.min_uptime_s
        )
        self.state: SupervisorState = "idle"
        self.started_at = 0.0
        self._on_stopped: Callable[[], None] | None = None
        self._timers: list[tuple[float, Callable[[], None]]] = []
        self._jitter = random.Random(spec.id)

    # -- start ----------------------------------------------------------------------------
    def start(self, on_started: Callable[[], None] | None = None) -> None:
        """Start the children one after the other, each once the previous one is ready."""
        self.state = "starting"
        self.started_at = self.host.clock()
        for spec in self._persisted_specs():
            if all(c.spec.id != spec.id for c in self.children):
                self.children.append(Child(spec, self, dynamic=True))

        def started() -> None:
            if self.state == "starting":
                self.state = "running"
                if on_started:
                    on_started()

        self._start_in_order(list(self.children), started)

    def _start_in_order(self, children: list[Child], on_done: Callable[[], None]) -> None:
        queue = list(children)

        def step() -> None:
            while queue:
                if self.state in ("stopping", "stopped", "failed"):
                    return  # a stop overtook this start; it finishes on its own
                child = queue[0]
                if child.state == "idle" and not child.removed:
                    self._start_child(child)
                if child.state in ("starting", "restarting") and not child.removed:
                    child._ready_waiters.append(step)
                    return
                queue.pop(0)  # running, or given up on (stopped, tripped, removed)
            on_done()

        step()

    def _start_child(self, child: Child) -> None:
        now = self.host.clock()
        child.started_at = now
        child.last_heartbeat = now
        child.ready_at = 0.0
        child.hung_since = 0.0
        child.state = "starting"
        if child.spec.type == "supervisor":
            child.supervisor = Supervisor(child.spec, self.host, parent=self)
            child.supervisor.start(on_started=lambda: self._child_ready(child))
            return
        child.previous_incarnation = child.incarnation
        child.incarnation = self.host.next_incarnation(child.spec.id)
        self.host.register(child.spec.id, child)
        handle = self.host.start_actor(child.spec, child.incarnation)
        child.handle = handle
        self.host.watch(handle, lambda: self._child_exited(child, handle))

    def on_ready(self, child: Child) -> None:
        """The child's current incarnation reported Ready."""
        if child.state == "starting":
            log.info(
                "child ready",
                extra={"event": "child_ready", "child": child.spec.id, "incarnation": child.incarnation},
            )
            self._child_ready(child)

    def _child_ready(self, child: Child) -> None:
        child.state = "running"
        now = self.host.clock()
        child.ready_at = now
        child.last_heartbeat = now
        child._fire(child._ready_waiters)

    # -- failures -------------------------------------------------------------------------
    def _child_exited(self, child: Child, handle: ActorHandle) -> None:
        if child.handle is not handle:
            return  # a replaced incarnation's late exit
        code = handle.exitcode()
        self.host.unwatch(handle)
        handle.release()
        child.handle = None
        reason = _exit_reason(code, child.state == "stopping")
        child.last_exit = reason
        if child.state == "stopping" or self.state in ("stopping", "stopped", "failed"):
            self._child_down(child)
            return
        log.warning(
            "child exited",
            extra={
                "event": "child_exit",
                "supervisor": self.id,
                "child": child.spec.id,
                "incarnation": child.incarnation,
                "reason": reason,
                "exit_code": code,
            },
        )
        self._child_failed(child, abnormal=reason != "normal")

    def _child_down(self, child: Child) -> None:
        """A child we asked to stop (or that died while we stop everything) is down."""
        child.state = "stopped"
        if child.spec.restart == "temporary":
            self._remove(child)
        child._fire(child._stop_waiters)
        child._fire(child._ready_waiters)

    def _child_supervisor_failed(self, child: Child) -> None:
        child.last_exit = "shutdown"
        if child.state == "stopping" or self.state in ("stopping", "stopped", "failed"):
            self._child_down(child)
            return
        if child.spec.breaker:
            self._trip(child)
            return
        # OTP: an escalating supervisor exits with `shutdown`, so only a permanent one restarts.
        self._child_failed(child, abnormal=False)

    def _child_failed(self, child: Child, abnormal: bool) -> None:
        was_starting = child.state == "starting"
        if child.on_trial:
            # OTP start_child: a child whose first start fails is not added (and was never
            # journaled), so a bad spec cannot crash-loop this node or every later one.
            log.warning(
                "added child failed to start; dropped",
                extra={"event": "start_failed", "child": child.spec.id},
            )
            child.state = "stopped"
            self._remove(child)
            child.on_trial = False
            child._fire(child._ready_waiters)
            return
        now = self.host.clock()
        ran_for = now - child.started_at
        # Uptime since it was last ready (None: it never was): what tells a crash loop from an
        # independent fault. A hung child's life ended at its last heartbeat, not when it was killed.
        uptime = (child.hung_since or now) - child.ready_at if child.ready_at else None
        child.state = "stopped"
        restart = child.spec.restart
        if restart == "temporary" or (restart == "transient" and not abnormal):
            if restart == "temporary":
                self._remove(child)
            child._fire(child._ready_waiters)
            return
        if child.own_intensity is not None:
            if not child.own_intensity.allow(uptime):
                self._trip(child)  # this worker alone stops; its siblings and its supervisor go on
                return
        elif not self.intensity.allow(uptime):
            self._escalate(child)
            return
        child.restarts += 1
        backoff = child.spec.backoff
        if backoff is not None and ran_for >= backoff.reset_after_s:
            child.backoff_attempt = 0
        if was_starting or self.strategy in ("one_for_one", "simple_one_for_one"):
            self._restart_later(child)
            return
        index = self.children.index(child)
        group = self.children if self.strategy == "one_for_all" else self.children[index:]
        others = [c for c in group if c is not child and c.active]

        def start_group() -> None:
            survivors = [c for c in group if not c.removed and (c is child or c in others)]
            for c in survivors:
                c.state = "idle"
            self._start_in_order(survivors, lambda: None)

        self._stop_in_reverse(others, start_group)

    def _restart_later(self, child: Child) -> None:
        backoff = child.spec.backoff
        if backoff is None:
            self._start_child(child)
            return
        child.backoff_attempt += 1
        delay = backoff.delay(child.backoff_attempt, self._jitter.uniform(-1.0, 1.0))
        child.state = "restarting"
        child.restart_due = self.host.clock() + delay
        log.info(
            "restart delayed",
            extra={"event": "backoff", "child": child.spec.id, "delay_s": round(delay, 3)},
        )

        def restart() -> None:
            if child.state == "restarting" and self.state in ("starting", "running"):
                self._start_child(child)

        self._timers.append((child.restart_due, restart))

    def _escalate(self, offender: Child) -> None:
        log.error(
            "restart intensity reached; stopping all children and failing to the parent",
            extra={
                "event": "escalate",
                "supervisor": self.id,
                "offender": offender.spec.id,
                "intensity": self.intensity.intensity,
                "period_s": self.intensity.period_s,
                "min_uptime_s": self.intensity.min_uptime_s,
            },
        )
        self.stop(on_stopped=self._report_failure)

    def _report_failure(self) -> None:
        self.state = "failed"
        if self.parent is None:
            self.host.root_failed(self)
            return
        for child in self.parent.children:
            if child.supervisor is self:
                self.parent._child_supervisor_failed(child)
                return

    # -- circuit breakers ----------------------------------------------------------------
    def _trip(self, child: Child) -> None:
        if child.spec.type == "worker":
            why = f"{child.spec.id} crash loop ({child.last_error or child.last_exit})"
        else:
            why = f"{child.spec.id} escalated"
        child.trip_reason = why
        cooldown = self._breaker_host().breaker_tripped(child.spec.breaker, why)
        child.state = "tripped"
        child.restart_due = due = self.host.clock() + cooldown

        def half_open() -> None:
            # ``restart_due`` moved: an operator reset restarted the subtree already.
            due_now = child.state == "tripped" and child.restart_due == due
            if due_now and self.state in ("starting", "running"):
                self._breaker_host().breaker_half_open(child.spec.breaker)
                child.restarts += 1
                self._start_child(child)

        self._timers.append((child.restart_due, half_open))

    def _breaker_host(self) -> Any:
        return self.host

    def crash_explained(self, child: Child) -> None:
        """``child`` reported what it crashed on (``last_error``): if that crash tripped its breaker on
        the exit code alone (the report lost the race with the exit), the breaker names the error now."""
        if child.state != "tripped" or child.spec.type != "worker" or not child.last_error:
            return
        why = f"{child.spec.id} crash loop ({child.last_error})"
        self._breaker_host().breaker_explained(child.spec.breaker, child.trip_reason, why)
        child.trip_reason = why

    def restart_tripped(self, scope: str) -> bool:
        """Start the subtree tripped on breaker ``scope`` now, not after its cooldown (operator reset).

        Returns whether a tripped subtree was found (anywhere below this supervisor).
        """
        for child in self.children:
            if child.spec.breaker == scope and child.state == "tripped":
                if self.state not in ("starting", "running"):
                    return False
                child.restart_due = self.host.clock()  # its cooldown timer no longer matches
                child.restarts += 1
                self._start_child(child)
                return True
            if child.supervisor is not None and child.supervisor.restart_tripped(scope):
                return True
        return False

    # -- liveness -------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        """Run due timers; check start, heartbeat and shutdown deadlines; close probed breakers.

        ``now``: the host's clock reading to judge by (the host's clock if None). A host that
        forgives its own pauses passes the reading it forgave by: a pause between that reading and
        a second one would count against every child at once.
        """
        if now is None:
            now = self.host.clock()
        if self._timers:
            due = [t for t in self._timers if t[0] <= now]
            self._timers = [t for t in self._timers if t[0] > now]
            for _, callback in due:
                callback()
        hung_after = self.host.heartbeat_interval_s * self.host.heartbeat_liveness
        for child in list(self.children):
            if (
                child.spec.breaker
                and child.state == "running"
                and now - child.ready_at >= getattr(self.host, "breaker_probe_s", PROBE_S)
                and self._breaker_host().breaker_state(child.spec.breaker) == "half_open"
            ):
                self._breaker_host().breaker_closed(child.spec.breaker)
            if child.supervisor is not None:
                child.supervisor.tick(now)
                continue
            if child.handle is None:
                continue
            if child.state == "starting" and now - child.started_at > self.host.start_timeout_s:
                self._kill(child, "start_timeout")
            elif child.state == "running" and now - child.last_heartbeat > hung_after:
                self._kill(child, "hung")
            elif child.state == "stopping" and now > child.stop_deadline:
                self._kill(child, "shutdown_timeout")

    def send_heartbeats(self) -> None:
        """Tell every live child below here that its supervisor is alive."""
        for child in self.children:
            if child.supervisor is not None:
                child.supervisor.send_heartbeats()
            elif child.handle is not None and child.state in ("starting", "running"):
                self.host.send_control(
                    child.spec.id, child.incarnation, Heartbeat(seq=0, ts_ns=time.time_ns())
                )

    def _kill(self, child: Child, why: str) -> None:
        handle = child.handle
        if handle is None or child.killed is handle:
            return  # killed already: its exit is on the way (a loaded machine may take a few ticks)
        child.killed = handle
        if why == "hung":
            child.hung_since = child.last_heartbeat
        log.warning(
            "killing child",
            extra={
                "event": "kill",
                "supervisor": self.id,
                "child": child.spec.id,
                "why": why,
                "incarnation": child.incarnation,
            },
        )
        handle.kill()
        if child.spec.placement == "thread":
            # A thread cannot be killed; abandon it and treat it as exited now.
            self._child_exited(child, handle)

    # -- stop -----------------------------------------------------------------------------
    def stop(self, on_stopped: Callable[[], None] | None = None) -> None:
        """Stop the children in reverse start order; ``on_stopped`` runs when all are down."""
        if self.state in ("stopping", "stopped", "failed"):
            return
        self.state = "stopping"
        self._timers.clear()
        self._on_stopped = on_stopped

        def stopped() -> None:
            self.state = "stopped"
            if self._on_stopped:
                callback, self._on_stopped = self._on_stopped, None
                callback()

        self._stop_in_reverse(list(self.children), stopped)

    def _stop_in_reverse(self, children: list[Child], on_done: Callable[[], None]) -> None:
        queue = list(reversed(children))

        def step() -> None:
            while queue:
                child = queue[0]
                if not child.active:
                    queue.pop(0)
                    if child.state in ("restarting", "tripped", "starting"):
                        child.state = "stopped"
                    continue
                child._stop_waiters.append(step)
                self._request_stop(child)
                return  # resumes when the child is down (at once for a thread killed outright)
            on_done()

        step()

    def _request_stop(self, child: Child) -> None:
        child.state = "stopping"
        if child.supervisor is not None:
            child.supervisor.stop(on_stopped=lambda: self._child_down(child))
            return
        shutdown = child.spec.shutdown_s
        if shutdown == "brutal_kill":
            child.stop_deadline = 0.0
            self._kill(child, "brutal_kill")
        else:
            child.stop_deadline = self.host.clock() + shutdown
            self.host.send_control(child.spec.id, child.incarnation, Stop())

    # -- operator API (OTP's management functions) ----------------------------------------
    def start_child(self, spec: ChildSpec | dict[str, Any], on_ready: Callable[[], None]) -> Child:
        """Add and start a child (``simple_one_for_one``: ``spec`` is the args with an ``id``).

        Errors (``SupervisorError.code``): ``already_present`` (a stopped child with
        that id exists), ``already_started``, ``invalid_spec``.
        """
        if self.state not in ("starting", "running"):
            raise SupervisorError("not_running", f"supervisor {self.id} is {self.state}")
        if self.template is not None:
            if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
                raise SupervisorError("invalid_spec", "simple_one_for_one takes args with a string 'id'")
            args = {**self.template.args, **{k: v for k, v in spec.items() if k != "id"}}
            try:
                spec = msgspec.structs.replace(self.template, id=spec["id"], args=args)
            except ValueError as e:
                raise SupervisorError("invalid_spec", str(e)) from None
        if not isinstance(spec, ChildSpec):
            raise SupervisorError("invalid_spec", "a full child spec is required")
        existing = self.find(spec.id)
        if existing is not None:
            if existing.active:
                raise SupervisorError("already_started", f"child {spec.id} is already running")
            raise SupervisorError("already_present", f"child {spec.id} exists and is not running")
        child = Child(spec, self, dynamic=True)
        child.on_trial = True
        self.children.append(child)

        def started() -> None:
            # Journaled only once it has run: a spec that cannot start is not kept.
            if child.on_trial and child.state == "running":
                child.on_trial = False
                self._persist(child)
            on_ready()

        self._start_in_order([child], started)
        return child

    def terminate_child(self, child_id: str, on_done: Callable[[], None]) -> None:
        """Stop a child and keep its spec (a temporary one is dropped). Errors: ``not_found``."""
        child = self._get(child_id)
        if not child.active and child.state not in ("restarting", "tripped"):
            on_done()
            return
        self._stop_in_reverse([child], on_done)

    def restart_child(self, child_id: str, on_ready: Callable[[], None]) -> None:
        """Start a stopped child again. Errors: ``not_found``, ``running``, ``restarting``."""
        child = self._get(child_id)
        if child.state in ("restarting", "tripped"):
            raise SupervisorError("restarting", f"child {child_id} is waiting to restart")
        if child.active:
            raise SupervisorError("running", f"child {child_id} is running")
        child.state = "idle"
        self._start_in_order([child], on_ready)

    def delete_child(self, child_id: str) -> None:
        """Forget a stopped child's spec. Errors: ``not_found``, ``running``, ``restarting``."""
        child = self._get(child_id)
        if child.state in ("restarting", "tripped"):
            raise SupervisorError("restarting", f"child {child_id} is waiting to restart")
        if child.active:
            raise SupervisorError("running", f"child {child_id} is running; terminate it first")
        self._remove(child)

    def which_children(self) -> list[dict[str, Any]]:
        """Children in start order: id, state, pid or ``restarting``, kind, placement, incarnation."""
        return [
            {
                "index": i,
                "id": c.spec.id,
                "state": c.state,
                "ref": "restarting"
                if c.state in ("restarting", "tripped")
                else (c.handle.pid if c.handle is not None else None),
                "kind": c.spec.type,
                "placement": c.spec.placement if c.spec.type == "worker" else "node",
                "incarnation": c.incarnation,
                "dynamic": c.dynamic,
            }
            for i, c in enumerate(self.children)
        ]

    def count_children(self) -> dict[str, int]:
        """OTP's counts: specs, active, supervisors, workers."""
        return {
            "specs": len(self.children),
            "active": sum(1 for c in self.children if c.active),
            "supervisors": sum(1 for c in self.children if c.spec.type == "supervisor"),
            "workers": sum(1 for c in self.children if c.spec.type == "worker"),
        }

    def get_childspec(self, child_id: str) -> ChildSpec:
        """The full spec of a child (defaults filled in). Errors: ``not_found``."""
        return self._get(child_id).spec

    def find(self, child_id: str) -> Child | None:
        """The child with this id, if any."""
        return next((c for c in self.children if c.spec.id == child_id), None)

    def find_supervisor(self, sup_id: str) -> Supervisor | None:
        """This supervisor or one below it, by id."""
        if self.id == sup_id:
            return self
        for child in self.children:
            if child.supervisor is not None:
                found = child.supervisor.find_supervisor(sup_id)
                if found is not None:
                    return found
        return None

    def _get(self, child_id: str) -> Child:
        child = self.find(child_id)
        if child is None:
            raise SupervisorError("not_found", f"no child {child_id!r} under {self.id}")
        return child

    def _remove(self, child: Child) -> None:
        if child in self.children:
            self.children.remove(child)
        child.removed = True
        if child.dynamic and not child.on_trial:
            self._persist(child, delete=True)

    def _persist(self, child: Child, delete: bool = False) -> None:
        store = getattr(self.host, "persist_child_spec", None)
        if store is not None:
            store(self.id, child.spec, delete)

    def _persisted_specs(self) -> list[ChildSpec]:
        load = getattr(self.host, "persisted_child_specs", None)
        return list(load(self.id)) if load is not None else []

    # -- inspection -----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """This subtree as plain data for ``admin tree``."""
        now = self.host.clock()
        return {
            "id": self.id,
            "kind": "supervisor",
            "placement": "node",
            "pid": None,
            "incarnation": None,
            "state": self.state,
            "restarts": 0,
            "uptime_s": round(now - self.started_at, 3) if self.started_at else 0.0,
            "strategy": self.strategy,
            "intensity": self.spec.flags.intensity,
            "period_s": self.spec.flags.period_s,
            "min_uptime_s": self.spec.flags.min_uptime_s,  # restarts of children up longer do not count
            "restarts_in_window": self.intensity.recent,
            "children": [self._describe_child(c, now) for c in self.children],
        }

    def _describe_child(self, child: Child, now: float) -> dict[str, Any]:
        if child.supervisor is not None and child.state != "tripped":
            node = child.supervisor.describe()
            node["restarts"] = child.restarts
            node["breaker"] = child.spec.breaker or None
            return node
        if child.spec.type == "supervisor":
            return {
                "id": child.spec.id,
                "kind": "supervisor",
                "placement": "node",
                "pid": None,
                "incarnation": None,
                "state": child.state,
                "restarts": child.restarts,
                "uptime_s": 0.0,
                "breaker": child.spec.breaker or None,
                "children": [],
            }
        running = child.handle is not None and child.state in ("running", "starting")
        return {
            "id": child.spec.id,
            "kind": "worker",
            "placement": child.spec.placement,
            "pid": child.handle.pid if child.handle is not None else None,
            "incarnation": child.incarnation,
            "state": child.state,
            "restarts": child.restarts,
            "uptime_s": round(now - child.started_at, 3) if running else 0.0,
            "actor": child.spec.actor,
            "last_exit": child.last_exit,
            "last_error": child.last_error,
            "breaker": child.spec.breaker or None,
            "invalid_frames": child.invalid_frames,
            "handled": child.handled,
            "dynamic": child.dynamic,
            "children": [],
        }

    def forgive(self, paused_s: float) -> None:
        """The supervising process did not run for ``paused_s`` (a VM or process pause): the heartbeats
        its workers could not deliver meanwhile are not held against them (each gets the time back)."""
        for child in self.workers():
            if child.state == "running":
                child.last_heartbeat += paused_s

    def workers(self) -> list[Child]:
        """Every worker below this supervisor, in start order."""
        out: list[Child] = []
        for child in self.children:
            if child.supervisor is not None:
                out.extend(child.supervisor.workers())
            elif child.spec.type == "worker":
                out.append(child)
        return out


def _exit_reason(code: int | None, requested: bool) -> str:
    if requested:
        return "shutdown"
    if code == 0:
        return "normal"
    if code is not None and code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"
