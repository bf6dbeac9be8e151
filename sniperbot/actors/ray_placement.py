"""Placement ``ray``: an actor incarnation as a Ray actor, under sniperbot's own supervisors.

Ray is optional (``pip install 'sniperbot[cluster]'``): this module imports it
only when a node runs with ``--ray``, so sniperbot imports and runs without it.

What the pieces do:

- :class:`RayCluster` starts a local Ray (``--ray auto``) or joins one
  (``--ray ADDRESS``), and shuts it down (or leaves it) when the node stops.
- :class:`ClusterNet` is the node's tcp side. A Ray actor may run on another
  machine, so it reaches the node over tcp on ``[cluster] host``: the bus (a
  forwarder pair bridges the node's ipc bus to tcp, see :class:`_Forwarder`),
  the control ROUTER (bound on ipc and tcp) and every inbox. Inbox ports are
  allocated by the node before the first launch of each actor and kept for the
  node's lifetime, so a restarted actor binds the same endpoint and its peers'
  outboxes simply reconnect; every launch carries the map of endpoints its
  actor needs (``ActorLaunch.endpoints`` / ``inbox_binds``). Local actors keep
  ipc among themselves and use tcp only to reach Ray actors; their inboxes bind
  tcp as well, for the Ray actors that send to them.
- :class:`RayHandle` is what a supervisor holds, like ``ProcessHandle``: the
  Ray actor is created with Ray's restarts off (``max_restarts=0``,
  ``max_task_retries=0``) and runs the same :class:`ActorRuntime` loop on a
  thread of its worker; a watcher thread waits on the loop's ``run`` call and
  closes a pipe when it returns or the actor dies (``ray.kill``, a killed
  worker, a lost Ray node), which makes ``sentinel`` readable in the node's
  poller. The supervisor then restarts it with a new incarnation, as for any
  crash.

A Ray actor with an inbox binds it on ``[cluster] host`` (the node's address),
so it must run on the node's machine; so must every actor that uses the
journal (LMDB in the run directory). ``[cluster] actor_resources`` pins them
there on a real cluster (see ``deploy/kuberay/README.md``).
"""

from __future__ import annotations

import errno
import logging
import os
import random
import signal
import socket
import threading
from typing import Any

import msgspec
import zmq

from sniperbot.actors.runtime import EXIT_CRASH, ActorLaunch, ActorRuntime, load_actor_class
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import BUS_HWM, tune

log = logging.getLogger("sniperbot.ray")

LOCAL = "auto"  # ``--ray auto``: start a local Ray instead of joining one
_KILL_GRACE_S = 5.0  # after this, an incarnation Ray has not reported dead is abandoned


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be started or joined."""


def import_ray() -> Any:
    """Import Ray, or raise :class:`RayUnavailable` saying how to install it."""
    factory = logging.getLogRecordFactory()
    try:
        import ray
    except ImportError:
        raise RayUnavailable("Ray is not installed: pip install 'sniperbot[cluster]'") from None
    # Ray's import adds ``_ray_timestamp_ns`` to every log record, which our JSON lines would print.
    logging.setLogRecordFactory(factory)
    return ray


# -- the cluster --------------------------------------------------------------------------------


class RayCluster:
    """The node's Ray runtime: a local one (``auto``) or a connection to a running cluster."""

    def __init__(
        self, address: str, namespace: str, num_cpus: int, actor_resources: dict[str, float]
    ) -> None:
        self.address = address
        self.namespace = namespace
        self.num_cpus = num_cpus
        self.actor_resources = dict(actor_resources)
        self.gcs_address = ""
        self.node_ip = ""
        self.node_id = ""
        self._host_class: Any = None
        self._saved_handlers: dict[int, Any] = {}

    def start(self) -> None:
        """Start or join Ray (seconds: a local start launches the GCS, a raylet and workers)."""
        # Read by Ray at import: no usage report, and a local cluster stays on loopback
        # (Ray would otherwise advertise the machine's external address).
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if self.address == LOCAL:
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = import_ray()
        # ray.init installs a SIGTERM handler of its own; the node's lifecycle owns signals.
        self._saved_handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.address == LOCAL:
                # address="local" always starts a new cluster (RAY_ADDRESS is ignored).
                ray.init(
                    address="local",
                    num_cpus=self.num_cpus,
                    include_dashboard=False,
                    namespace=self.namespace,
                    logging_level=logging.WARNING,
                )
            else:
                ray.init(address=self.address, namespace=self.namespace, logging_level=logging.WARNING)
        except Exception as e:
            raise RayUnavailable(f"cannot start or join Ray at {self.address!r}: {e}") from None
        context = ray.get_runtime_context()
        self.gcs_address = context.gcs_address
        self.node_id = context.get_node_id()
        self.node_ip = ray.util.get_node_ip_address()
        log.info(
            "ray ready",
            extra={"event": "ray_start", "address": self.gcs_address, "node_ip": self.node_ip},
        )

    def host_class(self) -> Any:
        """The Ray actor class (built on first use, so importing this module needs no Ray)."""
        if self._host_class is None:
            ray = import_ray()
            # Ray's own restarts and retries off: our supervisors own restart decisions.
            # Two concurrent calls: ``run`` holds one thread for the actor's life, ``where`` the other.
            self._host_class = ray.remote(max_restarts=0, max_task_retries=0, max_concurrency=2)(
                SniperbotActor
            )
        return self._host_class

    def shutdown(self) -> None:
        """Leave the cluster (a local one stops); restores the signal handlers Ray replaced."""
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        finally:
            for sig, handler in self._saved_handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)


