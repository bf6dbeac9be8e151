"""Crash loops trip, independent faults do not (issue #14 point 6: availability under fault storms).

``min_uptime_s`` (:mod:`sniperbot.supervision.intensity`): only the restart of a child that died
before it was ready, or within ``min_uptime_s`` of becoming ready (a hung one: of its last
heartbeat), counts toward a restart intensity. The supervision tests drive the real Supervisor and
the real BreakerBoard on the scripted host of tests/test_supervisor.py (a clock moved by hand, so
uptimes are exact); the last test kills actors of a real node with the default ``min_uptime_s``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec

from sniperbot.admin import admin_request
from sniperbot.supervision import ChildSpec, Supervisor, SupFlags
from sniperbot.supervision.supervisor import PROBE_S
from tests.conftest import FAST_CONFIG, RunningNode, eventually
from tests.test_supervisor import started, worker
from tests.test_supervisor_strategies import BreakerHost

MIN_UPTIME_S = 1.0


def _venue_tree(min_uptime_s: float = MIN_UPTIME_S) -> ChildSpec:
    """root -> [risk, venue.sim (rest_for_one, 1 restart in 5 s, breaker venue:sim) -> feed, exec]."""
    flags = SupFlags(strategy="rest_for_one", intensity=1, period_s=5.0, min_uptime_s=min_uptime_s)
    venue = ChildSpec(
        id="venue.sim",
        type="supervisor",
        flags=flags,
        children=[worker("feed"), worker("exec")],
        breaker="venue:sim",
    )
    root_flags = SupFlags(intensity=1, period_s=5.0, min_uptime_s=min_uptime_s)
    return ChildSpec(id="root", type="supervisor", flags=root_flags, children=[worker("risk"), venue])


def _restart_ready(host: BreakerHost, *actor_ids: str) -> None:
    for actor_id in actor_ids:
        host.ready(actor_id)


def _tick_alive(host: BreakerHost, root: Supervisor) -> None:
    """Every running actor heartbeats, then the supervisors tick (timers, liveness)."""
    for child in root.workers():
        child.last_heartbeat = host.now[0]
    root.tick()


def _fault(host: BreakerHost, victim: str) -> None:
    """Kill ``victim``; its restart (and, for the feed, rest_for_one's restart of exec) reports ready."""
    host.exit(victim, -9)
    if victim == "feed" and host.children["exec"].state == "stopping":
        host.exit("exec", 0)  # exec stops on request before the group starts again
        _restart_ready(host, "feed", "exec")
    elif host.children[victim].state == "starting":
        host.ready(victim)


def test_a_child_that_dies_right_after_it_starts_still_trips_its_breaker() -> None:
    """A crash loop (dies 0.1 s after each ready) trips venue:sim after its intensity, as with OTP."""
    host = BreakerHost()
    root, _ = started(_venue_tree(), host)
    host.now[0] += 0.1
    host.exit("exec", 1)
    host.ready("exec")
    assert host.breakers == {}  # the first restart is within the intensity
    host.now[0] += 0.1
    host.exit("exec", 1)  # dies again right after it started: the second counted restart in 5 s
    host.exit("feed", 0)
    assert host.breakers == {"venue:sim": "open"} and host.trips == 1
    assert host.failed == [] and root.state == "running"


def test_a_child_that_never_becomes_ready_counts_whatever_its_age() -> None:
    """Dying while starting is a crash loop even after a long start (uptime since ready is none)."""
    host = BreakerHost()
    started(_venue_tree(), host)
    host.now[0] += 30.0
    host.exit("exec", 1)  # up 30 s: an independent fault, restarted without counting
    host.now[0] += 3.0  # its restart takes 3 s and dies before it is ready ...
    host.exit("exec", 1)  # ... counted
    host.now[0] += 3.0
    host.exit("exec", 1)  # counted: 2 in 5 s
    host.exit("feed", 0)
    assert host.breakers == {"venue:sim": "open"}


def test_independent_faults_spaced_beyond_min_uptime_never_trip() -> None:
    """A storm: 200 kills of random actors, each 1.2 s after the last restart, OTP would trip at once."""
    host = BreakerHost()
    root, _ = started(_venue_tree(), host)
    rng = random.Random(14)
    for _ in range(200):
        host.now[0] += MIN_UPTIME_S + 0.2
        _fault(host, rng.choice(["risk", "feed", "exec"]))
    assert host.breakers == {} and host.trips == 0 and host.failed == []
    assert root.state == "running" and sum(c.restarts for c in root.workers()) >= 200

    # The same storm with OTP's rule (min_uptime_s = 0) trips the venue on its second venue fault.
    otp = BreakerHost()
    started(_venue_tree(min_uptime_s=0.0), otp)
    for victim in ("exec", "feed"):
        otp.now[0] += MIN_UPTIME_S + 0.2
        _fault(otp, victim)
    assert otp.breakers == {"venue:sim": "open"}


def test_a_child_that_hangs_right_after_it_starts_counts_from_its_last_heartbeat() -> None:
    """A hang is detected only after the liveness timeout (2 s > min_uptime_s); its life ended earlier."""
    host = BreakerHost()
    root, _ = started(_venue_tree(), host)
    hung_after = host.heartbeat_interval_s * host.heartbeat_liveness
    for _ in range(2):
        host.now[0] += hung_after + 0.1  # no heartbeat from exec since it became ready
        for alive in ("risk", "feed"):
            host.children[alive].last_heartbeat = host.now[0]
        root.tick()  # exec killed as hung ...
        host.exit("exec", -9)  # ... and its exit seen
        if host.breakers:
            break
        host.ready("exec")
    host.exit("feed", 0)
    assert host.breakers == {"venue:sim": "open"}


def test_a_worker_with_its_own_breaker_trips_on_a_crash_loop_not_on_spaced_faults() -> None:
    """A strategy (own intensity and breaker): the same rule, for its own count."""
    flags = SupFlags(intensity=2, period_s=60.0, min_uptime_s=MIN_UPTIME_S)
    strategy = msgspec.structs.replace(worker("strat"), breaker="strategy:s", flags=flags)
    spec = ChildSpec(id="root", type="supervisor", flags=SupFlags(intensity=1), children=[strategy])
    host = BreakerHost()
    root, _ = started(spec, host)
    for _ in range(20):  # faults each 2 s after its ready: independent
        host.now[0] += 2.0
        host.exit("strat", 1)
        host.ready("strat")
    assert host.breakers == {} and root.intensity.recent == 0
    for _ in range(3):  # then a crash loop: dies 50 ms after each start
        host.now[0] += 0.05
        host.exit("strat", 1)
        if host.breakers:
            break
        host.ready("strat")
    assert host.breakers == {"strategy:s": "open"}


def test_a_crash_report_heard_after_the_trip_names_the_error_in_the_breaker() -> None:
    """The trip can only name the exit code when the actor's error report loses the race with its
    exit; the report, once heard, becomes the breaker's reason. Trips, cooldown and the time of the
    change stay: the cooldown runs on and the alerts actor (keyed on that time) does not alert twice."""
    flags = SupFlags(intensity=1, period_s=60.0, min_uptime_s=MIN_UPTIME_S)
    strategy = msgspec.structs.replace(worker("strat"), breaker="strategy:s", flags=flags)
    spec = ChildSpec(id="root", type="supervisor", flags=SupFlags(intensity=1), children=[strategy])
    host = BreakerHost()
    root, _ = started(spec, host)
    for _ in range(2):
        host.now[0] += 0.05
        host.exit("strat", 1)
        if not host.breakers:
            host.ready("strat")
    tripped = host.board.breakers["strategy:s"]
    child = host.children["strat"]
    assert tripped.state == "open" and tripped.reason == f"strat crash loop ({child.last_exit})"
    before = (tripped.trips, tripped.cooldown_s, tripped.changed_ns)

    host.now[0] += 0.2
    child.last_error = "KeyError at strat.py:12 in on_message"  # what the node does on ActorError
    root.crash_explained(child)
    explained = host.board.breakers["strategy:s"]
    assert explained.reason == "strat crash loop (KeyError at strat.py:12 in on_message)"
    assert (explained.state, explained.trips, explained.cooldown_s, explained.changed_ns) == ("open", *before)
    root.crash_explained(child)  # heard twice: nothing changes
    assert host.board.breakers["strategy:s"].reason == explained.reason


def test_the_cooldown_is_back_to_its_base_after_a_stable_period() -> None:
    """Two crash loops in a row double the cooldown; after max_cooldown_s closed it is the base again."""
    host = BreakerHost()
    root, _ = started(_venue_tree(), host)

    def crash_loop() -> float:
        # exec dies 0.1 s after each start (its first death may follow a long healthy run).
        for _ in range(3):
            host.now[0] += 0.1
            host.exit("exec", 1)
            if host.children["feed"].state == "stopping":  # venue.sim gives up
                break
            host.ready("exec")
        host.exit("feed", 0)
        assert host.breakers["venue:sim"] == "open"
        return host.board.breakers["venue:sim"].cooldown_s

    def recover(cooldown_s: float) -> None:
        host.now[0] += cooldown_s
        _tick_alive(host, root)  # half-open: the subtree starts again
        _restart_ready(host, "feed", "exec")
        host.now[0] += PROBE_S
        _tick_alive(host, root)
        assert host.breakers["venue:sim"] == "closed"

    first = crash_loop()
    recover(first)
    second = crash_loop()  # soon after it closed: doubled
    assert (first, second) == (host.board.base_cooldown_s, 2 * host.board.base_cooldown_s)
    recover(second)
    host.now[0] += host.board.max_cooldown_s + 1  # a stable run
    _tick_alive(host, root)
    assert crash_loop() == host.board.base_cooldown_s


def _admin(node: RunningNode, cmd: str, **args: Any) -> Any:
    reply = admin_request(node.run_dir, cmd, **args)
    assert reply.ok, reply.error
    return reply.result


def _worker(node: RunningNode, actor: str) -> dict[str, Any]:
    def walk(tree: dict[str, Any]) -> dict[str, Any] | None:
        if tree.get("id") == actor:
            return tree
        return next((w for c in tree.get("children") or [] if (w := walk(c)) is not None), None)

    found = walk(_admin(node, "tree"))
    assert found is not None
    return found


def test_a_real_node_rides_out_spaced_kills_of_its_executor(short_tmp: Path) -> None:
    """Default min_uptime_s (1 s): four kills of executor.sim, each after 1.8 s up, do not trip venue:sim.

    (venue.sim allows 3 restarts in 30 s: with every restart counted, the fourth kill trips it:
    tests/test_breakers.py forces trips that way with min_uptime_s = 0.)
    """
    config = short_tmp / "node.toml"
    config.write_text(FAST_CONFIG)
    node = RunningNode(short_tmp / "run", config, ("--enable-chaos",))
    try:
        node.wait_ready(60)
        for _ in range(4):
            up = eventually(
                lambda: (
                    (w := _worker(node, "executor.sim"))["state"] == "running"
                    and w["uptime_s"] >= MIN_UPTIME_S + 0.8  # since its start; ready comes a little later
                    and w
                ),
                30,
                what="executor.sim up past min_uptime_s",
            )
            _admin(node, "chaos", actor="executor.sim", signal="KILL")
            eventually(lambda u=up: _worker(node, "executor.sim")["incarnation"] > u["incarnation"], 30)
        assert _worker(node, "executor.sim")["restarts"] == 4
        assert all(b["trips"] == 0 for b in _admin(node, "breaker_status")), _admin(node, "breaker_status")
        fills = _admin(node, "status")["fills"]
        eventually(lambda: _admin(node, "status")["fills"] > fills, 30, what="still trading")
    finally:
        assert node.stop() == 0, node.log()
