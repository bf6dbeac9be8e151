"""Overhead of journaling an order: the latency ``Journal.append(Order)`` adds, per durability mode.

This is the write-ahead step the executor takes before an order may reach a
venue (and again for its updates and fills). Floor: LMDB itself with the same
sync settings and a same-sized raw value, no msgspec, no indexes.
"""

from __future__ import annotations

import sys
import time

sys.path.append(str(__import__("pathlib").Path(__file__).resolve().parent.parent))

import lmdb

from bench._common import emit, fmt_latency, fs_type, latency_us, parse_args, ratio, short_tmp
from sniperbot.journal import Journal
from sniperbot.messages import Order, OrderUpdate


def _order(i: int) -> Order:
    return Order(
        client_order_id=f"bench-{i}",
        intent_id=f"bench-{i}",
        strategy_id="bench",
        venue="sim",
        symbol="BTC/USDT",
        side="buy" if i % 2 else "sell",
        quantity=0.01,
        ts_ns=time.time_ns(),
    )


def _accepted(i: int) -> OrderUpdate:
    return OrderUpdate(
        client_order_id=f"bench-{i}",
        strategy_id="bench",
        venue="sim",
        symbol="BTC/USDT",
        status="accepted",
        ts_ns=time.time_ns(),
    )


def main() -> None:
    args = parse_args(__doc__ or "")
    n = 500 if args.quick else 3000
    figures: dict[str, object] = {"appends": n}
    with short_tmp("sb-journal-") as tmp:
        figures["fs"] = fs_type(tmp)
        for durability in ("fsync", "process"):
            journal = Journal.open(tmp / durability, durability=durability)  # type: ignore[arg-type]
            samples = []
            for i in range(n):
                order = _order(i)
                t0 = time.perf_counter_ns()
                journal.append(order)
                samples.append(time.perf_counter_ns() - t0)
            answers = []
            if durability == "fsync":
                # The executor's commit of a venue's answer: one fsync, not two (Journal.append_many).
                for i in range(n):
                    update = _accepted(i)
                    t0 = time.perf_counter_ns()
                    journal.append_many([update], sync_meta=False)
                    answers.append(time.perf_counter_ns() - t0)
            journal.close()
            sync = durability == "fsync"
            env = lmdb.open(str(tmp / f"raw-{durability}"), map_size=1 << 30, sync=sync, metasync=sync)
            value = b"x" * 200
            raw = []
            for i in range(n):
                t0 = time.perf_counter_ns()
                with env.begin(write=True) as txn:
                    txn.put(i.to_bytes(8, "big"), value, append=True)
                raw.append(time.perf_counter_ns() - t0)
            env.close()
            ours, floor = latency_us(samples), latency_us(raw)
            print(fmt_latency(f"journal.append(Order) [{durability}]", ours))
            print(fmt_latency(f"raw lmdb put          [{durability}]", floor))
            print(f"  ratio p50 {ratio(ours['p50'], floor['p50']):.2f}x of raw lmdb")
            if answers:
                answer = latency_us(answers)
                print(fmt_latency("append_many([update], sync_meta=False)", answer))
                print(f"  ratio p50 {ratio(answer['p50'], ours['p50']):.2f}x of a durable append")
                figures["fsync_answer_us"] = answer
            figures[durability] = {
                "journal_us": ours,
                "raw_lmdb_us": floor,
                "ratio_p50": ratio(ours["p50"], floor["p50"]),
            }
    emit("journal", figures)


if __name__ == "__main__":
    main()
