"""sniperbot: a 24/7 crypto trading system built from supervised, isolated actors."""

__version__ = "0.1.0"
