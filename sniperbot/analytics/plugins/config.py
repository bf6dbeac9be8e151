"""The ``kind = "plugin"`` analyser: an external executable run as a supervised actor."""

from __future__ import annotations

from typing import ClassVar

from sniperbot.analytics.base import AnalyserSection


class PluginConfig(AnalyserSection, tag="plugin"):
    """Runs ``command`` (argv list); it reads the ``inputs`` topics as JSON lines, writes signals."""

    actor_path: ClassVar[str] = "sniperbot.analytics.plugins.actor:PluginActor"
    command: list[str] = []
    inputs: list[str] = []
