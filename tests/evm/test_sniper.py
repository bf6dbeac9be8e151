"""The new-pool sniper (issue #12 point 7): one buy per token the safety check passed, exits once.

Position management runs on real components: the sniper actor and the real risk guard each in an
:class:`ActorRuntime` (real ZeroMQ inboxes and bus through a real proxy, real LMDB journal); the
checker, the feed and the executor are played by driver actors with their ids (so the bus's authority
checks pass as in a node) publishing the messages those roles publish: a ``TokenSafetyReport``, pool
quotes made by the EVM feed's own :func:`~sniperbot.venues.dex.pool_quote`, fills and order
updates. What the sniper decided is read from what reached the executor (orders) and from its
journaled state.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.actors.runtime import process_journal
from sniperbot.actors.sniper import Snipe, SniperState
from sniperbot.journal import keys
from sniperbot.messages import (
    Envelope,
    Fill,
    Order,
    OrderUpdate,
    Payload,
    Quote,
    TokenSafetyReport,
    decode_envelope,
)
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import BusProxy, Subscriber, split_message
from sniperbot.venues.dex import pool_quote, pool_reserves, sniper_id
from tests.conftest import eventually
from tests.venues_ccxt.test_gateway import Actors, actors  # noqa: F401  (the fixture)

VENUE = "anvil"
QUOTE = "WETH"
TOKEN = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"
SYMBOL = f"{TOKEN}/{QUOTE}"
SID = sniper_id(VENUE)
SNIPER = f"strategy.{SID}"
EXECUTOR = f"executor.{VENUE}"
CHECKER = f"checker.{VENUE}"
FEED = f"feed.{VENUE}"
BUDGET = 0.1
# The pool as created: 1,000,000 tokens against 10 WETH.
BASE0, QUOTE0 = 1_000_000.0, 10.0
WAIT_S = 90.0  # event-driven waits end as soon as the state is reached; generous for a loaded machine

_OUT: dict[str, queue.SimpleQueue[tuple[str, str, Payload]]] = {}
_HEARD: dict[str, list[Payload]] = {}


class BusDriver(Actor):
    """Plays a role (executor, checker, feed): sends what the test queues; keeps what it hears."""

    inbox = True

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        self._queue = _OUT.setdefault(ctx.actor_id, queue.SimpleQueue())
        self._heard = _HEARD.setdefault(ctx.actor_id, [])

    def on_start(self) -> None:
        """Poll the test's queue."""
        self.ctx.every(0.01, self._pump)

    def _pump(self) -> None:
        if _OUT.get(self.ctx.actor_id) is not self._queue:
            return  # this test has ended
        while not self._queue.empty():
            how, where, payload = self._queue.get()
            if isinstance(payload, Fill | OrderUpdate):
                self.ctx.journal.append(payload)  # as the executor does: journaled, then published
            if how == "publish":
                self.ctx.publish(where, payload)
            else:
                self.ctx.send(where, payload)

    def on_message(self, envelope: Envelope) -> None:
        """Keep what arrives; an executor journals the orders it takes (as the real one does)."""
        if isinstance(envelope.payload, Order) and not self._heard.count(envelope.payload):
            self.ctx.journal.append(envelope.payload)
        self._heard.append(envelope.payload)


