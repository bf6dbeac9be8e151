"""The transport over real ZeroMQ ipc sockets: the bus filters by prefix, order flow is at-least-once.

The last test kills a real receiving process with SIGKILL in the middle of a stream and
shows what the receiver must do (journal a message id before acknowledging it) for each
message to take effect exactly once across incarnations.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import zmq

from sniperbot.messages import Ack, Envelope, InvalidFrame, OrderIntent, Quote, decode_envelope
from sniperbot.transport import BusProxy, Inbox, Outbox, Publisher, Subscriber, bus_message, split_message
from sniperbot.transport.direct import DIRECT_MAX_FRAME, PollWatch, direct_path
from sniperbot.transport.reliable import Identity, decode_routed
from tests.conftest import ROOT, eventually


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    try:
        yield context
    finally:
        context.destroy(linger=0)


def _intent(n: int) -> OrderIntent:
    return OrderIntent(
        intent_id=f"s-{n}",
        strategy_id="s",
        intent_seq=n,
        venue="sim",
        symbol="BTC/USDT",
        side="buy",
        quantity=0.01,
    )


def _quote(symbol: str, n: int) -> Quote:
    return Quote(venue="sim", symbol=symbol, bid=n, bid_size=1.0, ask=n + 1.0, ask_size=1.0, ts_ns=n)


def _recv(inbox: Inbox, timeout_ms: int = 2000) -> tuple[bytes, Envelope] | None:
    if not inbox.socket.poll(timeout_ms):
        return None
    return decode_routed(inbox.socket.recv_multipart())


def _pump_acks(outbox: Outbox, timeout_ms: int = 0) -> list[Envelope]:
    """Read every ack waiting on the outbox's socket and apply it."""
    acks = []
    while outbox.socket.poll(timeout_ms):
        envelope = decode_envelope(outbox.socket.recv())
        outbox.on_ack(envelope)
        acks.append(envelope)
        timeout_ms = 0
    return acks


# -- the bus ----------------------------------------------------------------------------------


def test_bus_proxy_forwards_topic_and_envelope_by_prefix(ctx: zmq.Context, short_tmp: Path) -> None:
    bus_in, bus_out = f"ipc://{short_tmp}/bus-in.sock", f"ipc://{short_tmp}/bus-out.sock"
    proxy = BusProxy(ctx, bus_in, bus_out)
    proxy.start()
    publisher = Publisher(ctx, bus_in, "feed.sim", 3)
    btc = Subscriber(ctx, bus_out, ("md.sim.BTC/USDT.",))
    lookalike = Subscriber(ctx, bus_out, ("md.sim.BTC/USDTX.",))
    try:
        # Subscriptions travel upstream asynchronously: publish until both have heard something.
        got_btc: list[tuple[bytes, memoryview]] = []
        got_x: list[tuple[bytes, memoryview]] = []

        def drain() -> bool:
            for sub, into in ((btc, got_btc), (lookalike, got_x)):
                while sub.socket.poll(0):
                    into.append(split_message(sub.socket.recv()))
            return bool(got_btc and got_x)

        def publish_round() -> bool:
            publisher.publish("md.sim.BTC/USDTX.quote", _quote("BTC/USDTX", 1))
            publisher.publish("md.sim.BTC/USDT.quote", _quote("BTC/USDT", 2))
            publisher.publish("md.sim.ETH/USDT.quote", _quote("ETH/USDT", 3))
            time.sleep(0.01)
            return drain()

        eventually(publish_round, 5, interval_s=0, what="both subscribers connected")
        # A final marker on each topic: once it arrives, everything before it has too.
        last = publisher.seq + 2
        publisher.publish("md.sim.BTC/USDTX.quote", _quote("BTC/USDTX", 9))
        publisher.publish("md.sim.BTC/USDT.quote", _quote("BTC/USDT", 9))
        eventually(
            lambda: drain() and decode_envelope(got_btc[-1][1]).seq == last, 5, what="the last message"
        )
        eventually(lambda: drain() and decode_envelope(got_x[-1][1]).seq == last - 1, 5)

        for frames, topic, symbol in (
            (got_btc, "md.sim.BTC/USDT.quote", "BTC/USDT"),
            (got_x, "md.sim.BTC/USDTX.quote", "BTC/USDTX"),
        ):
            seqs = []
            for message in frames:
                assert len(message) == 2
                assert message[0] == topic.encode()
                envelope = decode_envelope(message[1])
                assert envelope.topic == topic
                assert envelope.sender == "feed.sim" and envelope.incarnation == 3
                assert isinstance(envelope.payload, Quote) and envelope.payload.symbol == symbol
                seqs.append(envelope.seq)
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    finally:
        for sock in (publisher, btc, lookalike):
            sock.close()
        proxy.stop()


