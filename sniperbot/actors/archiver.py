"""The journal archiver: a housekeeping actor that keeps the hot journal bounded.

Runs under ``ops`` (operator services and housekeeping) when ``[journal] archive_after_days`` > 0.
Every :data:`INTERVAL_S` it moves records older than the horizon into the day files of
``<run dir>/archive`` (:mod:`sniperbot.journal.archive` says what moves and how it stays lossless), a
few small batches per tick within :data:`TICK_BUDGET_S`: each batch is its own short LMDB write
transaction, so trading writers never wait for more than one batch, and the actor's loop (heartbeats)
never for more than one tick. It runs in its own process, never in the node's loop. A crash
(a full disk while writing a frame) loses nothing: the records are deleted only after their frame is
fsync'd, and the supervisor restarts the actor, which resumes from the journal's archive floor.
"""

from __future__ import annotations

import time

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.journal.archive import DEFAULT_BATCH, archive_step

INTERVAL_S = 1.0
TICK_BUDGET_S = 0.05


class ArchiverActor(Actor):
    """Moves completed orders, their updates and fills, and reports older than the horizon to the archive."""

    def __init__(self, ctx: ActorContext, *, after_days: float, batch: int = DEFAULT_BATCH) -> None:
        super().__init__(ctx)
        self._horizon_s = after_days * 86_400.0
        self._batch = batch
        self._held_by = ""

    def on_start(self) -> None:
        """Archive on a timer of the actor's own loop."""
        self.ctx.every(INTERVAL_S, self._tick)

    def _tick(self) -> None:
        deadline = time.monotonic() + TICK_BUDGET_S
        while True:
            step = archive_step(self.ctx.journal, self._horizon_s, batch=self._batch)
            if step.archived:
                self.ctx.metrics.inc("sniperbot_journal_archived_records_total", step.archived)
            if step.held_by != self._held_by:
                # Once per change: an order open past the horizon holds back everything behind it.
                if step.held_by:
                    self.ctx.log.warning(
                        "journal archive held back",
                        extra={"event": "archive_held", "held_by": step.held_by, "floor": step.floor},
                    )
                self._held_by = step.held_by
            if step.archived < self._batch or time.monotonic() >= deadline:
                return
