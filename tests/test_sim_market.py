import itertools
import math
import random
import time

import pytest

from sniperbot.messages import Quote, TradeTick
from sniperbot.venues.sim.market import TICKS_PER_BLOCK, TICKS_PER_CHUNK, TICKS_PER_PAGE, SimMarket, SimSymbol

BTC = SimSymbol("BTC-USD", 60_000.0, 2.0, 1.0, 0.5, 0.3)
ETH = SimSymbol("ETH-USD", 3_000.0, 3.0, 1.5, 5.0, 0.3)


def market(seed: int = 7) -> SimMarket:
    return SimMarket("sim", seed, [BTC, ETH], 0.1)


def quotes(events: list[Quote | TradeTick]) -> dict[str, Quote]:
    return {e.symbol: e for e in events if isinstance(e, Quote)}


def mid_path(m: SimMarket, symbol: str, start: int, count: int) -> list[float]:
    return [quotes(m.events_at(i, 0))[symbol].mid for i in range(start, start + count)]


PROBES = [0, 1, 4095, 4096, 123_456, 1_000_000, TICKS_PER_PAGE + 3, 5_000_000]


def test_same_seed_same_events_whatever_the_access_order() -> None:
    ascending = market()
    expected = {i: ascending.events_at(i, 1_000 + i) for i in PROBES}
    shuffled = market()
    order = list(PROBES)
    random.Random(3).shuffle(order)
    for i in order:
        assert shuffled.events_at(i, 1_000 + i) == expected[i]
    descending = market()
    for i in reversed(PROBES):
        assert descending.events_at(i, 1_000 + i) == expected[i]


def test_different_seeds_give_different_prices() -> None:
    a = quotes(market(1).events_at(50_000, 0))["BTC-USD"]
    b = quotes(market(2).events_at(50_000, 0))["BTC-USD"]
    assert a.bid != b.bid


def test_restart_at_index_one_million_matches_a_feed_that_ran_there() -> None:
    running = market()
    for i in range(999_000, 1_000_000, 7):
        running.events_at(i, 0)
    expected = running.events_at(1_000_000, 42)

    restarted = market()
    started = time.perf_counter()
    first = restarted.events_at(1_000_000, 42)
    elapsed_ms = (time.perf_counter() - started) * 1e3
    print(f"events_at(1_000_000) on a fresh SimMarket: {elapsed_ms:.1f} ms")
    assert first == expected


def test_wall_clock_index_since_epoch_is_served() -> None:
    m = market()
    ts_ns = 1_763_000_000_123_456_789
    index = m.index_at(ts_ns)
    assert m.ts_at(index) <= ts_ns < m.ts_at(index + 1)
    events = m.events_at(index, ts_ns)
    assert {q.symbol for q in quotes(events).values()} == {"BTC-USD", "ETH-USD"}
    assert all(e.ts_ns == ts_ns for e in events)


def test_index_zero_starts_at_start_price() -> None:
    q = quotes(market().events_at(0, 0))
    assert q["BTC-USD"].mid == pytest.approx(60_000.0, rel=1e-12)
    assert q["ETH-USD"].mid == pytest.approx(3_000.0, rel=1e-12)


def test_one_quote_per_symbol_and_sane_books() -> None:
    m = market()
    for i in range(0, 3_000):
        events = m.events_at(i, i)
        qs = [e for e in events if isinstance(e, Quote)]
        assert [q.symbol for q in qs] == ["BTC-USD", "ETH-USD"]
        for q in qs:
            assert 0 < q.bid < q.ask
            assert q.bid_size > 0 and q.ask_size > 0
            assert q.venue == "sim"


def test_trades_print_at_the_touch_with_the_configured_frequency() -> None:
    m = market()
    n, trades = 6_000, 0
    for i in range(n):
        events = m.events_at(i, i)
        book = quotes(events)
        for t in (e for e in events if isinstance(e, TradeTick)):
            trades += 1
            expected = book[t.symbol].ask if t.side == "buy" else book[t.symbol].bid
            assert t.price == expected
            assert t.size > 0
            assert t.trade_id == i
    rate = trades / (2 * n)
    assert 0.27 < rate < 0.33


def test_path_is_continuous_across_chunk_and_page_seams() -> None:
    m = market()
    # Worst case per tick is the volatile regime: 4 x 2 bps; 10 of those is a jump.
    limit = 10 * 4 * BTC.base_vol_bps * 1e-4
    for seam in (TICKS_PER_CHUNK, 37 * TICKS_PER_CHUNK, TICKS_PER_PAGE, 3 * TICKS_PER_PAGE):
        before, after = mid_path(m, "BTC-USD", seam - 1, 2)
        assert abs(math.log(after / before)) < limit


def test_volatile_regime_has_wider_spread_and_bigger_moves() -> None:
    m = market()
    blocks: dict[str, int] = {}
    for b in range(TICKS_PER_PAGE // TICKS_PER_BLOCK):
        blocks.setdefault(m.regime_at("BTC-USD", b * TICKS_PER_BLOCK), b)
        if {"calm", "volatile"} <= blocks.keys():
            break

    def stats(block: int) -> tuple[float, float]:
        qs = [
            quotes(m.events_at(i, 0))["BTC-USD"]
            for i in range(block * TICKS_PER_BLOCK, (block + 1) * TICKS_PER_BLOCK)
        ]
        spread_bps = sum((q.ask - q.bid) / q.mid for q in qs) / len(qs) * 1e4
        returns = [math.log(b.mid / a.mid) for a, b in itertools.pairwise(qs)]
        mean = sum(returns) / len(returns)
        vol_bps = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns)) * 1e4
        return spread_bps, vol_bps

    calm_spread, calm_vol = stats(blocks["calm"])
    wild_spread, wild_vol = stats(blocks["volatile"])
    assert calm_spread == pytest.approx(BTC.spread_bps, rel=0.2)
    assert calm_vol == pytest.approx(BTC.base_vol_bps, rel=0.2)
    assert wild_spread > 2 * calm_spread
    assert wild_vol > 2.5 * calm_vol


def test_a_day_at_ten_ticks_a_second_stays_in_a_sane_range() -> None:
    m = SimMarket("sim", 1, [BTC], 0.1)
    mids = [quotes(m.events_at(i, 0))["BTC-USD"].mid for i in range(0, 864_000, 2_000)]
    assert 0.6 * BTC.start_price < min(mids) and max(mids) < 1.6 * BTC.start_price
    assert max(mids) / min(mids) > 1.01  # it does move


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="index"):
        market().events_at(-1, 0)
    with pytest.raises(ValueError, match="unique"):
        SimMarket("sim", 1, [BTC, BTC], 0.1)
    with pytest.raises(ValueError, match="start_price"):
        SimMarket("sim", 1, [SimSymbol("X", 0.0, 1.0, 1.0, 1.0, 0.5)], 0.1)
    with pytest.raises(ValueError, match="tick_interval_s"):
        SimMarket("sim", 1, [BTC], 0.0)
