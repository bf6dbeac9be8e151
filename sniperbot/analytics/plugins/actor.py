"""The plug-in analyser actor (``analyser.<id>``): runs one external executable speaking JSON lines.

What it guarantees (the protocol itself is :mod:`sniperbot.analytics.plugins.protocol`):

* **Supervised like any actor.** The child starts in ``on_start`` and is killed (its whole process
  group) in ``on_stop``; a kill -9 of this actor kills it too (parent-death signal). When the child
  exits, or writes no valid line for ``hang_after_s`` (a hang), this actor *fails*: its supervisor
  restarts it (OTP semantics, the ``analysis`` subtree's intensity and breaker), and the fresh
  incarnation starts a fresh child. There is no second restart loop here. Before it starts one, an
  incarnation kills what an earlier child left running (:func:`~.child.sweep_leftovers`: after a
  kill -9 of the actor, only the child itself dies of the parent-death signal, not its own children).
* **Every line checked.** A refused line (not JSON, wrong schema, not finite, out of range, a bad
  subject or kind, too long, over the rate limit, another source's name) is dropped and counted in
  :class:`~sniperbot.messages.AnalyserStatus` ``dropped``; its reason is logged at most once every
  ``_LOG_EVERY_S`` (never the line itself). Nothing a plug-in writes can crash the actor or the node.
* **Authority.** Signals carry ``source`` = the plug-in's id (the bus refuses any other from this
  actor); ``origin`` is what the plug-in said it measured from.
* **Never blocked by the plug-in.** Its stdin is written without waiting (inputs it does not read in
  time are dropped and counted); its stdout and stderr are read by threads; signals are published from
  this actor's loop every ``_PUMP_S``.
* **Status.** ``status.analyser.<id>`` every ``_STATUS_S``: ``stale`` until the first valid line of this
  incarnation, ``items`` signals published, ``dropped`` refused lines plus dropped inputs, ``detail``
  the breakdown and the last refusal's reason.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.analytics.plugins.child import PluginProcess, sweep_leftovers
from sniperbot.analytics.plugins.config import PluginConfig
from sniperbot.analytics.plugins.protocol import LineRefused, input_line, parse_line, tick_line
from sniperbot.messages import AnalyserStatus, Envelope, Signal
from sniperbot.messages import topics as topic

_PUMP_S = 0.02  # how often signals read from the plug-in are published (the added latency at most)
_STATUS_S = 1.0
_LOG_EVERY_S = 10.0  # at most one log line per kind (refused lines, stderr) in this long
_STDERR_LINES_PER_WINDOW = 20
_STDERR_MAX_CHARS = 300


class PluginFailed(RuntimeError):
    """The plug-in exited or hung: this incarnation ends so that the supervisor restarts it."""


class PluginActor(Actor):
    """Runs ``command`` as a child; its stdout lines become signals on ``sig.<subject>.<kind>.<id>.``."""

    def __init__(self, ctx: ActorContext, *, settings: dict[str, Any]) -> None:
        super().__init__(ctx)
        self.config = msgspec.convert(settings, PluginConfig)
        self.topics = tuple(self.config.inputs)
        self.child: PluginProcess | None = None
        self._signals: collections.deque[Signal] = collections.deque()
        self._lock = threading.Lock()  # counters shared with the reader threads
        self.published = 0
        self.refused = 0
        self._last_reason = ""
        self._last_ok_ns = 0
        self._alive_ns = time.monotonic_ns()  # the last valid line (or the start)
        self._tokens = self.config.max_lines_per_s
        self._tokens_ns = time.monotonic_ns()
        self._logged_ns: dict[str, int] = {}
        self._suppressed: dict[str, int] = collections.defaultdict(int)
        self._stderr_window = (0, 0)  # (window start ns, lines logged in it)

    # -- lifecycle ---------------------------------------------------------------------------
    def on_start(self) -> None:
        """Start the child; tick it, pump its signals, publish the status."""
        marker = f"{self.ctx.run_dir.resolve()}:{self.config.id}"
        leftovers = sweep_leftovers(marker)
        if leftovers:
            self.ctx.log.warning(
                "killed what an earlier plug-in left running",
                extra={"event": "plugin_leftovers", "processes": leftovers},
            )
        self.child = PluginProcess(self.config, self._on_line, self._on_oversize, self._on_stderr, marker)
        self._alive_ns = time.monotonic_ns()
        self.ctx.log.info(
            "plug-in started",
            extra={"event": "plugin_start", "pid": self.child.pid, "command": self.config.command[0]},
        )
        self._publish_status()
        self.ctx.every(self.config.tick_s, self._tick)
        self.ctx.every(_PUMP_S, self._pump)
        self.ctx.every(_STATUS_S, self._publish_status)

    def on_stop(self) -> None:
        """Kill the child's whole process group."""
        if self.child is not None:
            self.child.kill()

    def on_message(self, envelope: Envelope) -> None:
        """A message on one of the ``inputs`` topics: one line on the plug-in's stdin."""
        if self.child is not None:
            self.child.write(input_line(envelope.topic, envelope.payload))

    # -- the actor's loop ----------------------------------------------------------------------
    def _tick(self) -> None:
        assert self.child is not None
        self.child.write(tick_line(time.time_ns()))

    def _pump(self) -> None:
        """Publish what the plug-in wrote; fail when it exited or hung."""
        child = self.child
        assert child is not None
        child.flush()
        self._publish_signals()
        code = child.exitcode()
        if code is not None:
            self._publish_signals()  # its last words count
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            self.ctx.log.error("plug-in exited", extra={"event": "plugin_exit", "code": code})
            child.kill()  # its group, and reap it: on_stop is not called on a failure in every placement
            raise PluginFailed(f"plug-in {self.config.id} exited ({how})")
        silent_s = (time.monotonic_ns() - self._alive_ns) / 1e9
        if silent_s > self.config.hang_after_s:
            self.ctx.log.error(
                "plug-in hung: no valid line within hang_after_s",
                extra={"event": "plugin_hang", "silent_s": round(silent_s, 3)},
            )
            child.kill()
            raise PluginFailed(f"plug-in {self.config.id} hung ({silent_s:.1f} s without a line)")

    def _publish_signals(self) -> None:
        while self._signals:
            signal = self._signals.popleft()
            self.ctx.publish(topic.signal(signal.subject, signal.kind, signal.source), signal)
            self.published += 1

    def _publish_status(self) -> None:
        child = self.child
        input_dropped = child.input_dropped if child is not None else 0
        with self._lock:
            refused, reason, last_ok = self.refused, self._last_reason, self._last_ok_ns
        detail = f"refused={refused} input_dropped={input_dropped}" + (f" last: {reason}" if reason else "")
        status = AnalyserStatus(
            source=self.config.id,
            stale=last_ok == 0,
            items=self.published,
            dropped=refused + input_dropped,
            last_ok_ns=last_ok,
            ts_ns=time.time_ns(),
            detail=detail,
        )
        self.ctx.publish(topic.analyser_status(self.config.id), status)

    # -- the reader threads ----------------------------------------------------------------------
    def _on_line(self, line: bytes) -> None:
        """One line of the plug-in's stdout (reader thread)."""
        now = time.monotonic_ns()
        # Token bucket one second deep: a burst beyond max_lines_per_s is dropped, not queued.
        rate = self.config.max_lines_per_s
        self._tokens = min(rate, self._tokens + (now - self._tokens_ns) / 1e9 * rate)
        self._tokens_ns = now
        if self._tokens < 1.0:
            self._refuse(f"over max_lines_per_s ({rate:g})")
            return
        self._tokens -= 1.0
        try:
            signal = parse_line(line, self.config.id)
        except LineRefused as e:
            self._refuse(str(e))
            return
        # A valid line proves the plug-in alive (a garbage stream does not).
        self._alive_ns = now
        with self._lock:
            self._last_ok_ns = time.time_ns()
        if signal is not None:
            self._signals.append(signal)

    def _on_oversize(self, size: int) -> None:
        self._refuse(f"line of {size} bytes over max_line_bytes ({self.config.max_line_bytes})")

    def _refuse(self, reason: str) -> None:
        with self._lock:
            self.refused += 1
            self._last_reason = reason
        self._log_limited("refused", "plug-in line refused", {"reason": reason})

    def _on_stderr(self, line: bytes) -> None:
        """One line of the plug-in's stderr: its log, into ours (truncated, rate-limited)."""
        now = time.monotonic_ns()
        start, count = self._stderr_window
        if now - start > _LOG_EVERY_S * 1e9:
            if count > _STDERR_LINES_PER_WINDOW:
                self.ctx.log.warning(
                    "plug-in stderr lines not logged",
                    extra={"event": "plugin_stderr_suppressed", "lines": count - _STDERR_LINES_PER_WINDOW},
                )
            start, count = now, 0
        count += 1
        self._stderr_window = (start, count)
        if count <= _STDERR_LINES_PER_WINDOW:
            text = line.decode("utf-8", "replace").rstrip("\n")
            if len(text) > _STDERR_MAX_CHARS:
                text = text[:_STDERR_MAX_CHARS] + f"... ({len(text)} chars)"
            self.ctx.log.warning("plug-in stderr", extra={"event": "plugin_stderr", "line": text})

    def _log_limited(self, kind: str, message: str, extra: dict[str, Any]) -> None:
        """Log ``message`` at most once every ``_LOG_EVERY_S`` per ``kind``, with how many were skipped."""
        now = time.monotonic_ns()
        if now - self._logged_ns.get(kind, -(1 << 62)) < _LOG_EVERY_S * 1e9:
            self._suppressed[kind] += 1
            return
        self._logged_ns[kind] = now
        skipped, self._suppressed[kind] = self._suppressed[kind], 0
        self.ctx.log.warning(message, extra={"event": f"plugin_{kind}", "skipped": skipped, **extra})
