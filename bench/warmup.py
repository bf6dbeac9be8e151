"""Strategy warm-up time for 1,000 bars of history (issue #11 point 7).

What a restarted strategy actor does before it acts: read its last ``warmup_bars()`` closed
bars from the node's bar store (LMDB, the journal's state) and run its decision over them
(``Strategy.warm``). Floor, in the same run: the decision loop alone over the same bars in
memory (what any warm-up costs); the ratio is the store's share.
"""

from __future__ import annotations

import statistics
import sys
import time

sys.path.append(str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench._common import emit, fs_type, parse_args, short_tmp
from sniperbot.journal import Journal
from sniperbot.market.bar_store import BarStore
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
    emit("warmup", figures)


if __name__ == "__main__":
    main()