def test_a_bus_message_is_one_frame_and_a_malformed_one_is_named(ctx: zmq.Context, short_tmp: Path) -> None:
    """One frame per message on the wire; no topic end, or a NUL in a topic, is refused with the reason."""
    proxy = BusProxy(ctx, f"ipc://{short_tmp}/in.sock", f"ipc://{short_tmp}/out.sock")
    proxy.start()
    publisher = Publisher(ctx, f"ipc://{short_tmp}/in.sock", "feed.sim", 1)
    raw = ctx.socket(zmq.SUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.SUBSCRIBE, b"md.sim.")
    raw.connect(f"ipc://{short_tmp}/out.sock")
    try:

        def heard() -> bool:
            publisher.publish("md.sim.X.quote", _quote("X", 1))
            return bool(raw.poll(20))

        eventually(heard, 5, interval_s=0, what="the subscriber connected")
        frames = raw.recv_multipart()
        assert len(frames) == 1  # not [topic, envelope]: one send, one receive, one trip through the proxy
        topic, frame = split_message(frames[0])
        assert topic == b"md.sim.X.quote" and decode_envelope(frame).topic == "md.sim.X.quote"
        with pytest.raises(ValueError, match="contains a NUL byte"):
            publisher.publish("md.sim.X\0Y.quote", _quote("X", 2))
        with pytest.raises(InvalidFrame, match="without a topic end"):
            split_message(b"md.sim.X.quote")
        assert bus_message("a.b", b"env") == b"a.b\0env"
    finally:
        publisher.close()
        raw.close()
        proxy.stop()


def test_bus_proxy_stop_stops_forwarding(ctx: zmq.Context, short_tmp: Path) -> None:
    bus_in, bus_out = f"ipc://{short_tmp}/bus-in.sock", f"ipc://{short_tmp}/bus-out.sock"
    proxy = BusProxy(ctx, bus_in, bus_out)
    proxy.start()
    publisher = Publisher(ctx, bus_in, "p", 1)
    sub = Subscriber(ctx, bus_out, ("md.",))
    try:

        def heard() -> bool:
            publisher.publish("md.sim.X.quote", _quote("X", 1))
            return bool(sub.socket.poll(20))

        eventually(heard, 5, interval_s=0)
        proxy.stop()
        while sub.socket.poll(50):
            sub.socket.recv_multipart()
        publisher.publish("md.sim.X.quote", _quote("X", 2))
        assert not sub.socket.poll(200)
    finally:
        publisher.close()
        sub.close()


# -- the reliable path ------------------------------------------------------------------------


