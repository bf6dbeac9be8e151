"""Pre-trade risk: every intent passes here before anything is sent to a venue.

Checks, in order, each with its machine-readable rejection reason:

1. ``invalid_quantity``: quantity not a positive finite number.
2. ``duplicate_intent``: an intent with this id is already approved and in flight.
3. ``halted``: trading state is HALTED; nothing passes, reductions included.
4. ``no_price``: no usable reference price (nor a limit price) to value the order.
4b. The venue's market rules (:class:`~sniperbot.messages.MarketRules`, published by live feeds; a
   venue without rules, like the simulated one, skips these), each reason followed by ``: `` and the
   figures (``below_min_notional: 0.0001 x 25000 = 2.5 < 5``), so ``reason.split(":")[0]`` is the code:
   ``below_min_amount`` (below the exchange's minimum quantity, or below one lot step),
   ``lot_size`` (not a whole number of lot steps), ``above_max_amount``, and ``below_min_notional``
   (quantity x price below the minimum order value; valued at the limit price for a limit order, the
   reference price otherwise, as the exchange values it). Lot size decision: :meth:`RiskGuard.conform`
   rounds a quantity *down* to the lot step before the check (a strategy's 0.123456789 becomes 0.12345,
   never more than it asked for), and the risk guard actor sends the rounded quantity; only a quantity
   that rounds down to nothing is refused (``below_min_amount``). ``lot_size`` is what a caller that
   did not conform first gets. Prices are not rounded here: the gateway rounds them to the tick.
5. ``reducing_only``: state is REDUCING (or the intent is flagged ``reduce_only``) and the
   order would not shrink the absolute exposure without flipping it.
5b. ``stale_prices``: the intent's venue feed says its prices are stale (``FeedStatus.stale``, no
   websocket data for its ``stale_after_s``) and the order would not shrink the exposure. Reductions
   still pass: cutting risk on old prices beats holding it.
6. ``max_order_notional``: quantity x price above the per-order limit.
7. ``max_position``: absolute exposure after the order above the per-symbol limit. An
   order that reduces exposure always passes this check, so a book above a lowered
   limit can still be cut.
8. ``max_order_rate``: already as many approvals as ``max_orders_per_second`` in the
   sliding one-second window ``(now - 1 s, now]``. Only approved orders count.
9. Spend caps, for buys that open or grow a position (what a sniper spends on new tokens), each
   off at 0, each reason followed by ``: `` and the figures: ``max_spend_symbol`` (quote spent on
   one ``(venue, symbol)`` since 00:00 UTC, filled plus approved-and-unfilled, plus this order,
   above ``max_spend_per_symbol``), ``max_spend_day`` (the same summed over every instrument, above
   ``max_spend_per_day``). Spend is the fills' ``quantity x price`` (fees not included), and for an
   unfilled order its quantity at the valuation price of its approval; a rejected or cancelled
   order spends nothing. ``max_open_positions``: an order that would open exposure on one more
   instrument while ``max_open_positions`` instruments already have exposure (position or pending).
   After a restart the day's spend is rebuilt from the journal's fills (:meth:`RiskGuard.restore_spend`).

Exposure is position plus pending, where pending is approved-but-unfilled quantity.
Pending is keyed by ``client_order_id``; in this system the executor uses the intent's
``intent_id`` as the ``client_order_id``, so fills and order updates find their intent.
Positions and pending quantities are keyed by ``(venue, symbol)``: BTC/USDT on two venues
is two positions, each checked against the symbol's limit (``position_limits`` are by
symbol name). Decision: a per-venue limit, since each venue's exposure is settled,
margined and liquidated on its own; a desk that wants a cross-venue cap sets the
per-symbol limit to its share.
"""

from __future__ import annotations

import math
from collections import deque
from decimal import ROUND_FLOOR, Decimal
from typing import Final

import msgspec

from sniperbot.messages import Fill, MarketRules, OrderIntent, OrderUpdate, RiskStatus
from sniperbot.messages.control import TRADING_STATES, TradingState

