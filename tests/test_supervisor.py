"""The supervisor and restart intensity against the OTP checklist (research/supervision-semantics.md).

A scripted host stands in for the node: a list-backed clock the test moves by hand,
fake handles whose exits the test triggers through the watched callback, and a log
of every start, stop request and kill in order. The last test drives the same
supervisor with the real Launcher, thread placement and real sockets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from sniperbot.actors.base import Actor
from sniperbot.actors.placement import Launcher
from sniperbot.actors.runtime import ActorLaunch, SupervisorSilence, close_process_journals
from sniperbot.messages import Envelope, Heartbeat, Payload, Ready, decode_envelope, encode_envelope
from sniperbot.rundir import RunDir
from sniperbot.supervision import Child, ChildSpec, RestartIntensity, Supervisor, SupFlags
from sniperbot.transport.bus import BusProxy, tune
from tests.conftest import eventually

# -- a scripted host --------------------------------------------------------------------------


class FakeHandle:
    """One fake incarnation: the test decides when and how it exits."""

    def __init__(self, actor_id: str, incarnation: int, pid: int, log: list[tuple[Any, ...]]) -> None:
        self.actor_id = actor_id
        self.incarnation = incarnation
        self.pid = pid
        self.sentinel = 1000 + pid
        self.code: int | None = None
        self.killed = False
        self.released = False
        self._log = log

    def exitcode(self) -> int | None:
        return self.code

    def kill(self) -> None:
        self.killed = True
        self._log.append(("kill", self.actor_id, self.incarnation))
        if self.code is None:
            self.code = -9

    def release(self) -> None:
        self.released = True


class Host:
    """Implements SupervisorHost; ``now`` is a one-element list the test moves."""

    def __init__(self, interval_s: float = 0.5, liveness: int = 4, start_timeout_s: float = 10.0) -> None:
        self.heartbeat_interval_s = interval_s
        self.heartbeat_liveness = liveness
        self.start_timeout_s = start_timeout_s
        self.now = [100.0]
        self.log: list[tuple[Any, ...]] = []
        self.handles: dict[str, FakeHandle] = {}  # current incarnation of each actor
        self.watched: dict[FakeHandle, Callable[[], None]] = {}
        self.children: dict[str, Child] = {}
        self.failed: list[Supervisor] = []
        self._incarnations: dict[str, int] = {}
        self._pids = 0

    def clock(self) -> float:
        return self.now[0]

    def start_actor(self, spec: ChildSpec, incarnation: int) -> FakeHandle:
        self._pids += 1
        handle = FakeHandle(spec.id, incarnation, self._pids, self.log)
        self.handles[spec.id] = handle
        self.log.append(("start", spec.id, incarnation))
        return handle

    def watch(self, handle: FakeHandle, on_exit: Callable[[], None]) -> None:  # type: ignore[override]
        self.watched[handle] = on_exit

    def unwatch(self, handle: FakeHandle) -> None:  # type: ignore[override]
        self.watched.pop(handle, None)

    def send_control(self, actor_id: str, incarnation: int, payload: Payload) -> None:
        if not isinstance(payload, Heartbeat):
            self.log.append((type(payload).__name__.lower(), actor_id, incarnation))

    def next_incarnation(self, actor_id: str) -> int:
        self._incarnations[actor_id] = self._incarnations.get(actor_id, 0) + 1
        return self._incarnations[actor_id]

    def register(self, actor_id: str, child: Child) -> None:
        self.children[actor_id] = child

    def root_failed(self, supervisor: Supervisor) -> None:
        self.failed.append(supervisor)

    # -- test helpers --
    def ready(self, actor_id: str) -> None:
        """The current incarnation of ``actor_id`` reports Ready (as the node relays it)."""
        child = self.children[actor_id]
        child.owner.on_ready(child)

    def exit(self, actor_id: str, code: int) -> None:
        """The current incarnation of ``actor_id`` ends with ``code`` (its sentinel fires)."""
        handle = self.handles[actor_id]
        if handle.code is None:
            handle.code = code
        self.watched[handle]()

    def incarnation(self, actor_id: str) -> int:
        return self.children[actor_id].incarnation

    def events(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.log if e[0] == kind]


def worker(child_id: str, **kw: Any) -> ChildSpec:
    return ChildSpec(id=child_id, actor="tests.test_supervisor:Quiet", **kw)


def sup(
    sup_id: str, children: list[ChildSpec], intensity: int = 1, period_s: float = 5.0, **kw: Any
) -> ChildSpec:
    return ChildSpec(
        id=sup_id,
        type="supervisor",
        flags=SupFlags(intensity=intensity, period_s=period_s),
        children=children,
        **kw,
    )


def started(spec: ChildSpec, host: Host | None = None) -> tuple[Supervisor, Host]:
    """A supervisor whose every worker is running (each made ready in turn)."""
    host = host or Host()
    root = Supervisor(spec, host)
    root.start()
    for child in spec.walk():
        if child.type == "worker":
            host.ready(child.id)
    assert root.state == "running"
    return root, host


def states(root: Supervisor) -> dict[str, str]:
    return {c.spec.id: c.state for c in root.workers()}


# -- OTP-01 / OTP-07: defaults and validation -------------------------------------------------


def test_flag_and_child_spec_defaults_are_otp_defaults() -> None:
    """OTP-01: one_for_one, intensity 1, period 5 s; OTP-07: permanent worker, 5 s shutdown."""
    flags = SupFlags()
    assert (flags.strategy, flags.intensity, flags.period_s) == ("one_for_one", 1, 5.0)
    spec = worker("w")
    assert (spec.type, spec.restart, spec.shutdown_s) == ("worker", "permanent", 5.0)
    assert msgspec.convert({"id": "w", "actor": "m:C"}, ChildSpec) == ChildSpec(id="w", actor="m:C")


def test_invalid_flags_and_specs_are_rejected() -> None:
    """OTP-01 invalid_intensity / invalid_period / invalid_strategy; OTP-07 (unknown keys rejected)."""
    with pytest.raises(ValueError, match="intensity"):
        SupFlags(intensity=-1)
    with pytest.raises(ValueError, match="period"):
        SupFlags(period_s=0)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"strategy": "one_for_none"}, SupFlags)
    with pytest.raises(msgspec.ValidationError, match="silly_flag"):
        msgspec.convert({"id": "w", "actor": "m:C", "silly_flag": True}, ChildSpec)
    with pytest.raises(ValueError, match="actor"):
        ChildSpec(id="w")  # a worker needs something to start
    with pytest.raises(ValueError, match="shutdown_s"):
        worker("w", shutdown_s=-1.0)
    with pytest.raises(ValueError):
        ChildSpec(id="a/b", actor="m:C")


# -- OTP-03: restart intensity ------------------------------------------------------------------


def test_intensity_boundary_with_a_float_clock() -> None:
    """OTP-03: with (1, 5.0) a 2nd restart at t+4.9 exceeds the intensity, at t+5.1 it does not."""
    now = [1000.0]
    inside = RestartIntensity(1, 5.0, lambda: now[0])
    assert inside.allow()
    now[0] += 4.9
    assert not inside.allow()

    now[0] = 1000.0
    outside = RestartIntensity(1, 5.0, lambda: now[0])
    assert outside.allow()
    now[0] += 5.1
    assert outside.allow()
    assert outside.recent == 1


def test_intensity_window_is_closed_at_exactly_period() -> None:
    """OTP-03 boundary: a restart exactly ``period`` seconds after an earlier one still counts."""
    now = [10.0]
    intensity = RestartIntensity(1, 5.0, lambda: now[0])
    assert intensity.allow()
    now[0] = 15.0
    assert not intensity.allow()


def test_intensity_zero_escalates_on_the_first_restart() -> None:
    """OTP-03: with intensity 0 the first restart is already too many."""
    assert not RestartIntensity(0, 1.0, lambda: 0.0).allow()


def test_intensity_counts_a_burst_and_forgets_old_restarts() -> None:
    """OTP-03/06: intensity N tolerates N restarts in the window, and the window slides."""
    now = [0.0]
    intensity = RestartIntensity(3, 10.0, lambda: now[0])
    for t in (0.0, 1.0, 2.0):
        now[0] = t
        assert intensity.allow()
    now[0] = 9.0
    assert not intensity.allow()  # 4 within 10 s
    now[0] = 11.5  # 0.0 and 1.0 have left the window: 2.0, 9.0, 11.5
    assert intensity.allow()
    assert intensity.recent == 3


def test_supervisor_second_crash_within_period_escalates() -> None:
    """OTP-03 through the supervisor: (1, 5.0), crashes at t and t+4.9 → the root fails."""
    root, host = started(sup("root", [worker("a"), worker("b")]))
    host.exit("a", 1)
    assert host.incarnation("a") == 2 and host.children["a"].restarts == 1
    host.ready("a")
    host.now[0] += 4.9
    host.exit("a", 1)
    assert host.incarnation("a") == 2, "no third incarnation once the intensity is exceeded"
    # escalation: b is asked to stop; once it exits the root reports failure to the node
    assert host.events("stop") == [("stop", "b", 1)]
    assert host.failed == []
    host.exit("b", 0)
    assert host.failed == [root]
    assert root.state == "failed"
    assert states(root) == {"a": "stopped", "b": "stopped"}


def test_supervisor_second_crash_after_period_restarts() -> None:
    """OTP-03 through the supervisor: (1, 5.0), crashes at t and t+5.1 → two restarts, no escalation."""
    root, host = started(sup("root", [worker("a")]))
    host.exit("a", 1)
    host.ready("a")
    host.now[0] += 5.1
    host.exit("a", 1)
    host.ready("a")
    assert host.incarnation("a") == 3
    assert host.children["a"].restarts == 2
    assert host.failed == [] and root.state == "running"
    assert states(root) == {"a": "running"}


def test_supervisor_with_intensity_zero_escalates_on_first_crash() -> None:
    """OTP-03: intensity 0, the first crash of a restartable child makes the supervisor give up."""
    root, host = started(sup("root", [worker("a")], intensity=0, period_s=1.0))
    host.exit("a", 1)
    assert host.events("start") == [("start", "a", 1)]
    assert host.failed == [root]


# -- OTP-04: escalation -------------------------------------------------------------------------


def _nested(restart: str = "permanent") -> ChildSpec:
    return sup(
        "root",
        [
            worker("feed"),
            sup("strategies", [worker("s1"), worker("s2"), worker("s3")], restart=restart),
            worker("last"),
        ],
        intensity=10,
        period_s=60.0,
    )


def test_escalation_stops_siblings_in_reverse_order_and_parent_restarts_the_supervisor() -> None:
    """OTP-04: the child supervisor stops its children in reverse start order, fails, and its
    permanent spec makes the parent (one_for_one) start a fresh one; nobody else is touched."""
    root, host = started(_nested())
    host.exit("s2", 1)  # restart 1 of 1 within 5 s
    host.ready("s2")
    host.now[0] += 1.0
    host.log.clear()
    host.exit("s2", 1)  # too many: escalate
    assert host.events("stop") == [("stop", "s3", 1)], "reverse order: s3 first"
    host.exit("s3", 0)
    assert host.events("stop") == [("stop", "s3", 1), ("stop", "s1", 1)]
    assert host.events("start") == [], "nothing restarts until every sibling is down"
    host.exit("s1", 0)
    # The parent restarts the whole child supervisor: its children start again, in order.
    assert host.events("start") == [("start", "s1", 2)]
    host.ready("s1")
    host.ready("s2")
    assert host.events("start") == [("start", "s1", 2), ("start", "s2", 3), ("start", "s3", 2)]
    host.ready("s3")
    assert host.failed == []
    assert root.state == "running"
    tree = root.describe()
    strategies = next(c for c in tree["children"] if c["id"] == "strategies")
    assert strategies["restarts"] == 1 and strategies["state"] == "running"
    assert [(c["id"], c["incarnation"], c["restarts"]) for c in strategies["children"]] == [
        ("s1", 2, 0),
        ("s2", 3, 0),
        ("s3", 2, 0),
    ]
    # siblings of the failed supervisor were neither stopped nor restarted
    assert host.incarnation("feed") == 1 and host.incarnation("last") == 1
    assert not any(e[1] in ("feed", "last") for e in host.log)
    assert root.intensity.recent == 1


def test_transient_child_supervisor_that_escalates_is_not_restarted() -> None:
    """OTP-04 corollary: an escalating supervisor exits with `shutdown`, so a transient one stays down."""
    root, host = started(_nested(restart="transient"))
    host.exit("s1", 1)
    host.ready("s1")
    host.exit("s1", 1)  # escalates: stop s3, s2
    host.exit("s3", 0)
    host.exit("s2", 0)
    assert [e for e in host.events("start") if e[2] > 1] == [("start", "s1", 2)]
    assert root.state == "running" and host.failed == []
    strategies = next(c for c in root.describe()["children"] if c["id"] == "strategies")
    assert strategies["state"] == "failed" and strategies["restarts"] == 0


def test_escalations_count_toward_the_parent_intensity() -> None:
    """OTP-04 + OTP-06: a child supervisor that keeps escalating exhausts its parent in turn."""
    spec = sup("root", [sup("inner", [worker("w")], intensity=0)], intensity=1, period_s=5.0)
    root, host = started(spec)
    host.exit("w", 1)  # inner escalates; root restarts inner (1 of 1)
    host.ready("w")
    assert host.incarnation("w") == 2 and host.failed == []
    host.exit("w", 1)  # inner escalates again; root exceeds its own intensity
    assert host.failed == [root]


# -- OTP-05 / OTP-08: restart types and what counts ---------------------------------------------


@pytest.mark.parametrize(
    ("restart", "code", "restarted"),
    [
        ("permanent", 0, True),
        ("permanent", 1, True),
        ("permanent", -9, True),
        ("transient", 0, False),
        ("transient", 1, True),
        ("transient", -9, True),
        ("temporary", 0, False),
        ("temporary", 1, False),
        ("temporary", -9, False),
    ],
)
def test_restart_type_decides_on_normal_and_abnormal_exit(restart: str, code: int, restarted: bool) -> None:
    """OTP-08 restart types; OTP-05 only actual restarts count toward the intensity."""
    root, host = started(sup("root", [worker("w", restart=restart), worker("other")], intensity=1))
    first = host.handles["w"]
    host.exit("w", code)
    child = host.children["w"]
    assert first.released and first not in host.watched
    expected_reason = {0: "normal", 1: "exit code 1", -9: "killed by signal 9"}[code]
    assert child.last_exit == expected_reason
    if restarted:
        assert host.incarnation("w") == 2 and child.restarts == 1 and child.state == "starting"
        assert root.intensity.recent == 1
    else:
        assert host.incarnation("w") == 1 and child.restarts == 0 and child.state == "stopped"
        assert root.intensity.recent == 0
    assert host.failed == [] and host.incarnation("other") == 1


def test_exits_that_do_not_restart_never_exhaust_the_intensity() -> None:
    """OTP-05: temporary crashes and transient normal exits do not count, even with intensity 0."""
    spec = sup("root", [worker("t", restart="temporary"), worker("n", restart="transient")], intensity=0)
    root, host = started(spec)
    host.exit("t", 1)
    host.exit("n", 0)
    assert host.failed == [] and root.state == "running"
    # OTP-08: a temporary child's spec is deleted when it ends
    assert states(root) == {"n": "stopped"}


def test_a_child_that_crashes_while_starting_is_restarted_and_the_start_resumes() -> None:
    """OTP-05: a failed start counts as a restart; OTP-12: the sequence waits for the new incarnation."""
    host = Host()
    root = Supervisor(sup("root", [worker("a"), worker("b")], intensity=1), host)
    root.start()
    host.exit("a", 1)  # died before Ready
    assert host.events("start") == [("start", "a", 1), ("start", "a", 2)]
    host.ready("a")
    assert host.events("start")[-1] == ("start", "b", 1)
    host.exit("b", 1)  # second restart within 5 s: give up
    assert host.events("stop") == [("stop", "a", 2)]
    host.exit("a", 0)
    assert host.failed == [root]


# -- OTP-12: start and stop order -----------------------------------------------------------------


def test_children_start_in_order_each_after_the_previous_is_ready() -> None:
    """OTP-12: child 2 is started only after child 1 is ready; on_started fires after the last."""
    host = Host()
    done: list[bool] = []
    root = Supervisor(sup("root", [worker("a"), worker("b"), worker("c")]), host)
    root.start(on_started=lambda: done.append(True))
    assert host.events("start") == [("start", "a", 1)]
    assert root.state == "starting"
    assert "b" not in host.children
    host.ready("a")
    assert host.events("start") == [("start", "a", 1), ("start", "b", 1)]
    host.ready("a")  # a repeated Ready changes nothing
    assert len(host.events("start")) == 2 and done == []
    host.ready("b")
    host.ready("c")
    assert [e[1] for e in host.events("start")] == ["a", "b", "c"]
    assert done == [True] and root.state == "running"
    assert states(root) == {"a": "running", "b": "running", "c": "running"}


def test_nested_supervisors_start_depth_first_in_order() -> None:
    """OTP-12: a child supervisor's whole subtree is up before the next sibling starts."""
    host = Host()
    root = Supervisor(_nested(), host)
    root.start()
    for actor in ("feed", "s1", "s2", "s3", "last"):
        assert host.events("start")[-1] == ("start", actor, 1)
        host.ready(actor)
    assert root.state == "running"


