"""Soak (issue #14 point 5): the default node at 10x its tick rate, a chaos fault every 30 s, sampled often.

The node is ``sniperbot run --enable-chaos`` on the embedded default (``config/default.toml``) with one
change: the simulated venue's ``tick_interval_s`` divided by 10 (0.1 -> 0.01 s; strategies, risk and
journal durability ``fsync`` as default), in a temp run dir, for ``--minutes`` (default 60). The chaos
tool (:func:`sniperbot.chaos.tool.run_chaos`, as ``bench/fault_storm.py`` drives it) sends a ``KILL`` or a
``STOP`` to a seeded random actor every ``--fault-every-s`` (default 30); its slots are offset by half an
interval from the sampling grid, so that a sample never lands on a fault. At the end the chaos tool
checks the money invariants (no order executed twice, no lost fill, journal = venue ledger, positions =
journaled fills).

Every ``--sample-s`` (default 60) the bench samples:

* **PSS** (``/proc/<pid>/smaps_rollup``) and **open fds** (``/proc/<pid>/fd``) of every process of the
  node's tree: the node, each actor process (pids from the admin socket's ``tree``), the forkserver.
  Figures are kept **by role** (``node``, the actor id, ``forkserver``), not by pid: an actor restarted
  by chaos is a new pid of the same role. The total PSS is the sum over every process of the tree.
* **Journal size**: ``journal/data.mdb`` bytes (file size and blocks allocated) and the journal's record
  counts (orders, fills, updates: ``Journal.counts`` on a read-only open).
* **Tick-to-trade** over the minute: from the trade tick that closed a strategy's bar (its publish stamp,
  the envelope's ``ts_ns``, the same origin as ``sniperbot_tick_to_intent_seconds``) to the executor's
  ``accepted`` order update on the bus (its publish stamp): the whole path of ``bench/tick_to_trade.py``
  (feed -> strategy -> risk guard -> executor journaling the order -> paper venue -> ack), on the real
  default strategies instead of a bench strategy. The bench subscribes to the bus
  (``md.<venue>.trade.`` and each strategy's ``ev.<id>.order``) like any actor.
* **Restarts** so far (``admin status``) and the faults injected so far.

**Why the bus and not the Prometheus histograms.** The metrics split the path in segments
(``tick_to_intent``, ``intent_to_order``, ``order_ack``) that do not cover the hops strategy -> risk guard
-> executor, and a p99 of a sum is not a sum of p99s; their buckets (0.5, 1, 2.5, 5 ms) are coarser than
the 1.5x criterion. The journal has no tick time. The bus stamps are taken by the publishing actors
themselves, so the bench process's own lag does not enter the figure.

**Attribution.** A strategy's intents are decided when a bar closes, and a bar closes on the first trade of
a later interval (``sniperbot.market.bars``). For an ``accepted`` update (first one per client order id)
at stamp A, the closing tick is the latest trade of that symbol that opened a new bar interval of the
strategy's ``bar_interval_s`` and was published at or before A. If A is later than that interval's end
plus the clock's close delay (``LIVE_CLOSE_DELAY_S``), the bar may have been closed by the clock (no
trade in time, e.g. the feed was being restarted), or the order waited longer than a bar (a stalled
actor): such an ack is counted ``unattributed``, not timed. Attribution is exact for latencies below a
bar interval (1 s by default).

**Faults and the latency verdict.** An ack whose path (closing tick to ack) overlaps a fault's
window (from the signal to the actor running again, plus ``_SETTLE_S``), and each strategy's first ack
after that window (a new incarnation's one-off costs: connections opened lazily, reconciliation), measure
the fault, not the node's steady path; ``bench/fault_storm.py`` and ``bench/restart.py`` measure those.
The p99 criterion compares the *steady* acks (all others); the p99 of all attributed acks is printed
beside it, and the slowest acks with the last fault before each. A minute holds some 20-30 orders (the
default strategies trade on 1 s bars, whatever the tick rate), so a minute's p99 is its maximum; the
verdict compares 10-minute windows (some 200-300 orders: the p99 is about the third slowest).

**Criteria** (after a warm-up of one sample interval; windows of 10 minutes, or half of what remains in a
shorter run):

* total PSS growth: mean of the last window / mean of the first window - 1 < 5 %;
* fds flat: for each role, the highest count of the last window <= the highest of the first window +
  ``FD_SLACK`` (2), over *steady* samples: a sample is not steady for an actor that is not running or
  started less than ``_STEADY_S`` ago, nor for the node and the forkserver while any actor is (their
  fds follow the actors' connections). Why the highest and not max - min over the run (printed too):
  a fresh incarnation opens some connections lazily (an actor's outbox to another's inbox is made at
  its first send, e.g. a strategy's to the risk guard at its first intent), so a role's count dips
  after a restart and comes back; a leak only ever adds, and one fd per restart is dozens in an hour.
  The slack: an admin client's connection (the chaos tool polls every 50 ms) may be open in the node
  at a sample;
* tick-to-trade p99 of the last window <= 1.5 x the first window's (steady acks);
* money invariants OK and every fault recovered.

The floor of each ratio is the same run's first window. Beside them, the machine's own floor measured
all along (:class:`Floor`: a raw ZeroMQ round trip every 50 ms) and the 1-minute load average: on a
shared machine the load of other processes moves every latency, so each window's p99 is also given as a
multiple of its floor's p99, and the ratio of those two multiples (load-neutral) is printed beside the
verdict. A run that stops early (the node exits, Ctrl-C) still reports its samples, and fails.
``--quick``: 1 minute, a sample every 10 s: a smoke run, not a verdict (its windows hold a handful of
orders, and its 10 s warm-up does not cover the feed's first minutes, when its PSS still rises by a few
MB before it levels off).
Writes the whole report as JSON to ``--out`` (and, as every bench, prints it as the last line).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

from bench._common import REPO, NodeProcess, emit, parse_args, percentile, short_tmp
from bench.memory import cmdline, descendants, smaps_rollup

TICK_SCALE = 10  # the default tick rate times this
PSS_GROWTH_MAX = 0.05
# fds flat: a role's highest count may grow this much from the first window to the last: an admin
# client's connection (the chaos tool polls every 50 ms) can be open in the node at a sample.
FD_SLACK = 2
P99_RATIO_MAX = 1.5
WINDOW_S = 600.0  # the first and last windows compared
_STEADY_S = 5.0  # an actor started this recently (or a node/forkserver while one is) is transient for fds
_FLOOR_EVERY_S = 0.05  # one floor round trip every 50 ms: some 12,000 in 10 minutes
_SETTLE_S = 1.0  # after a faulted actor runs again, orders in flight are still being resent
_MB = 1024.0


def _options(parser: Any) -> None:
    parser.add_argument("--minutes", type=float, default=None, help="duration (default 60; --quick: 1)")
    parser.add_argument(
        "--fault-every-s", type=float, default=30.0, help="seconds between faults (default 30)"
    )
    parser.add_argument("--sample-s", type=float, default=None, help="seconds between samples (default 60)")
    parser.add_argument("--seed", type=int, default=14, help="seed of the chaos tool's choices")
    parser.add_argument(
        "--out", default=None, help="write the JSON report to this file (and the node's log to OUT.node.log)"
    )


def soak_config() -> tuple[str, dict[str, Any]]:
    """The embedded default's TOML with the venue ticking 10x faster, and its parsed form."""
    import tomllib

    text = (REPO / "config" / "default.toml").read_text()
    line = re.compile(r"^tick_interval_s = ([0-9.]+)$", re.MULTILINE)
    found = line.findall(text)
    if len(found) != 1:
        raise SystemExit(f"config/default.toml: expected one tick_interval_s line, found {len(found)}")
    fast = float(found[0]) / TICK_SCALE
    text = line.sub(f"tick_interval_s = {fast!r}", text)
    return text, tomllib.loads(text)


