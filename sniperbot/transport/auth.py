"""Who may say what: the trust boundary of a node and the authentication of authority messages.

**The boundary.** The OS user is the outer boundary: the run dir is 0700 and every
socket in it 0600, so another user cannot connect at all. Inside that boundary, any
process of the same user that is *not* one of this node life's actors may still connect
to the bus, the control socket and every inbox. Such a process must not be able to place
orders, forge fills or order updates, change the trading state or a breaker, or crash an
actor. It *can* still disturb the node (publish market data, fill queues, unlink or
rebind socket files): market data is not authenticated, to keep the tick path cheap, so
the price band and position limits of the risk guard are the defence against forged
prices. A process that can ptrace ours or read its memory (same user, ptrace allowed)
holds the secret and is out of scope: deny ptrace (``kernel.yama.ptrace_scope >= 1``) on
a production host.

**The secret.** The node makes 32 random bytes (``secrets.token_bytes``) at start. It is
never written to disk, argv, the environment or a log: it reaches each actor inside its
:class:`~sniperbot.actors.runtime.ActorLaunch` (the forkserver pipe for process
placement, memory for threads, the Ray actor's constructor argument for Ray placement,
which Ray keeps inside its cluster), and a new node life makes a new one, so a message
of an old life (an actor that outlived its node) is rejected.

**The tag.** An authority message carries a 16-byte keyed BLAKE2b tag in the envelope's
last field ``mac``. The key is derived from the secret and the *sender id*, so a receiver
checks both "holds the secret" and "is the sender it claims to be"; the tag covers the
whole frame up to the tag itself (topic, sender, incarnation, seq, time, payload), so
nothing is re-encoded on receive. Other messages (quotes, trades, bars, heartbeats, acks)
carry no tag and cost nothing more.

**The authority table** (:data:`AUTHORITY`, the one place): per payload kind, which
sender roles each receiver role accepts it from. A role is the part of an actor id
before its first dot (``executor.sim`` -> ``executor``, scope ``sim``). Venue-scoped
roles (``executor``, ``paper``, ``gateway``) may only send or receive messages of their own
venue. ``paper.<venue>`` is a venue's gateway in paper mode, ``gateway.<venue>`` in live mode
(:mod:`sniperbot.venues.base`): both play the exchange side of the executor's conversation.
A rejected message is dropped, counted in the receiver's ``invalid_frames`` (``admin
tree``) and logged once per reason, never a crash.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from sniperbot.messages import (
    AnalyserStatus,
    BreakerChanged,
    CancelOrder,
    Crash,
    Envelope,
    FeedStatus,
    Fill,
    MarketRules,
    MetricsSnapshot,
    Order,
    OrderIntent,
    OrderUpdate,
    PortfolioSnapshot,
    Post,
    Ready,
    RiskStatus,
    SetTradingState,
    Signal,
    TokenSafetyReport,
    VenueEvents,
    VenueOrderQuery,
    VenueOrderReport,
    VenueStatus,
    encode_envelope,
)

TAG_SIZE: Final = 16
PLACEHOLDER: Final = bytes(TAG_SIZE)  # the tag field while the tag is computed
SECRET_SIZE: Final = 32
NODE: Final = "node"  # the node's sender id on the bus and the control socket
ANY: Final = "*"  # any receiver role
SELF: Final = "self"  # the actor a Ready or MetricsSnapshot is about (sender == payload.actor_id)
_VENUE_SCOPED: Final = frozenset({"executor", "paper", "gateway", "checker"})
_KEY_CACHE: Final = 1024

# payload kind -> {receiver role (or ANY): sender roles it accepts that kind from}.
# A kind listed here and a receiver role missing from its entry: never accepted there.
AUTHORITY: Final[dict[type, dict[str, frozenset[str]]]] = {
    OrderIntent: {"risk_guard": frozenset({"strategy"})},
    Order: {
        "executor": frozenset({"risk_guard"}),
        "paper": frozenset({"executor"}),
        "gateway": frozenset({"executor"}),
    },
    CancelOrder: {
        "executor": frozenset({NODE}),
        "paper": frozenset({"executor"}),
        "gateway": frozenset({"executor"}),
    },
    VenueOrderQuery: {"paper": frozenset({"executor"}), "gateway": frozenset({"executor"})},
    VenueEvents: {"executor": frozenset({"paper", "gateway"})},
    VenueOrderReport: {"executor": frozenset({"paper", "gateway"})},
    Fill: {ANY: frozenset({"executor"})},
    # The executor publishes what its venue did; the risk guard publishes its own rejections.
    OrderUpdate: {ANY: frozenset({"executor", "risk_guard"})},
    SetTradingState: {"risk_guard": frozenset({NODE, "risk_guard"})},
    BreakerChanged: {ANY: frozenset({NODE})},
    Ready: {ANY: frozenset({NODE, SELF})},
    RiskStatus: {ANY: frozenset({"risk_guard"})},
    PortfolioSnapshot: {ANY: frozenset({"portfolio"})},
    # Market state, but the risk guard acts on it: a forged stale=False would let it trade on stale
    # prices, so only a feed actor may say it (a few messages a second: the tag costs nothing here).
    FeedStatus: {ANY: frozenset({"feed"})},
    # The node opens a venue's breaker on it: only that venue's own gateway may say it.
    VenueStatus: {ANY: frozenset({"paper", "gateway"})},
    # The risk guard sizes and refuses orders by it (lot step, minimums): only a feed may say it.
    MarketRules: {ANY: frozenset({"feed"})},
    Crash: {ANY: frozenset({NODE})},
    # Any actor (and the node, as "node") reports its own metrics, never another's: a forged
    # snapshot would show the operator a healthy actor that is not.
    MetricsSnapshot: {ANY: frozenset({SELF})},
    # A "buy" spends money (the sniper acts on it): only the venue's own token checker may say it.
    TokenSafetyReport: {ANY: frozenset({"checker"})},
    # Strategies and the sniper decide on signals: only an analyser may say one, and only as itself
    # (``source`` is its own id), so every signal truly says where it came from.
    Signal: {ANY: frozenset({"analyser"})},
    Post: {ANY: frozenset({"analyser"})},
    AnalyserStatus: {ANY: frozenset({"analyser"})},
}


def role_of(actor_id: str) -> tuple[str, str]:
    """``(role, scope)`` of an actor id: ``executor.sim`` -> ``("executor", "sim")``."""
    role, _, scope = actor_id.partition(".")
    return role, scope


def derive_key(secret: bytes, sender: str) -> bytes:
    """The per-sender key: only a holder of the secret can compute it for any sender."""
    return hashlib.blake2b(sender.encode(), key=secret, digest_size=32, person=b"sniperbot-sender").digest()


def needs_tag(payload: object) -> bool:
    """Whether this payload kind carries authority (and so travels with a tag)."""
    return type(payload) in AUTHORITY


class Signer:
    """Encodes this sender's envelopes, tagging those that carry authority."""

    def __init__(self, secret: bytes, sender: str) -> None:
        self._key = derive_key(secret, sender)

    def encode(self, envelope: Envelope) -> bytes:
        """Wire bytes of ``envelope``: tagged if its payload carries authority."""
        if type(envelope.payload) not in AUTHORITY:
            return encode_envelope(envelope)
        tagged = Envelope(
            envelope.topic,
            envelope.sender,
            envelope.incarnation,
            envelope.seq,
            envelope.ts_ns,
            envelope.payload,
            PLACEHOLDER,
        )
        body = encode_envelope(tagged)[:-TAG_SIZE]
        return body + hashlib.blake2b(body, key=self._key, digest_size=TAG_SIZE).digest()


