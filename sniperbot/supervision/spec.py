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

Restart = Literal["permanent", "transient", "temporary"]
RestartStrategy = Literal["one_for_one"]
ChildKind = Literal["worker", "supervisor"]
Placement = Literal["process", "thread"]


class SupFlags(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a supervisor restarts its children and when it gives up (escalates).

    More than ``intensity`` restarts within ``period_s`` seconds makes the
    supervisor stop all its children and fail to its parent. Defaults are OTP's.
    """

    strategy: RestartStrategy = "one_for_one"
    intensity: int = msgspec.field(default=1)
    period_s: float = 5.0

    def __post_init__(self) -> None:
        if self.intensity < 0:
            raise ValueError("intensity must be >= 0")
        if self.period_s <= 0:
            raise ValueError("period_s must be > 0")


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

    def __post_init__(self) -> None:
        if not self.id or any(c in self.id for c in "#/ "):
            raise ValueError(f"child id {self.id!r} must be non-empty without '#', '/' or spaces")
        if self.type == "worker" and ":" not in self.actor:
            raise ValueError(f"worker {self.id!r} needs actor = 'package.module:Class'")
        if self.type == "supervisor" and self.actor:
            raise ValueError(f"supervisor {self.id!r} takes children, not an actor")
        if isinstance(self.shutdown_s, float | int) and self.shutdown_s < 0:
            raise ValueError(f"shutdown_s of {self.id!r} must be >= 0")

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
