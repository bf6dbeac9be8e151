"""Issue #8 point 6: a process of the same user cannot act with authority it does not have.

A real node runs; this test process plays a stray (or hostile) local process that can
reach every socket of the run dir but is not one of the node's actors: it does not hold
the node life's secret. It sends every kind of message, as every sender, to every topic
and every inbox, and the node must neither take any authority from it nor crash.
"""

from __future__ import annotations

import json
import os
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from sniperbot.chaos.invariants import check_run_dir
from sniperbot.journal import Journal, keys
from sniperbot.messages import (
    Ack,
    ActorError,
    AnalyserStatus,
    Bar,
    BreakerChanged,
    CancelOrder,
    Crash,
    Envelope,
    FeedStatus,
    Fill,
    Heartbeat,
    MarketRules,
    MetricsSnapshot,
    NewPool,
    Order,
    OrderBook,
    OrderIntent,
    OrderUpdate,
    Payload,
    PortfolioSnapshot,
    Position,
    Post,
    Quote,
    Ready,
    RiskStatus,
    SetTradingState,
    Signal,
    SnapshotEnd,
    SnapshotRequest,
    Stop,
    TokenSafetyReport,
    TradeTick,
    VenueEvents,
    VenueOrderQuery,
    VenueOrderReport,
    VenueStatus,
    decode_envelope,
    encode_envelope,
)
from sniperbot.rundir import RunDir
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot

TRADING_STATE_KEY = keys.TRADING_STATE
EVIL = "evil"  # every forged id starts with it, so the journal can be searched for it
SENDERS = ("node", "risk_guard", "executor.sim", "paper.sim", "portfolio", "strategy.fast_btc", "feed.sim")
TOPICS = (
    "md.sim.quote.BTC/USDT.",
    "md.sim.trade.BTC/USDT.",
    "md.sim.quote.ETH/USDT.",
    "ev.fast_btc.fill",
    "ev.fast_btc.order",
    "ev.fast_eth.fill",
    "ctl.ready.feed.sim",
    "ctl.breaker.global",
    "status.portfolio",
    "status.risk",
)
INBOXES = ("risk_guard", "executor.sim", "paper.sim")


def _samples(now_ns: int) -> list[Any]:
    """One well-formed, dangerous-looking message of every payload kind, aimed at the fast config."""
    fill = Fill(
        fill_id=f"{EVIL}-fill",
        client_order_id=f"{EVIL}-1",
        strategy_id="fast_btc",
        venue="sim",
        symbol="BTC/USDT",
        side="buy",
        quantity=5.0,
        price=60_000.0,
        fee=0.0,
        ts_ns=now_ns,
    )
    update = OrderUpdate(
        client_order_id="fast_btc-1",
        strategy_id="fast_btc",
        venue="sim",
        symbol="BTC/USDT",
        status="cancelled",
        reason=EVIL,
        ts_ns=now_ns,
    )
    order = Order(
        client_order_id=f"{EVIL}-order",
        intent_id=f"{EVIL}-order",
        strategy_id="fast_btc",
        venue="sim",
        symbol="BTC/USDT",
        side="buy",
        quantity=5.0,
        ts_ns=now_ns,
    )
    return [
        TradeTick(
            venue="sim", symbol="BTC/USDT", price=60_000.0, size=0.01, side="buy", trade_id=1, ts_ns=now_ns
        ),
        Quote(
            venue="sim",
            symbol="BTC/USDT",
            bid=60_000.0,
            bid_size=0.5,
            ask=60_001.0,
            ask_size=0.5,
            ts_ns=now_ns,
        ),
        Bar(
            venue="sim",
            symbol="BTC/USDT",
            interval_s=0.2,
            start_ns=now_ns,
            open=60_000.0,
            high=60_001.0,
            low=59_999.0,
            close=60_000.0,
            volume=1.0,
        ),
        OrderIntent(
            intent_id="fast_btc-999999",
            strategy_id="fast_btc",
            intent_seq=999_999,
            venue="sim",
            symbol="BTC/USDT",
            side="buy",
            quantity=5.0,
            ts_ns=now_ns,
        ),
        order,
        update,
        fill,
        CancelOrder(client_order_id="fast_btc-1", strategy_id="fast_btc", venue="sim", symbol="BTC/USDT"),
        Heartbeat(seq=1, ts_ns=now_ns),
        Ready(actor_id="feed.sim", incarnation=10**6, pid=1, ts_ns=now_ns),
        Stop(reason=EVIL),
        Ack(seq=1),
        PortfolioSnapshot(
            positions=[Position(symbol="BTC/USDT", quantity=5.0, avg_price=1.0, realized_pnl=-1e9)],
            realized_pnl=-1e9,
            unrealized_pnl=-1e9,
            fees=0.0,
            orders=0,
            fills=0,
            rejected=0,
            ts_ns=now_ns,
        ),
        RiskStatus(trading_state="HALTED", approved=0, rejected=0, ts_ns=now_ns),
        SetTradingState(state="HALTED", reason=EVIL),
        BreakerChanged(scope="global", state="open", reason=EVIL, trips=1, cooldown_s=3600.0, ts_ns=now_ns),
        SnapshotRequest(topics=["md."]),
        SnapshotEnd(values=0),
        Crash(reason=EVIL),
        ActorError(error=EVIL),
        VenueOrderQuery(client_order_id="fast_btc-1", venue="sim"),
        VenueOrderReport(
            client_order_id=f"{EVIL}-order", venue="sim", known=True, status="filled", fills=[fill]
        ),
        VenueEvents(venue="sim", events=[update, fill]),
        OrderBook(
            venue="sim", symbol="BTC/USDT", bids=[(1.0, 100.0)], asks=[(2.0, 100.0)], seq=1, ts_ns=now_ns
        ),
        FeedStatus(
            venue="sim",
            connected=False,
            stale=True,
            reconnects=0,
            gaps=0,
            snapshots=0,
            stale_periods=1,
            rest_polls=0,
            last_message_ns=0,
            ts_ns=now_ns,
        ),
        VenueStatus(venue="sim", connection="ok", reconciled=True, balances={"USDT": 1e12}, ts_ns=now_ns),
        MarketRules(venue="sim", symbol="BTC/USDT", amount_step=1e6, min_notional=1e12, ts_ns=now_ns),
        # Claims a healthy executor on the operator's dashboard: only the executor may say so.
        MetricsSnapshot(actor_id="executor.sim", incarnation=10**6, seq=1, ts_ns=now_ns),
        # A pool that does not exist: the sniper's safety check reads the chain, never the message.
        NewPool(
            venue="sim",
            pair="0x" + "ab" * 20,
            token="0x" + "cd" * 20,
            quote_token="0x" + "ef" * 20,
            block_number=1,
            tx_hash="0x" + "01" * 32,
            log_index=0,
            ts_ns=now_ns,
        ),
        # A forged "safe to buy" verdict: a sniper must never act on one from outside the node.
        TokenSafetyReport(venue="sim", token="0x" + "cd" * 20, verdict="buy", ts_ns=now_ns),
        # A forged euphoric signal, post and healthy analyser: strategies and the sniper act on them.
        Signal(source="sentiment", subject="BTC", kind="sentiment", value=1.0, ts_ns=now_ns),
        Post(source="reddit", platform="reddit", post_id="x", text="moon", created_ns=now_ns, ts_ns=now_ns),
        AnalyserStatus(source="reddit", stale=False, ts_ns=now_ns),
    ]


