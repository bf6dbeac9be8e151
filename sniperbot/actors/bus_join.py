"""Knowing when an actor's publisher has joined the bus (ZeroMQ's slow joiner), in one place.

A PUB socket's first messages are dropped until its connection to the bus proxy is up; an actor that
must not lose what it publishes first (a new pool, a post, a replayed signal) subscribes to its own echo
topic (:func:`sniperbot.messages.topics.bus_echo`), probes it on a timer, and holds its output until
its own probe comes back: from then on the bus carries what it publishes.

Between actors of one machine the bus goes directly (:mod:`sniperbot.transport.fanout`), set up
before the actor starts; the probe itself goes through the node's proxy (the runtime sends the
echo topic that way), so hearing it proves the path to the node and to other machines as well.
"""

from __future__ import annotations

import time
from typing import Any

from sniperbot.messages import Envelope, Heartbeat
from sniperbot.messages import topics as topic


class BusJoin:
    """Probe an actor's echo topic until its own probe is heard: :attr:`joined` from then on.

    Add :attr:`topic` to the actor's ``topics``; call :meth:`probe` on a timer and :meth:`heard` with
    every message. ``warn_after_s`` (0: never) logs ``warning`` once if the bus is still not joined then.
    """

    def __init__(self, ctx: Any, warn_after_s: float = 0.0, warning: str = "bus not joined yet") -> None:
        self.ctx = ctx
        self.topic = topic.bus_echo(ctx.actor_id)
        self.joined = False
        self._seq = 0
        self._started_ns = time.monotonic_ns()
        self._warn_after_ns = int(warn_after_s * 1e9)
        self._warning = warning
        self._warned = False

    def probe(self) -> bool:
        """Publish one probe unless joined; whether the publisher has joined."""
        if self.joined:
            return True
        self._seq += 1
        self.ctx.publish(self.topic, Heartbeat(seq=self._seq, ts_ns=time.time_ns()))
        waited = time.monotonic_ns() - self._started_ns
        if self._warn_after_ns and not self._warned and waited > self._warn_after_ns:
            self._warned = True
            self.ctx.log.warning(self._warning, extra={"event": "bus_join_wait"})
        return False

    def heard(self, envelope: Envelope) -> bool:
        """True when ``envelope`` is this incarnation's own probe coming back for the first time."""
        if (
            not self.joined
            and envelope.sender == self.ctx.actor_id
            and envelope.incarnation == self.ctx.incarnation
            and isinstance(envelope.payload, Heartbeat)
        ):
            self.joined = True
            return True
        return False
