"""Where an actor incarnation runs: its own OS process (default), a thread of the node, or Ray.

Both placements give the supervisor the same handle: a ``sentinel`` file
descriptor that becomes readable when the incarnation ends, an ``exitcode``, a
``pid`` and ``kill()``. Processes come from a multiprocessing forkserver that
has preloaded sniperbot's modules, so a restart costs a fork, not an interpreter
start and imports.

Thread placement runs the same :class:`ActorRuntime` inside a pykka
``ThreadingActor``: pykka gives it a thread, a mailbox for lifecycle messages
and failure reporting. A thread cannot be killed: a hung thread actor is
abandoned (its sockets stay with it) and a fresh incarnation is started; its
messages are ignored by incarnation number if it ever wakes up.

Ray placement (``sniperbot.actors.ray_placement``, imported only when used)
gives the same handle for a Ray actor on the node's Ray cluster.

**A spare process.** The node keeps one process forked ahead of need (:meth:`Launcher.maintain`,
from its loop): frozen, tied to the node's life, logging and a ZeroMQ context set up, blocked on a
pipe. The next process start (a restart, mostly) hands it the launch instead of asking the
forkserver for a fork: no fork on the restart's path, and none of the first touches of the
forkserver's pages that a fresh process pays (each copied on write) before its actor can be ready.
The next spare is forked :data:`SPARE_REFILL_S` later, outside that restart; the first one only
after a process start has run the forkserver (a node whose actors are all threads keeps none).
Tools and tests that use a Launcher without calling ``maintain`` start every process from the
forkserver.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import time
from typing import Any, Literal

import msgspec
import pykka
import zmq

from sniperbot.actors.runtime import (
    EXIT_CRASH,
    EXIT_NORMAL,
    ActorLaunch,
    ActorRuntime,
    run_actor_process,
    run_spare_process,
)
from sniperbot.supervision.handle import ActorHandle

Placement = Literal["process", "thread", "ray"]

# Modules imported once in the forkserver so that every actor process starts warm: what
# every actor needs; the node adds every actor module of its tree
# (:func:`sniperbot.topology.preload_modules`).
# (Sentry's module compiles its secret scrubber's patterns at import: ~3 ms a restart if not here.)
PRELOAD = ["sniperbot.actors.runtime", "sniperbot.journal", "lmdb", "sniperbot.observability.sentry"]
#: Seconds after a spare process was taken until the next one is forked: not inside the restart that
#: took it (a fork holds the node's loop 3-5 ms and takes a core from the restarting actor).
SPARE_REFILL_S = 0.05
_SPARE_RETRY_S = 5.0  # after a spare could not be forked


class ProcessHandle:
    """An actor incarnation in its own OS process."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process
        self.pid = process.pid
        self.sentinel = process.sentinel

    def exitcode(self) -> int | None:
        """Exit code once the process ended (negative: killed by that signal)."""
        if self._process.is_alive():
            return None
        return self._process.exitcode

    def kill(self) -> None:
        """SIGKILL the process."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def release(self) -> None:
        """Reap the process and close its sentinel."""
        self._process.join(0.5)
        if not self._process.is_alive():
            self._process.close()


class _Spare:
    """A process forked ahead of need, waiting on a pipe for the launch it is to run (module doc)."""

    def __init__(self, mp: Any) -> None:
        reader, self._writer = mp.Pipe(duplex=False)
        self.process = mp.Process(
            target=run_spare_process, args=(reader, os.getpid()), name="sniperbot:spare", daemon=False
        )
        self.process.start()
        reader.close()

    def take(self, launch: ActorLaunch) -> bool:
        """Hand ``launch`` to the spare; False if it is gone (killed by someone: start another way)."""
        try:
            if not self.process.is_alive():
                return False
            self.process.name = f"sniperbot:{launch.actor_id}"
            self._writer.send_bytes(msgspec.msgpack.encode(launch))
            return True
        except OSError:  # its end of the pipe is closed: it died just now
            return False
        finally:
            self._writer.close()

    def close(self) -> None:
        """End the spare (end of file on its pipe, then a kill if it has not gone) and reap it."""
        self._writer.close()
        self.process.join(0.5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(0.5)
        if not self.process.is_alive():
            self.process.close()


class _Pump:
    """Mailbox message: run one step of the actor loop, then queue the next pump."""


_PUMP = _Pump()
_PUMP_WAIT_MS = 20  # bounds how long pykka's mailbox (stop, asks) waits behind zmq polling


class _ThreadHost(pykka.ThreadingActor):
    """A pykka actor that drives an ActorRuntime one step per mailbox message."""

    def __init__(self, launch: ActorLaunch, zctx: zmq.Context, done_w: int, handle: ThreadHandle) -> None:
        super().__init__()
        self._runtime = ActorRuntime(launch, zctx)
        self._done_w = done_w
        self._handle = handle

    def on_start(self) -> None:
        try:
            self._runtime.open()
        except Exception:
            # pykka stops the actor without calling on_failure when on_start raises.
            self.on_failure()
            raise
        self.actor_ref.tell(_PUMP)

    def on_receive(self, message: Any) -> Any:
        if message is _PUMP:
            if self._runtime.step(_PUMP_WAIT_MS):
                self.actor_ref.tell(_PUMP)
            else:
                self._handle.code = self._runtime.exit_code
                self.stop()
        return None

    def on_stop(self) -> None:
        self._finish(clean=True)

    def on_failure(self, _type: Any = None, error: BaseException | None = None, _tb: Any = None) -> None:
        # As in a process (ActorRuntime.run): the node hears what it crashed on, and on_stop still runs
        # (it may release what the actor holds); only a failing on_start skips it (never started).
        self._handle.code = EXIT_CRASH
        if error is not None:
            self._runtime.report_error(error)
        self._finish(clean=error is not None)

    def _finish(self, clean: bool) -> None:
        if self._done_w < 0:
            return
        try:
            self._runtime.close(clean=clean)
        finally:
            if self._handle.code is None:
                self._handle.code = EXIT_NORMAL
            os.close(self._done_w)
            self._done_w = -1


class ThreadHandle:
    """An actor incarnation in a pykka thread of the node process."""

    def __init__(self, launch: ActorLaunch, zctx: zmq.Context) -> None:
        self.pid = os.getpid()
        self.code: int | None = None
        self.sentinel, done_w = os.pipe()
        self._ref = _ThreadHost.start(launch, zctx, done_w, self)

    def exitcode(self) -> int | None:
        """Exit code once the thread's actor stopped."""
        return self.code

    def kill(self) -> None:
        """Ask the thread to stop; a hung thread cannot be killed and is abandoned."""
        self.code = self.code if self.code is not None else -signal.SIGKILL
        self._ref.stop(block=False)

    def release(self) -> None:
        """Close the sentinel."""
        try:
            os.close(self.sentinel)
        except OSError:
            pass