class Harness:
    """A bus, the real risk guard and sniper, and the drivers of the other roles."""

    def __init__(self, actors: Actors) -> None:  # noqa: F811
        self.actors = actors
        self.zctx = zmq.Context()
        rundir = RunDir(actors.run_dir)
        self.proxy = BusProxy(self.zctx, rundir.bus_in, rundir.bus_out)
        self.proxy.start()
        for role in (EXECUTOR, CHECKER, FEED):
            actors.start(role, f"{__name__}:BusDriver", {})
        self.fills = 0
        self.pool = (BASE0, QUOTE0)

    def start_risk_guard(self, **limits: Any) -> None:
        """The real risk guard, routing this venue's orders to the executor driver."""
        self.actors.start(
            "risk_guard",
            "sniperbot.actors.risk_guard:RiskGuardActor",
            {
                "limits": {
                    "max_order_notional": 1e9,
                    "max_position": 1e12,
                    "max_orders_per_second": 100,
                    "max_spend_per_symbol": 1.0,
                    **limits,
                },
                "trading_state": "ACTIVE",
                "executors": {VENUE: EXECUTOR},
            },
        )

    def start_sniper(self, **params: Any) -> None:
        """The sniper actor with a 0.1 WETH budget (other parameters: the defaults, unless given)."""
        args = {"venue": VENUE, "quote": QUOTE, "params": {"budget": BUDGET, **params}}
        self.actors.start(SNIPER, "sniperbot.actors.sniper:SniperActor", args)

    def close(self) -> None:
        self.proxy.stop()
        self.zctx.destroy(linger=0)

    # -- what the roles say
    def report(self, verdict: str = "buy", token: str = TOKEN, **fields: Any) -> None:
        """The checker's report on ``token``."""
        reasons = [] if verdict == "buy" else ["cannot_sell: execution reverted"]
        report = TokenSafetyReport(
            venue=VENUE,
            token=token,
            verdict=verdict,  # type: ignore[arg-type]
            reasons=reasons,
            can_sell=verdict == "buy",
            buy_tax_bps=0,
            sell_tax_bps=0,
            transfer_tax_bps=0,
            liquidity_quote=QUOTE0,
            ts_ns=time.time_ns(),
            **fields,
        )
        _OUT[CHECKER].put(("publish", topic.token_safety(VENUE, token), report))

    def quote(self, base_reserve: float, quote_reserve: float, symbol: str = SYMBOL) -> None:
        """The feed's quote of a pool with these reserves (the EVM feed's own formula)."""
        self.pool = (base_reserve, quote_reserve)
        bid, bid_size, ask, ask_size = pool_quote(base_reserve, quote_reserve)
        q = Quote(
            venue=VENUE,
            symbol=symbol,
            bid=bid,
            bid_size=bid_size,
            ask=ask,
            ask_size=ask_size,
            ts_ns=time.time_ns(),
        )
        _OUT[FEED].put(("publish", topic.quote(VENUE, symbol), q))

    def fill(self, order: Order, price: float, quantity: float | None = None, heard: bool = True) -> None:
        """The executor's fill and 'filled' update of ``order``, journaled then published as the executor
        does (``heard=False``: the publish is lost)."""
        self.fills += 1
        fill = Fill(
            fill_id=f"{VENUE}:0x{self.fills:064x}",
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            venue=VENUE,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity if quantity is None else quantity,
            price=price,
            fee=0.0,
            ts_ns=time.time_ns(),
        )
        update = OrderUpdate(
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            venue=VENUE,
            symbol=order.symbol,
            status="filled",
            ts_ns=time.time_ns(),
        )
        journal = process_journal(self.actors.run_dir, "process")
        journal.append_many([*(() if journal.order(order.client_order_id) else (order,)), fill, update])
        if not heard:
            return
        _OUT[EXECUTOR].put(("publish", topic.fill(order.strategy_id), fill))
        _OUT[EXECUTOR].put(("publish", topic.order_update(order.strategy_id), update))

    # -- what happened
    def orders(self, side: str | None = None) -> list[Order]:
        """Orders that reached the executor (each client order id once: the inbox dedups resends)."""
        seen: dict[str, Order] = {}
        for p in list(_HEARD.get(EXECUTOR, [])):
            if isinstance(p, Order) and (side is None or p.side == side):
                seen.setdefault(p.client_order_id, p)
        return list(seen.values())

    def rejected(self) -> list[OrderUpdate]:
        """The sniper's intents the risk guard rejected (it journals each rejection)."""
        journal = process_journal(self.actors.run_dir, "process")
        updates = [r for _, r in journal.records(kinds=(OrderUpdate,)) if isinstance(r, OrderUpdate)]
        return [u for u in updates if u.strategy_id == SID and u.status == "rejected"]

    def snipe(self, symbol: str = SYMBOL) -> Snipe | None:
        """The sniper's journaled state of ``symbol``: live, or finished (under its own key)."""
        journal = process_journal(self.actors.run_dir, "process")
        token = symbol.split("/")[0]
        done = journal.get_state(f"{keys.STRATEGY_STATE}{SID}/done/{token}")
        if done is not None:
            return msgspec.json.decode(done, type=Snipe)
        raw = journal.get_state(keys.STRATEGY_STATE + SID)
        if not raw:
            return None
        return next((s for s in msgspec.json.decode(raw, type=SniperState).snipes if s.token == token), None)

    def until(self, check: Any, action: Any, what: str) -> Any:
        """Repeat ``action`` (a publish: the bus is at-most-once) until ``check`` holds; its value."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            action()
            found = _within(check, 0.5)
            if found:
                return found
        raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}")

    # -- the common start of every exit test
    def open_position(self) -> tuple[Order, float]:
        """Report + pool quotes until the sniper buys; fill the buy at its limit price; wait until open."""

        def announce() -> None:
            self.report()
            self.quote(BASE0, QUOTE0)

        buy = self.until(lambda: self.orders("buy"), announce, "the sniper's buy")[0]
        entry = float(buy.limit_price or 0)
        self.fill(buy, entry)
        self.until(lambda: (s := self.snipe()) and s.status == "open", lambda: None, "position open")
        # The pool after our buy.
        base, quote = pool_after_buy(BASE0, QUOTE0, BUDGET)
        self.quote(base, quote)
        return buy, entry


def _within(check: Any, seconds: float) -> Any:
    """``check()`` once it is truthy within ``seconds``, else None (the caller repeats its action)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def pool_after_buy(base: float, quote: float, spent: float) -> tuple[float, float]:
    """Reserves after a buy of ``spent`` quote (Uniswap V2 getAmountOut, 0.3 % fee)."""
    out = base * spent * 0.997 / (quote + spent * 0.997)
    return base - out, quote + spent


@pytest.fixture
def harness(actors: Actors) -> Iterator[Harness]:  # noqa: F811
    h = Harness(actors)
    try:
        yield h
    finally:
        actors.stop_all()
        h.close()
        _OUT.clear()
        _HEARD.clear()


def test_pool_reserves_inverts_the_feed_quote() -> None:
    """The sniper reads depth from the feed's quote: the inverse must give back the pool's reserves."""
    for base, quote in ((1_000_000.0, 10.0), (3.5, 7_000.0), (1e-3, 1e9)):
        bid, bid_size, ask, ask_size = pool_quote(base, quote)
        q = Quote(venue=VENUE, symbol=SYMBOL, bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size, ts_ns=1)
        assert pool_reserves(q) == pytest.approx((base, quote), rel=1e-9)


def test_buy_is_sized_from_the_pool_and_valued_at_the_budget(harness: Harness) -> None:
    harness.start_risk_guard()
    harness.start_sniper()
    buy, entry = harness.open_position()
    expected = BASE0 - pool_after_buy(BASE0, QUOTE0, BUDGET)[0]  # what 0.1 WETH buys in this pool
    assert buy.symbol == SYMBOL and buy.side == "buy" and buy.order_type == "market"
    assert buy.quantity == pytest.approx(expected, rel=1e-9)
    assert buy.quantity * entry == pytest.approx(BUDGET, rel=1e-9)  # the risk guard's valuation
    assert buy.client_order_id == f"{SID}-t1-1"  # deterministic: strategy id, node life, sequence
    assert len(harness.orders("buy")) == 1  # the repeated report and quotes bought once


def _scale(base: float, quote: float, price: float = 1.0, depth: float = 1.0) -> tuple[float, float]:
    """Reserves with the pool's price times ``price`` and its depth sqrt(x*y) times ``depth``."""
    root = price**0.5
    return base / root * depth, quote * root * depth


EXITS = {
    # case: (sniper params, the pool moves (price factor, depth factor) in order, the expected reason)
    "take_profit": ({}, [(1.7, 1.0)], "take_profit"),
    "stop_loss": ({}, [(0.7, 1.0)], "stop_loss"),
    "trailing_stop": ({}, [(1.3, 1.0), (1.0, 1.0)], "trailing_stop"),
    "liquidity_pulled": ({}, [(1.0, 0.5)], "liquidity_pulled"),
    "max_hold": ({"max_hold_s": 2.0}, [], "max_hold"),
}


