"""Backtests on trade ticks: the live strategy actor's loop, replayed.

Each trade goes to the strategy's ``on_tick`` and into the live node's
:class:`~sniperbot.market.bars.BarBuilder`; every bar it closes goes to ``on_bar``,
exactly as in :class:`~sniperbot.actors.strategy.StrategyActor`. Orders reach the
venue from the next trade on (plus latency: ``latency_bars`` counts trades here) and
follow the venue's rules with each trade as a bar whose open, high and low are its
price: a market order fills at the next trade's price plus slippage, a resting limit
when a trade prints at or through it (at the limit), a stop when one reaches it.

The equity curve has one point per trade; an open position is closed at the last
trade's price.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from sniperbot.backtest.config import BacktestConfig, make_sizer
from sniperbot.backtest.engine import Session, resolve_strategy
from sniperbot.backtest.result import BacktestResult, build_result
from sniperbot.market.bars import BarBuilder
from sniperbot.messages import TradeTick
from sniperbot.strategies import Strategy

__all__ = ["run_ticks"]


def run_ticks(
    time_ns: Any,
    price: Any,
    size: Any,
    strategy: str | type[Strategy],
    params: Mapping[str, Any] | None = None,
    config: BacktestConfig | None = None,
    *,
    bar_interval_s: float = 60.0,
    aggressor: Any = None,
    symbol: str = "?",
) -> BacktestResult:
    """Backtest ``strategy`` on trades (times in ns, prices, sizes; ``aggressor`` +1 buy / -1 sell)."""
    clock = time.perf_counter
    started = clock()
    cls = resolve_strategy(strategy)
    config = config or BacktestConfig()
    values = cls.validate_params(dict(params or {}))
    times = np.ascontiguousarray(time_ns, dtype=np.int64)
    prices = np.ascontiguousarray(price, dtype=np.float64)
    sizes = np.ascontiguousarray(size, dtype=np.float64)
    n = len(times)
    if n == 0 or len(prices) != n or len(sizes) != n:
        raise ValueError(
            f"need one price and size per trade time: {n} times, {len(prices)} prices, {len(sizes)} sizes"
        )
    if n > 1 and not bool(np.all(np.diff(times) >= 0)):
        raise ValueError("trade times must not go backwards")
    sides = np.ones(n) if aggressor is None else np.ascontiguousarray(aggressor, dtype=np.float64)
    bar_ns = round(bar_interval_s * 1e9)
    time_list: list[int] = times.tolist()
    price_list: list[float] = prices.tolist()
    run = Session(
        cls,
        values,
        config,
        symbol=symbol,
        sizer=make_sizer(config.sizer, bar_ns),
        time_ns=time_list,
        open_=price_list,
        high=price_list,
        low=price_list,
        reference=price_list,
        decide_offset_ns=0,
    )
    strategy_obj, venue, ledger = run.strategy, run.venue, run.ledger
    builder = BarBuilder(config.venue, symbol, bar_interval_s)
    cash, position = ledger.cash, 0.0
    trades = zip(time_list, price_list, sizes.tolist(), sides.tolist(), strict=True)
    for k, (ts, p, q, side) in enumerate(trades):
        if k >= venue.next_bar:
            fills = venue.process(k)
            if fills or venue.cancelled:
                run.deliver(fills, k)
                cash, position = ledger.cash, ledger.position
                strategy_obj.equity = cash
        if position:
            strategy_obj.equity = cash + position * p
        tick = TradeTick(config.venue, symbol, p, q, "buy" if side >= 0 else "sell", k, ts)
        exposure = strategy_obj.exposure
        intents = strategy_obj.on_tick(tick)
        if intents:
            run.submit(intents, k, exposure)
        for bar in builder.on_trade(tick):
            exposure = strategy_obj.exposure
            intents = strategy_obj.on_bar(bar)
            if intents:
                run.submit(intents, k, exposure)
    if config.close_at_end:
        venue.close_position(n - 1, price_list[-1])
    return build_result(
        ledger,
        times,
        prices,
        strategy=cls.name or cls.__name__,
        params=dict(strategy_obj.parameters),
        path="ticks",
        config=config,
        started=started,
        clock=clock,
        rejected=run.rejected,
    )
