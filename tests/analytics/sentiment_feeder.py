"""A stand-in social scanner for the sentiment tests: an analyser actor that publishes what a file says.

It runs inside a real node as ``analyser.<id>`` (hot-added with ``admin start-child``), so its posts and
statuses are signed with the node's secret exactly as a real scanner's are. The test appends JSON lines
to ``script``: ``{"post": {...Post fields but source...}}`` publishes a :class:`Post` on
``social.<id>.``; ``{"stale": true|false}`` sets the health it reports; ``{"silent": true}`` stops it
publishing anything (a hung scanner). Like a scanner, it publishes its :class:`AnalyserStatus` on
``status.analyser.<id>`` every ``status_interval_s``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import AnalyserStatus, Post
from sniperbot.messages import topics as topic

FEEDER_ACTOR = "tests.analytics.sentiment_feeder:Feeder"


class Feeder(Actor):
    """Publishes the posts and health a test script asks for (see the module docstring)."""

    def __init__(self, ctx: ActorContext, script: str, status_interval_s: float = 0.2) -> None:
        super().__init__(ctx)
        self.script = Path(script)
        self.source = ctx.actor_id.partition(".")[2]
        self.offset = 0
        self.stale = False
        self.silent = False
        self.items = 0
        self.status_interval_s = status_interval_s

    def on_start(self) -> None:
        """Follow the script; report health at a steady cadence."""
        self.ctx.every(0.02, self._follow)
        self.ctx.every(self.status_interval_s, self._status, first_s=0.0)

    def _follow(self) -> None:
        if not self.script.exists():
            return
        with self.script.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            order: dict[str, Any] = json.loads(line)
            self.silent = self.silent or bool(order.get("silent"))
            if "stale" in order:
                self.stale = bool(order["stale"])
                self._status()
            if "post" in order and not self.silent:
                now = time.time_ns()
                fields = {"created_ns": now, **order["post"]}
                self.ctx.publish(topic.posts(self.source), Post(source=self.source, ts_ns=now, **fields))
                self.items += 1

    def _status(self) -> None:
        if self.silent:
            return
        now = time.time_ns()
        status = AnalyserStatus(source=self.source, stale=self.stale, items=self.items, ts_ns=now)
        self.ctx.publish(topic.analyser_status(self.source), status)
