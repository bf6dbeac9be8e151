"""Shared machinery of the local exchange servers: server thread, matching engine, faults, rate windows.

Each exchange module (``binance``, ``kraken``, ``coinbase``) subclasses :class:`ExchangeServer`, adds its
routes and its wire formats, and maps the engine's neutral rejection reasons to the exchange's own error
codes. One aiohttp application serves REST and websockets on the same 127.0.0.1 port (port 0: the OS picks
it). The server runs in a thread with its own asyncio loop, so synchronous tests and ccxt's own loop never
share a loop with it.

Thread model: server state (engine, faults, rate windows) is guarded by ``self.lock``; test code calls the
public methods from its own thread; websocket messages are queued per connection and written by that
connection's writer task, so their order is the order in which the state changed.

Decisions (documented because the real exchanges are silent or the research marks them UNCONFIRMED):
- our own resting orders are not shown in the public book (they are matched when the market trades through
  them: :meth:`Engine.public_trade`), which is what a small account sees on a deep market;
- a market order that exhausts the book is partially filled then expired (Binance's behaviour);
- a client order id is unique among OPEN orders only: once an order is filled, canceled or expired its id
  can be reused and makes a new order (what Binance documents and Kraken states for ``cl_ord_id``); a query
  by client order id answers the most recent order with that id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from aiohttp import WSMsgType, web

D = Decimal
ZERO = Decimal(0)
TICK, STEP, MIN_NOTIONAL, FEE_RATE = Decimal("0.01"), Decimal("0.00001"), Decimal("5"), Decimal("0.001")
# What another process (the chaos tool, a benchmark) may script over HTTP on a standalone server.
CONTROL_PATH = "/__control__/"
CONTROL_METHODS = frozenset(
    {
        "fail_next",
        "lose_next_answer",
        "delay_next",
        "drop_websockets",
        "set_silent",
        "gap",
        "ban",
        "trade",
        "move_book",
        "seed_book",
        "fill",
        "deposit",
        "net_fault",
        "faults_info",
        "clear_faults",
    }
)
# Network faults the chaos tool schedules by name (``net_fault``): the same names on every exchange server,
# each server knowing its own order endpoint (:attr:`ExchangeServer.order_path`).
NET_FAULTS = ("drop_streams", "lose_order_answer", "order_5xx", "lose_lookup_answer", "lookup_5xx")
OPEN_STATUSES = frozenset({"new", "partially_filled", "untriggered"})


def now_ms() -> int:
    """Wall-clock milliseconds (exchanges stamp everything in ms)."""
    return int(time.time() * 1000)


def dec(value: Any) -> Decimal:
    """Parse a wire number (string, int or float) exactly."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


# ---- engine


