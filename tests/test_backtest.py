"""The backtester's fill model, sizing, risk and bookkeeping, on hand-made bars.

Each test scripts a strategy's orders on a few bars whose prices make the expected
fill obvious, then checks the fills, fees, round trips and equity a trader would
compute by hand. Path equivalence on long random data is in ``test_parity.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from sniperbot.backtest import BacktestConfig, run_backtest
from sniperbot.backtest.ticks import run_ticks
from sniperbot.backtest.vectorised import run_targets
from sniperbot.data import OHLCV
from sniperbot.messages import Bar, Fill, OrderIntent
from sniperbot.strategies import SmaCross, Strategy

MINUTE = 60_000_000_000
T0 = 1_750_000_000 * 1_000_000_000 // MINUTE * MINUTE


def bars(rows: list[tuple[float, float, float, float]], symbol: str = "BTC/USDT") -> OHLCV:
    """OHLCV from (open, high, low, close) rows, one minute apart."""
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return OHLCV(
        T0 + np.arange(len(rows)) * MINUTE, o, h, lo, c, np.ones(len(rows)), symbol=symbol, timeframe="1m"
    )


def flat(n: int, price: float = 100.0) -> list[tuple[float, float, float, float]]:
    return [(price, price, price, price)] * n


def scripted(script: dict[int, list[tuple[str, float, str, float]]]) -> type[Strategy]:
    """A strategy that sends ``script[bar] = [(side, quantity, kind, price), ...]`` at that bar's close."""

    class Scripted(Strategy):
        name = "scripted"
        params: ClassVar[dict[str, Any]] = {}

        def setup(self) -> None:
            self.bar_index = -1
            self.sent = 0
            self.fills: list[Fill] = []

        def on_bar(self, bar: Bar) -> list[OrderIntent]:
            self.bar_index += 1
            out: list[OrderIntent] = []
            for side, quantity, kind, price in script.get(self.bar_index, []):
                self.sent += 1
                fields: dict[str, Any] = {
                    "intent_id": f"{self.strategy_id}-s{self.sent}",
                    "strategy_id": self.strategy_id,
                    "intent_seq": self.sent,
                    "venue": self.venue,
                    "symbol": self.symbol,
                    "side": side,
                    "quantity": quantity,
                }
                if kind == "stop":
                    out.append(OrderIntent(**fields, order_type="stop", stop_price=price))
                elif kind == "limit":
                    out.append(OrderIntent(**fields, order_type="limit", limit_price=price))
                else:
                    out.append(OrderIntent(**fields))
            return out

    return Scripted


def run(
    rows: list[tuple[float, float, float, float]],
    script: dict[int, list[tuple[str, float, str, float]]],
    **config: Any,
) -> Any:
    config.setdefault("fee_bps", 0.0)
    config.setdefault("sizer", "fixed:1")
    config.setdefault("close_at_end", False)
    return run_backtest(bars(rows), scripted(script), {}, BacktestConfig(**config), path="per-bar")


def fills(result: Any) -> list[tuple[int, float, float]]:
    """(bar, signed quantity, price to 1e-9) of every fill."""
    f = result.fills
    return [
        (int(b), float(q), round(float(p), 9)) for b, q, p in zip(f.bar, f.quantity, f.price, strict=True)
    ]


# -- market orders ---------------------------------------------------------------------


def test_market_order_fills_at_the_next_open_with_slippage_against_the_taker() -> None:
    rows = [(100, 101, 99, 100), (102, 103, 101, 102), (104, 106, 103, 105), (107, 108, 106, 107)]
    result = run(rows, {0: [("buy", 2.0, "market", 0)], 2: [("sell", 2.0, "market", 0)]}, slippage_bps=10.0)
    assert fills(result) == [(1, 2.0, pytest.approx(102 * 1.001)), (3, -2.0, pytest.approx(107 * 0.999))]
    (trade,) = result.round_trips
    assert trade.pnl == pytest.approx(2 * (107 * 0.999 - 102 * 1.001))


