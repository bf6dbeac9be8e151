"""The scanner kinds of ``[[analysers]]``: one variant per service (fields documented per kind).

Secrets (tokens, API keys) are given as ``<x>`` or, better, ``<x>_file`` (a 0600 file read by the
scanner actor when it starts), like ``[telegram]``: a file keeps the secret out of the tree's child
spec. A scanner never logs a secret, nor a URL that carries one (Telegram's ``/bot<token>/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

import msgspec

from sniperbot.analytics.base import AnalyserSection

Positive = Annotated[float, msgspec.Meta(gt=0)]


class ScannerSection(AnalyserSection, frozen=True, kw_only=True):
    """What every scanner has: where the service is, how often to ask it, how to live with its failures.

    ``max_age_s``: a post created longer ago than this when fetched is not published (a first start
    or a long outage would otherwise publish a backlog of old posts as if they were news: a fake
    mention spike); after errors the scanner waits ``backoff_start_s``, doubling up to
    ``backoff_max_s``; ``stale_after_s`` (0 = three poll intervals plus the timeout, at least 30 s) is
    how long without a successful exchange with the service before the scanner says it is stale;
    ``status_interval_s`` is the period of its :class:`~sniperbot.messages.AnalyserStatus` (also
    published at once when ``stale`` or the backoff changes).
    """

    base_url: str = ""  # "" = the service's public address
    poll_interval_s: Positive = 60.0
    timeout_s: Positive = 10.0
    max_age_s: Positive = 3600.0
    backoff_start_s: Positive = 1.0
    backoff_max_s: Positive = 300.0
    stale_after_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    status_interval_s: Positive = 5.0

    def __post_init__(self) -> None:
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: {self.base_url!r} must start with http:// or https://")
        if self.backoff_start_s > self.backoff_max_s:
            raise ValueError("backoff_start_s: must not exceed backoff_max_s")

    def stale_limit_s(self) -> float:
        """Seconds without a successful exchange before the scanner is stale."""
        return self.stale_after_s or max(30.0, 3 * self.poll_interval_s + self.timeout_s)


def _one_secret(section: AnalyserSection, name: str, required: bool) -> None:
    """Validate a secret given as ``name`` or ``name_file`` (at most one; exactly one if required)."""
    value, path = getattr(section, name), getattr(section, f"{name}_file")
    if value and path:
        raise ValueError(f"{name}_file: give one of {name} and {name}_file, not both")
    if required and not (value or path):
        raise ValueError(f"{name}_file: {section.id!r} needs {name} or {name}_file")
    if path and not Path(path).is_file():
        raise ValueError(f"{name}_file: no such file {path}")


def read_secret(section: AnalyserSection, name: str) -> str:
    """The secret ``name`` of ``section`` (read from ``name_file`` when given as one; "" if absent)."""
    value, path = getattr(section, name), getattr(section, f"{name}_file")
    return value or (Path(path).read_text().strip() if path else "")


def _non_empty(field: str, values: list[str]) -> None:
    if not values:
        raise ValueError(f"{field}: list at least one")
    for v in values:
        if not v.strip():
            raise ValueError(f"{field}: an empty entry")
    if len(set(values)) != len(values):
        raise ValueError(f"{field}: duplicate entries")


class RedditConfig(ScannerSection, tag="reddit"):
    """New posts of ``subreddits`` through Reddit's JSON listings.

    Unauthenticated (``www.reddit.com/r/<sub>/new.json``) unless ``client_id`` and ``client_secret``
    (or ``client_secret_file``) of a Reddit app are given: then OAuth client credentials
    (application-only, ``auth_url`` ``/api/v1/access_token``) and ``oauth.reddit.com/r/<sub>/new``,
    with Reddit's higher per-client rate limit. Reddit refuses generic User-Agents: ``user_agent``
    should name the app and a contact (``<platform>:<app id>:<version> (by /u/<name>)``).
    """

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.reddit:RedditScanner"
    subreddits: list[str] = []
    user_agent: str = "linux:sniperbot.scanner:1.0 (self-hosted trading bot)"
    client_id: str = ""
    client_secret: str = ""
    client_secret_file: str = ""
    auth_url: str = ""  # "" = https://www.reddit.com (the token endpoint's host)

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_empty("subreddits", self.subreddits)
        for sub in self.subreddits:
            if not sub.replace("_", "").isalnum():
                raise ValueError(f"subreddits: {sub!r} is not a subreddit name (letters, digits, _)")
        if not self.user_agent.strip():
            raise ValueError("user_agent: Reddit refuses requests without one")
        _one_secret(self, "client_secret", required=bool(self.client_id))
        if (self.client_secret or self.client_secret_file) and not self.client_id:
            raise ValueError("client_id: a client secret is given without its client_id")
        if self.auth_url and not self.auth_url.startswith(("http://", "https://")):
            raise ValueError(f"auth_url: {self.auth_url!r} must start with http:// or https://")


class XConfig(ScannerSection, tag="x"):
    """X API v2 recent search for ``queries`` (app-only bearer token)."""

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.x:XScanner"
    queries: list[str] = []
    bearer_token: str = ""
    bearer_token_file: str = ""
    max_pages: Annotated[int, msgspec.Meta(ge=1)] = 5  # next_token pages followed per query and poll

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_empty("queries", self.queries)
        _one_secret(self, "bearer_token", required=True)


class TelegramChannelConfig(ScannerSection, tag="telegram_channel"):
    """Telegram channel posts through the Bot API's ``getUpdates`` (the bot is a channel admin/member).

    ``channels``: ``@username`` or the numeric chat id (``-100...``); posts of any other chat are
    skipped. Use a bot of its own: two readers of one bot's ``getUpdates`` (e.g. the ``[telegram]``
    command bot) steal each other's updates. ``long_poll_s`` is ``getUpdates``' ``timeout``: the
    request waits that long for a post, so a post arrives as soon as it is sent.
    """

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.telegram:TelegramChannelScanner"
    channels: list[str] = []
    bot_token: str = ""
    bot_token_file: str = ""
    long_poll_s: Annotated[int, msgspec.Meta(ge=0, le=50)] = 25

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_empty("channels", self.channels)
        for c in self.channels:
            if not (c.startswith("@") or c.lstrip("-").isdigit()):
                raise ValueError(f"channels: {c!r} is neither @username nor a numeric chat id")
        _one_secret(self, "bot_token", required=True)

    def stale_limit_s(self) -> float:
        """A long poll is a wait, not an outage: it adds to the limit."""
        return super().stale_limit_s() + self.long_poll_s


class DiscordConfig(ScannerSection, tag="discord"):
    """Discord channel messages through the bot API (``GET /channels/{id}/messages``)."""

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.discord:DiscordScanner"
    channel_ids: list[str] = []
    bot_token: str = ""
    bot_token_file: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_empty("channel_ids", self.channel_ids)
        for c in self.channel_ids:
            if not c.isdigit():
                raise ValueError(f"channel_ids: {c!r} is not a snowflake (digits)")
        _one_secret(self, "bot_token", required=True)


class RssConfig(ScannerSection, tag="rss"):
    """RSS 2.0 / Atom news feeds at ``urls`` (``base_url`` is unused: each URL is complete)."""

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.rss:RssScanner"
    urls: list[str] = []
    user_agent: str = "sniperbot-scanner/1.0"

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_empty("urls", self.urls)
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"urls: {url!r} must start with http:// or https://")


class CoinGeckoConfig(ScannerSection, tag="coingecko"):
    """CoinGecko's trending and market endpoints: signals directly (no posts).

    ``coin_ids`` (CoinGecko ids such as ``"bitcoin"``) get market signals every poll, as do the
    coins trending at that time. ``api_plan``: ``"public"`` (no key), ``"demo"`` (key in
    ``x-cg-demo-api-key``) or ``"pro"`` (key in ``x-cg-pro-api-key``, pro-api host).
    """

    actor_path: ClassVar[str] = "sniperbot.analytics.scanners.coingecko:CoinGeckoScanner"
    coin_ids: list[str] = []
    api_plan: Literal["public", "demo", "pro"] = "public"
    api_key: str = ""
    api_key_file: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _one_secret(self, "api_key", required=self.api_plan != "public")
        if self.api_plan == "public" and (self.api_key or self.api_key_file):
            raise ValueError("api_plan: a key is given: say whether it is a 'demo' or 'pro' key")
