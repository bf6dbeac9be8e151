"""Local Binance spot server: REST ``/api/v3``, market streams and the WebSocket API user data stream.

Wire formats follow binance-spot-api-docs as ccxt 4.5.x reads them (research: live-venues.md §1.1, §2.1,
§3.1, §4.1, §7, §8.1). Point ccxt at it with ``rebase_urls(ex, server.rest_url, server.ws_url)``; the ws URL
carries the path prefix ``/stream`` because ccxt.pro tells spot from futures streams by ``'/stream' in
url``.

REST (signed ones verify ``X-MBX-APIKEY`` + HMAC-SHA256 of query+body, ``timestamp``/``recvWindow``): ``GET
ping, time, exchangeInfo, depth, trades, ticker/24hr, ticker/bookTicker`` (public); ``POST/GET/DELETE
order`` (``newClientOrderId``/``origClientOrderId``), ``GET openOrders``, ``DELETE openOrders``, ``GET
allOrders``, ``GET myTrades``, ``GET account``. Streams on ``/stream/ws[/N]``: ``<sym>@trade``,
``<sym>@depth``/``@depth@100ms`` (U/u update ids), ``<sym>@bookTicker``, ``<sym>@ticker``/``@miniTicker``.
WebSocket API on ``/stream/ws-api/v3``: ``userDataStream.subscribe.signature`` (sorted-params HMAC), then
``executionReport`` and ``outboundAccountPosition`` events.

Errors are Binance's: -2015 (401, bad key), -1022 (bad signature), -1021 (timestamp outside recvWindow),
-2010 (duplicate client id among open orders, insufficient balance), -2013 (order does not exist), -2011
(unknown order on cancel), -1013 (filter failures), -1121 (invalid symbol), -1003 with 429/418 and ``Retry-
After``. Rate limits: REQUEST_WEIGHT per minute with Binance's endpoint weights, ``X-MBX-USED-WEIGHT-1M`` on
every answer, ORDERS per 10 s (``X-MBX-ORDER-COUNT-10S``); a client that keeps calling during a 429 window
is banned (418).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.exchanges._base import (
    ExchangeServer,
    Fill,
    Market,
    Order,
    RateWindow,
    Reject,
    WsConn,
    now_ms,
    serve_main,
)

STATUS = {
    "new": "NEW",
    "untriggered": "NEW",
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    "canceled": "CANCELED",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
}
TYPES = {
    "market": "MARKET",
    "limit": "LIMIT",
    "stop_limit": "STOP_LOSS_LIMIT",
    "take_profit_limit": "TAKE_PROFIT_LIMIT",
    "limit_maker": "LIMIT_MAKER",
}
FROM_TYPE = {v: k for k, v in TYPES.items()}
EXEC = {"new": "NEW", "trade": "TRADE", "canceled": "CANCELED", "expired": "EXPIRED"}
REJECTS: dict[str, tuple[int, int, str]] = {  # neutral reason -> (http status, code, msg)
    "duplicate": (400, -2010, "Duplicate order sent."),
    "insufficient": (400, -2010, "Account has insufficient balance for requested action."),
    "lot_size": (400, -1013, "Filter failure: LOT_SIZE"),
    "price_filter": (400, -1013, "Filter failure: PRICE_FILTER"),
    "notional": (400, -1013, "Filter failure: NOTIONAL"),
    "unknown_symbol": (400, -1121, "Invalid symbol."),
    "not_open": (400, -2011, "Unknown order sent."),
}
# Binance request weights (api/v3, per the endpoint docs); unlisted endpoints weigh 1.
WEIGHTS = {
    ("GET", "exchangeInfo"): 20,
    ("GET", "order"): 4,
    ("GET", "openOrders"): 6,
    ("GET", "allOrders"): 20,
    ("GET", "myTrades"): 20,
    ("GET", "account"): 20,
    ("GET", "ticker/24hr"): 2,
    ("GET", "trades"): 25,
    ("GET", "ticker/bookTicker"): 2,
    ("DELETE", "openOrders"): 1,
}


def depth_weight(limit: int) -> int:
    """Weight of GET /api/v3/depth by its limit."""
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def fmt(x: Decimal | None) -> str:
    """Binance prints amounts with 8 decimals."""
    return f"{(x or Decimal(0)):.8f}"


class BinanceServer(ExchangeServer):
    """A Binance spot exchange on 127.0.0.1 (see the module docstring for what it serves)."""

    name = "binance"
    ws_prefix = "/stream"
    order_path = r"^/api/v3/order$"
    server_error_body = {
        "code": -1001,
        "msg": "Internal error; unable to process your request. Please try again.",
    }

    def __init__(
        self,
        api_key: str = "test-binance-key",
        secret: str = "test-binance-secret",
        weight_limit: int = 6000,
        orders_per_10s: int = 100,
        ban_after: int = 3,
        ban_seconds: int = 120,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.secret = secret
        self.weight = RateWindow(weight_limit, 60)
        self.order_rate = RateWindow(orders_per_10s, 10)
        self.ban_after = ban_after  # requests sent inside a 429's Retry-After window before the IP is banned
        self.ban_seconds = ban_seconds
        self.banned_until = 0.0
        self.retry_until = 0.0
        self.calls_while_limited = 0
        self.gaps: dict[str, int] = {}  # market id -> book diffs to swallow (a sequence gap)
        self.public_trades: dict[str, list[dict[str, Any]]] = {}  # market id -> recent trades (GET trades)
        # (market id, interval) -> candles, oldest first, in Binance's row format (GET klines)
        self.klines: dict[tuple[str, str], list[list[Any]]] = {}
        self.next_sub_id = 0
        self._cancel_ids: dict[int, str] = {}  # order id -> client id of the request that canceled it

    # ---- seeding (test API)
    def add_market(self, symbol: str = "BTC/USDT", **kw: Any) -> Market:
        """List a spot market (filters as keyword overrides of :class:`Market`)."""
        base, quote = symbol.split("/")
        with self.lock:
            return self.engine.add_market(Market(symbol, base, quote, **kw))

    def market_id(self, symbol: str) -> str:
        """Binance id of a unified symbol (BTC/USDT -> BTCUSDT)."""
        return symbol.replace("/", "")

    def _symbol(self, market_id: str | None) -> str | None:
        for s in self.engine.markets:
            if self.market_id(s) == market_id:
                return s
        return None

    def gap(self, symbol: str, diffs: int = 1) -> None:
        """Swallow the next ``diffs`` depth updates of ``symbol``: subscribers see a U/u sequence gap."""
        with self.lock:
            self.gaps[self.market_id(symbol)] = diffs

    def ban(self, seconds: int) -> None:
        """Ban the IP now: every request answers 418 until it ends."""
        with self.lock:
            self.banned_until = time.time() + seconds

    # ---- REST plumbing
    def routes(self, app: web.Application) -> None:
        """REST under /api/v3, websockets under /stream/ws* (and without the prefix)."""
        for prefix in ("/stream", ""):
            app.router.add_get(prefix + "/ws", self.ws_handler)
            app.router.add_get(prefix + "/ws/{n}", self.ws_handler)
            app.router.add_get(prefix + "/ws-api/v3", self.ws_handler)
        app.router.add_route("*", "/api/v3/{endpoint:.*}", self._rest)

    def _endpoint(self, request: web.Request) -> str:
        return request.match_info.get("endpoint", "") or request.path.split("/api/v3/", 1)[-1]

    def _weight_of(self, request: web.Request) -> int:
        ep = request.path.split("/api/v3/", 1)[-1]
        if ep == "depth":
            return depth_weight(int(request.query.get("limit", "100")))
        if ep == "openOrders" and request.method == "GET" and "symbol" not in request.query:
            return 80
        return WEIGHTS.get((request.method, ep), 1)

    @staticmethod
    def error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
        """A Binance error answer."""
        return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)

    def rate_limit(self, request: web.Request) -> web.StreamResponse | None:
        """418 while banned, 429 past the minute's weight; repeated calls during a 429 window earn a ban."""
        t = time.time()
        with self.lock:
            if t < self.banned_until:
                until = int(self.banned_until * 1000)
                return self.error(
                    418,
                    -1003,
                    f"Way too much request weight used; IP banned until {until}. "
                    "Please use WebSocket Streams for live updates to avoid bans.",
                    {"Retry-After": str(max(1, int(self.banned_until - t) + 1))},
                )
            if t < self.retry_until:
                self.calls_while_limited += 1
                if self.calls_while_limited >= self.ban_after:
                    self.banned_until = t + self.ban_seconds
                    self.calls_while_limited = 0
            if not self.weight.spend(self._weight_of(request)):
                self.retry_until = t + self.weight.retry_after()
                return self.error(
                    429,
                    -1003,
                    f"Too many requests; current limit of IP(127.0.0.1) request weight "
                    f"per minute is {int(self.weight.limit)}. Please use WebSocket Streams for live "
                    "updates to avoid polling the API.",
                    {"Retry-After": str(self.weight.retry_after())},
                )
        return None

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        """X-MBX-USED-WEIGHT-1M on every answer, X-MBX-ORDER-COUNT-10S on order answers."""
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(int(self.weight.used))
        if request.path.endswith("/order") and request.method == "POST":
            response.headers["X-MBX-ORDER-COUNT-10S"] = str(int(self.order_rate.used))

    async def _params(self, request: web.Request) -> tuple[dict[str, str], str, str | None]:
        """Merged params, the signed payload (query + body without ``signature``) and the signature."""
        query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        signature = None
        parts = []
        for raw in (query, body):
            kept = []
            for piece in raw.split("&") if raw else []:
                if piece.startswith("signature="):
                    signature = piece[len("signature=") :]
                else:
                    kept.append(piece)
            parts.append("&".join(kept))
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(dict(parse_qsl(body, keep_blank_values=True)))
        params.pop("signature", None)
        payload = parts[0] + parts[1] if parts[0] and parts[1] else parts[0] or parts[1]
        return params, payload, signature

    def _check_auth(
        self, request: web.Request, params: dict[str, str], payload: str, signature: str | None
    ) -> web.Response | None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return self.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if signature is None:
            return self.error(
                400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return self.error(400, -1022, "Signature for this request is not valid.")
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError):
            return self.error(
                400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            )
        if window > 60000:
            return self.error(400, -1131, "recvWindow must be less than 60000")
        server = now_ms()
        if not (ts < server + 1000 and server - ts <= window):
            return self.error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        ep = self._endpoint(request)
        params, payload, signature = await self._params(request)
        public = {
            "ping",
            "time",
            "exchangeInfo",
            "depth",
            "trades",
            "klines",
            "ticker/24hr",
            "ticker/bookTicker",
            "ticker/price",
            "avgPrice",
        }
        if ep not in public:
            denied = self._check_auth(request, params, payload, signature)
            if denied is not None:
                return denied
        name = re.sub(r"(?<=[a-z])([A-Z])", r"_\1", f"{request.method}_{ep.replace('/', '_')}").lower()
        handler = getattr(self, name, None)
        if handler is None:
            return self.error(404, -1000, f"Unknown endpoint {request.method} /api/v3/{ep}")
        with self.lock:
            return handler(params)  # type: ignore[no-any-return]

    # ---- public endpoints
    def get_ping(self, params: dict[str, str]) -> web.Response:
        """Connectivity test."""
        return web.json_response({})

    def get_time(self, params: dict[str, str]) -> web.Response:
        """Server time."""
        return web.json_response({"serverTime": now_ms()})

    def get_exchange_info(self, params: dict[str, str]) -> web.Response:
        """Rate limits and symbols with PRICE_FILTER / LOT_SIZE / NOTIONAL filters."""
        symbols = []
        for m in self.engine.markets.values():
            symbols.append(
                {
                    "symbol": self.market_id(m.symbol),
                    "status": "TRADING",
                    "baseAsset": m.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": m.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": False,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["NONE"],
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": str(m.tick),
                            "maxPrice": "1000000.00",
                            "tickSize": str(m.tick),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": str(m.min_qty),
                            "maxQty": "9000.00",
                            "stepSize": str(m.step),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": str(m.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                }
            )
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": now_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": int(self.weight.limit),
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": int(self.order_rate.limit),
                    },
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    def _market(self, params: dict[str, str]) -> Market | web.Response:
        symbol = self._symbol(params.get("symbol"))
        if symbol is None:
            return self.error(400, -1121, "Invalid symbol.")
        return self.engine.markets[symbol]

    def get_depth(self, params: dict[str, str]) -> web.Response:
        """Order book snapshot with lastUpdateId (the diff stream continues at lastUpdateId + 1)."""
        m = self._market(params)
        if isinstance(m, web.Response):
            return m
        limit = int(params.get("limit", "100"))
        return web.json_response(
            {
                "lastUpdateId": m.update_id,
                "bids": [[fmt(p), fmt(q)] for p, q in m.sorted_bids(limit)],
                "asks": [[fmt(p), fmt(q)] for p, q in m.sorted_asks(limit)],
            }
        )

    def get_trades(self, params: dict[str, str]) -> web.Response:
        """Recent public trades, oldest first (``limit`` most recent; the same ids as the @trade stream)."""
        m = self._market(params)
        if isinstance(m, web.Response):
            return m
        limit = int(params.get("limit", "500"))
        return web.json_response(self.public_trades.get(self.market_id(m.symbol), [])[-limit:])

    def get_klines(self, params: dict[str, str]) -> web.Response:
        """Candles seeded by :meth:`seed_klines`, filtered by ``startTime``/``endTime`` (ms) and ``limit``."""
        m = self._market(params)
        if isinstance(m, web.Response):
            return m
        rows = self.klines.get((self.market_id(m.symbol), params.get("interval", "")), [])
        if "startTime" in params:
            rows = [r for r in rows if r[0] >= int(params["startTime"])]
        if "endTime" in params:
            rows = [r for r in rows if r[0] <= int(params["endTime"])]
        limit = min(1000, int(params.get("limit", "500")))
        return web.json_response(rows[:limit] if "startTime" in params else rows[-limit:])

    def seed_klines(
        self, symbol: str, interval: str, candles: list[tuple[int, float, float, float, float, float]]
    ) -> None:
        """Script the exchange's candle history: ``(open time ms, open, high, low, close, volume)`` rows."""
        ms = {"1s": 1_000, "1m": 60_000, "5m": 300_000, "1h": 3_600_000}[interval]
        rows = [
            [t, str(o), str(h), str(lo), str(c), str(v), t + ms - 1, "0", 1, "0", "0", "0"]
            for t, o, h, lo, c, v in candles
        ]
        with self.lock:
            self.klines[(self.market_id(symbol), interval)] = rows

    def get_ticker_24hr(self, params: dict[str, str]) -> web.Response:
        """24 h ticker of one symbol (or all)."""
        if "symbol" not in params:
            return web.json_response([self._ticker(m) for m in self.engine.markets.values()])
        m = self._market(params)
        return m if isinstance(m, web.Response) else web.json_response(self._ticker(m))

    def get_ticker_book_ticker(self, params: dict[str, str]) -> web.Response:
        """Best bid/ask."""
        m = self._market(params)
        if isinstance(m, web.Response):
            return m
        (bp, bq), (ap, aq) = self._top(m)
        return web.json_response(
            {
                "symbol": self.market_id(m.symbol),
                "bidPrice": fmt(bp),
                "bidQty": fmt(bq),
                "askPrice": fmt(ap),
                "askQty": fmt(aq),
            }
        )

    def _top(self, m: Market) -> tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]:
        z = (Decimal(0), Decimal(0))
        return (m.sorted_bids(1) or [z])[0], (m.sorted_asks(1) or [z])[0]

    def _ticker(self, m: Market) -> dict[str, Any]:
        (bp, bq), (ap, aq) = self._top(m)
        t = now_ms()
        last = m.last_price or (bp + ap) / 2
        return {
            "symbol": self.market_id(m.symbol),
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": fmt(last),
            "prevClosePrice": fmt(last),
            "lastPrice": fmt(last),
            "lastQty": "0.00000000",
            "bidPrice": fmt(bp),
            "bidQty": fmt(bq),
            "askPrice": fmt(ap),
            "askQty": fmt(aq),
            "openPrice": fmt(last),
            "highPrice": fmt(last),
            "lowPrice": fmt(last),
            "volume": fmt(m.volume),
            "quoteVolume": fmt(m.volume * last),
            "openTime": t - 86_400_000,
            "closeTime": t,
            "firstId": 0,
            "lastId": self.engine.next_public_trade_id,
            "count": self.engine.next_public_trade_id,
        }

    # ---- private endpoints
    def _order_json(self, o: Order, full: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "symbol": self.market_id(o.symbol),
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_id,
            "price": fmt(o.price),
            "origQty": fmt(o.qty),
            "executedQty": fmt(o.filled),
            "cummulativeQuoteQty": fmt(o.cost),
            "status": STATUS[o.status],
            "timeInForce": o.tif,
            "type": TYPES[o.type],
            "side": o.side.upper(),
            "workingTime": o.created_ms if o.status != "untriggered" else -1,
            "selfTradePreventionMode": "NONE",
            "origQuoteOrderQty": fmt(o.quote_qty),
        }
        if o.stop is not None:
            d["stopPrice"] = fmt(o.stop)
        if full:
            d["transactTime"] = o.updated_ms
            d["fills"] = [
                {
                    "price": fmt(f.price),
                    "qty": fmt(f.qty),
                    "commission": fmt(f.fee),
                    "commissionAsset": f.fee_asset,
                    "tradeId": f.trade_id,
                }
                for f in o.fills
            ]
        else:
            d.update(
                {
                    "stopPrice": fmt(o.stop),
                    "icebergQty": "0.00000000",
                    "time": o.created_ms,
                    "updateTime": o.updated_ms,
                    "isWorking": o.status != "untriggered",
                }
            )
        return d

    def post_order(self, params: dict[str, str]) -> web.Response:
        """New order (client id in ``newClientOrderId``; unique among open orders only)."""
        symbol = self._symbol(params.get("symbol"))
        if symbol is None:
            return self.error(400, -1121, "Invalid symbol.")
        if not self.order_rate.spend(1):
            return self.error(
                429,
                -1015,
                f"Too many new orders; current limit is {int(self.order_rate.limit)} orders per 10 SECOND.",
                {"Retry-After": str(self.order_rate.retry_after())},
            )
        type_ = FROM_TYPE.get(params.get("type", ""))
        if type_ is None:
            return self.error(400, -1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"web_{secrets.token_hex(10)}"
        tif = params.get("timeInForce", "GTC")
        try:
            o = self.engine.place(
                symbol,
                params.get("side", "").lower(),
                "limit" if type_ == "limit_maker" else type_,
                params.get("quantity"),
                params.get("price"),
                params.get("stopPrice"),
                client_id,
                tif,
                quote_qty=params.get("quoteOrderQty"),
            )
        except Reject as r:
            status, code, msg = REJECTS.get(r.reason, (400, -1013, r.detail))
            return self.error(status, code, msg)
        return web.json_response(self._order_json(o, full=params.get("newOrderRespType", "FULL") == "FULL"))

    def _find(self, params: dict[str, str]) -> Order | None:
        symbol = self._symbol(params.get("symbol"))
        if "orderId" in params:
            o = self.engine.by_id(int(params["orderId"]))
            return o if o is not None and o.symbol == symbol else None
        if "origClientOrderId" in params:
            return self.engine.by_client_id(params["origClientOrderId"], symbol)
        return None

    def get_order(self, params: dict[str, str]) -> web.Response:
        """Query an order by ``orderId`` or ``origClientOrderId``."""
        o = self._find(params)
        if o is None:
            return self.error(400, -2013, "Order does not exist.")
        return web.json_response(self._order_json(o))

    def delete_order(self, params: dict[str, str]) -> web.Response:
        """Cancel an open order by ``orderId`` or ``origClientOrderId``."""
        o = self._find(params)
        if o is None or not o.is_open:
            return self.error(400, -2011, "Unknown order sent.")
        cancel_id = params.get("newClientOrderId") or f"web_{secrets.token_hex(10)}"
        self._cancel_ids[o.order_id] = cancel_id
        self.engine.cancel(o)
        d = self._order_json(o)
        d["origClientOrderId"] = o.client_id
        d["clientOrderId"] = cancel_id
        d["transactTime"] = o.updated_ms
        return web.json_response(d)

    def get_open_orders(self, params: dict[str, str]) -> web.Response:
        """Open orders (of a symbol or all)."""
        symbol = self._symbol(params.get("symbol")) if "symbol" in params else None
        return web.json_response([self._order_json(o) for o in self.engine.open_orders(symbol)])

    def delete_open_orders(self, params: dict[str, str]) -> web.Response:
        """Cancel every open order of a symbol."""
        symbol = self._symbol(params.get("symbol"))
        out = []
        for o in self.engine.open_orders(symbol):
            self.engine.cancel(o)
            d = self._order_json(o)
            d["origClientOrderId"] = o.client_id
            out.append(d)
        return web.json_response(out)

    def get_all_orders(self, params: dict[str, str]) -> web.Response:
        """Every order of a symbol."""
        symbol = self._symbol(params.get("symbol"))
        return web.json_response([self._order_json(o) for o in self.engine.orders if o.symbol == symbol])

    def get_my_trades(self, params: dict[str, str]) -> web.Response:
        """The account's trades of a symbol (``fromId``, ``orderId``, ``startTime``, ``limit``)."""
        symbol = self._symbol(params.get("symbol"))
        rows = [f for f in self.engine.fills if f.order.symbol == symbol]
        if "orderId" in params:
            rows = [f for f in rows if f.order.order_id == int(params["orderId"])]
        if "fromId" in params:
            rows = [f for f in rows if f.trade_id >= int(params["fromId"])]
        if "startTime" in params:
            rows = [f for f in rows if f.time_ms >= int(params["startTime"])]
        rows = rows[: int(params.get("limit", "500"))]
        return web.json_response([self._trade_json(f) for f in rows])

    def _trade_json(self, f: Fill) -> dict[str, Any]:
        return {
            "symbol": self.market_id(f.order.symbol),
            "id": f.trade_id,
            "orderId": f.order.order_id,
            "orderListId": -1,
            "price": fmt(f.price),
            "qty": fmt(f.qty),
            "quoteQty": fmt(f.cost),
            "commission": fmt(f.fee),
            "commissionAsset": f.fee_asset,
            "time": f.time_ms,
            "isBuyer": f.order.side == "buy",
            "isMaker": f.maker,
            "isBestMatch": True,
        }

    def get_account(self, params: dict[str, str]) -> web.Response:
        """Balances (free / locked)."""
        return web.json_response(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": now_ms(),
                "accountType": "SPOT",
                "permissions": ["SPOT"],
                "uid": 354937868,
                "balances": [
                    {"asset": a, "free": fmt(f), "locked": fmt(lk)}
                    for a, (f, lk) in self.engine.balances.items()
                ],
            }
        )

    # ---- websockets
    async def on_ws_message(self, conn: WsConn, msg: Any) -> None:
        """SUBSCRIBE/UNSUBSCRIBE on streams; userDataStream.subscribe.signature on the WebSocket API."""
        if not isinstance(msg, dict):
            return
        method = msg.get("method")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            with self.lock:
                for s in msg.get("params") or []:
                    (conn.subs.add if method == "SUBSCRIBE" else conn.subs.discard)(s)
            conn.send({"result": None, "id": msg.get("id")})
        elif method == "userDataStream.subscribe.signature":
            p = dict(msg.get("params") or {})
            sig = str(p.pop("signature", ""))
            payload = "&".join(f"{k}={p[k]}" for k in sorted(p))
            expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if p.get("apiKey") != self.api_key:
                conn.send(
                    {
                        "id": msg.get("id"),
                        "status": 401,
                        "error": {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
                    }
                )
            elif not hmac.compare_digest(expected, sig.lower()):
                conn.send(
                    {
                        "id": msg.get("id"),
                        "status": 400,
                        "error": {"code": -1022, "msg": "Signature for this request is not valid."},
                    }
                )
            else:
                with self.lock:
                    sub_id = self.next_sub_id
                    self.next_sub_id += 1
                    conn.state["user"] = sub_id
                    conn.subs.add("@user")
                conn.send(
                    {
                        "id": msg.get("id"),
                        "status": 200,
                        "result": {"subscriptionId": sub_id},
                        "rateLimits": [
                            {
                                "rateLimitType": "REQUEST_WEIGHT",
                                "interval": "MINUTE",
                                "intervalNum": 1,
                                "limit": int(self.weight.limit),
                                "count": 2,
                            }
                        ],
                    }
                )
        elif method == "ping":
            conn.send({"id": msg.get("id"), "status": 200, "result": {}})
        elif "id" in msg:
            conn.send(
                {
                    "id": msg.get("id"),
                    "status": 400,
                    "error": {"code": -1100, "msg": f"Unknown method {method!r}."},
                }
            )

    def _on_book(self, m: Market, levels: list[tuple[str, Decimal, Decimal]], first: int, last: int) -> None:
        mid = self.market_id(m.symbol)
        low = mid.lower()
        if self.gaps.get(mid):
            self.gaps[mid] -= 1
            return
        diff = {
            "e": "depthUpdate",
            "E": now_ms(),
            "s": mid,
            "U": first,
            "u": last,
            "b": [[fmt(p), fmt(q)] for side, p, q in levels if side == "bid"],
            "a": [[fmt(p), fmt(q)] for side, p, q in levels if side == "ask"],
        }
        for topic in (f"{low}@depth", f"{low}@depth@100ms"):
            for c in self.subscribers(topic):
                c.send(diff)
        (bp, bq), (ap, aq) = self._top(m)
        for c in self.subscribers(f"{low}@bookTicker"):
            c.send({"u": last, "s": mid, "b": fmt(bp), "B": fmt(bq), "a": fmt(ap), "A": fmt(aq)})

    def _on_trade(self, m: Market, tid: int, price: Decimal, qty: Decimal, taker: str, ts: int) -> None:
        mid = self.market_id(m.symbol)
        history = self.public_trades.setdefault(mid, [])
        history.append(
            {
                "id": tid,
                "price": fmt(price),
                "qty": fmt(qty),
                "quoteQty": fmt(price * qty),
                "time": ts,
                "isBuyerMaker": taker == "sell",
                "isBestMatch": True,
            }
        )
        del history[:-1000]
        low = mid.lower()
        for c in self.subscribers(f"{low}@trade"):
            c.send(
                {
                    "e": "trade",
                    "E": ts,
                    "s": mid,
                    "t": tid,
                    "p": fmt(price),
                    "q": fmt(qty),
                    "T": ts,
                    "m": taker == "sell",
                    "M": True,
                }
            )
        tick = self._ticker(m)
        for c in self.subscribers(f"{low}@ticker"):
            c.send(
                {
                    "e": "24hrTicker",
                    "E": ts,
                    "s": mid,
                    "p": "0",
                    "P": "0",
                    "w": tick["weightedAvgPrice"],
                    "x": tick["prevClosePrice"],
                    "c": fmt(price),
                    "Q": fmt(qty),
                    "b": tick["bidPrice"],
                    "B": tick["bidQty"],
                    "a": tick["askPrice"],
                    "A": tick["askQty"],
                    "o": tick["openPrice"],
                    "h": tick["highPrice"],
                    "l": tick["lowPrice"],
                    "v": tick["volume"],
                    "q": tick["quoteVolume"],
                    "O": tick["openTime"],
                    "C": ts,
                    "F": 0,
                    "L": tid,
                    "n": tid,
                }
            )
        for c in self.subscribers(f"{low}@miniTicker"):
            c.send(
                {
                    "e": "24hrMiniTicker",
                    "E": ts,
                    "s": mid,
                    "c": fmt(price),
                    "o": tick["openPrice"],
                    "h": tick["highPrice"],
                    "l": tick["lowPrice"],
                    "v": tick["volume"],
                    "q": tick["quoteVolume"],
                }
            )

    def _on_order(self, o: Order, f: Fill | None, exec_type: str) -> None:
        ts = now_ms()
        cancel = exec_type == "canceled"
        ev = {
            "e": "executionReport",
            "E": ts,
            "s": self.market_id(o.symbol),
            "c": self._cancel_ids.get(o.order_id, o.client_id) if cancel else o.client_id,
            "S": o.side.upper(),
            "o": TYPES[o.type],
            "f": o.tif,
            "q": fmt(o.qty),
            "p": fmt(o.price),
            "P": fmt(o.stop),
            "F": "0.00000000",
            "g": -1,
            "C": o.client_id if cancel else "",
            "x": EXEC[exec_type],
            "X": STATUS[o.status],
            "r": "NONE",
            "i": o.order_id,
            "l": fmt(f.qty if f else None),
            "z": fmt(o.filled),
            "L": fmt(f.price if f else None),
            "n": fmt(f.fee if f else None),
            "N": f.fee_asset if f else None,
            "T": f.time_ms if f else ts,
            "t": f.trade_id if f else -1,
            "v": 0,
            "I": ts,
            "w": o.is_open and o.status != "untriggered",
            "m": bool(f and f.maker),
            "M": False,
            "O": o.created_ms,
            "Z": fmt(o.cost),
            "Y": fmt(f.cost if f else None),
            "Q": fmt(o.quote_qty),
            "W": o.created_ms,
            "V": "NONE",
        }
        m = self.engine.markets[o.symbol]
        position = {
            "e": "outboundAccountPosition",
            "E": ts,
            "u": ts,
            "B": [
                {"a": a, "f": fmt(self.engine.free(a)), "l": fmt(self.engine.locked(a))}
                for a in (m.base, m.quote)
            ],
        }
        for c in self.subscribers("@user"):
            c.send({"subscriptionId": c.state["user"], "event": ev})
            if f is not None:
                c.send({"subscriptionId": c.state["user"], "event": position})

    # ---- market scripting (test API)
    def orders_json(self) -> list[dict[str, Any]]:
        """Every order as Binance reports it (for invariant checks by other tools)."""
        with self.lock:
            return [self._order_json(o) for o in self.engine.orders]


def demo_server(port: int = 0) -> BinanceServer:
    """A server seeded with BTC/USDT and ETH/USDT, a book around 50,000 and a funded account."""
    s = BinanceServer()
    s.port = port
    s.add_market("BTC/USDT")
    s.add_market("ETH/USDT")
    s.engine.deposit("USDT", 100_000)
    s.engine.deposit("BTC", 2)
    s.engine.deposit("ETH", 20)
    s.engine.set_levels(
        "BTC/USDT", [(49_990 - 10 * i, 1) for i in range(10)], [(50_010 + 10 * i, 1) for i in range(10)]
    )
    s.engine.set_levels(
        "ETH/USDT", [(2_999 - i, 10) for i in range(10)], [(3_001 + i, 10) for i in range(10)]
    )
    return s


if __name__ == "__main__":
    serve_main(demo_server)