def test_fees_are_bps_of_each_fills_notional_and_in_the_trade_pnl() -> None:
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (110, 110, 110, 110), (120, 120, 120, 120)]
    result = run(rows, {0: [("buy", 3.0, "market", 0)], 1: [("sell", 3.0, "market", 0)]}, fee_bps=25.0)
    entry_fee, exit_fee = 0.0025 * 3 * 100, 0.0025 * 3 * 110
    assert result.fees == pytest.approx(entry_fee + exit_fee)
    (trade,) = result.round_trips
    assert trade.fees == pytest.approx(entry_fee + exit_fee)
    assert trade.pnl == pytest.approx(3 * 10 - entry_fee - exit_fee)
    assert result.final_equity == pytest.approx(100_000 + trade.pnl)


def test_an_open_position_is_closed_at_the_last_close_with_the_fee() -> None:
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 130, 100, 125)]
    result = run(rows, {0: [("buy", 1.0, "market", 0)]}, fee_bps=10.0, close_at_end=True)
    assert fills(result)[-1] == (2, -1.0, 125.0)
    assert result.trades == 1
    assert result.final_equity == pytest.approx(100_000 + 25 - 0.001 * 100 - 0.001 * 125)
    assert result.equity[-1] == result.final_equity


def test_a_signal_on_the_last_bar_never_fills() -> None:
    result = run(flat(3), {2: [("buy", 1.0, "market", 0)]})
    assert len(result.fills) == 0 and result.trades == 0


# -- limit and stop orders ---------------------------------------------------------------


def test_a_buy_limit_rests_until_the_low_touches_it_then_fills_at_the_limit_as_maker() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (99, 100, 98, 99), (98, 99, 97, 98)]
    result = run(rows, {0: [("buy", 1.0, "limit", 98.0)]}, fee_bps=10.0, maker_fee_bps=2.0)
    assert fills(result) == [(2, 1.0, 98.0)]  # bar 1's low 99 misses; bar 2's low 98 touches
    assert result.fees == pytest.approx(0.0002 * 98.0)


def test_a_limit_marketable_on_arrival_takes_the_open_as_taker() -> None:
    rows = [(100, 100, 100, 100), (95, 96, 94, 95), (95, 95, 95, 95)]
    result = run(rows, {0: [("buy", 1.0, "limit", 97.0)]}, fee_bps=10.0, maker_fee_bps=2.0)
    assert fills(result) == [(1, 1.0, 95.0)]  # better than its limit
    assert result.fees == pytest.approx(0.001 * 95.0)


def test_a_resting_limit_the_market_gaps_through_fills_at_its_limit() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (90, 91, 89, 90)]
    result = run(rows, {0: [("sell", 1.0, "limit", 100.5)], 1: []})
    # Sell limit 100.5 rests from bar 1 (high 101 touches it on bar 1 already).
    assert fills(result) == [(1, -1.0, 100.5)]
    gapped = run(
        [(100, 100, 100, 100), (100, 100.2, 99, 100), (105, 106, 104, 105)],
        {0: [("sell", 1.0, "limit", 102.0)]},
    )
    assert fills(gapped) == [(2, -1.0, 102.0)]  # rested through bar 1, gapped over on bar 2


def test_a_stop_fills_at_its_price_on_trigger_or_at_the_open_if_gapped_through() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 104, 99, 103), (110, 111, 109, 110)]
    result = run(rows, {0: [("buy", 1.0, "stop", 103.0), ("buy", 1.0, "stop", 108.0)]}, slippage_bps=10.0)
    assert fills(result) == [(2, 1.0, pytest.approx(103 * 1.001)), (3, 1.0, pytest.approx(110 * 1.001))]
    sell = run([*rows[:2], (95, 96, 94, 95)], {0: [("sell", 1.0, "stop", 98.0)]})
    assert fills(sell) == [(2, -1.0, 95.0)]  # gapped below the stop: the open


# -- brackets --------------------------------------------------------------------------


