"""The alerts actor reports a breaker the node journaled even when it missed the announcement.

A ``BreakerChanged`` on the bus is at-most-once: one published while the alerts actor's
subscription is still joining the bus (its start, or a restart after a crash) is lost, and a
breaker that opened at that moment was never alerted: the operator slept through a venue that
stopped trading. The actor now also compares the journal's breakers with what it has reported, once
a second.

Real components: the real :class:`~sniperbot.alerts.actor.AlertsActor` in an
:class:`~sniperbot.actors.runtime.ActorRuntime` of its own (a thread, a real run dir, the real LMDB
journal and outbox), the node's own :class:`~sniperbot.supervision.breaker.BreakerBoard` journaling
the breaker, and the real webhook channel posting to a local HTTP server. There is no node, so no
announcement reaches the actor at all: the worst case of a lost one, made deterministic.
"""

from __future__ import annotations

import time
from typing import Any

from sniperbot.actors.runtime import process_journal
from sniperbot.alerts.config import ALERTS_ACTOR, ALERTS_ACTOR_ID
from sniperbot.supervision.breaker import BreakerBoard
from tests.conftest import eventually
from tests.ops_servers import WebhookServer, webhook_fixture  # noqa: F401  (fixture)
from tests.venues_ccxt.test_gateway import Actors, actors  # noqa: F401  (fixture)


def _titles(server: WebhookServer) -> list[str]:
    return [str(r["json"]["title"]) for r in server.requests]


def test_a_breaker_opened_while_the_actor_was_not_listening_is_alerted_once(
    actors: Actors,  # noqa: F811
    webhook: WebhookServer,
) -> None:
    journal = process_journal(actors.run_dir, "process")
    announced: list[object] = []  # the node's bus, which this actor never hears
    board = BreakerBoard(journal, announced.append)
    board.close("global", "old news")  # closed before the actor started: not reported
    settings: dict[str, Any] = {"webhook": {"url": webhook.url + "/hook"}, "daily_summary_utc": ""}
    actors.start(ALERTS_ACTOR_ID, ALERTS_ACTOR, {"settings": settings})

    board.trip("venue:sim", "venue.sim escalated")
    eventually(lambda: "breaker venue:sim OPEN" in _titles(webhook), 10, what="the open breaker alerted")
    (alert,) = [r["json"] for r in webhook.requests if r["json"]["title"] == "breaker venue:sim OPEN"]
    assert alert["severity"] == "critical" and "escalated" in alert["text"]

    # Reported once: later looks at the journal, and a restart of the actor, do not repeat it.
    time.sleep(2.5)
    actors.start(ALERTS_ACTOR_ID, ALERTS_ACTOR, {"settings": settings})
    time.sleep(2.5)
    assert _titles(webhook).count("breaker venue:sim OPEN") == 1
    assert not any("global" in t for t in _titles(webhook))

    board.close("venue:sim", "recovered")  # a later change is news again
    eventually(lambda: "breaker venue:sim CLOSED" in _titles(webhook), 10, what="the close alerted")
    assert announced, "the board did announce (to a bus nobody here listens to)"
