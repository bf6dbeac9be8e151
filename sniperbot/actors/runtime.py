"""The actor runtime: one event loop per actor, the same for every placement.

It owns the actor's sockets (bus publisher and subscriber, reliable inbox and
outboxes, control DEALER to the supervisor), delivers decoded messages to the
actor, runs its timers, heartbeats to the supervisor and stops itself when the
supervisor goes silent (an orphan must not keep trading).
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import importlib
import itertools
import logging
import os
import random
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import zmq

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.logs import actor_logger
from sniperbot.messages import (
    ActorError,
    Crash,
    Envelope,
    Heartbeat,
    InvalidFrame,
    Payload,
    Ready,
    SnapshotEnd,
    SnapshotRequest,
    Stop,
    decode_envelope,
)
from sniperbot.messages import topics as topic
from sniperbot.metrics import NULL_REGISTRY, Registry, set_current, set_process_default
from sniperbot.rundir import RunDir
from sniperbot.transport.auth import AUTHORITY, Signer, Verifier
from sniperbot.transport.bus import Publisher, Subscriber, bind_private, is_marked, split_message, tune
from sniperbot.transport.direct import PollWatch
from sniperbot.transport.fanout import LocalBus, Subscription
from sniperbot.transport.reliable import Identity, Inbox, Outbox, decode_routed

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

# Exit codes a supervisor reads as a reason (OTP: normal / shutdown / abnormal).
EXIT_NORMAL = 0
EXIT_CRASH = 1
EXIT_ORPHANED = 3

_DRAIN_BATCH = 2048  # messages taken from one socket before the others get a turn
_RESEND_CHECK_S = 0.05
_ACK_IDLE_MS = 1  # queued acks go out after this long without input (see step)
_ERROR_LINGER_MS = 200  # how long a crashed actor waits for its ActorError to reach the node (close)
# Message tracing for benchmarks (``bench/tick_to_trade.py --trace``): when this variable names a
# directory, every incarnation keeps (received, handling time, channel, payload, sent, sender, handling
# CPU time) of each message it handles, at most _TRACE_MAX, and writes them to
# ``<dir>/<actor id>.<incarnation>.json`` when it closes. Off (one ``is None`` test per message)
# otherwise. The CPU time (this thread's, kernel time included) beside the wall time tells work from
# waiting: a handler preempted by another process shows a wall time far above its CPU time.
TRACE_DIR_ENV = "SNIPERBOT_TRACE_DIR"
_TRACE_MAX = 500_000
_READY_TOPIC = "ctl.ready."
_JOIN_PROBE_S = 0.01  # how often a starting actor probes its own subscription (see open)
_LOCAL_JOIN_PROBES = 25  # probes (0.25 s) the join waits for every local publisher's answer (fanout)
_JOIN_PROBES = 200  # then it asks for the snapshot anyway (a harness with no bus proxy)
#: How long a joining actor holds what local publishers sent it directly for the node's SnapshotEnd
#: (a harness with no node, or a node that lost the request): then it takes them without it.
_SNAPSHOT_WAIT_S = 1.0
_HOLD_MAX = 10_000  # direct messages held while joining; past it the oldest are dropped (and counted)
_READY_PREFIX = _READY_TOPIC.encode()


class InjectedCrash(RuntimeError):
    """Raised by an actor told to crash (fault injection); ends the incarnation abnormally."""


class ActorLaunch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything a fresh actor incarnation needs, sent to the new process or thread."""

    actor_id: str
    actor: str  # "package.module:Class"
    args: dict[str, Any]
    run_dir: str
    incarnation: int
    heartbeat_interval_s: float = 0.5
    heartbeat_liveness: int = 4
    journal_durability: Literal["fsync", "process"] = "fsync"
    log_level: str = "WARNING"
    # With a Ray cluster: where to connect instead of the run dir's ipc sockets
    # ("bus_in", "bus_out", "control", "inbox:<actor_id>"), and every endpoint this
    # actor's own inbox binds (empty: its ipc socket only).
    endpoints: dict[str, str] = {}
    inbox_binds: list[str] = []
    # This node life's secret (sniperbot.transport.auth): never logged, never on disk.
    auth_key: bytes = b""
    # This node start's token in every client order id (sniperbot.rundir.next_node_life).
    node_life: str = ""
    # The venue's API key (sniperbot.keystore.Credentials.to_launch()), only in the launch of the
    # one actor that signs for that venue (its gateway): never logged, never on disk, never in args.
    credentials: bytes = b""
    # Sentry DSN from the config's [sentry] section ("" = SENTRY_DSN from the environment, or off).
    sentry_dsn: str = ""
    # Seconds between this actor's MetricsSnapshots on ``metrics.<id>``; 0: metrics off
    # (``[metrics] enabled = false``: the registry is a no-op and nothing is published).
    metrics_interval_s: float = 0.0
    # The node's pid when the actor runs on the node's machine (0: elsewhere, e.g. on Ray): the actor
    # process ends the moment that process does (see watch_node).
    node_pid: int = 0
    # ``[node] local_bus``: bus messages to and from actors of this machine go directly
    # (sniperbot.transport.fanout); only with the run dir's ipc bus (not a cluster's tcp one).
    local_bus: bool = True


