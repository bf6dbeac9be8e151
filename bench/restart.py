"""Restart latency: ``kill -9`` of an actor process until its next incarnation serves again.

A real node (sniperbot's Node and default topology on the fast test config,
trading) runs in a subprocess. After each SIGKILL this process watches two
signals at once: the next incarnation's Ready on the node's bus (a SUB on
``bus-out.sock``, topic ``ctl.ready.``; actors publish it once their sockets
are up and ``on_start`` has run) and the supervisor's view over the admin
socket (``which_children`` every 2 ms: running again once the Ready arrived on
the reliable control socket). The bus Ready is at-most-once and is in fact
lost when an actor starts fast (it is published right after the PUB connects),
so a restart's time is the first of the two; both are also reported alone.
Kills rotate over strategy, risk guard, executor, portfolio and feed (in its
rest_for_one venue group, a feed restart also restarts the executor).

The tree is :func:`sniperbot.topology.build_tree` with every supervisor's
restart intensity raised, so that 50+ kills within a minute measure restarts
rather than escalations and breaker trips (the config only sets the root's
intensity; the nested ones are fixed in topology.py).

Floor: kill -9 of a process of a forkserver preloaded with the same modules,
seen through its sentinel, and a fresh process started from that forkserver
announcing itself over ipc (the restart mechanism without the actor). The node hands a restart to
its spare process when one is ready (:mod:`sniperbot.actors.placement`), which skips the fork this
floor pays: kills closer together than ``SPARE_REFILL_S`` fork as the floor does.

Targets: p50 < 25 ms, p99 < 100 ms.

Large-journal mode (``--journal-fills N --journal-orders M``, issue 14): before the node starts,
its run dir gets a journal of M past orders (each with its final OrderUpdate) and N fills of 20
past strategies on 50 instruments over 30 days, built with ``append_many`` in batches (the build
rate per 100k records is printed). Then, on that journal: each restoring actor kind's restore
done the old way (every record from the first) and the new way (:meth:`Journal.snapshot`, the
journal's aggregates), timed in this process; the node's start (its first start pays the journal
verification at start), kill -9 -> serving again per actor kind, and a whole-node restart (SIGTERM,
start again, every actor running). Targets there: the same p50/p99, and the node ready < 2 s.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

import msgspec
import zmq

from bench._common import (
    NodeProcess,
    emit,
    fast_sim_config,
    fmt_latency,
    latency_ms,
    parse_args,
    ratio,
    short_tmp,
    subprocess_env,
    verdict,
    wait_for,
)
from sniperbot.admin.protocol import AdminRequest, encoder, reply_decoder
from sniperbot.config import Config
from sniperbot.messages import Ready, decode_envelope
from sniperbot.rundir import RunDir
from sniperbot.supervision import ChildSpec
from sniperbot.transport.bus import LOCAL_MARK, split_message

TARGET_P50_MS = 25.0
TARGET_P99_MS = 100.0
TARGET_NODE_READY_S = 2.0
_HISTORY_STRATEGIES = 20
_HISTORY_SYMBOLS = 50
_BUILD_BATCH = 20_000

# tests/conftest.py's fast config: a market and strategies that trade within seconds.
FAST_CONFIG = fast_sim_config("\n[supervisor]\nintensity = 100000\n", log_level='"WARNING"')

VICTIMS = ("strategy.fast_btc", "risk_guard", "executor.sim", "portfolio", "feed.sim")
_ADMIN_POLL_MS = 2


def tree(config: Config, *, intensity: int = 100_000) -> ChildSpec:
    """The default tree with every supervisor's intensity raised (period and strategy unchanged)."""
    from sniperbot.topology import build_tree

    def raise_intensity(spec: ChildSpec) -> ChildSpec:
        if spec.type != "supervisor":
            return spec
        return msgspec.structs.replace(
            spec,
            flags=msgspec.structs.replace(spec.flags, intensity=intensity),
            children=[raise_intensity(c) for c in spec.children],
        )

    return raise_intensity(build_tree(config))


