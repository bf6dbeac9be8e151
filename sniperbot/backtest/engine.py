"""The backtester: a strategy on bars, through the live node's sizer and risk guard.

:func:`run_backtest` is the entry point. Two paths give identical trades:

* **per-bar** (:func:`run_per_bar`): the strategy class itself, ``on_bar`` called with
  a :class:`~sniperbot.messages.Bar` for every bar, exactly as the live strategy actor
  calls it; its order intents pass the same :class:`~sniperbot.risk.RiskGuard` the
  node uses, then go to the simulated venue (:mod:`sniperbot.backtest.venue`); fills
  and order updates come back through ``on_fill`` / ``on_order_update``. Every order
  type and feature works here: market, limit and stop orders, stop-loss and
  take-profit brackets, latency, any sizer.
* **vectorised** (:mod:`sniperbot.backtest.vectorised`): the strategy's
  ``target_exposure`` arrays, visiting only the bars where something happens, with the
  same venue, ledger and sizer.

``path="auto"`` takes the vectorised path when the strategy has one and reads no signals.

**Signals** (:meth:`~sniperbot.strategies.Strategy.latest_signal`): ``signals`` (a signal file's
contents, :func:`sniperbot.analytics.signals.read_signals`) are fed to the strategy's ``on_signal`` on the
per-bar path, each before the decision on the first bar whose *end* is at or after its ``ts_ns``: a
signal stamped inside bar ``i`` is visible at bar ``i``'s close, never earlier (no lookahead), and one
stamped before the first bar at the first close. A strategy that declares signals has no vectorised
path (its decisions depend on them).

Timing: the strategy sees bar ``i`` at its close; what it decides can fill from bar
``i + 1`` (plus latency). Equity handed to sizers is the account marked at that close.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from sniperbot.backtest.config import BacktestConfig, make_sizer
from sniperbot.backtest.ledger import Ledger
from sniperbot.backtest.result import BacktestResult, build_result
from sniperbot.backtest.venue import LIMIT, MARKET, STOP, SimFill, SimOrder, SimVenue
from sniperbot.data.ohlcv import OHLCV
from sniperbot.messages import Bar, Fill, OrderIntent, OrderUpdate, Signal
from sniperbot.risk.guard import RiskGuard
from sniperbot.risk.sizing import PositionSizer
from sniperbot.strategies import Strategy
from sniperbot.strategies.loader import load_strategy

__all__ = ["BacktestPath", "Session", "arrival_bar", "resolve_strategy", "run_backtest", "run_per_bar"]

BacktestPath = Literal["auto", "vectorised", "per-bar"]


def resolve_strategy(strategy: str | type[Strategy]) -> type[Strategy]:
    """The strategy class for a reference (built-in name, ``module:Class``, ``file.py:Class``) or class.

    Raises ValueError (:class:`~sniperbot.strategies.loader.StrategyLoadError`) naming what is wrong.
    """
    if isinstance(strategy, str):
        return load_strategy(strategy)
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        return strategy
    raise ValueError(f"not a strategy: {strategy!r}")


def run_backtest(
    ohlcv: OHLCV,
    strategy: str | type[Strategy],
    params: Mapping[str, Any] | None = None,
    config: BacktestConfig | None = None,
    *,
    path: BacktestPath = "auto",
    signals: Sequence[Signal] = (),
) -> BacktestResult:
    """Backtest ``strategy`` (name or class) with ``params`` on ``ohlcv``; ValueError on bad input.

    ``signals``: recorded signals the strategy reads (see the module docstring).
    """
    cls = resolve_strategy(strategy)
    config = config or BacktestConfig()
    values = cls.validate_params(dict(params or {}))
    if len(ohlcv) == 0:
        raise ValueError("no bars to backtest")
    if path == "auto":
        path = "vectorised" if cls.has_vectorised() and not cls.uses_signals() else "per-bar"
    if path == "vectorised":
        if cls.uses_signals():
            raise ValueError(f"{cls.name or cls.__name__} reads signals: only the per-bar path replays them")
        if not cls.has_vectorised():
            raise ValueError(f"{cls.name or cls.__name__} has no vectorised form; use the per-bar path")
        from sniperbot.backtest.vectorised import run_vectorised

        return run_vectorised(ohlcv, cls, values, config)
    if path == "per-bar":
        return run_per_bar(ohlcv, cls, values, config, signals=signals)
    raise ValueError(f"path must be 'auto', 'vectorised' or 'per-bar', got {path!r}")


def arrival_bar(time_ns: list[int], bar: int, bar_ns: int, config: BacktestConfig) -> int:
    """First bar an order decided at ``bar``'s close (``bar_ns`` after its start) can fill on."""
    if config.latency_ns:
        # The first bar opening at or after the order's arrival at the venue.
        first = bisect.bisect_left(time_ns, time_ns[bar] + bar_ns + config.latency_ns)
        first = max(first, bar + 1)
    else:
        first = bar + 1
    return first + config.latency_bars