# -- tick-to-trade from the bus -----------------------------------------------------------------------


class Ack(NamedTuple):
    """One accepted order, by publish stamps (wall clock, ns)."""

    ack_ns: int  # the executor's ``accepted`` update
    tick_ns: int | None  # the feed's bar-closing trade; None when unattributed
    strategy_id: str

    @property
    def latency_ns(self) -> int | None:
        """Tick to ack, or None."""
        return None if self.tick_ns is None else self.ack_ns - self.tick_ns


class TickToTrade(threading.Thread):
    """Subscribes to the node's bus: bar-closing trades and ``accepted`` updates, timed (module docstring)."""

    def __init__(self, run_dir: Path, venue: str, strategies: dict[str, tuple[str, float]]) -> None:
        super().__init__(daemon=True, name="tick-to-trade")
        from sniperbot.market.bars import LIVE_CLOSE_DELAY_S
        from sniperbot.messages import topics
        from sniperbot.rundir import RunDir

        self.run_dir = run_dir
        self.venue = venue
        # strategy id -> (symbol, bar interval in ns)
        self.strategies = {sid: (sym, round(iv * 1e9)) for sid, (sym, iv) in strategies.items()}
        self.close_delay_ns = round(LIVE_CLOSE_DELAY_S * 1e9)
        # Every trade of the venue (md.<venue>.trade.<symbol>.) and each strategy's order updates.
        self.topics = (topics.market(venue) + "trade.", *(topics.order_update(sid) for sid in strategies))
        self.bus_out = RunDir(run_dir).bus_out
        # (symbol, interval ns) -> bar start of the last trade seen, and the bar-opening trades
        self._last_start: dict[tuple[str, int], int] = {}
        self._openers: dict[tuple[str, int], collections.deque[tuple[int, int]]] = {
            (sym, iv): collections.deque(maxlen=4096) for sym, iv in self.strategies.values()
        }
        self._seen: set[str] = set()
        self.acks: list[Ack] = []  # appended by this thread only; readers take a slice
        self.trades = 0
        self.errors = 0
        self._done = threading.Event()

    def run(self) -> None:
        import zmq

        from sniperbot.messages import OrderUpdate, TradeTick
        from sniperbot.messages.envelope import InvalidFrame, decode_envelope
        from sniperbot.transport.bus import Subscriber, split_message

        ctx = zmq.Context()
        sub = Subscriber(ctx, self.bus_out, self.topics)
        try:
            while not self._done.is_set():
                if not sub.socket.poll(200):
                    continue
                _, frame = split_message(sub.socket.recv())
                try:
                    env = decode_envelope(frame)
                except InvalidFrame:
                    self.errors += 1
                    continue
                payload = env.payload
                if isinstance(payload, TradeTick):
                    self.trades += 1
                    self._on_trade(payload, env.ts_ns)
                elif isinstance(payload, OrderUpdate) and payload.status == "accepted":
                    self._on_accepted(payload, env.ts_ns)
        finally:
            sub.close()
            ctx.term()

    def _on_trade(self, tick: Any, published_ns: int) -> None:
        for key, openers in self._openers.items():
            symbol, interval_ns = key
            if tick.symbol != symbol or tick.venue != self.venue:
                continue
            start = tick.ts_ns - tick.ts_ns % interval_ns
            if start > self._last_start.get(key, -1):
                self._last_start[key] = start
                openers.append((start, published_ns))

    def _on_accepted(self, update: Any, published_ns: int) -> None:
        if update.client_order_id in self._seen or update.strategy_id not in self.strategies:
            return  # a resent or reconciled order's second "accepted": timed once
        self._seen.add(update.client_order_id)
        symbol, interval_ns = self.strategies[update.strategy_id]
        tick_ns: int | None = None
        for start, tick_published in reversed(self._openers[(symbol, interval_ns)]):
            if tick_published <= published_ns:
                if published_ns < start + interval_ns + self.close_delay_ns:
                    tick_ns = tick_published
                break
        self.acks.append(Ack(published_ns, tick_ns, update.strategy_id))

    def stop(self) -> None:
        """End the subscription."""
        self._done.set()
        self.join(timeout=5)


