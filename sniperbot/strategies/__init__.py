"""Trading strategies, and the registry that maps a config name to a strategy class."""

from sniperbot.strategies.sma_cross import SmaCross

# Config files name strategies by these keys; add new strategies here.
STRATEGIES: dict[str, type] = {"sma_cross": SmaCross}

__all__ = ["STRATEGIES", "SmaCross"]
