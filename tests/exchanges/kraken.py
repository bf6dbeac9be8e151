"""Local Kraken spot server: REST ``/0/public`` + ``/0/private`` and WebSocket v2 (public and ``executions``).

Wire formats follow Kraken's REST and WebSocket v2 docs as ccxt 4.5.x reads them (research: live-venues.md
§1.3, §2.3, §3.3, §4.3, §8.3). Point ccxt at it with ``rebase_urls(ex, server.rest_url, server.ws_url)``:
the v2 websocket path ``/v2`` is kept (ccxt picks its ping flavour by ``'v2' in url``).

REST: ``GET /0/public/{Time, Assets, AssetPairs, Depth, Ticker, Trades}``; signed ``POST
/0/private/{BalanceEx, Balance, AddOrder, CancelOrder, CancelAll, OpenOrders, ClosedOrders, QueryOrders,
TradesHistory, GetWebSocketsToken}``. Signature: ``API-Sign = b64(HMAC-SHA512(b64decode(secret), path +
SHA256(nonce + body)))`` with a strictly increasing nonce per key. Client ids: ``cl_ord_id`` (unique among
OPEN orders) and ``userref`` (an integer, no uniqueness); ``OpenOrders``/``ClosedOrders`` filter by either,
``QueryOrders`` by ``txid`` and ``userref``. WebSocket v2 on ``/v2``: ``ping``/``pong``, ``trade``, ``ticker``
(``event_trigger: bbo``), ``book`` (snapshot then updates with Kraken's CRC32 ``checksum``), ``executions``
with a token from GetWebSocketsToken (``pending_new``, ``new``, ``trade``, ``filled``, ``canceled`` events
with ``sequence``).

Book stream as Kraken sends it: an update carries every level whose quantity changed inside the subscribed
depth window, including a level that enters the window because one above it was deleted (a deleted level is
sent with qty 0; a level pushed out of the window by a better one is not sent: the client truncates its book
to the subscribed depth). Every book message carries ``checksum``: CRC32 of the top 10 asks then top 10 bids,
each ``price`` and ``qty`` printed at the pair's ``pair_decimals`` / ``lot_decimals`` with the '.' and leading
zeros removed (Kraken's "Spot WS v2 book checksum" guide). ``gap(symbol)`` loses updates on the wire (the
connection's window moves on), so the client's book diverges and the next checksum says so.

Errors are Kraken's, in the ``error`` array of an HTTP 200 body: ``EAPI:Invalid key`` (unknown key or bad
signature: what the live API answers for a wrong secret), ``EAPI:Invalid nonce``, ``EOrder:Insufficient
funds``, ``EOrder:Unknown order``, ``EOrder:Order minimum not met``, ``EGeneral:Invalid arguments:...``,
``EQuery:Unknown asset pair``, ``EAPI:Rate limit exceeded`` (call counter: +1 per call, +2 for history,
decays). A duplicate open ``cl_ord_id`` answers ``EOrder:Duplicate order`` (the exact string is UNCONFIRMED
in the research; ccxt surfaces it as a plain ``ExchangeError``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.exchanges._base import (
    DecayCounter,
    ExchangeServer,
    Fill,
    Market,
    Order,
    Reject,
    WsConn,
    serve_main,
)

# unified asset -> Kraken asset id, and the pair ids of the markets the server lists
ASSET_IDS = {"BTC": "XXBT", "ETH": "XETH", "USD": "ZUSD", "EUR": "ZEUR"}
REJECTS = {
    "duplicate": "EOrder:Duplicate order",
    "insufficient": "EOrder:Insufficient funds",
    "lot_size": "EGeneral:Invalid arguments:volume",
    "price_filter": "EOrder:Invalid price:Invalid price argument",
    "notional": "EOrder:Order minimum not met",
    "unknown_symbol": "EQuery:Unknown asset pair",
    "not_open": "EOrder:Unknown order",
}
REST_STATUS = {
    "new": "open",
    "partially_filled": "open",
    "untriggered": "open",
    "filled": "closed",
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "canceled",
}
WS_STATUS = {
    "new": "new",
    "partially_filled": "partially_filled",
    "untriggered": "pending_new",
    "filled": "filled",
    "canceled": "canceled",
    "expired": "expired",
}
ORDER_TYPES = {
    "market": "market",
    "limit": "limit",
    "stop-loss-limit": "stop_limit",
    "take-profit-limit": "take_profit_limit",
}
TYPE_NAMES = {v: k for k, v in ORDER_TYPES.items()}


def iso(ms: int) -> str:
    """RFC 3339 with microseconds, as Kraken v2 stamps messages."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def asset_id(asset: str) -> str:
    """Kraken's id of a unified asset."""
    return ASSET_IDS.get(asset, asset)


