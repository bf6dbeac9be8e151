"""Order execution venues: the paper venue's matching engine and its durable ledger."""

from sniperbot.execution.ledger import LedgerError, LedgerOrder, VenueLedger, venue_ledger_dir
from sniperbot.execution.paper import PaperVenue

__all__ = ["LedgerError", "LedgerOrder", "PaperVenue", "VenueLedger", "venue_ledger_dir"]