@dataclass
class Market:
    """One spot market: unified symbol, filters and the public order book (price -> quantity)."""

    symbol: str
    base: str
    quote: str
    tick: Decimal = TICK
    step: Decimal = STEP
    min_qty: Decimal = STEP
    min_notional: Decimal = MIN_NOTIONAL
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    update_id: int = 1000
    last_price: Decimal = ZERO
    volume: Decimal = ZERO

    def sorted_bids(self, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """Bids best first."""
        return sorted(self.bids.items(), key=lambda kv: -kv[0])[:depth]

    def sorted_asks(self, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """Asks best first."""
        return sorted(self.asks.items(), key=lambda kv: kv[0])[:depth]


@dataclass
class Fill:
    """One of the account's trades (an execution of one of its orders)."""

    trade_id: int
    order: Order
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    maker: bool
    time_ms: int

    @property
    def cost(self) -> Decimal:
        """Quote amount of this fill."""
        return self.price * self.qty


@dataclass
class Order:
    """An order of the account, as the exchange holds it."""

    order_id: int
    client_id: str
    symbol: str
    side: str  # buy | sell
    type: str  # market | limit | stop_limit | take_profit_limit
    qty: Decimal
    price: Decimal | None
    stop: Decimal | None
    tif: str
    status: str  # new | partially_filled | filled | canceled | expired | rejected | untriggered
    created_ms: int
    updated_ms: int
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    quote_qty: Decimal | None = None
    fills: list[Fill] = field(default_factory=list)
    locked: Decimal = ZERO  # balance still locked by this order (quote for buys, base for sells)
    userref: int | None = None

    @property
    def is_open(self) -> bool:
        """Resting (or waiting for its trigger) at the exchange."""
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet filled."""
        return self.qty - self.filled

    @property
    def average(self) -> Decimal:
        """Average fill price (0 without fills)."""
        return self.cost / self.filled if self.filled else ZERO


class Reject(Exception):
    """An order the engine refuses; ``reason`` is neutral, each exchange maps it to its own error."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# Listener signatures: the exchange module turns these into its own stream messages.
OrderListener = Callable[[Order, "Fill | None", str], None]  # (order, fill or None, exec type)
BookListener = Callable[
    [Market, list[tuple[str, Decimal, Decimal]], int, int], None
]  # (market, levels, U, u)
TradeListener = Callable[
    [Market, int, Decimal, Decimal, str, int], None
]  # (market, id, price, qty, taker side, ms)


class Engine:
    """Spot matching engine with balances: market, limit and stop-limit orders, partial fills, cancel."""

    def __init__(self, fee_rate: Decimal = FEE_RATE, fee_in_quote: bool = False) -> None:
        self.fee_in_quote = fee_in_quote  # Kraken/Coinbase charge the quote asset; Binance the received asset
        self.markets: dict[str, Market] = {}
        self.balances: dict[str, list[Decimal]] = {}  # asset -> [free, locked]
        self.orders: list[Order] = []
        self.fills: list[Fill] = []
        self.fee_rate = fee_rate
        self.next_order_id = 5_000_000
        self.next_trade_id = 900_000
        self.next_public_trade_id = 100_000
        self.order_listeners: list[OrderListener] = []
        self.book_listeners: list[BookListener] = []
        self.trade_listeners: list[TradeListener] = []

    # ---- setup
    def add_market(self, market: Market) -> Market:
        """List a market."""
        self.markets[market.symbol] = market
        return market

    def deposit(self, asset: str, amount: Any) -> None:
        """Credit a free balance."""
        self.balances.setdefault(asset, [ZERO, ZERO])[0] += dec(amount)

    def free(self, asset: str) -> Decimal:
        """Free balance of an asset."""
        return self.balances.get(asset, [ZERO, ZERO])[0]

    def locked(self, asset: str) -> Decimal:
        """Balance locked by open orders."""
        return self.balances.get(asset, [ZERO, ZERO])[1]

    # ---- public market
    def set_levels(
        self, symbol: str, bids: Iterable[tuple[Any, Any]] = (), asks: Iterable[tuple[Any, Any]] = ()
    ) -> int:
        """Set (or with quantity 0 delete) book levels; publishes one diff; returns the new update id."""
        m = self.markets[symbol]
        levels: list[tuple[str, Decimal, Decimal]] = []
        for side, book, rows in (("bid", m.bids, bids), ("ask", m.asks, asks)):
            for p, q in rows:
                p, q = dec(p), dec(q)
                if q == 0:
                    book.pop(p, None)
                else:
                    book[p] = q
                levels.append((side, p, q))
        return self._book_changed(m, levels, count=1)

    def _book_changed(self, m: Market, levels: list[tuple[str, Decimal, Decimal]], count: int = 1) -> int:
        first = m.update_id + 1
        m.update_id += count
        for cb in self.book_listeners:
            cb(m, levels, first, m.update_id)
        return m.update_id

    def public_trade(self, symbol: str, price: Any, qty: Any, taker_side: str = "buy") -> int:
        """A trade between other participants: publishes it, triggers stops, fills our crossing resting
        orders.
        """
        m = self.markets[symbol]
        price, qty = dec(price), dec(qty)
        self.next_public_trade_id += 1
        tid = self.next_public_trade_id
        m.last_price = price
        m.volume += qty
        ts = now_ms()
        for cb in self.trade_listeners:
            cb(m, tid, price, qty, taker_side, ts)
        self._trigger_stops(m)
        left = qty
        for o in [o for o in self.orders if o.symbol == symbol and o.status in ("new", "partially_filled")]:
            if left <= 0:
                break
            if o.price is None:
                continue
            crosses = price <= o.price if o.side == "buy" else price >= o.price
            if crosses:
                q = min(left, o.remaining)
                self._fill(o, q, o.price, maker=True)
                left -= q
        return tid

    def _trigger_stops(self, m: Market) -> None:
        for o in self.orders:
            if o.symbol != m.symbol or o.status != "untriggered" or o.stop is None:
                continue
            up = (o.type == "stop_limit") == (
                o.side == "buy"
            )  # stop buy / take-profit sell trigger on a rise
            if (m.last_price >= o.stop) if up else (m.last_price <= o.stop):
                o.status = "new"
                o.updated_ms = now_ms()
                self._emit(o, None, "new")
                self._match_taker(o, m)

    # ---- account
    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders, oldest first."""
        return [o for o in self.orders if o.is_open and (symbol is None or o.symbol == symbol)]

    def by_client_id(self, client_id: str, symbol: str | None = None) -> Order | None:
        """The most recent order carrying this client order id."""
        for o in reversed(self.orders):
            if o.client_id == client_id and (symbol is None or o.symbol == symbol):
                return o
        return None

    def by_id(self, order_id: int) -> Order | None:
        """An order by exchange id."""
        for o in self.orders:
            if o.order_id == order_id:
                return o
        return None

    def place(
        self,
        symbol: str,
        side: str,
        type_: str,
        qty: Any,
        price: Any = None,
        stop: Any = None,
        client_id: str = "",
        tif: str = "GTC",
        quote_qty: Any = None,
        userref: int | None = None,
    ) -> Order:
        """Validate, lock balance, match; raises :class:`Reject` with a neutral reason."""
        m = self.markets.get(symbol)
        if m is None:
            raise Reject("unknown_symbol", symbol)
        if client_id and any(o.client_id == client_id for o in self.open_orders()):
            raise Reject("duplicate", client_id)  # unique among OPEN orders only (module docstring)
        price = None if price is None else dec(price)
        stop = None if stop is None else dec(stop)
        if quote_qty is not None and qty is None:
            est = self._walk(m.sorted_asks(), dec(quote_qty), by_quote=True)
            qty = est.quantize(m.step, rounding=ROUND_DOWN)
        qty = dec(qty)
        if qty <= 0 or qty < m.min_qty or (qty / m.step) % 1 != 0:
            raise Reject("lot_size", str(qty))
        if price is not None and (price <= 0 or (price / m.tick) % 1 != 0):
            raise Reject("price_filter", str(price))
        best = m.sorted_asks(1) if side == "buy" else m.sorted_bids(1)
        ref = price if price is not None else (best or [(m.last_price, 0)])[0][0]
        if ref * qty < m.min_notional:
            raise Reject("notional", f"{ref * qty} < {m.min_notional}")
        ts = now_ms()
        self.next_order_id += 1
        o = Order(
            self.next_order_id,
            client_id,
            symbol,
            side,
            type_,
            qty,
            price,
            stop,
            tif,
            "untriggered" if stop is not None else "new",
            ts,
            ts,
            quote_qty=dec(quote_qty) if quote_qty else None,
            userref=userref,
        )
        # lock what the order may spend
        if side == "buy":
            need = qty * price if price is not None else self._walk(m.sorted_asks(), qty)
            if self.fee_in_quote:
                need *= 1 + self.fee_rate
            asset = m.quote
        else:
            need, asset = qty, m.base
        if type_ != "market":
            if self.free(asset) < need:
                raise Reject("insufficient", f"{asset} free {self.free(asset)} < {need}")
            self.balances[asset][0] -= need
            self.balances[asset][1] += need
            o.locked = need
        elif self.free(asset) < need:
            raise Reject("insufficient", f"{asset} free {self.free(asset)} < {need}")
        self.orders.append(o)
        self._emit(o, None, "new")
        if o.status == "new":
            self._match_taker(o, m)
        return o

    @staticmethod
    def _walk(levels: list[tuple[Decimal, Decimal]], amount: Decimal, by_quote: bool = False) -> Decimal:
        """Cost of buying ``amount`` base through ``levels`` (or base bought for ``amount`` quote)."""
        total, left = ZERO, amount
        for p, q in levels:
            take = min(q, left / p if by_quote else left)
            total += take if by_quote else take * p
            left -= take * p if by_quote else take
            if left <= 0:
                break
        return total

    def _match_taker(self, o: Order, m: Market) -> None:
        book = m.asks if o.side == "buy" else m.bids
        levels = m.sorted_asks() if o.side == "buy" else m.sorted_bids()
        changed: list[tuple[str, Decimal, Decimal]] = []
        for p, q in levels:
            if o.remaining <= 0:
                break
            if o.price is not None and (p > o.price if o.side == "buy" else p < o.price):
                break
            take = min(q, o.remaining)
            book[p] = q - take
            if book[p] == 0:
                del book[p]
            changed.append(("ask" if o.side == "buy" else "bid", p, book.get(p, ZERO)))
            self._fill(o, take, p, maker=False)
        if changed:
            self._book_changed(m, changed)
        if o.type == "market" and o.remaining > 0:
            o.status = "expired"  # the book ran out: partially filled, rest expired
            o.updated_ms = now_ms()
            self._emit(o, None, "expired")
        elif o.tif in ("IOC", "FOK") and o.remaining > 0:
            self._release(o)
            o.status = "expired"
            self._emit(o, None, "expired")

    def _fill(self, o: Order, qty: Decimal, price: Decimal, maker: bool) -> Fill:
        m = self.markets[o.symbol]
        self.next_trade_id += 1
        cost = qty * price
        if o.side == "buy":
            if self.fee_in_quote:
                fee, fee_asset, got, pay = cost * self.fee_rate, m.quote, qty, cost * (1 + self.fee_rate)
                reserved = qty * (o.price or price) * (1 + self.fee_rate)
            else:
                fee, fee_asset, got, pay = qty * self.fee_rate, m.base, qty * (1 - self.fee_rate), cost
                reserved = qty * (o.price or price)
            if o.locked:
                spend = min(o.locked, reserved)
                o.locked -= spend
                self.balances[m.quote][1] -= spend
                self.balances[m.quote][0] += spend - pay
            else:
                self.balances[m.quote][0] -= pay
            self.deposit(m.base, got)
        else:
            fee, fee_asset = cost * self.fee_rate, m.quote
            if o.locked:
                o.locked -= qty
                self.balances[m.base][1] -= qty
            else:
                self.balances[m.base][0] -= qty
            self.deposit(m.quote, cost - fee)
        f = Fill(self.next_trade_id, o, price, qty, fee, fee_asset, maker, now_ms())
        o.filled += qty
        o.cost += cost
        o.fee += fee
        o.fills.append(f)
        o.updated_ms = f.time_ms
        o.status = "filled" if o.remaining <= 0 else "partially_filled"
        self.fills.append(f)
        self._emit(o, f, "trade")
        return f

    def fill(self, order: Order, qty: Any, price: Any = None) -> Fill:
        """Scripted (partial) fill of a resting order, as if a counterparty hit it."""
        if not order.is_open:
            raise Reject("not_open", str(order.order_id))
        q = min(dec(qty), order.remaining)
        return self._fill(
            order, q, dec(price) if price is not None else (order.price or order.stop or ZERO), maker=True
        )

    def _release(self, o: Order) -> None:
        if o.locked:
            m = self.markets[o.symbol]
            asset = m.quote if o.side == "buy" else m.base
            self.balances[asset][1] -= o.locked
            self.balances[asset][0] += o.locked
            o.locked = ZERO

    def cancel(self, o: Order) -> Order:
        """Cancel an open order and release its locked balance."""
        if not o.is_open:
            raise Reject("not_open", str(o.order_id))
        self._release(o)
        o.status = "canceled"
        o.updated_ms = now_ms()
        self._emit(o, None, "canceled")
        return o

    def _emit(self, o: Order, f: Fill | None, exec_type: str) -> None:
        for cb in self.order_listeners:
            cb(o, f, exec_type)


# ---- rate limits
# limit


class RateWindow:
    """Fixed-window weight counter (Binance counts weight per calendar minute); remembers the peak it saw."""

    def __init__(self, limit: float, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self.start = time.time()
        self.used = 0.0
        self.peak = 0.0
        self.refused = 0  # requests refused because they would have exceeded the limit

    def _roll(self) -> None:
        t = time.time()
        if t - self.start >= self.window_s:
            self.start = t - (t - self.start) % self.window_s
            self.used = 0.0

    def spend(self, weight: float) -> bool:
        """Count ``weight``; False (and counted as refused) if it would exceed the limit."""
        self._roll()
        if self.used + weight > self.limit:
            self.refused += 1
            return False
        self.used += weight
        self.peak = max(self.peak, self.used)
        return True

    def retry_after(self) -> int:
        """Seconds until the window resets (Retry-After)."""
        return max(1, int(self.start + self.window_s - time.time()) + 1)


class DecayCounter:
    """Kraken-style call counter: +cost per call, decays linearly; refuses a call that would pass
    ``limit``.
    """

    def __init__(self, limit: float, decay_per_s: float) -> None:
        self.limit = limit
        self.decay = decay_per_s
        self.value = 0.0
        self.t = time.time()
        self.peak = 0.0
        self.refused = 0

    def spend(self, cost: float) -> bool:
        """Count ``cost``; False if the counter would pass the limit."""
        t = time.time()
        self.value = max(0.0, self.value - (t - self.t) * self.decay)
        self.t = t
        if self.value + cost > self.limit:
            self.refused += 1
            return False
        self.value += cost
        self.peak = max(self.peak, self.value)
        return True


# ---- faults


@dataclass
class Fault:
    """A scripted REST fault: applies to the next ``times`` requests whose method and path match."""

    kind: str  # respond | lose | delay
    method: str | None
    path: re.Pattern[str]
    times: int
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    name: str = ""  # the net fault it implements (``net_fault``), for ``faults_info``
    fault_id: int = 0
    fired_at: float | None = None  # wall-clock seconds when it last applied to a request
    recovered_at: float | None = None  # first success after it fired (an answer on its path; streams back)
    conns: int = 0  # drop_streams: open websockets before the drop

    def matches(self, method: str, path: str) -> bool:
        """Does this fault apply to the request?"""
        return (
            self.times > 0 and (self.method is None or self.method == method) and bool(self.path.search(path))
        )


# ----------------------------------------------------------------------------------------------------
# websockets


class WsConn:
    """One accepted websocket: an ordered outbound queue, its subscriptions and auth state."""

    def __init__(self, server: ExchangeServer, ws: web.WebSocketResponse, path: str) -> None:
        self.server = server
        self.ws = ws
        self.path = path
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.subs: set[str] = set()
        self.state: dict[str, Any] = {}
        self.closed = False
        self.transport: asyncio.BaseTransport | None = None

    def send(self, obj: Any) -> None:
        """Queue a JSON message (thread-safe); dropped if the server is silent for this connection."""
        if self.closed or self.server.silent:
            return
        data = obj if isinstance(obj, str) else json.dumps(obj)
        self.server.call_in_loop(self.queue.put_nowait, data)

    async def writer(self) -> None:
        """Write queued messages in order until closed."""
        while True:
            data = await self.queue.get()
            if data is None or self.ws.closed:
                return
            try:
                await self.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                return


# ---- server


class ExchangeServer:
    """Base of the local exchange servers: lifecycle, REST faults, rate windows, websocket plumbing."""

    name = "exchange"
    ws_prefix = ""  # path prefix the exchange's ws URL is served under
    order_path = ""  # regex of the order endpoint (POST places, GET looks up): ``net_fault`` targets it
    server_error_body: Any = None  # the exchange's body of an internal error (``order_5xx``)

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.engine = Engine()
        self.api_key = ""  # set by each exchange: what credentials() hands to ccxt
        self.secret = ""
        # Every exchange pushes the engine's events to its websocket subscribers.
        self.engine.order_listeners.append(self._on_order)
        self.engine.book_listeners.append(self._on_book)
        self.engine.trade_listeners.append(self._on_trade)
        self.faults: list[Fault] = []
        self.conns: list[WsConn] = []
        self.silent = False
        self.requests: list[tuple[str, str]] = []  # (method, path) of every REST request seen
        self.ws_messages: list[tuple[str, Any]] = []  # (path, parsed message) of every ws message received
        self._next_fault_id = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # ---- lifecycle
    @property
    def rest_url(self) -> str:
        """Base URL for ccxt REST (scheme + host + port)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base URL for ccxt.pro websockets."""
        return f"ws://127.0.0.1:{self.port}{self.ws_prefix}"

    def credentials(self) -> dict[str, str]:
        """The API credentials the server accepts, named as ccxt names them (apiKey, secret)."""
        return {"apiKey": self.api_key, "secret": self.secret}

    def _on_order(self, o: Order, f: Fill | None, exec_type: str) -> None:
        """An order changed (subclasses push it on their private stream)."""

    def _on_book(self, m: Market, levels: list[tuple[str, Decimal, Decimal]], first: int, last: int) -> None:
        """A book changed (subclasses push it on their public streams)."""

    def _on_trade(self, m: Market, tid: int, price: Decimal, qty: Decimal, taker: str, ts: int) -> None:
        """A trade printed (subclasses push it on their public streams)."""

    def routes(self, app: web.Application) -> None:
        """Subclasses add their REST and websocket routes."""
        raise NotImplementedError

    def start(self) -> ExchangeServer:
        """Start the server thread; returns once the port is bound."""
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-server", daemon=True)
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError(f"{self.name} server did not start")
        if self._start_error:
            raise self._start_error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported to start()
            self._start_error = e
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._shutdown())
        loop.close()

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", CONTROL_PATH + "{name}", self._control)
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        for c in list(self.conns):
            await self._close_conn(c, 1001)
        if self._runner:
            await self._runner.cleanup()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_default_executor()

    def stop(self) -> None:
        """Close every connection, release the port and join the thread."""
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def __enter__(self) -> ExchangeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def call_in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` in the server loop (directly if already there)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.current_thread() is self._thread:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def run_in_loop(self, coro: Any, timeout: float = 10) -> Any:
        """Run a coroutine in the server loop from the test thread and wait for it."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # ---- REST faults (test API)
    def fail_next(
        self,
        path: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next matching requests with ``status``/``body`` without processing them."""
        with self.lock:
            self.faults.append(Fault("respond", method, re.compile(path), times, status, body, headers or {}))

    def lose_next_answer(self, path: str, method: str | None = None, times: int = 1) -> None:
        """Process the next matching requests, then drop the connection before the answer is written."""
        with self.lock:
            self.faults.append(Fault("lose", method, re.compile(path), times))

    def delay_next(self, path: str, seconds: float, method: str | None = None, times: int = 1) -> None:
        """Process the next matching requests, then hold the answer ``seconds`` (a client timeout)."""
        with self.lock:
            self.faults.append(Fault("delay", method, re.compile(path), times, seconds=seconds))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.matches(method, path):
                    f.times -= 1
                    f.fired_at = time.time()
                    return f
        return None

    def rate_limit(self, request: web.Request) -> web.StreamResponse | None:
        """Count the request's weight; return the exchange's rate-limit answer if refused (subclasses)."""
        return None

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        """Add exchange headers (e.g. used weight) to every answer (subclasses)."""

    def fault_response(self, f: Fault) -> web.StreamResponse:
        """The answer of a ``respond`` fault."""
        body = f.body if isinstance(f.body, str) else json.dumps(f.body if f.body is not None else {})
        return web.Response(status=f.status, text=body, headers=f.headers, content_type="application/json")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket" or request.path.startswith(CONTROL_PATH):
            return await handler(request)
        with self.lock:
            self.requests.append((request.method, request.path))
        fault = self._take_fault(request.method, request.path)
        if fault is not None and fault.kind == "respond":
            resp = self.fault_response(fault)
            self.decorate(request, resp)
            return resp
        limited = self.rate_limit(request)
        if limited is not None:
            self.decorate(request, limited)
            return limited
        resp = await handler(request)
        self.decorate(request, resp)
        if resp.status < 400 and (fault is None or fault.kind != "lose"):
            self._answered(request.path)
        if fault is not None and fault.kind == "lose":
            # the order (or whatever) is done; the client never hears about it
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        return resp

    # ---- market scripting (test API, shared by every exchange)
    def seed_book(self, symbol: str, bids: list[tuple[Any, Any]], asks: list[tuple[Any, Any]]) -> int:
        """Replace the book of ``symbol`` (one diff deleting the old levels, one adding the new)."""
        with self.lock:
            m = self.engine.markets[symbol]
            gone = [("bid", p, ZERO) for p in m.bids] + [("ask", p, ZERO) for p in m.asks]
            m.bids.clear()
            m.asks.clear()
            if gone:
                self.engine._book_changed(m, gone)
            return self.engine.set_levels(symbol, bids, asks)

    def move_book(
        self, symbol: str, bids: Iterable[tuple[Any, Any]] = (), asks: Iterable[tuple[Any, Any]] = ()
    ) -> int:
        """Change some levels (quantity 0 deletes); one book update; returns the new update id."""
        with self.lock:
            return self.engine.set_levels(symbol, bids, asks)

    def trade(self, symbol: str, price: Any, qty: Any, taker_side: str = "buy") -> int:
        """A public trade by others (fills our crossing resting orders, triggers stops); returns its id."""
        with self.lock:
            return self.engine.public_trade(symbol, price, qty, taker_side)

    def fill(self, client_id: str, qty: Any, price: Any = None) -> Fill:
        """Fill part of our open order ``client_id`` (a scripted partial fill, maker)."""
        with self.lock:
            o = self.engine.by_client_id(client_id)
            if o is None:
                raise KeyError(f"no order with client id {client_id!r}")
            return self.engine.fill(o, qty, price)

    def deposit(self, asset: str, amount: Any) -> None:
        """Credit a free balance."""
        with self.lock:
            self.engine.deposit(asset, dec(amount))

    # ---- control (another process scripts the server over HTTP)
    def exchange_order_id(self, o: Order) -> str:
        """The id the exchange shows for an order (subclasses: Kraken txid, Coinbase UUID)."""
        return str(o.order_id)

    def exchange_trade_id(self, f: Fill) -> str:
        """The id the exchange shows for one of our trades."""
        return str(f.trade_id)

    def state_json(self) -> dict[str, Any]:
        """The exchange's own records: every order with its fills, and balances (for invariant checkers)."""
        with self.lock:
            return {
                "orders": [
                    {
                        "order_id": self.exchange_order_id(o),
                        "client_order_id": o.client_id,
                        "symbol": o.symbol,
                        "side": o.side,
                        "type": o.type,
                        "quantity": str(o.qty),
                        "price": None if o.price is None else str(o.price),
                        "status": o.status,
                        "filled": str(o.filled),
                        "cost": str(o.cost),
                        "fee": str(o.fee),
                        "fills": [self._fill_json(f) for f in o.fills],
                    }
                    for o in self.engine.orders
                ],
                "balances": {
                    a: {"free": str(f), "locked": str(lk)} for a, (f, lk) in self.engine.balances.items()
                },
            }

    def _fill_json(self, f: Fill) -> dict[str, Any]:
        return {
            "trade_id": self.exchange_trade_id(f),
            "order_id": self.exchange_order_id(f.order),
            "client_order_id": f.order.client_id,
            "price": str(f.price),
            "quantity": str(f.qty),
            "fee": str(f.fee),
            "fee_asset": f.fee_asset,
            "maker": f.maker,
            "time_ms": f.time_ms,
        }

    async def _control(self, request: web.Request) -> web.Response:
        """``GET /__control__/state``; ``POST /__control__/<method>`` with ``{"args": [...], "kwargs":
        {...}}``.
        """
        name = request.match_info["name"]
        if name == "state":
            return web.json_response(self.state_json())
        fn = getattr(self, name, None) if name in CONTROL_METHODS else None
        if fn is None:
            return web.json_response(
                {"error": f"unknown control {name!r}", "allowed": sorted(CONTROL_METHODS)}, status=404
            )
        body = await request.json() if request.can_read_body else {}
        try:
            # in a worker thread: some controls wait on this very loop (drop_websockets)
            result = await asyncio.get_running_loop().run_in_executor(
                None, lambda: fn(*body.get("args", []), **body.get("kwargs", {}))
            )
        except (TypeError, ValueError, KeyError, AssertionError, Reject) as e:
            return web.json_response({"error": f"{name}: {e!r}"}, status=400)
        if isinstance(result, Fill):
            result = self._fill_json(result)
        elif not isinstance(result, (int, float, str, bool, type(None), list, dict)):
            result = str(result)
        return web.json_response({"result": result})

    # ---- websockets
    async def ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        """Accept a websocket; answer protocol pings ourselves so a silent server can stop answering them."""
        ws = web.WebSocketResponse(autoping=False, max_msg_size=16 * 2**20, timeout=2.0)
        await ws.prepare(request)
        conn = WsConn(self, ws, request.path)
        conn.transport = request.transport
        with self.lock:
            self.conns.append(conn)
        self._stream_opened()
        writer = asyncio.ensure_future(conn.writer())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    if not self.silent:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    try:
                        parsed = json.loads(msg.data)
                    except ValueError:
                        continue
                    with self.lock:
                        self.ws_messages.append((request.path, parsed))
                    if self.silent:
                        continue
                    await self.on_ws_message(conn, parsed)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            conn.closed = True
            conn.queue.put_nowait(None)
            writer.cancel()
            with self.lock:
                if conn in self.conns:
                    self.conns.remove(conn)
        return ws

    async def on_ws_message(self, conn: WsConn, msg: Any) -> None:
        """Subclasses handle a parsed client message."""

    def subscribers(self, topic: str) -> list[WsConn]:
        """Open connections subscribed to ``topic``."""
        with self.lock:
            return [c for c in self.conns if topic in c.subs and not c.closed]

    async def _close_conn(self, c: WsConn, code: int) -> None:
        c.closed = True
        c.queue.put_nowait(None)
        try:
            await c.ws.close(code=code)
        except (ConnectionError, RuntimeError):
            pass

    def drop_websockets(self) -> int:
        """Drop every websocket mid-stream (TCP reset, no close frame: code 1006 at the client); how many."""

        async def _drop() -> int:
            conns = list(self.conns)
            for c in conns:
                c.closed = True
                c.queue.put_nowait(None)
                if c.transport is not None:
                    c.transport.abort()  # type: ignore[attr-defined]
            return len(conns)

        return int(self.run_in_loop(_drop()))

    def set_silent(self, silent: bool = True) -> None:
        """Stale stream: keep connections open but send nothing (no data, no pongs)."""
        self.silent = silent

    # ---- chaos hooks (test-exchange only: another process drives them over ``/__control__/``)
    def net_fault(self, kind: str, times: int = 1) -> int:
        """Inject one named network fault (:data:`NET_FAULTS`); returns its id for ``faults_info``.

        ``drop_streams`` resets every websocket now; the others arm a REST fault on the order endpoint:
        ``lose_order_answer`` (the order is placed, the answer lost), ``order_5xx`` (503, not processed),
        ``lose_lookup_answer`` / ``lookup_5xx`` the same on the order query.
        """
        if kind not in NET_FAULTS:
            raise ValueError(f"net fault {kind!r} is not one of {', '.join(NET_FAULTS)}")
        if kind != "drop_streams" and not self.order_path:
            raise ValueError(f"{self.name} server has no order_path: only drop_streams")
        with self.lock:
            self._next_fault_id += 1
            fid = self._next_fault_id
        if kind == "drop_streams":
            with self.lock:
                conns = sum(1 for c in self.conns if not c.closed)
                # fired before the drop: a reconnect racing this call still counts as the recovery
                self.faults.append(
                    Fault(
                        "drop",
                        None,
                        re.compile("$^"),
                        0,
                        name=kind,
                        fault_id=fid,
                        conns=conns,
                        fired_at=time.time(),
                    )
                )
            self.drop_websockets()
            return fid
        method = "POST" if kind.startswith(("lose_order", "order")) else "GET"
        path = re.compile(self.order_path)
        with self.lock:
            if kind.startswith("lose"):
                fault = Fault("lose", method, path, times, name=kind, fault_id=fid)
            else:
                fault = Fault(
                    "respond", method, path, times, 503, self.server_error_body, name=kind, fault_id=fid
                )
            self.faults.append(fault)
        return fid

    def faults_info(self) -> dict[str, Any]:
        """Named faults: armed (``pending``), ``fired_at``, ``recovered_at`` (wall-clock seconds)."""
        with self.lock:
            return {
                "exchange": self.name,
                "ws_connections": sum(1 for c in self.conns if not c.closed),
                "faults": [
                    {
                        "id": f.fault_id,
                        "kind": f.name,
                        "pending": f.times,
                        "fired_at": f.fired_at,
                        "recovered_at": f.recovered_at,
                    }
                    for f in self.faults
                    if f.name
                ],
            }

    def _answered(self, path: str) -> None:
        """A successful answer on ``path``: the fired faults of that path have recovered."""
        t = time.time()
        with self.lock:
            for f in self.faults:
                if f.name and f.recovered_at is None and f.fired_at is not None and f.path.search(path):
                    f.recovered_at = t

    def _stream_opened(self) -> None:
        """A websocket opened: drops whose connections are all back have recovered."""
        t = time.time()
        with self.lock:
            open_now = sum(1 for c in self.conns if not c.closed)
            for f in self.faults:
                back = open_now >= f.conns
                if f.kind == "drop" and f.recovered_at is None and f.fired_at is not None and back:
                    f.recovered_at = t

    def clear_faults(self) -> int:
        """Disarm every REST fault not yet fired; how many."""
        with self.lock:
            armed = [f for f in self.faults if f.times > 0]
            for f in armed:
                f.times = 0
            return len(armed)


def serve_main(factory: Callable[[int], ExchangeServer], argv: list[str] | None = None) -> None:
    """``python -m tests.exchanges.NAME --port P``: run a seeded server until SIGINT/SIGTERM.

    The first stdout line is JSON: ``exchange``, ``rest_url``, ``ws_url`` and the dummy credentials it
    accepts (named as ccxt names them).
    """
    ap = argparse.ArgumentParser(description="local exchange server (REST + websockets on 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    ap.add_argument(
        "--activity", type=float, default=0.0, help="move the books and trade this many times a second"
    )
    ap.add_argument("--seed", type=int, default=1, help="seed of --activity")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    server = factory(args.port)
    server.start()
    if args.activity > 0:
        from tests.exchanges.activity import Activity

        Activity(server, sorted(server.engine.markets), hz=args.activity, seed=args.seed).start()
    print(
        json.dumps(
            {
                "exchange": server.name,
                "rest_url": server.rest_url,
                "ws_url": server.ws_url,
                **server.credentials(),
            }
        ),
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        sys.stdout.flush()


# ---- test
# helpers


def run_async(coro_fn: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """Run one test coroutine on a fresh loop, time-boxed (a hung watch fails the test instead of hanging
    it).
    """
    return asyncio.run(asyncio.wait_for(coro_fn(), timeout_s))


async def until(check: Callable[[], Any], timeout_s: float = 15.0, what: str = "") -> Any:
    """Async poll until ``check()`` is truthy (event-driven wait, never a fixed sleep before an assert)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or check}: last={last!r}")