def test_children_stop_in_reverse_start_order_one_at_a_time() -> None:
    """OTP-12 reverse order, OTP-09 orderly Stop: the next Stop goes out only after the previous exit."""
    root, host = started(sup("root", [worker("a"), worker("b"), worker("c")]))
    host.log.clear()
    stopped: list[bool] = []
    root.stop(on_stopped=lambda: stopped.append(True))
    assert host.log == [("stop", "c", 1)]
    host.exit("c", 0)
    assert host.log == [("stop", "c", 1), ("stop", "b", 1)]
    host.exit("b", 0)
    assert host.log[-1] == ("stop", "a", 1) and stopped == []
    host.exit("a", 0)
    assert stopped == [True] and root.state == "stopped"
    assert states(root) == {"a": "stopped", "b": "stopped", "c": "stopped"}
    assert all(host.children[a].last_exit == "shutdown" for a in "abc")
    assert host.events("start") == [] and host.failed == []


def test_nested_tree_stops_in_exact_reverse_of_start() -> None:
    """OTP-12: stop order is the reverse of the depth-first start order."""
    root, host = started(_nested())
    host.log.clear()
    root.stop()
    for actor in ("last", "s3", "s2", "s1", "feed"):
        assert host.log[-1] == ("stop", actor, 1)
        host.exit(actor, 0)
    assert root.state == "stopped"


