"""The Solana pool watcher on the local chain (issue #13 point 4).

Real components: :class:`LocalSolana` (LiteSVM behind Solana's JSON-RPC and WebSocket wire formats, the
real solana-py clients on our side), pools made the way the local aggregator makes them
(:meth:`LocalAggregator.create_pool`: funded vaults, then the pool account written, which the chain
notifies to ``programSubscribe``), the watcher in an :class:`ActorRuntime` (a thread of this process, or
its own OS process where a kill -9 is needed) on a real run dir with a real LMDB journal, and a real bus
(the node's ``BusProxy``) that the test subscribes to.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from sniperbot.actors.runtime import ActorLaunch, process_journal
from sniperbot.messages import NewPool, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import BusProxy, Subscriber, split_message
from sniperbot.venues.solana.devaggregator import LocalAggregator
from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.devtokens import create_mint
from sniperbot.venues.solana.layouts import LOCAL_AMM_PROGRAM, SOL_MINT
from sniperbot.venues.solana.pool_watcher import PoolCursor, cursor_key
from tests.conftest import ROOT, RunningNode, eventually
from tests.evm.test_pool_watcher import Cuttable
from tests.venues_ccxt.test_gateway import Actors, actors  # noqa: F401  (fixture)

VENUE = "localsol"
WATCHER = f"pools.{VENUE}"
ACTOR = "sniperbot.venues.solana.pool_watcher:PoolWatcher"
PROGRAM = str(LOCAL_AMM_PROGRAM)
WAIT_S = 60.0  # event-driven waits end as soon as the state is reached; generous for a loaded machine


class PoolBus:
    """Every NewPool of the venue on a real bus (proxy started here, as a node does), in arrival order."""

    def __init__(self, run_dir: Path, proxy: bool = True) -> None:
        self.zctx = zmq.Context()
        rundir = RunDir(run_dir)
        self.proxy = BusProxy(self.zctx, rundir.bus_in, rundir.bus_out) if proxy else None  # a node has one
        if self.proxy is not None:
            self.proxy.start()
        self.sub = Subscriber(self.zctx, rundir.bus_out, (topic.new_pool(VENUE),))
        self.seen: list[NewPool] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._receive, name="pool-bus", daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while self.running:
            if not self.sub.socket.poll(20):
                continue
            _, frame = split_message(self.sub.socket.recv())
            payload = decode_envelope(frame).payload
            if isinstance(payload, NewPool):
                with self.lock:
                    self.seen.append(payload)

    def pump(self) -> list[NewPool]:
        """What arrived so far, in order."""
        with self.lock:
            return list(self.seen)

    def wait_count(self, n: int, timeout_s: float = WAIT_S) -> list[NewPool]:
        """Once at least ``n`` pools arrived, all of them."""
        return eventually(lambda: len(self.pump()) >= n and self.pump(), timeout_s, 0.01, what=f"{n} pools")

    def close(self) -> None:
        """Stop receiving, close the subscriber and the proxy."""
        self.running = False
        self.thread.join(5)
        self.sub.close()
        if self.proxy is not None:
            self.proxy.stop()
        self.zctx.destroy(linger=0)


class WatcherProcess:
    """The watcher in an OS process of its own (what a node does with placement ``process``), to kill -9."""

    def __init__(self, actors: Actors, args: dict[str, Any]) -> None:  # noqa: F811
        incarnation = actors.incarnations.get(WATCHER, 0) + 1
        actors.incarnations[WATCHER] = incarnation  # the harness's next incarnation comes after this one
        launch = ActorLaunch(
            actor_id=WATCHER,
            actor=ACTOR,
            args=args,
            run_dir=str(actors.run_dir),
            incarnation=incarnation,
            heartbeat_interval_s=3600.0,  # no supervisor here: never declare itself orphaned
            journal_durability="fsync",
            auth_key=actors.auth_key,
            node_life="t1",
        )
        code = (
            "import sys; from sniperbot.actors.runtime import run_actor_process as run; "
            "run(sys.stdin.buffer.read())"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, cwd=ROOT, env=env)
        assert self.proc.stdin is not None
        self.proc.stdin.write(msgspec.msgpack.encode(launch))
        self.proc.stdin.close()

    def kill(self) -> None:
        """SIGKILL: no on_stop, no flush, nothing after the instruction it was at."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def chain() -> Iterator[LocalSolana]:
    """A fresh local chain (50 ms slots) and nothing else."""
    with LocalSolana(slot_ms=50) as c:
        yield c