class Floor(threading.Thread):
    """The machine's own latency floor, measured all along: a raw ZeroMQ round trip to an echo process.

    Every ``_FLOOR_EVERY_S`` one 8-byte REQ/REP round trip over ipc (two process wake-ups, no
    sniperbot code): its p99 moves with the load the other processes put on the machine, so the
    tick-to-trade p99 of a window is also given as a ratio to the floor's p99 of the same window.
    """

    def __init__(self, work: Path) -> None:
        super().__init__(daemon=True, name="floor")
        self.endpoint = f"ipc://{work}/floor.sock"
        echo = (  # ends with its parent, whatever happens to the bench
            "import os, sys, zmq\n"
            "s = zmq.Context().socket(zmq.REP)\n"
            "s.bind(sys.argv[1])\n"
            "parent = os.getppid()\n"
            "while os.getppid() == parent:\n"
            "    if s.poll(1000):\n"
            "        s.send(s.recv())\n"
        )
        self.process = subprocess.Popen([sys.executable, "-c", echo, self.endpoint], cwd=work)
        self.rtts: list[tuple[int, int]] = []  # (wall-clock stamp ns, round trip ns); appended here only
        self._done = threading.Event()

    def run(self) -> None:
        import zmq

        ctx = zmq.Context()
        sock = None
        try:
            while not self._done.wait(_FLOOR_EVERY_S):
                if sock is None:
                    sock = ctx.socket(zmq.REQ)
                    sock.setsockopt(zmq.LINGER, 0)
                    sock.setsockopt(zmq.RCVTIMEO, 2000)
                    sock.connect(self.endpoint)
                started = time.perf_counter_ns()
                try:
                    sock.send(b"12345678")
                    sock.recv()
                except zmq.Again:  # the echo not there yet: a REQ socket must be remade after a miss
                    sock.close(0)
                    sock = None
                    continue
                self.rtts.append((time.time_ns(), time.perf_counter_ns() - started))
        finally:
            if sock is not None:
                sock.close(0)
            ctx.term()

    def stop(self) -> None:
        """End the measurement and the echo process."""
        self._done.set()
        self.join(timeout=5)
        self.process.kill()
        self.process.wait()


# -- process figures ----------------------------------------------------------------------------------


def fd_count(pid: int) -> int:
    """Open file descriptors of ``pid``."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def role_of(pid: int, node_pid: int, actors: dict[int, str]) -> str:
    """What a process of the node's tree is: ``node``, an actor id, ``forkserver``, or its command line."""
    if pid == node_pid:
        return "node"
    if pid in actors:
        return actors[pid]
    cmd = cmdline(pid)
    for name in ("forkserver", "resource_tracker"):
        if name in cmd:
            return name
    return "other: " + cmd[:40]


def journal_figures(run_dir: Path) -> dict[str, Any]:
    """``data.mdb`` bytes (size and allocated) and the journal's record counts (read-only open)."""
    from sniperbot.journal import Journal

    data = run_dir / "journal" / "data.mdb"
    st = data.stat()
    journal = Journal.open(run_dir, readonly=True)
    try:
        counts = journal.counts()
    finally:
        journal.close()
    return {"bytes": st.st_size, "allocated_bytes": st.st_blocks * 512, **counts}


