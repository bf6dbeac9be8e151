import pytest

from sniperbot.market import BarBuilder
from sniperbot.messages import Bar, TradeTick

S = 1_000_000_000


def trade(ts_ns: int, price: float, size: float = 1.0, symbol: str = "BTC-USD") -> TradeTick:
    return TradeTick(
        venue="sim", symbol=symbol, price=price, size=size, side="buy", trade_id=ts_ns, ts_ns=ts_ns
    )


def test_trades_in_one_interval_make_one_ohlcv_bar_closed_by_a_later_trade() -> None:
    b = BarBuilder("sim", "BTC-USD", 60.0)
    t0 = 1_700_000_040 * S  # a whole minute since the epoch
    assert b.on_trade(trade(t0 + 1 * S, 100.0, 1.0)) == []
    assert b.on_trade(trade(t0 + 10 * S, 105.0, 2.0)) == []
    assert b.on_trade(trade(t0 + 20 * S, 98.0, 0.5)) == []
    assert b.on_trade(trade(t0 + 59 * S, 101.0, 1.5)) == []
    closed = b.on_trade(trade(t0 + 60 * S, 102.0))
    assert closed == [
        Bar(
            venue="sim",
            symbol="BTC-USD",
            interval_s=60.0,
            start_ns=t0,
            open=100.0,
            high=105.0,
            low=98.0,
            close=101.0,
            volume=5.0,
            trades=4,
        )
    ]


def test_bars_are_aligned_to_multiples_of_the_interval_since_epoch() -> None:
    b = BarBuilder("sim", "BTC-USD", 5.0)
    b.on_trade(trade(12 * S + 345, 1.0))
    (bar,) = b.on_time(15 * S)
    assert bar.start_ns == 10 * S


def test_on_time_closes_a_bar_only_once_its_interval_has_ended() -> None:
    b = BarBuilder("sim", "BTC-USD", 1.0)
    b.on_trade(trade(10 * S + 100, 50.0))
    assert b.on_time(11 * S - 1) == []
    (bar,) = b.on_time(11 * S)
    assert (bar.start_ns, bar.close, bar.trades) == (10 * S, 50.0, 1)
    assert b.on_time(12 * S) == []  # emitted once


def test_intervals_without_trades_produce_no_bar() -> None:
    b = BarBuilder("sim", "BTC-USD", 1.0)
    b.on_trade(trade(10 * S, 50.0))
    (bar,) = b.on_trade(trade(15 * S, 51.0))  # four silent seconds in between
    assert bar.start_ns == 10 * S
    assert b.on_time(14 * S) == []
    (bar,) = b.on_time(16 * S)
    assert bar.start_ns == 15 * S


def test_trade_after_its_bar_was_closed_by_the_clock_is_dropped_and_counted() -> None:
    b = BarBuilder("sim", "BTC-USD", 1.0)
    b.on_trade(trade(10 * S, 50.0))
    b.on_time(11 * S)
    assert b.on_trade(trade(10 * S + 5, 49.0)) == []
    assert b.late_trades == 1
    b.on_trade(trade(12 * S, 52.0))
    assert b.on_trade(trade(11 * S + 5, 60.0)) == []  # older than the open bar
    assert b.late_trades == 2
    (bar,) = b.on_time(13 * S)
    assert (bar.open, bar.high, bar.trades) == (52.0, 52.0, 1)


def test_other_symbols_are_ignored() -> None:
    b = BarBuilder("sim", "BTC-USD", 1.0)
    assert b.on_trade(trade(10 * S, 50.0, symbol="ETH-USD")) == []
    assert b.on_time(20 * S) == []


def test_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        BarBuilder("sim", "BTC-USD", 0.0)


def test_a_close_delay_keeps_a_trade_printed_before_the_end_and_delivered_after_it() -> None:
    """Live strategies close on the clock a little after the end: an in-flight trade still counts."""
    b = BarBuilder("sim", "BTC-USD", 1.0, close_delay_s=0.1)
    b.on_trade(trade(10 * S + 100, 50.0))
    assert b.on_time(11 * S + 50_000_000) == []  # the end has passed, the delay has not
    assert b.on_trade(trade(11 * S - 5, 49.0)) == []  # printed before the end, arrived after it
    (bar,) = b.on_time(11 * S + 100_000_000)
    assert (bar.close, bar.trades) == (49.0, 2)
    assert b.late_trades == 0
    # A trade of the next interval still closes the bar at once, delay or not.
    b.on_trade(trade(12 * S, 51.0))
    (bar,) = b.on_trade(trade(13 * S, 52.0))
    assert (bar.start_ns, bar.close) == (12 * S, 51.0)


def test_a_negative_close_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="close_delay_s"):
        BarBuilder("sim", "BTC-USD", 1.0, close_delay_s=-0.1)