@pytest.fixture
def agg(chain: LocalSolana) -> Iterator[LocalAggregator]:
    """The local aggregator: it makes the pools (and holds their keys)."""
    a = LocalAggregator(chain).start()
    try:
        yield a
    finally:
        a.stop()


@pytest.fixture
def bus(actors: Actors) -> Iterator[PoolBus]:  # noqa: F811
    b = PoolBus(actors.run_dir)
    try:
        yield b
    finally:
        b.close()


def watcher_args(chain: LocalSolana, mode: str, **extra: Any) -> dict[str, Any]:
    """The watcher's args: by subscription (``"ws"``) or by polling (``"poll"``), SOL the quote."""
    args: dict[str, Any] = {
        "venue": VENUE,
        "rpc_url": chain.rpc_url,
        "pools_program": PROGRAM,
        "quote_mints": [str(SOL_MINT)],
        "commitment": "confirmed",
        "poll_s": 0.05,
    }
    if mode == "ws":
        args["ws_url"] = chain.ws_url
    return args | extra


def cursor(run_dir: Path) -> PoolCursor | None:
    """The watcher's journaled cursor (None before its first backfill)."""
    raw = process_journal(run_dir, "process").get_state(cursor_key(VENUE, PROGRAM))
    return None if raw is None else msgspec.json.decode(raw, type=PoolCursor)


def wait_backfilled(run_dir: Path) -> PoolCursor:
    """Until the watcher has journaled a cursor (its first backfill is done: it follows from there)."""
    return eventually(lambda: cursor(run_dir), WAIT_S, what="the watcher's first backfill")


def start_watcher(actors: Actors, chain: LocalSolana, mode: str, **extra: Any) -> None:  # noqa: F811
    """The watcher in the harness, returned once it has backfilled."""
    actors.start(WATCHER, ACTOR, watcher_args(chain, mode, **extra))
    wait_backfilled(actors.run_dir)


def new_pool(chain: LocalSolana, agg: LocalAggregator) -> tuple[str, str, int]:
    """A new token and its SOL pool (1,000,000 tokens against 10 SOL): (pool, mint, created slot)."""
    mint = create_mint(chain, decimals=6)
    pool = agg.create_pool(mint, 10**12, 10 * 10**9)
    state = agg.pools[pool].state
    return str(pool), str(mint), state.created_slot


def assert_published(seen: list[NewPool], batches: list[list[tuple[str, str, int]]]) -> None:
    """``seen`` is each batch of created pools once, batch after batch; inside a batch (pools found by one
    backfill) in the order of their slots (pools created in one slot have no order on chain)."""
    assert len(seen) == sum(len(b) for b in batches), [m.pair for m in seen]
    at = 0
    for batch in batches:
        part = seen[at : at + len(batch)]
        at += len(batch)
        assert sorted(m.pair for m in part) == sorted(p for p, _, _ in batch), ([m.pair for m in part], batch)
        assert [m.block_number for m in part] == sorted(m.block_number for m in part), part
        for msg in part:
            (mint, slot) = next((m, s) for p, m, s in batch if p == msg.pair)
            assert (msg.venue, msg.token, msg.quote_token) == (VENUE, mint, str(SOL_MINT))
            assert (msg.block_number, msg.tx_hash, msg.log_index) == (slot, "", 0)


def test_pools_there_at_the_first_start_are_old_news_and_new_ones_are_published_by_the_subscription(
    chain: LocalSolana,
    agg: LocalAggregator,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
) -> None:
    """First start: what exists is not a snipe; every pool created afterwards comes once, as NewPool."""
    old = new_pool(chain, agg)
    start_watcher(actors, chain, "ws", backfill_s=3600.0)  # only the subscription can bring the new ones
    created = [new_pool(chain, agg) for _ in range(3)]
    seen = bus.wait_count(3, WAIT_S)
    assert [m.pair for m in seen] == [p for p, _, _ in created]
    for msg, (_, mint, slot) in zip(seen, created, strict=True):
        assert (msg.venue, msg.token, msg.quote_token) == (VENUE, mint, str(SOL_MINT))
        assert (msg.block_number, msg.tx_hash, msg.log_index) == (slot, "", 0)
    time.sleep(0.5)  # anything still to come would be the old pool or a repeat
    assert [m.pair for m in bus.pump()] == [p for p, _, _ in created]
    assert old[0] not in [m.pair for m in bus.pump()]


