"""The node's last-value cache (ZeroMQ's Clone pattern): the last frame of each market-data topic.

The node keeps the raw frames it sees on the market bus (not decoded: a dict store per message),
and a (re)started actor's :class:`~sniperbot.messages.SnapshotRequest` gets the last value of every
topic it follows at once, so a restarted strategy or risk guard does not wait for the next tick.
"""

from __future__ import annotations

from collections.abc import Iterator


class LastValues:
    """topic -> last envelope frame, for the market topics the node subscribes to."""

    def __init__(self) -> None:
        self._frames: dict[bytes, bytes] = {}

    def put(self, frames: list[bytes]) -> None:
        """Keep a ``[topic, envelope]`` message (anything else is ignored)."""
        if len(frames) == 2:
            self._frames[frames[0]] = frames[1]

    def matching(self, topics: list[str]) -> Iterator[bytes]:
        """The cached envelope frames whose topic starts with one of ``topics``."""
        prefixes = tuple(t.encode() for t in topics)
        for key, frame in list(self._frames.items()):
            if key.startswith(prefixes):
                yield frame

    def get(self, topic: str) -> bytes | None:
        """The cached frame of exactly ``topic``, or None."""
        return self._frames.get(topic.encode())
