"""The pub/sub bus: a proxy owned by the node, publishers and subscribers owned by actors.

A bus message is one frame: the topic, a NUL byte (:data:`TOPIC_END`), the envelope
(:func:`bus_message`, :func:`split_message`). ZeroMQ filters on the frame's prefix, so a
subscription to a topic prefix works as it would on a separate topic frame. Why one
frame, not ``[topic, envelope]``: every frame costs a send, a receive and a
``RCVMORE`` check in Python, and its own trip through the proxy's and both I/O
threads; one frame raised the actor-to-actor rate by 12-35 % in
``bench/bus.py``. A topic therefore never contains NUL (:meth:`Publisher.publish`
refuses one).

Delivery is at-most-once (a subscriber that is not connected yet, or too slow past
its high-water mark, misses messages); receivers detect gaps with the envelope's
per-sender ``seq``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Final

import zmq

from sniperbot.messages import Envelope, InvalidFrame, Payload, decode_envelope, encode_envelope
from sniperbot.transport.auth import AUTHORITY, Signer

# Market data is worth little once stale; a bounded queue keeps a slow
# subscriber from growing the proxy's memory without limit.
BUS_HWM = 100_000
# The largest frame any sniperbot socket accepts. Real frames are far smaller (a
# venue report with every fill of one order is the biggest: ~250 bytes a fill, so
# this is >15,000 fills); a larger frame is hostile or a bug, and libzmq drops it and
# disconnects its sender before we allocate for it. It bounds what one frame can cost.
MAX_FRAME_BYTES = 4 * 1024 * 1024
# Sockets are created under this umask (0600: owner read/write only), then chmod'ed.
_PRIVATE_UMASK = 0o177
#: Ends a bus message's topic; the envelope follows (module docstring).
TOPIC_END: Final = b"\0"


def bus_message(topic: str, envelope_frame: bytes) -> bytes:
    """The one frame of a bus message: ``topic``, :data:`TOPIC_END`, the envelope's frame."""
    if "\0" in topic:
        raise ValueError(f"bus topic {topic!r} contains a NUL byte")
    return topic.encode() + TOPIC_END + envelope_frame


def split_message(message: bytes) -> tuple[bytes, memoryview]:
    """A bus message's topic and its envelope's frame (a view: no copy); InvalidFrame without a topic end."""
    end = message.find(TOPIC_END)
    if end < 0:
        raise InvalidFrame(f"bus message without a topic end ({len(message)} bytes)")
    return message[:end], memoryview(message)[end + 1 :]


def tune(sock: zmq.Socket, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
    """Options every sniperbot socket gets: no linger on close, fast reconnect, bounded frames."""
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 10)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 200)
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)


def bind_private(sock: zmq.Socket, endpoint: str) -> None:
    """Bind ``endpoint``; an ``ipc://`` socket file is made 0600 whatever the process umask.

    The run directory (0700) already keeps other users out; the socket mode is the
    second wall, so that a run dir opened up by mistake does not expose order flow.
    The umask is set around the bind (the file is never briefly world-writable) and
    the mode is set again afterwards in case the umask was raced by another thread.
    """
    if not endpoint.startswith("ipc://"):
        sock.bind(endpoint)
        return
    old = os.umask(_PRIVATE_UMASK)
    try:
        sock.bind(endpoint)
    finally:
        os.umask(old)
    os.chmod(endpoint.removeprefix("ipc://"), 0o600)


class BusProxy:
    """XSUB/XPUB forwarder running in a thread of the node (the copy loop is libzmq's, in C)."""

    def __init__(self, ctx: zmq.Context, bus_in: str, bus_out: str) -> None:
        self._ctx = ctx
        self._bus_in = bus_in
        self._bus_out = bus_out
        self._control_addr = f"inproc://bus-proxy-control-{id(self)}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        """Bind both sides and start forwarding; returns once the sockets are bound."""
        self._thread = threading.Thread(target=self._run, name="bus-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(5.0):
            raise RuntimeError("bus proxy did not start within 5 s")

    def _run(self) -> None:
        xsub = self._ctx.socket(zmq.XSUB)
        xpub = self._ctx.socket(zmq.XPUB)
        control = self._ctx.socket(zmq.PAIR)
        for sock in (xsub, xpub, control):
            tune(sock)
        xsub.setsockopt(zmq.RCVHWM, BUS_HWM)
        xpub.setsockopt(zmq.SNDHWM, BUS_HWM)
        bind_private(xsub, self._bus_in)
        bind_private(xpub, self._bus_out)
        control.bind(self._control_addr)
        self._ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (xsub, xpub, control):
                sock.close(0)

    def stop(self) -> None:
        """Stop forwarding and close the proxy's sockets."""
        if self._thread is None:
            return
        control = self._ctx.socket(zmq.PAIR)
        control.setsockopt(zmq.LINGER, 1000)
        control.connect(self._control_addr)
        control.send(b"TERMINATE")
        self._thread.join(2.0)
        control.close(0)
        self._thread = None


class Publisher:
    """Publishes payloads on the bus, stamping each with this sender's sequence."""

    def __init__(
        self, ctx: zmq.Context, bus_in: str, sender: str, incarnation: int, signer: Signer | None = None
    ) -> None:
        self.socket = ctx.socket(zmq.PUB)
        tune(self.socket)
        self.socket.setsockopt(zmq.SNDHWM, BUS_HWM)
        self.socket.connect(bus_in)
        self.sender = sender
        self.incarnation = incarnation
        self.seq = 0
        self.signer = signer

    def publish(self, topic: str, payload: Payload) -> None:
        """Send ``payload`` under ``topic``; never blocks (PUB drops past its HWM).

        A payload that carries authority is tagged (needs the ``signer``).
        """
        self.seq += 1
        envelope = Envelope(topic, self.sender, self.incarnation, self.seq, time.time_ns(), payload)
        if self.signer is not None and type(payload) in AUTHORITY:
            frame = self.signer.encode(envelope)
        else:
            frame = encode_envelope(envelope)
        self.socket.send(bus_message(topic, frame))

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(0)


class Subscriber:
    """A SUB socket on the bus, subscribed to topic prefixes."""

    def __init__(self, ctx: zmq.Context, bus_out: str, topics: tuple[str, ...]) -> None:
        self.socket = ctx.socket(zmq.SUB)
        tune(self.socket)
        self.socket.setsockopt(zmq.RCVHWM, BUS_HWM)
        for topic in topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.socket.connect(bus_out)

    def subscribe(self, topic: str) -> None:
        """Add a topic prefix."""
        self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())

    def recv(self, flags: int = 0) -> tuple[str, Envelope]:
        """The next message's topic and envelope (``flags``: zmq.NOBLOCK); InvalidFrame if malformed."""
        topic, frame = split_message(self.socket.recv(flags))
        return topic.decode(errors="replace"), decode_envelope(frame)

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(0)