class Launcher:
    """Starts actor incarnations in their placement."""

    def __init__(self, zctx: zmq.Context, preload: list[str] | None = None, ray: Any = None) -> None:
        self._zctx = zctx
        self._ray = ray  # the node's RayCluster when it runs with --ray
        modules = PRELOAD if preload is None else preload
        # Import here first: a module that fails to import would otherwise kill the
        # forkserver and leave every later start hanging instead of failing loudly.
        for module in modules:
            importlib.import_module(module)
        self._mp = multiprocessing.get_context("forkserver")
        self._mp.set_forkserver_preload(modules)
        self._spare: _Spare | None = None
        # Due once a process start has run the forkserver: the first spare's fork must not start it
        # (a new interpreter importing the preload: a second of the node's loop, in a node of threads).
        self._spare_due = float("inf")
        self._closed = False

    def start(self, launch: ActorLaunch, placement: Placement) -> ActorHandle:
        """Start one incarnation and return its handle (it is not ready yet)."""
        if placement == "thread":
            return ThreadHandle(launch, self._zctx)
        if placement == "ray":
            return self._start_ray(launch)
        spare, self._spare = self._spare, None
        if spare is not None:
            self._spare_due = time.monotonic() + SPARE_REFILL_S
            if spare.take(launch):
                return ProcessHandle(spare.process)
            spare.close()
        elif self._spare_due == float("inf") and not self._closed:
            self._spare_due = time.monotonic() + SPARE_REFILL_S  # the forkserver runs from this start on
        process = self._mp.Process(
            target=run_actor_process,
            args=(msgspec.msgpack.encode(launch),),
            name=f"sniperbot:{launch.actor_id}",
            daemon=False,
        )
        process.start()
        return ProcessHandle(process)

    def maintain(self, now: float) -> None:
        """Fork the next spare process once one is due (the node calls this from its loop)."""
        if self._spare is None and now >= self._spare_due:
            try:
                self._spare = _Spare(self._mp)
            except (OSError, EOFError, RuntimeError) as e:
                # The forkserver cannot fork now (out of memory, processes, fds): starts will say so
                # themselves; the node's loop must not die of a process it only keeps in reserve.
                self._spare_due = now + _SPARE_RETRY_S
                logging.getLogger("sniperbot.placement").warning(
                    "cannot fork a spare process", extra={"event": "spare_failed", "error": str(e)}
                )

    def close(self) -> None:
        """End the spare process (the node stops); later starts fork from the forkserver."""
        spare, self._spare = self._spare, None
        self._spare_due = float("inf")
        self._closed = True
        if spare is not None:
            spare.close()

    def _start_ray(self, launch: ActorLaunch) -> ActorHandle:
        """A Ray actor incarnation; without a cluster, a start that fails at once (counted, retried)."""
        if self._ray is None:
            return _FailedStart("placement ray needs a node started with --ray auto|ADDRESS")
        from sniperbot.actors.ray_placement import RayHandle

        return RayHandle(self._ray, launch)


class _FailedStart:
    """A handle whose incarnation never started: its sentinel is readable at once."""

    def __init__(self, reason: str) -> None:
        logging.getLogger("sniperbot.placement").error(reason, extra={"event": "start_failed"})
        self.pid: int | None = None
        self.reason = reason
        self.sentinel, done_w = os.pipe()
        os.close(done_w)

    def exitcode(self) -> int | None:
        """Always EXIT_CRASH."""
        return EXIT_CRASH

    def kill(self) -> None:
        """Nothing runs."""

    def release(self) -> None:
        """Close the sentinel."""
        try:
            os.close(self.sentinel)
        except OSError:
            pass
