"""The pub/sub bus: a proxy owned by the node, publishers and subscribers owned by actors.

A bus message is two frames, ``[topic, envelope]``; ZeroMQ filters on the topic
frame by prefix. Delivery is at-most-once (a subscriber that is not connected
yet, or too slow past its high-water mark, misses messages); receivers detect
gaps with the envelope's per-sender ``seq``.
"""

from __future__ import annotations

import os
import threading
import time

import zmq

from sniperbot.messages import Envelope, Payload, encode_envelope
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
_SNDMORE = int(zmq.SNDMORE)


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
        # Two plain sends: pyzmq's send_multipart and flag arithmetic cost more than the copy.
        self.socket.send(topic.encode(), _SNDMORE)
        self.socket.send(frame)

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

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(0)