@pytest.mark.parametrize("mode", ["ws", "poll"])
def test_pools_created_while_stopped_are_backfilled_once_after_the_restart(
    chain: LocalSolana,
    agg: LocalAggregator,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
    mode: str,
) -> None:
    start_watcher(actors, chain, mode)
    first = new_pool(chain, agg)
    bus.wait_count(1, WAIT_S)
    actors.stop(WATCHER)
    while_stopped = [new_pool(chain, agg) for _ in range(3)]
    actors.start(WATCHER, ACTOR, watcher_args(chain, mode))
    bus.wait_count(4, WAIT_S)
    # A pool after the backfill: any repeat of the old ones would have arrived before it.
    after = new_pool(chain, agg)
    seen = bus.wait_count(5, WAIT_S)
    assert_published(seen, [[first], while_stopped, [after]])
    time.sleep(0.5)  # anything still to come would be a repeat
    assert len(bus.pump()) == 5


def test_a_kill_9_of_the_watcher_process_neither_loses_nor_repeats_a_pool(
    chain: LocalSolana,
    agg: LocalAggregator,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
) -> None:
    """kill -9 of the watcher's own OS process, pools created while it is dead: the restarted watcher
    (same journal) publishes each of them once, and none of those published before the kill."""
    args = watcher_args(chain, "ws")
    proc = WatcherProcess(actors, args)
    try:
        wait_backfilled(actors.run_dir)
        before = [new_pool(chain, agg) for _ in range(2)]
        bus.wait_count(2, WAIT_S)
        handled = lambda: (cursor(actors.run_dir) or PoolCursor(floor=-1)).handled  # noqa: E731
        eventually(
            lambda: all(p in handled() for p, _, _ in before), WAIT_S, what="published pools journaled"
        )
    finally:
        proc.kill()  # SIGKILL: no on_stop, nothing flushed
    while_dead = [new_pool(chain, agg) for _ in range(3)]
    actors.start(WATCHER, ACTOR, args)  # the restart, on the same journal
    bus.wait_count(5, WAIT_S)
    after = new_pool(chain, agg)
    seen = bus.wait_count(6, WAIT_S)
    assert_published(seen, [before, while_dead, [after]])
    time.sleep(0.5)  # anything still to come would be a repeat
    assert len(bus.pump()) == 6


def test_after_a_websocket_drop_the_backfill_publishes_what_was_created_meanwhile(
    chain: LocalSolana,
    agg: LocalAggregator,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
) -> None:
    """The node's WebSocket and HTTP cut: nothing comes; once they are back, the pools created meanwhile
    (backfill) and the later ones (the new subscription) come once each."""
    ws, http = Cuttable(chain.port), Cuttable(chain.port)  # one port serves both
    ws.up()
    http.up()
    try:
        args = watcher_args(chain, "ws", backfill_s=3600.0) | {  # backfills: on (re)connect only
            "ws_url": f"ws://127.0.0.1:{ws.port}",
            "rpc_url": f"http://127.0.0.1:{http.port}",
        }
        actors.start(WATCHER, ACTOR, args)
        wait_backfilled(actors.run_dir)
        first = new_pool(chain, agg)
        bus.wait_count(1, WAIT_S)
        ws.down()
        http.down()
        meanwhile = [new_pool(chain, agg) for _ in range(2)]
        time.sleep(0.3)
        assert len(bus.pump()) == 1  # nothing can come while the node is unreachable
        ws.up()
        http.up()
        seen = bus.wait_count(3, WAIT_S)
        assert_published(seen, [[first], meanwhile])
        assert ws.accepted >= 2  # it did reconnect
        later = new_pool(chain, agg)  # and follows the chain on the new connection
        assert bus.wait_count(4, WAIT_S)[-1].pair == later[0]
        # Only the WebSocket is down: the watcher polls over HTTP between its reconnect attempts.
        ws.down()
        polled = new_pool(chain, agg)
        assert bus.wait_count(5, WAIT_S)[-1].pair == polled[0]
        time.sleep(0.3)
        assert len(bus.pump()) == 5
    finally:
        actors.stop_all()
        ws.down()
        http.down()


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"pools_program": "0x1234"}, "pools_program"),
        ({"quote_mints": []}, "quote_mints"),
        ({"quote_mints": ["SOL"]}, "quote_mints: 'SOL'"),
        ({"rpc_url": "ws://127.0.0.1:1"}, "rpc_url"),
        ({"ws_url": "http://127.0.0.1:1"}, "ws_url"),
        ({"commitment": "final"}, "commitment = 'final'"),
        ({"start_slot": -1}, "start_slot = -1"),
        ({"start_slot": "earliest"}, "start_slot = 'earliest'"),
        ({"poll_s": 0}, "poll_s = 0"),
        ({"backfill_s": 0}, "backfill_s = 0"),
    ],
)
def test_a_bad_argument_is_refused_naming_the_field(bad: dict[str, Any], named: str) -> None:
    from sniperbot.actors.base import ActorContext
    from sniperbot.venues.solana.pool_watcher import PoolWatcher

    args: dict[str, Any] = {
        "venue": VENUE,
        "rpc_url": "http://127.0.0.1:8899",
        "pools_program": PROGRAM,
        "quote_mints": [str(SOL_MINT)],
    }
    with pytest.raises(ValueError, match=f"pool watcher '{VENUE}'") as info:
        PoolWatcher(ActorContext(), **(args | bad))
    assert named in str(info.value)


