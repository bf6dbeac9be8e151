"""Analytics messages (issue #15): posts the social scanners fetch, signals the analysers publish.

A :class:`Signal` is one analyser's reading about one subject over one window: strategies and the
sniper consult them; the node keeps the last one of every topic (like quotes), so a strategy that
starts or is hot-added has the current state at once. A :class:`Post` is one item a scanner
fetched (a Reddit post, a tweet, a channel message, a news entry): the sentiment aggregator and
plug-in analysers read them from the bus.

**Subjects.** An asset's ticker in upper case (``"BTC"``, ``"PEPE"``: what a cashtag names, and
the base of a symbol such as ``BTC/USDT``), or a chain token's address as the chain writes it.
:func:`subject_of` is the one place a symbol becomes a subject.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from sniperbot.messages.base import Message

#: Subjects a signal may name (plug-ins, analysers outside the node, are held to it): an upper-case
#: ticker (``BTC``, ``1000PEPE``), an EVM address (``0x`` + 40 hex digits, any case: checksummed) or a
#: Solana mint (base58, 32-44 characters).
#: Nothing else: a dot would change the topic, ``btc`` would never reach a strategy following ``BTC``.
SUBJECT_RULE: Final = re.compile(r"[A-Z0-9]{1,20}|0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32,44}")
#: A measure's name: lower snake case (``sentiment``, ``mentions_z``, ``momentum``).
KIND_RULE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: The signal schema's version: bumped when a field's meaning changes (new fields go at the end).
SIGNAL_VERSION: Final = 1


class Signal(Message, tag="signal"):
    """One analyser's reading about one subject.

    ``source`` is the analyser that measured it (its config id, e.g. ``"sentiment"``, ``"coingecko"``,
    ``"plugin.whales"``); ``origin`` says from what (e.g. ``"reddit,x"``, a URL). ``kind`` names the
    measure (``"sentiment"`` in [-1, 1], ``"mentions"`` a count, ``"mentions_z"`` a z-score,
    ``"trending_rank"``, ...); ``value`` is it, ``confidence`` in [0, 1] how far to trust it, ``count``
    how many observations it rests on, ``window_s`` the period it summarises (0: a point reading),
    ``ts_ns`` when it was measured (the end of its window). ``stale``: the source is unreachable and
    this is the last value it had; a strategy should treat it as absent.
    """

    source: str
    subject: str
    kind: str
    value: float
    confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    window_s: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    ts_ns: int = 0
    count: int = 0
    stale: bool = False
    origin: str = ""
    version: int = SIGNAL_VERSION


class Post(Message, tag="post"):
    """One item a social scanner fetched, as the platform gave it (text untouched).

    ``source`` is the scanner's config id, ``platform`` the service (``"reddit"``, ``"x"``,
    ``"telegram"``, ``"discord"``, ``"rss"``); ``post_id`` is the platform's id (unique within
    ``platform``), ``channel`` the subreddit, channel, query or feed it came from, ``created_ns``
    when it was posted (platform clock), ``ts_ns`` when the scanner published it, ``engagement`` the
    platform's score (upvotes, likes) when it has one.
    """

    source: str
    platform: str
    post_id: str
    text: str
    created_ns: int
    ts_ns: int
    author: str = ""
    channel: str = ""
    url: str = ""
    engagement: float = 0.0


def subject_of(symbol: str) -> str:
    """The subject a market symbol's signals are about: its base asset (``"BTC/USDT:USDT"`` -> ``"BTC"``)."""
    return symbol.split("/", 1)[0].split(":", 1)[0].upper()


class AnalyserStatus(Message, tag="analyser_status"):
    """An analyser's health, on ``status.analyser.<id>`` (cached like every status).

    ``stale`` is True while the analyser's service has not answered for its own staleness limit
    (the sentiment aggregator then marks signals built on it stale); ``errors`` counts failed
    requests, ``backoff_s`` is the wait before the next attempt (0 when healthy), ``items`` how many
    posts or signals it has published, ``dropped`` how many it refused (duplicates, invalid lines),
    ``last_ok_ns`` the last successful exchange with its service.
    """

    source: str
    stale: bool
    errors: int = 0
    backoff_s: float = 0.0
    items: int = 0
    dropped: int = 0
    last_ok_ns: int = 0
    ts_ns: int = 0
    detail: str = ""  # the last error, without secrets