def test_message_is_delivered_and_acked_once(ctx: zmq.Context, short_tmp: Path) -> None:
    endpoint = f"ipc://{short_tmp}/inbox-risk.sock"
    inbox = Inbox(ctx, endpoint, "risk_guard", 1)
    outbox = Outbox(ctx, endpoint, "strategy.a", 4, resend_after_s=0.05)
    try:
        seq = outbox.send("to.risk_guard", _intent(1))
        assert seq == 1 and outbox.unacked == 1
        received = _recv(inbox)
        assert received is not None
        identity, envelope = received
        assert (envelope.topic, envelope.sender, envelope.incarnation, envelope.seq) == (
            "to.risk_guard",
            "strategy.a",
            4,
            1,
        )
        assert envelope.payload == _intent(1)
        assert not inbox.is_duplicate(envelope)
        inbox.ack(identity, envelope)
        acks = _pump_acks(outbox, 2000)
        assert [a.payload for a in acks] == [Ack(seq=1)]
        assert acks[0].sender == "risk_guard"
        assert outbox.unacked == 0
        # Nothing is left to resend, and nothing else arrives.
        outbox.resend_due(time.monotonic_ns() + 10**10)
        assert outbox.resent == 0
        assert _recv(inbox, 200) is None
    finally:
        outbox.close()
        inbox.close()


def test_a_deferred_ack_is_sent_by_flush_and_counts_as_handled_at_once(
    ctx: zmq.Context, short_tmp: Path
) -> None:
    endpoint = f"ipc://{short_tmp}/inbox-deferred.sock"
    inbox = Inbox(ctx, endpoint, "executor.sim", 1)
    outbox = Outbox(ctx, endpoint, "risk_guard", 1)
    try:
        outbox.send("to.executor.sim", _intent(1))
        received = _recv(inbox)
        assert received is not None
        identity, envelope = received
        started = time.monotonic_ns()
        inbox.ack_later(identity, envelope)
        assert inbox.is_duplicate(envelope)  # handled: a resend now is dropped, acked or not
        assert inbox.queued == 1 and not inbox.ack_overdue(started)
        assert _pump_acks(outbox, 100) == [] and outbox.unacked == 1  # nothing sent yet
        assert inbox.ack_overdue(started + 10**9)  # a busy actor still sends it within the bound
        inbox.flush()
        assert inbox.queued == 0
        assert [a.payload for a in _pump_acks(outbox, 2000)] == [Ack(seq=1)]
        assert outbox.unacked == 0
    finally:
        outbox.close()
        inbox.close()


def test_sequence_numbers_count_per_outbox_and_acks_match_by_seq(ctx: zmq.Context, short_tmp: Path) -> None:
    endpoint = f"ipc://{short_tmp}/inbox.sock"
    inbox = Inbox(ctx, endpoint, "exec", 1)
    outbox = Outbox(ctx, endpoint, "risk_guard", 2)
    try:
        assert [outbox.send("to.exec", _intent(n)) for n in range(1, 6)] == [1, 2, 3, 4, 5]
        received = [_recv(inbox) for _ in range(5)]
        assert [r[1].seq for r in received if r] == [1, 2, 3, 4, 5]
        # Ack out of order, and only some of them.
        for identity, envelope in (received[3], received[1]):  # type: ignore[misc]
            inbox.ack(identity, envelope)
        eventually(lambda: _pump_acks(outbox, 50) == [] and outbox.unacked == 3, 5)
        assert outbox.unacked == 3
        # Only the unacknowledged ones are resent.
        outbox.resend_all()
        again = [_recv(inbox) for _ in range(3)]
        assert sorted(r[1].seq for r in again if r) == [1, 3, 5]
        assert outbox.resent == 3
    finally:
        outbox.close()
        inbox.close()


def test_resend_due_waits_for_the_resend_timeout(ctx: zmq.Context, short_tmp: Path) -> None:
    endpoint = f"ipc://{short_tmp}/inbox.sock"
    inbox = Inbox(ctx, endpoint, "exec", 1)
    outbox = Outbox(ctx, endpoint, "risk_guard", 1, resend_after_s=5.0)
    try:
        outbox.send("to.exec", _intent(1))
        first = _recv(inbox)
        assert first is not None
        outbox.resend_due(time.monotonic_ns())  # far less than 5 s later
        assert outbox.resent == 0 and _recv(inbox, 100) is None
        outbox.resend_due(time.monotonic_ns() + 5 * 10**9)
        assert outbox.resent == 1
        second = _recv(inbox)
        assert second is not None and second[1] == first[1]
    finally:
        outbox.close()
        inbox.close()


