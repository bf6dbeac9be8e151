"""What the EVM and Solana pool watchers share: the chain thread and its hand-over to the actor loop.

A pool watcher (``sniperbot/venues/<chain>/pool_watcher.py``) follows a chain in a thread of its own
(:class:`WatcherThread`: an asyncio loop, reconnects with jittered exponential backoff) and hands
``(kind, item)`` tuples to the actor loop, which drains them every :data:`DRAIN_INTERVAL_S` once its
publisher has joined the bus (:class:`PoolWatcherActor`). Kinds every chain hands over: ``connected``
(logged once per connection), ``error`` (logged once until it changes) and ``fatal``: the chain thread
died of something unexpected, and the actor crashes rather than live on blind (its supervisor restarts
it). Each chain adds its own kinds (a pool, a scan, a backfill, a reorg) in ``_on_item``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
from collections.abc import Coroutine
from typing import Any

from sniperbot.actors.base import Actor
from sniperbot.actors.bus_join import BusJoin
from sniperbot.messages import Envelope

DRAIN_INTERVAL_S = 0.005  # hand-over period from the chain thread to the actor loop
PROBE_INTERVAL_S = 0.05  # bus-echo probes until the publisher has joined the bus
PROBE_WARN_S = 5.0
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 10.0
JOIN_TIMEOUT_S = 10.0


def backoff_s(attempt: int) -> float:
    """A reconnect's wait: full jitter over an exponential ceiling (at most :data:`BACKOFF_CAP_S`)."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


class WatcherThread:
    """A chain follower's thread and asyncio loop (subclasses write ``_main``).

    ``urls``: the endpoints it follows, replaced by ``<rpc_url>``/``<ws_url>`` in every error it hands
    over (a provider's URL may carry an API key).
    """

    def __init__(self, name: str, rpc_url: str, ws_url: str) -> None:
        self._urls = ((rpc_url, "<rpc_url>"), (ws_url, "<ws_url>"))
        self.out: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.running = True
        self.attempt = 0
        self.loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _main(self) -> Coroutine[Any, Any, None]:
        raise NotImplementedError

    def _scrub(self, text: str) -> str:
        """An error's text without the configured URLs."""
        for url, name in self._urls:
            if url:
                text = text.replace(url, name)
        return text

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self._task = self.loop.create_task(self._main())
            self.loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as e:  # the actor must not live on with a dead chain thread: it crashes
            self.out.put(("fatal", self._scrub(f"{type(e).__name__}: {e}")))
        finally:
            self.loop.close()

    def stop(self) -> None:
        """Cancel the follower and join the thread (from the actor thread)."""
        self.running = False
        task = self._task
        if task is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self.loop.call_soon_threadsafe(task.cancel)
        if self.thread.is_alive():
            self.thread.join(JOIN_TIMEOUT_S)


class PoolWatcherActor(Actor):
    """A pool watcher's actor side: the bus join, the chain thread's start, stop and hand-over."""

    #: Logged when the chain thread (re)connects ("following the factory").
    following = "following the chain"
    venue: str

    def _join_bus(self) -> None:
        """The bus probe and the state every watcher keeps (the end of ``__init__``, arguments checked)."""
        self.bus = BusJoin(self.ctx, PROBE_WARN_S, "bus not joined yet: new pools are held")
        self.topics = (self.bus.topic,)
        self.published = 0  # pools published by this incarnation
        self._last_error = ""
        self._worker: WatcherThread | None = None

    def _on_item(self, kind: str, item: Any) -> bool:
        """Handle one of this chain's own kinds; False if ``kind`` is not one (actor thread)."""
        raise NotImplementedError

    def _follow(self, worker: WatcherThread) -> None:
        """Start ``worker``, the hand-over timer and the bus probe (the end of ``on_start``)."""
        self._worker = worker
        worker.thread.start()
        self.ctx.every(DRAIN_INTERVAL_S, self._drain)
        self.ctx.every(PROBE_INTERVAL_S, self.bus.probe)
        self.bus.probe()

    def on_stop(self) -> None:
        """Stop the chain thread (the cursor is journaled as it moves: nothing to flush)."""
        if self._worker is not None:
            self._worker.stop()

    def on_message(self, envelope: Envelope) -> None:
        """Our own bus probe came back: the publisher has joined the bus."""
        self.bus.heard(envelope)

    def _drain(self) -> None:
        worker = self._worker
        assert worker is not None
        if not self.bus.joined:
            return  # held in order until a publish can reach the subscribers
        out = worker.out
        while True:
            try:
                kind, item = out.get_nowait()
            except queue.Empty:
                break
            if self._on_item(kind, item):
                continue
            if kind == "connected":
                self._last_error = ""
                self.ctx.log.info(self.following, extra={"event": "pool_watcher_connected", "via": item})
            elif kind == "fatal":
                raise RuntimeError(f"pool watcher {self.venue!r} stopped: {item}")
            elif item != self._last_error:  # an error repeated by every retry is logged once
                self._last_error = item
                self.ctx.log.warning(
                    "pool watcher error", extra={"event": "pool_watcher_error", "detail": item[:300]}
                )