def test_stop_loss_and_take_profit_close_the_position_at_their_levels() -> None:
    up = [(100, 100, 100, 100), (100, 100, 100, 100), (101, 103, 100.5, 102), (102, 102, 102, 102)]
    result = run(up, {0: [("buy", 1.0, "market", 0)]}, stop_loss_pct=1.0, take_profit_pct=2.0)
    assert fills(result) == [(1, 1.0, 100.0), (2, -1.0, 102.0)]  # take-profit at 100 x 1.02
    down = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100.5, 98.5, 99), (99, 99, 99, 99)]
    result = run(down, {0: [("buy", 1.0, "market", 0)]}, stop_loss_pct=1.0, take_profit_pct=2.0)
    assert fills(result) == [(1, 1.0, 100.0), (2, -1.0, 99.0)]  # stop-loss at 100 x 0.99
    assert result.round_trips[0].pnl == pytest.approx(-1.0)


def test_a_bar_touching_both_brackets_counts_the_stop_loss_first() -> None:
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 105, 95, 100), (100, 100, 100, 100)]
    result = run(rows, {0: [("buy", 1.0, "market", 0)]}, stop_loss_pct=1.0, take_profit_pct=2.0)
    assert fills(result)[1] == (2, -1.0, 99.0)


def test_short_brackets_mirror_the_long_ones() -> None:
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 102, 99.5, 101), (101, 101, 101, 101)]
    cls = scripted({0: [("sell", 1.0, "market", 0)]})
    result = run_backtest(
        bars(rows), cls, {}, BacktestConfig(fee_bps=0.0, sizer="fixed:1", stop_loss_pct=1.5), path="per-bar"
    )
    assert fills(result) == [(1, -1.0, 100.0), (2, 1.0, 101.5)]
    assert result.round_trips[0].side == "short"


def test_brackets_work_the_same_on_the_vectorised_path() -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 3000)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    data = OHLCV(
        T0 + np.arange(3000) * MINUTE, open_, high, low, close, np.ones(3000), symbol="X", timeframe="1m"
    )
    config = BacktestConfig(stop_loss_pct=0.5, take_profit_pct=0.8, slippage_bps=3)
    params = {"fast": 5, "slow": 20, "mode": "long-short"}
    a = run_backtest(data, "sma_cross", params, config, path="vectorised")
    b = run_backtest(data, "sma_cross", params, config, path="per-bar")
    assert a.round_trips == b.round_trips
    np.testing.assert_array_equal(a.equity, b.equity)
    no_brackets = run_backtest(data, "sma_cross", params, BacktestConfig(slippage_bps=3))
    assert a.final_equity != no_brackets.final_equity  # the brackets did something


# -- latency -----------------------------------------------------------------------------


def test_latency_in_bars_delays_the_fill() -> None:
    rows = [(100 + i, 100 + i, 100 + i, 100 + i) for i in range(6)]
    result = run(rows, {0: [("buy", 1.0, "market", 0)]}, latency_bars=2)
    assert fills(result) == [(3, 1.0, 103.0)]


def test_latency_in_time_reaches_the_first_bar_opening_after_arrival() -> None:
    rows = [(100 + i, 100 + i, 100 + i, 100 + i) for i in range(6)]
    # Decided at bar 0's close (t = 1 min), arrives at 2.5 min: bar 2 is in progress, bar 3 opens after.
    result = run(rows, {0: [("buy", 1.0, "market", 0)]}, latency_ns=90_000_000_000)
    assert fills(result) == [(3, 1.0, 103.0)]
    exact = run(rows, {0: [("buy", 1.0, "market", 0)]}, latency_ns=60_000_000_000)
    assert fills(exact) == [(2, 1.0, 102.0)]  # arrives exactly as bar 2 opens


# -- sizing and risk --------------------------------------------------------------------


def sma_data(n: int = 4000, seed: int = 5) -> OHLCV:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * (1 + rng.normal(0, 0.0005, n))
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    return OHLCV(T0 + np.arange(n) * MINUTE, open_, high, low, close, np.ones(n), symbol="X", timeframe="1m")