def _frames(now_ns: int, topic: str) -> Iterator[bytes]:
    """Every sample as every sender, plus the same with a (forged) tag of the right length."""
    for payload in _samples(now_ns):
        for sender in SENDERS:
            envelope = Envelope(topic, sender, 10**6, now_ns % 10**9, now_ns, payload)
            frame = encode_envelope(envelope)
            yield frame
            # With a tag field that is not made with the node life's secret: a guess.
            yield msgspec.msgpack.encode([*msgspec.msgpack.decode(frame), os.urandom(16)])
    # A trading state outside the closed set, written as raw msgpack (the codec would refuse to).
    raw = ["x", "node", 10**6, 1, now_ns, {"t": "set_trading_state", "state": "BOGUS", "reason": EVIL}]
    yield msgspec.msgpack.encode(raw)


def test_the_sample_set_covers_every_payload_kind() -> None:
    """A new message kind must be added to the barrage below."""
    kinds = {type(p) for p in _samples(1)}
    assert kinds == set(typing.get_args(Payload))


def test_only_the_tag_of_the_right_sender_and_secret_passes() -> None:
    from sniperbot.transport.auth import PLACEHOLDER, TAG_SIZE, Signer, Verifier

    secret = b"s" * 32
    order = Order(
        client_order_id="a-1",
        intent_id="a-1",
        strategy_id="a",
        venue="sim",
        symbol="X",
        side="buy",
        quantity=1.0,
    )
    envelope = Envelope("to.executor.sim", "risk_guard", 1, 1, 1, order)
    verifier = Verifier(secret, "executor.sim")
    good = Signer(secret, "risk_guard").encode(envelope)
    assert verifier.check(good, decode_envelope(good)) is None
    for frame in (
        encode_envelope(envelope),  # no tag
        Signer(b"t" * 32, "risk_guard").encode(envelope),  # another node life's secret
        Signer(secret, "strategy.a").encode(envelope),  # the secret, but claiming to be someone else
        good[: -TAG_SIZE - 1] + bytes([good[-TAG_SIZE - 1] ^ 1]) + good[-TAG_SIZE:],  # body changed
    ):
        try:
            decoded = decode_envelope(frame)
        except ValueError:
            continue
        assert verifier.check(frame, decoded) is not None
    # The right tag, but only the risk guard may give the executor an order.
    forged = Signer(secret, "strategy.a").encode(Envelope("to.executor.sim", "strategy.a", 1, 1, 1, order))
    assert "only" in (verifier.check(forged, decode_envelope(forged)) or "")
    assert len(PLACEHOLDER) == TAG_SIZE


