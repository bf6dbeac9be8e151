"""The ``kind = "ccxt"`` venue: a centralised exchange through ccxt (REST) and ccxt.pro (websockets).

::

    [[venues]]
    name = "binance"            # the venue id in topics, breakers, the tree and the journal
    kind = "ccxt"
    exchange = "binance"        # a ccxt id: binance, coinbase, kraken tested; any other best-effort
    symbols = ["BTC/USDT"]      # ccxt's unified spelling; checked against the exchange's markets
    mode = "paper"              # paper: live market data, simulated fills (dry-run); live: real orders
    # sandbox = true            # the exchange's testnet, where ccxt has one
    # keys = "binance-main"     # a keystore entry (sniperbot keys add); required for mode = "live"
    # rest_url = "https://mirror.example"   # replace only scheme and host of every REST endpoint
    # ws_url = "wss://mirror.example"       # ... and of every websocket endpoint (paths are kept)

Checks, each naming its field, before any process starts (``sniperbot run`` exits 2):

* at load: ``exchange`` is a ccxt.pro exchange id; ``symbols`` is non-empty and unique;
  ``mode = "live"`` needs ``keys``; ``rest_url``/``ws_url`` are absolute http(s)/ws(s) URLs;
* after load (:meth:`CcxtVenueConfig.preflight`, called by ``sniperbot run`` once the
  config is valid): the exchange's markets are loaded over REST and every symbol must be
  listed. **Decision:** an exchange that cannot be reached then does not stop the node (a 24/7
  node restarted during an exchange outage must come back by itself): it is logged, and the
  venue trades nothing until its gateway has loaded the markets and reconciled; orders for a
  symbol the exchange does not list are rejected by the gateway (``unknown_symbol``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import msgspec

from sniperbot.venues.base import Positive, VenueSection

#: How long ``preflight`` waits for the exchange's markets before starting without the check.
PREFLIGHT_TIMEOUT_MS = 10_000


def ccxt_exchange_ids() -> list[str]:
    """Every exchange id ccxt.pro has (imported lazily: ccxt takes ~0.5 s to import)."""
    import ccxt.pro

    return list(ccxt.pro.exchanges)


def _check_url(field: str, url: str | None, schemes: tuple[str, ...]) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{field}: {url!r} must be an absolute URL with scheme {' or '.join(schemes)}")


class CcxtVenueConfig(VenueSection, tag="ccxt"):
    """An exchange through ccxt: market data always live; orders simulated (paper) or real (live)."""

    supported_modes: ClassVar[tuple[str, ...]] = ("paper", "live")

    exchange: str
    symbols: list[str]
    sandbox: bool = False
    keys: str = ""
    rest_url: str | None = None
    ws_url: str | None = None
    #: Order-book levels published per symbol (``OrderBook``).
    depth: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    #: No websocket message for this long: prices are stale, reconnect, poll REST.
    stale_after_s: Positive = 10.0
    #: REST polling period while the websocket is down or stale.
    poll_interval_s: Annotated[float, msgspec.Meta(ge=0.05)] = 1.0
    #: Live gateway: how often every unfinished order is reconciled over REST.
    reconcile_interval_s: Annotated[float, msgspec.Meta(ge=0.05)] = 2.0
    #: Live gateway: timeout of one REST call to the exchange.
    timeout_ms: Annotated[int, msgspec.Meta(ge=100)] = 10_000

    def __post_init__(self) -> None:
        known = ccxt_exchange_ids()
        if self.exchange not in known:
            import difflib

            close = difflib.get_close_matches(self.exchange, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"exchange: {self.exchange!r} is not a ccxt exchange id{hint}")
        if not self.symbols:
            raise ValueError("symbols: at least one symbol is required")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols: symbols must be unique")
        for symbol in self.symbols:
            base, slash, quote = symbol.partition("/")
            if not (base and slash and quote):
                raise ValueError(f"symbols: {symbol!r} is not a ccxt symbol like 'BTC/USDT'")
        if self.mode == "live" and not self.keys:
            raise ValueError(
                'keys: mode = "live" needs a keystore entry (sniperbot keys add NAME --exchange '
                f'{self.exchange}), or mode = "paper" for a dry-run'
            )
        _check_url("rest_url", self.rest_url, ("http", "https"))
        _check_url("ws_url", self.ws_url, ("ws", "wss"))

    def symbol_names(self) -> list[str]:
        """The configured symbols, in config order."""
        return list(self.symbols)

    def _common(self) -> dict[str, Any]:
        return {
            "venue": self.name,
            "exchange": self.exchange,
            "symbols": list(self.symbols),
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "sandbox": self.sandbox,
            "keys": self.keys,  # the entry's NAME; the secret is sealed into the gateway's launch only
        }

    def feed(self, epoch_ns: int) -> tuple[str, dict[str, Any]]:
        """The ccxt.pro feed (``epoch_ns`` is the sim clock's anchor: a live feed has the exchange's)."""
        return "sniperbot.venues.ccxt.feed:CcxtFeed", {
            **self._common(),
            "depth": self.depth,
            "stale_after_s": self.stale_after_s,
            "poll_interval_s": self.poll_interval_s,
        }

    def live_gateway(self) -> tuple[str, dict[str, Any]]:
        """The live gateway: real orders, exactly once (``gateway.<name>``)."""
        return "sniperbot.venues.ccxt.gateway:CcxtGateway", {
            **self._common(),
            "poll_s": self.reconcile_interval_s,
            "timeout_ms": self.timeout_ms,
        }

    def keystore_entries(self) -> dict[str, tuple[str, str]]:
        """``keys``, an entry holding this exchange's API key (when set)."""
        return {"keys": (self.keys, self.exchange)} if self.keys else {}

    def history_source(self) -> dict[str, Any] | None:
        """The exchange's candles (public ``fetch_ohlcv``), see :mod:`sniperbot.venues.ccxt.history`."""
        return self._common()

    def preflight(self) -> str | None:
        """Check the symbols against the exchange's markets; raise ``ValueError("symbols: ...")``.

        Returns a warning (the exchange could not be reached: nothing was checked) or None.
        Public REST only: no keys are needed to list markets.
        """
        import ccxt

        from sniperbot.venues.ccxt.markets import spot_options
        from sniperbot.venues.ccxt.urls import rebase_urls

        ex = getattr(ccxt, self.exchange)(
            {"timeout": PREFLIGHT_TIMEOUT_MS, "options": spot_options(self.exchange)}
        )
        if self.sandbox:
            ex.set_sandbox_mode(True)
        rebase_urls(ex, self.rest_url, self.ws_url)
        try:
            markets = ex.load_markets()
        except ccxt.BaseError as e:
            # Class only: a ccxt message may quote the request.
            return f"cannot list {self.exchange}'s markets ({type(e).__name__}): symbols not checked"
        missing = [s for s in self.symbols if s not in markets]
        if missing:
            raise ValueError(
                f"symbols: {', '.join(map(repr, missing))} not listed by {self.exchange}"
                f" ({len(markets)} markets listed)"
            )
        return None
