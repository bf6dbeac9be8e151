"""The pairs a chain venue trades (``symbols = ["TKN/WETH"]``), checked once for EVM and Solana."""

from __future__ import annotations

from collections.abc import Container, Sequence


def check_pairs(symbols: Sequence[str], quote: str, listed: Container[str], table: str) -> None:
    """Raise ValueError naming the entry unless every symbol is a unique ``<base>/<quote>`` pair whose
    base is in ``listed`` (the venue's ``table``: ``tokens`` or ``mints``) and whose quote is ``quote``."""
    if not symbols:
        raise ValueError("symbols: at least one pair '<base>/<quote>' is required")
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols: symbols must be unique")
    for symbol in symbols:
        base, slash, quoted = symbol.partition("/")
        if not (base and slash and quoted):
            raise ValueError(f"symbols: {symbol!r} is not a pair like 'TKN/{quote}'")
        if quoted != quote:
            raise ValueError(f"symbols: {symbol!r} is not quoted in quote = {quote!r}")
        if base == quoted:
            raise ValueError(f"symbols: {symbol!r} trades a token against itself")
        if base not in listed:
            raise ValueError(f"symbols: {symbol!r}: its base {base!r} is not listed in {table}")
