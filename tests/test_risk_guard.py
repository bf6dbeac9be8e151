import math

import pytest

from sniperbot.messages import Fill, OrderIntent, OrderUpdate, RiskStatus
from sniperbot.risk import RiskGuard, RiskLimits

S = 1_000_000_000
LIMITS = RiskLimits(max_order_notional=10_000.0, max_position=2.0, max_orders_per_second=3)
PRICE = 1_000.0


def intent(seq: int, side: str, quantity: float, **extra: object) -> OrderIntent:
    return OrderIntent(
        intent_id=f"s1-{seq}",
        strategy_id="s1",
        intent_seq=seq,
        venue="sim",
        symbol="BTC-USD",
        side=side,  # type: ignore[arg-type]
        quantity=quantity,
        **extra,  # type: ignore[arg-type]
    )


def fill(of: OrderIntent, quantity: float | None = None) -> Fill:
    return Fill(
        fill_id=f"{of.intent_id}-f1",
        client_order_id=of.intent_id,
        strategy_id=of.strategy_id,
        venue=of.venue,
        symbol=of.symbol,
        side=of.side,
        quantity=of.quantity if quantity is None else quantity,
        price=PRICE,
        fee=0.0,
    )


def update(of: OrderIntent, status: str) -> OrderUpdate:
    return OrderUpdate(
        client_order_id=of.intent_id,
        strategy_id=of.strategy_id,
        venue=of.venue,
        symbol=of.symbol,
        status=status,  # type: ignore[arg-type]
    )


def test_order_within_limits_is_approved_and_counted_as_pending() -> None:
    g = RiskGuard(LIMITS)
    assert g.check(intent(1, "buy", 1.0), PRICE, 0) is None
    assert (g.approved, g.rejected) == (1, 0)
    assert g.positions == {}
    assert g.exposure("sim", "BTC-USD") == 1.0


@pytest.mark.parametrize("quantity", [0.0, -1.0, math.nan, math.inf])
def test_invalid_quantity(quantity: float) -> None:
    assert RiskGuard(LIMITS).check(intent(1, "buy", quantity), PRICE, 0) == "invalid_quantity"


def test_halted_blocks_everything_including_reductions() -> None:
    g = RiskGuard(LIMITS)
    g.restore_positions({("sim", "BTC-USD"): 1.0})
    g.set_state("HALTED")
    assert g.check(intent(1, "sell", 1.0), PRICE, 0) == "halted"
    assert g.check(intent(2, "buy", 1.0), PRICE, 0) == "halted"
    assert (g.approved, g.rejected) == (0, 2)


def test_no_price_unless_the_limit_price_can_value_the_order() -> None:
    g = RiskGuard(LIMITS)
    assert g.check(intent(1, "buy", 1.0), None, 0) == "no_price"
    assert g.check(intent(2, "buy", 1.0), math.nan, 0) == "no_price"
    limit = intent(3, "buy", 1.0, order_type="limit", limit_price=PRICE)
    assert g.check(limit, None, 0) is None


def test_max_order_notional_is_inclusive_at_the_limit() -> None:
    g = RiskGuard(LIMITS)
    assert g.check(intent(1, "buy", 1.0), 10_000.0, 0) is None
    assert g.check(intent(2, "buy", 1.0), 10_000.01, 0) == "max_order_notional"


def test_limit_order_is_valued_at_the_higher_of_reference_and_limit() -> None:
    g = RiskGuard(LIMITS)
    rich = intent(1, "buy", 1.0, order_type="limit", limit_price=20_000.0)
    assert g.check(rich, PRICE, 0) == "max_order_notional"


def test_max_position_counts_pending_orders_and_releases_them_on_reject() -> None:
    g = RiskGuard(LIMITS)
    first = intent(1, "buy", 1.5)
    assert g.check(first, PRICE, 0) is None
    assert g.check(intent(2, "buy", 1.0), PRICE, 0) == "max_position"
    g.on_order_update(update(first, "rejected"))
    assert g.check(intent(3, "buy", 1.0), PRICE, 0) is None


def test_cancel_also_releases_pending() -> None:
    g = RiskGuard(LIMITS)
    first = intent(1, "sell", 2.0)
    assert g.check(first, PRICE, 0) is None
    g.on_order_update(update(first, "cancelled"))
    assert g.exposure("sim", "BTC-USD") == 0.0


