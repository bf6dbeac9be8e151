import msgspec
import pytest

from sniperbot.messages import Bar, Fill, OrderIntent, OrderUpdate
from sniperbot.strategies import STRATEGIES, SmaCross

# fast=2 / slow=4 on this series: golden cross on bar 4 (10.5 > 10.25 after 10 < 10.25),
# death cross on bar 8 (11.5 < 12 after 12.5 > 12). Hand-computed in the test names.
UP_THEN_DOWN = [11.0, 10.0, 10.0, 10.0, 11.0, 12.0, 13.0, 12.0, 11.0, 10.0, 9.0, 8.0]
GOLDEN, DEATH = 4, 8


def bar(i: int, close: float, symbol: str = "BTC-USD") -> Bar:
    return Bar(
        venue="sim",
        symbol=symbol,
        interval_s=60.0,
        start_ns=i * 60_000_000_000,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
        trades=1,
    )


def fill_for(intent: OrderIntent, quantity: float | None = None) -> Fill:
    return Fill(
        fill_id=f"{intent.intent_id}-f1",
        client_order_id=intent.intent_id,
        strategy_id=intent.strategy_id,
        venue=intent.venue,
        symbol=intent.symbol,
        side=intent.side,
        quantity=intent.quantity if quantity is None else quantity,
        price=100.0,
        fee=0.0,
    )


def update_for(intent: OrderIntent, status: str) -> OrderUpdate:
    return OrderUpdate(
        client_order_id=intent.intent_id,
        strategy_id=intent.strategy_id,
        venue=intent.venue,
        symbol=intent.symbol,
        status=status,  # type: ignore[arg-type]
    )


def strategy(**overrides: object) -> SmaCross:
    params: dict[str, object] = {
        "strategy_id": "s1",
        "venue": "sim",
        "symbol": "BTC-USD",
        "fast": 2,
        "slow": 4,
        "quantity": 1.0,
    } | overrides
    return SmaCross(**params)  # type: ignore[arg-type]


def run(s: SmaCross, closes: list[float], fill: bool = True) -> dict[int, list[OrderIntent]]:
    emitted: dict[int, list[OrderIntent]] = {}
    for i, close in enumerate(closes):
        intents = s.on_bar(bar(i, close))
        if intents:
            emitted[i] = intents
        if fill:
            for intent in intents:
                assert s.on_fill(fill_for(intent)) == []
    return emitted


def test_long_on_golden_cross_flat_on_death_cross_exactly_at_the_crosses() -> None:
    s = strategy()
    emitted = run(s, UP_THEN_DOWN)
    assert sorted(emitted) == [GOLDEN, DEATH]
    (buy,) = emitted[GOLDEN]
    assert (buy.intent_id, buy.intent_seq, buy.side, buy.quantity) == ("s1-1", 1, "buy", 1.0)
    assert (buy.order_type, buy.reduce_only, buy.venue, buy.symbol) == (
        "market",
        False,
        "sim",
        "BTC-USD",
    )
    assert buy.ts_ns == (GOLDEN + 1) * 60_000_000_000  # stamped at the bar's close
    (sell,) = emitted[DEATH]
    assert (sell.intent_id, sell.side, sell.quantity, sell.reduce_only) == (
        "s1-2",
        "sell",
        1.0,
        True,
    )
    assert s.position == 0.0
    assert s.next_intent_seq == 3


def test_long_short_mode_flips_to_short_on_the_death_cross() -> None:
    s = strategy(mode="long-short", quantity=0.5)
    emitted = run(s, UP_THEN_DOWN)
    (sell,) = emitted[DEATH]
    assert (sell.side, sell.quantity, sell.reduce_only) == ("sell", 1.0, False)
    assert s.position == -0.5