class ReadyWatch:
    """A SUB on the node's bus for every actor's Ready."""

    def __init__(self, zctx: zmq.Context, rundir: RunDir) -> None:
        self.socket = zctx.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"ctl.ready.")
        self.socket.setsockopt(zmq.SUBSCRIBE, LOCAL_MARK + b"ctl.ready.")  # the actor's own (bus docstring)
        self.socket.connect(rundir.bus_out)

    def drain(self) -> None:
        """Drop Readies received so far (e.g. of siblings restarted by rest_for_one)."""
        while self.socket.poll(0):
            self.socket.recv_multipart()

    def poll_ready(self, actor_id: str, after_incarnation: int, timeout_ms: int) -> tuple[int, Ready] | None:
        """A Ready of a newer incarnation of ``actor_id`` within ``timeout_ms``: (perf_counter_ns, Ready)."""
        deadline = time.perf_counter_ns() + timeout_ms * 1_000_000
        while (left := deadline - time.perf_counter_ns()) > 0:
            if not self.socket.poll(max(1, left // 1_000_000)):
                return None
            _, frame = split_message(self.socket.recv())
            received = time.perf_counter_ns()
            ready = decode_envelope(frame).payload
            if (
                isinstance(ready, Ready)
                and ready.actor_id == actor_id
                and ready.incarnation > after_incarnation
            ):
                return received, ready
        return None

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(0)


class AdminPoller:
    """A persistent DEALER on the node's admin socket (what ``sniperbot admin`` sends, without the CLI)."""

    def __init__(self, zctx: zmq.Context, rundir: RunDir) -> None:
        self.socket = zctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(rundir.admin)

    def request(self, cmd: str, **args: Any) -> Any:
        """One request; its result."""
        self.socket.send(encoder.encode(AdminRequest(cmd=cmd, args=args)))  # type: ignore[arg-type]
        if not self.socket.poll(5000):
            raise TimeoutError(f"the node's admin socket did not answer {cmd}")
        reply = reply_decoder.decode(self.socket.recv())
        if not reply.ok:
            raise RuntimeError(f"admin {cmd} failed: {reply.error}")
        return reply.result

    def workers(self) -> dict[str, dict[str, Any]]:
        """Every worker of the tree by id, with ``parent``: its supervisor's id."""
        out: dict[str, dict[str, Any]] = {}
        todo = [(self.request("tree"), "")]
        while todo:
            node, parent = todo.pop()
            if node["kind"] == "worker":
                out[node["id"]] = {**node, "parent": parent}
            todo.extend((child, node["id"]) for child in node["children"])
        return out

    def child(self, sup: str, actor_id: str) -> dict[str, Any]:
        """``which_children`` entry of one child."""
        return next(c for c in self.request("which_children", sup=sup) if c["id"] == actor_id)

    def running(self, sup: str, actor_id: str, after_incarnation: int) -> bool:
        """Whether the supervisor reports a newer incarnation of ``actor_id`` running (its Ready arrived)."""
        for child in self.request("which_children", sup=sup):
            if child["id"] == actor_id:
                return child["incarnation"] > after_incarnation and child["state"] == "running"
        return False

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(0)


def history_batches(fills: int, orders: int) -> Any:
    """Past orders (filled or cancelled, none open) and fills of strategies no longer run, in batches."""
    from sniperbot.messages import Fill, Order, OrderUpdate
    from sniperbot.messages.orders import make_intent_id

    start_ns = time.time_ns() - 30 * 86_400 * 10**9
    step_ns = (30 * 86_400 * 10**9) // max(1, orders)
    per_order = max(1, -(-fills // max(1, orders)))  # fills spread over the orders
    made_fills = 0
    batch: list[Any] = []
    for i in range(orders):
        strategy = f"hist{i % _HISTORY_STRATEGIES}"
        symbol = f"H{i % _HISTORY_SYMBOLS}/USDT"
        cid = make_intent_id(strategy, i + 1, "hist0")
        side = "buy" if (i // _HISTORY_SYMBOLS) % 2 == 0 else "sell"  # positions go back to flat
        ts = start_ns + i * step_ns
        common = {"strategy_id": strategy, "venue": "sim", "symbol": symbol}
        batch.append(
            Order(client_order_id=cid, intent_id=cid, side=side, quantity=1.0, ts_ns=ts, **common)  # type: ignore[arg-type]
        )
        n = min(per_order, fills - made_fills)
        for k in range(n):
            batch.append(
                Fill(
                    fill_id=f"{cid}-f{k}", client_order_id=cid, side=side, quantity=1.0 / n,  # type: ignore[arg-type]
                    price=100.0 + (i % 7), fee=0.01, ts_ns=ts + k, **common,
                )
            )  # fmt: skip
        made_fills += n
        status = "filled" if n else "cancelled"
        batch.append(OrderUpdate(client_order_id=cid, status=status, ts_ns=ts + 10, **common))  # type: ignore[arg-type]
        if len(batch) >= _BUILD_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def build_journal(run_dir: Path, fills: int, orders: int) -> dict[str, Any]:
    """Journal the history into ``run_dir`` (before the node starts); records and seconds per 100k."""
    from sniperbot.journal import Journal

    started = time.perf_counter()
    records = 0
    with Journal.open(run_dir, durability="process") as journal:
        for batch in history_batches(fills, orders):
            journal.append_many(batch)
            records += len(batch)
        counts = journal.counts()
    took = time.perf_counter() - started
    size = (run_dir / "journal" / "data.mdb").stat().st_size
    return {
        "records": records,
        "counts": counts,
        "build_s": round(took, 1),
        "build_s_per_100k_records": round(took / max(1, records) * 100_000, 2),
        "data_mb": round(size / 1e6, 1),
    }


def restore_costs(run_dir: Path) -> dict[str, dict[str, float]]:
    """Each restoring actor kind's journal work at start, the old way (every record) and the new (ms)."""
    from sniperbot.actors.strategy import journaled_history
    from sniperbot.journal import TERMINAL_STATUSES, Journal, keys
    from sniperbot.journal.aggregates import DAY_NS
    from sniperbot.messages import Fill, Order, OrderUpdate
    from sniperbot.portfolio.ledger import Ledger
    from sniperbot.risk.guard import RiskGuard, RiskLimits

    guard = RiskGuard(RiskLimits(max_order_notional=1e9, max_position=1e9, max_orders_per_second=1e3))
    today = time.time_ns() // DAY_NS

    def old_portfolio(journal: Journal) -> None:
        ledgers: dict[str, Ledger] = {}
        for _, record in journal.records():
            if isinstance(record, Fill):
                ledgers.setdefault(record.venue, Ledger()).apply_fill(record)
            elif isinstance(record, OrderUpdate):
                ledgers.setdefault(record.venue, Ledger()).on_order_update(record)
            elif isinstance(record, Order):
                pass

    def old_risk(journal: Journal) -> None:
        fills = journal.fills()
        guard.restore_spend(fills, time.time_ns())
        positions: dict[tuple[str, str], float] = {}
        for f in fills:
            key = (f.venue, f.symbol)
            positions[key] = positions.get(key, 0.0) + (f.quantity if f.side == "buy" else -f.quantity)

    def old_open_orders(journal: Journal) -> None:
        [o for o in journal.orders() if journal.order_status(o.client_order_id) not in TERMINAL_STATUSES]

    def old_strategy(journal: Journal, strategy_id: str) -> None:
        # main's journaled_history: every record, to find the strategy's own
        for _, record in journal.records():
            if record.strategy_id == strategy_id and isinstance(record, Fill):
                pass

    kinds = {
        "strategy": (
            lambda j: old_strategy(j, "fast_btc"),
            lambda j: j.snapshot(strategy_id="fast_btc"),
        ),
        # Old: the previous version's restore (every record of its own, archived ones too). New: its live
        # state and the journal after the seq that state holds (here: saved after the last record).
        "sniper (its own records; 1/20 of them)": (
            lambda j: journaled_history(j, "hist0"),
            lambda j: (
                j.get_state(keys.STRATEGY_STATE + "hist0"),
                j.since(j.last_seq(), (Fill, OrderUpdate, Order), "hist0"),
            ),
        ),
        "risk_guard": (old_risk, lambda j: j.snapshot(spend_day=today)),
        "portfolio": (old_portfolio, lambda j: j.snapshot()),
        "feed (evm/solana held tokens)": (lambda j: j.fills(), lambda j: j.snapshot()),
        "executor (open orders)": (old_open_orders, lambda j: j.open_orders()),
    }
    out: dict[str, dict[str, float]] = {}
    with Journal.open(run_dir, readonly=True) as journal:
        for kind, (old, new) in kinds.items():
            timed = {}
            for name, fn in (("full_scan_ms", old), ("snapshot_ms", new)):
                t0 = time.perf_counter()
                fn(journal)
                timed[name] = round((time.perf_counter() - t0) * 1000, 2)
            out[kind] = timed
    return out


def node_restart(work: Path, repeats: int) -> list[float]:
    """Whole-node restarts on the run dir of the measured node: start -> every actor running (s)."""
    took: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        node = NodeProcess(work, FAST_CONFIG, tree="bench.restart:tree", name="node", duration_s=600)
        try:
            node.wait_ready(120)
            took.append(round(time.perf_counter() - t0, 3))
        finally:
            node.stop()
    return took


def measure_node(work: Path, kills_per_actor: int, pause_s: float) -> dict[str, Any]:
    """Kill each victim ``kills_per_actor`` times, in rotation; samples in ns by actor.

    After each kill two signals are watched at once: the new incarnation's Ready on
    the bus, and the supervisor's view (``which_children`` every 2 ms: the child is
    running again once its Ready arrived on the reliable control socket). The bus
    Ready can be lost (PUB drops what it sends before its connection to the proxy
    is up), so the restart time of a kill is the first of the two.
    """
    t_start = time.perf_counter()
    node = NodeProcess(work, FAST_CONFIG, tree="bench.restart:tree", name="node", duration_s=600)
    zctx = zmq.Context()
    rundir = RunDir(node.run_dir)
    watch = ReadyWatch(zctx, rundir)
    admin = AdminPoller(zctx, rundir)
    first: dict[str, list[int]] = {v: [] for v in VICTIMS}
    bus: dict[str, list[int]] = {v: [] for v in VICTIMS}
    seen_by_supervisor: dict[str, list[int]] = {v: [] for v in VICTIMS}
    stamped: list[int] = []
    rng = random.Random(1)
    try:
        node.wait_ready(600)  # on a large journal the first start verifies all of it
        first_start_s = round(time.perf_counter() - t_start, 3)
        time.sleep(1.0)  # let it trade a little, so restarts replay a non-empty journal
        for _ in range(kills_per_actor):
            for actor in VICTIMS:
                before = admin.workers()
                if not all(w["state"] == "running" for w in before.values()):
                    raise RuntimeError(f"tree not all running before killing {actor}: {before}")
                victim = before[actor]
                watch.drain()
                kill_wall = time.time_ns()
                t0 = time.perf_counter_ns()
                os.kill(victim["pid"], signal.SIGKILL)
                t_bus = t_sup = None
                deadline = t0 + 10_000_000_000
                while t_sup is None or (t_bus is None and time.perf_counter_ns() - t_sup < 200_000_000):
                    if time.perf_counter_ns() > deadline:
                        raise TimeoutError(f"{actor} did not restart; node log:\n{node.log_tail()}")
                    if t_bus is None:
                        got = watch.poll_ready(actor, victim["incarnation"], _ADMIN_POLL_MS)
                        if got is not None:
                            t_bus = got[0]
                            stamped.append(got[1].ts_ns - kill_wall)
                    else:
                        time.sleep(_ADMIN_POLL_MS / 1000)
                    if t_sup is None and admin.running(victim["parent"], actor, victim["incarnation"]):
                        t_sup = time.perf_counter_ns()
                seen_by_supervisor[actor].append(t_sup - t0)
                if t_bus is not None:
                    bus[actor].append(t_bus - t0)
                first[actor].append(min(t_sup, t_bus or t_sup) - t0)

                def all_running() -> bool:
                    node.check_alive()
                    return all(w["state"] == "running" for w in admin.workers().values())

                wait_for(all_running, 10, "the tree running again", interval_s=0.005)
                time.sleep(pause_s * rng.uniform(0.5, 1.5))
        restarts = {a: w["restarts"] for a, w in admin.workers().items()}
    finally:
        watch.close()
        admin.close()
        zctx.term()
        code = node.stop()
    return {
        "first": first,
        "bus": bus,
        "supervisor": seen_by_supervisor,
        "stamped": stamped,
        "restarts": restarts,
        "node_exit": code,
        "run_dir": node.run_dir,
        "first_start_s": first_start_s,
    }


def open_costs(run_dir: Path) -> dict[str, float]:
    """ActorRuntime.open() of each victim in this process (warm imports), on the run's journal, in ms.

    This is what a fresh incarnation does between its fork and its Ready:
    construct the actor, create its sockets, open the journal and run on_start.
    """
    from sniperbot.actors.runtime import ActorLaunch, ActorRuntime, close_process_journals
    from sniperbot.config import decode_config

    specs = {s.id: s for s in tree(decode_config(FAST_CONFIG)).walk() if s.type == "worker"}
    zctx = zmq.Context()
    out: dict[str, float] = {}
    try:
        for rep in range(3):
            for actor in VICTIMS:
                spec = specs[actor]
                launch = ActorLaunch(
                    actor_id=f"{actor}-probe",
                    actor=spec.actor,
                    args=spec.args,
                    run_dir=str(run_dir),
                    incarnation=1000 + rep,
                    heartbeat_interval_s=3600.0,
                    heartbeat_liveness=100,
                    journal_durability="process",
                )
                t0 = time.perf_counter_ns()
                runtime = ActorRuntime(launch, zctx)
                runtime.open()
                took = (time.perf_counter_ns() - t0) / 1e6
                runtime.close(clean=False)
                close_process_journals()  # each open pays the journal open, as a new process does
                out[actor] = round(min(out.get(actor, took), took), 2)
    finally:
        zctx.term()
    return out


def floor_samples(work: str, kills: int) -> list[int]:
    """kill -9 of a forkserver child -> sentinel -> new child from the same forkserver says hello (ns).

    Run it in a ``python -c`` process (see :func:`measure_floor`): multiprocessing
    re-runs a main *script* in every forkserver child, which the node's actor
    processes (under ``python -m sniperbot``) do not pay.
    """
    from bench import _raw
    from sniperbot.config import Config
    from sniperbot.topology import build_tree, preload_modules

    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload([*preload_modules(build_tree(Config())), "bench._raw"])
    zctx = zmq.Context()
    pull = zctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    endpoint = f"ipc://{work}/floor.sock"
    pull.bind(endpoint)

    def start() -> multiprocessing.process.BaseProcess:
        proc = mp.Process(target=_raw.ready_child, args=(endpoint,), name="floor")
        proc.start()
        if not pull.poll(10_000):
            raise TimeoutError("floor child did not announce itself")
        pull.recv()
        return proc

    samples: list[int] = []
    proc = start()
    try:
        for _ in range(kills):
            time.sleep(0.05)
            t0 = time.perf_counter_ns()
            os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
            multiprocessing.connection.wait([proc.sentinel])
            proc.join()
            proc = start()
            samples.append(time.perf_counter_ns() - t0)
    finally:
        proc.kill()
        proc.join()
        pull.close(0)
        zctx.term()
    return samples


def measure_floor(work: Path, kills: int) -> list[int]:
    """:func:`floor_samples` in a fresh ``python -c`` process (no main script to re-run)."""
    code = (
        "import json, sys; from bench.restart import floor_samples; "
        f"print(json.dumps(floor_samples({str(work)!r}, {kills})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=work,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"floor measurement failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> int:
    """Measure the node and the floor; print; emit JSON."""

    def options(parser: Any) -> None:
        parser.add_argument("--journal-fills", type=int, default=0, help="fills journaled before the start")
        parser.add_argument("--journal-orders", type=int, default=0, help="orders journaled before the start")
        parser.add_argument(
            "--proxy-bus", action="store_true", help="[node] local_bus = false (every bus leg via the proxy)"
        )

    global FAST_CONFIG
    args = parse_args(__doc__.splitlines()[0], options)
    if args.proxy_bus:
        FAST_CONFIG = fast_sim_config(
            "\n[supervisor]\nintensity = 100000\n", log_level='"WARNING"', local_bus="false"
        )
    kills_per_actor = 4 if args.quick else 11
    pause_s = 0.1 if args.quick else 0.2
    large: dict[str, Any] = {}
    with short_tmp("sb-rst-") as work:
        if args.journal_fills or args.journal_orders:
            large["journal"] = build_journal(work / "node", args.journal_fills, args.journal_orders)
            j = large["journal"]
            print(
                f"large journal: {j['records']} records ({j['counts']}), built in {j['build_s']} s "
                f"({j['build_s_per_100k_records']} s per 100k records), data.mdb {j['data_mb']} MB"
            )
            large["restore_ms"] = restore_costs(work / "node")
            print("restore work at start on it, in this process, ms (old: every record; new: snapshot):")
            for kind, timed in large["restore_ms"].items():
                print(
                    f"  {kind:32s} full scan {timed['full_scan_ms']:10.2f}"
                    f"   snapshot {timed['snapshot_ms']:8.2f}"
                )
        node = measure_node(work, kills_per_actor, pause_s)
        opens = open_costs(node["run_dir"])
        if large:
            large["first_start_s"] = node["first_start_s"]
            large["node_restart_s"] = node_restart(work, 1 if args.quick else 3)
            ready = min(large["node_restart_s"])
            large["node_restart_met"] = ready < TARGET_NODE_READY_S
            print(f"node start on it (first start, verifies the journal): {node['first_start_s']} s")
            print(
                f"whole-node restart (SIGTERM, start, every actor running): {large['node_restart_s']} s; "
                f"best {ready} s < {TARGET_NODE_READY_S} s: {verdict(large['node_restart_met'])}"
            )
        floor_ns = measure_floor(work, 20 if args.quick else 50)
    kills = sum(len(v) for v in node["first"].values())
    print(
        f"kill -9 -> the next incarnation serving: {kills} kills, {kills_per_actor} per actor in rotation; "
        "time to the first of: its Ready on bus-out.sock, its supervisor reporting it running"
    )
    per_actor = {a: latency_ms(v) for a, v in node["first"].items()}
    for actor, stats in per_actor.items():
        delivered = len(node["bus"][actor])
        print(fmt_latency(actor, stats, "ms") + f"  (Ready on the bus: {delivered}/{stats['n']})")
    overall = latency_ms([x for v in node["first"].values() for x in v])
    print(fmt_latency("all actors", overall, "ms"))
    bus_all = [x for v in node["bus"].values() for x in v]
    bus_stats = latency_ms(bus_all)
    print(fmt_latency("  only kills whose Ready hit the bus", bus_stats, "ms"))
    stamped = latency_ms(node["stamped"])
    print(fmt_latency("  ... kill -> Ready stamped by actor", stamped, "ms"))
    sup_stats = latency_ms([x for v in node["supervisor"].values() for x in v])
    print(fmt_latency("  supervisor view only (2 ms polls)", sup_stats, "ms"))
    lost = kills - len(bus_all)
    floor = latency_ms(floor_ns)
    print(fmt_latency("floor: forkserver kill+respawn+hello", floor, "ms"))
    print("ActorRuntime.open() in this process (sockets, journal open, on_start), best of 3, ms:")
    print("  " + ", ".join(f"{a} {ms}" for a, ms in opens.items()))
    print(f"restarts counted by the supervisors: {node['restarts']}; node exit {node['node_exit']}")
    print(f"Ready lost on the bus: {lost} of {kills} restarts")
    r50 = ratio(overall["p50"], floor["p50"])
    r99 = ratio(overall["p99"], floor["p99"])
    ok50 = overall["p50"] < TARGET_P50_MS
    ok99 = overall["p99"] < TARGET_P99_MS
    print(f"ratio ours/floor: p50 {r50}, p99 {r99}")
    print(f"p50 {overall['p50']:.1f} ms < {TARGET_P50_MS:.0f} ms: {verdict(ok50)}")
    print(f"p99 {overall['p99']:.1f} ms < {TARGET_P99_MS:.0f} ms: {verdict(ok99)}")
    emit(
        "restart",
        {
            "kills": kills,
            "kills_per_actor": kills_per_actor,
            "overall_ms": overall,
            "per_actor_ms": per_actor,
            "bus_ready_ms": bus_stats,
            "bus_ready_lost": lost,
            "bus_ready_delivered_per_actor": {a: len(v) for a, v in node["bus"].items()},
            "actor_stamped_ms": stamped,
            "supervisor_view_ms": sup_stats,
            "floor_ms": floor,
            "open_ms": opens,
            "ratio_p50": r50,
            "ratio_p99": r99,
            "target_p50_ms": TARGET_P50_MS,
            "target_p99_ms": TARGET_P99_MS,
            "target_p50_met": ok50,
            "target_p99_met": ok99,
            "restarts": node["restarts"],
            "node_exit": node["node_exit"],
            "large_journal": large,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
