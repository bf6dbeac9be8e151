"""The scanner kinds of ``[[analysers]]``: one variant per service (fields documented per kind)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from sniperbot.analytics.base import AnalyserSection

Positive = Annotated[float, msgspec.Meta(gt=0)]


class ScannerSection(AnalyserSection, frozen=True, kw_only=True):
    """What every scanner has: where the service is and how often to ask it."""

    base_url: str = ""  # "" = the service's public address
    poll_interval_s: Positive = 60.0
    timeout_s: Positive = 10.0


class RedditConfig(ScannerSection, tag="reddit"):
    """Reddit's JSON listings (``/r/<sub>/new.json``) of ``subreddits``."""

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.reddit:RedditScanner"
    subreddits: list[str] = []


class XConfig(ScannerSection, tag="x"):
    """X API v2 recent search for ``queries`` (bearer token)."""

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.x:XScanner"
    queries: list[str] = []
    bearer_token: str = ""
    bearer_token_file: str = ""


class TelegramChannelConfig(ScannerSection, tag="telegram_channel"):
    """Telegram channel posts through the Bot API's ``getUpdates`` (the bot is a channel member)."""

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.telegram:TelegramChannelScanner"
    channels: list[str] = []
    bot_token: str = ""
    bot_token_file: str = ""


class DiscordConfig(ScannerSection, tag="discord"):
    """Discord channel messages through the bot API (``GET /channels/{id}/messages``)."""

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.discord:DiscordScanner"
    channel_ids: list[str] = []
    bot_token: str = ""
    bot_token_file: str = ""


class RssConfig(ScannerSection, tag="rss"):
    """RSS 2.0 / Atom news feeds at ``urls``."""

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.rss:RssScanner"
    urls: list[str] = []


class CoinGeckoConfig(ScannerSection, tag="coingecko"):
    """CoinGecko's trending and market endpoints: signals directly (no posts)."""

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.coingecko:CoinGeckoScanner"
    api_key: str = ""
    api_key_file: str = ""
