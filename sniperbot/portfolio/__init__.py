"""The portfolio: positions and P&L from fills."""

from sniperbot.portfolio.ledger import Ledger

__all__ = ["Ledger"]
