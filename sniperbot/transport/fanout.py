"""Bus legs between the actors of one machine, straight from publisher to subscriber.

Through the node's proxy a bus message wakes six threads on its way: the publisher's ZeroMQ I/O
thread, the node's I/O thread, the proxy's thread, the node's I/O thread again, the subscriber's
I/O thread, the subscriber. On a 2-core machine each wake-up can take a core from the next hop
of the order path, and the tick-to-trade path has two bus legs (feed -> strategy, executor ->
strategy). Here a local publisher writes each message once per local subscriber on a
``SOCK_SEQPACKET`` unix socket that the subscriber's own thread reads: one wake-up per leg, as
the reliable path's direct sockets (:mod:`sniperbot.transport.direct`). The proxy still gets every
message, marked (:data:`sniperbot.transport.bus.LOCAL_MARK`), for the node's last-value cache and
for subscribers elsewhere; a local subscriber hears through the proxy only what nobody sent it
directly (the node's own messages, actors of other machines, tools).

**How a publisher learns its subscribers**, with no registry to ask. Each local actor
(:class:`LocalBus`):

1. listens at ``sub-<actor>.sock`` in the run directory, then writes its topic prefixes to
   ``sub-<actor>.topics`` (atomically, mode 0600);
2. then reads every other ``sub-*.topics``: each of those actors becomes a subscriber of its own
   messages, and it sends each of them a *subscribe request* (its id, incarnation and topics) on
   their socket; the receiver adds it as a subscriber and answers.

Of two actors that start at the same time at least one reads the other's file, since each writes
before it reads; that one learns the other's subscription from the file and teaches the other its
own by the request. So every publisher ends up sending to every local subscriber of its topics.
A subscriber's subscription has **joined** once every actor it asked has answered (an actor that
is stopped never answers: the runtime's join time-out then goes on without it). Until then a
message may miss it, exactly as through the proxy while a subscription is joining (ZeroMQ's slow
joiner); the runtime asks the node for the last values only once joined.

**Delivery** stays at-most-once, as on the proxy. A subscriber that falls behind gets a backlog
in the publisher, sent as its socket drains, up to :data:`~sniperbot.transport.bus.BUS_HWM`
messages (the proxy's own bound), past which messages to it are dropped and counted. A subscriber
that is gone (its socket refuses) is tried again after :data:`RETRY_S` or at once when its next
incarnation sends its request. Subscriptions are fixed per incarnation (an actor's ``topics``).
Within a round of the actor's loop (:meth:`LocalBus.cork`) the first message to a subscriber
leaves at once and the rest together at the round's end, packed in one datagram.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import msgspec

from sniperbot.transport.bus import BUS_HWM
from sniperbot.transport.direct import DIRECT_MAX_FRAME, DirectListener, FdWatch

#: How long a publisher waits before trying again to reach a subscriber whose socket refused.
RETRY_S = 0.1
_SUBSCRIBE = b"\x02"  # starts a subscribe request; a bus message starts with its topic (printable)
_ANSWER = b"\x03"  # the answer to a subscribe request
_PACKED = b"\x04"  # starts a datagram of several bus messages, each after its 4-byte length
_FLUSH_EVERY = 64  # a publisher with a backlog tries to send it every this many messages it adds
_TOPICS_SUFFIX = ".topics"
_MAX_ROUTES = 4096  # topics whose subscribers are remembered; past it the memory starts over


class Subscription(msgspec.Struct, array_like=True, frozen=True):
    """What a local subscriber wants: its id, incarnation and topic prefixes (file and request)."""

    actor_id: str
    incarnation: int
    topics: tuple[str, ...]


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Subscription).decode
# At import, so in the forkserver that preloads this module: a restarting actor does not pay
# msgspec's first encode of the type (its analysis) on its way to ready.
_decode(_encode(Subscription("", 0, ())))


def socket_path(run_dir: Path, actor_id: str) -> str:
    """Where ``actor_id`` listens for what local publishers send it."""
    return str(run_dir / f"sub-{actor_id}.sock")


def topics_path(run_dir: Path, actor_id: str) -> Path:
    """Where ``actor_id``'s current incarnation describes its subscription."""
    return run_dir / f"sub-{actor_id}{_TOPICS_SUFFIX}"


def stale_files(run_dir: Path) -> list[Path]:
    """The subscription files in ``run_dir`` (removed by the node at start and stop, with the sockets)."""
    # scandir and str tests, not Path.glob: a restarting actor would compile glob's regex first
    # (a fresh process from the forkserver), about a millisecond on its way to ready.
    with os.scandir(run_dir) as entries:
        return [
            Path(e.path) for e in entries if e.name.startswith("sub-") and e.name.endswith(_TOPICS_SUFFIX)
        ]


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


