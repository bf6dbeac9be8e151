"""Chaos: inject faults into a running node and check that no money was lost.

:mod:`sniperbot.chaos.invariants` compares the node's journal with each venue's
own ledger; :mod:`sniperbot.chaos.tool` kills and stops actors through the admin
socket (only on a node started with ``--enable-chaos``), measures recovery and
breaker trips, then runs the invariants.
"""

from sniperbot.chaos.invariants import CheckError, InvariantReport, check, check_run_dir
from sniperbot.chaos.tool import ChaosOptions, ChaosReport, ChaosUnavailable, run_chaos

__all__ = [
    "ChaosOptions",
    "ChaosReport",
    "ChaosUnavailable",
    "CheckError",
    "InvariantReport",
    "check",
    "check_run_dir",
    "run_chaos",
]
