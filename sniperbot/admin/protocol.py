"""The admin socket's wire format: one JSON request, one JSON reply.

Request ``{"cmd": <command>, "args": {...}}``; reply ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": {"code", "message"}}``. Error codes are OTP's where
they apply (``not_found``, ``running``, ``restarting``, ``already_present``,
``already_started``, ``invalid_spec``, ``not_running``) plus ``invalid_message``
(not a valid request; the message says where), ``chaos_disabled``,
``start_failed``, ``timeout`` and ``internal_error`` (a bug in the node: the
command was not carried out, the node keeps running).

A request is at most :data:`MAX_REQUEST_BYTES`; the admin sockets refuse larger
frames (ZeroMQ ``MAXMSGSIZE`` disconnects the sender).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from sniperbot.messages import InvalidFrame

# The largest request is a start-child spec: a few hundred bytes. 64 KiB leaves room
# for any real spec and bounds what one hostile request can make the node allocate.
MAX_REQUEST_BYTES = 64 * 1024

Command = Literal[
    "ping",
    "tree",
    "status",
    "which_children",
    "count_children",
    "get_childspec",
    "start_child",
    "terminate_child",
    "restart_child",
    "delete_child",
    "add_strategy",
    "remove_strategy",
    "halt",
    "resume",
    "breaker_status",
    "breaker_reset",
    "chaos",
    "shutdown",
]


class AdminRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One operator request."""

    cmd: Command
    args: dict[str, Any] = {}


class AdminError(msgspec.Struct, frozen=True):
    """Why a request failed: a stable code and a sentence."""

    code: str
    message: str


class AdminReply(msgspec.Struct, frozen=True, omit_defaults=True):
    """The answer to one request."""

    ok: bool
    result: Any = None
    error: AdminError | None = None


request_decoder = msgspec.json.Decoder(AdminRequest)


def decode_request(frame: bytes) -> AdminRequest:
    """Decode one request, raising :class:`InvalidFrame` (with the reason) for *any* bad frame.

    Like ``decode_envelope``: deep nesting raises ``RecursionError`` in msgspec, not
    ``DecodeError``, and it must not reach the node's loop.
    """
    try:
        return request_decoder.decode(frame)
    except msgspec.DecodeError as e:
        raise InvalidFrame(str(e)) from None
    except RecursionError:
        raise InvalidFrame("request nested too deeply") from None
    except Exception as e:  # MemoryError, OverflowError, ValueError, ...
        raise InvalidFrame(f"undecodable request ({type(e).__name__})") from None


reply_decoder = msgspec.json.Decoder(AdminReply)
encoder = msgspec.json.Encoder()
