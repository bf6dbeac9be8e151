"""Bounded disk: journal bytes per 1,000 fills (hot and archived), and the hot journal after 30 days.

1. The default node's rate: ``sniperbot run`` of ``config/default.toml`` for ``--rate-s`` seconds: its
   orders, updates and fills per second, read back from its journal.
2. Thirty simulated days at that rate (``--quick``: a tenth of the rate), written as the executor writes
   them (an Order, then its updates and fills, each its own commit, ``process`` durability), timestamps
   spread over the days, into two journals: one with the archiver stepping every simulated hour (7-day
   horizon, ``archive_step(now_ns=...)``), one never archived (the floor this is compared with).
3. Figures: each journal's ``data.mdb`` size and its pages in use, the archive's total size, bytes per
   1,000 fills (never archived: LMDB; archived: the day files), the hot journal's pages in use sampled
   every few simulated days (flat after the horizon: bounded, the dedup and status entries of archived
   records leave with them), the ratio of the hot journal to the never-archived one, and what
   ``sniperbot journal compact`` makes of the hot file (LMDB reuses freed pages but never shrinks).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

import subprocess

import lmdb

from bench._common import REPO, emit, latency_us, parse_args, ratio, short_tmp, subprocess_env
from sniperbot.journal import Journal, store
from sniperbot.journal.archive import archive_dir, archive_files, archive_step
from sniperbot.messages import Fill, Order, OrderUpdate

DAY_NS = 86_400 * 1_000_000_000
HORIZON_DAYS = 7
DAYS = 30
_DB_NAMES = tuple(name.decode() for name in store._DB_NAMES)  # every named database of the journal


def _default_rate(tmp: Path, seconds: float) -> dict[str, float]:
    """Run the default node for ``seconds``; its journaled orders, updates and fills per second."""
    run_dir = tmp / "default"
    subprocess.run(
        [sys.executable, "-m", "sniperbot", "run", "--run-dir", str(run_dir), "--duration", str(seconds)],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds + 120,
        check=False,
    )
    with Journal.open(run_dir, readonly=True) as journal:
        counts = journal.counts()
    return {k: counts[k] / seconds for k in ("orders", "updates", "fills")}


def _order_records(n: int, ts_ns: int, updates: int, fills: int) -> tuple[Order, list[list[object]]]:
    cid = f"sma_btc-bench0-{n}"
    side = "buy" if n % 2 else "sell"
    order = Order(cid, cid, "sma_btc", "sim", "BTC/USDT", side, 0.05, ts_ns=ts_ns)
    later: list[list[object]] = []
    for u in range(max(updates - 1, 0)):
        later.append([OrderUpdate(cid, "sma_btc", "sim", "BTC/USDT", "accepted", ts_ns=ts_ns + u)])
    for f in range(fills):
        price = 60_000.0 + (n % 97)
        fill = Fill(
            f"sim:BTC/USDT:{n}-{f}",
            cid,
            "sma_btc",
            "sim",
            "BTC/USDT",
            side,
            0.05 / fills,
            price,
            0.03,
            ts_ns=ts_ns + 500_000 + f,
        )
        later.append([fill])
    later.append([OrderUpdate(cid, "sma_btc", "sim", "BTC/USDT", "filled", ts_ns=ts_ns + 1_000_000)])
    return order, later


def _lmdb_used(journal: Journal, names: tuple[str, ...] | None = None) -> int:
    """Bytes of pages in use (all named databases, or ``names``), from LMDB's own stats."""
    env = journal._env  # a bench may look inside
    total = 0
    with env.begin() as txn:
        for name in names or _DB_NAMES:
            try:
                db = env.open_db(name.encode(), txn=txn, create=False)
            except lmdb.NotFoundError:
                continue
            s = txn.stat(db)
            total += (s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]) * s["psize"]
    return total


