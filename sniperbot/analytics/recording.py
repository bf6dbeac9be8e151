"""The ``signal_recorder`` and ``signal_replay`` kinds of ``[[analysers]]`` (their actors: :mod:`.recorder`).

A recorder keeps every signal on the bus in daily signal files (:mod:`sniperbot.analytics.signals`
format), so today's live readings are tomorrow's backtest; a replay publishes a signal file's
readings as its own (a demo, a test, a rehearsal of a recorded day on the paper venue).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from sniperbot.analytics.base import AnalyserSection


class SignalRecorderConfig(AnalyserSection, tag="signal_recorder"):
    """Appends every ``sig.`` message to ``<directory>/signals-<UTC day>.jsonl`` (the signal's day).

    ``fsync_interval_s``: files are flushed and fsynced this often (and at an orderly stop), not per
    signal: a crash of the machine loses at most that much of the recording, never a file's earlier lines.
    """

    actor_path: ClassVar[str] = "sniperbot.analytics.recorder:SignalRecorder"
    directory: str
    fsync_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0

    def __post_init__(self) -> None:
        if not self.directory.strip():
            raise ValueError("directory: must name the directory the signal files go to")


class SignalReplayConfig(AnalyserSection, tag="signal_replay"):
    """Publishes the signals of ``file`` (a signal file) as this analyser's own.

    ``pace = "timestamps"``: the first signal at start, each next one after the gap the file has
    between their ``ts_ns`` (divided by ``speed``); ``"immediate"``: all at start. ``retime = true``
    (default) stamps each with its publish time, so a live strategy sees it fresh; false keeps the file's
    ``ts_ns``. Per the authority rule (only an analyser, as itself) each goes out with ``source`` = this
    analyser's id; the recorded source is kept in ``origin`` as ``replay:<source>`` (``:<origin>`` after
    it when the recording had one). The file is read at config load: a bad line stops ``sniperbot run``
    naming the file and the line.
    """

    actor_path: ClassVar[str] = "sniperbot.analytics.recorder:SignalReplay"
    file: str
    pace: Literal["timestamps", "immediate"] = "timestamps"
    speed: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    retime: bool = True

    def __post_init__(self) -> None:
        from sniperbot.analytics.signals import read_signals

        try:
            read_signals(self.file)
        except ValueError as e:
            raise ValueError(f"file: {e}") from None
