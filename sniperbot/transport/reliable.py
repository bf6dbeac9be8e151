"""The reliable point-to-point path for order flow: at-least-once, deduplicated by id.

An :class:`Outbox` (DEALER) keeps every message until its :class:`Inbox` (ROUTER)
acknowledges it, and resends what is unacknowledged after a timeout or at once
when the receiver announces a new incarnation. The inbox acknowledges only
after its handler returned, and drops a message id it has already handled, so
each message takes effect once even though it may travel twice. Message id:
``(sender, incarnation, seq)``, ``seq`` counted per channel.

**The actor runtime defers its acknowledgements** (:meth:`Inbox.ack_later`, :meth:`Inbox.flush`).
An ack is a message that wakes its sender's process. Sent the instant a handler returns, it lands
while the message just handled is still travelling down the order path (strategy -> risk guard ->
executor -> venue), and on a 2-core machine each such wake-up takes a core from the next hop. The
runtime flushes its queued acks once its loop has found no input for a millisecond, or when the
oldest has waited :data:`ACK_MAX_DELAY_S` (a busy actor), and when it closes. Nothing is weakened:
a message is acknowledged only after it took effect, as before, and an ack lost with a crash
(queued, not sent) is a resend that the receiver drops (in memory, or by its journal after a
restart), exactly like an ack lost on the wire. The resend timeout (0.5 s) is far above the delay.

**Between processes of one machine** the frames travel on a direct unix socket beside the
``ipc://`` endpoint, read and written by the actors' own threads, not through ZeroMQ's I/O
threads (:mod:`sniperbot.transport.direct`): both ends need an :class:`~sniperbot.transport.direct.FdWatch`
(the actor runtime's poller). Without one, and for ``tcp://``, it is ZeroMQ as before. The
acknowledgement of a message goes back on the channel the message came by.
"""

from __future__ import annotations

import socket
import time
from collections import OrderedDict
from collections.abc import Callable

import zmq

from sniperbot.messages import (
    Ack,
    Envelope,
    InvalidFrame,
    Payload,
    decode_envelope,
    encode_envelope,
)
from sniperbot.transport.auth import Signer
from sniperbot.transport.bus import bind_private, tune
from sniperbot.transport.direct import (
    DIRECT_MAX_FRAME,
    DirectListener,
    DirectSender,
    FdWatch,
    direct_path,
    reply,
)

# Enough to cover every id that can still be resent: a sender resends for as
# long as it lives, but only unacknowledged ones, which are few.
_DEDUP_WINDOW = 200_000
#: The longest a queued acknowledgement waits while its actor stays busy (see the module docstring).
ACK_MAX_DELAY_S = 0.005
_ACK_MAX_DELAY_NS = int(ACK_MAX_DELAY_S * 1e9)


class Outbox:
    """Sends payloads to one actor's inbox and resends them until acknowledged."""

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        sender: str,
        incarnation: int,
        resend_after_s: float = 0.5,
        signer: Signer | None = None,
        watch: FdWatch | None = None,
    ) -> None:
        self.socket = ctx.socket(zmq.DEALER)
        tune(self.socket)
        self.socket.connect(endpoint)
        path = direct_path(endpoint) if watch is not None else None
        self.direct = (
            DirectSender(path, watch, lambda frame: self.on_ack(decode_envelope(frame)))
            if path is not None and watch is not None
            else None
        )
        self.sender = sender
        self.incarnation = incarnation
        self.resend_after_ns = int(resend_after_s * 1e9)
        self.seq = 0
        self.resent = 0
        self._unacked: dict[int, tuple[bytes, int]] = {}
        self._on_ack: dict[int, Callable[[], None]] = {}
        self.signer = signer

    @property
    def unacked(self) -> int:
        """How many messages wait for an acknowledgement."""
        return len(self._unacked)

    def send(self, topic: str, payload: Payload, on_ack: Callable[[], None] | None = None) -> int:
        """Queue ``payload`` for delivery and return its sequence number.

        ``on_ack`` runs once, when the receiver acknowledges the message.
        """
        self.seq += 1
        envelope = Envelope(topic, self.sender, self.incarnation, self.seq, time.time_ns(), payload)
        frame = encode_envelope(envelope) if self.signer is None else self.signer.encode(envelope)
        # Resend timing uses the monotonic clock: a wall-clock step must not stall resends.
        self._unacked[self.seq] = (frame, time.monotonic_ns())
        if on_ack is not None:
            self._on_ack[self.seq] = on_ack
        self._try_send(frame)
        return self.seq

    def _try_send(self, frame: bytes) -> None:
        direct = self.direct
        if direct is not None and len(frame) <= DIRECT_MAX_FRAME:
            direct.send(frame)  # if it cannot go now, the resend timer tries again
            return
        try:
            self.socket.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            pass  # the resend timer tries again

    def on_ack(self, envelope: Envelope) -> None:
        """Forget an acknowledged message (an ack from either channel)."""
        payload = envelope.payload
        if isinstance(payload, Ack) and self._unacked.pop(payload.seq, None) is not None:
            callback = self._on_ack.pop(payload.seq, None)
            if callback is not None:
                callback()

    def resend_due(self, now_ns: int) -> None:
        """Resend messages unacknowledged for longer than the resend timeout (monotonic ns)."""
        for seq, (frame, sent_ns) in list(self._unacked.items()):
            if now_ns - sent_ns >= self.resend_after_ns:
                self._unacked[seq] = (frame, now_ns)
                self.resent += 1
                self._try_send(frame)

    def resend_all(self) -> None:
        """Resend everything unacknowledged now (the receiver just restarted), on a new connection."""
        if self.direct is not None:
            self.direct.reconnect()
        now = time.monotonic_ns()
        for seq, (frame, _) in list(self._unacked.items()):
            self._unacked[seq] = (frame, now)
            self.resent += 1
            self._try_send(frame)

    def close(self) -> None:
        """Close the sockets; unacknowledged messages are dropped."""
        if self.direct is not None:
            self.direct.close()
        self.socket.close(0)


