"""The pool watcher on anvil with the real Uniswap V2 (issue #12 point 5).

Real components: anvil and Uniswap's own Factory/Router02/WETH9 (``tests/evm/conftest.py``), the watcher in
an :class:`ActorRuntime` (a thread of this process, the harness of the ccxt gateway tests, or its own OS
process where a kill -9 is needed) on a real run dir with a real LMDB journal, and a real bus (the node's
``BusProxy``, started here as a node does) that the test subscribes to. Pools are created the way a token
launcher creates them, ``addLiquidityETH`` through Router02.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
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
from eth_account import Account
from web3.logs import DISCARD

from sniperbot.actors.runtime import ActorLaunch, process_journal
from sniperbot.messages import NewPool, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import LOCAL_MARK, BusProxy, Subscriber, split_message
from sniperbot.venues.evm.devchain import (
    ANVIL_KEYS,
    Anvil,
    UniswapDeployment,
    deploy_plain_token,
    erc20,
    factory_contract,
    router_contract,
    send_tx,
)
from sniperbot.venues.evm.pool_watcher import PoolCursor, cursor_key
from tests.conftest import ROOT, eventually
from tests.venues_ccxt.test_gateway import Actors, actors  # noqa: F401  (fixture)

VENUE = "anvil"
WATCHER = f"pools.{VENUE}"
ACTOR = "sniperbot.venues.evm.pool_watcher:PoolWatcher"
KEY = ANVIL_KEYS[0]
OWNER = Account.from_key(KEY).address


class PoolBus:
    """Every NewPool of venue ``anvil`` on a real bus (proxy started here, as a node does), with its arrival.

    A thread of its own receives, so an arrival time is when the message came, not when the test looked.
    """

    def __init__(self, run_dir: Path) -> None:
        self.zctx = zmq.Context()
        rundir = RunDir(run_dir)
        self.proxy = BusProxy(self.zctx, rundir.bus_in, rundir.bus_out)
        self.proxy.start()
        self.sub = Subscriber(self.zctx, rundir.bus_out, (topic.new_pool(VENUE),))
        self.seen: list[tuple[NewPool, int]] = []  # (message, time.time_ns() at arrival)
        self.on_arrival: Any = None  # called in the receiving thread with each NewPool, at once
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._receive, name="pool-bus", daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while self.running:
            if not self.sub.socket.poll(20):
                continue
            _, frame = split_message(self.sub.socket.recv())
            arrived = time.time_ns()
            payload = decode_envelope(frame).payload
            if isinstance(payload, NewPool):
                if self.on_arrival is not None:
                    self.on_arrival(payload)
                with self.lock:
                    self.seen.append((payload, arrived))

    def pump(self) -> list[NewPool]:
        """What arrived so far, in order."""
        with self.lock:
            return [p for p, _ in self.seen]

    def wait_count(self, n: int, timeout_s: float = 60.0) -> list[NewPool]:
        """Once at least ``n`` pools arrived, all of them."""
        return eventually(lambda: len(self.pump()) >= n and self.pump(), timeout_s, 0.01, what=f"{n} pools")

    def arrival_ns(self, pair: str) -> int:
        """When the (first) NewPool of ``pair`` arrived."""
        with self.lock:
            return next(t for p, t in self.seen if p.pair == pair)

    def close(self) -> None:
        """Stop receiving, close the subscriber and the proxy."""
        self.running = False
        self.thread.join(5)
        self.sub.close()
        self.proxy.stop()
        self.zctx.destroy(linger=0)


@pytest.fixture
def bus(actors: Actors) -> Iterator[PoolBus]:  # noqa: F811
    b = PoolBus(actors.run_dir)
    try:
        yield b
    finally:
        b.close()


def watcher_args(anvil: Anvil, uni: UniswapDeployment, mode: str, **extra: Any) -> dict[str, Any]:
    """The watcher's args: over WebSocket (``mode = "ws"``) or by polling (``"poll"``), WETH the quote."""
    args: dict[str, Any] = {
        "venue": VENUE,
        "rpc_url": anvil.rpc_url,
        "factory": uni.factory,
        "quote_tokens": [uni.weth],
        "poll_s": 0.05,
    }
    if mode == "ws":
        args["ws_url"] = anvil.ws_url
    return args | extra


