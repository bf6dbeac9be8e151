"""X (Twitter): API v2 recent search for each query.

Wire format (https://developer.x.com/en/docs/x-api/tweets/search/api-reference/get-tweets-search-recent):
``GET /2/tweets/search/recent?query=...&since_id=...&max_results=100&tweet.fields=created_at,
public_metrics,author_id`` with ``Authorization: Bearer <token>`` answers ``data[]`` (``id``, ``text``,
``created_at``, ``author_id``, ``public_metrics``), newest first, and ``meta`` (``newest_id``,
``result_count``, ``next_token`` when there is another page). Rate limits
(https://developer.x.com/en/docs/x-api/rate-limits): ``x-rate-limit-remaining`` and
``x-rate-limit-reset`` (epoch seconds) on every answer, 429 when exhausted.

Cursor: ``newest_id`` of the first page (``since_id`` of the next poll). A burst bigger than
``max_pages`` pages in one poll is cut at its oldest end (logged by the count it carried), never repeated.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, ClassVar

import msgspec

from sniperbot.analytics.scanners.base import (
    Fetched,
    Http,
    Response,
    ScannerActor,
    ServiceError,
    TargetCursor,
    header_float,
    parse_each,
)
from sniperbot.analytics.scanners.config import XConfig, read_secret
from sniperbot.messages.signals import Post

TWEET_FIELDS = "created_at,public_metrics,author_id"


def iso_ns(text: str) -> int:
    """An ISO 8601 time (``2024-05-01T12:00:00.000Z``) in ns since the epoch."""
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)


class XScanner(ScannerActor):
    """Tweets matching ``queries`` as :class:`Post` (``channel`` = the query)."""

    config_type: ClassVar[type[XConfig]] = XConfig
    platform: ClassVar[str] = "x"
    default_base_url: ClassVar[str] = "https://api.x.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token = read_secret(self.config, "bearer_token")

    def targets(self) -> list[str]:
        """One per query."""
        return list(self.config.queries)  # type: ignore[attr-defined]

    def secrets(self) -> list[str]:
        """The bearer token."""
        return [self._token]

    def request_headers(self) -> dict[str, str]:
        """App-only auth."""
        return {"Authorization": f"Bearer {self._token}", "User-Agent": "sniperbot-scanner/1.0"}

    def limit_wait(self, response: Response) -> float:
        """Nothing left (or a 429): wait until ``x-rate-limit-reset`` (epoch seconds)."""
        remaining = header_float(response.headers, "x-rate-limit-remaining")
        reset = header_float(response.headers, "x-rate-limit-reset")
        if reset is not None and (response.status == 429 or (remaining is not None and remaining < 1)):
            return max(0.0, reset - time.time())
        return super().limit_wait(response) if response.status == 429 else 0.0

    async def fetch(self, http: Http, cursor: TargetCursor) -> Fetched:
        """Every page newer than ``since_id`` (at most ``max_pages``)."""
        query = cursor.target
        params = {"query": query, "max_results": "100", "tweet.fields": TWEET_FIELDS}
        if cursor.cursor:
            params["since_id"] = cursor.cursor
        posts: list[Post] = []
        newest = cursor.cursor
        bad = 0
        for page in range(self.config.max_pages):  # type: ignore[attr-defined]
            answer = (await http.get(f"{self.base_url}/2/tweets/search/recent", params)).json()
            meta = answer.get("meta") if isinstance(answer, dict) else None
            if not isinstance(meta, dict):
                raise ServiceError(f"query {query!r}: not a recent-search answer")
            if page == 0 and meta.get("newest_id"):
                newest = str(meta["newest_id"])
            parsed, malformed = parse_each(answer.get("data", []), lambda t: self._post(query, t))
            posts += parsed
            bad += malformed
            token = meta.get("next_token")
            if not token:
                break
            params["next_token"] = str(token)
        posts.sort(key=lambda p: (p.created_ns, int(p.post_id)))
        return Fetched(query, posts, msgspec.structs.replace(cursor, cursor=newest), bad)

    def _post(self, query: str, t: dict[str, Any]) -> Post:
        metrics = t.get("public_metrics") or {}
        engagement = sum(float(metrics.get(k) or 0) for k in ("like_count", "retweet_count", "quote_count"))
        return Post(
            source=self.source,
            platform=self.platform,
            post_id=str(t["id"]),
            text=str(t.get("text") or ""),
            created_ns=iso_ns(t["created_at"]),
            ts_ns=0,
            author=str(t.get("author_id") or ""),
            channel=query,
            url=f"https://x.com/i/web/status/{t['id']}",
            engagement=engagement,
        )