# Built at import, so in the forkserver that preloads this module: a restarted actor does not pay
# msgspec's first-use type analysis of ActorLaunch (about a millisecond) before it can start.
_LAUNCH_DECODER = msgspec.msgpack.Decoder(ActorLaunch)

_journals: dict[str, Any] = {}
_journals_lock = threading.Lock()


def process_journal(run_dir: Path, durability: str) -> Any:
    """The one journal handle of this process (LMDB forbids opening a path twice per process)."""
    from sniperbot.journal import Journal

    key = str(run_dir)
    with _journals_lock:
        journal = _journals.get(key)
        if journal is None:
            journal = Journal.open(run_dir, durability=durability)  # type: ignore[arg-type]
            _journals[key] = journal
        return journal


def close_process_journals() -> None:
    """Close every journal this process opened (node shutdown, tests)."""
    with _journals_lock:
        for journal in _journals.values():
            journal.close()
        _journals.clear()


def load_actor_class(path: str) -> type[Actor]:
    """Import ``package.module:Class`` and check it is an :class:`Actor`."""
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise TypeError(f"{path!r} is not an Actor class")
    return cls


class _Timer:
    __slots__ = ("callback", "interval_ns", "once")

    def __init__(self, interval_ns: int, callback: Callable[[], None], once: bool = False) -> None:
        self.interval_ns = interval_ns
        self.callback = callback
        self.once = once


class SupervisorSilence:
    """How long this actor's supervisor has been silent, less the time this process did not run.

    Every judgement takes one clock reading: a pause (SIGSTOP, a VM pause) that fell between two
    readings in one heartbeat would count as the supervisor's silence and stop a healthy actor as
    orphaned. A heartbeat that fires more than an interval late means this process did not run;
    the supervisor could not be heard meanwhile, so that time is not held against it.
    """

    __slots__ = ("_interval_ns", "_last_beat_ns", "_last_heard_ns")

    def __init__(self, interval_ns: int, now_ns: int) -> None:
        """``interval_ns``: this actor's heartbeat interval; ``now_ns``: monotonic now."""
        self._interval_ns = interval_ns
        self._last_heard_ns = now_ns
        self._last_beat_ns = now_ns

    def heard(self, now_ns: int) -> None:
        """The supervisor spoke at ``now_ns``."""
        self._last_heard_ns = now_ns

    def beat(self, now_ns: int) -> int:
        """This actor's heartbeat timer fired at ``now_ns``: the supervisor's silence so far (ns)."""
        paused_ns = now_ns - self._last_beat_ns - self._interval_ns
        self._last_beat_ns = now_ns
        if paused_ns > self._interval_ns:
            self._last_heard_ns += paused_ns
        return now_ns - self._last_heard_ns


