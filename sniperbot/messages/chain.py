"""On-chain events on the bus: what the EVM venues' watchers see on chain (issue #12).

Addresses are EIP-55 checksummed strings, hashes ``0x``-prefixed lowercase hex.
"""

from __future__ import annotations

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
