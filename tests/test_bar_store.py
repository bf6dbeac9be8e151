"""The node's bar store (sniperbot.market.bar_store) on a real journal: what a warm-up and a catch-up read."""

from __future__ import annotations

from pathlib import Path

from sniperbot.journal import Journal
from sniperbot.market.bar_store import BarStore
from sniperbot.messages import Bar

T0 = 1_700_000_000 * 10**9
S = 10**9


def bar(i: int, trades: int = 1, venue: str = "sim", interval_s: float = 1.0) -> Bar:
    """Bar number ``i`` of a 1 s market: it starts i seconds after T0 and closes at i."""
    return Bar(venue, "BTC/USDT", interval_s, T0 + i * S, i, i, i, float(i), 1.0, trades)


def starts(bars: list[Bar]) -> list[int]:
    """Each bar's number (seconds after T0)."""
    return [(b.start_ns - T0) // S for b in bars]


def test_last_and_between_read_only_the_bars_asked_for_and_prune_keeps_the_newest(tmp_path: Path) -> None:
    with Journal.open(tmp_path, durability="process") as journal:
        store = BarStore(journal, keep=50)
        for i in range(120):
            store.put(bar(i))
        store.put(bar(0, venue="other"))  # another market's bars are never read for this one
        store.put(bar(5, interval_s=60.0))
        # Pruned every PRUNE_EVERY puts (200): not yet, all 120 are there.
        assert starts(store.last("sim", "BTC/USDT", 1.0, 1000)) == list(range(120))
        assert starts(store.last("sim", "BTC/USDT", 1.0, 3)) == [117, 118, 119]
        # A warm-up reads the bars before the current one.
        assert starts(store.last("sim", "BTC/USDT", 1.0, 4, before_ns=T0 + 100 * S)) == [96, 97, 98, 99]
        assert starts(store.last("sim", "BTC/USDT", 1.0, 4, before_ns=T0 + 100 * S + 1)) == [97, 98, 99, 100]
        assert store.last("sim", "BTC/USDT", 1.0, 4, before_ns=T0) == []
        assert store.last("sim", "BTC/USDT", 1.0, 0) == []
        # A catch-up reads the bars a restarted strategy missed: [after, before).
        assert starts(store.between("sim", "BTC/USDT", 1.0, T0 + 10 * S + 1, T0 + 14 * S)) == [11, 12, 13]
        assert starts(store.between("sim", "BTC/USDT", 1.0, T0 + 10 * S, T0 + 13 * S)) == [10, 11, 12]
        assert store.between("sim", "BTC/USDT", 1.0, T0 + 13 * S, T0 + 13 * S) == []

        assert store.prune("sim", "BTC/USDT", 1.0) == 70
        assert starts(store.last("sim", "BTC/USDT", 1.0, 1000)) == list(range(70, 120))
        assert store.prune("sim", "BTC/USDT", 1.0) == 0  # nothing more to go
        assert starts(store.last("other", "BTC/USDT", 1.0, 10)) == [0]
        assert starts(store.last("sim", "BTC/USDT", 60.0, 10)) == [5]


def test_a_bar_built_from_more_trades_wins_and_puts_prune_on_their_own(tmp_path: Path) -> None:
    with Journal.open(tmp_path, durability="process") as journal:
        store = BarStore(journal, keep=10)
        store.put(bar(7, trades=5))
        store.put(bar(7, trades=2))  # a restarted strategy saw only part of that bar
        assert [b.trades for b in store.last("sim", "BTC/USDT", 1.0, 5)] == [5]
        for i in range(8, 8 + 210):  # past PRUNE_EVERY (200) puts
            store.put(bar(i))
        # The 200th put (bar 206) pruned to the last 10 (197..206); 207..217 came after.
        assert starts(store.last("sim", "BTC/USDT", 1.0, 1000)) == list(range(197, 218))
