"""The admin socket's wire format: one JSON request, one JSON reply.

Request ``{"cmd": "tree" | "status" | "ping", "args": {...}}``; reply
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"code", "message"}}``.
Error codes: ``invalid_message`` (not a valid request; the message says
where), ``unknown_command``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Command = Literal["ping", "tree", "status"]


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