def sample_processes(node: NodeProcess) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per role: PSS kB, fds, pids, steady or not; and the workers as ``admin tree`` shows them.

    The processes are read before the admin request, so that its connection is closed in the node
    by the next sample (the chaos tool's own polls are what ``FD_SLACK`` allows for).
    """
    figures: dict[int, tuple[int, int]] = {}
    for pid in descendants(node.pid):
        try:
            figures[pid] = (smaps_rollup(pid)["Pss"], fd_count(pid))
        except (OSError, ValueError):
            continue  # exited meanwhile (a faulted actor)
    workers = node.workers()
    actors = {
        int(w["pid"]): aid for aid, w in workers.items() if w.get("pid") and w["placement"] == "process"
    }
    settling = any(
        w["state"] != "running" or float(w.get("uptime_s") or 0) < _STEADY_S for w in workers.values()
    )
    roles: dict[str, dict[str, Any]] = {}
    for pid, (pss, fds) in figures.items():
        try:
            role = role_of(pid, node.pid, actors)
        except OSError:
            continue  # exited since
        r = roles.setdefault(role, {"pss_kb": 0, "fds": 0, "pids": []})
        r["pss_kb"] += pss
        r["fds"] += fds
        r["pids"].append(pid)
    for role, r in roles.items():
        w = workers.get(role)
        if w is not None:
            r["steady"] = w["state"] == "running" and float(w.get("uptime_s") or 0) >= _STEADY_S
        elif role.startswith("other: "):
            r["steady"] = False  # a process the tree does not know yet (an actor being started)
        else:
            r["steady"] = not settling
    return roles, workers


# -- statistics ---------------------------------------------------------------------------------------


def p_ms(latencies_ns: list[int], q: float) -> float | None:
    """The ``q``-th percentile in ms (3 decimals), None when empty."""
    if not latencies_ns:
        return None
    return round(percentile(sorted(latencies_ns), q) / 1e6, 3)


def fault_windows(report: Any, chaos_t0_ns: int, recovery_timeout_s: float) -> list[tuple[int, int]]:
    """Wall-clock spans (ns) during which a fault disturbed the node: signal to recovery + settle."""
    out = []
    for f in report.fault_log:
        start = chaos_t0_ns + round((f.at_s - 0.05) * 1e9)
        recovered_s = (f.recovery_ms / 1000.0) if f.recovery_ms is not None else recovery_timeout_s
        out.append((start, start + round((recovered_s + _SETTLE_S + 0.05) * 1e9)))
    return out


def disturbed_acks(acks: list[Ack], windows: list[tuple[int, int]]) -> set[Ack]:
    """The timed acks a fault disturbed: their path (tick to ack) overlaps a fault window, or they are
    a strategy's first order after that window (it pays a new incarnation's one-off costs: connections
    opened lazily, the venue's or executor's reconciliation)."""
    timed = sorted((a for a in acks if a.tick_ns is not None), key=lambda a: a.ack_ns)
    out: set[Ack] = set()
    for start, end in windows:
        firsts: set[str] = set()
        for a in timed:
            assert a.tick_ns is not None
            if a.tick_ns <= end and a.ack_ns >= start:
                out.add(a)
            elif a.tick_ns > end and a.strategy_id not in firsts:
                firsts.add(a.strategy_id)
                out.add(a)
    return out


def window_stats(
    samples: list[dict[str, Any]],
    acks: list[Ack],
    lo: float,
    hi: float,
    t0_ns: int,
    disturbed: set[Ack],
    floor: list[tuple[int, int]],
) -> dict[str, Any]:
    """PSS mean, tick-to-trade p99 (steady and all) and the floor's p99 in ``(lo, hi]`` s."""
    inside = [s for s in samples if lo < s["at_s"] <= hi]
    rtts = [rtt for at, rtt in floor if lo < (at - t0_ns) / 1e9 <= hi]
    steady = [a.latency_ns for a in acks_in(acks, lo, hi, t0_ns) if a not in disturbed]
    p99 = p_ms(steady, 99)
    floor_p99 = p_ms(rtts, 99)
    timed = acks_in(acks, lo, hi, t0_ns)
    pss = [s["total_pss_mb"] for s in inside]
    by_role: dict[str, list[float]] = {}
    for s in inside:
        for role, r in s["roles"].items():
            if not role.startswith("other: "):
                by_role.setdefault(role, []).append(r["pss_mb"])
    return {
        "from_s": round(lo, 1),
        "to_s": round(hi, 1),
        "samples": len(inside),
        "pss_mb_mean": round(sum(pss) / len(pss), 2) if pss else None,
        "pss_mb_mean_by_role": {role: round(sum(v) / len(v), 2) for role, v in sorted(by_role.items())},
        "acks_steady": len(steady),
        "p50_ms": p_ms(steady, 50),
        "p99_ms": p99,
        "acks_all": len(timed),
        "p99_all_ms": p_ms([a.latency_ns for a in timed if a.latency_ns is not None], 99),
        "floor_p99_ms": floor_p99,
        "floor_n": len(rtts),
        "p99_vs_floor": round(p99 / floor_p99, 1) if p99 and floor_p99 else None,
    }


def acks_in(acks: list[Ack], lo: float, hi: float, t0_ns: int) -> list[Ack]:
    """The timed acks whose ack came in ``(lo, hi]`` s after ``t0_ns``."""
    return [a for a in acks if a.tick_ns is not None and lo < (a.ack_ns - t0_ns) / 1e9 <= hi]


