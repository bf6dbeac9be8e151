import subprocess
import sys
from pathlib import Path

import pytest

from sniperbot.messages import Fill, Order, OrderUpdate, Quote
from sniperbot.venues.sim.ledger import LedgerError, VenueLedger
from sniperbot.venues.sim.paper import PaperVenue

# Fee 10 bps, slippage 5 bps; the book is 100.0 (size 2) / 101.0 (size 1), spread 1.0.
FEE_BPS, SLIP_BPS = 10.0, 5.0


def quote(bid: float = 100.0, ask: float = 101.0, ts_ns: int = 1, venue: str = "sim") -> Quote:
    return Quote(venue=venue, symbol="BTC-USD", bid=bid, bid_size=2.0, ask=ask, ask_size=1.0, ts_ns=ts_ns)


def order(coid: str, side: str, quantity: float, symbol: str = "BTC-USD", **extra: object) -> Order:
    return Order(
        client_order_id=coid,
        intent_id=coid,
        strategy_id="s1",
        venue="sim",
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        quantity=quantity,
        **extra,  # type: ignore[arg-type]
    )


def venue() -> PaperVenue:
    v = PaperVenue("sim", fee_bps=FEE_BPS, slippage_bps=SLIP_BPS)
    assert v.on_quote(quote()) == []
    return v


def fills(events: list[OrderUpdate | Fill]) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def statuses(events: list[OrderUpdate | Fill]) -> list[str]:
    return [e.status for e in events if isinstance(e, OrderUpdate)]


def test_market_buy_at_the_touch_pays_slippage_and_fee() -> None:
    events = venue().submit(order("s1-1", "buy", 0.5), now_ns=10)
    assert [type(e) for e in events] == [OrderUpdate, Fill, OrderUpdate]
    assert statuses(events) == ["accepted", "filled"]
    (f,) = fills(events)
    assert f.fill_id == "s1-1-f1"
    assert (f.side, f.quantity, f.liquidity, f.ts_ns) == ("buy", 0.5, "taker", 10)
    assert f.price == pytest.approx(101.0 * 1.0005, rel=1e-15)
    assert f.fee == pytest.approx(0.5 * 101.0505 * 0.001, rel=1e-12)


def test_a_replay_venue_fills_a_market_order_at_its_decisions_book_even_when_the_order_comes_first() -> None:
    """In a replay the order can overtake the quote of the candle it must fill at: it waits for it."""
    held = PaperVenue("sim", fee_bps=FEE_BPS, slippage_bps=SLIP_BPS, hold_for_decision_book=True)
    held.on_quote(quote(100.0, 101.0, ts_ns=100))  # candle k's open
    decided = order("s1-1", "buy", 0.5, decided_ts_ns=200)  # decided on candle k's close, at 200
    assert statuses(held.submit(decided, now_ns=10)) == ["accepted"]  # not at the book of 100
    assert held.open_orders() == ["s1-1"]
    assert held.on_quote(quote(105.0, 106.0, ts_ns=150)) == []  # still older than the decision
    events = held.on_quote(quote(110.0, 111.0, ts_ns=200))  # candle k + 1's open
    assert statuses(events) == ["filled"] and held.open_orders() == []
    (f,) = fills(events)
    assert (f.price, f.ts_ns) == (pytest.approx(111.0 * 1.0005, rel=1e-15), 200)
    # An order decided on a book the venue already has fills at once, as does any order on a
    # venue that does not hold (live paper trading: the book at arrival).
    assert statuses(held.submit(order("s1-2", "sell", 0.5, decided_ts_ns=200), now_ns=11)) == [
        "accepted",
        "filled",
    ]
    plain = venue()
    assert statuses(plain.submit(order("s1-3", "buy", 0.5, decided_ts_ns=10**18), now_ns=12)) == [
        "accepted",
        "filled",
    ]
    # A held order can be cancelled like a resting one.
    assert statuses(held.submit(order("s1-4", "buy", 0.5, decided_ts_ns=300), now_ns=13)) == ["accepted"]
    assert statuses(held.cancel("s1-4", now_ns=14, reason="test")) == ["cancelled"]
    assert held.on_quote(quote(120.0, 121.0, ts_ns=300)) == []


