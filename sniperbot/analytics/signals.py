"""Reading signals: the newest-value book strategies and the sniper consult, and the signal file format.

**The book** (:class:`SignalBook`): the newest few :class:`~sniperbot.messages.Signal` of every
(subject, kind, source). :meth:`SignalBook.get` answers "the newest usable reading" as of a given time
and never anything else: a signal flagged ``stale``, one older than the caller's age limit, or one
stamped *after* the time asked about (a backtest must not see the future, and live the same rule keeps
a strategy's decisions equal to its backtest's) is no answer, and None is returned: no signal is better
than a wrong one.

**The signal file** (decision; one home: :func:`encode_line`, :func:`read_signals`): JSON lines, UTF-8,
one :class:`~sniperbot.messages.Signal` per line exactly as ``msgspec.json.encode(signal)`` writes it
(``{"t":"signal","source":...,"subject":...,"kind":...,"value":...,"ts_ns":...}``; the ``"t"`` tag and
every field with a default may be left out). ``ts_ns`` (nanoseconds since the epoch, when the signal was
measured) is required and > 0: it is what a backtest replays by. Blank lines and lines starting with
``#`` are skipped. Lines need not be sorted (they are sorted by ``ts_ns``, ties kept in file order).
A bad line is an error naming the file and the line. The recorder
(:class:`~sniperbot.analytics.recorder.SignalRecorder`) writes this format, the backtester and the
replay analyser (:class:`~sniperbot.analytics.recorder.SignalReplay`) read it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from pathlib import Path

import msgspec

from sniperbot.messages.signals import Signal

__all__ = ["SIGNAL_FILE_SUFFIX", "SignalBook", "SignalFileError", "beside", "encode_line", "read_signals"]

#: ``<candles file>`` + this is the signal file a backtest picks up by default (``btc.csv.signals.jsonl``).
SIGNAL_FILE_SUFFIX = ".signals.jsonl"

# Readings kept per (subject, kind, source): enough that a reading stamped a moment in the future of the
# bar being decided (it arrived before the bar closed on the clock) does not hide the previous one.
_DEPTH = 8

_decoder = msgspec.json.Decoder(Signal)
_encoder = msgspec.json.Encoder()


class SignalFileError(ValueError):
    """A signal file that cannot be used; the message names the file and the line."""


def encode_line(signal: Signal) -> bytes:
    """One line of a signal file (newline included)."""
    return _encoder.encode(signal) + b"\n"


def read_signals(path: str | Path) -> list[Signal]:
    """Every signal of a signal file, sorted by ``ts_ns``; :class:`SignalFileError` naming file:line."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as e:
        raise SignalFileError(f"{file}: cannot read signal file: {e.strerror or e}") from None
    signals: list[Signal] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            signal = _decoder.decode(line)
        except msgspec.ValidationError as e:
            raise SignalFileError(f"{file}:{number}: invalid signal: {e}") from None
        except msgspec.DecodeError as e:
            raise SignalFileError(f"{file}:{number}: not a JSON signal: {e}") from None
        if signal.ts_ns <= 0:
            raise SignalFileError(f"{file}:{number}: invalid signal: ts_ns must be > 0 (nanoseconds)")
        signals.append(signal)
    signals.sort(key=lambda s: s.ts_ns)  # stable: ties stay in file order
    return signals


def beside(candles: str | Path) -> Path:
    """The signal file that goes with a candles file: ``<candles>.signals.jsonl``."""
    return Path(f"{candles}{SIGNAL_FILE_SUFFIX}")


class SignalBook:
    """The newest readings per (subject, kind, source, window), answered only when fresh (module docstring).

    One analyser may publish a kind over several windows (the sentiment aggregator: 5 min and 1 h);
    each window is its own series, so asking for a window never gets another window's reading.
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str, float], deque[Signal]] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._by_key.values())

    def put(self, signal: Signal) -> None:
        """Keep ``signal`` (readings arrive in any order; they are kept by ``ts_ns``)."""
        key = (signal.subject, signal.kind, signal.source, signal.window_s)
        queue = self._by_key.get(key)
        if queue is None:
            queue = self._by_key[key] = deque(maxlen=_DEPTH)
        if queue and signal.ts_ns < queue[-1].ts_ns:
            if any(s == signal for s in queue):
                return
            items = sorted([*queue, signal], key=lambda s: s.ts_ns)[-_DEPTH:]
            queue.clear()
            queue.extend(items)
        elif not queue or queue[-1] != signal:  # the last-value cache may deliver the same one again
            queue.append(signal)

    def extend(self, signals: Iterable[Signal]) -> None:
        """:meth:`put` each of ``signals``."""
        for signal in signals:
            self.put(signal)

    def get(
        self,
        subject: str,
        kind: str,
        *,
        source: str = "",
        max_age_s: float,
        now_ns: int,
        window_s: float | None = None,
    ) -> Signal | None:
        """The newest reading of ``kind`` about ``subject`` (from ``source``; "" any) usable at ``now_ns``.

        ``window_s``: only readings over that window (None: any window's newest).
        Usable: stamped at or before ``now_ns``, at most ``max_age_s`` older, not ``stale``. If the newest
        reading at ``now_ns`` of a source is stale, that source has nothing to say (an older fresh one
        is not used: the source itself says its reading is out of date).
        """
        best: Signal | None = None
        oldest_ns = now_ns - int(max_age_s * 1e9)
        for (subj, knd, src, window), queue in self._by_key.items():
            if subj != subject or knd != kind or (source and src != source):
                continue
            if window_s is not None and window != window_s:
                continue
            newest = None
            for signal in reversed(queue):
                if signal.ts_ns <= now_ns:
                    newest = signal
                    break
            if newest is None or newest.stale or newest.ts_ns < oldest_ns:
                continue
            if best is None or newest.ts_ns > best.ts_ns:
                best = newest
        return best