def book_checksum(
    asks: list[tuple[Any, Any]], bids: list[tuple[Any, Any]], price_decimals: int = 1, qty_decimals: int = 8
) -> int:
    """Kraken's CRC32 of the top 10 levels: price and qty at the pair's decimals, '.' and leading zeros
    removed.
    """

    def part(x: Any, decimals: int) -> str:
        return f"{Decimal(str(x)):.{decimals}f}".replace(".", "").lstrip("0")

    payload = "".join(part(p, price_decimals) + part(q, qty_decimals) for p, q in list(asks)[:10])
    payload += "".join(part(p, price_decimals) + part(q, qty_decimals) for p, q in list(bids)[:10])
    return binascii.crc32(payload.encode()) & 0xFFFFFFFF


class KrakenServer(ExchangeServer):
    """A Kraken spot exchange on 127.0.0.1 (see the module docstring for what it serves)."""

    name = "kraken"

    def __init__(
        self,
        api_key: str = "test-kraken-key",
        secret: str | None = None,
        call_limit: float = 20,
        decay_per_s: float = 0.5,
    ) -> None:
        super().__init__()
        self.engine.fee_in_quote = True
        self.engine.fee_rate = Decimal("0.0026")
        self.api_key = api_key
        self.secret = secret or base64.b64encode(b"kraken-test-secret-0123456789abcdef").decode()
        self.counter = DecayCounter(call_limit, decay_per_s)
        self.last_nonce = 0
        self.tokens: set[str] = set()
        self.txids: dict[int, str] = {}  # engine order id -> Kraken txid
        self.trade_txids: dict[int, str] = {}
        self.gaps: dict[str, int] = {}
        self.sequence = 0
        self.trade_history: dict[str, list[list[Any]]] = {}  # symbol -> REST Trades rows, oldest first

    # ---- seeding (test API)
    def add_market(self, symbol: str = "BTC/USD", **kw: Any) -> Market:
        """List a spot market (Kraken defaults: tick 0.1, lot 1e-8, ordermin 0.0001, costmin 0.5)."""
        base, quote = symbol.split("/")
        kw.setdefault("tick", Decimal("0.1"))
        kw.setdefault("step", Decimal("0.00000001"))
        kw.setdefault("min_qty", Decimal("0.0001"))
        kw.setdefault("min_notional", Decimal("0.5"))
        with self.lock:
            return self.engine.add_market(Market(symbol, base, quote, **kw))

    def pair_id(self, symbol: str) -> str:
        """Kraken pair id (BTC/USD -> XXBTZUSD)."""
        base, quote = symbol.split("/")
        return asset_id(base) + asset_id(quote)

    def _symbol(self, pair: str | None) -> str | None:
        for s in self.engine.markets:
            if pair in (self.pair_id(s), s.replace("/", ""), s.replace("BTC", "XBT").replace("/", "")):
                return s
        return None

    def gap(self, symbol: str, updates: int = 1) -> None:
        """Lose the next ``updates`` book updates on the wire: the client's book silently diverges (the
        next checksum does not match it).
        """
        with self.lock:
            self.gaps[symbol] = updates

    def exchange_order_id(self, o: Order) -> str:
        """The id ccxt sees for an order."""
        return self.txid(o)

    def exchange_trade_id(self, f: Fill) -> str:
        """The id ccxt sees for one of our trades."""
        return self.trade_txid(f)

    # ---- REST plumbing
    def routes(self, app: web.Application) -> None:
        """REST under /0/, websockets on /v2 (public and private share it)."""
        app.router.add_get("/v2", self.ws_handler)
        app.router.add_get("/", self.ws_handler)
        app.router.add_get("/0/public/{method}", self._public)
        app.router.add_post("/0/private/{method}", self._private)

    @staticmethod
    def answer(result: Any = None, error: list[str] | None = None) -> web.Response:
        """Kraken's envelope: HTTP 200, errors in the body."""
        body: dict[str, Any] = {"error": error or []}
        if result is not None:
            body["result"] = result
        return web.json_response(body)

    def rate_limit(self, request: web.Request) -> web.StreamResponse | None:
        """The REST call counter (trading calls use the per-pair trading counter, not this one)."""
        method = request.path.rsplit("/", 1)[-1]
        if not request.path.startswith("/0/private/") or method in ("AddOrder", "CancelOrder", "CancelAll"):
            return None
        cost = 2 if method in ("TradesHistory", "ClosedOrders", "QueryTrades", "Ledgers") else 1
        with self.lock:
            if not self.counter.spend(cost):
                return self.answer(error=["EAPI:Rate limit exceeded"])
        return None

    def txid(self, o: Order) -> str:
        """The txid of an order (Kraken style: OXXXXX-XXXXX-XXXXXX)."""
        if o.order_id not in self.txids:
            h = hashlib.sha1(str(o.order_id).encode()).hexdigest().upper()
            self.txids[o.order_id] = f"O{h[:5]}-{h[5:10]}-{h[10:16]}"
        return self.txids[o.order_id]

    def trade_txid(self, f: Fill) -> str:
        """The txid of one of our trades (Kraken style: TXXXXX-XXXXX-XXXXXX)."""
        if f.trade_id not in self.trade_txids:
            h = hashlib.sha1(f"t{f.trade_id}".encode()).hexdigest().upper()
            self.trade_txids[f.trade_id] = f"T{h[:5]}-{h[5:10]}-{h[10:16]}"
        return self.trade_txids[f.trade_id]

    async def _public(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        handler = getattr(self, f"public_{method.lower()}", None)
        if handler is None:
            return self.answer(error=["EGeneral:Unknown method"])
        with self.lock:
            return handler(dict(request.query))  # type: ignore[no-any-return]

    async def _private(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        body = await request.text()
        params = dict(parse_qsl(body, keep_blank_values=True))
        with self.lock:
            if request.headers.get("API-Key") != self.api_key:
                return self.answer(error=["EAPI:Invalid key"])
            nonce = params.get("nonce", "")
            try:
                secret = base64.b64decode(self.secret)
                message = request.path.encode() + hashlib.sha256((nonce + body).encode()).digest()
                expected = base64.b64encode(hmac.new(secret, message, hashlib.sha512).digest()).decode()
            except (ValueError, binascii.Error):
                return self.answer(error=["EAPI:Invalid key"])
            if not hmac.compare_digest(expected, request.headers.get("API-Sign", "")):
                return self.answer(error=["EAPI:Invalid key"])  # what live Kraken answers for a wrong secret
            if not nonce.isdigit() or int(nonce) <= self.last_nonce:
                return self.answer(error=["EAPI:Invalid nonce"])
            self.last_nonce = int(nonce)
            handler = getattr(self, f"private_{method.lower()}", None)
            if handler is None:
                return self.answer(error=["EGeneral:Unknown method"])
            return handler(params)  # type: ignore[no-any-return]

    # ---- public
    def public_time(self, q: dict[str, str]) -> web.Response:
        """Server time."""
        t = int(time.time())
        return self.answer(
            {"unixtime": t, "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(t))}
        )

    def public_assets(self, q: dict[str, str]) -> web.Response:
        """Asset info."""
        assets = {m.base for m in self.engine.markets.values()} | {
            m.quote for m in self.engine.markets.values()
        }
        return self.answer(
            {
                asset_id(a): {
                    "aclass": "currency",
                    "altname": "XBT" if a == "BTC" else a,
                    "decimals": 10,
                    "display_decimals": 5,
                    "status": "enabled",
                }
                for a in sorted(assets)
            }
        )

    def public_assetpairs(self, q: dict[str, str]) -> web.Response:
        """Tradable pairs with tick size, lot decimals, ordermin and costmin."""
        out = {}
        for s, m in self.engine.markets.items():
            alt = s.replace("BTC", "XBT").replace("/", "")
            out[self.pair_id(s)] = {
                "altname": alt,
                "wsname": s.replace("BTC", "XBT"),
                "aclass_base": "currency",
                "base": asset_id(m.base),
                "aclass_quote": "currency",
                "quote": asset_id(m.quote),
                "lot": "unit",
                "cost_decimals": 5,
                "pair_decimals": self._decimals(m)[0],
                "lot_decimals": self._decimals(m)[1],
                "lot_multiplier": 1,
                "leverage_buy": [],
                "leverage_sell": [],
                "fees": [[0, 0.26]],
                "fees_maker": [[0, 0.16]],
                "fee_volume_currency": "ZUSD",
                "margin_call": 80,
                "margin_stop": 40,
                "ordermin": str(m.min_qty),
                "costmin": str(m.min_notional),
                "tick_size": str(m.tick),
                "status": "online",
            }
        return self.answer(out)

    def public_depth(self, q: dict[str, str]) -> web.Response:
        """Order book snapshot."""
        s = self._symbol(q.get("pair"))
        if s is None:
            return self.answer(error=["EQuery:Unknown asset pair"])
        m = self.engine.markets[s]
        n = int(q.get("count", "100"))
        t = int(time.time())
        return self.answer(
            {
                self.pair_id(s): {
                    "asks": [[f"{p:f}", f"{v:f}", t] for p, v in m.sorted_asks(n)],
                    "bids": [[f"{p:f}", f"{v:f}", t] for p, v in m.sorted_bids(n)],
                }
            }
        )

    def public_ticker(self, q: dict[str, str]) -> web.Response:
        """Ticker (a = ask, b = bid, c = last)."""
        s = self._symbol(q.get("pair"))
        if s is None:
            return self.answer(error=["EQuery:Unknown asset pair"])
        m = self.engine.markets[s]
        z = (Decimal(0), Decimal(0))
        (bp, bq), (ap, aq) = (m.sorted_bids(1) or [z])[0], (m.sorted_asks(1) or [z])[0]
        last = m.last_price or (bp + ap) / 2
        return self.answer(
            {
                self.pair_id(s): {
                    "a": [f"{ap:f}", "1", f"{aq:f}"],
                    "b": [f"{bp:f}", "1", f"{bq:f}"],
                    "c": [f"{last:f}", "0"],
                    "v": [f"{m.volume:f}", f"{m.volume:f}"],
                    "p": [f"{last:f}", f"{last:f}"],
                    "t": [0, 0],
                    "l": [f"{last:f}", f"{last:f}"],
                    "h": [f"{last:f}", f"{last:f}"],
                    "o": f"{last:f}",
                }
            }
        )

    def public_trades(self, q: dict[str, str]) -> web.Response:
        """Public trades oldest first: ``since`` (seconds, inclusive) or the last ``count`` (max 1000)."""
        s = self._symbol(q.get("pair"))
        if s is None:
            return self.answer(error=["EQuery:Unknown asset pair"])
        rows = self.trade_history.get(s, [])
        count = min(int(q.get("count", "1000")), 1000)
        if q.get("since"):
            since = float(q["since"])
            rows = [r for r in rows if r[2] >= since][:count]
        else:
            rows = rows[-count:]
        last = str(int(rows[-1][2] * 1e9)) if rows else q.get("since", "0")
        return self.answer({self.pair_id(s): [list(r) for r in rows], "last": last})

    # ---- private
    def private_balanceex(self, p: dict[str, str]) -> web.Response:
        """Balances with the amount held by open orders."""
        return self.answer(
            {
                asset_id(a): {"balance": f"{f + lk:f}", "hold_trade": f"{lk:f}"}
                for a, (f, lk) in self.engine.balances.items()
            }
        )

    def private_balance(self, p: dict[str, str]) -> web.Response:
        """Total balances."""
        return self.answer({asset_id(a): f"{f + lk:f}" for a, (f, lk) in self.engine.balances.items()})

    def private_getwebsocketstoken(self, p: dict[str, str]) -> web.Response:
        """A token for the private websocket (valid 15 minutes)."""
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return self.answer({"token": token, "expires": 900})

    def _order_json(self, o: Order) -> dict[str, Any]:
        alt = o.symbol.replace("BTC", "XBT").replace("/", "")
        kind = TYPE_NAMES[o.type]
        price = o.stop if o.stop is not None else o.price
        text = f"{o.side} {o.qty:f} {alt} @ {kind} {price or 0:f}"
        if o.stop is not None:
            text += f" -> limit {o.price:f}"
        d: dict[str, Any] = {
            "refid": None,
            "userref": o.userref or 0,
            "cl_ord_id": o.client_id or None,
            "status": REST_STATUS[o.status],
            "opentm": o.created_ms / 1000,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": alt,
                "type": o.side,
                "ordertype": kind,
                "price": f"{price or 0:f}",
                "price2": f"{o.price:f}" if o.stop is not None else "0",
                "leverage": "none",
                "order": text,
                "close": "",
            },
            "vol": f"{o.qty:f}",
            "vol_exec": f"{o.filled:f}",
            "cost": f"{o.cost:f}",
            "fee": f"{o.fee:f}",
            "price": f"{o.average:f}",
            "stopprice": f"{o.stop or 0:f}",
            "limitprice": f"{o.price or 0:f}",
            "misc": "",
            "oflags": "fciq",
            "trades": [self.trade_txid(f) for f in o.fills],
        }
        if not o.is_open:
            d["closetm"] = o.updated_ms / 1000
            d["reason"] = "User requested" if o.status == "canceled" else None
        return d

    def private_addorder(self, p: dict[str, str]) -> web.Response:
        """New order; ``cl_ord_id`` is unique among open orders, ``userref`` is any integer."""
        s = self._symbol(p.get("pair"))
        if s is None:
            return self.answer(error=["EQuery:Unknown asset pair"])
        type_ = ORDER_TYPES.get(p.get("ordertype", ""))
        if type_ is None or p.get("type") not in ("buy", "sell"):
            return self.answer(error=["EGeneral:Invalid arguments:ordertype"])
        userref = p.get("userref")
        if userref is not None and not userref.lstrip("-").isdigit():
            return self.answer(error=["EGeneral:Invalid arguments:userref"])
        stop = p.get("price") if type_ in ("stop_limit", "take_profit_limit") else None
        price = p.get("price2") if stop is not None else p.get("price")
        try:
            o = self.engine.place(
                s,
                p["type"],
                type_,
                p.get("volume"),
                price if type_ != "market" else None,
                stop,
                p.get("cl_ord_id", ""),
                "IOC" if p.get("timeinforce") == "IOC" else "GTC",
                userref=int(userref) if userref is not None else None,
            )
        except Reject as r:
            return self.answer(error=[REJECTS.get(r.reason, f"EGeneral:Invalid arguments:{r.detail}")])
        alt = s.replace("BTC", "XBT").replace("/", "")
        text = f"{o.side} {o.qty:f} {alt} @ {TYPE_NAMES[o.type]}" + (f" {o.price:f}" if o.price else "")
        return self.answer({"descr": {"order": text}, "txid": [self.txid(o)]})

    def _find(self, p: dict[str, str]) -> list[Order]:
        if p.get("cl_ord_id"):
            o = self.engine.by_client_id(p["cl_ord_id"])
            return [o] if o is not None and o.is_open else []  # cl_ord_id addresses the OPEN order
        if p.get("txid"):
            wanted = set(p["txid"].split(","))
            return [o for o in self.engine.orders if self.txid(o) in wanted]
        return []

    def private_cancelorder(self, p: dict[str, str]) -> web.Response:
        """Cancel by ``txid`` or ``cl_ord_id``."""
        found = [o for o in self._find(p) if o.is_open]
        if not found:
            return self.answer(error=["EOrder:Unknown order"])
        for o in found:
            self.engine.cancel(o)
        return self.answer({"count": len(found)})

    def private_cancelall(self, p: dict[str, str]) -> web.Response:
        """Cancel every open order."""
        found = self.engine.open_orders()
        for o in found:
            self.engine.cancel(o)
        return self.answer({"count": len(found)})

    def _filtered(self, orders: list[Order], p: dict[str, str]) -> list[Order]:
        if p.get("cl_ord_id"):
            orders = [o for o in orders if o.client_id == p["cl_ord_id"]]
        if p.get("userref"):
            orders = [o for o in orders if str(o.userref) == p["userref"]]
        return orders

    def private_openorders(self, p: dict[str, str]) -> web.Response:
        """Open orders (filters: ``cl_ord_id``, ``userref``)."""
        rows = self._filtered(self.engine.open_orders(), p)
        return self.answer({"open": {self.txid(o): self._order_json(o) for o in rows}})

    def private_closedorders(self, p: dict[str, str]) -> web.Response:
        """Closed orders, newest first (filters: ``cl_ord_id``, ``userref``)."""
        rows = self._filtered([o for o in reversed(self.engine.orders) if not o.is_open], p)
        return self.answer({"closed": {self.txid(o): self._order_json(o) for o in rows}, "count": len(rows)})

    def private_queryorders(self, p: dict[str, str]) -> web.Response:
        """Orders by ``txid`` (comma-separated), optionally restricted to an integer ``userref``."""
        userref = p.get("userref")
        if userref is not None and not userref.lstrip("-").isdigit():
            return self.answer(error=["EGeneral:Invalid arguments:userref"])
        if not p.get("txid"):
            return self.answer(error=["EGeneral:Invalid arguments:txid"])
        rows = self._filtered(self._find({"txid": p["txid"]}), {"userref": userref or ""})
        if not rows:
            return self.answer(error=["EOrder:Invalid order"])
        return self.answer({self.txid(o): self._order_json(o) for o in rows})

    def private_tradeshistory(self, p: dict[str, str]) -> web.Response:
        """Our trades, newest first (``start`` in seconds)."""
        rows = list(reversed(self.engine.fills))
        if p.get("start"):
            rows = [f for f in rows if f.time_ms / 1000 >= float(p["start"])]
        return self.answer(
            {
                "trades": {
                    self.trade_txid(f): {
                        "ordertxid": self.txid(f.order),
                        "postxid": "TKH2SE-M7IF5-CFI7LT",
                        "pair": self.pair_id(f.order.symbol),
                        "time": f.time_ms / 1000,
                        "type": f.order.side,
                        "ordertype": TYPE_NAMES[f.order.type],
                        "price": f"{f.price:f}",
                        "cost": f"{f.cost:f}",
                        "fee": f"{f.fee:f}",
                        "vol": f"{f.qty:f}",
                        "margin": "0",
                        "misc": "",
                        "trade_id": f.trade_id,
                        "maker": f.maker,
                    }
                    for f in rows
                },
                "count": len(rows),
            }
        )

    # ---- websockets
    async def on_ws_message(self, conn: WsConn, msg: Any) -> None:
        """ping, subscribe/unsubscribe to trade, ticker, book and (with a token) executions."""
        if not isinstance(msg, dict):
            return
        method, req_id = msg.get("method"), msg.get("req_id")
        now = iso(int(time.time() * 1000))
        if method == "ping":
            conn.send({"method": "pong", "req_id": req_id, "time_in": now, "time_out": now})
            return
        if method not in ("subscribe", "unsubscribe"):
            return
        params = msg.get("params") or {}
        channel = params.get("channel")
        if channel == "executions":
            if params.get("token") not in self.tokens:
                conn.send(
                    {
                        "method": method,
                        "req_id": req_id,
                        "success": False,
                        "error": "EAccount:Invalid permissions",
                        "time_in": now,
                        "time_out": now,
                    }
                )
                return
            with self.lock:
                conn.subs.add("executions")
            conn.send(
                {
                    "method": method,
                    "req_id": req_id,
                    "success": True,
                    "time_in": now,
                    "time_out": now,
                    "result": {"channel": "executions", "snapshot": True},
                }
            )
            if params.get("snap_orders", True):
                with self.lock:
                    data = [self._exec(o, None, "new") for o in self.engine.open_orders()]
                    self.sequence += 1
                    conn.send(
                        {"channel": "executions", "type": "snapshot", "data": data, "sequence": self.sequence}
                    )
            return
        symbols = params.get("symbol") or []
        for s in symbols:
            if s not in self.engine.markets:
                conn.send(
                    {
                        "method": method,
                        "req_id": req_id,
                        "success": False,
                        "symbol": s,
                        "error": f"Currency pair not supported {s}",
                        "time_in": now,
                        "time_out": now,
                    }
                )
                return
        for s in symbols:
            topic = f"{channel}:{s}"
            if channel == "ticker" and params.get("event_trigger") == "bbo":
                topic = f"bbo:{s}"
            with self.lock:
                (conn.subs.add if method == "subscribe" else conn.subs.discard)(topic)
            conn.send(
                {
                    "method": method,
                    "req_id": req_id,
                    "success": True,
                    "time_in": now,
                    "time_out": now,
                    "result": {"channel": channel, "symbol": s, "snapshot": True},
                }
            )
            if method == "subscribe" and channel == "book":
                depth = int(params.get("depth", 10))
                conn.state[f"depth:{s}"] = depth
                with self.lock:
                    m = self.engine.markets[s]
                    conn.state[f"window:{s}"] = self._window(m, depth)
                    conn.send(self._book_msg(m, "snapshot", depth))

    @staticmethod
    def _decimals(m: Market) -> tuple[int, int]:
        """(price decimals, lot decimals) of a market, as AssetPairs reports them."""
        return -int(m.tick.as_tuple().exponent), -int(m.step.as_tuple().exponent)

    def _level(self, p: Decimal, q: Decimal) -> dict[str, float]:
        return {"price": float(p), "qty": float(q)}

    @staticmethod
    def _window(m: Market, depth: int) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """The (asks, bids) a subscriber at ``depth`` holds: the top ``depth`` levels of each side."""
        return dict(m.sorted_asks(depth)), dict(m.sorted_bids(depth))

    @staticmethod
    def _window_diff(
        old: dict[Decimal, Decimal], new: dict[Decimal, Decimal], book: dict[Decimal, Decimal]
    ) -> list[tuple[Decimal, Decimal]]:
        """Levels to send so that ``old`` becomes ``new``: changed or entering ones, and qty 0 for deleted
        ones (one pushed out but still in ``book`` is left to the client's truncation).
        """
        changed = [(p, q) for p, q in new.items() if old.get(p) != q]
        return changed + [(p, Decimal(0)) for p in old if p not in new and p not in book]

    def _book_msg(
        self,
        m: Market,
        kind: str,
        depth: int,
        diff: tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]] | None = None,
    ) -> dict[str, Any]:
        asks, bids = m.sorted_asks(depth), m.sorted_bids(depth)
        if diff is None:
            a, b = [self._level(*x) for x in asks], [self._level(*x) for x in bids]
        else:
            a, b = [self._level(*x) for x in diff[0]], [self._level(*x) for x in diff[1]]
        data: dict[str, Any] = {
            "symbol": m.symbol,
            "bids": b,
            "asks": a,
            "checksum": book_checksum(asks, bids, *self._decimals(m)),
        }
        if kind == "update":
            data["timestamp"] = iso(int(time.time() * 1000))
        return {"channel": "book", "type": kind, "data": [data]}

    def _on_book(self, m: Market, levels: list[tuple[str, Decimal, Decimal]], first: int, last: int) -> None:
        lost = bool(self.gaps.get(m.symbol))
        if lost:
            self.gaps[m.symbol] -= 1
        for c in self.subscribers(f"book:{m.symbol}"):
            depth = c.state.get(f"depth:{m.symbol}", 10)
            old_asks, old_bids = c.state.get(f"window:{m.symbol}", ({}, {}))
            new_asks, new_bids = c.state[f"window:{m.symbol}"] = self._window(m, depth)
            diff = (
                self._window_diff(old_asks, new_asks, m.asks),
                self._window_diff(old_bids, new_bids, m.bids),
            )
            if not lost and (diff[0] or diff[1]):  # a change outside the window is not sent
                c.send(self._book_msg(m, "update", depth, diff))
        if lost:
            return
        z = (Decimal(0), Decimal(0))
        (bp, bq), (ap, aq) = (m.sorted_bids(1) or [z])[0], (m.sorted_asks(1) or [z])[0]
        for c in self.subscribers(f"bbo:{m.symbol}") + self.subscribers(f"ticker:{m.symbol}"):
            last_price = float(m.last_price or (bp + ap) / 2)
            c.send(
                {
                    "channel": "ticker",
                    "type": "update",
                    "data": [
                        {
                            "symbol": m.symbol,
                            "bid": float(bp),
                            "bid_qty": float(bq),
                            "ask": float(ap),
                            "ask_qty": float(aq),
                            "last": last_price,
                            "volume": float(m.volume),
                            "vwap": last_price,
                            "low": last_price,
                            "high": last_price,
                            "change": 0.0,
                            "change_pct": 0.0,
                        }
                    ],
                }
            )

    def _on_trade(self, m: Market, tid: int, price: Decimal, qty: Decimal, taker: str, ts: int) -> None:
        # REST Trades row: price, volume, time (s), b/s, m/l, misc, trade_id (the stream's id)
        row = [f"{price:f}", f"{qty:f}", ts / 1000, taker[0], "m", "", tid]
        history = self.trade_history.setdefault(m.symbol, [])
        history.append(row)
        del history[:-1000]  # what one Trades call can return
        for c in self.subscribers(f"trade:{m.symbol}"):
            c.send(
                {
                    "channel": "trade",
                    "type": "update",
                    "data": [
                        {
                            "symbol": m.symbol,
                            "side": taker,
                            "price": float(price),
                            "qty": float(qty),
                            "ord_type": "market",
                            "trade_id": tid,
                            "timestamp": iso(ts),
                        }
                    ],
                }
            )

    def _exec(self, o: Order, f: Fill | None, exec_type: str) -> dict[str, Any]:
        d: dict[str, Any] = {
            "exec_type": exec_type,
            "order_id": self.txid(o),
            "symbol": o.symbol,
            "side": o.side,
            "order_type": TYPE_NAMES[o.type],
            "order_qty": float(o.qty),
            "order_status": WS_STATUS[o.status],
            "cum_qty": float(o.filled),
            "cum_cost": float(o.cost),
            "avg_price": float(o.average),
            "time_in_force": o.tif,
            "post_only": False,
            "reduce_only": False,
            "order_userref": o.userref or 0,
            "timestamp": iso(f.time_ms if f else o.updated_ms),
            "fee_usd_equiv": float(o.fee),
        }
        if o.client_id:
            d["cl_ord_id"] = o.client_id
        if o.price is not None:
            d["limit_price"] = float(o.price)
        if f is not None:
            d.update(
                {
                    "exec_id": self.trade_txid(f),
                    "trade_id": f.trade_id,
                    "last_qty": float(f.qty),
                    "last_price": float(f.price),
                    "cost": float(f.cost),
                    "liquidity_ind": "m" if f.maker else "t",
                    "fees": [{"asset": f.fee_asset, "qty": float(f.fee)}],
                }
            )
        return d

    def _on_order(self, o: Order, f: Fill | None, exec_type: str) -> None:
        conns = self.subscribers("executions")
        if not conns:
            return
        events = []
        if exec_type == "new":
            events = [self._exec(o, None, "pending_new"), self._exec(o, None, "new")]
        elif exec_type == "trade":
            events = [self._exec(o, f, "trade")]
            if o.status == "filled":
                events.append(self._exec(o, None, "filled"))
        else:
            events = [self._exec(o, None, exec_type)]
        for ev in events:
            self.sequence += 1
            for c in conns:
                c.send({"channel": "executions", "type": "update", "data": [ev], "sequence": self.sequence})


def demo_server(port: int = 0) -> KrakenServer:
    """A server seeded with BTC/USD and ETH/USD, a book around 50,000 and a funded account."""
    s = KrakenServer()
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
