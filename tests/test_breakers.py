"""Circuit breakers: the real BreakerBoard on a real LMDB journal, and breakers in a real node.

The board tests drive :class:`~sniperbot.supervision.breaker.BreakerBoard` with an
injected clock; the node tests force trips with the admin ``chaos`` command and watch
the journal, the bus (``ctl.breaker.<scope>``) and the admin socket.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import zmq

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.journal import Journal
from sniperbot.messages import BreakerChanged, OrderIntent, OrderUpdate, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.supervision.breaker import Breaker, BreakerBoard
from sniperbot.transport.bus import Subscriber, split_message
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot

_S = 1_000_000_000  # ns per second


class Clock:
    """A wall clock the test moves by hand (ns, like ``time.time_ns``)."""

    def __init__(self) -> None:
        self.ns = 1_700_000_000 * _S

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.ns += int(seconds * _S)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """A real LMDB journal in a temporary run dir."""
    opened = Journal.open(tmp_path, durability="process")
    try:
        yield opened
    finally:
        opened.close()


def _board(journal: Journal, clock: Clock, announced: list[BreakerChanged] | None = None) -> BreakerBoard:
    sink = announced if announced is not None else []
    return BreakerBoard(journal, sink.append, clock=clock)


def _cycle(board: BreakerBoard, clock: Clock, scope: str) -> None:
    """Cooldown over, the subtree is half-open again (as the supervisor's timer does it)."""
    clock.advance(board.breakers[scope].cooldown_s)
    board.half_open(scope)


def test_cooldown_doubles_on_each_consecutive_trip_up_to_the_cap(journal: Journal) -> None:
    """5, 10, 20, ... s, capped at max_cooldown_s (300 s by default)."""
    clock = Clock()
    board = _board(journal, clock)
    assert (board.base_cooldown_s, board.max_cooldown_s) == (5.0, 300.0)
    cooldowns = []
    for _ in range(9):
        cooldowns.append(board.trip("venue:sim", "venue.sim escalated"))
        _cycle(board, clock, "venue:sim")  # fails again while half-open: a consecutive trip
    assert cooldowns == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]
    assert board.breakers["venue:sim"].trips == 9


def test_a_breaker_that_flaps_for_days_keeps_the_capped_cooldown(journal: Journal) -> None:
    """A venue that passes its probe and fails again within max_cooldown_s never resets its count."""
    clock = Clock()
    board = _board(journal, clock)
    for _ in range(1100):  # ~4 days of a 310 s flap cycle
        cooldown = board.trip("venue:sim", "venue.sim escalated")
        _cycle(board, clock, "venue:sim")
        clock.advance(board.probe_s)
        board.close("venue:sim")  # probe passed ...
        clock.advance(board.max_cooldown_s / 2)  # ... and it fails again before a quiet period
    assert cooldown == 300.0 and board.breakers["venue:sim"].trips == 1100


def test_timed_breaker_half_opens_after_the_cooldown_and_closes_after_the_probe(journal: Journal) -> None:
    """``tick``: open -> half_open after the cooldown -> closed after probe_s, only while the node runs."""
    clock = Clock()
    board = _board(journal, clock)
    assert board.trip("global", "unclean_shutdown", timed=True) == 5.0
    clock.advance(4.9)
    board.tick(node_running=True)
    assert board.state("global") == "open"
    clock.advance(0.2)
    board.tick(node_running=False)  # no health check while part of the tree is down
    assert board.state("global") == "open"
    board.tick(node_running=True)
    assert board.state("global") == "half_open"
    clock.advance(board.probe_s - 0.1)
    board.tick(node_running=True)
    assert board.state("global") == "half_open"
    clock.advance(0.2)
    board.tick(node_running=True)
    assert board.state("global") == "closed"
    clock.advance(3600)
    board.tick(node_running=True)
    assert board.state("global") == "closed"


def test_trip_count_resets_only_after_staying_closed_for_max_cooldown(journal: Journal) -> None:
    """Closed for less than max_cooldown_s: the next trip doubles; closed longer: back to the base."""
    clock = Clock()
    board = _board(journal, clock)
    board.trip("venue:sim", "first")
    _cycle(board, clock, "venue:sim")
    board.close("venue:sim")
    clock.advance(board.max_cooldown_s - 1)
    assert board.trip("venue:sim", "second, soon after") == 10.0
    assert board.breakers["venue:sim"].trips == 2
    _cycle(board, clock, "venue:sim")
    board.close("venue:sim")
    clock.advance(board.max_cooldown_s + 1)
    assert board.trip("venue:sim", "third, after a quiet period") == 5.0
    assert board.breakers["venue:sim"].trips == 1