@pytest.mark.parametrize("case", list(EXITS))
def test_position_exits_once_for_its_reason(harness: Harness, case: str) -> None:
    params, moves, reason = EXITS[case]
    harness.start_risk_guard()
    harness.start_sniper(**params)
    buy, entry = harness.open_position()
    after = harness.pool
    for i, (price, depth) in enumerate(moves):
        pool = _scale(*after, price=price, depth=depth)
        if i < len(moves) - 1:  # an intermediate move: until the sniper has seen it (its peak moved)
            before = harness.snipe()
            assert before is not None
            harness.until(
                lambda b=before: (s := harness.snipe()) and s.peak_value > b.peak_value,
                lambda p=pool: harness.quote(*p),
                f"the sniper saw move {i}",
            )
        else:
            harness.until(
                lambda: harness.orders("sell"), lambda p=pool: harness.quote(*p), f"the {case} exit"
            )
    if not moves:
        eventually(lambda: harness.orders("sell"), WAIT_S, what="the max_hold exit")
    sells = harness.orders("sell")
    assert len(sells) == 1
    sell = sells[0]
    assert sell.quantity == pytest.approx(buy.quantity) and sell.reduce_only and sell.symbol == SYMBOL
    snipe = harness.snipe()
    assert snipe is not None and snipe.exit_reason.startswith(reason + ":"), snipe
    # While the sell is in flight, the same conditions send no second one.
    for _ in range(5):
        harness.quote(*harness.pool)
    time.sleep(1.5)  # a negative: give the sniper time to (wrongly) act on what was just published
    assert len(harness.orders("sell")) == 1
    assert harness.rejected() == []  # nor did it try (the risk guard would refuse a second full sell)
    # The sell fills; the sniper closes and the same conditions never sell again.
    harness.fill(sell, entry)
    eventually(lambda: (s := harness.snipe()) and s.status == "closed", WAIT_S, what="closed")
    last = harness.pool
    for _ in range(5):
        harness.quote(*last)
        harness.report()  # the same token again: never bought twice
    time.sleep(1.5)  # a negative: give the sniper time to (wrongly) act on what was just published
    assert len(harness.orders("sell")) == 1
    assert len(harness.orders("buy")) == 1


def test_refused_token_is_never_bought(harness: Harness) -> None:
    harness.start_risk_guard()
    harness.start_sniper()
    other = "0x1111111111111111111111111111111111111111"
    harness.until(
        lambda: harness.snipe(f"{other}/{QUOTE}"),
        lambda: (harness.report("refuse"), harness.quote(BASE0, QUOTE0), harness.report(token=other)),
        "the sniper's state for a second token (proof the refusal was handled before)",
    )
    harness.quote(BASE0, QUOTE0)
    time.sleep(1.0)
    assert not [o for o in harness.orders("buy") if o.symbol == SYMBOL]
    assert harness.snipe() is None  # a refusal leaves no trace in the sniper: the checker journals it


def test_risk_guard_spend_cap_refuses_the_buy_and_the_sniper_does_not_retry(harness: Harness) -> None:
    harness.start_risk_guard(max_spend_per_day=0.05)  # below one budget of 0.1
    harness.start_sniper()
    harness.until(
        lambda: (s := harness.snipe()) and s.status == "skipped",
        lambda: (harness.report(), harness.quote(BASE0, QUOTE0)),
        "the refused buy",
    )
    snipe = harness.snipe()
    assert snipe is not None and "max_spend_day" in snipe.exit_reason
    for _ in range(5):
        harness.report()
        harness.quote(BASE0, QUOTE0)
    time.sleep(1.0)
    assert harness.orders() == []
    assert len(harness.rejected()) == 1  # one intent, refused once, never sent again


def test_restarted_sniper_keeps_managing_and_never_rebuys(harness: Harness) -> None:
    harness.start_risk_guard()
    harness.start_sniper()
    buy, _ = harness.open_position()
    harness.start_sniper()  # a new incarnation (the old one stopped): state and position from the journal
    up = _scale(*harness.pool, price=1.7)
    harness.until(
        lambda: harness.orders("sell"),
        lambda: (harness.report(), harness.quote(*up)),
        "the take-profit after the restart",
    )
    assert len(harness.orders("buy")) == 1
    sell = harness.orders("sell")[0]
    assert sell.quantity == pytest.approx(buy.quantity)
    assert sell.client_order_id == f"{SID}-t1-2"  # the sequence went on from the journal


def test_a_buy_fill_lost_on_the_bus_is_booked_from_the_journal_and_sold_once(harness: Harness) -> None:
    """A fill published while the sniper's subscription was joining the bus never reaches it; the
    executor journaled it first, and the sniper books it on its next clock tick: the position opens
    and is sold at the take-profit, once (before, the snipe stayed 'buying' and was never sold)."""
    harness.start_risk_guard()
    harness.start_sniper()

    def announce() -> None:
        harness.report()
        harness.quote(BASE0, QUOTE0)

    buy = harness.until(lambda: harness.orders("buy"), announce, "the sniper's buy")[0]
    harness.fill(buy, float(buy.limit_price or 0), heard=False)
    opened = _within(lambda: (s := harness.snipe()) and s.status == "open" and s, 5)
    assert opened and opened.position == pytest.approx(buy.quantity)
    up = _scale(*pool_after_buy(BASE0, QUOTE0, BUDGET), price=1.7)
    harness.until(lambda: harness.orders("sell"), lambda: harness.quote(*up), "the take-profit")
    time.sleep(1.5)  # more clock ticks and quotes: the journal's fill is not booked twice
    harness.quote(*up)
    (sell,) = harness.orders("sell")
    assert sell.quantity == pytest.approx(buy.quantity)
    assert len(harness.orders("buy")) == 1

    # Sold: the finished snipe leaves the live state (what is rewritten on each change) for its own
    # key, and the token is still never bought twice, by this incarnation or the next.
    harness.fill(sell, float(up[1] / up[0]))
    closed = _within(lambda: (s := harness.snipe()) and s.status == "closed" and s, 5)
    assert closed and closed.position == 0.0 and closed.bought == pytest.approx(buy.quantity)
    journal = process_journal(harness.actors.run_dir, "process")
    live = msgspec.json.decode(journal.get_state(keys.STRATEGY_STATE + SID) or b"", type=SniperState)
    (sold_at,) = [q for q, r in journal.records(kinds=(Fill,)) if isinstance(r, Fill) and r.side == "sell"]
    assert live.snipes == [] and live.through >= sold_at  # the saved state holds the sell
    harness.start_sniper()
    for _ in range(3):
        harness.report()
        harness.quote(BASE0, QUOTE0)
        time.sleep(0.3)
    assert len(harness.orders("buy")) == 1


