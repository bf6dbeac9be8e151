"""Circuit breakers: the real BreakerBoard on a real LMDB journal, and breakers in a real node.

The board tests drive :class:`~sniperbot.supervision.breaker.BreakerBoard` with an
injected clock; the node tests force trips with the admin ``chaos`` command and watch
the journal, the bus (``ctl.breaker.<scope>``) and the admin socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from sniperbot.journal import Journal
from sniperbot.messages import BreakerChanged
from sniperbot.supervision.breaker import Breaker, BreakerBoard

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
