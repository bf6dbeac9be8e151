"""Direct unix sockets for the reliable channels between processes of one machine.

A ZeroMQ message between two processes passes through two I/O threads: the sender's
``send`` wakes its I/O thread, which writes to the socket; the receiver's I/O thread
reads it and wakes the receiving thread. On a 2-core machine each of those wake-ups can
preempt the thread doing the work, and the order path (strategy -> risk guard ->
executor -> venue -> executor) pays them at every hop. A ``SOCK_SEQPACKET`` unix socket
written and read by the actors' own threads costs one wake-up: ``bench/hops.py``
measures a 4-hop pipeline at about a third of ZeroMQ's latency on this machine.

So an :class:`~sniperbot.transport.reliable.Inbox` whose endpoint is ``ipc://`` also
listens on a sibling unix socket (:func:`direct_path`), and an
:class:`~sniperbot.transport.reliable.Outbox` to such an endpoint sends through it.
Nothing else changes: the same signed envelopes, the same acknowledgements, resends and
dedup by message id, so every guarantee of the reliable path holds unchanged. What
stays on ZeroMQ, and why:

- ``tcp://`` endpoints (actors of a cluster on other machines);
- a frame above :data:`DIRECT_MAX_FRAME` (a datagram must fit the socket buffer);
- the control channel (not on the order path). The bus between actors of one machine has
  its own direct sockets (:mod:`sniperbot.transport.fanout`); through the node's proxy it
  still reaches the node and other machines.

Sockets here are non-blocking. A send that would block (the receiver is stopped or
busy, its buffer full) is dropped and resent by the outbox's timer, as a ZeroMQ send at
its high-water mark is. A peer that went away shows as end-of-file or a broken pipe:
the connection is closed and the next send connects again, to the receiver's next
incarnation once it listens.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Callable
from typing import Protocol

import zmq

#: Frames above this go by ZeroMQ: far below any default socket buffer (208 KiB on Linux),
#: far above an order's envelope (under 1 KiB).
DIRECT_MAX_FRAME = 64 * 1024
_MAX_PATH = 107  # sun_path holds 108 bytes with its NUL
_RECV_BATCH = 256  # frames read from one connection before the poller is asked again
_PRIVATE_UMASK = 0o177


class FdWatch(Protocol):
    """Where direct sockets register for readability: the actor runtime's poller."""

    def watch(self, fd: int, on_ready: Callable[[], None]) -> None:
        """Call ``on_ready`` whenever ``fd`` is readable."""

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (it is about to be closed)."""

    def watch_writable(self, fd: int, on_writable: Callable[[], None]) -> None:
        """Call ``on_writable`` whenever ``fd`` (not watched for reading) can be written."""

    def unwatch_writable(self, fd: int) -> None:
        """Stop watching ``fd`` for writing."""


def direct_path(endpoint: str) -> str | None:
    """The direct socket's path beside an ``ipc://`` endpoint, or None (``tcp://``, or too long).

    ``<name>.sock`` becomes ``<name>.d.sock``: still a ``*.sock`` file of the run directory, which
    the node removes at start and stop with the others. In a run directory whose path is within
    two characters of the unix socket limit it does not fit: order flow then stays on ZeroMQ.
    """
    if not endpoint.startswith("ipc://"):
        return None
    path = endpoint.removeprefix("ipc://").removesuffix(".sock") + ".d.sock"
    return path if len(os.fsencode(path)) <= _MAX_PATH else None


def _read_frames(sock: socket.socket, on_frame: Callable[[bytes], None]) -> bool:
    """Hand up to a batch of waiting frames to ``on_frame``; False once the peer has gone."""
    for _ in range(_RECV_BATCH):
        try:
            frame = sock.recv(DIRECT_MAX_FRAME)  # a longer datagram is cut: it will not decode
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:  # ECONNRESET, or closed under us by a handler
            return False
        if not frame:  # end of file: the peer closed or died
            return False
        on_frame(frame)
    return True


class PollWatch:
    """An :class:`FdWatch` over a ZeroMQ poller: what the actor runtime, tools and benches use."""

    def __init__(self, poller: zmq.Poller | None = None) -> None:
        self.poller = poller if poller is not None else zmq.Poller()
        self._handlers: dict[int, Callable[[], None]] = {}
        self._writers: dict[int, Callable[[], None]] = {}

    def watch(self, fd: int, on_ready: Callable[[], None]) -> None:
        """Call ``on_ready`` whenever ``fd`` is readable."""
        self._handlers[fd] = on_ready
        self.poller.register(fd, zmq.POLLIN)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd``."""
        if self._handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def watch_writable(self, fd: int, on_writable: Callable[[], None]) -> None:
        """Call ``on_writable`` whenever ``fd`` can be written (a socket with a backlog to send)."""
        if fd in self._handlers:
            raise ValueError(f"fd {fd} is watched for reading; one kind of watch per fd")
        self._writers[fd] = on_writable
        self.poller.register(fd, zmq.POLLOUT)

    def unwatch_writable(self, fd: int) -> None:
        """Stop watching ``fd`` for writing."""
        if self._writers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def handle(self, fd: int) -> None:
        """Run ``fd``'s handler (the poller said it is ready); nothing if it was unwatched since."""
        handler = self._handlers.get(fd) or self._writers.get(fd)
        if handler is not None:
            handler()

    def pump(self, timeout_ms: int = 0) -> int:
        """Poll once and run the handler of every readable direct socket; how many were readable.

        Only for a poller that holds nothing but direct sockets (a test's or a tool's).
        """
        ready = self.poller.poll(timeout_ms) if self._handlers else []
        for fd, _ in ready:
            self.handle(fd)
        return len(ready)