class Verifier:
    """Checks authority messages arriving at one receiver against :data:`AUTHORITY` and their tag."""

    def __init__(self, secret: bytes, receiver: str) -> None:
        self._secret = secret
        self.receiver = receiver
        self.role, self.scope = role_of(receiver)
        self._keys: dict[str, bytes] = {}

    def check(self, frame: bytes | memoryview, envelope: Envelope) -> str | None:
        """None if the message may be taken; otherwise why not (for the log and the counter)."""
        rules = AUTHORITY.get(type(envelope.payload))
        if rules is None:
            return None
        payload = envelope.payload
        kind = type(payload).__name__
        allowed = rules.get(self.role, rules.get(ANY))
        if allowed is None:
            return f"{kind} is never accepted by {self.role}"
        sender_role, sender_scope = role_of(envelope.sender)
        if envelope.sender == NODE:
            sender_role = NODE
        if isinstance(payload, Ready | MetricsSnapshot):
            if not ((NODE in allowed and sender_role == NODE) or envelope.sender == payload.actor_id):
                return f"{kind} for {payload.actor_id!r} from {envelope.sender!r}"
        elif sender_role not in allowed:
            return f"{kind} from {envelope.sender!r}: only {sorted(allowed)} may send it to {self.role}"
        venue = getattr(payload, "venue", None)
        if venue is not None:
            if sender_role in _VENUE_SCOPED and venue != sender_scope:
                return f"{kind} of venue {venue!r} from {envelope.sender!r}"
            if self.role in _VENUE_SCOPED and venue != self.scope:
                return f"{kind} of venue {venue!r} sent to {self.receiver!r}"
        if isinstance(payload, Signal | Post | AnalyserStatus) and payload.source != sender_scope:
            return f"{kind} of source {payload.source!r} from {envelope.sender!r}"
        if isinstance(payload, OrderIntent) and payload.strategy_id != sender_scope:
            return f"OrderIntent of strategy {payload.strategy_id!r} from {envelope.sender!r}"
        return self._check_tag(frame, envelope)

    def _check_tag(self, frame: bytes | memoryview, envelope: Envelope) -> str | None:
        tag = envelope.mac
        # The tag is the frame's last field, so a decoded frame ends with exactly its bytes.
        if len(tag) != TAG_SIZE or bytes(frame[-TAG_SIZE:]) != tag:
            return f"{type(envelope.payload).__name__} from {envelope.sender!r} without a valid tag"
        key = self._keys.get(envelope.sender)
        if key is None:
            if len(self._keys) >= _KEY_CACHE:
                self._keys.clear()  # senders are few; a flood of made-up names must not grow memory
            key = self._keys[envelope.sender] = derive_key(self._secret, envelope.sender)
        expected = hashlib.blake2b(frame[:-TAG_SIZE], key=key, digest_size=TAG_SIZE).digest()
        if not hmac.compare_digest(expected, tag):
            return f"{type(envelope.payload).__name__} from {envelope.sender!r} with a wrong tag"
        return None
