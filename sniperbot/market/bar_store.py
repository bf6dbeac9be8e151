"""The node's own store of closed bars, for warm restarts: per venue, symbol and interval, bounded.

Every strategy actor puts the bars it closes here (journal state, LMDB: durable, shared by the
node's processes); a strategy that starts, restarts or is hot-added reads the last bars of its
venue, symbol and interval and is warmed on them before it acts. Two strategies on the same
market build the same bars from the same trades; when two versions of a bar meet, the one built
from more trades wins (a strategy restarted mid-bar saw only part of it). Each key keeps the
last :data:`KEEP` bars: pruned every :data:`PRUNE_EVERY` puts.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from sniperbot.journal import keys
from sniperbot.messages import Bar

KEEP: Final = 5_000
PRUNE_EVERY: Final = 200

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Bar)


def bar_prefix(venue: str, symbol: str, interval_s: float) -> str:
    """The state-key prefix of one market's bars at one interval."""
    return f"{keys.BARS}{venue}/{symbol}/{round(interval_s * 1000)}/"


class BarStore:
    """Closed bars in the journal's state (see the module docstring)."""

    def __init__(self, journal: Any, keep: int = KEEP) -> None:
        self.journal = journal
        self.keep = keep
        self._puts = 0

    def put(self, bar: Bar) -> None:
        """Keep ``bar`` (unless the store has a version of it built from at least as many trades)."""
        key = f"{bar_prefix(bar.venue, bar.symbol, bar.interval_s)}{bar.start_ns:020d}"
        existing = self.journal.get_state(key)
        if existing is not None and _decoder.decode(existing).trades >= bar.trades:
            return
        self.journal.put_state(key, _encoder.encode(bar))
        self._puts += 1
        if self._puts % PRUNE_EVERY == 0:
            self.prune(bar.venue, bar.symbol, bar.interval_s)

    def prune(self, venue: str, symbol: str, interval_s: float) -> int:
        """Delete all but the last ``keep`` bars of one key; returns how many went."""
        items = self.journal.state_items(bar_prefix(venue, symbol, interval_s))
        old = items[: max(0, len(items) - self.keep)]
        for key, _ in old:
            self.journal.put_state(key, None)
        return len(old)

    def between(self, venue: str, symbol: str, interval_s: float, after_ns: int, before_ns: int) -> list[Bar]:
        """Bars that started in ``[after_ns, before_ns)``, oldest first."""
        prefix = bar_prefix(venue, symbol, interval_s)
        return [
            _decoder.decode(value)
            for key, value in self.journal.state_items(prefix)
            if after_ns <= int(key[len(prefix) :]) < before_ns
        ]

    def last(
        self, venue: str, symbol: str, interval_s: float, count: int, before_ns: int | None = None
    ) -> list[Bar]:
        """The last ``count`` bars (oldest first) that started before ``before_ns`` (None: any)."""
        if count <= 0:
            return []
        bars = [
            _decoder.decode(value)
            for _, value in self.journal.state_items(bar_prefix(venue, symbol, interval_s))
        ]
        if before_ns is not None:
            bars = [b for b in bars if b.start_ns < before_ns]
        return bars[-count:]
