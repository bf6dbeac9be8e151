"""A (re)started actor's join: what a local publisher sent it directly while it joined is not lost.

The race this pins down (CI, a signal recorder): a publisher sends a value to a joining actor directly
(the local bus) and, marked, to the node's proxy for the last-value cache. The actor used to drop the
direct copy while joining, counting on the node's snapshot to carry the value; but the proxy copy can
reach the node after the actor's SnapshotRequest, and then neither copy ever reached the actor.

Here the test plays the node, so that the race is not left to chance: it binds the control ROUTER and
the bus's publisher side itself, takes the publisher's proxy copies (never forwarded: the actor's
join falls back to asking for the snapshot after its probes, as with no proxy) and answers the
SnapshotRequest as each case needs. The actors are real runtimes on real sockets (threads of this
process, as ``tests/venues_ccxt`` runs them).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import zmq

from sniperbot.actors.base import Actor
from sniperbot.actors.runtime import ActorLaunch, ActorRuntime, run_in_thread
from sniperbot.messages import Envelope, Quote, SnapshotEnd, SnapshotRequest, decode_envelope
from sniperbot.messages.envelope import encode_envelope
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import split_message
from tests.conftest import eventually

TOPIC = "md.x.BTC/USDT.quote"
_OUTGOING: queue.SimpleQueue[tuple[str, Quote]] = queue.SimpleQueue()
_HEARD: list[Envelope] = []
AUTH_KEY = os.urandom(32)


class Talker(Actor):
    """Publishes what the test queues, from its own loop."""

    def on_start(self) -> None:
        """Poll the test's queue."""
        self.ctx.every(0.005, self._pump)

    def _pump(self) -> None:
        while not _OUTGOING.empty():
            self.ctx.publish(*_OUTGOING.get())

    def on_message(self, envelope: Envelope) -> None:
        """Nothing to hear."""


class Listener(Actor):
    """Keeps every quote it is handed."""

    topics = (TOPIC,)

    def on_message(self, envelope: Envelope) -> None:
        """Keep it."""
        if isinstance(envelope.payload, Quote):
            _HEARD.append(envelope)


def quote(bid: float) -> Quote:
    """A quote of ``bid``."""
    return Quote(venue="x", symbol="BTC/USDT", bid=bid, bid_size=1.0, ask=bid + 1, ask_size=1.0, ts_ns=1)


class FakeNode:
    """The node's side of a join: the control ROUTER, and the bus's inbound side (proxy copies kept)."""

    def __init__(self, run_dir: Path) -> None:
        rundir = RunDir(run_dir)
        rundir.create()
        self.ctx = zmq.Context()
        self.control = self.ctx.socket(zmq.ROUTER)
        self.control.bind(rundir.control)
        self.bus_in = self.ctx.socket(zmq.SUB)
        self.bus_in.setsockopt(zmq.SUBSCRIBE, b"")
        self.bus_in.bind(rundir.bus_in)

    def proxy_copy(self, wanted: str, timeout_s: float = 10.0) -> bytes:
        """The envelope frame of the next proxy copy on ``wanted`` (the node's last-value cache's)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.bus_in.poll(50):
                message = self.bus_in.recv()
                key, frame = split_message(message[1:] if message[:1] == b"\x00" else message)
                if bytes(key) == wanted.encode():
                    return bytes(frame)
        raise AssertionError(f"no proxy copy on {wanted}")

    def snapshot_request(self, timeout_s: float = 20.0) -> bytes:
        """The routing identity of the first SnapshotRequest that comes (heartbeats skipped)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.control.poll(50):
                identity, frame = self.control.recv_multipart()
                if isinstance(decode_envelope(frame).payload, SnapshotRequest):
                    return identity
        raise AssertionError("no SnapshotRequest")

    def answer(self, identity: bytes, frames: list[bytes], end: bool = True) -> None:
        """The snapshot's values, then (unless ``end`` is False: a node that lost it) its end."""
        for frame in frames:
            self.control.send_multipart((identity, frame))
        if end:
            envelope = Envelope("ctl", "node", 0, 0, time.time_ns(), SnapshotEnd(values=len(frames)))
            self.control.send_multipart((identity, encode_envelope(envelope)))

    def close(self) -> None:
        self.control.close(0)
        self.bus_in.close(0)
        self.ctx.term()


