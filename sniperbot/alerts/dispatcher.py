"""Channel I/O off the actor's loop: an asyncio loop in a thread, one sender per channel.

The actor journals an alert (:class:`~sniperbot.alerts.outbox.Outbox`) and hands it over with
:meth:`Dispatcher.submit`, which only schedules work on the I/O loop: a hung HTTP server or SMTP
relay never delays the actor's heartbeat. Each channel sends its alerts one at a time, oldest
first (so at most one alert per channel is ever in flight), through its own token bucket
(``rate_per_s`` / ``burst``), pausing for as long as a 429 says; a failed attempt is retried with
exponential backoff (1 s doubling to 5 min); every outcome is committed to the outbox the moment it
is known.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any

from sniperbot.alerts.channels import Channel, Outcome
from sniperbot.alerts.model import Alert
from sniperbot.alerts.outbox import DELIVERED, EXPIRED, Outbox
from sniperbot.logs import ContextLogger

_BACKOFF_START_S = 1.0
_BACKOFF_MAX_S = 300.0


class _Lane:
    """One channel's queue, token bucket, pause and counters (touched only on the I/O loop)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[Alert] = asyncio.Queue()
        self.tokens = float(channel.config.burst)
        self.refilled = time.monotonic()
        self.paused_until = 0.0

    async def wait_turn(self) -> None:
        """Sleep until a 429 pause is over and the bucket has a token, then take it."""
        config = self.channel.config
        while True:
            now = time.monotonic()
            self.tokens = min(float(config.burst), self.tokens + (now - self.refilled) * config.rate_per_s)
            self.refilled = now
            wait = max(self.paused_until - now, (1.0 - self.tokens) / config.rate_per_s)
            if wait <= 0:
                self.tokens -= 1.0
                return
            await asyncio.sleep(wait)


class Dispatcher:
    """Sends journaled alerts to their channels on an I/O thread; outcomes go to the outbox."""

    def __init__(self, outbox: Outbox, channels: list[Channel], log: ContextLogger, max_age_s: float) -> None:
        self.outbox = outbox
        self.channels = {c.name: c for c in channels}
        self.log = log
        self.max_age_s = max_age_s
        # Per channel: delivered, refused, expired, retries, rate_limited (read by tests and metrics).
        self.stats: dict[str, dict[str, int]] = {
            name: dict.fromkeys(("delivered", "refused", "expired", "retries", "rate_limited"), 0)
            for name in self.channels
        }
        self._loop = asyncio.new_event_loop()
        self._lanes: dict[str, _Lane] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._thread = threading.Thread(target=self._loop.run_forever, name="alerts-io", daemon=True)

    def start(self) -> None:
        """Start the I/O thread and one sender per channel."""
        self._thread.start()
        self._call(self._open()).result(30)

    def submit(self, alert: Alert, channels: list[str]) -> None:
        """Queue ``alert`` for ``channels`` (thread-safe, never blocks)."""
        self._loop.call_soon_threadsafe(self._enqueue, alert, channels)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the senders (an alert in flight stays owed in the outbox) and the thread."""
        if not self._thread.is_alive():
            return
        try:
            self._call(self._close()).result(timeout_s)
        except Exception as e:  # a stuck close must not keep the actor from stopping
            self.log.warning(
                "alert channels did not close", extra={"event": "alerts_close", "error": repr(e)}
            )
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)

    # -- on the I/O loop ------------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, None]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _open(self) -> None:
        for name, channel in self.channels.items():
            await channel.open()
            self._lanes[name] = _Lane(channel)
            self._tasks.append(asyncio.get_running_loop().create_task(self._sender(name)))

    async def _close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self.channels.values():
            await channel.close()

    def _enqueue(self, alert: Alert, channels: list[str]) -> None:
        for name in channels:
            lane = self._lanes.get(name)
            if lane is not None:
                lane.queue.put_nowait(alert)

    async def _sender(self, name: str) -> None:
        lane = self._lanes[name]
        while True:
            alert = await lane.queue.get()
            try:
                await self._deliver(name, lane, alert)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug in one channel must not stop its sender for good
                self.log.exception(
                    "alert sender failed", extra={"event": "alert_error", "channel": name, "error": repr(e)}
                )
                await asyncio.sleep(_BACKOFF_START_S)
                lane.queue.put_nowait(alert)

    async def _deliver(self, name: str, lane: _Lane, alert: Alert) -> None:
        if self.outbox.outcome(alert.id, name) is not None:
            return  # done already (queued twice: a replay at start and a new submit)
        stats = self.stats[name]
        backoff = _BACKOFF_START_S
        while True:
            if time.time_ns() - alert.ts_ns > self.max_age_s * 1e9:
                self.outbox.mark(alert.id, name, EXPIRED)
                stats["expired"] += 1
                self.log.error(
                    "alert given up: undelivered for too long",
                    extra={"event": "alert_expired", "channel": name, "alert": alert.id, "key": alert.key},
                )
                return
            await lane.wait_turn()
            outcome: Outcome = await lane.channel.send(alert)
            if outcome.kind == "delivered":
                # Committed before anything else: the window in which a kill repeats this alert.
                self.outbox.mark(alert.id, name, DELIVERED)
                stats["delivered"] += 1
                if outcome.delay_s:
                    lane.paused_until = time.monotonic() + outcome.delay_s
                self.log.info(
                    "alert delivered",
                    extra={"event": "alert_delivered", "channel": name, "alert": alert.id, "key": alert.key},
                )
                return
            if outcome.kind == "refused":
                self.outbox.mark(alert.id, name, "refused: " + outcome.reason)
                stats["refused"] += 1
                self.log.error(
                    "alert refused by the channel",
                    extra={
                        "event": "alert_refused",
                        "channel": name,
                        "alert": alert.id,
                        "reason": outcome.reason,
                    },
                )
                return
            stats["retries"] += 1
            if outcome.kind == "retry_after":
                stats["rate_limited"] += 1
                lane.paused_until = time.monotonic() + outcome.delay_s
                self.log.warning(
                    "alert channel rate-limited",
                    extra={"event": "alert_rate_limited", "channel": name, "retry_after_s": outcome.delay_s},
                )
                continue
            self.log.warning(
                "alert not delivered; retrying",
                extra={
                    "event": "alert_retry",
                    "channel": name,
                    "alert": alert.id,
                    "reason": outcome.reason,
                    "retry_in_s": backoff,
                },
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
