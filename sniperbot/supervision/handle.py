"""What a supervisor holds of a running child: an interface, so supervision stays generic.

Supervision knows nothing of processes, threads, Ray or ZeroMQ: a placement
(``sniperbot.actors.placement``) starts an incarnation and hands back something
with this shape; the supervisor only waits on ``sentinel``, reads ``exitcode()``,
and calls ``kill()`` and ``release()``.
"""

from __future__ import annotations

from typing import Protocol


class ActorHandle(Protocol):
    """What a supervisor holds of a running incarnation."""

    pid: int | None
    sentinel: int

    def exitcode(self) -> int | None:
        """Exit code once ended, else None."""
        ...

    def kill(self) -> None:
        """End the incarnation now (SIGKILL for a process)."""
        ...

    def release(self) -> None:
        """Free OS resources once the incarnation has ended."""
        ...