_WINDOW_NS: Final = 1_000_000_000
_QUANTITY_EPSILON: Final = 1e-12


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Hard limits the guard enforces on every intent."""

    max_order_notional: float
    max_position: float
    position_limits: dict[str, float] = {}  # per-symbol overrides of max_position

    def position_limit(self, symbol: str) -> float:
        """The absolute position limit of ``symbol``."""
        return self.position_limits.get(symbol, self.max_position)

    max_orders_per_second: float
    max_spend_per_symbol: float = 0.0  # quote per (venue, symbol) per UTC day; 0 = off
    max_spend_per_day: float = 0.0  # quote over every instrument per UTC day; 0 = off
    max_open_positions: int = 0  # instruments with exposure at once; 0 = off


_DAY_NS: Final = 86_400 * 1_000_000_000

Instrument = tuple[str, str]  # (venue, symbol): the key of positions and exposure


class _Pending(msgspec.Struct):
    """An approved order's venue and symbol and the signed quantity it still has to fill."""

    venue: str
    symbol: str
    remaining: float
    price: float = 0.0  # valuation price at approval: what an unfilled buy will spend per unit


def _signed(side: str, quantity: float) -> float:
    """Quantity with the sign of its side: buys positive, sells negative."""
    return quantity if side == "buy" else -quantity


def _reduces(exposure: float, after: float) -> bool:
    """Whether moving from ``exposure`` to ``after`` shrinks it without flipping sides."""
    return abs(after) < abs(exposure) and after * exposure >= 0