def test_a_state_saved_by_the_previous_version_is_read_once_the_old_way(harness: Harness) -> None:
    """A list of every snipe (the old format): positions rebuilt from every fill, then saved the new way."""
    harness.start_risk_guard()
    harness.start_sniper()
    buy, entry = harness.open_position()
    journal = process_journal(harness.actors.run_dir, "process")
    harness.actors.stop(SNIPER)
    current = msgspec.json.decode(journal.get_state(keys.STRATEGY_STATE + SID) or b"", type=SniperState)
    old = [msgspec.structs.replace(s, bought=0.0, position=0.0, cost=0.0) for s in current.snipes]
    gone = Snipe(token="0x" + "ab" * 20, status="closed")  # a finished snipe the old format kept
    journal.put_state(keys.STRATEGY_STATE + SID, msgspec.json.encode([*old, gone]))
    harness.start_sniper()
    state = _within(
        lambda: (
            (raw := journal.get_state(keys.STRATEGY_STATE + SID))
            and not raw.startswith(b"[")
            and msgspec.json.decode(raw, type=SniperState)
        ),
        5,
    )
    (snipe,) = state.snipes
    assert snipe.status == "open" and snipe.position == pytest.approx(buy.quantity)  # from the fills
    assert snipe.cost == pytest.approx(buy.quantity * entry)
    assert journal.get_state(f"{keys.STRATEGY_STATE}{SID}/done/{gone.token}") is not None
    assert state.next_seq == 2  # after the buy's intent (seq 1)


def test_a_forged_buy_report_is_dropped_not_bought(harness: Harness) -> None:
    """Only the venue's checker may say "buy": the same report from the feed's id buys nothing."""
    harness.start_risk_guard()
    harness.start_sniper()
    sniper = harness.actors.running[SNIPER][0]
    forged = TokenSafetyReport(venue=VENUE, token=TOKEN, verdict="buy", ts_ns=time.time_ns())
    harness.until(
        lambda: sniper.invalid_frames > 0,
        lambda: (
            _OUT[FEED].put(("publish", topic.token_safety(VENUE, TOKEN), forged)),
            harness.quote(BASE0, QUOTE0),
        ),
        "the forged report dropped",
    )
    time.sleep(1.0)
    assert harness.orders() == [] and harness.snipe() is None


# ---- the token checker on anvil: real Uniswap V2, the adversarial tokens, real simulations

POOL_WATCHER = f"pool_watcher.{VENUE}"

REFUSED = {  # token: the reason codes of which at least one must be given
    "Honeypot": {"cannot_sell"},
    "SellTax50": {"sell_tax"},
    "BlacklistAfterBuy": {"transfer_failed", "cannot_sell"},
    "MaxTx": {"max_tx", "buy_failed"},
}


class ReportWatch:
    """Every TokenSafetyReport on the bus."""

    def __init__(self, zctx: zmq.Context, run_dir: Path) -> None:
        self.sub = Subscriber(zctx, RunDir(run_dir).bus_out, (topic.token_safety(VENUE),))
        self.seen: list[TokenSafetyReport] = []

    def of(self, token: str) -> TokenSafetyReport | None:
        while self.sub.socket.poll(0):
            _, frame = split_message(self.sub.socket.recv())
            payload = decode_envelope(frame).payload
            if isinstance(payload, TokenSafetyReport):
                self.seen.append(payload)
        return next((r for r in self.seen if r.token.lower() == token.lower()), None)


def _new_pool(token: str, pair: str, block: int, weth: str) -> Any:
    from sniperbot.messages import NewPool  # the pool watcher's message

    return NewPool(
        venue=VENUE,
        pair=pair,
        token=token,
        quote_token=weth,
        block_number=block,
        tx_hash="0x" + "00" * 32,
        log_index=0,
        ts_ns=time.time_ns(),
    )


@pytest.fixture
def checker(harness: Harness, anvil: Any, uniswap: Any) -> Iterator[ReportWatch]:
    harness.actors.start(POOL_WATCHER, f"{__name__}:BusDriver", {})
    args = {
        "venue": VENUE,
        "rpc_url": anvil.rpc_url,
        "router": uniswap.router,
        "factory": uniswap.factory,
        "quote_token": uniswap.weth,
        "buy_quote": BUDGET,
    }
    harness.actors.start(CHECKER, "sniperbot.venues.evm.checker:TokenChecker", args)
    watch = ReportWatch(harness.zctx, harness.actors.run_dir)
    try:
        yield watch
    finally:
        watch.sub.close()


def _announce(harness: Harness, watch: ReportWatch, pool: Any) -> TokenSafetyReport:
    """Publish the pool until its report is on the bus (the bus is at-most-once; the checker checks once)."""
    return harness.until(
        lambda: watch.of(pool.token),
        lambda: _OUT[POOL_WATCHER].put(("publish", topic.new_pool(VENUE), pool)),
        f"the report on {pool.token}",
    )


def _journaled_reports(harness: Harness) -> list[TokenSafetyReport]:
    journal = process_journal(harness.actors.run_dir, "process")
    return [r for _, r in journal.records(kinds=(TokenSafetyReport,)) if isinstance(r, TokenSafetyReport)]


def _check_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", "") == "token_safety"]