def test_brutal_kill_of_a_thread_child_keeps_reverse_stop_order() -> None:
    """OTP-09 brutal_kill + OTP-12: killing a thread child at once must not stop the others in parallel."""
    spec = sup("root", [worker("a"), worker("b"), worker("c", placement="thread", shutdown_s="brutal_kill")])
    root, host = started(spec)
    host.log.clear()
    root.stop()
    assert host.log == [("kill", "c", 1), ("stop", "b", 1)], "a must wait until b has exited"
    host.exit("b", 0)
    assert host.log[-1] == ("stop", "a", 1)
    host.exit("a", 0)
    assert root.state == "stopped"


def test_brutal_kill_process_child_is_killed_without_stop_request() -> None:
    """OTP-09: brutal_kill means kill, no orderly Stop first; the stop goes on once it is gone."""
    spec = sup("root", [worker("a"), worker("b", shutdown_s="brutal_kill")])
    root, host = started(spec)
    host.log.clear()
    root.stop()
    assert host.log == [("kill", "b", 1)]
    host.exit("b", -9)
    assert host.log[-1] == ("stop", "a", 1)
    host.exit("a", 0)
    assert root.state == "stopped"


def test_shutdown_timeout_then_kill_from_tick() -> None:
    """OTP-09: Stop, wait shutdown_s, then kill; the exit after the kill completes the stop."""
    root, host = started(sup("root", [worker("a"), worker("slow", shutdown_s=2.0)]))
    host.log.clear()
    root.stop()
    assert host.log == [("stop", "slow", 1)]
    waiting = host.children["a"]  # alive and heartbeating while it waits its turn
    host.now[0] += 1.9
    waiting.on_heartbeat(Heartbeat(seq=1, ts_ns=0), host.now[0])
    root.tick()
    assert host.events("kill") == []
    host.now[0] += 0.2
    waiting.on_heartbeat(Heartbeat(seq=2, ts_ns=0), host.now[0])
    root.tick()
    assert host.events("kill") == [("kill", "slow", 1)]
    assert host.events("stop") == [("stop", "slow", 1)], "a waits for slow to be gone"
    host.exit("slow", -9)
    assert host.log[-1] == ("stop", "a", 1)
    host.exit("a", 0)
    assert root.state == "stopped" and host.events("start") == []