class RiskGuard:
    """Approves or rejects intents against limits, the trading state and live exposure."""

    def __init__(self, limits: RiskLimits, state: TradingState = "ACTIVE") -> None:
        self.limits = limits
        self._state: TradingState = "ACTIVE"
        self.set_state(state)
        self._positions: dict[Instrument, float] = {}
        self._pending: dict[str, _Pending] = {}
        self._approval_times: deque[int] = deque()
        self._approved = 0
        self._rejected = 0
        self._stale_venues: set[str] = set()
        self._rules: dict[Instrument, MarketRules] = {}
        self._spend_day = -1  # the UTC day (days since the epoch) that _spent counts
        self._spent: dict[Instrument, float] = {}  # quote spent by filled buys on _spend_day

    @property
    def state(self) -> TradingState:
        """Current trading state."""
        return self._state

    @property
    def positions(self) -> dict[Instrument, float]:
        """Filled signed position per ``(venue, symbol)`` (a copy)."""
        return dict(self._positions)

    @property
    def approved(self) -> int:
        """Number of intents approved since start."""
        return self._approved

    @property
    def rejected(self) -> int:
        """Number of intents rejected since start."""
        return self._rejected

    def pending(self, venue: str, symbol: str) -> float:
        """Signed approved-but-unfilled quantity for ``symbol`` on ``venue``."""
        return sum(p.remaining for p in self._pending.values() if (p.venue, p.symbol) == (venue, symbol))

    def exposure(self, venue: str, symbol: str) -> float:
        """Position plus pending for ``symbol`` on ``venue``: what it will be if everything fills."""
        return self._positions.get((venue, symbol), 0.0) + self.pending(venue, symbol)

    def set_state(self, state: str) -> None:
        """Switch trading state (operator command); refuses unknown states."""
        if state not in TRADING_STATES:
            raise ValueError(f"state must be one of {TRADING_STATES}, got {state!r}")
        self._state = state  # type: ignore[assignment]

    def set_prices_stale(self, venue: str, stale: bool) -> None:
        """Record whether ``venue``'s prices are stale (its feed's ``FeedStatus``)."""
        if stale:
            self._stale_venues.add(venue)
        else:
            self._stale_venues.discard(venue)

    def set_market_rules(self, rules: MarketRules) -> None:
        """Record a venue's trading rules for one symbol (the latest the feed published wins)."""
        self._rules[(rules.venue, rules.symbol)] = rules

    def market_rules(self, venue: str, symbol: str) -> MarketRules | None:
        """The trading rules known for ``symbol`` on ``venue``, or None."""
        return self._rules.get((venue, symbol))

    def conform(self, intent: OrderIntent) -> OrderIntent:
        """The intent with its quantity rounded down to the venue's lot step (unchanged without rules).

        A quantity that would round down to nothing is left as it is, for :meth:`check` to refuse with
        its figures (``below_min_amount``).
        """
        rules = self._rules.get((intent.venue, intent.symbol))
        if rules is None or not rules.amount_step > 0:
            return intent
        if not (intent.quantity > 0 and math.isfinite(intent.quantity)):
            return intent
        rounded = round_down_to_step(intent.quantity, rules.amount_step)
        if rounded <= 0 or rounded == intent.quantity:
            return intent
        return msgspec.structs.replace(intent, quantity=rounded)

    def restore_spend(self, fills: list[Fill], now_ns: int) -> None:
        """Rebuild today's (UTC) spend from the journal's fills after a restart."""
        self._spend_day = now_ns // _DAY_NS
        self._spent = {}
        for fill in fills:
            self._count_spend(fill)

    def restore_spend_totals(self, day: int, spent: dict[Instrument, float]) -> None:
        """Set the spend of ``day`` (UTC days since the epoch) as the journal's aggregates have it
        (what :meth:`restore_spend` rebuilds from every fill, read in O(instruments))."""
        self._spend_day = day
        self._spent = dict(spent)

    def spent(self, venue: str, symbol: str) -> float:
        """Quote spent today on ``symbol`` at ``venue``: filled buys plus approved, unfilled buys."""
        return self._spent.get((venue, symbol), 0.0) + sum(
            p.remaining * p.price
            for p in self._pending.values()
            if (p.venue, p.symbol) == (venue, symbol) and p.remaining > 0
        )

    def _count_spend(self, fill: Fill) -> None:
        if fill.ts_ns // _DAY_NS > self._spend_day:
            self._roll_day(fill.ts_ns)  # the first fill of a new day: yesterday's spend is done
        if fill.side == "buy" and fill.ts_ns // _DAY_NS == self._spend_day:
            key = (fill.venue, fill.symbol)
            self._spent[key] = self._spent.get(key, 0.0) + fill.quantity * fill.price

    def _roll_day(self, now_ns: int) -> None:
        day = now_ns // _DAY_NS
        if day != self._spend_day:
            self._spend_day = day
            self._spent = {}

    def _spend_rule_broken(self, intent: OrderIntent, price: float, exposure: float) -> str | None:
        limits = self.limits
        if limits.max_open_positions and abs(exposure) < _QUANTITY_EPSILON:
            instruments = set(self._positions) | {(p.venue, p.symbol) for p in self._pending.values()}
            open_now = sum(1 for v, s in instruments if abs(self.exposure(v, s)) >= _QUANTITY_EPSILON)
            if open_now >= limits.max_open_positions:
                return f"max_open_positions: {open_now} open >= {limits.max_open_positions}"
        if intent.side != "buy" or not (limits.max_spend_per_symbol or limits.max_spend_per_day):
            return None
        cost = intent.quantity * price
        spent = self.spent(intent.venue, intent.symbol)
        if limits.max_spend_per_symbol and spent + cost > limits.max_spend_per_symbol:
            return (
                f"max_spend_symbol: {_fmt(spent)} spent + {_fmt(cost)} > {_fmt(limits.max_spend_per_symbol)}"
            )
        if limits.max_spend_per_day:
            instruments = set(self._spent) | {(p.venue, p.symbol) for p in self._pending.values()}
            total = sum(self.spent(v, s) for v, s in instruments)
            if total + cost > limits.max_spend_per_day:
                return f"max_spend_day: {_fmt(total)} spent + {_fmt(cost)} > {_fmt(limits.max_spend_per_day)}"
        return None

    def restore_positions(self, positions: dict[Instrument, float]) -> None:
        """Replace positions after a restart (from the journal); forgets pending orders."""
        self._positions = {s: q for s, q in positions.items() if q != 0.0}
        self._pending.clear()

    def status(self, ts_ns: int) -> RiskStatus:
        """The guard's state and counters as a message."""
        return RiskStatus(
            trading_state=self._state,
            approved=self._approved,
            rejected=self._rejected,
            ts_ns=ts_ns,
        )

    def check(self, intent: OrderIntent, reference_price: float | None, now_ns: int) -> str | None:
        """Approve (None, and record as pending) or reject with a short reason."""
        reason = self._reason(intent, reference_price, now_ns)
        if reason is not None:
            self._rejected += 1
            return reason
        self._approved += 1
        self._approval_times.append(now_ns)
        price = _valuation_price(intent, reference_price) or 0.0
        self._pending[intent.intent_id] = _Pending(
            venue=intent.venue,
            symbol=intent.symbol,
            remaining=_signed(intent.side, intent.quantity),
            price=price,
        )
        return None

    def on_fill(self, fill: Fill) -> None:
        """Move filled quantity from pending into the position."""
        self._count_spend(fill)
        signed = _signed(fill.side, fill.quantity)
        key = (fill.venue, fill.symbol)
        position = self._positions.get(key, 0.0) + signed
        if abs(position) < _QUANTITY_EPSILON:
            self._positions.pop(key, None)
        else:
            self._positions[key] = position
        pending = self._pending.get(fill.client_order_id)
        if pending is None:
            return
        remaining = pending.remaining - signed
        # An over-fill is in the position already; it must not turn pending around.
        if abs(remaining) < _QUANTITY_EPSILON or remaining * pending.remaining < 0:
            del self._pending[fill.client_order_id]
        else:
            pending.remaining = remaining

    def on_order_update(self, update: OrderUpdate) -> None:
        """Release pending quantity of orders that are done (rejected, cancelled, filled)."""
        if update.status in ("rejected", "cancelled", "filled"):
            self._pending.pop(update.client_order_id, None)

    def _reason(self, intent: OrderIntent, reference_price: float | None, now_ns: int) -> str | None:
        """The first rule the intent breaks, or None."""
        if not (intent.quantity > 0 and math.isfinite(intent.quantity)):
            return "invalid_quantity"
        if intent.intent_id in self._pending:
            return "duplicate_intent"
        if self._state == "HALTED":
            return "halted"
        price = _valuation_price(intent, reference_price)
        if price is None:
            return "no_price"
        rules = self._rules.get((intent.venue, intent.symbol))
        if rules is not None:
            broken = _rule_broken(intent, rules, reference_price)
            if broken is not None:
                return broken
        exposure = self.exposure(intent.venue, intent.symbol)
        after = exposure + _signed(intent.side, intent.quantity)
        reduces = _reduces(exposure, after)
        if (self._state == "REDUCING" or intent.reduce_only) and not reduces:
            return "reducing_only"
        if intent.venue in self._stale_venues and not reduces:
            return "stale_prices"
        if intent.quantity * price > self.limits.max_order_notional:
            return "max_order_notional"
        if abs(after) > self.limits.position_limit(intent.symbol) and not reduces:
            return "max_position"
        if not reduces:
            self._roll_day(now_ns)
            broken = self._spend_rule_broken(intent, price, exposure)
            if broken is not None:
                return broken
        while self._approval_times and self._approval_times[0] <= now_ns - _WINDOW_NS:
            self._approval_times.popleft()
        if len(self._approval_times) >= self.limits.max_orders_per_second:
            return "max_order_rate"
        return None


