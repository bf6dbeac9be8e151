"""Token amounts: a float quantity of tokens in a token's smallest units (every on-chain venue's orders)."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal


def to_units(quantity: float, decimals: int) -> int:
    """``quantity`` tokens in the token's smallest units, rounded down (0.3 is 3 x 10**17 exactly)."""
    return int(Decimal(repr(quantity)).scaleb(decimals).to_integral_value(ROUND_FLOOR))
