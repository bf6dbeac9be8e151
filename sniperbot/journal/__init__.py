"""The LMDB order journal: Orders, OrderUpdates and Fills, durable before they are acted on."""

from sniperbot.journal.store import (
    DEFAULT_MAP_SIZE,
    ORDER_RECORDS,
    TERMINAL_STATUSES,
    Durability,
    Journal,
    JournalError,
    JournalRecord,
)

__all__ = [
    "DEFAULT_MAP_SIZE",
    "ORDER_RECORDS",
    "TERMINAL_STATUSES",
    "Durability",
    "Journal",
    "JournalError",
    "JournalRecord",
]
