"""Strategy warm-up time for 1,000 bars of history (issue #11 point 7), and on a full bar store.

What a restarted strategy actor does before it acts: read its last ``warmup_bars()`` closed
bars from the node's bar store (LMDB, the journal's state) and run its decision over them
(``Strategy.warm``). Floor, in the same run: the decision loop alone over the same bars in
memory (what any warm-up costs); the ratio is the store's share.

**Full store** (issue #14: restarts that do not grow with history): the store keeps the last
``KEEP`` (5,000) bars of each market, reached after 83 minutes of 1 s bars. The default
strategies need 6 and 9 bars; the read of those from a full store is timed beside the read of
the same bars from a store that holds only them (the floor: a warm-up that costs what it
needs), and so is the prune that runs every ``PRUNE_EVERY`` (200) bars once the store is full
(journal durability "fsync", the default).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import msgspec

sys.path.append(str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench._common import emit, fs_type, parse_args, short_tmp
from sniperbot.journal import Journal
from sniperbot.market.bar_store import KEEP, PRUNE_EVERY, BarStore, bar_prefix
from sniperbot.messages import Bar
from sniperbot.strategies import STRATEGIES

BARS = 1_000


def main() -> None:
    args = parse_args(__doc__ or "")
    runs = 5 if args.quick else 20
    with short_tmp("sb-warm-") as tmp:
        figures: dict[str, object] = {"fs": fs_type(tmp), "bars": BARS, "runs": runs}
        with Journal.open(tmp, durability="process") as journal:
            store = BarStore(journal, keep=5_000)
            price = 60_000.0
            for i in range(BARS + 500):
                price *= 1.0 + 0.001 * ((i * 7919) % 13 - 6) / 6
                store.put(
                    Bar(
                        "sim",
                        "BTC/USDT",
                        60.0,
                        (1_700_000_000 + 60 * i) * 10**9,
                        price,
                        price,
                        price,
                        price,
                        1.0,
                        1,
                    )
                )
            for name, params in (
                ("sma_cross", {"fast": 50, "slow": BARS - 1}),
                ("ema_cross", {"fast": 10, "slow": 99}),
            ):
                cls = STRATEGIES[name]
                need = cls.warmup_bars_for(params)
                total, compute = [], []
                for _ in range(runs):
                    strategy = cls("bench", "sim", "BTC/USDT", quantity=1.0, **params)
                    started = time.perf_counter()
                    history = store.last("sim", "BTC/USDT", 60.0, need, before_ns=None)
                    strategy.warm(history)
                    total.append(time.perf_counter() - started)
                    fresh = cls("bench", "sim", "BTC/USDT", quantity=1.0, **params)
                    started = time.perf_counter()
                    fresh.warm(history)
                    compute.append(time.perf_counter() - started)
                t, c = statistics.median(total) * 1000, statistics.median(compute) * 1000
                print(
                    f"{name} ({need} bars): warm-up {t:.2f} ms (store read + decisions), "
                    f"decisions alone {c:.2f} ms, ratio {t / c:.1f}"
                )
                figures[f"{name}_bars"] = need
                figures[f"{name}_warmup_ms"] = round(t, 3)
                figures[f"{name}_decisions_ms"] = round(c, 3)
                figures[f"{name}_ratio"] = round(t / c, 2)
        figures.update(full_store(tmp, runs))
    emit("warmup", figures)


def _bar(i: int) -> Bar:
    return Bar("sim", "ETH/USDT", 1.0, (1_700_000_000 + i) * 10**9, 1.0, 1.0, 1.0, 1.0, 1.0, 1)


def full_store(tmp: Path, runs: int) -> dict[str, object]:
    """The default strategy's warm-up read (9 bars) from a full store and from one holding only 9."""
    need = 9
    out: dict[str, object] = {}
    for label, stored in (("full", KEEP), ("floor", need)):
        # "fsync", the default durability: what the prune's commits cost a node as shipped.
        with Journal.open(tmp / label, durability="fsync") as journal:
            store = BarStore(journal)
            journal.put_states({_key(i): msgspec.msgpack.encode(_bar(i)) for i in range(stored)})
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                history = store.last("sim", "ETH/USDT", 1.0, need, before_ns=None)
                times.append(time.perf_counter() - started)
            assert len(history) == need
            out[f"last_{need}_of_{stored}_ms"] = round(statistics.median(times) * 1000, 4)
            if label == "full":
                # The bars of PRUNE_EVERY more seconds, then the prune they trigger.
                journal.put_states(
                    {_key(i): msgspec.msgpack.encode(_bar(i)) for i in range(stored, stored + PRUNE_EVERY)}
                )
                started = time.perf_counter()
                pruned = store.prune("sim", "ETH/USDT", 1.0)
                out["prune_ms"] = round((time.perf_counter() - started) * 1000, 3)
                assert pruned == PRUNE_EVERY
    full, floor = out[f"last_{need}_of_{KEEP}_ms"], out[f"last_{need}_of_{need}_ms"]
    ratio = round(float(full) / float(floor), 2)  # type: ignore[arg-type]
    out["full_store_ratio"] = ratio
    print(
        f"full store: the last {need} of {KEEP:,} bars {full} ms, of {need} bars {floor} ms (floor), "
        f"ratio {ratio}; prune of {PRUNE_EVERY} bars at {KEEP:,}: {out['prune_ms']} ms"
    )
    return out


def _key(i: int) -> str:
    return bar_prefix("sim", "ETH/USDT", 1.0) + f"{(1_700_000_000 + i) * 10**9:020d}"


if __name__ == "__main__":
    main()
