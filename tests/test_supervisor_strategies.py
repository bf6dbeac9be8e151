"""OTP restart strategies, the management API, backoff and circuit breakers (scripted host).

Checklist ids refer to research/supervision-semantics.md.
"""

from __future__ import annotations

from typing import Any

import pytest

from sniperbot.supervision import ChildSpec, Supervisor, SupFlags
from sniperbot.supervision.breaker import BreakerBoard
from sniperbot.supervision.spec import Backoff
from sniperbot.supervision.supervisor import PROBE_S, SupervisorError
from tests.test_supervisor import Host, started, states, sup, worker


def _flags(strategy: str, intensity: int = 5) -> SupFlags:
    return SupFlags(strategy=strategy, intensity=intensity, period_s=60.0)  # type: ignore[arg-type]


def _tree(strategy: str, children: list[ChildSpec]) -> ChildSpec:
    return ChildSpec(id="root", type="supervisor", flags=_flags(strategy), children=children)


def test_one_for_all_stops_the_others_in_reverse_then_restarts_all_in_order() -> None:
    """OTP-02 one_for_all."""
    root, host = started(_tree("one_for_all", [worker("a"), worker("b"), worker("c")]))
    host.log.clear()
    host.exit("b", 1)
    assert host.events("stop") == [("stop", "c", 1)]  # reverse start order, one at a time
    host.exit("c", 0)
    assert host.events("stop") == [("stop", "c", 1), ("stop", "a", 1)]
    assert host.events("start") == []
    host.exit("a", 0)
    assert host.events("start") == [("start", "a", 2)]  # then in start order, each once ready
    host.ready("a")
    host.ready("b")
    host.ready("c")
    assert host.events("start") == [("start", "a", 2), ("start", "b", 2), ("start", "c", 2)]
    assert states(root) == {"a": "running", "b": "running", "c": "running"}
    assert root.intensity.recent == 1  # one restart, however many children it took


def test_rest_for_one_restarts_the_failed_child_and_those_after_it() -> None:
    """OTP-02 rest_for_one: children started before the failed one are untouched."""
    root, host = started(_tree("rest_for_one", [worker("feed"), worker("gw"), worker("exec")]))
    host.log.clear()
    host.exit("gw", 1)
    assert host.events("stop") == [("stop", "exec", 1)]
    host.exit("exec", 0)
    host.ready("gw")
    host.ready("exec")
    assert host.events("start") == [("start", "gw", 2), ("start", "exec", 2)]
    assert host.incarnation("feed") == 1
    assert states(root) == {"feed": "running", "gw": "running", "exec": "running"}


def test_temporary_sibling_terminated_by_a_group_restart_is_not_restarted() -> None:
    """OTP-08: temporary children are never restarted, even when a sibling's death stops them."""
    root, host = started(_tree("one_for_all", [worker("a"), worker("tmp", restart="temporary")]))
    host.exit("a", 1)
    host.exit("tmp", 0)  # stopped by the supervisor
    host.ready("a")
    assert [c["id"] for c in root.which_children()] == ["a"]
    assert host.incarnation("tmp") == 1


def test_simple_one_for_one_starts_nothing_and_adds_children_from_the_template() -> None:
    """OTP-02 simple_one_for_one: one template, children added with start_child(args)."""
    template = worker("strategy", args={"symbol": "BTC/USDT", "fast": 2})
    flags = _flags("simple_one_for_one")
    spec = ChildSpec(id="strategies", type="supervisor", flags=flags, children=[template])
    host = Host()
    root = Supervisor(spec, host)
    root.start()
    assert root.state == "running"
    assert root.which_children() == [] and host.events("start") == []
    readies: list[str] = []
    child = root.start_child({"id": "s1", "fast": 3}, lambda: readies.append("s1"))
    assert child.spec.args == {"symbol": "BTC/USDT", "fast": 3}
    host.ready("s1")
    assert readies == ["s1"]
    with pytest.raises(SupervisorError) as err:
        root.start_child({"fast": 3}, lambda: None)
    assert err.value.code == "invalid_spec"
    assert root.count_children() == {"specs": 1, "active": 1, "supervisors": 0, "workers": 1}


