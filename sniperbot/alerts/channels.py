"""The alert channels, each speaking its service's real wire format; they run on the dispatcher's loop.

* **Telegram**: Bot API ``POST {api_url}/bot<token>/sendMessage`` with a JSON body (``chat_id``,
  ``text`` cut to 4096 characters, no parse mode so no text needs escaping); success is
  ``{"ok": true, ...}``; a 429 carries ``parameters.retry_after`` (seconds). Plain aiohttp rather than
  python-telegram-bot: one HTTP client for the three HTTP channels, one 429 policy, and the node
  does not need PTB unless it runs the command bot.
* **Discord**: execute webhook, ``POST <webhook url>`` with ``content`` (cut to 2000 characters)
  and ``allowed_mentions: {"parse": []}`` (an alert never pings ``@everyone``); success is 204
  (200 with ``?wait=true``); a 429 carries ``retry_after`` (float seconds) in its JSON and
  ``Retry-After``; ``X-RateLimit-Remaining: 0`` on a success pauses the channel for
  ``X-RateLimit-Reset-After`` before the next send, so the bucket is not hit at all.
* **Email**: ``smtplib`` with STARTTLS (or implicit TLS), certificate verified, login when a user is
  set, in a worker thread with a socket timeout; a server that does not offer STARTTLS is an error,
  never a plain-text fallback.
* **Webhook**: ``POST <url>`` with the alert as JSON and ``Idempotency-Key: <alert id>``; a 429's
  ``Retry-After`` (seconds or an HTTP date) is honoured.

Outcomes (:class:`Outcome`): ``delivered``; ``retry_after`` (the service said when: obeyed exactly);
``retry`` (timeout, connection error, 5xx, 401/403/404 - a misconfiguration the operator can fix
without losing the alert - retried with exponential backoff); ``refused`` (400/413/422, or SMTP 5xx
for the message or its recipients: the request itself is wrong and will never pass; marked so and
logged, so one bad alert does not block the channel). Nothing here logs a URL or a token: errors are
reported through :func:`sniperbot.observability.sentry.scrub_text`.
"""

from __future__ import annotations

import asyncio
import email.message
import email.utils
import smtplib
import ssl
import time
from typing import Any, Literal

import aiohttp
import msgspec

from sniperbot.alerts.config import (
    DiscordChannelConfig,
    EmailChannelConfig,
    TelegramChannelConfig,
    WebhookChannelConfig,
    read_secret,
)
from sniperbot.alerts.model import Alert
from sniperbot.observability.sentry import register_secret, scrub_text

TELEGRAM_MAX = 4096
DISCORD_MAX = 2000
_DEFAULT_RETRY_AFTER_S = 1.0
_REFUSED_STATUSES = frozenset({400, 413, 422})


class Outcome(msgspec.Struct, frozen=True):
    """What a send attempt came to (see the module docstring)."""

    kind: Literal["delivered", "retry_after", "retry", "refused"]
    delay_s: float = 0.0  # retry_after: wait this long; delivered: pause before the next send
    reason: str = ""


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _http_outcome(status: int, retry_after: float | None, detail: str = "") -> Outcome:
    if 200 <= status < 300:
        return Outcome("delivered")
    reason = scrub_text(f"HTTP {status}" + (f": {detail[:200]}" if detail else ""))
    if status == 429:
        return Outcome("retry_after", _DEFAULT_RETRY_AFTER_S if retry_after is None else retry_after, reason)
    if status in _REFUSED_STATUSES:
        return Outcome("refused", reason=reason)
    return Outcome("retry", reason=reason)


class Channel:
    """A destination for alerts; ``send`` runs on the dispatcher's asyncio loop."""

    name: str = ""

    def __init__(self, config: Any) -> None:
        self.config = config

    async def open(self) -> None:
        """Create what the channel needs on the loop (an HTTP session)."""

    async def close(self) -> None:
        """Release it."""

    async def send(self, alert: Alert) -> Outcome:
        """Try to deliver ``alert`` once."""
        raise NotImplementedError


class _HttpChannel(Channel):
    _session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Outcome:
        assert self._session is not None
        try:
            async with self._session.post(url, json=body, headers=headers) as response:
                text = await response.text()
                return self._outcome(response.status, response.headers, text)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            return Outcome("retry", reason=scrub_text(f"{type(e).__name__}: {e}"))

    def _outcome(self, status: int, headers: Any, text: str) -> Outcome:
        return _http_outcome(status, parse_retry_after(headers.get("Retry-After")), text)


