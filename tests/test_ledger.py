import itertools
import random

import msgspec
import pytest

from sniperbot.messages import Fill, OrderUpdate, PortfolioSnapshot, Position
from sniperbot.portfolio import Ledger

_order_numbers = itertools.count(1)


def fill(side: str, quantity: float, price: float, fee: float = 0.0, symbol: str = "BTC") -> Fill:
    n = next(_order_numbers)
    return Fill(
        fill_id=f"o{n}-f1",
        client_order_id=f"o{n}",
        strategy_id="s1",
        venue="sim",
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        quantity=quantity,
        price=price,
        fee=fee,
    )


def test_round_trip_long_realises_against_the_average_entry() -> None:
    ledger = Ledger()
    ledger.apply_fill(fill("buy", 2.0, 100.0, fee=0.2))
    ledger.apply_fill(fill("buy", 1.0, 103.0, fee=0.1))
    assert ledger.position("BTC").avg_price == pytest.approx(101.0)
    ledger.apply_fill(fill("sell", 3.0, 105.0, fee=0.3))
    # (105 - 101) * 3 = 12 before fees; fees 0.6 on top.
    assert ledger.realized_pnl == pytest.approx(12.0)
    assert ledger.fees == pytest.approx(0.6)
    assert ledger.net_pnl == pytest.approx(11.4)
    assert ledger.positions == {"BTC": 0.0}
    assert ledger.position("BTC").avg_price == 0.0


def test_partial_reduction_keeps_the_entry_of_what_remains() -> None:
    ledger = Ledger()
    ledger.apply_fill(fill("sell", 2.0, 50.0))
    ledger.apply_fill(fill("buy", 0.5, 45.0))
    # Short 2 @ 50, cover 0.5 @ 45: +2.5 realised, still short 1.5 @ 50.
    assert ledger.realized_pnl == pytest.approx(2.5)
    assert ledger.position("BTC") == Position(symbol="BTC", quantity=-1.5, avg_price=50.0, realized_pnl=2.5)


def test_flip_realises_the_closed_part_and_opens_the_rest_at_the_fill_price() -> None:
    ledger = Ledger()
    ledger.apply_fill(fill("buy", 1.0, 100.0))
    ledger.apply_fill(fill("sell", 3.0, 110.0))
    # Long 1 closed at +10; short 2 opened at 110.
    assert ledger.realized_pnl == pytest.approx(10.0)
    assert ledger.positions == {"BTC": -2.0}
    assert ledger.position("BTC").avg_price == 110.0
    ledger.apply_fill(fill("buy", 4.0, 105.0))
    # Short 2 closed at +5 each = +10; long 2 opened at 105.
    assert ledger.realized_pnl == pytest.approx(20.0)
    assert ledger.positions == {"BTC": 2.0}
    assert ledger.position("BTC").avg_price == 105.0


def test_unrealised_pnl_uses_the_last_mark_and_unmarked_symbols_count_zero() -> None:
    ledger = Ledger()
    ledger.apply_fill(fill("buy", 2.0, 100.0, fee=0.5))
    ledger.apply_fill(fill("sell", 1.0, 30.0, symbol="ETH"))
    assert ledger.unrealized_pnl == 0.0
    ledger.mark("BTC", 99.0)
    ledger.mark("BTC", 104.0)
    assert ledger.unrealized_pnl == pytest.approx(8.0)
    ledger.mark("ETH", 31.0)
    assert ledger.unrealized_pnl == pytest.approx(7.0)
    assert ledger.net_pnl == pytest.approx(6.5)


def test_float_dust_closes_to_exactly_flat() -> None:
    ledger = Ledger()
    ledger.apply_fill(fill("buy", 0.1, 10.0))
    ledger.apply_fill(fill("buy", 0.2, 10.0))
    ledger.apply_fill(fill("sell", 0.3, 11.0))
    assert ledger.positions == {"BTC": 0.0}
    assert ledger.position("BTC").avg_price == 0.0


def test_snapshot_reports_positions_sorted_and_counters() -> None:
    ledger = Ledger()
    ledger.apply_fill(fill("buy", 1.0, 100.0, fee=0.1))
    ledger.apply_fill(fill("sell", 2.0, 20.0, fee=0.04, symbol="ADA"))
    ledger.mark("BTC", 101.0)
    rejected = OrderUpdate(
        client_order_id="x", strategy_id="s1", venue="sim", symbol="BTC", status="rejected"
    )
    ledger.on_order_update(rejected)
    accepted = OrderUpdate(
        client_order_id="y", strategy_id="s1", venue="sim", symbol="BTC", status="accepted"
    )
    ledger.on_order_update(accepted)
    snap = ledger.snapshot(ts_ns=5, orders=4)
    assert snap.fees == pytest.approx(0.14)
    assert msgspec.structs.replace(snap, fees=0.0) == PortfolioSnapshot(
        positions=[
            Position(symbol="ADA", quantity=-2.0, avg_price=20.0, realized_pnl=0.0),
            Position(symbol="BTC", quantity=1.0, avg_price=100.0, realized_pnl=0.0, unrealized_pnl=1.0),
        ],
        realized_pnl=0.0,
        unrealized_pnl=1.0,
        fees=0.0,
        orders=4,
        fills=2,
        rejected=1,
        ts_ns=5,
    )


def test_rebuilding_from_journaled_fills_gives_exactly_the_live_numbers() -> None:
    rng = random.Random(11)
    live = Ledger()
    journal: list[bytes] = []
    for _ in range(2_000):
        symbol = rng.choice(["BTC", "ETH", "SOL"])
        f = fill(
            rng.choice(["buy", "sell"]),
            round(rng.uniform(0.001, 3.0), 6),
            round(rng.uniform(90.0, 110.0), 2),
            fee=round(rng.uniform(0.0, 0.2), 8),
            symbol=symbol,
        )
        live.apply_fill(f)
        journal.append(msgspec.msgpack.encode(f))
        live.mark(symbol, round(rng.uniform(90.0, 110.0), 2))

    rebuilt = Ledger()
    for record in journal:
        rebuilt.apply_fill(msgspec.msgpack.decode(record, type=Fill))
    assert rebuilt.positions == live.positions
    assert rebuilt.realized_pnl == live.realized_pnl
    assert rebuilt.fees == live.fees
    assert rebuilt.fills == live.fills == 2_000
    for symbol in ("BTC", "ETH", "SOL"):
        rebuilt.mark(symbol, 100.0)
        live.mark(symbol, 100.0)
    assert rebuilt.snapshot(1, 0) == live.snapshot(1, 0)