def _journal_fills(run_dir: Path) -> list[dict[str, Any]]:
    result = sniperbot("journal", "--run-dir", str(run_dir), "fills", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_kind_from_a_stray_process_on_every_topic_and_inbox(short_tmp: Path) -> None:
    config = short_tmp / "fast.toml"
    config.write_text(FAST_CONFIG)
    run_dir = short_tmp / "run"
    node = RunningNode(run_dir, config)
    ctx = zmq.Context()
    socks: list[zmq.Socket] = []
    try:
        workers = node.wait_ready(60)
        before = eventually(
            lambda: len(_journal_fills(run_dir)) > 0 and len(_journal_fills(run_dir)), 60, what="trading"
        )
        rundir = RunDir(run_dir)
        pub = ctx.socket(zmq.PUB)
        pub.connect(rundir.bus_in)
        socks.append(pub)
        dealers = {}
        for actor_id in INBOXES:
            dealer = ctx.socket(zmq.DEALER)
            dealer.connect(rundir.inbox(actor_id))
            dealers[actor_id] = dealer
            socks.append(dealer)
        time.sleep(1.0)  # PUB slow joiner: let the proxy learn the subscriptions
        now = time.time_ns()
        for topic in TOPICS:
            for frame in _frames(now, topic):
                pub.send_multipart([topic.encode(), frame])
        for actor_id, dealer in dealers.items():
            for frame in _frames(now, "to." + actor_id):
                dealer.send(frame)

        # Every target saw the forgeries (dropped and counted), none restarted.
        def all_counted() -> bool:
            w = node.workers()
            return all(w[a]["invalid_frames"] > 0 for a in (*INBOXES, "portfolio", "strategy.fast_btc"))

        eventually(all_counted, 30, what="every target counted the forged frames")
        # Still trading afterwards, on the real market.
        eventually(lambda: len(_journal_fills(run_dir)) > before + 2, 60, what="fills after the attack")
        after = node.workers()
        for actor_id, info in after.items():
            assert info["state"] == "running", (actor_id, info)
            assert info["restarts"] == 0, (actor_id, info)
            assert info["incarnation"] == workers[actor_id]["incarnation"], actor_id
        status = node.admin("status")
        assert status["trading_state"] == "ACTIVE"
        assert all(b["state"] == "closed" for b in status["breakers"].values()), status["breakers"]
        assert not [
            f for f in _journal_fills(run_dir) if EVIL in f["fill_id"] or EVIL in f["client_order_id"]
        ]
        # The forged SetTradingState left the saved state alone (read while running: the halt below
        # saves its own).
        journal = Journal.open(run_dir, readonly=True)
        try:
            saved = journal.get_state(TRADING_STATE_KEY)
            assert saved is None or msgspec.json.decode(saved)["state"] == "ACTIVE"
        finally:
            journal.close()
        # Stop trading and let the last orders land: the positions are the journaled fills summed (the
        # invariant checker's own rule). Compared while trading, a fill landing between the reads kept
        # the comparison from ever settling on a loaded machine.
        assert node.admin("halt")["trading_state"] == "HALTED"
        eventually(lambda: (r := check_run_dir(run_dir)).ok and r.settled, 30, what="settled after halt")
        eventually(
            lambda: check_run_dir(run_dir, node.admin("status")["positions"]).ok,
            30,
            what="positions equal the journaled fills",
        )
        report = check_run_dir(run_dir, node.admin("status")["positions"])
        assert report.ok, report.problems
        assert node.stop() == 0
        journal = Journal.open(run_dir, readonly=True)
        try:
            saved = journal.get_state(TRADING_STATE_KEY)
            assert saved is not None and msgspec.json.decode(saved)["state"] == "HALTED"
            assert journal.order(f"{EVIL}-order") is None
            assert journal.order("fast_btc-999999") is None
            assert all(EVIL not in o.client_order_id and o.quantity < 5.0 for o in journal.orders())
        finally:
            journal.close()
    finally:
        for sock in socks:
            sock.close(0)
        ctx.term()
        if node.process.poll() is None:
            node.stop()


@pytest.mark.parametrize("saved", [b'{"state": "BOGUS", "reason": "x"}', b"not json", b'{"other": 1}'])
def test_an_invalid_journaled_trading_state_starts_halted_not_crash_looping(
    short_tmp: Path, saved: bytes
) -> None:
    """A state an older version (or a hand edit) left in the journal fails closed: HALTED, no restarts."""
    config = short_tmp / "fast.toml"
    config.write_text(FAST_CONFIG)
    run_dir = short_tmp / "run"
    run_dir.mkdir(mode=0o700)
    journal = Journal.open(run_dir)
    journal.put_state(TRADING_STATE_KEY, saved)
    journal.close()
    node = RunningNode(run_dir, config)
    try:
        node.wait_ready(60)
        eventually(lambda: node.admin("status")["trading_state"] == "HALTED", 30, what="HALTED")
        time.sleep(1.0)  # a crash loop would show as restarts by now
        assert node.workers()["risk_guard"]["restarts"] == 0
        assert node.stop() == 0
    finally:
        if node.process.poll() is None:
            node.stop()