def fd_ranges(
    samples: list[dict[str, Any]], warmup_s: float, first: tuple[float, float], last: tuple[float, float]
) -> dict[str, dict[str, Any]]:
    """Per role, over steady samples after the warm-up: min, max, range, and the highest count of the
    first and of the last window (``growth``: last - first)."""
    seen: dict[str, list[tuple[float, int]]] = {}
    for s in samples:
        if s["at_s"] <= warmup_s:
            continue
        for role, r in s["roles"].items():
            if r["steady"] and not role.startswith("other: "):
                seen.setdefault(role, []).append((s["at_s"], r["fds"]))
    out: dict[str, dict[str, Any]] = {}
    for role, v in sorted(seen.items()):
        counts = [n for _, n in v]
        in_first = [n for at, n in v if first[0] < at <= first[1]]
        in_last = [n for at, n in v if last[0] < at <= last[1]]
        first_max = max(in_first) if in_first else None
        last_max = max(in_last) if in_last else None
        out[role] = {
            "min": min(counts),
            "max": max(counts),
            "range": max(counts) - min(counts),
            "first_max": first_max,
            "last_max": last_max,
            "growth": None if first_max is None or last_max is None else last_max - first_max,
            "samples": len(v),
        }
    return out


def slowest(
    acks: list[Ack],
    t0_ns: int,
    faults: list[dict[str, Any]],
    chaos_t0_ns: int | None,
    disturbed: set[Ack],
    count: int = 10,
) -> list[dict[str, Any]]:
    """The ``count`` slowest timed acks, each with the last fault injected before its tick."""
    timed = sorted((a for a in acks if a.tick_ns is not None), key=lambda a: a.latency_ns or 0, reverse=True)
    out = []
    for a in timed[:count]:
        assert a.tick_ns is not None and a.latency_ns is not None
        before = None
        if chaos_t0_ns is not None:
            prior = [f for f in faults if chaos_t0_ns + f["at_s"] * 1e9 <= a.tick_ns]
            if prior:
                f = prior[-1]
                before = (
                    f"{f['signal']} {f['actor']} {(a.tick_ns - chaos_t0_ns) / 1e9 - f['at_s']:.1f} s before"
                )
        out.append(
            {
                "t_s": round((a.ack_ns - t0_ns) / 1e9, 1),
                "utc": _utc(a.tick_ns),  # of the tick, to find the moment in the node's log
                "strategy": a.strategy_id,
                "ms": round(a.latency_ns / 1e6, 2),
                "steady": a not in disturbed,
                "last_fault": before,
            }
        )
    return out


# -- the run ------------------------------------------------------------------------------------------


def main() -> int:
    """Run the soak; print the per-minute table and the verdicts; write and emit the JSON report."""
    args = parse_args(__doc__.splitlines()[0], _options)
    minutes = args.minutes if args.minutes is not None else (1.0 if args.quick else 60.0)
    sample_s = args.sample_s if args.sample_s is not None else (10.0 if args.quick else 60.0)
    run_s = minutes * 60.0
    if not (run_s >= 2 * sample_s and sample_s > 0 and args.fault_every_s > 0):
        raise SystemExit("--minutes must cover at least two samples; --sample-s and --fault-every-s > 0")
    warmup_s = sample_s
    window_s = min(WINDOW_S, (run_s - warmup_s) / 2)
    if args.out:  # made now: an hour's run must not fail at its end on a missing directory
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    config_text, config = soak_config()
    venue = config["venues"][0]
    strategies = {s["id"]: (s["symbol"], float(s["bar_interval_s"])) for s in config["strategies"]}
    print(
        f"soak: default node, tick_interval_s {venue['tick_interval_s']:g} ({TICK_SCALE}x), {minutes:g} min, "
        f"a fault every {args.fault_every_s:g} s (seed {args.seed}), a sample every {sample_s:g} s",
        flush=True,
    )
    with short_tmp("sb-soak-") as work:
        node = NodeProcess(
            work, config_text, duration_s=run_s + 900, name="node", extra_args=["--enable-chaos"]
        )
        try:
            report = _soak(node, venue["name"], strategies, run_s, sample_s, args)
        finally:
            code = node.stop()
            if args.out:  # the node's own log (warnings and errors), to explain a slow minute afterwards
                shutil.copyfile(node.log_path, args.out + ".node.log")
    report["node_exit"] = code
    return _conclude(report, minutes, sample_s, warmup_s, window_s, args)


