"""The risk guard against a venue's market rules: lot step, minimum amount and minimum notional (pure logic).

The rules are the local Binance server's BTC/USDT filters (LOT_SIZE step and minQty 0.00001, NOTIONAL
minNotional 5, maxQty 9000), as the ccxt feed publishes them.
"""

from __future__ import annotations

import pytest

from sniperbot.messages import MarketRules, OrderIntent
from sniperbot.risk import RiskGuard, RiskLimits
from sniperbot.risk.guard import round_down_to_step

LIMITS = RiskLimits(max_order_notional=1_000_000.0, max_position=100.0, max_orders_per_second=1000)
PRICE = 50_000.0
VENUE = "bin"
SYMBOL = "BTC/USDT"
BINANCE = MarketRules(
    venue=VENUE,
    symbol=SYMBOL,
    amount_step=0.00001,
    price_tick=0.01,
    min_amount=0.00001,
    min_notional=5.0,
    max_amount=9000.0,
)


def intent(seq: int, quantity: float, venue: str = VENUE, **extra: object) -> OrderIntent:
    return OrderIntent(
        intent_id=f"s1-{seq}",
        strategy_id="s1",
        intent_seq=seq,
        venue=venue,
        symbol=SYMBOL,
        side="buy",
        quantity=quantity,
        **extra,  # type: ignore[arg-type]
    )


def guard() -> RiskGuard:
    g = RiskGuard(LIMITS)
    g.set_market_rules(BINANCE)
    return g


def test_a_strategys_odd_quantity_is_rounded_down_to_the_lot_step_and_approved() -> None:
    g = guard()
    sized = g.conform(intent(1, 0.123456789))
    assert sized.quantity == 0.12345  # never more than asked for, a whole number of steps
    assert sized.intent_id == "s1-1"
    assert g.check(sized, PRICE, 0) is None
    assert g.pending(VENUE, SYMBOL) == pytest.approx(0.12345)
    # decimal arithmetic: a quantity already on the step stays exactly what it was
    assert g.conform(intent(2, 0.3)).quantity == 0.3
    assert round_down_to_step(0.3, 0.1) == 0.3 and round_down_to_step(0.29999, 0.1) == 0.2


def test_a_quantity_not_on_the_step_is_refused_by_a_check_that_was_not_given_a_rounded_one() -> None:
    assert guard().check(intent(1, 0.123456789), PRICE, 0) == (
        "lot_size: 0.123456789 is not a multiple of 1e-05"
    )


def test_below_the_minimum_amount_is_refused_with_the_figures() -> None:
    g = guard()
    tiny = g.conform(intent(1, 0.000004))  # rounds down to nothing: left for the check to refuse
    assert tiny.quantity == 0.000004
    assert g.check(tiny, PRICE, 0) == "below_min_amount: 4e-06 < 1e-05"
    g.set_market_rules(MarketRules(venue=VENUE, symbol=SYMBOL, amount_step=0.001, min_amount=0.01))
    assert g.check(g.conform(intent(2, 0.0099)), PRICE, 0) == "below_min_amount: 0.009 < 0.01"
    assert g.check(g.conform(intent(3, 0.0101)), PRICE, 0) is None
    assert g.rejected == 2 and g.approved == 1


def test_above_the_maximum_amount_is_refused() -> None:
    g = RiskGuard(RiskLimits(max_order_notional=1e12, max_position=1e6, max_orders_per_second=10))
    g.set_market_rules(BINANCE)
    assert g.check(intent(1, 9000.00001), 1.0, 0) == "above_max_amount: 9000.00001 > 9000"
    assert g.check(intent(2, 9000.0), 1.0, 0) is None


def test_below_min_notional_valued_at_the_reference_price_for_a_market_order() -> None:
    g = guard()
    assert g.check(intent(1, 0.00009), PRICE, 0) == "below_min_notional: 9e-05 x 50000 = 4.5 < 5"
    assert g.check(intent(2, 0.0001), PRICE, 0) is None  # exactly 5: the minimum is inclusive


def test_below_min_notional_valued_at_the_limit_price_for_a_limit_order() -> None:
    g = guard()
    # at the market (50,000) it would be 5.0; the exchange values a limit order at its limit price
    low_bid = intent(1, 0.0001, order_type="limit", limit_price=40_000.0)
    assert g.check(low_bid, PRICE, 0) == "below_min_notional: 0.0001 x 40000 = 4 < 5"
    # a limit price alone can value it (no market price yet)
    assert g.check(intent(2, 0.0002, order_type="limit", limit_price=40_000.0), None, 0) is None


def test_a_venue_without_rules_is_unchanged() -> None:
    g = guard()
    odd = intent(1, 0.000004, venue="sim")
    assert g.conform(odd) is odd
    assert g.check(odd, PRICE, 0) is None
    assert g.market_rules("sim", SYMBOL) is None and g.market_rules(VENUE, SYMBOL) == BINANCE


def test_the_rules_of_one_symbol_do_not_apply_to_another() -> None:
    g = guard()
    eth = OrderIntent(
        intent_id="s1-1", strategy_id="s1", intent_seq=1, venue=VENUE, symbol="ETH/USDT", side="buy",
        quantity=0.000001,
    )  # fmt: skip
    assert g.conform(eth) is eth and g.check(eth, 3_000.0, 0) is None


def test_market_rules_come_after_the_trading_state_and_before_the_limits() -> None:
    g = guard()
    g.set_state("HALTED")
    assert g.check(intent(1, 0.000004), PRICE, 0) == "halted"
    g.set_state("ACTIVE")
    small = RiskGuard(RiskLimits(max_order_notional=1.0, max_position=100.0, max_orders_per_second=10))
    small.set_market_rules(BINANCE)
    # the exchange would refuse it whatever our limits say: that reason is the one a trader can act on
    assert small.check(intent(2, 0.00009), PRICE, 0).startswith("below_min_notional")  # type: ignore[union-attr]


def test_only_a_feed_may_say_the_market_rules() -> None:
    """Rules loosen or tighten what the guard lets through: a forged one (not from a feed) is refused."""
    from sniperbot.messages import Envelope, decode_envelope, encode_envelope
    from sniperbot.messages import topics as topic
    from sniperbot.transport.auth import Signer, Verifier

    secret = b"s" * 32
    rules = MarketRules(venue=VENUE, symbol=SYMBOL, min_notional=0.0)
    verifier = Verifier(secret, "risk_guard")

    def frame(sender: str, key: bytes | None) -> bytes:
        envelope = Envelope(topic.market_rules(VENUE, SYMBOL), sender, 1, 1, 1, rules)
        return encode_envelope(envelope) if key is None else Signer(key, sender).encode(envelope)

    good = frame("feed.bx", secret)
    assert verifier.check(good, decode_envelope(good)) is None
    for forged in (frame("strategy.a", secret), frame("feed.bx", None), frame("feed.bx", b"t" * 32)):
        assert verifier.check(forged, decode_envelope(forged)) is not None
