"""Market data helpers shared by every venue: bar building.

The simulated market lives with its venue, :mod:`sniperbot.venues.sim.market`.
"""

from sniperbot.market.bars import BarBuilder

__all__ = ["BarBuilder"]