def test_a_crash_during_shutdown_is_not_restarted() -> None:
    """OTP-09: while stopping, an exit is just an exit: no restart, no escalation."""
    root, host = started(sup("root", [worker("a"), worker("b")], intensity=0))
    root.stop()
    host.exit("a", 1)  # crashes while b is being stopped
    host.exit("b", 0)
    assert root.state == "stopped" and host.failed == []
    assert host.events("start") == [("start", "a", 1), ("start", "b", 1)]


# -- liveness -------------------------------------------------------------------------------------


def test_hung_child_is_killed_after_interval_times_liveness_and_restarted() -> None:
    """9.4: no heartbeat for interval*liveness → kill; the exit restarts it with a new incarnation."""
    root, host = started(sup("root", [worker("a"), worker("b")]), Host(interval_s=0.5, liveness=4))
    child = host.children["a"]
    t0 = host.now[0]
    host.now[0] = t0 + 1.5
    child.on_heartbeat(Heartbeat(seq=1, ts_ns=0, invalid_frames=3, handled=42), host.now[0])
    host.children["b"].on_heartbeat(Heartbeat(seq=1, ts_ns=0), t0 + 3.0)
    host.now[0] = t0 + 3.5  # exactly 2.0 s of silence: not yet
    root.tick()
    assert host.events("kill") == []
    host.now[0] = t0 + 3.6
    root.tick()
    assert host.events("kill") == [("kill", "a", 1)], "only the silent child"
    host.exit("a", -9)  # the sentinel fires after SIGKILL
    assert host.incarnation("a") == 2 and child.state == "starting"
    assert child.last_exit == "killed by signal 9" and child.restarts == 1
    host.ready("a")
    host.now[0] += 1.0
    root.tick()
    assert host.events("kill") == [("kill", "a", 1)], "the new incarnation starts with a fresh deadline"
    assert host.incarnation("b") == 1