def test_unacked_message_is_resent_to_a_restarted_inbox(ctx: zmq.Context, short_tmp: Path) -> None:
    endpoint = f"ipc://{short_tmp}/inbox-exec.sock"
    outbox = Outbox(ctx, endpoint, "risk_guard", 1, resend_after_s=60.0)
    monitor = outbox.socket.get_monitor_socket(zmq.EVENT_CONNECTED)
    first = Inbox(ctx, endpoint, "executor.sim", 1)  # bound after the monitor: no event is missed
    second: Inbox | None = None
    try:
        assert monitor.poll(2000)
        monitor.recv_multipart()  # connected to the first incarnation
        outbox.send("to.executor.sim", _intent(7))
        received = _recv(first)
        assert received is not None and received[1].seq == 1
        first.close()  # died before acknowledging
        second = Inbox(ctx, endpoint, "executor.sim", 2)
        assert monitor.poll(5000), "the outbox did not reconnect to the new incarnation"
        monitor.recv_multipart()
        assert outbox.unacked == 1
        outbox.resend_all()  # what the runtime does when the peer announces Ready
        again = _recv(second)
        assert again is not None
        identity, envelope = again
        assert envelope == received[1]  # same id: sender, incarnation, seq
        assert not second.is_duplicate(envelope)  # the new incarnation has not handled it
        second.ack(identity, envelope)
        acks = _pump_acks(outbox, 2000)
        assert acks and acks[0].incarnation == 2
        assert outbox.unacked == 0
    finally:
        outbox.socket.disable_monitor()
        monitor.close()
        outbox.close()
        first.close()
        if second is not None:
            second.close()


def test_resend_timer_alone_reaches_a_restarted_inbox(ctx: zmq.Context, short_tmp: Path) -> None:
    """Without a Ready announcement, the resend timeout still delivers to the new incarnation."""
    endpoint = f"ipc://{short_tmp}/inbox-exec.sock"
    first = Inbox(ctx, endpoint, "executor.sim", 1)
    outbox = Outbox(ctx, endpoint, "risk_guard", 1, resend_after_s=0.05)
    second = None
    try:
        outbox.send("to.executor.sim", _intent(1))
        assert _recv(first) is not None
        first.close()
        second = Inbox(ctx, endpoint, "executor.sim", 2)

        def delivered() -> tuple[bytes, Envelope] | None:
            outbox.resend_due(time.monotonic_ns())
            return _recv(second, 20)  # type: ignore[arg-type]

        identity, envelope = eventually(delivered, 5, interval_s=0, what="resent message")
        assert envelope.seq == 1 and outbox.resent >= 1
        second.ack(identity, envelope)
        eventually(lambda: _pump_acks(outbox, 20) is not None and outbox.unacked == 0, 5)
    finally:
        outbox.close()
        first.close()
        if second is not None:
            second.close()