def cursor(run_dir: Path, uni: UniswapDeployment) -> PoolCursor | None:
    """The watcher's journaled cursor (None before its first scan)."""
    raw = process_journal(run_dir, "process").get_state(cursor_key(VENUE, uni.factory))
    return None if raw is None else msgspec.json.decode(raw, type=PoolCursor)


def wait_caught_up(run_dir: Path, anvil: Anvil, uni: UniswapDeployment) -> None:
    """Until the journaled cursor is at the chain's head (the watcher follows the chain from there)."""
    head = anvil.w3.eth.block_number
    eventually(lambda: (c := cursor(run_dir, uni)) is not None and c.block >= head, 60, what="cursor at head")


def start_watcher(actors: Actors, anvil: Anvil, uni: UniswapDeployment, mode: str, **extra: Any) -> None:  # noqa: F811
    """The watcher in the harness, returned once it has scanned to the head."""
    actors.start(WATCHER, ACTOR, watcher_args(anvil, uni, mode, **extra))
    wait_caught_up(actors.run_dir, anvil, uni)


class Created(msgspec.Struct, frozen=True):
    """A pair created on chain, as the factory's PairCreated log says."""

    pair: str
    token: str
    block: int
    tx_hash: str
    log_index: int
    sent_ns: int  # time.time_ns() just before the transaction that created it was sent


def _nonce(w3: Any, owner: str = OWNER) -> dict[str, int]:
    return {"nonce": w3.eth.get_transaction_count(owner, "pending")}


def _created(anvil: Anvil, uni: UniswapDeployment, receipt: dict[str, Any], sent_ns: int) -> list[Created]:
    """The PairCreated events of a receipt."""
    events = factory_contract(anvil.w3, uni).events.PairCreated().process_receipt(receipt, errors=DISCARD)
    out = []
    for ev in events:
        t0, t1 = ev["args"]["token0"], ev["args"]["token1"]
        token = t1 if t0 == uni.weth else t0
        tx = "0x" + bytes(ev["transactionHash"]).hex()
        out.append(Created(ev["args"]["pair"], token, ev["blockNumber"], tx, ev["logIndex"], sent_ns))
    return out


def create_pool(anvil: Anvil, uni: UniswapDeployment, key: str = KEY) -> Created:
    """A new token of ``key``'s and its pool against WETH (``addLiquidityETH`` through Router02)."""
    w3 = anvil.w3
    owner = Account.from_key(key).address
    token = deploy_plain_token(w3, key, 10**24)
    approve = erc20(w3, token).functions.approve(uni.router, 10**23)
    send_tx(
        w3, key, approve.build_transaction({"from": owner, "gas": 100_000, "nonce": 0}) | _nonce(w3, owner)
    )
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    add = router_contract(w3, uni).functions.addLiquidityETH(token, 10**23, 0, 0, owner, deadline)
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    tx = add.build_transaction(
        {
            "from": owner,
            "value": 10**18,
            "gas": 5_000_000,
            "maxFeePerGas": 4 * base + 10**9,
            "maxPriorityFeePerGas": 10**9,
            "chainId": w3.eth.chain_id,
            "nonce": w3.eth.get_transaction_count(owner, "pending"),
        }
    )
    raw = Account.from_key(key).sign_transaction(tx).raw_transaction
    sent_ns = time.time_ns()  # signed and filled in: from here on it is the chain and the watcher
    receipt = dict(w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw), timeout=30))
    assert receipt["status"] == 1
    (created,) = _created(anvil, uni, receipt, sent_ns)
    assert created.token == token
    return created