def test_tick_judges_liveness_by_the_reading_it_is_given_down_the_tree() -> None:
    """A host that forgave its own pause passes that clock reading: a pause after it (the host's clock
    now far ahead) is not silence of the children, nested supervisors' children included."""
    spec = sup("root", [worker("a"), sup("venue", [worker("v")])])
    root, host = started(spec, Host(interval_s=0.5, liveness=4))
    t0 = host.now[0]
    host.now[0] = t0 + 10.0  # the host was stopped right after taking its reading
    root.tick(t0 + 1.0)
    assert host.events("kill") == []
    root.tick(t0 + 2.1)
    assert sorted(host.events("kill")) == [("kill", "a", 1), ("kill", "v", 1)]


def test_an_actor_forgives_its_own_pause_but_not_a_silent_supervisor() -> None:
    """The actor's side of liveness (heartbeat 0.2 s x liveness 5): a pause of this process is not
    its supervisor's silence, even while the supervisor is still stopped after it; real silence is."""
    ms = 1_000_000
    silence = SupervisorSilence(200 * ms, 0)
    for t in range(200, 1001, 200):  # heard and beating on time
        silence.heard(t * ms - 5 * ms)
        assert silence.beat(t * ms) == 5 * ms
    # Stopped from 1.05 s to 3.05 s (the supervisor too, until 3.35 s): the late beat is forgiven.
    assert silence.beat(3050 * ms) < 400 * ms
    assert max(silence.beat(t * ms) for t in (3250, 3450)) < 1000 * ms
    silence.heard(3460 * ms)
    # Then the supervisor goes silent for good: on-time beats see it grow past the 1 s limit.
    silent = [silence.beat(t * ms) for t in range(3650, 4851, 200)]
    assert silent[-1] == 4850 * ms - 3460 * ms > 1000 * ms
    assert silent == sorted(silent)


