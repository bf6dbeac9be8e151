"""What every on-chain (DEX) venue shares: safety rules, the pool quote convention, the sniper's params."""

from sniperbot.venues.dex.pool import FEE, IMPACT, pool_quote, pool_reserves
from sniperbot.venues.dex.rules import OWNER_POWERS, SafetyRules
from sniperbot.venues.dex.sniper import SniperParams, sniper_id

__all__ = [
    "FEE",
    "IMPACT",
    "OWNER_POWERS",
    "SafetyRules",
    "SniperParams",
    "pool_quote",
    "pool_reserves",
    "sniper_id",
]
