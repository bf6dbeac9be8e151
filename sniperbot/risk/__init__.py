"""Pre-trade risk checks and the trading state (ACTIVE / REDUCING / HALTED)."""

from sniperbot.risk.guard import TRADING_STATES, RiskGuard, RiskLimits, TradingState

__all__ = ["TRADING_STATES", "RiskGuard", "RiskLimits", "TradingState"]
