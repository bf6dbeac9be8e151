"""Raw pyzmq peers: the floors the benchmarks compare sniperbot against.

They run in processes of the same multiprocessing forkserver that sniperbot's
Launcher uses, so both sides pay the same process model; only the messaging
stack differs (no envelope, no proxy, no poller, blocking sockets).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import msgspec
import zmq

from bench._common import reap
from bench.bench_actors import BUS_DATA, BUS_DONE, BUS_PREFIX, bench_quote, write_result
from sniperbot.messages import Quote, TradeTick
from sniperbot.transport.bus import BUS_HWM

_SNDMORE = int(zmq.SNDMORE)

# -- bus: PUB -> SUB, one ipc hop ------------------------------------------------------------


def bus_pub(endpoint: str, count: int, out: str, mode: str) -> None:
    """Publish ``count`` msgpack(Quote) messages under the data topic once the subscriber is subscribed.

    An XPUB (a PUB that also reports subscriptions) tells us when the
    subscription has arrived; then the same send loop as a plain PUB. ``mode``:
    ``frames`` is ``[topic, msgpack]`` by two ``send`` calls with an int SNDMORE flag
    (pyzmq's flags are IntFlag enums, and ``SNDMORE | flags`` inside ``send_multipart``
    costs about 1 µs on Python 3.11); ``multipart`` the same by ``send_multipart``;
    ``one_frame`` is ``topic + NUL + msgpack`` in one send (sniperbot's bus format).
    """
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, BUS_HWM)
    sock.bind(endpoint)
    sock.recv()  # b"\x01" + prefix: the subscriber is connected and subscribed
    encode = msgspec.msgpack.encode
    data = BUS_DATA.encode()
    send, send_multipart = sock.send, sock.send_multipart
    t_start = time.time_ns()
    if mode == "multipart":
        for i in range(count):
            send_multipart((data, encode(bench_quote(i))))
    elif mode == "one_frame":
        head = data + b"\0"
        for i in range(count):
            send(head + encode(bench_quote(i)))
    else:
        for i in range(count):
            send(data, _SNDMORE)
            send(encode(bench_quote(i)))
    send_ns = time.time_ns() - t_start
    done = encode(msgspec.structs.replace(bench_quote(t_start, "DONE"), bid=float(count), ask=float(send_ns)))
    deadline = time.monotonic() + 60
    while not os.path.exists(out) and time.monotonic() < deadline:
        if mode == "one_frame":
            sock.send(BUS_DONE.encode() + b"\0" + done)
        else:
            sock.send_multipart((BUS_DONE.encode(), done))
        time.sleep(0.05)
    sock.close(0)
    ctx.term()


def bus_sub(endpoint: str, out: str, mode: str) -> None:
    """Receive and decode quotes until the done marker; write counts and times to ``out``.

    ``mode`` as in :func:`bus_pub`: ``frames`` is two ``recv`` calls, trusting the two-frame
    shape; ``multipart`` is ``recv_multipart`` (two getsockopt(RCVMORE) calls per message);
    ``one_frame`` is one ``recv`` split at the first NUL.
    """
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, BUS_HWM)
    sock.setsockopt(zmq.SUBSCRIBE, BUS_PREFIX.encode())
    sock.connect(endpoint)
    decode = msgspec.msgpack.Decoder(Quote).decode
    recv, recv_multipart = sock.recv, sock.recv_multipart
    data = BUS_DATA.encode()
    received = 0
    t_first = t_last = 0
    while True:
        if mode == "multipart":
            topic, frame = recv_multipart()
        elif mode == "one_frame":
            message = recv()
            end = message.find(b"\0")
            topic, frame = message[:end], memoryview(message)[end + 1 :]
        else:
            topic = recv()
            frame = recv()
        quote = decode(frame)
        if topic == data:
            t_last = time.time_ns()
            if not received:
                t_first = t_last
            received += 1
        else:
            break
    write_result(
        out,
        {
            "sent": int(quote.bid),
            "send_ns": int(quote.ask),
            "received": received,
            "t_start_ns": quote.ts_ns,
            "t_first_ns": t_first,
            "t_last_ns": t_last,
        },
    )
    sock.close(0)
    ctx.term()


# -- pipeline: A -> B -> C -> D -> A, blocking PUSH/PULL ------------------------------------


def pipe_hop(in_endpoint: str, out_endpoint: str) -> None:
    """One hop: receive, decode, re-encode, forward; an empty message is forwarded and ends it."""
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    push = ctx.socket(zmq.PUSH)
    for sock in (pull, push):
        sock.setsockopt(zmq.LINGER, 1000)
    pull.bind(in_endpoint)
    push.connect(out_endpoint)
    encode, decode = msgspec.msgpack.encode, msgspec.msgpack.decode
    while True:
        message = pull.recv()
        if not message:
            push.send(b"")
            break
        push.send(encode(decode(message)))
    pull.close()
    push.close()
    ctx.term()


# -- restart floor ----------------------------------------------------------------------------


def ready_child(endpoint: str) -> None:
    """Announce this process on ``endpoint`` (PUSH), then wait to be killed."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(endpoint)
    sock.send(str(os.getpid()).encode())
    time.sleep(3600)


def pipe_ring(work: Path, count: int, warmup: int, gap_s: float) -> list[int]:
    """The 4-hop floor: A -> B -> C -> D -> A by blocking PUSH/PULL, A in this process, B-D
    :func:`pipe_hop` processes of a forkserver; one msgpack tick in flight, ``gap_s`` after each
    answer. The round trips' times in ns, after ``warmup``."""
    mp = multiprocessing.get_context("forkserver")
    endpoints = [f"ipc://{work}/pipe-{i}.sock" for i in range(4)]  # inputs of B, C, D, A
    hops = [
        mp.Process(target=pipe_hop, args=(endpoints[i], endpoints[i + 1]), name=f"hop-{i}") for i in range(3)
    ]
    for hop in hops:
        hop.start()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    pull = ctx.socket(zmq.PULL)
    for sock in (push, pull):
        sock.setsockopt(zmq.LINGER, 1000)
    pull.bind(endpoints[3])
    push.connect(endpoints[0])
    encode, decode = msgspec.msgpack.encode, msgspec.msgpack.decode
    samples: list[int] = []
    try:
        for seq in range(1, warmup + count + 1):
            t0_wall = time.time_ns()
            t0 = time.perf_counter_ns()
            tick = TradeTick(
                venue="sim",
                symbol="BTC/USDT",
                price=60_000.0,
                size=0.001,
                side="buy",
                trade_id=seq,
                ts_ns=t0_wall,
            )
            push.send(encode(tick))
            decode(pull.recv())
            t1 = time.perf_counter_ns()
            if seq > warmup:
                samples.append(t1 - t0)
            if gap_s:
                time.sleep(gap_s)
        push.send(b"")
        pull.recv()
    finally:
        push.close()
        pull.close()
        ctx.term()
        reap(hops, 5)
    return samples