def _soak(
    node: NodeProcess,
    venue: str,
    strategies: dict[str, tuple[str, float]],
    run_s: float,
    sample_s: float,
    args: Any,
) -> dict[str, Any]:
    """Start everything, sample until ``run_s``, collect the chaos report; the raw figures."""
    from sniperbot.chaos.invariants import report_dict
    from sniperbot.chaos.tool import ChaosOptions, ChaosReport, run_chaos

    started = time.monotonic()
    node.wait_ready(timeout_s=120)
    ready_s = time.monotonic() - started
    observer = TickToTrade(node.run_dir, venue, strategies)
    observer.start()
    floor = Floor(node.run_dir.parent)
    floor.start()
    t0 = time.monotonic()
    t0_ns = time.time_ns()
    offset_s = min(args.fault_every_s / 2, sample_s / 2)  # fault slots halfway between samples
    recovery_timeout_s = 30.0
    chaos: dict[str, Any] = {"t0_ns": None, "report": None, "error": None, "faults": 0}

    def say(line: str) -> None:
        if re.match(r"^\s*[0-9.]+s\s+(KILL|STOP)\s", line):
            chaos["faults"] += 1

    def storm() -> None:
        if not _sleep_until(t0 + offset_s, node):
            return
        chaos["t0_ns"] = time.time_ns()
        try:
            chaos["report"] = run_chaos(
                ChaosOptions(
                    run_dir=str(node.run_dir),
                    duration_s=run_s - offset_s,
                    interval_s=args.fault_every_s,
                    seed=args.seed,
                    signals=("KILL", "STOP"),
                    recovery_timeout_s=recovery_timeout_s,
                    trade_timeout_s=30.0,
                ),
                say,
            )
        except Exception as e:  # reported, not raised: the samples are still worth printing
            chaos["error"] = f"{type(e).__name__}: {e}"

    chaos_thread = threading.Thread(target=storm, daemon=True, name="chaos")
    chaos_thread.start()
    samples: list[dict[str, Any]] = []
    print(
        f"  {'t s':>6} {'PSS MB':>8} {'fds':>5} {'journal MB':>10} {'orders':>7} {'fills':>6} "
        f"{'acks':>5} {'p50 ms':>7} {'p99 ms':>7} {'unattr':>6} {'restarts':>8} {'faults':>6}",
        flush=True,
    )
    k = 0
    taken = 0
    stopped: str | None = None  # why sampling ended early (the report says so and fails)
    sample_errors: list[str] = []
    try:
        while True:
            k += 1
            at = t0 + k * sample_s
            if at > t0 + run_s + 1e-6:
                break
            if not _sleep_until(at, node):
                stopped = f"the node exited (code {node.process.poll()}); log tail:\n{node.log_tail()}"
                break
            try:
                s = {"at_s": k * sample_s, **_sample(node, observer, t0, taken)}
            except Exception as e:  # a slow admin answer on a loaded machine: one sample lost, not the run
                sample_errors.append(f"sample at {k * sample_s:g} s: {type(e).__name__}: {e}")
                print(f"  {k * sample_s:6.0f} sample failed: {type(e).__name__}: {e}", flush=True)
                continue
            taken = s.pop("_acks_taken")
            s["faults"] = chaos["faults"]
            samples.append(s)
            lat = s["latency"]
            print(
                f"  {s['t_s']:6.0f} {s['total_pss_mb']:8.1f} {s['total_fds']:5d} "
                f"{s['journal']['bytes'] / _MB / _MB:10.2f} {s['journal']['orders']:7d} "
                f"{s['journal']['fills']:6d} {lat['acks']:5d} {_fmt(lat['p50_ms'])} {_fmt(lat['p99_ms'])} "
                f"{lat['unattributed']:6d} {s['restarts']:8d} {s['faults']:6d}",
                flush=True,
            )
    except KeyboardInterrupt:
        stopped = "interrupted (Ctrl-C): the samples so far, without the chaos tool's final checks"
    finally:
        chaos_thread.join(timeout=0 if stopped else recovery_timeout_s + 120)
        observer.stop()
        floor.stop()
    if stopped:
        print(f"  sampling stopped: {stopped}", flush=True)
    report: ChaosReport | None = chaos["report"]
    windows = fault_windows(report, chaos["t0_ns"], recovery_timeout_s) if report and chaos["t0_ns"] else []
    return {
        "ready_s": round(ready_s, 2),
        "t0_ns": t0_ns,
        "samples": samples,
        "acks": list(observer.acks),
        "floor": list(floor.rtts),
        "trades_seen": observer.trades,
        "fault_windows": windows,
        "chaos_t0_ns": chaos["t0_ns"],
        "chaos_error": chaos["error"],
        "stopped": stopped,
        "sample_errors": sample_errors,
        "chaos": None
        if report is None
        else {
            "faults": report.faults,
            "recovered": report.recovered,
            "skipped": report.skipped,
            "duplicate_orders": report.duplicate_orders,
            "lost_fills": report.lost_fills,
            "recovery_ms_p50": report.recovery_ms_p50,
            "recovery_ms_p99": report.recovery_ms_p99,
            "recovery_ms_max": report.recovery_ms_max,
            "breaker_trips": report.breaker_trips,
            "still_trading": report.still_trading,
            "invariants_ok": report.invariants is not None and bool(report.invariants.get("ok")),
            "problems": report.problems,
            "fault_log": [report_dict(f) for f in report.fault_log],  # type: ignore[arg-type]
        },
    }


def _sleep_until(at: float, node: NodeProcess) -> bool:
    """Sleep until monotonic ``at``; False as soon as the node has exited."""
    while (left := at - time.monotonic()) > 0:
        if node.process.poll() is not None:
            return False
        time.sleep(min(left, 1.0))
    return node.process.poll() is None


