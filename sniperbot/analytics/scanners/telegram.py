"""Telegram: posts of public or private channels the bot is a member of, through the Bot API.

Wire format (https://core.telegram.org/bots/api#getupdates): ``GET /bot<token>/getUpdates?offset=
&timeout=&allowed_updates=["channel_post"]`` (long polling: the server holds the request up to
``timeout`` seconds until an update comes) answers ``{"ok": true, "result": [Update]}``; an
``Update`` has ``update_id`` and ``channel_post`` (a Message: ``message_id``, ``chat`` {``id``,
``username``, ``title``}, ``date`` epoch seconds, ``text`` or, for media, ``caption``). Asking with
``offset = last update_id + 1`` confirms everything before it (the server forgets it). Flood control
(https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this): a 429 answers
``{"ok": false, "error_code": 429, "parameters": {"retry_after": N}}``.

Cursor: the next offset. Posts of chats not in ``channels`` are skipped (and confirmed all the same).
The token is part of every URL: it is scrubbed from every error text, and no URL is logged.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import msgspec

from sniperbot.analytics.scanners.base import (
    Fetched,
    Http,
    Response,
    ScannerActor,
    ServiceError,
    TargetCursor,
    parse_each,
)
from sniperbot.analytics.scanners.config import TelegramChannelConfig, read_secret
from sniperbot.messages.signals import Post

TARGET = "getUpdates"  # one stream for every channel


class TelegramChannelScanner(ScannerActor):
    """Posts of ``channels`` as :class:`Post` (``channel`` = ``@username``, or the chat id without one)."""

    config_type: ClassVar[type[TelegramChannelConfig]] = TelegramChannelConfig
    platform: ClassVar[str] = "telegram"
    default_base_url: ClassVar[str] = "https://api.telegram.org"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token = read_secret(self.config, "bot_token")
        self._wanted = {c.lower() for c in self.config.channels}  # type: ignore[attr-defined]

    def targets(self) -> list[str]:
        """One update stream."""
        return [TARGET]

    def secrets(self) -> list[str]:
        """The bot token (in every URL)."""
        return [self._token]

    def cycle_pause_s(self) -> float:
        """Long polling waits at the server: ask again at once."""
        return 0.0 if self.config.long_poll_s else self.config.poll_interval_s  # type: ignore[attr-defined]

    def limit_wait(self, response: Response) -> float:
        """A 429's ``parameters.retry_after``."""
        if response.status != 429:
            return 0.0
        try:
            return max(0.0, float(msgspec.json.decode(response.body)["parameters"]["retry_after"]))
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            return super().limit_wait(response)

    async def fetch(self, http: Http, cursor: TargetCursor) -> Fetched:
        """One ``getUpdates`` from the offset."""
        wait = self.config.long_poll_s  # type: ignore[attr-defined]
        params = {"timeout": str(wait), "allowed_updates": json.dumps(["channel_post"])}
        if cursor.cursor:
            params["offset"] = cursor.cursor
        answer = (
            await http.get(f"{self.base_url}/bot{self._token}/getUpdates", params, extra_timeout_s=wait)
        ).json()
        if not isinstance(answer, dict) or not answer.get("ok"):
            raise ServiceError(f"getUpdates refused: {str(answer)[:200]}")
        offset = int(cursor.cursor or 0)
        result = answer.get("result", [])
        if isinstance(result, list):
            # Every update is confirmed, a malformed one too: it must not block the stream.
            ids = [
                u["update_id"] for u in result if isinstance(u, dict) and isinstance(u.get("update_id"), int)
            ]
            offset = max([offset, *(i + 1 for i in ids)])
        posts, bad = parse_each(result, lambda u: self._post(u.get("channel_post")))
        return Fetched(
            TARGET, posts, msgspec.structs.replace(cursor, cursor=str(offset) if offset else ""), bad
        )

    def _post(self, msg: dict[str, Any] | None) -> Post | None:
        """A channel post of a listed channel as a Post (None otherwise)."""
        if not msg:
            return None
        chat = msg.get("chat") or {}
        username = f"@{chat['username']}" if chat.get("username") else ""
        if username.lower() not in self._wanted and str(chat.get("id")) not in self._wanted:
            return None
        return Post(
            source=self.source,
            platform=self.platform,
            post_id=f"{chat.get('id')}:{msg['message_id']}",
            text=str(msg.get("text") or msg.get("caption") or ""),
            created_ns=int(msg["date"]) * 1_000_000_000,
            ts_ns=0,
            author=str(msg.get("author_signature") or chat.get("title") or ""),
            channel=username or str(chat.get("id")),
            url=f"https://t.me/{chat['username']}/{msg['message_id']}" if username else "",
            engagement=float(msg.get("views") or 0),
        )