def create_token_pair(anvil: Anvil, uni: UniswapDeployment) -> str:
    """A pair of two new tokens, neither a quote token (``addLiquidity``); its address."""
    w3 = anvil.w3
    a, b = deploy_plain_token(w3, KEY, 10**24), deploy_plain_token(w3, KEY, 10**24)
    for token in (a, b):
        approve = erc20(w3, token).functions.approve(uni.router, 10**23)
        send_tx(w3, KEY, approve.build_transaction({"from": OWNER, "gas": 100_000, "nonce": 0}) | _nonce(w3))
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    add = router_contract(w3, uni).functions.addLiquidity(a, b, 10**23, 10**23, 0, 0, OWNER, deadline)
    send_tx(w3, KEY, add.build_transaction({"from": OWNER, "gas": 5_000_000, "nonce": 0}) | _nonce(w3))
    return str(factory_contract(w3, uni).functions.getPair(a, b).call())


def assert_announces(msg: NewPool, created: Created, uni: UniswapDeployment) -> None:
    """``msg`` is the NewPool of ``created``, field by field."""
    assert msg.venue == VENUE
    assert (msg.pair, msg.token, msg.quote_token) == (created.pair, created.token, uni.weth)
    assert (msg.block_number, msg.tx_hash, msg.log_index) == (
        created.block,
        created.tx_hash,
        created.log_index,
    )


@pytest.mark.parametrize("mode", ["ws", "poll"])
def test_a_new_pool_is_published_within_a_second_and_a_pair_without_a_quote_token_is_not(
    anvil: Anvil,
    uniswap: UniswapDeployment,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
    mode: str,
) -> None:
    start_watcher(actors, anvil, uniswap, mode)
    no_quote = create_token_pair(anvil, uniswap)  # first: had it been published, it would arrive first
    created = create_pool(anvil, uniswap)
    (msg,) = bus.wait_count(1)
    assert_announces(msg, created, uniswap)
    assert factory_contract(anvil.w3, uniswap).functions.getPair(msg.token, uniswap.weth).call() == msg.pair
    latency_ms = (bus.arrival_ns(msg.pair) - created.sent_ns) / 1e6
    print(
        f"\n[{mode}] signed addLiquidityETH sent -> mined (automine) -> NewPool received: {latency_ms:.1f} ms"
    )
    assert latency_ms < 1000, latency_ms
    # Later pools keep coming; the token/token pair never does.
    second = create_pool(anvil, uniswap)
    assert [m.pair for m in bus.wait_count(2)] == [created.pair, second.pair]
    print(f"[{mode}] second pool: {(bus.arrival_ns(second.pair) - second.sent_ns) / 1e6:.1f} ms")
    assert no_quote not in [m.pair for m in bus.pump()]


@pytest.mark.parametrize("mode", ["ws", "poll"])
def test_pools_created_while_stopped_are_published_once_after_the_restart(
    anvil: Anvil,
    uniswap: UniswapDeployment,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
    mode: str,
) -> None:
    start_watcher(actors, anvil, uniswap, mode)
    first = create_pool(anvil, uniswap)
    bus.wait_count(1)
    actors.stop(WATCHER)
    while_stopped = [create_pool(anvil, uniswap) for _ in range(3)]
    actors.start(WATCHER, ACTOR, watcher_args(anvil, uniswap, mode))
    bus.wait_count(4)
    # A pool after the backfill: any repeat of the old ones would have arrived before it.
    after = create_pool(anvil, uniswap)
    seen = bus.wait_count(5)
    assert [m.pair for m in seen] == [c.pair for c in (first, *while_stopped, after)]
    for msg, created in zip(seen, (first, *while_stopped, after), strict=True):
        assert_announces(msg, created, uniswap)
    wait_caught_up(actors.run_dir, anvil, uniswap)
    time.sleep(0.3)  # anything still to come would be a repeat
    assert len(bus.pump()) == 5


def test_start_block_replays_the_history_of_the_factory(
    anvil: Anvil,
    uniswap: UniswapDeployment,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
) -> None:
    history = [create_pool(anvil, uniswap) for _ in range(2)]
    start_watcher(actors, anvil, uniswap, "ws", start_block=0)
    assert [m.pair for m in bus.wait_count(2)] == [c.pair for c in history]