def start(run_dir: Path, actor_id: str, actor: str) -> tuple[ActorRuntime, threading.Thread]:
    """An incarnation of ``actor`` in a thread of this process, opened."""
    launch = ActorLaunch(
        actor_id=actor_id,
        actor=actor,
        args={},
        run_dir=str(run_dir),
        incarnation=1,
        heartbeat_interval_s=3600.0,  # the fake node sends no heartbeats: never orphaned
        journal_durability="process",
        auth_key=AUTH_KEY,
        node_life="t1",
    )
    return run_in_thread(launch)


@pytest.fixture
def joining(short_tmp: Path) -> Iterator[tuple[FakeNode, bytes, Envelope]]:
    """A listener joining while a local talker sends it M directly: (node, its identity, M's frame).

    The listener has not asked for the snapshot when M comes (no proxy answers its probes, so it asks
    after them, some 2 s on); the node has M's proxy copy, as its cache would.
    """
    _HEARD.clear()
    node = FakeNode(short_tmp)
    running = []
    try:
        running.append(start(short_tmp, "feed.x", f"{__name__}:Talker"))
        # The talker's bus connection to the node is up once a proxy copy comes back.
        eventually(lambda: _OUTGOING.put(("md.warm", quote(0.0))) or node.bus_in.poll(20), 10, what="bus up")
        running.append(start(short_tmp, "strategy.l", f"{__name__}:Listener"))
        listener = running[-1][0]
        # The talker sends to the listener directly once it has taken the listener's request.
        eventually(lambda: listener._local is not None and listener._local.joined, 10, what="local join")
        _OUTGOING.put((TOPIC, quote(100.0)))
        m = node.proxy_copy(TOPIC)
        yield node, node.snapshot_request(), msgspec.structs.replace(decode_envelope(m), mac=b"")
    finally:
        for runtime, thread in running:
            runtime.stop()
            thread.join(10)
        node.close()


def heard() -> list[tuple[str, int, float]]:
    """(sender, seq, bid) of every quote on TOPIC the listener was handed, in order."""
    return [(e.sender, e.seq, e.payload.bid) for e in _HEARD if e.topic == TOPIC]


def test_a_value_sent_directly_while_joining_arrives_when_the_snapshot_lacks_it(
    joining: tuple[FakeNode, bytes, Envelope],
) -> None:
    node, identity, m = joining
    # Its proxy copy reached the node after the request: the snapshot does not have it.
    node.answer(identity, [])
    eventually(lambda: heard(), 10, what="the value sent while joining")
    time.sleep(0.2)
    assert heard() == [("feed.x", m.seq, 100.0)]


def test_a_value_the_snapshot_gives_is_not_taken_twice(joining: tuple[FakeNode, bytes, Envelope]) -> None:
    node, identity, m = joining
    node.answer(identity, [encode_envelope(m)])
    eventually(lambda: heard(), 10, what="the snapshot's value")
    time.sleep(0.2)
    assert heard() == [("feed.x", m.seq, 100.0)]


def test_a_held_value_older_than_the_snapshots_is_not_taken_after_it(
    joining: tuple[FakeNode, bytes, Envelope],
) -> None:
    node, identity, m = joining
    newer = msgspec.structs.replace(m, seq=m.seq + 5, payload=quote(101.0))
    node.answer(identity, [encode_envelope(newer)])
    eventually(lambda: heard(), 10, what="the snapshot's value")
    time.sleep(0.2)
    assert heard() == [("feed.x", m.seq + 5, 101.0)], "the last value went back to an older one"


def test_without_a_snapshot_end_the_held_value_is_taken_after_a_wait(
    joining: tuple[FakeNode, bytes, Envelope],
) -> None:
    node, identity, m = joining
    node.answer(identity, [], end=False)  # a harness with no node, or a node that lost the request
    asked = time.monotonic()
    eventually(lambda: heard(), 10, what="the held value")
    assert heard() == [("feed.x", m.seq, 100.0)]
    assert time.monotonic() - asked >= 0.5, "taken before the snapshot could have come"
