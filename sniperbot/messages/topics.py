"""The bus's topic names, in one place (a switchboard).

Topics are dot-separated, kind before symbol so that an actor can follow only
quotes (``md.<venue>.quote.``) and not be woken by every trade, and market-data
topics end with ``.`` so that ``md.sim.trade.BTC/USDT.`` never matches
``md.sim.trade.BTC/USDT:USDT.``.
"""

from __future__ import annotations

READY = "ctl.ready."
STATUS_PORTFOLIO = "status.portfolio"
STATUS_RISK = "status.risk"
FEED_STATUS = "status.feed."  # prefix of every feed's FeedStatus (see feed_status)
ANALYSER_STATUS = "status.analyser."  # prefix of every analyser's AnalyserStatus (see analyser_status)
VENUE_STATUS = "status.venue."  # prefix of every venue gateway's VenueStatus (see venue_status)
EVENTS = "ev."
METRICS = "metrics."  # prefix of every MetricsSnapshot (see metrics)
STATUS = "status."  # prefix of every status topic (portfolio, risk, feeds)
SIGNALS = "sig."  # prefix of every analytics Signal (see signal)
POSTS = "social."  # prefix of every social Post (see posts)


def market(venue: str) -> str:
    """Prefix of all market data of a venue (quotes and trades)."""
    return f"md.{venue}."


def quotes(venue: str) -> str:
    """Prefix of every quote of a venue (what marks, risk checks and fills need)."""
    return f"md.{venue}.quote."


def quote(venue: str, symbol: str) -> str:
    """Topic of a symbol's top-of-book quotes."""
    return f"md.{venue}.quote.{symbol}."


def trade(venue: str, symbol: str) -> str:
    """Topic of a symbol's trade ticks."""
    return f"md.{venue}.trade.{symbol}."


def book(venue: str, symbol: str) -> str:
    """Topic of a symbol's order book (top levels), published by live feeds."""
    return f"md.{venue}.book.{symbol}."


def market_rules(venue: str, symbol: str = "") -> str:
    """Topic of a symbol's trading rules (lot step, minimums); without ``symbol``, the venue's prefix."""
    return f"md.{venue}.rules.{symbol}." if symbol else f"md.{venue}.rules."


def feed_status(venue: str) -> str:
    """Topic of a venue feed's health (stale flag and counters)."""
    return f"{FEED_STATUS}{venue}"


def venue_status(venue: str) -> str:
    """Topic of a venue gateway's health, reconciliation state and balances."""
    return f"{VENUE_STATUS}{venue}"


def analyser_status(analyser_id: str) -> str:
    """Topic of an analyser's health (:class:`~sniperbot.messages.signals.AnalyserStatus`)."""
    return f"{ANALYSER_STATUS}{analyser_id}"


def strategy_events(strategy_id: str) -> str:
    """Prefix of every order event (updates, fills) of one strategy."""
    return f"ev.{strategy_id}."


def order_update(strategy_id: str) -> str:
    """Topic of a strategy's order updates."""
    return f"ev.{strategy_id}.order"


def fill(strategy_id: str) -> str:
    """Topic of a strategy's fills."""
    return f"ev.{strategy_id}.fill"


def breaker(scope: str) -> str:
    """Topic of a circuit breaker's state changes (an alert)."""
    return f"ctl.breaker.{scope}"


BREAKERS = "ctl.breaker."


def metrics(actor_id: str) -> str:
    """Topic of one actor's (or the node's) MetricsSnapshot."""
    return f"{METRICS}{actor_id}"


def token_safety(venue: str, token: str = "") -> str:
    """Topic of a chain venue's token safety reports (one topic per token); without ``token``, the prefix."""
    return f"chain.{venue}.token_safety.{token}." if token else f"chain.{venue}.token_safety."


def new_pool(venue: str) -> str:
    """Topic of a chain venue's new liquidity pools (:class:`~sniperbot.messages.chain.NewPool`)."""
    return f"chain.{venue}.new_pool."


def bus_echo(actor_id: str) -> str:
    """An actor's own probe topic: hearing its probe back proves its publisher has joined the bus."""
    return f"ctl.echo.{actor_id}."


def signal(subject: str, kind: str = "", source: str = "", window_s: float = 0) -> str:
    """Topic of one analyser's signals of one kind about one subject; shorter: the prefix.

    Subject first, so a strategy follows everything about its asset with ``signal("BTC")``,
    or one measure from every analyser with ``signal("BTC", "sentiment")``. An analyser that
    publishes one kind over several windows adds ``window_s`` (``sig.BTC.mentions.sentiment.300s.``),
    so the last-value cache keeps each window's latest value, not only the last one published.
    """
    parts = [p for p in (subject, kind, source) if p]
    if window_s and source:
        parts.append(f"{window_s:g}s")
    return SIGNALS + "".join(p + "." for p in parts)


def posts(source: str = "") -> str:
    """Topic of one scanner's posts; without ``source``, every scanner's."""
    return f"{POSTS}{source}." if source else POSTS
