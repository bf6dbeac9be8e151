"""What an alert is: severity, de-duplication key, text, and the channels it is owed to."""

from __future__ import annotations

from typing import Final, Literal, get_args

import msgspec

# The closed set of severities, least severe first (one home: config, channels, actor).
Severity = Literal["info", "warning", "critical"]
SEVERITIES: Final = get_args(Severity)


def severity_rank(severity: str) -> int:
    """Position of ``severity`` in :data:`SEVERITIES` (info 0 < warning 1 < critical 2)."""
    return SEVERITIES.index(severity)


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert, as journaled in the outbox before any channel sees it.

    ``id`` is the outbox's sequence number (unique in the run dir, sent as the webhook's
    idempotency key); ``key`` is the de-duplication key (the same key within the window is one
    alert); ``channels`` are the channels it is owed to, fixed when it was journaled (those whose
    ``min_severity`` it meets).
    """

    id: str
    key: str
    kind: str
    severity: Severity
    title: str
    text: str
    ts_ns: int
    channels: list[str]

    def line(self) -> str:
        """The one-message rendering used by chat channels: severity, title, text."""
        head = f"[{self.severity.upper()}] {self.title}"
        return f"{head}\n{self.text}" if self.text else head