def test_management_api_uses_otp_error_vocabulary() -> None:
    """OTP-15: start/terminate/restart/delete_child, which/count_children, get_childspec."""
    root, host = started(_tree("one_for_one", [worker("a")]))
    with pytest.raises(SupervisorError) as err:
        root.start_child(worker("a"), lambda: None)
    assert err.value.code == "already_started"
    for call in (lambda: root.restart_child("nope", _unused), lambda: root.delete_child("nope")):
        with pytest.raises(SupervisorError) as err:
            call()
        assert err.value.code == "not_found"
    with pytest.raises(SupervisorError) as err:
        root.get_childspec("nope")
    assert err.value.code == "not_found"
    with pytest.raises(SupervisorError) as err:
        root.restart_child("a", lambda: None)
    assert err.value.code == "running"
    with pytest.raises(SupervisorError) as err:
        root.delete_child("a")
    assert err.value.code == "running"

    done: list[str] = []
    root.terminate_child("a", lambda: done.append("terminated"))
    assert host.events("stop") == [("stop", "a", 1)] and done == []
    host.exit("a", 0)
    assert done == ["terminated"]
    assert root.which_children()[0]["state"] == "stopped"
    assert root.get_childspec("a").id == "a"  # the spec is kept
    with pytest.raises(SupervisorError) as err:
        root.start_child(worker("a"), lambda: None)
    assert err.value.code == "already_present"
    root.restart_child("a", lambda: done.append("ready"))
    host.ready("a")
    assert done == ["terminated", "ready"] and host.incarnation("a") == 2
    root.terminate_child("a", lambda: None)
    host.exit("a", 0)
    root.delete_child("a")
    assert root.which_children() == []
    assert root.count_children() == {"specs": 0, "active": 0, "supervisors": 0, "workers": 0}


def test_backoff_delays_restarts_exponentially_and_reports_restarting() -> None:
    """Backoff extension: 1 s, then 2 s; which_children says 'restarting' meanwhile."""
    backoff = Backoff(min_s=1.0, max_s=4.0, random_factor=0.0, reset_after_s=30.0)
    root, host = started(_tree("one_for_one", [worker("a", backoff=backoff)]))
    host.exit("a", 1)
    assert root.which_children()[0]["ref"] == "restarting"
    host.now[0] += 0.9
    root.tick()
    assert host.incarnation("a") == 1
    host.now[0] += 0.1
    root.tick()
    assert host.incarnation("a") == 2
    host.ready("a")
    host.exit("a", 1)
    host.now[0] += 1.5
    root.tick()
    assert host.incarnation("a") == 2  # second delay is 2 s
    host.now[0] += 0.5
    root.tick()
    assert host.incarnation("a") == 3
    host.ready("a")
    host.now[0] += 31.0  # ran long enough: the backoff resets
    root.tick()
    host.exit("a", 1)
    host.now[0] += 1.0
    root.tick()
    assert host.incarnation("a") == 4


class _StateStore:
    """The journal's node-state calls, in memory (the LMDB side is tests/test_breakers.py's)."""

    def __init__(self) -> None:
        self.state: dict[str, bytes] = {}

    def put_state(self, key: str, value: bytes) -> None:
        self.state[key] = value

    def state_items(self, prefix: str) -> list[tuple[str, bytes]]:
        return sorted((k, v) for k, v in self.state.items() if k.startswith(prefix))


class BreakerHost(Host):
    """A host whose breakers are the node's real BreakerBoard, on the host's clock."""

    def __init__(self) -> None:
        super().__init__()
        self.board = BreakerBoard(_StateStore(), lambda _: None, clock=lambda: int(self.now[0] * 1e9))
        self.saved: dict[str, dict[str, ChildSpec]] = {}

    @property
    def breakers(self) -> dict[str, str]:
        return self.board.snapshot()

    @property
    def trips(self) -> int:
        return sum(b.trips for b in self.board.breakers.values())

    def breaker_tripped(self, scope: str, reason: str) -> float:
        return self.board.trip(scope, reason)

    def breaker_explained(self, scope: str, was: str, reason: str) -> None:
        self.board.explain(scope, was, reason)

    def breaker_half_open(self, scope: str) -> None:
        self.board.half_open(scope)

    def breaker_closed(self, scope: str) -> None:
        self.board.close(scope)

    def breaker_state(self, scope: str) -> str:
        return self.board.state(scope)

    def persist_child_spec(self, sup_id: str, spec: ChildSpec, delete: bool) -> None:
        specs = self.saved.setdefault(sup_id, {})
        if delete:
            specs.pop(spec.id, None)
        else:
            specs[spec.id] = spec

    def persisted_child_specs(self, sup_id: str) -> list[ChildSpec]:
        return list(self.saved.get(sup_id, {}).values())


