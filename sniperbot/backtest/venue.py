"""The simulated venue of the backtester: orders, brackets and the fill rules, on bars.

Fill rules, applied when a bar is processed (before the strategy sees its close):

1. **At the open**, in submission order, every order active on this bar:

   * market: fills at the open, ``slippage`` worse for the taker (a buy pays
     ``open x (1 + slippage)``, a sell gets ``open x (1 - slippage)``), taker fee;
   * limit crossed by the open (a buy limit at or above the open): if it arrives on
     this bar it is marketable and takes the open (a better price than its limit),
     taker fee, no slippage; if it was already resting, the market went through it
     and it fills at its limit, maker fee;
   * stop already triggered at the open (gapped through: a buy stop at or below the
     open): fills at the open with slippage, taker fee.

   Then the brackets of the position, if the open is already beyond one of them:
   the stop-loss fills like a gapped stop, the take-profit (a resting limit) at its
   price.
2. **Inside the bar**, where the path between high and low is unknown: stops first
   (a buy stop triggers when ``high >= stop``, a sell stop when ``low <= stop``) and
   fill at the stop with slippage, taker fee; then limits, filled on touch (``low <=
   limit`` for a buy, ``high >= limit`` for a sell) at the limit, maker fee. Checking
   stops first is the pessimistic reading when a bar touches both a stop-loss and a
   take-profit. Brackets placed by an entry at this bar's open are checked against
   the same bar's range.

Orders become active ``latency`` after they were decided (see
:class:`~sniperbot.backtest.config.BacktestConfig`); brackets live at the venue and
act at once. Fees are ``fee x |quantity| x price``. Orders fill in full (no volume
model) and limit orders rest until filled (good till cancelled).

The same rules serve trade ticks (:mod:`sniperbot.backtest.ticks`): each trade is a
"bar" whose open, high and low are its price.

**Sizing at the fill** (``size_at="fill"``): a market order that brings the position to
a new target exposure ``t`` is re-sized at its fill price ``p``: the new position is
``t x sizer.quantity(p x (1 + taker fee), equity)`` with ``equity`` the account's value
at ``p`` after paying to close whatever the order closes, so a 99.99 % position and its
fee fit in the account. Capped by the risk limits the guard enforces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sniperbot.backtest.config import BacktestConfig
from sniperbot.backtest.ledger import QUANTITY_EPSILON, Ledger

__all__ = ["LIMIT", "MARKET", "STOP", "SimFill", "SimOrder", "SimVenue", "resize_quantity"]

MARKET, LIMIT, STOP = 0, 1, 2
KIND_NAMES = ("market", "limit", "stop")
NEVER = 1 << 62

#: ``size(bar, price, equity)``: quantity of a full position as the sizer says at that bar.
SizeFunction = Callable[[int, float, float], float]


def resize_quantity(
    target: float,
    position: float,
    cash: float,
    price: float,
    fee: float,
    size: SizeFunction,
    bar: int,
    max_position: float = math.inf,
    max_notional: float = math.inf,
) -> float:
    """Signed quantity taking ``position`` to ``target`` as sized at the fill ``price`` (module docstring)."""
    if target == 0.0:
        return -position
    equity = cash + position * price
    if position != 0.0 and (position > 0.0) != (target > 0.0):
        equity -= fee * abs(position) * price  # the closing part's fee is paid first
    desired = target * size(bar, price * (1.0 + fee), equity)
    if abs(desired) > max_position:
        desired = math.copysign(max_position, desired)
    quantity = desired - position
    if abs(quantity) * price > max_notional:
        quantity = math.copysign(max_notional / price, quantity)
    return quantity


class SimOrder:
    """An order at the simulated venue."""

    __slots__ = ("active_bar", "kind", "order_id", "price", "quantity", "ref", "side", "target")

    def __init__(
        self,
        order_id: str,
        side: float,
        quantity: float,
        kind: int,
        active_bar: int,
        price: float = math.nan,
        target: float | None = None,
        ref: Any = None,
    ) -> None:
        self.order_id = order_id
        #: +1.0 buy, -1.0 sell.
        self.side = side
        self.quantity = quantity
        self.kind = kind
        #: The first bar on which the order can fill.
        self.active_bar = active_bar
        #: Limit or stop price.
        self.price = price
        #: Target exposure to re-size to at the fill (None: fill ``quantity`` as is).
        self.target = target
        #: Whatever the engine needs to tie the order back to its intent.
        self.ref = ref

    def __repr__(self) -> str:
        side = "buy" if self.side > 0 else "sell"
        return f"SimOrder({self.order_id!r}, {side} {self.quantity} {KIND_NAMES[self.kind]} @{self.price})"


class SimFill:
    """A fill the venue booked: the order (None for a bracket), signed quantity, price, fee."""

    __slots__ = ("bar", "fee", "liquidity", "order", "order_id", "price", "quantity", "time_ns")

    def __init__(
        self,
        order: SimOrder | None,
        order_id: str,
        bar: int,
        time_ns: int,
        quantity: float,
        price: float,
        fee: float,
        liquidity: str,
    ) -> None:
        self.order = order
        self.order_id = order_id
        self.bar = bar
        self.time_ns = time_ns
        self.quantity = quantity
        self.price = price
        self.fee = fee
        self.liquidity = liquidity


class SimVenue:
    """Orders waiting to fill and the position's brackets, processed bar by bar."""

    def __init__(
        self,
        config: BacktestConfig,
        ledger: Ledger,
        open_: list[float],
        high: list[float],
        low: list[float],
        time_ns: list[int],
        size: SizeFunction | None = None,
    ) -> None:
        self.ledger = ledger
        self.open = open_
        self.high = high
        self.low = low
        self.time_ns = time_ns
        self.size = size
        self.taker_fee = config.taker_fee
        self.maker_fee = config.maker_fee
        self.slippage = config.slippage
        self.stop_loss = None if config.stop_loss_pct is None else config.stop_loss_pct / 100
        self.take_profit = None if config.take_profit_pct is None else config.take_profit_pct / 100
        self.max_position = math.inf if config.max_position is None else config.max_position
        self.max_notional = math.inf if config.max_order_notional is None else config.max_order_notional
        self.orders: list[SimOrder] = []
        #: Orders that ended without a fill: (order, reason).
        self.cancelled: list[tuple[SimOrder, str]] = []
        # Bracket levels of the open position (NaN: none).
        self.stop_price = math.nan
        self.limit_price = math.nan
        self._brackets = 0
        #: Whether the open position has a stop-loss or take-profit.
        self.has_brackets = False
        #: The earliest bar on which :meth:`process` can do anything (``NEVER``: nothing waits).
        self.next_bar = NEVER

    # -- orders -------------------------------------------------------------------------

    def submit(self, order: SimOrder) -> None:
        """Queue an order; it can fill from its ``active_bar`` on."""
        self.orders.append(order)
        if order.active_bar < self.next_bar:
            self.next_bar = order.active_bar

    def process(self, bar: int) -> list[SimFill]:
        """Fill what this bar fills (rules in the module docstring); returns the fills in order."""
        fills: list[SimFill] = []
        open_ = self.open[bar]
        orders = self.orders
        if orders:
            waiting: list[SimOrder] = []
            resting: list[SimOrder] = []
            for order in orders:
                if order.active_bar > bar:
                    waiting.append(order)
                elif order.kind == MARKET:
                    self._market(order, bar, open_, fills)
                elif not self._at_open(order, bar, open_, fills):
                    resting.append(order)
            orders = resting + waiting
        if self.has_brackets:
            self._brackets_at_open(bar, open_, fills)
        high, low = self.high[bar], self.low[bar]
        if self.has_brackets and not math.isnan(self.stop_price):
            self._bracket_stop_inside(bar, open_, high, low, fills)
        if orders:
            orders = [
                o for o in orders if o.active_bar > bar or not self._inside(o, bar, high, low, STOP, fills)
            ]
        if self.has_brackets and not math.isnan(self.limit_price):
            self._bracket_limit_inside(bar, high, low, fills)
        if orders:
            orders = [
                o for o in orders if o.active_bar > bar or not self._inside(o, bar, high, low, LIMIT, fills)
            ]
        self.orders = orders
        self._schedule(bar)
        return fills

    def close_position(self, bar: int, price: float) -> SimFill | None:
        """Close the whole position at ``price`` (the last close), taker fee, no slippage."""
        position = self.ledger.position
        if position == 0.0:
            return None
        quantity = -position
        fill = self._book(None, "close-at-end", bar, quantity, price, self.taker_fee * abs(quantity) * price)
        fill.liquidity = "taker"
        return fill

    # -- internals ------------------------------------------------------------------------

    def _schedule(self, bar: int) -> None:
        """Set :attr:`next_bar` from what is left."""
        if self.has_brackets or any(o.active_bar <= bar + 1 for o in self.orders):
            self.next_bar = bar + 1
        elif self.orders:
            self.next_bar = min(o.active_bar for o in self.orders)
        else:
            self.next_bar = NEVER

    def _book(
        self, order: SimOrder | None, order_id: str, bar: int, quantity: float, price: float, fee: float
    ) -> SimFill:
        """Book a fill in the ledger and keep the brackets in step with the position."""
        ledger = self.ledger
        before = ledger.position
        time_ns = self.time_ns[bar]
        ledger.fill(bar, time_ns, quantity, price, fee)
        if self.stop_loss is not None or self.take_profit is not None:
            after = ledger.position
            if after == 0.0:
                self.stop_price = self.limit_price = math.nan
            elif before == 0.0 or (before > 0.0) != (after > 0.0) or abs(after) > abs(before):
                # Opened, flipped or grew: brackets follow the new average entry price.
                entry = ledger.entry_price
                long = after > 0.0
                if self.stop_loss is not None:
                    self.stop_price = entry * (1.0 - self.stop_loss if long else 1.0 + self.stop_loss)
                if self.take_profit is not None:
                    self.limit_price = entry * (1.0 + self.take_profit if long else 1.0 - self.take_profit)
            self.has_brackets = after != 0.0
        return SimFill(order, order_id, bar, time_ns, quantity, price, fee, "taker")

    def _market(self, order: SimOrder, bar: int, open_: float, fills: list[SimFill]) -> None:
        """Fill a market order at the open with slippage, re-sized if it carries a target."""
        side = order.side
        price = open_ * (1.0 + self.slippage) if side > 0.0 else open_ * (1.0 - self.slippage)
        if order.target is None or self.size is None:
            quantity = side * order.quantity
        else:
            quantity = self._resize(order.target, bar, price)
            if abs(quantity) < QUANTITY_EPSILON or (quantity > 0.0) != (side > 0.0):
                self.cancelled.append((order, "nothing to trade at the fill"))
                return
        fills.append(
            self._book(order, order.order_id, bar, quantity, price, self.taker_fee * abs(quantity) * price)
        )

    def _resize(self, target: float, bar: int, price: float) -> float:
        """Signed quantity that takes the position to ``target`` as sized at ``price``."""
        assert self.size is not None
        ledger = self.ledger
        return resize_quantity(
            target,
            ledger.position,
            ledger.cash,
            price,
            self.taker_fee,
            self.size,
            bar,
            self.max_position,
            self.max_notional,
        )

    def _at_open(self, order: SimOrder, bar: int, open_: float, fills: list[SimFill]) -> bool:
        """Fill a limit or stop that the open has already crossed; True if it filled."""
        side = order.side
        fee, liquidity = self.taker_fee, "taker"
        if order.kind == LIMIT:
            if not (open_ <= order.price if side > 0.0 else open_ >= order.price):
                return False
            if order.active_bar == bar:
                price = open_  # marketable on arrival: takes the book at the open
            else:
                # A resting limit the market gapped through is filled at its price.
                price, fee, liquidity = order.price, self.maker_fee, "maker"
        else:
            # A buy stop triggers at or above its price: crossed when the open is at/above it.
            if (open_ < order.price) if side > 0.0 else (open_ > order.price):
                return False
            price = open_ * (1.0 + self.slippage) if side > 0.0 else open_ * (1.0 - self.slippage)
        quantity = side * order.quantity
        fill = self._book(order, order.order_id, bar, quantity, price, fee * order.quantity * price)
        fill.liquidity = liquidity
        fills.append(fill)
        return True

    def _inside(
        self, order: SimOrder, bar: int, high: float, low: float, kind: int, fills: list[SimFill]
    ) -> bool:
        """Fill a resting order of ``kind`` touched inside the bar; True if it filled."""
        if order.kind != kind:
            return False
        side = order.side
        level = order.price
        if kind == STOP:
            if not (high >= level if side > 0.0 else low <= level):
                return False
            price = level * (1.0 + self.slippage) if side > 0.0 else level * (1.0 - self.slippage)
            fee, liquidity = self.taker_fee, "taker"
        else:
            if not (low <= level if side > 0.0 else high >= level):
                return False
            price, fee, liquidity = level, self.maker_fee, "maker"
        quantity = side * order.quantity
        fill = self._book(order, order.order_id, bar, quantity, price, fee * order.quantity * price)
        fill.liquidity = liquidity
        fills.append(fill)
        return True

    def _bracket_id(self, kind: str) -> str:
        self._brackets += 1
        return f"{kind}-{self._brackets}"

    def _brackets_at_open(self, bar: int, open_: float, fills: list[SimFill]) -> None:
        """A bracket the open has already gone through: the stop at the open, the take-profit at its price."""
        position = self.ledger.position
        long = position > 0.0
        stop, limit = self.stop_price, self.limit_price
        if not math.isnan(stop) and (open_ <= stop if long else open_ >= stop):
            price = open_ * (1.0 - self.slippage) if long else open_ * (1.0 + self.slippage)
            order_id = self._bracket_id("stop-loss")
            fee, liquidity = self.taker_fee, "taker"
        elif not math.isnan(limit) and (open_ >= limit if long else open_ <= limit):
            price = limit
            order_id = self._bracket_id("take-profit")
            fee, liquidity = self.maker_fee, "maker"
        else:
            return
        quantity = -position
        fill = self._book(None, order_id, bar, quantity, price, fee * abs(quantity) * price)
        fill.liquidity = liquidity
        fills.append(fill)

    def _bracket_stop_inside(
        self, bar: int, open_: float, high: float, low: float, fills: list[SimFill]
    ) -> None:
        """The stop-loss, touched inside the bar: at the stop (or the open, if that is worse)."""
        position = self.ledger.position
        stop = self.stop_price
        if position > 0.0:
            if low > stop:
                return
            price = min(stop, open_) * (1.0 - self.slippage)
        else:
            if high < stop:
                return
            price = max(stop, open_) * (1.0 + self.slippage)
        quantity = -position
        order_id = self._bracket_id("stop-loss")
        fills.append(self._book(None, order_id, bar, quantity, price, self.taker_fee * abs(quantity) * price))

    def _bracket_limit_inside(self, bar: int, high: float, low: float, fills: list[SimFill]) -> None:
        """The take-profit, touched inside the bar: at its price, maker fee."""
        position = self.ledger.position
        level = self.limit_price
        if not (high >= level if position > 0.0 else low <= level):
            return
        quantity = -position
        order_id = self._bracket_id("take-profit")
        fill = self._book(None, order_id, bar, quantity, level, self.maker_fee * abs(quantity) * level)
        fill.liquidity = "maker"
        fills.append(fill)
