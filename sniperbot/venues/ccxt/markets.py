"""How every ccxt client of a venue loads markets: spot only (one home for the feed, gateway and checks)."""

from __future__ import annotations

from typing import Any


def spot_options(exchange: str) -> dict[str, Any]:
    """ccxt ``options`` that load spot markets only.

    Why: no futures/margin endpoints are called (fewer requests, less weight), and spot
    symbols stay unambiguous for ccxt.pro's stream routing. Keys an exchange does not read
    are ignored by ccxt.
    """
    return {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
