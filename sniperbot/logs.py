"""Structured, quiet logging: one JSON object per line on stderr.

Quiet by default (WARNING); ``SNIPERBOT_LOG_LEVEL`` or the config raises it.
Records carry ``actor`` and ``incarnation`` when they come from an actor. Never
pass secrets in ``extra``: every extra field is printed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with its extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str | None = None) -> None:
    """Send JSON lines to stderr at ``level`` (or ``SNIPERBOT_LOG_LEVEL``, default WARNING)."""
    level = (os.environ.get("SNIPERBOT_LOG_LEVEL") or level or "WARNING").upper()
    root = logging.getLogger("sniperbot")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


class ContextLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter that merges its context into each call's ``extra``."""

    def process(self, msg: object, kwargs: dict[str, object]) -> tuple[object, dict[str, object]]:
        """Merge the adapter's fields under the call's own ``extra``."""
        extra = kwargs.get("extra")
        kwargs["extra"] = {**(self.extra or {}), **(extra if isinstance(extra, dict) else {})}
        return msg, kwargs


def actor_logger(actor_id: str, incarnation: int) -> ContextLogger:
    """A logger whose records name the actor and its incarnation."""
    return ContextLogger(
        logging.getLogger("sniperbot.actor"), {"actor": actor_id, "incarnation": incarnation}
    )