def test_operator_reset_closes_now_and_stops_the_timer(journal: Journal) -> None:
    """``reset``: an open breaker closes at once (reason ``operator reset``); unknown scopes say False."""
    clock = Clock()
    announced: list[BreakerChanged] = []
    board = _board(journal, clock, announced)
    assert board.reset("venue:nowhere") is False
    board.trip("global", "unclean_shutdown", timed=True)
    assert board.reset("global") is True
    assert board.state("global") == "closed"
    assert announced[-1].state == "closed" and announced[-1].reason == "operator reset"
    clock.advance(1000)
    board.tick(node_running=True)  # nothing left for the timer to move
    assert [a.state for a in announced] == ["open", "closed"]


def test_breakers_are_journaled_and_a_new_board_carries_them_on(tmp_path: Path) -> None:
    """A node that restarts reads its breakers back; an open one still times out and closes."""
    clock = Clock()
    first = Journal.open(tmp_path, durability="process")
    board = _board(first, clock)
    board.trip("venue:sim", "venue.sim escalated")
    _cycle(board, clock, "venue:sim")
    board.trip("venue:sim", "venue.sim escalated again")
    first.close()

    second = Journal.open(tmp_path, durability="process")
    try:
        announced: list[BreakerChanged] = []
        reloaded = _board(second, clock, announced)
        reloaded.load()
        breaker = reloaded.breakers["venue:sim"]
        assert (breaker.state, breaker.trips, breaker.cooldown_s) == ("open", 2, 10.0)
        assert breaker.reason == "venue.sim escalated again"
        assert reloaded.snapshot() == {"venue:sim": "open"}
        clock.advance(10.0)
        reloaded.tick(node_running=True)  # nobody owns the scope after a restart: the board does
        clock.advance(reloaded.probe_s)
        reloaded.tick(node_running=True)
        assert [a.state for a in announced] == ["half_open", "closed"]
        # the next trip soon after continues the count
        assert reloaded.trip("venue:sim", "once more") == 20.0
    finally:
        second.close()


def test_every_change_is_journaled_then_announced(journal: Journal) -> None:
    """Each transition is one BreakerChanged, and the journal already has it when it goes out."""
    clock = Clock()
    seen: list[tuple[BreakerChanged, Breaker]] = []

    def announce(change: BreakerChanged) -> None:
        raw = journal.get_state("breaker/" + change.scope)
        assert raw is not None
        seen.append((change, msgspec.json.decode(raw, type=Breaker)))

    board = BreakerBoard(journal, announce, clock=clock)
    board.trip("venue:sim", "venue.sim escalated")
    clock.advance(5)
    board.half_open("venue:sim")
    clock.advance(10)
    board.close("venue:sim")
    board.trip("global", "risk escalated")
    board.reset("global")
    assert [(c.scope, c.state) for c, _ in seen] == [
        ("venue:sim", "open"),
        ("venue:sim", "half_open"),
        ("venue:sim", "closed"),
        ("global", "open"),
        ("global", "closed"),
    ]
    for change, stored in seen:
        assert (stored.state, stored.reason, stored.trips) == (change.state, change.reason, change.trips)
        assert stored.changed_ns == change.ts_ns
    assert seen[0][0].cooldown_s == 5.0 and seen[0][0].reason == "venue.sim escalated"


# -- breakers in a real node ---------------------------------------------------------------

# The fast market without strategies: the only intents are the test's own, so positions and
# outcomes are exact.
NO_STRATEGIES = "strategies = []\n" + re.sub(r"\[\[strategies\]\]\n(?:[^\[\n].*\n|\n)*", "", FAST_CONFIG)
BTC = "BTC/USDT"


def _config(short_tmp: Path, breakers: str) -> Path:
    path = short_tmp / "breakers.toml"
    # Spaced kills stand for a crash loop here: count every restart (OTP; min_uptime_s = 0).
    path.write_text(NO_STRATEGIES + "\n[supervisor]\nmin_uptime_s = 0.0\n" + "\n[breakers]\n" + breakers)
    return path


