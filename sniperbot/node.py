"""The node: one OS process that owns the bus, the supervisors and the admin socket.

It runs one event loop (never blocking for long) that watches every actor
process's exit, relays heartbeats, serves the admin socket and follows the
portfolio and risk status. It exits 0 after an orderly shutdown (SIGINT,
SIGTERM or the end of ``--duration``), and 70 only if the root supervisor
exceeded its restart intensity (the outer process manager restarts it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import zmq

from sniperbot.actors.placement import ActorHandle, Launcher
from sniperbot.actors.runtime import ActorLaunch, close_process_journals, process_journal
from sniperbot.admin.protocol import MAX_REQUEST_BYTES, AdminError, AdminReply, decode_request, encoder
from sniperbot.admin.server import AdminCommands, failure
from sniperbot.config import Config
from sniperbot.messages import (
    BreakerChanged,
    CancelOrder,
    Envelope,
    Heartbeat,
    InvalidFrame,
    Payload,
    PortfolioSnapshot,
    Ready,
    RiskStatus,
    SetTradingState,
    SnapshotRequest,
    decode_envelope,
    encode_envelope,
)
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir, RunDirError
from sniperbot.supervision import Child, ChildSpec, Supervisor
from sniperbot.supervision.breaker import BreakerBoard, BreakerState
from sniperbot.topology import build_tree
from sniperbot.transport.bus import BusProxy, Publisher, Subscriber, bind_private, tune

log = logging.getLogger("sniperbot.node")

EXIT_ROOT_FAILED = 70
RUNNING_KEY = "node/running"
TRADING_STATE_KEY = "risk/trading_state"
_LOOP_TICK_S = 0.05
_SHUTDOWN_GRACE_S = 60.0


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
    ) -> None:
        self.config = config
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
        self.invalid_frames = 0
        self.stale_messages = 0
        self.portfolio: PortfolioSnapshot | None = None
        self.risk: RiskStatus | None = None
        self._stop_requested = ""
        self._stopped = False
        self._incarnations: dict[str, int] = {}
        self._children: dict[str, Child] = {}
        self._watched: dict[int, Callable[[], None]] = {}
        self._logged_invalid: set[str] = set()
        self._last_values: dict[bytes, bytes] = {}  # market-data topic -> last frame (Clone pattern)
        self._deferred: list[tuple[float, Callable[[AdminReply], None], str]] = []
        self.commands = AdminCommands(self)

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
            endpoints=endpoints,
            inbox_binds=inbox_binds,
        )
        return self._launcher.start(launch, spec.placement)  # type: ignore[arg-type]

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
        frame = encode_envelope(Envelope("ctl", "node", 0, 0, time.time_ns(), payload))
        with contextlib.suppress(zmq.ZMQError):
            self._control.send_multipart((f"{actor_id}#{incarnation}".encode(), frame), zmq.NOBLOCK)

    def next_incarnation(self, actor_id: str) -> int:
        """Incarnations increase node-wide, whichever supervisor instance starts the actor."""
        self._incarnations[actor_id] = self._incarnations.get(actor_id, 0) + 1
        return self._incarnations[actor_id]

    def register(self, actor_id: str, child: Child) -> None:
        """Route control messages from ``actor_id`` to ``child``."""
        self._children[actor_id] = child

    def root_failed(self, supervisor: Supervisor) -> None:
        """The root gave up: persist the global breaker open, exit non-zero for the outer manager."""
        log.critical("root supervisor exceeded its restart intensity", extra={"event": "root_failed"})
        self.breakers.trip("global", "root supervisor exceeded its restart intensity", timed=True)
        self.exit_code = EXIT_ROOT_FAILED
        self._stopped = True

    def breaker_tripped(self, scope: str, reason: str) -> float:
        """A subtree escalated: open its breaker, cancel open orders in scope; returns the cooldown."""
        cooldown = self.breakers.trip(scope, reason)
        self._cancel_open_orders(scope, reason)
        return cooldown

    def breaker_half_open(self, scope: str) -> None:
        """The tripped subtree is being started again on probation."""
        self.breakers.half_open(scope)

    def breaker_closed(self, scope: str) -> None:
        """The subtree passed its probe period."""
        self.breakers.close(scope)

    def breaker_state(self, scope: str) -> BreakerState:
        """Current state of a breaker."""
        return self.breakers.state(scope)

    def persist_child_spec(self, sup_id: str, spec: ChildSpec, delete: bool) -> None:
        """Journal (or forget) a child added at run time, so it survives restarts."""
        key = f"spec/{sup_id}/{spec.id}"
        self.journal.put_state(key, None if delete else msgspec.json.encode(spec))

    def persisted_child_specs(self, sup_id: str) -> list[ChildSpec]:
        """Children added at run time to ``sup_id``, from the journal."""
        return [
            msgspec.json.decode(raw, type=ChildSpec) for _, raw in self.journal.state_items(f"spec/{sup_id}/")
        ]

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
        self.journal.put_state(TRADING_STATE_KEY, msgspec.json.encode({"state": state, "reason": reason}))
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
        """Run until stopped; returns the process exit code."""
        self._open()
        try:
            self._loop(duration_s, on_idle)
        finally:
            self._close()
        return self.exit_code

    def _open(self) -> None:
        self.rundir.create()
        self._lock_fd = self.rundir.lock()
        for stale in self.rundir.path.glob("*.sock"):
            stale.unlink()  # left by a node that was killed; we hold the lock now
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
        self._admin = self._zctx.socket(zmq.ROUTER)
        tune(self._admin, MAX_REQUEST_BYTES)
        bind_private(self._admin, self.rundir.admin)
        self._admin_sockets = [self._admin]
        if self.config.admin.tcp_endpoint:
            self._admin_sockets.append(self._open_curve_admin())
        self._status = Subscriber(
            self._zctx, self.rundir.bus_out, (topic.STATUS_PORTFOLIO, topic.STATUS_RISK)
        )
        for sock in (self._control, *self._admin_sockets, self._status.socket):
            self._poller.register(sock, zmq.POLLIN)
        self.journal = process_journal(self.rundir.path, self.config.journal.durability)
        self._pub = Publisher(self._zctx, self.rundir.bus_in, "node", 0)
        cfg = self.config.breakers
        self.breakers = BreakerBoard(
            self.journal,
            self._announce_breaker,
            base_cooldown_s=cfg.cooldown_s,
            max_cooldown_s=cfg.max_cooldown_s,
            probe_s=cfg.probe_s,
        )
        self.breaker_probe_s = cfg.probe_s
        self.breakers.load()
        if self.journal.get_state(RUNNING_KEY) == b"1":
            # The last run did not shut down in order: start fail-closed.
            self.breakers.trip("global", "unclean_shutdown", timed=True)
        self.journal.put_state(RUNNING_KEY, b"1")
        # The last-value cache holds market *state*: quotes. Trades are events, and a
        # node woken by every trade would compete with the actors on the trading path.
        self._market = Subscriber(self._zctx, self.rundir.bus_out, (topic.quotes(self.config.market.venue),))
        self._poller.register(self._market.socket, zmq.POLLIN)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self._poller.register(self._wake_r.fileno(), zmq.POLLIN)
        self._old_handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        self._launcher = Launcher(self._zctx, ray=self._ray)
        self.root = Supervisor(self.tree_spec, self)
        self.started_at = time.monotonic()
        log.info("node starting", extra={"event": "node_start", "run_dir": str(self.rundir.path)})
        self.root.start(on_started=lambda: log.info("all actors ready", extra={"event": "node_ready"}))

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

    def _open_curve_admin(self) -> zmq.Socket:
        """The TCP admin socket: CURVE-encrypted, only authorized client keys pass ZAP."""
        from zmq.auth import load_certificate
        from zmq.auth.thread import ThreadAuthenticator

        cfg = self.config.admin
        self._authenticator = ThreadAuthenticator(self._zctx)
        self._authenticator.start()
        self._authenticator.configure_curve(domain="*", location=cfg.authorized_clients)
        public, secret = load_certificate(cfg.server_key)
        if secret is None:
            raise RunDirError(f"admin.server_key {cfg.server_key} holds no secret key")
        sock = self._zctx.socket(zmq.ROUTER)
        tune(sock, MAX_REQUEST_BYTES)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True
        sock.bind(cfg.tcp_endpoint)
        log.info("admin over tcp", extra={"event": "admin_tcp", "endpoint": cfg.tcp_endpoint})
        return sock

    def _announce_breaker(self, change: BreakerChanged) -> None:
        self._pub.publish(topic.breaker(change.scope), change)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.request_stop(signal.Signals(signum).name)

    def _loop(self, duration_s: float | None, on_idle: Callable[[Node], None] | None) -> None:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_heartbeat = 0.0
        next_idle = 0.0
        stop_deadline = 0.0
        while not self._stopped:
            for sock, _ in self._poller.poll(int(_LOOP_TICK_S * 1000)):
                self._dispatch(sock)
            now = time.monotonic()
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
            if now >= next_heartbeat:
                next_heartbeat = now + self.heartbeat_interval_s
                self.root.send_heartbeats()
            self.root.tick()
            self.breakers.tick(self.root.state == "running" and not self._stop_requested)
            if self._deferred:
                self._expire_deferred(now)
            if on_idle is not None and now >= next_idle:
                next_idle = now + 0.5
                on_idle(self)

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
            self._drain(sock, lambda frames, s=sock: self._on_admin(frames, s))
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
        where = {id(self._control): "control", id(self._admin): "admin"}.get(id(sock), "status")
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
        if int(incarnation) != child.incarnation:
            self.stale_messages += 1  # an old incarnation woke up; it no longer counts
            return
        payload = envelope.payload
        if isinstance(payload, Heartbeat):
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
        # Raw frames, not decoded: the cache costs a dict store per message.
        if len(frames) == 2:
            self._last_values[frames[0]] = frames[1]

    def _send_snapshot(self, child: Child, request: SnapshotRequest) -> None:
        prefixes = tuple(t.encode() for t in request.topics)
        identity = f"{child.spec.id}#{child.incarnation}".encode()
        for key, frame in list(self._last_values.items()):
            if key.startswith(prefixes):
                with contextlib.suppress(zmq.ZMQError):
                    self._control.send_multipart((identity, frame), zmq.NOBLOCK)

    def _on_status(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            raise InvalidFrame(f"expected 2 frames (topic, envelope), received {len(frames)}")
        payload = decode_envelope(frames[1]).payload
        if isinstance(payload, PortfolioSnapshot):
            self.portfolio = payload
        elif isinstance(payload, RiskStatus):
            self.risk = payload

    def _on_admin(self, frames: list[bytes], sock: zmq.Socket) -> None:
        if len(frames) < 2:
            raise InvalidFrame(f"expected identity and request frames, received {len(frames)}")
        envelope = frames[:-1]

        def reply(answer: AdminReply) -> None:
            with contextlib.suppress(zmq.ZMQError):
                sock.send_multipart([*envelope, encoder.encode(answer)], zmq.NOBLOCK)

        try:
            request = decode_request(frames[-1])
        except InvalidFrame as e:
            self._count_invalid(sock, e.reason)
            reply(AdminReply(ok=False, error=AdminError("invalid_message", e.reason)))
            return
        self.commands.handle(request, reply)

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
        for sock in [getattr(self, "_control", None), *getattr(self, "_admin_sockets", [])]:
            if sock is not None:
                sock.close(0)
        if hasattr(self, "_authenticator"):
            self._authenticator.stop()
        if hasattr(self, "_status"):
            self._status.close()
            self._market.close()
            self._pub.close()
        if hasattr(self, "journal") and self.exit_code == 0:
            self.journal.put_state(RUNNING_KEY, b"0")  # an orderly stop: no fail-closed start
        if self._net is not None:
            self._net.close()
        if hasattr(self, "_proxy"):
            self._proxy.stop()
        close_process_journals()
        if hasattr(self, "_zctx"):
            self._zctx.term()
        if self._ray is not None:
            self._ray.shutdown()  # a local cluster (--ray auto) stops with the node
            with contextlib.suppress(FileNotFoundError):
                self.rundir.ray_address.unlink()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.rundir.ipc_path("admin"))
        if hasattr(self, "_lock_fd"):
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
        positions = {p.symbol: p.quantity for p in snapshot.positions} if snapshot else {}
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
            "actors": sum(1 for c in self.root.workers() if c.state == "running"),
            "restarts": sum(c.restarts for c in self.root.workers()),
            "invalid_frames": self.invalid_frames + sum(c.invalid_frames for c in self.root.workers()),
            "uptime_s": round(time.monotonic() - self.started_at, 3),
        }