class ActorRuntime(ActorContext):
    """Runs one incarnation of one actor: sockets, loop, timers, heartbeats."""

    def __init__(
        self, launch: ActorLaunch, zmq_ctx: zmq.Context | None = None, *, owns_ctx: bool = False
    ) -> None:
        """``zmq_ctx``: the context to use (a new one if None); ``owns_ctx``: terminate it at close
        even though it was given (a spare process's, made before the launch came)."""
        self.launch = launch
        self.actor_id = launch.actor_id
        self.incarnation = launch.incarnation
        self.node_life = launch.node_life
        self.rundir = RunDir(launch.run_dir)
        self.run_dir = Path(launch.run_dir)
        self.log = actor_logger(launch.actor_id, launch.incarnation)
        self._own_ctx = zmq_ctx is None or owns_ctx
        self._zctx = zmq_ctx or zmq.Context()
        self._timers: list[tuple[int, int, _Timer]] = []
        self._timer_ids = itertools.count()
        self._outboxes: dict[str, Outbox] = {}
        self._outbox_by_socket: dict[zmq.Socket, Outbox] = {}
        self._resend_armed = False  # a resend check is scheduled (only while something is unacked)
        self._journal: Any = None
        self._stopping = False
        self._error_reported = False  # report_error sent an ActorError (close lingers for it)
        self.exit_code = EXIT_NORMAL
        self.invalid_frames = 0
        self.handled = 0
        self._invalid_reasons_logged: set[tuple[str, str]] = set()
        self._hb_seq = 0
        self._silence = SupervisorSilence(int(launch.heartbeat_interval_s * 1e9), time.monotonic_ns())
        self.actor: Actor | None = None
        self.poller = zmq.Poller()
        self._direct = PollWatch(self.poller)  # the direct sockets (sniperbot.transport.direct)
        self._current: tuple[Identity, Envelope] | None = None
        self._ack_held = False
        self._signer = Signer(launch.auth_key, launch.actor_id)
        self._verifier = Verifier(launch.auth_key, launch.actor_id)
        # Highest incarnation announced Ready per actor: a lower one is an old incarnation
        # (or an old node life's actor) that must not be heard any more.
        self._peers: dict[str, int] = {}
        self.metrics: Registry = Registry() if launch.metrics_interval_s > 0 else NULL_REGISTRY
        self._join_topic = ""
        self._echo_topic = topic.bus_echo(self.actor_id)
        self._join_left = 0  # probes left while our bus subscription is not known to work
        self._proxy_joined = False  # our join probe came back through the proxy
        # Direct (local bus) messages held from the join until the snapshot has been taken (None: not
        # holding), and the newest (sender, incarnation, seq) the snapshot gave per topic (_release_held).
        self._held: collections.deque[bytes] | None = None
        self._held_dropped = 0
        self._snapshot_newest: dict[str, tuple[str, int, int]] = {}
        self._trace_dir = os.environ.get(TRACE_DIR_ENV, "")
        self._trace: list[tuple[int, int, str, str, int, str, int]] | None = [] if self._trace_dir else None

    # -- ActorContext -------------------------------------------------------------------
    def publish(self, topic: str, payload: Payload) -> None:
        """Publish on the bus.

        The actor's own echo topic (:func:`~sniperbot.messages.topics.bus_echo`, BusJoin's probe)
        goes through the proxy, local subscribers (the actor itself) included: hearing it back
        proves the proxy path too, as BusJoin promises (the local path is set up before on_start).
        """
        self._pub.publish(topic, payload, through_proxy=topic == self._echo_topic)

    def send(self, actor_id: str, payload: Payload, on_ack: Callable[[], None] | None = None) -> None:
        """Send reliably to ``actor_id``'s inbox; ``on_ack`` runs when it is acknowledged."""
        outbox = self._outboxes.get(actor_id)
        if outbox is None:
            endpoint = self._endpoint("inbox:" + actor_id, self.rundir.inbox(actor_id))
            outbox = Outbox(
                self._zctx, endpoint, self.actor_id, self.incarnation, signer=self._signer, watch=self._direct
            )
            self._outboxes[actor_id] = outbox
            self._outbox_by_socket[outbox.socket] = outbox
            self.poller.register(outbox.socket, zmq.POLLIN)
        outbox.send("to." + actor_id, payload, on_ack)
        if not self._resend_armed:
            self._arm_resend()

    def hold_ack(self) -> Callable[[], None]:
        """Hold back the acknowledgement of the inbox message being handled; call the result to ack."""
        if self._inbox is None or self._current is None:
            raise RuntimeError("hold_ack() is only valid while handling an inbox message")
        self._ack_held = True
        return self._inbox.hold(*self._current)

    def every(self, interval_s: float, callback: Callable[[], None], first_s: float | None = None) -> None:
        """Run ``callback`` every ``interval_s`` seconds, the first time after ``first_s`` (default: one
        interval)."""
        timer = _Timer(int(interval_s * 1e9), callback)
        first_ns = timer.interval_ns if first_s is None else int(first_s * 1e9)
        heapq.heappush(self._timers, (time.monotonic_ns() + first_ns, next(self._timer_ids), timer))

    @property
    def credentials(self) -> bytes:
        """The launch's sealed venue key (b"" for every actor but a venue's gateway)."""
        return self.launch.credentials

    @property
    def journal(self) -> Any:
        """The node's journal (opened once per process and shared by its threads)."""
        if self._journal is None:
            self._journal = process_journal(self.rundir.path, self.launch.journal_durability)
        return self._journal

    def stop(self) -> None:
        """Finish this incarnation normally."""
        self._stopping = True

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        """Bind and connect sockets, construct the actor, announce readiness."""
        cls = load_actor_class(self.launch.actor)
        set_current(self.metrics)  # for deep code on this thread (journal commits, rate limits)
        # Constructed before the sockets so that topics may depend on the actor's arguments.
        self.actor = actor = cls(self, **self.launch.args)
        bus_in = self._endpoint("bus_in", self.rundir.bus_in)
        bus_out = self._endpoint("bus_out", self.rundir.bus_out)
        # Every actor hears peers' Ready so its outboxes resend at once after a peer restart.
        topics = (*actor.topics, _READY_TOPIC)
        self._local: LocalBus | None = None
        if self.launch.local_bus and bus_in.startswith("ipc://") and bus_out.startswith("ipc://"):
            self._local = LocalBus(
                self.run_dir,
                Subscription(self.actor_id, self.incarnation, topics),
                self._direct,
                self._on_local_message,
                self._maybe_joined,
            )
        self._pub = Publisher(
            self._zctx, bus_in, self.actor_id, self.incarnation, signer=self._signer, fanout=self._local
        )
        self._control = self._zctx.socket(zmq.DEALER)
        tune(self._control)
        self._control.setsockopt(zmq.ROUTING_ID, f"{self.actor_id}#{self.incarnation}".encode())
        self._control.connect(self._endpoint("control", self.rundir.control))
        self.poller.register(self._control, zmq.POLLIN)
        self._wants_ready = any(_READY_TOPIC.startswith(t) for t in actor.topics)
        self._inbox: Inbox | None = None
        self._sub = Subscriber(self._zctx, bus_out, topics, unmarked_only=self._local is not None)
        self.poller.register(self._sub.socket, zmq.POLLIN)
        if self._local is not None:
            # Before on_start: whatever the actor publishes first reaches the local subscribers
            # that exist now (sniperbot.transport.fanout), as BusJoin's echo then proves.
            self._local.start()
        if actor.inbox:
            binds = list(self.launch.inbox_binds) or [self.rundir.inbox(self.actor_id)]
            for endpoint in binds:
                # A killed predecessor leaves its socket file behind; binding over it is safe.
                if endpoint.startswith("ipc://") and os.path.exists(endpoint[6:]):
                    os.unlink(endpoint[6:])
            # The direct socket sits beside the first ipc endpoint (a cluster's tcp one has none).
            ordered = sorted(binds, key=lambda endpoint: not endpoint.startswith("ipc://"))
            binds = [ordered[0], *(b for b in binds if b != ordered[0])]
            self._inbox = Inbox(
                self._zctx,
                binds[0],
                self.actor_id,
                self.incarnation,
                watch=self._direct,
                on_direct=self._on_direct_frame,
            )
            for endpoint in binds[1:]:
                try:
                    bind_private(self._inbox.socket, endpoint)
                except zmq.ZMQError as e:
                    # An abandoned (hung) thread incarnation may still hold the tcp port: keep
                    # the ipc inbox for local peers rather than failing every restart.
                    self.log.warning(
                        "cannot bind extra inbox endpoint",
                        extra={"event": "inbox_bind_failed", "endpoint": endpoint, "error": str(e)},
                    )
            self.poller.register(self._inbox.socket, zmq.POLLIN)
        self.every(self.launch.heartbeat_interval_s, self._heartbeat)
        if self.metrics.enabled:
            # At a random phase: the node's actors start within milliseconds of each other, and
            # snapshots taken in step would make every process busy at the same instant each
            # interval (a burst that lands on the tick-to-trade path's tail).
            interval = self.launch.metrics_interval_s
            self.every(interval, self._publish_metrics, first_s=random.uniform(0.05, 1.0) * interval)
        self.actor.on_start()
        ready = Ready(
            actor_id=self.actor_id, incarnation=self.incarnation, pid=os.getpid(), ts_ns=time.time_ns()
        )
        self._send_control(ready)
        # Through the proxy only, as before the local bus: every actor follows Ready, and sending it to
        # each of them here would wake them all while the node and the proxy have this restart to
        # handle (the node says it again through the proxy anyway, see Node._on_control).
        self._pub.publish("ctl.ready." + self.actor_id, ready, through_proxy=True)
        if self._local is not None:
            # Right after Ready, not before: a restarting actor pays these syscalls (the others'
            # files, a connection to each) once it has said it is ready (sniperbot.transport.fanout).
            self._local.learn()
            self._local.ask()
        if actor.topics:
            # Clone pattern: the node answers with the last value of each topic we follow, so a
            # (re)started actor does not wait for the next tick. Asked only once our subscription
            # demonstrably works (our own probe came back through the bus): a value published after
            # the node answered but before the subscription worked would otherwise be lost for
            # good (ZeroMQ's slow joiner), e.g. a signal replayed at start that a recorder never saw.
            self._join_topic = f"ctl.join.{self.actor_id}.{self.incarnation}"
            self._join_left = _JOIN_PROBES
            self._proxy_joined = False
            self._held = collections.deque(maxlen=_HOLD_MAX) if self._local is not None else None
            self._sub.subscribe(self._join_topic)
            self._probe_join()
        self.log.info("ready", extra={"event": "ready", "pid": os.getpid()})

    def _probe_join(self) -> None:
        """Publish the next join probe, or after the last one ask for the snapshot anyway."""
        if not self._join_left:
            return
        self._join_left -= 1
        local = self._local
        if local is not None and not local.joined and _JOIN_PROBES - self._join_left >= _LOCAL_JOIN_PROBES:
            # A local publisher that does not answer is stopped (SIGSTOP) or busy: do not hold the
            # snapshot for it; it sends to us once it runs again (it has our request queued).
            self.log.debug(
                "local publishers did not answer",
                extra={"event": "local_join_late", "waiting_for": local.waiting_for},
            )
            local.joined = True
            self._maybe_joined()
        if not self._join_left:
            self._joined()
            return
        if not self._proxy_joined:
            # Through the proxy, local subscribers (us) included: it proves our proxy subscription.
            self._pub.publish(
                self._join_topic, Heartbeat(seq=self._join_left, ts_ns=time.time_ns()), through_proxy=True
            )
        self._once(_JOIN_PROBE_S, self._probe_join)

    def _maybe_joined(self) -> None:
        """Joined once our probe came back through the proxy and every local publisher has us."""
        if self._join_left and self._proxy_joined and (self._local is None or self._local.joined):
            self._joined()

    def _joined(self) -> None:
        """Our subscription works (or we gave up probing it): ask the node for the last values."""
        self._join_left = 0
        self._sub.unsubscribe(self._join_topic)
        assert self.actor is not None
        self._send_control(SnapshotRequest(topics=list(self.actor.topics)))
        if self._held is not None:
            self._once(_SNAPSHOT_WAIT_S, self._snapshot_late)

    def after(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, ``delay_s`` seconds from now, on this actor's loop."""
        self._once(delay_s, callback)

    def _once(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, ``delay_s`` from now."""
        timer = _Timer(int(delay_s * 1e9), callback, once=True)
        heapq.heappush(self._timers, (time.monotonic_ns() + timer.interval_ns, next(self._timer_ids), timer))

    def _snapshot_late(self) -> None:
        """No SnapshotEnd came in time (no node, or the request was lost): take what is held anyway."""
        if self._held is not None:
            self.log.debug("no snapshot end", extra={"event": "snapshot_late", "held": len(self._held)})
            self._release_held()

    def _release_held(self) -> None:
        """Hand the actor the direct messages held while joining, after the snapshot: each one the
        snapshot did not already give (the same publisher's message of that topic, or a newer one)."""
        held, self._held = self._held, None
        newest, self._snapshot_newest = self._snapshot_newest, {}
        if self._held_dropped:
            self.log.warning(
                "direct messages dropped while joining",
                extra={"event": "join_hold_full", "dropped": self._held_dropped, "kept": _HOLD_MAX},
            )
        if not held or self.actor is None:
            return
        on_message = self.actor.on_message
        for message in held:
            if newest:
                try:
                    envelope = decode_envelope(split_message(message)[1])
                except InvalidFrame:
                    envelope = None  # counted as invalid by _take_bus
                if envelope is not None:
                    given = newest.get(envelope.topic)
                    if (
                        given is not None
                        and given[:2] == (envelope.sender, envelope.incarnation)
                        and given[2] >= envelope.seq
                    ):
                        continue
            self._take_bus(message, on_message, "local")
            if self._stopping:
                return

    def step(self, max_wait_ms: int | None = None) -> bool:
        """Wait for and handle one round of input and due timers; False once stopping."""
        if self._stopping:
            return False
        now = time.monotonic_ns()
        # Round up: rounding down would spin through the last millisecond before each timer.
        timeout_ms = max(0, -((now - self._timers[0][0]) // 1_000_000)) if self._timers else 1000
        if max_wait_ms is not None:
            timeout_ms = min(timeout_ms, max_wait_ms)
        inbox = self._inbox
        if inbox is not None and inbox.queued:
            # Deferred acks (sniperbot.transport.reliable): out once nothing has come for a
            # millisecond, so that what this actor passed on travels before its senders wake.
            ready = [sock for sock, _ in self.poller.poll(min(timeout_ms, _ACK_IDLE_MS))]
            if not ready or inbox.ack_overdue(now):
                inbox.flush()
        else:
            ready = [sock for sock, _ in self.poller.poll(timeout_ms)]
        # Market data first: an order or query handled in this round sees every quote that reached
        # this process before it (a paper venue fills at the book the order was decided on).
        local = self._local
        ready.sort(
            key=lambda sock: (
                not (
                    sock is self._sub.socket
                    or (local is not None and isinstance(sock, int) and local.owns(sock))
                )
            )
        )
        if local is not None:
            local.cork()  # a round's first message to a subscriber leaves now, the rest together after
        try:
            for sock in ready:
                if isinstance(sock, int):
                    self._drain_fd(sock)
                else:
                    self._drain(sock)
            self._run_due_timers()
        finally:
            if local is not None:
                local.uncork()
        return not self._stopping

    def run(self) -> int:
        """Open, loop until stopped, close; returns the exit code."""
        self.open()
        try:
            while self.step():
                pass
        except Exception as e:
            self.report_error(e)
            raise
        finally:
            self.close(clean=True)
        return self.exit_code

    def report_error(self, error: BaseException) -> None:
        """Tell the node what this incarnation crashed on (``admin tree``'s ``last_error``).

        Class and place only (``ZeroDivisionError at my.py:42 in decide``): an exception's
        message may quote a secret or a signed request, its place and kind cannot.
        """
        self._send_control(ActorError(error=describe_error(error)))
        self._error_reported = True

    def _traced(self, on_message: Callable[[Envelope], None], envelope: Envelope, channel: str) -> None:
        """Handle ``envelope`` and keep its trace entry (see TRACE_DIR_ENV)."""
        received = time.time_ns()
        started = time.perf_counter_ns()
        cpu_started = time.thread_time_ns()
        try:
            on_message(envelope)
        finally:
            trace = self._trace
            if trace is not None and len(trace) < _TRACE_MAX:
                handled = time.perf_counter_ns() - started
                cpu = time.thread_time_ns() - cpu_started
                payload = type(envelope.payload).__name__
                trace.append((received, handled, channel, payload, envelope.ts_ns, envelope.sender, cpu))

    def _write_trace(self) -> None:
        if self._trace is None:
            return
        path = Path(self._trace_dir) / f"{self.actor_id}.{self.incarnation}.json"
        with contextlib.suppress(OSError):  # a bench aid: never the reason an actor fails to stop
            path.write_bytes(msgspec.json.encode(self._trace))

    def close(self, clean: bool) -> None:
        """Run ``on_stop`` (when ``clean``) and close every socket."""
        self._write_trace()
        try:
            if clean and self.actor is not None:
                self.actor.on_stop()
        finally:
            for outbox in self._outboxes.values():
                outbox.close()
            for owned in (
                getattr(self, "_sub", None),
                getattr(self, "_inbox", None),
                getattr(self, "_local", None),
            ):
                if owned is not None:
                    owned.close()
            if hasattr(self, "_pub"):
                self._pub.close()
                # A crash's ActorError was only queued: give it a moment to leave (a dead node costs
                # at most this), or admin tree would never name the error (linger 0 drops it).
                self._control.close(_ERROR_LINGER_MS if self._error_reported else 0)
            if self._own_ctx:
                self._zctx.term()

    # -- internals ------------------------------------------------------------------------
    def _endpoint(self, name: str, default: str) -> str:
        """The launch's endpoint for ``name`` (tcp, with a cluster), else the run dir's ipc one."""
        return self.launch.endpoints.get(name, default)

    def _drain_bus(self, sock: zmq.Socket, on_message: Callable[[Envelope], None]) -> None:
        """The hot path: one plain recv per bus message (:func:`~sniperbot.transport.bus.split_message`).

        A hostile message with extra frames desynchronises nothing: each frame is read as
        a message of its own, and an extra one is counted as invalid (no topic end, or
        not an envelope).
        """
        recv = sock.recv
        local = self._local is not None
        for _ in range(_DRAIN_BATCH):
            try:
                message = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if local and is_marked(message):
                continue  # sent to us directly (a subscription to every topic matches marked copies too)
            self._take_bus(message, on_message, "bus")
            if self._stopping:
                return

    def _on_local_message(self, message: bytes) -> None:
        """A bus message a local publisher sent us directly (:mod:`sniperbot.transport.fanout`).

        Held while our subscription is joining and until the node's snapshot has been taken
        (:class:`~sniperbot.messages.SnapshotEnd`), then handed over after it, minus what the
        snapshot already gave (:meth:`_release_held`). Not taken at once: local publishers take our
        request one by one, and a message from the first one (a token's safety report) taken before
        what a later one had already said (the signal the sniper needs beside it, which the
        snapshot carries) would be decided on alone. Not dropped: its copy through the proxy may
        reach the node's last-value cache only after the node answered our request, and then
        neither would ever reach us (a signal replayed at start that a recorder never saw).
        """
        if self._stopping or self.actor is None:
            return
        held = self._held
        if held is not None:
            if len(held) == _HOLD_MAX:
                self._held_dropped += 1  # the oldest goes (deque maxlen)
            held.append(message)
            return
        self._take_bus(message, self.actor.on_message, "local")

    def _take_bus(self, message: bytes, on_message: Callable[[Envelope], None], channel: str) -> None:
        """Handle one bus message, from the proxy or sent directly: admit, filter, hand to the actor."""
        try:
            topic, frame = split_message(message)
            envelope = decode_envelope(frame)
            # Two dict lookups on the hot path; the checks themselves only for the few that need them.
            if (
                envelope.incarnation < self._peers.get(envelope.sender, 0)
                or type(envelope.payload) in AUTHORITY
            ) and not self._admit(self._sub.socket, frame, envelope):
                return
            if topic.startswith(_READY_PREFIX) and not self._wants_ready:
                return
            if self._join_left and envelope.topic == self._join_topic:
                self._proxy_joined = True  # our own probe: the proxy subscription works
                self._maybe_joined()
                return
            self.handled += 1
            if self._trace is None:
                on_message(envelope)
            else:
                self._traced(on_message, envelope, channel)
        except InvalidFrame as e:
            self._count_invalid(self._sub.socket, e.reason)

    def _drain(self, sock: zmq.Socket) -> None:
        on_message = self.actor.on_message if self.actor else None
        assert on_message is not None
        if sock is self._sub.socket:
            self._drain_bus(sock, on_message)
            return
        for _ in range(_DRAIN_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                if self._inbox is not None and sock is self._inbox.socket:
                    identity, envelope = decode_routed(frames)
                    self._on_inbox_message(identity, frames[1], envelope)
                elif sock is self._control:
                    if len(frames) != 1:
                        raise InvalidFrame(f"expected 1 control frame, received {len(frames)}")
                    envelope = decode_envelope(frames[0])
                    if self._admit(sock, frames[0], envelope):
                        self._on_control(envelope)
                else:
                    if len(frames) != 1:
                        raise InvalidFrame(f"expected 1 ack frame, received {len(frames)}")
                    self._outbox_by_socket[sock].on_ack(decode_envelope(frames[0]))
            except InvalidFrame as e:
                self._count_invalid(sock, e.reason)
            if self._stopping:
                return

    def _on_inbox_message(self, identity: Identity, frame: bytes, envelope: Envelope) -> None:
        """Handle one reliable message (by ROUTER or direct socket): admit, dedup, handle, ack."""
        inbox = self._inbox
        assert inbox is not None and self.actor is not None
        if not self._admit(inbox.socket, frame, envelope):
            return  # never acknowledged: the message does not exist for us
        if inbox.is_duplicate(envelope):
            inbox.duplicates += 1
            inbox.ack_later(identity, envelope)  # our first ack may have been lost
            return
        if inbox.is_held(envelope):
            inbox.duplicates += 1  # still being handled; acked when done
            return
        self.handled += 1
        self._current = (identity, envelope)
        self._ack_held = False
        try:
            if self._trace is None:
                self.actor.on_message(envelope)
            else:
                self._traced(self.actor.on_message, envelope, "inbox")
        finally:
            self._current = None
        if not self._ack_held:
            inbox.ack_later(identity, envelope)

    def _on_direct_frame(self, identity: Identity, frame: bytes) -> None:
        """A frame from the inbox's direct socket (:mod:`sniperbot.transport.direct`)."""
        assert self._inbox is not None
        if self._stopping:
            return  # not acknowledged: resent to the next incarnation, as a ROUTER message left unread
        try:
            self._on_inbox_message(identity, frame, decode_envelope(frame))
        except InvalidFrame as e:
            self._count_invalid(self._inbox.socket, e.reason)

    def _drain_fd(self, fd: int) -> None:
        try:
            self._direct.handle(fd)
        except InvalidFrame as e:  # an outbox's direct ack that is not an envelope
            self._count_invalid(None, e.reason)

    def _count_invalid(self, sock: zmq.Socket | None, reason: str) -> None:
        self.invalid_frames += 1
        kind = (
            "ack"
            if sock is None
            else {zmq.SUB: "bus", zmq.ROUTER: "inbox", zmq.DEALER: "control"}.get(sock.type, "?")
        )
        key = (kind, reason.split(" - ")[0][:60])
        if key not in self._invalid_reasons_logged:
            self._invalid_reasons_logged.add(key)
            self.log.warning(
                "dropped invalid frame",
                extra={"event": "invalid_frame", "socket": kind, "reason": reason},
            )

    def _admit(self, sock: zmq.Socket, frame: bytes, envelope: Envelope) -> bool:
        """Whether a decoded message may be taken: not from an old incarnation, authority checked.

        A refused one is dropped, counted as an invalid frame and logged once per kind.
        """
        sender = envelope.sender
        if envelope.incarnation < self._peers.get(sender, 0):
            self._count_invalid(
                sock, f"stale incarnation - {sender}#{envelope.incarnation} (now #{self._peers[sender]})"
            )
            return False
        reason = self._verifier.check(frame, envelope)
        if reason is not None:
            self._count_invalid(sock, f"unauthorised {type(envelope.payload).__name__} - {reason}")
            return False
        payload = envelope.payload
        if isinstance(payload, Ready) and payload.incarnation >= self._peers.get(payload.actor_id, 0):
            self._peers[payload.actor_id] = payload.incarnation
            self.on_peer_ready(payload.actor_id)
        return True

    def _on_control(self, envelope: Envelope) -> None:
        payload = envelope.payload
        self._silence.heard(time.monotonic_ns())
        if isinstance(payload, Heartbeat):
            return
        if isinstance(payload, Crash):
            raise InjectedCrash(f"{self.actor_id}: crash injected ({payload.reason})")
        if isinstance(payload, Stop):
            self.log.info("stop requested", extra={"event": "stop", "reason": payload.reason})
            self._stopping = True
            return
        if isinstance(payload, Ready) and not self._wants_ready:
            return  # the node's word on who is current (with a snapshot); recorded by _admit
        if isinstance(payload, SnapshotEnd):
            if self._held is not None:
                self._release_held()
            return
        assert self.actor is not None
        if self._held is not None and envelope.topic != "ctl":
            # A last value of the snapshot: what the held copies are checked against (_release_held).
            self._snapshot_newest[envelope.topic] = (envelope.sender, envelope.incarnation, envelope.seq)
        self.handled += 1
        self.actor.on_message(envelope)

    def _send_control(self, payload: Payload) -> None:
        envelope = Envelope("ctl", self.actor_id, self.incarnation, 0, time.time_ns(), payload)
        frame = self._signer.encode(envelope)
        try:
            self._control.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            pass

    def _heartbeat(self) -> None:
        silent_ns = self._silence.beat(time.monotonic_ns())
        self._hb_seq += 1
        self._send_control(
            Heartbeat(
                seq=self._hb_seq,
                ts_ns=time.time_ns(),
                invalid_frames=self.invalid_frames,
                handled=self.handled,
            )
        )
        limit_ns = self.launch.heartbeat_interval_s * self.launch.heartbeat_liveness * 1e9
        if silent_ns > limit_ns:
            self.log.error(
                "supervisor silent; stopping this orphaned actor",
                extra={"event": "orphaned", "silent_s": round(silent_ns / 1e9, 3)},
            )
            self.exit_code = EXIT_ORPHANED
            self._stopping = True

    def _publish_metrics(self) -> None:
        """This incarnation's metrics on ``metrics.<id>``; the runtime's own counts are copied in here."""
        counters = self.metrics.counters
        counters[("sniperbot_messages_handled_total", ())] = float(self.handled)
        counters[("sniperbot_invalid_frames_total", ())] = float(self.invalid_frames)
        if self._local is not None:
            counters[("sniperbot_local_bus_dropped_total", ())] = float(self._local.dropped)
        self.publish(topic.metrics(self.actor_id), self.metrics.snapshot(self.actor_id, self.incarnation))

    def _arm_resend(self) -> None:
        """Schedule one resend check. Armed only while a message waits for its ack: an idle actor is
        not woken 20 times a second for nothing (every wake-up on a 2-core machine can land on the
        tick-to-trade path of another actor)."""
        self._resend_armed = True
        self._once(_RESEND_CHECK_S, self._resend_due)

    def _resend_due(self) -> None:
        self._resend_armed = False
        now = time.monotonic_ns()
        waiting = False
        for outbox in self._outboxes.values():
            if outbox.unacked:
                outbox.resend_due(now)
                waiting = True
        if waiting:
            self._arm_resend()

    def on_peer_ready(self, actor_id: str) -> None:
        """A peer restarted: resend what it has not acknowledged."""
        outbox = self._outboxes.get(actor_id)
        if outbox is not None:
            outbox.resend_all()

    def _run_due_timers(self) -> None:
        now = time.monotonic_ns()
        while self._timers and self._timers[0][0] <= now and not self._stopping:
            _, _, timer = heapq.heappop(self._timers)
            timer.callback()
            if not timer.once:
                heapq.heappush(self._timers, (now + timer.interval_ns, next(self._timer_ids), timer))


def describe_error(error: BaseException) -> str:
    """``Kind at file:line in function`` of the innermost frame (a path under the cwd made relative)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return type(error).__name__
    last = frames[-1]
    path = last.filename
    with contextlib.suppress(ValueError):  # another drive (not on Linux), or no cwd
        relative = os.path.relpath(path)
        path = path if relative.startswith("..") else relative
    return f"{type(error).__name__} at {path}:{last.lineno} in {last.name}"


def run_in_thread(launch: ActorLaunch, step_ms: int = 20) -> tuple[ActorRuntime, threading.Thread]:
    """Run an incarnation in a daemon thread of this process, once it is open (harnesses with no node:
    tests, benchmarks); ``runtime.stop()`` then ``thread.join()`` ends it, ``on_stop`` included."""
    runtime = ActorRuntime(launch)
    opened = threading.Event()

    def run() -> None:
        runtime.open()
        opened.set()
        try:
            while runtime.step(step_ms):
                pass
        finally:
            runtime.close(clean=True)

    thread = threading.Thread(target=run, name=f"actor-{launch.actor_id}", daemon=True)
    thread.start()
    if not opened.wait(20):
        raise RuntimeError(f"{launch.actor_id} did not open within 20 s")
    return runtime, thread


def run_actor_process(launch_bytes: bytes) -> None:
    """Entry point of an actor process (called in the forkserver's child)."""
    launch = _LAUNCH_DECODER.decode(launch_bytes)
    _prepare_process(launch.node_pid)
    _run_launch(launch, None)


def run_spare_process(launches: Connection, node_pid: int) -> None:
    """Entry point of a spare process: made ready for any actor, it waits for the launch to run.

    The node keeps one forked ahead of need (:class:`~sniperbot.actors.placement.Launcher`): a
    restart then skips the fork and the first touches of the forkserver's inherited pages (copied
    on write, page by page) that every fresh process pays on its way to ready.
    """
    _prepare_process(node_pid)
    from sniperbot.logs import configure_logging

    configure_logging(None)  # the default level: a launch at another level sets it again, cheaply
    zctx = zmq.Context()  # its I/O thread starts now, not in the restart
    try:
        launch_bytes = launches.recv_bytes()
    except (EOFError, OSError):
        os._exit(EXIT_NORMAL)  # the node stopped, or closed its spare: nothing to run
    launches.close()
    _run_launch(_LAUNCH_DECODER.decode(launch_bytes), zctx)


def _prepare_process(node_pid: int) -> None:
    """What every actor process does first: freeze the inherited heap, die with the node."""
    import gc
    import signal

    # Ctrl-C reaches the whole process group; only the supervisor decides the stop order (and a
    # spare waiting for its launch must not die of it with a traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The forkserver's preloaded heap is inherited: a full collection here would walk it all and
    # copy-on-write every page it touches (~40 ms on the dev box, before the actor is Ready: most of
    # a kill -9 restart). Frozen, it is never scanned again; this process's own objects still are.
    gc.freeze()
    _die_with_parent()
    watch_node(node_pid)


def _run_launch(launch: ActorLaunch, zctx: zmq.Context | None) -> None:
    """Run ``launch`` in this process until it stops, then exit the process with its code."""
    import signal
    import sys

    from sniperbot.logs import configure_logging

    configure_logging(launch.log_level)
    from sniperbot.observability import sentry

    venue = str(launch.args.get("venue", ""))
    sentry.init_actor(launch.actor_id, launch.incarnation, venue, launch.sentry_dsn)
    runtime = ActorRuntime(launch, zctx, owns_ctx=True)
    set_process_default(runtime.metrics)  # this process is this actor's: its own threads report here too
    signal.signal(signal.SIGTERM, lambda *_: runtime.stop())
    try:
        code = runtime.run()
    except Exception as e:
        from sniperbot.journal.lmdbfile import is_disk_full

        if is_disk_full(e):
            # Not a bug: one line, no traceback; the node sees the full disk and stops in order.
            runtime.log.error("actor stopped: disk full", extra={"event": "crash", "reason": "disk full"})
        else:
            runtime.log.exception("actor crashed", extra={"event": "crash"})
            sentry.capture_crash(e)
        logging.shutdown()
        os._exit(EXIT_CRASH)
    sys.stdout.flush()
    os._exit(code)


def watch_node(node_pid: int) -> None:
    """End this actor process at once (SIGKILL) when the node process ends.

    Why not only heartbeats: an orphan notices a dead node after ``heartbeat_liveness`` missed
    beats (a second or two), and until then it keeps acting on what reaches it: a paper venue
    filling against quotes an impostor publishes on the run dir's bus, an executor sending
    orders. A node that dies is a crash; its actors must not outlive it. A pidfd becomes readable
    when the process ends (Linux 5.3+): no polling, no pid reuse race. Where pidfds are missing,
    the heartbeat check remains.
    """
    if node_pid <= 0 or not hasattr(os, "pidfd_open"):
        return
    import select
    import signal

    try:
        fd = os.pidfd_open(node_pid)
    except OSError:
        return  # the node is gone already, or pidfds are not allowed: heartbeats decide

    def wait() -> None:
        select.select([fd], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait, name="node-watch", daemon=True).start()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM us if the forkserver (hence the node) dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: heartbeat-based orphan detection still applies