def _venue_tree() -> ChildSpec:
    venue = sup("venue.sim", [worker("feed"), worker("exec")], intensity=1, breaker="venue:sim")
    return sup("root", [worker("risk"), venue], intensity=1)


def test_escalating_subtree_trips_its_breaker_instead_of_failing_the_parent() -> None:
    """Breaker: trip (open), cooldown, half-open restart, close after the probe period."""
    host = BreakerHost()
    root, _ = started(_venue_tree(), host)
    host.exit("exec", 1)
    host.ready("exec")
    host.exit("exec", 1)  # second restart within 5 s: venue.sim escalates
    host.exit("feed", 0)
    assert host.breakers == {"venue:sim": "open"}
    assert root.intensity.recent == 0 and host.failed == []  # the parent is not charged
    assert states(root)["risk"] == "running"  # the healthy part keeps trading
    host.now[0] += 4.9
    root.tick()
    assert host.incarnation("feed") == 1
    host.now[0] += 0.1
    root.tick()  # cooldown over: half-open, subtree starts again
    assert host.breakers["venue:sim"] == "half_open" and host.incarnation("feed") == 2
    host.ready("feed")
    host.ready("exec")
    host.now[0] += PROBE_S
    root.tick()
    assert host.breakers["venue:sim"] == "closed"


def test_repeated_trips_grow_the_cooldown() -> None:
    """Breaker: a subtree that fails again while half-open re-opens with a longer cooldown."""
    host = BreakerHost()
    root, _ = started(_venue_tree(), host)
    for _ in range(2):
        host.exit("exec", 1)
        host.ready("exec")
    host.exit("feed", 0)
    host.now[0] += 5.0
    root.tick()
    host.ready("feed")
    host.ready("exec")
    for _ in range(2):  # fails again inside the probe period
        host.exit("exec", 1)
        host.ready("exec")
    host.exit("feed", 0)
    assert host.breakers["venue:sim"] == "open" and host.trips == 2
    host.now[0] += 9.9
    root.tick()
    assert host.breakers["venue:sim"] == "open"  # second cooldown is 10 s
    host.now[0] += 0.1
    root.tick()
    assert host.breakers["venue:sim"] == "half_open"


def test_hot_added_children_come_back_when_their_supervisor_restarts() -> None:
    """Departure from OTP-14: dynamic children are journaled and re-added at init."""
    host = BreakerHost()
    strategies = sup("strategies", [], intensity=0)
    root, _ = started(sup("root", [strategies], intensity=3), host)
    inner = root.find_supervisor("strategies")
    assert inner is not None
    inner.start_child(worker("s.hot", args={"fast": 2}), lambda: None)
    host.ready("s.hot")
    host.exit("s.hot", 1)  # intensity 0: strategies escalates, root restarts it (permanent)
    host.ready("s.hot")
    restarted = root.find_supervisor("strategies")
    assert restarted is not None and restarted is not inner
    assert [c["id"] for c in restarted.which_children()] == ["s.hot"]
    assert host.incarnation("s.hot") == 2
    restarted.terminate_child("s.hot", lambda: None)
    host.exit("s.hot", 0)
    restarted.delete_child("s.hot")
    assert host.saved["strategies"] == {}


def _unused(*_: Any) -> None:
    return None


def test_supervisor_start_child_refuses_when_not_running() -> None:
    """A stopped supervisor cannot take new children."""
    root = Supervisor(_tree("one_for_one", []), Host())
    with pytest.raises(SupervisorError) as err:
        root.start_child(worker("x"), _unused)
    assert err.value.code == "not_running"
