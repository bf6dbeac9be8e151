"""The strategy API: parameters, streaming == vectorised targets, sizing, intents, restore."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest

from sniperbot.messages import Bar, Fill, OrderIntent, TradeTick
from sniperbot.risk.sizing import FixedSize, FractionOfEquity, VolatilityTarget
from sniperbot.strategies import (
    MODE,
    STRATEGIES,
    BollingerBreakout,
    EmaCross,
    MacdCross,
    Param,
    RsiReversion,
    SmaCross,
    Strategy,
)

Ohlcv = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def walk(n: int, seed: int, tick: float | None = None, flat_every: int = 0) -> Ohlcv:
    """Random-walk OHLCV; optionally on a price tick grid with flat stretches (ties happen)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.003, n)))
    if flat_every:
        for start in range(flat_every, n - 60, flat_every):
            close[start : start + 40] = close[start - 1]
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.001, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.001, n)))
    if tick is not None:
        open_, high, low, close = (np.round(a / tick) * tick for a in (open_, high, low, close))
    return open_, high, low, close, rng.lognormal(0.0, 1.0, n)


def bars_of(ohlcv: Ohlcv, symbol: str = "BTC/USDT") -> list[Bar]:
    o, h, lo, c, v = (a.tolist() for a in ohlcv)
    return [
        Bar(
            venue="sim",
            symbol=symbol,
            interval_s=60.0,
            start_ns=i * 60_000_000_000,
            open=o[i],
            high=h[i],
            low=lo[i],
            close=c[i],
            volume=v[i],
        )
        for i in range(len(c))
    ]


def fill_for(intent: OrderIntent, price: float) -> Fill:
    return Fill(
        fill_id=f"{intent.intent_id}-f",
        client_order_id=intent.intent_id,
        strategy_id=intent.strategy_id,
        venue=intent.venue,
        symbol=intent.symbol,
        side=intent.side,
        quantity=intent.quantity,
        price=price,
        fee=0.0,
    )


def make(cls: type[Strategy], **params: Any) -> Strategy:
    return cls(strategy_id="s1", venue="sim", symbol="BTC/USDT", quantity=2.0, **params)


# Non-default parameters too, so the parity check is not tied to one configuration.
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("sma_cross", {}),
    ("sma_cross", {"fast": 3, "slow": 7}),
    ("ema_cross", {}),
    ("ema_cross", {"fast": 2, "slow": 9}),
    ("rsi_reversion", {}),
    ("rsi_reversion", {"period": 3, "oversold": 15.0, "exit_level": 55.0, "overbought": 85.0}),
    ("bollinger_breakout", {}),
    ("bollinger_breakout", {"period": 5, "k": 1.0}),
    ("macd", {}),
    ("macd", {"fast": 3, "slow": 10, "signal": 4}),
]
MARKETS = {
    "walk": walk(20_000, seed=3),
    "ticks-and-flats": walk(20_000, seed=4, tick=0.01, flat_every=500),
}


@pytest.mark.parametrize("mode", ["long", "long-short"])
@pytest.mark.parametrize("market", sorted(MARKETS))
@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_streaming_targets_equal_vectorised_targets_bar_by_bar(
    name: str, params: dict[str, Any], market: str, mode: str
) -> None:
    cls = STRATEGIES[name]
    ohlcv = MARKETS[market]
    vectorised = cls.target_exposure(*ohlcv, mode=mode, **params)
    strategy = make(cls, mode=mode, **params)
    streaming = np.empty(len(vectorised))
    for i, bar in enumerate(bars_of(ohlcv)):
        for intent in strategy.on_bar(bar):
            strategy.on_fill(fill_for(intent, bar.close))
        streaming[i] = strategy.exposure
        # Every change of target is traded at once, so the book follows the target.
        assert strategy.position == pytest.approx(2.0 * strategy.exposure)
    np.testing.assert_array_equal(streaming, vectorised)
    changes = int(np.count_nonzero(np.diff(vectorised)))
    assert changes >= 20, "the case must actually trade"
    assert set(np.unique(vectorised)) <= ({0.0, 1.0} if mode == "long" else {-1.0, 0.0, 1.0})
    if mode == "long-short":
        assert (vectorised < 0).any()


