"""Order execution: the one generic executor, journal first, venue-agnostic.

Venues (feeds, gateways, the paper venue) live in :mod:`sniperbot.venues`.
"""
