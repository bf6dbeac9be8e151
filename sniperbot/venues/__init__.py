"""Venues: every place sniperbot trades (simulated, ccxt exchanges, ...), one package each."""