def test_checker_refuses_each_trap_token_with_its_reason_in_journal_and_log(
    harness: Harness, checker: ReportWatch, anvil: Any, uniswap: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sniperbot.actor")
    from tests.evm.tokens import launch

    launched = {name: launch(anvil.w3, uniswap, name) for name in ("PlainToken", *REFUSED)}
    for name, t in launched.items():
        report = _announce(harness, checker, _new_pool(t.token, t.pair, t.block, uniswap.weth))
        if name == "PlainToken":
            assert report.verdict == "buy" and report.reasons == [] and report.can_sell, report
        else:
            codes = {reason.split(":")[0] for reason in report.reasons}
            assert report.verdict == "refuse" and codes & REFUSED[name], (name, report.reasons)
    journaled = {r.token: r for r in _journaled_reports(harness)}
    # The checker journals, publishes, then logs (the bus first: the log is the operator's, not the
    # sniper's path): the last report can be on the bus a moment before its line is written.
    tokens = {t.token for t in launched.values()}

    def every_line() -> dict[str, logging.LogRecord] | None:
        lines = {r.token: r for r in _check_logs(caplog)}  # type: ignore[attr-defined]
        return lines if tokens <= lines.keys() else None

    logged = eventually(every_line, 10, what="every check's log line")
    for name, t in launched.items():
        report = checker.of(t.token)
        assert report is not None
        assert journaled[t.token].verdict == report.verdict and journaled[t.token].reasons == report.reasons
        line = logged[t.token]
        assert line.verdict == report.verdict and line.reasons == report.reasons  # type: ignore[attr-defined]
        assert line.levelno == (logging.INFO if name == "PlainToken" else logging.WARNING)
    assert len(journaled) == len(launched)  # each pool checked once, however often it was announced


def test_checker_waits_for_the_liquidity_of_an_empty_pool(
    harness: Harness, checker: ReportWatch, anvil: Any, uniswap: Any
) -> None:
    """Launch contracts create the pair first: the check runs when the liquidity arrives, not before."""
    from sniperbot.venues.evm.devchain import ANVIL_KEYS, add_liquidity_eth, factory_contract
    from tests.evm.tokens import POOL_ETH, POOL_TOKENS, default_args, deploy_token

    token = deploy_token(anvil.w3, ANVIL_KEYS[0], "PlainToken", *default_args("PlainToken", uniswap))
    pair = factory_contract(anvil.w3, uniswap).functions.getPair(token, uniswap.weth).call()
    pool = _new_pool(token, pair, anvil.w3.eth.block_number, uniswap.weth)
    for _ in range(10):  # 2 s of announcements: the checker has it, and reports nothing yet
        _OUT[POOL_WATCHER].put(("publish", topic.new_pool(VENUE), pool))
        time.sleep(0.2)
    assert checker.of(token) is None and _journaled_reports(harness) == []
    add_liquidity_eth(anvil.w3, uniswap, ANVIL_KEYS[0], token, POOL_TOKENS, POOL_ETH)
    # The LP tokens stay with the owner here: refused for that, but only once the liquidity is in.
    report = eventually(lambda: checker.of(token), WAIT_S, what="the report once the liquidity is in")
    assert report.liquidity_quote == pytest.approx(POOL_ETH / 1e18)
    assert [r.reasons for r in _journaled_reports(harness)] == [report.reasons]


# ---- dynamic symbols: the feed quotes a token it learns of at run time (the sniped token is in no config)


class QuoteWatch:
    """Every quote of the venue on the bus."""

    def __init__(self, zctx: zmq.Context, run_dir: Path) -> None:
        self.sub = Subscriber(zctx, RunDir(run_dir).bus_out, (topic.quotes(VENUE),))
        self.seen: list[Quote] = []

    def of(self, symbol: str) -> list[Quote]:
        while self.sub.socket.poll(0):
            _, frame = split_message(self.sub.socket.recv())
            payload = decode_envelope(frame).payload
            if isinstance(payload, Quote):
                self.seen.append(payload)
        return [q for q in self.seen if q.symbol == symbol]


def test_feed_quotes_a_token_learnt_from_a_buy_report_and_again_after_a_restart(
    harness: Harness, anvil: Any, uniswap: Any
) -> None:
    from sniperbot.venues.evm.devchain import pair_contract
    from tests.evm.tokens import launch

    listed, learnt, refused = (launch(anvil.w3, uniswap, "PlainToken") for _ in range(3))
    args = {
        "venue": VENUE,
        "rpc_url": anvil.rpc_url,
        "factory": uniswap.factory,
        "tokens": {"WETH": uniswap.weth, "TKN": listed.token},
        "quote": QUOTE,
        "symbols": ["TKN/WETH"],
    }
    # Subscribed before the feed starts: a pool that does not move is quoted once, at the feed's
    # first head (a late subscriber in a node gets it from the last-value snapshot instead).
    watch = QuoteWatch(harness.zctx, harness.actors.run_dir)
    harness.actors.start(FEED, "sniperbot.venues.evm.feed:EvmFeed", args)  # the real feed, not a driver
    learnt_symbol, refused_symbol = f"{learnt.token}/{QUOTE}", f"{refused.token}/{QUOTE}"
    try:
        quotes = harness.until(
            lambda: watch.of(learnt_symbol),
            lambda: (harness.report(token=learnt.token), harness.report("refuse", token=refused.token)),
            "quotes of the learnt pair",
        )
        r0, r1, _ = pair_contract(anvil.w3, learnt.pair).functions.getReserves().call()
        token0 = pair_contract(anvil.w3, learnt.pair).functions.token0().call()
        tokens, weth = (r0, r1) if token0 == learnt.token else (r1, r0)
        assert (quotes[0].bid * quotes[0].ask) ** 0.5 == pytest.approx(weth / tokens, rel=1e-9)
        assert pool_reserves(quotes[0]) == pytest.approx((tokens / 1e18, weth / 1e18), rel=1e-9)
        eventually(lambda: watch.of("TKN/WETH"), WAIT_S, what="the listed pair's quotes")
        time.sleep(1.0)
        assert watch.of(refused_symbol) == []  # a refused token is not quoted
        # A position in the learnt token (journaled fills): a restarted feed quotes it without a report.
        order = Order(
            client_order_id=f"{SID}-t1-1",
            intent_id=f"{SID}-t1-1",
            strategy_id=SID,
            venue=VENUE,
            symbol=learnt_symbol,
            side="buy",
            quantity=10.0,
        )
        harness.fill(order, 1e-4)
        eventually(lambda: process_journal(harness.actors.run_dir, "process").fills(), WAIT_S, what="fill")
        harness.actors.stop(FEED)
        watch.seen.clear()
        harness.actors.start(FEED, "sniperbot.venues.evm.feed:EvmFeed", args)
        eventually(lambda: watch.of(learnt_symbol), WAIT_S, what="the held pair quoted after the restart")
    finally:
        watch.sub.close()


# ---- configuration: [venues.sniper] puts the checker and the pool watcher in the venue's subtree


def _sniper_config(sniper: str) -> str:
    addr = "0x" + "11" * 20
    return (
        "strategies = []\n"
        f'[[venues]]\nname = "{VENUE}"\nkind = "evm"\nmode = "live"\nchain_id = 31337\n'
        f'rpc_url = "http://127.0.0.1:8545"\nrouter = "0x{"22" * 20}"\nfactory = "0x{"33" * 20}"\n'
        f'quote = "WETH"\ntokens = {{ WETH = "{addr}", TKN = "0x{"44" * 20}" }}\nsymbols = ["TKN/WETH"]\n'
        f'wallet = "w"\nroute = "flashbots"\nrelay_url = "http://127.0.0.1:18550"\n'
        f"[venues.safety]\nmax_sell_tax_bps = 500\n{sniper}"
    )


def test_sniper_table_adds_checker_watcher_and_sniper_to_the_tree() -> None:
    from sniperbot.config import decode_config
    from sniperbot.topology import build_tree

    config = decode_config(_sniper_config("[venues.sniper]\nbudget = 0.2\ntake_profit_pct = 80\n"))
    tree = build_tree(config, epoch_ns=1)
    venue = next(c for c in tree.children if c.id == f"venue.{VENUE}")
    assert [c.id for c in venue.children] == [FEED, f"gateway.{VENUE}", EXECUTOR, CHECKER, f"pools.{VENUE}"]
    checker = venue.children[3]
    assert checker.args["rules"]["max_sell_tax_bps"] == 500 and checker.args["buy_quote"] == 0.2
    strategies = next(c for c in tree.children if c.id == "strategies")
    (sniper,) = strategies.children
    assert (sniper.id, sniper.breaker) == (SNIPER, f"strategy:{SID}")
    assert sniper.args["params"]["budget"] == 0.2 and sniper.args["params"]["take_profit_pct"] == 80
    # Without the table: no sniping actors at all.
    plain = build_tree(decode_config(_sniper_config("")), epoch_ns=1)
    assert [c.id for c in plain.walk() if c.id in (CHECKER, f"pools.{VENUE}", SNIPER)] == []


def test_a_bad_sniper_parameter_is_named() -> None:
    from sniperbot.config import ConfigError, decode_config

    with pytest.raises(ConfigError, match=r"venues\[0\]\.sniper\.stop_loss_pct: must be within \(0, 100\)"):
        decode_config(_sniper_config("[venues.sniper]\nstop_loss_pct = 150\n"))


# ---- end to end: `sniperbot run` with a live evm venue on anvil, bundles through the local relay


BLOCK_S = 1.0  # the chain's block time: the test's block producer builds a block (relay bundles + mempool)
SNIPER_TOML = """
[venues.sniper]
budget = 0.1
take_profit_pct = 50.0
stop_loss_pct = 25.0
max_hold_s = 600.0
"""
TRAPS = ("Honeypot", "SellTax50", "BlacklistAfterBuy", "MaxTx")


class BlockProducer:
    """Builds a block every ``BLOCK_S`` through the relay (its bundles, then the public mempool)."""

    def __init__(self, relay: Any) -> None:
        import threading

        self.relay = relay
        self.running = threading.Event()
        self.running.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blocks", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> BlockProducer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(BLOCK_S):
            if self.running.is_set():
                try:
                    self.relay.build_block()
                except Exception as e:  # surfaced by stop(); the chain goes on
                    self.error = e
                    print("block producer:", repr(e)[:500], flush=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise self.error


class Chain:
    """anvil with Uniswap, a listed TKN pool (the config needs one pair), the local relay, blocks."""

    def __init__(self, anvil: Any, uniswap: Any) -> None:
        from tests.evm.relay import LocalRelay
        from tests.evm.tokens import launch

        self.anvil, self.uni = anvil, uniswap
        self.listed = launch(anvil.w3, uniswap, "PlainToken")  # while anvil still automines
        self.relay = LocalRelay(anvil).start()  # automine off from here: blocks come from the producer
        self.blocks = BlockProducer(self.relay).start()

    @contextlib.contextmanager
    def public(self) -> Iterator[None]:
        """Public-mempool transactions of the test, each mined at once in a block of its own.

        Under the relay's chain lock: the local relay simulates a bundle by mining it on a snapshot and
        reverting, which would swallow a public transaction pending at that moment (a limit of the test
        relay, not of a chain), so none is pending while a bundle is simulated or a block built.
        """
        with self.relay.chain_lock:
            self.anvil.set_automine(True)
            try:
                yield
            finally:
                self.anvil.set_automine(False)

    def close(self) -> None:
        try:
            self.blocks.stop()
        finally:
            self.relay.stop()


@pytest.fixture
def chain(anvil: Any, uniswap: Any) -> Iterator[Chain]:
    c = Chain(anvil, uniswap)
    try:
        yield c
    finally:
        c.close()


def _node_config(path: Path, chain: Chain, ks_args: tuple[str, ...]) -> Path:
    uni = chain.uni
    path.write_text(
        "strategies = []\n"
        '[node]\nheartbeat_interval_s = 0.2\nheartbeat_liveness = 5\nlog_level = "INFO"\n'
        '[journal]\ndurability = "process"\n'
        "[risk]\nmax_position = 1e12\nmax_order_notional = 10.0\nmax_orders_per_second = 50.0\n"
        "max_spend_per_symbol = 0.5\nmax_spend_per_day = 2.0\nmax_open_positions = 5\n"
        f'[[venues]]\nname = "{VENUE}"\nkind = "evm"\nmode = "live"\nchain_id = 31337\n'
        f'rpc_url = "{chain.anvil.rpc_url}"\nrouter = "{uni.router}"\nfactory = "{uni.factory}"\n'
        f'quote = "WETH"\ntokens = {{ WETH = "{uni.weth}", TKN = "{chain.listed.token}" }}\n'
        'symbols = ["TKN/WETH"]\nwallet = "w"\nroute = "flashbots"\n'
        f'relay_url = "{chain.relay.url}"\nconfirmations = 1\n' + SNIPER_TOML
    )
    return path


def _keystore(short_tmp: Path) -> tuple[str, ...]:
    """A keystore holding the wallet ``w`` (anvil key 3); the node's unlock arguments."""
    import json as _json
    import subprocess
    import sys

    from sniperbot.venues.evm.devchain import ANVIL_KEYS
    from tests.conftest import ROOT

    ks = short_tmp / "ks"
    pw = short_tmp / "ks.pw"
    pw.write_text("sniper-e2e-pw\n")
    pw.chmod(0o600)
    command = [
        sys.executable, "-m", "sniperbot", "keys", "add", "w", "--exchange", "evm", "--stdin",
        "--keystore", str(ks), "--password-file", str(pw),
    ]  # fmt: skip
    done = subprocess.run(
        command, input=_json.dumps({"private_key": ANVIL_KEYS[3]}), capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return ("--keystore", str(ks), "--password-file", str(pw))


def _wallet() -> str:
    from eth_account import Account

    from sniperbot.venues.evm.devchain import ANVIL_KEYS

    return str(Account.from_key(ANVIL_KEYS[3]).address)


def _journal(run_dir: Path, what: str) -> list[dict[str, Any]]:
    import json as _json

    from tests.conftest import sniperbot

    result = sniperbot("journal", "--run-dir", str(run_dir), what, "--json")
    assert result.returncode == 0, result.stderr
    return list(_json.loads(result.stdout))


def _sniper_fills(run_dir: Path, token: str, side: str) -> list[dict[str, Any]]:
    return [
        f
        for f in _journal(run_dir, "fills")
        if f["strategy_id"] == SID and f["symbol"] == f"{token}/{QUOTE}" and f["side"] == side
    ]


def _log_lines(node: Any, event: str) -> list[dict[str, Any]]:
    import json as _json

    lines = []
    for line in node.log().splitlines():
        try:
            record = _json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            lines.append(record)
    return lines


def _buy_token(chain: Chain, token: str, eth: float) -> None:
    """Another account buys ``token`` with ``eth`` ETH: the price rises."""
    from sniperbot.venues.evm.devchain import ANVIL_KEYS, router_contract, send_tx

    w3, me = chain.anvil.w3, __import__("eth_account").Account.from_key(ANVIL_KEYS[4]).address
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    call = router_contract(w3, chain.uni).functions.swapExactETHForTokens(
        0, [chain.uni.weth, token], me, deadline
    )
    tx = call.build_transaction({"from": me, "value": int(eth * 1e18), "gas": 300_000, "nonce": 0})
    tx["nonce"] = w3.eth.get_transaction_count(me, "pending")
    send_tx(w3, ANVIL_KEYS[4], tx)


def test_end_to_end_good_token_bought_within_2_blocks_sold_at_take_profit_traps_refused(
    chain: Chain, short_tmp: Path
) -> None:
    from sniperbot.journal import Journal
    from sniperbot.venues.evm.devchain import erc20
    from tests.conftest import RunningNode
    from tests.evm.tokens import launch

    unlock = _keystore(short_tmp)
    config = _node_config(short_tmp / "sniper.toml", chain, unlock)
    node = RunningNode(short_tmp / "run", config, extra=unlock)
    w3 = chain.anvil.w3
    try:
        workers = node.wait_ready(120)
        assert {CHECKER, f"pools.{VENUE}", SNIPER, f"gateway.{VENUE}"} <= set(workers), sorted(workers)
        with chain.public():
            traps = {name: launch(w3, chain.uni, name) for name in TRAPS}
        with chain.public():
            good = launch(w3, chain.uni, "PlainToken")
        (buy,) = eventually(
            lambda: _sniper_fills(node.run_dir, good.token, "buy"), WAIT_S, what="the buy fill"
        )
        receipt = w3.eth.get_transaction_receipt(buy["fill_id"].split(":", 1)[1])
        assert receipt["blockNumber"] <= good.block + 2, (receipt["blockNumber"], good.block)
        held = erc20(w3, good.token).functions.balanceOf(_wallet()).call()
        assert held == pytest.approx(buy["quantity"] * 1e18, rel=1e-9)
        with chain.public():
            _buy_token(chain, good.token, 8.0)  # 8 ETH into a ~10 ETH pool: the price about triples
        (sell,) = eventually(lambda: _sniper_fills(node.run_dir, good.token, "sell"), WAIT_S, what="the sell")
        assert sell["quantity"] == pytest.approx(buy["quantity"], rel=1e-9)
        assert sell["price"] > buy["price"] * 1.5
        # All sold but float dust: quantities travel as floats (53 bits), the token has 18 decimals.
        assert erc20(w3, good.token).functions.balanceOf(_wallet()).call() <= held * 1e-12
        exits = _log_lines(node, "snipe_exit")
        assert [e["reason"].split(":")[0] for e in exits] == ["take_profit"], exits
        checks: dict[str, dict[str, Any]] = {}
        for name, t in traps.items():
            checks[t.token] = eventually(
                lambda t=t: next(
                    (r for r in _log_lines(node, "token_safety") if r["token"] == t.token), None
                ),
                WAIT_S,
                what=f"the {name} check in the log",
            )
            assert checks[t.token]["verdict"] == "refuse" and checks[t.token]["reasons"], checks[t.token]
        orders = _journal(node.run_dir, "orders")
        assert {o["symbol"] for o in orders} == {f"{good.token}/{QUOTE}"}, orders  # traps never ordered
        assert node.stop() == 0
        journal = Journal.open(node.run_dir, readonly=True)
        try:
            reports = {r.token: r for _, r in journal.records(kinds=(TokenSafetyReport,))}
        finally:
            journal.close()
        assert reports[good.token].verdict == "buy"
        for name, t in traps.items():
            codes = {reason.split(":")[0] for reason in reports[t.token].reasons}
            assert reports[t.token].verdict == "refuse" and codes & REFUSED[name], (name, reports[t.token])
            assert (
                checks[t.token]["reasons"] == reports[t.token].reasons
            )  # the same reasons in log and journal
    finally:
        if node.process.poll() is None:
            node.stop()


def test_end_to_end_gateway_killed_during_the_snipe_still_one_buy_on_chain(
    chain: Chain, short_tmp: Path
) -> None:
    import os
    import signal

    from sniperbot.venues.evm.devchain import erc20
    from tests.conftest import RunningNode
    from tests.evm.tokens import launch

    unlock = _keystore(short_tmp)
    node = RunningNode(
        short_tmp / "run", _node_config(short_tmp / "sniper.toml", chain, unlock), extra=unlock
    )
    w3 = chain.anvil.w3
    try:
        node.wait_ready(120)
        chain.blocks.running.clear()  # hold the next block: the bundle is sent, not yet included
        with chain.public():
            good = launch(w3, chain.uni, "PlainToken")
        bundles = len(chain.relay.bundles)
        eventually(lambda: len(chain.relay.bundles) > bundles, WAIT_S, what="the buy bundle at the relay")
        gateway = node.workers()[f"gateway.{VENUE}"]
        os.kill(gateway["pid"], signal.SIGKILL)
        eventually(
            lambda: (
                (g := node.workers()[f"gateway.{VENUE}"])["state"] == "running"
                and g["incarnation"] > gateway["incarnation"]
            ),
            WAIT_S,
            what="the gateway restarted",
        )
        chain.blocks.running.set()
        (buy,) = eventually(
            lambda: _sniper_fills(node.run_dir, good.token, "buy"), WAIT_S, what="the buy fill"
        )
        for _ in range(3):  # more blocks: nothing else of the wallet lands
            chain.relay.build_block()
        assert w3.eth.get_transaction_count(_wallet()) == 1  # one transaction ever signed and mined: the buy
        held = erc20(w3, good.token).functions.balanceOf(_wallet()).call()
        assert held == pytest.approx(buy["quantity"] * 1e18, rel=1e-9)
        assert len(_sniper_fills(node.run_dir, good.token, "buy")) == 1
        assert node.stop() == 0
    finally:
        if node.process.poll() is None:
            node.stop()


def test_gateway_swaps_a_token_learnt_at_run_time_and_refuses_a_buy_above_its_limit(
    anvil: Any,
    uniswap: Any,
    actors: Actors,  # noqa: F811
) -> None:
    """The gateway trades ``"<token address>/WETH"`` (no config lists a sniped token) and honours a buy's
    limit price: a pool that moved beyond it (plus the slippage tolerance) is not bought."""
    from sniperbot.venues.evm.devchain import erc20, router_contract
    from tests.evm import test_evm_gateway as gw
    from tests.evm.tokens import launch

    c = gw.make_chain(anvil, uniswap)
    new = launch(anvil.w3, uniswap, "PlainToken")  # in no config
    gw.start_all(actors, c)
    symbol, quantity = f"{new.token}/{QUOTE}", 100.0
    router = router_contract(anvil.w3, uniswap)
    paid = router.functions.getAmountsIn(int(quantity * 1e18), [uniswap.weth, new.token]).call()[0] / 1e18

    def buy(cid: str, limit: float) -> None:
        o = Order(
            client_order_id=cid,
            intent_id=cid,
            strategy_id="s1",
            venue=VENUE,
            symbol=symbol,
            side="buy",
            quantity=quantity,
            limit_price=limit,
            ts_ns=time.time_ns(),
        )
        gw.submit(o)

    buy("s1-t1-1", paid / quantity)  # the pool's own price: bought
    gw.mine_until(anvil, lambda: gw.journal(actors.run_dir).order_status("s1-t1-1") == "filled", what="buy")
    (fill,) = gw.fills_of(actors.run_dir, "s1-t1-1")
    assert fill.symbol == symbol
    assert erc20(anvil.w3, new.token).functions.balanceOf(gw.WALLET).call() == pytest.approx(
        fill.quantity * 1e18
    )
    buy("s1-t1-2", paid / quantity / 2)  # half the pool's price: refused before anything is signed
    gw.mine_until(
        anvil, lambda: gw.journal(actors.run_dir).order_status("s1-t1-2") == "rejected", what="refusal"
    )
    updates = [
        r
        for _, r in gw.journal(actors.run_dir).records(kinds=(OrderUpdate,))
        if isinstance(r, OrderUpdate) and r.client_order_id == "s1-t1-2"
    ]
    assert [u.reason for u in updates if u.status == "rejected"] == ["price_above_limit"], updates
    assert len(gw.wallet_txs(anvil)) == 1  # the one buy


def test_live_checker_simulates_as_the_wallet_and_refuses_a_token_that_traps_ordinary_accounts(
    harness: Harness, anvil: Any, uniswap: Any
) -> None:
    """EoaTrap lets a contract (the probe) buy and sell, and freezes ordinary accounts: only the wallet's
    own simulated buy and sell catch it. The checker learns the wallet's address from the gateway's
    VenueStatus and holds a pool until it has."""
    from eth_account import Account

    from sniperbot.messages import VenueStatus
    from sniperbot.venues.evm.devchain import ANVIL_KEYS
    from tests.evm.tokens import launch

    gateway = f"gateway.{VENUE}"
    harness.actors.start(POOL_WATCHER, f"{__name__}:BusDriver", {})
    harness.actors.start(gateway, f"{__name__}:BusDriver", {})
    args = {
        "venue": VENUE, "rpc_url": anvil.rpc_url, "router": uniswap.router, "factory": uniswap.factory,
        "quote_token": uniswap.weth, "buy_quote": BUDGET, "wallet_pass": True,
    }  # fmt: skip
    harness.actors.start(CHECKER, "sniperbot.venues.evm.checker:TokenChecker", args)
    watch = ReportWatch(harness.zctx, harness.actors.run_dir)
    try:
        trap = launch(anvil.w3, uniswap, "EoaTrap")
        pool = _new_pool(trap.token, trap.pair, trap.block, uniswap.weth)
        for _ in range(10):  # 2 s: no account said yet, so no verdict either
            _OUT[POOL_WATCHER].put(("publish", topic.new_pool(VENUE), pool))
            time.sleep(0.2)
        assert watch.of(trap.token) is None
        wallet = Account.from_key(ANVIL_KEYS[5]).address
        status = VenueStatus(venue=VENUE, connection="ok", reconciled=True, account=wallet, ts_ns=1)
        report = harness.until(
            lambda: watch.of(trap.token),
            lambda: _OUT[gateway].put(("publish", topic.venue_status(VENUE), status)),
            "the report on EoaTrap",
        )
        assert report.verdict == "refuse" and any(r.startswith("wallet_cannot_sell") for r in report.reasons)
    finally:
        watch.sub.close()