class DirectListener:
    """A receiver's listening socket: accepts connections and hands each frame to ``on_frame``."""

    def __init__(self, path: str, watch: FdWatch, on_frame: Callable[[socket.socket, bytes], None]) -> None:
        # A killed predecessor leaves its socket file behind; binding over it is safe.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.path = path
        self._watch = watch
        self._on_frame = on_frame
        self._conns: dict[int, socket.socket] = {}
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        old = os.umask(_PRIVATE_UMASK)  # never briefly reachable by others (as bus.bind_private)
        try:
            self._sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._sock.listen(64)
        self._sock.setblocking(False)
        self._fd = self._sock.fileno()
        watch.watch(self._fd, self._accept)

    @property
    def connections(self) -> int:
        """How many senders are connected."""
        return len(self._conns)

    def owns(self, fd: int) -> bool:
        """Whether ``fd`` is this listener's socket or one of its connections."""
        return fd in self._conns or fd == self._fd

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: the connection waits in the backlog; tried at the next readiness
            conn.setblocking(False)
            self._conns[conn.fileno()] = conn
            self._watch.watch(conn.fileno(), lambda c=conn: self._read(c))

    def _read(self, conn: socket.socket) -> None:
        if not _read_frames(conn, functools.partial(self._on_frame, conn)):
            self._drop(conn)  # the sender closed (or died): forget the connection

    def _drop(self, conn: socket.socket) -> None:
        fd = conn.fileno()
        if self._conns.pop(fd, None) is not None:
            self._watch.unwatch(fd)
        conn.close()

    def close(self) -> None:
        """Close every connection and the listener (the file stays for the next incarnation to replace)."""
        for conn in list(self._conns.values()):
            self._drop(conn)
        self._watch.unwatch(self._sock.fileno())
        self._sock.close()


def reply(conn: socket.socket, frame: bytes) -> None:
    """Send ``frame`` back on an accepted connection; lost if it would block or the peer is gone."""
    with contextlib.suppress(OSError):  # the sender resends what it does not see acknowledged
        conn.send(frame, socket.MSG_DONTWAIT)


class DirectSender:
    """A sender's connection to one receiver's direct socket, connected on demand."""

    def __init__(self, path: str, watch: FdWatch, on_frame: Callable[[bytes], None]) -> None:
        self.path = path
        self._watch = watch
        self._on_frame = on_frame
        self._sock: socket.socket | None = None
        self.connects = 0

    def send(self, frame: bytes) -> bool:
        """Send one frame; False if it could not go now (no receiver, buffer full): resend later."""
        sock = self._sock or self._connect()
        if sock is None:
            return False
        try:
            sock.send(frame, socket.MSG_DONTWAIT)
            return True
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # EPIPE, ECONNRESET: the receiver went away; its next incarnation gets a resend
            self._disconnect()
            return False

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Non-blocking before connect: a unix connect completes at once or fails with EAGAIN
        # when the listener's backlog is full (a receiver stopped), never waiting on it.
        sock.setblocking(False)
        try:
            sock.connect(self.path)
        except OSError:  # not listening yet (ENOENT, ECONNREFUSED), or its backlog is full (EAGAIN)
            sock.close()
            return None
        self._sock = sock
        self.connects += 1
        self._watch.watch(sock.fileno(), self._read)
        return sock

    def _read(self) -> None:
        sock = self._sock
        # An ack's callback may send, and a failed send reconnect: only this connection is dropped.
        if sock is not None and not _read_frames(sock, self._on_frame) and self._sock is sock:
            self._disconnect()

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._watch.unwatch(sock.fileno())
            sock.close()

    def reconnect(self) -> None:
        """Drop the connection; the next send connects to whoever listens at the path now.

        Called when the receiver announces a new incarnation: a connection to an old one that
        hangs (a thread placement's abandoned incarnation keeps its socket) would never fail.
        """
        self._disconnect()

    def close(self) -> None:
        """Close the connection, if any."""
        self._disconnect()
