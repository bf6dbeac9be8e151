"""Centralised exchanges through ccxt (REST) and ccxt.pro (websockets)."""