def test_market_buy_beyond_top_size_walks_one_spread_per_top_size_chunk() -> None:
    (f,) = fills(venue().submit(order("s1-1", "buy", 2.5), now_ns=10))
    # 1 @ 101 + 1 @ 102 + 0.5 @ 103 = 254.5 for 2.5 -> 101.8, then +5 bps.
    assert f.price == pytest.approx(101.8 * 1.0005, rel=1e-12)
    assert f.fee == pytest.approx(2.5 * 101.8 * 1.0005 * 0.001, rel=1e-12)


def test_market_sell_walks_down_the_bids_and_slips_down() -> None:
    (f,) = fills(venue().submit(order("s1-1", "sell", 3.0), now_ns=10))
    # 2 @ 100 + 1 @ 99 = 299 for 3, then -5 bps.
    assert f.price == pytest.approx(299.0 / 3.0 * 0.9995, rel=1e-12)


def test_duplicate_client_order_id_is_rejected_and_the_original_untouched() -> None:
    v = venue()
    v.submit(order("s1-1", "buy", 0.5), now_ns=10)
    events = v.submit(order("s1-1", "buy", 0.5), now_ns=11)
    assert events == [
        OrderUpdate(
            client_order_id="s1-1",
            strategy_id="s1",
            venue="sim",
            symbol="BTC-USD",
            status="rejected",
            reason="duplicate_client_order_id",
            ts_ns=11,
        )
    ]
    assert v.order_status("s1-1") == "filled"
    assert v.ledger()["received"] == ["s1-1"]
    assert len(v.ledger()["fills"]) == 1


def test_no_quote_for_the_symbol_means_no_market() -> None:
    v = venue()
    (update,) = v.submit(order("s1-1", "buy", 0.5, symbol="ETH-USD"), now_ns=10)
    assert (update.status, update.reason) == ("rejected", "no_market")
    assert v.knows("s1-1") and v.order_status("s1-1") == "rejected"
    assert not v.knows("s1-2") and v.order_status("s1-2") is None


def test_marketable_limit_fills_as_taker_but_never_worse_than_the_limit() -> None:
    v = venue()
    (cheap,) = fills(v.submit(order("a", "buy", 0.5, order_type="limit", limit_price=102.0), 1))
    assert cheap.price == pytest.approx(101.0505, rel=1e-12)
    capped = v.submit(order("b", "buy", 2.5, order_type="limit", limit_price=101.5), 2)
    (f,) = fills(capped)
    assert (f.price, f.liquidity) == (101.5, "taker")


def test_resting_limit_fills_as_maker_at_its_price_when_a_quote_crosses() -> None:
    v = venue()
    events = v.submit(order("s1-1", "buy", 2.0, order_type="limit", limit_price=100.5), 10)
    assert statuses(events) == ["accepted"]
    assert v.open_orders() == ["s1-1"]
    assert v.on_quote(quote(bid=100.0, ask=100.6, ts_ns=20)) == []
    events = v.on_quote(quote(bid=99.9, ask=100.4, ts_ns=30))
    (f,) = fills(events)
    assert (f.price, f.quantity, f.liquidity, f.ts_ns) == (100.5, 2.0, "maker", 30)
    assert f.fee == pytest.approx(2.0 * 100.5 * 0.001, rel=1e-12)
    assert statuses(events) == ["filled"]
    assert v.order_status("s1-1") == "filled" and v.open_orders() == []


def test_resting_sell_limit_fills_when_the_bid_reaches_it() -> None:
    v = venue()
    v.submit(order("s1-1", "sell", 1.0, order_type="limit", limit_price=102.0), 10)
    assert v.on_quote(quote(bid=101.9, ask=102.5)) == []
    (f,) = fills(v.on_quote(quote(bid=102.0, ask=102.5)))
    assert (f.side, f.price, f.liquidity) == ("sell", 102.0, "maker")


def test_cancel_a_resting_order_and_nothing_else() -> None:
    v = venue()
    v.submit(order("rest", "buy", 1.0, order_type="limit", limit_price=90.0), 10)
    v.submit(order("done", "buy", 1.0), 11)
    (update,) = v.cancel("rest", 12)
    assert (update.status, update.client_order_id, update.ts_ns) == ("cancelled", "rest", 12)
    assert v.order_status("rest") == "cancelled"
    assert v.on_quote(quote(bid=80.0, ask=85.0)) == []  # cancelled order no longer fills
    # Filled or unknown: nothing to cancel, and nothing reported as rejected.
    assert v.cancel("rest", 13) == []
    assert v.cancel("done", 13) == []
    assert v.cancel("never-sent", 13) == []


