"""The ``kind = "sentiment"`` analyser: scores every post on the bus, publishes per-subject signals."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from sniperbot.analytics.base import AnalyserSection


class SentimentConfig(AnalyserSection, tag="sentiment"):
    """Scores posts from ``sources`` (scanner ids; empty: all) and publishes per-subject signals.

    ``windows_s`` are the rolling windows (multiples of ``bucket_s``, the journaled granularity);
    ``z_history`` how many previous windows a mention count's z-score compares with, ``min_history`` the
    fewest observed ones it needs (fewer: no z-score). ``universe`` adds tickers recognised bare (upper
    case, without ``$``) to the node's traded assets; ``aliases`` adds common names (``{"pepe" = "PEPE"}``)
    or removes a default (``{"ether" = ""}``); ``ambiguous`` adds tickers that must be cashtagged; a post
    naming more than ``max_subjects`` subjects is a list, not a mention, and counts for none.
    Signals go out within ``flush_interval_s`` of a change and every ``publish_interval_s`` in any case;
    a source that published neither a post nor a status for ``silent_after_s`` counts as stale.
    """

    actor_path: ClassVar[str] = "sniperbot.analytics.sentiment.actor:SentimentActor"
    wants_traded: ClassVar[bool] = True
    sources: list[str] = []
    windows_s: list[int] = msgspec.field(default_factory=lambda: [300, 3600])
    bucket_s: Annotated[int, msgspec.Meta(ge=1)] = 60
    z_history: Annotated[int, msgspec.Meta(ge=2)] = 24
    min_history: Annotated[int, msgspec.Meta(ge=2)] = 4
    confidence_count: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    universe: list[str] = []
    aliases: dict[str, str] = {}
    ambiguous: list[str] = []
    max_subjects: Annotated[int, msgspec.Meta(ge=1)] = 5
    flush_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 0.2
    publish_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    silent_after_s: Annotated[float, msgspec.Meta(gt=0)] = 900.0

    def __post_init__(self) -> None:
        from sniperbot.config import id_error  # here: sniperbot.config imports this module

        for i, source in enumerate(self.sources):
            if (problem := id_error(source)) is not None:
                raise ValueError(f"sources[{i}]: {problem}")
        if not self.windows_s:
            raise ValueError("windows_s: at least one window is needed")
        for i, window in enumerate(self.windows_s):
            if window <= 0 or window % self.bucket_s:
                raise ValueError(
                    f"windows_s[{i}]: {window} is not a positive multiple of bucket_s = {self.bucket_s}"
                )
        if len(set(self.windows_s)) != len(self.windows_s):
            raise ValueError(f"windows_s: duplicate windows in {self.windows_s}")
        if self.min_history > self.z_history:
            raise ValueError(f"min_history: {self.min_history} is more than z_history = {self.z_history}")
        for name in self.aliases:
            if not name.strip():
                raise ValueError("aliases: an empty name")