# -- the Ray actor --------------------------------------------------------------------------------


class SniperbotActor:
    """The Ray actor hosting one incarnation: the same ActorRuntime loop, on a thread of the worker."""

    def __init__(self, launch_bytes: bytes) -> None:
        from sniperbot.logs import configure_logging

        self._launch = msgspec.msgpack.decode(launch_bytes, type=ActorLaunch)
        configure_logging(self._launch.log_level)
        # The worker imported Ray first, which adds ``_ray_timestamp_ns`` to every record.
        logging.setLogRecordFactory(logging.LogRecord)

    def where(self) -> tuple[int, str]:
        """The worker's pid and Ray node id."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def run(self) -> int:
        """Run the actor until it stops; returns its exit code (a crash is EXIT_CRASH)."""
        runtime = ActorRuntime(self._launch)
        try:
            return runtime.run()
        except Exception as e:
            hint = ""
            if isinstance(e, zmq.ZMQError) and e.errno == errno.EADDRNOTAVAIL:
                hint = " (an actor with an inbox must run on the node's machine: [cluster] actor_resources)"
            runtime.log.exception("actor crashed" + hint, extra={"event": "crash"})
            return EXIT_CRASH


# -- the handle -----------------------------------------------------------------------------------


class RayHandle:
    """A supervisor's handle on a Ray actor incarnation: sentinel, exit code, pid, kill, release."""

    def __init__(self, cluster: RayCluster, launch: ActorLaunch) -> None:
        self.name = f"{launch.actor_id}#{launch.incarnation}"
        self.code: int | None = None
        self.reason = ""
        self.pid: int | None = None  # the Ray worker's pid, known once the actor answered
        self._cluster = cluster
        self._ray_node = ""
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.sentinel, self._done_w = os.pipe()
        self._actor: Any = None
        try:
            options: dict[str, Any] = {"name": self.name, "namespace": cluster.namespace}
            if cluster.actor_resources:
                options["resources"] = dict(cluster.actor_resources)
            self._actor = cluster.host_class().options(**options).remote(msgspec.msgpack.encode(launch))
            run_ref = self._actor.run.remote()
        except Exception as e:
            # E.g. the name is still taken by a dying predecessor, or Ray is gone: a failed
            # start, which the supervisor counts and retries like any other.
            log.error("cannot create Ray actor", extra={"event": "ray_create_failed", "actor": self.name})
            self._finish(EXIT_CRASH, f"cannot create Ray actor: {e}")
            return
        threading.Thread(
            target=self._watch, args=(run_ref,), name=f"ray-watch:{self.name}", daemon=True
        ).start()

    def _watch(self, run_ref: Any) -> None:
        """Wait for the incarnation to end (its ``run`` returns, or Ray reports it dead)."""
        import ray
        from ray.exceptions import RayActorError

        try:
            self.pid, self._ray_node = ray.get(self._actor.where.remote())
            code, reason = int(ray.get(run_ref)), ""
        except RayActorError as e:
            # ray.kill, a killed worker, a lost Ray node: as abrupt as a SIGKILL.
            code, reason = -signal.SIGKILL, " ".join(str(e).split())[:400]
        except Exception as e:
            code, reason = EXIT_CRASH, f"{type(e).__name__}: {e}"
        self._finish(code, reason)

    def _finish(self, code: int, reason: str) -> None:
        with self._lock:
            if self._done_w < 0:
                return
            self.code = code
            self.reason = reason
            os.close(self._done_w)  # the sentinel reads EOF: the node's poller sees the exit
            self._done_w = -1
            if self._timer is not None:
                self._timer.cancel()
        if reason:
            log.info("ray actor ended", extra={"event": "ray_exit", "actor": self.name, "reason": reason})

    def exitcode(self) -> int | None:
        """Exit code once ended (``-SIGKILL`` when Ray reports the actor dead), else None."""
        return self.code

    def kill(self) -> None:
        """``ray.kill`` the actor; abandon it if Ray has not reported it dead within a few seconds."""
        if self.code is not None or self._actor is None:
            return
        try:
            import ray

            ray.kill(self._actor, no_restart=True)
        except Exception as e:
            self._finish(-signal.SIGKILL, f"ray.kill failed: {e}")
            return
        if self.pid is not None and self._ray_node == self._cluster.node_id:
            # Ray reports a stopped (SIGSTOP) worker dead at once but kills it only seconds
            # later, and until then it holds its tcp inbox port: on this machine, kill it now.
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        with self._lock:
            if self._done_w >= 0 and self._timer is None:
                self._timer = threading.Timer(
                    _KILL_GRACE_S, self._finish, args=(-signal.SIGKILL, "abandoned: no death report from Ray")
                )
                self._timer.daemon = True
                self._timer.start()

    def release(self) -> None:
        """Close the sentinel and free the Ray worker (it outlives a normal return of ``run``)."""
        try:
            os.close(self.sentinel)
        except OSError:
            pass
        actor, self._actor = self._actor, None
        if actor is not None:
            try:
                import ray

                ray.kill(actor, no_restart=True)
            except Exception:
                pass  # already dead, or Ray is shutting down


