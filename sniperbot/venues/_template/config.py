"""The ``[[venues]]`` entry of a new venue kind (copy, rename, fill in; see README.md).

Requirements (the node config enforces the common ones):

=====================  ========  =========================================================
field / method         required  meaning
=====================  ========  =========================================================
``name``               yes       venue id in topics, breakers, actor ids (from VenueSection)
``kind``               yes       this class's ``tag``; selects the variant of the union
``mode``               yes       ``paper`` or ``live``; list what the kind supports in
                                 ``supported_modes``
``symbol_names()``     yes       the symbols traded (strategies and limits are checked
                                 against them before anything starts)
``feed(epoch_ns)``     yes       ``("module:Class", args)`` of the feed actor
``live_gateway()``     live      ``("module:Class", args)`` of the live gateway actor
=====================  ========  =========================================================
"""

from __future__ import annotations

from typing import Any, ClassVar

from sniperbot.venues.base import VenueSection


class TemplateVenueConfig(VenueSection, tag="template"):
    """A venue kind's config: add its fields here (they become ``[[venues]]`` keys)."""

    supported_modes: ClassVar[tuple[str, ...]] = ("paper", "live")

    symbols: list[str] = []

    def symbol_names(self) -> list[str]:
        """The symbols this venue trades."""
        raise NotImplementedError("list the configured symbols")

    def feed(self, epoch_ns: int) -> tuple[str, dict[str, Any]]:
        """The feed actor: ``("sniperbot.venues.<kind>.feed:<Kind>Feed", {"venue": self.name, ...})``."""
        raise NotImplementedError("return the feed actor's path and arguments")

    def live_gateway(self) -> tuple[str, dict[str, Any]]:
        """The live gateway: ``("sniperbot.venues.<kind>.gateway:<Kind>Gateway", {"venue": ...})``."""
        raise NotImplementedError("return the live gateway actor's path and arguments")
