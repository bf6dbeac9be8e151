"""Reddit: new posts of subreddits through the public JSON listing ``/r/<sub>/new.json``.

Wire format (https://www.reddit.com/dev/api#GET_new): ``GET /r/<sub>/new.json?limit=100&before=<fullname>``
answers a ``Listing`` whose ``data.children[].data`` are posts (``name`` the fullname ``t3_<id>``,
``title``, ``selftext``, ``author``, ``created_utc``, ``score``, ``permalink``), newest first; ``before``
asks for posts newer than that fullname. Rate limits (https://support.reddithelp.com/hc/en-us/articles/
16160319875092): ``X-Ratelimit-Remaining`` (requests left, a float) and ``X-Ratelimit-Reset`` (seconds
until the window resets); a request with nothing left waits for the reset. Reddit refuses anonymous
User-Agents: ``user_agent`` is sent with every request.

Cursor: the newest fullname published. If that post is deleted, ``before=<it>`` answers an empty listing
for ever (Reddit's known behaviour), so every :data:`RESYNC_EVERY` th empty answer is checked by a
listing without ``before``: what it holds beyond the recent ids journaled is new.
"""

from __future__ import annotations

import base64
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
from sniperbot.analytics.scanners.config import RedditConfig, read_secret
from sniperbot.messages.signals import Post

OAUTH_HOST = "https://oauth.reddit.com"
RESYNC_EVERY = 10  # empty anchored answers before one unanchored listing (a deleted cursor post)


class RedditScanner(ScannerActor):
    """New posts of ``subreddits`` as :class:`Post` (``channel`` = the subreddit)."""

    config_type: ClassVar[type[RedditConfig]] = RedditConfig
    platform: ClassVar[str] = "reddit"
    default_base_url: ClassVar[str] = "https://www.reddit.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._empty: dict[str, int] = {}
        config: RedditConfig = self.config  # type: ignore[assignment]
        self._secret = read_secret(config, "client_secret")
        self._oauth = bool(config.client_id)
        if self._oauth and not config.base_url:
            self.base_url = OAUTH_HOST
        self._auth_url = (config.auth_url or self.default_base_url).rstrip("/")
        self._token = ""  # the application-only access token (HTTP thread)
        self._token_expires = 0.0  # monotonic

    def secrets(self) -> list[str]:
        """The app's client secret."""
        return [self._secret]

    async def _bearer(self, http: Http) -> dict[str, str]:
        """``Authorization`` for an OAuth listing (a token fetched or refreshed first when needed)."""
        if not self._token or time.monotonic() > self._token_expires:
            config: RedditConfig = self.config  # type: ignore[assignment]
            basic = base64.b64encode(f"{config.client_id}:{self._secret}".encode()).decode()
            answer = (
                await http.post(
                    f"{self._auth_url}/api/v1/access_token",
                    {"grant_type": "client_credentials"},
                    {"Authorization": f"Basic {basic}"},
                )
            ).json()
            try:
                self._token = str(answer["access_token"])
                expires_in = float(answer.get("expires_in", 3600))
            except (KeyError, TypeError, ValueError):
                raise ServiceError(f"access_token refused: {str(answer)[:200]}") from None
            self._secrets.append(self._token)  # never shown (it is only ever in a header)
            self._token_expires = time.monotonic() + max(0.0, expires_in - 60.0)  # renewed a minute early
        return {"Authorization": f"bearer {self._token}"}

    def targets(self) -> list[str]:
        """One per subreddit."""
        return list(self.config.subreddits)  # type: ignore[attr-defined]

    def request_headers(self) -> dict[str, str]:
        """Reddit's rules: a descriptive User-Agent."""
        return {"User-Agent": self.config.user_agent}  # type: ignore[attr-defined]

    def limit_wait(self, response: Response) -> float:
        """``X-Ratelimit-Remaining`` below one (or a 429): wait ``X-Ratelimit-Reset`` seconds."""
        remaining = header_float(response.headers, "x-ratelimit-remaining")
        reset = header_float(response.headers, "x-ratelimit-reset")
        if reset is not None and (response.status == 429 or (remaining is not None and remaining < 1)):
            return max(0.0, reset)
        return super().limit_wait(response) if response.status == 429 else 0.0

    async def fetch(self, http: Http, cursor: TargetCursor) -> Fetched:
        """``new.json`` after the cursor (see the module doc for the resync)."""
        sub = cursor.target
        params = {"limit": "100", "raw_json": "1"}
        anchored = bool(cursor.cursor)
        if anchored:
            n = self._empty.get(sub, 0)
            if n >= RESYNC_EVERY:
                anchored = False
                self._empty[sub] = 0
            else:
                params["before"] = cursor.cursor
        if self._oauth:
            try:
                response = await http.get(f"{self.base_url}/r/{sub}/new", params, await self._bearer(http))
            except ServiceError as e:
                if e.status == 401:
                    self._token = ""  # revoked or expired early: a new one on the next attempt
                raise
        else:
            response = await http.get(f"{self.base_url}/r/{sub}/new.json", params)
        listing = response.json()
        try:
            children = listing["data"]["children"]
        except (KeyError, TypeError) as e:
            raise ServiceError(f"r/{sub}: not a Reddit listing ({e!r})") from None
        posts, bad = parse_each(children, lambda c: self._post(sub, c["data"]) if c["kind"] == "t3" else None)
        if anchored and not posts:
            self._empty[sub] = self._empty.get(sub, 0) + 1
        elif anchored:
            self._empty[sub] = 0
        posts.sort(key=lambda p: p.created_ns)
        newest = max(posts, key=lambda p: p.created_ns).post_id if posts else cursor.cursor
        return Fetched(sub, posts, msgspec.structs.replace(cursor, cursor=newest), bad)

    def _post(self, sub: str, d: dict[str, Any]) -> Post:
        title, body = str(d.get("title") or ""), str(d.get("selftext") or "")
        permalink = str(d.get("permalink") or "")
        return Post(
            source=self.source,
            platform=self.platform,
            post_id=str(d.get("name") or f"t3_{d['id']}"),
            text=f"{title}\n\n{body}" if body else title,
            created_ns=int(float(d["created_utc"]) * 1e9),
            ts_ns=0,
            author=str(d.get("author") or ""),
            channel=sub,
            url=f"https://www.reddit.com{permalink}" if permalink.startswith("/") else permalink,
            engagement=float(d.get("score") or 0),
        )
