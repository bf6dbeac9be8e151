"""Hops: one message round a 4-process ring: reliable (ZeroMQ, direct socket) and bus (proxy, none).

The order path is a chain of reliable hops (strategy -> risk guard -> executor -> venue ->
executor). This measures one hop's cost apart from the actors: A -> B -> C -> D -> A, one
message in flight, each hop a process of a forkserver.

- ``raw zmq`` (the floor, as in ``bench/tick_to_trade.py``): blocking PUSH/PULL over ipc,
  decode and re-encode, nothing else.
- ``reliable, zmq``: sniperbot's :class:`~sniperbot.transport.reliable.Outbox` and
  :class:`~sniperbot.transport.reliable.Inbox` as before the direct socket (DEALER/ROUTER), with
  envelopes, acknowledgements deferred as the actor runtime defers them, and resends.
- ``reliable, direct``: the same classes given a poller (:mod:`sniperbot.transport.direct`), as
  the actor runtime now gives them: the frames go by a unix ``SOCK_SEQPACKET`` socket.
- ``bus, via proxy``: each hop a bus leg as the node runs it: the hop's PUB -> an XSUB/XPUB proxy
  (libzmq's, in a fifth process, as in the node) -> the next hop's SUB, one frame per message
  (:func:`~sniperbot.transport.bus.bus_message`), a topic per hop. The order path has two such legs
  (feed -> strategy, executor -> back), and ``bench/tick_to_trade.py`` shows each costing about
  as much as the whole raw ring.
- ``bus, no proxy``: the same legs with each hop's PUB bound and the next SUB connected to it: what a
  bus that fans out from the publisher would save (the candidate next step for the bus legs).

Prints p50/p99 of the round trip and each variant's ratio to the floor.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

import msgspec
import zmq

from bench._common import emit, fmt_latency, latency_us, parse_args, ratio, reap, short_tmp
from sniperbot.messages import Envelope, TradeTick, decode_envelope
from sniperbot.transport.bus import bus_message, split_message
from sniperbot.transport.direct import PollWatch
from sniperbot.transport.reliable import Identity, Inbox, Outbox, decode_routed

_ACK_IDLE_MS = 1  # as the actor runtime: queued acks go out after a millisecond without input
_STOP = "stop"


class _Node:
    """An inbox and one outbox in one poller, read as the runtime reads them."""

    def __init__(self, ctx: zmq.Context, me: str, inbox_at: str, next_at: str, direct: bool) -> None:
        self.watch = PollWatch()
        self.got: list[tuple[Identity, Envelope]] = []
        watch = self.watch if direct else None
        self.inbox = Inbox(
            ctx, inbox_at, me, 1, watch=watch, on_direct=lambda i, f: self.got.append((i, decode_envelope(f)))
        )
        self.outbox = Outbox(ctx, next_at, me, 1, watch=watch)
        self.watch.poller.register(self.inbox.socket, zmq.POLLIN)
        self.watch.poller.register(self.outbox.socket, zmq.POLLIN)

    def receive(self, deadline_s: float = 30.0) -> tuple[Identity, Envelope]:
        """The next message (acks of our sends handled on the way; queued acks flushed when idle)."""
        end = time.monotonic() + deadline_s
        while not self.got:
            if time.monotonic() > end:
                raise TimeoutError("no message")
            queued = self.inbox.queued
            ready = self.watch.poller.poll(_ACK_IDLE_MS if queued else 100)
            if queued and (not ready or self.inbox.ack_overdue(time.monotonic_ns())):
                self.inbox.flush()
            for sock, _ in ready:
                if sock is self.inbox.socket:
                    self.got.append(decode_routed(self.inbox.socket.recv_multipart()))
                elif sock is self.outbox.socket:
                    self.outbox.on_ack(decode_envelope(self.outbox.socket.recv()))
                else:
                    self.watch.handle(sock)
            self.outbox.resend_due(time.monotonic_ns())
            while self.got and self.inbox.is_duplicate(self.got[0][1]):  # a resend: ack it again, drop it
                self.inbox.ack_later(*self.got.pop(0))
        return self.got.pop(0)

    def close(self) -> None:
        self.outbox.close()
        self.inbox.close()


def reliable_hop(me: str, inbox_at: str, next_at: str, direct: bool) -> None:
    """Forward every message from our inbox to the next hop until the stop message."""
    ctx = zmq.Context()
    node = _Node(ctx, me, inbox_at, next_at, direct)
    while True:
        identity, envelope = node.receive(120.0)
        node.outbox.send("to.next", envelope.payload)
        node.inbox.ack_later(identity, envelope)
        if isinstance(envelope.payload, TradeTick) and envelope.payload.side == "sell":
            break  # the stop marker, passed on
    time.sleep(0.2)  # let the last acks go
    node.inbox.flush()
    node.close()
    ctx.term()


def _tick(seq: int, stop: bool = False) -> TradeTick:
    side = "sell" if stop else "buy"
    return TradeTick(
        venue="sim", symbol="BTC/USDT", price=60_000.0, size=0.001, side=side, trade_id=seq, ts_ns=seq
    )


def run_reliable(work: Path, direct: bool, count: int, warmup: int, gap_s: float) -> dict[str, Any]:
    """A (this process) -> B -> C -> D -> A with Outbox/Inbox."""
    mp = multiprocessing.get_context("forkserver")
    tag = "d" if direct else "z"
    inboxes = [f"ipc://{work}/{tag}{i}.sock" for i in range(4)]  # of A, B, C, D
    hops = [
        mp.Process(target=reliable_hop, args=(f"h{i}", inboxes[i], inboxes[(i + 1) % 4], direct))
        for i in range(1, 4)
    ]
    ctx = zmq.Context()
    node = _Node(ctx, "a", inboxes[0], inboxes[1], direct)
    for hop in hops:
        hop.start()
    samples: list[int] = []
    try:
        for seq in range(1, warmup + count + 1):
            t0 = time.perf_counter_ns()
            node.outbox.send("to.next", _tick(seq))
            identity, envelope = node.receive()
            node.inbox.ack_later(identity, envelope)
            t1 = time.perf_counter_ns()
            assert isinstance(envelope.payload, TradeTick) and envelope.payload.trade_id == seq
            if seq > warmup:
                samples.append(t1 - t0)
            if gap_s:
                time.sleep(gap_s)
        node.outbox.send("to.next", _tick(0, stop=True))
        identity, envelope = node.receive()
        node.inbox.ack_later(identity, envelope)
        node.inbox.flush()
    finally:
        reap(hops, 10)
        node.close()
        ctx.term()
    return {"latency": latency_us(samples)}


def bus_proxy(xsub_at: str, xpub_at: str) -> None:
    """The node's bus proxy alone: XSUB/XPUB forwarding in libzmq's loop until killed."""
    ctx = zmq.Context()
    xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
    xsub.bind(xsub_at)
    xpub.bind(xpub_at)
    zmq.proxy(xsub, xpub)


def bus_hop(sub_at: str, topic_in: str, pub_at: str, topic_out: str, bind_pub: bool) -> None:
    """One bus leg's receiving end: SUB ``topic_in``, decode, re-encode, PUB as ``topic_out``.

    An empty envelope (the stop marker) is passed on and ends the hop.
    """
    ctx = zmq.Context()
    sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
    for sock in (sub, pub):
        sock.setsockopt(zmq.LINGER, 1000)
    sub.setsockopt(zmq.SUBSCRIBE, topic_in.encode())
    sub.connect(sub_at)
    pub.bind(pub_at) if bind_pub else pub.connect(pub_at)
    encode, decode = msgspec.msgpack.encode, msgspec.msgpack.decode
    while True:
        _, frame = split_message(sub.recv())
        if not frame:
            pub.send(bus_message(topic_out, b""))
            break
        pub.send(bus_message(topic_out, encode(decode(frame))))
    time.sleep(0.2)
    sub.close()
    pub.close()
    ctx.term()


def run_bus(work: Path, proxy: bool, count: int, warmup: int, gap_s: float) -> dict[str, Any]:
    """A (this process) -> B -> C -> D -> A, each hop a bus leg, via the proxy or straight."""
    mp = multiprocessing.get_context("forkserver")
    tag = "p" if proxy else "s"
    xsub_at, xpub_at = f"ipc://{work}/{tag}-in.sock", f"ipc://{work}/{tag}-out.sock"
    pubs = [f"ipc://{work}/{tag}-pub{i}.sock" for i in range(4)]  # each hop's own PUB (no proxy)
    topics = [f"md.hop{i}." for i in range(4)]  # hop i publishes topics[i]; hop i+1 follows it

    def sub_at(i: int) -> str:  # where hop i's SUB connects
        return xpub_at if proxy else pubs[(i - 1) % 4]

    def pub_at(i: int) -> str:
        return xsub_at if proxy else pubs[i]

    procs = [mp.Process(target=bus_proxy, args=(xsub_at, xpub_at))] if proxy else []
    procs += [
        mp.Process(target=bus_hop, args=(sub_at(i), topics[i - 1], pub_at(i), topics[i], not proxy))
        for i in range(1, 4)
    ]
    for proc in procs:
        proc.start()
    ctx = zmq.Context()
    sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
    for sock in (sub, pub):
        sock.setsockopt(zmq.LINGER, 1000)
    sub.setsockopt(zmq.SUBSCRIBE, topics[3].encode())
    sub.connect(sub_at(0))
    pub.bind(pub_at(0)) if not proxy else pub.connect(pub_at(0))
    encode, decode = msgspec.msgpack.encode, msgspec.msgpack.decode
    samples: list[int] = []
    try:
        # The slow joiner: probe until one comes back round the ring (every subscription has joined).
        sub.setsockopt(zmq.RCVTIMEO, 100)
        for _ in range(300):
            pub.send(bus_message(topics[0], encode(_tick(0))))
            try:
                sub.recv()
                break
            except zmq.Again:
                continue
        else:
            raise TimeoutError("the bus ring never joined")
        time.sleep(0.3)
        while True:  # drain probes still on their way
            try:
                sub.recv()
            except zmq.Again:
                break
        sub.setsockopt(zmq.RCVTIMEO, 30_000)
        for seq in range(1, warmup + count + 1):
            t0 = time.perf_counter_ns()
            pub.send(bus_message(topics[0], encode(_tick(seq))))
            _, frame = split_message(sub.recv())
            t1 = time.perf_counter_ns()
            assert decode(frame)["trade_id"] == seq
            if seq > warmup:
                samples.append(t1 - t0)
            if gap_s:
                time.sleep(gap_s)
        pub.send(bus_message(topics[0], b""))
        sub.recv()
    finally:
        sub.close()
        pub.close()
        ctx.term()
        reap(procs, 2)
    return {"latency": latency_us(samples)}


def run_raw(work: Path, count: int, warmup: int, gap_s: float) -> dict[str, Any]:
    """The floor: blocking PUSH/PULL, A -> B -> C -> D -> A (``bench._raw.pipe_ring``)."""
    from bench import _raw

    return {"latency": latency_us(_raw.pipe_ring(work, count, warmup, gap_s))}


def main() -> int:
    """Raw floor, reliable (ZeroMQ, direct socket), bus legs (via the proxy, without): interleaved."""

    def options(parser: Any) -> None:
        parser.add_argument("--count", type=int, default=0, help="measured round trips per run")
        parser.add_argument("--rounds", type=int, default=0, help="rounds of the three variants")
        parser.add_argument("--gap-us", type=float, default=1000.0, help="pause after each answer")

    args = parse_args(__doc__.splitlines()[0], options)
    count = args.count or (1_000 if args.quick else 5_000)
    rounds = args.rounds or (1 if args.quick else 3)
    warmup = 200
    gap_s = args.gap_us / 1e6
    print(
        f"hops: 4-process ring, {count:,} round trips per run after {warmup} warm-up, "
        f"{rounds} interleaved round(s), {args.gap_us:.0f} µs pause after each answer"
    )
    variants = {
        "raw": ("raw zmq PUSH/PULL (floor)", lambda: run_raw(work, count, warmup, gap_s)),
        "zmq": ("reliable, zmq", lambda: run_reliable(work, False, count, warmup, gap_s)),
        "direct": ("reliable, direct", lambda: run_reliable(work, True, count, warmup, gap_s)),
        "bus_proxy": ("bus, via proxy", lambda: run_bus(work, True, count, warmup, gap_s)),
        "bus_straight": ("bus, no proxy", lambda: run_bus(work, False, count, warmup, gap_s)),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with short_tmp("sb-hops-") as work:
        for r in range(rounds):
            print(f" round {r + 1}")
            for name, (label, run) in variants.items():
                runs[name].append(run()["latency"])
                print(fmt_latency(label, runs[name][-1]))
    figures: dict[str, Any] = {"count": count, "rounds": rounds}
    print("medians over rounds, ratio to the floor's:")
    for name in variants:
        for q in ("p50", "p99"):
            values = sorted(run[q] for run in runs[name])
            figures[f"{name}_{q}_us"] = values[len(values) // 2]
    for name in list(variants)[1:]:
        p50, p99 = figures[f"{name}_p50_us"], figures[f"{name}_p99_us"]
        r50, r99 = ratio(p50, figures["raw_p50_us"]), ratio(p99, figures["raw_p99_us"])
        figures[f"{name}_p50_ratio"], figures[f"{name}_p99_ratio"] = r50, r99
        print(f"  {variants[name][0]:<18} p50 {p50:8.1f} µs ({r50}x)   p99 {p99:8.1f} µs ({r99}x)")
    print(
        f"  {'raw floor':<18} p50 {figures['raw_p50_us']:8.1f} µs"
        f"           p99 {figures['raw_p99_us']:8.1f} µs"
    )
    emit("hops", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