def _simulate(
    run_dir: Path, orders_per_day: int, updates: int, fills: int, archive: bool
) -> dict[str, float]:
    """Write DAYS days of orders; archive every simulated hour if ``archive``; sizes and timings."""
    start_ns = time.time_ns() - DAYS * DAY_NS
    step_ns = DAY_NS // orders_per_day
    hour_ns = DAY_NS // 24
    n = 0
    archived = 0
    max_step_s = 0.0
    archive_s = 0.0
    started = time.perf_counter()
    appends: list[int] = []  # ns per Order append: what a trading writer sees
    drops: list[int] = []  # ns per delete transaction: how long the archiver holds LMDB's writer lock
    with Journal.open(run_dir, durability="process") as journal:
        # The archiver's write transaction (begin to commit): how long it holds LMDB's writer lock,
        # which every trading writer shares (its fold runs before, in a read transaction).
        drop, write_txn = journal.drop_archived, journal._write_txn
        dropping = [False]

        def timed_write(fn: Callable[[Any], Any], *args: Any) -> Any:
            t = time.perf_counter_ns()
            try:
                return write_txn(fn, *args)
            finally:
                if dropping[0]:
                    drops.append(time.perf_counter_ns() - t)

        def timed_drop(*args: Any, **kwargs: Any) -> int:
            dropping[0] = True
            try:
                return drop(*args, **kwargs)
            finally:
                dropping[0] = False

        journal._write_txn = timed_write  # type: ignore[method-assign]
        journal.drop_archived = timed_drop  # type: ignore[method-assign]
        next_archive = start_ns + hour_ns
        used_by_day: dict[int, int] = {}  # simulated day -> hot pages in use (bytes)
        sample_days = {7, 10, 15, 20, 25}
        for i in range(DAYS * orders_per_day):
            ts = start_ns + i * step_ns
            n += 1
            order, later = _order_records(n, ts, updates, fills)
            t = time.perf_counter_ns()
            journal.append(order)
            appends.append(time.perf_counter_ns() - t)
            for batch in later:
                journal.append_many(batch)  # type: ignore[arg-type]
            day = (ts - start_ns) // DAY_NS
            if day in sample_days and day not in used_by_day:
                used_by_day[day] = _lmdb_used(journal)
            if archive and ts >= next_archive:
                next_archive += hour_ns
                t0 = time.perf_counter()
                while True:
                    s0 = time.perf_counter()
                    step = archive_step(journal, HORIZON_DAYS * 86_400.0, now_ns=ts)
                    max_step_s = max(max_step_s, time.perf_counter() - s0)
                    archived += step.archived
                    if not step.archived:
                        break
                archive_s += time.perf_counter() - t0
        fills_total = journal.counts()["fills"]
        used = _lmdb_used(journal)
        used_by_day[DAYS] = used
        index_bytes = _lmdb_used(journal, ("orders", "fills", "status", "by_strategy"))
        floor = journal.archived_through()
        compact_bytes = journal.compact_copy().stat().st_size
    data = run_dir / "journal" / "data.mdb"
    archive_bytes = sum(p.stat().st_size for p in archive_files(archive_dir(run_dir / "journal")))
    return {
        "fills": fills_total,
        "records": n * (1 + updates + fills),
        "archived_records": floor,
        "file_bytes": data.stat().st_size,
        "used_bytes": used,
        "compacted_bytes": compact_bytes,
        "index_bytes": index_bytes,
        "archive_bytes": archive_bytes,
        "archive_files": len(archive_files(archive_dir(run_dir / "journal"))),
        "write_s": round(time.perf_counter() - started, 1),
        "archive_s": round(archive_s, 1),
        "max_archive_step_ms": round(max_step_s * 1000, 2),
        "order_append_us": latency_us(appends),
        "archive_delete_txn_us": latency_us(drops),
        "used_bytes_by_day": used_by_day,
    }


