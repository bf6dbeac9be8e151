"""A seeded live market for the local exchange servers: the book moves and others trade, at a set rate.

Why: a node on a ccxt venue (dry-run, live, chaos, benchmarks) needs a market that moves the way a real
one does, without the test scripting every tick. Each step moves the mid by a seeded random walk,
replaces the book around it (``levels`` per side) and prints one public trade at the best bid or ask
(which also fills our resting orders that the trade crosses). Bounded by ``duration_s`` or ``stop``.

Used by ``python -m tests.exchanges.NAME --activity HZ`` and by tests through :class:`Activity`.
"""

from __future__ import annotations

import random
import threading
from decimal import Decimal

from tests.exchanges._base import ExchangeServer


class Activity:
    """A background thread that makes ``server``'s markets live (see the module docstring)."""

    def __init__(
        self,
        server: ExchangeServer,
        symbols: list[str],
        hz: float = 20.0,
        seed: int = 1,
        levels: int = 10,
        vol_bps: float = 2.0,
        trade_qty: float = 0.01,
    ) -> None:
        self.server = server
        self.symbols = list(symbols)
        self.interval_s = 1.0 / hz
        self.rng = random.Random(seed)
        self.levels = levels
        self.vol = vol_bps / 10_000
        self.trade_qty = trade_qty
        self.steps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exchange-activity", daemon=True)
        self._mid: dict[str, float] = {}

    def start(self) -> Activity:
        """Start moving the markets (mids start at each book's current mid)."""
        for symbol in self.symbols:
            bids, asks = self._top(symbol)
            self._mid[symbol] = (bids + asks) / 2
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and join."""
        self._stop.set()
        self._thread.join(5)

    def __enter__(self) -> Activity:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _top(self, symbol: str) -> tuple[float, float]:
        with self.server.lock:
            m = self.server.engine.markets[symbol]
            return float(max(m.bids)), float(min(m.asks))

    def step(self) -> None:
        """One move of every market: new book around a new mid, then one public trade."""
        for symbol in self.symbols:
            with self.server.lock:
                tick = self.server.engine.markets[symbol].tick
            mid = self._mid[symbol] * (1 + self.rng.gauss(0, self.vol))
            self._mid[symbol] = mid
            # Half-spread of 1 bp, at least one tick; every price on the tick grid.
            half = max(tick, (Decimal(str(mid * 0.0001)) / tick).to_integral_value() * tick)
            best_bid = (Decimal(str(mid)) / tick).to_integral_value() * tick - half
            size = Decimal(1)
            bids = [(best_bid - i * half, size) for i in range(self.levels)]
            asks = [(best_bid + 2 * half + i * half, size) for i in range(self.levels)]
            self.server.seed_book(symbol, bids, asks)
            side = "buy" if self.rng.random() < 0.5 else "sell"
            price = asks[0][0] if side == "buy" else bids[0][0]
            self.server.trade(symbol, price, Decimal(str(self.trade_qty)), side)
        self.steps += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.step()
