"""Pre-trade risk: every intent passes here before anything is sent to a venue.

Checks, in order, each with its machine-readable rejection reason:

1. ``invalid_quantity``: quantity not a positive finite number.
2. ``duplicate_intent``: an intent with this id is already approved and in flight.
3. ``halted``: trading state is HALTED; nothing passes, reductions included.
4. ``no_price``: no usable reference price (nor a limit price) to value the order.
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
from typing import Final

import msgspec

from sniperbot.messages import Fill, OrderIntent, OrderUpdate, RiskStatus
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


Instrument = tuple[str, str]  # (venue, symbol): the key of positions and exposure


class _Pending(msgspec.Struct):
    """An approved order's venue and symbol and the signed quantity it still has to fill."""

    venue: str
    symbol: str
    remaining: float


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
        self._pending[intent.intent_id] = _Pending(
            venue=intent.venue, symbol=intent.symbol, remaining=_signed(intent.side, intent.quantity)
        )
        return None

    def on_fill(self, fill: Fill) -> None:
        """Move filled quantity from pending into the position."""
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
        while self._approval_times and self._approval_times[0] <= now_ns - _WINDOW_NS:
            self._approval_times.popleft()
        if len(self._approval_times) >= self.limits.max_orders_per_second:
            return "max_order_rate"
        return None


def _valuation_price(intent: OrderIntent, reference_price: float | None) -> float | None:
    """Price to value the order at: the higher of reference and limit, never understating."""
    candidates = [
        p for p in (reference_price, intent.limit_price) if p is not None and p > 0 and math.isfinite(p)
    ]
    return max(candidates) if candidates else None
