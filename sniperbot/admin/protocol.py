"""The admin socket's wire format: one JSON request, one JSON reply.

Request ``{"cmd": <command>, "args": {...}}``; reply ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": {"code", "message"}}``. Error codes are OTP's where
they apply (``not_found``, ``running``, ``restarting``, ``already_present``,
``already_started``, ``invalid_spec``, ``not_running``) plus ``invalid_message``
(not a valid request; the message says where), ``chaos_disabled``,
``start_failed`` and ``timeout``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

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
reply_decoder = msgspec.json.Decoder(AdminReply)
encoder = msgspec.json.Encoder()