class IntentRelay(Actor):
    """Test strategy actor: sends the order intents the test appends to ``intents.jsonl``.

    Intents carry authority, so they must come from a strategy actor of this node life
    (``sniperbot.transport.auth``); this one is started with ``admin start-child`` as
    ``strategy.probe`` and relays, in order, each JSON line the test writes.
    """

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        self._offset = 0

    def on_start(self) -> None:
        """Poll the intents file on the actor's own loop."""
        self.ctx.every(0.02, self._relay)

    def _relay(self) -> None:
        path = self.ctx.run_dir / INTENTS_FILE
        if not path.exists():
            return
        with path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            self.ctx.send("risk_guard", msgspec.json.decode(line, type=OrderIntent))


INTENTS_FILE = "intents.jsonl"


class Trader:
    """Sends order intents to the node's risk guard through a real strategy actor (:class:`IntentRelay`)."""

    def __init__(self, node: RunningNode) -> None:
        spec = {"id": "strategy.probe", "actor": f"{__name__}:IntentRelay"}
        code, body = _admin(node, "start-child", "--sup", "strategies", "--spec", json.dumps(spec))
        assert code == 0, body
        self.run_dir = node.run_dir
        self.seq = 0

    def send(self, side: str, quantity: float, limit_price: float | None = None) -> str:
        """One intent (market, or limit at ``limit_price``); returns its id."""
        self.seq += 1
        intent = OrderIntent(
            intent_id=f"probe-{self.seq}",
            strategy_id="probe",
            intent_seq=self.seq,
            venue="sim",
            symbol=BTC,
            side=side,  # type: ignore[arg-type]
            quantity=quantity,
            order_type="market" if limit_price is None else "limit",
            limit_price=limit_price,
        )
        with (self.run_dir / INTENTS_FILE).open("ab") as f:
            f.write(msgspec.json.encode(intent) + b"\n")
        return intent.intent_id

    def outcome(self, intent_id: str, want: str = "", timeout_s: float = 30.0) -> tuple[str, str]:
        """(status, reason) of the intent once the journal has decided it (``want``: wait for that status)."""

        def decided() -> tuple[str, str] | None:
            with Journal.open(self.run_dir, readonly=True) as journal:
                status = journal.order_status(intent_id)
                if not status or (want and status != want):
                    return None
                reasons = [
                    r.reason
                    for _, r in journal.records(kinds=(OrderUpdate,))
                    if isinstance(r, OrderUpdate) and r.client_order_id == intent_id and r.status == status
                ]
                return status, reasons[-1] if reasons else ""

        return eventually(decided, timeout_s, what=f"a decision on {intent_id}")

    def fill(self, side: str, quantity: float) -> None:
        """A market order that must fill (retried while the risk guard has no price yet)."""
        while True:
            status, reason = self.outcome(self.send(side, quantity))
            if reason != "no_price":
                assert status == "filled", (status, reason)
                return


class BreakerWatch:
    """A subscriber on ``ctl.breaker.`` of the node's bus."""

    def __init__(self, zctx: zmq.Context, run_dir: Path) -> None:
        self.sub = Subscriber(zctx, RunDir(run_dir).bus_out, (topic.BREAKERS,))
        self.seen: list[tuple[str, BreakerChanged]] = []

    def states(self, scope: str) -> list[str]:
        """Every state of ``scope`` announced so far, in order."""
        while self.sub.socket.poll(0):
            name, frame = split_message(self.sub.socket.recv())
            change = decode_envelope(frame).payload
            assert isinstance(change, BreakerChanged)
            self.seen.append((name.decode(), change))
        return [c.state for name, c in self.seen if c.scope == scope and name == topic.breaker(scope)]

    def wait(self, scope: str, state: str, timeout_s: float = 30.0) -> BreakerChanged:
        """The announcement of ``scope`` entering ``state``."""
        eventually(lambda: state in self.states(scope), timeout_s, what=f"{scope} {state} on the bus")
        return [c for _, c in self.seen if c.scope == scope and c.state == state][-1]


def _admin(node: RunningNode, *args: str) -> tuple[int, object]:
    result = sniperbot("admin", "--run-dir", str(node.run_dir), *args, "--json")
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        return result.returncode, result.stdout + result.stderr


def _chaos_until_tripped(node: RunningNode, actor: str, scope: str) -> None:
    """Kill ``actor`` until its supervisor (3 restarts in 30 s) gives up and trips ``scope``."""
    for _ in range(4):
        worker = eventually(lambda: (w := node.workers().get(actor)) and w["state"] == "running" and w, 30)
        code, body = _admin(node, "chaos", "--actor", actor, "--signal", "KILL")
        assert code == 0, body
        eventually(lambda w=worker: node.workers().get(actor, {}).get("pid") != w["pid"], 30)
    eventually(lambda: node.admin("status")["breakers"].get(scope) == "open", 30, what=f"{scope} open")


