"""The ``[alerts]`` config section: which channels, how severe, how often.

Every channel is optional (``[alerts.telegram]``, ``[alerts.discord]``, ``[alerts.email]``,
``[alerts.webhook]``); with none, no alerts actor runs. A secret (bot token, webhook URL, SMTP
password, webhook headers) is given inline or, better, as a ``*_file`` path to a file that holds
it (mode 0600, like a Docker or Kubernetes secret): the file is read by the alerts actor, so the
secret is never in the supervision tree's child spec (``admin get-childspec``) nor in the journal.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from sniperbot.alerts.model import Severity

# The alerts actor's class and its id in the supervision tree (one home: topology, tests).
ALERTS_ACTOR = "sniperbot.alerts.actor:AlertsActor"
ALERTS_ACTOR_ID = "alerts"

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of the alert config structs: unknown keys are errors (typos do not pass silently)."""


class _Channel(_Section, kw_only=True):
    """What every channel has: the least severe alert it gets, and its own rate limit.

    ``rate_per_s`` / ``burst`` is a token bucket: at most ``burst`` alerts back to back, then one
    every ``1 / rate_per_s`` seconds; a 429 from the service pauses the channel for as long as the
    service says, on top.
    """

    min_severity: Severity = "warning"
    rate_per_s: Positive = 1.0
    burst: Annotated[int, msgspec.Meta(ge=1)] = 3
    timeout_s: Positive = 15.0


class TelegramChannelConfig(_Channel, kw_only=True):
    """Bot API ``sendMessage`` to one chat (Telegram: ~1 message/s per chat, 20/min in groups)."""

    bot_token: str = ""
    bot_token_file: str = ""
    chat_id: str
    api_url: str = "https://api.telegram.org"  # a local Bot API server (or a test) may differ


class DiscordChannelConfig(_Channel, kw_only=True):
    """An execute-webhook URL ``https://discord.com/api/webhooks/<id>/<token>``."""

    webhook_url: str = ""
    webhook_url_file: str = ""
    username: str = "sniperbot"
    rate_per_s: Positive = 0.5
    burst: Annotated[int, msgspec.Meta(ge=1)] = 5


class EmailChannelConfig(_Channel, kw_only=True):
    """SMTP submission with TLS: STARTTLS on 587 (default) or implicit TLS on 465; never plain text."""

    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    tls: Literal["starttls", "ssl"] = "starttls"
    # A CA bundle for a private relay's certificate ("" = the system's trust store).
    ca_file: str = ""
    username: str = ""
    password: str = ""
    password_file: str = ""
    sender: str
    to: Annotated[list[str], msgspec.Meta(min_length=1)]
    rate_per_s: Positive = 0.2
    burst: Annotated[int, msgspec.Meta(ge=1)] = 5


class WebhookChannelConfig(_Channel, kw_only=True):
    """A generic JSON POST (one alert per request, ``Idempotency-Key: <alert id>``)."""

    url: str = ""
    url_file: str = ""
    headers: dict[str, str] = {}
    min_severity: Severity = "info"
    rate_per_s: Positive = 5.0
    burst: Annotated[int, msgspec.Meta(ge=1)] = 10


class AlertsConfig(_Section, kw_only=True):
    """``[alerts]``: channels, de-duplication, which events alert, the daily summary."""

    telegram: TelegramChannelConfig | None = None
    discord: DiscordChannelConfig | None = None
    email: EmailChannelConfig | None = None
    webhook: WebhookChannelConfig | None = None
    # The same alert key again within this window is not sent again.
    dedup_window_s: NonNegative = 300.0
    # An alert still undelivered after this long (a channel down for a day) is given up, logged.
    max_age_s: Positive = 86_400.0
    # A venue disconnected or stale for this long is an alert (a feed is "down" while it connects).
    venue_grace_s: NonNegative = 10.0
    # One info alert per fill (noisy for active strategies: off by default).
    fills: bool = False
    # "HH:MM" UTC of the daily summary; "" = none.
    daily_summary_utc: str = "00:00"
    # This many actor restarts within the window is a restart storm.
    restart_storm_count: Annotated[int, msgspec.Meta(ge=1)] = 5
    restart_storm_window_s: Positive = 60.0

    def __post_init__(self) -> None:
        if self.daily_summary_utc and not _HHMM.match(self.daily_summary_utc):
            raise ValueError(
                f"alerts.daily_summary_utc: expected HH:MM (UTC) or '', got {self.daily_summary_utc!r}"
            )
        for name, inline, path in self._secrets():
            if not inline and not path:
                raise ValueError(f"alerts.{name}: set it or alerts.{name}_file")
            if inline and path:
                raise ValueError(f"alerts.{name}: set either it or alerts.{name}_file, not both")

    def _secrets(self) -> list[tuple[str, str, str]]:
        out = []
        if self.telegram is not None:
            out.append(("telegram.bot_token", self.telegram.bot_token, self.telegram.bot_token_file))
        if self.discord is not None:
            out.append(("discord.webhook_url", self.discord.webhook_url, self.discord.webhook_url_file))
        if self.webhook is not None:
            out.append(("webhook.url", self.webhook.url, self.webhook.url_file))
        return out

    @property
    def enabled(self) -> bool:
        """Whether any channel is configured (else no alerts actor runs)."""
        return any(c is not None for c in (self.telegram, self.discord, self.email, self.webhook))


def read_secret(name: str, inline: str, path: str) -> str:
    """The secret given inline, or the stripped content of ``path``; errors name the setting."""
    if inline or not path:
        return inline
    try:
        return Path(path).expanduser().read_text().strip()
    except OSError as e:
        raise ValueError(f"alerts.{name}_file: cannot read {path}: {e.strerror}") from None
