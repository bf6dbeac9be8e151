"""An actor's chain worker thread and its hand-over to the actor loop, in one place (EVM and Solana).

A venue actor (gateway, token checker) must not block its loop on an RPC (heartbeats would stop): the
blocking calls run in one daemon worker thread. Jobs reach the worker through :attr:`ChainWorker._jobs`;
what the worker has for the actor (publish, send, journal) it hands over with :meth:`ChainWorker._later`,
and the actor loop runs those callables, in the order they were handed over, from :meth:`ChainWorker.
_drain` on a timer of a few ms. Stopping sets :attr:`ChainWorker._stopping` (and, for a worker that waits
on its job queue without a timeout, puts a ``None`` job), then joins the thread for a bounded time: a call
under way is abandoned (the thread is a daemon). Fields the worker writes and the actor reads (a status)
are read and written under :attr:`ChainWorker._lock`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


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
