"""The plug-in protocol: JSON lines both ways, one JSON object per ``\\n``-terminated UTF-8 line.

**stdin (node -> plug-in).** Every bus message on the plug-in's ``inputs`` topics as
``{"topic": "md.sim.quote.BTC/USDT.", "msg": {"t": "quote", ...}}`` (``msg`` is the message's own JSON,
its wire tag in ``"t"``), and every ``tick_s`` a ``{"t": "tick", "ts_ns": <unix ns>}``. Lines the
plug-in does not read in time are dropped, never queued without bound. EOF: stop.

**stdout (plug-in -> node).** Signals, as the :class:`~sniperbot.messages.Signal` fields:
``{"subject": "BTC", "kind": "momentum", "value": 0.0012, "confidence": 0.8, "window_s": 60}``
(``"t": "signal"`` optional; ``source`` optional and, if given, the plug-in's own id; ``ts_ns`` 0 or
absent: now), or a heartbeat ``{"t": "hb"}``. Every line is checked by :func:`parse_line`; a refused
line is dropped and counted, never fatal. stderr is the plug-in's log (the node logs it, truncated).
"""

from __future__ import annotations

import math
import time
from typing import Final

import msgspec

from sniperbot.messages import Signal
from sniperbot.messages.signals import KIND_RULE, SIGNAL_VERSION, SUBJECT_RULE

MAX_ORIGIN_CHARS: Final = 200
#: How far ahead of the node's clock a signal's ``ts_ns`` may be (clock skew), in ns.
MAX_FUTURE_NS: Final = 5_000_000_000
HEARTBEAT: Final = "hb"


class LineRefused(ValueError):
    """A plug-in's output line was refused; the message names the rule (never the line's content)."""


class _Line(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What a plug-in may write in a signal line (``Signal`` without what the node decides)."""

    subject: str
    kind: str
    value: float
    confidence: float = 1.0
    window_s: float = 0.0
    ts_ns: int = 0
    count: int = 0
    stale: bool = False
    origin: str = ""
    source: str = ""
    version: int = SIGNAL_VERSION


def parse_line(line: bytes, plugin_id: str, now_ns: int | None = None) -> Signal | None:
    """The signal a plug-in's output line carries (``source`` = ``plugin_id``), None for a heartbeat.

    Raises :class:`LineRefused` naming the rule the line broke.
    """
    try:
        obj = msgspec.json.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # ValidationError: a number out of range
        raise LineRefused(f"not JSON ({str(e)[:80]})") from None
    if not isinstance(obj, dict):
        raise LineRefused(f"not a JSON object but a {type(obj).__name__}")
    tag = obj.pop("t", "signal")
    if tag == HEARTBEAT:
        if obj:
            raise LineRefused("a heartbeat has no other field")
        return None
    if tag != "signal":
        raise LineRefused("t: neither 'signal' nor 'hb'")
    try:
        raw = msgspec.convert(obj, _Line)
    except msgspec.ValidationError as e:
        raise LineRefused(str(e)[:120]) from None
    if raw.source and raw.source != plugin_id:
        raise LineRefused(f"source: a plug-in signs as itself ({plugin_id!r}), not as another source")
    if not SUBJECT_RULE.fullmatch(raw.subject):
        raise LineRefused("subject: not an upper-case ticker, an EVM address or a Solana mint")
    if not KIND_RULE.fullmatch(raw.kind):
        raise LineRefused("kind: lower snake case, 1-32 characters")
    for name in ("value", "confidence", "window_s"):
        if not math.isfinite(getattr(raw, name)):
            raise LineRefused(f"{name}: not a finite number")
    if not 0.0 <= raw.confidence <= 1.0:
        raise LineRefused("confidence: outside [0, 1]")
    if raw.window_s < 0 or raw.count < 0 or raw.ts_ns < 0:
        raise LineRefused("window_s, count, ts_ns: negative")
    if raw.version != SIGNAL_VERSION:
        raise LineRefused(f"version: this node speaks signal version {SIGNAL_VERSION}")
    if len(raw.origin) > MAX_ORIGIN_CHARS or not raw.origin.isprintable():
        raise LineRefused(f"origin: at most {MAX_ORIGIN_CHARS} printable characters")
    now = time.time_ns() if now_ns is None else now_ns
    if raw.ts_ns > now + MAX_FUTURE_NS:
        raise LineRefused("ts_ns: in the future")
    return Signal(
        source=plugin_id,
        subject=raw.subject,
        kind=raw.kind,
        value=raw.value,
        confidence=raw.confidence,
        window_s=raw.window_s,
        ts_ns=raw.ts_ns or now,
        count=raw.count,
        stale=raw.stale,
        origin=raw.origin,
    )


_json = msgspec.json.Encoder()


def input_line(topic: str, payload: msgspec.Struct) -> bytes:
    """A bus message as the plug-in reads it: ``{"topic": ..., "msg": <the payload's JSON>}``."""
    return b'{"topic":' + _json.encode(topic) + b',"msg":' + _json.encode(payload) + b"}\n"


def tick_line(ts_ns: int) -> bytes:
    """The periodic tick: ``{"t": "tick", "ts_ns": ...}``."""
    return b'{"t":"tick","ts_ns":%d}\n' % ts_ns
