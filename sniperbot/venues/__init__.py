"""Venues: every place sniperbot can trade (simulated, centralised exchanges through ccxt, ...)."""