def create_pools_in_one_block(anvil: Anvil, uni: UniswapDeployment, n: int) -> list[Created]:
    """``n`` new tokens and their WETH pools, all created in one block (automine off while they queue)."""
    w3 = anvil.w3
    tokens = [deploy_plain_token(w3, KEY, 10**24) for _ in range(n)]
    for token in tokens:
        approve = erc20(w3, token).functions.approve(uni.router, 10**23)
        send_tx(w3, KEY, approve.build_transaction({"from": OWNER, "gas": 100_000, "nonce": 0}) | _nonce(w3))
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    nonce = w3.eth.get_transaction_count(OWNER)
    router = router_contract(w3, uni)
    anvil.set_automine(False)
    try:
        hashes = []
        for i, token in enumerate(tokens):
            add = router.functions.addLiquidityETH(token, 10**23, 0, 0, OWNER, deadline)
            tx = add.build_transaction(
                {
                    "from": OWNER,
                    "value": 10**18,
                    "gas": 5_000_000,
                    "nonce": nonce + i,
                    "maxFeePerGas": 4 * base + 10**9,
                    "maxPriorityFeePerGas": 10**9,
                    "chainId": w3.eth.chain_id,
                }
            )
            hashes.append(
                w3.eth.send_raw_transaction(Account.from_key(KEY).sign_transaction(tx).raw_transaction)
            )
        sent_ns = time.time_ns()
        anvil.mine(1)
    finally:
        anvil.set_automine(True)
    created = []
    for h in hashes:
        receipt = dict(w3.eth.wait_for_transaction_receipt(h, timeout=30))
        assert receipt["status"] == 1
        created += _created(anvil, uni, receipt, sent_ns)
    assert len({c.block for c in created}) == 1 and len(created) == n
    return created


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


def test_a_kill_9_right_after_a_publish_repeats_no_pool(
    anvil: Anvil,
    uniswap: UniswapDeployment,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
) -> None:
    args = watcher_args(anvil, uniswap, "ws")
    proc = WatcherProcess(actors, args)
    try:
        wait_caught_up(actors.run_dir, anvil, uniswap)
        bus.on_arrival = lambda _msg: proc.kill()  # kill -9 the moment the first pool reaches the bus
        batch = create_pools_in_one_block(anvil, uniswap, 10)  # 2.7 M gas each: 10 fit in a 30 M block
        before_kill = bus.wait_count(1)
        eventually(lambda: proc.proc.poll() is not None, 30, what="watcher killed")
        bus.on_arrival = None
    finally:
        proc.kill()
    before_kill = bus.pump()
    c = cursor(actors.run_dir, uniswap)
    assert c is not None
    journaled = (c.published_block, c.published_index)
    actors.start(WATCHER, ACTOR, args)  # the restart, on the same journal
    after = create_pool(anvil, uniswap)
    seen = bus.wait_count(
        1 + len([b for b in batch if (b.block, b.log_index) > journaled]) + len(before_kill)
    )
    pairs = [m.pair for m in seen]
    assert len(pairs) == len(set(pairs)), f"a pool was published twice: {pairs}"
    assert pairs[-1] == after.pair
    order = [b.pair for b in batch]
    assert pairs[:-1] == [p for p in order if p in pairs], "published out of chain order"
    # Lost: only what was journaled as published and killed before it left the process (at most the
    # tail of the batch up to the journaled position); everything after it came once, after the restart.
    lost = [b for b in batch if b.pair not in pairs]
    assert all((b.block, b.log_index) <= journaled for b in lost), lost
    assert all(order.index(b.pair) >= len(before_kill) for b in lost)
    for b in batch:
        if (b.block, b.log_index) > journaled:
            assert b.pair in pairs
    inside = c.block < batch[0].block  # killed before the block cursor passed the batch: a rescan of it
    print(
        f"\nkill -9 after the first publish: {len(before_kill)} of {len(batch)} published before it, "
        f"{len(lost)} lost in the kill window, block cursor {'before' if inside else 'past'} the batch"
    )
    wait_caught_up(actors.run_dir, anvil, uniswap)
    time.sleep(0.3)  # anything still to come would be a repeat
    assert len(bus.pump()) == len(seen)


