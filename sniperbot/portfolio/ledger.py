"""The portfolio ledger: positions, average entry prices and P&L, built from fills alone.

Accounting rules (average-cost method, per symbol):

* Adding to a position (or opening one) moves the average entry price to the
  quantity-weighted average of the old entry and the fill price.
* Reducing a position realises ``closed_quantity * (fill_price - avg_price)`` for a long,
  the negative of that for a short; the average entry of what remains is unchanged.
* A fill larger than the position closes it (realising P&L as above) and opens the rest
  on the other side at the fill price.
* Fees accumulate separately. ``realized_pnl`` and ``unrealized_pnl`` are before fees;
  only ``net_pnl`` subtracts them.
* Unrealised P&L uses the last :meth:`Ledger.mark` per symbol; a symbol never marked
  contributes zero.

The ledger's state is a pure function of the fills applied, in order: rebuilding a
ledger from the journaled fills gives exactly the live numbers (marks aside, which are
not state but observations).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from sniperbot.messages import Fill, OrderUpdate, PortfolioSnapshot, Position

# Positions closer to zero than this are float dust from partial fills: treat as flat.
_QUANTITY_EPSILON: Final = 1e-12


def book_fill(
    quantity: float, avg_price: float, realized_pnl: float, side: str, fill_quantity: float, price: float
) -> tuple[float, float, float]:
    """One fill on a position by the accounting rules above: the new (quantity, avg_price, realized_pnl).

    The one home of these rules: the ledger applies them live and the journal's aggregates
    (:mod:`sniperbot.journal.aggregates`) at append time, so a restored book equals a replayed one.
    """
    signed = fill_quantity if side == "buy" else -fill_quantity
    held = quantity
    if held == 0.0:
        return signed, price, realized_pnl
    if (held > 0) == (signed > 0):
        total = abs(held) + fill_quantity
        return held + signed, (abs(held) * avg_price + fill_quantity * price) / total, realized_pnl
    closed = min(fill_quantity, abs(held))
    direction = 1.0 if held > 0 else -1.0
    realized_pnl += closed * (price - avg_price) * direction
    quantity = held + signed
    if abs(quantity) < _QUANTITY_EPSILON:
        return 0.0, 0.0, realized_pnl
    if fill_quantity > abs(held):
        # Flipped: what is left was opened by this fill.
        return quantity, price, realized_pnl
    return quantity, avg_price, realized_pnl


class _Book:
    """One symbol's running position."""

    __slots__ = ("avg_price", "quantity", "realized_pnl")

    def __init__(self) -> None:
        self.quantity = 0.0
        self.avg_price = 0.0
        self.realized_pnl = 0.0


class Ledger:
    """Signed positions, average entry prices, realised and unrealised P&L, and fees."""

    def __init__(self) -> None:
        self._books: dict[str, _Book] = {}
        self._marks: dict[str, float] = {}
        self._fees = 0.0
        self._fills = 0
        self._rejected = 0

    def apply_fill(self, fill: Fill) -> None:
        """Book one fill: update position, average entry, realised P&L and fees."""
        book = self._books.setdefault(fill.symbol, _Book())
        book.quantity, book.avg_price, book.realized_pnl = book_fill(
            book.quantity, book.avg_price, book.realized_pnl, fill.side, fill.quantity, fill.price
        )
        self._fees += fill.fee
        self._fills += 1

    def restore(self, symbol: str, quantity: float, avg_price: float, realized_pnl: float) -> None:
        """Set one symbol's book as a snapshot had it (the journal's aggregates, after a restart)."""
        book = self._books.setdefault(symbol, _Book())
        book.quantity, book.avg_price, book.realized_pnl = quantity, avg_price, realized_pnl

    def restore_totals(self, fees: float, fills: int, rejected: int) -> None:
        """Set the fees, fill count and rejected count as a snapshot had them."""
        self._fees, self._fills, self._rejected = fees, fills, rejected

    def mark(self, symbol: str, price: float) -> None:
        """Record the latest price for ``symbol``, used for unrealised P&L."""
        self._marks[symbol] = price

    def on_order_update(self, u: OrderUpdate) -> None:
        """Count rejected orders."""
        if u.status == "rejected":
            self._rejected += 1

    def position(self, symbol: str) -> Position:
        """One symbol's position, average entry and P&L (flat and zero if never traded)."""
        book = self._books.get(symbol) or _Book()
        return Position(
            symbol=symbol,
            quantity=book.quantity,
            avg_price=book.avg_price,
            realized_pnl=book.realized_pnl,
            unrealized_pnl=self._unrealized(symbol, book),
        )

    def snapshot(self, ts_ns: int, orders: int) -> PortfolioSnapshot:
        """Everything as one message; ``orders`` is the caller's count of orders sent."""
        return PortfolioSnapshot(
            positions=[self.position(symbol) for symbol in sorted(self._books)],
            realized_pnl=self.realized_pnl,
            unrealized_pnl=self.unrealized_pnl,
            fees=self._fees,
            orders=orders,
            fills=self._fills,
            rejected=self._rejected,
            ts_ns=ts_ns,
        )

    @property
    def positions(self) -> dict[str, float]:
        """Signed quantity per symbol ever traded (flat ones included, as 0.0)."""
        return {symbol: book.quantity for symbol, book in self._books.items()}

    @property
    def realized_pnl(self) -> float:
        """Realised P&L over all symbols, before fees."""
        return sum(book.realized_pnl for book in self._books.values())

    @property
    def unrealized_pnl(self) -> float:
        """Open P&L at the last marks, over all symbols, before fees."""
        return sum(self._unrealized(s, book) for s, book in self._books.items())

    @property
    def fees(self) -> float:
        """Total fees paid."""
        return self._fees

    @property
    def net_pnl(self) -> float:
        """Realised plus unrealised P&L, minus fees."""
        return self.realized_pnl + self.unrealized_pnl - self._fees

    @property
    def fills(self) -> int:
        """Number of fills applied."""
        return self._fills

    @property
    def rejected(self) -> int:
        """Number of rejected order updates seen."""
        return self._rejected

    def _unrealized(self, symbol: str, book: _Book) -> float:
        """Open P&L of one symbol at its last mark (zero when unmarked or flat)."""
        mark = self._marks.get(symbol)
        if mark is None or book.quantity == 0.0:
            return 0.0
        return book.quantity * (mark - book.avg_price)


def combined_snapshot(ledgers: Mapping[str, Ledger], ts_ns: int, orders: int) -> PortfolioSnapshot:
    """One snapshot of one ledger per venue: positions keyed by venue and symbol, totals summed.

    A ledger per venue (not per symbol) because BTC/USDT on two venues is two positions,
    with their own entry prices and marks.
    """
    positions: list[Position] = []
    for venue in sorted(ledgers):
        ledger = ledgers[venue]
        positions += [msgspec.structs.replace(p, venue=venue) for p in ledger.snapshot(ts_ns, 0).positions]
    books = ledgers.values()
    return PortfolioSnapshot(
        positions=positions,
        realized_pnl=sum(ledger.realized_pnl for ledger in books),
        unrealized_pnl=sum(ledger.unrealized_pnl for ledger in books),
        fees=sum(ledger.fees for ledger in books),
        orders=orders,
        fills=sum(ledger.fills for ledger in books),
        rejected=sum(ledger.rejected for ledger in books),
        ts_ns=ts_ns,
    )