# -- tcp endpoints ----------------------------------------------------------------------------------


class _Forwarder:
    """An XSUB/XPUB pair in its own thread, each side bound or connected (a leg of the tcp bus)."""

    def __init__(self, ctx: zmq.Context, name: str, xsub: tuple[str, bool], xpub: tuple[str, bool]) -> None:
        self._ctx = ctx
        self._name = name
        self._xsub = xsub
        self._xpub = xpub
        self._control_addr = f"inproc://{name}-{id(self)}"
        self._ready = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Open both sides and start forwarding; raises if a bind failed."""
        self._thread.start()
        if not self._ready.wait(5.0):
            raise RuntimeError(f"{self._name} did not start within 5 s")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        xsub = self._ctx.socket(zmq.XSUB)
        xpub = self._ctx.socket(zmq.XPUB)
        control = self._ctx.socket(zmq.PAIR)
        try:
            for sock in (xsub, xpub, control):
                tune(sock)
            xsub.setsockopt(zmq.RCVHWM, BUS_HWM)
            xpub.setsockopt(zmq.SNDHWM, BUS_HWM)
            for sock, (endpoint, bind) in ((xsub, self._xsub), (xpub, self._xpub)):
                (sock.bind if bind else sock.connect)(endpoint)
            control.bind(self._control_addr)
        except zmq.ZMQError as e:
            self._error = e
            self._ready.set()
            for sock in (xsub, xpub, control):
                sock.close(0)
            return
        self._ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (xsub, xpub, control):
                sock.close(0)

    def stop(self) -> None:
        """Stop forwarding and close the sockets."""
        if not self._thread.is_alive():
            return
        control = self._ctx.socket(zmq.PAIR)
        control.setsockopt(zmq.LINGER, 1000)
        control.connect(self._control_addr)
        control.send(b"TERMINATE")
        self._thread.join(2.0)
        control.close(0)


class ClusterNet:
    """The node's tcp endpoints for Ray actors, and the endpoint map of every launch."""

    def __init__(self, zctx: zmq.Context, rundir: RunDir, host: str, port_min: int, port_max: int) -> None:
        self._zctx = zctx
        self._rundir = rundir
        self.host = host
        self._port_min = port_min
        self._port_max = port_max
        self._taken: set[int] = set()
        self._rng = random.Random()
        self._inboxes: dict[str, str] = {}  # actor id -> its tcp inbox endpoint
        self._placements: dict[str, str] = {}  # actor id -> placement, for actors with an inbox
        self._has_inbox: dict[str, bool] = {}  # actor class path -> whether it binds an inbox
        self._forwarders: list[_Forwarder] = []
        self.bus_in = self._endpoint(self._reserve_port())
        self.bus_out = self._endpoint(self._reserve_port())
        self.control = self._endpoint(self._reserve_port())

    def _endpoint(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{port}"

    def _reserve_port(self) -> int:
        """A port of the range that is free on ``host`` now; never handed out twice by this node.

        The range lies outside the kernel's ephemeral ports, so no outgoing
        connection takes the port between this check and the owner's bind.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(200):
            port = self._rng.randint(self._port_min, self._port_max)
            if port in self._taken:
                continue
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind((self.host, port))
                except OSError as e:
                    if e.errno == errno.EADDRNOTAVAIL:
                        raise RayUnavailable(
                            f"cluster.host {self.host!r} is not an address of this machine"
                        ) from None
                    continue
            self._taken.add(port)
            return port
        raise RayUnavailable(f"no free tcp port in {self._port_min}..{self._port_max} on {self.host}")

    def open(self, control: zmq.Socket) -> None:
        """Bind the control ROUTER on tcp too, and bridge the ipc bus to tcp."""
        control.bind(self.control)
        rd = self._rundir
        # Publishers on tcp -> the node's XSUB; the node's XPUB -> subscribers on tcp.
        # Subscriptions travel upstream through both legs, so only followed topics cross.
        self._forwarders = [
            _Forwarder(self._zctx, "bus-tcp-in", (self.bus_in, True), (rd.bus_in, False)),
            _Forwarder(self._zctx, "bus-tcp-out", (rd.bus_out, False), (self.bus_out, True)),
        ]
        for forwarder in self._forwarders:
            forwarder.start()
        log.info(
            "tcp endpoints bound",
            extra={
                "event": "tcp_endpoints",
                "bus_in": self.bus_in,
                "bus_out": self.bus_out,
                "control": self.control,
            },
        )

    def close(self) -> None:
        """Stop the bus bridge (the node closes the control socket itself)."""
        for forwarder in self._forwarders:
            forwarder.stop()
        self._forwarders = []

    def register(self, actor_id: str, actor: str, placement: str) -> None:
        """Note a worker (its class says whether it has an inbox); allocates its tcp inbox once."""
        has_inbox = self._has_inbox.get(actor)
        if has_inbox is None:
            try:
                has_inbox = bool(load_actor_class(actor).inbox)
            except Exception:
                has_inbox = False  # it will fail to start on its own, with the real error
            self._has_inbox[actor] = has_inbox
        if not has_inbox:
            return
        self._placements[actor_id] = placement
        if actor_id not in self._inboxes:
            self._inboxes[actor_id] = self._endpoint(self._reserve_port())

    def for_launch(self, actor_id: str, placement: str) -> tuple[dict[str, str], list[str]]:
        """``(endpoints, inbox_binds)`` for one launch of ``actor_id`` in ``placement``."""
        own = self._inboxes.get(actor_id)
        if placement == "ray":
            endpoints = {"bus_in": self.bus_in, "bus_out": self.bus_out, "control": self.control}
            endpoints.update({f"inbox:{a}": e for a, e in self._inboxes.items()})
            return endpoints, [own] if own else []
        # Local actors keep ipc among themselves and use tcp only to reach Ray actors.
        endpoints = {f"inbox:{a}": e for a, e in self._inboxes.items() if self._placements.get(a) == "ray"}
        return endpoints, [self._rundir.inbox(actor_id), own] if own else []