#: Who sent an inbox message, to route its acknowledgement: a ROUTER identity, or a direct connection.
Identity = bytes | socket.socket


class Inbox:
    """An actor's ROUTER (and direct socket) for reliable messages: decodes, deduplicates, acknowledges.

    With ``watch`` and ``on_direct``, an ``ipc://`` inbox also listens on its direct socket
    (module docstring) and hands each frame that arrives there to ``on_direct(identity, frame)``,
    as the runtime reads its ROUTER.
    """

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        owner: str,
        incarnation: int,
        watch: FdWatch | None = None,
        on_direct: Callable[[Identity, bytes], None] | None = None,
    ) -> None:
        self.socket = ctx.socket(zmq.ROUTER)
        tune(self.socket)
        bind_private(self.socket, endpoint)
        path = direct_path(endpoint)
        self.direct = (
            DirectListener(path, watch, on_direct)
            if path is not None and watch is not None and on_direct is not None
            else None
        )
        self.owner = owner
        self.incarnation = incarnation
        self.duplicates = 0
        self._seen: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self._held: set[tuple[str, int, int]] = set()
        self._queued: list[tuple[Identity, int]] = []  # (identity, seq): acks not sent yet
        self._queued_since_ns = 0  # monotonic time of the oldest queued ack

    @property
    def queued(self) -> int:
        """How many acknowledgements wait in the queue (:meth:`ack_later`)."""
        return len(self._queued)

    def ack_overdue(self, now_ns: int) -> bool:
        """Whether the oldest queued ack has waited :data:`ACK_MAX_DELAY_S` (monotonic ns)."""
        return bool(self._queued) and now_ns - self._queued_since_ns >= _ACK_MAX_DELAY_NS

    def is_duplicate(self, envelope: Envelope) -> bool:
        """True if this message id was already handled (and acknowledged)."""
        return (envelope.sender, envelope.incarnation, envelope.seq) in self._seen

    def is_held(self, envelope: Envelope) -> bool:
        """True if this message is being handled and its acknowledgement is held back."""
        return (envelope.sender, envelope.incarnation, envelope.seq) in self._held

    def hold(self, identity: Identity, envelope: Envelope) -> Callable[[], None]:
        """Hold back the acknowledgement; the returned function sends it (once).

        An actor that forwards a message holds its ack until the next hop has
        acknowledged, so a crash in between makes the sender resend it.
        Resends of a held message are ignored until then.
        """
        key = (envelope.sender, envelope.incarnation, envelope.seq)
        self._held.add(key)

        def release() -> None:
            if key in self._held:
                self._held.discard(key)
                self.ack_later(identity, envelope)

        return release

    def ack(self, identity: Identity, envelope: Envelope) -> None:
        """Record the message as handled and acknowledge it to its sender now."""
        self._record(envelope)
        self._send_ack(identity, envelope.seq, time.time_ns())

    def ack_later(self, identity: Identity, envelope: Envelope) -> None:
        """Record the message as handled; its acknowledgement goes with the next :meth:`flush`."""
        self._record(envelope)
        if not self._queued:
            self._queued_since_ns = time.monotonic_ns()
        self._queued.append((identity, envelope.seq))

    def flush(self) -> None:
        """Send every queued acknowledgement."""
        queued, self._queued = self._queued, []
        now = time.time_ns()
        for identity, seq in queued:
            self._send_ack(identity, seq, now)

    def _record(self, envelope: Envelope) -> None:
        key = (envelope.sender, envelope.incarnation, envelope.seq)
        if key not in self._seen:
            self._seen[key] = None
            if len(self._seen) > _DEDUP_WINDOW:
                self._seen.popitem(last=False)

    def _send_ack(self, identity: Identity, seq: int, ts_ns: int) -> None:
        frame = encode_envelope(Envelope("ack", self.owner, self.incarnation, 0, ts_ns, Ack(seq=seq)))
        if not isinstance(identity, bytes):
            reply(identity, frame)  # back on the direct connection it came by
            return
        try:
            self.socket.send_multipart((identity, frame), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the sender is gone or full; it resends and we ack again

    def close(self) -> None:
        """Send the queued acknowledgements (best effort), then close the sockets."""
        self.flush()
        if self.direct is not None:
            self.direct.close()
        self.socket.close(0)


def decode_routed(frames: list[bytes]) -> tuple[bytes, Envelope]:
    """Split a ROUTER message into (identity, envelope); raises InvalidFrame on bad shape."""
    if len(frames) != 2:
        raise InvalidFrame(f"expected 2 frames (identity, envelope), received {len(frames)}")
    return frames[0], decode_envelope(frames[1])
