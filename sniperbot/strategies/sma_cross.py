"""Simple moving-average crossover: long when the fast SMA crosses above the slow one.

Signals are evaluated on bar closes only. A cross is strict: the fast SMA must go from
at or below the slow SMA on the previous bar to above it on this bar (golden cross, target
long ``quantity``), or from at or above to below (death cross, target flat, or short
``quantity`` when ``allow_short``). SMAs that differ by less than one part in 1e12 count
as equal, so float noise on a flat market cannot fake a cross.

On a cross the strategy sends one market intent for ``target - (position + pending)``,
where pending is what its in-flight intents still have to fill. It does not retry between
crosses: an intent the risk guard rejects leaves the strategy off target until the next
cross, rather than producing one rejected intent per bar.

Fills and order updates are matched to intents by ``client_order_id``, which in this
system equals the ``intent_id``.
"""

from __future__ import annotations

import math
from collections import deque

from sniperbot.messages import Bar, Fill, OrderIntent, OrderUpdate

# Quantities closer than this are the same position (float dust from partial fills).
_QUANTITY_EPSILON = 1e-12
_SMA_RELATIVE_TOLERANCE = 1e-12


class _StreamingSma:
    """Mean of the last ``length`` values in O(1) per value."""

    def __init__(self, length: int) -> None:
        self.length = length
        self._window: deque[float] = deque(maxlen=length)
        self._sum = 0.0
        self._since_resync = 0

    def push(self, value: float) -> None:
        """Add a value, dropping the oldest once the window is full."""
        if len(self._window) == self.length:
            self._sum -= self._window[0]
        self._window.append(value)
        self._sum += value
        self._since_resync += 1
        # A running sum drifts by rounding; an exact re-sum once per window keeps it
        # exact-ish at amortised O(1).
        if self._since_resync >= self.length:
            self._sum = math.fsum(self._window)
            self._since_resync = 0

    @property
    def ready(self) -> bool:
        """Whether the window is full."""
        return len(self._window) == self.length

    @property
    def value(self) -> float:
        """Current mean of the window."""
        return self._sum / len(self._window)


def _compare(fast: float, slow: float) -> int:
    """Sign of ``fast - slow``, with near-equal values treated as equal."""
    if math.isclose(fast, slow, rel_tol=_SMA_RELATIVE_TOLERANCE, abs_tol=0.0):
        return 0
    return 1 if fast > slow else -1


class SmaCross:
    """Fast/slow SMA crossover on bar closes for one symbol, trading a fixed quantity."""

    def __init__(
        self,
        strategy_id: str,
        venue: str,
        symbol: str,
        fast: int,
        slow: int,
        quantity: float,
        allow_short: bool = False,
        *,
        next_intent_seq: int = 1,
    ) -> None:
        if fast < 1:
            raise ValueError(f"fast must be >= 1, got {fast}")
        if slow <= fast:
            raise ValueError(f"slow must be > fast ({fast}), got {slow}")
        if not quantity > 0 or not math.isfinite(quantity):
            raise ValueError(f"quantity must be a positive number, got {quantity}")
        self.strategy_id = strategy_id
        self.venue = venue
        self.symbol = symbol
        self.quantity = quantity
        self.allow_short = allow_short
        self._fast = _StreamingSma(fast)
        self._slow = _StreamingSma(slow)
        self._previous_relation: int | None = None
        self._target: float | None = None
        self._position = 0.0
        # intent_id -> signed quantity still to fill
        self._pending: dict[str, float] = {}
        if next_intent_seq < 1:
            raise ValueError(f"next_intent_seq must be >= 1, got {next_intent_seq}")
        self._next_intent_seq = next_intent_seq

    @property
    def position(self) -> float:
        """Signed quantity this strategy holds, from its own fills."""
        return self._position

    @property
    def next_intent_seq(self) -> int:
        """Sequence number the next intent will carry."""
        return self._next_intent_seq

    @property
    def pending(self) -> float:
        """Signed quantity of this strategy's intents still in flight."""
        return sum(self._pending.values())

    @property
    def target(self) -> float | None:
        """Position the last cross asked for; None before the first cross."""
        return self._target

    def restore(self, position: float, next_intent_seq: int) -> None:
        """Resume after a restart from the journaled position and intent sequence.

        Nothing is considered in flight and no target is assumed: the restored position
        is held until the next cross.
        """
        if next_intent_seq < 1:
            raise ValueError(f"next_intent_seq must be >= 1, got {next_intent_seq}")
        self._position = position
        self._next_intent_seq = next_intent_seq
        self._pending.clear()
        self._target = None

    def on_bar(self, bar: Bar) -> list[OrderIntent]:
        """Update the SMAs with the bar's close; on a cross, return the intent to reach target."""
        if bar.venue != self.venue or bar.symbol != self.symbol:
            return []
        self._fast.push(bar.close)
        self._slow.push(bar.close)
        if not self._slow.ready:
            return []
        relation = _compare(self._fast.value, self._slow.value)
        previous, self._previous_relation = self._previous_relation, relation
        if previous is None:
            return []
        if previous <= 0 < relation:
            self._target = self.quantity
        elif previous >= 0 > relation:
            self._target = -self.quantity if self.allow_short else 0.0
        else:
            return []
        return self._intents_to_target(bar.start_ns + round(bar.interval_s * 1e9))

    def on_fill(self, fill: Fill) -> list[OrderIntent]:
        """Book one of this strategy's fills; returns no intents (fills never trigger trades)."""
        if fill.strategy_id != self.strategy_id or fill.symbol != self.symbol:
            return []
        signed = fill.quantity if fill.side == "buy" else -fill.quantity
        self._position += signed
        if abs(self._position) < _QUANTITY_EPSILON:
            self._position = 0.0
        outstanding = self._pending.get(fill.client_order_id)
        if outstanding is not None:
            remaining = outstanding - signed
            # An over-fill is booked in the position but must not turn pending around.
            if abs(remaining) < _QUANTITY_EPSILON or remaining * outstanding < 0:
                del self._pending[fill.client_order_id]
            else:
                self._pending[fill.client_order_id] = remaining
        return []

    def on_order_update(self, update: OrderUpdate) -> None:
        """Stop counting an intent as in flight once it is rejected, cancelled or filled."""
        if update.strategy_id != self.strategy_id:
            return
        if update.status in ("rejected", "cancelled", "filled"):
            self._pending.pop(update.client_order_id, None)

    def _intents_to_target(self, ts_ns: int) -> list[OrderIntent]:
        """One market intent for the gap between target and position plus pending."""
        assert self._target is not None
        exposure = self._position + self.pending
        gap = self._target - exposure
        if abs(gap) < _QUANTITY_EPSILON:
            return []
        after = exposure + gap
        reduces = abs(after) < abs(exposure) and after * exposure >= 0
        seq = self._next_intent_seq
        self._next_intent_seq += 1
        intent = OrderIntent(
            intent_id=f"{self.strategy_id}-{seq}",
            strategy_id=self.strategy_id,
            intent_seq=seq,
            venue=self.venue,
            symbol=self.symbol,
            side="buy" if gap > 0 else "sell",
            quantity=abs(gap),
            order_type="market",
            reduce_only=reduces,
            ts_ns=ts_ns,
        )
        self._pending[intent.intent_id] = gap
        return [intent]
