"""The node's last-value cache (ZeroMQ's Clone pattern): the last frame of each market-data topic.

The node keeps the raw frames it sees on the market bus (not decoded: a dict store per message),
and a (re)started actor's :class:`~sniperbot.messages.SnapshotRequest` gets the last value of every
topic it follows at once, so a restarted strategy or risk guard does not wait for the next tick.

**Bounded.** Quote and market-rules topics are bounded by the config (venues x symbols) and are
kept for the node's life. Analytics signal topics are not: each subject a social post mentions
(a cashtag, a token address) makes new ones, so a node that runs for weeks would keep every
subject it ever heard of. The cache keeps the :data:`MAX_SIGNAL_TOPICS` most recently updated
signal topics; a series evicted has not been published for a long time, and a strategy asking for
it gets nothing (it would have refused a reading that old anyway: ``latest_signal(max_age_s=...)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from sniperbot.messages import topics as topic

#: How many analytics-signal topics the cache keeps, least recently updated evicted first.
MAX_SIGNAL_TOPICS: Final = 10_000
_SIGNAL_PREFIX = topic.SIGNALS.encode()


class LastValues:
    """topic -> last envelope frame, for the market topics the node subscribes to."""

    def __init__(self, max_signal_topics: int = MAX_SIGNAL_TOPICS) -> None:
        self._frames: dict[bytes, bytes] = {}
        self._signals: dict[bytes, bytes] = {}  # insertion order = update order: the first is the oldest
        self.max_signal_topics = max_signal_topics

    def put(self, frames: list[bytes]) -> None:
        """Keep a ``[topic, envelope]`` message (anything else is ignored)."""
        if len(frames) != 2:
            return
        key, frame = frames
        if not key.startswith(_SIGNAL_PREFIX):
            self._frames[key] = frame
            return
        signals = self._signals
        signals.pop(key, None)  # re-inserted at the end: the most recently updated
        signals[key] = frame
        if len(signals) > self.max_signal_topics:
            del signals[next(iter(signals))]

    def matching(self, topics: list[str]) -> Iterator[bytes]:
        """The cached envelope frames whose topic starts with one of ``topics``."""
        prefixes = tuple(t.encode() for t in topics)
        for store in (self._frames, self._signals):
            for key, frame in list(store.items()):
                if key.startswith(prefixes):
                    yield frame

    def get(self, topic: str) -> bytes | None:
        """The cached frame of exactly ``topic``, or None."""
        key = topic.encode()
        return self._frames.get(key) or self._signals.get(key)

    def __len__(self) -> int:
        return len(self._frames) + len(self._signals)
