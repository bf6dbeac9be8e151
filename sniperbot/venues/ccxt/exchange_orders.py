"""What differs per exchange when placing and finding orders through ccxt (research: live-venues.md §3).

One home for the exchange quirks the gateway (:mod:`sniperbot.venues.ccxt.gateway`) depends on:

* **Client order id field** (:func:`client_id_params`): each exchange's own field, passed through ccxt
  ``params`` so ccxt cannot substitute its own id (ccxt ignores ``clientOrderId`` on Coinbase and always
  sends ``ccxt-<uuid>``): Binance ``newClientOrderId``, Kraken ``cl_ord_id``, Coinbase ``client_order_id``;
  any other exchange gets ccxt's unified ``clientOrderId`` (best effort).
* **Lookup by client order id** (:func:`find_order`): answers the exchange's record or ``None`` only when
  the exchange said *definitively* that it has no such order. Transport errors (timeouts, 5xx, 429) raise:
  a failed poll is never evidence that an order does not exist (Hummingbot #8457). Binance:
  ``fetch_order(None, symbol, {"origClientOrderId": id})``, -2013 -> ``OrderNotFound``. Kraken: open orders
  then closed orders filtered by ``cl_ord_id`` (ccxt's ``fetch_order`` would send the id as ``userref``).
  Coinbase: recent orders of the symbol matched on ``client_order_id`` (ccxt has no by-client-id fetch and
  its 404 is a plain ``ExchangeError``).
* **Trades of one order** (:func:`order_trades`): Binance ``myTrades?orderId=``; others: the symbol's
  recent trades filtered by order id.
"""

from __future__ import annotations

from typing import Any

import ccxt

# ccxt id -> the exchange's own name of the client order id on order placement.
CLIENT_ID_FIELD: dict[str, str] = {
    "binance": "newClientOrderId",
    "kraken": "cl_ord_id",
    "coinbase": "client_order_id",
    "coinbaseadvanced": "client_order_id",
}
_LOOKUP_FIELD: dict[str, str] = {"binance": "origClientOrderId"}

# ccxt unified order status -> our OrderStatus (and a reason when ours says less than ccxt's).
STATUS: dict[str, tuple[str, str]] = {
    "open": ("accepted", ""),
    "closed": ("filled", ""),
    "canceled": ("cancelled", ""),
    "cancelled": ("cancelled", ""),
    "expired": ("cancelled", "expired"),
    "rejected": ("rejected", "exchange_rejected"),
}


def client_id_params(exchange_id: str, client_order_id: str) -> dict[str, str]:
    """``params`` that carry our client order id in the exchange's own field."""
    return {CLIENT_ID_FIELD.get(exchange_id, "clientOrderId"): client_order_id}


def client_id_of(exchange_id: str, order: dict[str, Any]) -> str:
    """Our client order id of a ccxt order (Kraken's ws/REST parsers put ``userref`` where it belongs)."""
    info = order.get("info") or {}
    if exchange_id == "kraken" and isinstance(info, dict) and info.get("cl_ord_id"):
        return str(info["cl_ord_id"])
    if exchange_id.startswith("coinbase") and isinstance(info, dict) and info.get("client_order_id"):
        return str(info["client_order_id"])
    return str(order.get("clientOrderId") or "")


async def find_order(ex: Any, exchange_id: str, symbol: str, client_order_id: str) -> dict[str, Any] | None:
    """The exchange's order with this client order id, or None when the exchange says it has none.

    Raises on anything that is not a definitive answer (network errors, 5xx, rate limits).
    """
    if exchange_id == "binance":
        try:
            return dict(await ex.fetch_order(None, symbol, {_LOOKUP_FIELD["binance"]: client_order_id}))
        except ccxt.OrderNotFound:
            return None
    if exchange_id == "kraken":
        for fetch in (ex.fetch_open_orders, ex.fetch_closed_orders):
            for o in await fetch(symbol, None, None, {"cl_ord_id": client_order_id}):
                if client_id_of(exchange_id, o) == client_order_id:
                    return dict(o)
        return None
    # Coinbase (historical/batch filtered by client_order_id) and any other exchange: recent orders of the
    # symbol, matched on the client id.
    fetch = ex.fetch_orders if ex.has.get("fetchOrders") else None
    candidates: list[Any] = []
    if fetch is not None:
        params = {"client_order_id": client_order_id} if exchange_id.startswith("coinbase") else {}
        candidates = list(await fetch(symbol, None, None, params))
    else:
        candidates = list(await ex.fetch_open_orders(symbol)) + list(await ex.fetch_closed_orders(symbol))
    for o in candidates:
        if client_id_of(exchange_id, o) == client_order_id:
            return dict(o)
    return None


async def order_trades(ex: Any, exchange_id: str, symbol: str, order_id: str) -> list[dict[str, Any]]:
    """Every trade of one exchange order (its fills), oldest first."""
    if exchange_id == "binance":
        trades = await ex.fetch_my_trades(symbol, None, None, {"orderId": order_id})
    else:
        trades = [t for t in await ex.fetch_my_trades(symbol) if str(t.get("order")) == str(order_id)]
    return sorted((dict(t) for t in trades), key=lambda t: (t.get("timestamp") or 0, str(t.get("id"))))


def fee_in_quote(trade: dict[str, Any], base: str, quote: str) -> tuple[float, str]:
    """The trade's fee in quote currency, and the asset it could not convert ("" if none).

    A fee in the base asset is valued at the trade price; a fee in a third asset (BNB) cannot be
    valued here and counts 0, named so the caller can log it.
    """
    fee = trade.get("fee") or {}
    cost = float(fee.get("cost") or 0.0)
    currency = str(fee.get("currency") or quote)
    if cost == 0.0 or currency == quote:
        return abs(cost), ""
    if currency == base:
        return abs(cost) * float(trade.get("price") or 0.0), ""
    return 0.0, currency