def test_reductions_pass_even_when_a_position_exceeds_a_lowered_limit() -> None:
    g = RiskGuard(LIMITS)
    g.restore_positions({("sim", "BTC-USD"): 3.0})
    assert g.check(intent(1, "buy", 0.1), PRICE, 0) == "max_position"
    assert g.check(intent(2, "sell", 0.5), PRICE, 0) is None


def test_rate_limit_is_a_sliding_one_second_window_of_approvals() -> None:
    g = RiskGuard(LIMITS)
    t = 100 * S
    for k, dt in enumerate((0, S // 10, S // 5)):
        assert g.check(intent(k + 1, "buy", 0.1), PRICE, t + dt) is None
    assert g.check(intent(4, "buy", 0.1), PRICE, t + S // 2) == "max_order_rate"
    # Rejections do not fill the window; the first approval leaves it at exactly t + 1 s.
    assert g.check(intent(5, "buy", 0.1), PRICE, t + S - 1) == "max_order_rate"
    assert g.check(intent(6, "buy", 0.1), PRICE, t + S) is None


def test_reducing_state_passes_only_reductions() -> None:
    g = RiskGuard(LIMITS, state="REDUCING")
    assert g.check(intent(1, "buy", 0.5), PRICE, 0) == "reducing_only"  # flat: nothing to cut
    g.restore_positions({("sim", "BTC-USD"): 1.0})
    assert g.check(intent(2, "buy", 0.5), PRICE, 0) == "reducing_only"
    assert g.check(intent(3, "sell", 1.5), PRICE, 0) == "reducing_only"  # would flip short
    assert g.check(intent(4, "sell", 0.6), PRICE, 0) is None
    # 0.6 is already on its way out: another 0.6 would flip the exposure.
    assert g.check(intent(5, "sell", 0.6), PRICE, 0) == "reducing_only"
    assert g.check(intent(6, "sell", 0.4), PRICE, 0) is None
    g.set_state("ACTIVE")
    assert g.check(intent(7, "buy", 0.5), PRICE, 0) is None


def test_reduce_only_intent_that_would_grow_the_position_is_refused() -> None:
    g = RiskGuard(LIMITS)
    assert g.check(intent(1, "buy", 0.5, reduce_only=True), PRICE, 0) == "reducing_only"


def test_fills_move_pending_into_position() -> None:
    g = RiskGuard(LIMITS)
    buy = intent(1, "buy", 1.5)
    g.check(buy, PRICE, 0)
    g.on_fill(fill(buy, 1.0))
    assert g.positions == {("sim", "BTC-USD"): 1.0}
    assert g.pending("sim", "BTC-USD") == pytest.approx(0.5)
    g.on_fill(fill(buy, 0.5))
    assert g.positions == {("sim", "BTC-USD"): 1.5}
    assert g.pending("sim", "BTC-USD") == 0.0
    g.on_order_update(update(buy, "filled"))
    assert g.exposure("sim", "BTC-USD") == 1.5


def test_the_same_intent_is_not_approved_twice_while_in_flight() -> None:
    g = RiskGuard(LIMITS)
    assert g.check(intent(1, "buy", 1.0), PRICE, 0) is None
    assert g.check(intent(1, "buy", 1.0), PRICE, 0) == "duplicate_intent"
    assert g.exposure("sim", "BTC-USD") == 1.0


def test_status_message_and_state_validation() -> None:
    g = RiskGuard(LIMITS)
    g.check(intent(1, "buy", 1.0), PRICE, 0)
    g.check(intent(2, "buy", 0.0), PRICE, 0)
    g.set_state("REDUCING")
    assert g.status(7) == RiskStatus(trading_state="REDUCING", approved=1, rejected=1, ts_ns=7)
    with pytest.raises(ValueError, match="state"):
        g.set_state("PANIC")
    with pytest.raises(ValueError, match="state"):
        RiskGuard(LIMITS, state="nope")  # type: ignore[arg-type]


# ---- spend caps (a sniper's budget): per instrument and per UTC day, and open positions

DAY = 86_400 * S
CAPS = RiskLimits(
    max_order_notional=10_000.0,
    max_position=100.0,
    max_orders_per_second=100,
    max_spend_per_symbol=2_500.0,
    max_spend_per_day=4_000.0,
    max_open_positions=2,
)


def on(symbol: str, seq: int, side: str, quantity: float, ts_ns: int = 0) -> OrderIntent:
    return OrderIntent(
        intent_id=f"s1-{seq}", strategy_id="s1", intent_seq=seq, venue="chain", symbol=symbol,
        side=side, quantity=quantity, ts_ns=ts_ns,  # type: ignore[arg-type]
    )  # fmt: skip


def filled(of: OrderIntent, ts_ns: int = 0) -> Fill:
    return Fill(
        fill_id=f"{of.intent_id}-f", client_order_id=of.intent_id, strategy_id="s1", venue=of.venue,
        symbol=of.symbol, side=of.side, quantity=of.quantity, price=PRICE, fee=0.0, ts_ns=ts_ns,
    )  # fmt: skip


def test_spend_per_symbol_counts_fills_and_unfilled_buys_and_frees_a_rejected_one() -> None:
    g = RiskGuard(CAPS)
    first = on("A/WETH", 1, "buy", 2.0)
    assert g.check(first, PRICE, 0) is None  # 2,000 of 2,500
    assert g.check(on("A/WETH", 2, "buy", 1.0), PRICE, 0) == "max_spend_symbol: 2000 spent + 1000 > 2500"
    g.on_order_update(update(first, "rejected"))  # spent nothing
    assert g.check(on("A/WETH", 3, "buy", 2.0), PRICE, 0) is None
    g.on_fill(filled(on("A/WETH", 3, "buy", 2.0)))
    assert g.spent("chain", "A/WETH") == 2_000.0
    assert g.check(on("A/WETH", 4, "buy", 0.6), PRICE, 0).startswith("max_spend_symbol")
    # Selling is never capped by spend: a sniper must always be able to get out.
    assert g.check(on("A/WETH", 5, "sell", 2.0), PRICE, 0) is None


def test_spend_per_day_sums_every_instrument_and_resets_at_utc_midnight() -> None:
    g = RiskGuard(CAPS)
    for seq, symbol in ((1, "A/WETH"), (2, "B/WETH")):
        buy = on(symbol, seq, "buy", 2.0)
        assert g.check(buy, PRICE, 10 * S) is None
        g.on_fill(filled(buy, 10 * S))
        g.on_fill(filled(on(symbol, seq + 10, "sell", 2.0), 11 * S))  # closed: not open any more
    assert g.check(on("C/WETH", 3, "buy", 0.5), PRICE, 12 * S) == "max_spend_day: 4000 spent + 500 > 4000"
    assert g.check(on("C/WETH", 4, "buy", 0.5), PRICE, DAY + 1) is None  # a new UTC day


def test_open_positions_cap_refuses_a_new_instrument_but_not_adding_or_exiting() -> None:
    g = RiskGuard(CAPS)
    for seq, symbol in ((1, "A/WETH"), (2, "B/WETH")):
        buy = on(symbol, seq, "buy", 1.0)
        assert g.check(buy, PRICE, 0) is None
        g.on_fill(filled(buy))
    assert g.check(on("C/WETH", 3, "buy", 1.0), PRICE, 0) == "max_open_positions: 2 open >= 2"
    assert g.check(on("A/WETH", 4, "buy", 0.1), PRICE, 0) is None  # grows an open one
    assert g.check(on("B/WETH", 5, "sell", 1.0), PRICE, 0) is None  # exits
    g.on_fill(filled(on("B/WETH", 5, "sell", 1.0)))
    assert g.check(on("C/WETH", 6, "buy", 1.0), PRICE, 0) is None  # a slot is free again


def test_restart_rebuilds_todays_spend_from_the_journals_fills() -> None:
    yesterday = filled(on("A/WETH", 1, "buy", 2.0), ts_ns=DAY - S)
    today = filled(on("A/WETH", 2, "buy", 2.0), ts_ns=DAY + S)
    g = RiskGuard(CAPS)
    g.restore_spend([yesterday, today], DAY + 2 * S)
    assert g.spent("chain", "A/WETH") == 2_000.0
    assert g.check(on("A/WETH", 3, "buy", 1.0), PRICE, DAY + 3 * S).startswith("max_spend_symbol")
