"""A local Telegram Bot API server with updates: long polling, commands and button presses.

Speaks the real wire format python-telegram-bot uses (``POST /bot<token>/<method>``, JSON or form
bodies, ``{"ok": true, "result": ...}``): ``getMe``, ``getUpdates`` (long polling: ``offset``
acknowledges, ``timeout`` waits), ``deleteWebhook``, ``setMyCommands``, ``sendMessage``,
``editMessageText``, ``answerCallbackQuery``. A test pushes what users do (:meth:`push_text`,
:meth:`push_button`) and reads what the bot said (:meth:`said`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from aiohttp import web

from tests.ops_servers import HttpStub, _body


class BotApiUpdatesServer(HttpStub):
    """One bot's side of the Bot API, with users' updates queued for ``getUpdates``."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []  # sendMessage / editMessageText bodies, in order
        self._next_update = 1
        self._message_id = 0
        self._lock = threading.Lock()
        self._arrived: asyncio.Event | None = None

    def routes(self) -> list[web.RouteDef]:
        """``/bot<token>/<method>``."""
        return [web.post("/bot{token}/{method}", self._method)]

    # -- what users do (test thread) ---------------------------------------------------------------
    def push_text(self, chat_id: int, text: str, user_id: int | None = None) -> None:
        """A user sends ``text`` (a ``/command`` gets its bot_command entity)."""
        with self._lock:
            self._message_id += 1
            message: dict[str, Any] = {
                "message_id": self._message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": user_id or chat_id, "is_bot": False, "first_name": "op"},
                "text": text,
            }
            if text.startswith("/"):
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
            self._push({"message": message})

    def push_button(self, chat_id: int, message_id: int, data: str) -> None:
        """A user presses an inline button with ``data`` under the bot's message ``message_id``."""
        with self._lock:
            self._push(
                {
                    "callback_query": {
                        "id": str(self._next_update),
                        "from": {"id": chat_id, "is_bot": False, "first_name": "op"},
                        "chat_instance": "1",
                        "data": data,
                        "message": {
                            "message_id": message_id,
                            "date": int(time.time()),
                            "chat": {"id": chat_id, "type": "private"},
                            "from": {"id": 1, "is_bot": True, "first_name": "bot"},
                            "text": "…",
                        },
                    }
                }
            )

    def said(self, chat_id: int) -> list[dict[str, Any]]:
        """What the bot sent or edited in ``chat_id``, in order."""
        return [m for m in list(self.sent) if int(m.get("chat_id", 0)) == chat_id]

    def _push(self, update: dict[str, Any]) -> None:
        update["update_id"] = self._next_update
        self._next_update += 1
        self.updates.append(update)
        if self._arrived is not None:
            self._loop.call_soon_threadsafe(self._arrived.set)

    # -- the Bot API ------------------------------------------------------------------------------
    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        record = await _body(request)
        body: dict[str, Any] = record.get("json") or {}
        method = request.match_info["method"]
        self.requests.append({"method": method, **record})
        if method == "getMe":
            return _ok({"id": 1, "is_bot": True, "first_name": "sniperbot", "username": "sniperbot_test_bot"})
        if method in ("deleteWebhook", "setMyCommands", "answerCallbackQuery"):
            return _ok(True)
        if method == "getUpdates":
            return _ok(await self._get_updates(body))
        if method in ("sendMessage", "editMessageText"):
            entry = dict(body)
            if isinstance(entry.get("reply_markup"), str):
                entry["reply_markup"] = json.loads(entry["reply_markup"])
            entry["method"] = method
            with self._lock:
                if method == "sendMessage":
                    self._message_id += 1
                    entry["message_id"] = self._message_id
                self.sent.append(entry)
            return _ok(
                {
                    "message_id": entry.get("message_id", 0),
                    "date": int(time.time()),
                    "chat": {"id": int(body.get("chat_id", 0)), "type": "private"},
                    "text": body.get("text", ""),
                }
            )
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _get_updates(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(body.get("offset", 0) or 0)
        timeout = float(body.get("timeout", 0) or 0)
        deadline = time.monotonic() + min(timeout, 10.0)
        while True:
            with self._lock:
                if offset:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]  # acknowledged
                pending = list(self.updates)
                self._arrived = asyncio.Event()
            if pending or time.monotonic() >= deadline:
                return pending
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                pass


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})
