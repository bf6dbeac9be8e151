"""The ``[[analysers]]`` config entry: a msgspec tagged union on ``kind``, one variant per analyser kind.

To add a kind: define ``<Kind>Config(AnalyserSection, tag="<kind>")`` with its ``actor_path`` next to
its actor and add it to :data:`AnalyserConfig` below; the topology places every entry under the
``analysis`` supervisor as ``analyser.<id>``.
"""

from __future__ import annotations

from sniperbot.analytics.base import AnalyserSection
from sniperbot.analytics.plugins.config import PluginConfig
from sniperbot.analytics.recording import SignalRecorderConfig, SignalReplayConfig
from sniperbot.analytics.scanners.config import (
    CoinGeckoConfig,
    DiscordConfig,
    RedditConfig,
    RssConfig,
    TelegramChannelConfig,
    XConfig,
)
from sniperbot.analytics.sentiment.config import SentimentConfig

#: One variant per kind.
AnalyserConfig = (
    RedditConfig
    | XConfig
    | TelegramChannelConfig
    | DiscordConfig
    | RssConfig
    | CoinGeckoConfig
    | SentimentConfig
    | PluginConfig
    | SignalRecorderConfig
    | SignalReplayConfig
)

__all__ = [
    "AnalyserConfig",
    "AnalyserSection",
    "CoinGeckoConfig",
    "DiscordConfig",
    "PluginConfig",
    "RedditConfig",
    "RssConfig",
    "SentimentConfig",
    "SignalRecorderConfig",
    "SignalReplayConfig",
    "TelegramChannelConfig",
    "XConfig",
]