def test_in_flight_order_is_not_resent_and_partial_fills_count() -> None:
    s = strategy()
    emitted = run(s, UP_THEN_DOWN[:DEATH], fill=False)
    (buy,) = emitted[GOLDEN]
    assert s.pending == 1.0
    assert s.on_fill(fill_for(buy, 0.4)) == []
    assert (s.position, s.pending) == (0.4, pytest.approx(0.6))
    s.on_fill(fill_for(buy, 0.6))
    assert (s.position, s.pending) == (1.0, 0.0)
    s.on_order_update(update_for(buy, "filled"))
    # The death cross sells what was actually bought.
    (sell,) = s.on_bar(bar(DEATH, UP_THEN_DOWN[DEATH]))
    assert (sell.side, sell.quantity) == ("sell", 1.0)


def test_death_cross_while_buy_in_flight_nets_against_pending() -> None:
    s = strategy()
    emitted = run(s, UP_THEN_DOWN, fill=False)
    assert emitted[DEATH][0].side == "sell" and emitted[DEATH][0].quantity == 1.0
    assert s.pending == 0.0


def test_rejected_intent_is_not_retried_until_the_next_cross() -> None:
    s = strategy()
    closes = [*UP_THEN_DOWN, 9.0, 10.0, 11.0]  # golden cross again at bar 13
    emitted: dict[int, list[OrderIntent]] = {}
    for i, close in enumerate(closes):
        intents = s.on_bar(bar(i, close))
        if intents:
            emitted[i] = intents
        for intent in intents:
            s.on_order_update(update_for(intent, "rejected"))
    # The death cross finds nothing to sell: the rejected buy never became a position.
    assert sorted(emitted) == [GOLDEN, 13]
    assert [i.intent_id for i in emitted[13]] == ["s1-2"]
    assert s.position == 0.0 and s.pending == 0.0


def test_fills_of_other_strategies_are_ignored() -> None:
    s = strategy()
    (buy,) = run(s, UP_THEN_DOWN[: GOLDEN + 1], fill=False)[GOLDEN]
    s.on_fill(msgspec.structs.replace(fill_for(buy), strategy_id="someone-else"))
    assert s.position == 0.0 and s.pending == 1.0


def test_restore_resumes_position_and_intent_sequence() -> None:
    s = strategy()
    s.restore(position=1.0, next_intent_seq=17)
    emitted = run(s, UP_THEN_DOWN)
    # Holding the restored long, the golden cross needs no order; the death cross sells it.
    assert sorted(emitted) == [DEATH]
    (sell,) = emitted[DEATH]
    assert (sell.intent_id, sell.intent_seq, sell.quantity) == ("s1-17", 17, 1.0)
    assert s.next_intent_seq == 18


def test_next_intent_seq_can_be_given_at_construction() -> None:
    s = strategy(next_intent_seq=5)
    assert run(s, UP_THEN_DOWN)[GOLDEN][0].intent_id == "s1-5"


def test_flat_market_float_noise_never_fakes_a_cross() -> None:
    s = strategy(fast=2, slow=4)
    # A bid/ask bounce: both SMAs are equal in real arithmetic at every bar. The cross is
    # strict and has no tolerance; the SMAs' running sums are anchored at the first close,
    # which keeps a two-level bounce exact in floats, so nothing fires.
    closes = [100.5, 100.9] * 150
    assert run(s, closes) == {}
    # A flat market: windows of equal closes have their SMA exactly equal to the close
    # (plain running sums leave dust here that fakes a cross inside the flat stretches).
    flat = [4.29] + [162.84] * 30 + [182.64] * 30
    # Stepping up from a flat stretch starts from equality: strict, so not a cross either.
    assert run(strategy(fast=2, slow=4, mode="long-short"), flat) == {}


def test_bars_of_other_symbols_are_ignored() -> None:
    s = strategy()
    for i, close in enumerate(UP_THEN_DOWN):
        assert s.on_bar(bar(i, close, symbol="ETH-USD")) == []


def test_parameters_are_validated_by_name() -> None:
    with pytest.raises(ValueError, match="fast"):
        strategy(fast=0)
    with pytest.raises(ValueError, match="slow"):
        strategy(fast=3, slow=3)
    with pytest.raises(ValueError, match="quantity"):
        strategy(quantity=0.0)


def test_registry_names_the_strategy() -> None:
    assert STRATEGIES["sma_cross"] is SmaCross
