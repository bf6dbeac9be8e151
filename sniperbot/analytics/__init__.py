"""Analytics: social scanners, sentiment and plug-in analysers, as supervised actors (issue #15).

Scanners (:mod:`sniperbot.analytics.scanners`) fetch posts from a service and publish them as
:class:`~sniperbot.messages.Post` on ``social.<id>.``; the sentiment aggregator
(:mod:`sniperbot.analytics.sentiment`) scores them and publishes per-subject
:class:`~sniperbot.messages.Signal` on ``sig.<subject>.<kind>.<source>.``; plug-in analysers
(:mod:`sniperbot.analytics.plugins`) are any executable speaking JSON lines. Every analyser is one
``[[analysers]]`` entry (:mod:`sniperbot.analytics.config`) and runs under the ``analysis``
supervisor, with its own breaker: an analyser that keeps failing never touches trading.
"""

from sniperbot.analytics.config import AnalyserConfig, AnalyserSection

__all__ = ["AnalyserConfig", "AnalyserSection"]
