"""The node: one OS process that owns the bus, the supervisors and the admin socket.

It runs one event loop (never blocking for long) that watches every actor
process's exit, relays heartbeats, serves the admin socket and follows the
portfolio and risk status. Exit codes (``sniperbot run``):

* 0: an orderly shutdown (SIGINT, SIGTERM, ``admin shutdown`` or the end of
  ``--duration``). Only this records ``node/running = 0`` in the journal.
* 2: refused to start, nothing started (bad config, run dir in use, lost or damaged
  journal or venue ledger: see :meth:`Node._open_state`).
* 70 (:data:`EXIT_ROOT_FAILED`): the root supervisor exceeded its restart intensity
  (the outer process manager restarts it, fail-closed).
* 71 (:data:`EXIT_NODE_CRASHED`): an exception escaped the node's own loop; the
  error is logged and printed, and the journal keeps ``node/running = 1`` so the next
  start is fail-closed (``global: unclean_shutdown``).
* 74 (:data:`EXIT_DISK_FULL`): the last resort of a full disk: a write of the node's own
  to the journal failed with ENOSPC even after the storage check released the ballast
  (see below): one ``disk_full`` log line, "stopped: disk full", actors stopped; fail-closed.

Any end but an orderly stop leaves ``node/running = 1``.

**Storage faults fail closed, and recover by themselves** (issue #14, point 4). Once a
second the node checks the run dir's storage (:meth:`Node._check_storage`): less than
:data:`DISK_RESERVE_BYTES` free on its file system, or a run dir that refuses a write
(read-only remount, permissions, I/O error). On a fault it

* holds the ``global`` breaker open with the reason ``storage: <file or dir>: <problem>``
  (``admin status`` ``storage``, ``admin breaker-status``, the API's ``/status`` and
  ``/breakers``); no order is accepted, open orders are cancelled, the alerts actor sends
  the breaker's critical alert; one ``storage_fault`` log line names the file and the problem;
* deletes the ballast ``<run dir>/storage.reserve`` (:data:`DISK_RESERVE_BYTES`, allocated at
  start): another program that filled the disk leaves the node room to journal the
  rejections, cancels and alerts of a fail-closed stop instead of crash-looping on ENOSPC (a
  writer that keeps filling the disk takes that room too: trading still stays stopped, the
  breaker held in memory, ``node/running = 1`` on disk, an actor that cannot journal stops
  instead of acting, and the alert goes out once the alerts outbox can commit it);
* keeps everything journaled: nothing is deleted, nothing is written outside the journal's
  transactions, and an order whose journal append fails is never sent (the append raises
  before the send, in :mod:`sniperbot.execution.executor`).

Recovery is **automatic** (a half-open probe of the journal, no operator needed), because the
journal is transactional: a failed commit leaves no trace, so nothing needs checking by hand.
When at least twice the reserve is free again, the run dir takes a write and a journal write
(:data:`~sniperbot.journal.keys.STORAGE_PROBE`) commits, the ballast is allocated again and
the ``global`` breaker is tripped with the reason ``storage recovered ...``: the usual
cooldown, half-open probation (risk-reducing orders only) and close. A damaged journal is not
a storage fault the node can recover from: it is refused at start (:meth:`Node._open_state`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import zmq

from sniperbot.actors.placement import Launcher
from sniperbot.actors.runtime import ActorLaunch, close_process_journals, process_journal
from sniperbot.admin.commands import AdminCommands, failure
from sniperbot.admin.protocol import (
    AdminReply,
)
from sniperbot.admin.service import AdminService
from sniperbot.config import Config
from sniperbot.journal import AheadLog, JournalError, keys
from sniperbot.journal.lmdbfile import DATA_FILE, check_before_open, is_disk_full
from sniperbot.journal.seal import break_seal, is_sealed, write_seal
from sniperbot.kernel.last_values import LastValues
from sniperbot.messages import (
    ActorError,
    BreakerChanged,
    CancelOrder,
    Envelope,
    FeedStatus,
    Heartbeat,
    InvalidFrame,
    Payload,
    PortfolioSnapshot,
    Ready,
    RiskStatus,
    SetTradingState,
    SnapshotEnd,
    SnapshotRequest,
    Stop,
    VenueStatus,
    decode_envelope,
    encode_envelope,
)
from sniperbot.messages import topics as topic
from sniperbot.messages.control import TRADING_STATES, position_key
from sniperbot.metrics.node import NodeMetrics
from sniperbot.observability import sentry
from sniperbot.rundir import RunDir, RunDirError, next_node_life
from sniperbot.supervision import ActorHandle, Child, ChildSpec, Supervisor
from sniperbot.supervision.breaker import NOT_RECONCILED, BreakerBoard, BreakerState
from sniperbot.topology import build_tree, preload_modules
from sniperbot.transport import fanout
from sniperbot.transport.auth import NODE, SECRET_SIZE, Signer, Verifier
from sniperbot.transport.bus import BusProxy, Publisher, Subscriber, bind_private, split_message, tune
from sniperbot.venues.sim.ledger import LedgerError, VenueLedger, venue_ledgers

log = logging.getLogger("sniperbot.node")

EXIT_ROOT_FAILED = 70
EXIT_NODE_CRASHED = 71
EXIT_DISK_FULL = 74
# Below this much free space in the run dir's file system the node stops trading (a storage
# fault, module docstring) before LMDB runs out mid-transaction and actors start crash-looping;
# also the size of the ballast the fault releases.
DISK_RESERVE_BYTES = 4 * 1024 * 1024
_DISK_CHECK_S = 1.0
STORAGE_BALLAST = "storage.reserve"  # in the run dir: freed on a storage fault (module docstring)
_STORAGE_PROBE_FILE = "storage.probe"  # in the run dir: the write that proves the run dir writable
STORAGE_REASON = "storage: "  # the prefix of the global breaker's reason while a storage fault holds it
RUNNING_KEY = keys.RUNNING  # re-exported: tools and tests read it from here
_LOOP_TICK_S = 0.05
_SHUTDOWN_GRACE_S = 60.0


class NodeCrash(RuntimeError):
    """Raised in the node's own loop on request (``admin chaos --actor node --signal CRASH``)."""


