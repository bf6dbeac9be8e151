"""Record the bus's signals to daily files, and replay a signal file onto the bus.

:class:`SignalRecorder` (``kind = "signal_recorder"``) and :class:`SignalReplay` (``kind =
"signal_replay"``); their settings and decisions are documented on
:class:`~sniperbot.analytics.recording.SignalRecorderConfig` and
:class:`~sniperbot.analytics.recording.SignalReplayConfig`. Both speak the signal file format of
:mod:`sniperbot.analytics.signals`: what a recorder wrote, a backtest or a replay reads (concatenate the
daily files into ``<candles>.signals.jsonl``; they are sorted by time when read).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import IO, Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.actors.bus_join import BusJoin
from sniperbot.analytics.recording import SignalRecorderConfig, SignalReplayConfig
from sniperbot.analytics.signals import encode_line, read_signals
from sniperbot.journal import keys
from sniperbot.messages import AnalyserStatus, Envelope, Signal
from sniperbot.messages import topics as topic

#: How often the replay looks for signals that are due (and probes the bus until it has joined).
TICK_S = 0.02
#: Daily files are named ``signals-YYYY-MM-DD.jsonl`` (UTC day of the signal's ``ts_ns``).
FILE_PREFIX = "signals-"


def day_file(directory: Path, ts_ns: int) -> Path:
    """The daily file a signal stamped ``ts_ns`` is recorded in."""
    day = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).date().isoformat()
    return directory / f"{FILE_PREFIX}{day}.jsonl"


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line a crash left without its newline (never a whole line): appends start clean."""
    with path.open("rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


class SignalRecorder(Actor):
    """Appends every signal on the bus to its day's file; fsynced every ``fsync_interval_s``.

    The node's last-value cache hands a (re)started recorder the current signals again: a reading not
    newer than the last one recorded for its (subject, kind, source) in the newest file is not written
    twice. A reading without a time (``ts_ns = 0``) is stamped with its publish time. A last line torn
    by a crash (no newline) is cut at start, so the file stays readable line by line.
    """

    topics = (topic.SIGNALS,)

    def __init__(self, ctx: ActorContext, *, settings: dict[str, Any]) -> None:
        super().__init__(ctx)
        self.settings = msgspec.convert(settings, SignalRecorderConfig)
        self.directory = Path(self.settings.directory)
        self._files: dict[Path, IO[bytes]] = {}
        self._dirty: set[Path] = set()
        self._last: dict[tuple[str, str, str], int] = {}
        self.recorded = 0

    def on_start(self) -> None:
        """Create the directory, learn what the newest file already has, start the fsync timer."""
        self.directory.mkdir(parents=True, exist_ok=True)
        days = sorted(self.directory.glob(f"{FILE_PREFIX}*.jsonl"))
        if days:
            _drop_torn_tail(days[-1])
            try:
                for signal in read_signals(days[-1]):
                    key = (signal.subject, signal.kind, signal.source)
                    self._last[key] = max(self._last.get(key, 0), signal.ts_ns)
            except ValueError as e:  # a torn last line after a crash: recording goes on after it
                self.ctx.log.warning(
                    "signal file unreadable", extra={"event": "recorder_bad_file", "why": str(e)}
                )
        self.ctx.every(self.settings.fsync_interval_s, self._sync)

    def on_message(self, envelope: Envelope) -> None:
        """Record a signal (once)."""
        signal = envelope.payload
        if not isinstance(signal, Signal):
            return
        if signal.ts_ns <= 0:
            signal = msgspec.structs.replace(signal, ts_ns=envelope.ts_ns or time.time_ns())
        key = (signal.subject, signal.kind, signal.source)
        if signal.ts_ns <= self._last.get(key, 0):
            return  # the cache's copy of one already recorded
        self._last[key] = signal.ts_ns
        path = day_file(self.directory, signal.ts_ns)
        handle = self._files.get(path)
        if handle is None:
            handle = self._files[path] = path.open("ab")
        handle.write(encode_line(signal))
        self._dirty.add(path)
        self.recorded += 1

    def _sync(self) -> None:
        """Flush and fsync what was written; close files of days no longer written to."""
        for path in self._dirty:
            handle = self._files[path]
            handle.flush()
            os.fsync(handle.fileno())
        self._dirty.clear()
        if len(self._files) > 1:
            newest = max(self._files)
            for path in [p for p in self._files if p != newest]:
                self._files.pop(path).close()

    def on_stop(self) -> None:
        """Everything on disk before the actor goes."""
        self._sync()
        for handle in self._files.values():
            handle.close()
        self._files.clear()


class SignalReplay(Actor):
    """Publishes a signal file's readings as its own, paced or at once (see ``SignalReplayConfig``).

    It publishes nothing before its own bus probe comes back (a publish before the publisher has joined
    the bus would be lost), and journals how many it has published after each batch, so a restart goes
    on with the next one.
    """

    def __init__(self, ctx: ActorContext, *, settings: dict[str, Any]) -> None:
        super().__init__(ctx)
        self.settings = msgspec.convert(settings, SignalReplayConfig)
        self.source = self.settings.id  # the authority rule: an analyser publishes as itself
        self.bus = BusJoin(ctx)
        self.topics = (self.bus.topic,)
        self.signals: list[Signal] = []
        self.next = 0
        self._base: tuple[int, int] | None = None  # (monotonic ns, file ts_ns) of the pacing origin

    def on_start(self) -> None:
        """Read the file and the journaled position; probe the bus, then publish on the tick."""
        self.signals = read_signals(self.settings.file)
        raw = self.ctx.journal.get_state(keys.SIGNAL_REPLAY + self.source)
        self.next = min(int(raw), len(self.signals)) if raw else 0
        self.ctx.every(TICK_S, self._tick, first_s=0.0)

    def on_message(self, envelope: Envelope) -> None:
        """Our own probe came back: the bus carries what we publish from now on."""
        self.bus.heard(envelope)

    def _tick(self) -> None:
        if not self.bus.probe():
            return
        if self.next >= len(self.signals):
            return
        now = time.monotonic_ns()
        if self._base is None:
            self._base = (now, self.signals[self.next].ts_ns)
        start = self.next
        speed = self.settings.speed
        while self.next < len(self.signals):
            signal = self.signals[self.next]
            if (
                self.settings.pace == "timestamps"
                and (signal.ts_ns - self._base[1]) / speed > now - self._base[0]
            ):
                break
            self._publish(signal)
            self.next += 1
        if self.next > start:
            self.ctx.journal.put_state(keys.SIGNAL_REPLAY + self.source, str(self.next).encode())
            self.ctx.publish(
                topic.analyser_status(self.source),
                AnalyserStatus(source=self.source, stale=False, items=self.next, ts_ns=time.time_ns()),
            )

    def _publish(self, recorded: Signal) -> None:
        origin = f"replay:{recorded.source}" + (f":{recorded.origin}" if recorded.origin else "")
        signal = msgspec.structs.replace(
            recorded,
            source=self.source,
            origin=origin,
            ts_ns=time.time_ns() if self.settings.retime else recorded.ts_ns,
        )
        self.ctx.publish(topic.signal(signal.subject, signal.kind, self.source), signal)
