"""The node's own MetricsSnapshot: the supervision tree, breakers and trading state.

The node publishes it on ``metrics.node`` from its loop every ``[metrics] interval_s`` (a
few dict writes and one bus send: never I/O that could block a heartbeat). Its samples
carry their own ``actor``/``scope``/``state`` labels; the exporter adds none.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, get_args

from sniperbot import __version__
from sniperbot.messages import MetricsSnapshot
from sniperbot.messages.control import TRADING_STATES
from sniperbot.metrics.registry import Registry
from sniperbot.supervision.breaker import Breaker, BreakerState
from sniperbot.supervision.supervisor import ChildState
from sniperbot.transport.auth import NODE

if TYPE_CHECKING:
    from sniperbot.node import Node

CHILD_STATES = get_args(ChildState)
BREAKER_STATES = get_args(BreakerState)


class NodeMetrics:
    """Builds the node's snapshot; one per node life (its ``seq`` shows snapshots lost on the bus)."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.started = time.time()

    def snapshot(self, node: Node) -> MetricsSnapshot:
        """Every worker's state, incarnation, restarts and missed heartbeats; breakers; trading state."""
        reg = Registry()  # fresh each time: a removed actor's series disappear with it
        reg.seq = self.registry.seq
        reg.set("sniperbot_build_info", 1.0, version=__version__)
        reg.set("sniperbot_node_start_time_seconds", self.started)
        now_mono, now = time.monotonic(), time.time()
        interval = node.heartbeat_interval_s
        for child in node.root.workers():
            actor = child.spec.id
            running = child.state == "running"
            reg.set("sniperbot_actor_up", 1.0 if running else 0.0, actor=actor)
            for state in CHILD_STATES:
                reg.set(
                    "sniperbot_actor_state", 1.0 if child.state == state else 0.0, actor=actor, state=state
                )
            reg.set("sniperbot_actor_incarnation", float(child.incarnation), actor=actor)
            reg.inc("sniperbot_actor_restarts_total", float(child.restarts), actor=actor)
            if child.last_heartbeat > 0:
                age = max(0.0, now_mono - child.last_heartbeat)
                # Whole intervals without a heartbeat (0 for a healthy actor; the supervisor kills
                # a running one at heartbeat_liveness). Not counted while it is not running.
                missed = int(age / interval) if running else 0
                reg.set("sniperbot_actor_missed_heartbeats", float(missed), actor=actor)
                reg.set("sniperbot_actor_last_heartbeat_timestamp_seconds", now - age, actor=actor)
        reg.inc("sniperbot_invalid_frames_total", float(node.invalid_frames), actor=NODE)
        # Every breaker of the tree from the start (closed until it trips): no missing series.
        scopes = {"global", *(s.breaker for s in node.tree_spec.walk() if s.breaker), *node.breakers.breakers}
        for scope in sorted(scopes):
            breaker = node.breakers.breakers.get(scope) or Breaker(scope=scope)
            for state in BREAKER_STATES:
                reg.set(
                    "sniperbot_breaker_state",
                    1.0 if breaker.state == state else 0.0,
                    scope=scope,
                    state=state,
                )
            reg.set("sniperbot_breaker_open", 0.0 if breaker.state == "closed" else 1.0, scope=scope)
            reg.set("sniperbot_breaker_trips", float(breaker.trips), scope=scope)
        if node.risk is not None:
            for state in TRADING_STATES:
                reg.set(
                    "sniperbot_trading_state", 1.0 if node.risk.trading_state == state else 0.0, state=state
                )
        snapshot = reg.snapshot(NODE, 0)
        self.registry.seq = reg.seq
        return snapshot
