"""The constant-product pool convention every on-chain venue's feed quotes in, and the sniper reads back.

A pool with reserves ``b`` (base) and ``q`` (quote) and a fee ``FEE`` on the input is quoted as
``bid = mid * (1 - FEE)``, ``ask = mid / (1 - FEE)`` with ``mid = q / b`` (token units): the prices of
selling / buying the first unit of base. The sizes are what can be traded before the *average* price is
``IMPACT`` worse than that touch. Uniswap V2 pools (the EVM venue) and the Solana venue's pools both take
0.3 % of the input, so one convention serves both, and :func:`pool_reserves` gives any consumer (the
sniper's liquidity exit) the pool's reserves back from a quote without a new message kind.
"""

from __future__ import annotations

import math

from sniperbot.messages import Quote

#: Constant-product fee: 0.3 % of the input (Uniswap V2's, and the Solana venue's pools').
FEE = 0.003
#: Sizes in the quote: the trade whose average price is this much worse than the touch.
IMPACT = 0.01


def pool_quote(base_reserve: float, quote_reserve: float) -> tuple[float, float, float, float]:
    """``(bid, bid_size, ask, ask_size)`` of a constant-product pool (token units; see the module doc)."""
    mid = quote_reserve / base_reserve
    bid, ask = mid * (1 - FEE), mid / (1 - FEE)
    # Buying d base: average price = touch * b / (b - d); selling d: touch * b / (b + d * (1 - FEE)).
    ask_size = base_reserve * (1 - 1 / (1 + IMPACT))
    bid_size = base_reserve * (1 / (1 - IMPACT) - 1) / (1 - FEE)
    return bid, bid_size, ask, ask_size


def pool_reserves(quote: Quote) -> tuple[float, float]:
    """``(base_reserve, quote_reserve)`` in token units of a pool this feed quoted: :func:`pool_quote`
    inverted (``mid = sqrt(bid x ask)``, the base reserve from ``ask_size``). Consumers that need the
    pool's depth (the sniper's liquidity exit) read it from the quote with this, not from a new message."""
    base_reserve = quote.ask_size / (1 - 1 / (1 + IMPACT))
    return base_reserve, math.sqrt(quote.bid * quote.ask) * base_reserve
