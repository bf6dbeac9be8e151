"""Child specifications and supervisor flags, as data (msgspec Structs).

Semantics follow Erlang/OTP ``supervisor`` (see ``research/supervision-semantics.md``):
restart ``permanent`` (always), ``transient`` (only after an abnormal exit),
``temporary`` (never); ``shutdown`` is a grace period in seconds before a kill,
or ``"brutal_kill"``. Departures from OTP: unknown keys are rejected (a typo in a
trading system's config must not pass silently), and ``period_s`` is a float on
the monotonic clock.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from sniperbot.config import CHILD_ID_MAX_LEN, check_id

Restart = Literal["permanent", "transient", "temporary"]
RestartStrategy = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
ChildKind = Literal["worker", "supervisor"]
Placement = Literal["process", "thread", "ray"]


class Backoff(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Delay between restarts of one child (Akka's backoff; an extension to OTP).

    The n-th consecutive restart waits ``min(max_s, min_s * 2**(n-1))`` seconds,
    +/- ``random_factor`` of that; the count resets once the child has run for
    ``reset_after_s`` seconds. Each delayed restart still counts toward the
    supervisor's intensity (if it is a crash loop, see ``SupFlags.min_uptime_s``), so
    the period must cover the backoff steps.
    """

    min_s: float = 0.1
    max_s: float = 10.0
    random_factor: float = 0.2
    reset_after_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_s <= self.max_s:
            raise ValueError("backoff needs 0 <= min_s <= max_s")
        if not 0 <= self.random_factor < 1:
            raise ValueError("backoff random_factor must be in [0, 1)")

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds to wait before restart number ``attempt`` (1-based); ``jitter`` in [-1, 1]."""
        if attempt <= 0:
            return 0.0
        base = min(self.max_s, self.min_s * 2 ** (attempt - 1))
        return max(0.0, base * (1 + self.random_factor * jitter))


class SupFlags(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a supervisor restarts its children and when it gives up (escalates).

    More than ``intensity`` restarts within ``period_s`` seconds makes the
    supervisor stop all its children and fail to its parent. Defaults are OTP's.
    ``min_uptime_s`` (an extension): only the restart of a child that was up less than
    this since it was last ready counts (a crash loop); a longer-lived child's death is an
    independent fault, restarted without counting (:mod:`sniperbot.supervision.intensity`).
    0 (the default) counts every restart, as OTP does.
    """

    strategy: RestartStrategy = "one_for_one"
    intensity: int = msgspec.field(default=1)
    period_s: float = 5.0
    min_uptime_s: float = 0.0

    def __post_init__(self) -> None:
        if self.intensity < 0:
            raise ValueError("intensity must be >= 0")
        if self.period_s <= 0:
            raise ValueError("period_s must be > 0")
        if self.min_uptime_s < 0:
            raise ValueError("min_uptime_s must be >= 0")


class ChildSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One child of a supervisor: an actor (worker) or a nested supervisor."""

    id: str
    type: ChildKind = "worker"
    actor: str = ""  # "package.module:Class" for a worker
    args: dict[str, Any] = {}
    restart: Restart = "permanent"
    shutdown_s: float | Literal["brutal_kill"] = 5.0
    placement: Placement = "process"
    flags: SupFlags = SupFlags()
    children: list[ChildSpec] = []
    backoff: Backoff | None = None
    # A supervisor child with a breaker scope trips it instead of escalating; a worker with one
    # counts its restarts against its own ``flags`` and trips it past them.
    breaker: str = ""

    def __post_init__(self) -> None:
        check_id(self.id, "id", CHILD_ID_MAX_LEN)  # ids name sockets and journal keys
        if self.type == "worker" and ":" not in self.actor:
            raise ValueError(f"worker {self.id!r} needs actor = 'package.module:Class'")
        if self.type == "supervisor" and self.actor:
            raise ValueError(f"supervisor {self.id!r} takes children, not an actor")
        if isinstance(self.shutdown_s, float | int) and self.shutdown_s < 0:
            raise ValueError(f"shutdown_s of {self.id!r} must be >= 0")
        if self.flags.strategy == "simple_one_for_one" and len(self.children) != 1:
            raise ValueError(f"simple_one_for_one supervisor {self.id!r} needs exactly one child spec")

    def walk(self) -> list[ChildSpec]:
        """This spec and every spec below it, depth first in start order."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def check_unique_ids(root: ChildSpec) -> None:
    """Raise ValueError if two children anywhere in the tree share an id (ids name sockets)."""
    seen: set[str] = set()
    for spec in root.walk():
        if spec.id in seen:
            raise ValueError(f"duplicate child id {spec.id!r} in the supervision tree")
        seen.add(spec.id)