# -- in a real node: the venue's config brings the watcher; a node killed -9 and started again --------------


def node_config(path: Path, chain: LocalSolana, agg: LocalAggregator, listed: str) -> Path:
    """A paper Solana venue with ``[venues.sniper]``: the tree has its checker, watcher and sniper."""
    path.write_text(
        'strategies = []\n[node]\nheartbeat_interval_s = 0.2\nheartbeat_liveness = 5\nlog_level = "INFO"\n'
        '[journal]\ndurability = "process"\n'
        f'[[venues]]\nname = "{VENUE}"\nkind = "solana"\nmode = "paper"\nrpc_url = "{chain.rpc_url}"\n'
        f'ws_url = "{chain.ws_url}"\naggregator_url = "{agg.url}"\nquote = "SOL"\n'
        f'mints = {{ SOL = "{SOL_MINT}", TKN = "{listed}" }}\nsymbols = ["TKN/SOL"]\n'
        f'pools_program = "{PROGRAM}"\nroute = "rpc"\n[venues.sniper]\nbudget = 0.1\n'
    )
    return path


def test_a_node_killed_9_and_started_again_publishes_each_pool_once(
    chain: LocalSolana, agg: LocalAggregator, short_tmp: Path
) -> None:
    """The watcher the config brings (``pools.<venue>``), in a node killed with SIGKILL: the pools created
    while the node was down come once after its restart, those of the first life never again."""
    listed = new_pool(chain, agg)[1]
    config = node_config(short_tmp / "sol.toml", chain, agg, listed)
    run_dir = short_tmp / "run"
    lives: list[PoolBus] = []
    try:
        node = RunningNode(run_dir, config)
        assert WATCHER in node.wait_ready(120)
        lives.append(PoolBus(run_dir, proxy=False))
        wait_backfilled(run_dir)
        first = new_pool(chain, agg)
        assert [m.pair for m in lives[0].wait_count(1)] == [first[0]]
        node.stop(signal.SIGKILL)
        lives[0].close()
        while_down = [new_pool(chain, agg) for _ in range(3)]
        node = RunningNode(run_dir, config)
        lives.append(PoolBus(run_dir, proxy=False))  # before the watcher runs: it holds pools until it hears
        node.wait_ready(120)  # its own probe, and a subscriber that joined before that hears them all
        seen = lives[1].wait_count(3)
        after = new_pool(chain, agg)
        seen = lives[1].wait_count(4)
        assert_published(seen, [while_down, [after]])
        time.sleep(0.5)  # anything still to come would be a repeat
        assert len(lives[1].pump()) == 4
        assert node.stop() == 0, node.log()[-3000:]
    finally:
        for bus in lives:
            bus.close()