def main() -> None:
    args = parse_args(
        __doc__ or "",
        lambda p: (
            p.add_argument(
                "--rate-s", type=float, default=None, help="seconds of the default node (60; quick 20)"
            ),
            p.add_argument("--fills-per-s", type=float, default=None, help="skip the node, use this rate"),
        ),
    )
    scale = 0.1 if args.quick else 1.0
    figures: dict[str, object] = {"days": DAYS, "horizon_days": HORIZON_DAYS, "scale": scale}
    with short_tmp("sb-archive-") as tmp:
        if args.fills_per_s:
            rate = {"orders": args.fills_per_s, "updates": 2 * args.fills_per_s, "fills": args.fills_per_s}
        else:
            seconds = args.rate_s or (20.0 if args.quick else 60.0)
            rate = _default_rate(tmp, seconds)
            figures["default_node_seconds"] = seconds
        figures["default_node_per_s"] = {k: round(v, 3) for k, v in rate.items()}
        orders_per_s = max(rate["orders"], 1e-3)
        updates = max(1, round(rate["updates"] / orders_per_s))
        fills = max(1, round(rate["fills"] / orders_per_s))
        orders_per_day = max(24, int(orders_per_s * 86_400 * scale))
        print(
            f"default node: {rate['orders']:.3f} orders/s, {rate['updates']:.3f} updates/s, "
            f"{rate['fills']:.3f} fills/s -> per order {updates} update(s), {fills} fill(s); "
            f"simulating {orders_per_day} orders/day for {DAYS} days (scale {scale})"
        )
        hot = _simulate(tmp / "hot", orders_per_day, updates, fills, archive=True)
        flat = _simulate(tmp / "flat", orders_per_day, updates, fills, archive=False)
    per_k = 1000 / max(flat["fills"], 1)
    archived_fills = hot["archived_records"] / (1 + updates + fills) * fills
    figures.update(
        {
            "hot": hot,
            "never_archived": flat,
            "bytes_per_1000_fills_lmdb": round(flat["used_bytes"] * per_k),
            "bytes_per_1000_fills_archive": round(hot["archive_bytes"] * 1000 / max(archived_fills, 1)),
            "hot_index_bytes_per_1000_fills": round(hot["index_bytes"] * per_k),
            # Bounded: the hot pages in use at day 30 over those at day 10 (both past the horizon).
            "hot_used_day30_vs_day10": ratio(hot["used_bytes_by_day"][DAYS], hot["used_bytes_by_day"][10]),
            "hot_vs_never_archived_file": ratio(hot["file_bytes"], flat["file_bytes"]),
            "hot_vs_never_archived_used": ratio(hot["used_bytes"], flat["used_bytes"]),
            "compacted_hot_vs_never_archived": ratio(hot["compacted_bytes"], flat["compacted_bytes"]),
        }
    )
    mib = 1024 * 1024
    h, f, g = hot, flat, figures
    print(f"{f['fills']} fills, {f['records']} records over {DAYS} days")
    print(
        f"never archived: data.mdb {f['file_bytes'] / mib:.1f} MiB "
        f"({f['used_bytes'] / mib:.1f} MiB in use), {g['bytes_per_1000_fills_lmdb']} B per 1,000 fills"
    )
    print(
        f"archived ({HORIZON_DAYS}-day horizon): data.mdb {h['file_bytes'] / mib:.1f} MiB "
        f"({h['used_bytes'] / mib:.1f} MiB in use, {h['compacted_bytes'] / mib:.1f} MiB compacted); "
        f"archive {h['archive_bytes'] / mib:.2f} MiB in {h['archive_files']} day files "
        f"({g['bytes_per_1000_fills_archive']} B per 1,000 fills); "
        f"hot indexes (horizon's orders only): {g['hot_index_bytes_per_1000_fills']} B per 1,000 fills "
        "of the 30 days"
    )
    days = sorted(h["used_bytes_by_day"])
    print(
        "hot pages in use by simulated day: "
        + ", ".join(f"d{d} {h['used_bytes_by_day'][d] / mib:.2f} MiB" for d in days)
        + f" (day {DAYS} / day 10: {g['hot_used_day30_vs_day10']}); never archived: "
        + ", ".join(f"d{d} {f['used_bytes_by_day'][d] / mib:.2f} MiB" for d in days)
    )
    print(
        f"hot / never archived: file {g['hot_vs_never_archived_file']}, in use "
        f"{g['hot_vs_never_archived_used']}, compacted {g['compacted_hot_vs_never_archived']}; "
        f"archiving {h['archive_s']} s of {h['write_s']} s, longest step {h['max_archive_step_ms']} ms"
    )
    print(
        f"order append p50/p99/max µs: archived {h['order_append_us']['p50']}/{h['order_append_us']['p99']}/"
        f"{h['order_append_us']['max']}, never archived {f['order_append_us']['p50']}/"
        f"{f['order_append_us']['p99']}/{f['order_append_us']['max']}; archiver's delete transaction "
        f"p50/p99/max µs {h['archive_delete_txn_us']['p50']}/{h['archive_delete_txn_us']['p99']}/"
        f"{h['archive_delete_txn_us']['max']}"
    )
    emit("journal_archive", figures)


if __name__ == "__main__":
    main()