class TelegramChannel(_HttpChannel):
    """Telegram Bot API ``sendMessage``."""

    name = "telegram"

    def __init__(self, config: TelegramChannelConfig) -> None:
        super().__init__(config)
        token = read_secret("telegram.bot_token", config.bot_token, config.bot_token_file)
        register_secret(token)
        self._url = f"{config.api_url.rstrip('/')}/bot{token}/sendMessage"

    async def send(self, alert: Alert) -> Outcome:
        """POST sendMessage with the alert's text."""
        body = {
            "chat_id": self.config.chat_id,
            "text": alert.line()[:TELEGRAM_MAX],
            "disable_web_page_preview": True,
        }
        return await self._post(self._url, body)

    def _outcome(self, status: int, headers: Any, text: str) -> Outcome:
        try:
            answer = msgspec.json.decode(text) if text else {}
        except msgspec.DecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if 200 <= status < 300 and answer.get("ok") is True:
            return Outcome("delivered")
        params = answer.get("parameters") or {}
        retry_after = params.get("retry_after") if isinstance(params, dict) else None
        if retry_after is None:
            retry_after = parse_retry_after(headers.get("Retry-After"))
        if 200 <= status < 300:  # a 2xx without ok: true is not an acknowledgement
            status = 502
        return _http_outcome(
            status, None if retry_after is None else float(retry_after), str(answer.get("description", ""))
        )


class DiscordChannel(_HttpChannel):
    """Discord execute-webhook."""

    name = "discord"

    def __init__(self, config: DiscordChannelConfig) -> None:
        super().__init__(config)
        self._url = read_secret("discord.webhook_url", config.webhook_url, config.webhook_url_file)
        register_secret(self._url)

    async def send(self, alert: Alert) -> Outcome:
        """POST the alert as the message content."""
        body = {
            "content": alert.line()[:DISCORD_MAX],
            "username": self.config.username,
            "allowed_mentions": {"parse": []},
        }
        return await self._post(self._url, body)

    def _outcome(self, status: int, headers: Any, text: str) -> Outcome:
        if status == 429:
            retry_after = None
            try:
                answer = msgspec.json.decode(text)
                if isinstance(answer, dict) and isinstance(answer.get("retry_after"), (int, float)):
                    retry_after = float(answer["retry_after"])
            except msgspec.DecodeError:
                pass
            if retry_after is None:
                retry_after = parse_retry_after(headers.get("Retry-After"))
            return _http_outcome(status, retry_after)
        outcome = _http_outcome(status, None, text)
        if outcome.kind == "delivered" and headers.get("X-RateLimit-Remaining") == "0":
            reset = parse_retry_after(headers.get("X-RateLimit-Reset-After"))
            return Outcome("delivered", delay_s=reset or 0.0)
        return outcome


class WebhookChannel(_HttpChannel):
    """A generic JSON webhook."""

    name = "webhook"

    def __init__(self, config: WebhookChannelConfig) -> None:
        super().__init__(config)
        self._url = read_secret("webhook.url", config.url, config.url_file)
        register_secret(self._url)
        for value in config.headers.values():
            register_secret(value)

    async def send(self, alert: Alert) -> Outcome:
        """POST the alert's fields as JSON."""
        body = {
            "id": alert.id,
            "key": alert.key,
            "kind": alert.kind,
            "severity": alert.severity,
            "title": alert.title,
            "text": alert.text,
            "ts_ns": alert.ts_ns,
        }
        return await self._post(self._url, body, {**self.config.headers, "Idempotency-Key": alert.id})


class EmailChannel(Channel):
    """SMTP submission with TLS (blocking smtplib, run in a worker thread)."""

    name = "email"

    def __init__(self, config: EmailChannelConfig) -> None:
        super().__init__(config)
        self._password = read_secret("email.password", config.password, config.password_file)
        register_secret(self._password)
        self._tls = ssl.create_default_context(cafile=config.ca_file or None)

    async def send(self, alert: Alert) -> Outcome:
        """Send one message to every recipient."""
        return await asyncio.get_running_loop().run_in_executor(None, self._send, alert)

    def _message(self, alert: Alert) -> email.message.EmailMessage:
        msg = email.message.EmailMessage()
        msg["Subject"] = f"[sniperbot {alert.severity.upper()}] {alert.title}"[:200]
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = email.utils.formatdate(alert.ts_ns / 1e9)
        # Stable per alert: a mail system that sees the same alert twice can tell.
        domain = self.config.sender.rpartition("@")[2] or "sniperbot"
        msg["Message-ID"] = f"<sniperbot-alert-{alert.id}-{alert.ts_ns}@{domain}>"
        msg.set_content(alert.text or alert.title)
        return msg

    def _send(self, alert: Alert) -> Outcome:
        config = self.config
        try:
            if config.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout_s, context=self._tls
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
            with smtp:
                if config.tls == "starttls":
                    smtp.ehlo()
                    # Raises SMTPNotSupportedError when the server does not offer it: never plain text.
                    smtp.starttls(context=self._tls)
                    smtp.ehlo()
                if config.username:
                    smtp.login(config.username, self._password)
                smtp.send_message(self._message(alert))
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
            code = getattr(e, "smtp_code", 0) or min(
                (c for c, _ in getattr(e, "recipients", {}).values()), default=0
            )
            kind: Literal["refused", "retry"] = "refused" if code >= 500 else "retry"
            return Outcome(kind, reason=scrub_text(f"{type(e).__name__} {code}"))
        except (smtplib.SMTPException, OSError) as e:
            return Outcome("retry", reason=scrub_text(f"{type(e).__name__}: {e}"))
        return Outcome("delivered")


CHANNEL_TYPES: dict[str, type[Channel]] = {
    "telegram": TelegramChannel,
    "discord": DiscordChannel,
    "email": EmailChannel,
    "webhook": WebhookChannel,
}
