"""Local Coinbase Advanced Trade server: REST ``/api/v3/brokerage`` (+ ``/v2`` currencies) and websockets.

Wire formats follow Coinbase's Advanced Trade API reference as ccxt 4.5.x reads them (research:
live-venues.md §1.2, §2.2, §3.2, §4.2, §8.2). Point ccxt at it with ``rebase_urls(ex, server.rest_url,
server.ws_url)``.

Auth: CDP keys. The server generates a P-256 key pair; ``credentials()`` gives ccxt the key name
(``organizations/.../apiKeys/...``) and the PEM private key; every private REST call must carry
``Authorization: Bearer <ES256 JWT>`` whose signature verifies with the public key, ``kid == sub == key
name``, ``iss`` in {coinbase-cloud, cdp}, ``nbf <= now < exp`` and ``uri == "METHOD host/path"`` (with or
without the ``http://`` that ccxt leaves on a local URL). A bad token answers HTTP 401 ``{"error":
"unauthorized"}``.

REST: ``GET market/products``, ``products``, ``market/product_book``, ``product_book``,
``market/products/{id}/ticker``, ``transaction_summary``, ``accounts``, ``orders/historical/{order_id}``,
``orders/historical/batch`` (``order_status``, ``product_ids``, ``order_ids``, ``client_order_id``),
``orders/historical/fills``; ``POST orders`` (``client_order_id``; market_market_ioc, limit_limit_gtc,
stop_limit_stop_limit_gtc), ``POST orders/batch_cancel``; ``GET /v2/currencies``, ``/v2/currencies/crypto``,
``/v2/exchange-rates``. Websocket channels (one ``subscribe`` per channel, ``subscriptions`` ack):
``market_trades``, ``level2`` (``l2_data`` snapshot + updates), ``ticker``, ``user`` (JWT in the subscribe
message); every message carries a per-connection ``sequence_num`` (a scripted ``gap`` skips one).

Client order id (decision; the research marks the exact answer UNCONFIRMED): Coinbase documents that a non-
unique ``client_order_id`` "will not be created and the order corresponding with that ID will be returned
instead". The server does that for any earlier order with the id (``dedupe_scope="all"``, the default);
``dedupe_scope="open"`` makes it behave like Binance/Kraken (only open orders count) for executor tests.
Errors: create failures are HTTP 200 ``success: false`` with ``error_response`` (``INSUFFICIENT_FUND``,
``INVALID_LIMIT_PRICE_POST_ONLY``...); unknown order id: 404 ``NOT_FOUND``; rate limit: 429 ``{"error":
"rate_limit_exceeded"}`` (30 private requests per second).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.exchanges._base import (
    ExchangeServer,
    Fill,
    Market,
    Order,
    RateWindow,
    Reject,
    WsConn,
    serve_main,
)

STATUS = {
    "new": "OPEN",
    "partially_filled": "OPEN",
    "untriggered": "OPEN",
    "filled": "FILLED",
    "canceled": "CANCELLED",
    "expired": "EXPIRED",
    "rejected": "FAILED",
}
TYPES = {"market": "MARKET", "limit": "LIMIT", "stop_limit": "STOP_LIMIT", "take_profit_limit": "STOP_LIMIT"}
REJECTS = {
    "insufficient": (
        "INSUFFICIENT_FUND",
        "Insufficient balance in source account",
        "PREVIEW_INSUFFICIENT_FUND",
    ),
    "lot_size": ("INVALID_ARGUMENT", "Invalid order size", "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"),
    "price_filter": ("INVALID_ARGUMENT", "Invalid limit price", "PREVIEW_INVALID_LIMIT_PRICE"),
    "notional": ("INVALID_ARGUMENT", "Order size is too small", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
    "unknown_symbol": ("INVALID_ARGUMENT", "Invalid product_id", "PREVIEW_INVALID_PRODUCT_ID"),
}


def iso(ms: int) -> str:
    """RFC 3339 timestamp as Coinbase prints it."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def b64url_decode(s: str) -> bytes:
    """Decode unpadded base64url."""
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class CoinbaseServer(ExchangeServer):
    """A Coinbase Advanced Trade exchange on 127.0.0.1 (see the module docstring for what it serves)."""

    name = "coinbase"

    def __init__(
        self, dedupe_scope: str = "all", requests_per_s: int = 30, sequence_scope: str = "connection"
    ) -> None:
        super().__init__()
        # "connection": one sequence_num counter per connection across channels (what the research
        # found, UNCONFIRMED by Coinbase's docs); "channel": one per channel of a connection, to show a
        # feed does not take interleaved channels for lost messages
        self.sequence_scope = sequence_scope
        self.engine.fee_in_quote = True
        self.engine.fee_rate = Decimal("0.006")
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.api_key = f"organizations/{uuid.uuid4()}/apiKeys/{uuid.uuid4()}"
        self.secret = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self.dedupe_scope = dedupe_scope
        self.rate = RateWindow(requests_per_s, 1)
        self.uuids: dict[int, str] = {}
        self.gaps = 0  # websocket messages to swallow, any product (sequence_num jumps)
        self.product_gaps: dict[str, int] = {}  # product id -> its channels' messages to swallow
        self.trade_history: dict[str, list[dict[str, Any]]] = {}  # symbol -> market trades, oldest first

    # ---- seeding (test API)
    def add_market(self, symbol: str = "BTC/USD", **kw: Any) -> Market:
        """List a spot product (defaults: price increment 0.01, base increment 1e-8, quote_min_size 1)."""
        base, quote = symbol.split("/")
        kw.setdefault("step", Decimal("0.00000001"))
        kw.setdefault("min_qty", Decimal("0.00000001"))
        kw.setdefault("min_notional", Decimal("1"))
        with self.lock:
            return self.engine.add_market(Market(symbol, base, quote, **kw))

    def product_id(self, symbol: str) -> str:
        """BTC/USD -> BTC-USD."""
        return symbol.replace("/", "-")

    def _symbol(self, product_id: str | None) -> str | None:
        s = (product_id or "").replace("-", "/")
        return s if s in self.engine.markets else None

    def gap(self, symbol: str | int | None = None, messages: int = 1) -> None:
        """Lose the next ``messages`` websocket data messages of ``symbol``'s channels (of any product
        without a symbol): ``sequence_num`` jumps on the next message. ``gap(symbol)`` as on the other
        exchanges; ``gap(n)`` loses the next n messages of any product.
        """
        with self.lock:
            if isinstance(symbol, int):
                self.gaps = symbol
            elif symbol is None:
                self.gaps = messages
            else:
                self.product_gaps[self.product_id(symbol)] = messages

    def order_uuid(self, o: Order) -> str:
        """Coinbase order ids are UUIDs."""
        if o.order_id not in self.uuids:
            self.uuids[o.order_id] = str(uuid.UUID(int=o.order_id))
        return self.uuids[o.order_id]

    # ---- auth
    def verify_jwt(self, token: str, uri: str | None) -> str | None:
        """None if the ES256 JWT is valid for ``uri`` (None: websocket, no uri claim); else why not."""
        try:
            h64, p64, s64 = token.split(".")
            header, claims, sig = (
                json.loads(b64url_decode(h64)),
                json.loads(b64url_decode(p64)),
                b64url_decode(s64),
            )
        except ValueError:
            return "malformed token"
        if header.get("alg") != "ES256" or len(sig) != 64:
            return "unsupported alg"
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            self.key.public_key().verify(der, f"{h64}.{p64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "bad signature"
        now = time.time()
        if header.get("kid") != self.api_key or claims.get("sub") != self.api_key:
            return "unknown key"
        if claims.get("iss") not in ("coinbase-cloud", "cdp"):
            return "bad issuer"
        if not (claims.get("nbf", now + 1) <= now + 5 and now < claims.get("exp", 0)):
            return "expired"
        if uri is not None:
            claimed = claims.get("uri") or (claims.get("uris") or [None])[0]
            method, _, rest = uri.partition(" ")
            if claimed not in (uri, f"{method} http://{rest}"):
                return f"uri mismatch {claimed!r}"
        return None

    def exchange_order_id(self, o: Order) -> str:
        """The id ccxt sees for an order."""
        return self.order_uuid(o)

    def exchange_trade_id(self, f: Fill) -> str:
        """The id ccxt sees for one of our trades."""
        return str(f.trade_id)

    # ---- REST plumbing
    def routes(self, app: web.Application) -> None:
        """REST under /api/v3/brokerage and /v2, websockets at / (the real host has no path)."""
        app.router.add_get("/", self.ws_handler)
        app.router.add_route("*", "/api/v3/brokerage/{endpoint:.*}", self._rest)
        app.router.add_get("/v2/{endpoint:.*}", self._v2)

    def rate_limit(self, request: web.Request) -> web.StreamResponse | None:
        """30 requests per second; 429 with Retry-After."""
        with self.lock:
            if not self.rate.spend(1):
                return web.json_response(
                    {"error": "rate_limit_exceeded", "message": "Too many requests", "error_details": ""},
                    status=429,
                    headers={"Retry-After": str(self.rate.retry_after())},
                )
        return None

    def _denied(self, request: web.Request) -> web.Response | None:
        """401 unless the request carries a valid ES256 JWT for its method, host and path."""
        auth = request.headers.get("Authorization", "")
        why = (
            self.verify_jwt(auth[len("Bearer ") :], f"{request.method} {request.host}{request.path}")
            if auth.startswith("Bearer ")
            else "no token"
        )
        if why is None:
            return None
        return web.json_response(
            {"error": "unauthorized", "message": f"Unauthorized: {why}", "error_details": why}, status=401
        )

    async def _v2(self, request: web.Request) -> web.StreamResponse:
        ep = request.match_info["endpoint"]
        if ep == "accounts":  # the v2 wallet list ccxt's fetch_balance uses by default (total only)
            denied = self._denied(request)
            if denied is not None:
                return denied
            with self.lock:
                rows = [
                    {
                        "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, a)),
                        "name": f"{a} Wallet",
                        "primary": True,
                        "type": "fiat" if a in ("USD", "EUR") else "wallet",
                        "currency": {"code": a, "name": a},
                        "balance": {"amount": f"{f + lk:f}", "currency": a},
                        "created_at": iso(0),
                        "updated_at": iso(0),
                        "resource": "account",
                        "resource_path": f"/v2/accounts/{a}",
                    }
                    for a, (f, lk) in self.engine.balances.items()
                ]
            return web.json_response({"pagination": {"next_uri": None, "limit": 250}, "data": rows})
        assets = sorted(
            {m.base for m in self.engine.markets.values()} | {m.quote for m in self.engine.markets.values()}
        )
        if ep == "currencies":
            return web.json_response(
                {"data": [{"id": a, "name": a, "min_size": "0.01"} for a in assets if a in ("USD", "EUR")]}
            )
        if ep == "currencies/crypto":
            return web.json_response(
                {
                    "data": [
                        {
                            "code": a,
                            "name": a,
                            "color": "#000000",
                            "sort_index": 0,
                            "exponent": 8,
                            "type": "crypto",
                            "address_regex": "",
                        }
                        for a in assets
                        if a not in ("USD", "EUR")
                    ]
                }
            )
        if ep == "exchange-rates":
            return web.json_response({"data": {"currency": "USD", "rates": {a: "1" for a in assets}}})
        return web.json_response({"errors": [{"id": "not_found", "message": "Not found"}]}, status=404)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        ep = request.match_info["endpoint"]
        if not ep.startswith("market/"):
            denied = self._denied(request)
            if denied is not None:
                return denied
        body = await request.json() if request.can_read_body and request.method == "POST" else {}
        q = request.query
        with self.lock:
            if request.method == "GET" and ep in ("market/products", "products"):
                return self.products(q)
            if request.method == "GET" and ep in ("market/product_book", "product_book"):
                return self.product_book(q)
            if request.method == "GET" and ep.endswith("/ticker"):
                return self.ticker(ep.split("/")[-2], q)
            if request.method == "GET" and ep == "transaction_summary":
                return web.json_response(
                    {
                        "total_volume": 0,
                        "total_fees": 0,
                        "fee_tier": {
                            "pricing_tier": "Advanced 1",
                            "usd_from": "0",
                            "usd_to": "1000",
                            "taker_fee_rate": "0.006",
                            "maker_fee_rate": "0.004",
                        },
                        "margin_rate": None,
                        "goods_and_services_tax": None,
                        "advanced_trade_only_volume": 0,
                        "advanced_trade_only_fees": 0,
                        "coinbase_pro_volume": 0,
                        "coinbase_pro_fees": 0,
                    }
                )
            if request.method == "GET" and ep == "accounts":
                return self.accounts()
            if request.method == "POST" and ep == "orders":
                return self.create(body)
            if request.method == "POST" and ep == "orders/batch_cancel":
                return self.batch_cancel(body)
            if request.method == "GET" and ep == "orders/historical/batch":
                return self.batch(q)
            if request.method == "GET" and ep == "orders/historical/fills":
                return self.fills(q)
            if request.method == "GET" and ep.startswith("orders/historical/"):
                return self.get_order(ep.rsplit("/", 1)[-1])
        return web.json_response(
            {"error": "NOT_FOUND", "message": f"no route {request.method} {ep}"}, status=404
        )

    # ---- endpoints
    def _product(self, m: Market) -> dict[str, Any]:
        z = (Decimal(0), Decimal(0))
        (bp, _), (ap, _) = (m.sorted_bids(1) or [z])[0], (m.sorted_asks(1) or [z])[0]
        last = m.last_price or (bp + ap) / 2
        return {
            "product_id": self.product_id(m.symbol),
            "price": f"{last:f}",
            "price_percentage_change_24h": "0",
            "volume_24h": f"{m.volume:f}",
            "volume_percentage_change_24h": "0",
            "base_increment": str(m.step),
            "quote_increment": str(m.tick),
            "quote_min_size": str(m.min_notional),
            "quote_max_size": "150000000",
            "base_min_size": str(m.min_qty),
            "base_max_size": "3400",
            "base_name": m.base,
            "quote_name": m.quote,
            "watched": False,
            "is_disabled": False,
            "new": False,
            "status": "online",
            "cancel_only": False,
            "limit_only": False,
            "post_only": False,
            "trading_disabled": False,
            "auction_mode": False,
            "product_type": "SPOT",
            "quote_currency_id": m.quote,
            "base_currency_id": m.base,
            "fcm_trading_session_details": None,
            "mid_market_price": "",
            "alias": "",
            "alias_to": [],
            "base_display_symbol": m.base,
            "quote_display_symbol": m.quote,
            "view_only": False,
            "price_increment": str(m.tick),
            "display_name": self.product_id(m.symbol),
            "product_venue": "CBE",
        }

    def products(self, q: Any) -> web.Response:
        """Spot products (no futures)."""
        if q.get("product_type", "SPOT") != "SPOT":
            return web.json_response({"products": [], "num_products": 0})
        rows = [self._product(m) for m in self.engine.markets.values()]
        return web.json_response({"products": rows, "num_products": len(rows)})

    def product_book(self, q: Any) -> web.Response:
        """Order book snapshot."""
        s = self._symbol(q.get("product_id"))
        if s is None:
            return web.json_response(
                {"error": "INVALID_ARGUMENT", "message": "ProductID is invalid"}, status=400
            )
        m = self.engine.markets[s]
        n = int(q.get("limit", "50"))
        return web.json_response(
            {
                "pricebook": {
                    "product_id": self.product_id(s),
                    "time": iso(int(time.time() * 1000)),
                    "bids": [{"price": f"{p:f}", "size": f"{v:f}"} for p, v in m.sorted_bids(n)],
                    "asks": [{"price": f"{p:f}", "size": f"{v:f}"} for p, v in m.sorted_asks(n)],
                }
            }
        )

    def ticker(self, product_id: str, q: Any) -> web.Response:
        """Market trades, newest first (``limit`` most recent, within ``start``/``end`` seconds), with best
        bid/ask (Coinbase's "Get Market Trades").
        """
        s = self._symbol(product_id)
        if s is None:
            return web.json_response({"error": "NOT_FOUND", "message": "product not found"}, status=404)
        m = self.engine.markets[s]
        z = (Decimal(0), Decimal(0))
        (bp, _), (ap, _) = (m.sorted_bids(1) or [z])[0], (m.sorted_asks(1) or [z])[0]
        rows = self.trade_history.get(s, [])
        if q.get("start"):
            rows = [t for t in rows if t["time_ms"] >= int(q["start"]) * 1000]
        if q.get("end"):
            rows = [t for t in rows if t["time_ms"] <= int(q["end"]) * 1000]
        limit = min(int(q.get("limit", "100")), 1000)
        newest = list(reversed(rows))[:limit]
        return web.json_response(
            {
                "trades": [
                    {
                        **{k: v for k, v in t.items() if k != "time_ms"},
                        "bid": "",
                        "ask": "",
                        "exchange": "",
                    }
                    for t in newest
                ],
                "best_bid": f"{bp:f}",
                "best_ask": f"{ap:f}",
            }
        )

    def accounts(self) -> web.Response:
        """One account per asset: available and hold."""
        rows = []
        for a, (f, lk) in self.engine.balances.items():
            rows.append(
                {
                    "uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, a)),
                    "name": f"{a} Wallet",
                    "currency": a,
                    "available_balance": {"value": f"{f:f}", "currency": a},
                    "default": True,
                    "active": True,
                    "created_at": iso(0),
                    "updated_at": iso(0),
                    "deleted_at": None,
                    "type": "ACCOUNT_TYPE_FIAT" if a in ("USD", "EUR") else "ACCOUNT_TYPE_CRYPTO",
                    "ready": True,
                    "hold": {"value": f"{lk:f}", "currency": a},
                    "retail_portfolio_id": "p",
                }
            )
        return web.json_response({"accounts": rows, "has_next": False, "cursor": "", "size": len(rows)})

    def _config(self, o: Order) -> dict[str, Any]:
        if o.type == "market":
            return {"market_market_ioc": {"base_size": f"{o.qty:f}"}}
        if o.stop is not None:
            direction = "STOP_DIRECTION_STOP_UP" if o.side == "buy" else "STOP_DIRECTION_STOP_DOWN"
            return {
                "stop_limit_stop_limit_gtc": {
                    "base_size": f"{o.qty:f}",
                    "limit_price": f"{o.price:f}",
                    "stop_price": f"{o.stop:f}",
                    "stop_direction": direction,
                }
            }
        return {
            "limit_limit_gtc": {"base_size": f"{o.qty:f}", "limit_price": f"{o.price:f}", "post_only": False}
        }

    def _order_json(self, o: Order) -> dict[str, Any]:
        return {
            "order_id": self.order_uuid(o),
            "product_id": self.product_id(o.symbol),
            "user_id": "user-1",
            "order_configuration": self._config(o),
            "side": o.side.upper(),
            "client_order_id": o.client_id,
            "status": STATUS[o.status],
            "time_in_force": "IMMEDIATE_OR_CANCEL" if o.type == "market" else "GOOD_UNTIL_CANCELLED",
            "created_time": iso(o.created_ms),
            "completion_percentage": f"{(o.filled / o.qty * 100):.2f}",
            "filled_size": f"{o.filled:f}",
            "average_filled_price": f"{o.average:f}",
            "fee": "",
            "number_of_fills": str(len(o.fills)),
            "filled_value": f"{o.cost:f}",
            "pending_cancel": False,
            "size_in_quote": False,
            "total_fees": f"{o.fee:f}",
            "size_inclusive_of_fees": False,
            "total_value_after_fees": f"{(o.cost + o.fee) if o.side == 'buy' else (o.cost - o.fee):f}",
            "trigger_status": "STOP_PENDING" if o.status == "untriggered" else "INVALID_ORDER_TYPE",
            "order_type": TYPES[o.type],
            "reject_reason": "",
            "settled": not o.is_open,
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "User requested cancel" if o.status == "canceled" else "",
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": f"{o.locked:f}",
            "is_liquidation": False,
            "last_fill_time": iso(o.fills[-1].time_ms) if o.fills else None,
            "edit_history": [],
            "leverage": "",
            "margin_type": "UNKNOWN_MARGIN_TYPE",
            "retail_portfolio_id": "p",
        }

    def create(self, body: dict[str, Any]) -> web.Response:
        """Create an order; a known ``client_order_id`` returns the existing order instead (dedupe_scope)."""
        cid = str(body.get("client_order_id") or "")
        s = self._symbol(body.get("product_id"))
        cfg = body.get("order_configuration") or {}
        known = self.engine.by_client_id(cid) if cid else None
        if known is not None and (self.dedupe_scope == "all" or known.is_open):
            return web.json_response(
                {
                    "success": True,
                    "success_response": {
                        "order_id": self.order_uuid(known),
                        "product_id": self.product_id(known.symbol),
                        "side": known.side.upper(),
                        "client_order_id": cid,
                    },
                    "order_configuration": self._config(known),
                }
            )
        side = str(body.get("side", "")).lower()
        try:
            if s is None:
                raise Reject("unknown_symbol", str(body.get("product_id")))
            if "market_market_ioc" in cfg:
                c = cfg["market_market_ioc"]
                o = self.engine.place(
                    s, side, "market", c.get("base_size"), client_id=cid, quote_qty=c.get("quote_size")
                )
            elif "limit_limit_gtc" in cfg:
                c = cfg["limit_limit_gtc"]
                o = self.engine.place(s, side, "limit", c["base_size"], c["limit_price"], client_id=cid)
            elif "stop_limit_stop_limit_gtc" in cfg:
                c = cfg["stop_limit_stop_limit_gtc"]
                kind = (
                    "stop_limit"
                    if (c.get("stop_direction") == "STOP_DIRECTION_STOP_UP") == (side == "buy")
                    else "take_profit_limit"
                )
                o = self.engine.place(s, side, kind, c["base_size"], c["limit_price"], c["stop_price"], cid)
            else:
                return self._failure(
                    "UNSUPPORTED_ORDER_CONFIGURATION",
                    "Unsupported order configuration",
                    "PREVIEW_INVALID_ORDER_CONFIG",
                )
        except Reject as r:
            return self._failure(*REJECTS.get(r.reason, ("INVALID_ARGUMENT", r.detail, "UNKNOWN_PREVIEW")))
        return web.json_response(
            {
                "success": True,
                "success_response": {
                    "order_id": self.order_uuid(o),
                    "product_id": self.product_id(o.symbol),
                    "side": o.side.upper(),
                    "client_order_id": cid,
                },
                "order_configuration": self._config(o),
            }
        )

    @staticmethod
    def _failure(error: str, message: str, preview: str) -> web.Response:
        return web.json_response(
            {
                "success": False,
                "failure_reason": "UNKNOWN_FAILURE_REASON",
                "order_id": "",
                "error_response": {
                    "error": error,
                    "message": message,
                    "error_details": "",
                    "preview_failure_reason": preview,
                    "new_order_failure_reason": error,
                },
            }
        )

    def _by_uuid(self, order_id: str) -> Order | None:
        for o in self.engine.orders:
            if self.order_uuid(o) == order_id:
                return o
        return None

    def get_order(self, order_id: str) -> web.Response:
        """One order by id; unknown: 404 NOT_FOUND."""
        o = self._by_uuid(order_id)
        if o is None:
            msg = "order with this orderID was not found"
            return web.json_response({"error": "NOT_FOUND", "error_details": msg, "message": msg}, status=404)
        return web.json_response({"order": self._order_json(o)})

    def batch(self, q: Any) -> web.Response:
        """List orders, newest first (filters: order_status, product_ids, order_ids, client_order_id)."""
        rows = list(reversed(self.engine.orders))
        statuses = q.getall("order_status", [])
        if statuses:
            rows = [o for o in rows if STATUS[o.status] in statuses]
        products = q.getall("product_ids", []) or q.getall("product_id", [])
        if products:
            rows = [o for o in rows if self.product_id(o.symbol) in products]
        ids = q.getall("order_ids", [])
        if ids:
            rows = [o for o in rows if self.order_uuid(o) in ids]
        if q.get("client_order_id"):
            rows = [o for o in rows if o.client_id == q["client_order_id"]]
        rows = rows[: int(q.get("limit", "100"))]
        return web.json_response(
            {"orders": [self._order_json(o) for o in rows], "sequence": "0", "has_next": False, "cursor": ""}
        )

    def batch_cancel(self, body: dict[str, Any]) -> web.Response:
        """Cancel orders by id; each result says whether it worked."""
        results = []
        for oid in body.get("order_ids") or []:
            o = self._by_uuid(oid)
            if o is None or not o.is_open:
                results.append({"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": oid})
                continue
            self.engine.cancel(o)
            results.append(
                {"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": oid}
            )
        return web.json_response({"results": results})

    def fills(self, q: Any) -> web.Response:
        """Our fills, newest first (filters: order_id(s), product_id(s))."""
        rows = list(reversed(self.engine.fills))
        oids = q.getall("order_ids", []) or q.getall("order_id", [])
        if oids:
            rows = [f for f in rows if self.order_uuid(f.order) in oids]
        products = q.getall("product_ids", []) or q.getall("product_id", [])
        if products:
            rows = [f for f in rows if self.product_id(f.order.symbol) in products]
        rows = rows[: int(q.get("limit", "100"))]
        return web.json_response(
            {
                "fills": [
                    {
                        "entry_id": f"e{f.trade_id}",
                        "trade_id": str(f.trade_id),
                        "order_id": self.order_uuid(f.order),
                        "trade_time": iso(f.time_ms),
                        "trade_type": "FILL",
                        "price": f"{f.price:f}",
                        "size": f"{f.qty:f}",
                        "commission": f"{f.fee:f}",
                        "product_id": self.product_id(f.order.symbol),
                        "sequence_timestamp": iso(f.time_ms),
                        "liquidity_indicator": "MAKER" if f.maker else "TAKER",
                        "size_in_quote": False,
                        "user_id": "user-1",
                        "side": f.order.side.upper(),
                        "retail_portfolio_id": "p",
                    }
                    for f in rows
                ],
                "cursor": "",
            }
        )

    # ---- websockets
    def _seq_key(self, channel: str) -> str:
        return "seq" if self.sequence_scope == "connection" else f"seq:{channel}"

    def _send(self, conn: WsConn, channel: str, events: list[dict[str, Any]]) -> None:
        key = self._seq_key(channel)
        seq = conn.state.get(key, 0)
        conn.state[key] = seq + 1
        conn.send(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": iso(int(time.time() * 1000)),
                "sequence_num": seq,
                "events": events,
            }
        )

    def _broadcast(self, topic: str, channel: str, events: list[dict[str, Any]]) -> None:
        conns = self.subscribers(topic)
        if not conns:
            return
        product = topic.partition(":")[2]
        if self.product_gaps.get(product, 0) > 0 or self.gaps > 0:  # lost, its sequence number spent
            if self.product_gaps.get(product, 0) > 0:
                self.product_gaps[product] -= 1
            else:
                self.gaps -= 1
            key = self._seq_key(channel)
            for c in conns:
                c.state[key] = c.state.get(key, 0) + 1
            return
        for c in conns:
            self._send(c, channel, events)

    async def on_ws_message(self, conn: WsConn, msg: Any) -> None:
        """subscribe/unsubscribe, one channel per message; ``user`` needs a valid JWT."""
        if not isinstance(msg, dict) or msg.get("type") not in ("subscribe", "unsubscribe"):
            return
        channel = msg.get("channel")
        products = msg.get("product_ids") or []
        if channel == "user":
            why = self.verify_jwt(str(msg.get("jwt", "")), None)
            if why is not None:
                conn.send({"type": "error", "message": "authentication failure"})
                return
        with self.lock:
            for p in products or ["*"]:
                topic = f"{channel}:{p}"
                (conn.subs.add if msg["type"] == "subscribe" else conn.subs.discard)(topic)
            subs: dict[str, list[str]] = {}
            for t in sorted(conn.subs):
                ch, _, p = t.partition(":")
                subs.setdefault(ch, []).append(p)
            self._send(conn, "subscriptions", [{"subscriptions": subs}])
            if msg["type"] != "subscribe":
                return
            for p in products:
                s = self._symbol(p)
                if s is None:
                    continue
                m = self.engine.markets[s]
                if channel == "level2":
                    now = iso(int(time.time() * 1000))
                    updates = [
                        {"side": "bid", "event_time": now, "price_level": f"{pr:f}", "new_quantity": f"{q:f}"}
                        for pr, q in m.sorted_bids()
                    ]
                    updates += [
                        {
                            "side": "offer",
                            "event_time": now,
                            "price_level": f"{pr:f}",
                            "new_quantity": f"{q:f}",
                        }
                        for pr, q in m.sorted_asks()
                    ]
                    self._send(conn, "l2_data", [{"type": "snapshot", "product_id": p, "updates": updates}])
                elif channel == "ticker":
                    self._send(conn, "ticker", [{"type": "snapshot", "tickers": [self._ticker_row(m)]}])
            if channel == "user":
                rows = [
                    self._user_order(o)
                    for o in self.engine.open_orders()
                    if not products or self.product_id(o.symbol) in products
                ]
                self._send(conn, "user", [{"type": "snapshot", "orders": rows}])

    def _ticker_row(self, m: Market) -> dict[str, Any]:
        z = (Decimal(0), Decimal(0))
        (bp, bq), (ap, aq) = (m.sorted_bids(1) or [z])[0], (m.sorted_asks(1) or [z])[0]
        last = m.last_price or (bp + ap) / 2
        return {
            "type": "ticker",
            "product_id": self.product_id(m.symbol),
            "price": f"{last:f}",
            "volume_24_h": f"{m.volume:f}",
            "low_24_h": f"{last:f}",
            "high_24_h": f"{last:f}",
            "low_52_w": f"{last:f}",
            "high_52_w": f"{last:f}",
            "price_percent_chg_24_h": "0",
            "best_bid": f"{bp:f}",
            "best_bid_quantity": f"{bq:f}",
            "best_ask": f"{ap:f}",
            "best_ask_quantity": f"{aq:f}",
        }

    def _on_book(self, m: Market, levels: list[tuple[str, Decimal, Decimal]], first: int, last: int) -> None:
        p = self.product_id(m.symbol)
        now = iso(int(time.time() * 1000))
        updates = [
            {
                "side": "bid" if side == "bid" else "offer",
                "event_time": now,
                "price_level": f"{pr:f}",
                "new_quantity": f"{q:f}",
            }
            for side, pr, q in levels
        ]
        self._broadcast(f"level2:{p}", "l2_data", [{"type": "update", "product_id": p, "updates": updates}])
        self._broadcast(f"ticker:{p}", "ticker", [{"type": "update", "tickers": [self._ticker_row(m)]}])

    def _on_trade(self, m: Market, tid: int, price: Decimal, qty: Decimal, taker: str, ts: int) -> None:
        p = self.product_id(m.symbol)
        history = self.trade_history.setdefault(m.symbol, [])
        history.append(
            {
                "trade_id": str(tid),
                "product_id": p,
                "price": f"{price:f}",
                "size": f"{qty:f}",
                "time": iso(ts),
                "side": taker.upper(),
                "time_ms": ts,
            }
        )
        del history[:-1000]  # what one market-trades call can return
        self._broadcast(
            f"market_trades:{p}",
            "market_trades",
            [
                {
                    "type": "update",
                    "trades": [
                        {
                            "trade_id": str(tid),
                            "product_id": p,
                            "price": f"{price:f}",
                            "size": f"{qty:f}",
                            "side": taker.upper(),
                            "time": iso(ts),
                        }
                    ],
                }
            ],
        )

    def _user_order(self, o: Order) -> dict[str, Any]:
        return {
            "order_id": self.order_uuid(o),
            "client_order_id": o.client_id,
            "cumulative_quantity": f"{o.filled:f}",
            "leaves_quantity": f"{o.remaining:f}",
            "avg_price": f"{o.average:f}",
            "total_fees": f"{o.fee:f}",
            "status": STATUS[o.status],
            "product_id": self.product_id(o.symbol),
            "creation_time": iso(o.created_ms),
            "order_side": o.side.upper(),
            "order_type": TYPES[o.type].capitalize(),
            "limit_price": f"{o.price or 0:f}",
            "stop_price": f"{o.stop or 0:f}",
            "cancel_reason": "",
            "reject_reason": "",
            "total_value_after_fees": f"{o.cost + o.fee:f}",
            "product_type": "SPOT",
            "time_in_force": "GOOD_UNTIL_CANCELLED",
            "trigger_status": "INVALID_ORDER_TYPE",
            "number_of_fills": str(len(o.fills)),
            "filled_value": f"{o.cost:f}",
        }

    def _on_order(self, o: Order, f: Fill | None, exec_type: str) -> None:
        row = self._user_order(o)
        for topic in (f"user:{self.product_id(o.symbol)}", "user:*"):
            self._broadcast(topic, "user", [{"type": "update", "orders": [row]}])


def demo_server(port: int = 0) -> CoinbaseServer:
    """A server seeded with BTC/USD and ETH/USD, a book around 50,000 and a funded account."""
    s = CoinbaseServer()
    s.port = port
    s.add_market("BTC/USD")
    s.add_market("ETH/USD")
    s.engine.deposit("USD", 100_000)
    s.engine.deposit("BTC", 2)
    s.engine.deposit("ETH", 20)
    s.engine.set_levels(
        "BTC/USD", [(49_990 - 10 * i, 1) for i in range(10)], [(50_010 + 10 * i, 1) for i in range(10)]
    )
    s.engine.set_levels("ETH/USD", [(2_999 - i, 10) for i in range(10)], [(3_001 + i, 10) for i in range(10)])
    return s


if __name__ == "__main__":
    serve_main(demo_server)
