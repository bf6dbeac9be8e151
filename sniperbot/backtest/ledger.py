"""The account of a backtest: cash, one signed position, fees and closed round trips.

Both backtest paths book every fill here, with the same arithmetic in the same order,
which is what makes their results bit-identical. A fill moves ``quantity x price``
between cash and the position and takes its fee out of cash.

Round trips are tracked at the position's average entry price: a fill that grows the
position (or opens it) averages in; one that shrinks it closes a :class:`Trade` for the
closed quantity, with that share of the entry fees and of its own fee; one that flips
the position closes the whole trade and opens a new one with the rest. The equity
curve is rebuilt afterwards from the state after each fill (:meth:`Ledger.curves`),
marked at each bar's close.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

from sniperbot.backtest.metrics import Trade

__all__ = ["Ledger", "RoundTrips"]

# Positions closer to zero than this are flat (float dust from partial closes).
QUANTITY_EPSILON = 1e-12


# Closed round trip as the ledger records it: entry/exit time and price, quantity,
# direction (+1 long, -1 short), pnl, fees. Trade objects are built only when read.
_Row = tuple[int, int, float, float, float, float, float, float]


class RoundTrips(Sequence[Trade]):
    """Closed round trips, stored as rows and turned into :class:`Trade` objects when read."""

    __slots__ = ("_built", "_rows")

    def __init__(self, rows: list[_Row]) -> None:
        self._rows = rows
        self._built: list[Trade] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Trade: ...

    @overload
    def __getitem__(self, index: slice) -> list[Trade]: ...

    def __getitem__(self, index: int | slice) -> Trade | list[Trade]:
        return self.as_list()[index]

    def __iter__(self) -> Iterator[Trade]:
        return iter(self.as_list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RoundTrips):
            return self._rows == other._rows
        return isinstance(other, Sequence) and self.as_list() == list(other)

    def __repr__(self) -> str:
        return f"RoundTrips({len(self)} trades)"

    def as_list(self) -> list[Trade]:
        """All trades as :class:`Trade` objects (built once)."""
        if self._built is None or len(self._built) != len(self._rows):
            self._built = [
                Trade(a, b, c, d, e, "long" if side > 0 else "short", f, g)
                for a, b, c, d, e, side, f, g in self._rows
            ]
        return self._built

    def pnl(self) -> np.ndarray:
        """Net pnl of every trade, in order."""
        return np.array([row[6] for row in self._rows], dtype=np.float64)


class Ledger:
    """Cash, position and round trips, booked fill by fill."""

    __slots__ = (
        "_entry_fees",
        "_entry_time_ns",
        "cash",
        "entry_price",
        "fees",
        "fill_bar",
        "fill_cash",
        "fill_position",
        "fill_price",
        "fill_quantity",
        "fill_time_ns",
        "initial_cash",
        "position",
        "rows",
    )

    def __init__(self, cash: float) -> None:
        self.initial_cash = cash
        self.cash = cash
        #: Signed quantity held: > 0 long, < 0 short.
        self.position = 0.0
        #: Average entry price of the open position (0 when flat).
        self.entry_price = 0.0
        #: All fees paid (closed and open trades).
        self.fees = 0.0
        #: Closed round trips as rows (see :class:`RoundTrips`).
        self.rows: list[_Row] = []
        self._entry_time_ns = 0
        self._entry_fees = 0.0
        # The state after each fill, for the equity curve and the report's markers.
        self.fill_bar: list[int] = []
        self.fill_time_ns: list[int] = []
        self.fill_quantity: list[float] = []
        self.fill_price: list[float] = []
        self.fill_cash: list[float] = []
        self.fill_position: list[float] = []

    def fill(self, bar: int, time_ns: int, quantity: float, price: float, fee: float) -> None:
        """Book a fill of signed ``quantity`` (buy > 0) at ``price`` paying ``fee``."""
        position = self.position
        self.cash -= quantity * price
        self.cash -= fee
        self.fees += fee
        if position == 0.0 or (position > 0.0) == (quantity > 0.0):
            size = abs(position)
            added = abs(quantity)
            if size == 0.0:
                self.entry_price = price
                self._entry_time_ns = time_ns
                self._entry_fees = fee
            else:
                self.entry_price = (size * self.entry_price + added * price) / (size + added)
                self._entry_fees += fee
            self.position = position + quantity
        else:
            size = abs(position)
            traded = abs(quantity)
            closed = min(size, traded)
            direction = 1.0 if position > 0.0 else -1.0
            entry_share = self._entry_fees * (closed / size)
            exit_share = fee if closed == traded else fee * (closed / traded)
            self.rows.append(
                (
                    self._entry_time_ns,
                    time_ns,
                    self.entry_price,
                    price,
                    closed,
                    direction,
                    direction * (price - self.entry_price) * closed - entry_share - exit_share,
                    entry_share + exit_share,
                )
            )
            remaining = position + quantity
            if traded > size and abs(remaining) >= QUANTITY_EPSILON:
                # Flipped: the rest opens a new trade at this price.
                self.entry_price = price
                self._entry_time_ns = time_ns
                self._entry_fees = fee - exit_share
                self.position = remaining
            elif abs(remaining) < QUANTITY_EPSILON or traded >= size:
                self.position = 0.0
                self.entry_price = 0.0
                self._entry_fees = 0.0
            else:
                self._entry_fees -= entry_share
                self.position = remaining
        self.fill_bar.append(bar)
        self.fill_time_ns.append(time_ns)
        self.fill_quantity.append(quantity)
        self.fill_price.append(price)
        self.fill_cash.append(self.cash)
        self.fill_position.append(self.position)

    @property
    def trades(self) -> RoundTrips:
        """The closed round trips so far."""
        return RoundTrips(self.rows)

    def equity(self, price: float) -> float:
        """Cash plus the position marked at ``price``."""
        return self.cash + self.position * price

    def curves(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Equity at each bar's close and the position held then (after that bar's fills)."""
        n = len(close)
        if not self.fill_bar:
            return np.full(n, self.initial_cash), np.zeros(n)
        # State k (after fill k - 1; state 0 is the start) holds from its fill's bar to
        # the next fill's bar; of several fills on one bar the last one's state counts.
        runs = np.diff(np.concatenate(([0], self.fill_bar, [n])))
        cash = np.repeat(np.concatenate(([self.initial_cash], self.fill_cash)), runs)
        held = np.repeat(np.concatenate(([0.0], self.fill_position)), runs)
        # Same expression as the engines' ``cash + position * close``: identical floats.
        return cash + held * close, held
