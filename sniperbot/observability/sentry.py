"""Optional Sentry error reporting, per actor process, with secrets scrubbed by pattern.

Enabled by ``[sentry] dsn`` in the config (carried to each actor in ``ActorLaunch.sentry_dsn``)
or the ``SENTRY_DSN`` environment variable (the config wins). Without either, or without the
``sentry-sdk`` package (extra ``ops``), nothing happens and nothing is imported.

Decisions:

* **Initialised in each actor process after it started** (:func:`init_actor`, called by
  :func:`sniperbot.actors.runtime.run_actor_process`), never in the node before it forks: the SDK's
  threads and locks do not survive ``fork`` (getsentry/sentry-python#6149). The node process itself
  calls :func:`init_node` once (restart storms are the supervisor's to report: :func:`report_restart_storm`).
* **Tags** on every event: ``actor`` (actor id), ``incarnation``, ``venue`` (the actor's ``venue``
  argument, ``""`` when it has none) and ``version`` (sniperbot's); ``release = sniperbot@<version>``.
* **What is reported**: an exception that ends an actor incarnation (:func:`capture_crash`, flushed
  before the process exits, at most :data:`FLUSH_TIMEOUT_S`), and the node's restart storms. Error
  *logs* are breadcrumbs, not events: one crash is one event.
* **Scrubbing by pattern, not by key name alone.** The SDK's default scrubber matches exact key names
  (``secret`` is filtered, ``api_secret`` is not) and never looks inside strings, so a bot token in an
  exception message leaves in clear. :func:`scrub_event` (``before_send``) and :func:`scrub_breadcrumb`
  (``before_breadcrumb``) walk the message, exception values, stack-frame local variables,
  breadcrumbs, ``extra``, request, user and contexts, and

  - replace the value of any key whose *name contains* a secret word (:data:`_SECRET_KEY`: key,
    secret, password, token, passphrase, dsn, webhook, credential, auth, signature, private, cookie),
  - replace inside every string what :data:`SECRET_PATTERNS` match: Telegram bot tokens
    (``\\d+:[A-Za-z0-9_-]{35}``, and longer), URL userinfo (``scheme://user:pass@`` - DSNs), Discord webhook
    paths, JWTs, ``Bearer`` credentials, ``key=value`` / ``"key": "value"`` pairs with a secret word,
    PEM private keys, hex runs of 32+ characters and base64/base64url runs of 32+ characters that
    mix upper case, lower case and digits (random keys do; words, ids and paths rarely do),
  - replace every literal registered with :func:`register_secret` (the alerts actor registers its
    channel secrets).

  Event ids and trace ids (hex by nature) are left alone: only the fields above are walked.
  ``include_local_variables`` stays on, because locals are what make a crash report useful, and
  they are scrubbed like everything else.
"""

from __future__ import annotations

import os
import re
from typing import Any

import sniperbot

FILTERED = "[Filtered]"
FLUSH_TIMEOUT_S = 2.0
_MAX_DEPTH = 12

_SECRET_WORDS = (
    r"api[_-]?key|apikey|api[_-]?secret|secret|passw(?:or)?d|passphrase|token|dsn|webhook|credential|"
    r"auth|signature|private[_-]?key|privkey|cookie|session[_-]?key|listen[_-]?key|seed|mnemonic"
)
# A dict key (variable name, header, extra field) whose name contains a secret word.
_SECRET_KEY = re.compile(rf"(?i)({_SECRET_WORDS})")

SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole.
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        FILTERED,
    ),
    # Telegram bot tokens (also inside https://api.telegram.org/bot<token>/...).
    (re.compile(r"\d{3,}:[A-Za-z0-9_-]{30,}"), FILTERED),
    # Userinfo in a URL: Sentry DSNs, smtp://user:pass@host, https://key@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@"), r"\1" + FILTERED + "@"),
    # Discord webhook credentials.
    (re.compile(r"(?i)(/api/webhooks/)\d+/[\w-]+"), r"\1" + FILTERED),
    # JSON Web Tokens.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), FILTERED),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + FILTERED),
    # key=value, key: value, "key": "value" with a secret word in the key.
    (
        re.compile(rf"(?i)([\w.-]*(?:{_SECRET_WORDS})[\w.-]*[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}}]+)"),
        r"\1" + FILTERED,
    ),
    # Long hex runs (API secrets, private keys).
    (re.compile(r"(?<![0-9A-Fa-f])(?:0x)?[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])"), FILTERED),
    # Long base64 / base64url runs that mix cases and digits (random keys).
    (
        re.compile(
            r"(?<![A-Za-z0-9+/_-])(?=[A-Za-z0-9+/_-]*[0-9])(?=[A-Za-z0-9+/_-]*[a-z])"
            r"(?=[A-Za-z0-9+/_-]*[A-Z])[A-Za-z0-9+/_-]{32,}={0,2}"
        ),
        FILTERED,
    ),
)

_registered: set[str] = set()


def register_secret(value: str) -> None:
    """Scrub this exact string wherever it appears from now on in this process (8+ characters)."""
    if value and len(value) >= 8:
        _registered.add(value)


def scrub_text(text: str) -> str:
    """``text`` with every registered secret and every :data:`SECRET_PATTERNS` match replaced."""
    for secret in _registered:
        if secret in text:
            text = text.replace(secret, FILTERED)
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_secret_key(name: object) -> bool:
    """Whether a key (variable, header, field) names a secret: its name contains a secret word."""
    return isinstance(name, str) and _SECRET_KEY.search(name) is not None


