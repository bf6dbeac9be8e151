"""The supervisor: starts children in order, restarts them, escalates, stops them in reverse.

Supervisors live in the node process and are driven by the node's event loop
(they never block): a child process's exit is seen within milliseconds through
its sentinel file descriptor, a hung child by missed heartbeats. A restarted
child gets a new incarnation number; anything its predecessor still sends is
ignored.

Exit reasons, as in OTP: exit code 0 is ``normal``; a stop the supervisor asked
for is ``shutdown``; anything else (a signal, a crash, a hang) is abnormal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from sniperbot.actors.placement import ActorHandle
from sniperbot.messages import Heartbeat, Payload, Stop
from sniperbot.supervision.intensity import RestartIntensity
from sniperbot.supervision.spec import ChildSpec

log = logging.getLogger("sniperbot.supervisor")

ChildState = Literal["idle", "starting", "running", "stopping", "stopped", "restarting"]


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

    def __init__(self, spec: ChildSpec, owner: Supervisor) -> None:
        self.spec = spec
        self.owner = owner
        self.state: ChildState = "idle"
        self.incarnation = 0
        self.handle: ActorHandle | None = None
        self.supervisor: Supervisor | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.last_heartbeat = 0.0
        self.stop_deadline = 0.0
        self.invalid_frames = 0
        self.handled = 0
        self.last_exit: str = ""

    def on_heartbeat(self, heartbeat: Heartbeat, now: float) -> None:
        """Note that the child is alive and what it reported."""
        self.last_heartbeat = now
        self.invalid_frames = heartbeat.invalid_frames
        self.handled = heartbeat.handled


class Supervisor:
    """One supervisor of the tree (one_for_one; OTP intensity and escalation)."""

    def __init__(self, spec: ChildSpec, host: SupervisorHost, parent: Supervisor | None = None) -> None:
        self.spec = spec
        self.id = spec.id
        self.host = host
        self.parent = parent
        self.children = [Child(c, self) for c in spec.children]
        self.intensity = RestartIntensity(spec.flags.intensity, spec.flags.period_s, host.clock)
        self.state: Literal["idle", "starting", "running", "stopping", "stopped", "failed"] = "idle"
        self.started_at = 0.0
        self._cursor = 0
        self._on_started: Callable[[], None] | None = None
        self._on_stopped: Callable[[], None] | None = None
        self._failed = False

    # -- start ----------------------------------------------------------------------------
    def start(self, on_started: Callable[[], None] | None = None) -> None:
        """Start the children one after the other, each once the previous one is ready."""
        self.state = "starting"
        self.started_at = self.host.clock()
        self._on_started = on_started
        self._cursor = 0
        self._start_next()

    def _start_next(self) -> None:
        while self.state == "starting" and self._cursor < len(self.children):
            child = self.children[self._cursor]
            self._start_child(child)
            if child.state != "running":
                return  # resumes from _child_ready
            self._cursor += 1
        if self.state == "starting":
            self.state = "running"
            if self._on_started:
                self._on_started()

    def _start_child(self, child: Child) -> None:
        now = self.host.clock()
        child.started_at = now
        child.last_heartbeat = now
        if child.spec.type == "supervisor":
            child.supervisor = Supervisor(child.spec, self.host, parent=self)
            child.state = "starting"
            child.supervisor.start(on_started=lambda: self._child_ready(child))
            return
        child.incarnation = self.host.next_incarnation(child.spec.id)
        child.state = "starting"
        self.host.register(child.spec.id, child)
        child.handle = self.host.start_actor(child.spec, child.incarnation)
        handle = child.handle
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
        child.last_heartbeat = self.host.clock()
        self._advance_start_past(child)

    # -- failures -------------------------------------------------------------------------
    def _child_exited(self, child: Child, handle: ActorHandle) -> None:
        if child.handle is not handle:
            return
        code = handle.exitcode()
        self.host.unwatch(handle)
        handle.release()
        child.handle = None
        reason = _exit_reason(code, child.state == "stopping")
        child.last_exit = reason
        if child.state == "stopping" or self.state in ("stopping", "stopped", "failed"):
            child.state = "stopped"
            self._continue_stop(child)
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
        self._maybe_restart(child, abnormal=reason != "normal")

    def _child_supervisor_failed(self, child: Child) -> None:
        child.supervisor = None
        child.last_exit = "shutdown"
        if self.state in ("stopping", "stopped", "failed"):
            child.state = "stopped"
            self._continue_stop(child)
            return
        # OTP: an escalating supervisor exits with `shutdown`, so only a permanent one restarts.
        self._maybe_restart(child, abnormal=False)

    def _maybe_restart(self, child: Child, abnormal: bool) -> None:
        restart = child.spec.restart
        if restart == "temporary" or (restart == "transient" and not abnormal):
            child.state = "stopped"
            self._advance_start_past(child)
            return
        if not self.intensity.allow():
            child.state = "stopped"
            self._escalate(child)
            return
        child.restarts += 1
        child.state = "restarting"
        self._start_child(child)

    def _advance_start_past(self, child: Child) -> None:
        """If the start sequence waits on ``child``, move on to the next one."""
        if (
            self.state == "starting"
            and self._cursor < len(self.children)
            and self.children[self._cursor] is child
        ):
            self._cursor += 1
            self._start_next()

    def _escalate(self, offender: Child) -> None:
        log.error(
            "restart intensity reached; stopping all children and failing to the parent",
            extra={
                "event": "escalate",
                "supervisor": self.id,
                "offender": offender.spec.id,
                "intensity": self.intensity.intensity,
                "period_s": self.intensity.period_s,
            },
        )
        self._failed = True
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

    # -- liveness -------------------------------------------------------------------------
    def tick(self) -> None:
        """Check start timeouts, heartbeat deadlines and shutdown deadlines below here."""
        now = self.host.clock()
        hung_after = self.host.heartbeat_interval_s * self.host.heartbeat_liveness
        for child in self.children:
            if child.supervisor is not None:
                child.supervisor.tick()
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
        if handle is None:
            return
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
        self._on_stopped = on_stopped
        self._cursor = len(self.children)
        self._stop_next()

    def _stop_next(self) -> None:
        while self._cursor > 0:
            child = self.children[self._cursor - 1]
            if child.supervisor is not None and child.supervisor.state not in ("stopped", "failed"):
                child.state = "stopping"
                sup = child.supervisor
                sup.stop(on_stopped=lambda c=child: self._child_stopped(c))
                return
            if child.handle is not None:
                child.state = "stopping"
                shutdown = child.spec.shutdown_s
                if shutdown == "brutal_kill":
                    child.stop_deadline = 0.0
                    self._kill(child, "brutal_kill")
                else:
                    child.stop_deadline = self.host.clock() + shutdown
                    self.host.send_control(child.spec.id, child.incarnation, Stop())
                return  # resumes from _child_exited (already done for a thread killed at once)
            child.state = "stopped"
            self._cursor -= 1
        self.state = "stopped"
        if self._on_stopped:
            callback, self._on_stopped = self._on_stopped, None
            callback()

    def _child_stopped(self, child: Child) -> None:
        child.state = "stopped"
        self._continue_stop(child)

    def _continue_stop(self, child: Child) -> None:
        if self.state != "stopping":
            return
        if self._cursor > 0 and self.children[self._cursor - 1] is child:
            self._cursor -= 1
            self._stop_next()

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
            "strategy": self.spec.flags.strategy,
            "intensity": self.spec.flags.intensity,
            "period_s": self.spec.flags.period_s,
            "restarts_in_window": self.intensity.recent,
            "children": [self._describe_child(c, now) for c in self.children],
        }

    def _describe_child(self, child: Child, now: float) -> dict[str, Any]:
        if child.supervisor is not None:
            node = child.supervisor.describe()
            node["restarts"] = child.restarts
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
            "invalid_frames": child.invalid_frames,
            "handled": child.handled,
            "children": [],
        }

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
