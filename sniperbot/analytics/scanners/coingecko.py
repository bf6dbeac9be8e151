"""CoinGecko: trending coins and market figures, published as signals (no posts).

Wire format: ``GET /api/v3/search/trending`` (https://docs.coingecko.com/reference/trending-search) answers
``coins[].item`` {``id``, ``symbol``, ``name``, ``market_cap_rank``, ``score``} (``score`` 0 = the top);
``GET /api/v3/coins/markets?vs_currency=usd&ids=a,b`` (https://docs.coingecko.com/reference/coins-markets)
answers ``[{id, symbol, current_price, total_volume, price_change_percentage_24h, ...}]``. A 429 says how
long to wait in ``Retry-After``. A demo or pro key goes in ``x-cg-demo-api-key`` / ``x-cg-pro-api-key``
(pro on ``pro-api.coingecko.com``).

Signals on ``sig.<SYMBOL>.<kind>.<id>.`` (subject = the upper-case symbol, ``origin`` =
``coingecko:<coin id>``): ``trending_rank`` (1 = the top of the trending list; 0 = the coin left the list:
said once, so the last-value cache does not go on claiming it trends), ``price_change_24h`` (percent,
``window_s`` one day) and ``volume_24h`` (USD, one day), for the trending coins and ``coin_ids``. Several
coins share a symbol: the one with the best market-cap rank speaks for it (a trending meme coin copying a
ticker does not overwrite the real one's figures, unless it is bigger). While CoinGecko is down (stale),
every last value is published again with ``stale = True``: a strategy reading the cache sees it is old.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import msgspec

from sniperbot.analytics.scanners.base import (
    Fetched,
    Http,
    ScannerActor,
    ServiceError,
    TargetCursor,
    parse_each,
)
from sniperbot.analytics.scanners.config import CoinGeckoConfig, read_secret
from sniperbot.messages import topics as topic
from sniperbot.messages.signals import Signal

TARGET = "coingecko"
DAY_S = 86_400.0
MAX_IDS = 250  # coins/markets page size


class Coin(msgspec.Struct, frozen=True):
    """One coin of an answer, read on the HTTP thread."""

    coin_id: str
    subject: str  # the upper-case symbol
    rank: int  # market-cap rank (1 << 30 when unranked)
    score: int = 0  # trending position, 0 = the top
    change_24h: float | None = None
    volume_24h: float | None = None


def _rank(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and value > 0 else 1 << 30


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _trending_coin(raw: Any) -> Coin | None:
    item = raw["item"]
    subject = str(item["symbol"]).upper()
    return (
        Coin(str(item["id"]), subject, _rank(item.get("market_cap_rank")), int(item["score"]))
        if subject
        else None
    )


def _market_coin(row: Any) -> Coin | None:
    subject = str(row["symbol"]).upper()
    if not subject:
        return None
    change, volume = _number(row.get("price_change_percentage_24h")), _number(row.get("total_volume"))
    return Coin(str(row["id"]), subject, _rank(row.get("market_cap_rank")), 0, change, volume)


def _by_symbol(coins: list[Coin]) -> dict[str, Coin]:
    """One coin per symbol: the best market-cap rank (the first seen on a tie)."""
    best: dict[str, Coin] = {}
    for coin in coins:
        if coin.subject not in best or coin.rank < best[coin.subject].rank:
            best[coin.subject] = coin
    return best


class CoinGeckoScanner(ScannerActor):
    """Trending ranks, 24 h price change and volume as :class:`Signal` (see the module doc)."""

    config_type: ClassVar[type[CoinGeckoConfig]] = CoinGeckoConfig
    platform: ClassVar[str] = "coingecko"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plan = self.config.api_plan  # type: ignore[attr-defined]
        self._key = read_secret(self.config, "api_key")
        if not self.config.base_url:
            host = "https://pro-api.coingecko.com" if plan == "pro" else "https://api.coingecko.com"
            self.base_url = host
        self.last: dict[tuple[str, str], Signal] = {}  # (subject, kind) -> last signal published
        self._trending: set[str] = set()  # subjects trending in the last answer

    def targets(self) -> list[str]:
        """Both endpoints, in one cycle."""
        return [TARGET]

    def secrets(self) -> list[str]:
        """The API key."""
        return [self._key]

    def request_headers(self) -> dict[str, str]:
        """The plan's key header."""
        headers = {"Accept": "application/json", "User-Agent": "sniperbot-scanner/1.0"}
        plan = self.config.api_plan  # type: ignore[attr-defined]
        if plan != "public":
            headers[f"x-cg-{plan}-api-key"] = self._key
        return headers

    async def fetch(self, http: Http, cursor: TargetCursor) -> Fetched:
        """Trending, then the markets of the trending coins and ``coin_ids`` (parsed here, off the actor)."""
        answer = (await http.get(f"{self.base_url}/api/v3/search/trending")).json()
        if not isinstance(answer, dict):
            raise ServiceError("search/trending: not an object")
        trending, bad = parse_each(answer.get("coins"), _trending_coin)
        wanted = [*self.config.coin_ids, *(c.coin_id for c in trending)]  # type: ignore[attr-defined]
        ids = list(dict.fromkeys(wanted))[:MAX_IDS]
        markets: list[Coin] = []
        if ids:
            params = {"vs_currency": "usd", "ids": ",".join(ids)}
            rows = (await http.get(f"{self.base_url}/api/v3/coins/markets", params)).json()
            markets, more = parse_each(rows, _market_coin)
            bad += more
        return Fetched(TARGET, [trending, markets], cursor, bad)

    def on_fetched(self, fetched: Fetched) -> None:
        """Signals from both answers (actor thread)."""
        now = time.time_ns()
        self.dropped += fetched.malformed
        signals: list[Signal] = []
        trending, markets = fetched.items
        best = _by_symbol(trending)
        for subject, coin in best.items():
            signals.append(self._signal(subject, "trending_rank", coin.score + 1.0, 0.0, coin.coin_id, now))
        for subject in sorted(self._trending - set(best)):
            signals.append(self._signal(subject, "trending_rank", 0.0, 0.0, "", now))
        self._trending = set(best)
        for subject, coin in _by_symbol(markets).items():
            if coin.change_24h is not None:
                signals.append(
                    self._signal(subject, "price_change_24h", coin.change_24h, DAY_S, coin.coin_id, now)
                )
            if coin.volume_24h is not None:
                signals.append(self._signal(subject, "volume_24h", coin.volume_24h, DAY_S, coin.coin_id, now))
        for s in signals:
            self._publish(s)
        self.items += len(signals)

    def _signal(
        self, subject: str, kind: str, value: float, window_s: float, coin_id: str, now: int
    ) -> Signal:
        return Signal(
            source=self.source,
            subject=subject,
            kind=kind,
            value=value,
            window_s=window_s,
            ts_ns=now,
            count=1,
            origin=f"coingecko:{coin_id}",
        )

    def _publish(self, s: Signal) -> None:
        self.last[(s.subject, s.kind)] = s
        self.ctx.publish(topic.signal(s.subject, s.kind, self.source), s)

    def on_stale_change(self, stale: bool) -> None:
        """Down: every last value again, marked stale (fresh values follow the recovery by themselves)."""
        if not stale or not self.bus.joined:
            return
        now = time.time_ns()
        for s in list(self.last.values()):
            self._publish(msgspec.structs.replace(s, stale=True, ts_ns=now))
