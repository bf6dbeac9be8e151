"""On-chain messages (issue #12): what the EVM venues' watchers see on chain, what the safety check found.

Addresses are EIP-55 checksummed strings, hashes ``0x``-prefixed lowercase hex.
"""

from __future__ import annotations

from typing import Literal

from sniperbot.messages.base import Message


class NewPool(Message, tag="new_pool"):
    """A new liquidity pool of a venue's factory (Uniswap V2 ``PairCreated``) against one of its quote tokens.

    Published by the venue's pool watcher (:mod:`sniperbot.venues.evm.pool_watcher`) on
    ``chain.<venue>.new_pool.``: ``pair`` is the pool's address, ``token`` the new (non-quote) token,
    ``quote_token`` the quote token it trades against, ``block_number`` / ``tx_hash`` / ``log_index``
    where the ``PairCreated`` log is, ``ts_ns`` when the watcher handed it over. A pool is not safe to
    buy for being announced: the token safety check re-reads the chain before any buy.
    """

    venue: str
    pair: str
    token: str
    quote_token: str
    block_number: int
    tx_hash: str
    log_index: int
    ts_ns: int


class TokenSafetyReport(Message, tag="token_safety"):
    """The token safety check's verdict on one token, from a simulated buy, transfer and sell.

    ``verdict`` is "buy" only when every rule passed; otherwise "refuse" and ``reasons`` lists every rule
    that failed, each as ``"<code>: <detail>"`` (codes in :mod:`sniperbot.venues.evm.safety`). Taxes are
    in basis points, -1 when not measured (the step before failed). ``max_tx``/``max_wallet`` are in
    token units, 0 when the token shows no such limit. ``liquidity_quote`` is the pool's quote-token
    reserve (e.g. WETH); ``block_number`` is the block the simulation ran in (the next block by default).
    """

    venue: str
    token: str
    pair: str = ""
    block_number: int = 0
    verdict: Literal["buy", "refuse"] = "refuse"
    reasons: list[str] = []
    can_sell: bool = False
    buy_tax_bps: int = -1
    sell_tax_bps: int = -1
    transfer_tax_bps: int = -1
    max_tx: float = 0.0
    max_wallet: float = 0.0
    owner_powers: list[str] = []
    liquidity_quote: float = 0.0
    lp_burnt_or_locked_pct: float = 0.0
    ts_ns: int = 0
