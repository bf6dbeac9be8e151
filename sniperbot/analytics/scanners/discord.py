"""Discord: messages of channels through the bot API.

Wire format (https://discord.com/developers/docs/resources/message#get-channel-messages):
``GET /api/v10/channels/{id}/messages?after=<snowflake>&limit=100`` with ``Authorization: Bot <token>``
answers an array of messages (``id`` a snowflake, ``content``, ``timestamp`` ISO 8601, ``author``
{``id``, ``username``}, ``reactions[].count``). Rate limits
(https://discord.com/developers/docs/topics/rate-limits): ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset-After`` (seconds) on every answer; a 429's JSON body says ``retry_after`` (seconds).

Cursor: the newest snowflake published; a poll follows ``after`` pages while they come back full.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from sniperbot.analytics.scanners.base import (
    Fetched,
    Http,
    Response,
    ScannerActor,
    TargetCursor,
    header_float,
    parse_each,
)
from sniperbot.analytics.scanners.config import DiscordConfig, read_secret
from sniperbot.analytics.scanners.x import iso_ns
from sniperbot.messages.signals import Post

PAGE = 100
MAX_PAGES = 10  # pages per channel and poll (a backlog of 1,000 messages is plenty)


class DiscordScanner(ScannerActor):
    """Messages of ``channel_ids`` as :class:`Post` (``channel`` = the channel id)."""

    config_type: ClassVar[type[DiscordConfig]] = DiscordConfig
    platform: ClassVar[str] = "discord"
    default_base_url: ClassVar[str] = "https://discord.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token = read_secret(self.config, "bot_token")

    def targets(self) -> list[str]:
        """One per channel."""
        return list(self.config.channel_ids)  # type: ignore[attr-defined]

    def secrets(self) -> list[str]:
        """The bot token."""
        return [self._token]

    def request_headers(self) -> dict[str, str]:
        """Bot auth; Discord wants ``DiscordBot (url, version)`` as the User-Agent."""
        return {
            "Authorization": f"Bot {self._token}",
            "User-Agent": "DiscordBot (https://github.com/sniperbot, 1.0)",
        }

    def limit_wait(self, response: Response) -> float:
        """A 429 body's ``retry_after``; otherwise nothing left: ``X-RateLimit-Reset-After``."""
        if response.status == 429:
            try:
                return max(0.0, float(msgspec.json.decode(response.body)["retry_after"]))
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                return super().limit_wait(response)
        remaining = header_float(response.headers, "x-ratelimit-remaining")
        after = header_float(response.headers, "x-ratelimit-reset-after")
        if remaining is not None and remaining < 1 and after is not None:
            return max(0.0, after)
        return 0.0

    async def fetch(self, http: Http, cursor: TargetCursor) -> Fetched:
        """Every message after the cursor (newest 100 on a first start)."""
        channel = cursor.target
        posts: list[Post] = []
        after = cursor.cursor
        bad = 0
        for _ in range(MAX_PAGES):
            params = {"limit": str(PAGE)}
            if after:
                params["after"] = after
            page = (await http.get(f"{self.base_url}/api/v10/channels/{channel}/messages", params)).json()
            parsed, malformed = parse_each(page, lambda m: self._post(channel, m))
            posts += parsed
            bad += malformed
            if not parsed or not cursor.cursor or len(page) < PAGE:
                break  # a first start takes the newest page only
            after = str(max(int(p.post_id) for p in parsed))
        posts.sort(key=lambda p: int(p.post_id))
        newest = str(max(int(p.post_id) for p in posts)) if posts else cursor.cursor
        return Fetched(channel, posts, msgspec.structs.replace(cursor, cursor=newest), bad)

    def _post(self, channel: str, m: dict[str, Any]) -> Post:
        author = m.get("author") or {}
        reactions = sum(int(r.get("count") or 0) for r in m.get("reactions") or [])
        guild = m.get("guild_id")
        return Post(
            source=self.source,
            platform=self.platform,
            post_id=str(m["id"]),
            text=str(m.get("content") or ""),
            created_ns=iso_ns(str(m["timestamp"])),
            ts_ns=0,
            author=str(author.get("username") or author.get("id") or ""),
            channel=channel,
            url=f"https://discord.com/channels/{guild}/{channel}/{m['id']}" if guild else "",
            engagement=float(reactions),
        )
