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

Between actors of one machine a message does not take the proxy: the publisher sends it
straight to each local subscriber (:mod:`sniperbot.transport.fanout`), and still publishes it
through the proxy, **marked** with :data:`LOCAL_MARK` before its topic, for the node (its
last-value cache) and for subscribers elsewhere (a cluster's actors, tools, tests): they
subscribe to both forms. A local actor subscribes to the unmarked form only, so it hears
through the proxy what nobody sends it directly (the node, actors of other machines,
tools) and never the same message twice. :func:`split_message` takes the mark off.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Final, Protocol

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
#: The largest envelope a publisher sends straight to local subscribers; a larger one (a big metrics
#: snapshot) goes through the proxy to everyone. Below the direct sockets' datagram limit
#: (:data:`sniperbot.transport.direct.DIRECT_MAX_FRAME`), with room for the topic.
FANOUT_MAX_FRAME = 60 * 1024
# Sockets are created under this umask (0600: owner read/write only), then chmod'ed.
_PRIVATE_UMASK = 0o177
#: Ends a bus message's topic; the envelope follows (module docstring).
TOPIC_END: Final = b"\0"
#: Starts a message on the proxy that local subscribers were sent directly (module docstring).
LOCAL_MARK: Final = b"\x01"


def bus_message(topic: str, envelope_frame: bytes) -> bytes:
    """The one frame of a bus message: ``topic``, :data:`TOPIC_END`, the envelope's frame."""
    if "\0" in topic or topic[:1] < " ":
        raise ValueError(f"bus topic {topic!r} contains a NUL byte or starts with a control character")
    return topic.encode() + TOPIC_END + envelope_frame


def split_message(message: bytes) -> tuple[bytes, memoryview]:
    """A bus message's topic and its envelope's frame (a view: no copy); InvalidFrame without a topic end.

    A :data:`LOCAL_MARK` before the topic is not part of it.
    """
    end = message.find(TOPIC_END)
    if end < 0:
        raise InvalidFrame(f"bus message without a topic end ({len(message)} bytes)")
    start = 1 if message[:1] == LOCAL_MARK else 0
    return message[start:end], memoryview(message)[end + 1 :]


def is_marked(message: bytes) -> bool:
    """Whether a message from the proxy was also sent straight to the local subscribers."""
    return message[:1] == LOCAL_MARK


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


class Fanout(Protocol):
    """Where a publisher hands what it publishes for the subscribers of its machine."""

    def publish(self, topic: str, message: memoryview) -> None:
        """Send ``message`` (a bus message) to each local subscriber of ``topic``."""


class Publisher:
    """Publishes payloads on the bus, stamping each with this sender's sequence.

    With a ``fanout`` (:mod:`sniperbot.transport.fanout`), local subscribers get each message
    from it and the proxy gets it marked (module docstring); a message above the direct
    sockets' frame limit goes through the proxy unmarked, to everyone.
    """

    def __init__(
        self,
        ctx: zmq.Context,
        bus_in: str,
        sender: str,
        incarnation: int,
        signer: Signer | None = None,
        fanout: Fanout | None = None,
    ) -> None:
        self.socket = ctx.socket(zmq.PUB)
        tune(self.socket)
        self.socket.setsockopt(zmq.SNDHWM, BUS_HWM)
        self.socket.connect(bus_in)
        self.sender = sender
        self.incarnation = incarnation
        self.seq = 0
        self.signer = signer
        self.fanout = fanout

    def publish(self, topic: str, payload: Payload, *, through_proxy: bool = False) -> None:
        """Send ``payload`` under ``topic``; never blocks (PUB drops past its HWM, a direct send past
        its backlog).

        A payload that carries authority is tagged (needs the ``signer``). ``through_proxy``: to
        everyone through the proxy, local subscribers included (a probe of the proxy path).
        """
        self.seq += 1
        envelope = Envelope(topic, self.sender, self.incarnation, self.seq, time.time_ns(), payload)
        if self.signer is not None and type(payload) in AUTHORITY:
            frame = self.signer.encode(envelope)
        else:
            frame = encode_envelope(envelope)
        fanout = self.fanout
        if fanout is None or through_proxy or len(frame) > FANOUT_MAX_FRAME:
            self.socket.send(bus_message(topic, frame))
            return
        marked = LOCAL_MARK + bus_message(topic, frame)
        fanout.publish(topic, memoryview(marked)[1:])
        self.socket.send(marked)

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(0)


class Subscriber:
    """A SUB socket on the bus, subscribed to topic prefixes.

    ``unmarked_only``: for an actor that local publishers send to directly (module docstring),
    which must not hear their marked copies from the proxy as well.
    """

    def __init__(
        self, ctx: zmq.Context, bus_out: str, topics: tuple[str, ...], *, unmarked_only: bool = False
    ) -> None:
        self.socket = ctx.socket(zmq.SUB)
        tune(self.socket)
        self.socket.setsockopt(zmq.RCVHWM, BUS_HWM)
        self.unmarked_only = unmarked_only
        for topic in topics:
            self.subscribe(topic)
        self.socket.connect(bus_out)

    def subscribe(self, topic: str) -> None:
        """Add a topic prefix."""
        self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        if not self.unmarked_only:
            self.socket.setsockopt(zmq.SUBSCRIBE, LOCAL_MARK + topic.encode())

    def unsubscribe(self, topic: str) -> None:
        """Remove a topic prefix."""
        self.socket.setsockopt(zmq.UNSUBSCRIBE, topic.encode())
        if not self.unmarked_only:
            self.socket.setsockopt(zmq.UNSUBSCRIBE, LOCAL_MARK + topic.encode())

    def recv(self, flags: int = 0) -> tuple[str, Envelope]:
        """The next message's topic and envelope (``flags``: zmq.NOBLOCK); InvalidFrame if malformed."""
        topic, frame = split_message(self.socket.recv(flags))
        return topic.decode(errors="replace"), decode_envelope(frame)

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(0)
