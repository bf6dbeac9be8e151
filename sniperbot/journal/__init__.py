"""The LMDB order journal: Orders, OrderUpdates and Fills, durable before they are acted on."""

from sniperbot.journal.ahead import AheadLog
from sniperbot.journal.store import (
    DEFAULT_MAP_SIZE,
    ORDER_RECORDS,
    TERMINAL_STATUSES,
    Durability,
    Journal,
    JournalError,
    JournalRecord,
    reopens,
)

__all__ = [
    "DEFAULT_MAP_SIZE",
    "ORDER_RECORDS",
    "TERMINAL_STATUSES",
    "AheadLog",
    "Durability",
    "Journal",
    "JournalError",
    "JournalRecord",
    "reopens",
]