def test_start_timeout_kills_a_child_that_never_becomes_ready() -> None:
    """OTP-10 / 9.4: not Ready within start_timeout_s → kill; the kill counts as a failed start."""
    host = Host(start_timeout_s=10.0)
    root = Supervisor(sup("root", [worker("a"), worker("b")], intensity=5), host)
    root.start()
    host.now[0] += 10.0
    root.tick()
    assert host.events("kill") == []
    host.now[0] += 0.1
    root.tick()
    assert host.events("kill") == [("kill", "a", 1)]
    host.exit("a", -9)
    assert host.events("start")[-1] == ("start", "a", 2)
    assert "b" not in host.children
    host.ready("a")
    assert host.events("start")[-1] == ("start", "b", 1)


def test_heartbeats_go_to_every_live_child() -> None:
    """9.4: the supervisor heartbeats each live incarnation, including nested ones, and not the dead."""
    sent: list[tuple[str, int]] = []

    class Recording(Host):
        def send_control(self, actor_id: str, incarnation: int, payload: Payload) -> None:
            if isinstance(payload, Heartbeat):
                sent.append((actor_id, incarnation))
            super().send_control(actor_id, incarnation, payload)

    root, host = started(_nested(), Recording())
    host.exit("s2", 0)  # permanent: restarted, incarnation 2, starting
    root.send_heartbeats()
    assert sorted(sent) == sorted([("feed", 1), ("s1", 1), ("s2", 2), ("s3", 1), ("last", 1)])


