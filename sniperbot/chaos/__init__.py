"""Chaos: inject faults into a running node and check that no money was lost.

:mod:`sniperbot.chaos.invariants` compares the node's journal with each venue's
own ledger; :mod:`sniperbot.chaos.exchange` compares it with a live venue's
exchange (orders, trades and balances fetched through ccxt with the venue's keys);
:mod:`sniperbot.chaos.tool` kills and stops actors through the admin socket (only
on a node started with ``--enable-chaos``), injects network faults at a test
exchange, measures recovery and breaker trips, then runs the invariants.
"""

from sniperbot.chaos.exchange import (
    ExchangeReader,
    ExchangeReport,
    ExchangeVenue,
    check_exchange,
    exchange_venues,
)
from sniperbot.chaos.invariants import CheckError, InvariantReport, check, check_run_dir
from sniperbot.chaos.tool import ChaosOptions, ChaosReport, ChaosUnavailable, run_chaos

__all__ = [
    "ChaosOptions",
    "ChaosReport",
    "ChaosUnavailable",
    "CheckError",
    "ExchangeReader",
    "ExchangeReport",
    "ExchangeVenue",
    "InvariantReport",
    "check",
    "check_exchange",
    "check_run_dir",
    "exchange_venues",
    "run_chaos",
]