def test_a_reorg_publishes_the_new_branch_and_never_the_same_pair_twice(
    anvil: Anvil,
    uniswap: UniswapDeployment,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start_watcher(actors, anvil, uniswap, "ws")
    fork = anvil.snapshot()
    dropped = create_pool(anvil, uniswap)
    bus.wait_count(1)
    anvil.revert(fork)  # the blocks of that pool are gone: a reorg under the watcher's cursor
    # The new branch: first another deployer's pool, at the very block and log index of the dropped one
    # (at or before the last published position: only a reorg-aware watcher publishes it) ...
    fresh = create_pool(anvil, uniswap, ANVIL_KEYS[1])
    assert (fresh.block, fresh.log_index) == (dropped.block, dropped.log_index)
    # ... then the first deployer again, the same nonces: the same token, hence the same pair (CREATE2),
    # mined again in the new branch. Published already: not again.
    again = create_pool(anvil, uniswap)
    assert again.pair == dropped.pair and again.block > dropped.block
    marker = create_pool(anvil, uniswap, ANVIL_KEYS[2])  # anything before it has arrived once it has
    seen = bus.wait_count(3)
    assert [m.pair for m in seen] == [dropped.pair, fresh.pair, marker.pair]
    assert_announces(seen[1], fresh, uniswap)
    assert any(getattr(r, "event", "") == "pool_reorg" for r in caplog.records)
    wait_caught_up(actors.run_dir, anvil, uniswap)
    time.sleep(0.3)
    assert len(bus.pump()) == 3


class Cuttable:
    """A TCP relay on 127.0.0.1 in front of anvil whose connections can be cut (a WebSocket drop)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.accepted = 0

    def up(self) -> None:
        """Listen and relay."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Stop listening and cut every relayed connection."""
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (a bare close would not)
            self.listener.close()
            self.listener = None
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.conns += [client, upstream]
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def test_after_a_websocket_drop_the_backfill_publishes_what_was_created_meanwhile(
    anvil: Anvil,
    uniswap: UniswapDeployment,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
) -> None:
    ws, http = Cuttable(anvil.port), Cuttable(anvil.port)  # anvil serves both on one port
    ws.up()
    http.up()
    try:
        args = watcher_args(anvil, uniswap, "ws") | {
            "ws_url": f"ws://127.0.0.1:{ws.port}",
            "rpc_url": f"http://127.0.0.1:{http.port}",
        }
        actors.start(WATCHER, ACTOR, args)
        wait_caught_up(actors.run_dir, anvil, uniswap)
        first = create_pool(anvil, uniswap)
        bus.wait_count(1)
        # The node is unreachable: nothing can come now; on reconnect the backfill finds what was missed.
        ws.down()
        http.down()
        meanwhile = [create_pool(anvil, uniswap) for _ in range(2)]
        ws.up()  # only the WebSocket comes back: what arrives now came by it
        seen = bus.wait_count(3)
        assert [m.pair for m in seen] == [first.pair, *(c.pair for c in meanwhile)]
        assert ws.accepted >= 2  # it did reconnect
        later = create_pool(anvil, uniswap)  # and follows the chain on the new connection
        assert bus.wait_count(4)[-1].pair == later.pair
        http.up()
        # Only the WebSocket is down: the watcher polls over HTTP between its reconnect attempts.
        ws.down()
        polled = create_pool(anvil, uniswap)  # the WebSocket stays down until the end of the test
        assert bus.wait_count(5)[-1].pair == polled.pair
    finally:
        actors.stop_all()
        ws.down()
        http.down()


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"factory": "0x1234"}, "factory = '0x1234'"),
        ({"quote_tokens": []}, "quote_tokens"),
        ({"quote_tokens": ["WETH"]}, "quote_tokens: 'WETH'"),
        ({"rpc_url": "ws://127.0.0.1:1"}, "rpc_url"),
        ({"ws_url": "http://127.0.0.1:1"}, "ws_url"),
        ({"start_block": -1}, "start_block = -1"),
        ({"start_block": "earliest"}, "start_block = 'earliest'"),
        ({"confirmations": -2}, "confirmations = -2"),
        ({"poll_s": 0}, "poll_s = 0"),
    ],
)
def test_a_bad_argument_is_refused_naming_the_field(bad: dict[str, Any], named: str) -> None:
    from sniperbot.actors.base import ActorContext
    from sniperbot.venues.evm.pool_watcher import PoolWatcher

    args: dict[str, Any] = {
        "venue": VENUE,
        "rpc_url": "http://127.0.0.1:8545",
        "factory": "0x" + "11" * 20,
        "quote_tokens": ["0x" + "22" * 20],
    }
    with pytest.raises(ValueError, match="pool watcher 'anvil'") as info:
        PoolWatcher(ActorContext(), **(args | bad))
    assert named in str(info.value)