def _order_from_intent(intent: OrderIntent, active: int, target: float | None) -> SimOrder:
    """The venue order for an approved intent (``stop_price`` on an intent makes a stop order)."""
    side = 1.0 if intent.side == "buy" else -1.0
    stop_price = intent.stop_price
    if stop_price is not None:
        return SimOrder(
            intent.intent_id, side, intent.quantity, STOP, active, float(stop_price), None, intent
        )
    if intent.order_type == "limit":
        if intent.limit_price is None:
            raise ValueError(f"limit intent {intent.intent_id} has no limit_price")
        return SimOrder(
            intent.intent_id, side, intent.quantity, LIMIT, active, intent.limit_price, None, intent
        )
    return SimOrder(intent.intent_id, side, intent.quantity, MARKET, active, target=target, ref=intent)


class Session:
    """One strategy wired to its guard, the simulated venue and the ledger, as in the live node.

    Indexes are bars (or trades, for :mod:`sniperbot.backtest.ticks`); ``reference`` is
    the price the guard values orders at (the bar's close) and ``decide_offset_ns``
    the time of a decision after the index's start (the bar length: decisions are
    made at the close).
    """

    def __init__(
        self,
        cls: type[Strategy],
        params: dict[str, Any],
        config: BacktestConfig,
        *,
        symbol: str,
        sizer: PositionSizer,
        time_ns: list[int],
        open_: list[float],
        high: list[float],
        low: list[float],
        reference: list[float],
        decide_offset_ns: int,
    ) -> None:
        self.config = config
        self.symbol = symbol
        self.sizer = sizer
        self.strategy = cls(config.strategy_id, config.venue, symbol, sizer=sizer, **params)
        self.strategy.equity = config.cash
        self.guard = RiskGuard(config.risk_limits())
        self.ledger = Ledger(config.cash)
        self.time_ns = time_ns
        self.reference = reference
        self.offset_ns = decide_offset_ns
        quantity = sizer.quantity
        size = (lambda bar, price, equity: quantity(price, equity)) if config.size_at == "fill" else None
        self.venue = SimVenue(config, self.ledger, open_, high, low, time_ns, size)
        self.rejected = 0

    def submit(self, intents: list[OrderIntent], index: int, exposure_before: float) -> None:
        """Pass intents decided at ``index`` through the guard to the venue."""
        strategy = self.strategy
        config = self.config
        now = self.time_ns[index] + self.offset_ns
        # Only an order that carries a change of target exposure is re-sized at its fill.
        changed = strategy.exposure != exposure_before and config.size_at == "fill"
        active = arrival_bar(self.time_ns, index, self.offset_ns, config)
        for intent in intents:
            reason = self.guard.check(intent, self.reference[index], now)
            if reason is not None:
                self.rejected += 1
                strategy.on_order_update(self._update(intent.intent_id, "rejected", now, reason))
                continue
            target = strategy.exposure if changed and intent.order_type == "market" else None
            self.venue.submit(_order_from_intent(intent, active, target))

    def _update(self, order_id: str, status: Any, ts_ns: int, reason: str = "") -> OrderUpdate:
        return OrderUpdate(
            client_order_id=order_id,
            strategy_id=self.config.strategy_id,
            venue=self.config.venue,
            symbol=self.symbol,
            status=status,
            reason=reason,
            ts_ns=ts_ns,
        )

    def deliver(self, fills: list[SimFill], index: int) -> None:
        """Tell the guard and the strategy about fills and finished orders, as the venue would."""
        strategy, guard = self.strategy, self.guard
        for f in fills:
            fill = Fill(
                fill_id=f"{f.order_id}-fill",
                client_order_id=f.order_id,
                strategy_id=self.config.strategy_id,
                venue=self.config.venue,
                symbol=self.symbol,
                side="buy" if f.quantity > 0 else "sell",
                quantity=abs(f.quantity),
                price=f.price,
                fee=f.fee,
                liquidity=f.liquidity,  # type: ignore[arg-type]
                ts_ns=f.time_ns,
            )
            guard.on_fill(fill)
            followups = strategy.on_fill(fill)
            if f.order is not None:
                update = self._update(f.order_id, "filled", f.time_ns)
                guard.on_order_update(update)
                strategy.on_order_update(update)
            if followups:
                # Decided during this index, so they reach the venue after it.
                self.submit(followups, index, strategy.exposure)
        venue = self.venue
        if venue.cancelled:
            for order, reason in venue.cancelled:
                update = self._update(order.order_id, "cancelled", self.time_ns[index], reason)
                guard.on_order_update(update)
                strategy.on_order_update(update)
            venue.cancelled.clear()


