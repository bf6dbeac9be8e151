"""The ``kind = "sentiment"`` analyser: scores every post on the bus, publishes per-subject signals."""

from __future__ import annotations

from typing import ClassVar

from sniperbot.analytics.base import AnalyserSection


class SentimentConfig(AnalyserSection, tag="sentiment"):
    """Scores posts from ``sources`` (scanner ids; empty: all) and publishes per-subject signals."""

    actor_path: ClassVar[str] = "sniperbot.analytics.sentiment.actor:SentimentActor"
    sources: list[str] = []
