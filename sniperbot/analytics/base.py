"""What every ``[[analysers]]`` kind shares: its config base."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class AnalyserSection(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"
):
    """One ``[[analysers]]`` entry; ``kind`` selects the variant, ``id`` names its actor ``analyser.<id>``.

    A kind defines ``actor_path`` (``module:Class``) and may override :meth:`actor_args`.
    """

    actor_path: ClassVar[str] = ""
    #: Whether the kind's actor takes ``traded``: the node's traded assets (subjects), from the topology.
    wants_traded: ClassVar[bool] = False

    id: str

    def actor_args(self) -> dict[str, Any]:
        """Keyword arguments of the kind's actor: its whole config section, as builtins."""
        return {"settings": msgspec.to_builtins(self)}