def scrub_value(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` (dicts, lists, strings) with secrets replaced, by key name and by pattern."""
    if depth > _MAX_DEPTH:
        return FILTERED  # deeper than any real event: rather lose it than leak it
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            k: (FILTERED if is_secret_key(k) and v not in (None, "", FILTERED) else scrub_value(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, depth + 1) for v in value]
    return value


# Event fields that carry free text or data; ids, timestamps, sdk info, tags are ours.
_EVENT_FIELDS = ("message", "logentry", "exception", "threads", "breadcrumbs", "extra", "request", "user")


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """``before_send``: scrub secrets from an event by key name and by pattern (see the module doc)."""
    for field in _EVENT_FIELDS:
        if field in event:
            event[field] = scrub_value(event[field])
    contexts = event.get("contexts")
    if isinstance(contexts, dict):
        event["contexts"] = {
            name: ctx if name == "trace" else scrub_value(ctx, 1) for name, ctx in contexts.items()
        }
    return event


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """``before_breadcrumb``: scrub a breadcrumb's message and data."""
    return scrub_value(crumb)  # type: ignore[no-any-return]


#: What :func:`init_actor` imports (the SDK's default integrations included): the node preloads them in
#: its forkserver when Sentry is on, so that an actor's restart does not pay them.
SDK_MODULES = [
    "sentry_sdk",
    "sentry_sdk.scrubber",
    *(
        f"sentry_sdk.integrations.{name}"
        for name in ("logging", "argv", "atexit", "excepthook", "modules", "stdlib", "threading")
    ),
    "sentry_sdk.spotlight",
    "concurrent.futures.thread",
]


def dsn_from(configured: str = "") -> str:
    """The DSN to use: the config's, else ``SENTRY_DSN``, else "" (off)."""
    return configured or os.environ.get("SENTRY_DSN", "")


def _init(dsn: str, server_name: str) -> bool:
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import LoggingIntegration
        from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
    except ImportError:
        import logging

        logging.getLogger("sniperbot.sentry").warning(
            "a Sentry DSN is set but sentry-sdk is not installed (pip install 'sniperbot[ops]')",
            extra={"event": "sentry_unavailable"},
        )
        return False
    sentry_sdk.init(
        dsn=dsn,
        release=f"sniperbot@{sniperbot.__version__}",
        server_name=server_name,
        environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
        send_default_pii=False,
        include_local_variables=True,
        before_send=scrub_event,  # type: ignore[arg-type]
        before_breadcrumb=scrub_breadcrumb,  # type: ignore[arg-type]
        event_scrubber=EventScrubber(
            denylist=[*DEFAULT_DENYLIST, "api_secret", "secret_key", "bot_token", "passphrase"],
            recursive=True,
        ),
        # Error logs are breadcrumbs: the crash itself is captured once, explicitly.
        integrations=[LoggingIntegration(event_level=None)],
        # No auto-enabled integrations (aiohttp, httpx, sqlalchemy...): importing them cost ~0.8 s in
        # every actor process (a node with Sentry on took 11 s to start instead of 2, and each restart
        # paid it), traces are off anyway, and HTTP breadcrumbs would carry URLs (a bot token is one).
        auto_enabling_integrations=False,
        shutdown_timeout=FLUSH_TIMEOUT_S,
        traces_sample_rate=0.0,
    )
    sentry_sdk.set_tag("version", sniperbot.__version__)
    return True


def init_actor(actor_id: str, incarnation: int, venue: str = "", dsn: str = "") -> bool:
    """Initialise Sentry in this actor process (after the fork); False when it is off."""
    dsn = dsn_from(dsn)
    if not dsn or not _init(dsn, actor_id):
        return False
    import sentry_sdk

    sentry_sdk.set_tags({"actor": actor_id, "incarnation": str(incarnation), "venue": venue})
    return True


def init_node(dsn: str = "") -> bool:
    """Initialise Sentry in the node process (after its forkserver started); False when it is off."""
    dsn = dsn_from(dsn)
    if not dsn or not _init(dsn, "node"):
        return False
    import sentry_sdk

    sentry_sdk.set_tags({"actor": "node", "incarnation": "0", "venue": ""})
    return True


def _enabled() -> bool:
    try:
        import sentry_sdk
    except ImportError:
        return False
    return sentry_sdk.get_client().is_active()


def capture_crash(error: BaseException) -> None:
    """Report the exception that ends this incarnation and wait (bounded) until it is sent."""
    if not _enabled():
        return
    import sentry_sdk

    sentry_sdk.capture_exception(error)
    sentry_sdk.flush(FLUSH_TIMEOUT_S)


def report_restart_storm(supervisor: str, offender: str, intensity: int, period_s: float) -> None:
    """Report a supervisor that reached its restart intensity, or a breaker a crash loop tripped
    (``intensity`` 0: the breaker's scope as ``supervisor``); called by the node, no-op when off."""
    if not _enabled():
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("supervisor", supervisor)
        scope.set_tag("offender", offender)
        scope.set_level("error")
        where = f"reached {intensity} restarts in {period_s:g} s" if intensity else "tripped its breaker"
        sentry_sdk.capture_message(f"restart storm: {supervisor} {where} ({offender})")
    sentry_sdk.flush(FLUSH_TIMEOUT_S)