def round_down_to_step(quantity: float, step: float) -> float:
    """``quantity`` rounded down to a whole number of ``step`` (decimal arithmetic: 0.3 / 0.1 is 3)."""
    steps = (Decimal(repr(quantity)) / Decimal(repr(step))).to_integral_value(ROUND_FLOOR)
    return float(steps * Decimal(repr(step)))


def _fmt(x: float) -> str:
    """A figure for a rejection text: short, exact enough to compare with the exchange's rule."""
    return f"{x:.10g}"


def _rule_broken(intent: OrderIntent, rules: MarketRules, reference_price: float | None) -> str | None:
    """The first market rule the intent breaks (reason and figures), or None."""
    quantity = intent.quantity
    step = rules.amount_step
    minimum = max(rules.min_amount, step)
    if quantity < minimum and not math.isclose(quantity, minimum, rel_tol=1e-9):
        return f"below_min_amount: {_fmt(quantity)} < {_fmt(minimum)}"
    if step > 0 and round_down_to_step(quantity, step) != quantity:
        return f"lot_size: {_fmt(quantity)} is not a multiple of {_fmt(step)}"
    if rules.max_amount is not None and quantity > rules.max_amount:
        return f"above_max_amount: {_fmt(quantity)} > {_fmt(rules.max_amount)}"
    if rules.min_notional > 0:
        # The exchange values a limit order at its limit price, a market order at the market.
        price = intent.limit_price if intent.limit_price is not None else reference_price
        if price is None or not (price > 0 and math.isfinite(price)):
            price = _valuation_price(intent, reference_price)
        assert price is not None  # checked by the caller (no_price)
        notional = quantity * price
        if notional < rules.min_notional and not math.isclose(notional, rules.min_notional, rel_tol=1e-9):
            return (
                f"below_min_notional: {_fmt(quantity)} x {_fmt(price)} = {_fmt(notional)}"
                f" < {_fmt(rules.min_notional)}"
            )
    return None


def _valuation_price(intent: OrderIntent, reference_price: float | None) -> float | None:
    """Price to value the order at: the higher of reference and limit, never understating."""
    candidates = [
        p for p in (reference_price, intent.limit_price) if p is not None and p > 0 and math.isfinite(p)
    ]
    return max(candidates) if candidates else None