def _sample(node: NodeProcess, observer: TickToTrade, t0: float, taken: int) -> dict[str, Any]:
    """One sample: processes by role, journal, restarts, tick-to-trade of the acks since the last one."""
    t_s = time.monotonic() - t0
    roles, workers = sample_processes(node)
    status = node.admin("status")
    journal = journal_figures(node.run_dir)
    acks = observer.acks[taken:]
    timed = [a.latency_ns for a in acks if a.latency_ns is not None]
    return {
        "t_s": round(t_s, 1),
        "total_pss_mb": round(sum(r["pss_kb"] for r in roles.values()) / _MB, 2),
        "total_fds": sum(r["fds"] for r in roles.values()),
        "roles": {
            role: {
                "pss_mb": round(r["pss_kb"] / _MB, 2),
                "fds": r["fds"],
                "pids": r["pids"],
                "steady": r["steady"],
            }
            for role, r in sorted(roles.items())
        },
        "incarnations": {aid: w.get("incarnation") for aid, w in sorted(workers.items())},
        "journal": journal,
        "restarts": int(status.get("restarts") or 0),
        "fills": int(status.get("fills") or 0),
        "load1": round(os.getloadavg()[0], 2),
        "latency": {
            "acks": len(acks),
            "timed": len(timed),
            "unattributed": len(acks) - len(timed),
            "p50_ms": p_ms(timed, 50),
            "p99_ms": p_ms(timed, 99),
            "max_ms": p_ms(timed, 100),
        },
        "_acks_taken": taken + len(acks),
    }