def test_fraction_of_equity_enters_with_that_share_of_equity_at_the_next_open_fee_included() -> None:
    data = sma_data()
    result = run_backtest(data, "sma_cross", {"fast": 5, "slow": 20}, BacktestConfig(fee_bps=10))
    first = result.round_trips[0]
    # Flat before the first trade: equity = cash. Notional + fee = 99.99 % of it.
    assert first.entry_price * first.quantity * 1.001 == pytest.approx(0.9999 * 100_000, rel=1e-12)
    signal = run_backtest(
        data, "sma_cross", {"fast": 5, "slow": 20}, BacktestConfig(fee_bps=10, size_at="signal")
    )
    bar = int(np.searchsorted(data.time_ns, signal.round_trips[0].entry_time_ns)) - 1
    # Sized at the signal's close, as the live node does; filled at the next open.
    assert signal.round_trips[0].quantity == pytest.approx(0.9999 * 100_000 / data.close[bar], rel=1e-12)


def test_fixed_size_trades_that_quantity_and_long_short_flips_through_zero() -> None:
    data = sma_data()
    result = run_backtest(
        data, "sma_cross", {"fast": 5, "slow": 20, "mode": "long-short"}, BacktestConfig(sizer="fixed:2")
    )
    assert {t.quantity for t in result.round_trips} == {2.0}
    sides = [t.side for t in result.round_trips]
    assert sides[:4] in (["long", "short", "long", "short"], ["short", "long", "short", "long"])
    assert np.max(np.abs(result.position)) == 2.0
    assert set(np.abs(result.fills.quantity[1:-1])) == {4.0}  # every flip sells/buys twice the size


def test_volatility_target_sizer_scales_with_the_strategy_on_both_paths() -> None:
    data = sma_data()
    config = BacktestConfig(sizer="voltarget:0.2:30:1")
    a = run_backtest(data, "sma_cross", {"fast": 5, "slow": 20}, config, path="vectorised")
    b = run_backtest(data, "sma_cross", {"fast": 5, "slow": 20}, config, path="per-bar")
    assert a.trades == b.trades > 0
    np.testing.assert_allclose(a.equity, b.equity, rtol=1e-9)
    # Leverage below 1 (target 20 % vs a far more volatile series): positions under the equity.
    for trade in a.round_trips:
        assert trade.entry_price * trade.quantity < 0.9 * 100_000


def test_the_risk_guard_rejects_orders_over_its_limits_on_both_paths() -> None:
    data = sma_data()
    params = {"fast": 5, "slow": 20}
    config = BacktestConfig(sizer="fixed:3", max_position=2.0)
    for path in ("per-bar", "vectorised"):
        result = run_backtest(data, "sma_cross", params, config, path=path)  # type: ignore[arg-type]
        assert result.trades == 0 and result.rejected > 0 and result.final_equity == 100_000
    notional = BacktestConfig(sizer="fixed:1", max_order_notional=50.0)
    assert run_backtest(data, "sma_cross", params, notional).trades == 0
    allowed = run_backtest(data, "sma_cross", params, BacktestConfig(sizer="fixed:1", max_position=2.0))
    assert allowed.trades > 0 and allowed.rejected == 0


# -- results -----------------------------------------------------------------------------


def test_results_are_deterministic_and_metrics_add_up() -> None:
    data = sma_data()
    a = run_backtest(
        data, "ema_cross", {"fast": 8, "slow": 21, "mode": "long-short"}, BacktestConfig(slippage_bps=2)
    )
    b = run_backtest(
        data, "ema_cross", {"fast": 8, "slow": 21, "mode": "long-short"}, BacktestConfig(slippage_bps=2)
    )
    assert a.round_trips == b.round_trips and a.final_equity == b.final_equity
    assert a.final_equity == pytest.approx(100_000 + sum(t.pnl for t in a.round_trips), rel=1e-12)
    assert a.fees == pytest.approx(sum(t.fees for t in a.round_trips), rel=1e-12)
    wins = sum(t.pnl > 0 for t in a.round_trips)
    assert a.win_rate_pct == pytest.approx(100 * wins / a.trades)
    out = a.to_dict()
    for key in (
        "trades",
        "final_equity",
        "total_return_pct",
        "max_drawdown_pct",
        "sharpe",
        "sortino",
        "win_rate_pct",
        "profit_factor",
        "fees",
        "bars",
        "elapsed_s",
    ):
        assert key in out
    assert out["trades"] == a.trades and out["bars"] == len(data)


