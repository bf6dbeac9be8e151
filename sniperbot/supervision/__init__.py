"""Erlang/OTP-style supervision: child specs, restart intensity, supervisors."""

from sniperbot.supervision.handle import ActorHandle
from sniperbot.supervision.intensity import RestartIntensity
from sniperbot.supervision.spec import ChildSpec, SupFlags, check_unique_ids
from sniperbot.supervision.supervisor import Child, Supervisor, SupervisorHost

__all__ = [
    "ActorHandle",
    "Child",
    "ChildSpec",
    "RestartIntensity",
    "SupFlags",
    "Supervisor",
    "SupervisorHost",
    "check_unique_ids",
]