def _utc(ns: int) -> str:
    """A wall-clock stamp as the node's log writes it (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + f".{ns // 1_000_000 % 1000:03d}Z"


def _fmt(value: float | None) -> str:
    return f"{'-':>7}" if value is None else f"{value:7.2f}"


def _conclude(
    raw: dict[str, Any], minutes: float, sample_s: float, warmup_s: float, window_s: float, args: Any
) -> int:
    """Windows, verdicts, the steady per-minute p99; print; write ``--out``; emit; exit code."""
    samples: list[dict[str, Any]] = raw["samples"]
    acks: list[Ack] = raw["acks"]
    disturbed = disturbed_acks(acks, raw["fault_windows"])
    t0_ns: int = raw["t0_ns"]
    run_s = samples[-1]["at_s"] if samples else 0.0
    # A run that stopped early: windows of what it sampled (empty ones fail their criteria).
    window_s = max(0.0, min(window_s, (run_s - warmup_s) / 2))
    first = window_stats(samples, acks, warmup_s, warmup_s + window_s, t0_ns, disturbed, raw["floor"])
    last = window_stats(samples, acks, run_s - window_s, run_s, t0_ns, disturbed, raw["floor"])
    # Per sample: the p99 of its steady acks (fault windows known only now).
    lo = 0.0
    for s in samples:
        st = window_stats([], acks, lo, s["at_s"], t0_ns, disturbed, raw["floor"])
        s["latency"]["steady"] = st["acks_steady"]
        s["latency"]["p99_steady_ms"] = st["p99_ms"]
        s["latency"]["floor_p99_ms"] = st["floor_p99_ms"]
        lo = s["at_s"]
    fds = fd_ranges(samples, warmup_s, (first["from_s"], first["to_s"]), (last["from_s"], last["to_s"]))
    growth = (
        round(last["pss_mb_mean"] / first["pss_mb_mean"] - 1.0, 4)
        if first["pss_mb_mean"] and last["pss_mb_mean"]
        else None
    )
    p99_vs_floor_ratio = (
        round(last["p99_vs_floor"] / first["p99_vs_floor"], 2)
        if first["p99_vs_floor"] and last["p99_vs_floor"]
        else None
    )
    p99_ratio = round(last["p99_ms"] / first["p99_ms"], 2) if first["p99_ms"] and last["p99_ms"] else None
    chaos = raw["chaos"] or {}
    slow = slowest(acks, t0_ns, chaos.get("fault_log") or [], raw["chaos_t0_ns"], disturbed)
    criteria = {
        "pss_growth": {
            "value": growth,
            "limit": PSS_GROWTH_MAX,
            "ok": growth is not None and growth < PSS_GROWTH_MAX,
        },
        "fds_flat": {
            "value": max((r["growth"] for r in fds.values() if r["growth"] is not None), default=None),
            "limit": FD_SLACK,
            "ok": bool(fds)
            and all(r["growth"] is not None and r["growth"] <= FD_SLACK for r in fds.values()),
        },
        "p99_ratio": {
            "value": p99_ratio,
            "limit": P99_RATIO_MAX,
            "ok": p99_ratio is not None and p99_ratio <= P99_RATIO_MAX,
        },
        "money_invariants": {
            "value": {k: chaos.get(k) for k in ("duplicate_orders", "lost_fills", "invariants_ok")},
            "ok": bool(chaos.get("invariants_ok"))
            and not chaos.get("duplicate_orders")
            and not chaos.get("lost_fills"),
        },
        "ran_to_the_end": {
            "value": raw["stopped"] or f"{len(samples)} samples, {len(raw['sample_errors'])} failed",
            "ok": raw["stopped"] is None and bool(samples),
        },
        "faults_recovered": {
            "value": f"{chaos.get('recovered')}/{chaos.get('faults')}",
            "ok": bool(chaos)
            and chaos.get("faults", 0) > 0
            and chaos.get("recovered") == chaos.get("faults"),
        },
    }
    ok = all(c["ok"] for c in criteria.values())

    print(
        f"per sample (every {sample_s:g} s; p99 st: of the acks no fault disturbed; floor: raw round trip "
        "p99; load: 1-minute load average):"
    )
    print(
        f"  {'t s':>6} {'PSS MB':>8} {'fds':>5} {'journal MB':>10} {'fills':>6} {'acks':>5} "
        f"{'p99 ms':>7} {'steady':>6} {'p99 st':>7} {'floor':>7} {'load':>5} {'restarts':>8} {'faults':>6}"
    )
    for s in samples:
        lat = s["latency"]
        print(
            f"  {s['t_s']:6.0f} {s['total_pss_mb']:8.1f} {s['total_fds']:5d} "
            f"{s['journal']['bytes'] / _MB / _MB:10.2f} {s['journal']['fills']:6d} {lat['acks']:5d} "
            f"{_fmt(lat['p99_ms'])} {lat['steady']:6d} {_fmt(lat['p99_steady_ms'])} "
            f"{_fmt(lat['floor_p99_ms'])} {s['load1']:5.1f} {s['restarts']:8d} {s['faults']:6d}"
        )
    if samples:
        print("PSS by role, mean of the first and of the last window (MB):")
        a, b = first["pss_mb_mean_by_role"], last["pss_mb_mean_by_role"]
        for role in sorted(set(a) | set(b)):
            pa, pb = a.get(role), b.get(role)
            print(f"  {role[:40]:<40} {pa if pa is not None else '-':>8} {pb if pb is not None else '-':>8}")
        j0, j1 = samples[0]["journal"], samples[-1]["journal"]
        per_k = (
            round((j1["bytes"] - j0["bytes"]) / (j1["fills"] - j0["fills"]) * 1000 / _MB / _MB, 3)
            if j1["fills"] > j0["fills"]
            else None
        )
        print(
            f"journal: {j0['bytes'] / _MB / _MB:.2f} -> {j1['bytes'] / _MB / _MB:.2f} MB, "
            f"orders {j0['orders']} -> {j1['orders']}, fills {j0['fills']} -> {j1['fills']}, "
            f"updates {j0['updates']} -> {j1['updates']} ({per_k} MB per 1,000 fills)"
        )
    print("fds by role over steady samples (min..max; highest in the first and in the last window):")
    for role, r in fds.items():
        print(
            f"  {role[:40]:<40} {r['min']:>4}..{r['max']:<4} range {r['range']}  first {r['first_max']} "
            f"last {r['last_max']} ({r['samples']} samples)"
        )
    print("slowest acks:")
    for a in slow:
        print(
            f"  t {a['t_s']:7.1f} s ({a['utc']})  {a['strategy']:<18} {a['ms']:9.2f} ms  "
            f"{'steady' if a['steady'] else 'fault '}  last fault: {a['last_fault']}"
        )
    print(f"chaos: {json.dumps({k: v for k, v in chaos.items() if k != 'fault_log'})}")
    if raw["chaos_error"]:
        print(f"chaos error: {raw['chaos_error']}")
    print(
        f"windows (warm-up {warmup_s:g} s): first {first['from_s']:g}-{first['to_s']:g} s, "
        f"last {last['from_s']:g}-{last['to_s']:g} s"
    )
    for name, w in (("first", first), ("last", last)):
        print(
            f"  {name:<5} PSS {w['pss_mb_mean']} MB mean of {w['samples']} samples; tick-to-trade steady "
            f"p50 {w['p50_ms']} ms p99 {w['p99_ms']} ms (n={w['acks_steady']}), "
            f"all acks p99 {w['p99_all_ms']} ms (n={w['acks_all']}); floor p99 {w['floor_p99_ms']} ms "
            f"(n={w['floor_n']}): steady p99 = {w['p99_vs_floor']} x floor"
        )
    print(f"  p99 ratio last / first, each over its window's floor (load-neutral): {p99_vs_floor_ratio}")
    for name, c in criteria.items():
        limit = f" (limit {c['limit']})" if "limit" in c else ""
        print(f"  {name:<18} {'PASS' if c['ok'] else 'FAIL'}  {c['value']}{limit}")
    print(f"soak: {'PASS' if ok else 'FAIL'}")
    figures = {
        "minutes": minutes,
        "tick_scale": TICK_SCALE,
        "fault_every_s": args.fault_every_s,
        "sample_s": sample_s,
        "seed": args.seed,
        "warmup_s": warmup_s,
        "window_s": window_s,
        "ready_s": raw["ready_s"],
        "trades_seen": raw["trades_seen"],
        "acks": len(acks),
        "acks_unattributed": sum(1 for a in acks if a.tick_ns is None),
        "first": first,
        "last": last,
        "pss_growth": growth,
        "p99_ratio": p99_ratio,
        "p99_vs_floor_ratio": p99_vs_floor_ratio,
        "fds": fds,
        "slowest_acks": slow,
        "criteria": criteria,
        "pass": ok,
        "chaos": chaos,
        "chaos_error": raw["chaos_error"],
        "stopped": raw["stopped"],
        "sample_errors": raw["sample_errors"],
        "node_exit": raw.get("node_exit"),
        "samples": samples,
    }
    if args.out:
        Path(args.out).write_text(json.dumps({"bench": "soak", **figures}, indent=1, default=str) + "\n")
        print(f"report written to {args.out}")
    emit("soak", {k: v for k, v in figures.items() if k != "samples"})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
