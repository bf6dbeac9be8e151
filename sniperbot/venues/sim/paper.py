"""A paper venue: fills orders against the last quote, with fees, slippage and impact.

Execution model:

* **Market orders** fill immediately as taker against the quote's touch (ask for a buy,
  bid for a sell). Depth beyond the touch is a synthetic book: the touch holds the
  quoted size, and each further chunk of that same size sits one more spread away
  (a buy of 2.5x ``ask_size`` gets 1x at ``ask``, 1x at ``ask + spread`` and 0.5x at
  ``ask + 2 * spread``). The order gets one fill at that walk's volume-weighted price,
  then moved ``slippage_bps`` against the taker (up for buys, down for sells).
* **Limit orders** that are marketable on arrival fill the same way, in full, at a price
  never worse than the limit. Otherwise they rest and fill in full as maker, at the limit
  price, on the first later quote that crosses it (ask <= limit for a buy, bid >= limit for
  a sell). Resting orders fill in arrival order.
* **Fees** are ``notional * fee_bps / 1e4`` for taker and maker fills alike.
* Like a real exchange, a reused ``client_order_id`` is rejected
  (``duplicate_client_order_id``) without touching the original order, and an order for a
  symbol with no quote yet is rejected (``no_market``).
* **Held for the decision's book** (``hold_for_decision_book``, a replay's venue): a market
  order decided at market time ``t`` (:attr:`Order.decided_ts_ns`) that arrives while the
  venue's book is older than ``t`` is accepted and filled by the first quote at or after ``t``,
  not against the older book. In a replay the strategy decides on candle ``k``'s close when
  candle ``k + 1``'s first trade reaches it, and the order must fill at candle ``k + 1``'s open,
  whose quote went out on the bus first. The order path (direct unix sockets) can overtake the
  bus (ZeroMQ I/O threads) on a loaded machine; without this the order would fill at candle
  ``k``'s open and the replay would diverge from the backtest.
* Order types other than ``market`` and ``limit`` (``stop``) are rejected
  (``unsupported_order_type``): a paper venue that pretended to trigger stops would
  promise fills a live venue may not give.

Fill ids are deterministic, ``f"{client_order_id}-f{n}"`` with ``n`` counting from 1, so a
replayed order produces the same ids. :meth:`PaperVenue.ledger` is the venue's own record
(what it received, what it filled) for reconciliation against the journal.

This class is the matching engine only, in memory. The paper venue *actor*
(``sniperbot.venues.sim.gateway``) makes it durable: it keeps the authoritative record
in a :class:`~sniperbot.venues.sim.ledger.VenueLedger`, restores resting orders from it
with :meth:`PaperVenue.restore_resting` after a restart, and drops finished orders from
memory with :meth:`PaperVenue.forget` (constructed with ``keep_ledger=False``), so a
venue that runs for months does not grow.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from sniperbot.messages import Fill, Order, OrderStatus, OrderUpdate, Quote, update_of
from sniperbot.venues.base import DUPLICATE, UNSUPPORTED_ORDER_TYPE

Liquidity = Literal["maker", "taker"]
#: Order types this venue matches; anything else is rejected with UNSUPPORTED_ORDER_TYPE.
SUPPORTED_ORDER_TYPES = frozenset({"market", "limit"})


class PaperVenue:
    """Simulated exchange matching engine for one venue name."""

    def __init__(
        self,
        venue: str,
        fee_bps: float,
        slippage_bps: float,
        keep_ledger: bool = True,
        hold_for_decision_book: bool = False,
    ) -> None:
        if fee_bps < 0:
            raise ValueError(f"fee_bps must be >= 0, got {fee_bps}")
        if slippage_bps < 0:
            raise ValueError(f"slippage_bps must be >= 0, got {slippage_bps}")
        self.venue = venue
        self.fee_bps = fee_bps
        self.slippage_bps = slippage_bps
        self.keep_ledger = keep_ledger
        self.hold_for_decision_book = hold_for_decision_book
        self._held: dict[str, Order] = {}  # market orders waiting for their decision's book, in arrival order
        self._books: dict[str, Quote] = {}
        self._orders: dict[str, Order] = {}
        self._status: dict[str, OrderStatus] = {}
        self._resting: dict[str, Order] = {}  # insertion order is arrival order
        self._fill_counts: dict[str, int] = {}
        self._received: list[str] = []
        self._fills: list[Fill] = []

    def knows(self, client_order_id: str) -> bool:
        """Whether this venue ever received an order with this id."""
        return client_order_id in self._status

    def order_status(self, client_order_id: str) -> str | None:
        """Last status of an order (``accepted`` while it rests), or None if unknown."""
        return self._status.get(client_order_id)

    def open_orders(self) -> list[str]:
        """Client order ids of open orders (resting limits, then held market orders), in arrival order."""
        return [*self._resting, *self._held]

    def ledger(self) -> dict[str, Any]:
        """The venue's own record: ``received`` ids in arrival order and all ``fills``.

        A resent order whose id was already taken is not received a second time.
        """
        return {"received": list(self._received), "fills": list(self._fills)}

    def restore_resting(self, order: Order, fills_so_far: int = 0) -> None:
        """Put back a resting limit order after a restart (from the venue's durable ledger).

        ``fills_so_far`` keeps fill ids continuing where the ledger left off.
        """
        if order.order_type != "limit" or order.limit_price is None:
            raise ValueError(f"only limit orders rest; {order.client_order_id} is {order.order_type}")
        cid = order.client_order_id
        self._orders[cid] = order
        self._status[cid] = "accepted"
        self._resting[cid] = order
        self._fill_counts[cid] = fills_so_far

    def forget(self, client_order_id: str) -> None:
        """Drop a finished order from memory (its durable record lives elsewhere); keeps resting ones."""
        if client_order_id in self._resting or client_order_id in self._held:
            return
        self._orders.pop(client_order_id, None)
        self._status.pop(client_order_id, None)
        self._fill_counts.pop(client_order_id, None)

    def on_quote(self, q: Quote) -> list[OrderUpdate | Fill]:
        """Update the book and fill resting limit orders the new quote crosses."""
        if q.venue != self.venue:
            return []
        self._books[q.symbol] = q
        events: list[OrderUpdate | Fill] = []
        for client_order_id, order in list(self._held.items()):
            if order.symbol == q.symbol and order.decided_ts_ns <= q.ts_ns:
                del self._held[client_order_id]
                events += self._execute(order, self._taker_price(order, q), "taker", q.ts_ns)
        for client_order_id, order in list(self._resting.items()):
            if order.symbol != q.symbol or order.limit_price is None:
                continue
            limit = order.limit_price
            if (q.ask <= limit) if order.side == "buy" else (q.bid >= limit):
                del self._resting[client_order_id]
                events += self._execute(order, limit, "maker", q.ts_ns)
        return events

    def submit(self, order: Order, now_ns: int) -> list[OrderUpdate | Fill]:
        """Receive an order: reject it, or accept it and fill or rest it."""
        if order.client_order_id in self._status:
            return [self._update(order, "rejected", now_ns, DUPLICATE)]
        if self.keep_ledger:
            self._received.append(order.client_order_id)
        self._orders[order.client_order_id] = order
        reason = self._rejection(order)
        if reason is not None:
            self._status[order.client_order_id] = "rejected"
            return [self._update(order, "rejected", now_ns, reason)]
        self._status[order.client_order_id] = "accepted"
        events: list[OrderUpdate | Fill] = [self._update(order, "accepted", now_ns)]
        book = self._books[order.symbol]
        if order.order_type == "market":
            if self.hold_for_decision_book and order.decided_ts_ns > book.ts_ns:
                self._held[order.client_order_id] = order  # filled by on_quote (module docstring)
                return events
            return events + self._execute(order, self._taker_price(order, book), "taker", now_ns)
        limit = order.limit_price
        assert limit is not None  # a limit order without a valid price was rejected above
        buying = order.side == "buy"
        if not (book.ask <= limit if buying else book.bid >= limit):
            self._resting[order.client_order_id] = order
            return events
        taker = self._taker_price(order, book)
        capped = min(taker, limit) if buying else max(taker, limit)
        return events + self._execute(order, capped, "taker", now_ns)

    def cancel(self, client_order_id: str, now_ns: int, reason: str = "") -> list[OrderUpdate]:
        """Cancel a resting order; returns nothing if it is unknown or no longer open.

        ``reason`` (the requester's, e.g. ``breaker venue:sim: ...``) is kept on the update
        so the journal says why the order was cancelled.
        A failed cancel is not reported as ``rejected``: that status means the order was
        refused, and consumers would wrongly release an order that in fact filled.
        """
        order = self._resting.pop(client_order_id, None) or self._held.pop(client_order_id, None)
        if order is None:
            return []
        self._status[client_order_id] = "cancelled"
        return [self._update(order, "cancelled", now_ns, reason)]

    def _rejection(self, order: Order) -> str | None:
        """Why the venue refuses this order outright, or None."""
        if order.venue != self.venue:
            return "wrong_venue"
        if order.order_type not in SUPPORTED_ORDER_TYPES:
            return UNSUPPORTED_ORDER_TYPE
        if not (order.quantity > 0 and math.isfinite(order.quantity)):
            return "invalid_quantity"
        if order.order_type == "limit" and not (
            order.limit_price is not None and order.limit_price > 0 and math.isfinite(order.limit_price)
        ):
            return "invalid_limit_price"
        if order.symbol not in self._books:
            return "no_market"
        return None

    def _taker_price(self, order: Order, book: Quote) -> float:
        """Volume-weighted price of walking the synthetic book, plus slippage."""
        spread = max(book.ask - book.bid, 0.0)
        if order.side == "buy":
            touch, level_size, step = book.ask, book.ask_size, spread
        else:
            touch, level_size, step = book.bid, book.bid_size, -spread
        quantity = order.quantity
        if level_size <= 0:
            # A quote without size says nothing about depth; take it all at the touch.
            level_size = quantity
        full_levels = math.floor(quantity / level_size)
        remainder = quantity - full_levels * level_size
        # Sum over full levels i = 0..n-1 of size * (touch + i * step), in closed form so
        # a huge order costs no loop.
        cost = level_size * (full_levels * touch + step * full_levels * (full_levels - 1) / 2)
        cost += remainder * (touch + full_levels * step)
        vwap = cost / quantity
        slip = self.slippage_bps / 1e4
        return vwap * (1.0 + slip) if order.side == "buy" else vwap * (1.0 - slip)

    def _execute(
        self, order: Order, price: float, liquidity: Liquidity, ts_ns: int
    ) -> list[OrderUpdate | Fill]:
        """Fill the whole order at ``price``, then report it filled."""
        n = self._fill_counts.get(order.client_order_id, 0) + 1
        self._fill_counts[order.client_order_id] = n
        fill = Fill(
            fill_id=f"{order.client_order_id}-f{n}",
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            venue=self.venue,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            price=price,
            fee=order.quantity * price * self.fee_bps / 1e4,
            liquidity=liquidity,
            ts_ns=ts_ns,
            trade_id=f"{order.client_order_id}-f{n}",  # the paper venue's own execution id
        )
        if self.keep_ledger:
            self._fills.append(fill)
        self._status[order.client_order_id] = "filled"
        return [fill, self._update(order, "filled", ts_ns)]

    def _update(self, order: Order, status: OrderStatus, ts_ns: int, reason: str = "") -> OrderUpdate:
        """An order update for ``order`` from this venue."""
        # The paper venue keys its orders by our client order id: that is its order id.
        exchange_order_id = "" if status == "rejected" else order.client_order_id
        return update_of(order, status, reason, exchange_order_id, ts_ns)