def run_per_bar(
    ohlcv: OHLCV,
    cls: type[Strategy],
    params: dict[str, Any],
    config: BacktestConfig,
    *,
    signals: Sequence[Signal] = (),
) -> BacktestResult:
    """The per-bar callback path: ``on_bar`` for every bar, as in the live strategy actor.

    ``signals`` go to ``on_signal`` before the close they are visible at (module docstring).
    """
    clock = time.perf_counter
    started = clock()
    bar_ns = ohlcv.timeframe_ns
    time_ns: list[int] = ohlcv.time_ns.tolist()
    open_: list[float] = ohlcv.open.tolist()
    high: list[float] = ohlcv.high.tolist()
    low: list[float] = ohlcv.low.tolist()
    close: list[float] = ohlcv.close.tolist()
    run = Session(
        cls,
        params,
        config,
        symbol=ohlcv.symbol or "?",
        sizer=make_sizer(config.sizer, bar_ns),
        time_ns=time_ns,
        open_=open_,
        high=high,
        low=low,
        reference=close,
        decide_offset_ns=bar_ns,
    )
    strategy, venue, ledger = run.strategy, run.venue, run.ledger
    on_bar = strategy.on_bar
    venue_name, symbol = config.venue, run.symbol
    interval_s = bar_ns / 1e9
    cash = ledger.cash
    position = 0.0
    bar = -1
    # By time, ties in the given order; ``pending`` is the next one not yet fed.
    feed = sorted(signals, key=lambda s: s.ts_ns)
    on_signal, pending = strategy.on_signal, 0
    for bar, (start, o, h, lo, c, v) in enumerate(
        zip(time_ns, open_, high, low, close, ohlcv.volume.tolist(), strict=True)
    ):
        if bar >= venue.next_bar:
            fills = venue.process(bar)
            if fills or venue.cancelled:
                run.deliver(fills, bar)
                cash, position = ledger.cash, ledger.position
                strategy.equity = cash
        if position:
            strategy.equity = cash + position * c
        if pending < len(feed):
            end = start + bar_ns
            while pending < len(feed) and feed[pending].ts_ns <= end:
                on_signal(feed[pending])
                pending += 1
        exposure = strategy.exposure
        intents = on_bar(Bar(venue_name, symbol, interval_s, start, o, h, lo, c, v))
        if intents:
            run.submit(intents, bar, exposure)
    if config.close_at_end and bar >= 0:
        venue.close_position(bar, close[bar])
    return build_result(
        ledger,
        ohlcv.time_ns,
        ohlcv.close,
        strategy=cls.name or cls.__name__,
        params=dict(strategy.parameters),
        path="per-bar",
        config=config,
        started=started,
        clock=clock,
        rejected=run.rejected,
    )