def test_duplicates_are_detected_by_message_id_after_ack(ctx: zmq.Context, short_tmp: Path) -> None:
    endpoint = f"ipc://{short_tmp}/inbox.sock"
    inbox = Inbox(ctx, endpoint, "risk_guard", 1)
    outbox = Outbox(ctx, endpoint, "strategy.a", 1)
    try:
        outbox.send("to.risk_guard", _intent(1))
        identity, envelope = _recv(inbox) or (b"", None)
        assert envelope is not None
        assert not inbox.is_duplicate(envelope)  # not yet handled
        outbox.resend_all()  # the sender did not get the ack in time
        identity2, resent = _recv(inbox) or (b"", None)
        assert resent == envelope
        assert not inbox.is_duplicate(resent), "only an acknowledged id is a duplicate"
        inbox.ack(identity, envelope)
        assert inbox.is_duplicate(resent)
        inbox.ack(identity2, resent)  # acknowledged again, recorded once
        assert len(_pump_acks(outbox, 1000)) >= 1
        eventually(lambda: _pump_acks(outbox, 20) is not None and outbox.unacked == 0, 5)
        # The id is the triple: another incarnation or sender with the same seq is new.
        assert not inbox.is_duplicate(Envelope("to.risk_guard", "strategy.a", 2, 1, 0, _intent(1)))
        assert not inbox.is_duplicate(Envelope("to.risk_guard", "strategy.b", 1, 1, 0, _intent(1)))
        assert not inbox.is_duplicate(Envelope("to.risk_guard", "strategy.a", 1, 2, 0, _intent(1)))
        assert inbox.is_duplicate(Envelope("other.topic", "strategy.a", 1, 1, 99, _intent(2)))
    finally:
        outbox.close()
        inbox.close()


def test_messages_sent_before_the_receiver_binds_are_delivered(ctx: zmq.Context, short_tmp: Path) -> None:
    endpoint = f"ipc://{short_tmp}/inbox-late.sock"
    outbox = Outbox(ctx, endpoint, "risk_guard", 1, resend_after_s=0.2)
    inbox = None
    try:
        for n in range(1, 6):
            outbox.send("to.late", _intent(n))
        assert outbox.unacked == 5
        time.sleep(0.05)
        inbox = Inbox(ctx, endpoint, "late", 1)
        handled: list[int] = []

        def all_handled() -> bool:
            outbox.resend_due(time.monotonic_ns())  # the runtime's resend timer
            _pump_acks(outbox)
            while (received := _recv(inbox, 10)) is not None:  # type: ignore[arg-type]
                identity, envelope = received
                if not inbox.is_duplicate(envelope):  # type: ignore[union-attr]
                    handled.append(envelope.seq)
                inbox.ack(identity, envelope)  # type: ignore[union-attr]
            return outbox.unacked == 0

        eventually(all_handled, 5, interval_s=0, what="all five acknowledged")
        assert handled == [1, 2, 3, 4, 5]
    finally:
        outbox.close()
        if inbox is not None:
            inbox.close()


# -- the direct unix socket between processes of one machine -----------------------------------


class _Receiver:
    """An inbox with a direct socket, as the runtime drives it: frames queue until read."""

    def __init__(self, ctx: zmq.Context, endpoint: str, incarnation: int = 1) -> None:
        self.watch = PollWatch()
        self.frames: list[tuple[Identity, Envelope]] = []
        self.inbox = Inbox(
            ctx,
            endpoint,
            "executor.sim",
            incarnation,
            watch=self.watch,
            on_direct=lambda identity, frame: self.frames.append((identity, decode_envelope(frame))),
        )

    def take(self, timeout_s: float = 2.0) -> tuple[Identity, Envelope]:
        deadline = time.monotonic() + timeout_s
        while not self.frames and time.monotonic() < deadline:
            self.watch.pump(10)
        assert self.frames, "nothing arrived on the direct socket"
        return self.frames.pop(0)


