"""The vectorised path: a strategy's ``target_exposure`` arrays through the same venue and ledger.

How it stays identical to the per-bar path: the decisions come from
``target_exposure`` (which the strategies guarantee equal to ``on_bar``'s exposure
after every bar), and everything after the decision is the per-bar path's own code
run on fewer bars. A backtest only *does* something on a bar where the target
exposure changes (at its close), where an order is due, or where a bracket of the
position is touched; this path finds those bars with numpy and visits only them, with
the same :class:`~sniperbot.backtest.venue.SimVenue` and
:class:`~sniperbot.backtest.ledger.Ledger`, so fills, fees and equity come out of the
same float operations in the same order. The order logic of
:meth:`Strategy._trade_to <sniperbot.strategies.base.Strategy>` is mirrored: on a
change, one market order for ``target x sizer.quantity(close, equity) - (position +
pending)``, nothing if that is below 1e-12, and the new target held either way.

The risk guard is consulted for every order when any risk limit is set. With none set
it would approve every order these decisions produce (positive finite quantities,
``reduce_only`` set exactly when the order reduces, in the ACTIVE state), so it is
skipped.

Sizers that follow prices (``uses_prices``, the volatility target) are evaluated
from their vectorised ``quantities`` as a fraction of equity per unit of price, which
is what they compute; their figures agree with the streaming ones to about 1e-12.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from sniperbot.backtest.config import BacktestConfig, make_sizer
from sniperbot.backtest.engine import arrival_bar
from sniperbot.backtest.ledger import QUANTITY_EPSILON, Ledger
from sniperbot.backtest.result import BacktestResult, build_result
from sniperbot.backtest.venue import MARKET, NEVER, SimFill, SimOrder, SimVenue, SizeFunction, resize_quantity
from sniperbot.data.ohlcv import OHLCV
from sniperbot.messages import Fill, OrderIntent, OrderUpdate
from sniperbot.messages.orders import make_intent_id
from sniperbot.risk.guard import RiskGuard
from sniperbot.strategies import Strategy

__all__ = ["run_targets", "run_vectorised"]

_SCAN_START = 64


def run_vectorised(
    ohlcv: OHLCV, cls: type[Strategy], params: dict[str, Any], config: BacktestConfig
) -> BacktestResult:
    """Backtest ``cls`` with validated ``params`` from its target exposure arrays."""
    clock = time.perf_counter
    started = clock()
    target = cls.target_exposure(ohlcv.open, ohlcv.high, ohlcv.low, ohlcv.close, ohlcv.volume, **params)
    return run_targets(
        ohlcv, target, config, strategy=cls.name or cls.__name__, params=params, started=started
    )


def run_targets(
    ohlcv: OHLCV,
    target: np.ndarray,
    config: BacktestConfig,
    *,
    strategy: str = "targets",
    params: dict[str, Any] | None = None,
    started: float | None = None,
) -> BacktestResult:
    """Backtest a target exposure series (element ``i`` decided at bar ``i``'s close)."""
    clock = time.perf_counter
    if started is None:
        started = clock()
    target = np.ascontiguousarray(target, dtype=np.float64)
    n = len(ohlcv)
    if len(target) != n:
        raise ValueError(f"target has {len(target)} values for {n} bars")
    ledger = Ledger(config.cash)
    rejected = _simulate(ohlcv, target, config, ledger)
    return build_result(
        ledger,
        ohlcv.time_ns,
        ohlcv.close,
        strategy=strategy,
        params=dict(params or {}),
        path="vectorised",
        config=config,
        started=started,
        clock=clock,
        rejected=rejected,
    )


def _first_touch(
    low: np.ndarray, high: np.ndarray, start: int, end: int, long: bool, stop: float, limit: float
) -> int:
    """First bar in ``[start, end]`` whose range reaches a bracket (``NEVER`` if none)."""
    # Growing windows: most brackets are hit soon or never, so neither a full scan nor a
    # Python loop over bars is paid for.
    size = _SCAN_START
    while start <= end:
        stop_at = min(end + 1, start + size)
        lo, hi = low[start:stop_at], high[start:stop_at]
        touched = (lo <= stop) | (hi >= limit) if long else (hi >= stop) | (lo <= limit)
        hit = int(touched.argmax())
        if touched[hit]:
            return start + hit
        start = stop_at
        size *= 4
    return NEVER


def _next_open(
    change: list[int],
    values: list[float],
    open_: Any,
    close: Any,
    times: Any,
    config: BacktestConfig,
    ledger: Ledger,
    signal_size: SizeFunction,
    fill_size: SizeFunction,
    n: int,
) -> None:
    """The common case, inlined: no latency, brackets or limits, so each order fills at the next open.

    Every decision's order fills before the next decision (at the next bar's open at
    the latest), so nothing is ever pending when deciding. The expressions are those
    of :class:`SimVenue` (``_market``, :func:`resize_quantity`) and of the strategy's
    ``_trade_to``, so the floats are the same.
    """
    fill = ledger.fill
    up = 1.0 + config.slippage
    down = 1.0 - config.slippage
    fee = config.taker_fee
    resize = config.size_at == "fill"
    inf = math.inf
    for bar, new in zip(change, values, strict=True):
        nxt = bar + 1
        if nxt >= n:
            break
        position = ledger.position
        c = close[bar]
        equity = ledger.cash + position * c if position else ledger.cash
        wanted = new * signal_size(bar, c, equity) if new != 0.0 else 0.0
        gap = wanted - position
        if abs(gap) < QUANTITY_EPSILON:
            continue
        buy = gap > 0.0
        price = open_[nxt] * up if buy else open_[nxt] * down
        if resize:
            quantity = resize_quantity(new, position, ledger.cash, price, fee, fill_size, nxt, inf, inf)
            if abs(quantity) < QUANTITY_EPSILON or (quantity > 0.0) != buy:
                continue
        else:
            quantity = gap
        fill(nxt, times[nxt], quantity, price, fee * abs(quantity) * price)


def _simulate(ohlcv: OHLCV, target: np.ndarray, config: BacktestConfig, ledger: Ledger) -> int:
    """Run the decisions in ``target`` through venue and ledger; returns the rejected orders."""
    n = len(ohlcv)
    bar_ns = ohlcv.timeframe_ns
    sizer = make_sizer(config.sizer, bar_ns)
    # memoryviews index to Python floats without copying the columns into lists.
    open_ = memoryview(ohlcv.open)
    high = memoryview(ohlcv.high)
    low = memoryview(ohlcv.low)
    close = memoryview(ohlcv.close)
    times = ohlcv.time_ns.tolist() if config.latency_ns else memoryview(ohlcv.time_ns)
    if sizer.uses_prices:
        unit = memoryview(sizer.quantities(ohlcv.close, 1.0, np.ones(n)))

        def signal_size(bar: int, price: float, equity: float) -> float:
            return unit[bar] * equity / price if equity > 0 else 0.0

        def fill_size(bar: int, price: float, equity: float) -> float:
            # At bar j's open the streaming sizer has seen the closes up to j - 1.
            return unit[bar - 1] * equity / price if equity > 0 else 0.0
    else:
        quantity = sizer.quantity

        def signal_size(bar: int, price: float, equity: float) -> float:
            return quantity(price, equity)

        fill_size = signal_size
    venue = SimVenue(
        config,
        ledger,
        open_,
        high,
        low,
        times,
        fill_size if config.size_at == "fill" else None,  # type: ignore[arg-type]
    )
    guard = RiskGuard(config.risk_limits()) if config.has_limits else None
    symbol = ohlcv.symbol or "?"
    resize = config.size_at == "fill"
    brackets = config.stop_loss_pct is not None or config.take_profit_pct is not None

    change = np.flatnonzero(np.diff(target, prepend=0.0))
    values = target[change].tolist()
    change = change.tolist()
    if guard is None and not brackets and not config.latency_bars and not config.latency_ns:
        _next_open(change, values, open_, close, times, config, ledger, signal_size, fill_size, n)
        if config.close_at_end:
            venue.close_position(n - 1, close[n - 1])
        return 0
    changes = len(change)
    k = 0
    seq = 1
    rejected = 0
    plain_arrival = not config.latency_ns
    delay = 1 + config.latency_bars
    low_a, high_a = ohlcv.low, ohlcv.high
    cursor = 0  # bars before this one are done
    while True:
        decision = change[k] if k < changes else NEVER
        if brackets and venue.has_brackets:
            # The venue would look at every bar; only those touching a bracket (or with an
            # order due) can change anything.
            due = min([o.active_bar for o in venue.orders], default=NEVER)
            touch = _first_touch(
                low_a,
                high_a,
                cursor,
                min(decision, due, n - 1),
                ledger.position > 0.0,
                venue.stop_price,
                venue.limit_price,
            )
            due = min(due, touch)
        else:
            due = venue.next_bar
        bar = min(decision, due)
        if bar >= n:
            break
        if due == bar:
            fills = venue.process(bar)
            if guard is not None and (fills or venue.cancelled):
                _tell_guard(guard, fills, venue, config, symbol)
            venue.cancelled.clear()
        cursor = bar + 1
        if decision != bar:
            continue
        k += 1
        new = values[k - 1]
        c = close[bar]
        position = ledger.position
        equity = ledger.cash + position * c if position else ledger.cash
        wanted = new * signal_size(bar, c, equity) if new != 0.0 else 0.0
        exposure = position + sum([o.side * o.quantity for o in venue.orders])
        gap = wanted - exposure
        if abs(gap) < QUANTITY_EPSILON:
            continue
        order_id = make_intent_id(config.strategy_id, seq)
        seq += 1
        side = 1.0 if gap > 0 else -1.0
        if guard is not None:
            after = exposure + gap
            intent = OrderIntent(
                intent_id=order_id,
                strategy_id=config.strategy_id,
                intent_seq=seq - 1,
                venue=config.venue,
                symbol=symbol,
                side="buy" if gap > 0 else "sell",
                quantity=abs(gap),
                reduce_only=abs(after) < abs(exposure) and after * exposure >= 0,
                ts_ns=times[bar] + bar_ns,
            )
            if guard.check(intent, c, times[bar] + bar_ns) is not None:
                rejected += 1
                continue
        active = bar + delay if plain_arrival else arrival_bar(times, bar, bar_ns, config)  # type: ignore[arg-type]
        venue.submit(SimOrder(order_id, side, abs(gap), MARKET, active, target=new if resize else None))
    if config.close_at_end:
        venue.close_position(n - 1, close[n - 1])
    return rejected


def _tell_guard(
    guard: RiskGuard, fills: list[SimFill], venue: SimVenue, config: BacktestConfig, symbol: str
) -> None:
    """Keep the guard's positions and pending orders as the per-bar path does."""
    for f in fills:
        guard.on_fill(
            Fill(
                fill_id=f"{f.order_id}-fill",
                client_order_id=f.order_id,
                strategy_id=config.strategy_id,
                venue=config.venue,
                symbol=symbol,
                side="buy" if f.quantity > 0 else "sell",
                quantity=abs(f.quantity),
                price=f.price,
                fee=f.fee,
                ts_ns=f.time_ns,
            )
        )
        if f.order is not None:
            guard.on_order_update(_done(f.order_id, "filled", config, symbol))
    for order, _ in venue.cancelled:
        guard.on_order_update(_done(order.order_id, "cancelled", config, symbol))


def _done(order_id: str, status: Any, config: BacktestConfig, symbol: str) -> OrderUpdate:
    return OrderUpdate(
        client_order_id=order_id,
        strategy_id=config.strategy_id,
        venue=config.venue,
        symbol=symbol,
        status=status,
    )
