"""Market data: the simulated venue feed and bar building."""

from sniperbot.market.bars import BarBuilder
from sniperbot.market.sim import REGIMES, SimMarket, SimSymbol

__all__ = ["REGIMES", "BarBuilder", "SimMarket", "SimSymbol"]