class _Peer:
    """One local subscriber of this publisher: its topics and the connection to its socket."""

    def __init__(self, sub: Subscription, path: str, watch: FdWatch) -> None:
        self.sub = sub
        self.path = path
        self._watch = watch
        self._sock: socket.socket | None = None
        self._retry_ns = 0
        self.backlog: deque[bytes] = deque()
        self.pending: list[bytes] = []  # held while the publisher is corked (LocalBus.cork)
        self.touched = False  # sent to in this corked round
        self.dropped = 0

    def send(self, message: memoryview) -> None:
        """Send one bus message now, or queue it behind a backlog; drop it past the bound."""
        backlog = self.backlog
        if backlog:
            if len(backlog) >= BUS_HWM:
                self.dropped += 1
                return
            backlog.append(bytes(message))
            if len(backlog) % _FLUSH_EVERY == 0:
                # A publisher in a burst may not return to its loop (where the socket's POLLOUT
                # sends the backlog) for a while: send what the subscriber has room for now.
                self._flush()
            return
        sock = self._sock or self._connect()
        if sock is None:
            return  # the subscriber is not there (stopped, restarting): nothing to deliver to
        try:
            sock.send(message, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            self.backlog.append(bytes(message))
            self._watch.watch_writable(sock.fileno(), self._flush)
        except OSError:  # EPIPE, ECONNRESET: the subscriber went away
            self.close()

    def hold(self, message: memoryview) -> None:
        """Keep ``message`` for :meth:`release` (a corked publisher); released at once past a bound."""
        self.pending.append(bytes(message))
        if len(self.pending) >= _FLUSH_EVERY:
            self.release()  # a long round (a burst): its first messages do not wait for its end

    def release(self) -> None:
        """Send what :meth:`hold` kept, as few datagrams as fit (one send and one wake-up of the
        subscriber for a round's messages to it), or queue it behind the backlog."""
        pending, self.pending = self.pending, []
        if len(pending) <= 1 or self.backlog:
            for message in pending:
                self.send(memoryview(message))
            return
        sock = self._sock or self._connect()
        if sock is None:
            return  # the subscriber is not there (stopped, restarting): nothing to deliver to
        queue = deque(pending)
        while queue:
            datagram, count = _pack(queue)
            try:
                sock.send(datagram, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                room = BUS_HWM  # the backlog is empty here
                self.dropped += max(0, len(queue) - room)
                self.backlog.extend(queue.popleft() for _ in range(min(room, len(queue))))
                self._watch.watch_writable(sock.fileno(), self._flush)
                return
            except OSError:  # EPIPE, ECONNRESET: the subscriber went away
                self.close()
                return
            for _ in range(count):
                queue.popleft()

    def _flush(self) -> None:
        """Send the backlog, many messages to a datagram: a subscriber that fell behind catches up
        at a fraction of a syscall per message."""
        sock = self._sock
        backlog = self.backlog
        while backlog and sock is not None:
            datagram, count = _pack(backlog)
            try:
                sock.send(datagram, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return  # still full: called again when it drains
            except OSError:
                self.close()
                return
            for _ in range(count):
                backlog.popleft()
        if sock is not None:
            self._watch.unwatch_writable(sock.fileno())

    def _connect(self) -> socket.socket | None:
        now = time.monotonic_ns()
        if now < self._retry_ns:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)  # a unix connect completes at once or fails (as DirectSender)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            self._retry_ns = now + int(RETRY_S * 1e9)
            return None
        self._sock = sock
        return sock

    def close(self) -> None:
        """Drop the connection and its backlog; the next send connects again (after the retry delay)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            if self.backlog:
                self._watch.unwatch_writable(sock.fileno())
            sock.close()
        self.backlog.clear()
        self.pending.clear()
        self._retry_ns = time.monotonic_ns() + int(RETRY_S * 1e9)


def _pack(backlog: deque[bytes]) -> tuple[bytes, int]:
    """The first messages of ``backlog`` as one datagram (at most DIRECT_MAX_FRAME bytes), and how many."""
    if len(backlog) == 1 or len(backlog[0]) + 5 > DIRECT_MAX_FRAME:
        return backlog[0], 1
    parts = [_PACKED]
    size = 1
    for message in backlog:
        if size + 4 + len(message) > DIRECT_MAX_FRAME:
            break
        parts.append(len(message).to_bytes(4, "big"))
        parts.append(message)
        size += 4 + len(message)
    return b"".join(parts), (len(parts) - 1) // 2


def _unpack(datagram: bytes) -> list[bytes]:
    """The bus messages of a packed datagram (:func:`_pack`); a truncated one ends the list."""
    messages = []
    at = 1
    end = len(datagram)
    while at + 4 <= end:
        size = int.from_bytes(datagram[at : at + 4], "big")
        at += 4
        if at + size > end:
            break
        messages.append(datagram[at : at + size])
        at += size
    return messages


class _Ask:
    """One subscribe request in flight: done on the answer, or when the asked actor's socket closes."""

    def __init__(self, path: str, watch: FdWatch, actor_id: str, done: Callable[[str], None]) -> None:
        self._watch = watch
        self._actor_id = actor_id
        self._done = done
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._path = path

    def send(self, request: bytes) -> bool:
        """Connect and send the request; False if the actor is not listening."""
        sock = self._sock
        assert sock is not None
        sock.setblocking(False)
        try:
            sock.connect(self._path)
            sock.send(request, socket.MSG_DONTWAIT)
        except OSError:
            self.close()
            return False
        self._watch.watch(sock.fileno(), self._read)
        return True

    def _read(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.recv(16)  # the answer, or b"" at end of file: done either way
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._done(self._actor_id)

    def close(self) -> None:
        """Stop waiting and close the connection."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._watch.unwatch(sock.fileno())
            sock.close()


class LocalBus:
    """One actor's part of the local bus: its subscriber socket, and its local subscribers (module doc).

    ``on_message`` gets each bus message sent to this actor; ``on_joined`` runs once every actor
    asked has answered. Call :meth:`start` before the actor starts, :meth:`learn` once it is
    ready, then :meth:`ask`; :meth:`publish` with each message it publishes, :meth:`close` when
    it stops.
    """

    def __init__(
        self,
        run_dir: Path,
        me: Subscription,
        watch: FdWatch,
        on_message: Callable[[bytes], None],
        on_joined: Callable[[], None],
    ) -> None:
        self.run_dir = run_dir
        self.me = me
        self._watch = watch
        self._on_message = on_message
        self._on_joined = on_joined
        self._peers: dict[str, _Peer] = {}
        self._routes: dict[str, list[_Peer]] = {}  # topic -> its subscribers (rebuilt on change)
        self._asking: dict[str, _Ask] = {}  # actors asked to send to us, not answered yet
        self._dropped_before = 0  # drops of entries replaced since (a new incarnation's request)
        self.joined = False
        self._listener: DirectListener | None = None
        self._topics_file = topics_path(run_dir, me.actor_id)
        self._to_ask: list[str] = []  # found by learn, asked by ask
        self._learned = False
        self._early: list[tuple[str, bytes]] = []  # published before learn()
        self._corked = False
        self._holding: list[_Peer] = []  # peers with held messages while corked

    def start(self) -> None:
        """Listen and describe our subscription (module doc); :meth:`learn` reads the others'.

        Before the actor's ``on_start``. The rest waits until the actor has said it is ready: a
        restarting actor pays every syscall on its way there (a fresh process: about 1.5 ms for
        ten actors' files on this VM); what it publishes meanwhile is held, then sent.
        """
        self._listener = DirectListener(
            socket_path(self.run_dir, self.me.actor_id), self._watch, self._on_frame
        )
        tmp = f"{self.run_dir}/.{self._topics_file.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
        try:
            os.write(fd, _encode(self.me))
        finally:
            os.close(fd)
        os.replace(tmp, self._topics_file)  # whole or absent: a reader never sees half of it

    def learn(self) -> None:
        """Read every local actor's subscription file (after writing ours: module doc), once, and
        send them what was published before (held by :meth:`publish`)."""
        if self._learned:
            return
        self._learned = True
        for path in stale_files(self.run_dir):
            try:
                sub = _decode(_read(path))
            except (OSError, msgspec.DecodeError):
                continue  # removed meanwhile, or being replaced: its actor asks us itself
            self._add(sub)
            if sub.actor_id != self.me.actor_id:
                self._to_ask.append(sub.actor_id)
        early, self._early = self._early, []
        for topic, message in early:
            self.publish(topic, memoryview(message))

    def ask(self) -> None:
        """Ask every local actor to send to us; joined once all have answered.

        Apart from :meth:`start` because it costs a connection and a wake-up of each actor: a
        restarting actor says it is ready first (others send to us only once asked, and our
        subscription has not joined before the answers anyway).
        """
        self.learn()
        request = _SUBSCRIBE + _encode(self.me)
        for actor_id in self._to_ask:
            asker = _Ask(socket_path(self.run_dir, actor_id), self._watch, actor_id, self._answered)
            if asker.send(request):
                self._asking[actor_id] = asker
            # else not listening: stopped, or restarting (its next incarnation reads our file)
        self._to_ask = []
        if not self._asking:
            self._join()

    @property
    def dropped(self) -> int:
        """Messages dropped for subscribers too slow to take them (past their backlog's bound)."""
        return self._dropped_before + sum(peer.dropped for peer in self._peers.values())

    def owns(self, fd: int) -> bool:
        """Whether ``fd`` is where local publishers' messages arrive (read before other input)."""
        return self._listener is not None and self._listener.owns(fd)

    def publish(self, topic: str, message: memoryview) -> None:
        """Send one bus message to every local subscriber of ``topic``."""
        if not self._learned:
            # Published while starting (on_start): held until the runtime calls learn() right after
            # the actor's Ready, so that a restart pays no file reads on its way to ready.
            if len(self._early) < BUS_HWM:
                self._early.append((topic, bytes(message)))
            return
        peers = self._routes.get(topic)
        if peers is None:
            if len(self._routes) >= _MAX_ROUTES:
                self._routes.clear()  # many one-off topics (signals): never grow without bound
            peers = self._routes[topic] = [p for p in self._peers.values() if topic.startswith(p.sub.topics)]
        if self._corked:
            for peer in peers:
                if peer.touched:
                    peer.hold(message)
                else:  # the round's first message to it leaves now: it never waits for the round
                    peer.touched = True
                    self._holding.append(peer)
                    peer.send(message)
            return
        for peer in peers:
            peer.send(message)

    def cork(self) -> None:
        """Hold what is published until :meth:`uncork`.

        The runtime corks for each round of handling. The round's first message to a subscriber
        still leaves at once (holding it too made the order path slower); the rest leave together
        when the round ends, before the actor waits again: an executor that publishes a venue
        answer's three events to three subscribers pays six sends, not nine, and a burst travels
        :data:`_FLUSH_EVERY` messages to a datagram (a wake-up of another process is most of a
        send's cost here).
        """
        self._corked = True

    def uncork(self) -> None:
        """Send what was held since :meth:`cork`, each subscriber's messages in one datagram."""
        self._corked = False
        holding, self._holding = self._holding, []
        for peer in holding:
            peer.touched = False
            peer.release()

    def close(self) -> None:
        """Stop listening and sending; remove our subscription file if it is still this incarnation's."""
        for asker in self._asking.values():
            asker.close()
        self._asking.clear()
        self.uncork()  # what the last round published still leaves
        for peer in self._peers.values():
            peer.close()
        self._peers.clear()
        self._routes.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with contextlib.suppress(OSError, msgspec.DecodeError):
            if _decode(_read(self._topics_file)).incarnation == self.me.incarnation:
                self._topics_file.unlink()

    # -- internals --------------------------------------------------------------------------------
    def _add(self, sub: Subscription) -> None:
        """Send to ``sub`` from now on (replacing an older incarnation's entry)."""
        if not sub.topics:
            return
        current = self._peers.get(sub.actor_id)
        if current is not None:
            if current.sub.incarnation > sub.incarnation:
                return  # an old incarnation's late request
            current.close()
            self._dropped_before += current.dropped  # a counter: the replaced entry's drops stay counted
        peer = _Peer(sub, socket_path(self.run_dir, sub.actor_id), self._watch)
        self._peers[sub.actor_id] = peer
        self._routes.clear()

    def _on_frame(self, conn: socket.socket, frame: bytes) -> None:
        kind = frame[:1]
        if kind == _PACKED:
            for message in _unpack(frame):
                self._on_message(message)
            return
        if kind != _SUBSCRIBE:
            self._on_message(frame)
            return
        try:
            sub = _decode(frame[1:])
        except msgspec.DecodeError:
            return  # not a request from one of ours: the asker never joins through it
        self._add(sub)
        with contextlib.suppress(OSError):  # the asker went away: its next incarnation asks again
            conn.send(_ANSWER, socket.MSG_DONTWAIT)

    def _answered(self, actor_id: str) -> None:
        """``actor_id`` took our subscription, or died before it answered (its next incarnation reads
        our file): either way nothing more to wait for from it."""
        asker = self._asking.pop(actor_id, None)
        if asker is not None:
            asker.close()
        if not self._asking:
            self._join()

    @property
    def waiting_for(self) -> list[str]:
        """The actors asked to send to us that have not answered yet."""
        return sorted(self._asking)

    def _join(self) -> None:
        if not self.joined:
            self.joined = True
            self._on_joined()
