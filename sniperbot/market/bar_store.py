"""The node's own store of closed bars, for warm restarts: per venue, symbol and interval, bounded.

Every strategy actor puts the bars it closes here (journal state, LMDB: durable, shared by the
node's processes); a strategy that starts, restarts or is hot-added reads the last bars of its
venue, symbol and interval and is warmed on them before it acts. Two strategies on the same
market build the same bars from the same trades; when two versions of a bar meet, the one built
from more trades wins (a strategy restarted mid-bar saw only part of it). Each key keeps the
last :data:`KEEP` bars: pruned every :data:`PRUNE_EVERY` puts, in one transaction. Reads go by
cursor over the range they need (a warm-up reads its last bars, not all the store keeps).
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
        key = bar_prefix(bar.venue, bar.symbol, bar.interval_s) + _suffix(bar.start_ns)
        existing = self.journal.get_state(key)
        if existing is not None and _decoder.decode(existing).trades >= bar.trades:
            return
        self.journal.put_state(key, _encoder.encode(bar))
        self._puts += 1
        if self._puts % PRUNE_EVERY == 0:
            self.prune(bar.venue, bar.symbol, bar.interval_s)

    def prune(self, venue: str, symbol: str, interval_s: float) -> int:
        """Delete all but the last ``keep`` bars of one key, in one transaction; returns how many went."""
        prefix = bar_prefix(venue, symbol, interval_s)
        # Keys only: the prune runs every few hundred bars and must not decode or copy the
        # thousands it keeps (that showed as strategy memory growth in the soak).
        kept = self.journal.state_keys(prefix, last=self.keep)
        if len(kept) < self.keep:
            return 0
        old = self.journal.state_keys(prefix, stop=kept[0][len(prefix) :])
        if old:
            self.journal.put_states(dict.fromkeys(old, None))
        return len(old)

    def between(self, venue: str, symbol: str, interval_s: float, after_ns: int, before_ns: int) -> list[Bar]:
        """Bars that started in ``[after_ns, before_ns)``, oldest first."""
        prefix = bar_prefix(venue, symbol, interval_s)
        if before_ns <= max(after_ns, 0):
            return []
        items = self.journal.state_items(prefix, start=_suffix(max(after_ns, 0)), stop=_suffix(before_ns))
        return [_decoder.decode(value) for _, value in items]

    def last(
        self, venue: str, symbol: str, interval_s: float, count: int, before_ns: int | None = None
    ) -> list[Bar]:
        """The last ``count`` bars (oldest first) that started before ``before_ns`` (None: any)."""
        if count <= 0:
            return []
        stop = "" if before_ns is None else _suffix(max(before_ns, 0))
        items = self.journal.state_items(bar_prefix(venue, symbol, interval_s), stop=stop, last=count)
        return [_decoder.decode(value) for _, value in items]


def _suffix(start_ns: int) -> str:
    """A bar's key after its prefix: its start, zero-padded so that key order is time order."""
    return f"{start_ns:020d}"