@pytest.fixture
def zctx() -> Iterator[zmq.Context]:
    """A ZeroMQ context for the test's own sockets."""
    context = zmq.Context()
    try:
        yield context
    finally:
        context.destroy(linger=0)


def _stop(node: RunningNode) -> None:
    if node.process.poll() is None:
        try:
            node.stop(signal.SIGTERM, timeout=30)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait(10)


def test_open_venue_breaker_blocks_every_intent_and_half_open_passes_only_reductions(
    short_tmp: Path, zctx: zmq.Context
) -> None:
    """venue:sim trips: the risk guard rejects all its intents; half-open, only reductions; then closed."""
    # A long cooldown keeps the breaker open while the test checks it; a short probe closes it.
    config = _config(short_tmp, "cooldown_s = 12.0\nprobe_s = 3.0\n")
    node = RunningNode(short_tmp / "run", config, ("--enable-chaos",))
    try:
        node.wait_ready(60)
        watch = BreakerWatch(zctx, node.run_dir)
        trader = Trader(node)
        trader.fill("buy", 0.02)  # a long position the half-open test can reduce

        _chaos_until_tripped(node, "executor.sim", "venue:sim")
        opened = watch.wait("venue:sim", "open")
        assert (opened.trips, opened.cooldown_s) == (1, 12.0) and "venue.sim" in opened.reason
        assert trader.outcome(trader.send("buy", 0.01)) == ("rejected", "breaker_open:venue:sim")
        assert trader.outcome(trader.send("sell", 0.01)) == ("rejected", "breaker_open:venue:sim")
        assert node.admin("status")["breakers"].get("global", "closed") == "closed"
        assert node.workers()["risk_guard"]["restarts"] == 0  # the healthy part kept running

        watch.wait("venue:sim", "half_open", 60)
        assert trader.outcome(trader.send("buy", 0.01)) == ("rejected", "breaker_half_open:venue:sim")
        assert trader.outcome(trader.send("sell", 0.03)) == ("rejected", "breaker_half_open:venue:sim")
        assert trader.outcome(trader.send("sell", 0.01), "filled") == ("filled", "")

        closed = watch.wait("venue:sim", "closed", 60)
        assert closed.reason == "probe passed"
        assert watch.states("venue:sim") == ["open", "half_open", "closed"]
        trader.fill("buy", 0.01)  # trading resumes
    finally:
        _stop(node)


def test_risk_subtree_trips_global_cancels_resting_orders_and_an_operator_reset_resumes(
    short_tmp: Path, zctx: zmq.Context
) -> None:
    """risk escalates -> global opens, resting orders are cancelled; ``breaker-reset`` resumes trading now."""
    # A cooldown far longer than the test: only the operator's reset can bring trading back.
    config = _config(short_tmp, "cooldown_s = 600.0\nprobe_s = 600.0\n")
    node = RunningNode(short_tmp / "run", config, ("--enable-chaos",))
    try:
        node.wait_ready(60)
        watch = BreakerWatch(zctx, node.run_dir)
        trader = Trader(node)
        trader.fill("buy", 0.01)  # the risk guard has prices
        resting = trader.send("buy", 0.01, limit_price=1000.0)  # far below the market: it rests
        assert trader.outcome(resting) == ("accepted", "")
        assert node.admin("status")["breakers"].get("global", "closed") == "closed"

        _chaos_until_tripped(node, "risk_guard", "global")
        opened = watch.wait("global", "open")
        assert opened.reason == "risk escalated" and opened.trips == 1
        assert trader.outcome(resting, "cancelled") == ("cancelled", "breaker global: risk escalated")
        assert node.admin("status")["breakers"].get("venue:sim", "closed") == "closed"

        code, body = _admin(node, "breaker-reset", "--scope", "global")
        assert code == 0 and body == {"global": "closed"}, body
        closed = watch.wait("global", "closed")
        assert closed.reason == "operator reset" and watch.states("global") == ["open", "closed"]
        trader.fill("buy", 0.01)  # the risk subtree is back at once, not after the 600 s cooldown
        assert node.workers()["risk_guard"]["state"] == "running"
    finally:
        _stop(node)
