"""The bus's topic names, in one place (a switchboard).

Topics are dot-separated and end where a subscriber's prefix may stop, so
``md.sim.BTC/USDT.`` never matches ``md.sim.BTC/USDTX.quote``.
"""

from __future__ import annotations

READY = "ctl.ready."
STATUS_PORTFOLIO = "status.portfolio"
STATUS_RISK = "status.risk"
EVENTS = "ev."


def market(venue: str, symbol: str | None = None) -> str:
    """Prefix of all market data of a venue, or of one of its symbols."""
    return f"md.{venue}." if symbol is None else f"md.{venue}.{symbol}."


def quote(venue: str, symbol: str) -> str:
    """Topic of a symbol's top-of-book quotes."""
    return f"md.{venue}.{symbol}.quote"


def trade(venue: str, symbol: str) -> str:
    """Topic of a symbol's trade ticks."""
    return f"md.{venue}.{symbol}.trade"


def strategy_events(strategy_id: str) -> str:
    """Prefix of every order event (updates, fills) of one strategy."""
    return f"ev.{strategy_id}."


def order_update(strategy_id: str) -> str:
    """Topic of a strategy's order updates."""
    return f"ev.{strategy_id}.order"


def fill(strategy_id: str) -> str:
    """Topic of a strategy's fills."""
    return f"ev.{strategy_id}.fill"


def breaker(scope: str) -> str:
    """Topic of a circuit breaker's state changes (an alert)."""
    return f"ctl.breaker.{scope}"


BREAKERS = "ctl.breaker."