def test_targets_can_be_backtested_directly() -> None:
    data = bars([(100.0 + i, 100.0 + i, 100.0 + i, 100.0 + i) for i in range(10)])
    target = np.array([0, 1, 1, 1, 0, 0, -1, -1, 0, 0], dtype=float)
    result = run_targets(data, target, BacktestConfig(fee_bps=0.0, sizer="fixed:1"))
    assert fills(result) == [(2, 1.0, 102.0), (5, -1.0, 105.0), (7, -1.0, 107.0), (9, 1.0, 109.0)]
    assert [t.pnl for t in result.round_trips] == [3.0, -2.0]


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="fee_bps"):
        BacktestConfig(fee_bps=-1)
    with pytest.raises(ValueError, match="sizer"):
        BacktestConfig(sizer="kelly:2")
    with pytest.raises(ValueError, match="latency_bars"):
        BacktestConfig(latency_bars=-1)
    with pytest.raises(ValueError, match="unknown strategy"):
        run_backtest(sma_data(100), "nope")
    with pytest.raises(ValueError, match="fast"):
        run_backtest(sma_data(100), "sma_cross", {"fast": 40, "slow": 20})


# -- ticks -------------------------------------------------------------------------------


def test_ticks_build_the_live_actors_bars_and_fill_at_the_next_trade() -> None:
    rng = np.random.default_rng(11)
    n = 6000
    times = T0 + np.cumsum(rng.integers(1, 4, n)) * 1_000_000_000  # a trade every 1-3 s
    prices = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.0008, n))), 2)
    result = run_ticks(
        times, prices, np.ones(n), "sma_cross", {"fast": 3, "slow": 8}, BacktestConfig(fee_bps=0.0)
    )
    assert result.trades > 5
    # The strategy saw the bars the live BarBuilder makes (the last minute's bar never
    # closes: no trade comes after it) and decided as on bars.
    minute = (times - times % MINUTE).astype(np.int64)
    starts = np.unique(minute)
    streaming = SmaCross("s", "v", "X", quantity=1.0, fast=3, slow=8)
    decisions = []
    for i, start in enumerate(starts[:-1]):
        close = float(prices[np.flatnonzero(minute == start)[-1]])
        before = streaming.exposure
        streaming.on_bar(Bar("v", "X", 60.0, int(start), close, close, close, close, 1.0))
        if streaming.exposure != before:
            decisions.append(i)
    # Each order fills at the trade after the one that closed its bar (the first of the next minute).
    closing = [int(b) - 1 for b in result.fills.bar]
    assert [int(np.searchsorted(starts, minute[k])) - 1 for k in closing] == decisions[: len(closing)]
    assert all(minute[k - 1] != minute[k] for k in closing)
    assert result.fills.price.tolist() == prices[result.fills.bar].tolist()
    assert len(closing) >= len(decisions) - 1  # a decision on the very last bar has no trade to fill


def test_per_bar_path_hands_the_strategy_its_fills() -> None:
    seen: list[Fill] = []

    class Recording(SmaCross):
        def on_fill(self, fill: Fill) -> list[OrderIntent]:
            seen.append(fill)
            return super().on_fill(fill)

    data = sma_data(1500)
    config = BacktestConfig(fee_bps=10, close_at_end=False)
    result = run_backtest(data, Recording, {"fast": 5, "slow": 20}, config, path="per-bar")
    assert len(seen) == len(result.fills) > 0
    assert [f.price for f in seen] == result.fills.price.tolist()
    assert all(f.fee == pytest.approx(0.001 * f.quantity * f.price) for f in seen)
    assert all(f.client_order_id.startswith("bt-") for f in seen)