class DiskFull(RuntimeError):
    """The run dir's file system is full: the node cannot journal, so it must not trade."""


class _BreakerStore:
    """The breaker board's journal: while a storage fault holds trading stopped, a breaker change
    that cannot be journaled is kept in memory and journaled on recovery, instead of crashing the
    node (``node/running = 1`` is on disk already: a crash meanwhile restarts fail-closed)."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.unsaved: dict[str, bytes | None] = {}

    def put_state(self, key: str, value: bytes | None) -> None:
        """Journal one breaker, or keep it for the recovery during a storage fault."""
        try:
            self._node.journal.put_state(key, value)
        except JournalError:
            if not self._node.storage_fault:
                raise
            self.unsaved[key] = value

    def state_items(self, prefix: str) -> list[tuple[str, bytes]]:
        """The journaled breakers."""
        return self._node.journal.state_items(prefix)

    def flush(self) -> None:
        """Journal what a storage fault kept in memory (raises :class:`JournalError` if it still cannot)."""
        for key, value in list(self.unsaved.items()):
            self._node.journal.put_state(key, value)
            del self.unsaved[key]


class Node:
    """A supervised trading node on one machine."""

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        *,
        epoch_ns: int | None = None,
        enable_chaos: bool = False,
        ray_address: str | None = None,
        credentials: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        # Unlocked venue keys (keystore entry name -> Credentials, from unlock_for_config): each goes
        # only into the launch of the gateway whose ``keys`` argument names it (sniperbot.keystore).
        self._credentials = dict(credentials or {})
        self.enable_chaos = enable_chaos
        self.ray_address = ray_address  # "auto" (start a local Ray) or a cluster address; None: no Ray
        self._ray: Any = None
        self._net: Any = None
        self.rundir = RunDir(run_dir)
        self.heartbeat_interval_s = config.node.heartbeat_interval_s
        self.heartbeat_liveness = config.node.heartbeat_liveness
        self.start_timeout_s = config.node.start_timeout_s
        self.tree_spec = build_tree(config, epoch_ns)
        self.started_at = 0.0
        self.exit_code = 0
        self.node_life = ""  # this start's token in every client order id (see rundir.next_node_life)
        self.crash = ""  # the error that ended the loop, if one did
        self._orderly = False
        self._crash_requested = False
        self.invalid_frames = 0
        self.stale_messages = 0
        self.portfolio: PortfolioSnapshot | None = None
        self.risk: RiskStatus | None = None
        # The last health report of each venue's feed and gateway (admin status; venue holds).
        self.feed_status: dict[str, FeedStatus] = {}
        self.venue_status: dict[str, VenueStatus] = {}
        self._stop_requested = ""
        self._stopped = False
        self.storage_fault = ""  # the storage problem holding trading stopped; "" when storage is fine
        self._incarnations: dict[str, int] = {}
        self._children: dict[str, Child] = {}
        self._watched: dict[int, Callable[[], None]] = {}
        self._logged_invalid: set[str] = set()
        self.last_values = LastValues()  # market-data topic -> last frame (Clone pattern)
        self._deferred: list[tuple[float, Callable[[AdminReply], None], str]] = []
        self.commands = AdminCommands(self)
        # This node life's secret (sniperbot.transport.auth): in memory and in each launch only.
        self._secret = secrets.token_bytes(SECRET_SIZE)
        self._signer = Signer(self._secret, NODE)
        self._verifier = Verifier(self._secret, NODE)
        self._metrics = NodeMetrics() if config.metrics.enabled else None

    # -- SupervisorHost ---------------------------------------------------------------------
    def clock(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    def start_actor(self, spec: ChildSpec, incarnation: int) -> ActorHandle:
        """Start one incarnation of a worker in its placement."""
        endpoints: dict[str, str] = {}
        inbox_binds: list[str] = []
        if self._net is not None:
            self._net.register(spec.id, spec.actor, spec.placement)
            endpoints, inbox_binds = self._net.for_launch(spec.id, spec.placement)
        launch = ActorLaunch(
            actor_id=spec.id,
            actor=spec.actor,
            args=spec.args,
            run_dir=str(self.rundir.path),
            incarnation=incarnation,
            heartbeat_interval_s=self.heartbeat_interval_s,
            heartbeat_liveness=self.heartbeat_liveness,
            journal_durability=self.config.journal.durability,
            log_level=self.config.node.log_level,
            sentry_dsn=self.config.sentry.dsn,
            endpoints=endpoints,
            inbox_binds=inbox_binds,
            auth_key=self._secret,
            node_life=self.node_life,
            credentials=self.sealed_credentials(spec),
            metrics_interval_s=self.config.metrics.interval_s if self.config.metrics.enabled else 0.0,
            node_pid=os.getpid() if spec.placement == "process" else 0,
            local_bus=self.config.node.local_bus,
        )
        return self._launcher.start(launch, spec.placement)

    def sealed_credentials(self, spec: ChildSpec) -> bytes:
        """The venue key for this child's launch: a ``gateway.<venue>`` actor's entry, else nothing.

        A configured venue says which entry (:meth:`VenueSection.gateway_credentials`: a ccxt venue's
        ``keys``, an evm venue's ``wallet``); a gateway of no configured venue (hot-added) names it in
        its args ``keys``. The secret only ever travels in the launch. An entry the node did not unlock
        gives no key (logged by name).
        """
        if not spec.id.startswith("gateway."):
            return b""
        venue = self.config.venue(spec.id.removeprefix("gateway."))
        if venue is not None and venue.keystore_entries():
            name = ", ".join(entry for entry, _ in venue.keystore_entries().values())
            creds = venue.gateway_credentials(self._credentials)
        else:
            name = str(spec.args.get("keys") or "")
            creds = self._credentials.get(name) if name else None
        if not name:
            return b""
        if creds is None:
            log.error(
                "no unlocked keystore entry for this gateway; it runs without keys",
                extra={"event": "credentials_missing", "actor": spec.id, "keys": str(name)},
            )
            return b""
        return bytes(creds.to_launch())  # type: ignore[arg-type]

    def watch(self, handle: ActorHandle, on_exit: Callable[[], None]) -> None:
        """Call ``on_exit`` as soon as the incarnation's sentinel becomes readable."""
        self._watched[handle.sentinel] = on_exit
        self._poller.register(handle.sentinel, zmq.POLLIN)

    def unwatch(self, handle: ActorHandle) -> None:
        """Stop watching an incarnation's sentinel."""
        if self._watched.pop(handle.sentinel, None) is not None:
            self._poller.unregister(handle.sentinel)

    def send_control(self, actor_id: str, incarnation: int, payload: Payload) -> None:
        """Send a control message to one incarnation (dropped if it is not connected)."""
        frame = self._signer.encode(Envelope("ctl", NODE, 0, 0, time.time_ns(), payload))
        with contextlib.suppress(zmq.ZMQError):
            self._control.send_multipart((f"{actor_id}#{incarnation}".encode(), frame), zmq.NOBLOCK)

    def next_incarnation(self, actor_id: str) -> int:
        """Incarnations increase node-wide and across node lives, whichever supervisor starts the actor.

        The highest one is journaled before the actor starts, so a new node life goes on
        from there: an actor that outlived its node (``feed.sim#1`` still alive after a
        kill -9) never shares a routing identity with the new one, and receivers can tell
        it is old (its incarnation is below the one the node announced Ready).
        """
        key = keys.INCARNATION + actor_id
        if actor_id not in self._incarnations:
            raw = self.journal.get_state(key)
            self._incarnations[actor_id] = int(raw) if raw is not None and raw.isdigit() else 0
        incarnation = self._incarnations[actor_id] + 1
        try:
            self.journal.put_state(key, str(incarnation).encode())
        except JournalError as e:
            if not is_disk_full(e):
                raise
            # The disk filled up since the last check: stop trading and free the ballast now,
            # then try once more (a second failure ends the node: exit 74, fail-closed).
            self._check_storage()
            self.journal.put_state(key, str(incarnation).encode())
        self._incarnations[actor_id] = incarnation
        return incarnation

    def register(self, actor_id: str, child: Child) -> None:
        """Route control messages from ``actor_id`` to ``child``."""
        self._children[actor_id] = child

    def root_failed(self, supervisor: Supervisor) -> None:
        """The root gave up: persist the global breaker open, exit non-zero for the outer manager."""
        log.critical("root supervisor exceeded its restart intensity", extra={"event": "root_failed"})
        flags = supervisor.spec.flags
        sentry.report_restart_storm(supervisor.id, "root", flags.intensity, flags.period_s)
        self.breakers.trip("global", "root supervisor exceeded its restart intensity", timed=True)
        self.exit_code = EXIT_ROOT_FAILED
        self._stopped = True

    def breaker_tripped(self, scope: str, reason: str) -> float:
        """A subtree escalated: open its breaker, cancel open orders in scope; returns the cooldown."""
        cooldown = self.breakers.trip(scope, reason)
        if scope == "global" and self.storage_fault:
            # The reason stays the cause an operator must fix, not its consequence.
            self.breakers.hold("global", STORAGE_REASON + self.storage_fault)
        self._cancel_open_orders(scope, reason)
        sentry.report_restart_storm(scope, reason, 0, 0.0)
        return cooldown

    def breaker_explained(self, scope: str, was: str, reason: str) -> None:
        """A tripped worker's crash report arrived after the trip: its breaker names the error."""
        self.breakers.explain(scope, was, reason)

    def breaker_half_open(self, scope: str) -> None:
        """The tripped subtree is being started again on probation (not while storage holds ``global``)."""
        if scope == "global" and self.storage_fault:
            return
        self.breakers.half_open(scope)

    def breaker_closed(self, scope: str) -> None:
        """The subtree passed its probe period (a venue still not reconciled stays held open)."""
        if self._venue_hold(scope) or (scope == "global" and self.storage_fault):
            return
        self.breakers.close(scope)

    def _venue_hold(self, scope: str) -> str:
        """Why ``venue:<name>`` must stay open by its gateway's last status; "" if it may trade."""
        if not scope.startswith("venue:"):
            return ""
        status = self.venue_status.get(scope.removeprefix("venue:"))
        if status is None or (status.reconciled and status.connection in ("ok", "simulated")):
            return ""
        if status.connection == "banned":
            until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(status.banned_until_ns / 1e9))
            return f"{NOT_RECONCILED}: banned until {until} ({status.ban_reason})"
        failure = f" (last failure: {status.last_failure})" if status.last_failure else ""
        state = {
            "connecting": "exchange not reached yet",
            "down": "exchange unreachable",
        }.get(status.connection, "reconciliation not complete")
        return f"{NOT_RECONCILED}: {state}{failure}"

    def on_venue_status(self, status: VenueStatus) -> None:
        """A gateway's status: hold its venue's breaker open until it has reconciled (breaker module)."""
        self.venue_status[status.venue] = status
        scope = f"venue:{status.venue}"
        hold = self._venue_hold(scope)
        if hold:
            self.breakers.hold(scope, hold)
            return
        breaker = self.breakers.breakers.get(scope)
        if breaker is not None and breaker.state == "open" and breaker.reason.startswith(NOT_RECONCILED):
            self.breakers.release(scope, "venue reconciled")

    def breaker_state(self, scope: str) -> BreakerState:
        """Current state of a breaker."""
        return self.breakers.state(scope)

    def persist_child_spec(self, sup_id: str, spec: ChildSpec, delete: bool) -> None:
        """Journal (or forget) a child added at run time, so it survives restarts."""
        key = f"{keys.SPEC}{sup_id}/{spec.id}"
        self.journal.put_state(key, None if delete else msgspec.json.encode(spec))

    def persisted_child_specs(self, sup_id: str) -> list[ChildSpec]:
        """Children added at run time to ``sup_id``, from the journal."""
        items = self.journal.state_items(f"{keys.SPEC}{sup_id}/")
        return [msgspec.json.decode(raw, type=ChildSpec) for _, raw in items]

    def _cancel_open_orders(self, scope: str, reason: str) -> None:
        venue = None if scope == "global" else scope.removeprefix("venue:")
        for order in self.journal.open_orders():
            if venue is not None and order.venue != venue:
                continue
            executor = self._children.get(f"executor.{order.venue}")
            if executor is None or executor.handle is None:
                continue  # its executor is down: it reconciles open orders when it restarts
            self.send_control(
                executor.spec.id,
                executor.incarnation,
                CancelOrder(
                    client_order_id=order.client_order_id,
                    strategy_id=order.strategy_id,
                    venue=order.venue,
                    symbol=order.symbol,
                    reason=f"breaker {scope}: {reason}",
                    ts_ns=time.time_ns(),
                ),
            )

    def set_trading_state(self, state: str, reason: str) -> None:
        """Operator change of the trading state: journaled, then told to the risk guard."""
        if state not in TRADING_STATES:
            raise ValueError(f"trading state must be one of {TRADING_STATES}, got {state!r}")
        self.journal.put_state(keys.TRADING_STATE, msgspec.json.encode({"state": state, "reason": reason}))
        guard = self._children.get("risk_guard")
        if guard is not None and guard.handle is not None:
            self.send_control(guard.spec.id, guard.incarnation, SetTradingState(state=state, reason=reason))

    def deferred(
        self, reply: Callable[[AdminReply], None], timeout_s: float, what: str
    ) -> Callable[[AdminReply], None]:
        """Wrap an admin reply that comes later: sent once, or as ``timeout`` after ``timeout_s``."""
        sent = [False]

        def once(answer: AdminReply) -> None:
            if not sent[0]:
                sent[0] = True
                reply(answer)

        self._deferred.append((time.monotonic() + timeout_s, once, what))
        return once

    # -- lifecycle ----------------------------------------------------------------------------
    def request_crash(self) -> None:
        """Fault injection (``admin chaos --actor node --signal CRASH``): raise in the loop's next turn."""
        self._crash_requested = True

    def request_stop(self, reason: str) -> None:
        """Begin an orderly shutdown (children stop in reverse start order)."""
        if not self._stop_requested:
            self._stop_requested = reason
            log.info("stopping", extra={"event": "node_stop", "reason": reason})

    def run(
        self,
        duration_s: float | None = None,
        on_idle: Callable[[Node], None] | None = None,
    ) -> int:
        """Run until stopped; returns the process exit code (see the module docstring).

        A failed start (:class:`RunDirError`, exit 2) is raised after everything
        opened so far was closed again: no socket and no lock left behind. Only an
        orderly stop is journaled as one; an exception out of the loop is exit 71
        and a full disk exit 74, both leaving ``node/running = 1`` (fail-closed).
        """
        opened = False
        try:
            self._open()
            opened = True
            self._loop(duration_s, on_idle)
            self._orderly = self.exit_code == 0
        except Exception as e:
            if not opened:
                raise
            self.crash = f"{type(e).__name__}: {e}"
            if isinstance(e, DiskFull) or is_disk_full(e):
                already_said = self.exit_code == EXIT_DISK_FULL  # the free-space check saw it first
                self.exit_code = EXIT_DISK_FULL
                if not already_said:
                    log.critical(
                        "stopped: disk full",
                        extra={"event": "disk_full", "run_dir": str(self.rundir.path), "error": str(e)},
                    )
            else:
                self.exit_code = EXIT_NODE_CRASHED
                log.critical(
                    "node crashed", exc_info=True, extra={"event": "node_crashed", "error": self.crash}
                )
        finally:
            self._close()
        return self.exit_code

    def _open(self) -> None:
        try:
            self.rundir.create()
            self._lock_fd = self.rundir.lock()
            for stale in [*self.rundir.path.glob("*.sock"), *fanout.stale_files(self.rundir.path)]:
                stale.unlink()  # left by a node that was killed; we hold the lock now
        except OSError as e:
            # A read-only or unwritable run dir: a refusal that names it, not a traceback.
            raise RunDirError(
                f"refusing to start: run dir {self.rundir.path} cannot be written: {e.strerror} "
                f"({e.filename or self.rundir.path}). Nothing was started"
            ) from None
        self._open_state()
        if self.ray_address is not None:
            self._start_ray()  # before our signal handlers: ray.init installs its own
        self._zctx = zmq.Context()
        self._proxy = BusProxy(self._zctx, self.rundir.bus_in, self.rundir.bus_out)
        self._proxy.start()
        self._poller = zmq.Poller()
        self._control = self._zctx.socket(zmq.ROUTER)
        tune(self._control)
        self._control.setsockopt(zmq.ROUTER_MANDATORY, 1)
        bind_private(self._control, self.rundir.control)
        if self._ray is not None:
            self._open_tcp_endpoints()
        self.admin = AdminService(self._zctx, self.commands, self._count_invalid)
        admin_cfg = self.config.admin
        try:
            self.admin.open(
                self.rundir.admin, admin_cfg.tcp_endpoint, admin_cfg.server_key, admin_cfg.authorized_clients
            )
        except ValueError as e:
            raise RunDirError(str(e)) from None
        self._admin_sockets = self.admin.sockets
        self._status = Subscriber(
            self._zctx,
            self.rundir.bus_out,
            (topic.STATUS_PORTFOLIO, topic.STATUS_RISK, topic.FEED_STATUS, topic.VENUE_STATUS),
        )
        for sock in (self._control, *self._admin_sockets, self._status.socket):
            self._poller.register(sock, zmq.POLLIN)
        self._pub = Publisher(self._zctx, self.rundir.bus_in, NODE, 0, signer=self._signer)
        cfg = self.config.breakers
        self._breaker_store = _BreakerStore(self)
        self.breakers = BreakerBoard(
            self._breaker_store,
            self._announce_breaker,
            base_cooldown_s=cfg.cooldown_s,
            max_cooldown_s=cfg.max_cooldown_s,
            probe_s=cfg.probe_s,
            on_reset=self._breaker_reset,
        )
        self.breaker_probe_s = cfg.probe_s
        self.breakers.load()
        if self.journal.get_state(RUNNING_KEY) == b"1":
            # The last run did not shut down in order: start fail-closed.
            self.breakers.trip("global", "unclean_shutdown", timed=True)
        self.journal.put_state(RUNNING_KEY, b"1")
        # The last-value cache holds market *state*: quotes, market rules and analytics signals (a
        # strategy started now gets the current sentiment at once). Trades and posts are events, and a
        # node woken by every trade would compete with the actors on the trading path.
        quotes = (
            *(t for v in self.config.venues for t in (topic.quotes(v.name), topic.market_rules(v.name))),
            topic.SIGNALS,
        )
        self._market = Subscriber(self._zctx, self.rundir.bus_out, quotes)
        self._poller.register(self._market.socket, zmq.POLLIN)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self._poller.register(self._wake_r.fileno(), zmq.POLLIN)
        self._old_handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        preload = preload_modules(self.tree_spec)
        if sentry.dsn_from(self.config.sentry.dsn):
            preload += sentry.SDK_MODULES  # imported once, not in every actor process (~0.25 s each)
        self._launcher = Launcher(self._zctx, preload=preload, ray=self._ray)
        self.root = Supervisor(self.tree_spec, self)
        self.started_at = time.monotonic()
        log.info("node starting", extra={"event": "node_start", "run_dir": str(self.rundir.path)})
        self.root.start(on_started=self._on_started)

    def _on_started(self) -> None:
        log.info("all actors ready", extra={"event": "node_ready"})
        # Only now: the forkserver has forked, so no SDK thread is copied into an actor process.
        sentry.init_node(self.config.sentry.dsn)

    def _open_state(self) -> None:
        """Open and verify the journal and venue ledgers, or refuse to start; then mark the run dir.

        Runs before any socket is bound or actor started, so a refusal leaves nothing
        behind. Decisions (issue #8, points 1 and 7):

        * The run dir has traded before if it holds the marker ``node.json`` (written
          at the first start, outside the journal) or a non-empty venue ledger. Then a
          missing, empty or truncated journal is lost state: refuse (exit 2), never
          create a fresh journal over the evidence.
        * Any damage (file shorter than its meta page says, garbage, bad meta page,
          unreadable or read-only files, a record that does not decode, an index that
          disagrees with the log) in the journal or a venue ledger: refuse (exit 2),
          naming the file and the problem and how to recover. The whole journal is
          verified at each start (``bench/journal_verify.py`` measures the cost), unless
          it is exactly as the last orderly stop sealed it (:mod:`sniperbot.journal.seal`).
        * Each start gets a node-life token (:func:`sniperbot.rundir.next_node_life`),
          part of every client order id, so ids are never reused across node lives
          even if every file was lost.
        """
        marker = self.rundir.read_marker()
        ledgers = {
            venue: path
            for venue, path in venue_ledgers(self.rundir.path).items()
            if (path / "data.mdb").is_file() and (path / "data.mdb").stat().st_size > 0
        }
        evidence = []
        if marker is not None:
            evidence.append(f"its marker {self.rundir.marker}")
        evidence += [f"the venue ledger {path}" for path in ledgers.values()]
        problem = check_before_open(self.rundir.journal, must_exist=bool(evidence))
        if problem is not None:
            raise RunDirError(
                f"refusing to start: journal {problem}, but this run dir has run a node before "
                f"({', '.join(evidence)}); starting on an empty journal would forget orders, fills "
                f"and breakers and reuse client order ids. {self._recovery_hint()}"
            )
        try:
            self.journal = process_journal(self.rundir.path, self.config.journal.durability)
            if is_sealed(self.rundir.journal, self.journal.last_txnid()):
                self.journal.snapshot()  # untouched since an orderly stop (sniperbot.journal.seal)
            else:
                self.journal.verify()
            break_seal(self.rundir.journal)
            # What an executor sent or published but LMDB never got (it died first), whatever the
            # venue's fate since (removed from the config, never restarted): journaled before anyone
            # reads the journal.
            recovered = AheadLog.recover_all(self.journal)
            if recovered:
                log.warning(
                    "sent or published but missing from the journal: journaled from the write-ahead logs",
                    extra={
                        "event": "ahead_recovered",
                        "count": len(recovered),
                        "orders": sorted({r.client_order_id for r in recovered})[:10],
                    },
                )
        except JournalError as e:
            raise RunDirError(f"refusing to start: {e}. {self._recovery_hint()}") from None
        has_orders = self.journal.counts()["orders"] > 0
        for venue in venue_ledgers(self.rundir.path):
            if venue not in ledgers and not has_orders:
                continue  # never written: the venue creates it
            try:
                with VenueLedger.open(self.rundir.path, venue, readonly=True) as ledger:
                    ledger.verify()
            except LedgerError as e:
                raise RunDirError(f"refusing to start: {e}. {self._recovery_hint()}") from None
        node_keys = (keys.NODE_LIFE, RUNNING_KEY)
        if marker is not None and all(self.journal.get_state(k) is None for k in node_keys):
            # Not lost (the file is there, it verifies) but never written by a node: swapped for an
            # empty or foreign journal. Starting on it would trade on an empty book.
            raise RunDirError(
                f"refusing to start: journal {self.rundir.journal / DATA_FILE} was never written by a node "
                f"({self.journal.counts()['orders']} orders, no node state), but this run dir has run a node "
                f"before ({', '.join(evidence)}): it was replaced by an empty or foreign journal. "
                + self._recovery_hint()
            )
        problem = self._storage_problem(self.rundir.path / STORAGE_BALLAST)
        if problem is None:
            problem = self._allocate_ballast()
        if problem is not None:
            raise RunDirError(f"refusing to start: {problem}. Nothing was started")
        self.node_life = next_node_life(str((marker or {}).get("last_life", "")))
        try:
            # Journal first, marker second: a marker never exists beside a journal no node wrote.
            self.journal.put_state(keys.NODE_LIFE, self.node_life.encode())
            self.rundir.write_marker(self.node_life)
        except (JournalError, OSError) as e:
            raise RunDirError(f"refusing to start: cannot record this start: {e}. Nothing started") from None

    def _recovery_hint(self) -> str:
        return (
            "Nothing was started. To recover: restore the journal directory "
            f"{self.rundir.journal} (and any damaged venue-* ledger) from a backup or archive, "
            "and check it against the venue's own records (the venue ledger, the exchange); "
            "or, knowingly, start a fresh run dir (--run-dir NEW)"
        )

    def _storage_problem(self, ballast: Path | None = None) -> str | None:
        """What keeps the run dir's storage from journaling (naming the file or dir), or None.

        ``ballast``: while it is not allocated, free space must also cover it (hysteresis: a
        recovery must not fault again the moment the ballast is allocated back).
        """
        path = self.rundir.path
        need = DISK_RESERVE_BYTES
        if ballast is not None and not ballast.exists():
            need += DISK_RESERVE_BYTES
        try:
            stat = os.statvfs(path)
        except OSError as e:
            return f"run dir {path} cannot be checked: {e.strerror}"
        free = stat.f_bavail * stat.f_frsize
        if free < need:
            return (
                f"no space for the journal {self.rundir.journal / DATA_FILE}: {free} bytes free on its "
                f"file system, under the {need} bytes it needs in reserve"
            )
        probe = path / _STORAGE_PROBE_FILE
        try:
            with open(probe, "wb") as f:
                f.write(str(time.time_ns()).encode())
        except OSError as e:
            return f"run dir {path} is not writable: {e.strerror} (writing {probe})"
        return None

    def _allocate_ballast(self) -> str | None:
        """Allocate the ballast file (if missing); the problem if the file system refuses."""
        ballast = self.rundir.path / STORAGE_BALLAST
        if ballast.exists() and ballast.stat().st_size >= DISK_RESERVE_BYTES:
            return None
        try:
            fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, DISK_RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                ballast.unlink()
            return f"cannot allocate the storage reserve {ballast}: {e.strerror}"
        return None

    def _check_storage(self) -> None:
        """Once a second: hold ``global`` open on a storage fault; recover once storage is back.

        See the module docstring (storage faults fail closed, and recover by themselves).
        """
        ballast = self.rundir.path / STORAGE_BALLAST
        if not self.storage_fault:
            problem = self._storage_problem()
            if problem is None:
                return
            self.storage_fault = problem
            with contextlib.suppress(OSError):
                ballast.unlink()  # room for the journal writes of a fail-closed stop
            log.critical(
                "storage fault: trading stopped",
                extra={"event": "storage_fault", "run_dir": str(self.rundir.path), "error": problem},
            )
            self.breakers.hold("global", STORAGE_REASON + problem)
            self._cancel_open_orders("global", STORAGE_REASON + problem)
            return
        # Faulted: probe the run dir, then the journal itself; any failure keeps trading stopped.
        problem = self._storage_problem(ballast)
        if problem is None:
            try:
                self.journal.put_state(keys.STORAGE_PROBE, str(time.time_ns()).encode())
                self._breaker_store.flush()
            except JournalError as e:
                problem = f"journal {self.rundir.journal} cannot be written: {e}"
        if problem is None:
            problem = self._allocate_ballast()
        if problem is not None:
            if self.breakers.state("global") != "open":
                # An operator reset cannot trade through a storage fault: the next check holds it again.
                self.breakers.hold("global", STORAGE_REASON + self.storage_fault)
            return
        before, self.storage_fault = self.storage_fault, ""
        log.warning(
            "storage recovered: trading resumes after the breaker's probe",
            extra={"event": "storage_recovered", "run_dir": str(self.rundir.path), "error": before},
        )
        self.breakers.trip("global", f"storage recovered (was: {before})", timed=True)

    def _start_ray(self) -> None:
        """Start or join the Ray cluster (``--ray``); its address goes to ``<run dir>/ray.address``."""
        from sniperbot.actors.ray_placement import RayCluster, RayUnavailable

        cfg = self.config.cluster
        cluster = RayCluster(self.ray_address or "auto", cfg.namespace, cfg.num_cpus, cfg.actor_resources)
        try:
            cluster.start()
        except RayUnavailable as e:
            raise RunDirError(str(e)) from None
        self._ray = cluster
        self.rundir.ray_address.write_text(cluster.gcs_address + "\n")

    def _open_tcp_endpoints(self) -> None:
        """Bind the tcp side (bus bridge, control; inbox ports) that Ray actors connect to."""
        from sniperbot.actors.ray_placement import ClusterNet, RayUnavailable

        cfg = self.config.cluster
        host = self._ray.node_ip if cfg.host == "auto" else cfg.host
        try:
            self._net = ClusterNet(self._zctx, self.rundir, host, cfg.port_min, cfg.port_max)
            self._net.open(self._control)
            # Inbox ports for the whole configured tree now, so that the first launches
            # already know every peer; children added later get theirs at their first start.
            for spec in self.tree_spec.walk():
                if spec.type == "worker":
                    self._net.register(spec.id, spec.actor, spec.placement)
        except (RayUnavailable, zmq.ZMQError) as e:
            raise RunDirError(f"cannot bind the tcp endpoints for Ray on {host}: {e}") from None

    def _breaker_reset(self, scope: str) -> None:
        """An operator reset ``scope``: a subtree waiting out its cooldown starts now."""
        self.root.restart_tripped(scope)

    def _announce_breaker(self, change: BreakerChanged) -> None:
        self._pub.publish(topic.breaker(change.scope), change)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.request_stop(signal.Signals(signum).name)

    def _loop(self, duration_s: float | None, on_idle: Callable[[Node], None] | None) -> None:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_heartbeat = 0.0
        next_idle = 0.0
        stop_deadline = 0.0
        next_disk_check = 0.0
        next_metrics = 0.0
        self._last_awake = time.monotonic()
        while not self._stopped:
            if self._crash_requested:
                raise NodeCrash("admin chaos: the node raised in its own loop")
            ready = self._poller.poll(int(_LOOP_TICK_S * 1000))
            now = self._awake(_LOOP_TICK_S)
            # Market data first: a snapshot answered in this round (a joining actor's SnapshotRequest)
            # holds every value that reached the node before the request did (what a publisher sent
            # that actor directly while it joined, the actor holds until the snapshot's end).
            ready.sort(key=lambda item: item[0] is not self._market.socket)
            for sock, _ in ready:
                self._dispatch(sock)
            if deadline is not None and now >= deadline:
                self.request_stop("duration")
            if self._stop_requested and self.root.state not in ("stopping", "stopped", "failed"):
                stop_deadline = now + _SHUTDOWN_GRACE_S
                self.root.stop(on_stopped=self._all_stopped)
            if stop_deadline and now > stop_deadline:
                log.error("shutdown grace exceeded; killing remaining actors")
                for child in self.root.workers():
                    if child.handle is not None:
                        child.handle.kill()
                self._stopped = True
            if now >= next_disk_check and not self._stop_requested:
                next_disk_check = now + _DISK_CHECK_S
                self._check_storage()
            if now >= next_heartbeat:
                next_heartbeat = now + self.heartbeat_interval_s
                self.root.send_heartbeats()
            # Again right before the liveness check: a pause that began inside this round (after the
            # check above) would otherwise count against every actor at once.
            self.root.tick(self._awake(0.0))
            self.breakers.tick(self.root.state == "running" and not self._stop_requested)
            if self._metrics is not None and now >= next_metrics:
                next_metrics = now + self.config.metrics.interval_s
                self._pub.publish(topic.metrics(NODE), self._metrics.snapshot(self))
            if self._deferred:
                self._expire_deferred(now)
            if not self._stop_requested:
                self._launcher.maintain(now)
            if on_idle is not None and now >= next_idle:
                next_idle = now + 0.5
                on_idle(self)

    def _awake(self, expected_s: float) -> float:
        """Now; forgives the supervisors a silence this process could not hear the end of.

        Time since the last call beyond ``expected_s`` (the poll's own wait) means this process did
        not run: the whole VM paused, or the node was stopped or starved. Without this, one pause of
        heartbeat x liveness killed every actor as hung at once.
        """
        now = time.monotonic()
        paused = now - self._last_awake - expected_s
        self._last_awake = now
        if paused > self.heartbeat_interval_s:
            self.root.forgive(paused)
            log.warning("node loop paused", extra={"event": "loop_paused", "paused_s": round(paused, 3)})
        return now

    def _all_stopped(self) -> None:
        self._stopped = True

    def _expire_deferred(self, now: float) -> None:
        for _, reply, what in [d for d in self._deferred if d[0] <= now]:
            reply(failure("timeout", what))
        self._deferred = [d for d in self._deferred if d[0] > now]

    def _dispatch(self, sock: Any) -> None:
        if sock is self._control:
            self._drain(self._control, self._on_control)
        elif sock in self._admin_sockets:
            self._drain(sock, lambda frames, s=sock: self.admin.on_frames(frames, s))
        elif sock is self._status.socket:
            self._drain(self._status.socket, self._on_status)
        elif sock is self._market.socket:
            self._drain(self._market.socket, self._on_market)
        elif sock == self._wake_r.fileno():
            with contextlib.suppress(BlockingIOError):
                self._wake_r.recv(4096)
        else:
            on_exit = self._watched.get(sock)
            if on_exit is not None:
                if not self._stop_requested:
                    # An actor that died of a full disk: hold trading before its restart, not a
                    # second later (a crash loop would escalate to its subtree's breaker first).
                    self._check_storage()
                on_exit()

    def _drain(self, sock: zmq.Socket, handler: Callable[[list[bytes]], None]) -> None:
        for _ in range(1000):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                handler(frames)
            except InvalidFrame as e:
                self._count_invalid(sock, e.reason)

    def _count_invalid(self, sock: zmq.Socket, reason: str) -> None:
        self.invalid_frames += 1
        where = {id(self._control): "control", id(self.admin.unix_socket): "admin"}.get(id(sock), "status")
        key = where + reason.split(" - ")[0][:60]
        if key not in self._logged_invalid:
            self._logged_invalid.add(key)
            log.warning(
                "dropped invalid frame", extra={"event": "invalid_frame", "socket": where, "reason": reason}
            )

    def _on_control(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            raise InvalidFrame(f"expected 2 frames (identity, envelope), received {len(frames)}")
        actor_id, _, incarnation = frames[0].decode(errors="replace").rpartition("#")
        envelope = decode_envelope(frames[1])
        child = self._children.get(actor_id)
        if child is None or not incarnation.isdigit():
            raise InvalidFrame(f"control message from unknown sender {frames[0][:40]!r}")
        sent_by = int(incarnation)
        late_error = isinstance(envelope.payload, ActorError) and sent_by == child.previous_incarnation
        if sent_by != child.incarnation and not late_error:
            # An old incarnation woke up (or an actor outlived its node): it no longer counts,
            # and it is told to end. Stop needs no tag, so an old node life's actor obeys too.
            self.stale_messages += 1
            frame = encode_envelope(
                Envelope("ctl", NODE, 0, 0, time.time_ns(), Stop(reason="stale_incarnation"))
            )
            with contextlib.suppress(zmq.ZMQError):
                self._control.send_multipart((frames[0], frame), zmq.NOBLOCK)
            return
        if envelope.sender != actor_id:
            raise InvalidFrame(
                f"control message from {frames[0][:40]!r} names sender {envelope.sender[:40]!r}"
            )
        reason = self._verifier.check(frames[1], envelope)
        if reason is not None:
            raise InvalidFrame(f"unauthorised {type(envelope.payload).__name__} - {reason}")
        payload = envelope.payload
        if isinstance(payload, ActorError):
            # The current incarnation's, or (late_error) the one just replaced, whose report lost the
            # race with its exit: what it crashed on is still what admin tree should name.
            child.last_error = payload.error[:300]
            child.owner.crash_explained(child)
        elif isinstance(payload, Heartbeat):
            child.on_heartbeat(payload, time.monotonic())
        elif isinstance(payload, Ready):
            child.last_heartbeat = time.monotonic()
            child.owner.on_ready(child)
            # The actor's own Ready on the bus can be lost while its PUB connects (slow
            # joiner); peers resend to it on Ready, so the node says it again, reliably.
            self._pub.publish(topic.READY + actor_id, payload)
        elif isinstance(payload, SnapshotRequest):
            self._send_snapshot(child, payload)

    def _on_market(self, frames: list[bytes]) -> None:
        if len(frames) != 1:
            raise InvalidFrame(f"expected 1 bus frame (topic, envelope), received {len(frames)}")
        self.last_values.put(frames[0])

    def _send_snapshot(self, child: Child, request: SnapshotRequest) -> None:
        identity = f"{child.spec.id}#{child.incarnation}".encode()
        # Who is current first, so the receiver drops values an old incarnation left in the cache.
        for peer in self.root.workers():
            if peer.state == "running" and peer.handle is not None:
                ready = Ready(
                    actor_id=peer.spec.id, incarnation=peer.incarnation, pid=peer.handle.pid, ts_ns=0
                )
                self.send_control(child.spec.id, child.incarnation, ready)
        values = 0
        for frame in self.last_values.matching(request.topics):
            with contextlib.suppress(zmq.ZMQError):
                self._control.send_multipart((identity, frame), zmq.NOBLOCK)
                values += 1
        # Then the end: the actor hands over what local publishers sent it while it joined (held till now).
        self.send_control(child.spec.id, child.incarnation, SnapshotEnd(values=values))

    def _on_status(self, frames: list[bytes]) -> None:
        if len(frames) != 1:
            raise InvalidFrame(f"expected 1 bus frame (topic, envelope), received {len(frames)}")
        _, frame = split_message(frames[0])
        envelope = decode_envelope(frame)
        reason = self._verifier.check(frame, envelope)
        if reason is not None:
            raise InvalidFrame(f"unauthorised {type(envelope.payload).__name__} - {reason}")
        payload = envelope.payload
        if isinstance(payload, PortfolioSnapshot):
            self.portfolio = payload
        elif isinstance(payload, RiskStatus):
            self.risk = payload
        elif isinstance(payload, FeedStatus):
            self.feed_status[payload.venue] = payload
        elif isinstance(payload, VenueStatus):
            self.on_venue_status(payload)

    def _close(self) -> None:
        for sig, handler in getattr(self, "_old_handlers", {}).items():
            signal.signal(sig, handler)
        if hasattr(self, "_old_wakeup"):
            signal.set_wakeup_fd(self._old_wakeup)
            self._wake_r.close()
            self._wake_w.close()
        if hasattr(self, "root"):
            for child in self.root.workers():
                if child.handle is not None:
                    child.handle.kill()
                    child.handle.release()
        if hasattr(self, "_launcher"):
            self._launcher.close()
        if getattr(self, "_control", None) is not None:
            self._control.close(0)
        if getattr(self, "admin", None) is not None:
            self.admin.close()
        if hasattr(self, "_status"):
            self._status.close()
            self._market.close()
            self._pub.close()
        sealed_txnid = None
        if self._orderly:
            self.journal.put_state(RUNNING_KEY, b"0")  # only an orderly stop: no fail-closed start
            sealed_txnid = self.journal.last_txnid()
        if self._net is not None:
            self._net.close()
        if hasattr(self, "_proxy"):
            self._proxy.stop()
        close_process_journals()
        if sealed_txnid is not None:
            write_seal(self.rundir.journal, sealed_txnid)  # after the close: its flush is in the file
        if hasattr(self, "_zctx"):
            self._zctx.term()
        if self._ray is not None:
            self._ray.shutdown()  # a local cluster (--ray auto) stops with the node
            with contextlib.suppress(FileNotFoundError):
                self.rundir.ray_address.unlink()
        if hasattr(self, "_lock_fd"):
            # Every socket file of this run dir is ours while we hold the lock: none stays
            # behind to make `admin` wait for an answer that never comes.
            for stale in [*self.rundir.path.glob("*.sock"), *fanout.stale_files(self.rundir.path)]:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
            os.close(self._lock_fd)
        log.info("node stopped", extra={"event": "node_stopped", "exit_code": self.exit_code})

    # -- admin views --------------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        """Liveness of the node itself."""
        return {"pid": os.getpid(), "uptime_s": round(time.monotonic() - self.started_at, 3)}

    def tree(self) -> dict[str, Any]:
        """The supervision tree with every actor's placement, pid, state and restarts."""
        return self.root.describe()

    def status(self) -> dict[str, Any]:
        """Positions, P&L, order and fill counts, trading state."""
        counts = self.journal.counts()
        snapshot = self.portfolio
        held = snapshot.positions if snapshot else []
        # Keyed "venue:symbol" (position_key): BTC/USDT on two venues is two positions.
        positions = {position_key(p.venue, p.symbol): p.quantity for p in held}
        return {
            "positions": positions,
            "pnl": {
                "realized": snapshot.realized_pnl if snapshot else 0.0,
                "unrealized": snapshot.unrealized_pnl if snapshot else 0.0,
                "fees": snapshot.fees if snapshot else 0.0,
                "net": (snapshot.realized_pnl + snapshot.unrealized_pnl - snapshot.fees) if snapshot else 0.0,
            },
            "orders": counts.get("orders", 0),
            "fills": counts.get("fills", 0),
            "rejected": snapshot.rejected if snapshot else 0,
            "trading_state": self.risk.trading_state if self.risk else "UNKNOWN",
            "breakers": self.breakers.snapshot(),
            # The storage fault holding the global breaker open ("ok" when storage is fine).
            "storage": self.storage_fault or "ok",
            "venues": self.venues_status(),
            "actors": sum(1 for c in self.root.workers() if c.state == "running"),
            "restarts": sum(c.restarts for c in self.root.workers()),
            "invalid_frames": self.invalid_frames + sum(c.invalid_frames for c in self.root.workers()),
            # Control messages from replaced incarnations (a hung actor that woke up): ignored.
            "stale_messages": self.stale_messages,
            "uptime_s": round(time.monotonic() - self.started_at, 3),
        }

    def venues_status(self) -> dict[str, Any]:
        """Per configured venue: kind, mode, its feed's last FeedStatus, its gateway's last VenueStatus.

        ``feed`` / ``gateway`` are None until that actor has reported (about once a second).
        """
        out: dict[str, Any] = {}
        for venue in self.config.venues:
            feed = self.feed_status.get(venue.name)
            gateway = self.venue_status.get(venue.name)
            out[venue.name] = {
                "kind": type(venue).__struct_config__.tag,
                "mode": venue.mode,
                "feed": None
                if feed is None
                else {
                    "connected": feed.connected,
                    "stale": feed.stale,
                    "reconnects": feed.reconnects,
                    "gaps": feed.gaps,
                    "snapshots": feed.snapshots,
                    "stale_periods": feed.stale_periods,
                    "rest_polls": feed.rest_polls,
                    "last_message_ns": feed.last_message_ns,
                    "ts_ns": feed.ts_ns,
                },
                "gateway": None
                if gateway is None
                else {k: v for k, v in msgspec.to_builtins(gateway).items() if k not in ("venue", "t")},
            }
        return out
