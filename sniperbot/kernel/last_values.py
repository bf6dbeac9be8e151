"""The node's last-value cache (ZeroMQ's Clone pattern): the last frame of each market-data topic.

The node keeps the raw bus messages it sees on the market bus (not decoded: a dict store per message),
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
from sniperbot.transport.bus import is_marked, split_message

#: How many analytics-signal topics the cache keeps, least recently updated evicted first.
MAX_SIGNAL_TOPICS: Final = 10_000
_SIGNAL_PREFIX = topic.SIGNALS.encode()


class LastValues:
    """topic -> last bus message, for the market topics the node subscribes to."""

    def __init__(self, max_signal_topics: int = MAX_SIGNAL_TOPICS) -> None:
        # Whole bus messages (sniperbot.transport.bus): kept as received, sliced only for a snapshot.
        self._messages: dict[bytes, bytes] = {}
        self._signals: dict[bytes, bytes] = {}  # insertion order = update order: the first is the oldest
        self.max_signal_topics = max_signal_topics

    def put(self, message: bytes) -> None:
        """Keep a bus message as its topic's last value (InvalidFrame if it is not one)."""
        key, _ = split_message(message)
        if is_marked(message):
            message = message[1:]  # kept as the topic's subscribers would get it
        if not key.startswith(_SIGNAL_PREFIX):
            self._messages[key] = message
            return
        signals = self._signals
        signals.pop(key, None)  # re-inserted at the end: the most recently updated
        signals[key] = message
        if len(signals) > self.max_signal_topics:
            del signals[next(iter(signals))]

    def matching(self, topics: list[str]) -> Iterator[bytes]:
        """The cached envelope frames whose topic starts with one of ``topics``."""
        prefixes = tuple(t.encode() for t in topics)
        for store in (self._messages, self._signals):
            for key, message in list(store.items()):
                if key.startswith(prefixes):
                    yield message[len(key) + 1 :]

    def get(self, topic: str) -> bytes | None:
        """The cached envelope frame of exactly ``topic``, or None."""
        key = topic.encode()
        message = self._messages.get(key) or self._signals.get(key)
        return None if message is None else message[len(key) + 1 :]

    def __len__(self) -> int:
        return len(self._messages) + len(self._signals)