# -- describe -------------------------------------------------------------------------------------


def test_describe_reports_states_restarts_and_exits() -> None:
    """9.8 admin tree: ids, kinds, placement, pid, incarnation, state, restarts, last exit."""
    root, host = started(_nested())
    host.exit("s1", 1)
    host.now[0] += 2.0
    host.children["s3"].on_heartbeat(Heartbeat(seq=1, ts_ns=0, invalid_frames=2, handled=9), host.now[0])
    tree = root.describe()
    assert tree["id"] == "root" and tree["kind"] == "supervisor" and tree["state"] == "running"
    assert (tree["strategy"], tree["intensity"], tree["period_s"]) == ("one_for_one", 10, 60.0)
    assert [c["id"] for c in tree["children"]] == ["feed", "strategies", "last"]
    strategies = tree["children"][1]
    assert strategies["kind"] == "supervisor" and strategies["restarts_in_window"] == 1
    s1, s2, s3 = strategies["children"]
    assert (s1["state"], s1["incarnation"], s1["restarts"], s1["last_exit"]) == (
        "starting",
        2,
        1,
        "exit code 1",
    )
    assert s1["pid"] == host.handles["s1"].pid
    assert (s2["state"], s2["restarts"], s2["last_exit"]) == ("running", 0, "")
    assert (s3["invalid_frames"], s3["handled"]) == (2, 9)
    assert s2["uptime_s"] == 2.0 and s2["kind"] == "worker" and s2["placement"] == "process"
    assert s2["actor"] == "tests.test_supervisor:Quiet"
    # a transient child that ended normally shows no pid, and why it ended
    root2, host2 = started(sup("r", [worker("t", restart="transient")]))
    host2.exit("t", 0)
    (t,) = root2.describe()["children"]
    assert (t["state"], t["pid"], t["uptime_s"], t["last_exit"]) == ("stopped", None, 0.0, "normal")
    # a temporary child that ended is gone, spec and all (OTP-08)
    root3, host3 = started(sup("r", [worker("t", restart="temporary")]))
    host3.exit("t", 1)
    assert root3.describe()["children"] == []


def test_exit_of_a_replaced_incarnation_is_ignored() -> None:
    """A late exit notification from an old incarnation must not restart the new one."""
    _root, host = started(sup("root", [worker("a")], intensity=5))
    old = host.handles["a"]
    old_exit = host.watched[old]
    host.exit("a", 1)
    host.ready("a")
    old_exit()  # stale callback (its handle was already released)
    assert host.incarnation("a") == 2 and host.children["a"].state == "running"


# -- the real Launcher, thread placement, real sockets ------------------------------------------


class Quiet(Actor):
    """An actor that does nothing but exist (heartbeats and Ready come from the runtime)."""


