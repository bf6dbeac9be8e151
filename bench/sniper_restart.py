"""Sniper restart: the time to restore after N finished snipes, whole history vs live state + tail.

Builds one journal with N finished snipes (each: buy order, fill, ``filled``; sell order, fill,
``filled``: 6 records, as the executor journals them) and one open snipe, then starts the real
:class:`~sniperbot.actors.sniper.SniperActor` in a real :class:`~sniperbot.actors.runtime.ActorRuntime`
(its sockets, the real LMDB journal with ``fsync`` durability) and times ``open()``: construction,
``on_start``, Ready sent. Each start is a new incarnation on the same journal.

* **live state** (this version): the live snipes and the journal seq their positions hold; a restart
  reads that and the journal after it. This is what every restart costs.
* **old list** (the previous version's state, every snipe ever): a restart read every fill and order
  update of the strategy. Measured here as the first start after an upgrade: the old read plus the
  one-time move of the finished snipes to their own keys (one transaction). The state is put back
  in the old form before each sample.
* **floor**: the same start on an empty journal.

Figures: p50/max of each, and the ratio live state / old list (lower is better). The live state's
restart should not grow with N; the old list's does.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

import msgspec

from bench._common import emit, parse_args, ratio, short_tmp
from sniperbot.actors.runtime import ActorLaunch, ActorRuntime, close_process_journals, process_journal
from sniperbot.actors.sniper import Snipe, SniperState
from sniperbot.journal import keys
from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.messages.orders import make_intent_id
from sniperbot.rundir import RunDir
from sniperbot.venues.dex import sniper_id

VENUE = "anvil"
QUOTE = "WETH"
SID = sniper_id(VENUE)
LIFE = "t1"


def _token(i: int) -> str:
    return f"0x{i:040x}"


def build_journal(run_dir: Path, finished: int) -> None:
    """``finished`` closed snipes and one open one, journaled as the executor would."""
    RunDir(run_dir).create()
    journal = process_journal(run_dir, "fsync")
    batch: list[Any] = []
    seq = 0

    def trade(token: str, side: str, ts: int) -> None:
        nonlocal seq
        seq += 1
        cid = make_intent_id(SID, seq, LIFE)
        symbol = f"{token}/{QUOTE}"
        common = {"strategy_id": SID, "venue": VENUE, "symbol": symbol}
        batch.append(
            Order(client_order_id=cid, intent_id=cid, side=side, quantity=1000.0, ts_ns=ts, **common)
        )
        batch.append(
            Fill(
                fill_id=f"{VENUE}:{cid}",
                client_order_id=cid,
                side=side,
                quantity=1000.0,
                price=1e-4,
                fee=0.0,
                ts_ns=ts,
                **common,
            )
        )
        batch.append(OrderUpdate(client_order_id=cid, status="filled", ts_ns=ts, **common))

    now = time.time_ns()
    for i in range(finished):
        trade(_token(i), "buy", now)
        trade(_token(i), "sell", now)
        if len(batch) >= 6_000:
            journal.append_many(batch)
            batch.clear()
    trade(_token(finished), "buy", now)  # the open one
    journal.append_many(batch)


def old_state(finished: int) -> bytes:
    """The previous version's state: every snipe ever (positions were not in it)."""
    snipes = [Snipe(token=_token(i), status="closed") for i in range(finished)]
    snipes.append(
        Snipe(token=_token(finished), status="open", buy_intent=make_intent_id(SID, 2 * finished + 1, LIFE))
    )
    return msgspec.json.encode(snipes)


def start(run_dir: Path, incarnation: int) -> tuple[float, ActorRuntime]:
    """Open one incarnation of the sniper; seconds taken and the runtime (to close)."""
    launch = ActorLaunch(
        actor_id=f"strategy.{SID}",
        actor="sniperbot.actors.sniper:SniperActor",
        args={"venue": VENUE, "quote": QUOTE, "params": {"budget": 0.1}},
        run_dir=str(run_dir),
        incarnation=incarnation,
        heartbeat_interval_s=3600.0,
        journal_durability="fsync",
        auth_key=os.urandom(32),
        node_life=LIFE,
    )
    runtime = ActorRuntime(launch)
    t0 = time.perf_counter()
    runtime.open()
    return time.perf_counter() - t0, runtime


def samples(run_dir: Path, reps: int, first: int, before: Any = None) -> list[float]:
    """``reps`` starts (incarnations ``first``, ...), each after ``before()``; seconds each."""
    out: list[float] = []
    for k in range(reps):
        if before is not None:
            before()
        seconds, runtime = start(run_dir, first + k)
        out.append(seconds)
        runtime.close(clean=True)
    return out


def main() -> int:
    """Build, measure, print, emit."""

    def options(parser: Any) -> None:
        parser.add_argument("--finished", type=int, default=0, help="finished snipes journaled")
        parser.add_argument("--reps", type=int, default=0, help="starts per variant")

    args = parse_args(__doc__.splitlines()[0], options)
    finished = args.finished or (2_000 if args.quick else 20_000)
    reps = args.reps or (5 if args.quick else 9)
    with short_tmp("sb-snr-") as work:
        floor_dir, run_dir = work / "empty", work / "run"
        RunDir(floor_dir).create()
        floor = samples(floor_dir, reps, 1)
        t0 = time.perf_counter()
        build_journal(run_dir, finished)
        built_s = time.perf_counter() - t0
        journal = process_journal(run_dir, "fsync")
        records = journal.last_seq()
        state_key = keys.STRATEGY_STATE + SID
        legacy = old_state(finished)
        old = samples(run_dir, reps, 1, lambda: journal.put_state(state_key, legacy))
        state = msgspec.json.decode(journal.get_state(state_key) or b"", type=SniperState)
        assert [s.status for s in state.snipes] == ["open"] and state.snipes[0].position == 1000.0, state
        live = samples(run_dir, reps, reps + 1)
        live_bytes = len(journal.get_state(state_key) or b"")
        close_process_journals()

    def stats(values: list[float]) -> dict[str, float]:
        return {"p50_ms": round(statistics.median(values) * 1e3, 2), "max_ms": round(max(values) * 1e3, 2)}

    figures = {
        "finished_snipes": finished,
        "journal_records": records,
        "reps": reps,
        "build_s": round(built_s, 1),
        "floor_empty_journal": stats(floor),
        "old_list_first_start": stats(old),
        "live_state_restart": stats(live),
        "live_state_bytes": live_bytes,
        "old_list_bytes": len(legacy),
    }
    figures["ratio_live_to_old_p50"] = round(
        figures["live_state_restart"]["p50_ms"] / figures["old_list_first_start"]["p50_ms"], 4
    )
    figures["ratio_live_to_floor_p50"] = ratio(
        figures["live_state_restart"]["p50_ms"], figures["floor_empty_journal"]["p50_ms"]
    )
    print(
        f"sniper restart: {finished:,} finished snipes + 1 open, {records:,} journal records, {reps} starts"
    )
    rows = (
        ("floor (empty journal)", "floor_empty_journal", ""),
        ("old list (every fill read, + migration)", "old_list_first_start", f"state {len(legacy):,} B"),
        ("live state + journal tail", "live_state_restart", f"state {live_bytes:,} B"),
    )
    for label, key, extra in rows:
        row = figures[key]
        print(f"  {label:<40} p50 {row['p50_ms']:8.2f} ms  max {row['max_ms']:8.2f} ms  {extra}")
    print(f"ratio live / old p50: {figures['ratio_live_to_old_p50']}")
    print(f"ratio live / floor p50: {figures['ratio_live_to_floor_p50']}")
    emit("sniper_restart", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