def test_a_local_outbox_sends_by_the_direct_socket_and_is_acked_by_it(
    ctx: zmq.Context, short_tmp: Path
) -> None:
    endpoint = f"ipc://{short_tmp}/inbox-direct.sock"
    assert direct_path(endpoint) == f"{short_tmp}/inbox-direct.d.sock"
    assert direct_path("tcp://127.0.0.1:5555") is None  # a cluster peer: ZeroMQ
    receiver = _Receiver(ctx, endpoint)
    sender = PollWatch()
    outbox = Outbox(ctx, endpoint, "risk_guard", 3, signer=None, watch=sender)
    try:
        assert (Path(f"{short_tmp}/inbox-direct.d.sock").stat().st_mode & 0o777) == 0o600
        outbox.send("to.executor.sim", _intent(1))
        identity, envelope = receiver.take()
        assert envelope.payload == _intent(1) and (envelope.sender, envelope.seq) == ("risk_guard", 1)
        assert receiver.inbox.direct is not None and receiver.inbox.direct.connections == 1
        assert _recv(receiver.inbox, 100) is None  # nothing came by the ZeroMQ ROUTER
        receiver.inbox.ack_later(identity, envelope)
        receiver.inbox.flush()  # the ack goes back on the connection the message came by
        eventually(lambda: sender.pump(10) >= 0 and outbox.unacked == 0, 2, interval_s=0, what="acked")
        assert _pump_acks(outbox, 50) == []  # and not by ZeroMQ
        # A frame too big for a datagram goes by ZeroMQ, and is acknowledged there.
        big = msgspec.structs.replace(_intent(2), strategy_id="s" * (DIRECT_MAX_FRAME + 1))
        outbox.send("to.executor.sim", big)
        received = _recv(receiver.inbox)
        assert received is not None and received[1].payload == big
        receiver.inbox.ack(*received)
        assert [a.payload for a in _pump_acks(outbox, 2000)] == [Ack(seq=2)]
        assert outbox.unacked == 0 and outbox.direct is not None and outbox.direct.connects == 1
    finally:
        outbox.close()
        receiver.inbox.close()


def test_a_receiver_that_does_not_read_loses_nothing_on_the_direct_socket(
    ctx: zmq.Context, short_tmp: Path
) -> None:
    """A stopped receiver's socket buffer fills; what did not fit is resent, each message handled once."""
    endpoint = f"ipc://{short_tmp}/inbox-full.sock"
    receiver = _Receiver(ctx, endpoint)
    sender = PollWatch()
    outbox = Outbox(ctx, endpoint, "risk_guard", 1, resend_after_s=0.05, watch=sender)
    count = 3000  # ~0.5 MB of envelopes: more than a unix socket buffers
    try:
        for n in range(1, count + 1):
            outbox.send("to.executor.sim", _intent(n))
        receiver.watch.pump(0)  # accepted, but nothing read yet beyond one batch
        handled: dict[int, int] = {}

        def progress() -> bool:
            receiver.watch.pump(5)
            while receiver.frames:
                identity, envelope = receiver.frames.pop(0)
                if not receiver.inbox.is_duplicate(envelope):
                    handled[envelope.seq] = handled.get(envelope.seq, 0) + 1
                receiver.inbox.ack_later(identity, envelope)
            receiver.inbox.flush()
            sender.pump(0)
            outbox.resend_due(time.monotonic_ns())
            return outbox.unacked == 0

        eventually(progress, 20, interval_s=0, what="every message acknowledged")
        assert sorted(handled) == list(range(1, count + 1)) and set(handled.values()) == {1}
        assert outbox.resent > 0, "the buffer never filled: the test did not test the resend"
    finally:
        outbox.close()
        receiver.inbox.close()


# -- a real receiving process, killed with SIGKILL mid-stream -----------------------------------

