"""What the shared rate limiter adds to each ccxt REST call, alone and with processes contending.

* floor: ``throttle(cost)`` of a ccxt.binance subclass whose throttle does nothing (the
  same call shape as ours, no limiting);
* ours: ``throttle(cost)`` of ``limited_exchange(ccxt.binance, SharedLimiter)`` with a
  budget that never binds (so only the limiter's own cost is measured: flock, mmap
  read-modify-write of the state, the endpoint's charge), and ``observe`` of a response
  carrying Binance's used-weight header;
* contention: N processes taking from the same limiter file at once, per-call latency;
* the store alone (flock, read and write of the state) against the alternative considered:
  an LMDB write transaction doing the same read-modify-write (``sync=False``, i.e. no
  fsync — the file+flock design does none either).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import emit, fmt_latency, latency_us, parse_args, ratio, short_tmp, subprocess_env

HEADERS = {"X-MBX-USED-WEIGHT-1M": "17", "Content-Type": "application/json"}


def _limits() -> Any:
    from sniperbot.venues.ccxt.ratelimit import binance_limits

    return binance_limits(weight_limit=1e12, orders_10s=1e12, orders_day=1e12)


def _exchanges(run_dir: Path) -> tuple[Any, Any]:
    import ccxt

    from sniperbot.venues.ccxt.ratelimit import SharedLimiter, limited_exchange

    class Floor(ccxt.binance):  # type: ignore[misc]
        def throttle(self, cost: Any = None) -> None:
            return None

    limited = limited_exchange(ccxt.binance, SharedLimiter(run_dir, "binance", "main", _limits()))()
    return Floor(), limited


def _samples(fn: Any, n: int) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def _child(run_dir: str, n: int, start_at: float) -> None:
    _, limited = _exchanges(Path(run_dir))
    cost = limited.calculate_rate_limiter_cost(["public"], "GET", "time", {}, {"cost": 0.2})
    limited.throttle(cost)  # open the file before the clock starts
    while time.time() < start_at:
        time.sleep(0.001)
    samples = _samples(lambda: limited.throttle(cost), n)
    print(json.dumps(samples))


def _lmdb(run_dir: Path, n: int) -> list[int]:
    import struct

    import lmdb

    env = lmdb.open(str(run_dir / "lmdb-limits"), map_size=1 << 20, sync=False, metasync=False)
    rec = struct.Struct("<" + "ddd" * 4)
    key = b"binance.main"
    with env.begin(write=True) as txn:
        txn.put(key, rec.pack(*([0.0] * 12)))

    def rmw() -> None:
        with env.begin(write=True) as txn:
            values = list(rec.unpack(txn.get(key)))
            values[1] += 1.0
            txn.put(key, rec.pack(*values))

    try:
        return _samples(rmw, n)
    finally:
        env.close()


def main() -> None:
    args = parse_args(__doc__ or "", lambda p: p.add_argument("--procs", type=int, default=3))
    n = 2_000 if args.quick else 20_000
    figures: dict[str, Any] = {}
    with short_tmp("sb-rl-") as tmp:
        floor_ex, limited = _exchanges(tmp)
        cost = limited.calculate_rate_limiter_cost(["public"], "GET", "time", {}, {"cost": 0.2})
        for _ in range(200):  # warm up both paths
            floor_ex.throttle(cost)
            limited.throttle(cost)
        floor = latency_us(_samples(lambda: floor_ex.throttle(cost), n))
        ours = latency_us(_samples(lambda: limited.throttle(cost), n))
        limiter = limited._sb_limiter
        observe = latency_us(_samples(lambda: limiter.observe(200, HEADERS, '{"serverTime":1}'), n))
        file_store = latency_us(_samples(lambda: limiter._locked(lambda st, now: None), n))
        lmdb_rmw = latency_us(_lmdb(tmp, n))

        procs = args.procs
        start_at = time.time() + 3.0
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--child", str(tmp), str(n // 2), repr(start_at)],
                stdout=subprocess.PIPE,
                env=subprocess_env(),
            )
            for _ in range(procs)
        ]
        contended: list[int] = []
        for child in children:
            out, _ = child.communicate(timeout=300)
            contended += json.loads(out)
        contention = latency_us(contended)

    print(f"shared rate limiter, {n} calls per case (µs per call)")
    print(fmt_latency("floor: no-op throttle", floor))
    print(fmt_latency("ours: limited throttle (1 process)", ours))
    print(fmt_latency(f"ours: {procs} processes contending", contention))
    print(fmt_latency("ours: observe(response headers)", observe))
    print(fmt_latency("store: flock + mmap read/write", file_store))
    print(fmt_latency("alternative: LMDB write txn (no fsync)", lmdb_rmw))
    added_p50 = round(ours["p50"] - floor["p50"], 1)
    added_p99 = round(ours["p99"] - floor["p99"], 1)
    r50 = ratio(ours["p50"], floor["p50"])
    print(f"  added per call: p50 {added_p50} µs, p99 {added_p99} µs; ratio to the floor at p50: {r50}")
    figures.update(
        floor=floor,
        ours=ours,
        contention={"procs": procs, **contention},
        observe=observe,
        file_store=file_store,
        lmdb_alternative=lmdb_rmw,
        added_p50_us=added_p50,
        added_p99_us=added_p99,
        ratio_p50=ratio(ours["p50"], floor["p50"]),
        ratio_p99=ratio(ours["p99"], floor["p99"]),
        contention_ratio_p50=ratio(contention["p50"], ours["p50"]),
        lmdb_vs_file_store_p50=ratio(lmdb_rmw["p50"], file_store["p50"]),
    )
    emit("ratelimit", figures)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