def test_with_confirmations_a_pool_is_published_once_buried_that_deep(
    anvil: Anvil,
    uniswap: UniswapDeployment,
    actors: Actors,  # noqa: F811
    bus: PoolBus,
) -> None:
    actors.start(WATCHER, ACTOR, watcher_args(anvil, uniswap, "ws", confirmations=2))
    created = create_pool(anvil, uniswap)
    # Scanned up to head - 2 (the block before the pool's): not published yet.
    eventually(
        lambda: (c := cursor(actors.run_dir, uniswap)) is not None and c.block == created.block - 2, 60
    )
    anvil.mine(1)
    eventually(
        lambda: (c := cursor(actors.run_dir, uniswap)) is not None and c.block == created.block - 1, 60
    )
    assert bus.pump() == []
    anvil.mine(1)
    (msg,) = bus.wait_count(1)
    assert_announces(msg, created, uniswap)


def test_pools_found_before_the_watcher_joined_the_bus_are_held_not_lost(
    anvil: Anvil,
    uniswap: UniswapDeployment,
    actors: Actors,  # noqa: F811
) -> None:
    """The bus comes up late on the publishing side (a slow joiner, exaggerated): nothing is lost."""
    history = [create_pool(anvil, uniswap) for _ in range(2)]
    rundir = RunDir(actors.run_dir)
    zctx = zmq.Context()
    xpub = zctx.socket(zmq.XPUB)
    xsub = zctx.socket(zmq.XSUB)
    sub = Subscriber(zctx, rundir.bus_out, (topic.new_pool(VENUE),))
    control = f"inproc://late-proxy-{id(zctx)}"
    proxy = None
    try:
        xpub.bind(rundir.bus_out)
        # Our subscription has reached the proxy before the watcher exists: it is first in line, in
        # both forms (a tool hears local actors' messages marked: sniperbot.transport.bus).
        wanted = topic.new_pool(VENUE).encode()
        subscriptions = {b"\x01" + wanted, b"\x01" + LOCAL_MARK + wanted}
        assert {xpub.poll(10_000) and xpub.recv() for _ in range(2)} == subscriptions
        actors.start(WATCHER, ACTOR, watcher_args(anvil, uniswap, "ws", start_block=0))
        time.sleep(1.0)  # the watcher found the history long ago; its publisher has nowhere to send yet
        xsub.bind(rundir.bus_in)
        for subscription in sorted(subscriptions):
            xsub.send(subscription)  # what the proxy would have forwarded

        def forward() -> None:
            pair = zctx.socket(zmq.PAIR)
            pair.bind(control)
            with contextlib.suppress(zmq.ContextTerminated):
                zmq.proxy_steerable(xsub, xpub, None, pair)
            pair.close(0)

        proxy = threading.Thread(target=forward, daemon=True)
        proxy.start()
        got: list[NewPool] = []

        def receive() -> list[NewPool]:
            while sub.socket.poll(0):
                payload = decode_envelope(split_message(sub.socket.recv())[1]).payload
                if isinstance(payload, NewPool):
                    got.append(payload)
            return got if len(got) >= 2 else []

        eventually(receive, 60, what="the history on the bus")
        assert [m.pair for m in got] == [c.pair for c in history]
    finally:
        actors.stop_all()
        if proxy is not None:
            stop = zctx.socket(zmq.PAIR)
            stop.connect(control)
            stop.send(b"TERMINATE")
            proxy.join(5)
            stop.close(0)
        for sock in (sub.socket, xpub, xsub):
            sock.close(0)
        zctx.term()