class RealHost(Host):
    """The SupervisorHost part of a node: real Launcher, real control ROUTER, sentinel polling."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(interval_s=0.2, liveness=5, start_timeout_s=5.0)
        self.rundir = RunDir(run_dir)
        self.rundir.create()
        self.zctx = zmq.Context()
        self.proxy = BusProxy(self.zctx, self.rundir.bus_in, self.rundir.bus_out)
        self.proxy.start()
        self.control = self.zctx.socket(zmq.ROUTER)
        tune(self.control)
        self.control.bind(self.rundir.control)
        self.launcher = Launcher(self.zctx, preload=[])
        self.real_handles: dict[str, Any] = {}
        self.sentinels: dict[int, Callable[[], None]] = {}

    def clock(self) -> float:
        return time.monotonic()

    def start_actor(self, spec: ChildSpec, incarnation: int) -> Any:  # type: ignore[override]
        launch = ActorLaunch(
            actor_id=spec.id,
            actor=spec.actor,
            args=spec.args,
            run_dir=str(self.rundir.path),
            incarnation=incarnation,
            heartbeat_interval_s=self.heartbeat_interval_s,
            heartbeat_liveness=self.heartbeat_liveness,
            journal_durability="process",
        )
        handle = self.launcher.start(launch, spec.placement)  # type: ignore[arg-type]
        self.real_handles[spec.id] = handle
        self.log.append(("start", spec.id, incarnation))
        return handle

    def watch(self, handle: Any, on_exit: Callable[[], None]) -> None:
        self.sentinels[handle.sentinel] = on_exit

    def unwatch(self, handle: Any) -> None:
        self.sentinels.pop(handle.sentinel, None)

    def send_control(self, actor_id: str, incarnation: int, payload: Payload) -> None:
        super().send_control(actor_id, incarnation, payload)
        frame = encode_envelope(Envelope("ctl", "node", 0, 0, time.time_ns(), payload))
        try:
            self.control.send_multipart((f"{actor_id}#{incarnation}".encode(), frame), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def step(self, root: Supervisor) -> None:
        """One round of the node loop: control messages, exits, timers."""
        poller = zmq.Poller()
        poller.register(self.control, zmq.POLLIN)
        for fd in self.sentinels:
            poller.register(fd, zmq.POLLIN)
        for sock, _ in poller.poll(20):
            if sock is self.control:
                while self.control.poll(0):
                    identity, frame = self.control.recv_multipart()
                    actor_id, _, incarnation = identity.decode().rpartition("#")
                    child = self.children[actor_id]
                    if int(incarnation) != child.incarnation:
                        continue
                    payload = decode_envelope(frame).payload
                    if isinstance(payload, Heartbeat):
                        child.on_heartbeat(payload, self.clock())
                    elif isinstance(payload, Ready):
                        self.log.append(("ready", actor_id, payload.incarnation))
                        child.owner.on_ready(child)
            elif sock in self.sentinels:
                self.sentinels[sock]()
        root.send_heartbeats()
        root.tick()

    def close(self) -> None:
        for handle in self.real_handles.values():
            if handle.exitcode() is None:
                handle.kill()
        self.control.close(0)
        self.proxy.stop()
        close_process_journals()
        self.zctx.destroy(linger=0)


def test_real_launcher_with_thread_placement_starts_restarts_and_stops_in_order(short_tmp: Path) -> None:
    """OTP-12 and restart with real ActorRuntimes in pykka threads, Ready over the real control socket."""
    host = RealHost(short_tmp / "run")
    spec = sup(
        "root",
        [worker("t1", placement="thread"), worker("t2", placement="thread")],
        intensity=3,
    )
    root = Supervisor(spec, host)
    try:
        root.start()

        def run_until(check: Callable[[], Any]) -> Callable[[], Any]:
            def step() -> Any:
                host.step(root)
                return check()

            return step

        eventually(run_until(lambda: root.state == "running"), 10, interval_s=0, what="both ready")
        assert host.log == [("start", "t1", 1), ("ready", "t1", 1), ("start", "t2", 1), ("ready", "t2", 1)]
        for handle in host.real_handles.values():
            assert handle.pid == os.getpid()

        # Kill t1 (a thread actor is stopped, its sentinel fires): it comes back as incarnation 2.
        host.log.clear()
        host.real_handles["t1"].kill()
        # Until the restart is seen: right after the kill the old incarnation still reads "running".
        eventually(
            run_until(lambda: root.children[0].incarnation == 2 and root.children[0].state == "running"),
            10,
            interval_s=0,
            what="t1 restarted",
        )
        assert host.events("start") == [("start", "t1", 2)] and host.events("ready") == [("ready", "t1", 2)]
        assert root.children[0].restarts == 1 and root.children[1].incarnation == 1
        assert root.children[0].last_exit == "killed by signal 9"

        host.log.clear()
        stopped: list[bool] = []
        root.stop(on_stopped=lambda: stopped.append(True))
        eventually(run_until(lambda: stopped), 10, interval_s=0, what="orderly stop")
        assert host.events("stop") == [("stop", "t2", 1), ("stop", "t1", 2)]
        assert [c.last_exit for c in root.children] == ["shutdown", "shutdown"]
        assert host.events("start") == []
    finally:
        host.close()
