"""The actor programming model: a class with ``on_start``, ``on_message``, ``on_stop``.

An actor owns its state, shares no memory and talks only through its
:class:`ActorContext`. The same class runs in its own process, in a thread of
the node, or (later) on a Ray worker: placement is configuration, not code.

Failure model ("let it crash"): an exception escaping a callback ends this
incarnation; the supervisor starts a fresh instance, which rebuilds what
matters from the journal. Invalid input is not a failure: frames that do not
decode are dropped and counted before they reach ``on_message``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sniperbot.logs import ContextLogger
from sniperbot.messages import Envelope, Payload
from sniperbot.metrics.registry import NULL_REGISTRY, Registry

if TYPE_CHECKING:
    from sniperbot.journal import Journal


class ActorContext:
    """What an actor may do: publish, send reliably, set timers, use the journal, stop."""

    actor_id: str
    incarnation: int
    run_dir: Path
    log: ContextLogger
    #: This node start's token, part of every client order id (``make_intent_id``); "" outside a node.
    node_life: str = ""
    #: This actor's metrics (counters, gauges, histograms), published by the runtime every
    #: ``[metrics] interval_s``; a no-op registry when metrics are off or outside a runtime.
    metrics: Registry = NULL_REGISTRY

    def publish(self, topic: str, payload: Payload) -> None:
        """Publish on the bus (at-most-once)."""
        raise NotImplementedError

    def send(self, actor_id: str, payload: Payload, on_ack: Callable[[], None] | None = None) -> None:
        """Send reliably to another actor's inbox (at-least-once, deduplicated there).

        ``on_ack`` runs when the receiver has handled the message.
        """
        raise NotImplementedError

    def hold_ack(self) -> Callable[[], None]:
        """While handling an inbox message: acknowledge it later, by calling the result.

        Without this, an inbox message is acknowledged when ``on_message`` returns.
        """
        raise NotImplementedError

    def every(self, interval_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` every ``interval_s`` seconds on the actor's own loop."""
        raise NotImplementedError

    def after(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, ``delay_s`` seconds from now, on the actor's own loop."""
        raise NotImplementedError

    @property
    def credentials(self) -> bytes:
        """This actor's sealed venue key (``Credentials.to_launch()``); only a venue's gateway has one."""
        return b""

    @property
    def journal(self) -> Journal:
        """The node's journal, opened on first use with the configured durability."""
        raise NotImplementedError

    def stop(self) -> None:
        """Finish this incarnation normally (exit reason ``normal``)."""
        raise NotImplementedError


class Actor:
    """Base class of every actor; subclasses declare topics and override the callbacks.

    ``topics`` are bus topic prefixes to subscribe to (a class attribute, or set
    in ``__init__`` when they depend on the arguments); ``inbox = True`` binds a
    reliable inbox that other actors reach with :meth:`ActorContext.send`.
    Constructor keyword arguments come from the actor's ``ChildSpec.args``; the
    constructor must not publish or send (the sockets open after it returns).
    """

    topics: tuple[str, ...] = ()
    inbox: bool = False

    def __init__(self, ctx: ActorContext, **args: Any) -> None:
        self.ctx = ctx
        if args:
            names = ", ".join(sorted(args))
            raise TypeError(f"{type(self).__name__} takes no arguments, received: {names}")

    def on_start(self) -> None:
        """Called once the sockets are bound, before any message is delivered."""

    def on_message(self, envelope: Envelope) -> None:
        """Called for every bus message on a subscribed topic and every inbox message."""

    def on_stop(self) -> None:
        """Called on an orderly stop; not called when the process is killed."""
