"""A bounded set of recently seen ids: deduplication that does not grow for as long as a node runs.

Actors that follow fills on the bus (strategy, risk guard, portfolio, sniper) drop a fill they
have already counted. What can reach them twice is recent by construction: an executor
re-announces only its journal's last records at start (``_REPUBLISH_TAIL`` in
:mod:`sniperbot.execution.executor`, 256); the risk guard and the strategy read the journal's
fills since their last look before each decision (a fill lost on the bus), and those are the
fills of the orders in flight since then; fills journaled before an actor's own start are told
apart by their journal seq, not by this set. So remembering the last :data:`RECENT_IDS`
ids is exact, where an unbounded set grew by every fill of a node's life (the 1-hour soak showed
the strategy actors' memory climbing with it).
"""

from __future__ import annotations

from typing import Final

#: How many ids a :class:`RecentIds` keeps: far more than can be delivered twice (see above).
RECENT_IDS: Final = 20_000


class RecentIds:
    """The last ``capacity`` ids added, oldest forgotten first; ``id in recent`` is O(1)."""

    __slots__ = ("_ids", "capacity")

    def __init__(self, capacity: int = RECENT_IDS) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._ids: dict[str, None] = {}  # insertion-ordered: the first key is the oldest

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item: str) -> bool:
        """Remember ``item``; False if it was remembered already (a duplicate)."""
        if item in self._ids:
            return False
        self._ids[item] = None
        if len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]
        return True
