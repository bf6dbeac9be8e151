"""The wire contract: every payload round-trips, tags are stable, bad frames are named, peers evolve."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest

from sniperbot.messages import (
    Ack,
    ActorError,
    Bar,
    BreakerChanged,
    CancelOrder,
    Crash,
    Envelope,
    FeedStatus,
    Fill,
    Heartbeat,
    InvalidFrame,
    MarketRules,
    Message,
    MetricsSnapshot,
    NewPool,
    Order,
    OrderBook,
    OrderIntent,
    OrderUpdate,
    Payload,
    PortfolioSnapshot,
    Position,
    Quote,
    Ready,
    RiskStatus,
    SetTradingState,
    SnapshotEnd,
    SnapshotRequest,
    Stop,
    TradeTick,
    decode_envelope,
    encode_envelope,
)
from sniperbot.messages.chain import TokenSafetyReport
from sniperbot.messages.signals import AnalyserStatus, Post, Signal
from sniperbot.messages.venue import VenueEvents, VenueOrderQuery, VenueOrderReport, VenueStatus

# One instance of every payload, with every field (including optional ones) set away from
# its default, so that a field lost or mangled on the way shows up as an inequality.
SAMPLES: list[Message] = [
    TradeTick(
        venue="sim", symbol="BTC/USDT", price=60_000.5, size=0.25, side="sell", trade_id=42, ts_ns=1_700
    ),
    Quote(venue="sim", symbol="ETH/USDT", bid=2999.5, bid_size=3.0, ask=3000.5, ask_size=4.5, ts_ns=1_701),
    Bar(
        venue="sim",
        symbol="BTC/USDT",
        interval_s=1.0,
        start_ns=1_000,
        open=1.0,
        high=3.0,
        low=0.5,
        close=2.0,
        volume=7.5,
        trades=9,
    ),
    OrderIntent(
        intent_id="s1-3",
        strategy_id="s1",
        intent_seq=3,
        venue="sim",
        symbol="BTC/USDT",
        side="buy",
        quantity=0.1,
        order_type="limit",
        limit_price=59_999.0,
        reduce_only=True,
        ts_ns=5,
    ),
    Order(
        client_order_id="c-1",
        intent_id="s1-3",
        strategy_id="s1",
        venue="sim",
        symbol="BTC/USDT",
        side="sell",
        quantity=0.1,
        order_type="limit",
        limit_price=60_001.0,
        reduce_only=True,
        ts_ns=6,
    ),
    OrderUpdate(
        client_order_id="c-1",
        strategy_id="s1",
        venue="sim",
        symbol="BTC/USDT",
        status="rejected",
        reason="max_position",
        ts_ns=7,
    ),
    Fill(
        fill_id="f-1",
        client_order_id="c-1",
        strategy_id="s1",
        venue="sim",
        symbol="BTC/USDT",
        side="buy",
        quantity=0.1,
        price=60_000.0,
        fee=0.6,
        liquidity="maker",
        ts_ns=8,
    ),
    CancelOrder(
        client_order_id="c-1", strategy_id="s1", venue="sim", symbol="BTC/USDT", reason="stale", ts_ns=9
    ),
    Heartbeat(seq=4, ts_ns=10, invalid_frames=2, handled=99),
    Ready(actor_id="risk_guard", incarnation=3, pid=1234, ts_ns=11),
    Stop(reason="operator"),
    Ack(seq=17),
    PortfolioSnapshot(
        positions=[
            Position(
                symbol="BTC/USDT", quantity=-0.2, avg_price=60_000.0, realized_pnl=1.5, unrealized_pnl=-2.0
            ),
            Position(symbol="ETH/USDT", quantity=1.0, avg_price=3000.0, realized_pnl=0.0),
        ],
        realized_pnl=1.5,
        unrealized_pnl=-2.0,
        fees=0.7,
        orders=3,
        fills=2,
        rejected=1,
        ts_ns=12,
    ),
    RiskStatus(trading_state="REDUCING", approved=5, rejected=2, ts_ns=13),
    SetTradingState(state="HALTED", reason="operator halt"),
    BreakerChanged(scope="venue:sim", state="open", reason="escalated", trips=2, cooldown_s=10.0, ts_ns=14),
    SnapshotRequest(topics=["md.sim.BTC/USDT.", "ev.s1."]),
    SnapshotEnd(values=2),
    Crash(reason="chaos"),
    ActorError(error="ZeroDivisionError at my.py:3 in decide"),
    VenueOrderQuery(client_order_id="c-1", venue="sim"),
    VenueOrderReport(
        client_order_id="c-1",
        venue="sim",
        known=True,
        status="filled",
        reason="crossed",
        fills=[
            Fill(
                fill_id="c-1-f1",
                client_order_id="c-1",
                strategy_id="s1",
                venue="sim",
                symbol="BTC/USDT",
                side="sell",
                quantity=0.1,
                price=60_001.0,
                fee=0.6,
                liquidity="maker",
                ts_ns=16,
            )
        ],
        ts_ns=15,
    ),
    VenueEvents(
        venue="sim",
        events=[
            OrderUpdate(
                client_order_id="c-1", strategy_id="s1", venue="sim", symbol="BTC/USDT", status="filled"
            ),
            Fill(
                fill_id="c-1-f1",
                client_order_id="c-1",
                strategy_id="s1",
                venue="sim",
                symbol="BTC/USDT",
                side="sell",
                quantity=0.1,
                price=60_001.0,
                fee=0.6,
                liquidity="maker",
                ts_ns=16,
            ),
        ],
    ),
    OrderBook(
        venue="bin", symbol="BTC/USDT", bids=[(49_990.0, 1.5)], asks=[(50_010.0, 2.0)], seq=1_001, ts_ns=1_702
    ),
    FeedStatus(
        venue="bin",
        connected=True,
        stale=True,
        reconnects=2,
        gaps=3,
        snapshots=4,
        stale_periods=5,
        rest_polls=6,
        last_message_ns=1_703,
        ts_ns=1_704,
    ),
    VenueStatus(
        venue="bin",
        connection="banned",
        reconciled=False,
        last_reconciliation_ns=1_705,
        last_failure="DDoSProtection",
        last_failure_ns=1_706,
        banned_until_ns=1_707,
        ban_reason="binance HTTP 418 ban until ...",
        open_orders=2,
        foreign_orders=1,
        balances={"BTC": 1.5, "USDT": 1000.0},
        drift={"USDT": -12.5},
        drift_since_ns=1_708,
        ts_ns=1_709,
    ),
    MarketRules(
        venue="bin",
        symbol="BTC/USDT",
        amount_step=0.00001,
        price_tick=0.01,
        min_amount=0.00001,
        min_notional=5.0,
        max_amount=9000.0,
        ts_ns=1_705,
    ),
    MetricsSnapshot(
        actor_id="executor.bin",
        incarnation=2,
        seq=3,
        ts_ns=1_705,
        counters=[("sniperbot_fills_total", [("venue", "bin")], 4.0)],
        gauges=[("sniperbot_reconciliation_pending", [("venue", "bin")], 0.0)],
        histograms=[("sniperbot_order_ack_seconds", [], [1, 0], 0.002)],
        buckets=[0.001],
    ),
    TokenSafetyReport(
        venue="anvil",
        token="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        pair="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        block_number=12,
        verdict="refuse",
        reasons=["sell_tax: 49.78 % > max 10.00 %", "owner_power: mint (owner 0xf39F...)"],
        can_sell=True,
        buy_tax_bps=1,
        sell_tax_bps=4978,
        transfer_tax_bps=2,
        max_tx=500.0,
        max_wallet=1000.0,
        owner_powers=["mint"],
        liquidity_quote=10.5,
        lp_burnt_or_locked_pct=99.5,
        ts_ns=1_705,
    ),
    NewPool(
        venue="anvil",
        pair="0x" + "ab" * 20,
        token="0x" + "cd" * 20,
        quote_token="0x" + "ef" * 20,
        block_number=12,
        tx_hash="0x" + "01" * 32,
        log_index=3,
        ts_ns=1_705,
    ),
    Signal(
        source="sentiment",
        subject="BTC",
        kind="sentiment",
        value=0.4,
        confidence=0.7,
        window_s=300.0,
        ts_ns=9,
        count=12,
        stale=True,
        origin="reddit,x",
        version=2,
    ),
    Post(
        source="reddit",
        platform="reddit",
        post_id="t3_abc",
        text="BTC to the moon",
        created_ns=1,
        ts_ns=2,
        author="someone",
        channel="CryptoCurrency",
        url="https://reddit.com/r/CryptoCurrency/comments/abc",
        engagement=42.0,
    ),
    AnalyserStatus(
        source="reddit",
        stale=True,
        errors=3,
        backoff_s=4.0,
        items=10,
        dropped=2,
        last_ok_ns=5,
        ts_ns=6,
        detail="HTTP 503",
    ),
]

# The public contract: a tag, once shipped, never changes meaning.
TAGS: dict[type[Message], str] = {
    TradeTick: "trade",
    Quote: "quote",
    OrderBook: "book",
    FeedStatus: "feed_status",
    VenueStatus: "venue_status",
    MarketRules: "market_rules",
    MetricsSnapshot: "metrics",
    NewPool: "new_pool",
    Bar: "bar",
    OrderIntent: "intent",
    Order: "order",
    OrderUpdate: "update",
    Fill: "fill",
    CancelOrder: "cancel",
    Heartbeat: "hb",
    Ready: "ready",
    Stop: "stop",
    Ack: "ack",
    Position: "position",
    PortfolioSnapshot: "portfolio",
    RiskStatus: "risk",
    SetTradingState: "set_trading_state",
    BreakerChanged: "breaker",
    SnapshotRequest: "snapshot_req",
    SnapshotEnd: "snapshot_end",
    Crash: "crash",
    ActorError: "actor_error",
    VenueOrderQuery: "venue_query",
    VenueOrderReport: "venue_report",
    VenueEvents: "venue_events",
    TokenSafetyReport: "token_safety",
    Signal: "signal",
    Post: "post",
    AnalyserStatus: "analyser_status",
}


def _envelope(payload: Any, seq: int = 1) -> Envelope:
    return Envelope("md.sim.BTC/USDT.trade", "feed.sim", 2, seq, 1_700_000_000_000_000_000, payload)


def _wire(payload: Any) -> list[Any]:
    """The envelope as plain msgpack data, as any peer (or a newer one) would see it."""
    return msgspec.msgpack.decode(encode_envelope(_envelope(payload)))


def _reason(frame: bytes) -> str:
    with pytest.raises(InvalidFrame) as info:
        decode_envelope(frame)
    assert isinstance(info.value, ValueError)
    assert info.value.reason == str(info.value)
    return info.value.reason


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: type(p).__name__)
def test_every_payload_round_trips_through_the_envelope(payload: Message) -> None:
    envelope = _envelope(payload, seq=123)
    decoded = decode_envelope(encode_envelope(envelope))
    assert decoded == envelope
    assert type(decoded.payload) is type(payload)
    # memoryview frames (zero-copy zmq frames) decode the same
    assert decode_envelope(memoryview(encode_envelope(envelope))) == envelope


def test_samples_cover_every_payload_of_the_wire_union() -> None:
    union = set(typing.get_args(Payload))
    assert union == {type(p) for p in SAMPLES}
    # Position travels only inside PortfolioSnapshot; every other message is a top-level payload.
    assert set(TAGS) == union | {Position}


@pytest.mark.parametrize("cls", list(TAGS), ids=lambda c: c.__name__)
def test_wire_tags_are_stable(cls: type[Message]) -> None:
    assert cls.__struct_config__.tag_field == "t"
    assert cls.__struct_config__.tag == TAGS[cls]
    sample = next((p for p in SAMPLES if type(p) is cls), None)
    if sample is not None:
        assert _wire(sample)[5]["t"] == TAGS[cls]


def test_no_two_message_classes_share_a_tag() -> None:
    def subclasses(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]

    tags = [c.__struct_config__.tag for c in subclasses(Message)]
    assert len(tags) == len(set(tags)), tags
    assert set(TAGS.values()) <= set(tags)


def test_nested_positions_carry_their_tag_on_the_wire() -> None:
    snapshot = next(p for p in SAMPLES if isinstance(p, PortfolioSnapshot))
    positions = _wire(snapshot)[5]["positions"]
    assert [p["t"] for p in positions] == ["position", "position"]
    assert positions[0]["symbol"] == "BTC/USDT" and positions[0]["quantity"] == -0.2


def test_envelope_is_a_six_element_array_on_the_wire() -> None:
    tick = SAMPLES[0]
    raw = msgspec.msgpack.decode(encode_envelope(_envelope(tick, seq=77)))
    assert isinstance(raw, list) and len(raw) == 6
    topic, sender, incarnation, seq, ts_ns, payload = raw
    assert (topic, sender, incarnation, seq, ts_ns) == (
        "md.sim.BTC/USDT.trade",
        "feed.sim",
        2,
        77,
        1_700_000_000_000_000_000,
    )
    assert payload == {"t": "trade", **msgspec.to_builtins(tick)}
    assert payload["price"] == 60_000.5 and payload["side"] == "sell"


def test_a_peer_without_sniperbot_can_build_a_frame() -> None:
    frame = msgspec.msgpack.encode(["to.risk_guard", "x", 1, 5, 0, {"t": "ack", "seq": 9}])
    assert decode_envelope(frame) == Envelope("to.risk_guard", "x", 1, 5, 0, Ack(seq=9))


@pytest.mark.parametrize(
    "frame",
    [b"\x00\xff garbage", b"\xc1\xc1\xc1", b"", b"not msgpack at all"],
    ids=["garbage", "invalid-opcode", "empty", "text"],
)
def test_garbage_is_an_invalid_frame(frame: bytes) -> None:
    assert _reason(frame)


def test_truncated_frame_is_an_invalid_frame() -> None:
    frame = encode_envelope(_envelope(SAMPLES[0]))
    for cut in (1, len(frame) // 2, len(frame) - 1):
        assert "truncated" in _reason(frame[:cut])


def test_trailing_bytes_after_a_frame_are_rejected() -> None:
    frame = encode_envelope(_envelope(SAMPLES[0]))
    assert "trailing" in _reason(frame + b"\x00")


def test_unknown_tag_is_named() -> None:
    raw = _wire(SAMPLES[0])
    raw[5]["t"] = "trade_v2"
    reason = _reason(msgspec.msgpack.encode(raw))
    assert "$[5].t" in reason and "trade_v2" in reason


def test_missing_tag_is_named() -> None:
    raw = _wire(SAMPLES[0])
    del raw[5]["t"]
    reason = _reason(msgspec.msgpack.encode(raw))
    assert "`t`" in reason and "$[5]" in reason


def test_wrong_payload_field_type_names_the_path() -> None:
    raw = _wire(SAMPLES[0])
    raw[5]["price"] = "60000"
    reason = _reason(msgspec.msgpack.encode(raw))
    assert "$[5].price" in reason and "float" in reason


def test_wrong_literal_value_names_the_path() -> None:
    raw = _wire(SAMPLES[0])
    raw[5]["side"] = "long"
    assert "$[5].side" in _reason(msgspec.msgpack.encode(raw))


def test_missing_payload_field_is_named() -> None:
    raw = _wire(SAMPLES[0])
    del raw[5]["price"]
    reason = _reason(msgspec.msgpack.encode(raw))
    assert "`price`" in reason and "$[5]" in reason


def test_wrong_envelope_field_type_names_the_index() -> None:
    raw = _wire(SAMPLES[0])
    raw[3] = "seven"  # seq
    reason = _reason(msgspec.msgpack.encode(raw))
    assert "$[3]" in reason and "int" in reason


def test_short_envelope_and_non_array_are_rejected() -> None:
    raw = _wire(SAMPLES[0])
    assert "length 6" in _reason(msgspec.msgpack.encode(raw[:5]))
    assert "array" in _reason(msgspec.msgpack.encode({"topic": "x"}))


def test_envelope_from_a_newer_peer_with_a_trailing_field_decodes() -> None:
    """Append-only evolution: a newer peer adds envelope field 8 (7 is mac); an older reader ignores it."""
    raw = _wire(SAMPLES[1])
    newer = msgspec.msgpack.encode([*raw, b"", {"trace_id": "abc"}, 99])
    decoded = decode_envelope(newer)
    assert decoded == _envelope(SAMPLES[1])


def test_payload_from_a_newer_peer_with_an_extra_field_decodes() -> None:
    raw = _wire(SAMPLES[8])  # Heartbeat
    raw[5]["cpu_pct"] = 12.5
    assert decode_envelope(msgspec.msgpack.encode(raw)).payload == SAMPLES[8]


def test_payload_from_an_older_peer_without_defaulted_fields_decodes() -> None:
    frame = msgspec.msgpack.encode(["ctl", "a", 1, 0, 0, {"t": "hb", "seq": 3, "ts_ns": 4}])
    assert decode_envelope(frame).payload == Heartbeat(seq=3, ts_ns=4, invalid_frames=0, handled=0)


def test_payloads_are_immutable_and_quote_mid() -> None:
    quote = SAMPLES[1]
    assert isinstance(quote, Quote)
    assert quote.mid == 3000.0
    with pytest.raises(AttributeError):
        quote.bid = 1.0  # type: ignore[misc]