def test_invalid_orders_are_rejected_with_a_reason() -> None:
    v = venue()
    (update,) = v.submit(order("a", "buy", 0.0), 1)
    assert update.reason == "invalid_quantity"
    (update,) = v.submit(order("b", "buy", 1.0, order_type="limit"), 1)
    assert update.reason == "invalid_limit_price"


def test_ledger_records_arrivals_and_fills_in_order() -> None:
    v = venue()
    v.submit(order("x", "buy", 0.5), 1)
    v.submit(order("y", "buy", 0.5, symbol="ETH-USD"), 2)
    v.submit(order("z", "sell", 0.5), 3)
    record = v.ledger()
    assert record["received"] == ["x", "y", "z"]
    assert [f.fill_id for f in record["fills"]] == ["x-f1", "z-f1"]


def test_quotes_from_other_venues_do_not_make_a_market() -> None:
    v = PaperVenue("sim", fee_bps=FEE_BPS, slippage_bps=SLIP_BPS)
    v.on_quote(quote(venue="elsewhere"))
    (update,) = v.submit(order("a", "buy", 1.0), 1)
    assert update.reason == "no_market"


def test_restored_resting_order_fills_with_continuing_fill_ids_and_finished_ones_are_forgotten() -> None:
    v = PaperVenue("sim", fee_bps=FEE_BPS, slippage_bps=SLIP_BPS, keep_ledger=False)
    v.on_quote(quote())
    v.restore_resting(order("r", "buy", 1.0, order_type="limit", limit_price=99.0), fills_so_far=1)
    assert v.open_orders() == ["r"] and v.order_status("r") == "accepted"
    v.submit(order("m", "buy", 0.5), 2)
    v.forget("m")
    v.forget("r")  # still resting: kept
    assert not v.knows("m") and v.knows("r")
    (f,) = fills(v.on_quote(quote(bid=98.0, ask=98.5)))
    assert (f.fill_id, f.price) == ("r-f2", 99.0)
    assert v.ledger() == {"received": [], "fills": []}  # the durable ledger lives elsewhere
    with pytest.raises(ValueError, match="only limit orders rest"):
        v.restore_resting(order("x", "buy", 1.0))


def test_venue_ledger_is_durable_idempotent_and_readable_by_another_process(tmp_path: Path) -> None:
    o = order("s1-1", "buy", 0.5)
    events = venue().submit(o, now_ns=10)
    with VenueLedger.open(tmp_path, "sim", durability="process") as ledger:
        assert ledger.record([o, *events]) == [o, *events]
        assert ledger.record([o, *events]) == []  # nothing new: nothing written
        assert ledger.count_duplicate("s1-1") == 1
        with pytest.raises(LedgerError, match="already open in this process"):
            VenueLedger.open(tmp_path, "sim")
        code = (
            "import sys; from sniperbot.venues.sim.ledger import VenueLedger as L;"
            f"l = L.open({str(tmp_path)!r}, 'sim', readonly=True);"
            "print(l.counts(), l.order('s1-1').status, len(l.fills()))"
        )
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert other.stdout.strip() == "{'orders': 1, 'fills': 1, 'duplicate_submissions': 1} filled 1"
    with VenueLedger.open(tmp_path, "sim") as again:
        entry = again.order("s1-1")
        assert entry is not None and entry.order == o and entry.status == "filled"
        assert [f.fill_id for f in entry.fills] == ["s1-1-f1"]
        assert again.orders() == [o] and again.duplicates() == {"s1-1": 1}
        assert again.order("nope") is None and again.resting() == []
        with pytest.raises(LedgerError, match="no order"):
            again.record([_update("ghost")])
    assert (tmp_path / "venue-sim" / "data.mdb").stat().st_mode & 0o777 == 0o600


def _update(cid: str) -> OrderUpdate:
    return OrderUpdate(client_order_id=cid, strategy_id="s1", venue="sim", symbol="BTC-USD", status="filled")
