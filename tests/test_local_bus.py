"""The local bus (sniperbot.transport.fanout): publishers of one machine send to subscribers directly.

Real unix sockets in a real run directory; each LocalBus is driven by its own PollWatch, as the
actor runtime drives it. The node-level behaviour (an actor hears a local publisher once, the proxy
still carries everything for the node and for tools) is in ``test_a_node_on_the_local_bus_...``.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sniperbot.transport import fanout
from sniperbot.transport.bus import bus_message
from sniperbot.transport.direct import PollWatch
from sniperbot.transport.fanout import LocalBus, Subscription
from tests.conftest import RunningNode, eventually


class Actor:
    """One actor's LocalBus with its own poller, and what it received."""

    def __init__(self, run_dir: Path, actor_id: str, topics: tuple[str, ...], incarnation: int = 1) -> None:
        self.watch = PollWatch()
        self.received: list[bytes] = []
        self.joined = 0
        self.bus = LocalBus(
            run_dir,
            Subscription(actor_id, incarnation, topics),
            self.watch,
            self.received.append,
            self._on_joined,
        )

    def _on_joined(self) -> None:
        self.joined += 1

    def start(self) -> None:
        """As the runtime: learn the others before the actor starts, ask them once it is ready."""
        self.bus.start()
        self.bus.ask()

    def publish(self, topic: str, body: bytes = b"x") -> None:
        self.bus.publish(topic, memoryview(bus_message(topic, body)))


