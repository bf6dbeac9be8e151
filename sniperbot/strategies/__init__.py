"""Trading strategies, and the registry that maps a config name to a strategy class.

Every strategy is a :class:`~sniperbot.strategies.base.Strategy`: declared parameters,
a target exposure decided on each bar's close (streaming, ``on_bar``) or for whole
arrays (``target_exposure``, the backtester's vectorised path), sized by a position
sizer. See ``sniperbot.strategies.base`` for the contract.
"""

from sniperbot.strategies.base import MODE, Param, Strategy
from sniperbot.strategies.bollinger_breakout import BollingerBreakout
from sniperbot.strategies.ema_cross import EmaCross
from sniperbot.strategies.macd import MacdCross
from sniperbot.strategies.rsi_reversion import RsiReversion
from sniperbot.strategies.sma_cross import SmaCross
from sniperbot.strategies.social_breakout import SocialBreakout

# The built-in strategies by name; users' own come by import path or file (loader.py).
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (SmaCross, EmaCross, RsiReversion, BollingerBreakout, MacdCross, SocialBreakout)
}

from sniperbot.strategies.loader import StrategyLoadError, load_strategy  # noqa: E402 (needs STRATEGIES)

__all__ = [
    "MODE",
    "STRATEGIES",
    "BollingerBreakout",
    "EmaCross",
    "MacdCross",
    "Param",
    "RsiReversion",
    "SmaCross",
    "SocialBreakout",
    "Strategy",
    "StrategyLoadError",
    "load_strategy",
]