def test_registry_names_every_shipped_strategy() -> None:
    assert set(STRATEGIES) == {
        "sma_cross",
        "ema_cross",
        "rsi_reversion",
        "bollinger_breakout",
        "macd",
        "social_breakout",
    }
    # The one that reads signals (issue 15) has no vectorised form and no short side.
    assert STRATEGIES["social_breakout"].uses_signals() and not STRATEGIES["social_breakout"].has_vectorised()
    for name, cls in STRATEGIES.items():
        if cls.uses_signals():
            continue
        assert cls.name == name and cls.has_vectorised()
        assert cls.params["mode"] is MODE
    assert STRATEGIES["sma_cross"] is SmaCross and STRATEGIES["macd"] is MacdCross


def test_defaults_and_the_live_node_constructor_contract() -> None:
    # The strategy actor builds STRATEGIES[name](strategy_id=, venue=, symbol=, quantity=, **params).
    for cls in STRATEGIES.values():
        s = cls(strategy_id="x", venue="sim", symbol="BTC/USDT", quantity=0.5)
        assert isinstance(s.sizer, FixedSize) and s.sizer.size == 0.5
        assert s.parameters == {key: spec.default for key, spec in cls.params.items()}
    s = SmaCross(strategy_id="x", venue="sim", symbol="BTC/USDT", quantity=1.0, fast=2, slow=5)
    assert (s.fast, s.slow, s.mode) == (2, 5, "long")
    assert repr(s) == "SmaCross('x', 'BTC/USDT', fast=2, slow=5, mode='long', sizer=FixedSize(1.0))"


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (SmaCross, {"fast": 0}, "sma_cross: parameter 'fast' must be in [1, inf], got 0"),
        (SmaCross, {"fast": 5, "slow": 5}, "sma_cross: parameter 'slow' (5) must be greater than 'fast' (5)"),
        (SmaCross, {"fast": 8, "slow": 3}, "parameter 'slow' (3) must be greater than 'fast' (8)"),
        (SmaCross, {"fast": 2.5}, "sma_cross: parameter 'fast' must be an integer in [1, inf], got 2.5"),
        (SmaCross, {"fast": True}, "parameter 'fast' must be a number in [1, inf], got True"),
        (SmaCross, {"fast": "2"}, "parameter 'fast' must be a number"),
        (SmaCross, {"zzz": 1}, "sma_cross: unknown parameter 'zzz' (known: fast, slow, mode)"),
        (SmaCross, {"mode": "short"}, "parameter 'mode' must be one of 'long', 'long-short', got 'short'"),
        (
            RsiReversion,
            {"oversold": 120.0},
            "rsi_reversion: parameter 'oversold' must be in [0, 100], got 120.0",
        ),
        (
            RsiReversion,
            {"oversold": 60.0},
            "rsi_reversion: parameter 'exit_level' (50.0) must be greater than 'oversold' (60.0)",
        ),
        (RsiReversion, {"period": 1}, "parameter 'period' must be in [2, inf], got 1"),
        (BollingerBreakout, {"k": -1.0}, "bollinger_breakout: parameter 'k' must be in [0, inf], got -1.0"),
        (BollingerBreakout, {"k": math.nan}, "parameter 'k' must be a finite number"),
        (MacdCross, {"fast": 26, "slow": 12}, "macd: parameter 'slow' (12) must be greater than 'fast' (26)"),
        (EmaCross, {"slow": 1}, "ema_cross: parameter 'slow' must be in [2, inf], got 1"),
    ],
)
def test_parameter_validation_names_the_parameter_and_its_range(
    cls: type[Strategy], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        make(cls, **params)
    assert message in str(raised.value)
    # The vectorised path and an optimiser's pre-check refuse the same way.
    with pytest.raises(ValueError, match="parameter"):
        cls.target_exposure(*walk(50, seed=1), **params)
    with pytest.raises(ValueError, match="parameter"):
        cls.validate_params(params)


def test_grid_values_from_numpy_are_accepted_as_integers() -> None:
    values = SmaCross.validate_params({"fast": np.int64(5), "slow": 20.0})
    assert values == {"fast": 5, "slow": 20, "mode": "long"}
    assert type(values["fast"]) is int and type(values["slow"]) is int


def test_command_line_text_is_parsed_by_the_declared_types() -> None:
    assert SmaCross.parse_params({"fast": "5", "slow": "40", "mode": "long-short"}) == {
        "fast": 5,
        "slow": 40,
        "mode": "long-short",
    }
    assert BollingerBreakout.parse_params({"k": "1.5"})["k"] == 1.5
    with pytest.raises(ValueError, match="sma_cross: parameter 'fast' must be an integer, got 'ten'"):
        SmaCross.parse_params({"fast": "ten"})
    with pytest.raises(ValueError, match="unknown parameter 'fsat'"):
        SmaCross.parse_params({"fsat": "5"})


def test_quantity_or_sizer_is_required_and_checked() -> None:
    with pytest.raises(ValueError, match="quantity"):
        SmaCross(strategy_id="s", venue="v", symbol="x", quantity=0.0)
    with pytest.raises(ValueError, match="quantity"):
        SmaCross(strategy_id="s", venue="v", symbol="x")
    with pytest.raises(ValueError, match="not both"):
        SmaCross(strategy_id="s", venue="v", symbol="x", quantity=1.0, sizer=FixedSize(1.0))
    with pytest.raises(ValueError, match="next_intent_seq"):
        SmaCross(strategy_id="s", venue="v", symbol="x", quantity=1.0, next_intent_seq=0)


def test_a_strategy_may_not_declare_a_reserved_parameter_name() -> None:
    with pytest.raises(TypeError, match="reserved"):

        class Bad(Strategy):
            params: ClassVar = {"symbol": Param("x")}

    with pytest.raises(TypeError, match="unknown parameter 'slow'"):

        class AlsoBad(Strategy):
            params: ClassVar = {"fast": Param(1)}
            ordered = (("fast", "slow"),)


# fast=2 / slow=4: fast == slow on bar 3 (a flat window), then fast > slow on bar 4.
TOUCH_THEN_UP = [10.0, 10.0, 10.0, 10.0, 11.0, 12.0, 13.0, 12.0, 11.0, 10.0, 9.0, 8.0]


def test_a_cross_is_strict_equal_averages_are_no_cross() -> None:
    # Reference convention: fast[i-1] < slow[i-1] and fast[i] > slow[i]. Coming up from
    # equality is not a golden cross (the SMAs of a flat window are exactly equal).
    s = make(SmaCross, fast=2, slow=4)
    ohlcv = tuple(np.array(TOUCH_THEN_UP) for _ in range(5))
    emitted = [s.on_bar(bar) for bar in bars_of(ohlcv)]  # type: ignore[arg-type]
    assert not any(emitted)
    assert not SmaCross.target_exposure(*ohlcv, fast=2, slow=4).any()


def test_intents_are_sized_by_the_sizer_and_ids_are_deterministic() -> None:
    s = SmaCross(
        strategy_id="s7", venue="sim", symbol="BTC/USDT", sizer=FractionOfEquity(0.5), fast=2, slow=4
    )
    closes = [11.0, 10.0, 10.0, 10.0, 11.0, 12.0, 13.0, 12.0, 11.0, 10.0]
    ohlcv = tuple(np.array(closes) for _ in range(5))
    bars = bars_of(ohlcv)  # type: ignore[arg-type]
    for bar in bars[:4]:
        assert s.on_bar(bar) == []
    with pytest.raises(ValueError, match="needs the account equity"):
        s.on_bar(bars[4])  # the golden cross: FractionOfEquity cannot size without equity
    s2 = SmaCross(
        strategy_id="s7", venue="sim", symbol="BTC/USDT", sizer=FractionOfEquity(0.5), fast=2, slow=4
    )
    s2.equity = 1000.0
    assert s.exposure == 0.0 and s.next_intent_seq == 1  # the failed change left no trace
    intents = [i for bar in bars for i in s2.on_bar(bar)]
    buy, sell = intents  # golden cross on bar 4, death cross on bar 8 (the buy never filled)
    assert (buy.intent_id, buy.intent_seq, buy.side) == ("s7-1", 1, "buy")
    assert buy.quantity == pytest.approx(0.5 * 1000.0 / 11.0)  # sized at the deciding close
    assert buy.ts_ns == 5 * 60_000_000_000
    assert (sell.intent_id, sell.side, sell.quantity) == ("s7-2", "sell", buy.quantity)


def test_volatility_target_sizer_is_fed_bar_closes() -> None:
    sizer = VolatilityTarget(target_vol=0.5, lookback=5, periods_per_year=525_600.0)
    s = SmaCross(strategy_id="s", venue="sim", symbol="BTC/USDT", sizer=sizer, fast=2, slow=4)
    s.equity = 10_000.0
    ohlcv = walk(300, seed=5)
    intents = [i for bar in bars_of(ohlcv) for i in s.on_bar(bar)]
    assert intents
    quantities = sizer.quantities(ohlcv[3], equity=10_000.0)
    assert sizer.leverage > 0
    first_buy = next(i for i in intents if i.side == "buy")
    bar_index = first_buy.ts_ns // 60_000_000_000 - 1
    assert first_buy.quantity == pytest.approx(quantities[bar_index], rel=1e-9)


def test_restore_takes_the_position_sign_as_the_current_target() -> None:
    # fast=2 / slow=4: golden cross on bar 4, death cross on bar 8.
    closes = np.array([11.0, 10.0, 10.0, 10.0, 11.0, 12.0, 13.0, 12.0, 11.0, 10.0, 9.0, 8.0])
    bars = bars_of((closes, closes, closes, closes, closes))
    s = make(SmaCross, fast=2, slow=4)
    s.restore(position=2.0, next_intent_seq=41)
    assert s.exposure == 1.0
    emitted = {i: s.on_bar(bar) for i, bar in enumerate(bars)}
    assert emitted[4] == []  # already long: the golden cross needs no order
    (sell,) = emitted[8]
    assert (sell.intent_id, sell.side, sell.quantity, sell.reduce_only) == ("s1-41", "sell", 2.0, True)
    short = make(SmaCross, fast=2, slow=4, mode="long-short")
    short.restore(position=-1.5, next_intent_seq=7)
    assert short.exposure == -1.0
    (buy,) = [i for bar in bars[:5] for i in short.on_bar(bar)]
    assert (buy.intent_id, buy.side, buy.quantity, buy.reduce_only) == ("s1-7", "buy", 3.5, False)


def test_a_rejected_change_is_not_retried_until_the_next_change() -> None:
    s = make(RsiReversion, period=3)
    ohlcv = walk(2000, seed=7)
    sent = 0
    from sniperbot.messages import OrderUpdate

    for bar in bars_of(ohlcv):
        for intent in s.on_bar(bar):
            sent += 1
            s.on_order_update(
                OrderUpdate(
                    client_order_id=intent.intent_id,
                    strategy_id="s1",
                    venue="sim",
                    symbol="BTC/USDT",
                    status="rejected",
                )
            )
    targets = RsiReversion.target_exposure(*ohlcv, period=3)
    buys = int(np.count_nonzero(np.diff(targets, prepend=0.0) > 0))
    # Only entries produce intents (exits find nothing to sell), one per change.
    assert sent == buys and s.position == 0.0 and s.pending == 0.0


def test_bars_and_fills_for_other_symbols_are_ignored_and_ticks_do_nothing() -> None:
    s = make(SmaCross, fast=2, slow=4)
    for bar in bars_of(walk(100, seed=8), symbol="ETH/USDT"):
        assert s.on_bar(bar) == []
    tick = TradeTick(venue="sim", symbol="BTC/USDT", price=1.0, size=1.0, side="buy", trade_id=1, ts_ns=0)
    assert s.on_tick(tick) == []


def test_target_exposure_checks_array_shapes() -> None:
    o, h, lo, c, v = walk(50, seed=1)
    with pytest.raises(ValueError, match="length of close"):
        SmaCross.target_exposure(o[:-1], h, lo, c, v)
    assert SmaCross.target_exposure(o.tolist(), h, lo, c, v).dtype == np.float64


def test_a_user_strategy_without_a_vectorised_form_still_runs_live() -> None:
    class AlwaysLong(Strategy):
        name = "always_long"
        params: ClassVar = {"mode": MODE}

        def decide(self, bar: Bar) -> float | None:
            return 1.0

    assert not AlwaysLong.has_vectorised()
    s = AlwaysLong(strategy_id="a", venue="sim", symbol="BTC/USDT", quantity=3.0)
    (buy,) = s.on_bar(bars_of(walk(1, seed=1))[0])
    assert (buy.side, buy.quantity) == ("buy", 3.0)
    with pytest.raises(NotImplementedError):
        AlwaysLong.target_exposure(*walk(5, seed=1))