_RECEIVER = r"""
import os, sys, time
import zmq
from sniperbot.messages import decode_envelope
from sniperbot.transport.direct import PollWatch
from sniperbot.transport.reliable import Inbox, decode_routed

endpoint, journal_path, deliveries_path = sys.argv[1:4]
hang_after, incarnation, transport = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
path = endpoint[len("ipc://"):]
if os.path.exists(path):
    os.unlink(path)  # left behind by a killed predecessor
journaled = set()
if os.path.exists(journal_path):
    with open(journal_path) as f:
        journaled = set(f.read().split())
journal = open(journal_path, "a")
deliveries = open(deliveries_path, "a")
ctx = zmq.Context()
poller = zmq.Poller()
watch = PollWatch(poller)  # as the actor runtime: its direct sockets in its poller
received = []
direct = transport == "direct"
inbox = Inbox(
    ctx, endpoint, "receiver", incarnation, watch=watch if direct else None,
    on_direct=lambda identity, frame: received.append((identity, decode_envelope(frame))),
)
poller.register(inbox.socket, zmq.POLLIN)
print("ready", flush=True)
handled = 0


def next_message():
    while not received:
        for sock, _ in poller.poll():
            if sock is inbox.socket:
                received.append(decode_routed(inbox.socket.recv_multipart()))
            else:
                watch.handle(sock)
    return received.pop(0)


while True:
    identity, envelope = next_message()
    msg_id = f"{envelope.sender}/{envelope.incarnation}/{envelope.seq}"
    deliveries.write(msg_id + "\n")
    deliveries.flush()
    if msg_id not in journaled and not inbox.is_duplicate(envelope):
        journal.write(msg_id + "\n")  # journal the id (the effect) before acknowledging
        journal.flush()
        journaled.add(msg_id)
        handled += 1
        if handled == hang_after:
            time.sleep(3600)  # the SIGKILL lands here: journaled, never acknowledged
    inbox.ack(identity, envelope)
"""


def _start_receiver(
    script: Path,
    endpoint: str,
    journal: Path,
    deliveries: Path,
    hang_after: int,
    incarnation: int,
    transport: str,
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(script),
            endpoint,
            str(journal),
            str(deliveries),
            str(hang_after),
            str(incarnation),
            transport,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("transport", ["zmq", "direct"])
def test_receiver_killed_mid_stream_handles_every_message_exactly_once(
    ctx: zmq.Context, short_tmp: Path, transport: str
) -> None:
    script = short_tmp / "receiver.py"
    script.write_text(_RECEIVER)
    endpoint = f"ipc://{short_tmp}/inbox-recv.sock"
    journal, deliveries = short_tmp / "journal.txt", short_tmp / "deliveries.txt"
    watch = PollWatch()
    outbox = Outbox(
        ctx, endpoint, "sender", 1, resend_after_s=0.1, watch=watch if transport == "direct" else None
    )
    processes: list[subprocess.Popen[str]] = []

    def pump() -> None:
        watch.pump(0)
        _pump_acks(outbox, 10)
        outbox.resend_due(time.monotonic_ns())

    try:
        first = _start_receiver(script, endpoint, journal, deliveries, 10, 1, transport)
        processes.append(first)
        for n in range(1, 31):
            outbox.send("to.receiver", _intent(n))
        eventually(lambda: pump() or len(_lines(journal)) >= 10, 10, interval_s=0, what="10 handled")
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(5) == -signal.SIGKILL
        assert outbox.unacked >= 21  # the 10th was journaled but never acknowledged
        for n in range(31, 51):  # sent while nobody listens
            outbox.send("to.receiver", _intent(n))
            pump()
        second = _start_receiver(script, endpoint, journal, deliveries, 0, 2, transport)
        processes.append(second)
        outbox.resend_all()  # the receiver announced its new incarnation
        eventually(lambda: pump() or outbox.unacked == 0, 10, interval_s=0, what="all acknowledged")
    finally:
        outbox.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(5)
            if process.stdout is not None:
                process.stdout.close()

    every = {f"sender/1/{n}" for n in range(1, 51)}
    delivered = _lines(deliveries)
    handled = _lines(journal)
    assert every <= set(delivered), "at least once: every message reached a handler"
    assert sorted(handled) == sorted(every), "exactly once after dedup by message id"
    # The 10th message reached both incarnations; only the journal kept it from acting twice.
    assert delivered.count("sender/1/10") >= 2
    assert handled.count("sender/1/10") == 1
    # The first incarnation handled its messages in sending order. (The second one may not:
    # what queued while it was down arrives before older messages resent after it started.)
    assert handled[:10] == [f"sender/1/{n}" for n in range(1, 11)]
    if transport == "direct":  # and it went by the direct socket: once to each incarnation
        assert outbox.direct is not None and outbox.direct.connects == 2