def pump(*actors: Actor, until: Callable[[], bool] | None = None, timeout_s: float = 5.0) -> None:
    """Run every actor's poller until ``until`` holds (or a quiet round, without one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = sum(a.watch.pump(10) for a in actors)
        if until is not None and until():
            return
        if until is None and not busy:
            return
    raise AssertionError("timed out pumping the local bus")


def topics_of(actor: Actor) -> list[bytes]:
    return [m.split(b"\0", 1)[0] for m in actor.received]


@pytest.mark.parametrize("order", ["subscriber first", "publisher first"])
def test_a_publisher_reaches_each_local_subscriber_of_a_topic_whichever_started_first(
    short_tmp: Path, order: str
) -> None:
    def start(a: Actor) -> Actor:
        a.start()
        return a

    if order == "subscriber first":
        sub = start(Actor(short_tmp, "strategy.a", ("md.sim.",)))
        pub = start(Actor(short_tmp, "feed.sim", ("ev.",)))
    else:
        pub = start(Actor(short_tmp, "feed.sim", ("ev.",)))
        sub = start(Actor(short_tmp, "strategy.a", ("md.sim.",)))
    pump(pub, sub, until=lambda: pub.bus.joined and sub.bus.joined)
    assert pub.joined == sub.joined == 1
    pub.publish("md.sim.trade.BTC/USDT")
    pub.publish("md.other.trade.BTC/USDT")  # nobody's topic
    sub.publish("ev.a.order")
    pump(pub, sub, until=lambda: len(sub.received) >= 1 and len(pub.received) >= 1)
    pump(pub, sub)
    assert topics_of(sub) == [b"md.sim.trade.BTC/USDT"]
    assert topics_of(pub) == [b"ev.a.order"]
    for path in (fanout.topics_path(short_tmp, "feed.sim"), fanout.topics_path(short_tmp, "strategy.a")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path  # the run dir's second wall
    pub.bus.close()
    sub.bus.close()
    assert fanout.stale_files(short_tmp) == []  # each incarnation removes its own file


def test_an_actor_hears_its_own_topic_and_a_restarted_subscriber_is_reached_again(short_tmp: Path) -> None:
    pub = Actor(short_tmp, "sniper.sim", ("ctl.echo.sniper.sim", "md."))
    pub.start()
    pub.publish("ctl.echo.sniper.sim")  # BusJoin's echo: its own publisher sends to it
    pump(pub, until=lambda: bool(pub.received))

    first = Actor(short_tmp, "portfolio", ("md.",))
    first.start()
    pump(pub, first, until=lambda: first.bus.joined)
    pub.publish("md.1")
    pump(pub, first, until=lambda: topics_of(first) == [b"md.1"])
    first.bus.close()  # killed: its socket is gone
    pub.publish("md.lost")  # nobody listens: dropped, never raised
    second = Actor(short_tmp, "portfolio", ("md.",), incarnation=2)
    second.start()
    pump(pub, second, until=lambda: second.bus.joined)
    pub.publish("md.2")
    pump(pub, second, until=lambda: bool(second.received))
    assert topics_of(second) == [b"md.2"]
    # An old incarnation's late request does not take the new one's place.
    pub.bus._add(Subscription("portfolio", 1, ("nothing.",)))
    pub.publish("md.3")
    pump(pub, second, until=lambda: len(second.received) == 2)
    assert topics_of(second) == [b"md.2", b"md.3"]


def test_a_slow_subscriber_gets_a_backlog_in_order_and_past_its_bound_drops_are_counted(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = Actor(short_tmp, "metrics", ("md.",))
    sub.start()
    pub = Actor(short_tmp, "feed.sim", ())
    pub.start()
    pump(pub, sub, until=lambda: pub.bus.joined)
    pump(pub, sub)
    # The subscriber does not read (busy): far more than a socket buffer holds is sent meanwhile.
    count = 20_000
    for i in range(count):
        pub.publish("md.q", str(i).encode())
    assert pub.bus.dropped == 0
    pump(pub, sub, until=lambda: len(sub.received) == count, timeout_s=30)
    assert [int(m.split(b"\0", 1)[1]) for m in sub.received] == list(range(count))

    monkeypatch.setattr(fanout, "BUS_HWM", 100)  # a small bound, to reach it
    sub.received.clear()
    for i in range(count):
        pub.publish("md.q", str(i).encode())
    assert pub.bus.dropped > 0
    pump(pub, sub, until=lambda: len(sub.received) + pub.bus.dropped == count, timeout_s=30)
    kept = [int(m.split(b"\0", 1)[1]) for m in sub.received]
    assert kept == sorted(kept) and kept[0] == 0  # what was kept came in order, the first ones
    # The subscriber restarts: its new entry starts afresh, the count (a Prometheus counter) does not.
    dropped = pub.bus.dropped
    pub.bus._add(Subscription("metrics", 2, ("md.",)))  # its next incarnation's request
    assert pub.bus.dropped == dropped


def test_a_corked_round_sends_its_first_message_at_once_and_the_rest_as_one_datagram_in_order(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = Actor(short_tmp, "strategy.a", ("md.",))
    sub.start()
    other = Actor(short_tmp, "portfolio", ("md.q",))
    other.start()
    pub = Actor(short_tmp, "feed.sim", ())
    pub.start()
    pump(pub, sub, other, until=lambda: pub.bus.joined)
    pump(pub, sub, other)
    datagrams: list[int] = []
    unpack = fanout._unpack
    monkeypatch.setattr(fanout, "_unpack", lambda d: datagrams.append(1) or unpack(d))

    pub.bus.cork()  # as the runtime does around each round of handling
    for i in range(10):
        pub.publish("md.q", str(i).encode())
    pub.publish("md.other", b"x")  # a topic only one subscriber wants
    pump(sub, other)
    # The round's first message to each subscriber did not wait for the round to end.
    assert [m.split(b"\0", 1)[1] for m in sub.received] == [b"0"]
    assert [m.split(b"\0", 1)[1] for m in other.received] == [b"0"]
    pub.bus.uncork()
    pump(sub, other, until=lambda: len(sub.received) == 11 and len(other.received) == 10)
    assert [m.split(b"\0", 1)[1] for m in sub.received] == [str(i).encode() for i in range(10)] + [b"x"]
    assert [m.split(b"\0", 1)[1] for m in other.received] == [str(i).encode() for i in range(10)]
    assert len(datagrams) == 2  # the other ten to each subscriber: one send, one wake-up each

    # A long corked round (a burst): its messages leave every _FLUSH_EVERY, not at its end.
    sub.received.clear()
    pub.bus.cork()
    for i in range(3 * fanout._FLUSH_EVERY):
        pub.publish("md.other", str(i).encode())
    pump(sub, until=lambda: len(sub.received) >= 2 * fanout._FLUSH_EVERY)
    pub.bus.uncork()
    pump(sub, until=lambda: len(sub.received) == 3 * fanout._FLUSH_EVERY)
    assert [int(m.split(b"\0", 1)[1]) for m in sub.received] == list(range(3 * fanout._FLUSH_EVERY))
    assert pub.bus.dropped == 0


def test_garbage_on_a_subscriber_socket_is_handed_up_as_a_bad_message_and_kills_nothing(
    short_tmp: Path,
) -> None:
    import socket as socket_

    sub = Actor(short_tmp, "risk_guard", ("md.",))
    sub.start()
    raw = socket_.socket(socket_.AF_UNIX, socket_.SOCK_SEQPACKET)
    raw.connect(fanout.socket_path(short_tmp, "risk_guard"))
    for frame in (b"\x02not msgpack", b"\x02" + os.urandom(40), b"no topic end", os.urandom(200)):
        raw.send(frame)
    raw.close()
    pump(sub)
    # Requests that do not decode are ignored; anything else goes up as a bus message, where the
    # runtime's decoding refuses and counts it (test_node's garbage test).
    assert all(not m.startswith(b"\x02") for m in sub.received)
    pub = Actor(short_tmp, "feed.sim", ())
    pub.start()
    pump(pub, sub, until=lambda: pub.bus.joined)
    pub.publish("md.after")
    pump(pub, sub, until=lambda: b"md.after" in topics_of(sub))


@pytest.mark.parametrize("local_bus", [True, False])
def test_a_node_trades_with_and_without_the_local_bus_and_the_proxy_still_carries_every_message(
    short_tmp: Path, fast_config: Path, local_bus: bool
) -> None:
    import zmq

    from sniperbot.transport.bus import Subscriber

    config = short_tmp / "node.toml"
    text = fast_config.read_text()
    assert "[node]" in text
    config.write_text(text.replace("[node]", f"[node]\nlocal_bus = {str(local_bus).lower()}", 1))
    node = RunningNode(short_tmp / "run", config)
    ctx = zmq.Context()
    try:
        node.wait_ready()
        # A tool on the proxy (as the soak bench, the dashboard's tests): it hears the local actors.
        watcher = Subscriber(ctx, f"ipc://{node.run_dir}/bus-out.sock", ("ev.",))
        eventually(lambda: node.admin("status")["fills"] >= 2, 60, what="two fills")
        heard = eventually(
            lambda: watcher.socket.poll(100) and watcher.recv(), 30, what="an event on the proxy"
        )
        assert heard[0].startswith("ev.")
        files = {p.name for p in node.run_dir.iterdir()}
        assert ("sub-executor.sim.sock" in files) is local_bus
        watcher.close()
    finally:
        assert node.stop() == 0
        ctx.term()
    assert not list(node.run_dir.glob("sub-*")), "the node removes the local bus's files at stop"


def test_what_an_actor_publishes_while_starting_reaches_local_subscribers_once_it_is_ready(
    short_tmp: Path,
) -> None:
    sub = Actor(short_tmp, "strategy.a", ("md.",))
    sub.start()
    pub = Actor(short_tmp, "feed.sim", ())
    pub.bus.start()  # as the runtime before on_start
    pub.publish("md.early")  # on_start publishes: held, the others' files are not read yet
    pump(pub, sub)
    assert sub.received == []
    pub.bus.learn()  # as the runtime right after the actor's Ready
    pump(pub, sub, until=lambda: topics_of(sub) == [b"md.early"])
    pub.publish("md.later")
    pump(pub, sub, until=lambda: topics_of(sub) == [b"md.early", b"md.later"])
